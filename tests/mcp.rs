//! The registry as an MCP server, driven by rmcp's own client in both MCP eras (2025-11-25
//! with `initialize`, 2026-07-28 with `server/discover`), by plain JSON-RPC across two replicas,
//! and with sessions that receive `notifications/resources/list_changed`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation, ProtocolVersion,
    ReadResourceRequestParams, ResourceContents,
};
use rmcp::service::{NotificationContext, RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::{Value, json};

use crate::cluster::{Replica, eventually, shared_backends};
use crate::support::{TestApp, agent, persistent, postgres_schema, redis_prefix, redis_url};

/// A client that counts resource-list notifications.
#[derive(Clone)]
struct Client {
    version: ProtocolVersion,
    list_changes: Arc<AtomicUsize>,
}

impl rmcp::ClientHandler for Client {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(ClientCapabilities::default(), Implementation::new("registry-tests", "1.0"))
            .with_protocol_version(self.version.clone())
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.list_changes.fetch_add(1, Ordering::SeqCst);
    }
}

async fn connect(base: &str, version: ProtocolVersion) -> (RunningService<RoleClient, Client>, Arc<AtomicUsize>) {
    let counter = Arc::new(AtomicUsize::new(0));
    let client = Client { version, list_changes: counter.clone() };
    let transport = StreamableHttpClientTransport::from_uri(format!("{base}/mcp"));
    (client.serve(transport).await.expect("the MCP client connects"), counter)
}

async fn call(client: &RunningService<RoleClient, Client>, tool: &str, args: Value) -> CallToolResult {
    let params = CallToolRequestParams::new(tool.to_owned()).with_arguments(args.as_object().unwrap().clone());
    client.call_tool(params).await.expect("the tool answers")
}

/// Registers agents the tools can find: a summariser (A2A), a translator (MCP) and a dead one.
async fn seed(app: &TestApp) -> Value {
    let summariser = app
        .register(json!({
            "name": "Contract Summariser", "description": "Summarises long PDF contracts into key clauses",
            "tags": ["legal"],
            "capabilities": [{"name": "summarize-documents", "description": "Summaries of long documents",
                              "inputSchema": {"type": "object", "properties": {"url": {"type": "string"}}}}],
            "endpoints": [{"name": "a2a", "protocol": "A2A", "address": "https://summariser.example/a2a",
                           "livenessModel": "Persistent", "heartbeatIntervalSeconds": 30}]}))
        .await;
    app.register(json!({
        "name": "Translator", "description": "Translates text between languages",
        "capabilities": [{"name": "translate", "description": "Machine translation"}],
        "endpoints": [{"name": "mcp", "protocol": "MCP", "address": "https://translator.example/mcp",
                       "livenessModel": "Persistent"}]}))
        .await;
    app.register(agent(
        "Gone Summariser",
        "summarize-documents",
        json!({"livenessModel": "Ephemeral", "ttlSeconds": 1}),
    ))
    .await;
    app.clock.advance_secs(5);
    summariser
}

/// A failed call's `{code, detail, errors}` (in `_meta`, as no `structuredContent` is sent on
/// errors), after checking that the text a model reads names the code and every pointer.
fn failure(result: &CallToolResult) -> Value {
    assert_eq!(result.is_error, Some(true), "{result:?}");
    assert!(result.structured_content.is_none(), "no structuredContent on an error: {result:?}");
    let error = result.meta.as_ref().and_then(|m| m.0.get("agent-registry/error")).cloned().expect("_meta error");
    let text = result.content[0].as_text().map(|t| t.text.clone()).unwrap_or_default();
    assert!(text.contains(error["code"].as_str().unwrap()), "{text}");
    for field in error["errors"].as_array().unwrap() {
        assert!(text.contains(field["pointer"].as_str().unwrap()), "{text}");
    }
    error
}

