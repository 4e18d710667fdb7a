//! Keeping this replica's index in revision order with the store's change log: the write lock,
//! following the log other replicas append to, and taking this replica's own changes into the
//! feed watchers read.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use parking_lot::RwLock;

use super::AgentRegistry;
use super::feed::Feed;
use crate::audit::AuditNote;
use crate::clock::Clock;
use crate::error::{RegistryError, Result};
use crate::index::{Hit, Index, Prepared};
use crate::liveness::Millis;
use crate::ports::{AgentStore, Change, ChangeSignal, LivenessChange, LoggedChange};
use crate::quota::Usage;

/// Holds the write lock.
pub(super) type WriteGuard = tokio::sync::OwnedMutexGuard<()>;

/// Changes read from the change log at a time.
const FOLLOW_PAGE: usize = 1_000;

/// This replica's copy of the registry: the store every replica writes to, the index built from
/// it, the revision the index has applied, the feed of recent changes, and the lock that orders
/// this replica's writes. Cloning it is cheap, so a write can run in a task of its own.
#[derive(Clone)]
pub(super) struct Replica {
    pub(super) store: Arc<dyn AgentStore>,
    pub(super) index: Arc<RwLock<Index>>,
    /// The last revision the index has applied (changed only under the write lock); watchers
    /// (MCP list-changed notifications, live watches) subscribe to it.
    pub(super) applied: Arc<tokio::sync::watch::Sender<u64>>,
    /// The changes applied lately, for watchers.
    pub(super) feed: Arc<Feed>,
    /// Serialises this process's writes so the index applies changes in revision order.
    pub(super) writer: Arc<tokio::sync::Mutex<()>>,
    /// A write failed as an outage (cut off by a bound, a connection lost before the answer):
    /// it may have been stored all the same, so the index reads the change log back before the
    /// next write.
    pub(super) in_doubt: Arc<AtomicBool>,
}

impl Replica {
    pub(super) fn new(store: Arc<dyn AgentStore>, index: Index, applied: u64) -> Self {
        Self {
            store,
            index: Arc::new(RwLock::new(index)),
            applied: Arc::new(tokio::sync::watch::Sender::new(applied)),
            feed: Arc::new(Feed::new(applied)),
            writer: Arc::default(),
            in_doubt: Arc::default(),
        }
    }

    pub(super) async fn lock(&self) -> WriteGuard {
        self.writer.clone().lock_owned().await
    }

