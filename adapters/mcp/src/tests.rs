//! Tests of the adapter as the HTTP layer uses it: every example document translates and is
//! served back exactly, derived and built documents follow the official schemas, errors point
//! into the document, and nothing panics on any input.
//!
//! Long on purpose: one test module for the adapter, fixtures and properties side by side.

use agent_registry_core::ErrorKind;
use agent_registry_core::model::{Agent, Protocol, Transport};
use agent_registry_core::protocol::{DocumentFormat, Served};
use agent_registry_core::{FieldError, RegistryError};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::schemas::{self, SERVER_CARD_SCHEMA_URL, SERVER_JSON_SCHEMA_URL};
use crate::testing::{agent_from, fixture, fixtures, generic_agent, json};
use crate::{server_card, server_json, server_name, server_version, translate};

fn served_text(served: Served) -> String {
    match served {
        Served::Verbatim(text) => text,
        Served::Built(value) => panic!("expected the registered document, got a built one: {value}"),
    }
}

fn built(served: Served) -> Value {
    match served {
        Served::Built(value) => value,
        Served::Verbatim(text) => panic!("expected a built document, got the registered one: {text}"),
    }
}

/// The document of the agent's own format, as served.
fn served_own(agent: &Agent) -> Served {
    match agent.origin.as_ref().map(|o| o.format) {
        Some(DocumentFormat::McpServerJson) => server_json(agent).unwrap(),
        Some(DocumentFormat::McpServerCard) => server_card(agent).unwrap(),
        other => panic!("unexpected origin {other:?}"),
    }
}

fn assert_valid_card(card: &Value) {
    let errors = schemas::server_card().unwrap().violations(card, "");
    assert!(errors.is_empty(), "card breaks its schema: {errors:?}\n{card:#}");
    assert_eq!(card["$schema"], SERVER_CARD_SCHEMA_URL);
}

/// Valid against the schema it names (2025-12-11 for every built one), and usable by VS Code
/// (protocols.md §2.6, item 4).
fn assert_valid_server_json(document: &Value) {
    let version = document["$schema"].as_str().map_or_else(schemas::ServerJsonVersion::default_version, |url| {
        schemas::ServerJsonVersion::from_url(url).unwrap()
    });
    let errors = version.schema().unwrap().violations(document, "");
    assert!(errors.is_empty(), "server.json breaks its schema: {errors:?}\n{document:#}");
    for key in ["name", "description", "version"] {
        assert!(document[key].as_str().is_some_and(|t| !t.trim().is_empty()), "{key} is blank in {document:#}");
    }
}

fn pointers(error: &RegistryError) -> Vec<String> {
    error.fields().into_iter().map(|f| f.pointer).collect()
}

fn validation(result: Result<impl std::fmt::Debug, RegistryError>) -> Vec<FieldError> {
    match result {
        Err(RegistryError::Validation(errors)) => errors,
        other => panic!("expected validation_failed, got {other:?}"),
    }
}

#[test]
fn every_example_translates_and_is_served_back_byte_for_byte() {
    for (name, text) in fixtures() {
        let translation = translate(&text, "").unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(translation.origin.text, text, "{name}");
        assert_eq!(translation.agent.origin.as_ref(), Some(&translation.origin), "{name}");
        let agent = agent_from(&translation);
        let served = served_text(served_own(&agent));
        assert_eq!(served, text, "{name}");
        assert_eq!(json(&served), json(&text), "{name}");
    }
}

#[test]
fn every_example_gets_both_documents_valid_and_consistent() {
    for (name, text) in fixtures() {
        let agent = agent_from(&translate(&text, "").unwrap());
        let card = server_card(&agent).unwrap().into_value();
        let document = server_json(&agent).unwrap().into_value();
        assert_valid_server_json(&document);
        if agent.origin.as_ref().unwrap().version != "legacy" {
            assert_valid_card(&card);
        }
        assert_eq!(document["name"], server_name(&agent), "{name}");
        assert_eq!(document["version"], server_version(&agent), "{name}");
        assert!(crate::catalog_entry(&agent).is_some(), "{name} is not listed");
    }
}

