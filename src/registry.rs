//! The registry's use-cases. Every write is serialised, stored as one atomic change with the
//! next revision, and only then applied to the in-memory index, so a failed write leaves
//! nothing behind. Reads and heartbeats never wait for a write to be stored.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::audit::{AuditNote, NewEvent};
use crate::auth::{Caller, KeyRing};
use crate::clock::Clock;
use crate::error::{RegistryError, Result};
use crate::index::{Hit, Index, Matches, Prepared, SearchPage};
use crate::input::{AgentInput, EndpointInput, ensure_unique_endpoints};
use crate::liveness::{LivenessPolicy, Millis};
use crate::model::{Agent, AgentId, EndpointId, LivenessModel};
use crate::ports::{
    AgentStore, Change, ChangeKind, ChangeSignal, IdempotencyRecord, LivenessChange, LivenessStore, LoggedChange,
    StoredAgent,
};
use crate::query::DiscoveryQuery;
use crate::render::Privacy;
use crate::view::LivenessView;

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
    /// What anonymous callers may not see.
    pub privacy: Privacy,
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
            privacy: Privacy::default(),
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

/// Holds the write lock.
type WriteGuard = tokio::sync::OwnedMutexGuard<()>;

pub struct Registry {
    store: Arc<dyn AgentStore>,
    liveness: Arc<dyn LivenessStore>,
    clock: Arc<dyn Clock>,
    config: RegistryConfig,
    index: Arc<RwLock<Index>>,
    /// Recent discovery answers.
    answers: parking_lot::Mutex<Answers>,
    /// Serialises this process's writes so the index applies changes in revision order.
    writer: Arc<tokio::sync::Mutex<()>>,
    /// The last revision the index has applied (changed only under the write lock); watchers
    /// (MCP list-changed notifications, live watches) subscribe to it.
    applied: Arc<tokio::sync::watch::Sender<u64>>,
    /// The changes applied lately, for watchers.
    feed: Arc<feed::Feed>,
    /// Other replicas write to the same store: follow its change log before each write.
    shared_store: bool,
    sync: parking_lot::Mutex<SyncState>,
    /// Every API key, for authentication without a database call.
    keys: RwLock<KeyRing>,
    /// Leases that ended up to this time have been audited.
    expiries_seen_until: AtomicI64,
    /// When the use of each revoked key was last audited.
    revoked_uses: parking_lot::Mutex<HashMap<uuid::Uuid, Millis>>,
}

/// How recently this replica caught up with what other replicas did.
struct SyncState {
    /// Last time the index caught up with the store's change log.
    store: Instant,
    /// Last successful read of a shared liveness store; `None` after a failed one.
    liveness: Option<Instant>,
    /// Touches from this time on (less a margin for in-flight ones) are read next time.
    liveness_cursor: Millis,
}

/// Touches are read back from a little before the previous read, so a heartbeat stamped just
/// before that read but stored just after it is not missed.
const LIVENESS_MARGIN_MILLIS: Millis = 500;
/// Changes read from the change log at a time.
const FOLLOW_PAGE: usize = 1_000;
/// Tries of a write that meets concurrent changes from other replicas.
const WRITE_ATTEMPTS: u32 = 10;

