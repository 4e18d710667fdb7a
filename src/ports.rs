//! The ports the registry's use-cases need from the outside world. Implementations: in-memory
//! ones in `crate::memory`, SQLite in `adapters/store-sqlite`, PostgreSQL and Redis later.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;

use crate::audit::{AuditEvent, AuditNote, EventQuery, NewEvent};
use crate::auth::ApiKey;
use crate::error::{RegistryError, Result};
use crate::liveness::Millis;
use crate::model::{Agent, AgentId, EndpointId};

/// What happened to an agent; recorded with each change in the change log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Registered,
    Updated,
    EndpointAdded,
    EndpointUpdated,
    EndpointRemoved,
    OwnerTransferred,
    Evicted,
    Deregistered,
    /// An endpoint was heard from again after its lease had ended.
    BecameLive,
    /// An endpoint's lease ended without a renewal or heartbeat.
    Expired,
}

impl ChangeKind {
    /// Every kind, in a fixed order.
    pub const ALL: [ChangeKind; 10] = [
        Self::Registered,
        Self::Updated,
        Self::EndpointAdded,
        Self::EndpointUpdated,
        Self::EndpointRemoved,
        Self::OwnerTransferred,
        Self::Evicted,
        Self::Deregistered,
        Self::BecameLive,
        Self::Expired,
    ];

    /// Liveness events change no agent: followers only note their revision.
    pub fn is_liveness(self) -> bool {
        matches!(self, Self::BecameLive | Self::Expired)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::Updated => "updated",
            Self::EndpointAdded => "endpoint_added",
            Self::EndpointUpdated => "endpoint_updated",
            Self::EndpointRemoved => "endpoint_removed",
            Self::OwnerTransferred => "owner_transferred",
            Self::Evicted => "evicted",
            Self::Deregistered => "deregistered",
            Self::BecameLive => "became_live",
            Self::Expired => "expired",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// A retried registration is recognised by its owner, key and a hash of its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub owner_id: String,
    pub key: String,
    pub request_hash: String,
    pub agent_id: AgentId,
    pub created_at: Millis,
}

/// One atomic change to the registry. The store assigns it the next registry-wide revision.
///
/// Each change names the revision the writer saw (`expected`): when several replicas write to
/// one store, the store refuses a change made from an outdated view with
/// [`RegistryError::StaleWrite`], and the writer catches up and tries again.
#[derive(Clone, Debug)]
pub enum Change {
    /// Insert or replace the agent (its `revision` is set by the store).
    Put {
        agent: Box<Agent>,
        kind: ChangeKind,
        /// Endpoints first seen by this change, with the time they were seen.
        seen: Vec<(EndpointId, Millis)>,
        idempotency: Option<IdempotencyRecord>,
        /// The stored agent's revision, or `None` when it must not exist yet.
        expected: Option<u64>,
    },
    Delete {
        agent_id: AgentId,
        kind: ChangeKind,
        expected: u64,
    },
}

impl Change {
    pub fn agent_id(&self) -> AgentId {
        match self {
            Self::Put { agent, .. } => agent.id,
            Self::Delete { agent_id, .. } => *agent_id,
        }
    }

