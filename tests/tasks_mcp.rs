//! The gateway to MCP servers end to end: tasks sent through the registry as `tools/call` to a
//! real MCP server (the `mcp` SDK's FastMCP, tests/clients/mcp_tool_server.py, started on
//! loopback by the test), their progress in the log; and the registry's own MCP tools
//! `execute_task` and `get_task`, called with rmcp's client.

use std::process::Stdio;
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use crate::support::TestApp;

/// The MCP server on a free loopback port; killed when dropped.
struct Server {
    url: String,
    _process: tokio::process::Child,
}

async fn mcp_server(stateless: bool) -> Server {
    let venv = std::env::var("AGENT_REGISTRY_TEST_VENV")
        .unwrap_or_else(|_| format!("{}/.cache/agent-registry-venv", std::env::var("HOME").unwrap_or_default()));
    let python = std::path::Path::new(&venv).join("bin/python");
    assert!(python.exists(), "the Python SDKs are missing: run `bash tests/clients/setup.sh`");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/clients/mcp_tool_server.py");
    let mut command = tokio::process::Command::new(python);
    command.arg(script).arg(port.to_string());
    if stateless {
        command.arg("stateless");
    }
    let mut child = command.stdout(Stdio::piped()).kill_on_drop(true).spawn().expect("the MCP server starts");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await;
    assert!(matches!(ready, Ok(Ok(Some(ref l))) if l == "ready"), "the MCP server did not start: {ready:?}");
    Server { url: format!("http://127.0.0.1:{port}/mcp"), _process: child }
}

/// Registers an MCP server at `url` offering `capabilities`.
async fn register(app: &TestApp, capabilities: &[&str], url: &str, metadata: Value) -> String {
    let capabilities: Vec<Value> = capabilities.iter().map(|c| json!({"name": c})).collect();
    let body = json!({"name": "tools", "capabilities": capabilities,
        "endpoints": [{"name": "mcp", "transport": "Http", "protocol": "MCP", "address": url,
                       "protocolMetadata": metadata, "livenessModel": "Ephemeral", "ttlSeconds": 300}]});
    app.register(body).await["id"].as_str().unwrap().to_owned()
}

/// Every event of a task's log, from its SSE stream to its end.
async fn events(app: &TestApp, id: &str) -> Vec<Value> {
    super::tasks::events(app, id, app.key()).await
}

use super::tasks::kinds;