impl Registry {
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
            }
            for prepared in prepare_in_parallel(&config, page) {
                index.insert(prepared);
            }
        }
        reading.await.map_err(|e| RegistryError::Internal(format!("loading agents failed: {e}")))?;
        store.finished_loading().await;
        let registry = Self {
            shared_store: store.change_signal().is_some(),
            store,
            liveness,
            clock,
            config,
            index: Arc::new(RwLock::new(index)),
            keys: RwLock::default(),
            revoked_uses: Default::default(),
            expiries_seen_until: AtomicI64::new(liveness_cursor),
            answers: Default::default(),
            writer: Arc::default(),
            applied: Arc::new(tokio::sync::watch::Sender::new(applied)),
            feed: Arc::new(feed::Feed::new(applied)),
            sync: parking_lot::Mutex::new(SyncState {
                store: Instant::now(),
                liveness: Some(Instant::now()),
                liveness_cursor,
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
        self.index.read().len()
    }

    pub fn get(&self, id: AgentId) -> Result<Hit> {
        let now = self.clock.now_millis();
        self.index.read().agent(id, now).ok_or_else(|| RegistryError::AgentNotFound(id.to_string()))
    }

    /// Answers a discovery query. Answers are remembered per query (whatever the page) for as
    /// long as they hold, so paging and popular queries do not re-evaluate every match.
    pub fn search(&self, query: &DiscoveryQuery) -> Result<SearchPage> {
        self.ensure_liveness_known()?;
        let now = self.clock.now_millis();
        let index = self.index.read();
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

    /// Live agents ranked against a free-text task (see `Index::rank_for_task`).
    pub fn rank_for_task(
        &self,
        task: &str,
        protocol: Option<crate::model::Protocol>,
        limit: usize,
    ) -> Result<Vec<crate::index::Ranked>> {
        self.ensure_liveness_known()?;
        Ok(self.index.read().rank_for_task(task, protocol, self.clock.now_millis(), limit))
    }

    /// The capability projection: each capability with its agents and live endpoints.
    pub fn capability_summary(
        &self,
        prefix: Option<&str>,
        live_only: bool,
    ) -> Result<Vec<crate::index::CapabilitySummary>> {
        self.ensure_liveness_known()?;
        Ok(self.index.read().capability_summary(prefix, live_only, self.clock.now_millis()))
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

    /// Liveness answers must be exact: with a shared liveness store that could not be read
    /// lately, other replicas' heartbeats are unknown.
    fn ensure_liveness_known(&self) -> Result<()> {
        if !self.liveness.is_shared() {
            return Ok(());
        }
        match self.sync.lock().liveness {
            Some(at) if at.elapsed() <= self.config.liveness_stale_after() => Ok(()),
            _ => Err(RegistryError::LivenessUnavailable(
                "heartbeats recorded by other replicas cannot be read right now".into(),
            )),
        }
    }

    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn register(
        &self,
        caller: &Caller,
        input: &AgentInput,
        options: &RegisterOptions,
    ) -> Result<(Hit, Registration)> {
        let now = self.clock.now();
        let (spec, requested_owner, endpoints) = input.to_registration(&self.config.liveness, now)?;
        let owner = match requested_owner {
            Some(owner) if owner != caller.owner => {
                caller.require_admin().map_err(|_| {
                    RegistryError::Forbidden("an Agent credential registers agents for its own owner id only".into())
                })?;
                owner
            }
            _ => caller.owner.clone(),
        };
        let request_hash = hash_request(input);
        // A retry (same key or same client-chosen id, same body) gets the first result back.
        let key = options.idempotency_key.clone().or_else(|| input.id.map(|id| format!("agent-id:{id}")));
        let id = input.id.unwrap_or_else(AgentId::new_random);
        let now_ms = now.timestamp_millis();
        let mut attempt = 1;
        loop {
            let mut write = self.lock_writer(attempt > 1).await?;
            if let Some(key) = &key
                && let Some(record) = self.store.find_idempotency(&owner, key).await?
            {
                if record.request_hash != request_hash {
                    return Err(match input.id {
                        Some(id) if options.idempotency_key.is_none() => RegistryError::AgentExists(id.to_string()),
                        _ => RegistryError::IdempotencyKeyReused,
                    });
                }
                // Registered through another replica moments ago, perhaps.
                self.catch_up_if(&mut write, self.get(record.agent_id).is_err()).await?;
                return Ok((self.get(record.agent_id)?, Registration::Replayed));
            }
            let exists = || self.index.read().agent(id, 0).is_some();
            // Perhaps removed through another replica moments ago.
            self.catch_up_if(&mut write, exists()).await?;
            if exists() {
                return Err(RegistryError::AgentExists(id.to_string()));
            }
            let agent = spec.to_agent(id, owner.clone(), endpoints.clone(), now);
            let seen: Vec<_> = agent.endpoints.iter().map(|e| (e.id, now_ms)).collect();
            let idempotency = key.clone().map(|key| IdempotencyRecord {
                owner_id: owner.clone(),
                key,
                request_hash: request_hash.clone(),
                agent_id: id,
                created_at: now_ms,
            });
            let note = caller.note(describe(ChangeKind::Registered, None, &agent));
            let change =
                Change::Put { agent: Box::new(agent), kind: ChangeKind::Registered, seen, idempotency, expected: None };
            let result = self.commit(write, change, &note).await;
            if !try_again(&result, &mut attempt).await {
                return result.map(|hit| (hit, Registration::Created));
            }
        }
    }

    /// Replaces the descriptive fields; capabilities are replaced when given and kept when
    /// absent; endpoints are never touched.
    #[tracing::instrument(level = "debug", skip_all, fields(agent.id = %id))]
    pub async fn update(&self, caller: &Caller, id: AgentId, input: &AgentInput, if_match: Option<u64>) -> Result<Hit> {
        if input.id.is_some_and(|given| given != id) {
            return Err(RegistryError::field("/id", "does not match the agent id in the path"));
        }
        let now = self.clock.now();
        let edit = |agent: &mut Agent| {
            let spec = input.to_spec(&agent.capabilities)?;
            agent.name = spec.name;
            agent.description = spec.description;
            agent.version = spec.version;
            agent.tags = spec.tags;
            agent.labels = spec.labels;
            if let Some(caps) = spec.capabilities {
                agent.capabilities = caps;
            }
            agent.metadata = spec.metadata;
            agent.permanent = spec.permanent;
            // The agent no longer is what its protocol document says; documents are built
            // from the domain from now on.
            agent.origin = spec.origin;
            agent.updated_at = now;
            Ok(())
        };
        self.modify(caller, id, if_match, ChangeKind::Updated, &[], edit).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(agent.id = %id))]
    pub async fn deregister(&self, caller: &Caller, id: AgentId, if_match: Option<u64>) -> Result<()> {
        let mut attempt = 1;
        loop {
            let mut write = self.lock_writer(attempt > 1).await?;
            let current = self.current_for_write(&mut write, caller, id, if_match).await?;
            let change = Change::Delete { agent_id: id, kind: ChangeKind::Deregistered, expected: current.revision };
            let note = caller.note(format!("deregistered `{}`", current.name));
            let result = self.apply(write, change, &note).await;
            if !try_again(&result, &mut attempt).await {
                result?;
                let ids: Vec<EndpointId> = current.endpoints.iter().map(|e| e.id).collect();
                self.forget_liveness(&ids).await;
                return Ok(());
            }
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(agent.id = %id))]
    pub async fn add_endpoint(
        &self,
        caller: &Caller,
        id: AgentId,
        input: &EndpointInput,
        if_match: Option<u64>,
    ) -> Result<(Hit, EndpointId)> {
        let now = self.clock.now();
        let endpoint = input.to_endpoint(&self.config.liveness, EndpointId::new_random(), now)?;
        let endpoint_id = endpoint.id;
        let edit = |agent: &mut Agent| {
            if agent.endpoints.len() >= crate::input::limits::ENDPOINTS {
                return Err(RegistryError::field(
                    "/",
                    format!("the agent already has {} endpoints, the limit", crate::input::limits::ENDPOINTS),
                ));
            }
            agent.endpoints.push(endpoint.clone());
            ensure_unique_endpoints(&agent.endpoints, "").map_err(point_at_body_name)?;
            agent.origin = None;
            agent.updated_at = now;
            Ok(())
        };
        let seen = [(endpoint_id, now.timestamp_millis())];
        Ok((self.modify(caller, id, if_match, ChangeKind::EndpointAdded, &seen, edit).await?, endpoint_id))
    }

    /// Replaces an endpoint's settings, keeping its id and when it was last seen.
    #[tracing::instrument(level = "debug", skip_all, fields(agent.id = %id))]
    pub async fn update_endpoint(
        &self,
        caller: &Caller,
        id: AgentId,
        endpoint_id: EndpointId,
        input: &EndpointInput,
        if_match: Option<u64>,
    ) -> Result<Hit> {
        let now = self.clock.now();
        let edit = |agent: &mut Agent| {
            let created_at = agent.endpoint(endpoint_id).ok_or_else(|| endpoint_not_found(id, endpoint_id))?.created_at;
            let endpoint = input.to_endpoint(&self.config.liveness, endpoint_id, created_at)?;
            for e in &mut agent.endpoints {
                if e.id == endpoint_id {
                    *e = endpoint.clone();
                }
            }
            ensure_unique_endpoints(&agent.endpoints, "").map_err(point_at_body_name)?;
            agent.origin = None;
            agent.updated_at = now;
            Ok(())
        };
        self.modify(caller, id, if_match, ChangeKind::EndpointUpdated, &[], edit).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(agent.id = %id))]
    pub async fn remove_endpoint(
        &self,
        caller: &Caller,
        id: AgentId,
        endpoint_id: EndpointId,
        if_match: Option<u64>,
    ) -> Result<Hit> {
        let now = self.clock.now();
        let edit = |agent: &mut Agent| {
            agent.endpoint(endpoint_id).ok_or_else(|| endpoint_not_found(id, endpoint_id))?;
            agent.endpoints.retain(|e| e.id != endpoint_id);
            agent.origin = None;
            agent.updated_at = now;
            Ok(())
        };
        let hit = self.modify(caller, id, if_match, ChangeKind::EndpointRemoved, &[], edit).await?;
        self.forget_liveness(&[endpoint_id]).await;
        Ok(hit)
    }
    /// Gives an agent to another owner (Admin only).
    #[tracing::instrument(level = "debug", skip_all, fields(agent.id = %id))]
    pub async fn transfer_owner(
        &self,
        caller: &Caller,
        id: AgentId,
        owner: &str,
        if_match: Option<u64>,
    ) -> Result<Hit> {
        caller.require_admin()?;
        let owner = crate::input::check_owner(owner)?;
        let now = self.clock.now();
        let edit = |agent: &mut Agent| {
            agent.owner_id.clone_from(&owner);
            agent.updated_at = now;
            Ok(())
        };
        self.modify(caller, id, if_match, ChangeKind::OwnerTransferred, &[], edit).await
    }

    /// Heartbeat of one Persistent endpoint.
    pub async fn heartbeat(&self, caller: &Caller, id: AgentId, endpoint_id: EndpointId) -> Result<LivenessView> {
        self.touch(caller, id, endpoint_id, LivenessModel::Persistent).await
    }

    /// Lease renewal of one Ephemeral endpoint.
    pub async fn renew(&self, caller: &Caller, id: AgentId, endpoint_id: EndpointId) -> Result<LivenessView> {
        self.touch(caller, id, endpoint_id, LivenessModel::Ephemeral).await
    }

    /// Heartbeat of every Persistent endpoint of an agent in one call.
    #[tracing::instrument(level = "debug", skip_all, fields(agent.id = %id))]
    pub async fn heartbeat_agent(&self, caller: &Caller, id: AgentId) -> Result<Vec<LivenessView>> {
        self.authorize(caller, id)?;
        let agent = self.get(id)?.agent()?;
        let persistent: Vec<EndpointId> =
            agent.endpoints.iter().filter(|e| e.liveness_model == LivenessModel::Persistent).map(|e| e.id).collect();
        if persistent.is_empty() {
            return Err(RegistryError::LivenessModelMismatch(format!(
                "agent {id} has no Persistent endpoints to heartbeat; renew its Ephemeral endpoints with \
                 POST /agents/{id}/endpoints/{{endpointId}}/renew"
            )));
        }
        let mut out = Vec::with_capacity(persistent.len());
        for endpoint_id in persistent {
            out.push(self.touch(caller, id, endpoint_id, LivenessModel::Persistent).await?);
        }
        Ok(out)
    }

    async fn touch(
        &self,
        caller: &Caller,
        id: AgentId,
        endpoint_id: EndpointId,
        model: LivenessModel,
    ) -> Result<LivenessView> {
        self.authorize(caller, id)?;
        let (actual, lease) = {
            let index = self.index.read();
            let found = index.endpoint(id, endpoint_id).ok_or_else(|| self.missing(&index, id, endpoint_id))?;
            (found.model, found.lease)
        };
        if actual != model {
            return Err(RegistryError::LivenessModelMismatch(match actual {
                LivenessModel::Ephemeral => format!(
                    "endpoint {endpoint_id} uses Ephemeral liveness; renew its lease with \
                     POST /agents/{id}/endpoints/{endpoint_id}/renew instead"
                ),
                LivenessModel::Persistent => format!(
                    "endpoint {endpoint_id} uses Persistent liveness; send \
                     POST /agents/{id}/endpoints/{endpoint_id}/heartbeat instead"
                ),
            }));
        }
        let now = self.clock.now_millis();
        self.liveness.touch(endpoint_id, now, lease).await?;
        let Some(revived) = self.index.read().touch(endpoint_id, now) else {
            // Evicted or removed while we were recording the touch.
            return Err(endpoint_not_found(id, endpoint_id));
        };
        if revived {
            let note = caller.note(format!("endpoint {endpoint_id} is live again"));
            let event =
                NewEvent { at: now, action: "endpoint_live", agent_id: Some(id), key_id: None, note, dedupe: None };
            // Off the request path: a heartbeat never waits for the database.
            self.audit_later(event);
            if let Some(logging) = self.log_liveness(id, endpoint_id, ChangeKind::BecameLive, now) {
                tokio::spawn(logging);
            }
        }
        Ok(LivenessView {
            endpoint_id,
            liveness_model: actual,
            is_live: true,
            last_seen_at: crate::clock::to_datetime(now),
            expires_at: crate::clock::to_datetime(now + lease),
        })
    }

    /// Evicts endpoints that have been dead long enough, and agents left without endpoints
    /// (unless permanent). Returns how many endpoints were evicted. Safe to run on every
    /// replica at once: each eviction is conditional on the agent's revision, and on a shared
    /// liveness store the endpoint's last touch is checked again first.
    pub async fn evict_stale(&self) -> Result<usize> {
        let now = self.clock.now_millis();
        let candidates = self.index.read().evictable(now);
        let mut by_agent: std::collections::BTreeMap<AgentId, Vec<(EndpointId, Millis)>> = Default::default();
        for (agent, endpoint, seen) in candidates {
            by_agent.entry(agent).or_default().push((endpoint, seen));
        }
        let mut evicted = 0;
        for (agent_id, endpoints) in by_agent {
            let write = self.lock_writer(false).await?;
            // Claim each endpoint; a heartbeat that got in first keeps it.
            let mut claimed: Vec<(EndpointId, Millis)> = {
                let index = self.index.read();
                endpoints.into_iter().filter(|(e, seen)| index.claim_for_eviction(*e, *seen)).collect()
            };
            if self.liveness.is_shared() && !claimed.is_empty() {
                claimed = self.confirm_unseen(claimed).await?;
            }
            if claimed.is_empty() {
                continue;
            }
            let Ok(hit) = self.get(agent_id) else {
                continue;
            };
            let mut agent = hit.agent()?;
            let expected = agent.revision;
            let names: Vec<String> = agent
                .endpoints
                .iter()
                .filter(|e| claimed.iter().any(|(id, _)| *id == e.id))
                .map(|e| format!("`{}`", e.name))
                .collect();
            agent.endpoints.retain(|e| !claimed.iter().any(|(id, _)| *id == e.id));
            let gone = agent.endpoints.is_empty() && !agent.permanent;
            let note = AuditNote::registry(format!(
                "evicted endpoint(s) {} (dead past the eviction limit){}",
                names.join(", "),
                if gone { "; the agent had no other endpoint and was removed" } else { "" }
            ));
            let change = if gone {
                Change::Delete { agent_id, kind: ChangeKind::Evicted, expected }
            } else {
                agent.updated_at = self.clock.now();
                Change::Put {
                    agent: Box::new(agent),
                    kind: ChangeKind::Evicted,
                    seen: Vec::new(),
                    idempotency: None,
                    expected: Some(expected),
                }
            };
            match self.apply(write, change, &note).await {
                Ok(_) => {
                    let ids: Vec<EndpointId> = claimed.iter().map(|(id, _)| *id).collect();
                    self.forget_liveness(&ids).await;
                    evicted += claimed.len();
                }
                Err(e) => {
                    let index = self.index.read();
                    for (id, seen) in &claimed {
                        index.release_claim(*id, *seen);
                    }
                    // Another replica changed or evicted the agent first: its change arrives
                    // through the change log.
                    if !matches!(e, RegistryError::StaleWrite(_)) {
                        return Err(e);
                    }
                }
            }
        }
        Ok(evicted)
    }

    /// Of endpoints claimed for eviction, those the shared liveness store has not seen since
    /// (a heartbeat through another replica may not have reached this index yet). The others
    /// are released with their newer time.
    async fn confirm_unseen(&self, claimed: Vec<(EndpointId, Millis)>) -> Result<Vec<(EndpointId, Millis)>> {
        let ids: Vec<EndpointId> = claimed.iter().map(|(id, _)| *id).collect();
        let known = match self.liveness.last_seen(&ids).await {
            Ok(known) => known,
            Err(e) => {
                let index = self.index.read();
                claimed.iter().for_each(|(id, seen)| index.release_claim(*id, *seen));
                return Err(e);
            }
        };
        let index = self.index.read();
        Ok(claimed
            .into_iter()
            .zip(known)
            .filter_map(|((id, seen), newer)| match newer {
                Some(t) if t > seen => {
                    index.release_claim(id, seen);
                    index.touch(id, t);
                    None
                }
                _ => Some((id, seen)),
            })
            .collect())
    }

    /// Periodic upkeep: eviction, durable liveness, forgetting old idempotency keys and
    /// change-log entries.
    pub async fn maintain(&self) -> Result<usize> {
        self.audit_expiries().await;
        let evicted = self.evict_stale().await?;
        self.liveness.flush().await?;
        let now = self.clock.now_millis();
        self.store.expire_idempotency(now - self.config.idempotency_retention_secs * 1000).await?;
        self.store.prune_changes(now - self.config.change_retention_secs * 1000).await?;
        self.store.prune_events(now - self.config.audit_retention_secs * 1000).await?;
        Ok(evicted)
    }

    /// Appends an `endpoint_expired` event for each lease that ended since the last look. Every
    /// replica notices the same expiries; the store records each once.
    async fn audit_expiries(&self) {
        let now = self.clock.now_millis();
        let after = self.expiries_seen_until.swap(now, Ordering::AcqRel);
        let expired = self.index.read().expired_between(after, now);
        for (agent, endpoint, at) in expired {
            let note = AuditNote::registry(format!("endpoint {endpoint} expired: not renewed or heartbeaten in time"));
            let dedupe = Some(format!("expired:{endpoint}:{at}"));
            let event = NewEvent { at, action: "endpoint_expired", agent_id: Some(agent), key_id: None, note, dedupe };
            self.audit(event).await;
            if let Some(logging) = self.log_liveness(agent, endpoint, ChangeKind::Expired, at) {
                logging.await;
            }
        }
    }

    /// Brings the index up to date with changes other replicas stored. Returns how many
    /// changes were applied.
    pub async fn follow(&self) -> Result<usize> {
        let mut write = self.writer.clone().lock_owned().await;
        let followed = self.follow_locked(&mut write).await?;
        drop(write);
        self.follow_keys().await?;
        Ok(followed)
    }

    /// Announces changes stored by any replica (`None`: this process is the only writer).
    pub fn change_signal(&self) -> Option<Arc<ChangeSignal>> {
        self.store.change_signal()
    }

    /// Follows the revision the index has applied: it moves after every change, local or made
    /// through another replica.
    pub fn watch_revision(&self) -> tokio::sync::watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// Up to `limit` changes after revision `after`, in revision order: from memory when they
    /// are recent, else from the store's change log.
    pub async fn changes_after(&self, after: u64, limit: usize) -> Result<Vec<Arc<LoggedChange>>> {
        if let Some(recent) = self.feed.after(after, limit) {
            return Ok(recent);
        }
        Ok(self.store.changes_since(after, limit).await?.into_iter().map(Arc::new).collect())
    }

    /// The oldest revision the change log holds: a watcher behind it may have missed changes.
    pub async fn oldest_change(&self) -> Result<Option<u64>> {
        self.store.oldest_change().await
    }

    /// Logging a liveness event of one endpoint (`None` once the agent is gone). The future owns
    /// what it needs, so it can be spawned off a request's path.
    fn log_liveness(
        &self,
        agent: AgentId,
        endpoint_id: EndpointId,
        kind: ChangeKind,
        at: Millis,
    ) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        let agent = self.index.read().agent(agent, at)?.agent().ok()?;
        let dedupe = format!("{}:{endpoint_id}:{at}", kind.as_str());
        let event = LivenessChange { agent, endpoint_id, kind, at, dedupe };
        let (store, index, applied) = (self.store.clone(), self.index.clone(), self.applied.clone());
        let (feed, writer) = (self.feed.clone(), self.writer.clone());
        Some(async move {
            if let Err(e) = append_liveness(store, index, applied, feed, writer, event).await {
                tracing::warn!(error = %e, kind = kind.as_str(), "could not log a liveness event");
            }
        })
    }

    /// The last revision the index has applied.
    pub fn applied_revision(&self) -> u64 {
        *self.applied.borrow()
    }

    async fn follow_locked(&self, _write: &mut WriteGuard) -> Result<usize> {
        let followed = follow_log(&*self.store, &self.index, &self.applied, &self.feed, u64::MAX).await?;
        self.sync.lock().store = Instant::now();
        Ok(followed)
    }

    /// Takes the write lock; with `catch_up`, first applies other replicas' changes. A write
    /// does not need to: the store refuses one made from an outdated view, and the retry
    /// catches up (as do the checks below when the index may be behind).
    async fn lock_writer(&self, catch_up: bool) -> Result<WriteGuard> {
        let mut write = self.writer.clone().lock_owned().await;
        if catch_up && self.shared_store {
            self.follow_locked(&mut write).await?;
        }
        Ok(write)
    }

    /// Catches up with other replicas when `doubt` says the index may be behind them.
    async fn catch_up_if(&self, write: &mut WriteGuard, doubt: bool) -> Result<()> {
        if doubt && self.shared_store {
            self.follow_locked(write).await?;
        }
        Ok(())
    }

    /// The agent a write starts from. An unknown agent, or a client that knows a newer
    /// revision, may mean a change through another replica has not reached this index yet.
    async fn current_for_write(
        &self,
        write: &mut WriteGuard,
        caller: &Caller,
        id: AgentId,
        if_match: Option<u64>,
    ) -> Result<Agent> {
        let current = self.authorize(caller, id).and_then(|()| self.current(id, if_match));
        let behind = matches!(current, Err(RegistryError::AgentNotFound(_) | RegistryError::Forbidden(_)))
            || matches!(current, Err(RegistryError::RevisionMismatch { expected, current }) if expected > current);
        if !behind {
            return current;
        }
        self.catch_up_if(write, true).await?;
        self.authorize(caller, id)?;
        self.current(id, if_match)
    }

    /// Whether the caller may manage the agent. To an Agent-scoped caller, someone else's agent
    /// and one that does not exist look the same.
    fn authorize(&self, caller: &Caller, id: AgentId) -> Result<()> {
        if caller.is_admin() || self.index.read().owned_by(id, &caller.owner) {
            Ok(())
        } else {
            Err(RegistryError::Forbidden(format!("agent {id} does not exist or belongs to another owner")))
        }
    }

    /// Reads back the touches other replicas made in a shared liveness store since the last
    /// read. Until this succeeds again after a failure, discovery answers 503.
    pub async fn sync_liveness(&self) -> Result<usize> {
        if !self.liveness.is_shared() {
            return Ok(0);
        }
        let started = self.clock.now_millis();
        let since = self.sync.lock().liveness_cursor - LIVENESS_MARGIN_MILLIS;
        match self.liveness.seen_since(since).await {
            Ok(seen) => {
                {
                    let index = self.index.read();
                    for (endpoint, at) in &seen {
                        index.touch(*endpoint, *at);
                    }
                }
                let mut sync = self.sync.lock();
                sync.liveness_cursor = started;
                sync.liveness = Some(Instant::now());
                Ok(seen.len())
            }
            Err(e) => {
                self.sync.lock().liveness = None;
                Err(e)
            }
        }
    }

    /// Readiness of both backing stores.
    pub async fn check(&self) -> (Result<()>, Result<()>) {
        (self.store.ping().await, self.liveness.ping().await)
    }

    /// Makes pending liveness durable; called at shutdown.
    pub async fn flush(&self) -> Result<()> {
        self.liveness.flush().await
    }

    /// The agent as it stands, if it is at the revision the caller expects.
    fn current(&self, id: AgentId, if_match: Option<u64>) -> Result<Agent> {
        let hit = self.get(id)?;
        match if_match {
            Some(expected) if expected != hit.revision() => {
                Err(RegistryError::RevisionMismatch { expected, current: hit.revision() })
            }
            _ => hit.agent(),
        }
    }

    fn missing(&self, index: &Index, id: AgentId, endpoint_id: EndpointId) -> RegistryError {
        if index.agent(id, 0).is_none() {
            RegistryError::AgentNotFound(id.to_string())
        } else {
            endpoint_not_found(id, endpoint_id)
        }
    }

    /// Edits an agent as it currently stands and stores the result; when another replica
    /// changed the agent in the meantime, catches up and edits again.
    async fn modify(
        &self,
        caller: &Caller,
        id: AgentId,
        if_match: Option<u64>,
        kind: ChangeKind,
        seen: &[(EndpointId, Millis)],
        edit: impl Fn(&mut Agent) -> Result<()>,
    ) -> Result<Hit> {
        let mut attempt = 1;
        loop {
            let mut write = self.lock_writer(attempt > 1).await?;
            let mut agent = self.current_for_write(&mut write, caller, id, if_match).await?;
            let (expected, before) = (agent.revision, agent.clone());
            edit(&mut agent)?;
            let note = caller.note(describe(kind, Some(&before), &agent));
            let change = Change::Put {
                agent: Box::new(agent),
                kind,
                seen: seen.to_vec(),
                idempotency: None,
                expected: Some(expected),
            };
            let result = self.commit(write, change, &note).await;
            if !try_again(&result, &mut attempt).await {
                return result;
            }
        }
    }

    /// Stores a change and applies it to the index as one step that runs to completion even if
    /// the caller goes away: a client that disconnects mid-request must not leave the store and
    /// the index apart. The write lock is held until the index has the change. Returns the agent
    /// as this change left it (`None` once removed), whatever other replicas did next.
    async fn apply(&self, write: WriteGuard, change: Change, note: &AuditNote) -> Result<Option<Hit>> {
        let (store, index, applied) = (self.store.clone(), self.index.clone(), self.applied.clone());
        let (clock, note, feed) = (self.clock.clone(), note.clone(), self.feed.clone());
        let task = tokio::spawn(async move {
            let _write = write;
            let (id, local) = (change.agent_id(), change.clone());
            let revision = store.apply(change, &note).await?;
            let logged = || apply_to_index(&mut index.write(), local, revision, clock.now_millis());
            take_stored(&*store, &index, &applied, &feed, revision, logged).await?;
            Ok(index.read().agent(id, clock.now_millis()))
        });
        let hit = task.await.map_err(|e| RegistryError::Internal(format!("a write task failed: {e}")))??;
        // The index holds every change up to this one.
        self.sync.lock().store = Instant::now();
        Ok(hit)
    }

    /// Applies a change that keeps the agent, and returns the agent as it left it. New
    /// endpoints' first sighting is stored with the change itself (and is their creation time,
    /// which every replica falls back to), so the liveness store is not touched here.
    async fn commit(&self, write: WriteGuard, change: Change, note: &AuditNote) -> Result<Hit> {
        let id = change.agent_id();
        self.apply(write, change, note).await?.ok_or_else(|| RegistryError::AgentNotFound(id.to_string()))
    }

    async fn forget_liveness(&self, ids: &[EndpointId]) {
        // Leftover liveness records of removed endpoints are harmless (they expire or are
        // ignored), so a failure here must not fail the change that was already stored.
        if let Err(e) = self.liveness.forget(ids).await {
            tracing::warn!(error = %e, "liveness store update failed after a stored change");
        }
    }
}