fn validate(schema: &serde_json::Map<String, Value>, value: &Value, tool: &str) {
    let validator = jsonschema::validator_for(&Value::Object(schema.clone())).expect("the output schema compiles");
    let errors: Vec<String> = validator.iter_errors(value).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{tool}: structured result breaks its outputSchema: {errors:?}\n{value}");
}

#[tokio::test]
async fn every_tool_answers_in_both_mcp_eras_with_results_that_follow_their_output_schemas() {
    let app = TestApp::spawn().await;
    let summariser = seed(&app).await;
    let id = summariser["id"].as_str().unwrap();
    for version in [ProtocolVersion::V_2025_11_25, ProtocolVersion::V_2026_07_28] {
        let (client, _) = connect(&app.base, version.clone()).await;
        let tools = client.list_all_tools().await.expect("tools/list");
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        for expected in [
            "find_agent_for_task",
            "discover_agents",
            "get_agent",
            "get_a2a_card",
            "get_mcp_server_card",
            "get_acp_manifest",
            "list_capabilities",
        ] {
            assert!(names.contains(&expected), "{version:?}: {names:?}");
        }
        let calls = [
            ("find_agent_for_task", json!({"task": "summarise a contract"})),
            ("discover_agents", json!({"capability": "summarize-documents"})),
            ("get_agent", json!({"id": id})),
            ("get_a2a_card", json!({"id": id})),
            ("list_capabilities", json!({})),
        ];
        for (name, args) in calls {
            let tool = tools.iter().find(|t| t.name == name).unwrap();
            assert_eq!(tool.annotations.as_ref().unwrap().read_only_hint, Some(true), "{name}");
            let result = call(&client, name, args).await;
            assert_eq!(result.is_error, Some(false), "{name}: {result:?}");
            let structured = result.structured_content.clone().expect("structuredContent");
            validate(tool.output_schema.as_ref().expect("outputSchema"), &structured, name);
            assert!(!result.content.is_empty(), "{name}: a text rendering too");
        }
        client.cancel().await.ok();
    }
}

#[tokio::test]
async fn tool_answers_hand_out_a2a_base_urls_that_resolve_however_a_client_joins_them() {
    let app = TestApp::spawn().await;
    let summariser = seed(&app).await;
    let (client, _) = connect(&app.base, ProtocolVersion::V_2025_11_25).await;
    let found = call(&client, "discover_agents", json!({"capability": "summarize-documents"})).await;
    let agents = found.structured_content.clone().unwrap()["agents"].clone();
    let base = agents[0]["a2aBaseUrl"].as_str().expect("an A2A agent has a base URL").to_owned();
    assert_eq!(agents[0]["id"], summariser["id"]);
    assert!(found.content[0].as_text().unwrap().text.contains(&base), "the text a model reads has it too");
    // WHATWG joining (`new URL(path, base)`, the A2A JavaScript SDK) and appending (a2a-sdk).
    let joined = url::Url::parse(&base).unwrap().join(".well-known/agent-card.json").unwrap();
    let appended = format!("{}/.well-known/agent-card.json", base.trim_end_matches('/'));
    for card_url in [joined.to_string(), appended] {
        let card = app.get(url::Url::parse(&card_url).unwrap().path()).await;
        assert_eq!(card.ok(200)["name"], summariser["name"], "{card_url}");
    }
    let tasks = call(&client, "discover_agents", json!({"capability": "translate", "liveOnly": false})).await;
    let translator = &tasks.structured_content.unwrap()["agents"][0];
    assert_eq!(translator["name"], "Translator");
    assert!(translator.get("a2aBaseUrl").is_none(), "an MCP-only agent has no A2A card");
    client.cancel().await.ok();
}

