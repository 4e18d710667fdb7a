//! Every kind of bad input gets a 4xx problem+json naming the field, and writes nothing.

use reqwest::Method;
use serde_json::{Value, json};

use super::support::{TestApp, agent, persistent};

fn with_endpoint(field: &str, value: Value) -> Value {
    let mut body = agent("Bad", "x", persistent(30));
    body["endpoints"][0][field] = value;
    body
}

#[tokio::test]
async fn invalid_registrations_are_400_with_the_field_at_fault_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let long = "n".repeat(257);
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "/name"),
        (json!({"name": "  "}), "/name"),
        (json!({"name": long}), "/name"),
        (json!({"name": "ok", "description": "d".repeat(5000)}), "/description"),
        (json!({"name": 5}), "/name"),
        (json!({"name": "ok", "tags": "not-a-list"}), "/tags"),
        (json!({"name": "ok", "tags": vec!["t"; 33]}), "/tags"),
        (json!({"name": "ok", "tags": ["a,b"]}), "/tags/0"),
        (json!({"name": "ok", "labels": {"bad key!": "v"}}), "/labels/bad key!"),
        (
            json!({"name": "ok", "labels": (0..65).map(|i| (format!("k{i}"), json!("v"))).collect::<serde_json::Map<_, _>>()}),
            "/labels",
        ),
        (
            json!({"name": "ok", "capabilities": (0..129).map(|i| json!({"name": format!("c{i}")})).collect::<Vec<_>>()}),
            "/capabilities",
        ),
        (json!({"name": "ok", "capabilities": [{"description": "no name"}]}), "/capabilities/0/name"),
        (
            json!({"name": "ok", "capabilities": [{"name": "c", "inputSchema": "not a schema"}]}),
            "/capabilities/0/inputSchema",
        ),
        (
            json!({"name": "ok", "endpoints": (0..33).map(|i| json!({"name": format!("e{i}"), "address": "https://x.example"})).collect::<Vec<_>>()}),
            "/endpoints",
        ),
        (json!({"name": "ok", "metadata": "text"}), "/metadata"),
        (json!({"name": "ok", "metadata": {"big": "x".repeat(70_000)}}), "/metadata"),
        (json!({"name": "ok", "metadata": {"note": ["fine", "cut\u{0}here"]}}), "/metadata/note/1"),
        (json!({"name": "ok", "metadata": {"a\u{0}b": 1}}), "/metadata/a\u{0}b"),
        (json!({"name": "look\u{202e}alike"}), "/name"),
        (json!({"name": "ok", "capabilities": [{"name": "summar\u{200b}ize"}]}), "/capabilities/0/name"),
        (json!({"name": "ok", "tags": ["n\u{2060}lp"]}), "/tags/0"),
        (json!({"name": "ok", "labels": {"team": "a\u{feff}"}}), "/labels/team"),
        (json!({"name": "ok", "id": "not-a-uuid"}), "/id"),
        (with_endpoint("transport", json!("Carrier")), "/endpoints/0/transport"),
        (with_endpoint("transport", json!(9)), "/endpoints/0/transport"),
        (with_endpoint("protocol", json!("SOAP")), "/endpoints/0/protocol"),
        (with_endpoint("livenessModel", json!("Sometimes")), "/endpoints/0/livenessModel"),
        (with_endpoint("address", json!("not a url")), "/endpoints/0/address"),
        (with_endpoint("address", json!("ftp://files.example/x")), "/endpoints/0/address"),
        (with_endpoint("address", json!("https://user:secret@x.example/")), "/endpoints/0/address"),
        (with_endpoint("address", json!(null)), "/endpoints/0/address"),
        (with_endpoint("heartbeatIntervalSeconds", json!(0)), "/endpoints/0/heartbeatIntervalSeconds"),
        (with_endpoint("heartbeatIntervalSeconds", json!(3601)), "/endpoints/0/heartbeatIntervalSeconds"),
        (with_endpoint("heartbeatIntervalSeconds", json!("ten")), "/endpoints/0/heartbeatIntervalSeconds"),
        (with_endpoint("protocolMetadata", json!("{not json")), "/endpoints/0/protocolMetadata"),
        (with_endpoint("protocolMetadata", json!([1, 2])), "/endpoints/0/protocolMetadata"),
        (
            json!({"name": "ok", "endpoints": [{"name": "e", "address": "https://x.example", "ttlSeconds": 0}]}),
            "/endpoints/0/ttlSeconds",
        ),
        (
            json!({"name": "ok", "endpoints": [{"name": "e", "address": "https://x.example", "ttlSeconds": 86_401}]}),
            "/endpoints/0/ttlSeconds",
        ),
        (
            json!({"name": "ok", "endpoints": [{"name": "q", "transport": "Amqp", "address": "https://x.example/q"}]}),
            "/endpoints/0/address",
        ),
        (
            json!({"name": "ok", "endpoints": [{"name": "q", "transport": "Amqp", "address": "amqp://broker.example"}]}),
            "/endpoints/0/address",
        ),
        (
            json!({"name": "ok", "endpoints": [{"name": "q", "transport": "AzureServiceBus", "address": "sb://ns.servicebus.windows.net/"}]}),
            "/endpoints/0/address",
        ),
    ];
    for (body, pointer) in cases {
        let reply = app.post("/agents", body.clone()).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.body);
        reply.problem(400, "validation_failed");
        assert!(reply.pointers().iter().any(|p| p == pointer), "{body}: expected {pointer} in {}", reply.body);
    }
    assert_eq!(app.get("/agents").await.body["totalCount"], 0, "no invalid request wrote anything");
}

