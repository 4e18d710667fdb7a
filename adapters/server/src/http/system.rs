//! Health, readiness and the API description.

use std::sync::Arc;

use agent_registry_core::RegistryError;
use agent_registry_core::error::catalogue;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::AppState;
use super::extract::Auth;
use super::problem::{ApiError, Problem};

/// Liveness of the process itself; checks nothing else.
#[utoipa::path(get, path = "/healthz", tag = "system", responses((status = 200, description = "The process is up")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: whether storage and the liveness store answer, and how current the index is.
#[utoipa::path(get, path = "/readyz", tag = "system",
    responses((status = 200, description = "Ready"), (status = 503, description = "A backend is down")))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let (storage, liveness) = state.registry.check().await;
    let describe = |r: &agent_registry_core::Result<()>| match r {
        Ok(()) => json!({"status": "up"}),
        Err(e) => json!({"status": "down", "code": e.code(), "detail": e.to_string()}),
    };
    let ready = storage.is_ok() && liveness.is_ok();
    let mut index = json!({"agents": state.registry.agent_count()});
    if let Some(age) = state.registry.staleness() {
        index["staleSeconds"] = age.as_secs().into();
    }
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": {"storage": describe(&storage), "liveness": describe(&liveness)},
        "index": index,
    });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

/// What this replica holds, how much room its store takes and how long it keeps history, for
/// operators sizing it (Admin).
#[utoipa::path(get, path = "/status", tag = "system", security(("api_key" = [])),
    responses((status = 200, description = "Counts, sizes and retention"), (status = 401, body = Problem),
        (status = 403, body = Problem)))]
pub async fn status(State(state): State<AppState>, Auth(caller): Auth) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let storage = state.registry.store_sizes().await?;
    let tasks = state.gateway.status(&caller).await?;
    let config = state.registry.config();
    let hours = |secs: i64| secs / 3600;
    Ok(Json(json!({
        "agents": state.registry.agent_count(),
        "revision": state.registry.applied_revision(),
        "storage": storage,
        "tasks": tasks,
        "retention": {
            "changeHours": hours(config.change_retention_secs),
            "auditDays": config.audit_retention_secs / 86_400,
            "idempotencyHours": hours(config.idempotency_retention_secs),
        },
    })))
}

/// Why the registry could not open yet, while it keeps retrying at start.
#[derive(Clone, Default)]
pub struct Waiting(Arc<std::sync::Mutex<Option<Value>>>);

impl Waiting {
    pub fn failed(&self, e: &RegistryError) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(json!({"status": "down", "code": e.code(), "detail": e.to_string()}));
    }
}

/// What the listener serves until the registry has opened: the process is alive, but not
/// ready, and every other route says so.
pub fn starting_router(waiting: Waiting) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route(
            "/readyz",
            get(move || {
                let waiting = waiting.clone();
                async move {
                    let body = json!({"status": "starting", "checks": {"backends": waiting.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()}});
                    (StatusCode::SERVICE_UNAVAILABLE, Json(body))
                }
            }),
        )
        .fallback(|uri: Uri| async move {
            ApiError::http(
                catalogue::NOT_READY,
                format!("the registry is starting and cannot serve {} yet; retry shortly", uri.path()),
            )
        })
}
