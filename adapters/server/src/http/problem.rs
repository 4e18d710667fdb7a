//! `ApiError`: every failure of the HTTP API as RFC 9457 `application/problem+json`, with the
//! stable `code` of the core error (or of the HTTP layer), the fields at fault, and no
//! internals in 5xx bodies. Each error is logged once, here, inside the request span.

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
}

#[derive(Debug)]
pub enum ApiError {
    Registry(RegistryError),
    /// A failure of the HTTP layer itself (body, headers, routing).
    Http {
        status: StatusCode,
        code: &'static str,
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

    pub fn http(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self::Http { status, code, detail: detail.into(), errors: Vec::new() }
    }

    pub fn bad_header(name: &str, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        Self::Http {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_header",
            errors: vec![FieldError::new(format!("header:{name}"), detail.clone())],
            detail: format!("header {name} {detail}"),
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        Self::Registry(e)
    }
}

pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
        ErrorKind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let self_retry_after = match &self {
            ApiError::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        };
        let (status, code, title, detail, errors) = match self {
            ApiError::Registry(e) => {
                let status = status_of(e.kind());
                // A backend outage is logged once by the task that notices it, not per request.
                match e.kind() {
                    ErrorKind::Internal => tracing::error!(code = e.code(), error = %e, "request failed"),
                    ErrorKind::Unavailable => tracing::debug!(code = e.code(), error = %e, "request failed"),
                    _ => {}
                }
                let detail = match e.kind() {
                    ErrorKind::Internal => "An internal error occurred; it has been logged.".to_owned(),
                    ErrorKind::Unavailable => format!("{}; retry shortly.", e.title()),
                    _ => e.to_string(),
                };
                (status, e.code(), e.title().to_owned(), detail, e.fields())
            }
            ApiError::Http { status, code, detail, errors } => {
                let title = status.canonical_reason().unwrap_or("Error").to_owned();
                (status, code, title, detail, errors)
            }
            ApiError::RateLimited { retry_after } => {
                let detail = format!("too many requests; retry in {retry_after} s");
                (StatusCode::TOO_MANY_REQUESTS, "rate_limited", "Too Many Requests".to_owned(), detail, Vec::new())
            }
        };
        let retry_after = match self_retry_after {
            Some(secs) => Some(secs),
            None if status == StatusCode::SERVICE_UNAVAILABLE => Some(1),
            None => None,
        };
        tracing::debug!(status = status.as_u16(), code, "problem response");
        let problem = Problem {
            kind: format!("urn:agent-registry:problem:{code}"),
            title,
            status: status.as_u16(),
            detail,
            code: code.to_owned(),
            errors,
        };
        let mut response = (status, axum::Json(problem)).into_response();
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
