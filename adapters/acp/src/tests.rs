//! The adapter against real manifests (captured from acp-sdk 1.0.3) and edge cases: each
//! translates, keeps its bytes, and comes back as submitted but for `name`; the derived schema
//! refuses what the spec's types refuse, with pointers; manifests built from the domain pass the
//! official schema's rules.
//!
//! Long on purpose: one test module for the adapter, fixtures and properties side by side.

use agent_registry_core::clock::{Clock, SystemClock};
use agent_registry_core::input::{AgentInput, CapabilityInput, EndpointInput};
use agent_registry_core::liveness::LivenessPolicy;
use agent_registry_core::model::{Agent, AgentId, Protocol, Transport};
use agent_registry_core::protocol::{DocumentFormat, ProtocolDocument, Served};
use agent_registry_core::{FieldError, RegistryError};
use proptest::prelude::*;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::*;

const URL: &str = "http://127.0.0.1:8000";

const SDK_FIXTURES: [(&str, &str); 4] = [
    (
        "acp-e2e-fixture_mime-types_content-types",
        include_str!("../../../fixtures/protocols/acp-agent-manifest/acp-e2e-fixture_mime-types_content-types.json"),
    ),
    (
        "acp-examples_citation-agent_minimal",
        include_str!("../../../fixtures/protocols/acp-agent-manifest/acp-examples_citation-agent_minimal.json"),
    ),
    (
        "beeai-platform_chat-new_rich-metadata",
        include_str!("../../../fixtures/protocols/acp-agent-manifest/beeai-platform_chat-new_rich-metadata.json"),
    ),
    (
        "beeai-platform_gpt-researcher_extra-metadata-keys",
        include_str!(
            "../../../fixtures/protocols/acp-agent-manifest/beeai-platform_gpt-researcher_extra-metadata-keys.json"
        ),
    ),
];

const LIST_RESPONSE: &str =
    include_str!("../../../fixtures/protocols/acp-agent-manifest/captured_GET-agents_list-response.json");

const EDGE_FIXTURES: [(&str, &str); 5] = [
    (
        "every-field-and-unknown-fields",
        include_str!("../../../fixtures/protocols/acp-edge/every-field-and-unknown-fields.json"),
    ),
    ("explicit-nulls", include_str!("../../../fixtures/protocols/acp-edge/explicit-nulls.json")),
    ("unicode-name-escaped-key", include_str!("../../../fixtures/protocols/acp-edge/unicode-name-escaped-key.json")),
    ("spec-valid-label-name", include_str!("../../../fixtures/protocols/acp-edge/spec-valid-label-name.json")),
    ("description-missing", include_str!("../../../fixtures/protocols/acp-edge/description-missing.json")),
];

/// Every manifest the tests start from, by name: the SDK's files, the elements of the captured
/// `GET /agents` envelope (their exact bytes inside it), and the edge cases.
fn fixtures() -> Vec<(String, String)> {
    #[derive(serde::Deserialize)]
    struct AgentsList<'a> {
        #[serde(borrow)]
        agents: Vec<&'a RawValue>,
    }
    let list: AgentsList<'_> = serde_json::from_str(LIST_RESPONSE).unwrap();
    assert_eq!(list.agents.len(), 4);
    let listed =
        list.agents.iter().enumerate().map(|(i, raw)| (format!("captured list element {i}"), raw.get().to_owned()));
    SDK_FIXTURES
        .iter()
        .chain(&EDGE_FIXTURES)
        .map(|(name, text)| ((*name).to_owned(), (*text).to_owned()))
        .chain(listed)
        .collect()
}

/// The agent the registry would store for a registration, with fresh ids.
fn register(input: &AgentInput) -> Agent {
    let now = SystemClock.now();
    let (spec, owner, endpoints) = input.to_registration(&LivenessPolicy::default(), now).unwrap();
    Agent {
        revision: 1,
        ..spec.to_agent(AgentId::generate(), owner.unwrap_or_else(|| "tests".to_owned()), endpoints, now)
    }
}

fn registered(text: &str) -> Agent {
    let translation = translate(text, "/manifest", URL).unwrap();
    let mut input = translation.agent;
    input.origin = Some(translation.origin);
    register(&input)
}