/// A one-line account of a change, for the audit trail.
fn describe(kind: ChangeKind, before: Option<&Agent>, after: &Agent) -> String {
    let endpoints = |a: &Agent| a.endpoints.iter().map(|e| (e.id, e.name.clone())).collect::<Vec<_>>();
    match (kind, before) {
        (ChangeKind::Registered, _) | (_, None) => format!(
            "registered `{}` with {} capabilities and {} endpoints",
            after.name,
            after.capabilities.len(),
            after.endpoints.len()
        ),
        (ChangeKind::OwnerTransferred, Some(b)) => format!("owner `{}` → `{}`", b.owner_id, after.owner_id),
        (ChangeKind::EndpointAdded | ChangeKind::EndpointRemoved | ChangeKind::EndpointUpdated, Some(b)) => {
            let (old, new) = (endpoints(b), endpoints(after));
            let added = new.iter().filter(|e| !old.contains(e)).map(|(_, n)| format!("+`{n}`"));
            let removed = old.iter().filter(|e| !new.contains(e)).map(|(_, n)| format!("-`{n}`"));
            let changed: Vec<String> = added.chain(removed).collect();
            if changed.is_empty() {
                "changed an endpoint's settings".into()
            } else {
                format!("endpoints {}", changed.join(" "))
            }
        }
        (_, Some(b)) => {
            let fields = [
                ("name", b.name != after.name),
                ("description", b.description != after.description),
                ("version", b.version != after.version),
                ("tags", b.tags != after.tags),
                ("labels", b.labels != after.labels),
                ("capabilities", b.capabilities != after.capabilities),
                ("metadata", b.metadata != after.metadata),
                ("permanent", b.permanent != after.permanent),
            ];
            let changed: Vec<&str> = fields.iter().filter(|(_, c)| *c).map(|(f, _)| *f).collect();
            if changed.is_empty() { "no field changed".into() } else { format!("changed {}", changed.join(", ")) }
        }
    }
}

