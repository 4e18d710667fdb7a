//! The .NET agent registry's wire format, under `/dotnet`: the routes its C# client
//! (`MarimerLLC.AgentRegistry.Client`), its Python client and its README's runbooks call, served by
//! the same handlers and use-cases as the main routes, with the answers reshaped where the .NET
//! registry's differed. Point a .NET client's base URL at `<registry>/dotnet`.
//!
//! What differs from the main routes (see docs/migrating-from-dotnet.md):
//! - `protocolMetadata` is a string holding JSON (the C# client declares it `string?`), `null`
//!   when empty; protocol `Custom` is written `Unknown`;
//! - `capability` matches a substring of a capability name, case-insensitively; `page` below 1
//!   is 1 and `pageSize` is clamped to 1..100 instead of refused;
//! - heartbeat and renew answer `204`; API keys carry `scope` as the integer code (`0` Agent,
//!   `1` Admin), `isActive` and `lastUsedAt`, and `GET /api-keys` is an array;
//! - `GET /mcp/servers[/{id}]` answer the .NET `McpServerCard`, `GET /acp/agents[/{id}]` ACP
//!   manifests with `id`, `endpoint_url` and `is_live`, both lists with .NET paging fields;
//! - an `Amqp` endpoint whose address is a bare queue name (as the .NET registry stored them) is
//!   read as that queue on the default vhost of the `--amqp-url` broker
//!   ([`agent_registry_core::address::qualify_bare_queue`]).
//!
//! Errors stay RFC 9457 problem+json with the main routes' codes: the .NET clients only look at
//! the status.

use agent_registry_core::RegistryError;
use agent_registry_core::address::qualify_bare_queue;
use agent_registry_core::input::{AgentInput, EndpointInput};
use agent_registry_core::model::{AgentId, Protocol};
use agent_registry_core::query::{DiscoveryQuery, MAX_PAGE_SIZE};
use agent_registry_core::view::agent_json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use super::AppState;
use super::extract::{Auth, ClientAddress, Discovering, JsonBody, Params, QueryPairs, RawJson, Reader, parse_json};
use super::problem::ApiError;
use super::{agents, keys};

type ApiResult = Result<Response, ApiError>;

/// The .NET surface at the root of a listener of its own (`--dotnet-listen`), for the C# client:
/// its `HttpClient` resolves absolute paths (`/agents`) against the host, dropping any base
/// path. `/agents` there is `/dotnet/agents` of `service`, with all of its limits and layers.
pub fn at_root(service: Router) -> Router {
    let under_dotnet = |mut request: axum::extract::Request| {
        let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
        if let Ok(uri) = format!("/dotnet{path}").parse() {
            *request.uri_mut() = uri;
        }
        request
    };
    Router::new().fallback_service(tower::ServiceBuilder::new().map_request(under_dotnet).service(service))
}

/// The routes, relative to `/dotnet`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/agents", post(register))
        .route("/agents/{id}", get(get_agent).put(update).delete(deregister))
        .route("/agents/{id}/endpoints", post(add_endpoint))
        .route("/agents/{id}/endpoints/{eid}", axum::routing::delete(remove_endpoint))
        .route("/agents/{id}/endpoints/{eid}/heartbeat", post(heartbeat))
        .route("/agents/{id}/endpoints/{eid}/renew", post(renew))
        .route("/discover/agents", get(discover))
        .route("/api-keys", post(issue_key).get(list_keys))
        .route("/api-keys/bootstrap", post(bootstrap))
        .route("/api-keys/{id}", axum::routing::delete(revoke_key))
        .route("/mcp/servers", get(mcp_servers))
        .route("/mcp/servers/{id}", get(mcp_server))
        .route("/acp/agents", get(acp_agents))
        .route("/acp/agents/{id}", get(acp_agent))
}

/// A successful JSON answer of a main handler with its body rewritten by `reshape`; errors and
/// bodies that are not JSON pass unchanged.
async fn reshaped(result: ApiResult, reshape: impl FnOnce(&mut Value)) -> Response {
    let response = match result {
        Ok(response) => response,
        Err(e) => return e.into_response(),
    };
    if !response.status().is_success() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(e) => return ApiError::from(RegistryError::internal(format!("reading an answer: {e}"))).into_response(),
    };
    let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    reshape(&mut value);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    Response::from_parts(parts, Body::from(value.to_string()))
}

/// An agent as the .NET registry wrote it.
fn agent(value: &mut Value) {
    if let Some(endpoints) = value.get_mut("endpoints").and_then(Value::as_array_mut) {
        endpoints.iter_mut().for_each(endpoint);
    }
}