fn served_text(served: Served) -> String {
    String::from_utf8(served.into_bytes()).unwrap()
}

/// The `metadata.annotations` member that says where `agent` runs, as its manifest is served.
fn run_annotation(agent: &Agent) -> String {
    let endpoint = agent.endpoints_speaking(Protocol::ACP).next().unwrap();
    let name = endpoint.protocol_metadata.get("agent_name").and_then(Value::as_str).unwrap_or(&agent.name);
    let annotation = json!({"acp_server_url": endpoint.address, "agent_name": name});
    format!("{}:{annotation}", Value::String(serve::RUN_ANNOTATION.to_owned()))
}

/// A served manifest's text without the run annotation the registry inserted, every other byte
/// as served: what the submitted text was, but for its name. `expected` tells apart insertions
/// that look alike (an absent `annotations` in an empty `metadata`, or one that was `null`).
fn without_run_annotation(served: &str, agent: &Agent, expected: impl Fn(&str) -> bool) -> String {
    let member = run_annotation(agent);
    let edits = [
        (format!("\"metadata\":{{\"annotations\":{{{member}}}}},"), ""),
        (format!("\"metadata\":{{\"annotations\":{{{member}}}}}"), ""),
        (format!("\"annotations\":{{{member}}},"), ""),
        (format!("\"annotations\":{{{member}}}"), ""),
        (format!("{{{member}}}"), "null"),
        (format!("{member},"), ""),
    ];
    edits
        .iter()
        .filter(|(inserted, _)| served.contains(inserted.as_str()))
        .map(|(inserted, original)| served.replacen(inserted.as_str(), original, 1))
        .find(|text| expected(text))
        .unwrap_or_else(|| panic!("not the expected document plus the run annotation: {served}"))
}

/// A served manifest without the run annotation, checked to be there, and without the
/// `annotations` and `metadata` objects it alone filled.
fn strip_run_annotation(mut served: Value, agent: &Agent) -> Value {
    let member = run_annotation(agent);
    let (key, annotation) = member.split_once(':').unwrap();
    let key: String = serde_json::from_str(key).unwrap();
    let metadata = served["metadata"].as_object_mut().expect("metadata");
    let annotations = metadata["annotations"].as_object_mut().expect("annotations");
    assert_eq!(annotations.remove(&key), Some(serde_json::from_str(annotation).unwrap()));
    if annotations.is_empty() {
        metadata.remove("annotations");
    }
    if metadata.is_empty() {
        served.as_object_mut().unwrap().remove("metadata");
    }
    served
}

/// `document` with its top-level `name` replaced, as the registry serves it.
fn renamed(document: &str, name: &str) -> Value {
    let mut value: Value = serde_json::from_str(document).unwrap();
    value["name"] = Value::String(name.to_owned());
    value
}

fn pointers(error: &RegistryError) -> Vec<String> {
    let mut pointers: Vec<String> = error.fields().into_iter().map(|f: FieldError| f.pointer).collect();
    pointers.sort();
    pointers.dedup();
    pointers
}

/// What the official OpenAPI schema requires of a manifest beyond the derived schema: the
/// derived one is relaxed only in accepting nulls, any non-empty name, and no description.
fn assert_officially_valid(manifest: &Value) {
    schema().unwrap().check(manifest, "").unwrap();
    fn no_nulls(v: &Value, at: &str) {
        match v {
            Value::Null => panic!("null at {at}"),
            Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| no_nulls(v, &format!("{at}/{i}"))),
            Value::Object(map) => map.iter().for_each(|(k, v)| no_nulls(v, &format!("{at}/{k}"))),
            _ => {}
        }
    }
    no_nulls(manifest, "");
    let name = manifest["name"].as_str().unwrap();
    assert!(is_label(name), "name {name:?} is not an AgentName");
    assert!(manifest["description"].is_string(), "description is required");
}

#[test]
fn the_derived_schema_compiles() {
    schema().unwrap();
}