#[test]
fn examples_are_read_as_the_format_and_version_their_schema_names() {
    let cases = [
        ("playwright-mcp_npm-minimal.json", DocumentFormat::McpServerJson, "2025-12-11"),
        ("github-mcp-server_oci-template.json", DocumentFormat::McpServerJson, "2025-10-17"),
        ("server-json_2025-09-29.json", DocumentFormat::McpServerJson, "2025-09-29"),
        ("server-json_2025-10-11.json", DocumentFormat::McpServerJson, "2025-10-11"),
        ("server-json_draft-template-prefix.json", DocumentFormat::McpServerJson, "draft"),
        ("server-json_no-schema-several-remotes.json", DocumentFormat::McpServerJson, "2025-12-11"),
        ("server-card_minimal.json", DocumentFormat::McpServerCard, "v1"),
        ("legacy-card_dotnet.json", DocumentFormat::McpServerCard, "legacy"),
        ("legacy-card_well-known-transport.json", DocumentFormat::McpServerCard, "legacy"),
    ];
    for (name, format, version) in cases {
        let origin = translate(&fixture(name), "").unwrap().origin;
        assert_eq!((origin.format, origin.version.as_str()), (format, version), "{name}");
    }
}

#[test]
fn a_remote_becomes_an_mcp_endpoint_at_its_url_with_template_defaults_filled_in() {
    let text = fixture("registry-docs_remote-url-variables-choices.json");
    let translation = translate(&text, "").unwrap();
    let agent = &translation.agent;
    assert_eq!(agent.name.as_deref(), Some("com.example/multi-region-mcp"));
    assert_eq!(agent.description.as_deref(), Some("MCP server with regional endpoints"));
    assert_eq!(agent.version.as_deref(), Some("1.0.0"));
    assert_eq!(agent.metadata.as_ref().unwrap()["title"], "Multi-Region MCP");
    let endpoints = agent.endpoints.as_ref().unwrap();
    assert_eq!(endpoints.len(), 1);
    let endpoint = &endpoints[0];
    assert_eq!(endpoint.name.as_deref(), Some("streamable-http"));
    assert_eq!(endpoint.transport, Some(Transport::Http));
    assert_eq!(endpoint.protocol, Some(Protocol::MCP));
    assert_eq!(endpoint.address.as_deref(), Some("https://api.example.com/us-east-1/mcp"));
    assert_eq!(endpoint.protocol_metadata.as_ref(), Some(&json(&text)["remotes"][0]));
    assert_eq!(
        (endpoint.liveness_model, endpoint.ttl_seconds, endpoint.heartbeat_interval_seconds),
        (None, None, None)
    );
}

#[test]
fn endpoints_are_named_by_remote_type_and_remotes_needing_user_input_get_none() {
    let translation = translate(&fixture("server-json_no-schema-several-remotes.json"), "").unwrap();
    let names: Vec<_> = translation.agent.endpoints.as_ref().unwrap().iter().map(|e| e.name.clone().unwrap()).collect();
    assert_eq!(names, ["streamable-http", "sse", "streamable-http-2", "sse-2"]);

    let card = translate(&fixture("server-card_full.json"), "").unwrap();
    let addresses: Vec<_> = card.agent.endpoints.as_ref().unwrap().iter().map(|e| e.address.clone().unwrap()).collect();
    assert_eq!(
        addresses,
        [
            "https://weather.example.com/mcp",
            "https://weather.example.com/sse",
            "https://eu.weather.example.com/mcp",
            "https://mcp.weather.example.org/mcp",
        ]
    );
}

#[test]
fn a_package_only_server_is_listed_without_a_live_endpoint() {
    let translation = translate(&fixture("registry-seed_airtable-mcp-server_npm-oci-mcpb.json"), "").unwrap();
    assert_eq!(translation.agent.endpoints.as_deref().map(<[_]>::len), Some(0));
    assert_eq!(translation.agent.tags.as_deref().unwrap(), ["mcp", "npm", "oci", "mcpb"]);
    let metadata = translation.agent.metadata.as_ref().unwrap();
    assert!(metadata.contains_key("packages") && metadata.contains_key("icons") && metadata.contains_key("repository"));
    let agent = agent_from(&translation);
    let entry = crate::catalog_entry(&agent).unwrap();
    assert_eq!(entry.name, "io.github.domdomegg/airtable-mcp-server");
    assert_eq!(entry.server, json(&translation.origin.text));
    // Its card has no remotes, since the card describes remote servers only.
    let card = built(server_card(&agent).unwrap());
    assert_valid_card(&card);
    assert!(card.get("remotes").is_none() && card.get("packages").is_none());
}

