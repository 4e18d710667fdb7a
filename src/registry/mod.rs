//! The registry's use-cases. Every write is decided in turn under the write lock, stored with
//! the writes decided while the previous batch was stored (group commit: one transaction, each
//! write an atomic change with the next revision), and only then applied to the in-memory index,
//! so a failed write leaves nothing behind. Reads and heartbeats never wait for a write to be
//! stored.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::{Duration, Instant};

use parking_lot::RwLock;

use crate::auth::KeyRing;
use crate::clock::Clock;
use crate::error::{RegistryError, Result};
use crate::index::{Hit, Index, Prepared, SearchPage};
use crate::liveness::{LivenessPolicy, Millis};
use crate::model::{AgentId, EndpointId};
use crate::ports::{AgentStore, LivenessStore, StoredAgent};
use crate::query::DiscoveryQuery;
use crate::render::Privacy;

/// Settings of the use-cases.
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    pub liveness: LivenessPolicy,
    /// How long an `Idempotency-Key` is remembered.
    pub idempotency_retention_secs: i64,
    /// How long the change log keeps a change (replicas and watches replay from it).
    pub change_retention_secs: i64,
    /// How long the audit trail keeps an event.
    pub audit_retention_secs: i64,
    /// How often a replica reads back touches other replicas made in a shared liveness store.
    pub liveness_sync: Duration,
    /// How often a replica reads a shared store's change log even without a notification.
    pub follow_interval: Duration,
    /// Longest a write waits for the writes before it (each bounded by the store's own bound).
    pub write_wait: Duration,
    /// What an owner may keep registered unless its key says otherwise.
    pub quota: crate::quota::Quota,
    /// What anonymous callers may not see.
    pub privacy: Privacy,
    /// The names an agent stored without any (registered before names were claimed) holds:
    /// derived by the protocol adapters when the index is loaded, so that none is granted twice.
    pub legacy_claims: fn(&crate::model::Agent) -> Vec<crate::claim::NameClaim>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            liveness: LivenessPolicy::default(),
            idempotency_retention_secs: 24 * 3600,
            change_retention_secs: 7 * 24 * 3600,
            audit_retention_secs: 90 * 24 * 3600,
            liveness_sync: Duration::from_millis(250),
            follow_interval: Duration::from_secs(1),
            write_wait: Duration::from_secs(2),
            quota: crate::quota::Quota::default(),
            privacy: Privacy::default(),
            legacy_claims: |_| Vec::new(),
        }
    }
}

impl RegistryConfig {
    /// Without a successful read of a shared liveness store for this long, discovery refuses
    /// to answer rather than answer wrongly.
    fn liveness_stale_after(&self) -> Duration {
        (self.liveness_sync * 8).max(Duration::from_secs(2))
    }
}

/// Whether a registration created the agent or replayed an earlier identical one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Registration {
    Created,
    Replayed,
}

/// Who is asking and under which idempotency key.
#[derive(Clone, Debug, Default)]
pub struct RegisterOptions {
    pub idempotency_key: Option<String>,
}

/// The registry's use-cases over one store, one liveness store and one clock.
pub struct AgentRegistry {
    /// The store, the index kept in step with it, and the write lock.
    replica: Replica,
    /// Stores decided writes in batches.
    committer: Committer,
    liveness: Arc<dyn LivenessStore>,
    clock: Arc<dyn Clock>,
    config: RegistryConfig,
    /// Recent discovery answers.
    answers: parking_lot::Mutex<Answers>,
    /// Other replicas write to the same store: follow its change log before each write.
    shared_store: bool,
    sync: parking_lot::Mutex<SyncState>,
    /// Every API key, for authentication without a database call.
    keys: RwLock<KeyRing>,
    /// Leases that ended up to this time have been audited.
    expiries_seen_until: AtomicI64,
    /// The use of each revoked key is audited and logged at most once a minute.
    revoked_uses: crate::throttle::Throttle<uuid::Uuid>,
}

/// How recently this replica caught up with what other replicas did.
pub(super) struct SyncState {
    /// Last time the index caught up with the store's change log.
    store: Instant,
    /// Last successful read of a shared liveness store; `None` after a failed one.
    liveness: Option<Instant>,
    /// Touches from this time on (less a margin for in-flight ones) are read next time.
    liveness_cursor: Millis,
    /// When reading a shared liveness store started failing (`None` while it works).
    liveness_lost_at: Option<Millis>,
}