#[test]
fn every_fixture_translates_keeping_its_bytes_and_is_served_back_but_for_its_name() {
    for (fixture, text) in fixtures() {
        let translation =
            translate(&text, "/manifest", URL).unwrap_or_else(|e| panic!("{fixture}: {e} {:?}", e.fields()));
        assert_eq!(translation.origin.text, text, "{fixture}");
        assert_eq!(translation.origin.format, DocumentFormat::AcpAgentManifest);
        assert_eq!(translation.origin.version, "0.2.0");

        let agent = registered(&text);
        let original: Value = serde_json::from_str(&text).unwrap();
        let original_name = original["name"].as_str().unwrap();
        assert_eq!(agent.name, original_name.trim(), "{fixture}: the agent keeps the original name");
        let name = acp_name(&agent);
        assert_eq!(name, normalise_name(original_name), "{fixture}");

        let expected = renamed(&text, &name);
        let served = without_run_annotation(&served_text(manifest(&agent, &name).unwrap()), &agent, |t| {
            serde_json::from_str::<Value>(t).is_ok_and(|v| v == expected)
        });
        if name == original_name {
            assert_eq!(served, text, "{fixture}: served verbatim but for the run annotation");
        }
        let back: Value = serde_json::from_str(&served).unwrap();
        assert_eq!(back, renamed(&text, &name), "{fixture}");
        // Only the line holding the name differs (every fixture is pretty-printed).
        let changed = text.lines().zip(served.lines()).filter(|(a, b)| a != b).count();
        assert_eq!(text.lines().count(), served.lines().count(), "{fixture}");
        assert_eq!(changed, usize::from(name != original_name), "{fixture}");
    }
}

#[test]
fn a_rich_manifest_maps_to_tags_capabilities_metadata_and_one_acp_endpoint() {
    let text = EDGE_FIXTURES[0].1;
    let input = translate(text, "/manifest", "  https://agents.example.com/acp ").unwrap().agent;
    assert_eq!(input.name.as_deref(), Some("invoice_bot"));
    assert_eq!(input.labels.as_ref().unwrap()[NAME_LABEL], "invoice-bot");
    assert!(input.description.as_deref().unwrap().starts_with("Reads invoices."));
    assert_eq!(input.tags.as_deref().unwrap(), ["RAG", "Invoices", "domain:finance", "domain:accounting"]);
    let capabilities: Vec<_> = input
        .capabilities
        .as_deref()
        .unwrap()
        .iter()
        .map(|c| (c.name.clone().unwrap(), c.description.clone()))
        .collect();
    assert_eq!(
        capabilities,
        [
            ("Invoice extraction".to_owned(), Some("Pulls totals out of invoices.".to_owned())),
            ("Currency conversion".to_owned(), None)
        ]
    );
    assert_eq!(
        Value::Object(input.metadata.clone().unwrap()),
        json!({"acp": {
            "inputContentTypes": ["application/pdf", "image/*"],
            "outputContentTypes": ["application/json"],
            "framework": "BeeAI",
            "programmingLanguage": "Python",
            "license": "Apache-2.0",
            "naturalLanguages": ["en", "de"],
            "links": [
                {"type": "source-code", "url": "https://github.com/example/invoice-bot"},
                {"type": "homepage", "url": "https://example.com/invoice-bot"}
            ],
            "status": {"avg_run_tokens": 1234.5, "avg_run_time_seconds": 2.25, "success_rate": 99.9}
        }})
    );
    let endpoints = input.endpoints.as_deref().unwrap();
    assert_eq!(endpoints.len(), 1);
    let endpoint = &endpoints[0];
    assert_eq!(endpoint.name.as_deref(), Some(ENDPOINT_NAME));
    assert_eq!(endpoint.transport, Some(Transport::Http));
    assert_eq!(endpoint.protocol, Some(Protocol::ACP));
    assert_eq!(endpoint.address.as_deref(), Some("https://agents.example.com/acp"));
    assert_eq!(endpoint.protocol_metadata, Some(json!({"agent_name": "invoice_bot"})));
    assert_eq!(
        (endpoint.liveness_model, endpoint.ttl_seconds, endpoint.heartbeat_interval_seconds),
        (None, None, None)
    );

    let agent = register(&input);
    assert_eq!(endpoint_url(&agent), Some("https://agents.example.com/acp"));
}