#[test]
fn a_card_derived_from_server_json_carries_the_shared_fields_unchanged() {
    for (name, text) in fixtures() {
        let translation = translate(&text, "").unwrap();
        if translation.origin.format != DocumentFormat::McpServerJson || translation.origin.version != "2025-12-11" {
            continue;
        }
        let source = json(&text);
        let card = built(server_card(&agent_from(&translation)).unwrap());
        assert_valid_card(&card);
        for key in ["name", "title", "description", "version", "websiteUrl", "repository", "icons", "remotes", "_meta"]
        {
            assert_eq!(card.get(key), source.get(key), "{name}: {key}");
        }
        assert!(card.get("packages").is_none(), "{name}");
    }
}

#[test]
fn server_json_derived_from_a_card_leaves_out_only_what_its_schema_refuses() {
    let text = fixture("server-card_full.json");
    let agent = agent_from(&translate(&text, "").unwrap());
    let document = built(server_json(&agent).unwrap());
    assert_valid_server_json(&document);
    assert_eq!(document["$schema"], SERVER_JSON_SCHEMA_URL);
    let source = json(&text);
    for key in ["name", "title", "description", "version", "websiteUrl", "repository", "_meta"] {
        assert_eq!(document.get(key), source.get(key), "{key}");
    }
    // 2025-12-11 remote URLs must start with http(s); the `{baseUrl}/mcp` remote cannot be kept.
    let urls: Vec<_> = document["remotes"].as_array().unwrap().iter().map(|r| r["url"].as_str().unwrap()).collect();
    assert_eq!(
        urls,
        [
            "https://weather.example.com/mcp",
            "https://weather.example.com/sse",
            "https://{region}.weather.example.com/mcp",
            "https://{tenant}.weather.example.com/mcp"
        ]
    );
    // Both icons are valid in 2025-12-11 too (the inline one is a `data:` URI).
    assert_eq!(document["icons"], source["icons"]);
}

#[test]
fn tools_resources_and_prompts_become_capabilities() {
    let translation = translate(&fixture("server-card_with-primitives.json"), "").unwrap();
    let capabilities = translation.agent.capabilities.as_ref().unwrap();
    let summary: Vec<_> = capabilities
        .iter()
        .map(|c| (c.name.clone().unwrap(), c.tags.clone().unwrap().join(","), c.input_schema.is_some()))
        .collect();
    assert_eq!(
        summary,
        [
            ("search".to_owned(), "tool".to_owned(), true),
            ("add_note".to_owned(), "tool".to_owned(), true),
            ("all-notes".to_owned(), "resource".to_owned(), false),
            // A prompt named like a tool (ignoring case) is qualified by its kind.
            ("prompt:Search".to_owned(), "prompt".to_owned(), false),
            ("summarise".to_owned(), "prompt".to_owned(), false),
        ]
    );
    let search = &capabilities[0];
    assert_eq!(search.description.as_deref(), Some("Full-text search over notes."));
    assert_eq!(search.output_schema.as_ref().unwrap()["type"], "object");
    // Capabilities are not written into built documents: cards do not enumerate primitives.
    let agent = agent_from(&translation);
    assert_eq!(agent.capabilities.len(), 5);
    assert!(built(server_json(&agent).unwrap()).get("tools").is_none());
}

