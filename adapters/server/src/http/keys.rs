//! API keys: issue (Admin), list, read, revoke, and the bootstrap of the first Admin key.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_registry_core::auth::{ApiKey, Scope, constant_time_eq, hash_secret, to_datetime};
use agent_registry_core::error::catalogue;
use agent_registry_core::quota::Quota;
use agent_registry_core::{KeyRequest, RegistryError};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::AppState;
use super::extract::{Auth, ClientAddress, JsonBody, Params};
use super::problem::{ApiError, Problem};

type ApiResult = Result<Response, ApiError>;

/// A key to issue.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyInput {
    /// Whose agents the key manages (an Agent key), or who holds it (an Admin key); the
    /// caller's own owner id when absent (as the .NET registry issued every key).
    owner_id: Option<String>,
    /// `Admin` or `Agent` (also the .NET codes `1` and `0`); `Agent` when absent.
    scope: Option<Scope>,
    #[serde(default)]
    description: String,
    /// When the key stops working (RFC 3339); never when absent.
    expires_at: Option<DateTime<Utc>>,
    /// What the owner may keep registered through this key; the registry's default when absent.
    quota: Option<Quota>,
}

/// A key as listed: never its secret.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyView {
    id: Uuid,
    /// The key's first characters after `ar_`, to recognise it.
    prefix: String,
    owner_id: String,
    scope: Scope,
    description: String,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    active: bool,
    /// The quota given to this key (`null`: the registry's default).
    quota: Option<Quota>,
    /// The secret, only in the answer that issued the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    /// The same secret under the .NET registry's name, for scripts written against it.
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_key: Option<String>,
    /// The key's first 10 characters (`ar_` and 7 more), as the .NET registry showed them.
    key_prefix: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct KeyList {
    items: Vec<KeyView>,
}

fn view(state: &AppState, key: &ApiKey, secret: Option<String>) -> KeyView {
    KeyView {
        id: key.id,
        prefix: format!("ar_{}", key.prefix),
        owner_id: key.owner_id.clone(),
        scope: key.scope,
        description: key.description.clone(),
        created_at: to_datetime(key.created_at),
        expires_at: key.expires_at.map(to_datetime),
        revoked_at: key.revoked_at.map(to_datetime),
        active: key.is_active(state.registry.now_millis()),
        quota: key.quota,
        raw_key: secret.clone(),
        key: secret,
        key_prefix: dotnet_prefix(&key.prefix),
    }
}

/// The .NET registry's `keyPrefix`: the first 10 characters of the key (the visible prefix
/// the registry keeps is longer, so every key has one).
fn dotnet_prefix(prefix: &str) -> String {
    format!("ar_{}", prefix.chars().take(7).collect::<String>())
}

fn issued(state: &AppState, key: &ApiKey, secret: String) -> Response {
    let mut response = (StatusCode::CREATED, Json(view(state, key, Some(secret)))).into_response();
    if let Ok(location) = format!("/api-keys/{}", key.id).parse() {
        response.headers_mut().insert(axum::http::header::LOCATION, location);
    }
    // The secret is in this body only: no cache may keep it.
    response.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    response
}

/// Issue an API key (Admin). The answer is the only place the secret (`key`) ever appears.
#[utoipa::path(post, path = "/api-keys", tag = "api-keys", security(("api_key" = [])), request_body = KeyInput,
    responses((status = 201, body = KeyView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem)))]
