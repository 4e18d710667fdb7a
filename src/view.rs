//! What consumers see. Agent JSON is assembled from pre-rendered bytes (`crate::render`); the
//! structs here describe those documents for the OpenAPI description, and tests check that the
//! rendered bytes match them field for field.

use std::collections::BTreeMap;
use std::io::Write;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::index::{Hit, SearchPage};
use crate::model::{AgentId, Capability, EndpointId, LivenessModel, Protocol, Transport};

/// An agent with the live state of its (matching) endpoints.
#[derive(Serialize, Deserialize, Debug)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentView {
    pub id: AgentId,
    pub name: String,
    pub description: Option<String>,
    pub version: Option<String>,
    /// Left out for anonymous callers when the registry hides owners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    pub tags: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub capabilities: Vec<Capability>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: Map<String, Value>,
    pub permanent: bool,
    /// The protocol document the agent was registered with (its protocol's routes serve it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_with: Option<RegisteredWithView>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Registry-wide revision of the last change to this agent; also its `ETag`.
    pub revision: u64,
    pub endpoints: Vec<EndpointView>,
}

/// Which protocol document an agent was registered with.
#[derive(Serialize, Deserialize, Debug)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisteredWithView {
    pub format: crate::protocol::DocumentFormat,
    /// The spec version the document was read as.
    pub version: String,
    /// For signed A2A cards: whether a signature verified against a trusted key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_verified: Option<bool>,
}

/// An endpoint with its live state.
#[derive(Serialize, Deserialize, Debug)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointView {
    pub id: EndpointId,
    pub name: String,
    pub transport: Transport,
    pub protocol: Protocol,
    pub address: String,
    pub liveness_model: LivenessModel,
    /// Lease of an `Ephemeral` endpoint.
    pub ttl_seconds: Option<u32>,
    /// Heartbeat period of a `Persistent` endpoint.
    pub heartbeat_interval_seconds: Option<u32>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub protocol_metadata: Map<String, Value>,
    pub created_at: DateTime<Utc>,
    pub is_live: bool,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A page of agents, in the envelope the .NET registry's clients read, plus a cursor.
#[derive(Serialize, Deserialize, Debug)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PageView {
    pub items: Vec<AgentView>,
    /// Number of agents matching every filter, liveness included.
    pub total_count: usize,
    pub page: usize,
    pub page_size: usize,
    pub total_pages: usize,
    pub has_next_page: bool,
    pub has_previous_page: bool,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Liveness of one endpoint after a heartbeat or renew.
#[derive(Serialize, Deserialize, Debug, Clone)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct LivenessView {
    pub endpoint_id: EndpointId,
    pub liveness_model: LivenessModel,
    pub is_live: bool,
    #[serde(with = "crate::render::timestamp")]
    pub last_seen_at: DateTime<Utc>,
    #[serde(with = "crate::render::timestamp")]
    pub expires_at: DateTime<Utc>,
}

/// The JSON of one agent.
pub fn agent_json(hit: &Hit, public: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(hit.size());
    hit.write(&mut out, public);
    out
}

/// The JSON of one endpoint of an agent, or `None` if it has none at `index`.
pub fn endpoint_json(hit: &Hit, index: usize, now: crate::liveness::Millis) -> Option<Vec<u8>> {
    let live = hit.live_state(index, now)?;
    let mut out = Vec::with_capacity(512);
    hit.write_endpoint(&mut out, index, &live);
    Some(out)
}

/// The JSON of a page of agents.
pub fn page_json(page: &SearchPage, public: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + page.hits.iter().map(Hit::size).sum::<usize>());
    out.extend_from_slice(b"{\"items\":[");
    for (i, hit) in page.hits.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        hit.write(&mut out, public);
    }
    let total_pages = page.total.div_ceil(page.page_size);
    let _ = write!(
        out,
        "],\"totalCount\":{},\"page\":{},\"pageSize\":{},\"totalPages\":{},\"hasNextPage\":{},\"hasPreviousPage\":{}",
        page.total,
        page.page,
        page.page_size,
        total_pages,
        page.next_cursor.is_some(),
        page.page > 1
    );
    if let Some(cursor) = &page.next_cursor {
        // Cursors are URL-safe base64: nothing to escape.
        let _ = write!(out, ",\"nextCursor\":\"{cursor}\"");
    }
    out.push(b'}');
    out
}
