//! Property tests: whatever arrives, request parsing answers with a value or a 4xx problem.

use agent_registry::http::extract::parse_json;
use agent_registry::http::problem::ApiError;
use agent_registry_core::input::AgentInput;
use agent_registry_core::query::DiscoveryQuery;
use axum::http::StatusCode;
use proptest::prelude::*;

proptest! {
    #[test]
    fn random_bytes_never_panic_and_fail_as_4xx(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Err(e @ ApiError::Http { .. }) = parse_json::<AgentInput>(&bytes) {
            prop_assert!(e.status().is_client_error());
        }
    }

    #[test]
    fn random_agents_validate_or_fail_with_field_errors(
        name in proptest::option::of(".{0,300}"),
        ttl in proptest::option::of(any::<i64>()),
        transport in prop_oneof![Just("\"Http\"".to_owned()), Just("7".to_owned()), Just("\"amqp\"".to_owned()),
                                 "[a-zA-Z]{0,8}".prop_map(|s| format!("\"{s}\""))],
        address in ".{0,64}",
        metadata in prop_oneof![Just("null".to_owned()), Just("\"{}\"".to_owned()), Just("[1]".to_owned()), ".{0,16}".prop_map(|s| serde_json::json!(s).to_string())],
    ) {
        let body = format!(
            r#"{{"name": {}, "endpoints": [{{"name": "e", "transport": {transport}, "address": {}, "ttlSeconds": {}, "protocolMetadata": {metadata}}}]}}"#,
            serde_json::json!(name), serde_json::json!(address), serde_json::json!(ttl)
        );
        match parse_json::<AgentInput>(body.as_bytes()) {
            Ok(input) => {
                if let Err(e) = input.to_registration(&Default::default(), chrono::Utc::now()) {
                    prop_assert!(!e.fields().is_empty(), "{e}");
                    prop_assert_eq!(e.code(), "validation_failed");
                }
            }
            Err(e @ ApiError::Http { .. }) => {
                prop_assert_eq!(e.status(), StatusCode::BAD_REQUEST);
                let has_fields = matches!(&e, ApiError::Http { errors, .. } if !errors.is_empty());
                prop_assert!(has_fields);
            }
            Err(other) => prop_assert!(false, "unexpected {:?}", other),
        }
    }

    #[test]
    fn random_query_strings_parse_or_fail_as_invalid_query(
        pairs in proptest::collection::vec(("[a-zA-Z]{1,16}", ".{0,40}"), 0..6)
    ) {
        let result = DiscoveryQuery::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())), true, true);
        if let Err(e) = result {
            prop_assert_eq!(e.code(), "invalid_query");
        }
    }
}

/// Random JSON whose keys are mostly the API's own field names, so values reach deep paths.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let key = prop_oneof![
        Just("name"),
        Just("description"),
        Just("endpoints"),
        Just("capabilities"),
        Just("tags"),
        Just("labels"),
        Just("transport"),
        Just("protocol"),
        Just("address"),
        Just("livenessModel"),
        Just("ttlSeconds"),
        Just("heartbeatIntervalSeconds"),
        Just("protocolMetadata"),
        Just("metadata"),
        Just("inputSchema"),
        Just("id"),
        Just("permanent"),
        Just("x"),
    ];
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        ".{0,20}".prop_map(serde_json::Value::from),
        Just(serde_json::json!("https://a.example/x")),
        Just(serde_json::json!("amqp://mq.example/v/q")),
        Just(serde_json::json!("Persistent")),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(key.clone().prop_map(str::to_owned), inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn the_router_answers_any_registration_body_with_201_or_a_4xx_problem() {
    use axum::body::Body;
    use tower::ServiceExt;

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = runtime.block_on(crate::support::TestApp::spawn());
    let router = agent_registry::router(app.state.clone());
    proptest!(ProptestConfig::with_cases(200), |(body in json_value())| {
        let request = axum::http::Request::post("/agents")
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = runtime.block_on(router.clone().oneshot(request)).unwrap();
        let status = response.status();
        prop_assert!(status == StatusCode::CREATED || status.is_client_error(), "{status} for {body}");
        if status.is_client_error() {
            let ct = response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
            prop_assert_eq!(ct.as_deref(), Some("application/problem+json"));
        }
    });
}
