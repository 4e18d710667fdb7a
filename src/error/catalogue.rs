//! The catalogue of every error code the API sends, in REST problem bodies and MCP tool errors
//! alike: the code (stable API, never renamed), the HTTP status it is answered with and the
//! problem's title. The core's errors take their entry from `RegistryError::entry`; the front
//! doors' own failures (routing, body, headers, rate limits) name theirs directly, so no code
//! exists anywhere else. The error table of docs/errors.md is checked against `CATALOGUE`.

/// One error code of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode {
    /// Stable machine-readable code, e.g. `agent_not_found`.
    pub code: &'static str,
    /// The HTTP status a REST answer carries (a number: the core knows no HTTP types).
    pub status: u16,
    /// A short human title for the kind of problem.
    pub title: &'static str,
}

// The titles the core's errors have always had, one per kind of problem.
const TITLE_INVALID: &str = "The request is invalid";
const TITLE_NOT_FOUND: &str = "Not found";
const TITLE_UNAUTHENTICATED: &str = "Credentials are missing or invalid";
const TITLE_FORBIDDEN: &str = "Not allowed";
const TITLE_CONFLICT: &str = "Conflict with the current state";
const TITLE_PRECONDITION: &str = "Precondition failed";
const TITLE_UNPROCESSABLE: &str = "Request cannot be processed";
const TITLE_UNAVAILABLE: &str = "Service temporarily unavailable";
const TITLE_INTERNAL: &str = "Internal error";

