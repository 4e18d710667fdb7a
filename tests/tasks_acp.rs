//! The gateway to ACP agents: tasks sent through the registry to real agents built with acp-sdk's
//! `Server` (tests/clients/acp_agent.py, started on loopback by the test), registered by
//! manifest: echoed, asking for input, failing, cancelled.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use crate::support::TestApp;

/// The acp-sdk server of tests/clients/acp_agent.py on a free loopback port; killed when dropped.
struct AcpServer {
    url: String,
    _process: tokio::process::Child,
}

async fn acp_server() -> AcpServer {
    let venv = std::env::var("AGENT_REGISTRY_TEST_VENV")
        .unwrap_or_else(|_| format!("{}/.cache/agent-registry-venv", std::env::var("HOME").unwrap_or_default()));
    let python = std::path::Path::new(&venv).join("bin/python");
    assert!(python.exists(), "the Python SDKs are missing: run `bash tests/clients/setup.sh`");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/clients/acp_agent.py");
    let mut child = tokio::process::Command::new(python)
        .arg(script)
        .arg(port.to_string())
        .stdout(Stdio::piped())
        // acp-sdk logs each failed run's traceback; the failing agent fails on purpose.
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the ACP server starts");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await;
    assert!(matches!(ready, Ok(Ok(Some(ref l))) if l == "ready"), "the ACP server did not start: {ready:?}");
    AcpServer { url: format!("http://127.0.0.1:{port}"), _process: child }
}

/// Registers the server's agent `name` by manifest, offering `capability`; returns its id.
async fn register(app: &TestApp, server: &AcpServer, name: &str, capability: &str) -> String {
    let manifest = json!({"name": name, "description": format!("{name} on acp-sdk"),
        "input_content_types": ["text/plain", "application/json"], "output_content_types": ["text/plain"],
        "metadata": {"capabilities": [{"name": capability, "description": capability}]}});
    let reply = app.post("/acp/agents", json!({"manifest": manifest, "endpointUrl": server.url})).await;
    reply.ok(201)["id"].as_str().unwrap().to_owned()
}

/// Every event of a task's log, from its SSE stream to its end.
async fn events(app: &TestApp, id: &str) -> Vec<Value> {
    super::tasks::events(app, id, app.key()).await
}

use super::tasks::kinds;

#[tokio::test]
async fn a_task_to_an_acp_agent_gets_its_answer_as_text_or_json() {
    let (app, server) = (TestApp::spawn().await, acp_server().await);
    let agent_id = register(&app, &server, "echo_agent", "echo").await;
    let reply = app.post("/tasks", json!({"capability": "echo", "input": "hello", "waitSeconds": 20})).await;
    let task = reply.ok(200);
    assert_eq!(task["state"], "completed", "{task}");
    assert_eq!(task["output"], "hello");
    assert_eq!((task["protocol"].as_str(), task["agentId"].as_str()), (Some("ACP"), Some(agent_id.as_str())));
    let log = events(&app, task["id"].as_str().unwrap()).await;
    assert_eq!(kinds(&log)[..3], ["created", "dispatched", "accepted"]);
    assert!(log[2]["remoteId"].as_str().is_some_and(|id| !id.is_empty()), "the run id: {}", log[2]);
    assert!(kinds(&log).contains(&"status"), "run.in-progress is logged: {log:?}");
    assert_eq!(kinds(&log).last(), Some(&"completed"));
    // A JSON object goes as an application/json part and comes back as JSON.
    let input = json!({"text": "x", "n": 2});
    let reply = app.post("/tasks", json!({"agentId": agent_id, "input": input, "waitSeconds": 20})).await;
    assert_eq!(reply.ok(200)["output"], input);
}

