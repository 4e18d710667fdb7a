//! Health, readiness and the API description.

use std::sync::Arc;

use agent_registry_core::RegistryError;
use agent_registry_core::error::catalogue;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri, header};
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

/// Readiness: whether storage and the liveness store answer, and how current the index is. Once
/// the process is stopping (SIGTERM, during `--shutdown-delay-seconds`) it answers 503
/// `stopping`, while every other route is still served.
#[utoipa::path(get, path = "/readyz", tag = "system",
    responses((status = 200, description = "Ready"), (status = 503, description = "A backend is down, or the process is stopping")))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    if state.lifecycle.phase() != crate::lifecycle::Phase::Serving {
        let body = json!({"status": "stopping", "detail": "this replica is shutting down; send requests to another"});
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    let (storage, liveness) = state.registry.check().await;
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

/// A backend's state, as `/readyz` and `/status` report it.
fn describe(check: &agent_registry_core::Result<()>) -> Value {
    match check {
        Ok(()) => json!({"status": "up"}),
        Err(e) => json!({"status": "down", "code": e.code(), "detail": e.to_string()}),
    }
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
    let (storage_check, liveness_check) = state.registry.check().await;
    let census = state.registry.census();
    let shared = state.registry.change_signal().is_some();
    Ok(Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "commit": env!("AGENT_REGISTRY_COMMIT"),
        "uptimeSeconds": state.started.elapsed().as_secs(),
        "agents": census.agents,
        "index": {
            "agents": census.agents, "liveAgents": census.live_agents,
            "staleAgents": census.agents - census.live_agents,
            "endpoints": census.endpoints, "liveEndpoints": census.live_endpoints,
            "staleEndpoints": census.endpoints - census.live_endpoints,
        },
        "watchStreams": state.watch.open_streams(),
        "tasksRunning": state.gateway.running(),
        "revision": state.registry.applied_revision(),
        "changeLog": {"revision": state.registry.applied_revision(), "lag": state.registry.change_log_lag()},
        "backends": {
            "storage": {"kind": if shared { "postgres" } else { "sqlite" }, "state": describe(&storage_check)},
            "liveness": {"kind": if state.registry.liveness_is_shared() { "redis" } else { "in-process" },
                         "state": describe(&liveness_check)},
        },
        "configuration": {
            "publicUrl": &*state.public_url,
            "metrics": if state.metrics.on_main_listener { "main listener" } else { "own listener" },
            "tracesExported": crate::telemetry::exporting(),
            "bootstrapEnabled": state.bootstrap.is_some(),
            "bearerTokens": state.jwt.is_some(),
        },
        "storage": storage,
        "tasks": tasks,
        "retention": {
            "changeHours": hours(config.change_retention_secs),
            "auditDays": config.audit_retention_secs / 86_400,
            "idempotencyHours": hours(config.idempotency_retention_secs),
        },
    })))
}

/// A consistent copy of the embedded SQLite database, taken while the registry serves and
/// writes (`VACUUM INTO`): save it as a file, and restore by starting a stopped registry on it
/// (Admin). A registry on PostgreSQL answers `501 backup_not_supported`: back it up with
/// `pg_dump`.
#[utoipa::path(get, path = "/backup", tag = "system", security(("api_key" = [])),
    responses((status = 200, description = "The SQLite database file", content_type = "application/vnd.sqlite3"),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 501, description = "The database is PostgreSQL: use pg_dump", body = Problem),
        (status = 507, body = Problem)))]
pub async fn backup(State(state): State<AppState>, Auth(caller): Auth) -> Result<Response, ApiError> {
    caller.require_admin()?;
    let Some(path) = state.registry.snapshot().await? else {
        return Err(ApiError::http(
            catalogue::BACKUP_NOT_SUPPORTED,
            "this registry keeps its data in PostgreSQL: back it up with pg_dump (see docs/operations.md, \"Backup and restore\")",
        ));
    };
    let opened = tokio::fs::File::open(&path).await;
    // Unlinked at once: the open file stays readable and its space is freed when it closes,
    // however the response ends (a client that hangs up included).
    let _ = tokio::fs::remove_file(&path).await;
    let file = opened.map_err(|e| agent_registry_core::RegistryError::internal_from("reading the backup", e))?;
    let length = file.metadata().await.map(|m| m.len()).ok();
    let chunks = futures_util::stream::unfold(Some(file), |file| async move {
        use tokio::io::AsyncReadExt;
        let mut file = file?;
        let mut chunk = vec![0; 256 * 1024];
        match file.read(&mut chunk).await {
            Ok(0) => None,
            Ok(n) => {
                chunk.truncate(n);
                Some((Ok(axum::body::Bytes::from(chunk)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    let name = format!("attachment; filename=\"agent-registry-{}.db\"", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"));
    let mut response = axum::body::Body::from_stream(chunks).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/vnd.sqlite3"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(value) = HeaderValue::from_str(&name) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    if let Some(length) = length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    Ok(response)
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
