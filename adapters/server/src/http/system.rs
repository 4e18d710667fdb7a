//! Health, readiness and the API description.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;

/// Liveness of the process itself; checks nothing else.
#[utoipa::path(get, path = "/healthz", tag = "system", responses((status = 200, description = "The process is up")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: whether storage and the liveness store answer.
#[utoipa::path(get, path = "/readyz", tag = "system",
    responses((status = 200, description = "Ready"), (status = 503, description = "A backend is down")))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let (storage, liveness) = state.registry.check().await;
    let describe = |r: &agent_registry_core::Result<()>| match r {
        Ok(()) => json!({"status": "up"}),
        Err(e) => json!({"status": "down", "code": e.code()}),
    };
    let ready = storage.is_ok() && liveness.is_ok();
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "agents": state.registry.agent_count(),
        "checks": {"storage": describe(&storage), "liveness": describe(&liveness)},
    });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}
