//! A2A routes: the registry's own agent card, registered agents' cards (each agent resolvable as
//! an A2A base URL `<registry>/a2a/agents/{id}/`) in the A2A version a client asks for, card
//! listing and registration by card.

use agent_registry_core::RegistryError;
use agent_registry_core::model::{AgentId, Protocol, Transport};
use axum::extract::FromRequestParts;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
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

/// The query parameter that asks for the registered card byte for byte.
const ORIGINAL_PARAMETER: &str = "original";

/// The A2A version header and query parameter (A2A §3.6).
const VERSION_PARAMETER: &str = "A2A-Version";

/// The card a request asks for: `?original=true` for the registered bytes, else the version of
/// the `A2A-Version` query parameter, else of the `A2A-Version` header (the query wins: it is in
/// the URL a user configured, while SDKs send their own version in the header), else 0.3 (A2A
/// §3.6: no version means 0.3).
pub struct CardAsked(pub agent_registry_a2a::CardRequest);

impl<S: Send + Sync> FromRequestParts<S> for CardAsked {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = url::form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes()).into_owned();
        let (mut original, mut version) = (None, None);
        for (key, value) in query {
            if key == ORIGINAL_PARAMETER {
                original = Some(match value.trim() {
                    "" | "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(RegistryError::query(&key, "must be true or false").into()),
                });
            } else if key.eq_ignore_ascii_case(VERSION_PARAMETER) {
                version = Some(
                    agent_registry_a2a::CardRequest::from_version(Some(&value))
                        .map_err(|e| ApiError::from(RegistryError::query(VERSION_PARAMETER, e)))?,
                );
            }
        }
        if original == Some(true) {
            return Ok(Self(agent_registry_a2a::CardRequest::Original));
        }
        if let Some(version) = version {
            return Ok(Self(version));
        }
        let header = match parts.headers.get(VERSION_PARAMETER) {
            Some(value) => Some(value.to_str().map_err(|_| ApiError::bad_header(VERSION_PARAMETER, "is not ASCII"))?),
            None => None,
        };
        let request = agent_registry_a2a::CardRequest::from_version(header)
            .map_err(|e| ApiError::bad_header(VERSION_PARAMETER, e))?;
        Ok(Self(request))
    }
}

/// Whether a query parameter is one of [`CardAsked`]'s rather than a discovery filter.
fn is_card_parameter(key: &str) -> bool {
    key == ORIGINAL_PARAMETER || key.eq_ignore_ascii_case(VERSION_PARAMETER)
}

/// The A2A agent card of a registered agent, in the A2A version the client asks for
/// (`A2A-Version` header or query parameter; none means 0.3): the card it registered with, byte
/// for byte, when that card is in the version asked for, is signed, or `original=true` is asked;
/// else that card with the members of the asked-for version added (a dual-format card, as for
/// agents registered without a card). The answer varies with `A2A-Version`.
///
/// The agent's A2A base URL is `<registry>/a2a/agents/{id}/` (with the slash, so that clients
/// joining a relative card path the WHATWG way, like `@a2a-js/sdk`, stay under the agent): the
/// card is served at that URL without and with the slash, and at its
/// `.well-known/agent-card.json` (and v0.2's `agent.json`) beneath it.
#[utoipa::path(get, path = "/a2a/agents/{id}", tag = "a2a",
    params(("id" = String, Path),
        ("A2A-Version" = Option<String>, Header, description = "The A2A version of the card: 0.3 (also when absent) or 1.0"),
        ("A2A-Version" = Option<String>, Query, description = "The same as a query parameter; wins over the header"),
        ("original" = Option<bool>, Query, description = "`true`: the card as registered, byte for byte")),
    responses((status = 200, description = "The agent card", content_type = "application/json"),
        (status = 304, description = "Unchanged since the `If-None-Match` ETag"),
        (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn card(
    State(state): State<AppState>,
    CardAsked(asked): CardAsked,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let agent = state.registry.find(AgentId::parse(&id)?).await?.agent()?;
    let served = agent_registry_a2a::negotiated_card(&agent, asked)?;
    let mut response = documents::serve(&headers, served, CARD_TYPE, DOCUMENT_MAX_AGE_SECONDS);
    response.headers_mut().insert(header::VARY, HeaderValue::from_static(VERSION_PARAMETER));
    Ok(response)
}

/// The same card at the base URL with its slash and under the agent's own well-known paths.
pub async fn card_well_known(
    state: State<AppState>,
    asked: CardAsked,
    headers: HeaderMap,
    id: Path<String>,
) -> ApiResult {
    card(state, asked, headers, id).await
}

/// List agent cards, with the discovery filters (`liveOnly` defaults to true), each in the A2A
/// version asked for as by `GET /a2a/agents/{id}`.
#[utoipa::path(get, path = "/a2a/agents", tag = "a2a", params(super::agents::DiscoveryParams),
    responses((status = 200, description = "`{items: [{agentId, isLive, card}], totalCount, page, …, nextCursor}`"),
        (status = 400, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    reader: Discovering,
    CardAsked(asked): CardAsked,
    pairs: QueryPairs,
) -> ApiResult {
    let filters: Vec<_> = pairs.0.into_iter().filter(|(k, _)| !is_card_parameter(k)).collect();
    let mut query = documents::protocol_query(&filters, Protocol::A2A, true)?;
    // Cards exist for Http and Grpc interfaces only: queue-backed agents are listed at
    // /a2a/async/agents.
    if query.transports.iter().any(|t| !agent_registry_a2a::is_card_transport(*t)) {
        return Err(RegistryError::query(
            "transport",
            "A2A cards list Http and Grpc interfaces; see /a2a/async/agents",
        )
        .into());
    }
    if query.transports.is_empty() {
        query.transports = vec![Transport::Http, Transport::Grpc];
    }
    query.with_documents = false;
    let page = state.registry.search_as(reader.anonymous, &query)?;
    let body = documents::page(&page, "card", |hit| {
        let agent = hit.agent().ok()?;
        agent_registry_a2a::negotiated_card(&agent, asked).ok().map(|c| c.into_value())
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
