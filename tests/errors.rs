//! The error catalogue is API: every code the service can send has a snapshot of its
//! problem+json body, and the error table of docs/errors.md lists exactly the catalogue's codes with
//! their statuses.

use std::collections::BTreeSet;

use agent_registry::http::extract::parse_json;
use agent_registry::http::problem::ApiError;
use agent_registry_core::RegistryError as E;
use agent_registry_core::error::catalogue::{self, CATALOGUE};
use agent_registry_core::model::{LivenessModel, Protocol};
use agent_registry_core::{FieldError, input::AgentInput};
use axum::response::IntoResponse;
use serde_json::Value;

const AGENT: &str = "0b7f5e3c-6c1e-4d59-9a52-2f1f4c3d2e10";
const ENDPOINT: &str = "5d2c1b0a-9e8f-4a7b-8c6d-1e2f3a4b5c6d";

/// One failure of each code the core sends.
fn core_errors() -> Vec<E> {
    let field = || vec![FieldError::new("/name", "must not be empty")];
    vec![
        E::Validation(field()),
        E::query("pageSize", "must be between 1 and 100"),
        E::InvalidId { what: "agent", value: "not-a-uuid".into() },
        E::AgentNotFound(AGENT.into()),
        E::EndpointNotFound { agent: AGENT.into(), endpoint: ENDPOINT.into() },
        E::AgentExists(AGENT.into()),
        E::DuplicateEndpointName { name: "main".into(), pointer: "/endpoints/1/name".into() },
        E::DuplicateCapabilityName { name: "search".into(), pointer: "/capabilities/1/name".into() },
        E::LivenessModelMismatch {
            agent: AGENT.into(),
            endpoint: Some(ENDPOINT.into()),
            uses: LivenessModel::Ephemeral,
        },
        E::RevisionMismatch { expected: 3, current: 4 },
        E::IdempotencyKeyReused,
        E::storage_unavailable("connection refused"),
        E::storage_full("database or disk is full"),
        E::liveness_unavailable("connection refused"),
        E::misconfigured("the PostgreSQL migrations do not match this binary's", "migration 1 was modified"),
        E::Unauthenticated("unknown API key".into()),
        E::Forbidden("this needs an Admin credential".into()),
        E::QuotaExceeded { owner: "kim".into(), quota: "maxAgents", limit: 1_000 },
        E::KeyNotFound(AGENT.into()),
        E::BootstrapRefused,
        E::KeyRevoked(AGENT.into()),
        E::LastAdminKey(AGENT.into()),
        E::StaleWrite(AGENT.into()),
        E::SchemaViolation(field()),
        E::NoProtocolDocument { agent: AGENT.into(), protocol: Protocol::A2A },
        E::TaskNotFound(AGENT.into()),
        E::NoLiveAgent("no live endpoint of any agent offers capability `summarize`".into()),
        E::TransportNotSupported(
            "the live endpoints for capability `summarize` speak A2A over AzureServiceBus, which this registry cannot send tasks to yet".into(),
        ),
        E::TaskFinished { task: AGENT.into(), state: agent_registry_core::task::TaskState::Completed },
        E::internal_from("a write task failed", "the task panicked"),
        E::LivenessModelMismatch { agent: AGENT.into(), endpoint: None, uses: LivenessModel::Ephemeral },
        E::LivenessModelMismatch {
            agent: AGENT.into(),
            endpoint: Some(ENDPOINT.into()),
            uses: LivenessModel::Persistent,
        },
    ]
}

/// One failure of each code, built the way the service builds it (the server's own failures
/// with the detail it sends).
fn one_of_each() -> Vec<ApiError> {
    // The first failure of each core code (the later ones are other shapes of one code).
    let mut seen = BTreeSet::new();
    let mut all: Vec<ApiError> =
        core_errors().into_iter().filter(|e| seen.insert(e.code())).map(ApiError::from).collect();
    all.extend([
        parse_json::<AgentInput>(b"{").unwrap_err(),
        ApiError::http(catalogue::UNREADABLE_BODY, "error reading a body from connection"),
        ApiError::bad_header("If-Match", "must be an ETag this registry issued (the agent's revision)"),
        ApiError::http(catalogue::ROUTE_NOT_FOUND, "no route for /nowhere"),
        ApiError::http(catalogue::SERVER_NOT_FOUND, "no MCP server named `io.example/none` (in that version)"),
        ApiError::http(catalogue::METHOD_NOT_ALLOWED, "this route does not accept that method"),
        ApiError::http(
            catalogue::NOT_AN_AMQP_ENDPOINT,
            format!("endpoint {ENDPOINT} uses the Http transport; queue facts are read for Amqp endpoints only"),
        ),
        ApiError::http(catalogue::PAYLOAD_TOO_LARGE, "the body is larger than 1048576 bytes"),
        ApiError::http(
            catalogue::UNSUPPORTED_MEDIA_TYPE,
            "send the body as JSON with `Content-Type: application/json`",
        ),
        ApiError::rate_limited(7),
        ApiError::http(
            catalogue::TOO_MANY_WATCHERS,
            "this replica serves 2 watch streams already; retry later or on another replica",
        ),
        ApiError::http(
            catalogue::TOO_MANY_CONNECTIONS,
            "this replica holds as many connections as it may; retry shortly or on another replica",
        ),
        ApiError::http(catalogue::NOT_READY, "the registry is starting and cannot serve /agents yet; retry shortly"),
        ApiError::http(
            catalogue::BACKUP_NOT_SUPPORTED,
            "this registry keeps its data in PostgreSQL: back it up with pg_dump (see docs/operations.md, \"Backup and restore\")",
        ),
    ]);
    all
}