/// Whether a write that met another replica's concurrent change should be made again from the
/// new state. A short pause, random and growing, lets replicas contending for one agent take
/// turns instead of colliding again.
async fn try_again<T>(result: &Result<T>, attempt: &mut u32) -> bool {
    if !matches!(result, Err(RegistryError::StaleWrite(_))) || *attempt >= WRITE_ATTEMPTS {
        return false;
    }
    let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0] % 8);
    tokio::time::sleep(Duration::from_millis(jitter * u64::from(*attempt))).await;
    *attempt += 1;
    true
}

/// Applies the change log after `applied` and up to `until` to the index, in revision order.
/// Runs under the write lock.
async fn follow_log(
    store: &dyn AgentStore,
    index: &RwLock<Index>,
    applied: &tokio::sync::watch::Sender<u64>,
    feed: &feed::Feed,
    until: u64,
) -> Result<usize> {
    let mut followed = 0;
    loop {
        let after = *applied.borrow();
        let mut changes = store.changes_since(after, FOLLOW_PAGE).await?;
        let n = changes.len();
        changes.retain(|c| c.revision <= until);
        let done = n < FOLLOW_PAGE || changes.len() < n;
        followed += changes.len();
        {
            let mut index = index.write();
            for change in changes {
                match &change.agent {
                    // Liveness events change no agent; heartbeats reach the index on their own.
                    _ if change.kind.is_liveness() => {}
                    Some(agent) => index.upsert(agent, &[]),
                    None => {
                        index.remove(change.agent_id);
                    }
                }
                let revision = change.revision;
                feed.push(change);
                applied.send_replace(revision);
            }
        }
        if done {
            return Ok(followed);
        }
    }
}

