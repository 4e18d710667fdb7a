//! Queued A2A routes (`/a2a/async/agents`): agents that take A2A tasks from a broker queue or
//! topic (RabbitMQ, Azure Service Bus), registered and served as the .NET agent registry's
//! `QueuedAgentCard` (see `agent_registry_a2a::translate_queued` and `queued_card`).

use agent_registry_core::RegistryError;
use agent_registry_core::model::{AgentId, Protocol, Transport};
use agent_registry_core::query::DiscoveryQuery;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::documents::{self, DOCUMENT_MAX_AGE_SECONDS, Submission};
use super::extract::{Auth, ClientAddress, QueryPairs, RawJson};
use super::problem::{ApiError, Problem};

type ApiResult = Result<Response, ApiError>;

const CARD_TYPE: &str = "application/json";

/// Register an agent by its queued A2A card.
///
/// The body is the bare card (as the .NET registry takes it) or `{"card": {...}}` beside the
/// registry's own fields (`liveness: {livenessModel, ttlSeconds, heartbeatIntervalSeconds}`,
/// `ownerId`, `permanent`); liveness may also be given as query parameters. `queueEndpoint`
/// becomes one A2A endpoint over `Amqp` (`rabbitmq`, `amqp`) or `AzureServiceBus`
/// (`azure-service-bus`, `servicebus`, `asb`) whose address is the broker address built from it;
/// any other technology is a 400 at `/queueEndpoint/technology`. Answers like `POST /agents`.
#[utoipa::path(post, path = "/a2a/async/agents", tag = "a2a", security(("api_key" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, description = "Registered", body = agent_registry_core::view::AgentView),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 409, body = Problem),
        (status = 422, description = "A skill breaks the A2A AgentSkill schema", body = Problem)))]
pub async fn register(
    State(state): State<AppState>,
    Auth(caller): Auth,
    headers: HeaderMap,
    pairs: QueryPairs,
    RawJson(body): RawJson,
) -> ApiResult {
    let submission = Submission::read(&body, "card", &pairs)?;
    let translation = agent_registry_a2a::translate_queued(&submission.document, &submission.base)?;
    let agent = submission.complete(translation, state.protocols.liveness_model);
    super::agents::register_input(&state, &caller, &headers, &agent).await
}

/// The queued A2A card of an agent: the one it registered with, byte for byte, or one built from
/// its first A2A endpoint over a queue transport. An agent without one is `404
/// no_protocol_document`.
#[utoipa::path(get, path = "/a2a/async/agents/{id}", tag = "a2a", params(("id" = String, Path)),
    responses((status = 200, description = "The queued agent card", content_type = "application/json"),
        (status = 304, description = "Unchanged since the `If-None-Match` ETag"),
        (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn card(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    let agent = state.registry.find(AgentId::parse(&id)?).await?.agent()?;
    let served = agent_registry_a2a::queued_card(&agent)?;
    Ok(documents::serve(&headers, served, CARD_TYPE, DOCUMENT_MAX_AGE_SECONDS))
}

/// List queued agent cards, with the discovery filters (`liveOnly` defaults to true; `transport`
/// may narrow to `Amqp` or `AzureServiceBus`). Only agents with an A2A endpoint over a queue
/// transport are listed and counted, so every item has a card.
#[utoipa::path(get, path = "/a2a/async/agents", tag = "a2a", params(super::agents::DiscoveryParams),
    responses((status = 200, description = "`{items: [{agentId, isLive, card}], totalCount, page, …, nextCursor}`"),
        (status = 400, body = Problem)))]
pub async fn list(State(state): State<AppState>, client: ClientAddress, pairs: QueryPairs) -> ApiResult {
    state.limits.discovery(client.0)?;
    let query = queued_query(&pairs.0)?;
    let page = state.registry.search(&query)?;
    let body = documents::page(&page, "card", |hit| {
        let agent = hit.agent().ok()?;
        agent_registry_a2a::queued_card(&agent).ok().map(|c| c.into_value())
    });
    Ok(axum::Json(body).into_response())
}

/// The discovery query of the queued list: A2A endpoints over a queue transport.
fn queued_query(pairs: &[(String, String)]) -> Result<DiscoveryQuery, ApiError> {
    let mut query = documents::protocol_query(pairs, Protocol::A2A, true)?;
    // Agents registered with an HTTP A2A card would match through their document; only queue
    // endpoints count here.
    query.with_documents = false;
    if query.transports.is_empty() {
        query.transports = vec![Transport::Amqp, Transport::AzureServiceBus];
    } else if query.transports.iter().any(|t| agent_registry_a2a::is_card_transport(*t)) {
        return Err(
            RegistryError::query("transport", "this route lists queue endpoints: Amqp or AzureServiceBus").into()
        );
    }
    Ok(query)
}