#[test]
fn core_error_texts_name_no_route_or_header() {
    for e in core_errors() {
        let text = e.to_string();
        for http in ["POST ", "GET ", "PUT ", "DELETE ", "/agents", "/api-keys", "X-", "Idempotency-Key", "If-Match"] {
            assert!(!text.contains(http), "the core's `{}` names `{http}`: {text}", e.code());
        }
    }
}

async fn rendered(error: ApiError) -> (u16, Option<String>, Value) {
    let response = error.into_response();
    let status = response.status().as_u16();
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, content_type, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn every_error_code_has_a_snapshot_of_its_problem_body_with_the_catalogue_status_and_title() {
    let errors = one_of_each();
    let sampled: BTreeSet<&str> = errors.iter().map(|e| e.entry().code).collect();
    let listed: BTreeSet<&str> = CATALOGUE.iter().map(|e| e.code).collect();
    assert_eq!(sampled, listed, "one sample per catalogue code");
    assert_eq!(errors.len(), CATALOGUE.len(), "and no code twice");
    for error in errors {
        let entry = error.entry();
        let (status, content_type, body) = rendered(error).await;
        assert_eq!(status, entry.status, "{}", entry.code);
        assert_eq!(content_type.as_deref(), Some("application/problem+json"));
        assert_eq!(body["code"], entry.code);
        assert_eq!(body["title"], entry.title);
        assert_eq!(body["status"], entry.status);
        if status >= 500 {
            let detail = body["detail"].as_str().unwrap();
            assert!(!detail.contains("refused") && !detail.contains("migration") && !detail.contains("panicked"));
        }
        // The ids above are fixed, so the bodies are stable; nothing needs redacting.
        insta::assert_json_snapshot!(entry.code, body);
    }
}

/// `(status, code)` of every row of the error table in docs/errors.md.
fn documented_codes() -> BTreeSet<(u16, String)> {
    let page = include_str!("../docs/errors.md");
    let section = page.split("\n## ").next().unwrap_or_default();
    let mut codes = BTreeSet::new();
    for row in section.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let Ok(status) = cells[1].parse::<u16>() else { continue };
        for code in cells[2].split(',') {
            codes.insert((status, code.trim().trim_matches('`').to_owned()));
        }
    }
    codes
}

#[test]
fn the_documented_error_table_lists_exactly_the_catalogue_codes_with_their_statuses() {
    let catalogue: BTreeSet<(u16, String)> = CATALOGUE.iter().map(|e| (e.status, e.code.to_owned())).collect();
    let documented = documented_codes();
    let missing: Vec<_> = catalogue.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&catalogue).collect();
    assert!(missing.is_empty() && unknown.is_empty(), "docs/errors.md lacks {missing:?}; has, wrongly, {unknown:?}");
}

#[tokio::test]
async fn a_problem_body_names_the_request_id_its_response_header_carries() {
    let app = crate::support::TestApp::spawn().await;
    let missing = format!("/agents/{}", uuid::Uuid::new_v4());
    let made = app.get(&missing).await;
    let id = made.header("x-request-id").expect("a request id is made").to_owned();
    assert_eq!(made.problem(404, "agent_not_found")["requestId"], id.as_str());
    let kept = app.send(reqwest::Method::GET, &missing, None, &[("x-request-id", "client-chosen-42")]).await;
    assert_eq!(kept.header("x-request-id"), Some("client-chosen-42"));
    assert_eq!(kept.problem(404, "agent_not_found")["requestId"], "client-chosen-42");
    let unrouted = app.get("/no/such/route").await;
    assert_eq!(unrouted.problem(404, "route_not_found")["requestId"], unrouted.header("x-request-id").unwrap());
    // Outside a request (the snapshots above) there is no id to name, and no member.
    let (_, _, body) = rendered(ApiError::http(catalogue::ROUTE_NOT_FOUND, "no route for /x")).await;
    assert!(body.get("requestId").is_none(), "{body}");
}