#[tokio::test]
async fn duplicate_names_in_one_registration_are_409() {
    let app = TestApp::spawn().await;
    let endpoints =
        json!([{"name": "e", "address": "https://a.example"}, {"name": "E", "address": "https://b.example"}]);
    let reply = app.post("/agents", json!({"name": "dup", "endpoints": endpoints})).await;
    assert_eq!(reply.problem(409, "duplicate_endpoint_name")["errors"][0]["pointer"], "/endpoints/1/name");
    let caps = json!([{"name": "c"}, {"name": "C"}]);
    app.post("/agents", json!({"name": "dup", "capabilities": caps})).await.problem(409, "duplicate_capability_name");
    assert_eq!(app.get("/agents").await.body["totalCount"], 0);
}

#[tokio::test]
async fn malformed_bodies_are_rejected_by_kind() {
    let app = TestApp::spawn().await;
    let json_ct = Some("application/json");
    app.raw(Method::POST, "/agents", json_ct, b"{\"name\": ".to_vec()).await.problem(400, "malformed_json");
    app.raw(Method::POST, "/agents", json_ct, b"{\"name\": \"a\"} trailing".to_vec())
        .await
        .problem(400, "malformed_json");
    app.raw(Method::POST, "/agents", json_ct, Vec::new()).await.problem(400, "malformed_json");
    app.raw(Method::POST, "/agents", json_ct, b"[1,2]".to_vec()).await.problem(400, "validation_failed");
    app.raw(Method::POST, "/agents", json_ct, vec![0xff, 0xfe, 0x00]).await.problem(400, "malformed_json");
    app.raw(Method::POST, "/agents", Some("text/plain"), b"{\"name\":\"a\"}".to_vec())
        .await
        .problem(415, "unsupported_media_type");
    app.raw(Method::POST, "/agents", None, b"{\"name\":\"a\"}".to_vec()).await.problem(415, "unsupported_media_type");
    let huge = format!("{{\"name\":\"a\",\"description\":\"{}\"}}", "x".repeat(1_100_000));
    app.raw(Method::POST, "/agents", json_ct, huge.into_bytes()).await.problem(413, "payload_too_large");
    assert_eq!(app.get("/agents").await.body["totalCount"], 0);
}