/// An endpoint as the .NET registry wrote it: `protocolMetadata` as JSON text.
fn endpoint(value: &mut Value) {
    let Some(object) = value.as_object_mut() else { return };
    let text = match object.remove("protocolMetadata") {
        Some(Value::Object(metadata)) if !metadata.is_empty() => Value::String(Value::Object(metadata).to_string()),
        Some(Value::String(text)) => Value::String(text),
        _ => Value::Null,
    };
    object.insert("protocolMetadata".into(), text);
    if object.get("protocol").and_then(Value::as_str) == Some(Protocol::Custom.as_str()) {
        object.insert("protocol".into(), "Unknown".into());
    }
}

/// A discovery page: the main page's fields are the .NET ones; only its agents change.
fn page(value: &mut Value) {
    if let Some(items) = value.get_mut("items").and_then(Value::as_array_mut) {
        items.iter_mut().for_each(agent);
    }
}

/// An API key as the .NET registry wrote it: the scope's integer code, `isActive`, `lastUsedAt`.
fn key(value: &mut Value) {
    let Some(object) = value.as_object_mut() else { return };
    let code = match object.get("scope").and_then(Value::as_str) {
        Some("Admin") => 1,
        _ => 0,
    };
    object.insert("scope".into(), code.into());
    let active = object.get("active").cloned().unwrap_or(Value::Bool(true));
    object.insert("isActive".into(), active);
    object.entry("lastUsedAt").or_insert(Value::Null);
}

/// Endpoints whose address is a bare queue name become queues on the `--amqp-url` broker.
fn migrate_queue_names<'a>(state: &AppState, endpoints: impl Iterator<Item = &'a mut Value>) {
    let broker = state.queues.broker().origin();
    for endpoint in endpoints {
        let amqp = match endpoint.get("transport") {
            Some(Value::Number(n)) => n.as_u64() == Some(1),
            Some(Value::String(s)) => s.eq_ignore_ascii_case("amqp"),
            _ => false,
        };
        let qualified = endpoint.get("address").and_then(Value::as_str).and_then(|a| qualify_bare_queue(a, &broker));
        if let (true, Some(address)) = (amqp, qualified) {
            endpoint["address"] = Value::String(address);
        }
    }
}

/// A body read as JSON, rewritten, then parsed as the main route parses it (same pointers).
fn rewritten<T: serde::de::DeserializeOwned>(body: &[u8], rewrite: impl FnOnce(&mut Value)) -> Result<T, ApiError> {
    let mut value: Value = parse_json(body)?;
    rewrite(&mut value);
    parse_json(value.to_string().as_bytes())
}

async fn register(
    State(state): State<AppState>,
    Auth(caller): Auth,
    headers: HeaderMap,
    RawJson(body): RawJson,
) -> Response {
    let result = async {
        let input: AgentInput = rewritten(&body, |v| {
            if let Some(endpoints) = v.get_mut("endpoints").and_then(Value::as_array_mut) {
                migrate_queue_names(&state, endpoints.iter_mut());
            }
        })?;
        agents::register_input(&state, &caller, &headers, &input).await
    };
    reshaped(result.await, agent).await
}

async fn get_agent(state: State<AppState>, reader: Reader, id: Path<String>) -> Response {
    reshaped(agents::get(state, reader, id).await, agent).await
}

async fn update(
    state: State<AppState>,
    auth: Auth,
    id: Path<String>,
    headers: HeaderMap,
    body: JsonBody<AgentInput>,
) -> Response {
    reshaped(agents::update(state, auth, id, headers, body).await, agent).await
}

async fn deregister(state: State<AppState>, auth: Auth, id: Path<String>, headers: HeaderMap) -> Response {
    agents::deregister(state, auth, id, headers).await.into_response()
}

async fn add_endpoint(
    State(state): State<AppState>,
    auth: Auth,
    id: Path<String>,
    headers: HeaderMap,
    RawJson(body): RawJson,
) -> Response {
    let input: EndpointInput = match rewritten(&body, |v| migrate_queue_names(&state, std::iter::once(v))) {
        Ok(input) => input,
        Err(e) => return e.into_response(),
    };
    reshaped(agents::add_endpoint(State(state), auth, id, headers, JsonBody(input)).await, endpoint).await
}

async fn remove_endpoint(
    state: State<AppState>,
    auth: Auth,
    ids: Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    agents::remove_endpoint(state, auth, ids, headers).await.into_response()
}

/// The .NET registry answered liveness calls with `204` and no body.
fn no_content(result: ApiResult) -> Response {
    result.map_or_else(IntoResponse::into_response, |_| StatusCode::NO_CONTENT.into_response())
}