#[test]
fn an_sdk_manifest_without_description_or_metadata_gives_a_plain_agent() {
    let input = translate(SDK_FIXTURES[0].1, "/manifest", URL).unwrap().agent;
    assert_eq!(input.name.as_deref(), Some("mime_types"));
    assert_eq!(input.description, None);
    assert_eq!(input.tags.as_deref(), Some(&[][..]));
    assert_eq!(input.capabilities.as_ref().map(Vec::len), Some(0));
    assert_eq!(
        input.metadata.unwrap()["acp"],
        json!({
            "inputContentTypes": ["text/plain", "application/json"],
            "outputContentTypes": ["text/html", "application/json", "application/javascript", "text/css"]
        })
    );
}

#[test]
fn a_manifest_is_served_under_the_name_the_registry_assigned() {
    let agent = registered(SDK_FIXTURES[2].1);
    let name = with_suffix(&acp_name(&agent), 2);
    assert_eq!(name, "chat-new-2");
    let served = manifest(&agent, &name).unwrap().into_value();
    // ACP clients find where the agent runs, and the name its server knows, in the manifest.
    assert_eq!(
        served["metadata"]["annotations"][serve::RUN_ANNOTATION],
        json!({"acp_server_url": agent.endpoints[0].address, "agent_name": "chat_new"})
    );
    assert!(served["metadata"]["annotations"]["beeai_ui"].is_object(), "the manifest's own annotations stay");
    assert_eq!(strip_run_annotation(served, &agent), renamed(SDK_FIXTURES[2].1, "chat-new-2"));
    // A name that is not a label is never served.
    let served = manifest(&agent, "Chat New!").unwrap().into_value();
    assert_eq!(served["name"], "chat-new");
}

#[test]
fn schema_violations_are_422_with_a_pointer_at_each() {
    let text = json!({
        "name": 3,
        "description": ["not", "a", "string"],
        "input_content_types": [],
        "output_content_types": ["text/plain", 1],
        "metadata": {
            "capabilities": [{"name": "no description"}],
            "links": [{"type": "blog", "url": "https://example.com"}],
            "author": {"email": "a@example.com"},
            "tags": "chat",
            "annotations": "not an object"
        },
        "status": {"avg_run_tokens": -1, "success_rate": 100.5, "avg_run_time_seconds": "fast"}
    })
    .to_string();
    let error = translate(&text, "/manifest", URL).unwrap_err();
    assert!(matches!(error, RegistryError::SchemaViolation(_)), "{error:?}");
    assert_eq!(error.kind(), agent_registry_core::ErrorKind::Unprocessable);
    assert_eq!(
        pointers(&error),
        [
            "/manifest/description",
            "/manifest/input_content_types",
            "/manifest/metadata/annotations",
            "/manifest/metadata/author",
            "/manifest/metadata/capabilities/0",
            "/manifest/metadata/links/0/type",
            "/manifest/metadata/tags",
            "/manifest/name",
            "/manifest/output_content_types/1",
            "/manifest/status/avg_run_time_seconds",
            "/manifest/status/avg_run_tokens",
            "/manifest/status/success_rate",
        ]
    );
}

