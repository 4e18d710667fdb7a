//! Queue facts over HTTP: `GET /agents/{id}/endpoints/{eid}/queue` for one `Amqp` endpoint, and
//! `include=queue` on discovery, which adds a `queue` object to every `Amqp` endpoint of a page.
//! The facts come from [`crate::queues::QueueFacts`] (the configured broker only, bounded time,
//! a short cache).

use std::collections::HashMap;

use agent_registry_core::RegistryError;
use agent_registry_core::error::catalogue;
use agent_registry_core::model::{AgentId, EndpointId, Transport};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::AppState;
use super::extract::{ClientAddress, QueryPairs};
use super::problem::{ApiError, Problem};
use crate::queues::QueueFactsView;

type ApiResult = Result<Response, ApiError>;

/// What the broker says about an `Amqp` endpoint's queue.
///
/// `{exists, messageCount, consumerCount, checkedAt}` read with a passive `queue.declare` on the
/// broker of `--amqp-url`, reused for 2 s. When the registry cannot tell (the queue is on another
/// broker, the address names an exchange, the broker is down or slow: at most 1 s is spent),
/// `exists` is `null` and `error` says why; the status is 200 either way. Public, like
/// discovery, and counted against the discovery rate limit.
#[utoipa::path(get, path = "/agents/{id}/endpoints/{eid}/queue", tag = "endpoints",
    params(("id" = String, Path), ("eid" = String, Path)),
    responses((status = 200, body = QueueFactsView), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "`not_an_amqp_endpoint`: only Amqp endpoints have queue facts", body = Problem),
        (status = 429, body = Problem)))]
pub async fn facts(
    State(state): State<AppState>,
    client: ClientAddress,
    Path((id, eid)): Path<(String, String)>,
) -> ApiResult {
    state.limits.discovery(client.0)?;
    let (id, eid) = (AgentId::parse(&id)?, EndpointId::parse(&eid)?);
    let agent = state.registry.find(id).await?.agent()?;
    let endpoint = agent
        .endpoint(eid)
        .ok_or_else(|| RegistryError::EndpointNotFound { agent: id.to_string(), endpoint: eid.to_string() })?;
    if endpoint.transport != Transport::Amqp {
        return Err(ApiError::http(
            catalogue::NOT_AN_AMQP_ENDPOINT,
            format!(
                "endpoint {eid} uses the {} transport; queue facts are read for Amqp endpoints only",
                endpoint.transport
            ),
        ));
    }
    Ok(Json(state.queues.of(&endpoint.address).await).into_response())
}

/// Takes `include` out of a discovery query string: `true` when it asks for `queue` (the only
/// thing discovery can include). Comma-separated and repeated values are read.
pub fn take_include(pairs: &mut QueryPairs) -> Result<bool, ApiError> {
    let mut queue = false;
    let mut failure = None;
    pairs.0.retain(|(key, value)| {
        if key != "include" {
            return true;
        }
        for item in value.split(',').map(str::trim) {
            match item {
                "queue" => queue = true,
                other => {
                    failure.get_or_insert_with(|| {
                        RegistryError::query("include", format!("`{other}` cannot be included; only `queue` can"))
                    });
                }
            }
        }
        false
    });
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(queue),
    }
}

/// A discovery page with a `queue` object added to each `Amqp` endpoint: the page is rendered as
/// usual, then read back and completed (only when `include=queue` asks for it, so discovery
/// itself stays on its pre-rendered path). Facts of different addresses are read concurrently.
pub async fn with_queue_facts(state: &AppState, page: Response) -> ApiResult {
    let (mut parts, body) = page.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|e| RegistryError::internal_from("reading a rendered page", e))?;
    let mut page: Value = serde_json::from_slice(&bytes)
        .map_err(|e| RegistryError::internal_from("a rendered page does not parse", e))?;
    let mut addresses: Vec<String> = amqp_endpoints(&mut page)
        .filter_map(|endpoint| endpoint.get("address").and_then(Value::as_str).map(str::to_owned))
        .collect();
    addresses.sort_unstable();
    addresses.dedup();
    let facts = futures_util::future::join_all(addresses.iter().map(|address| state.queues.of(address))).await;
    let facts: HashMap<&str, QueueFactsView> = addresses.iter().map(String::as_str).zip(facts).collect();
    for endpoint in amqp_endpoints(&mut page) {
        let address = endpoint.get("address").and_then(Value::as_str).unwrap_or_default();
        if let (Some(view), Some(object)) = (facts.get(address), endpoint.as_object_mut()) {
            object.insert("queue".into(), serde_json::to_value(view).unwrap_or(Value::Null));
        }
    }
    let body = serde_json::to_vec(&page).map_err(|e| RegistryError::internal_from("serializing a page", e))?;
    parts.headers.remove(header::CONTENT_LENGTH);
    Ok(Response::from_parts(parts, Body::from(body)))
}

/// The `Amqp` endpoints of a page's agents.
fn amqp_endpoints(page: &mut Value) -> impl Iterator<Item = &mut Value> {
    page.get_mut("items")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(|agent| agent.get_mut("endpoints").and_then(Value::as_array_mut))
        .flatten()
        .filter(|endpoint| endpoint.get("transport").and_then(Value::as_str) == Some("Amqp"))
}