#[test]
fn a_legacy_dotnet_card_is_read_leniently_and_served_as_it_came() {
    let text = fixture("legacy-card_dotnet.json");
    let translation = translate(&text, "/serverCard").unwrap();
    let agent = &translation.agent;
    assert_eq!(agent.name.as_deref(), Some("Inventory Server"));
    assert_eq!(agent.description.as_deref(), Some("Looks up stock levels and reserves items."));
    assert_eq!(agent.version.as_deref(), Some("1.4.0"));
    let endpoint = &agent.endpoints.as_ref().unwrap()[0];
    assert_eq!(endpoint.name.as_deref(), Some("streamable-http"));
    assert_eq!(endpoint.address.as_deref(), Some("https://inventory.internal.example.com/mcp"));
    assert_eq!(
        endpoint.protocol_metadata,
        Some(json!({
            "type": "streamable-http",
            "url": "https://inventory.internal.example.com/mcp",
            "supportedProtocolVersions": ["2025-06-18"]
        }))
    );
    let names: Vec<_> = agent.capabilities.as_ref().unwrap().iter().map(|c| c.name.clone().unwrap()).collect();
    assert_eq!(names, ["get_stock", "reserve", "warehouses", "restock"]);

    let agent = agent_from(&translation);
    assert_eq!(served_text(server_card(&agent).unwrap()), text);
    let document = built(server_json(&agent).unwrap());
    assert_valid_server_json(&document);
    assert_eq!(document["name"], "agent-registry/inventory-server");
    assert_eq!(document["version"], "1.4.0");
    assert_eq!(document["remotes"][0]["url"], "https://inventory.internal.example.com/mcp");
}

#[test]
fn a_legacy_card_with_an_absolute_transport_endpoint_gets_an_endpoint() {
    let translation = translate(&fixture("legacy-card_well-known-transport.json"), "").unwrap();
    let endpoint = &translation.agent.endpoints.as_ref().unwrap()[0];
    assert_eq!(endpoint.address.as_deref(), Some("https://files.example.io/mcp"));
    assert_eq!(translation.agent.metadata.as_ref().unwrap()["websiteUrl"], "https://files.example.io");
    let agent = agent_from(&translation);
    // Its name is a server name already, so documents built for it keep it.
    assert_eq!(server_name(&agent), "io.example/files");
    let document = built(server_json(&agent).unwrap());
    assert_eq!(
        (document["title"].as_str(), document["websiteUrl"].as_str()),
        (Some("Files"), Some("https://files.example.io"))
    );

    // A relative endpoint cannot be resolved without the card's own URL: no endpoint.
    let relative = json!({"serverInfo": {"name": "x"}, "transport": {"type": "streamable-http", "endpoint": "/mcp"}});
    let translation = translate(&relative.to_string(), "").unwrap();
    assert_eq!(translation.agent.endpoints.as_deref().map(<[_]>::len), Some(0));
}

#[test]
fn text_that_is_not_a_json_object_is_refused_at_the_document() {
    for (text, base) in [("{", "/serverCard"), ("[1,2]", "/serverCard"), ("\"card\"", ""), ("", "")] {
        let errors = validation(translate(text, base));
        assert_eq!(errors.iter().map(|e| e.pointer.as_str()).collect::<Vec<_>>(), [base], "{text}");
    }
}

#[test]
fn an_unknown_schema_is_refused_listing_the_supported_ones() {
    let text = json!({"$schema": "https://example.com/other.json", "name": "a/b"}).to_string();
    let errors = validation(translate(&text, "/serverCard"));
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].pointer, "/serverCard/$schema");
    for url in schemas::supported_urls() {
        assert!(errors[0].detail.contains(url), "{url} missing from {}", errors[0].detail);
    }
    let errors = validation(translate(r#"{"$schema": 7}"#, ""));
    assert_eq!(errors[0].pointer, "/$schema");
}

#[test]
fn schema_violations_are_422_with_pointers_under_the_base() {
    let card = json!({
        "$schema": SERVER_CARD_SCHEMA_URL,
        "name": "no slash",
        "version": "1",
        "remotes": [{"type": "websocket", "url": "wss://x"}],
        "icons": [{"mimeType": "image/png"}]
    });
    let error = translate(&card.to_string(), "/serverCard").unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unprocessable);
    assert_eq!(error.code(), "schema_violation");
    let found = pointers(&error);
    for expected in ["/serverCard", "/serverCard/name", "/serverCard/remotes/0/type", "/serverCard/icons/0"] {
        assert!(found.iter().any(|p| p == expected), "{expected} not in {found:?}");
    }

    let document = json!({
        "$schema": SERVER_JSON_SCHEMA_URL,
        "name": "a/b",
        "description": "x".repeat(101),
        "version": "1",
        "packages": [{"registryType": "npm", "identifier": "x", "version": "latest", "transport": {"type": "stdio"}}]
    });
    let error = translate(&document.to_string(), "").unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unprocessable);
    let found = pointers(&error);
    assert!(found.contains(&"/description".to_owned()), "{found:?}");
    assert!(found.contains(&"/packages/0/version".to_owned()), "{found:?}");
}