    pub fn kind(&self) -> ChangeKind {
        match self {
            Self::Put { kind, .. } | Self::Delete { kind, .. } => *kind,
        }
    }
}

/// A change as the change log keeps it: the agent as it stood after the change (`None` once
/// it is gone). Replicas follow the log to keep their index in step; watches replay it.
#[derive(Clone, Debug)]
pub struct LoggedChange {
    pub revision: u64,
    pub agent_id: AgentId,
    pub kind: ChangeKind,
    pub agent: Option<Agent>,
    /// When it was stored.
    pub at: Millis,
    /// The endpoint a liveness event is about.
    pub endpoint_id: Option<EndpointId>,
}

/// One change-log row as a store reads it: revision, agent id, kind, time, document, endpoint.
pub type ChangeRow = (i64, String, String, i64, Option<String>, Option<String>);

impl LoggedChange {
    /// Reads one change-log row (`document` is the agent's JSON, absent for removals).
    pub fn parse(row: &ChangeRow) -> Result<Self> {
        let (revision, agent_id, kind, at, document, endpoint) = row;
        let unreadable = |what: String| RegistryError::internal(format!("change {revision} is unreadable: {what}"));
        Ok(Self {
            revision: u64::try_from(*revision).map_err(|e| unreadable(e.to_string()))?,
            agent_id: AgentId::parse(agent_id)?,
            kind: ChangeKind::parse(kind).ok_or_else(|| unreadable(format!("unknown kind `{kind}`")))?,
            agent: document.as_deref().map(serde_json::from_str).transpose().map_err(|e| unreadable(e.to_string()))?,
            at: *at,
            endpoint_id: endpoint.as_deref().map(EndpointId::parse).transpose()?,
        })
    }
}

/// A liveness event to append to the change log: the agent as it stands, which endpoint, when,
/// and a key that makes the event count once however many replicas notice it.
#[derive(Clone, Debug)]
pub struct LivenessChange {
    pub agent: Agent,
    pub endpoint_id: EndpointId,
    pub kind: ChangeKind,
    pub at: Millis,
    pub dedupe: String,
}

impl LivenessChange {
    /// The change as the log holds it once it has its revision.
    pub fn logged(&self, revision: u64) -> LoggedChange {
        LoggedChange {
            revision,
            agent_id: self.agent.id,
            kind: self.kind,
            agent: Some(self.agent.clone()),
            at: self.at,
            endpoint_id: Some(self.endpoint_id),
        }
    }
}

/// An agent as loaded at start-up, with the last time each endpoint was seen (if recorded).
#[derive(Clone, Debug)]
pub struct StoredAgent {
    pub agent: Agent,
    pub last_seen: Vec<(EndpointId, Millis)>,
}

impl StoredAgent {
    /// Parses a page of stored documents (`(agent id, JSON)`) on every core and attaches the
    /// recorded last-seen times (`(endpoint id, agent id, millis)`).
    pub fn parse_page(documents: &[(String, String)], last_seen: Vec<(String, String, Millis)>) -> Result<Vec<Self>> {
        let mut seen: HashMap<String, Vec<(EndpointId, Millis)>> = HashMap::new();
        for (endpoint, agent, at) in last_seen {
            if let Ok(id) = EndpointId::parse(&endpoint) {
                seen.entry(agent).or_default().push((id, at));
            }
        }
        crate::parallel::map(documents, |(id, document)| {
            serde_json::from_str::<Agent>(document)
                .map_err(|e| RegistryError::internal_from(format!("stored agent {id} is unreadable"), e))
        })
        .into_iter()
        .map(|agent| {
            let agent = agent?;
            Ok(Self { last_seen: seen.remove(&agent.id.to_string()).unwrap_or_default(), agent })
        })
        .collect()
    }
}

/// How a shared store tells a replica that changes were stored (by any process, this one
/// included). Announcements may be lost, so followers also catch up on a timer.
#[derive(Default)]
pub struct ChangeSignal {
    wake: tokio::sync::Notify,
    latest: AtomicU64,
    keys_changed: AtomicBool,
}

impl ChangeSignal {
    /// A change with this revision was stored.
    pub fn announce(&self, revision: u64) {
        self.latest.fetch_max(revision, Ordering::AcqRel);
        self.wake.notify_one();
    }

    /// An API key was issued or revoked.
    pub fn announce_keys(&self) {
        self.keys_changed.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Whether keys changed since the last call.
    pub fn take_keys_changed(&self) -> bool {
        self.keys_changed.swap(false, Ordering::AcqRel)
    }

    /// The highest revision announced so far.
    pub fn latest(&self) -> u64 {
        self.latest.load(Ordering::Acquire)
    }

    /// Waits for the next announcement (returns at once if one came since the last wait).
    pub async fn announced(&self) {
        self.wake.notified().await;
    }
}

/// How much room the store takes, for operators sizing it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct StoreSizes {
    /// Bytes on disk: SQLite's file and its write-ahead log; PostgreSQL's tables and indexes of
    /// this registry's schema.
    pub bytes: u64,
    /// Of those, bytes free for reuse that the store has not given back yet.
    pub free_bytes: u64,
    pub agents: u64,
    /// Entries of the change log (one per change, each with the agent as it left it).
    pub changes: u64,
    pub audit_events: u64,
    pub idempotency_keys: u64,
}

/// Durable storage of agents and the change log.
#[async_trait]
pub trait AgentStore: Send + Sync + 'static {
    /// How many calls have ended in an outage so far (a [`crate::bounded::BoundedStore`] counts
    /// them). Writers queued behind a call that failed so fail at once instead of waiting out a
    /// bound of their own.
    fn outages(&self) -> u64 {
        0
    }