#[tokio::test]
async fn an_acp_run_that_awaits_is_input_required_and_one_that_fails_is_failed() {
    let (app, server) = (TestApp::spawn().await, acp_server().await);
    register(&app, &server, "asking_agent", "ask").await;
    register(&app, &server, "failing_agent", "fail").await;
    let asking = app.post("/tasks", json!({"capability": "ask", "input": "hi", "waitSeconds": 20})).await;
    let asking = asking.ok(200);
    assert_eq!(asking["state"], "input_required", "{asking}");
    let log = events(&app, asking["id"].as_str().unwrap()).await;
    let asked = log.iter().find(|e| e["type"] == "input_required").unwrap();
    assert_eq!(asked["message"]["parts"][0]["content"], "which language?");
    let failed = app.post("/tasks", json!({"capability": "fail", "input": "hi", "waitSeconds": 20})).await;
    let failed = failed.ok(200);
    assert_eq!(failed["state"], "failed");
    assert_eq!(failed["error"]["code"], "agent_failed");
    assert_eq!(failed["error"]["detail"], "it went wrong");
}

#[tokio::test]
async fn a_cancelled_task_cancels_the_acp_run() {
    let (app, server) = (TestApp::spawn().await, acp_server().await);
    register(&app, &server, "slow_agent", "slow").await;
    let reply = app.post("/tasks", json!({"capability": "slow", "input": "go", "waitSeconds": 0})).await;
    let id = reply.ok(202)["id"].as_str().unwrap().to_owned();
    // Cancel once the agent has taken the task (its run is under way).
    let mut state = String::new();
    for _ in 0..100 {
        state = app.get(&format!("/tasks/{id}")).await.ok(200)["state"].as_str().unwrap().to_owned();
        if state == "working" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state, "working");
    let canceled = app.post_empty(&format!("/tasks/{id}/cancel")).await;
    assert_eq!(canceled.ok(200)["state"], "canceled");
    let log = events(&app, &id).await;
    let run_id = log.iter().find(|e| e["type"] == "accepted").unwrap()["remoteId"].as_str().unwrap().to_owned();
    assert!(kinds(&log).contains(&"progress"), "the agent's yields are logged: {log:?}");
    // The ACP server was asked too: its run is cancelled.
    let mut status = Value::Null;
    for _ in 0..100 {
        let run: Value = reqwest::get(format!("{}/runs/{run_id}", server.url)).await.unwrap().json().await.unwrap();
        status = run["status"].clone();
        if status == "cancelled" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "cancelled");
}

#[tokio::test]
async fn an_acp_endpoint_registered_without_a_manifest_runs_the_agent_by_its_name_in_sync_mode() {
    let (app, server) = (TestApp::spawn().await, acp_server().await);
    let endpoint = json!({"name": "acp", "transport": "Http", "protocol": "ACP", "address": server.url,
        "protocolMetadata": {"mode": "sync"}, "livenessModel": "Ephemeral", "ttlSeconds": 300});
    app.register(json!({"name": "echo_agent", "capabilities": [{"name": "echo"}], "endpoints": [endpoint]})).await;
    let reply = app.post("/tasks", json!({"capability": "echo", "input": "synchronous", "waitSeconds": 20})).await;
    let task = reply.ok(200);
    assert_eq!((task["state"].as_str(), task["output"].as_str()), (Some("completed"), Some("synchronous")), "{task}");
    // An agent name the server does not know: a 404 before any run, so the task fails.
    let endpoint = json!({"name": "acp", "transport": "Http", "protocol": "ACP", "address": server.url,
        "protocolMetadata": {"agent_name": "nobody"}, "livenessModel": "Ephemeral", "ttlSeconds": 300});
    app.register(json!({"name": "stranger", "capabilities": [{"name": "nobody"}], "endpoints": [endpoint]})).await;
    let reply = app.post("/tasks", json!({"capability": "nobody", "input": "x", "waitSeconds": 20})).await;
    let task = reply.ok(200);
    assert_eq!(task["error"]["code"], "agent_error", "{task}");
    assert!(task["error"]["detail"].as_str().unwrap().contains("404"), "{task}");
}