#[test]
fn rules_beyond_the_schema_are_400_at_the_document_field() {
    let base = json!({"name": "com.example/x", "description": "d", "version": "1.0.0"});
    let with = |patch: Value| {
        let mut document = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            document[k] = v.clone();
        }
        validation(translate(&document.to_string(), "/serverCard"))
    };
    let at = |errors: Vec<FieldError>| errors.into_iter().map(|e| e.pointer).collect::<Vec<_>>();

    assert_eq!(at(with(json!({"version": "  "}))), ["/serverCard/version"]);
    assert_eq!(at(with(json!({"description": " "}))), ["/serverCard/description"]);
    // The registry keeps versions of at most 64 characters.
    assert_eq!(at(with(json!({"version": "1".repeat(65)}))), ["/serverCard/version"]);
    // Addresses are public: no credentials in them.
    assert_eq!(
        at(with(json!({"remotes": [{"type": "sse", "url": "https://u:p@x.example.com/sse"}]}))),
        ["/serverCard/remotes/0/url"]
    );
    let errors = with(json!({"remotes": [{"type": "streamable-http", "url": "http://{host}/mcp",
        "variables": {"host": {"default": "exa mple.com"}}}]}));
    assert_eq!(errors[0].pointer, "/serverCard/remotes/0/url");
    assert!(errors[0].detail.contains("template variables"), "{}", errors[0].detail);
    let remotes: Vec<Value> =
        (0..33).map(|i| json!({"type": "streamable-http", "url": format!("https://h{i}.example.com")})).collect();
    assert_eq!(at(with(json!({ "remotes": remotes }))), ["/serverCard/remotes"]);

    // Tools are not in any schema here; their shape is checked by hand.
    assert_eq!(at(with(json!({"tools": {"name": "x"}}))), ["/serverCard/tools"]);
    assert_eq!(at(with(json!({"tools": [{"name": "x"}, {"name": "X"}]}))), ["/serverCard/tools/1/name"]);
    assert_eq!(at(with(json!({"tools": [{"description": "x"}]}))), ["/serverCard/tools/0/name"]);
    assert_eq!(at(with(json!({"tools": [{"name": "x".repeat(300)}]}))), ["/serverCard/tools/0/name"]);
    assert_eq!(at(with(json!({"tools": [{"name": "x", "inputSchema": "no"}]}))), ["/serverCard/tools/0/inputSchema"]);
    assert_eq!(at(with(json!({"prompts": [{"name": "x", "description": 5}]}))), ["/serverCard/prompts/0/description"]);
    assert_eq!(at(with(json!({"resources": [7]}))), ["/serverCard/resources/0"]);
}

