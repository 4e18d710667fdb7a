//! Agent management and discovery routes: extract, one `AgentRegistry` call, render.

use agent_registry_core::RegistryError;
use agent_registry_core::index::Hit;
use agent_registry_core::input::{AgentInput, EndpointInput};
use agent_registry_core::model::{AgentId, EndpointId};
use agent_registry_core::view::{
    AgentView, EndpointView, LivenessView, PageView, agent_json, endpoint_json, page_json,
};
use agent_registry_core::{RegisterOptions, Registration};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::extract::{Auth, Discovering, JsonBody, QueryPairs, Reader, idempotency_key, if_match};
use super::problem::{ApiError, Problem};

type ApiResult = Result<Response, ApiError>;

/// A JSON body that was rendered to bytes already.
fn json_bytes(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

fn with_etag(mut response: Response, revision: u64) -> Response {
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{revision}\"")) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

/// The agent with its `ETag` (the revision), in full.
fn agent_response(status: StatusCode, hit: &Hit) -> Response {
    viewed_agent(status, hit, false)
}

/// The agent as a reader may see it (`public`: anonymous, with private fields left out).
fn viewed_agent(status: StatusCode, hit: &Hit, public: bool) -> Response {
    with_etag(json_bytes(status, agent_json(hit, public)), hit.revision())
}

fn with_location(mut response: Response, location: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// 201 with the new agent and its `Location`.
pub fn agent_created(hit: &Hit) -> Response {
    with_location(agent_response(StatusCode::CREATED, hit), &format!("/agents/{}", hit.id()))
}

fn page_response(
    state: &AppState,
    reader: &Discovering,
    pairs: &QueryPairs,
    live_only_default: bool,
    allow_owner: bool,
) -> ApiResult {
    let query = pairs.discovery(live_only_default, allow_owner)?;
    let page = state.registry.search_as(reader.anonymous, &query)?;
    let mut response = json_bytes(StatusCode::OK, page_json(&page, reader.anonymous));
    // The store is unreachable: the last known index still answers, and says how old it is.
    if let Some(age) = state.registry.staleness() {
        response.headers_mut().insert(STALE_SECONDS, age.as_secs().into());
    }
    Ok(response)
}

/// Header on discovery answers served from an index that could not catch up lately.
pub const STALE_SECONDS: &str = "x-registry-stale-seconds";

fn ids(agent: &str, endpoint: &str) -> Result<(AgentId, EndpointId), ApiError> {
    Ok((AgentId::parse(agent)?, EndpointId::parse(endpoint)?))
}

/// Register an agent with its capabilities and endpoints.
///
/// Returns the full agent with endpoint ids. A retry with the same `Idempotency-Key` (or the
/// same client-chosen `id`) and the same body returns the first result instead of a duplicate.
#[utoipa::path(post, path = "/agents", tag = "agents", security(("api_key" = [])), request_body = AgentInput,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses(
        (status = 201, description = "Registered (or an identical retry replayed)", body = AgentView),
        (status = 400, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem),
        (status = 415, body = Problem), (status = 422, body = Problem)))]
pub async fn register(
    State(state): State<AppState>,
    Auth(caller): Auth,
    headers: HeaderMap,
    JsonBody(input): JsonBody<AgentInput>,
) -> ApiResult {
    register_input(&state, &caller, &headers, &input).await
}

/// Registers an agent, however it was submitted (generic JSON or a protocol document): 201
/// with the agent (endpoint ids and liveness settings included, so it can heartbeat) and
/// `Location`; a retry replayed by its idempotency key says so in a header.
pub async fn register_input(
    state: &AppState,
    caller: &agent_registry_core::auth::Caller,
    headers: &HeaderMap,
    input: &AgentInput,
) -> ApiResult {
    let options = RegisterOptions { idempotency_key: idempotency_key(headers)? };
    let (hit, outcome) = state.registry.register(caller, input, &options).await?;
    let mut response = agent_created(&hit);
    if outcome == Registration::Replayed {
        response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// List agents, with the discovery filters plus `owner`; `liveOnly` defaults to false here.
#[utoipa::path(get, path = "/agents", tag = "agents",
    params(DiscoveryParams, ("owner" = Option<String>, Query, description = "Only agents of this owner")),
    responses((status = 200, body = PageView), (status = 400, body = Problem)))]
pub async fn list(State(state): State<AppState>, reader: Discovering, pairs: QueryPairs) -> ApiResult {
    page_response(&state, &reader, &pairs, false, true)
}