/// Applies a change this process stored, at the revision it was given.
/// Applies a change this replica stored; returns it as the change log holds it.
fn apply_to_index(index: &mut Index, change: Change, revision: u64, at: Millis) -> LoggedChange {
    let kind = change.kind();
    match change {
        Change::Put { mut agent, seen, .. } => {
            agent.revision = revision;
            index.upsert(&agent, &seen);
            LoggedChange { revision, agent_id: agent.id, kind, agent: Some(*agent), at, endpoint_id: None }
        }
        Change::Delete { agent_id, .. } => {
            index.remove(agent_id);
            LoggedChange { revision, agent_id, kind, agent: None, at, endpoint_id: None }
        }
    }
}

/// Appends a liveness event to the change log, under the write lock so that revisions stay in
/// order, and moves the index's applied revision past it.
async fn append_liveness(
    store: Arc<dyn AgentStore>,
    index: Arc<RwLock<Index>>,
    applied: Arc<tokio::sync::watch::Sender<u64>>,
    feed: Arc<feed::Feed>,
    writer: Arc<tokio::sync::Mutex<()>>,
    event: LivenessChange,
) -> Result<()> {
    let _write = writer.lock_owned().await;
    let Some(revision) = store.append_event(&event).await? else {
        return Ok(());
    };
    take_stored(&*store, &index, &applied, &feed, revision, || event.logged(revision)).await
}

