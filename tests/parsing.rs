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
        if let Err(ApiError::Http { status, .. }) = parse_json::<AgentInput>(&bytes) {
            prop_assert!(status.is_client_error());
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
            Err(ApiError::Http { status, errors, .. }) => {
                prop_assert_eq!(status, StatusCode::BAD_REQUEST);
                prop_assert!(!errors.is_empty());
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
