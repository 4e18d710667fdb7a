//! The audit trail: read-only routes (nothing edits or deletes an event).

use agent_registry_core::RegistryError;
use agent_registry_core::audit::{AuditEvent, EventQuery};
use agent_registry_core::model::AgentId;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::extract::{Auth, Params};
use super::problem::{ApiError, Problem};

/// Events returned at most per page.
const MAX_LIMIT: usize = 500;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventFilter {
    /// Only events of this actor (`key:<id>`, `registry`, `bootstrap`).
    actor: Option<String>,
    /// Only events of this action (`registered`, `evicted`, `api_key_revoked`, …).
    action: Option<String>,
    /// Only events of this agent (`GET /events` only).
    agent: Option<String>,
    /// Only events at or after this time (RFC 3339).
    since: Option<DateTime<Utc>>,
    /// Only events before this time (RFC 3339).
    until: Option<DateTime<Utc>>,
    /// The `nextCursor` of the previous page.
    cursor: Option<u64>,
    /// Events per page (1–500, default 100); `limit` is accepted too.
    page_size: Option<usize>,
    /// The former name of `pageSize`.
    limit: Option<usize>,
}

/// A page of events, newest first.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventPage {
    items: Vec<AuditEvent>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    next_cursor: Option<u64>,
}

async fn answer(
    state: &AppState,
    caller: &agent_registry_core::auth::Caller,
    filter: EventFilter,
    agent: Option<AgentId>,
) -> Result<Response, ApiError> {
    let (parameter, limit) = match (filter.page_size, filter.limit) {
        (Some(_), Some(_)) => return Err(RegistryError::query("limit", "give `pageSize` or `limit`, not both").into()),
        (None, Some(limit)) => ("limit", limit),
        (page_size, None) => ("pageSize", page_size.unwrap_or(100)),
    };
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(RegistryError::query(parameter, format!("must lie between 1 and {MAX_LIMIT}")).into());
    }
    let agent = match (agent, filter.agent.as_deref()) {
        (Some(a), _) => Some(a),
        (None, Some(a)) => Some(AgentId::parse(a)?),
        (None, None) => None,
    };
    let query = EventQuery {
        actor: filter.actor,
        action: filter.action,
        agent,
        since: filter.since.map(|t| t.timestamp_millis()),
        until: filter.until.map(|t| t.timestamp_millis()),
        before: filter.cursor,
        limit,
    };
    let items = state.registry.events(caller, &query).await?;
    let next_cursor = (items.len() == limit).then(|| items.last().map(|e| e.id)).flatten();
    Ok(Json(EventPage { items, next_cursor }).into_response())
}

/// The audit trail of the whole registry, newest first (Admin).
#[utoipa::path(get, path = "/events", tag = "audit", security(("api_key" = [])), params(EventFilter),
    responses((status = 200, body = EventPage), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Params(filter): Params<EventFilter>,
) -> Result<Response, ApiError> {
    answer(&state, &caller, filter, None).await
}

/// The audit trail of one agent, newest first (Admin, or the agent's owner).
#[utoipa::path(get, path = "/agents/{id}/events", tag = "audit", security(("api_key" = [])),
    params(("id" = String, Path), EventFilter),
    responses((status = 200, body = EventPage), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem)))]
pub async fn of_agent(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    Params(filter): Params<EventFilter>,
) -> Result<Response, ApiError> {
    answer(&state, &caller, filter, Some(AgentId::parse(&id)?)).await
}