#[test]
fn a_legacy_card_without_a_usable_name_or_endpoint_is_refused_at_the_field() {
    let errors = validation(translate(r#"{"serverInfo": {"version": "1"}}"#, ""));
    assert_eq!(errors[0].pointer, "/serverInfo/name");
    let errors = validation(translate(r#"{"serverInfo": []}"#, ""));
    assert_eq!(errors[0].pointer, "/serverInfo");
    let errors = validation(translate(r#"{"serverInfo": {"name": "x"}, "endpoints": {"streamableHttp": "nope"}}"#, ""));
    assert_eq!(errors[0].pointer, "/endpoints/streamableHttp");
    let errors = validation(translate(r#"{"serverInfo": {"name": "x"}, "endpoints": {"sse": 3}}"#, ""));
    assert_eq!(errors[0].pointer, "/endpoints/sse");
    let errors = validation(translate(r#"{"serverInfo": {"name": "x", "version": 3}}"#, ""));
    assert_eq!(errors[0].pointer, "/serverInfo/version");
    let errors = validation(translate(&json!({"serverInfo": {"name": "x"}, "instructions": "\u{7}"}).to_string(), ""));
    assert_eq!(errors[0].pointer, "/instructions");
}

#[test]
fn an_agent_without_mcp_has_no_mcp_documents() {
    let agent = generic_agent("A2A only", None, None, &[(Protocol::A2A, "https://a2a.example.com", json!({}))]);
    for result in [server_card(&agent), server_json(&agent)] {
        let error = result.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::NotFound);
        assert!(matches!(error, RegistryError::NoProtocolDocument { protocol: Protocol::MCP, .. }));
    }
    assert!(crate::catalog_entry(&agent).is_none());
}

#[test]
fn documents_built_for_a_generic_agent_follow_the_official_schemas() {
    let agent = generic_agent(
        "Weather Agent (prod)",
        Some(&"A very long description. ".repeat(10)),
        None,
        &[
            (Protocol::MCP, "https://weather.example.com/mcp", json!({})),
            (Protocol::MCP, "https://weather.example.com/sse", json!({"type": "sse", "headers": [{"name": "X-Key"}]})),
            (Protocol::A2A, "https://weather.example.com/a2a", json!({})),
        ],
    );
    let card = built(server_card(&agent).unwrap());
    assert_valid_card(&card);
    assert_eq!(card["name"], "agent-registry/weather-agent-prod");
    assert_eq!(card["version"], "0.0.0");
    let description = card["description"].as_str().unwrap();
    assert!(description.chars().count() <= 100 && description.ends_with('…'), "{description}");
    assert_eq!(
        card["remotes"],
        json!([
            {"type": "streamable-http", "url": "https://weather.example.com/mcp"},
            {"type": "sse", "url": "https://weather.example.com/sse", "headers": [{"name": "X-Key"}]}
        ])
    );
    let document = built(server_json(&agent).unwrap());
    assert_valid_server_json(&document);
    assert_eq!(document["remotes"], card["remotes"]);
    assert_eq!(
        (server_name(&agent), server_version(&agent)),
        ("agent-registry/weather-agent-prod".into(), "0.0.0".into())
    );

    // Without a description, the name stands in for it (VS Code needs one).
    let bare = generic_agent("x", None, Some("2.0"), &[(Protocol::MCP, "http://localhost:8080/mcp", json!({}))]);
    let document = built(server_json(&bare).unwrap());
    assert_eq!((document["description"].as_str(), document["version"].as_str()), (Some("x"), Some("2.0")));
}

#[test]
fn invalid_metadata_is_left_out_of_built_documents() {
    let mut agent = generic_agent("m", None, None, &[(Protocol::MCP, "https://m.example.com/mcp", json!({}))]);
    agent.metadata = serde_json::from_value(json!({
        "title": "t".repeat(150),
        "websiteUrl": "not a url at all",
        "repository": {"url": "https://github.com/x/y"},
        "icons": [{"src": "https://ok.example.com/i.png"}, {"src": 5}, {"src": "https://x.example.com/a.png", "theme": "neon"}],
        "packages": [{"registryType": "npm"}, {"registryType": "npm", "identifier": "ok", "transport": {"type": "stdio"}}]
    }))
    .unwrap();
    // A remote whose headers break the schema keeps its URL and loses the headers.
    agent.endpoints[0].protocol_metadata = serde_json::from_value(json!({"headers": [{"value": 1}]})).unwrap();
    let document = built(server_json(&agent).unwrap());
    assert_valid_server_json(&document);
    assert!(document.get("title").is_none() && document.get("repository").is_none());
    assert!(document.get("websiteUrl").is_none(), "draft-07 checks `format: uri`");
    assert_eq!(
        document["icons"],
        json!([{"src": "https://ok.example.com/i.png"}, {"src": "https://x.example.com/a.png"}])
    );
    assert_eq!(
        document["packages"],
        json!([{"registryType": "npm", "identifier": "ok", "transport": {"type": "stdio"}}])
    );
    assert_eq!(document["remotes"], json!([{"type": "streamable-http", "url": "https://m.example.com/mcp"}]));
    assert_valid_card(&built(server_card(&agent).unwrap()));
}

#[test]
fn after_a_generic_change_the_documents_are_rebuilt_from_what_the_registration_kept() {
    for (name, text) in fixtures() {
        let mut agent = agent_from(&translate(&text, "").unwrap());
        let registered = server_json(&agent).unwrap().into_value();
        // A generic change (e.g. an endpoint added) drops the registered document.
        agent.origin = None;
        if agent.endpoints.is_empty() {
            assert!(server_json(&agent).is_err(), "{name}");
            continue;
        }
        let rebuilt = built(server_json(&agent).unwrap());
        assert_valid_server_json(&rebuilt);
        assert_valid_card(&built(server_card(&agent).unwrap()));
        if registered["name"].as_str().is_some_and(crate::names::is_server_name) {
            assert_eq!(rebuilt["name"], registered["name"], "{name}");
        }
        for key in ["title", "repository", "packages"] {
            if registered.get(key).is_some() && json(&text).get(key).is_some() {
                assert_eq!(rebuilt.get(key), registered.get(key), "{name}: {key}");
            }
        }
    }
    // A templated remote whose endpoint kept its address is written back with its template.
    let mut agent = agent_from(&translate(&fixture("registry-docs_remote-url-variables-choices.json"), "").unwrap());
    agent.origin = None;
    let rebuilt = built(server_json(&agent).unwrap());
    assert_eq!(rebuilt["remotes"], json(&fixture("registry-docs_remote-url-variables-choices.json"))["remotes"]);
}

// ---- property tests ----

/// JSON text of any kind, including what `serde_json::Value` cannot hold exactly: integers
/// beyond 64 bits and decimals with more digits than a double keeps.
fn raw_json() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f).to_string()),
        "-?[1-9][0-9]{19,40}",
        "-?[0-9]\\.[0-9]{20,30}(e-?[1-9][0-9]?)?",
        // NUL is refused in stored JSON, as in every other string.
        any::<String>().prop_map(|s| json!(s.replace('\0', "")).to_string()),
        "[\\u{80}-\\u{10FFFF}]{0,8}".prop_map(|s| json!(s).to_string()),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec((any::<String>(), inner), 0..4).prop_map(|members| {
                let members: Vec<String> =
                    members.iter().map(|(k, v)| format!("{}:{v}", json!(k.replace('\0', "")))).collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

/// Adds one unknown member to every object of `document` (keys prefixed `x-` so they never
/// name a defined field), taking values from `extras` in turn. Objects under `variables` are
/// maps of inputs, so there the new member is an input object holding the value. The one
/// closed object of the official schemas, a 2025-09-29 `Package` (`additionalProperties:
/// false`), gets none.
fn with_extras(document: &Value, extras: &[(String, String)]) -> String {
    fn walk(value: &mut Value, key: Option<&str>, closed: &[&str], extras: &[(String, String)], next: &mut usize) {
        match value {
            Value::Object(fields) => {
                for (child_key, child) in fields.iter_mut() {
                    walk(child, Some(child_key), closed, extras, next);
                }
                if key.is_some_and(|k| closed.contains(&k)) {
                    return;
                }
                let i = *next % extras.len();
                *next += 1;
                let placeholder = Value::from(format!("@@raw-{i}@@"));
                let member = if key == Some("variables") { json!({ "x-in": placeholder }) } else { placeholder };
                fields.insert(format!("x-{}", extras[i].0), member);
            }
            Value::Array(items) => {
                let item_key = key.map(|k| format!("{k}[]"));
                for item in items {
                    walk(item, item_key.as_deref(), closed, extras, next);
                }
            }
            _ => {}
        }
    }
    let closed: &[&str] =
        if document["$schema"].as_str().is_some_and(|s| s.contains("/2025-09-29/")) { &["packages[]"] } else { &[] };
    let mut document = document.clone();
    walk(&mut document, None, closed, extras, &mut 0);
    let mut text = serde_json::to_string_pretty(&document).unwrap();
    for (i, (_, raw)) in extras.iter().enumerate() {
        text = text.replace(&format!("\"@@raw-{i}@@\""), raw);
    }
    text
}

fn endpoint_addresses(translation: &agent_registry_core::protocol::Translation) -> Vec<String> {
    translation.agent.endpoints.iter().flatten().filter_map(|e| e.address.clone()).collect()
}

fn capability_names(translation: &agent_registry_core::protocol::Translation) -> Vec<String> {
    translation.agent.capabilities.iter().flatten().filter_map(|c| c.name.clone()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn unknown_fields_anywhere_keep_the_round_trip_exact(
        extras in prop::collection::vec(("[a-zA-Z0-9_\\u{80}-\\u{2FFF}]{1,10}", raw_json()), 1..40)
    ) {
        for (name, text) in fixtures() {
            let plain = translate(&text, "").unwrap();
            let extended = with_extras(&json(&text), &extras);
            let translation = translate(&extended, "/serverCard")
                .unwrap_or_else(|e| panic!("{name} with unknown fields: {e}\n{extended}"));
            prop_assert_eq!(&translation.origin.text, &extended);
            prop_assert_eq!(endpoint_addresses(&translation), endpoint_addresses(&plain));
            prop_assert_eq!(capability_names(&translation), capability_names(&plain));
            let agent = agent_from(&translation);
            let served = served_text(served_own(&agent));
            prop_assert_eq!(&served, &extended);
            prop_assert_eq!(json(&served), json(&extended));
            // The other format is still derived validly.
            assert_valid_server_json(&server_json(&agent).unwrap().into_value());
            if translation.origin.version != "legacy" {
                assert_valid_card(&server_card(&agent).unwrap().into_value());
            }
        }
    }

    #[test]
    fn any_change_to_an_example_is_translated_or_refused_with_pointers_never_a_panic(
        pick in any::<prop::sample::Index>(),
        target in any::<prop::sample::Index>(),
        raw in raw_json(),
    ) {
        let all = fixtures();
        let (_, text) = &all[pick.index(all.len())];
        let mut document = json(text);
        let mut paths = Vec::new();
        collect_paths(&document, String::new(), &mut paths);
        let path = &paths[target.index(paths.len())];
        if let Some(slot) = document.pointer_mut(path) {
            *slot = Value::from("@@raw@@");
        }
        let changed = serde_json::to_string(&document).unwrap().replace("\"@@raw@@\"", &raw);
        match translate(&changed, "/serverCard") {
            Ok(translation) => {
                let agent = agent_from(&translation);
                prop_assert_eq!(served_text(served_own(&agent)), changed);
                let _ = server_card(&agent).unwrap();
                assert_valid_server_json(&server_json(&agent).unwrap().into_value());
            }
            Err(error) => {
                prop_assert!(matches!(error, RegistryError::Validation(_) | RegistryError::SchemaViolation(_)), "{error:?}");
                for pointer in pointers(&error) {
                    prop_assert!(pointer.starts_with("/serverCard"), "{pointer}");
                }
            }
        }
    }

    #[test]
    fn any_json_at_all_is_translated_or_refused_never_a_panic(raw in raw_json()) {
        match translate(&raw, "") {
            Ok(translation) => prop_assert_eq!(translation.origin.text, raw),
            Err(error) => prop_assert!(matches!(error, RegistryError::Validation(_) | RegistryError::SchemaViolation(_))),
        }
    }

    #[test]
    fn documents_built_for_any_generic_agent_follow_the_official_schemas(
        name in "\\PC{1,80}",
        description in proptest::option::of("\\PC{1,300}"),
        version in proptest::option::of("[0-9a-zA-Z.+ -]{1,64}"),
        sse in any::<bool>(),
        title in proptest::option::of(raw_json()),
        host in "[a-z]{1,12}",
    ) {
        prop_assume!(!name.trim().is_empty());
        let metadata = if sse { json!({"type": "sse"}) } else { json!({}) };
        let address = format!("https://{host}.example.com/mcp");
        let mut agent = generic_agent(&name, description.as_deref(), version.as_deref(), &[(Protocol::MCP, &address, metadata)]);
        if let Some(title) = title.and_then(|t| serde_json::from_str(&t).ok()) {
            agent.metadata.insert("title".to_owned(), title);
        }
        let card = built(server_card(&agent).unwrap());
        assert_valid_card(&card);
        let document = built(server_json(&agent).unwrap());
        assert_valid_server_json(&document);
        prop_assert_eq!(&document["remotes"][0]["url"], &Value::from(address));
        prop_assert_eq!(&document["remotes"][0]["type"], &Value::from(if sse { "sse" } else { "streamable-http" }));
        prop_assert_eq!(&card["name"], &document["name"]);
        prop_assert!(crate::catalog_entry(&agent).is_some());
    }
}

fn collect_paths(value: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match value {
        Value::Object(fields) => {
            for (key, child) in fields {
                collect_paths(child, format!("{at}/{}", key.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                collect_paths(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}
