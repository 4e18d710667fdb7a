//! The real protocol SDKs from PyPI against a running registry (`tests/clients/`): the A2A SDK's
//! card resolver, the ACP SDK's client and the MCP SDK's Streamable HTTP client. Their environment is made by
//! `tests/clients/setup.sh`, which the README's test command runs first.

use reqwest::Method;
use serde_json::json;

use crate::support::{TestApp, fixtures};

fn python() -> std::path::PathBuf {
    let venv = std::env::var("AGENT_REGISTRY_TEST_VENV")
        .unwrap_or_else(|_| format!("{}/.cache/agent-registry-venv", std::env::var("HOME").unwrap_or_default()));
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
    // The server runs on this test's runtime: the script must not block it.
    let output =
        tokio::task::spawn_blocking(move || std::process::Command::new(python).arg(script).args(args).output())
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