    fn applied(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Applies the change log after the applied revision and up to `until` to the index, in
    /// revision order. Runs under the write lock.
    async fn follow_log(&self, _write: &WriteGuard, until: u64) -> Result<usize> {
        let mut followed = 0;
        loop {
            let mut changes = self.store.changes_since(self.applied(), FOLLOW_PAGE).await?;
            let n = changes.len();
            changes.retain(|c| c.revision <= until);
            let done = n < FOLLOW_PAGE || changes.len() < n;
            followed += changes.len();
            // Rendered under the read lock: readers wait only while the entries are swapped in.
            let prepared: Vec<Option<Prepared>> = {
                let index = self.index.read();
                changes
                    .iter()
                    .map(|c| c.agent.as_ref().filter(|_| !c.kind.is_liveness()).map(|a| index.prepare(a, &[])))
                    .collect()
            };
            {
                let mut index = self.index.write();
                for (change, prepared) in changes.into_iter().zip(prepared) {
                    match prepared {
                        Some(prepared) => index.upsert_prepared(prepared),
                        // Liveness events change no agent; heartbeats reach the index on their own.
                        None if change.kind.is_liveness() => {}
                        None => {
                            index.remove(change.agent_id);
                        }
                    }
                    let revision = change.revision;
                    self.feed.push(change);
                    self.applied.send_replace(revision);
                }
            }
            if done {
                return Ok(followed);
            }
        }
    }

    /// Takes a change this process stored into the feed: at once when it is the next revision;
    /// otherwise other replicas stored changes before it, and those are taken in order up to it.
    pub(super) async fn take_stored(
        &self,
        write: &WriteGuard,
        revision: u64,
        logged: impl FnOnce() -> LoggedChange,
    ) -> Result<()> {
        if revision == self.applied() + 1 {
            self.feed.push(logged());
            self.applied.send_replace(revision);
        } else {
            self.follow_log(write, revision).await?;
        }
        Ok(())
    }

    /// Applies a change this replica stored, at the revision it was given, and returns the agent
    /// as this change left it (`None` once removed), whatever other replicas did next. Runs
    /// under the write lock.
    pub(super) async fn take_own(
        &self,
        write: &WriteGuard,
        change: Change,
        revision: u64,
        clock: &dyn Clock,
    ) -> Result<Option<Hit>> {
        let (id, now) = (change.agent_id(), clock.now_millis());
        if revision == self.applied() + 1 {
            self.feed.push(apply_to_index(&self.index, change, revision, now));
            self.applied.send_replace(revision);
            return Ok(self.index.read().agent(id, now));
        }
        // Changes stored before it come first, and the log holds this one too; by now the
        // index may even hold later changes to the agent (a catch-up between storing a batch and
        // applying it), so the answer is made from the change itself.
        self.follow_log(write, revision).await?;
        let Change::Put { mut agent, seen, .. } = change else {
            return Ok(None);
        };
        agent.revision = revision;
        let index = self.index.read();
        Ok(Some(match index.agent(id, now) {
            Some(hit) if hit.revision() == revision => hit,
            _ => index.prepare(&agent, &seen).hit(now),
        }))
    }

    /// Appends a liveness event to the change log, under the write lock so that revisions stay
    /// in order, and moves the index's applied revision past it.
    pub(super) async fn append_liveness(&self, event: LivenessChange) -> Result<()> {
        let write = self.lock().await;
        let Some(revision) = self.store.append_event(&event).await? else {
            return Ok(());
        };
        self.take_stored(&write, revision, || event.logged(revision)).await
    }
}

impl AgentRegistry {
    /// Brings the index up to date with changes other replicas stored. Returns how many
    /// changes were applied.
    pub async fn follow(&self) -> Result<usize> {
        let mut write = self.replica.lock().await;
        let followed = self.follow_locked(&mut write).await?;
        drop(write);
        self.follow_keys().await?;
        Ok(followed)
    }

    /// Announces changes stored by any replica (`None`: this process is the only writer).
    pub fn change_signal(&self) -> Option<Arc<ChangeSignal>> {
        self.replica.store.change_signal()
    }

    /// Revisions other replicas stored that this one has not applied yet (0 when this process
    /// is the only writer).
    pub fn change_log_lag(&self) -> u64 {
        self.change_signal().map_or(0, |signal| signal.latest().saturating_sub(self.applied_revision()))
    }

    /// Whether endpoints' last-seen times live in a store shared with other replicas (Redis).
    pub fn liveness_is_shared(&self) -> bool {
        self.liveness.is_shared()
    }

    /// Follows the revision the index has applied: it moves after every change, local or made
    /// through another replica.
    pub fn watch_revision(&self) -> tokio::sync::watch::Receiver<u64> {
        self.replica.applied.subscribe()
    }

    /// Up to `limit` changes after revision `after`, in revision order: from memory when they
    /// are recent, else from the store's change log.
    pub async fn changes_after(&self, after: u64, limit: usize) -> Result<Vec<Arc<LoggedChange>>> {
        if let Some(recent) = self.replica.feed.after(after, limit) {
            return Ok(recent);
        }
        Ok(self.replica.store.changes_since(after, limit).await?.into_iter().map(Arc::new).collect())
    }

    /// The oldest revision the change log holds: a watcher behind it may have missed changes.
    pub async fn oldest_change(&self) -> Result<Option<u64>> {
        self.replica.store.oldest_change().await
    }

    /// The last revision the index has applied.
    pub fn applied_revision(&self) -> u64 {
        self.replica.applied()
    }

    pub(super) async fn follow_locked(&self, write: &mut WriteGuard) -> Result<usize> {
        let followed = self.replica.follow_log(write, u64::MAX).await?;
        self.sync.lock().store = Instant::now();
        Ok(followed)
    }

