//! The registry's one error type. Every variant has a stable snake_case `code()` from the
//! catalogue (it is API: clients match on it) and a transport-neutral `ErrorKind` that says how
//! the failure is handled: an outage is retried, a misconfiguration stops the process at start.
//! The texts speak of the domain; the front doors add their own routes and headers as hints.

pub mod catalogue;

use serde::Serialize;

use crate::model::LivenessModel;
pub use catalogue::ErrorCode;

/// The cause an error carries: a driver's error, or a message where there is none.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

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
    /// A backend is unreachable for now (connection, pool, timeout, I/O): retried.
    Unavailable,
    /// The deployment does not fit this binary (schema, migrations, credentials, settings):
    /// retrying cannot help, so start-up stops with the message.
    Misconfigured,
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
    /// A heartbeat or renewal that does not fit the liveness model: `endpoint` (or, when
    /// `None`, every endpoint of `agent` that could take the call) uses `uses`.
    #[error("{}", liveness_mismatch(agent, endpoint.as_deref(), *uses))]
    LivenessModelMismatch { agent: String, endpoint: Option<String>, uses: LivenessModel },
    #[error("the agent is at revision {current}, not {expected}")]
    RevisionMismatch { expected: u64, current: u64 },
    #[error("this idempotency key was already used with a different request body")]
    IdempotencyKeyReused,
    #[error("storage is unavailable: {source}")]
    StorageUnavailable {
        #[source]
        source: BoxError,
    },
    /// The store has no room for the write (a full disk, or the configured size reached):
    /// nothing was stored, and retrying helps once space is made.
    #[error("storage is full: {source}")]
    StorageFull {
        #[source]
        source: BoxError,
    },
    #[error("liveness store is unavailable: {source}")]
    LivenessUnavailable {
        #[source]
        source: BoxError,
    },
    /// What the deployment gets wrong, in `context`, over the driver's error if there is one.
    #[error("the deployment is misconfigured: {context}{}", cause(.source))]
    Misconfigured {
        context: String,
        #[source]
        source: Option<BoxError>,
    },
    #[error(
        "owner `{owner}` is at its quota: {quota} is {limit} (remove agents, or have an Admin issue a key with a larger quota)"
    )]
    QuotaExceeded { owner: String, quota: &'static str, limit: u64 },
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("API key {0} does not exist")]
    KeyNotFound(String),
    #[error("an Admin key exists already; issue further keys with it")]
    BootstrapRefused,
    #[error("API key {0} is revoked already")]
    KeyRevoked(String),
    /// Revoking this key would leave no active Admin key, so nobody could issue or revoke keys
    /// any more; refused unless forced.
    #[error("API key {0} is the last active Admin key; issue another Admin key first, or force the revocation")]
    LastAdminKey(String),
    /// A change was made from an outdated view of the agent (another replica changed it
    /// first); the registry catches up and retries, so clients rarely see it.
    #[error("agent {0} was changed concurrently; retry the request")]
    StaleWrite(String),
    /// A protocol document breaks its official JSON Schema.
    #[error("the document does not follow its schema: {}", summarize(.0))]
    SchemaViolation(Vec<FieldError>),
    #[error("agent {agent} has no {protocol} endpoint, so it has no {protocol} document")]
    NoProtocolDocument { agent: String, protocol: crate::model::Protocol },
    #[error("task {0} does not exist")]
    TaskNotFound(String),
    /// No live endpoint matches a task's target (the text says which).
    #[error("{0}")]
    NoLiveAgent(String),
    #[error("{0}")]
    TransportNotSupported(String),
    #[error("task {task} is {state} already")]
    TaskFinished { task: String, state: crate::task::TaskState },
    /// A bug, or data that breaks an invariant: what was being done, and why it failed.
    #[error("internal error: {context}{}", cause(.source))]
    Internal {
        context: String,
        #[source]
        source: Option<BoxError>,
    },
}

fn cause(source: &Option<BoxError>) -> String {
    source.as_ref().map(|s| format!(": {s}")).unwrap_or_default()
}

fn liveness_mismatch(agent: &str, endpoint: Option<&str>, uses: LivenessModel) -> String {
    match (endpoint, uses) {
        (Some(endpoint), LivenessModel::Ephemeral) => {
            format!("endpoint {endpoint} uses Ephemeral liveness; renew its lease instead")
        }
        (Some(endpoint), LivenessModel::Persistent) => {
            format!("endpoint {endpoint} uses Persistent liveness; send a heartbeat instead")
        }
        (None, _) => format!("agent {agent} has no Persistent endpoints to heartbeat; renew its Ephemeral endpoints"),
    }
}

fn summarize(errors: &[FieldError]) -> String {
    errors.iter().map(|e| format!("{}: {}", e.pointer, e.detail)).collect::<Vec<_>>().join("; ")
}