#[tokio::test]
async fn discover_agents_pages_by_number_as_the_dotnet_registrys_tool_did_or_by_cursor() {
    let app = TestApp::spawn().await;
    seed(&app).await;
    let (client, _) = connect(&app.base, ProtocolVersion::V_2025_11_25).await;
    let all = json!({"liveOnly": false, "pageSize": 1});
    let mut first_args = all.clone();
    first_args["page"] = json!(1);
    let first = call(&client, "discover_agents", first_args).await.structured_content.unwrap();
    assert_eq!(first["totalCount"], 3);
    assert_eq!((first["page"].clone(), first["pageSize"].clone()), (json!(1), json!(1)));
    assert_eq!((first["totalPages"].clone(), first["hasNextPage"].clone()), (json!(3), json!(true)));
    let mut last_args = all.clone();
    last_args["page"] = json!(3);
    let last = call(&client, "discover_agents", last_args).await.structured_content.unwrap();
    assert_eq!((last["page"].clone(), last["hasNextPage"].clone()), (json!(3), json!(false)));
    assert_ne!(last["agents"][0]["id"], first["agents"][0]["id"]);
    // By cursor the page number is not known, the rest is.
    let mut next_args = all.clone();
    next_args["cursor"] = first["nextCursor"].clone();
    let second = call(&client, "discover_agents", next_args.clone()).await.structured_content.unwrap();
    assert!(second.get("page").is_none());
    assert_eq!(second["totalPages"], 3);
    next_args["page"] = json!(2);
    let both = failure(&call(&client, "discover_agents", next_args).await);
    assert_eq!(both["code"], "validation_failed");
    // The .NET tool's `capability` matched a part of the name: that is `capabilityContains`.
    let part = call(&client, "discover_agents", json!({"capabilityContains": "SUMMAR", "liveOnly": false})).await;
    assert_eq!(part.structured_content.unwrap()["totalCount"], 2);
    client.cancel().await.ok();
}

