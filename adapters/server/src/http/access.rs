//! The access log: one line per request (`agent_registry::access` at `info`), the request id
//! that ties the line, the answer (header and problem body) and the client's own logs together,
//! the HTTP metrics, and a warning or error for every 5xx answer.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;
use super::problem::ProblemCode;

tokio::task_local! {
    /// The id of the request this task is answering, for problem bodies.
    static CURRENT_ID: Arc<str>;
}

/// The id of the request being answered, when called while answering one.
pub fn current_request_id() -> Option<String> {
    CURRENT_ID.try_with(|id| id.to_string()).ok()
}

/// Who the request authenticated as, filled in by the credential check (`identify`) so that
/// the access log can name the actor without checking the credentials twice.
#[derive(Clone, Default)]
pub struct ActorSlot(pub Arc<OnceLock<String>>);

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A client's own id is kept if it is short and printable; anything else is replaced.
fn acceptable(id: &HeaderValue) -> bool {
    let bytes = id.as_bytes();
    !bytes.is_empty() && bytes.len() <= 128 && bytes.iter().all(u8::is_ascii_graphic)
}

/// Logs the request once it is answered: request id, method, matched route (never the query,
/// which may carry values a client considers private), status, latency, client address (after
/// trusted proxies), actor and body bytes when known. The id is echoed in `X-Request-Id`.
pub async fn log(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let (mut parts, body) = request.into_parts();
    let id = parts.headers.get(&REQUEST_ID).filter(|id| acceptable(id)).cloned().unwrap_or_else(|| {
        HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).unwrap_or(HeaderValue::from_static("-"))
    });
    parts.headers.insert(REQUEST_ID, id.clone());
    let actor = ActorSlot::default();
    parts.extensions.insert(actor.clone());
    let client = state.limits.client(&parts).map_or_else(|| "-".to_owned(), |ip| ip.to_string());
    let method = parts.method.clone();
    let route = parts.extensions.get::<MatchedPath>().map_or("(no route)", MatchedPath::as_str).to_owned();
    let path = parts.uri.path().to_owned();
    let request_id: Arc<str> = id.to_str().unwrap_or("-").into();
    let span = crate::telemetry::request_span(&parts.headers, &method, &route, &request_id);
    let answering = CURRENT_ID.scope(request_id.clone(), next.run(Request::from_parts(parts, body)));
    let mut response = tracing::Instrument::instrument(answering, span.clone()).await;
    response.headers_mut().insert(REQUEST_ID, id);
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    let latency = started.elapsed();
    crate::metrics::record_request(&method, &route, status, latency);
    let bytes = response.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).unwrap_or("-");
    tracing::info!(
        target: "agent_registry::access",
        request_id = %request_id,
        %method,
        %route,
        status,
        latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
        %client,
        actor = %actor.0.get().map_or("anonymous", String::as_str),
        %bytes,
        "request"
    );
    if status >= 500 {
        let code = response.extensions().get::<ProblemCode>().map_or("-", |c| c.0);
        // An outage (503, 507) is the backend's, and retried by clients: a warning. Anything
        // else is this service's fault.
        if matches!(status, 503 | 507) {
            tracing::warn!(request_id = %request_id, %method, %path, %route, status, %code, "server error response");
        } else {
            tracing::error!(request_id = %request_id, %method, %path, %route, status, %code, "server error response");
        }
    }
    response
}
