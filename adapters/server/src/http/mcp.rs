//! MCP routes: registration by Server Card or `server.json`, server cards of registered servers
//! (`/mcp/servers/{id}/server-card`, as the Server Card draft places them), the MCP Registry
//! read API that VS Code and GitHub Copilot use (`/v0.1`, `/v0`), and the AI Catalog.

use agent_registry_core::RegistryError;
use agent_registry_core::error::catalogue;
use agent_registry_core::model::{AgentId, Protocol};
use agent_registry_core::protocol::Served;
use agent_registry_core::query::DiscoveryQuery;
use agent_registry_mcp::SERVER_CARD_TYPE;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::documents::{self, DOCUMENT_MAX_AGE_SECONDS, PublicBase, Submission};
use super::extract::{Auth, ClientAddress, Discovering, QueryPairs, RawJson};
use super::problem::{ApiError, Problem};

type ApiResult = Result<Response, ApiError>;

/// Register an MCP server by its Server Card or its MCP Registry `server.json`.
///
/// The body is the bare document, or `{"serverCard": {...}}` beside the registry's own fields
/// (`liveness`, `ownerId`, `permanent`). `server.json` is read by the schema its `$schema`
/// names. Remotes become MCP endpoints; tools become capabilities. A `server.json` whose name
/// and version are registered already is refused (409).
#[utoipa::path(post, path = "/mcp/servers", tag = "mcp", security(("api_key" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, description = "Registered", body = agent_registry_core::view::AgentView),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 409, body = Problem),
        (status = 422, description = "The document breaks its schema", body = Problem)))]
pub async fn register(
    State(state): State<AppState>,
    Auth(caller): Auth,
    headers: HeaderMap,
    pairs: QueryPairs,
    RawJson(body): RawJson,
) -> ApiResult {
    let submission = Submission::read(&body, "serverCard", &pairs)?;
    let translation = agent_registry_mcp::translate(&submission.document, &submission.base)?;
    let mut agent = submission.complete(translation, state.protocols.liveness_model);
    agent.claims.extend(agent_registry_mcp::server_claim(&agent));
    super::agents::register_input(&state, &caller, &headers, &agent).await
}

/// List MCP servers as Server Cards, with the discovery filters (`liveOnly` defaults to true;
/// with `liveOnly=false` servers offered only as packages are listed too).
#[utoipa::path(get, path = "/mcp/servers", tag = "mcp", params(super::agents::DiscoveryParams),
    responses((status = 200, description = "`{items: [{agentId, isLive, serverCard}], totalCount, page, …}`"),
        (status = 400, body = Problem)))]
pub async fn list(State(state): State<AppState>, reader: Discovering, pairs: QueryPairs) -> ApiResult {
    let query = documents::protocol_query(&pairs.0, Protocol::MCP, true)?;
    let page = state.registry.search_as(reader.anonymous, &query)?;
    let body = documents::page(&page, "serverCard", |hit| {
        agent_registry_mcp::server_card(&hit.agent().ok()?).ok().map(Served::into_value)
    });
    Ok(axum::Json(body).into_response())
}