impl AgentRegistry {
    /// Loads every stored agent into the index.
    pub async fn open(
        store: Arc<dyn AgentStore>,
        liveness: Arc<dyn LivenessStore>,
        clock: Arc<dyn Clock>,
        config: RegistryConfig,
    ) -> Result<Self> {
        // Changes stored while loading are replayed from here afterwards.
        let applied = store.current_revision().await?;
        let liveness_cursor = clock.now_millis();
        // Reading the next page overlaps with indexing this one.
        let (pages, mut incoming) = tokio::sync::mpsc::channel::<Result<Vec<StoredAgent>>>(2);
        let reader = store.clone();
        let reading = tokio::spawn(async move {
            let mut after = None;
            loop {
                let page = reader.load_page(after, LOAD_PAGE).await;
                let done = page.as_ref().map_or(true, Vec::is_empty);
                after = page.as_ref().ok().and_then(|p| p.last()).map(|s| s.agent.id);
                if pages.send(page).await.is_err() || done {
                    break;
                }
            }
        });
        let mut index = Index::new(config.liveness.clone(), config.privacy.clone());
        while let Some(page) = incoming.recv().await {
            let mut page = page?;
            // Stored last-seen times, raised to what the liveness store knows. An endpoint with
            // no record at all counts as seen when it was created (Prepared::new): it can only
            // look older than it is, never younger.
            let ids: Vec<EndpointId> = page.iter().flat_map(|s| s.agent.endpoints.iter().map(|e| e.id)).collect();
            let known = liveness.last_seen(&ids).await?;
            let mut fresher: HashMap<EndpointId, Millis> =
                ids.into_iter().zip(known).filter_map(|(id, t)| t.map(|t| (id, t))).collect();
            for s in &mut page {
                for (id, t) in &mut s.last_seen {
                    if let Some(newer) = fresher.remove(id) {
                        *t = (*t).max(newer);
                    }
                }
                s.last_seen.extend(s.agent.endpoints.iter().filter_map(|e| fresher.remove(&e.id).map(|t| (e.id, t))));
                if s.agent.claims.is_empty() {
                    s.agent.claims = (config.legacy_claims)(&s.agent);
                }
            }
            for prepared in prepare_in_parallel(&config, page) {
                index.insert(prepared);
            }
        }
        reading.await.map_err(|e| RegistryError::internal_from("loading agents failed", e))?;
        store.finished_loading().await;
        let shared_store = store.change_signal().is_some();
        let replica = Replica::new(store, index, applied);
        let registry = Self {
            shared_store,
            committer: Committer::start(replica.clone(), clock.clone()),
            replica,
            liveness,
            clock,
            config,
            keys: RwLock::default(),
            revoked_uses: crate::throttle::Throttle::per_minute(),
            expiries_seen_until: AtomicI64::new(liveness_cursor),
            answers: Default::default(),
            sync: parking_lot::Mutex::new(SyncState {
                store: Instant::now(),
                liveness: Some(Instant::now()),
                liveness_cursor,
                liveness_lost_at: None,
            }),
        };
        // Changes stored while loading, and every API key.
        registry.follow().await?;
        Ok(registry)
    }

    pub fn now_millis(&self) -> Millis {
        self.clock.now_millis()
    }

    pub fn agent_count(&self) -> usize {
        self.replica.index.read().len()
    }

    /// Agents and endpoints in this replica's index now, and how many of them are live.
    pub fn census(&self) -> crate::index::Census {
        let now = self.clock.now_millis();
        self.replica.index.read().census(now)
    }

    /// The agent, as a reader asks for it: an agent stored through another replica moments ago
    /// is found, not answered 404 (see [`AgentRegistry::catch_up_unless`]).
    pub async fn find(&self, id: AgentId) -> Result<Hit> {
        self.catch_up_unless(|index| index.agent(id, 0).is_some()).await?;
        self.get(id)
    }

    /// The agent as this replica's index holds it now.
    pub fn get(&self, id: AgentId) -> Result<Hit> {
        let now = self.clock.now_millis();
        self.replica.index.read().agent(id, now).ok_or_else(|| RegistryError::AgentNotFound(id.to_string()))
    }

    /// Answers a discovery query for a reader; an anonymous one may not filter by what is
    /// hidden from them.
    pub fn search_as(&self, anonymous: bool, query: &DiscoveryQuery) -> Result<SearchPage> {
        if anonymous {
            self.config.privacy.allows_anonymous(query)?;
        }
        self.search(query)
    }

    /// Answers a discovery query. Answers are remembered per query (whatever the page) for as
    /// long as they hold, so paging and popular queries do not re-evaluate every match.
    pub fn search(&self, query: &DiscoveryQuery) -> Result<SearchPage> {
        self.ensure_liveness_known()?;
        let now = self.clock.now_millis();
        let index = self.replica.index.read();
        let key = query.answer_key();
        let remembered = self.answers.lock().get(&key).filter(|m| index.still_valid(m, now));
        if let Some(page) = remembered.and_then(|m| index.page(&m, query, now)) {
            return Ok(page);
        }
        let matches = index.matches(query, now);
        let page = index.search_in(&matches, query, now);
        self.answers.lock().remember(key, Arc::new(matches.first(Answers::KEPT_PER_ANSWER)));
        Ok(page)
    }

