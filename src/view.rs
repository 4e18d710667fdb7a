//! How agents are shown to consumers: the stored agent plus what only the registry knows at
//! read time (whether each endpoint is live, when it was last seen, when it expires).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::clock::to_datetime;
use crate::index::{Hit, SearchPage};
use crate::liveness::{LivenessPolicy, Millis};
use crate::model::{AgentId, Capability, Endpoint, EndpointId, LivenessModel};

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentView<'a> {
    pub id: AgentId,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub version: Option<&'a str>,
    pub owner_id: &'a str,
    pub tags: &'a [String],
    pub labels: &'a BTreeMap<String, String>,
    pub capabilities: &'a [Capability],
    pub endpoints: Vec<EndpointView<'a>>,
    #[schema(value_type = Object)]
    pub metadata: &'a Map<String, Value>,
    pub permanent: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Registry-wide revision of the last change to this agent; also its `ETag`.
    pub revision: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointView<'a> {
    #[serde(flatten)]
    pub endpoint: &'a Endpoint,
    pub is_live: bool,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl<'a> EndpointView<'a> {
    pub fn new(
        endpoint: &'a Endpoint,
        last_seen: Millis,
        policy: &LivenessPolicy,
        now: Millis,
    ) -> Self {
        let expires = policy.expires_at(endpoint, last_seen);
        Self {
            endpoint,
            is_live: now < expires,
            last_seen_at: to_datetime(last_seen),
            expires_at: to_datetime(expires),
        }
    }
}

impl<'a> AgentView<'a> {
    pub fn new(hit: &'a Hit, policy: &LivenessPolicy, now: Millis) -> Self {
        let a = &*hit.agent;
        Self {
            id: a.id,
            name: &a.name,
            description: a.description.as_deref(),
            version: a.version.as_deref(),
            owner_id: &a.owner_id,
            tags: &a.tags,
            labels: &a.labels,
            capabilities: &a.capabilities,
            endpoints: hit
                .endpoints
                .iter()
                .map(|(i, t)| EndpointView::new(&a.endpoints[*i], *t, policy, now))
                .collect(),
            metadata: &a.metadata,
            permanent: a.permanent,
            created_at: a.created_at,
            updated_at: a.updated_at,
            revision: a.revision,
        }
    }
}

/// Liveness of one endpoint after a heartbeat or renew.
#[derive(Serialize, Debug, Clone, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LivenessView {
    pub endpoint_id: EndpointId,
    pub liveness_model: LivenessModel,
    pub is_live: bool,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A page of agents, in the envelope the .NET registry's clients read, plus a cursor.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PageView<'a> {
    pub items: Vec<AgentView<'a>>,
    /// Number of agents matching every filter, liveness included.
    pub total_count: usize,
    pub page: usize,
    pub page_size: usize,
    pub total_pages: usize,
    pub has_next_page: bool,
    pub has_previous_page: bool,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl<'a> PageView<'a> {
    pub fn new(page: &'a SearchPage, policy: &LivenessPolicy, now: Millis) -> Self {
        let total_pages = page.total.div_ceil(page.page_size);
        Self {
            items: page
                .hits
                .iter()
                .map(|h| AgentView::new(h, policy, now))
                .collect(),
            total_count: page.total,
            page: page.page,
            page_size: page.page_size,
            total_pages,
            has_next_page: page.next_cursor.is_some(),
            has_previous_page: page.page > 1,
            next_cursor: page.next_cursor.clone(),
        }
    }
}
