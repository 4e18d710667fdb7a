//! The real protocol SDKs from PyPI against a running registry (`tests/clients/`): the A2A SDK's
//! card resolver, the ACP SDK's client and the MCP SDK's Streamable HTTP client. Their environment is made by
//! `tests/clients/setup.sh`, which the README's test command runs first.

use reqwest::Method;
use serde_json::json;

use crate::support::{TestApp, fixtures};

fn python() -> std::path::PathBuf {
    python_of("AGENT_REGISTRY_TEST_VENV", "agent-registry-venv")
}

/// The Python of a venv made by `tests/clients/setup.sh`: `$variable`, else `~/.cache/<default>`.
fn python_of(variable: &str, default: &str) -> std::path::PathBuf {
    let venv = std::env::var(variable)
        .unwrap_or_else(|_| format!("{}/.cache/{default}", std::env::var("HOME").unwrap_or_default()));
    let python = std::path::Path::new(&venv).join("bin/python");
    assert!(
        python.exists(),
        "the protocol SDKs are not installed at {venv}: run `bash tests/clients/setup.sh` (the README's test command does)"
    );
    python
}

#[tokio::test]
async fn the_a2a_and_acp_python_sdks_read_the_registry_with_their_ordinary_calls() {
    let python = python();
    let app = TestApp::spawn().await;
    let (_, card) = fixtures("a2a-agent-card").into_iter().find(|(n, _)| n.contains("v1.0.1_sample")).unwrap();
    let agent = app.raw(Method::POST, "/a2a/agents", Some("application/json"), card.clone()).await.ok(201).clone();
    let manifest = json!({"name": "chat_new", "description": "Chats", "input_content_types": ["text/plain"],
        "output_content_types": ["text/plain"], "metadata": {"license": null, "domains": ["support"]}});
    app.post("/acp/agents", json!({"manifest": manifest, "endpointUrl": "https://acp.example"})).await.ok(201);

    let args = [app.base.clone(), agent["id"].as_str().unwrap().to_owned(), agent["name"].as_str().unwrap().to_owned()];
    run_script(python, "check_sdks.py", args.into_iter().chain(["chat-new".to_owned()]).collect()).await;
}

/// Runs a script of `tests/clients/` and fails with its output unless it ends with `ok`.
async fn run_script(python: std::path::PathBuf, script: &str, args: Vec<String>) {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/clients").join(script);
    run_program(python, script, args).await;
}

/// Runs a program with a script and its arguments; fails with its output unless it ends with `ok`.
async fn run_program(program: std::path::PathBuf, script: std::path::PathBuf, args: Vec<String>) {
    // The server runs on this test's runtime: the script must not block it.
    let output =
        tokio::task::spawn_blocking(move || std::process::Command::new(program).arg(script).args(args).output())
            .await
            .expect("joined")
            .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the SDK checks failed:\n{stdout}\n{stderr}");
    assert!(stdout.trim_end().ends_with("ok"), "{stdout}");
}

#[tokio::test]
async fn the_python_mcp_sdk_initializes_lists_and_calls_every_tool() {
    let python = python();
    let app = TestApp::spawn().await;
    let agent = app
        .register(json!({"name": "Contract Summariser", "description": "Summarises long contracts",
            "capabilities": [{"name": "summarize-documents", "description": "Summaries of documents"}],
            "endpoints": [{"name": "a2a", "protocol": "A2A", "address": "https://s.example/a2a", "livenessModel": "Persistent"}]}))
        .await;
    run_script(python, "check_mcp.py", vec![app.base.clone(), agent["id"].as_str().unwrap().to_owned()]).await;
}

/// Registers every valid A2A card of `fixtures/` (the examples and the edge cases) and describes
/// them for the client scripts: `[{id, name, file, signed, shape}]`, shape `v1`, `v03` or `dual`.
async fn register_every_card(app: &TestApp) -> String {
    let mut cards = fixtures("a2a-agent-card");
    cards.extend(crate::support::edge_fixtures("a2a-edge").0);
    let mut agents = Vec::new();
    for (file, bytes) in cards {
        let card: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let agent = app.raw(Method::POST, "/a2a/agents", Some("application/json"), bytes).await.ok(201).clone();
        let shape = match (card.get("supportedInterfaces").is_some(), card.get("url").is_some()) {
            (true, true) => "dual",
            (true, false) => "v1",
            _ => "v03",
        };
        let signed = card["signatures"].as_array().is_some_and(|s| !s.is_empty());
        agents.push(json!({"id": agent["id"], "name": card["name"], "file": file, "signed": signed, "shape": shape}));
    }
    serde_json::Value::Array(agents).to_string()
}

#[tokio::test]
async fn the_a2a_python_sdks_1_x_and_0_3_resolve_every_fixture_card_and_make_a_client_at_its_base_url() {
    let (current, legacy) = (python(), python_of("AGENT_REGISTRY_TEST_VENV_A2A03", "agent-registry-venv-a2a03"));
    let app = TestApp::spawn().await;
    let agents = register_every_card(&app).await;
    for python in [current, legacy] {
        run_script(python, "check_a2a_cards.py", vec![app.base.clone(), agents.clone()]).await;
    }
}

#[tokio::test]
async fn the_a2a_javascript_sdk_resolves_every_fixture_card_and_makes_a_client_with_and_without_legacy_compat() {
    let dir = std::env::var("AGENT_REGISTRY_TEST_NODE")
        .unwrap_or_else(|_| format!("{}/.cache/agent-registry-node", std::env::var("HOME").unwrap_or_default()));
    let sdk = std::path::Path::new(&dir).join("a2a-js");
    assert!(
        sdk.join("node_modules/@a2a-js/sdk").exists(),
        "@a2a-js/sdk is not installed at {}: run `bash tests/clients/setup.sh` (the README's test command does)",
        sdk.display()
    );
    let app = TestApp::spawn().await;
    let agents = register_every_card(&app).await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/clients/a2a-js/check_cards.mjs");
    let args = vec![sdk.display().to_string(), app.base.clone(), agents];
    run_program("node".into(), script, args).await;
}

#[tokio::test]
async fn the_acp_sdk_lists_every_agent_reads_errors_as_acp_errors_and_finds_where_an_agents_runs_go() {
    let python = python();
    let app = TestApp::spawn().await;
    // The port the manifest names as the agent's ACP server (nothing listens there).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let manifest = |name: &str| {
        json!({"name": name, "description": format!("{name} agent"), "input_content_types": ["text/plain"],
            "output_content_types": ["text/plain"]})
    };
    app.post(
        "/acp/agents",
        json!({"manifest": manifest("echo_agent"), "endpointUrl": format!("http://127.0.0.1:{port}")}),
    )
    .await
    .ok(201);
    // More than ACP's default page of 10, which acp-sdk never asks beyond.
    for i in 0..12 {
        let body = json!({"manifest": manifest(&format!("helper-{i}")), "endpointUrl": "https://acp.example"});
        app.post("/acp/agents", body).await.ok(201);
    }
    run_script(python, "check_acp.py", vec![app.base.clone(), "13".into(), port.to_string()]).await;
}
