//! Tests of the whole adapter against the example cards in `fixtures/protocols/a2a-agent-card`
//! and the edge cases in `fixtures/protocols/a2a-edge`: translation, byte-exact serving, schema
//! validity of built cards, signatures, and property tests that unknown members change nothing
//! and that no input panics.
//!
//! Long on purpose: one test module for the adapter, fixtures and properties side by side.

use std::path::PathBuf;

use agent_registry_core::input::{AgentInput, CapabilityInput, EndpointInput};
use agent_registry_core::liveness::LivenessPolicy;
use agent_registry_core::model::{Agent, AgentId, Protocol, Transport};
use agent_registry_core::protocol::{Served, Translation};
use agent_registry_core::{FieldError, RegistryError};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use crate::{
    METADATA_KEY, REGISTRY_BINDING, card, registry_card, schemas, signature_key_urls, translate, verify_signatures,
};

fn fixture_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/protocols").join(name)
}

/// `(file name, text)` of every `.json` file in a fixture directory, sorted by name.
fn read_fixtures(dir: &str) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(fixture_dir(dir))
        .expect("fixture directory")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&path).expect("fixture text"))
        })
        .collect();
    files.sort();
    files
}

/// The example cards and the edge cases that must register.
fn valid_cards() -> Vec<(String, String)> {
    let mut cards = read_fixtures("a2a-agent-card");
    cards.extend(
        read_fixtures("a2a-edge")
            .into_iter()
            .filter(|(name, _)| !name.starts_with("invalid_") && !name.contains("jwks")),
    );
    cards
}

fn edge(name: &str) -> String {
    std::fs::read_to_string(fixture_dir("a2a-edge").join(name)).expect("edge fixture")
}

fn example(name: &str) -> String {
    std::fs::read_to_string(fixture_dir("a2a-agent-card").join(name)).expect("example fixture")
}

/// The agent the registry would store for `input` (fresh ids), through core's own validation, so
/// that a translation core refuses fails the test.
fn agent_from_input(input: &AgentInput) -> Result<Agent, RegistryError> {
    let now = chrono::Utc::now();
    let (spec, owner, endpoints) = input.to_registration(&LivenessPolicy::default(), now)?;
    Ok(Agent {
        revision: 1,
        ..spec.to_agent(AgentId::generate(), owner.unwrap_or_else(|| "test-owner".to_owned()), endpoints, now)
    })
}

/// The agent registered with a card, as the HTTP layer completes the translation.
fn agent_from(translation: &Translation) -> Agent {
    let mut input = translation.agent.clone();
    input.origin = Some(translation.origin.clone());
    agent_from_input(&input).unwrap_or_else(|e| panic!("core refuses the translation: {e} {:?}", e.fields()))
}

fn pointers(error: &RegistryError) -> Vec<String> {
    error.fields().into_iter().map(|FieldError { pointer, .. }| pointer).collect()
}

fn endpoint_names(translation: &Translation) -> Vec<String> {
    translation.agent.endpoints.iter().flatten().filter_map(|e| e.name.clone()).collect()
}

fn addresses(translation: &Translation) -> Vec<String> {
    translation.agent.endpoints.iter().flatten().filter_map(|e| e.address.clone()).collect()
}

fn capability_names(translation: &Translation) -> Vec<String> {
    translation.agent.capabilities.iter().flatten().filter_map(|c| c.name.clone()).collect()
}

fn assert_valid_for_v1_and_v03(card: &Value) {
    for version in ["1.0", "0.3"] {
        let schema = schemas::for_version(version).expect("schema compiles");
        let violations = schema.violations(card, "");
        assert!(violations.is_empty(), "not a valid {version} card: {violations:?}\n{card:#}");
    }
}

