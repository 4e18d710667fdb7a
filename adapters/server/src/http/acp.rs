//! ACP routes under `/acp`, so that an ACP client whose base URL is `<registry>/acp` lists and
//! reads the registered agents with its ordinary calls (`GET /agents`, `GET /agents/{name}`).

use agent_registry_core::RegistryError;
use agent_registry_core::index::Hit;
use agent_registry_core::model::{AgentId, Protocol};
use agent_registry_core::protocol::Served;
use agent_registry_core::query::Position;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::documents::{self, DOCUMENT_MAX_AGE_SECONDS, Submission};
use super::extract::{Auth, ClientAddress, Discovering, QueryPairs, RawJson};
use super::problem::{ApiError, Problem};

type ApiResult = Result<Response, ApiError>;

/// ACP's own bound on `limit` (`GET /agents` in the ACP 0.2.0 OpenAPI); also what a request
/// without `limit` gets, where ACP's default would be 10 (see [`agent_registry_acp::MAX_LIST`]).
const MAX_LIMIT: usize = agent_registry_acp::MAX_LIST;

/// The largest problem body rewritten as an ACP error (problem bodies are small).
const MAX_ERROR_BYTES: usize = 64 * 1024;

/// Every failed answer under `/acp` (including unknown routes such as `POST /acp/runs`) is an
/// ACP `Error` object, `{code: not_found | invalid_input | server_error, message, data}`, with
/// the problem's members beside it: ACP clients (acp-sdk's `Client`) read failures that way.
pub async fn acp_errors(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let path = request.uri().path();
    let is_acp = path == "/acp" || path.starts_with("/acp/");
    let is_runs = path == "/acp/runs" || path.starts_with("/acp/runs/");
    let response = next.run(request).await;
    let is_problem = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/problem+json"));
    if !is_acp || !is_problem {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_ERROR_BYTES).await else {
        return (parts.status, "").into_response();
    };
    let Ok(serde_json::Value::Object(mut problem)) = serde_json::from_slice(&bytes) else {
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    };
    if is_runs && matches!(parts.status.as_u16(), 404 | 405) {
        problem.insert(
            "detail".into(),
            json!(
                "the registry lists ACP agents but does not run them: send the run to the agent's ACP server, \
                 named by the `Link: <url>; rel=\"service\"` header of GET /acp/agents/{name}"
            ),
        );
    }
    let error = agent_registry_acp::error_object(parts.status.as_u16(), problem);
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(error.to_string()))
}

/// ACP's liveness probe of a server.
#[utoipa::path(get, path = "/acp/ping", tag = "acp", responses((status = 200, description = "`{}`")))]
pub async fn ping() -> Response {
    axum::Json(json!({})).into_response()
}

/// Register an agent by its ACP manifest: `{"manifest": {...}, "endpointUrl": "<ACP server base URL>"}`
/// (plus `liveness`, `ownerId`, `permanent`). The manifest's name is kept; the agent's ACP name is
/// its RFC 1123 form, made unique with a `-2`, `-3`, … suffix when another agent holds it already
/// (decided by the registry under its write lock, so concurrent registrations get distinct names).
#[utoipa::path(post, path = "/acp/agents", tag = "acp", security(("api_key" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, description = "Registered", body = agent_registry_core::view::AgentView),
        (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 422, description = "The manifest breaks the ACP schema", body = Problem)))]
pub async fn register(
    State(state): State<AppState>,
    Auth(caller): Auth,
    headers: HeaderMap,
    pairs: QueryPairs,
    RawJson(body): RawJson,
) -> ApiResult {
    let submission = Submission::read(&body, "manifest", &pairs)?;
    let endpoint_url = submission.endpoint_url.clone().ok_or_else(|| {
        RegistryError::field("/endpointUrl", "is required: the base URL of the ACP server that runs the agent")
    })?;
    let translation = agent_registry_acp::translate(&submission.document, &submission.base, &endpoint_url)?;
    let agent = submission.complete(translation, state.protocols.liveness_model);
    super::agents::register_input(&state, &caller, &headers, &agent).await
}