async fn heartbeat(state: State<AppState>, auth: Auth, ids: Path<(String, String)>) -> Response {
    no_content(agents::heartbeat(state, auth, ids).await)
}

async fn renew(state: State<AppState>, auth: Auth, ids: Path<(String, String)>) -> Response {
    no_content(agents::renew(state, auth, ids).await)
}

/// The .NET query string as the main routes read it: `capability` is a substring, `page`
/// below 1 is 1, `pageSize` is clamped to 1..100 (values that are no integer stay, and are
/// refused as on the main routes).
fn dotnet_pairs(pairs: QueryPairs) -> QueryPairs {
    let clamp =
        |value: &str, low: i64, high: i64| value.trim().parse::<i64>().ok().map(|n| n.clamp(low, high).to_string());
    let max = i64::try_from(MAX_PAGE_SIZE).unwrap_or(i64::MAX);
    QueryPairs(
        pairs
            .0
            .into_iter()
            .map(|(key, value)| match key.as_str() {
                "capability" => ("capabilityContains".to_owned(), value),
                "page" => {
                    let page = clamp(&value, 1, i64::MAX).unwrap_or(value);
                    (key, page)
                }
                "pageSize" => {
                    let size = clamp(&value, 1, max).unwrap_or(value);
                    (key, size)
                }
                _ => (key, value),
            })
            .collect(),
    )
}

async fn discover(state: State<AppState>, reader: Discovering, pairs: QueryPairs) -> Response {
    reshaped(agents::discover(state, reader, dotnet_pairs(pairs)).await, page).await
}

async fn issue_key(state: State<AppState>, auth: Auth, body: JsonBody<keys::KeyInput>) -> Response {
    reshaped(keys::issue(state, auth, body).await, key).await
}

async fn list_keys(state: State<AppState>, auth: Auth, filter: Params<keys::KeyFilter>) -> Response {
    reshaped(keys::list(state, auth, filter).await, |value| {
        let mut items = value.get_mut("items").map(Value::take).unwrap_or_else(|| json!([]));
        items.as_array_mut().into_iter().flatten().for_each(key);
        *value = items;
    })
    .await
}

async fn revoke_key(
    state: State<AppState>,
    auth: Auth,
    id: Path<String>,
    options: Params<keys::RevokeOptions>,
) -> Response {
    keys::revoke(state, auth, id, options).await.into_response()
}

async fn bootstrap(
    state: State<AppState>,
    client: ClientAddress,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    reshaped(keys::bootstrap(state, client, headers, body).await, key).await
}

/// The agent's endpoints of `protocol` over HTTP, and the primary one (the first live one, else
/// the first), as the .NET registry chose the endpoint a document describes.
fn primary(agent: &Value, protocol: Protocol) -> Option<&Value> {
    let endpoints: Vec<&Value> = agent["endpoints"]
        .as_array()?
        .iter()
        .filter(|e| e["protocol"] == protocol.as_str() && e["transport"] == "Http")
        .collect();
    endpoints.iter().find(|e| e["isLive"] == true).or_else(|| endpoints.first()).copied()
}

/// The .NET registry's `McpServerCard` of an agent (`None`: no MCP endpoint over HTTP).
fn mcp_card(agent: &Value) -> Option<Value> {
    let endpoint = primary(agent, Protocol::MCP)?;
    let empty = Map::new();
    let metadata = endpoint["protocolMetadata"].as_object().unwrap_or(&empty);
    let tagged = |tag: &str| {
        agent["capabilities"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["tags"].as_array().is_some_and(|t| t.iter().any(|t| t == tag))))
    };
    let capabilities = metadata.get("capabilities").cloned().unwrap_or_else(|| {
        let mut inferred = Map::new();
        if tagged("tool") {
            inferred.insert("tools".into(), json!({"listChanged": false}));
        }
        if tagged("resource") {
            inferred.insert("resources".into(), json!({"subscribe": false, "listChanged": false}));
        }
        if tagged("prompt") {
            inferred.insert("prompts".into(), json!({"listChanged": false}));
        }
        Value::Object(inferred)
    });
    let version = metadata.get("serverVersion").or_else(|| agent.get("version").filter(|v| v.is_string()));
    let mut card = json!({
        "id": agent["id"],
        "mcpVersion": metadata.get("mcpVersion").cloned().unwrap_or_else(|| "2025-11-25".into()),
        "serverInfo": {"name": agent["name"], "version": version.cloned().unwrap_or_else(|| "1.0.0".into())},
        "endpoints": {"streamableHttp": endpoint["address"]},
        "capabilities": capabilities,
        "instructions": metadata.get("instructions").unwrap_or(&agent["description"]),
        "isLive": endpoint["isLive"].as_bool().unwrap_or(false),
    });
    for field in ["tools", "resources", "prompts", "authentication"] {
        if let Some(value) = metadata.get(field).filter(|v| !v.is_null()) {
            card[field] = value.clone();
        }
    }
    Some(card)
}