    /// Up to `limit` agents with ids above `after`, in id order: the index is built page by
    /// page at start-up, so memory never holds every stored document at once.
    async fn load_page(&self, after: Option<AgentId>, limit: usize) -> Result<Vec<StoredAgent>>;

    /// Start-up has read every page; a store may release what it kept for that.
    async fn finished_loading(&self) {}

    /// The process is stopping and has written what it had to: leave everything stored in the
    /// database's main files (an embedded database folds its write-ahead log back in) and
    /// release the connections. Later calls may fail.
    async fn close(&self) {}

    /// Writes a consistent copy of the whole database, while writes go on, to a new file beside
    /// it (on the volume that has room for the data) and returns its path: the caller removes
    /// it. `None` for a store that its own tools back up (PostgreSQL: `pg_dump`).
    async fn snapshot(&self) -> Result<Option<std::path::PathBuf>> {
        Ok(None)
    }

    /// Every agent (for tests and tools; start-up reads pages).
    async fn load_all(&self) -> Result<Vec<StoredAgent>> {
        let mut all: Vec<StoredAgent> = Vec::new();
        loop {
            let page = self.load_page(all.last().map(|s| s.agent.id), 1_000).await?;
            if page.is_empty() {
                return Ok(all);
            }
            all.extend(page);
        }
    }
    /// Applies one change atomically and returns the revision it was given. Revisions are
    /// strictly increasing across the whole registry.
    /// The change is audited with `note`, in the same transaction.
    async fn apply(&self, change: Change, note: &AuditNote) -> Result<u64>;
    /// Applies changes in order, each answered on its own as [`AgentStore::apply`] would, with
    /// revisions in that order. A store that can commits them together (one transaction, one
    /// durable commit); a change refused on its own (stale) is refused alone. The default
    /// applies one after another.
    async fn apply_batch(&self, changes: &[(Change, AuditNote)]) -> Vec<Result<u64>> {
        apply_each(self, changes).await
    }
    async fn find_idempotency(&self, owner_id: &str, key: &str) -> Result<Option<IdempotencyRecord>>;
    /// Forgets idempotency records created before `before`.
    async fn expire_idempotency(&self, before: Millis) -> Result<u64>;
    /// Records when endpoints were last seen (batched, off the request path), so a restart
    /// knows which endpoints are still live and never revives a dead one.
    async fn record_last_seen(&self, seen: &[(EndpointId, Millis)]) -> Result<()>;
    /// The revision of the newest stored change: every change up to it is stored.
    async fn current_revision(&self) -> Result<u64>;
    /// Up to `limit` changes with a revision above `after`, in revision order. Revisions may
    /// have gaps, but a change is never listed before every lower revision has been stored.
    async fn changes_since(&self, after: u64, limit: usize) -> Result<Vec<LoggedChange>>;
    /// Forgets change-log entries recorded before `before`, except the newest (the agents
    /// themselves stay).
    async fn prune_changes(&self, before: Millis) -> Result<u64>;
    /// The oldest revision the change log still holds (`None` when it is empty): a watcher
    /// resuming from before it may have missed pruned changes.
    async fn oldest_change(&self) -> Result<Option<u64>>;
    /// Appends a liveness event with the next revision, unless an event with the same dedupe
    /// key is logged already (then `None`).
    async fn append_event(&self, event: &LivenessChange) -> Result<Option<u64>>;
    /// Announces changes other processes stored; `None` for a store this process alone
    /// writes to.
    fn change_signal(&self) -> Option<Arc<ChangeSignal>> {
        None
    }
    /// Cheap reachability check for readiness.
    async fn ping(&self) -> Result<()>;
    /// How much room the store takes.
    async fn sizes(&self) -> Result<StoreSizes>;
    /// Gives space freed by pruning back to the file system, a bounded amount at a time;
    /// returns the bytes given back (stores that do this themselves return 0).
    async fn reclaim(&self) -> Result<u64> {
        Ok(0)
    }
    /// Appends an event that is not an agent change to the audit trail.
    async fn record_event(&self, event: &NewEvent) -> Result<()>;
    /// Audit events, newest first.
    async fn events(&self, query: &EventQuery) -> Result<Vec<AuditEvent>>;
    /// Forgets audit events recorded before `before`.
    async fn prune_events(&self, before: Millis) -> Result<u64>;
    /// Stores a new or changed API key (never its secret) with the next key revision, which it
    /// returns. Key revisions commit in order, like the change log's.
    async fn save_api_key(&self, key: &ApiKey) -> Result<u64>;
    /// Up to `limit` keys changed after key revision `after`, in revision order.
    async fn api_keys_since(&self, after: u64, limit: usize) -> Result<Vec<ApiKey>>;
}