fn built(served: Served) -> Value {
    match served {
        Served::Built(value) => value,
        Served::Verbatim(text) => panic!("expected a built card, got the registered one: {text}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Translation of the example cards

#[test]
fn every_schema_compiles() {
    for version in ["1.0", "0.3", "0.2"] {
        schemas::for_version(version).unwrap_or_else(|e| panic!("{version}: {e}"));
    }
}

#[test]
fn every_example_card_translates_and_is_served_back_byte_for_byte() {
    let cards = valid_cards();
    assert!(cards.len() >= 10, "fixtures missing: {cards:?}");
    for (name, text) in cards {
        for base in ["", "/card"] {
            let translation = translate(&text, base).unwrap_or_else(|e| panic!("{name}: {e} {:?}", e.fields()));
            assert_eq!(translation.origin.text, text, "{name}");
            assert_eq!(translation.origin.signature_verified, None, "{name}");
            let agent = agent_from(&translation);
            let served = card(&agent).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(served, Served::Verbatim(text.clone()), "{name}");
            let original: Value = serde_json::from_str(&text).expect("fixture is JSON");
            assert_eq!(served.into_value(), original, "{name}");
        }
    }
}

#[test]
fn versions_are_read_from_the_card() {
    let expected = [
        ("a2a-samples_air-ticketing_v0.2-style.json", "0.2"),
        ("a2a-samples_currency-agent_v0.3.0.json", "0.3"),
        ("a2a-samples_skills-agent_v1.0-dual-interface.json", "1.0"),
        ("a2a-spec-v0.3.0_sample-card.json", "0.2"),
        ("a2a-spec-v1.0.1_sample-card.json", "1.0"),
        ("generated_a2a-sdk-1.3.0_served-dual-format-card.json", "1.0"),
        ("google-adk-samples_lha-e2e-fixture_v1.0-tenant.json", "1.0"),
    ];
    for (name, version) in expected {
        assert_eq!(translate(&example(name), "").unwrap().origin.version, version, "{name}");
    }
}

#[test]
fn the_air_ticketing_card_without_protocol_version_and_with_text_modes_is_a_v0_2_card() {
    let t = translate(&example("a2a-samples_air-ticketing_v0.2-style.json"), "/card").unwrap();
    assert_eq!(t.origin.version, "0.2");
    assert_eq!(t.agent.name.as_deref(), Some("Air Ticketing Agent"));
    assert_eq!(t.agent.version.as_deref(), Some("1.0.0"));
    assert_eq!(endpoint_names(&t), ["jsonrpc"]);
    assert_eq!(addresses(&t), ["http://localhost:10103/"]);
    let endpoint = &t.agent.endpoints.as_ref().unwrap()[0];
    assert_eq!(endpoint.protocol, Some(Protocol::A2A));
    assert_eq!(endpoint.transport, Some(Transport::Http));
    assert_eq!(endpoint.liveness_model, None);
    assert_eq!(
        endpoint.protocol_metadata,
        Some(json!({"url": "http://localhost:10103/", "protocolBinding": "JSONRPC", "protocolVersion": "0.2"}))
    );
    let capability = &t.agent.capabilities.as_ref().unwrap()[0];
    assert_eq!(capability.name.as_deref(), Some("book_air_tickets"));
    assert_eq!(capability.description.as_deref(), Some("Helps with booking air tickets given a criteria"));
    assert_eq!(capability.tags.as_deref(), Some(&["Book air tickets".to_owned()][..]));
}

#[test]
fn a_legacy_card_repeating_its_main_interface_makes_one_endpoint_per_interface() {
    let t = translate(&example("a2a-spec-v0.3.0_sample-card.json"), "").unwrap();
    assert_eq!(endpoint_names(&t), ["jsonrpc", "grpc", "http-json"]);
    assert_eq!(
        addresses(&t),
        [
            "https://georoute-agent.example.com/a2a/v1",
            "https://georoute-agent.example.com/a2a/grpc",
            "https://georoute-agent.example.com/a2a/json"
        ]
    );
    let metadata: Vec<Value> = t.agent.endpoints.iter().flatten().filter_map(|e| e.protocol_metadata.clone()).collect();
    assert_eq!(
        metadata[1],
        json!({"url": "https://georoute-agent.example.com/a2a/grpc", "protocolBinding": "GRPC", "protocolVersion": "0.2"})
    );
    assert_eq!(capability_names(&t), ["route-optimizer-traffic", "custom-map-generator"]);
    let facts = &t.agent.metadata.as_ref().unwrap()[METADATA_KEY];
    assert_eq!(facts["capabilities"]["extendedAgentCard"], json!(true));
    assert_eq!(facts["provider"]["organization"], json!("Example Geo Services Inc."));
}

#[test]
fn v1_interfaces_become_endpoints_in_order_with_the_interface_as_metadata() {
    let t = translate(&example("generated_a2a-sdk-1.3.0_served-dual-format-card.json"), "").unwrap();
    assert_eq!(endpoint_names(&t), ["jsonrpc", "grpc", "http-json", "jsonrpc-0.3"]);
    let last = t.agent.endpoints.as_ref().unwrap()[3].protocol_metadata.clone();
    assert_eq!(
        last,
        Some(
            json!({"url": "https://georoute-agent.example.com/a2a/v1", "protocolBinding": "JSONRPC", "protocolVersion": "0.3"})
        )
    );
    let dual = translate(&example("a2a-samples_skills-agent_v1.0-dual-interface.json"), "").unwrap();
    assert_eq!(endpoint_names(&dual), ["jsonrpc", "jsonrpc-0.3"]);
    let tenant = translate(&example("google-adk-samples_lha-e2e-fixture_v1.0-tenant.json"), "").unwrap();
    assert_eq!(tenant.agent.endpoints.as_ref().unwrap()[0].protocol_metadata.as_ref().unwrap()["tenant"], json!(""));
    assert_eq!(tenant.agent.capabilities.as_deref().map(<[CapabilityInput]>::len), Some(0));
}

#[test]
fn unknown_members_nulls_unicode_and_big_numbers_are_accepted() {
    let text = edge("v1_unknown-fields-nulls-unicode-big-numbers.json");
    let t = translate(&text, "/card").unwrap();
    assert_eq!(t.agent.name.as_deref(), Some("Ünïcødé Agent 🚀 エージェント"));
    assert_eq!(endpoint_names(&t), ["jsonrpc", "http-json"]);
    assert_eq!(capability_names(&t), ["übersetzen", "summarise"]);
    let caps = t.agent.capabilities.as_ref().unwrap();
    // The tag with a comma stays in the card but not in discovery.
    assert_eq!(caps[0].tags.as_deref(), Some(&["translation".to_owned(), "Übersetzung".to_owned()][..]));
    assert_eq!(caps[1].description, None);
    // The interface is kept as submitted, unknown members and nulls included.
    let metadata = t.agent.endpoints.as_ref().unwrap()[0].protocol_metadata.clone().unwrap();
    assert_eq!(metadata["x-routing"]["region"], Value::Null);
    assert_eq!(metadata["tenant"], json!("tenant-ß"));
    let agent = agent_from(&t);
    assert_eq!(card(&agent).unwrap(), Served::Verbatim(text.clone()));
    assert_eq!(verify_signatures(&text, &JwkSet { keys: Vec::new() }), None);
}

#[test]
fn leniencies_seen_in_real_legacy_cards_are_accepted() {
    let t = translate(&edge("v0.3_leniencies-seen-in-real-cards.json"), "").unwrap();
    assert_eq!(t.origin.version, "0.3");
    // The repeated main interface is left out; the MCP transport stays an A2A interface binding.
    assert_eq!(endpoint_names(&t), ["jsonrpc", "mcp", "jsonrpc-2"]);
    let facts = &t.agent.metadata.as_ref().unwrap()[METADATA_KEY];
    assert_eq!(facts["provider"]["organization"], json!("Legacy Corp"));
    assert_eq!(facts["defaultInputModes"], json!(["text"]));
    assert_eq!(facts["capabilities"]["extendedAgentCard"], json!(true));
}

#[test]
fn cards_in_the_dotnet_registry_shape_still_register() {
    let t = translate(&edge("dotnet-registry_v1-rc-card.json"), "/card").unwrap();
    assert_eq!(t.origin.version, "1.0");
    assert_eq!(endpoint_names(&t), ["jsonrpc"]);
    assert_eq!(capability_names(&t), ["summarize", "translate"]);
    // Served back: the card itself, once; a built card names the binding the .NET card gave.
    let mut agent = agent_from(&t);
    assert_eq!(card(&agent).unwrap(), Served::Verbatim(t.origin.text.clone()));
    agent.origin = None;
    let rebuilt = built(card(&agent).unwrap());
    assert_eq!(rebuilt["skills"].as_array().map(Vec::len), Some(2));
    assert_eq!(rebuilt["supportedInterfaces"][0]["protocolBinding"], json!("JSONRPC"));
    assert_valid_for_v1_and_v03(&rebuilt);
}

// ---------------------------------------------------------------------------------------------
// Refusals

#[test]
fn schema_violations_are_422_at_their_pointers_under_the_base() {
    let error = translate(&edge("invalid_schema-violations.json"), "/card").unwrap_err();
    assert_eq!(error.code(), "schema_violation");
    let mut found = pointers(&error);
    found.sort();
    found.dedup();
    assert_eq!(found, ["/card/capabilities/streaming", "/card/name", "/card/skills/0", "/card/supportedInterfaces/0"]);

    let legacy = json!({"protocolVersion": "0.3.0", "name": "x", "description": "x", "url": "https://x.example.com",
        "version": "1", "capabilities": {}, "defaultInputModes": [], "defaultOutputModes": [],
        "skills": [{"id": "a", "name": "a", "description": "a", "tags": [1]}]});
    let error = translate(&legacy.to_string(), "").unwrap_err();
    assert_eq!(error.code(), "schema_violation");
    assert_eq!(pointers(&error), ["/skills/0/tags/0"]);

    let missing = json!({"protocolVersion": "0.3.0", "name": "x"});
    let error = translate(&missing.to_string(), "/card").unwrap_err();
    assert!(pointers(&error).iter().all(|p| p == "/card"), "{error:?}");

    // A v1 version claim without v1 interfaces: the v1 schema says what is missing.
    let claim = json!({"protocolVersion": "1.0", "name": "x", "description": "x", "url": "https://x.example.com",
        "version": "1", "capabilities": {}, "defaultInputModes": [], "defaultOutputModes": [], "skills": []});
    let error = translate(&claim.to_string(), "").unwrap_err();
    assert_eq!(error.code(), "schema_violation");
    assert!(error.fields()[0].detail.contains("supportedInterfaces"), "{error:?}");
}

#[test]
fn a_null_required_member_counts_as_missing() {
    let mut card: Value = serde_json::from_str(&example("a2a-spec-v1.0.1_sample-card.json")).unwrap();
    card["version"] = Value::Null;
    let error = translate(&card.to_string(), "/card").unwrap_err();
    assert_eq!(error.code(), "schema_violation");
    assert_eq!(pointers(&error), ["/card"]);
    assert!(error.fields()[0].detail.contains("version"));
}

#[test]
fn documents_that_are_not_json_objects_are_400_at_the_base() {
    for (text, base) in [("not json", "/card"), ("[1, 2]", "/card"), ("\"card\"", ""), ("null", "")] {
        let error = translate(text, base).unwrap_err();
        assert_eq!(error.code(), "validation_failed", "{text}");
        assert_eq!(pointers(&error), [base], "{text}");
    }
}

#[test]
fn a_duplicate_skill_id_is_400_at_the_second_skill() {
    let error = translate(&edge("invalid_duplicate-skill-ids.json"), "/card").unwrap_err();
    assert_eq!(error.code(), "validation_failed");
    assert_eq!(pointers(&error), ["/card/skills/1/id"]);
    assert!(error.fields()[0].detail.contains("skill 0"));
}

#[test]
fn a_card_without_any_interface_is_refused_unlike_the_dotnet_registry() {
    let error = translate(&edge("invalid_no-interfaces.json"), "/card").unwrap_err();
    assert_eq!(error.code(), "validation_failed");
    assert_eq!(pointers(&error), ["/card/supportedInterfaces"]);
}

#[test]
fn relative_and_unusable_interface_urls_are_400_at_the_url() {
    let error = translate(&edge("invalid_relative-interface-url.json"), "/card").unwrap_err();
    assert_eq!(pointers(&error), ["/card/supportedInterfaces/0/url"]);
    assert!(error.fields()[0].detail.contains("relative"));

    let mut legacy: Value = serde_json::from_str(&example("a2a-spec-v0.3.0_sample-card.json")).unwrap();
    legacy["url"] = json!("ftp://georoute-agent.example.com/a2a");
    legacy["additionalInterfaces"][1]["url"] = json!("https://user:secret@georoute-agent.example.com/grpc");
    legacy["additionalInterfaces"][2]["url"] = json!("");
    let error = translate(&legacy.to_string(), "").unwrap_err();
    assert_eq!(error.code(), "validation_failed");
    assert_eq!(pointers(&error), ["/url", "/additionalInterfaces/1/url", "/additionalInterfaces/2/url"]);
}

#[test]
fn the_registry_limits_are_checked_with_pointers_into_the_card() {
    let mut card: Value = serde_json::from_str(&example("a2a-spec-v1.0.1_sample-card.json")).unwrap();
    card["name"] = json!("n".repeat(257));
    card["version"] = json!("1.0\u{0}");
    card["skills"][1]["description"] = json!("d".repeat(4097));
    card["skills"][0]["id"] = json!("  ");
    let error = translate(&card.to_string(), "/card").unwrap_err();
    assert_eq!(error.code(), "validation_failed");
    assert_eq!(pointers(&error), ["/card/name", "/card/version", "/card/skills/0/id", "/card/skills/1/description"]);

    let interface = json!({"url": "https://x.example.com", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"});
    card = serde_json::from_str(&example("a2a-spec-v1.0.1_sample-card.json")).unwrap();
    card["supportedInterfaces"] = Value::Array(vec![interface; 33]);
    assert_eq!(pointers(&translate(&card.to_string(), "").unwrap_err()), ["/supportedInterfaces"]);

    let skill = |i: usize| json!({"id": format!("s{i}"), "name": "s", "description": "s", "tags": []});
    card = serde_json::from_str(&example("a2a-spec-v1.0.1_sample-card.json")).unwrap();
    card["skills"] = (0..129).map(skill).collect();
    assert_eq!(pointers(&translate(&card.to_string(), "").unwrap_err()), ["/skills"]);

    card = serde_json::from_str(&example("a2a-spec-v1.0.1_sample-card.json")).unwrap();
    card["supportedInterfaces"][2]["x-big"] = json!("b".repeat(70_000));
    assert_eq!(pointers(&translate(&card.to_string(), "").unwrap_err()), ["/supportedInterfaces/2"]);
}

// ---------------------------------------------------------------------------------------------
// Serving cards

fn generic_agent(endpoints: Vec<EndpointInput>, metadata: Option<Map<String, Value>>) -> Agent {
    let input = AgentInput {
        name: Some("Weather".into()),
        description: Some("Forecasts the weather.".into()),
        capabilities: Some(vec![
            CapabilityInput { name: Some("forecast".into()), tags: Some(vec!["weather".into()]), ..Default::default() },
            CapabilityInput {
                name: Some("alerts".into()),
                description: Some("Severe weather alerts.".into()),
                ..Default::default()
            },
        ]),
        endpoints: Some(endpoints),
        metadata,
        ..Default::default()
    };
    agent_from_input(&input).unwrap()
}

fn endpoint(
    name: &str,
    transport: Transport,
    protocol: Protocol,
    address: &str,
    metadata: Option<Value>,
) -> EndpointInput {
    EndpointInput {
        name: Some(name.into()),
        transport: Some(transport),
        protocol: Some(protocol),
        address: Some(address.into()),
        protocol_metadata: metadata,
        ..Default::default()
    }
}

#[test]
fn a_generic_agent_gets_a_card_valid_for_v1_and_v0_3_clients() {
    let agent = generic_agent(
        vec![
            endpoint("main", Transport::Http, Protocol::A2A, "https://weather.example.com/a2a", None),
            endpoint(
                "grpc",
                Transport::Http,
                Protocol::A2A,
                "https://weather.example.com/grpc",
                Some(json!({"protocolBinding": "GRPC", "protocolVersion": "1.0", "tenant": "t1"})),
            ),
            endpoint("queue", Transport::Amqp, Protocol::A2A, "amqp://broker.example.com/%2F/weather", None),
            endpoint("mcp", Transport::Http, Protocol::MCP, "https://weather.example.com/mcp", None),
        ],
        None,
    );
    let card = built(card(&agent).unwrap());
    assert_valid_for_v1_and_v03(&card);
    assert_eq!(
        card["supportedInterfaces"],
        json!([
            {"url": "https://weather.example.com/a2a", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
            {"url": "https://weather.example.com/grpc", "protocolBinding": "GRPC", "protocolVersion": "1.0", "tenant": "t1"}
        ])
    );
    assert_eq!(
        card["skills"],
        json!([
            {"id": "forecast", "name": "forecast", "description": "forecast", "tags": ["weather"]},
            {"id": "alerts", "name": "alerts", "description": "Severe weather alerts.", "tags": ["general"]}
        ])
    );
    assert_eq!(card["url"], json!("https://weather.example.com/a2a"));
    assert_eq!(card["preferredTransport"], json!("JSONRPC"));
    assert_eq!(card["protocolVersion"], json!("1.0"));
    assert_eq!(
        card["additionalInterfaces"],
        json!([
            {"url": "https://weather.example.com/a2a", "transport": "JSONRPC"},
            {"url": "https://weather.example.com/grpc", "transport": "GRPC"}
        ])
    );
    assert_eq!(card["defaultInputModes"], json!(["application/json"]));
    assert_eq!(card["version"], json!("0.0.0"));
    assert!(!card.to_string().contains("amqp"), "a queue endpoint has no URL an A2A client can call");
}

#[test]
fn the_v0_3_fields_of_a_built_card_point_at_its_0_x_interfaces() {
    let agent = generic_agent(
        vec![
            endpoint("v1", Transport::Http, Protocol::A2A, "https://a.example.com/v1", None),
            endpoint(
                "v03",
                Transport::Http,
                Protocol::A2A,
                "https://a.example.com/v03",
                Some(json!({"protocolBinding": "HTTP+JSON", "protocolVersion": "0.3"})),
            ),
        ],
        Some(
            serde_json::from_value(json!({"a2a": {"capabilities": {"extendedAgentCard": true, "streaming": "yes"}}}))
                .unwrap(),
        ),
    );
    let card = built(card(&agent).unwrap());
    assert_valid_for_v1_and_v03(&card);
    assert_eq!(card["url"], json!("https://a.example.com/v03"));
    assert_eq!(card["preferredTransport"], json!("HTTP+JSON"));
    assert_eq!(card["protocolVersion"], json!("0.3"));
    assert!(card.get("additionalInterfaces").is_none());
    assert_eq!(card["supportsAuthenticatedExtendedCard"], json!(true));
    // A flag of the wrong type in metadata is ignored rather than served.
    assert_eq!(card["capabilities"], json!({"extendedAgentCard": true}));
}

#[test]
fn a_card_changed_through_the_generic_api_is_rebuilt_from_what_its_registration_kept() {
    for (name, text) in valid_cards() {
        let mut agent = agent_from(&translate(&text, "").unwrap());
        agent.origin = None;
        let rebuilt = built(card(&agent).unwrap_or_else(|e| panic!("{name}: {e}")));
        assert_valid_for_v1_and_v03(&rebuilt);
        let original: Value = serde_json::from_str(&text).unwrap();
        let ids = |card: &Value| -> Vec<Value> {
            card["skills"].as_array().into_iter().flatten().map(|s| s["id"].clone()).collect()
        };
        assert_eq!(ids(&rebuilt), ids(&original), "{name}: skills are listed once each");
        assert_eq!(rebuilt["name"], original["name"], "{name}");
        if original.get("supportedInterfaces").is_some() {
            let bindings = |card: &Value| -> Vec<(Value, Value)> {
                card["supportedInterfaces"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|i| (i["url"].clone(), i.get("protocolBinding").unwrap_or(&json!("JSONRPC")).clone()))
                    .collect()
            };
            assert_eq!(bindings(&rebuilt), bindings(&original), "{name}: bindings are never rewritten");
        }
        for pointer in
            ["/defaultInputModes", "/defaultOutputModes", "/iconUrl", "/provider/organization", "/provider/url"]
        {
            if let Some(value) = original.pointer(pointer).filter(|v| !v.is_null()) {
                assert_eq!(rebuilt.pointer(pointer), Some(value), "{name}: {pointer}");
            }
        }
        if let Some(name_only) = original.pointer("/provider/name") {
            assert_eq!(rebuilt.pointer("/provider/organization"), Some(name_only), "{name}");
        }
    }
}

#[test]
fn an_agent_without_a2a_http_endpoints_has_no_card() {
    let queue_only = generic_agent(
        vec![endpoint("q", Transport::Amqp, Protocol::A2A, "amqp://broker.example.com/%2F/q", None)],
        None,
    );
    let mcp_only =
        generic_agent(vec![endpoint("m", Transport::Http, Protocol::MCP, "https://m.example.com/mcp", None)], None);
    for agent in [queue_only, mcp_only] {
        let error = card(&agent).unwrap_err();
        assert_eq!(error.code(), "no_protocol_document");
        assert!(matches!(error, RegistryError::NoProtocolDocument { protocol: Protocol::A2A, .. }));
    }
}

#[test]
fn the_registry_card_is_valid_and_advertises_only_what_the_registry_serves() {
    let card = registry_card("https://registry.example.com/", "1.2.3");
    assert_valid_for_v1_and_v03(&card);
    assert_eq!(
        card["supportedInterfaces"],
        json!([{"url": "https://registry.example.com", "protocolBinding": REGISTRY_BINDING, "protocolVersion": "1.0"}])
    );
    assert_eq!(card["url"], json!("https://registry.example.com"));
    assert_eq!(card["preferredTransport"], json!(REGISTRY_BINDING));
    assert_eq!(card["documentationUrl"], json!("https://registry.example.com/docs"));
    assert_eq!(card["version"], json!("1.2.3"));
    let text = card.to_string();
    for binding in ["\"JSONRPC\"", "\"GRPC\"", "\"HTTP+JSON\""] {
        assert!(!text.contains(binding), "the registry does not speak {binding}");
    }
    let ids: Vec<&str> = card["skills"].as_array().unwrap().iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(ids, ["agent-discovery", "agent-registration", "protocol-documents"]);
    for route in ["/discover/agents", "/agents", "/a2a/agents", "/mcp/servers", "/v0.1/servers", "/acp/agents"] {
        assert!(text.contains(&format!("https://registry.example.com{route}")), "{route}");
    }
    // A registry card is also a card this adapter reads.
    let t = translate(&text, "").unwrap();
    assert_eq!(endpoint_names(&t), ["urn-agent-registry-rest"]);
}

// ---------------------------------------------------------------------------------------------
// Signatures

const ED25519_PEM: &[u8] = include_bytes!("../../../fixtures/protocols/a2a-edge/test-only-ed25519.pem");
const ES256_PEM: &[u8] = include_bytes!("../../../fixtures/protocols/a2a-edge/test-only-es256.pem");
const RS256_PEM: &[u8] = include_bytes!("../../../fixtures/protocols/a2a-edge/test-only-rs256.pem");

fn jwks(name: &str) -> JwkSet {
    serde_json::from_str(&edge(name)).expect("JWK set")
}

fn test_keys() -> JwkSet {
    jwks("test-only-keys.jwks.json")
}

/// Signs `card` the A2A way (§8.4): JCS of the card without `signatures`, JWS with a protected
/// header. `prepare` may change the payload object before it is canonicalised.
fn sign_with(card: &Value, key: &EncodingKey, algorithm: Algorithm, header: &Value, prepare: fn(&mut Value)) -> Value {
    let mut payload = card.clone();
    if let Some(object) = payload.as_object_mut() {
        object.remove("signatures");
    }
    prepare(&mut payload);
    let protected = URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap());
    let body = URL_SAFE_NO_PAD.encode(serde_json_canonicalizer::to_vec(&payload).unwrap());
    let signature = jsonwebtoken::crypto::sign(format!("{protected}.{body}").as_bytes(), key, algorithm).unwrap();
    let mut signed = card.clone();
    signed["signatures"] = json!([{"protected": protected, "signature": signature}]);
    signed
}

fn sign(card: &Value, key: &EncodingKey, algorithm: Algorithm, kid: &str) -> Value {
    let header = json!({"alg": algorithm, "typ": "JOSE", "kid": kid, "jku": "https://keys.example.com/jwks.json"});
    sign_with(card, key, algorithm, &header, |_| {})
}

fn sample() -> Value {
    let mut card: Value = serde_json::from_str(&edge("v1_unknown-fields-nulls-unicode-big-numbers.json")).unwrap();
    card.as_object_mut().unwrap().remove("signatures");
    card
}

#[test]
fn the_committed_jwks_match_the_committed_private_keys() {
    let keys = test_keys();
    let derived = [
        (
            jsonwebtoken::jwk::Jwk::from_encoding_key(
                &EncodingKey::from_ed_pem(ED25519_PEM).unwrap(),
                Algorithm::EdDSA,
            ),
            "test-ed25519",
        ),
        (
            jsonwebtoken::jwk::Jwk::from_encoding_key(&EncodingKey::from_ec_pem(ES256_PEM).unwrap(), Algorithm::ES256),
            "test-es256",
        ),
        (
            jsonwebtoken::jwk::Jwk::from_encoding_key(&EncodingKey::from_rsa_pem(RS256_PEM).unwrap(), Algorithm::RS256),
            "test-rs256",
        ),
    ];
    for (jwk, kid) in derived {
        let committed = keys.find(kid).unwrap();
        assert_eq!(jwk.unwrap().algorithm, committed.algorithm, "{kid}");
    }
}

#[test]
fn a_card_signed_with_eddsa_es256_or_rs256_verifies_and_fails_once_tampered() {
    let keys = test_keys();
    let signers = [
        (EncodingKey::from_ed_pem(ED25519_PEM).unwrap(), Algorithm::EdDSA, "test-ed25519"),
        (EncodingKey::from_ec_pem(ES256_PEM).unwrap(), Algorithm::ES256, "test-es256"),
        (EncodingKey::from_rsa_pem(RS256_PEM).unwrap(), Algorithm::RS256, "test-rs256"),
    ];
    for (key, algorithm, kid) in signers {
        let signed = sign(&sample(), &key, algorithm, kid);
        // Pretty-printed with another member order: JCS makes the bytes irrelevant.
        let text = serde_json::to_string_pretty(&signed).unwrap();
        assert_eq!(verify_signatures(&text, &keys), Some(true), "{kid}");
        assert_eq!(verify_signatures(&signed.to_string(), &keys), Some(true), "{kid}");

        let mut tampered = signed.clone();
        tampered["supportedInterfaces"][0]["url"] = json!("https://attacker.example.com/a2a");
        assert_eq!(verify_signatures(&tampered.to_string(), &keys), Some(false), "{kid}");
        let mut tampered = signed.clone();
        tampered["x-top-level"]["emoji"] = json!("🙃");
        assert_eq!(verify_signatures(&tampered.to_string(), &keys), Some(false), "{kid}");
    }
}

#[test]
fn a_signature_fails_with_another_key_or_without_the_named_key() {
    let signed = sign(&sample(), &EncodingKey::from_ed_pem(ED25519_PEM).unwrap(), Algorithm::EdDSA, "test-ed25519");
    let text = signed.to_string();
    // Same kid, different key.
    assert_eq!(verify_signatures(&text, &jwks("test-only-other-ed25519.jwks.json")), Some(false));
    assert_eq!(verify_signatures(&text, &JwkSet { keys: Vec::new() }), Some(false));
    // The right key under another kid is not tried.
    let mut renamed = test_keys();
    for key in &mut renamed.keys {
        key.common.key_id = Some("someone-else".into());
    }
    assert_eq!(verify_signatures(&text, &renamed), Some(false));
    // One good signature among bad ones is enough.
    let mut several = signed.clone();
    let good = several["signatures"][0].clone();
    several["signatures"] =
        json!([{"protected": "%%%", "signature": "x"}, {"protected": good["protected"], "signature": "AAAA"}, good]);
    assert_eq!(verify_signatures(&several.to_string(), &test_keys()), Some(true));
}

#[test]
fn only_the_first_signatures_of_a_card_are_tried() {
    let signed = sign(&sample(), &EncodingKey::from_ed_pem(ED25519_PEM).unwrap(), Algorithm::EdDSA, "test-ed25519");
    let good = signed["signatures"][0].clone();
    let bad = json!({"protected": good["protected"], "signature": "AAAA"});
    let mut late = signed.clone();
    let mut list = vec![bad; crate::MAX_SIGNATURES];
    list.push(good);
    late["signatures"] = Value::Array(list);
    assert_eq!(verify_signatures(&late.to_string(), &test_keys()), Some(false));
    assert_eq!(signature_key_urls(&late.to_string()), ["https://keys.example.com/jwks.json"]);
}

#[test]
fn algorithm_confusion_and_unknown_critical_headers_are_refused() {
    let keys = test_keys();
    // EdDSA named in the header, but the kid points at the RSA key.
    let header = json!({"alg": "EdDSA", "kid": "test-rs256"});
    let signed =
        sign_with(&sample(), &EncodingKey::from_ed_pem(ED25519_PEM).unwrap(), Algorithm::EdDSA, &header, |_| {});
    assert_eq!(verify_signatures(&signed.to_string(), &keys), Some(false));
    // HMAC with a shared secret published as an `oct` key proves nothing.
    let secret: JwkSet =
        serde_json::from_value(json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}]})).unwrap();
    let header = json!({"alg": "HS256", "kid": "hmac"});
    let signed = sign_with(&sample(), &EncodingKey::from_secret(b"secret"), Algorithm::HS256, &header, |_| {});
    assert_eq!(verify_signatures(&signed.to_string(), &secret), Some(false));
    // `crit` names an extension this verifier does not implement.
    let header = json!({"alg": "EdDSA", "kid": "test-ed25519", "crit": ["b64"], "b64": true});
    let signed =
        sign_with(&sample(), &EncodingKey::from_ed_pem(ED25519_PEM).unwrap(), Algorithm::EdDSA, &header, |_| {});
    assert_eq!(verify_signatures(&signed.to_string(), &keys), Some(false));
    // The key's declared algorithm must be the header's.
    let mut declared = test_keys();
    declared.keys[0].common.key_algorithm = Some(jsonwebtoken::jwk::KeyAlgorithm::ES256);
    let signed = sign(&sample(), &EncodingKey::from_ed_pem(ED25519_PEM).unwrap(), Algorithm::EdDSA, "test-ed25519");
    assert_eq!(verify_signatures(&signed.to_string(), &declared), Some(false));
}

#[test]
fn cards_signed_without_their_empty_values_verify() {
    // a2a-python drops null, "", [] and {} before canonicalising (§8.4: default values are left out).
    let header = json!({"alg": "EdDSA", "typ": "JOSE", "kid": "test-ed25519"});
    let signed =
        sign_with(&sample(), &EncodingKey::from_ed_pem(ED25519_PEM).unwrap(), Algorithm::EdDSA, &header, |card| {
            let cleaned = crate::tests::drop_empty(card);
            *card = cleaned;
        });
    assert_eq!(verify_signatures(&signed.to_string(), &test_keys()), Some(true));
}

/// The test's own copy of the empty-value rule, to check the adapter's against.
fn drop_empty(value: &Value) -> Value {
    match value {
        Value::Object(members) => Value::Object(
            members.iter().map(|(k, v)| (k.clone(), drop_empty(v))).filter(|(_, v)| !is_empty(v)).collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(drop_empty).filter(|v| !is_empty(v)).collect()),
        other => other.clone(),
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

#[test]
fn unsigned_and_unreadable_cards_have_no_signature_verdict() {
    let keys = test_keys();
    assert_eq!(verify_signatures(&example("a2a-samples_currency-agent_v0.3.0.json"), &keys), None);
    assert_eq!(verify_signatures("not json", &keys), None);
    assert_eq!(verify_signatures("[]", &keys), None);
    assert_eq!(verify_signatures(r#"{"signatures": []}"#, &keys), None);
    assert_eq!(verify_signatures(r#"{"signatures": null}"#, &keys), None);
    assert_eq!(verify_signatures(r#"{"signatures": "x"}"#, &keys), Some(false));
    assert_eq!(verify_signatures(r#"{"signatures": [1, {}, {"protected": 3}]}"#, &keys), Some(false));
    // The spec's sample signatures are placeholders made with a key nobody has.
    assert_eq!(verify_signatures(&example("a2a-spec-v1.0.1_sample-card.json"), &keys), Some(false));
}

#[test]
fn key_urls_come_from_the_protected_headers() {
    assert_eq!(
        signature_key_urls(&example("a2a-spec-v0.3.0_sample-card.json")),
        ["https://example.com/agent/jwks.json"]
    );
    let signed = sign(&sample(), &EncodingKey::from_ed_pem(ED25519_PEM).unwrap(), Algorithm::EdDSA, "test-ed25519");
    let mut twice = signed.clone();
    let first = signed["signatures"][0].clone();
    twice["signatures"] =
        json!([first, first, {"protected": "!!"}, {"header": {"jku": "https://unprotected.example.com"}}]);
    assert_eq!(signature_key_urls(&twice.to_string()), ["https://keys.example.com/jwks.json"]);
    assert!(signature_key_urls("{").is_empty());
    assert!(signature_key_urls(&example("a2a-samples_currency-agent_v0.3.0.json")).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Properties

/// Any JSON value an unknown member might hold: nulls, unicode, extreme numbers, nesting.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop_oneof![Just(f64::MAX), Just(f64::MIN_POSITIVE), Just(-0.0), Just(1e300), Just(-1.5e-300), any::<f64>()]
            .prop_filter_map("finite", |f| f.is_finite().then(|| Value::from(f))),
        // NUL is refused in stored JSON, as in every other string.
        any::<String>().prop_map(|s| Value::from(s.replace('\0', ""))),
        "[\\p{L}\\p{So} ]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("\\PC{0,8}", inner), 0..4)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

/// JSON pointers of every object in `value` where the A2A schemas allow unknown members: not the
/// maps keyed by scheme names or scopes, whose values the schemas type.
fn open_objects(value: &Value, pointer: String, parent_key: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(members) => {
            if !matches!(parent_key, "securitySchemes" | "schemes" | "scopes" | "security[]") {
                out.push(pointer.clone());
            }
            for (key, member) in members {
                open_objects(member, format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1")), key, out);
            }
        }
        Value::Array(items) => {
            let key = if parent_key == "security" { "security[]" } else { "" };
            for (i, item) in items.iter().enumerate() {
                open_objects(item, format!("{pointer}/{i}"), key, out);
            }
        }
        _ => {}
    }
}

/// What a translation means for discovery, without the interface objects kept verbatim.
fn meaning(t: &Translation) -> Value {
    let endpoints: Vec<Value> = t
        .agent
        .endpoints
        .iter()
        .flatten()
        .map(|e| {
            let metadata = e.protocol_metadata.clone().unwrap_or_default();
            json!([
                e.name,
                e.address,
                e.transport,
                e.protocol,
                metadata["protocolBinding"],
                metadata["protocolVersion"]
            ])
        })
        .collect();
    json!({
        "name": t.agent.name, "description": t.agent.description, "version": t.agent.version,
        "capabilities": t.agent.capabilities, "endpoints": endpoints, "metadata": t.agent.metadata,
        "origin.version": t.origin.version,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn unknown_members_anywhere_keep_the_round_trip_exact(
        which in any::<prop::sample::Index>(),
        inserts in prop::collection::vec((any::<prop::sample::Index>(), "[a-zA-Z0-9_é✓🚀-]{1,10}", any_json()), 1..8),
        pretty in any::<bool>(),
    ) {
        let cards = valid_cards();
        let (name, text) = &cards[which.index(cards.len())];
        let original: Value = serde_json::from_str(text).unwrap();
        let mut objects = Vec::new();
        open_objects(&original, String::new(), "", &mut objects);
        let mut changed = original.clone();
        for (at, key, value) in &inserts {
            let pointer = &objects[at.index(objects.len())];
            if let Some(Value::Object(members)) = changed.pointer_mut(pointer) {
                members.insert(format!("ext_{key}"), value.clone());
            }
        }
        let text2 = if pretty { serde_json::to_string_pretty(&changed).unwrap() } else { changed.to_string() };

        let before = translate(text, "/card").unwrap();
        let after = translate(&text2, "/card").unwrap_or_else(|e| panic!("{name}: {e} {:?}", e.fields()));
        prop_assert_eq!(&after.origin.text, &text2);
        prop_assert_eq!(meaning(&after), meaning(&before), "{}", name);
        let served = card(&agent_from(&after)).unwrap();
        prop_assert_eq!(&served, &Served::Verbatim(text2.clone()));
        let served_value = served.into_value();
        prop_assert_eq!(&served_value, &changed);
        let reparsed: Value = serde_json::from_str(&text2).unwrap();
        prop_assert_eq!(&served_value, &reparsed);
    }

    #[test]
    fn no_card_makes_the_adapter_panic_and_accepted_cards_pass_core(
        which in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        replacement in any_json(),
        cut in any::<prop::sample::Index>(),
    ) {
        let cards = valid_cards();
        let (_, text) = &cards[which.index(cards.len())];
        let mut value: Value = serde_json::from_str(text).unwrap();
        // Replace one value anywhere (member or array item) with anything.
        let mut pointers = Vec::new();
        collect_pointers(&value, String::new(), &mut pointers);
        let pointer = &pointers[at.index(pointers.len())];
        if let Some(slot) = value.pointer_mut(pointer) {
            *slot = replacement;
        }
        let mutated = value.to_string();
        if let Ok(t) = translate(&mutated, "/card") {
            let agent = agent_from_input(&t.agent);
            prop_assert!(agent.is_ok(), "core refuses an accepted card: {:?}", agent.err().map(|e| e.fields()));
        }
        let _ = signature_key_urls(&mutated);
        let _ = verify_signatures(&mutated, &test_keys());
        // Truncated text: never a panic, always a refusal with a pointer at the base.
        let end = cut.index(mutated.len());
        let truncated = mutated.get(..end).unwrap_or_default();
        if let Err(e) = translate(truncated, "/card") {
            prop_assert!(e.fields().iter().all(|f| f.pointer.starts_with("/card")));
        }
        let _ = verify_signatures(truncated, &test_keys());
    }

    #[test]
    fn cards_built_for_generic_agents_are_valid_v1_and_v0_3_cards(
        name in "\\PC{1,40}",
        description in prop::option::of("\\PC{0,80}"),
        version in prop::option::of("[0-9a-z.\\-]{1,12}"),
        capabilities in prop::collection::btree_map("[a-z][a-z0-9-]{0,15}", (prop::option::of("\\PC{1,40}"), prop::collection::vec("[a-z]{1,8}", 0..3)), 0..5),
        endpoints in prop::collection::vec((0..4u8, 0..3u8, prop::option::of(any_json()), prop::option::of("[A-Z+]{1,8}"), prop::option::of("[01]\\.[0-9]")), 0..5),
        modes in prop::option::of(prop::collection::vec("[a-z]+/[a-z]+", 0..3)),
    ) {
        let capabilities = capabilities
            .into_iter()
            .map(|(name, (description, tags))| CapabilityInput {
                name: Some(name), description, tags: Some(tags), ..Default::default()
            })
            .collect();
        let endpoints = endpoints
            .into_iter()
            .enumerate()
            .map(|(i, (protocol, transport, extra, binding, version))| {
                let transport = [Transport::Http, Transport::Amqp, Transport::AzureServiceBus][usize::from(transport)];
                let address = match transport {
                    Transport::Http => format!("https://agent{i}.example.com/a2a"),
                    Transport::Amqp => format!("amqp://broker.example.com/%2F/q{i}"),
                    Transport::AzureServiceBus => format!("sb://contoso-bus.servicebus.windows.net/q{i}"),
                    Transport::Grpc => format!("agent{i}.example.com:50051"),
                };
                let mut metadata = Map::new();
                if let Some(extra) = extra { metadata.insert("extra".into(), extra); }
                if let Some(binding) = binding { metadata.insert("protocolBinding".into(), Value::from(binding)); }
                if let Some(version) = version { metadata.insert("protocolVersion".into(), Value::from(version)); }
                endpoint(&format!("e{i}"), transport, [Protocol::A2A, Protocol::MCP, Protocol::ACP, Protocol::Custom][usize::from(protocol)], &address, Some(Value::Object(metadata)))
            })
            .collect();
        let metadata = modes.map(|modes| {
            let mut facts = Map::new();
            facts.insert(METADATA_KEY.into(), json!({"defaultInputModes": modes, "provider": {"organization": "o"}}));
            facts
        });
        let input = AgentInput {
            name: Some(name), description, version, capabilities: Some(capabilities),
            endpoints: Some(endpoints), metadata, ..Default::default()
        };
        let Ok(agent) = agent_from_input(&input) else { return Ok(()) };
        let callable = agent.endpoints.iter().any(|e| e.protocol == Protocol::A2A && e.transport == Transport::Http);
        match card(&agent) {
            Ok(served) => {
                prop_assert!(callable);
                let card = built(served);
                for version in ["1.0", "0.3"] {
                    let violations = schemas::for_version(version).unwrap().violations(&card, "");
                    prop_assert!(violations.is_empty(), "{:?}\n{:#}", violations, card);
                }
                // And a built card is itself a card the registry reads back.
                let again = translate(&card.to_string(), "");
                prop_assert!(again.is_ok(), "{:?}", again.err().map(|e| e.fields()));
            }
            Err(e) => {
                prop_assert!(!callable);
                prop_assert_eq!(e.code(), "no_protocol_document");
            }
        }
    }
}

fn collect_pointers(value: &Value, pointer: String, out: &mut Vec<String>) {
    out.push(pointer.clone());
    match value {
        Value::Object(members) => {
            for (key, member) in members {
                collect_pointers(member, format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_pointers(item, format!("{pointer}/{i}"), out);
            }
        }
        _ => {}
    }
}
