//! Request extractors. Validation of the HTTP envelope (content type, size, JSON syntax, header
//! formats) happens here, so handlers only see well-formed input.

use agent_registry_core::auth::Caller;
use agent_registry_core::error::catalogue;
use agent_registry_core::input::escape_pointer;
use agent_registry_core::query::DiscoveryQuery;
use agent_registry_core::{FieldError, RegistryError};
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use super::AppState;
use super::problem::ApiError;

/// Query parameters deserialized into `T`; a parameter that is unknown or malformed is `400
/// invalid_query` pointing at that parameter.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer = serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer).map(Params).map_err(|e| {
            let detail = e.inner().to_string();
            let parameter = match e.path().to_string() {
                path if path != "." => path,
                _ => unknown_field(&detail).unwrap_or_default().to_owned(),
            };
            RegistryError::query(&parameter, detail).into()
        })
    }
}

/// The name serde gives in "unknown field `name`, expected …".
fn unknown_field(detail: &str) -> Option<&str> {
    detail.strip_prefix("unknown field `")?.split('`').next()
}

/// A JSON body, with `415` for other media types, `413` beyond the size limit, and `400` naming
/// the exact field (as a JSON pointer) for syntax and type errors.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let RawJson(bytes) = RawJson::from_request(req, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// The bytes of a JSON body (media type and size checked, no key repeated in an object, syntax
/// not yet): for documents that must be kept exactly as sent.
pub struct RawJson(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawJson {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::http(
                catalogue::UNSUPPORTED_MEDIA_TYPE,
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::http(
                    catalogue::PAYLOAD_TOO_LARGE,
                    format!("the body is larger than {} bytes", agent_registry_core::input::limits::BODY_BYTES),
                )
            } else {
                ApiError::http(catalogue::UNREADABLE_BODY, rejection.body_text())
            }
        })?;
        refuse_repeated_keys(&bytes)?;
        Ok(Self(bytes))
    }
}

/// Whether the body is declared JSON (`application/json` or `application/*+json`).
pub fn is_json(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).and_then(|v| v.split(';').next()).is_some_and(|m| {
        let m = m.trim().to_ascii_lowercase();
        m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
    })
}

/// `400` at the pointer of a key an object of the body repeats (every JSON body is checked,
/// the MCP endpoint's too: see `crate::json`).
pub fn refuse_repeated_keys(bytes: &[u8]) -> Result<(), ApiError> {
    match crate::json::repeated_key(bytes) {
        None => Ok(()),
        Some(pointer) => Err(ApiError::Http {
            code: catalogue::VALIDATION_FAILED,
            detail: format!("{pointer}: the key appears twice in its object; JSON keys must be unique"),
            errors: vec![FieldError::new(pointer, "appears twice in its object; JSON keys must be unique")],
        }),
    }
}

/// Parses JSON, reporting syntax errors with their position and type errors with their pointer.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::http(catalogue::MALFORMED_JSON, "the request body is empty"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let pointer = pointer_of(e.path());
        let inner = e.into_inner();
        // A body that is valid JSON but not of the expected shape (serde reports some shape
        // errors, an integer where an enum was expected, as syntax errors) fails validation.
        if inner.is_data() || (!inner.is_eof() && is_valid_json(bytes)) {
            ApiError::Http {
                code: catalogue::VALIDATION_FAILED,
                detail: format!("{pointer}: {inner}"),
                errors: vec![FieldError::new(pointer, strip_position(&inner.to_string()))],
            }
        } else {
            malformed(&inner)
        }
    })?;
    de.end().map_err(|e| malformed(&e))?;
    Ok(value)
}

fn is_valid_json(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
}

fn malformed(e: &serde_json::Error) -> ApiError {
    ApiError::http(catalogue::MALFORMED_JSON, format!("the body is not valid JSON: {e}"))
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in path.iter() {
        pointer.push('/');
        match segment {
            Segment::Seq { index } => pointer.push_str(&index.to_string()),
            Segment::Map { key } | Segment::Enum { variant: key } => pointer.push_str(&escape_pointer(key)),
            Segment::Unknown => pointer.push('?'),
        }
    }
    pointer
}

