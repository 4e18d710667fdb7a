//! A2A routes: the registry's own agent card, registered agents' cards (each agent resolvable as
//! an A2A base URL `<registry>/a2a/agents/{id}`), card listing and registration by card.

use agent_registry_core::RegistryError;
use agent_registry_core::model::{AgentId, Protocol};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::documents::{self, DOCUMENT_MAX_AGE_SECONDS, PublicBase, Submission};
use super::extract::{Auth, Discovering, QueryPairs, RawJson};
use super::problem::{ApiError, Problem};

type ApiResult = Result<Response, ApiError>;

/// The well-known card is served as `application/json`, as the A2A SDKs do (A2A §8.2).
const CARD_TYPE: &str = "application/json";

/// The registry's own A2A agent card (also at the legacy `/.well-known/agent.json`).
#[utoipa::path(get, path = "/.well-known/agent-card.json", tag = "a2a",
    responses((status = 200, description = "The registry's agent card", content_type = "application/json"),
        (status = 304, description = "Unchanged since the `If-None-Match` ETag")))]
pub async fn registry_card(PublicBase(base): PublicBase, headers: HeaderMap) -> Response {
    let card = agent_registry_a2a::registry_card(&base, env!("CARGO_PKG_VERSION"));
    documents::serve(&headers, agent_registry_core::protocol::Served::Built(card), CARD_TYPE, 3600)
}

/// The A2A agent card of a registered agent: the card it registered with, byte for byte, or one
/// built from its A2A endpoints. Also served at `{id}/.well-known/agent-card.json`, so the URL
/// `<registry>/a2a/agents/{id}` works as the agent's base URL for A2A card resolvers.
#[utoipa::path(get, path = "/a2a/agents/{id}", tag = "a2a", params(("id" = String, Path)),
    responses((status = 200, description = "The agent card", content_type = "application/json"),
        (status = 304, description = "Unchanged since the `If-None-Match` ETag"),
        (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn card(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    let agent = state.registry.find(AgentId::parse(&id)?).await?.agent()?;
    let served = agent_registry_a2a::card(&agent)?;
    Ok(documents::serve(&headers, served, CARD_TYPE, DOCUMENT_MAX_AGE_SECONDS))
}

/// The same card under the agent's own well-known path.
pub async fn card_well_known(state: State<AppState>, headers: HeaderMap, id: Path<String>) -> ApiResult {
    card(state, headers, id).await
}

/// List agent cards, with the discovery filters (`liveOnly` defaults to true).
#[utoipa::path(get, path = "/a2a/agents", tag = "a2a", params(super::agents::DiscoveryParams),
    responses((status = 200, description = "`{items: [{agentId, isLive, card}], totalCount, page, …, nextCursor}`"),
        (status = 400, body = Problem)))]
pub async fn list(State(state): State<AppState>, reader: Discovering, pairs: QueryPairs) -> ApiResult {
    let mut query = documents::protocol_query(&pairs.0, Protocol::A2A, true)?;
    // Cards exist for Http interfaces only: queue-backed agents are listed at /a2a/async/agents.
    if query.transports.iter().any(|t| *t != agent_registry_core::model::Transport::Http) {
        return Err(RegistryError::query("transport", "A2A cards list Http interfaces; see /a2a/async/agents").into());
    }
    query.transports = vec![agent_registry_core::model::Transport::Http];
    query.with_documents = false;
    let page = state.registry.search_as(reader.anonymous, &query)?;
    let body = documents::page(&page, "card", |hit| {
        let agent = hit.agent().ok()?;
        agent_registry_a2a::card(&agent).ok().map(|c| c.into_value())
    });
    Ok(axum::Json(body).into_response())
}

/// Register an agent by its A2A card.
///
/// The body is the bare card, or `{"card": {...}}` beside the registry's own fields
/// (`liveness: {livenessModel, ttlSeconds, heartbeatIntervalSeconds}`, `ownerId`, `permanent`);
/// liveness may also be given as query parameters. Skills become capabilities, each interface an
/// endpoint. Answers like `POST /agents`: the agent with endpoint ids and liveness settings.
#[utoipa::path(post, path = "/a2a/agents", tag = "a2a", security(("api_key" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, description = "Registered", body = agent_registry_core::view::AgentView),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 409, body = Problem),
        (status = 422, description = "The card breaks the A2A schema of its version", body = Problem)))]
pub async fn register(
    State(state): State<AppState>,
    Auth(caller): Auth,
    headers: HeaderMap,
    pairs: QueryPairs,
    RawJson(body): RawJson,
) -> ApiResult {
    let submission = Submission::read(&body, "card", &pairs)?;
    let mut translation = agent_registry_a2a::translate(&submission.document, &submission.base)?;
    translation.origin.signature_verified = state.protocols.verify_card(&submission.document).await;
    let agent = submission.complete(translation, state.protocols.liveness_model);
    super::agents::register_input(&state, &caller, &headers, &agent).await
}
