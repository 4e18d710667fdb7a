//! Group commit. A write is decided under the write lock, from the index as it stands, and then
//! queued; the committer stores whatever queued while the previous batch was being stored in one
//! call ([`AgentStore::apply_batch`]: one transaction, one durable commit), applies it to the
//! index in revision order and only then answers each writer. Deciding the next batch, storing
//! it and applying the one before to the index all overlap.
//!
//! A write in flight is not in the index yet, so what it holds is noted in [`InFlight`] until
//! its batch is applied: its agent, the names it claims, its idempotency key and what it adds to
//! its owner's usage. A write that touches what another write in flight holds waits for that
//! batch first ([`AgentRegistry::lock_clear`]), so each write is decided as if the writes before
//! it had been applied one by one.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::{mpsc, oneshot, watch};

use super::AgentRegistry;
use super::replication::{Replica, WriteGuard};
use crate::audit::AuditNote;
use crate::claim::NameClaim;
use crate::clock::Clock;
use crate::error::{ErrorKind, RegistryError, Result};
use crate::index::Hit;
use crate::model::AgentId;
use crate::ports::Change;
use crate::quota::Usage;

/// Changes stored together at most.
const BATCH: usize = 256;

/// What the writes in flight hold; changed only under the write lock.
#[derive(Default)]
pub(super) struct InFlight {
    agents: HashSet<AgentId>,
    /// `(namespace, name)` of each name claimed, and `(namespace, "scope:" + scope)` of each
    /// scope, which its first claimant's owner takes.
    names: HashSet<(String, String)>,
    /// `(owner, key)` of each idempotency key recorded.
    keys: HashSet<(String, String)>,
    usage: HashMap<String, Usage>,
}

impl InFlight {
    pub(super) fn holds_agent(&self, id: AgentId) -> bool {
        self.agents.contains(&id)
    }

    pub(super) fn holds_key(&self, owner: &str, key: &str) -> bool {
        self.keys.contains(&(owner.to_owned(), key.to_owned()))
    }

    pub(super) fn holds_any_name(&self, claims: &[NameClaim]) -> bool {
        claims.iter().any(|claim| name_keys(claim).any(|k| self.names.contains(&k)))
    }

    /// What the owner's writes in flight add to its usage.
    pub(super) fn usage(&self, owner: &str) -> Usage {
        self.usage.get(owner).copied().unwrap_or_default()
    }

    fn hold(&mut self, hold: &Hold) {
        self.agents.insert(hold.agent);
        self.names.extend(hold.names.iter().cloned());
        self.keys.extend(hold.key.iter().cloned());
        let usage = self.usage.entry(hold.owner.clone()).or_default();
        usage.agents = usage.agents.saturating_add(hold.charge.agents);
        usage.document_bytes = usage.document_bytes.saturating_add(hold.charge.document_bytes);
    }

    fn release(&mut self, hold: &Hold) {
        self.agents.remove(&hold.agent);
        for name in &hold.names {
            self.names.remove(name);
        }
        if let Some(key) = &hold.key {
            self.keys.remove(key);
        }
        if let Some(usage) = self.usage.get_mut(&hold.owner) {
            usage.agents = usage.agents.saturating_sub(hold.charge.agents);
            usage.document_bytes = usage.document_bytes.saturating_sub(hold.charge.document_bytes);
            if *usage == Usage::default() {
                self.usage.remove(&hold.owner);
            }
        }
    }
}

fn name_keys(claim: &NameClaim) -> impl Iterator<Item = (String, String)> + '_ {
    let scope = claim.scope.as_ref().map(|scope| (claim.namespace.clone(), format!("scope:{scope}")));
    std::iter::once((claim.namespace.clone(), claim.name.clone())).chain(scope)
}

/// What one write in flight holds.
struct Hold {
    agent: AgentId,
    names: Vec<(String, String)>,
    key: Option<(String, String)>,
    owner: String,
    charge: Usage,
}

impl Hold {
    fn of(change: &Change, charge: Usage) -> Self {
        match change {
            Change::Put { agent, idempotency, expected, .. } => Self {
                agent: agent.id,
                // Names are granted at registration only.
                names: if expected.is_none() { agent.claims.iter().flat_map(name_keys).collect() } else { Vec::new() },
                key: idempotency.as_ref().map(|r| (r.owner_id.clone(), r.key.clone())),
                owner: agent.owner_id.clone(),
                charge,
            },
            Change::Delete { agent_id, .. } => {
                Self { agent: *agent_id, names: Vec::new(), key: None, owner: String::new(), charge }
            }
        }
    }
}

/// A decided write waiting for its batch.
struct Queued {
    change: Change,
    note: AuditNote,
    hold: Hold,
    answer: oneshot::Sender<Result<Option<Hit>>>,
    /// The span of the request that made the write.
    span: tracing::Span,
}

/// The queue of decided writes and what they hold.
pub(super) struct Committer {
    queue: mpsc::UnboundedSender<Queued>,
    pub(super) in_flight: Arc<parking_lot::Mutex<InFlight>>,
    /// Bumped after every batch is applied, to wake the writes that wait for it.
    settled: Arc<watch::Sender<u64>>,
}

impl Committer {
    /// Starts the committer over this replica; it stops when the registry is dropped.
    pub(super) fn start(replica: Replica, clock: Arc<dyn Clock>) -> Self {
        let (queue, queued) = mpsc::unbounded_channel();
        let in_flight = Arc::new(parking_lot::Mutex::new(InFlight::default()));
        let settled = Arc::new(watch::Sender::new(0));
        tokio::spawn(commit_batches(replica, clock, queued, in_flight.clone(), settled.clone()));
        Self { queue, in_flight, settled }
    }
}