/// The raw query string as `key=value` pairs (repeated keys allowed).
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let raw = parts.uri.query().unwrap_or_default();
        Ok(Self(url::form_urlencoded::parse(raw.as_bytes()).into_owned().collect()))
    }
}

impl QueryPairs {
    pub fn discovery(&self, live_only_default: bool, allow_owner: bool) -> Result<DiscoveryQuery, ApiError> {
        Ok(DiscoveryQuery::from_pairs(
            self.0.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            live_only_default,
            allow_owner,
        )?)
    }
}

/// `If-Match` as a revision: `"7"`, `W/"7"` and `7` name revision 7; `*` or no header match any.
pub fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| ApiError::bad_header("If-Match", "is not ASCII"))?.trim();
    if text == "*" {
        return Ok(None);
    }
    let tag = text.trim_start_matches("W/").trim_matches('"');
    tag.parse::<u64>()
        .map(Some)
        .map_err(|_| ApiError::bad_header("If-Match", "must be an ETag this registry issued (the agent's revision)"))
}

/// Whether `If-None-Match` names `etag` (weak or strong, in any of its lists) or is `*`.
pub fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| tag.trim() == "*" || tag.trim().trim_start_matches("W/") == etag)
}

/// `Idempotency-Key`: 1 to 255 visible ASCII characters.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().map_err(|_| ApiError::bad_header("Idempotency-Key", "is not ASCII"))?.trim();
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::bad_header("Idempotency-Key", "must be 1 to 255 visible ASCII characters"));
    }
    Ok(Some(key.to_owned()))
}

/// The authenticated caller of a management route, from `X-Api-Key` or a bearer token.
pub struct Auth(pub Caller);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let client = state.limits.client(parts);
        state.limits.management_address(client)?;
        let caller = identify(parts, state, client.map(|ip| ip.to_string())).await?;
        state.limits.management_key(&caller.actor)?;
        Ok(Self(caller))
    }
}

/// The caller the request's credentials name: an API key, else a bearer token (also for the MCP
/// tools that call out).
pub(crate) async fn identify(parts: &Parts, state: &AppState, source: Option<String>) -> Result<Caller, RegistryError> {
    let caller = credentials(parts, state, source).await?;
    if let Some(slot) = parts.extensions.get::<super::access::ActorSlot>() {
        let _ = slot.0.set(caller.actor.clone());
    }
    Ok(caller)
}

async fn credentials(parts: &Parts, state: &AppState, source: Option<String>) -> Result<Caller, RegistryError> {
    let unauthenticated = |detail: &str| RegistryError::Unauthenticated(detail.into());
    if let Some(key) = parts.headers.get("x-api-key") {
        let key = key.to_str().map_err(|_| unauthenticated("X-Api-Key must be visible ASCII"))?;
        return state.registry.authenticate(key.trim(), source);
    }
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Err(unauthenticated("this route needs credentials: send an API key in X-Api-Key"));
    };
    let value = value.to_str().unwrap_or_default();
    let Some(token) = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")) else {
        return Err(unauthenticated("Authorization must be `Bearer <token>`"));
    };
    let Some(jwt) = &state.jwt else {
        return Err(unauthenticated("bearer tokens are not accepted by this registry; send an API key in X-Api-Key"));
    };
    jwt.verify(token.trim(), source).await
}

/// The client's address (through trusted proxies), when the connection is known.
pub struct ClientAddress(pub Option<std::net::IpAddr>);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Self(state.limits.client(parts)))
    }
}

/// A discovery read: the client checked against the discovery rate limit, and whether it reads
/// anonymously.
pub struct Discovering {
    pub anonymous: bool,
}

impl FromRequestParts<AppState> for Discovering {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        state.limits.discovery(state.limits.client(parts))?;
        let Ok(Reader { anonymous }) = Reader::from_request_parts(parts, state).await;
        Ok(Self { anonymous })
    }
}

/// Who reads a public route: anonymous unless valid credentials come with the request (invalid
/// ones are ignored here: reads need none).
pub struct Reader {
    pub anonymous: bool,
}

impl FromRequestParts<AppState> for Reader {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if !state.privacy.hides_anything() {
            return Ok(Self { anonymous: false });
        }
        let known = identify(parts, state, None).await.is_ok();
        Ok(Self { anonymous: !known })
    }
}