    /// An agent known by `name` within `namespace`: the holder of that name; else an agent
    /// labelled `namespace: name` (registered without claiming it); else one with an endpoint or
    /// a document of `protocol`, found through the words of `name`, that `known_as` accepts (a
    /// name derived by the protocol's own rules). Every step is an index lookup.
    pub fn find_named(
        &self,
        namespace: &str,
        name: &str,
        protocol: crate::model::Protocol,
        known_as: impl Fn(&crate::model::Agent) -> bool,
    ) -> Result<Option<Hit>> {
        let claim = crate::claim::NameClaim::new(namespace, name);
        {
            let index = self.replica.index.read();
            if let Some(holder) = index.claim_holder(&claim) {
                return Ok(index.agent(holder, self.clock.now_millis()));
            }
        }
        let mut labelled = DiscoveryQuery::all(false);
        labelled.labels = vec![(claim.namespace, claim.name)];
        labelled.page_size = 1;
        if let Some(hit) = self.search(&labelled)?.hits.into_iter().next() {
            return Ok(Some(hit));
        }
        // All the words first; then each alone, since a derived name may have lost what makes
        // another word match (an accent folded: `bucher` does not start `bücher`).
        let words = crate::query::words(name);
        // A one-word name asks the same query alone: once is enough.
        let alone = words.iter().filter(|_| words.len() > 1).map(|w| vec![w.clone()]);
        for words in std::iter::once(words.clone()).chain(alone).filter(|w| !w.is_empty()) {
            let mut worded = DiscoveryQuery::all(false);
            worded.words = words;
            worded.protocols = vec![protocol];
            worded.with_documents = true;
            worded.page_size = usize::MAX / 2;
            let found = self.search(&worded)?.hits.into_iter().find(|hit| hit.agent().is_ok_and(|a| known_as(&a)));
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// Live agents ranked against a free-text task (see `Index::rank_for_task`).
    pub fn rank_for_task(
        &self,
        task: &str,
        protocol: Option<crate::model::Protocol>,
        limit: usize,
    ) -> Result<Vec<crate::index::Ranked>> {
        self.ensure_liveness_known()?;
        Ok(self.replica.index.read().rank_for_task(task, protocol, self.clock.now_millis(), limit))
    }

    /// The capability projection: each capability with its agents and live endpoints.
    pub fn capability_summary(
        &self,
        prefix: Option<&str>,
        live_only: bool,
    ) -> Result<Vec<crate::index::CapabilitySummary>> {
        self.ensure_liveness_known()?;
        Ok(self.replica.index.read().capability_summary(prefix, live_only, self.clock.now_millis()))
    }

    /// How long since the index last caught up with a store other replicas write to, when
    /// that is longer than following normally takes (the store is unreachable). `None` while
    /// the index is current, and always when this process is the store's only writer.
    pub fn staleness(&self) -> Option<Duration> {
        if !self.shared_store {
            return None;
        }
        let age = self.sync.lock().store.elapsed();
        (age > self.config.follow_interval * 2 + Duration::from_secs(1)).then_some(age)
    }

    /// Readiness of both backing stores.
    pub async fn check(&self) -> (Result<()>, Result<()>) {
        (self.replica.store.ping().await, self.liveness.ping().await)
    }

    /// How much room the store takes.
    pub async fn store_sizes(&self) -> Result<crate::ports::StoreSizes> {
        self.replica.store.sizes().await
    }

    /// The settings the registry runs with.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// Makes pending liveness durable; called at shutdown.
    pub async fn flush(&self) -> Result<()> {
        self.liveness.flush().await
    }

    /// Stops for good: makes pending liveness durable, then closes the store (an embedded
    /// database is left whole in its main file). Called last at shutdown.
    pub async fn close(&self) -> Result<()> {
        let flushed = self.liveness.flush().await;
        self.replica.store.close().await;
        flushed
    }

    /// Writes a consistent copy of the database to a new file and returns its path (see
    /// [`AgentStore::snapshot`]); `None` when the store is backed up by its own tools.
    pub async fn snapshot(&self) -> Result<Option<std::path::PathBuf>> {
        self.replica.store.snapshot().await
    }
}

mod answers;
mod commit;
mod feed;
mod keys;
mod liveness;
mod replication;
mod upkeep;
mod write;

use answers::Answers;
use commit::Committer;
pub use keys::KeyRequest;
use replication::Replica;

/// Stored agents read (and prepared) at a time at start-up.
const LOAD_PAGE: usize = 5_000;

/// Renders and analyses stored agents on every core; start-up time is dominated by this.
fn prepare_in_parallel(config: &RegistryConfig, stored: Vec<StoredAgent>) -> Vec<Prepared> {
    crate::parallel::map(&stored, |s| Prepared::new(&config.liveness, &config.privacy, &s.agent, &s.last_seen))
}