#[test]
fn required_fields_and_non_empty_names_are_enforced() {
    for (text, pointer) in [
        (r#"{"input_content_types": ["*/*"], "output_content_types": ["*/*"]}"#, "/manifest"),
        (r#"{"name": "x", "output_content_types": ["*/*"]}"#, "/manifest"),
        (r#"{"name": "", "input_content_types": ["*/*"], "output_content_types": ["*/*"]}"#, "/manifest/name"),
        (r#"{"name": null, "input_content_types": ["*/*"], "output_content_types": ["*/*"]}"#, "/manifest/name"),
        (
            r#"{"name": "x", "input_content_types": null, "output_content_types": ["*/*"]}"#,
            "/manifest/input_content_types",
        ),
    ] {
        let error = translate(text, "/manifest", URL).unwrap_err();
        assert!(matches!(error, RegistryError::SchemaViolation(_)), "{text}: {error:?}");
        assert_eq!(pointers(&error), [pointer], "{text}");
    }
}

#[test]
fn documents_that_are_not_json_objects_are_400() {
    for text in ["", "not json", "[]", "\"chat\"", "null", "{\"name\": \"x\"", "{} {}"] {
        let error = translate(text, "/manifest", URL).unwrap_err();
        assert!(matches!(error, RegistryError::Validation(_)), "{text}: {error:?}");
        assert_eq!(pointers(&error), ["/manifest"], "{text}");
    }
}

#[test]
fn registry_rules_are_400_with_pointers_into_the_manifest_all_at_once() {
    let text = json!({
        "name": "  ",
        "input_content_types": ["*/*"],
        "output_content_types": ["*/*"],
        "metadata": {
            "capabilities": [
                {"name": "Search", "description": "a"},
                {"name": "search", "description": "b"},
                {"name": "x".repeat(257), "description": ""}
            ],
            "tags": ["ok", "a,b", " "],
            "domains": ["d".repeat(58)]
        }
    })
    .to_string();
    let error = translate(&text, "/manifest", "ftp://example.com").unwrap_err();
    assert!(matches!(error, RegistryError::Validation(_)), "{error:?}");
    assert_eq!(
        pointers(&error),
        [
            "/endpointUrl",
            "/manifest/metadata/capabilities/1/name",
            "/manifest/metadata/capabilities/2/name",
            "/manifest/metadata/domains/0",
            "/manifest/metadata/tags/1",
            "/manifest/metadata/tags/2",
            "/manifest/name",
        ]
    );
    let duplicate = error.fields().into_iter().find(|f| f.pointer.ends_with("capabilities/1/name")).unwrap();
    assert!(duplicate.detail.contains("capability 0"), "{}", duplicate.detail);
}

#[test]
fn the_endpoint_url_must_be_an_http_url() {
    for url in ["", "   ", "not a url", "ftp://example.com", "http://user:secret@example.com", "http://"] {
        let error = translate(EDGE_FIXTURES[3].1, "/manifest", url).unwrap_err();
        assert_eq!(pointers(&error), ["/endpointUrl"], "{url:?}");
    }
}

#[test]
fn too_many_tags_with_domains_are_refused() {
    let tags: Vec<String> = (0..20).map(|i| format!("tag{i}")).collect();
    let domains: Vec<String> = (0..13).map(|i| format!("domain{i}")).collect();
    let text = json!({"name": "x", "input_content_types": ["*/*"], "output_content_types": ["*/*"],
        "metadata": {"tags": tags, "domains": domains}})
    .to_string();
    assert_eq!(pointers(&translate(&text, "/manifest", URL).unwrap_err()), ["/manifest/metadata/tags"]);
}

#[test]
fn domain_tags_are_lower_case_and_read_back() {
    assert_eq!(domain_tag(" Supply-Chain "), "domain:supply-chain");
    assert_eq!(domain_of_tag("domain:finance"), Some("finance"));
    assert_eq!(domain_of_tag("Domain:Finance"), Some("Finance"));
    assert_eq!(domain_of_tag("domain:"), None);
    assert_eq!(domain_of_tag("chat"), None);
    assert_eq!(domain_of_tag("dömain:x"), None);
}

/// A generic registration with an ACP endpoint.
fn generic(name: &str, tags: &[&str], capabilities: &[(&str, Option<&str>)], protocol: Protocol) -> AgentInput {
    AgentInput {
        name: Some(name.to_owned()),
        tags: Some(tags.iter().map(|t| (*t).to_owned()).collect()),
        capabilities: Some(
            capabilities
                .iter()
                .map(|(name, description)| CapabilityInput {
                    name: Some((*name).to_owned()),
                    description: description.map(str::to_owned),
                    ..CapabilityInput::default()
                })
                .collect(),
        ),
        endpoints: Some(vec![EndpointInput {
            name: Some("main".to_owned()),
            protocol: Some(protocol),
            address: Some(URL.to_owned()),
            ..EndpointInput::default()
        }]),
        ..AgentInput::default()
    }
}

#[test]
fn a_generic_agent_gets_a_manifest_built_from_the_domain_that_passes_the_official_schema() {
    let agent = register(&generic(
        "My Agent Name",
        &["chat", "domain:finance", "Domain:Health"],
        &[("Search", Some("Finds things.")), ("Summarise", None)],
        Protocol::ACP,
    ));
    let Served::Built(built) = manifest(&agent, &acp_name(&agent)).unwrap() else {
        panic!("expected a built manifest")
    };
    assert_officially_valid(&built);
    let built = strip_run_annotation(built, &agent);
    assert_eq!(
        built,
        json!({
            "name": "my-agent-name",
            "description": "",
            "input_content_types": ["*/*"],
            "output_content_types": ["*/*"],
            "metadata": {
                "capabilities": [
                    {"name": "Search", "description": "Finds things."},
                    {"name": "Summarise", "description": ""}
                ],
                "domains": ["finance", "Health"],
                "tags": ["chat"]
            }
        })
    );
}

#[test]
fn an_agent_changed_through_the_generic_api_keeps_what_metadata_acp_holds() {
    let mut agent = registered(EDGE_FIXTURES[0].1);
    agent.origin = None;
    let Served::Built(built) = manifest(&agent, &acp_name(&agent)).unwrap() else {
        panic!("expected a built manifest")
    };
    assert_officially_valid(&built);
    let built = strip_run_annotation(built, &agent);
    assert_eq!(
        built,
        json!({
            "name": "invoice-bot",
            "description": "Reads invoices.\n\tÜnïcödé: 日本語 — emoji 🤖, a quote \" and a backslash \\",
            "input_content_types": ["application/pdf", "image/*"],
            "output_content_types": ["application/json"],
            "metadata": {
                "capabilities": [
                    {"name": "Invoice extraction", "description": "Pulls totals out of invoices."},
                    {"name": "Currency conversion", "description": ""}
                ],
                "domains": ["finance", "accounting"],
                "tags": ["RAG", "Invoices"],
                "framework": "BeeAI",
                "programming_language": "Python",
                "license": "Apache-2.0",
                "natural_languages": ["en", "de"],
                "links": [
                    {"type": "source-code", "url": "https://github.com/example/invoice-bot"},
                    {"type": "homepage", "url": "https://example.com/invoice-bot"}
                ]
            },
            "status": {"avg_run_tokens": 1234.5, "avg_run_time_seconds": 2.25, "success_rate": 99.9}
        })
    );
}

#[test]
fn metadata_acp_broken_by_a_generic_client_is_ignored_field_by_field() {
    let mut agent = register(&generic("x", &[], &[], Protocol::ACP));
    agent.metadata.insert(
        "acp".to_owned(),
        json!({
            "inputContentTypes": [],
            "outputContentTypes": ["text/plain", 3],
            "framework": null,
            "license": "MIT",
            "naturalLanguages": "en",
            "links": [{"type": "blog", "url": "https://x"}, {"type": "homepage", "url": "https://y"}, 7],
            "status": {"avg_run_tokens": -5, "success_rate": 250, "avg_run_time_seconds": 1}
        }),
    );
    let Served::Built(built) = manifest(&agent, &acp_name(&agent)).unwrap() else {
        panic!("expected a built manifest")
    };
    assert_officially_valid(&built);
    let built = strip_run_annotation(built, &agent);
    assert_eq!(built["input_content_types"], json!(["*/*"]));
    assert_eq!(built["output_content_types"], json!(["*/*"]));
    assert_eq!(built["metadata"], json!({"license": "MIT", "links": [{"type": "homepage", "url": "https://y"}]}));
    assert_eq!(built["status"], json!({"avg_run_time_seconds": 1}));
}

#[test]
fn agents_without_an_acp_endpoint_over_http_have_no_manifest() {
    let a2a_only = register(&generic("a2a", &[], &[], Protocol::A2A));
    let error = manifest(&a2a_only, "a2a").unwrap_err();
    assert!(matches!(error, RegistryError::NoProtocolDocument { protocol: Protocol::ACP, .. }), "{error:?}");
    assert_eq!(endpoint_url(&a2a_only), None);

    let mut queued = registered(SDK_FIXTURES[0].1);
    queued.endpoints[0].transport = Transport::Amqp;
    assert!(matches!(manifest(&queued, "x"), Err(RegistryError::NoProtocolDocument { .. })));
}

#[test]
fn an_agent_registered_through_another_protocol_gets_a_built_manifest() {
    let mut agent = register(&generic("Card Agent", &[], &[], Protocol::ACP));
    agent.origin = Some(ProtocolDocument {
        format: DocumentFormat::A2aAgentCard,
        version: "1.0".to_owned(),
        text: "{\"name\": \"Card Agent\"}".to_owned(),
        signature_verified: None,
    });
    let Served::Built(built) = manifest(&agent, &acp_name(&agent)).unwrap() else {
        panic!("expected a built manifest")
    };
    assert_eq!(built["name"], "card-agent");
    assert_officially_valid(&built);
}

#[test]
fn the_acp_name_comes_from_the_label_else_from_the_agent_name() {
    let mut agent = register(&generic("My Agent", &[], &[], Protocol::ACP));
    assert_eq!(acp_name(&agent), "my-agent");
    agent.labels.insert(NAME_LABEL.to_owned(), "assigned-3".to_owned());
    assert_eq!(acp_name(&agent), "assigned-3");
    agent.labels.insert(NAME_LABEL.to_owned(), "Set By Hand".to_owned());
    assert_eq!(acp_name(&agent), "set-by-hand");
}

#[test]
fn numbers_beyond_f64_survive_a_rename_byte_for_byte() {
    let text = r#"{"name": "big_numbers", "input_content_types": ["*/*"], "output_content_types": ["*/*"],
        "metadata": {"x": [123456789012345678901234567890123456789, 0.1000000000000000000000000001, -0]}}"#;
    let agent = registered(text);
    let expected = text.replacen("\"big_numbers\"", "\"big-numbers\"", 1);
    let served = served_text(manifest(&agent, &acp_name(&agent)).unwrap());
    assert_eq!(without_run_annotation(&served, &agent, |t| t == expected), expected);
}

// ---- Property tests ----

/// Any JSON value: nulls, booleans, integers and floats of every size, unicode strings, and
/// nested arrays and objects.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("JSON has no NaN or infinity", |f| f.is_finite()).prop_map(Value::from),
        // NUL is refused in stored JSON, as in every other string.
        any::<String>().prop_map(|s| Value::from(s.replace('\0', ""))),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((any::<String>(), inner), 0..4)
                .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.replace('\0', ""), v)).collect())),
        ]
    })
}