/// Takes a change this process stored into the feed: at once when it is the next revision;
/// otherwise other replicas stored changes before it, and those are taken in order up to it.
async fn take_stored(
    store: &dyn AgentStore,
    index: &RwLock<Index>,
    applied: &tokio::sync::watch::Sender<u64>,
    feed: &feed::Feed,
    revision: u64,
    logged: impl FnOnce() -> LoggedChange,
) -> Result<()> {
    if revision == *applied.borrow() + 1 {
        feed.push(logged());
        applied.send_replace(revision);
    } else {
        follow_log(store, index, applied, feed, revision).await?;
    }
    Ok(())
}

mod feed;
mod keys;

pub use keys::KeyRequest;

/// Remembered discovery answers, bounded by the number of agents they list in all.
#[derive(Default)]
struct Answers {
    by_query: HashMap<DiscoveryQuery, Arc<Matches>>,
    listed: usize,
}

impl Answers {
    /// Agents all remembered answers may list together (about 4 bytes each).
    const MAX_LISTED: usize = 500_000;
    /// Agents one remembered answer lists: the first pages of default size.
    const KEPT_PER_ANSWER: usize = 100;

    fn get(&self, key: &DiscoveryQuery) -> Option<Arc<Matches>> {
        self.by_query.get(key).cloned()
    }