#[tokio::test]
async fn malformed_and_unknown_ids_are_400_and_404() {
    let app = TestApp::spawn().await;
    let created = app.register(agent("Known", "x", persistent(30))).await;
    let id = created["id"].as_str().unwrap();
    app.get("/agents/not-a-uuid").await.problem(400, "invalid_id");
    app.get(&format!("/agents/{}", uuid::Uuid::new_v4())).await.problem(404, "agent_not_found");
    app.post_empty(&format!("/agents/{id}/endpoints/nope/heartbeat")).await.problem(400, "invalid_id");
    app.post_empty(&format!("/agents/{id}/endpoints/{}/heartbeat", uuid::Uuid::new_v4()))
        .await
        .problem(404, "endpoint_not_found");
    app.post_empty(&format!("/agents/{}/heartbeat", uuid::Uuid::new_v4())).await.problem(404, "agent_not_found");
    // An endpoint id of another agent is not found under this one.
    let other = app.register(agent("Other", "x", persistent(30))).await;
    let foreign = other["endpoints"][0]["id"].as_str().unwrap();
    app.post_empty(&format!("/agents/{id}/endpoints/{foreign}/heartbeat")).await.problem(404, "endpoint_not_found");
    // Braced and upper-case ids are the same agent.
    let braced = format!("{{{}}}", id.to_uppercase());
    assert_eq!(app.get(&format!("/agents/{braced}")).await.ok(200)["id"], id);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_with_problems() {
    let app = TestApp::spawn().await;
    app.get("/nope").await.problem(404, "route_not_found");
    app.send(Method::PATCH, "/agents", None, &[]).await.problem(405, "method_not_allowed");
}

#[tokio::test]
async fn invalid_discovery_parameters_are_400_never_ignored() {
    let app = TestApp::spawn().await;
    for query in [
        "protocol=bogus",
        "protocol=A2A,bogus",
        "transport=pigeon",
        "liveOnly=maybe",
        "page=0",
        "page=-1",
        "page=abc",
        "page=99999999999999999999",
        "pageSize=0",
        "pageSize=101",
        "label=novalue",
        "cursor=garbage!",
        "capability=",
        "q=%20%21",
        "unknownFilter=1",
        "page=2&cursor=YQ",
    ] {
        let reply = app.get(&format!("/discover/agents?{query}")).await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
        reply.problem(400, "invalid_query");
        assert!(reply.pointers()[0].starts_with('?'), "{query}");
    }
}

#[tokio::test]
async fn error_codes_are_stable() {
    // Error codes are API: this list only ever grows.
    use agent_registry_core::RegistryError as E;
    use agent_registry_core::model::LivenessModel;
    let codes: Vec<&str> = [
        E::Validation(vec![]),
        E::query("x", "y"),
        E::InvalidId { what: "agent", value: String::new() },
        E::AgentNotFound(String::new()),
        E::EndpointNotFound { agent: String::new(), endpoint: String::new() },
        E::AgentExists(String::new()),
        E::DuplicateEndpointName { name: String::new(), pointer: String::new() },
        E::DuplicateCapabilityName { name: String::new(), pointer: String::new() },
        E::LivenessModelMismatch { agent: String::new(), endpoint: None, uses: LivenessModel::Ephemeral },
        E::RevisionMismatch { expected: 1, current: 2 },
        E::IdempotencyKeyReused,
        E::storage_unavailable(""),
        E::liveness_unavailable(""),
        E::internal(""),
    ]
    .iter()
    .map(E::code)
    .collect();
    assert_eq!(
        codes,
        [
            "validation_failed",
            "invalid_query",
            "invalid_id",
            "agent_not_found",
            "endpoint_not_found",
            "agent_exists",
            "duplicate_endpoint_name",
            "duplicate_capability_name",
            "liveness_model_mismatch",
            "revision_mismatch",
            "idempotency_key_reused",
            "storage_unavailable",
            "liveness_unavailable",
            "internal_error",
        ]
    );
}

#[tokio::test]
async fn a_key_repeated_in_any_json_body_is_400_at_its_pointer_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let card = r#"{"name": "Honest", "description": "d", "version": "1.0.0",
        "supportedInterfaces": [{"url": "https://honest.example/a2a", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}],
        "capabilities": {}, "defaultInputModes": ["text/plain"], "defaultOutputModes": ["text/plain"],
        "skills": [{"id": "s", "name": "s", "description": "d", "tags": ["t"]}], "name": "Impostor"}"#;
    let agent = r#"{"name": "A", "endpoints": [{"name": "e", "address": "https://a.example", "name": "f"}]}"#;
    let cases = [
        ("/a2a/agents", card.to_owned(), "/name"),
        ("/a2a/agents", format!(r#"{{"card": {card}}}"#), "/card/name"),
        ("/agents", agent.to_owned(), "/endpoints/0/name"),
        ("/agents", r#"{"name": "A", "labels": {"k": "1", "\u006b": "2"}}"#.to_owned(), "/labels/k"),
    ];
    for (path, body, pointer) in cases {
        let reply = app.raw(Method::POST, path, Some("application/json"), body.into_bytes()).await;
        reply.problem(400, "validation_failed");
        assert_eq!(reply.pointers(), [pointer], "{path}: {}", reply.body);
    }
    assert_eq!(app.get("/agents?liveOnly=false").await.ok(200)["totalCount"], 0);

    // The MCP endpoint's JSON-RPC bodies too: a parser keeping the first `method` would see
    // another request than one keeping the last.
    let rpc = r#"{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "method": "initialize", "params": {}}"#;
    let reply = app.raw(Method::POST, "/mcp", Some("application/json"), rpc.into()).await;
    // As a JSON-RPC error: the registry's JSON reader does not parse it.
    let body = reply.ok(400);
    assert_eq!(body["error"]["code"], -32700, "{body}");
    assert_eq!(body["error"]["data"]["code"], "validation_failed", "{body}");
    assert_eq!(body["error"]["data"]["errors"][0]["pointer"], "/method", "{body}");
}