/// Number literals `serde_json::Value` cannot hold exactly; they replace marker strings in the
/// text so that the round trip is checked byte for byte, not only as parsed values.
const BIG_LITERALS: [&str; 4] =
    ["123456789012345678901234567890123456789", "-98765432109876543210.5e-3", "1.00000000000000000000001", "1E+300"];

/// Inserts one extra field into every object of `value`, at every depth, taking the fields in
/// turn from `extras`; keys are prefixed with `x-` so they never shadow a spec field.
fn insert_everywhere(value: &mut Value, extras: &[(String, Value)], next: &mut usize) {
    match value {
        Value::Object(map) => {
            for child in map.values_mut() {
                insert_everywhere(child, extras, next);
            }
            if let Some((key, extra)) = extras.get(*next % extras.len().max(1)) {
                let key = format!("x-{key}");
                if !map.contains_key(&key) {
                    map.insert(key, extra.clone());
                }
            }
            *next += 1;
        }
        Value::Array(items) => items.iter_mut().for_each(|item| insert_everywhere(item, extras, next)),
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn extra_fields_at_every_level_round_trip_exactly(
        fixture in any::<prop::sample::Index>(),
        extras in prop::collection::vec(("[^\\x00]*", any_json()), 1..8),
        big in prop::collection::vec(0..BIG_LITERALS.len(), 0..3),
        pretty in any::<bool>(),
    ) {
        let all = fixtures();
        let (_, text) = fixture.get(&all);
        let mut document: Value = serde_json::from_str(text).unwrap();
        let mut extras = extras;
        for (i, literal) in big.iter().enumerate() {
            extras.push((format!("big{i}"), Value::String(format!("@@big{literal}@@"))));
        }
        insert_everywhere(&mut document, &extras, &mut 0);
        let mut text = if pretty { serde_json::to_string_pretty(&document) } else { serde_json::to_string(&document) }.unwrap();
        for (i, literal) in BIG_LITERALS.iter().enumerate() {
            text = text.replace(&format!("\"@@big{i}@@\""), literal);
        }

        prop_assert!(text.contains("\"x-"), "extra fields were inserted");
        let translation = translate(&text, "/manifest", URL).unwrap();
        prop_assert_eq!(&translation.origin.text, &text);
        let agent = registered(&text);
        let original_name = document["name"].as_str().unwrap().to_owned();
        let name = acp_name(&agent);
        // The name is the first member, so its first occurrence is the top-level one.
        let colon = if pretty { "\": " } else { "\":" };
        let before = format!("\"name{colon}{}", Value::String(original_name));
        let after = format!("\"name{colon}{}", Value::String(name.clone()));
        prop_assert!(text.contains(&before));
        let expected = text.replacen(&before, &after, 1);
        let served = served_text(manifest(&agent, &name).unwrap());
        prop_assert_eq!(without_run_annotation(&served, &agent, |t| t == expected), expected);
    }

    #[test]
    fn translating_anything_never_panics(text in any::<String>(), url in any::<String>()) {
        let _ = translate(&text, "/manifest", &url);
    }

    #[test]
    fn translating_any_json_value_at_any_field_never_panics(
        fixture in any::<prop::sample::Index>(),
        key in prop::sample::select(vec!["name", "description", "input_content_types", "output_content_types", "metadata", "status"]),
        inner in prop::sample::select(vec!["capabilities", "domains", "tags", "links", "author", "annotations", "framework"]),
        value in any_json(),
    ) {
        let all = fixtures();
        let text = &fixture.get(&all).1;
        let mut document: Value = serde_json::from_str(text).unwrap();
        document[key] = value.clone();
        let _ = translate(&document.to_string(), "/manifest", URL);
        let mut document: Value = serde_json::from_str(text).unwrap();
        if document["metadata"].is_object() {
            document["metadata"][inner] = value;
        }
        if let Ok(t) = translate(&document.to_string(), "/manifest", URL) {
            // What the adapter accepts, core accepts: its rules cover core's limits.
            let agent = register(&t.agent);
            let served = manifest(&agent, &acp_name(&agent)).unwrap().into_value();
            prop_assert_eq!(&served["name"], &Value::String(acp_name(&agent)));
        }
    }

    #[test]
    fn manifests_built_for_any_generic_agent_pass_the_official_schema(
        name in "\\PC{1,40}",
        description in proptest::option::of("\\PC{0,80}"),
        tags in prop::collection::btree_set("[^,\\p{Cc}\\p{Cf}]{1,20}", 0..6),
        capabilities in prop::collection::btree_map("[a-zA-Z][^\\p{Cc}\\p{Cf}]{0,20}", proptest::option::of("\\PC{0,40}"), 0..5),
        acp in any_json(),
    ) {
        prop_assume!(!name.trim().is_empty());
        prop_assume!(tags.iter().all(|t| !t.trim().is_empty()));
        let lower: std::collections::BTreeSet<String> = capabilities.keys().map(|k| k.trim().to_lowercase()).collect();
        prop_assume!(lower.len() == capabilities.len());
        let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
        let capabilities: Vec<(&str, Option<&str>)> = capabilities.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
        let mut input = generic(&name, &tags, &capabilities, Protocol::ACP);
        input.description = description;
        input.metadata = Some(Map::from_iter([("acp".to_owned(), acp)]));
        let agent = register(&input);
        let Served::Built(built) = manifest(&agent, &acp_name(&agent)).unwrap() else { panic!("expected a built manifest") };
        assert_officially_valid(&built);
        let domains: Vec<&str> = agent.tags.iter().filter_map(|t| domain_of_tag(t)).collect();
        let served_domains: Vec<&str> = built["metadata"]["domains"].as_array().map(|d| d.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        prop_assert_eq!(domains, served_domains);
        let served_tags = built["metadata"]["tags"].as_array().cloned().unwrap_or_default();
        prop_assert!(served_tags.iter().all(|t| t.as_str().is_some_and(|t| domain_of_tag(t).is_none())), "no domain tag leaks into metadata.tags");
    }
}
