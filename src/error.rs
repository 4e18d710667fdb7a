//! The registry's one error type. Every variant has a stable snake_case `code()` (it is API:
//! clients match on it) and a transport-neutral `ErrorKind` that the HTTP and MCP layers map to
//! their own status codes.

use serde::Serialize;

/// One field that failed validation, located by a JSON pointer (RFC 6901) into the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    /// JSON pointer to the offending value, e.g. `/endpoints/0/address`; for query parameters
    /// the parameter name prefixed with `?`, e.g. `?pageSize`.
    pub pointer: String,
    /// What is wrong with it, for a human.
    pub detail: String,
}

impl FieldError {
    pub fn new(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { pointer: pointer.into(), detail: detail.into() }
    }
}

/// How a failure should be reported, independent of transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidInput,
    Unauthenticated,
    Forbidden,
    NotFound,
    Conflict,
    PreconditionFailed,
    Unprocessable,
    Unavailable,
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("the request is invalid: {}", summarize(.0))]
    Validation(Vec<FieldError>),
    #[error("{detail}")]
    InvalidQuery { detail: String, pointer: String },
    #[error("`{value}` is not a valid {what} id (expected a UUID)")]
    InvalidId { what: &'static str, value: String },
    #[error("agent {0} does not exist")]
    AgentNotFound(String),
    #[error("endpoint {endpoint} does not exist on agent {agent}")]
    EndpointNotFound { agent: String, endpoint: String },
    #[error("agent {0} already exists with different content")]
    AgentExists(String),
    #[error("endpoint name `{name}` is used more than once on this agent")]
    DuplicateEndpointName { name: String, pointer: String },
    #[error("capability name `{name}` is used more than once on this agent")]
    DuplicateCapabilityName { name: String, pointer: String },
    #[error("{0}")]
    LivenessModelMismatch(String),
    #[error("the agent is at revision {current}, not {expected}")]
    RevisionMismatch { expected: u64, current: u64 },
    #[error("this Idempotency-Key was already used with a different request body")]
    IdempotencyKeyReused,
    #[error("storage is unavailable: {0}")]
    StorageUnavailable(String),
    #[error("liveness store is unavailable: {0}")]
    LivenessUnavailable(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("API key {0} does not exist")]
    KeyNotFound(String),
    #[error("{0}")]
    BootstrapRefused(String),
    #[error("API key {0} is revoked already")]
    KeyRevoked(String),
    /// A change was made from an outdated view of the agent (another replica changed it
    /// first); the registry catches up and retries, so clients rarely see it.
    #[error("agent {0} was changed concurrently; retry the request")]
    StaleWrite(String),
    /// A protocol document breaks its official JSON Schema.
    #[error("the document does not follow its schema: {}", summarize(.0))]
    SchemaViolation(Vec<FieldError>),
    #[error("agent {agent} has no {protocol} endpoint, so it has no {protocol} document")]
    NoProtocolDocument { agent: String, protocol: crate::model::Protocol },
    #[error("internal error: {0}")]
    Internal(String),
}

fn summarize(errors: &[FieldError]) -> String {
    errors.iter().map(|e| format!("{}: {}", e.pointer, e.detail)).collect::<Vec<_>>().join("; ")
}

impl RegistryError {
    /// Stable machine-readable code. Never change an existing one.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation(_) => "validation_failed",
            Self::InvalidQuery { .. } => "invalid_query",
            Self::InvalidId { .. } => "invalid_id",
            Self::AgentNotFound(_) => "agent_not_found",
            Self::EndpointNotFound { .. } => "endpoint_not_found",
            Self::AgentExists(_) => "agent_exists",
            Self::DuplicateEndpointName { .. } => "duplicate_endpoint_name",
            Self::DuplicateCapabilityName { .. } => "duplicate_capability_name",
            Self::LivenessModelMismatch(_) => "liveness_model_mismatch",
            Self::RevisionMismatch { .. } => "revision_mismatch",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::StorageUnavailable(_) => "storage_unavailable",
            Self::LivenessUnavailable(_) => "liveness_unavailable",
            Self::StaleWrite(_) => "concurrent_change",
            Self::Unauthenticated(_) => "unauthenticated",
            Self::Forbidden(_) => "forbidden",
            Self::KeyNotFound(_) => "api_key_not_found",
            Self::BootstrapRefused(_) => "bootstrap_refused",
            Self::KeyRevoked(_) => "api_key_revoked",
            Self::SchemaViolation(_) => "schema_violation",
            Self::NoProtocolDocument { .. } => "no_protocol_document",
            Self::Internal(_) => "internal_error",
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Validation(_) | Self::InvalidQuery { .. } | Self::InvalidId { .. } => ErrorKind::InvalidInput,
            Self::AgentNotFound(_)
            | Self::EndpointNotFound { .. }
            | Self::KeyNotFound(_)
            | Self::NoProtocolDocument { .. } => ErrorKind::NotFound,
            Self::Unauthenticated(_) => ErrorKind::Unauthenticated,
            Self::Forbidden(_) => ErrorKind::Forbidden,
            Self::AgentExists(_)
            | Self::DuplicateEndpointName { .. }
            | Self::DuplicateCapabilityName { .. }
            | Self::LivenessModelMismatch(_)
            | Self::StaleWrite(_)
            | Self::BootstrapRefused(_)
            | Self::KeyRevoked(_) => ErrorKind::Conflict,
            Self::RevisionMismatch { .. } => ErrorKind::PreconditionFailed,
            Self::IdempotencyKeyReused | Self::SchemaViolation(_) => ErrorKind::Unprocessable,
            Self::StorageUnavailable(_) | Self::LivenessUnavailable(_) => ErrorKind::Unavailable,
            Self::Internal(_) => ErrorKind::Internal,
        }
    }

    /// The fields at fault, as JSON pointers.
    pub fn fields(&self) -> Vec<FieldError> {
        match self {
            Self::Validation(errors) | Self::SchemaViolation(errors) => errors.clone(),
            Self::InvalidQuery { detail, pointer } => vec![FieldError::new(pointer, detail)],
            Self::DuplicateEndpointName { pointer, .. } | Self::DuplicateCapabilityName { pointer, .. } => {
                vec![FieldError::new(pointer, self.to_string())]
            }
            _ => Vec::new(),
        }
    }

    /// A short human title for the kind of problem.
    pub fn title(&self) -> &'static str {
        match self.kind() {
            ErrorKind::InvalidInput => "The request is invalid",
            ErrorKind::NotFound => "Not found",
            ErrorKind::Unauthenticated => "Credentials are missing or invalid",
            ErrorKind::Forbidden => "Not allowed",
            ErrorKind::Conflict => "Conflict with the current state",
            ErrorKind::PreconditionFailed => "Precondition failed",
            ErrorKind::Unprocessable => "Request cannot be processed",
            ErrorKind::Unavailable => "Service temporarily unavailable",
            ErrorKind::Internal => "Internal error",
        }
    }

    pub fn query(pointer: &str, detail: impl Into<String>) -> Self {
        Self::InvalidQuery { detail: detail.into(), pointer: format!("?{pointer}") }
    }

    pub fn field(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(pointer, detail)])
    }
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