    /// Takes the write lock; with `catch_up`, first applies other replicas' changes. A write
    /// does not need to: the store refuses one made from an outdated view, and the retry
    /// catches up (as do the checks below when the index may be behind).
    pub(super) async fn lock_writer(&self, catch_up: bool) -> Result<WriteGuard> {
        // Behind a write the database is slow to answer, a request waits no longer than for
        // the database itself.
        let wait = self.config.write_wait;
        let outages = self.replica.store.outages();
        let mut write = tokio::time::timeout(wait, self.replica.lock()).await.map_err(|_| {
            RegistryError::storage_unavailable(format!("writes are queued behind a slow database for over {wait:?}"))
        })?;
        // The database failed a call as an outage while this one queued: trying now would wait
        // out a second bound, so the answer is the one that call got.
        if self.replica.store.outages() != outages {
            return Err(RegistryError::storage_unavailable(
                "the database failed the calls queued before this write; retry".to_owned(),
            ));
        }
        let in_doubt = self.replica.in_doubt.swap(false, Ordering::AcqRel);
        if (catch_up && self.shared_store) || in_doubt {
            self.follow_locked(&mut write).await.inspect_err(|_| {
                self.replica.in_doubt.fetch_or(in_doubt, Ordering::AcqRel);
            })?;
        }
        Ok(write)
    }

    /// Whether a failed write may have been stored, so the index may miss it until it reads
    /// the change log back.
    pub(super) fn in_doubt(&self) -> bool {
        self.replica.in_doubt.load(Ordering::Acquire)
    }

    /// Before a read says an agent or endpoint does not exist, makes sure this replica is not
    /// merely behind the others: when the store holds newer changes than the index, they are
    /// applied first. When the store cannot say, the read fails as an outage (503), never as a
    /// wrong "not found".
    pub(super) async fn catch_up_unless(&self, known: impl Fn(&Index) -> bool) -> Result<()> {
        if !self.shared_store || known(&self.replica.index.read()) {
            return Ok(());
        }
        let newest = self.replica.store.current_revision().await?;
        if newest > self.replica.applied() {
            let mut write = self.lock_writer(false).await?;
            // Another read may have caught up while this one waited.
            if newest > self.replica.applied() {
                self.follow_locked(&mut write).await?;
            }
        }
        Ok(())
    }

    /// Catches up with other replicas when `doubt` says the index may be behind them.
    pub(super) async fn catch_up_if(&self, write: &mut WriteGuard, doubt: bool) -> Result<()> {
        if doubt && self.shared_store {
            self.follow_locked(write).await?;
        }
        Ok(())
    }

    /// Applies a change that keeps the agent, and returns the agent as it left it. New
    /// endpoints' first sighting is stored with the change itself (and is their creation time,
    /// which every replica falls back to), so the liveness store is not touched here.
    pub(super) async fn commit(
        &self,
        write: WriteGuard,
        change: Change,
        note: &AuditNote,
        charge: Usage,
    ) -> Result<Hit> {
        let id = change.agent_id();
        self.apply(write, change, note, charge).await?.ok_or_else(|| RegistryError::AgentNotFound(id.to_string()))
    }
}

/// Applies a change this replica stored, at the revision it was given; returns it as the change
/// log holds it.
fn apply_to_index(index: &RwLock<Index>, change: Change, revision: u64, at: Millis) -> LoggedChange {
    let kind = change.kind();
    match change {
        Change::Put { mut agent, seen, .. } => {
            agent.revision = revision;
            // Rendered under the read lock: readers wait only while the entry is swapped in.
            let prepared = index.read().prepare(&agent, &seen);
            index.write().upsert_prepared(prepared);
            LoggedChange { revision, agent_id: agent.id, kind, agent: Some(*agent), at, endpoint_id: None }
        }
        Change::Delete { agent_id, .. } => {
            index.write().remove(agent_id);
            LoggedChange { revision, agent_id, kind, agent: None, at, endpoint_id: None }
        }
    }
}