/// An ACP manifest with the registry additions of the .NET registry (`id`, `endpoint_url`,
/// `is_live`); `None`: no ACP endpoint over HTTP.
fn acp_manifest(hit: &agent_registry_core::index::Hit, agent: &Value) -> Result<Option<Value>, ApiError> {
    let Some(endpoint) = primary(agent, Protocol::ACP) else { return Ok(None) };
    let domain = hit.agent()?;
    let mut manifest = agent_registry_acp::manifest(&domain, &agent_registry_acp::acp_name(&domain))?.into_value();
    if let Some(object) = manifest.as_object_mut() {
        object.insert("id".into(), agent["id"].clone());
        object.insert("endpoint_url".into(), endpoint["address"].clone());
        object.insert("is_live".into(), endpoint["isLive"].as_bool().unwrap_or(false).into());
    }
    Ok(Some(manifest))
}

fn agent_value(hit: &agent_registry_core::index::Hit, anonymous: bool) -> Result<Value, ApiError> {
    serde_json::from_slice(&agent_json(hit, anonymous))
        .map_err(|e| RegistryError::internal(format!("an agent's JSON does not parse: {e}")).into())
}

fn no_document(id: &str, protocol: Protocol) -> ApiError {
    RegistryError::NoProtocolDocument { agent: id.to_owned(), protocol }.into()
}

async fn mcp_server(State(state): State<AppState>, reader: Reader, Path(id): Path<String>) -> ApiResult {
    let hit = state.registry.find(AgentId::parse(&id)?).await?;
    let agent = agent_value(&hit, reader.anonymous)?;
    let card = mcp_card(&agent).ok_or_else(|| no_document(&id, Protocol::MCP))?;
    Ok(axum::Json(card).into_response())
}

async fn acp_agent(State(state): State<AppState>, reader: Reader, Path(id): Path<String>) -> ApiResult {
    let hit = state.registry.find(AgentId::parse(&id)?).await?;
    let agent = agent_value(&hit, reader.anonymous)?;
    let manifest = acp_manifest(&hit, &agent)?.ok_or_else(|| no_document(&id, Protocol::ACP))?;
    Ok(axum::Json(manifest).into_response())
}

/// A protocol listing as the .NET registry paged it: the discovery filters the route admits
/// (`capability`, `tags`, `liveOnly`, `page`, `pageSize`), its protocol over HTTP.
fn listing(
    state: &AppState,
    reader: &Discovering,
    pairs: QueryPairs,
    protocol: Protocol,
    items: &str,
    document: impl Fn(&agent_registry_core::index::Hit, &Value) -> Result<Option<Value>, ApiError>,
) -> ApiResult {
    let mut pairs = dotnet_pairs(pairs).0;
    pairs.retain(|(k, _)| k != "protocol" && k != "transport");
    pairs.push(("protocol".into(), protocol.as_str().into()));
    pairs.push(("transport".into(), "Http".into()));
    let query = DiscoveryQuery::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())), true, false)?;
    let found = state.registry.search_as(reader.anonymous, &query)?;
    let mut documents = Vec::with_capacity(found.hits.len());
    for hit in &found.hits {
        if let Some(document) = document(hit, &agent_value(hit, reader.anonymous)?)? {
            documents.push(document);
        }
    }
    let total_pages = found.total.div_ceil(found.page_size.max(1));
    let mut answer = json!({
        "totalCount": found.total,
        "page": found.page,
        "pageSize": found.page_size,
        "totalPages": total_pages,
        "hasNextPage": found.page < total_pages,
    });
    answer[items] = Value::Array(documents);
    Ok(axum::Json(answer).into_response())
}

async fn mcp_servers(State(state): State<AppState>, reader: Discovering, pairs: QueryPairs) -> ApiResult {
    listing(&state, &reader, pairs, Protocol::MCP, "items", |_, agent| Ok(mcp_card(agent)))
}

async fn acp_agents(State(state): State<AppState>, reader: Discovering, pairs: QueryPairs) -> ApiResult {
    listing(&state, &reader, pairs, Protocol::ACP, "agents", acp_manifest)
}