macro_rules! catalogue {
    ($($(#[$doc:meta])* $name:ident = $code:literal, $status:literal, $title:expr;)*) => {
        $($(#[$doc])* pub const $name: ErrorCode = ErrorCode { code: $code, status: $status, title: $title };)*
        /// Every code, each once.
        pub const CATALOGUE: &[ErrorCode] = &[$($name),*];
    };
}

catalogue! {
    /// A field is missing, of the wrong type, out of range or otherwise invalid.
    VALIDATION_FAILED = "validation_failed", 400, TITLE_INVALID;
    /// An unknown or invalid query parameter.
    INVALID_QUERY = "invalid_query", 400, TITLE_INVALID;
    /// An id in the request is not a UUID.
    INVALID_ID = "invalid_id", 400, TITLE_INVALID;
    /// The body is not JSON (or is empty, or has trailing data).
    MALFORMED_JSON = "malformed_json", 400, "Bad Request";
    /// The body could not be read.
    UNREADABLE_BODY = "unreadable_body", 400, "Bad Request";
    /// A request header is malformed.
    INVALID_HEADER = "invalid_header", 400, "Bad Request";
    UNAUTHENTICATED = "unauthenticated", 401, TITLE_UNAUTHENTICATED;
    FORBIDDEN = "forbidden", 403, TITLE_FORBIDDEN;
    /// The owner keeps as many agents, or document bytes, as its quota allows.
    QUOTA_EXCEEDED = "quota_exceeded", 403, "Quota exceeded";
    AGENT_NOT_FOUND = "agent_not_found", 404, TITLE_NOT_FOUND;
    ENDPOINT_NOT_FOUND = "endpoint_not_found", 404, TITLE_NOT_FOUND;
    API_KEY_NOT_FOUND = "api_key_not_found", 404, TITLE_NOT_FOUND;
    /// The agent has no endpoint of the protocol, so no document of it.
    NO_PROTOCOL_DOCUMENT = "no_protocol_document", 404, TITLE_NOT_FOUND;
    ROUTE_NOT_FOUND = "route_not_found", 404, "Not Found";
    /// No such task, or one the caller may not read.
    TASK_NOT_FOUND = "task_not_found", 404, TITLE_NOT_FOUND;
    /// No live endpoint of any agent matches the task's capability, agent or tool.
    NO_LIVE_AGENT = "no_live_agent", 404, "No live agent";
    /// MCP Registry API: no server of that name (and version).
    SERVER_NOT_FOUND = "server_not_found", 404, "Not Found";
    METHOD_NOT_ALLOWED = "method_not_allowed", 405, "Method Not Allowed";
    AGENT_EXISTS = "agent_exists", 409, TITLE_CONFLICT;
    DUPLICATE_ENDPOINT_NAME = "duplicate_endpoint_name", 409, TITLE_CONFLICT;
    DUPLICATE_CAPABILITY_NAME = "duplicate_capability_name", 409, TITLE_CONFLICT;
    LIVENESS_MODEL_MISMATCH = "liveness_model_mismatch", 409, TITLE_CONFLICT;
    CONCURRENT_CHANGE = "concurrent_change", 409, TITLE_CONFLICT;
    BOOTSTRAP_REFUSED = "bootstrap_refused", 409, TITLE_CONFLICT;
    API_KEY_REVOKED = "api_key_revoked", 409, TITLE_CONFLICT;
    /// Revoking the key would leave no active Admin key (unless forced).
    LAST_ADMIN_KEY = "last_admin_key", 409, TITLE_CONFLICT;
    /// Queue facts asked for an endpoint that is not `Amqp`.
    NOT_AN_AMQP_ENDPOINT = "not_an_amqp_endpoint", 409, "Conflict";
    /// The task is in a final state already (it cannot be canceled).
    TASK_FINISHED = "task_finished", 409, TITLE_CONFLICT;
    REVISION_MISMATCH = "revision_mismatch", 412, TITLE_PRECONDITION;
    PAYLOAD_TOO_LARGE = "payload_too_large", 413, "Payload Too Large";
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type", 415, "Unsupported Media Type";
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused", 422, TITLE_UNPROCESSABLE;
    SCHEMA_VIOLATION = "schema_violation", 422, TITLE_UNPROCESSABLE;
    RATE_LIMITED = "rate_limited", 429, "Too Many Requests";
    INTERNAL_ERROR = "internal_error", 500, TITLE_INTERNAL;
    /// The deployment does not fit this binary (schema, migrations, credentials, settings).
    MISCONFIGURED = "misconfigured", 500, "Service misconfigured";
    /// The live endpoints for a task speak only protocols or transports the gateway cannot send
    /// tasks over (e.g. Azure Service Bus).
    TRANSPORT_NOT_SUPPORTED = "transport_not_supported", 501, "Not Implemented";
    /// `GET /backup` on a registry whose database is PostgreSQL, which `pg_dump` backs up.
    BACKUP_NOT_SUPPORTED = "backup_not_supported", 501, "Not Implemented";
    STORAGE_UNAVAILABLE = "storage_unavailable", 503, TITLE_UNAVAILABLE;
    LIVENESS_UNAVAILABLE = "liveness_unavailable", 503, TITLE_UNAVAILABLE;
    /// The database has no room left (a full disk, or its configured size reached).
    INSUFFICIENT_STORAGE = "insufficient_storage", 507, "Insufficient Storage";
    /// The replica serves as many watch streams as it may.
    TOO_MANY_WATCHERS = "too_many_watchers", 503, "Service Unavailable";
    /// The replica holds as many connections as it may; this one serves only the probes.
    TOO_MANY_CONNECTIONS = "too_many_connections", 503, "Service Unavailable";
    /// The service is still starting (a backend was unreachable at start).
    NOT_READY = "not_ready", 503, "Service Unavailable";
}

// Why a task failed: the `error.code` of a failed task and of its `failed` event (not HTTP
// answers: the request that created the task succeeded).
/// The egress policy refused the agent's address (link-local, cloud metadata, `--gateway-deny`).
pub const EGRESS_REFUSED: &str = "egress_refused";
/// The agent could not be reached (connection refused or reset, DNS, TLS).
pub const AGENT_UNREACHABLE: &str = "agent_unreachable";
/// The agent answered with an HTTP error or a JSON-RPC error.
pub const AGENT_ERROR: &str = "agent_error";
/// The agent's answer does not follow its protocol (or is larger than allowed).
pub const PROTOCOL_ERROR: &str = "protocol_error";
/// The agent reports that the task failed.
pub const AGENT_FAILED: &str = "agent_failed";
/// The agent rejected the task (state `rejected`).
pub const AGENT_REJECTED: &str = "agent_rejected";
/// The MCP server has no tool by the name asked for (and not exactly one tool to call instead).
pub const TOOL_NOT_FOUND: &str = "tool_not_found";
/// The task's input does not fit the agent's tool (MCP: text for a tool without exactly one
/// string argument).
pub const INPUT_NOT_ACCEPTED: &str = "input_not_accepted";
/// The task did not finish within its `timeoutSeconds`.
pub const TASK_TIMEOUT: &str = "task_timeout";
/// The registry process running the task stopped before it finished.
pub const REGISTRY_RESTARTED: &str = "registry_restarted";
/// The agent's answer is larger than a task may keep.
pub const OUTPUT_TOO_LARGE: &str = "output_too_large";

/// Every task-failure code, with what it means (docs/errors.md lists them).
pub const TASK_FAILURES: &[&str] = &[
    EGRESS_REFUSED,
    AGENT_UNREACHABLE,
    AGENT_ERROR,
    PROTOCOL_ERROR,
    AGENT_FAILED,
    AGENT_REJECTED,
    TOOL_NOT_FOUND,
    INPUT_NOT_ACCEPTED,
    TASK_TIMEOUT,
    REGISTRY_RESTARTED,
    OUTPUT_TOO_LARGE,
];

/// The entry of `code`, if the API has one.
pub fn find(code: &str) -> Option<ErrorCode> {
    CATALOGUE.iter().copied().find(|e| e.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_listed_once_and_is_snake_case() {
        let mut codes: Vec<&str> = CATALOGUE.iter().map(|e| e.code).collect();
        assert!(codes.iter().all(|c| c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')), "{codes:?}");
        codes.sort_unstable();
        let before = codes.len();
        codes.dedup();
        assert_eq!(codes.len(), before, "a code is listed twice");
    }
}
