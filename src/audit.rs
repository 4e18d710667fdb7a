//! The audit trail: who changed what, when and from where. Append-only: entries are written
//! with the change they describe (in the same transaction) and only retention removes them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::error::{RegistryError, Result};
use crate::liveness::Millis;
use crate::model::AgentId;

/// Who made a change and from where, and what it changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditNote {
    /// `key:<id>`, `jwt:<subject>`, or `registry` for the registry's own upkeep.
    pub actor: String,
    /// The client address, when the change came through the API.
    pub source: Option<String>,
    pub summary: String,
}

impl AuditNote {
    /// A change the registry makes by itself (eviction).
    pub fn registry(summary: impl Into<String>) -> Self {
        Self { actor: "registry".into(), source: None, summary: summary.into() }
    }
}

/// An event that is not a stored change of an agent: API keys, bootstrap, and an endpoint
/// becoming live again or expiring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    pub at: Millis,
    pub action: &'static str,
    pub agent_id: Option<AgentId>,
    pub key_id: Option<Uuid>,
    pub note: AuditNote,
    /// Events with the same key are recorded once (several replicas notice the same expiry).
    pub dedupe: Option<String>,
}

impl NewEvent {
    /// An event about an API key.
    pub fn about_key(at: Millis, action: &'static str, key_id: Uuid, note: AuditNote) -> Self {
        Self { at, action, agent_id: None, key_id: Some(key_id), note, dedupe: None }
    }
}

/// One entry of the audit trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// Increasing; the cursor of the event listing.
    pub id: u64,
    #[serde(with = "crate::render::timestamp")]
    pub at: DateTime<Utc>,
    pub actor: String,
    pub source: Option<String>,
    /// `registered`, `updated`, `endpoint_added`, …, `api_key_issued`, `api_key_revoked`,
    /// `revoked_api_key_used`, `bootstrap`.
    pub action: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub agent_id: Option<AgentId>,
    pub key_id: Option<Uuid>,
    /// The registry revision of an agent change.
    pub revision: Option<u64>,
    pub summary: String,
}

/// A stored event's columns: (id, at, actor, source, action, agent id, key id, revision, summary).
pub type EventRow = (i64, Millis, String, Option<String>, String, Option<String>, Option<String>, Option<i64>, String);

impl AuditEvent {
    pub fn from_row(row: EventRow) -> Result<Self> {
        let (id, at, actor, source, action, agent_id, key_id, revision, summary) = row;
        let unreadable = |what: &str| RegistryError::internal(format!("audit event {id} is unreadable: {what}"));
        Ok(Self {
            id: u64::try_from(id).map_err(|_| unreadable("id"))?,
            at: crate::clock::to_datetime(at),
            actor,
            source,
            action,
            agent_id: agent_id.map(|a| AgentId::parse(&a)).transpose()?,
            key_id: key_id.map(|k| Uuid::try_parse(&k)).transpose().map_err(|_| unreadable("key id"))?,
            revision: revision.map(u64::try_from).transpose().map_err(|_| unreadable("revision"))?,
            summary,
        })
    }
}

/// Which events to list: newest first, before the cursor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventQuery {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub agent: Option<AgentId>,
    pub since: Option<Millis>,
    pub until: Option<Millis>,
    /// Only events with a smaller id (the previous page's last id).
    pub before: Option<u64>,
    pub limit: usize,
}

impl EventQuery {
    pub fn matches(&self, e: &AuditEvent) -> bool {
        self.actor.as_ref().is_none_or(|a| *a == e.actor)
            && self.action.as_ref().is_none_or(|a| *a == e.action)
            && self.agent.is_none_or(|a| e.agent_id == Some(a))
            && self.since.is_none_or(|t| e.at.timestamp_millis() >= t)
            && self.until.is_none_or(|t| e.at.timestamp_millis() < t)
            && self.before.is_none_or(|b| e.id < b)
    }
}