    fn remember(&mut self, key: DiscoveryQuery, matches: Arc<Matches>) {
        if self.listed + matches.listed() > Self::MAX_LISTED {
            self.by_query.clear();
            self.listed = 0;
        }
        self.listed += matches.listed();
        if let Some(old) = self.by_query.insert(key, matches) {
            self.listed -= old.listed();
        }
    }
}

/// Stored agents read (and prepared) at a time at start-up.
const LOAD_PAGE: usize = 5_000;

/// Renders and analyses stored agents on every core; start-up time is dominated by this.
fn prepare_in_parallel(config: &RegistryConfig, stored: Vec<StoredAgent>) -> Vec<Prepared> {
    crate::parallel::map(&stored, |s| Prepared::new(&config.liveness, &config.privacy, &s.agent, &s.last_seen))
}

/// A single-endpoint request has one name to blame: the body's.
fn point_at_body_name(e: RegistryError) -> RegistryError {
    match e {
        RegistryError::DuplicateEndpointName { name, .. } => {
            RegistryError::DuplicateEndpointName { name, pointer: "/name".into() }
        }
        other => other,
    }
}

fn endpoint_not_found(id: AgentId, endpoint_id: EndpointId) -> RegistryError {
    RegistryError::EndpointNotFound { agent: id.to_string(), endpoint: endpoint_id.to_string() }
}

/// A stable hash of a registration request, to recognise retries.
fn hash_request(input: &impl Serialize) -> String {
    let bytes = serde_json::to_vec(input).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