/// Where "endpoint X was last seen at T" lives. A heartbeat touches only this store.
#[async_trait]
pub trait LivenessStore: Send + Sync + 'static {
    /// Records that `endpoint` was seen at `at`; returns when it was seen before, if this store
    /// knows. A shared store answers atomically: of touches that race on several replicas,
    /// exactly one finds the endpoint dead, and only that replica announces it live again.
    async fn touch(&self, endpoint: EndpointId, at: Millis, lease_millis: Millis) -> Result<Option<Millis>>;
    /// Records that each of `endpoints` was seen at `at` (keeping later times).
    async fn touch_all(&self, endpoints: &[EndpointId], at: Millis) -> Result<()> {
        for endpoint in endpoints {
            self.touch(*endpoint, at, 0).await?;
        }
        Ok(())
    }
    async fn forget(&self, endpoints: &[EndpointId]) -> Result<()>;
    /// Last-seen times as this store knows them, in the order asked.
    async fn last_seen(&self, endpoints: &[EndpointId]) -> Result<Vec<Option<Millis>>>;
    /// Makes recent touches durable (no-op for stores that are durable already).
    async fn flush(&self) -> Result<()>;
    async fn ping(&self) -> Result<()>;
    /// Whether other processes touch endpoints in this store too (then each replica reads
    /// their touches back with `seen_since`).
    fn is_shared(&self) -> bool {
        false
    }
    /// Endpoints seen at or after `since`, with when.
    async fn seen_since(&self, _since: Millis) -> Result<Vec<(EndpointId, Millis)>> {
        Ok(Vec::new())
    }
}

/// Applies changes one after another, each in its own transaction: the default batch, and a
/// store's fallback when a batch fails as a whole (one bad write then fails only itself).
pub async fn apply_each<S: AgentStore + ?Sized>(store: &S, changes: &[(Change, AuditNote)]) -> Vec<Result<u64>> {
    let mut answers = Vec::with_capacity(changes.len());
    for (change, note) in changes {
        answers.push(store.apply(change.clone(), note).await);
    }
    answers
}

/// What applying migrations did to a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    /// The migrations this run applied, oldest first: `(version, description)`.
    pub applied: Vec<(i64, String)>,
    /// The newest migration the database has now: `(version, description)`.
    pub newest: Option<(i64, String)>,
}

/// Refuses a database migrated by a newer binary: its newest applied migration (`stored`) is
/// past the newest this binary embeds (`known`). Such a schema may hold tables, columns or stored
/// functions this binary would misuse, so it neither serves nor migrates it. `database` names
/// the kind of database for the message.
pub fn refuse_newer_schema(database: &str, stored: Option<(i64, &str)>, known: Option<(i64, &str)>) -> Result<()> {
    let Some((stored, stored_description)) = stored else { return Ok(()) };
    let (known, known_description) = known.unwrap_or((0, "none"));
    if stored <= known {
        return Ok(());
    }
    Err(crate::RegistryError::Misconfigured {
        context: format!(
            "the {database} schema is at migration {stored} ({stored_description}), newer than this binary \
             (agent-registry {}) knows: its newest is {known} ({known_description}). A newer agent-registry \
             migrated this database: run that version or a later one, or restore the backup taken before the \
             upgrade (docs/operations.md, \"Upgrade and rollback\")",
            env!("CARGO_PKG_VERSION"),
        ),
        source: None,
    })
}