/// List ACP agent manifests: ACP's `limit` (1–1000) and `offset`, the discovery filters, and
/// `domain` (a `metadata.domains` entry). `liveOnly` defaults to true. Without `limit` the answer
/// holds every match up to 1000 (ACP's default of 10 is not applied: the reference server
/// ignores `limit` and its client never pages, so it would see ten agents of many).
#[utoipa::path(get, path = "/acp/agents", tag = "acp",
    params(("limit" = Option<u32>, Query), ("offset" = Option<u32>, Query), ("domain" = Option<String>, Query),
        super::agents::DiscoveryParams),
    responses((status = 200, description = "`{agents: [AgentManifest]}`"), (status = 400, body = Problem)))]
pub async fn list(State(state): State<AppState>, reader: Discovering, pairs: QueryPairs) -> ApiResult {
    let mut rest = Vec::new();
    let (mut limit, mut offset, mut domains) = (MAX_LIMIT, 0, Vec::new());
    for (key, value) in &pairs.0 {
        let number =
            |max: usize| {
                value.trim().parse::<usize>().ok().filter(|n| *n <= max).ok_or_else(|| {
                    ApiError::from(RegistryError::query(key, format!("must be a whole number up to {max}")))
                })
            };
        match key.as_str() {
            "limit" => limit = number(MAX_LIMIT)?.max(1),
            "offset" => offset = number(usize::MAX / 2)?,
            "domain" => domains.push(agent_registry_acp::domain_tag(value)),
            "page" | "pageSize" | "cursor" => {
                return Err(RegistryError::query(key, "ACP pages with `limit` and `offset`").into());
            }
            _ => rest.push((key.clone(), value.clone())),
        }
    }
    let mut query = documents::protocol_query(&rest, Protocol::ACP, true)?;
    query.tags.extend(domains);
    query.page_size = limit;
    query.position = Position::Offset(offset);
    let page = state.registry.search_as(reader.anonymous, &query)?;
    let agents: Vec<_> = page.hits.iter().filter_map(|hit| manifest_of(hit).ok().map(Served::into_value)).collect();
    Ok(axum::Json(json!({ "agents": agents })).into_response())
}

fn manifest_of(hit: &Hit) -> Result<Served, ApiError> {
    let agent = hit.agent()?;
    Ok(agent_registry_acp::manifest(&agent, &agent_registry_acp::acp_name(&agent))?)
}

/// One ACP manifest, by the agent's ACP name (as listed), its original name, or its id.
#[utoipa::path(get, path = "/acp/agents/{name}", tag = "acp", params(("name" = String, Path)),
    responses((status = 200, description = "AgentManifest; a `Link: <ACP server URL>; rel=\"service\"` header \
        names where its runs go", headers(("Link" = String))), (status = 304, description = "Unchanged"),
        (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    client: ClientAddress,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult {
    // A name that is no label is looked for among all ACP agents: limited like discovery.
    state.limits.discovery(client.0)?;
    let hit = match AgentId::parse(&name) {
        Ok(id) => state.registry.find(id).await?,
        Err(_) => agent_registry_acp::find(&state.registry, &name)?.ok_or(RegistryError::AgentNotFound(name))?,
    };
    let agent = hit.agent()?;
    let served = agent_registry_acp::manifest(&agent, &agent_registry_acp::acp_name(&agent))?;
    let mut response = documents::serve(&headers, served, "application/json", DOCUMENT_MAX_AGE_SECONDS);
    // Where ACP clients send the agent's runs (RFC 8288; the relation is IANA's `service`).
    if let Some(link) = agent_registry_acp::endpoint_url(&agent).and_then(|url| {
        axum::http::HeaderValue::from_str(&format!("<{url}>; rel=\"service\"; title=\"ACP server\"")).ok()
    }) {
        response.headers_mut().insert(axum::http::header::LINK, link);
    }
    Ok(response)
}