pub async fn issue(
    State(state): State<AppState>,
    Auth(caller): Auth,
    JsonBody(input): JsonBody<KeyInput>,
) -> ApiResult {
    let request = KeyRequest {
        owner_id: input.owner_id.unwrap_or_else(|| caller.owner.clone()),
        scope: input.scope.unwrap_or(Scope::Agent),
        description: input.description,
        expires_at: input.expires_at.map(|t| t.timestamp_millis()),
        quota: input.quota,
    };
    let (key, secret) = state.registry.issue_key(&caller, request).await?;
    Ok(issued(&state, &key, secret))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct KeyFilter {
    /// Only keys of this owner.
    owner: Option<String>,
    /// Only active (true) or only revoked and expired (false) keys.
    active: Option<bool>,
}

/// List API keys, newest first, without their secrets (Admin).
#[utoipa::path(get, path = "/api-keys", tag = "api-keys", security(("api_key" = [])), params(KeyFilter),
    responses((status = 200, body = KeyList), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list(State(state): State<AppState>, Auth(caller): Auth, Params(filter): Params<KeyFilter>) -> ApiResult {
    let keys = state.registry.list_keys(&caller, filter.owner.as_deref(), filter.active)?;
    Ok(Json(KeyList { items: keys.iter().map(|k| view(&state, k, None)).collect() }).into_response())
}

fn key_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(id).map_err(|_| RegistryError::InvalidId { what: "API key", value: id.to_owned() }.into())
}

/// Read one API key (Admin, or the key itself).
#[utoipa::path(get, path = "/api-keys/{id}", tag = "api-keys", security(("api_key" = [])), params(("id" = String, Path)),
    responses((status = 200, body = KeyView), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn get(State(state): State<AppState>, Auth(caller): Auth, Path(id): Path<String>) -> ApiResult {
    let key = state.registry.get_key(&caller, key_id(&id)?)?;
    Ok(Json(view(&state, &key, None)).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RevokeOptions {
    /// Revoke the key even if it is the last active Admin key (afterwards only a repeated
    /// bootstrap can issue an Admin key again).
    #[serde(default)]
    force: bool,
}

/// Revoke an API key (Admin, or the key itself); it stops working on every replica within the
/// follow interval. Revoking a revoked key is `409 api_key_revoked`; revoking the last active
/// Admin key is `409 last_admin_key` unless `force=true`.
#[utoipa::path(delete, path = "/api-keys/{id}", tag = "api-keys", security(("api_key" = [])),
    params(("id" = String, Path), RevokeOptions),
    responses((status = 204, description = "Revoked"), (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
pub async fn revoke(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    Params(options): Params<RevokeOptions>,
) -> ApiResult {
    state.registry.revoke_key(&caller, key_id(&id)?, options.force).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// How the first Admin key may be issued: configured by `--bootstrap-token`.
pub struct Bootstrap {
    token_hash: String,
    /// Issue another Admin key even when one exists (`--allow-repeated-bootstrap`).
    again: bool,
    /// Times of recent wrong tokens per client address, to slow down guessing: a guesser
    /// locks out itself, not the operator holding the right token.
    failures: parking_lot::Mutex<HashMap<Option<IpAddr>, VecDeque<Instant>>>,
}

/// Wrong tokens allowed per window before every attempt is refused until the window passes.
const BOOTSTRAP_FAILURES: usize = 5;
const BOOTSTRAP_WINDOW: Duration = Duration::from_secs(60);
/// Addresses whose failures are remembered at most; past it the oldest memories are dropped.
const BOOTSTRAP_ADDRESSES: usize = 10_000;

impl Bootstrap {
    pub fn new(token: &str, again: bool) -> Arc<Self> {
        Arc::new(Self { token_hash: hash_secret(token), again, failures: Default::default() })
    }
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BootstrapInput {
    /// Who holds the key (`admin` when absent); the .NET registry's README sends it.
    #[serde(default)]
    owner_id: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

/// Issue the first Admin key with the `X-Bootstrap-Token` configured at start. `404` when no
/// token is configured; `409` once an Admin key exists; wrong tokens are `401` and, after five a
/// minute, `429`.
#[utoipa::path(post, path = "/api-keys/bootstrap", tag = "api-keys",
    params(("X-Bootstrap-Token" = String, Header, description = "The --bootstrap-token")),
    responses((status = 201, body = KeyView), (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 429, body = Problem)))]
pub async fn bootstrap(
    State(state): State<AppState>,
    ClientAddress(source): ClientAddress,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult {
    let Some(config) = state.bootstrap.clone() else {
        return Err(ApiError::http(catalogue::ROUTE_NOT_FOUND, "no route for /api-keys/bootstrap"));
    };
    {
        let mut all = config.failures.lock();
        all.retain(|_, times| {
            while times.front().is_some_and(|t| t.elapsed() > BOOTSTRAP_WINDOW) {
                times.pop_front();
            }
            !times.is_empty()
        });
        if let Some(failures) = all.get(&source)
            && failures.len() >= BOOTSTRAP_FAILURES
        {
            let oldest = failures.front().map_or(BOOTSTRAP_WINDOW, |t| BOOTSTRAP_WINDOW.saturating_sub(t.elapsed()));
            crate::metrics::rate_limited("bootstrap");
            return Err(ApiError::rate_limited(oldest.as_secs()));
        }
    }
    let given = headers.get("x-bootstrap-token").and_then(|v| v.to_str().ok()).unwrap_or_default();
    // Hashes have one length, so the comparison takes the same time whatever was sent.
    if !constant_time_eq(hash_secret(given).as_bytes(), config.token_hash.as_bytes()) {
        let mut all = config.failures.lock();
        if all.len() >= BOOTSTRAP_ADDRESSES && !all.contains_key(&source) {
            all.clear();
        }
        all.entry(source).or_default().push_back(Instant::now());
        drop(all);
        tracing::warn!("a wrong bootstrap token was sent");
        return Err(RegistryError::Unauthenticated("wrong or missing X-Bootstrap-Token".into()).into());
    }
    let input: BootstrapInput = if body.iter().all(u8::is_ascii_whitespace) {
        BootstrapInput::default()
    } else {
        super::extract::parse_json(&body)?
    };
    let description = input.description.unwrap_or_else(|| "bootstrap".into());
    let (key, secret) = state
        .registry
        .bootstrap_key(input.owner_id, description, config.again, source.map(|ip| ip.to_string()))
        .await?;
    Ok(issued(&state, &key, secret))
}