impl RegistryError {
    /// Stable machine-readable code. Never change an existing one.
    pub fn code(&self) -> &'static str {
        self.entry().code
    }

    /// The catalogue's entry for this error: code, status and title.
    pub fn entry(&self) -> ErrorCode {
        use catalogue as c;
        match self {
            Self::Validation(_) => c::VALIDATION_FAILED,
            Self::InvalidQuery { .. } => c::INVALID_QUERY,
            Self::InvalidId { .. } => c::INVALID_ID,
            Self::AgentNotFound(_) => c::AGENT_NOT_FOUND,
            Self::EndpointNotFound { .. } => c::ENDPOINT_NOT_FOUND,
            Self::AgentExists(_) => c::AGENT_EXISTS,
            Self::DuplicateEndpointName { .. } => c::DUPLICATE_ENDPOINT_NAME,
            Self::DuplicateCapabilityName { .. } => c::DUPLICATE_CAPABILITY_NAME,
            Self::LivenessModelMismatch { .. } => c::LIVENESS_MODEL_MISMATCH,
            Self::RevisionMismatch { .. } => c::REVISION_MISMATCH,
            Self::IdempotencyKeyReused => c::IDEMPOTENCY_KEY_REUSED,
            Self::StorageUnavailable { .. } => c::STORAGE_UNAVAILABLE,
            Self::StorageFull { .. } => c::INSUFFICIENT_STORAGE,
            Self::LivenessUnavailable { .. } => c::LIVENESS_UNAVAILABLE,
            Self::Misconfigured { .. } => c::MISCONFIGURED,
            Self::StaleWrite(_) => c::CONCURRENT_CHANGE,
            Self::Unauthenticated(_) => c::UNAUTHENTICATED,
            Self::Forbidden(_) => c::FORBIDDEN,
            Self::QuotaExceeded { .. } => c::QUOTA_EXCEEDED,
            Self::KeyNotFound(_) => c::API_KEY_NOT_FOUND,
            Self::BootstrapRefused => c::BOOTSTRAP_REFUSED,
            Self::KeyRevoked(_) => c::API_KEY_REVOKED,
            Self::LastAdminKey(_) => c::LAST_ADMIN_KEY,
            Self::SchemaViolation(_) => c::SCHEMA_VIOLATION,
            Self::NoProtocolDocument { .. } => c::NO_PROTOCOL_DOCUMENT,
            Self::TaskNotFound(_) => c::TASK_NOT_FOUND,
            Self::NoLiveAgent(_) => c::NO_LIVE_AGENT,
            Self::TransportNotSupported(_) => c::TRANSPORT_NOT_SUPPORTED,
            Self::TaskFinished { .. } => c::TASK_FINISHED,
            Self::Internal { .. } => c::INTERNAL_ERROR,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Validation(_) | Self::InvalidQuery { .. } | Self::InvalidId { .. } => ErrorKind::InvalidInput,
            Self::AgentNotFound(_)
            | Self::EndpointNotFound { .. }
            | Self::KeyNotFound(_)
            | Self::NoProtocolDocument { .. }
            | Self::TaskNotFound(_)
            | Self::NoLiveAgent(_) => ErrorKind::NotFound,
            Self::Unauthenticated(_) => ErrorKind::Unauthenticated,
            Self::Forbidden(_) | Self::QuotaExceeded { .. } => ErrorKind::Forbidden,
            Self::AgentExists(_)
            | Self::DuplicateEndpointName { .. }
            | Self::DuplicateCapabilityName { .. }
            | Self::LivenessModelMismatch { .. }
            | Self::StaleWrite(_)
            | Self::BootstrapRefused
            | Self::KeyRevoked(_)
            | Self::LastAdminKey(_)
            | Self::TaskFinished { .. } => ErrorKind::Conflict,
            Self::TransportNotSupported(_) => ErrorKind::Unprocessable,
            Self::RevisionMismatch { .. } => ErrorKind::PreconditionFailed,
            Self::IdempotencyKeyReused | Self::SchemaViolation(_) => ErrorKind::Unprocessable,
            Self::StorageUnavailable { .. } | Self::StorageFull { .. } | Self::LivenessUnavailable { .. } => {
                ErrorKind::Unavailable
            }
            Self::Misconfigured { .. } => ErrorKind::Misconfigured,
            Self::Internal { .. } => ErrorKind::Internal,
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
        self.entry().title
    }

    /// Storage cannot be reached now; `source` says why.
    pub fn storage_unavailable(source: impl Into<BoxError>) -> Self {
        Self::StorageUnavailable { source: source.into() }
    }

    /// The store has no room for a write; `source` says why.
    pub fn storage_full(source: impl Into<BoxError>) -> Self {
        Self::StorageFull { source: source.into() }
    }

    /// The liveness store cannot be reached now; `source` says why.
    pub fn liveness_unavailable(source: impl Into<BoxError>) -> Self {
        Self::LivenessUnavailable { source: source.into() }
    }

    /// The deployment is wrong in a way `context` names, found through `source`.
    pub fn misconfigured(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Misconfigured { context: context.into(), source: Some(source.into()) }
    }

    /// A bug or broken invariant that `context` describes.
    pub fn internal(context: impl Into<String>) -> Self {
        Self::Internal { context: context.into(), source: None }
    }

    /// A failure of `source` while doing what `context` says.
    pub fn internal_from(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Internal { context: context.into(), source: Some(source.into()) }
    }

    pub fn query(pointer: &str, detail: impl Into<String>) -> Self {
        Self::InvalidQuery { detail: detail.into(), pointer: format!("?{pointer}") }
    }

    pub fn field(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(pointer, detail)])
    }
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