/// Discover live agents by capability, tag, label, protocol, transport or text.
///
/// Only matching (and, unless `liveOnly=false`, live) endpoints are returned, and agents with
/// none are left out. Filters apply before paging, so counts and pages are exact.
///
/// `include=queue` adds to each Amqp endpoint a `queue` object with its queue's facts (as
/// `GET /agents/{id}/endpoints/{eid}/queue` gives them; at most about a second is spent on them).
#[utoipa::path(get, path = "/discover/agents", tag = "discovery",
    params(DiscoveryParams, ("include" = Option<String>, Query, description = "`queue`: add queue facts to Amqp endpoints")),
    responses((status = 200, body = PageView), (status = 400, body = Problem)))]
pub async fn discover(State(state): State<AppState>, reader: Discovering, mut pairs: QueryPairs) -> ApiResult {
    let include_queue = super::queues::take_include(&mut pairs)?;
    let page = page_response(&state, &reader, &pairs, true, false)?;
    if include_queue { super::queues::with_queue_facts(&state, page).await } else { Ok(page) }
}

/// Read one agent, with the live state of each endpoint.
#[utoipa::path(get, path = "/agents/{id}", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, body = AgentView), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn get(State(state): State<AppState>, reader: Reader, Path(id): Path<String>) -> ApiResult {
    let hit = state.registry.find(AgentId::parse(&id)?).await?;
    Ok(viewed_agent(StatusCode::OK, &hit, reader.anonymous))
}

/// Replace an agent's descriptive fields.
///
/// `name`, `description`, `version`, `tags`, `labels`, `metadata` and `permanent` are replaced
/// (absent means empty/false). `capabilities` are replaced when present and kept when absent.
/// Endpoints are never changed by this route. `If-Match` with the revision guards against lost
/// updates (412 on mismatch).
#[utoipa::path(put, path = "/agents/{id}", tag = "agents", security(("api_key" = [])), request_body = AgentInput,
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = AgentView), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 412, body = Problem)))]
pub async fn update(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<AgentInput>,
) -> ApiResult {
    let hit = state.registry.update(&caller, AgentId::parse(&id)?, &input, if_match(&headers)?).await?;
    Ok(agent_response(StatusCode::OK, &hit))
}

/// Deregister an agent and all its endpoints.
#[utoipa::path(delete, path = "/agents/{id}", tag = "agents", security(("api_key" = [])),
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 204), (status = 400, body = Problem), (status = 404, body = Problem), (status = 412, body = Problem)))]
pub async fn deregister(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    state.registry.deregister(&caller, AgentId::parse(&id)?, if_match(&headers)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Add an endpoint to an agent.
#[utoipa::path(post, path = "/agents/{id}/endpoints", tag = "endpoints", security(("api_key" = [])), request_body = EndpointInput,
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 201, body = EndpointView), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
pub async fn add_endpoint(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<EndpointInput>,
) -> ApiResult {
    let (hit, endpoint) =
        state.registry.add_endpoint(&caller, AgentId::parse(&id)?, &input, if_match(&headers)?).await?;
    let location = format!("/agents/{}/endpoints/{endpoint}", hit.id());
    Ok(with_location(endpoint_response(&state, StatusCode::CREATED, &hit, endpoint)?, &location))
}

fn endpoint_response(state: &AppState, status: StatusCode, hit: &Hit, endpoint: EndpointId) -> ApiResult {
    let body =
        hit.endpoint_index(endpoint).and_then(|i| endpoint_json(hit, i, state.registry.now_millis())).ok_or_else(
            || RegistryError::EndpointNotFound { agent: hit.id().to_string(), endpoint: endpoint.to_string() },
        )?;
    Ok(with_etag(json_bytes(status, body), hit.revision()))
}

/// Read one endpoint with its live state.
#[utoipa::path(get, path = "/agents/{id}/endpoints/{eid}", tag = "endpoints",
    params(("id" = String, Path), ("eid" = String, Path)),
    responses((status = 200, body = EndpointView), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn get_endpoint(State(state): State<AppState>, Path((id, eid)): Path<(String, String)>) -> ApiResult {
    let (id, eid) = ids(&id, &eid)?;
    let hit = state.registry.find(id).await?;
    endpoint_response(&state, StatusCode::OK, &hit, eid)
}

/// Replace an endpoint's settings; its id and last-seen time are kept.
#[utoipa::path(put, path = "/agents/{id}/endpoints/{eid}", tag = "endpoints", security(("api_key" = [])), request_body = EndpointInput,
    params(("id" = String, Path), ("eid" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = EndpointView), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 412, body = Problem)))]
pub async fn update_endpoint(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path((id, eid)): Path<(String, String)>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<EndpointInput>,
) -> ApiResult {
    let (id, eid) = ids(&id, &eid)?;
    let hit = state.registry.update_endpoint(&caller, id, eid, &input, if_match(&headers)?).await?;
    endpoint_response(&state, StatusCode::OK, &hit, eid)
}