#[tokio::test]
async fn find_agent_for_task_ranks_live_agents_explains_why_and_keeps_to_its_budget() {
    let app = TestApp::spawn().await;
    let summariser = seed(&app).await;
    let (client, _) = connect(&app.base, ProtocolVersion::V_2025_11_25).await;
    let result = call(&client, "find_agent_for_task", json!({"task": "Please summarise this contract for me"})).await;
    let answer = result.structured_content.unwrap();
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results[0]["id"], summariser["id"], "{answer}");
    assert!(results.iter().all(|r| r["name"] != "Gone Summariser"), "only live agents: {answer}");
    assert!(results[0]["matched"]["contract"].is_array(), "{answer}");
    assert!(results.iter().all(|r| r["name"] != "Translator"), "agents matching no word are left out");

    for i in 0..12 {
        app.register(json!({"name": format!("Summariser {i}"), "description": "x".repeat(400),
            "capabilities": [{"name": "summarize"}],
            "endpoints": [{"name": "e", "protocol": "A2A", "address": "https://s.example/a", "livenessModel": "Persistent"}]}))
            .await;
    }
    let budget = 1_200;
    let result =
        call(&client, "find_agent_for_task", json!({"task": "summarize", "maxResults": 10, "maxChars": budget})).await;
    let answer = result.structured_content.unwrap();
    assert!(answer.to_string().chars().count() <= budget, "{}", answer.to_string().len());
    assert!(answer["omitted"].as_u64().unwrap() > 0);
    assert!(!answer["results"].as_array().unwrap().is_empty());
    let result = call(&client, "find_agent_for_task", json!({"task": "summarize", "maxResults": 3})).await;
    assert_eq!(result.structured_content.unwrap()["results"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn tool_errors_are_results_with_the_rest_apis_codes() {
    let app = TestApp::spawn().await;
    let summariser = seed(&app).await;
    let (client, _) = connect(&app.base, ProtocolVersion::V_2025_11_25).await;
    let cases = [
        ("get_agent", json!({"id": "not-a-uuid"}), "validation_failed"),
        ("get_agent", json!({"id": uuid::Uuid::new_v4().to_string()}), "agent_not_found"),
        ("get_agent", json!({}), "validation_failed"),
        ("get_mcp_server_card", json!({"id": summariser["id"]}), "no_protocol_document"),
        ("discover_agents", json!({"protocol": "Carrier-Pigeon"}), "validation_failed"),
        ("discover_agents", json!({"pageSize": 1000}), "validation_failed"),
        ("find_agent_for_task", json!({"task": ""}), "validation_failed"),
        ("find_agent_for_task", json!({"task": "x", "maxChars": 5}), "validation_failed"),
    ];
    for (tool, args, code) in cases {
        let body = failure(&call(&client, tool, args.clone()).await);
        assert_eq!(body["code"], code, "{tool} {args}: {body}");
    }
    let pointer = failure(&call(&client, "discover_agents", json!({"pageSize": 0})).await);
    assert_eq!(pointer["errors"][0]["pointer"], "/pageSize");
    // The .NET registry's clients call the A2A card tool by another name.
    let card = call(&client, "get_a2_a_card", json!({"id": summariser["id"]})).await;
    assert_eq!(card.is_error, Some(false));
    assert_eq!(card.structured_content.unwrap()["name"], "Contract Summariser");
    // An unknown tool is a protocol error.
    let unknown = client.call_tool(CallToolRequestParams::new("no_such_tool")).await;
    assert!(unknown.is_err());
}

#[tokio::test]
async fn agents_are_resources_with_their_protocol_documents() {
    let app = TestApp::spawn().await;
    let summariser = seed(&app).await;
    let id = summariser["id"].as_str().unwrap();
    let (client, _) = connect(&app.base, ProtocolVersion::V_2025_11_25).await;
    let resources = client.list_all_resources().await.expect("resources/list");
    assert!(resources.iter().any(|r| r.uri == format!("agent://{id}")), "{resources:?}");
    for (uri, field, expected) in [
        (format!("agent://{id}"), "id", json!(id)),
        (format!("agent://{id}/a2a-card"), "name", json!("Contract Summariser")),
    ] {
        let read = client.read_resource(ReadResourceRequestParams::new(uri.clone())).await.expect("resources/read");
        let ResourceContents::TextResourceContents { text, .. } = &read.contents[0] else { panic!("text contents") };
        let document: Value = serde_json::from_str(text).unwrap();
        assert_eq!(document[field], expected, "{uri}");
    }
    let missing =
        client.read_resource(ReadResourceRequestParams::new(format!("agent://{}", uuid::Uuid::new_v4()))).await;
    assert!(missing.is_err());
}

#[tokio::test]
async fn a_session_hears_of_registry_changes_as_resource_list_notifications() {
    let app = TestApp::spawn_with_args(&["--mcp-sessions"]).await;
    let (client, changes) = connect(&app.base, ProtocolVersion::V_2025_11_25).await;
    // Let the session's notification stream open.
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.register(agent("Newcomer", "chat", persistent(30))).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while changes.load(Ordering::SeqCst) == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(changes.load(Ordering::SeqCst) > 0, "no notifications/resources/list_changed arrived");
    client.cancel().await.ok();
}

#[tokio::test]
async fn the_mcp_endpoint_refuses_hosts_it_was_not_configured_for() {
    let app = TestApp::spawn_with_args(&["--mcp-allowed-hosts", "registry.example.com"]).await;
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let post = |host: &'static str| {
        reqwest::Client::new()
            .post(format!("{}/mcp", app.base))
            .header("host", host)
            .header("accept", "application/json, text/event-stream")
            .json(&initialize)
            .send()
    };
    assert_eq!(post("evil.example").await.unwrap().status(), 403);
    assert_eq!(post("registry.example.com").await.unwrap().status(), 200);
}

/// One JSON-RPC request of a stateless 2025-era conversation.
async fn rpc(base: &str, version: &str, method: &str, params: Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{base}/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", version)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
        .send()
        .await
        .expect("MCP request");
    assert!(response.headers().get("mcp-session-id").is_none(), "stateless: no session to pin to a replica");
    response.json().await.expect("a JSON-RPC answer")
}

#[tokio::test(flavor = "multi_thread")]
async fn one_mcp_conversation_is_served_by_two_replicas_behind_a_load_balancer() {
    let (url, _schema) = postgres_schema().await;
    let args = shared_backends(&url, &redis_url(), &redis_prefix());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let a = Replica::start(&args).await;
    let b = Replica::start(&args).await;
    let init = rpc(
        &a.base,
        "2025-11-25",
        "initialize",
        json!({"protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "balanced", "version": "1"}}),
    )
    .await;
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25");
    let tools = rpc(&b.base, "2025-11-25", "tools/list", json!({})).await;
    assert!(tools["result"]["tools"].as_array().unwrap().len() >= 7);
    let created = a.register(agent("Balanced Summariser", "summarize-documents", persistent(30))).await;
    eventually(Duration::from_secs(5), "the registration reaches the other replica's MCP tools", || async {
        let found = rpc(
            &b.base,
            "2025-11-25",
            "tools/call",
            json!({"name": "discover_agents",
            "arguments": {"capability": "summarize-documents"}}),
        )
        .await;
        found["result"]["structuredContent"]["agents"][0]["id"] == created["id"]
    })
    .await;
}

#[tokio::test]
async fn older_clients_negotiate_down_to_the_version_they_speak() {
    let app = TestApp::spawn().await;
    for version in ["2025-06-18", "2025-03-26"] {
        let init = rpc(
            &app.base,
            version,
            "initialize",
            json!({"protocolVersion": version, "capabilities": {},
            "clientInfo": {"name": "old", "version": "1"}}),
        )
        .await;
        assert_eq!(init["result"]["protocolVersion"], version);
        let tools = rpc(&app.base, version, "tools/list", json!({})).await;
        assert!(tools["result"]["tools"].as_array().is_some_and(|t| t.len() >= 7), "{tools}");
    }
}

#[tokio::test]
async fn tools_share_the_discovery_rate_limit_of_the_client() {
    let app = TestApp::spawn_with_args(&["--rate-limit-discovery", "1"]).await;
    let (client, _) = connect(&app.base, ProtocolVersion::V_2025_11_25).await;
    let mut limited = None;
    for _ in 0..10 {
        let result = call(&client, "list_capabilities", json!({})).await;
        if result.is_error == Some(true) {
            limited = Some(failure(&result));
            break;
        }
    }
    let limited = limited.expect("the 1 request/s limit (burst 2) refuses some of 10 quick calls");
    assert_eq!(limited["code"], "rate_limited");
    assert!(limited["retryAfterSeconds"].as_u64().is_some_and(|s| s >= 1));
}

#[tokio::test]
async fn tool_input_schemas_state_the_bounds_and_defaults_the_tools_apply() {
    let app = TestApp::spawn().await;
    let (client, _) = connect(&app.base, ProtocolVersion::V_2025_11_25).await;
    let tools = client.list_all_tools().await.expect("tools/list");
    if let Ok(path) = std::env::var("MCP_TOOLS_DUMP") {
        std::fs::write(path, serde_json::to_string_pretty(&tools).unwrap()).unwrap();
    }
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names[0], "find_agent_for_task", "the tool to try first is listed first: {names:?}");
    let input = |tool: &str| {
        let mut schema = Value::Object(tools.iter().find(|t| t.name == tool).unwrap().input_schema.as_ref().clone());
        // An optional argument is `anyOf: [{type: T, ...its bounds}, {type: "null"}]`: read its bounds
        // in the branch of its type, beside its description and default.
        for property in schema["properties"].as_object_mut().unwrap().values_mut() {
            if let Some(Value::Array(branches)) = property.get("anyOf").cloned() {
                for (k, v) in branches[0].as_object().unwrap() {
                    property[k] = v.clone();
                }
            }
        }
        schema
    };
    // Portable schemas: one `type` per schema (MCP Inspector --strict), only formats JSON Schema defines.
    for tool in &tools {
        let schemas = [Some(&tool.input_schema), tool.output_schema.as_ref()];
        for schema in schemas.into_iter().flatten() {
            let text = serde_json::to_string(schema.as_ref()).unwrap();
            assert!(!text.contains(r#""type":["#), "{}: a type array in {text}", tool.name);
            assert!(
                !text.contains(r#""format":"uint"#) && !text.contains(r#""format":"double""#),
                "{}: {text}",
                tool.name
            );
        }
    }
    let find = input("find_agent_for_task");
    assert_eq!(find["required"], json!(["task"]));
    assert_eq!(find["properties"]["task"]["maxLength"], 1000);
    assert_eq!(find["properties"]["maxResults"]["default"], 5);
    assert_eq!(find["properties"]["maxResults"]["maximum"], 20);
    assert_eq!(find["properties"]["maxChars"]["minimum"], 300);
    assert_eq!(find["properties"]["maxChars"]["maximum"], 50_000);
    assert!(find["properties"]["protocol"]["enum"].as_array().unwrap().contains(&json!("A2A")));
    let discover = input("discover_agents");
    assert_eq!(discover["properties"]["pageSize"]["minimum"], 1);
    assert_eq!(discover["properties"]["pageSize"]["maximum"], 100);
    assert_eq!(discover["properties"]["pageSize"]["default"], 10);
    assert_eq!(discover["properties"]["liveOnly"]["default"], true);
    assert!(discover["properties"]["transport"]["enum"].as_array().unwrap().contains(&json!("Amqp")));
    assert_eq!(input("get_agent")["required"], json!(["id"]));
    for tool in &tools {
        assert_eq!(tool.input_schema.get("additionalProperties"), Some(&json!(false)), "{}", tool.name);
        assert!(tool.description.as_ref().is_some_and(|d| !d.is_empty()), "{}", tool.name);
    }
    // What the schemas say is what the tools refuse, with a pointer at the argument.
    let body = failure(&call(&client, "discover_agents", json!({"colour": "blue"})).await);
    assert_eq!((&body["code"], &body["errors"][0]["pointer"]), (&json!("validation_failed"), &json!("/colour")));
    let tag = failure(&call(&client, "discover_agents", json!({"tags": ["legal", 7]})).await);
    assert_eq!(tag["code"], "validation_failed", "{tag}");
    let live = failure(&call(&client, "list_capabilities", json!({"liveOnly": "yes"})).await);
    assert_eq!((&live["code"], &live["errors"][0]["pointer"]), (&json!("validation_failed"), &json!("/liveOnly")));
    let many = call(&client, "find_agent_for_task", json!({"task": "x", "maxResults": 21})).await;
    assert_eq!(failure(&many)["errors"][0]["pointer"], "/maxResults");
    // A comma-separated string of tags is taken, as the query string takes it.
    let tags = call(&client, "discover_agents", json!({"tags": "legal,pdf", "liveOnly": false})).await;
    assert_eq!(tags.is_error, Some(false), "{tags:?}");
    client.cancel().await.ok();
}

/// A raw POST to `/mcp`: the status and the body, which must be JSON-RPC whatever went wrong.
async fn post_raw(base: &str, content_type: &str, body: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .header("content-type", content_type)
        .body(body.to_owned())
        .send()
        .await
        .expect("MCP request");
    let status = response.status().as_u16();
    let media = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let text = response.text().await.unwrap();
    assert!(media.starts_with("application/json"), "{status} {media}: {text}");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {text}"));
    assert_eq!(body["jsonrpc"], "2.0", "{body}");
    (status, body)
}

#[tokio::test]
async fn the_mcp_endpoint_answers_every_message_it_refuses_with_a_json_rpc_error() {
    let app = TestApp::spawn().await;
    let json = "application/json";
    let cases = [
        ("not JSON", json, r#"{"jsonrpc": "2.0", "id": 1,"#, 400, -32700, json!(null)),
        ("a batch", json, r#"[{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}]"#, 400, -32600, json!(null)),
        (
            "an object id",
            json,
            r#"{"jsonrpc": "2.0", "id": {"n": 1}, "method": "tools/list"}"#,
            400,
            -32600,
            json!(null),
        ),
        ("a null id", json, r#"{"jsonrpc": "2.0", "id": null, "method": "tools/list"}"#, 400, -32600, json!(null)),
        ("a fractional id", json, r#"{"jsonrpc": "2.0", "id": 1.5, "method": "tools/list"}"#, 400, -32600, json!(null)),
        ("no jsonrpc", json, r#"{"id": 7, "method": "tools/list"}"#, 400, -32600, json!(7)),
        ("jsonrpc 1.0", json, r#"{"jsonrpc": "1.0", "id": 7, "method": "tools/list"}"#, 400, -32600, json!(7)),
        ("a number", json, "42", 400, -32600, json!(null)),
        (
            "params of the wrong type",
            json,
            r#"{"jsonrpc": "2.0", "id": "a", "method": "tools/call", "params": {"name": 5}}"#,
            200,
            -32602,
            json!("a"),
        ),
        (
            "params without a name",
            json,
            r#"{"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {}}"#,
            200,
            -32602,
            json!(8),
        ),
        (
            "params as an array",
            json,
            r#"{"jsonrpc": "2.0", "id": 9, "method": "tools/list", "params": [1]}"#,
            200,
            -32602,
            json!(9),
        ),
        (
            "not JSON at all",
            "text/plain",
            r#"{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}"#,
            415,
            -32600,
            json!(null),
        ),
    ];
    for (what, media, body, status, code, id) in cases {
        let (got, answer) = post_raw(&app.base, media, body).await;
        assert_eq!((got, &answer["error"]["code"], &answer["id"]), (status, &json!(code), &id), "{what}: {answer}");
        assert!(answer["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {answer}");
    }
    // An unknown method stays -32601; a valid request is still answered.
    let (_, unknown) =
        post_raw(&app.base, json, r#"{"jsonrpc": "2.0", "id": 1, "method": "no/such", "params": {}}"#).await;
    assert_eq!(unknown["error"]["code"], -32601, "{unknown}");
    let (status, listed) = post_raw(&app.base, json, r#"{"jsonrpc": "2.0", "id": 2, "method": "tools/list"}"#).await;
    assert_eq!((status, listed["result"]["tools"].as_array().map(Vec::len)), (200, Some(9)), "{listed}");
    // Methods the endpoint does not serve, statelessly, are 405 with a JSON-RPC body too.
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let response = reqwest::Client::new()
            .request(method.clone(), format!("{}/mcp", app.base))
            .header("accept", "application/json, text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method}");
        let body: Value = response.json().await.expect("a JSON body");
        assert_eq!(body["error"]["code"], -32600, "{method}: {body}");
    }
}

#[tokio::test]
async fn a_refused_host_or_origin_is_a_json_rpc_error_too() {
    let app = TestApp::spawn_with_args(&[
        "--mcp-allowed-hosts",
        "registry.example.com",
        "--mcp-allowed-origins",
        "https://app.example.com",
    ])
    .await;
    for (host, origin) in [("evil.example", None), ("registry.example.com", Some("https://evil.example"))] {
        let mut request = reqwest::Client::new()
            .post(format!("{}/mcp", app.base))
            .header("host", host)
            .header("accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 403, "{host} {origin:?}");
        let body: Value = response.json().await.expect("a JSON body");
        assert_eq!((&body["jsonrpc"], &body["error"]["code"]), (&json!("2.0"), &json!(-32600)), "{body}");
    }
}