/// A stored batch on its way to the index.
struct Stored {
    changes: Vec<(Change, AuditNote)>,
    waiting: Vec<(Hold, oneshot::Sender<Result<Option<Hit>>>)>,
    results: Vec<Result<u64>>,
}

/// The committer's first stage: one batch at a time, stored, then handed to the second stage
/// (which applies it to the index in revision order and answers), so that storing the next
/// batch overlaps applying this one.
async fn commit_batches(
    replica: Replica,
    clock: Arc<dyn Clock>,
    mut queued: mpsc::UnboundedReceiver<Queued>,
    in_flight: Arc<parking_lot::Mutex<InFlight>>,
    settled: Arc<watch::Sender<u64>>,
) {
    let (stored_tx, stored_rx) = mpsc::channel(1);
    tokio::spawn(apply_batches(replica.clone(), clock, stored_rx, in_flight, settled));
    let mut batch = Vec::with_capacity(BATCH);
    while queued.recv_many(&mut batch, BATCH).await > 0 {
        let mut changes = Vec::with_capacity(batch.len());
        let mut waiting = Vec::with_capacity(batch.len());
        // The store call is a child of the first request's span, and follows from the others'.
        let span = batch.first().map_or_else(tracing::Span::none, |q: &Queued| q.span.clone());
        for Queued { change, note, hold, answer, span: request } in batch.drain(..) {
            if request.id() != span.id() {
                span.follows_from(&request);
            }
            changes.push((change, note));
            waiting.push((hold, answer));
        }
        metrics::histogram!(crate::metrics::WRITE_BATCH).record(changes.len() as f64);
        let results = tracing::Instrument::instrument(replica.store.apply_batch(&changes), span).await;
        if stored_tx.send(Stored { changes, waiting, results }).await.is_err() {
            return;
        }
    }
}

/// The committer's second stage: applies stored batches to the index in revision order, under
/// the write lock, gives back what their writes held, and answers each writer.
async fn apply_batches(
    replica: Replica,
    clock: Arc<dyn Clock>,
    mut stored: mpsc::Receiver<Stored>,
    in_flight: Arc<parking_lot::Mutex<InFlight>>,
    settled: Arc<watch::Sender<u64>>,
) {
    while let Some(Stored { changes, waiting, results }) = stored.recv().await {
        let write = replica.lock().await;
        let mut answers = Vec::with_capacity(waiting.len());
        for (((change, _), (hold, answer)), result) in changes.into_iter().zip(waiting).zip(results) {
            let applied = match result {
                Ok(revision) => replica.take_own(&write, change, revision, clock.as_ref()).await,
                Err(e) => {
                    if e.kind() == ErrorKind::Unavailable {
                        // It may have been stored all the same: the index reads the log back.
                        replica.in_doubt.store(true, Ordering::Release);
                    }
                    Err(e)
                }
            };
            in_flight.lock().release(&hold);
            answers.push((answer, applied));
        }
        settled.send_modify(|n| *n = n.wrapping_add(1));
        drop(write);
        for (answer, applied) in answers {
            let _ = answer.send(applied);
        }
    }
}

impl AgentRegistry {
    /// Takes the write lock once no write in flight holds what `touches` asks about (see the
    /// module's documentation); with `catch_up`, first applies other replicas' changes.
    pub(super) async fn lock_clear(&self, catch_up: bool, touches: impl Fn(&InFlight) -> bool) -> Result<WriteGuard> {
        loop {
            let write = self.lock_writer(catch_up).await?;
            if !touches(&self.committer.in_flight.lock()) {
                return Ok(write);
            }
            self.wait_for_batch(write).await?;
        }
    }

    /// Gives the write lock back and waits until the batch in flight is applied.
    pub(super) async fn wait_for_batch(&self, write: WriteGuard) -> Result<()> {
        let mut settled = self.committer.settled.subscribe();
        drop(write);
        let wait = self.config.write_wait;
        tokio::time::timeout(wait, settled.changed())
            .await
            .map_err(|_| {
                RegistryError::storage_unavailable(format!(
                    "writes are queued behind a slow database for over {wait:?}"
                ))
            })?
            .map_err(|_| RegistryError::internal("the committer has stopped"))
    }

    /// Queues a decided change for the next batch, holding what it touches (and `charge`, what
    /// it adds to its owner's usage) until the batch is applied, and gives the write lock back;
    /// answers once the change is stored and applied. Returns the agent as this change left it
    /// (`None` once removed).
    pub(super) async fn apply(
        &self,
        write: WriteGuard,
        change: Change,
        note: &AuditNote,
        charge: Usage,
    ) -> Result<Option<Hit>> {
        let hold = Hold::of(&change, charge);
        self.committer.in_flight.lock().hold(&hold);
        let (answer, answered) = oneshot::channel();
        let queued = Queued { change, note: note.clone(), hold, answer, span: tracing::Span::current() };
        if let Err(mpsc::error::SendError(queued)) = self.committer.queue.send(queued) {
            self.committer.in_flight.lock().release(&queued.hold);
            return Err(RegistryError::internal("the committer has stopped"));
        }
        drop(write);
        let hit = answered.await.map_err(|_| RegistryError::internal("the committer has stopped"))??;
        // The index holds every change up to this one.
        self.sync.lock().store = std::time::Instant::now();
        Ok(hit)
    }
}