/// The Server Card of a registered MCP server, as `application/json`.
#[utoipa::path(get, path = "/mcp/servers/{id}", tag = "mcp", params(("id" = String, Path)),
    responses((status = 200, description = "The Server Card"), (status = 304, description = "Unchanged"),
        (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn card(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    let agent = state.registry.find(AgentId::parse(&id)?).await?.agent()?;
    Ok(documents::serve(
        &headers,
        agent_registry_mcp::server_card(&agent)?,
        "application/json",
        DOCUMENT_MAX_AGE_SECONDS,
    ))
}

/// The Server Card where the Server Card draft places it (`<server>/server-card`), with its own
/// media type, CORS and `ETag`.
#[utoipa::path(get, path = "/mcp/servers/{id}/server-card", tag = "mcp", params(("id" = String, Path)),
    responses((status = 200, description = "The Server Card", content_type = "application/mcp-server-card+json"),
        (status = 304, description = "Unchanged"), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn server_card(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    let agent = state.registry.find(AgentId::parse(&id)?).await?.agent()?;
    Ok(documents::serve(&headers, agent_registry_mcp::server_card(&agent)?, SERVER_CARD_TYPE, 3600))
}

/// The server's `server.json` (the MCP Registry format).
#[utoipa::path(get, path = "/mcp/servers/{id}/server.json", tag = "mcp", params(("id" = String, Path)),
    responses((status = 200, description = "The server.json document"), (status = 304, description = "Unchanged"),
        (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn server_json(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    let agent = state.registry.find(AgentId::parse(&id)?).await?.agent()?;
    Ok(documents::serve(
        &headers,
        agent_registry_mcp::server_json(&agent)?,
        "application/json",
        DOCUMENT_MAX_AGE_SECONDS,
    ))
}

/// MCP Registry API: list servers (`limit`, `cursor`, `search`, `version=latest`,
/// `updated_since`, `include_deleted`), in the official `{servers, metadata}` envelope.
#[utoipa::path(get, path = "/v0.1/servers", tag = "mcp-registry",
    params(("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query), ("search" = Option<String>, Query),
        ("version" = Option<String>, Query), ("updated_since" = Option<String>, Query),
        ("include_deleted" = Option<bool>, Query)),
    responses((status = 200, description = "ServerList (`limit` is held to 1..=100; any cursor is a position)"),
        (status = 400, description = "A parameter of the wrong type (`limit=ten`, `updated_since=yesterday`)", body = Problem)))]
pub async fn registry_list(State(state): State<AppState>, client: ClientAddress, pairs: QueryPairs) -> ApiResult {
    state.limits.discovery(client.0)?;
    let query = agent_registry_mcp::ListQuery::from_pairs(pairs.0.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    Ok(axum::Json(state.protocols.catalog(&state.registry)?.list(&query)).into_response())
}

/// MCP Registry API: every version of one server, newest first (`name` URL-encoded, `/` as `%2F`).
#[utoipa::path(get, path = "/v0.1/servers/{name}/versions", tag = "mcp-registry", params(("name" = String, Path)),
    responses((status = 200, description = "ServerList"),
        (status = 404, description = "`{\"error\": \"Server not found\"}` beside the problem fields", body = Problem)))]
pub async fn registry_versions(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult {
    let catalog = state.protocols.catalog(&state.registry)?;
    Ok(catalog.versions(&name).map_or_else(|| server_not_found(&name), |list| axum::Json(list).into_response()))
}

/// MCP Registry API: one version of a server (`latest` names the latest).
#[utoipa::path(get, path = "/v0.1/servers/{name}/versions/{version}", tag = "mcp-registry",
    params(("name" = String, Path), ("version" = String, Path)),
    responses((status = 200, description = "ServerResponse"),
        (status = 404, description = "`{\"error\": \"Server not found\"}` beside the problem fields", body = Problem)))]
pub async fn registry_version(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult {
    let catalog = state.protocols.catalog(&state.registry)?;
    Ok(catalog
        .version(&name, &version)
        .map_or_else(|| server_not_found(&name), |entry| axum::Json(entry).into_response()))
}

/// The 404 of the MCP Registry API as the official OpenAPI documents it: `application/json` with
/// `{"error": "Server not found"}`. The problem fields (`code` `server_not_found`) stay beside it
/// for this registry's own clients; the document's objects are open.
fn server_not_found(name: &str) -> Response {
    let entry = catalogue::SERVER_NOT_FOUND;
    let problem = Problem::new(entry, format!("no MCP server named `{name}` (in that version)"), Vec::new());
    let mut body = serde_json::to_value(problem).unwrap_or_default();
    body["error"] = serde_json::Value::from("Server not found");
    (axum::http::StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

/// The AI Catalog (`/.well-known/ai-catalog.json`): every live registered agent and MCP server,
/// each pointing at its card.
#[utoipa::path(get, path = "/.well-known/ai-catalog.json", tag = "mcp",
    responses((status = 200, description = "AI Catalog", content_type = "application/ai-catalog+json")))]
pub async fn ai_catalog(State(state): State<AppState>, PublicBase(base): PublicBase, headers: HeaderMap) -> ApiResult {
    let catalog = state.protocols.ai_catalog(&state.registry, &base, || render_ai_catalog(&state, &base))?;
    Ok(documents::serve(&headers, Served::Verbatim(catalog.to_string()), "application/ai-catalog+json", 60))
}

/// The AI Catalog as of the registry's current revision (liveness changes are revisions too).
fn render_ai_catalog(state: &AppState, base: &str) -> Result<String, RegistryError> {
    let live_over_http = |protocol| -> Result<Vec<agent_registry_core::model::Agent>, RegistryError> {
        let mut query = DiscoveryQuery::all(true);
        query.protocols = vec![protocol];
        // Cards and server cards are for Http endpoints; queues have no card URL to point at.
        query.transports = vec![agent_registry_core::model::Transport::Http];
        query.page_size = usize::MAX / 2;
        Ok(state.registry.search(&query)?.hits.iter().filter_map(|hit| hit.agent().ok()).collect())
    };
    let (servers, agents) = (live_over_http(Protocol::MCP)?, live_over_http(Protocol::A2A)?);
    Ok(agent_registry_mcp::ai_catalog(base, &servers, &agents))
}
