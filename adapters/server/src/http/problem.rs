//! `ApiError`: every failure of the HTTP API as RFC 9457 `application/problem+json`, with the
//! stable `code`, status and title of its catalogue entry (the core's, for core errors and the
//! HTTP layer's own alike), the fields at fault, and no internals in 5xx bodies. Each error is
//! logged once, here, inside the request span.

use agent_registry_core::error::{ErrorCode, catalogue};
use agent_registry_core::{ErrorKind, FieldError, RegistryError};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The problem document.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem: `urn:agent-registry:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable error code.
    pub code: String,
    /// The fields at fault (JSON pointers into the body, or `?name` for query parameters).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The request's id, as in the `X-Request-Id` header and the access log: quote it when
    /// reporting a problem.
    #[serde(rename = "requestId", skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl Problem {
    /// The problem of a catalogue entry, for the request being answered.
    pub fn new(entry: ErrorCode, detail: String, errors: Vec<FieldError>) -> Self {
        Self {
            kind: format!("urn:agent-registry:problem:{}", entry.code),
            title: entry.title.to_owned(),
            status: entry.status,
            detail,
            code: entry.code.to_owned(),
            errors,
            request_id: crate::http::access::current_request_id(),
        }
    }
}

/// The code of the problem a response carries, left in its extensions for the access log.
#[derive(Clone, Copy, Debug)]
pub struct ProblemCode(pub &'static str);

#[derive(Debug)]
pub enum ApiError {
    Registry(RegistryError),
    /// A failure of the HTTP layer itself (body, headers, routing), named by its catalogue entry.
    Http {
        code: ErrorCode,
        detail: String,
        errors: Vec<FieldError>,
    },
    /// Too many requests; retry after this many seconds.
    RateLimited {
        retry_after: u64,
    },
}

impl From<crate::limits::RateLimited> for ApiError {
    fn from(refused: crate::limits::RateLimited) -> Self {
        Self::rate_limited(refused.retry_after)
    }
}

impl ApiError {
    pub fn rate_limited(retry_after: u64) -> Self {
        Self::RateLimited { retry_after: retry_after.max(1) }
    }

    pub fn http(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::Http { code, detail: detail.into(), errors: Vec::new() }
    }

    pub fn bad_header(name: &str, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        Self::Http {
            code: catalogue::INVALID_HEADER,
            errors: vec![FieldError::new(format!("header:{name}"), detail.clone())],
            detail: format!("header {name} {detail}"),
        }
    }

    /// The catalogue's entry for this failure.
    pub fn entry(&self) -> ErrorCode {
        match self {
            ApiError::Registry(e) => e.entry(),
            ApiError::Http { code, .. } => *code,
            ApiError::RateLimited { .. } => catalogue::RATE_LIMITED,
        }
    }

    /// The status the answer carries.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.entry().status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        Self::Registry(e)
    }
}

/// The `detail` of a core error over REST: the core speaks of the domain, and a REST client
/// also learns which route or header to use instead.
fn rest_detail(e: &RegistryError) -> String {
    use agent_registry_core::model::LivenessModel;
    match e {
        RegistryError::LivenessModelMismatch { agent, endpoint: Some(endpoint), uses: LivenessModel::Ephemeral } => {
            format!(
                "endpoint {endpoint} uses Ephemeral liveness; renew its lease with \
                 POST /agents/{agent}/endpoints/{endpoint}/renew instead"
            )
        }
        RegistryError::LivenessModelMismatch { agent, endpoint: Some(endpoint), uses: LivenessModel::Persistent } => {
            format!(
                "endpoint {endpoint} uses Persistent liveness; send \
                 POST /agents/{agent}/endpoints/{endpoint}/heartbeat instead"
            )
        }
        RegistryError::LivenessModelMismatch { agent, endpoint: None, .. } => format!(
            "agent {agent} has no Persistent endpoints to heartbeat; renew its Ephemeral endpoints with \
             POST /agents/{agent}/endpoints/{{endpointId}}/renew"
        ),
        RegistryError::IdempotencyKeyReused => {
            "this Idempotency-Key was already used with a different request body".to_owned()
        }
        RegistryError::BootstrapRefused => format!("{e} (POST /api-keys)"),
        _ => e.to_string(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, entry) = (self.status(), self.entry());
        let (detail, errors, retry_after) = match self {
            ApiError::Registry(e) => {
                // A backend outage is logged once by the task that notices it, not per request.
                match e.kind() {
                    ErrorKind::Internal | ErrorKind::Misconfigured => {
                        tracing::error!(code = e.code(), error = %e, "request failed")
                    }
                    ErrorKind::Unavailable => tracing::debug!(code = e.code(), error = %e, "request failed"),
                    _ => {}
                }
                let detail = match e.kind() {
                    ErrorKind::Internal => "An internal error occurred; it has been logged.".to_owned(),
                    ErrorKind::Misconfigured => {
                        "The service is misconfigured; the log tells its operators what to fix.".to_owned()
                    }
                    ErrorKind::Unavailable if matches!(e, RegistryError::StorageFull { .. }) => {
                        "The database has no room for this write, so nothing was stored; retry once space is made."
                            .to_owned()
                    }
                    ErrorKind::Unavailable => format!("{}; retry shortly.", e.title()),
                    _ => rest_detail(&e),
                };
                (detail, e.fields(), None)
            }
            ApiError::Http { detail, errors, .. } => (detail, errors, None),
            ApiError::RateLimited { retry_after } => {
                (format!("too many requests; retry in {retry_after} s"), Vec::new(), Some(retry_after))
            }
        };
        let retry_after = match retry_after {
            Some(secs) => Some(secs),
            None if status == StatusCode::SERVICE_UNAVAILABLE => Some(1),
            // Space is made by an operator, not in a second.
            None if status == StatusCode::INSUFFICIENT_STORAGE => Some(30),
            None => None,
        };
        tracing::debug!(status = status.as_u16(), code = entry.code, "problem response");
        let mut problem = Problem::new(entry, detail, errors);
        problem.status = status.as_u16();
        let mut response = (status, axum::Json(problem)).into_response();
        response.extensions_mut().insert(ProblemCode(entry.code));
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(secs) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("ApiKey header=\"X-Api-Key\", Bearer"));
        }
        response
    }
}
