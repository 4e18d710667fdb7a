//! The ports the registry's use-cases need from the outside world. Implementations: in-memory
//! ones in `crate::memory`, SQLite in `adapters/store-sqlite`, PostgreSQL and Redis later.

use std::collections::HashMap;

use async_trait::async_trait;

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
    Evicted,
    Deregistered,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::Updated => "updated",
            Self::EndpointAdded => "endpoint_added",
            Self::EndpointUpdated => "endpoint_updated",
            Self::EndpointRemoved => "endpoint_removed",
            Self::Evicted => "evicted",
            Self::Deregistered => "deregistered",
        }
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
#[derive(Clone, Debug)]
pub enum Change {
    /// Insert or replace the agent (its `revision` is set by the store).
    Put {
        agent: Box<Agent>,
        kind: ChangeKind,
        /// Endpoints first seen by this change, with the time they were seen.
        seen: Vec<(EndpointId, Millis)>,
        idempotency: Option<IdempotencyRecord>,
    },
    Delete {
        agent_id: AgentId,
        kind: ChangeKind,
    },
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
                .map_err(|e| RegistryError::Internal(format!("stored agent {id} is unreadable: {e}")))
        })
        .into_iter()
        .map(|agent| {
            let agent = agent?;
            Ok(Self { last_seen: seen.remove(&agent.id.to_string()).unwrap_or_default(), agent })
        })
        .collect()
    }
}

/// Durable storage of agents and the change log.
#[async_trait]
pub trait AgentStore: Send + Sync + 'static {
    /// Up to `limit` agents with ids above `after`, in id order: the index is built page by
    /// page at start-up, so memory never holds every stored document at once.
    async fn load_page(&self, after: Option<AgentId>, limit: usize) -> Result<Vec<StoredAgent>>;

    /// Start-up has read every page; a store may release what it kept for that.
    async fn finished_loading(&self) {}

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
    async fn apply(&self, change: Change) -> Result<u64>;
    async fn find_idempotency(&self, owner_id: &str, key: &str) -> Result<Option<IdempotencyRecord>>;
    /// Forgets idempotency records created before `before`.
    async fn expire_idempotency(&self, before: Millis) -> Result<u64>;
    /// Records when endpoints were last seen (batched, off the request path), so a restart
    /// knows which endpoints are still live and never revives a dead one.
    async fn record_last_seen(&self, seen: &[(EndpointId, Millis)]) -> Result<()>;
    /// The highest revision handed out so far.
    async fn current_revision(&self) -> Result<u64>;
    /// Cheap reachability check for readiness.
    async fn ping(&self) -> Result<()>;
}

/// Where "endpoint X was last seen at T" lives. A heartbeat touches only this store.
#[async_trait]
pub trait LivenessStore: Send + Sync + 'static {
    async fn touch(&self, endpoint: EndpointId, at: Millis, lease_millis: Millis) -> Result<()>;
    async fn forget(&self, endpoints: &[EndpointId]) -> Result<()>;
    /// Last-seen times as this store knows them, in the order asked.
    async fn last_seen(&self, endpoints: &[EndpointId]) -> Result<Vec<Option<Millis>>>;
    /// Makes recent touches durable (no-op for stores that are durable already).
    async fn flush(&self) -> Result<()>;
    async fn ping(&self) -> Result<()>;
}