#[tokio::test]
async fn a_task_to_an_mcp_server_calls_its_tool_and_logs_the_progress_it_reports() {
    let (app, server) = (TestApp::spawn().await, mcp_server(false).await);
    let agent_id = register(&app, &["echo", "count", "fail"], &server.url, json!({})).await;
    // Text goes to the tool's one string argument.
    let task = app.post("/tasks", json!({"tool": "echo", "input": "hello"})).await.ok(200).clone();
    assert_eq!(task["state"], "completed", "{task}");
    assert_eq!(task["protocol"], "MCP");
    assert_eq!(task["agentId"], agent_id.as_str());
    // FastMCP gives a string result as structured content too.
    assert_eq!(task["output"], json!({"result": "echo: hello"}));
    // By capability, with the arguments as an object: progress notifications are in the log.
    let task = app.post("/tasks", json!({"capability": "count", "input": {"n": 3}})).await.ok(200).clone();
    assert_eq!(task["state"], "completed", "{task}");
    assert_eq!(task["output"], json!({"counted": 3}));
    let log = events(&app, task["id"].as_str().unwrap()).await;
    let kinds = kinds(&log);
    assert_eq!(kinds[..3], ["created", "dispatched", "accepted"], "{log:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "progress").count(), 3, "{log:?}");
    assert_eq!(kinds.last(), Some(&"completed"));
    let progress = log.iter().find(|e| e["type"] == "progress").unwrap();
    assert_eq!(progress["progress"], json!({"progress": 1.0, "total": 3.0, "message": "step 1"}));
}

#[tokio::test]
async fn a_tool_that_raises_fails_the_task_and_input_that_fits_no_argument_is_refused() {
    let (app, server) = (TestApp::spawn().await, mcp_server(true).await);
    register(&app, &["fail", "count", "nothing"], &server.url, json!({})).await;
    let failed = app.post("/tasks", json!({"tool": "fail", "input": {"text": "x"}})).await.ok(200).clone();
    assert_eq!(failed["state"], "failed", "{failed}");
    assert_eq!(failed["error"]["code"], "agent_failed");
    assert!(failed["error"]["detail"].as_str().unwrap().contains("it went wrong with x"), "{failed}");
    // `count` takes a number: text cannot be its argument.
    let refused = app.post("/tasks", json!({"tool": "count", "input": "three"})).await.ok(200).clone();
    assert_eq!(refused["state"], "failed");
    assert_eq!(refused["error"]["code"], "input_not_accepted", "{refused}");
    let missing = app.post("/tasks", json!({"tool": "nothing", "input": {}})).await.ok(200).clone();
    assert_eq!(missing["error"]["code"], "tool_not_found", "{missing}");
    assert!(missing["error"]["detail"].as_str().unwrap().contains("echo"), "{missing}");
}

#[tokio::test]
async fn a_canceled_mcp_task_tells_the_server_that_the_call_is_cancelled() {
    let (app, server) = (TestApp::spawn().await, mcp_server(false).await);
    register(&app, &["wait", "cancelled"], &server.url, json!({})).await;
    let task = app.post("/tasks", json!({"tool": "wait", "input": {"seconds": 60}, "waitSeconds": 0})).await;
    let id = task.ok(202)["id"].as_str().unwrap().to_owned();
    // Cancel once the server has the call (its first progress makes the task `working`).
    let path = format!("/tasks/{id}");
    for _ in 0..150 {
        if app.get(&path).await.ok(200)["state"] == "working" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let canceled = app.post_empty(&format!("/tasks/{id}/cancel")).await;
    assert_eq!(canceled.ok(200)["state"], "canceled");
    let mut counted = Value::Null;
    for _ in 0..50 {
        let asked = app.post("/tasks", json!({"tool": "cancelled", "input": {}})).await.ok(200).clone();
        counted = asked["output"]["result"].clone();
        if counted == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the server never saw the call cancelled: {counted}");
}

#[tokio::test]
async fn a_2026_era_mcp_server_is_called_with_server_discover() {
    // The registry's own MCP endpoint (rmcp) is a 2026-07-28 server: register it as an agent.
    let app = TestApp::spawn().await;
    let url = format!("{}/mcp", app.base);
    register(&app, &["list_capabilities"], &url, json!({"supportedProtocolVersions": ["2026-07-28"]})).await;
    let task = app.post("/tasks", json!({"capability": "list_capabilities", "input": {}})).await.ok(200).clone();
    assert_eq!(task["state"], "completed", "{task}");
    assert_eq!(task["output"]["capabilities"][0]["name"], "list_capabilities", "{task}");
}

/// An rmcp client of the registry's `/mcp`, sending this API key (if any) on every request.
async fn registry_client(app: &TestApp, key: Option<&str>) -> RunningService<RoleClient, ()> {
    let mut headers = std::collections::HashMap::new();
    if let Some(key) = key {
        headers.insert(
            reqwest::header::HeaderName::from_static("x-api-key"),
            reqwest::header::HeaderValue::from_str(key).unwrap(),
        );
    }
    let config = StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", app.base)).custom_headers(headers);
    let transport = StreamableHttpClientTransport::with_client(reqwest::Client::new(), config);
    ().serve(transport).await.expect("the MCP client connects")
}

async fn call(client: &RunningService<RoleClient, ()>, tool: &str, args: Value) -> CallToolResult {
    let params = CallToolRequestParams::new(tool.to_owned()).with_arguments(args.as_object().unwrap().clone());
    client.call_tool(params).await.expect("the tool answers")
}

fn error_code(result: &CallToolResult) -> Value {
    assert_eq!(result.is_error, Some(true), "{result:?}");
    assert!(result.structured_content.is_none(), "{result:?}");
    result.meta.as_ref().and_then(|m| m.0.get("agent-registry/error")).map(|e| e["code"].clone()).unwrap_or_default()
}

#[tokio::test]
async fn the_execute_task_tool_runs_a_task_for_an_authenticated_caller_and_get_task_follows_it() {
    let (app, server) = (TestApp::spawn().await, mcp_server(true).await);
    register(&app, &["echo", "wait"], &server.url, json!({})).await;
    let client = registry_client(&app, app.key()).await;
    let done = call(&client, "execute_task", json!({"tool": "echo", "input": "hello"})).await;
    assert_eq!(done.is_error, Some(false), "{done:?}");
    let answer = done.structured_content.clone().unwrap();
    assert_eq!(answer["state"], "completed", "{answer}");
    assert_eq!(answer["finished"], true);
    assert_eq!(answer["output"], json!({"result": "echo: hello"}));
    assert_eq!(answer["protocol"], "MCP");
    // The same result as through REST.
    let rest = app.get(&format!("/tasks/{}", answer["id"].as_str().unwrap())).await;
    assert_eq!(rest.ok(200)["output"], answer["output"]);
    // A task that outlives the wait comes back running, with its id; get_task follows it.
    let running =
        call(&client, "execute_task", json!({"tool": "wait", "input": {"seconds": 1}, "waitSeconds": 0})).await;
    let running = running.structured_content.unwrap();
    assert_eq!(running["finished"], false, "{running}");
    let id = running["id"].as_str().unwrap();
    let mut read = Value::Null;
    for _ in 0..100 {
        read = call(&client, "get_task", json!({"id": id})).await.structured_content.unwrap();
        if read["finished"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(read["state"], "completed", "{read}");
    assert_eq!(read["output"], json!({"result": "waited"}));
    let kinds: Vec<&str> = read["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"progress") && kinds.last() == Some(&"completed"), "{kinds:?}");
    client.cancel().await.ok();
}

#[tokio::test]
async fn the_task_tools_refuse_callers_without_credentials_and_bad_arguments() {
    let (app, server) = (TestApp::spawn().await, mcp_server(true).await);
    register(&app, &["echo"], &server.url, json!({})).await;
    let anonymous = registry_client(&app, None).await;
    let refused = call(&anonymous, "execute_task", json!({"tool": "echo", "input": "hello"})).await;
    assert_eq!(error_code(&refused), "unauthenticated");
    let refused = call(&anonymous, "get_task", json!({"id": uuid::Uuid::new_v4().to_string()})).await;
    assert_eq!(error_code(&refused), "unauthenticated");
    assert!(app.get("/tasks").await.ok(200)["items"].as_array().unwrap().is_empty(), "nothing was sent");
    let client = registry_client(&app, app.key()).await;
    let bad = call(&client, "execute_task", json!({"input": "x"})).await;
    assert_eq!(error_code(&bad), "validation_failed");
    let bad = call(&client, "execute_task", json!({"tool": "echo", "input": "x", "waitSeconds": 99})).await;
    assert_eq!(error_code(&bad), "validation_failed");
    let none = call(&client, "execute_task", json!({"capability": "nobody", "input": "x"})).await;
    assert_eq!(error_code(&none), "no_live_agent");
    let unknown = call(&client, "get_task", json!({"id": uuid::Uuid::new_v4().to_string()})).await;
    assert_eq!(error_code(&unknown), "task_not_found");
    let bad = call(&client, "get_task", json!({"id": "nope"})).await;
    assert_eq!(error_code(&bad), "validation_failed");
    // The tool says it calls out.
    let tools = client.list_all_tools().await.unwrap();
    let execute = tools.iter().find(|t| t.name == "execute_task").unwrap();
    let hints = execute.annotations.as_ref().unwrap();
    assert_eq!((hints.read_only_hint, hints.open_world_hint), (Some(false), Some(true)));
    assert!(execute.description.as_deref().unwrap_or_default().contains("CALLS OUT"));
    anonymous.cancel().await.ok();
    client.cancel().await.ok();
}