/// Remove an endpoint. The agent stays, even without endpoints.
#[utoipa::path(delete, path = "/agents/{id}/endpoints/{eid}", tag = "endpoints", security(("api_key" = [])),
    params(("id" = String, Path), ("eid" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 204), (status = 400, body = Problem), (status = 404, body = Problem), (status = 412, body = Problem)))]
pub async fn remove_endpoint(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path((id, eid)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let (id, eid) = ids(&id, &eid)?;
    state.registry.remove_endpoint(&caller, id, eid, if_match(&headers)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Heartbeat of a Persistent endpoint (409 for an Ephemeral one: renew it instead).
#[utoipa::path(post, path = "/agents/{id}/endpoints/{eid}/heartbeat", tag = "liveness", security(("api_key" = [])),
    params(("id" = String, Path), ("eid" = String, Path)),
    responses((status = 200, body = LivenessView), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
pub async fn heartbeat(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path((id, eid)): Path<(String, String)>,
) -> ApiResult {
    let (id, eid) = ids(&id, &eid)?;
    Ok(Json(state.registry.heartbeat(&caller, id, eid).await?).into_response())
}

/// Renew the lease of an Ephemeral endpoint (409 for a Persistent one: heartbeat it instead).
#[utoipa::path(post, path = "/agents/{id}/endpoints/{eid}/renew", tag = "liveness", security(("api_key" = [])),
    params(("id" = String, Path), ("eid" = String, Path)),
    responses((status = 200, body = LivenessView), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
pub async fn renew(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path((id, eid)): Path<(String, String)>,
) -> ApiResult {
    let (id, eid) = ids(&id, &eid)?;
    Ok(Json(state.registry.renew(&caller, id, eid).await?).into_response())
}

/// Heartbeat every Persistent endpoint of an agent in one call.
#[utoipa::path(post, path = "/agents/{id}/heartbeat", tag = "liveness", security(("api_key" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Vec<LivenessView>), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
pub async fn heartbeat_agent(State(state): State<AppState>, Auth(caller): Auth, Path(id): Path<String>) -> ApiResult {
    Ok(Json(state.registry.heartbeat_agent(&caller, AgentId::parse(&id)?).await?).into_response())
}

/// The discovery filters, for the OpenAPI document (parsed by `DiscoveryQuery::from_pairs`).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(dead_code, reason = "documents the query string; parsing is done by DiscoveryQuery")]
pub struct DiscoveryParams {
    /// Exact capability name, case-insensitive.
    capability: Option<String>,
    /// Capability name prefix, case-insensitive.
    #[param(rename = "capabilityPrefix")]
    capability_prefix: Option<String>,
    /// Part of a capability name, case-insensitive.
    #[param(rename = "capabilityContains")]
    capability_contains: Option<String>,
    /// Comma-separated or repeated; every tag must be on the agent or on one of its capabilities (case-insensitive).
    tags: Option<String>,
    /// `key:value`, repeatable; every pair must be among the agent's labels (exact).
    label: Option<String>,
    /// `A2A`, `MCP`, `ACP`, `Custom` (comma-separated: any of them). An endpoint must match.
    protocol: Option<String>,
    /// `Http`, `Amqp`, `AzureServiceBus` (comma-separated: any of them). An endpoint must match.
    transport: Option<String>,
    /// Words; each must start a word of the name, description, tags, or a capability's name, description or tags.
    q: Option<String>,
    /// Only live endpoints count and are returned (default true on /discover/agents, false on /agents).
    #[param(rename = "liveOnly")]
    live_only: Option<bool>,
    /// 1-based page number (default 1).
    page: Option<usize>,
    /// Items per page, 1 to 100 (default 20).
    #[param(rename = "pageSize")]
    page_size: Option<usize>,
    /// Opaque cursor from `nextCursor`, for deep paging (instead of `page`).
    cursor: Option<String>,
}

/// The new owner of an agent.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OwnerInput {
    owner_id: String,
}

/// Give an agent to another owner (Admin).
#[utoipa::path(post, path = "/agents/{id}/owner", tag = "agents", security(("api_key" = [])), request_body = OwnerInput,
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = AgentView), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 412, body = Problem)))]
pub async fn transfer_owner(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<OwnerInput>,
) -> ApiResult {
    let hit =
        state.registry.transfer_owner(&caller, AgentId::parse(&id)?, &input.owner_id, if_match(&headers)?).await?;
    Ok(agent_response(StatusCode::OK, &hit))
}
