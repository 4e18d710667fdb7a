//! The real protocol clients against a running registry (`tests/clients/`): from PyPI the A2A
//! SDK's card resolver, the ACP SDK's client, the MCP SDK's Streamable HTTP client and openapi-core
//! (the MCP Registry API checked against the official OpenAPI); from npm the TypeScript MCP SDK
//! and MCP Inspector's CLI; openapi-spec-validator and Redocly CLI read `/openapi.json`. Their
//! environments are made by `tests/clients/setup.sh`, which the README's test command runs first.

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

fn clients_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/clients")
}

/// Runs a script of `tests/clients/` and fails with its output unless it ends with `ok`.
async fn run_script(python: std::path::PathBuf, script: &str, args: Vec<String>) {
    let mut command = std::process::Command::new(python);
    command.arg(clients_dir().join(script)).args(args);
    run(command).await;
}

/// The npm packages of `tests/clients/<folder>`, as setup.sh installs them.
fn node_packages(folder: &str) -> std::path::PathBuf {
    let root = std::env::var("AGENT_REGISTRY_NODE_DIR")
        .unwrap_or_else(|_| format!("{}/.cache/agent-registry-node", std::env::var("HOME").unwrap_or_default()));
    let dir = std::path::Path::new(&root).join(folder);
    assert!(
        dir.join("node_modules").is_dir(),
        "the npm packages of tests/clients/{folder} are not installed at {}: run `bash tests/clients/setup.sh` (the \
         README's test command does)",
        dir.display()
    );
    dir
}

/// Runs `node tests/clients/<folder>/<script>` with that folder's installed packages.
async fn run_node(folder: &str, script: &str, args: Vec<String>) {
    let mut command = std::process::Command::new("node");
    command
        .arg(clients_dir().join(folder).join(script))
        .args(args)
        .env("AGENT_REGISTRY_NODE_PACKAGES", node_packages(folder));
    run(command).await;
}

/// Runs a client check and fails with its output unless it succeeds and ends with `ok`.
async fn run(mut command: std::process::Command) {
    // The server runs on this test's runtime: the check must not block it.
    let output =
        tokio::task::spawn_blocking(move || command.output()).await.expect("joined").expect("the client check runs");
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
    let sdk = node_packages("a2a-js");
    let app = TestApp::spawn().await;
    let agents = register_every_card(&app).await;
    run_node("a2a-js", "check_cards.mjs", vec![sdk.display().to_string(), app.base.clone(), agents]).await;
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

/// An A2A agent the TypeScript checks look up and fail on (it has no MCP Server Card).
async fn summariser(app: &TestApp) -> String {
    let agent = app
        .register(json!({"name": "Contract Summariser", "description": "Summarises long contracts",
            "capabilities": [{"name": "summarize-documents", "description": "Summaries of documents"}],
            "endpoints": [{"name": "a2a", "protocol": "A2A", "address": "https://s.example/a2a", "livenessModel": "Persistent"}]}))
        .await;
    agent["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_typescript_mcp_sdk_calls_every_tool_and_gets_each_failure_as_an_is_error_result() {
    let app = TestApp::spawn().await;
    let id = summariser(&app).await;
    let key = app.key().unwrap_or_default().to_owned();
    run_node("mcp-ts", "check_sdk.mjs", vec![app.base.clone(), id, key]).await;
}

#[tokio::test]
async fn mcp_inspector_finds_the_tool_schemas_portable_and_reads_every_tool_failure() {
    let app = TestApp::spawn().await;
    let id = summariser(&app).await;
    run_node("mcp-ts", "check_inspector.mjs", vec![app.base.clone(), id]).await;
}

#[tokio::test]
async fn the_mcp_registry_api_answers_as_the_official_openapi_documents() {
    let python = python();
    let app = TestApp::spawn().await;
    let (_, bytes) = fixtures("mcp-server-json").into_iter().find(|(n, _)| n.contains("remote-headers")).unwrap();
    let base: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let name = base["name"].as_str().unwrap().to_owned();
    for (server, version) in [
        (name.as_str(), "1.0.0"),
        (name.as_str(), "1.1.0"),
        ("io.github.alice/weather", "2.0.0"),
        ("com.example/zeta", "0.1.0"),
    ] {
        let mut doc = base.clone();
        doc["name"] = json!(server);
        doc["version"] = json!(version);
        app.post("/mcp/servers", doc).await.ok(201);
    }
    let openapi = clients_dir().join("../../fixtures/protocols/mcp-registry-api-openapi.yaml");
    let args = vec![app.base.clone(), openapi.display().to_string(), name];
    run_script(python, "check_mcp_registry.py", args).await;
}

#[tokio::test]
async fn headless_chromium_shows_the_api_explorer_with_the_network_off() {
    let app = TestApp::spawn().await;
    run_node("browser", "check_docs.mjs", vec![app.base.clone()]).await;
}

#[tokio::test]
async fn the_openapi_document_passes_openapi_spec_validator_and_redocly_lint() {
    let python = python();
    let app = TestApp::spawn().await;
    let redocly = node_packages("openapi-lint").join("node_modules/.bin/redocly");
    run_script(python, "check_openapi.py", vec![app.base.clone(), redocly.display().to_string()]).await;
}
