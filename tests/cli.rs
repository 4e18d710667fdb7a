//! The command-line client as a user runs it: the real binary against a real registry started by
//! the test, checked by what it prints and how it exits.

use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use tokio::process::Command;

use crate::support::TestApp;

const BINARY: &str = env!("CARGO_BIN_EXE_agent-registry");

/// The binary with the registry's URL and key in the environment, as a user would set them.
fn command(app: &TestApp, args: &[&str]) -> Command {
    let mut command = Command::new(BINARY);
    command.args(args).env("AGENT_REGISTRY_URL", &app.base).kill_on_drop(true);
    match app.key() {
        Some(key) => command.env("AGENT_REGISTRY_KEY", key),
        None => command.env_remove("AGENT_REGISTRY_KEY"),
    };
    command
}

async fn run(app: &TestApp, args: &[&str]) -> Output {
    command(app, args).output().await.expect("the binary runs")
}

/// Runs a command that must succeed; returns what it printed.
async fn ok(app: &TestApp, args: &[&str]) -> String {
    let output = run(app, args).await;
    assert!(output.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// Runs a command with `--output json` that must succeed; returns its JSON.
async fn json(app: &TestApp, args: &[&str]) -> Value {
    let args: Vec<&str> = args.iter().copied().chain(["--output", "json"]).collect();
    let text = ok(app, &args).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {text}"))
}

fn agent_file(dir: &tempfile::TempDir, name: &str, capability: &str) -> String {
    let body = json!({"name": name, "capabilities": [{"name": capability, "tags": ["cli"]}],
        "endpoints": [{"name": "a2a", "transport": "Http", "protocol": "A2A", "address": "https://cli.example/a2a",
                       "livenessModel": "Persistent", "heartbeatIntervalSeconds": 30}]});
    let path = dir.path().join(format!("{name}.json"));
    std::fs::write(&path, body.to_string()).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn an_agent_registered_from_a_file_is_read_discovered_listed_and_heartbeated() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let file = agent_file(&dir, "Cli summariser", "cli-summarize");
    let created = json(&app, &["agents", "register", "--file", &file]).await;
    let id = created["id"].as_str().unwrap();
    let read = json(&app, &["agents", "get", id]).await;
    assert_eq!(read["name"], "Cli summariser");
    let found = json(&app, &["discover", "--capability", "cli-summarize"]).await;
    assert_eq!(found["items"][0]["id"], id);
    assert_eq!(found["totalCount"], 1);
    let none = json(&app, &["discover", "--capability", "cli-summarize", "--protocol", "MCP"]).await;
    assert_eq!(none["totalCount"], 0);
    let table = ok(&app, &["agents", "list", "--tag", "cli"]).await;
    assert!(table.lines().next().unwrap().starts_with("ID"), "{table}");
    assert!(table.contains("Cli summariser") && table.contains(id), "{table}");
    let shown = ok(&app, &["agents", "get", id]).await;
    assert!(shown.contains("cli-summarize") && shown.contains("https://cli.example/a2a"), "{shown}");
    let beat = json(&app, &["heartbeat", id]).await;
    assert_eq!(beat[0]["isLive"], true);
    ok(&app, &["agents", "deregister", id]).await;
    let gone = run(&app, &["agents", "get", id]).await;
    assert_eq!(gone.status.code(), Some(4));
}

#[tokio::test]
async fn agents_are_registered_from_an_a2a_card_an_mcp_server_json_and_an_acp_manifest() {
    let app = TestApp::spawn().await;
    let fixture = |path: &str| format!("{}/../../fixtures/protocols/{path}", env!("CARGO_MANIFEST_DIR"));
    let card = fixture("a2a-agent-card/a2a-spec-v1.0.1_sample-card.json");
    let a2a = json(&app, &["agents", "register", "--a2a-card", &card]).await;
    assert_eq!(a2a["endpoints"][0]["protocol"], "A2A");
    let server = fixture("mcp-server-json/registry-docs_remote-headers.json");
    let mcp = json(&app, &["agents", "register", "--mcp-server-json", &server]).await;
    assert_eq!(mcp["endpoints"][0]["protocol"], "MCP");
    let manifest = fixture("acp-agent-manifest/acp-examples_citation-agent_minimal.json");
    let args = ["agents", "register", "--acp-manifest", &manifest, "--endpoint-url", "http://127.0.0.1:9/acp"];
    assert_eq!(json(&app, &args).await["endpoints"][0]["protocol"], "ACP");
    let without_url = run(&app, &["agents", "register", "--acp-manifest", &manifest]).await;
    assert_eq!(without_url.status.code(), Some(2), "--acp-manifest needs --endpoint-url");
}

#[tokio::test]
async fn keys_are_issued_listed_and_revoked_and_the_audit_trail_shows_it() {
    let app = TestApp::spawn().await;
    let issued = json(&app, &["keys", "issue", "--owner", "team-a", "--scope", "Agent"]).await;
    assert!(issued["key"].as_str().unwrap().starts_with("ar_"));
    let id = issued["id"].as_str().unwrap();
    let listed = json(&app, &["keys", "list", "--owner", "team-a"]).await;
    assert_eq!(listed["items"][0]["id"], id);
    let table = ok(&app, &["keys", "list"]).await;
    assert!(table.contains("team-a") && table.contains("Agent"), "{table}");
    assert!(!table.contains(issued["key"].as_str().unwrap()), "a listing never shows a secret");
    ok(&app, &["keys", "revoke", id]).await;
    let again = run(&app, &["keys", "revoke", id]).await;
    assert_eq!(again.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&again.stderr).contains("api_key_revoked"));
    let events = json(&app, &["events", "--action", "api_key_revoked"]).await;
    assert_eq!(events["items"].as_array().unwrap().len(), 1);
    let trail = ok(&app, &["events"]).await;
    assert!(trail.contains("api_key_issued"), "{trail}");
    // The service's variables are no concern of a client command, even when they are invalid.
    let status = command(&app, &["status"]).env("AGENT_REGISTRY_LISTEN", "not an address").output().await.unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    assert!(String::from_utf8_lossy(&status.stdout).contains("revision:"));
}

#[tokio::test]
async fn a_refusal_prints_its_code_and_detail_and_an_unreachable_registry_has_its_own_exit_code() {
    let app = TestApp::spawn().await;
    let missing = run(&app, &["agents", "get", "00000000-0000-4000-8000-000000000000"]).await;
    assert_eq!(missing.status.code(), Some(4), "a 4xx exits with 4");
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("agent_not_found") && stderr.contains("404"), "{stderr}");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"name": "", "capabilities": []}"#).unwrap();
    let invalid = run(&app, &["agents", "register", "--file", &bad.display().to_string()]).await;
    assert_eq!(invalid.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&invalid.stderr);
    assert!(stderr.contains("validation_failed") && stderr.contains("/name"), "the pointer is shown: {stderr}");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let unreachable = run(&app, &["discover", "--url", &url]).await;
    assert_eq!(unreachable.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("cannot reach the registry"));
    let usage = run(&app, &["agents", "register"]).await;
    assert_eq!(usage.status.code(), Some(2), "a usage error exits with 2");
}

#[tokio::test]
async fn watch_prints_a_registration_made_while_it_runs() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let first = json(&app, &["agents", "register", "--file", &agent_file(&dir, "Before", "watch-a")]).await;
    let since = first["revision"].to_string();
    let mut watch = command(&app, &["watch", "--since", &since, "--output", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("watch starts");
    let second = json(&app, &["agents", "register", "--file", &agent_file(&dir, "Meanwhile", "watch-b")]).await;
    let mut lines = tokio::io::BufReader::new(watch.stdout.take().unwrap()).lines();
    let seen = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let event: Value = serde_json::from_str(&line).unwrap();
            if event["agentId"] == second["id"] {
                return event;
            }
        }
        panic!("watch ended before the registration");
    })
    .await
    .expect("the registration is printed");
    assert_eq!(seen["kind"], "registered");
    assert_eq!(seen["agent"]["name"], "Meanwhile");
    watch.kill().await.unwrap();
}

#[tokio::test]
async fn a_task_sent_with_the_cli_prints_the_agents_answer_or_follows_its_log() {
    let (app, agent) = (TestApp::spawn().await, a2a_agent().await);
    let body = json!({"name": "Echo", "capabilities": [{"name": "cli-echo"}],
        "endpoints": [{"name": "a2a", "transport": "Http", "protocol": "A2A", "address": agent.url,
                       "livenessModel": "Ephemeral", "ttlSeconds": 300}]});
    let agent_id = app.register(body).await["id"].as_str().unwrap().to_owned();
    let mut watch = command(&app, &["watch", "--include-tasks", "--output", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("watch starts");
    // Tasks sent before the stream is open would not reach it: wait for its first words.
    let mut said = tokio::io::BufReader::new(watch.stderr.take().unwrap()).lines();
    let opened = tokio::time::timeout(Duration::from_secs(30), said.next_line()).await;
    assert!(matches!(opened, Ok(Ok(Some(ref l))) if l.starts_with("watching")), "{opened:?}");
    let task = json(&app, &["tasks", "send", "--capability", "cli-echo", "--input", "hello", "--wait", "20"]).await;
    let mut lines = tokio::io::BufReader::new(watch.stdout.take().unwrap()).lines();
    let steps = tokio::time::timeout(Duration::from_secs(30), async {
        let mut steps = Vec::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            let event: Value = serde_json::from_str(&line).unwrap();
            if event["taskId"] == task["id"] {
                steps.push(event["type"].as_str().unwrap_or_default().to_owned());
                if event["type"] == "completed" {
                    return steps;
                }
            }
        }
        panic!("watch ended before the task did");
    })
    .await
    .expect("the task's steps are printed");
    assert_eq!(steps.first().map(String::as_str), Some("created"), "{steps:?}");
    watch.kill().await.unwrap();
    assert_eq!(task["state"], "completed");
    assert_eq!(task["output"], "echo: hello");
    assert_eq!(task["agentId"], agent_id.as_str());
    let id = task["id"].as_str().unwrap();
    assert_eq!(json(&app, &["tasks", "get", id]).await["output"], "echo: hello");
    assert!(ok(&app, &["tasks", "list"]).await.contains(id));
    let followed = ok(&app, &["tasks", "send", "--agent", &agent_id, "--input", "slow:1", "--follow"]).await;
    let kinds: Vec<&str> = followed.lines().skip(1).filter_map(|l| l.split_whitespace().nth(1)).collect();
    assert_eq!(kinds.first(), Some(&"created"), "{followed}");
    assert_eq!(kinds.last(), Some(&"completed"), "{followed}");
    assert!(followed.contains("echo: slow:1"), "{followed}");
    let failed = run(&app, &["tasks", "send", "--capability", "cli-echo", "--input", "fail"]).await;
    assert_eq!(failed.status.code(), Some(6), "a task that fails exits with 6");
    assert!(String::from_utf8_lossy(&failed.stdout).contains("agent_failed"));
}

#[tokio::test]
async fn completions_help_version_and_check_config_need_no_registry() {
    let app = TestApp::spawn().await;
    assert!(ok(&app, &["completions", "bash"]).await.contains("agent-registry"));
    let help = ok(&app, &["--help"]).await;
    for topic in ["Service:", "Agents:", "Access:", "tasks", "check-config"] {
        assert!(help.contains(topic), "{help}");
    }
    let client_help = ok(&app, &["discover", "--help"]).await;
    assert!(client_help.contains("--capability") && !client_help.contains("--database-url"), "{client_help}");
    assert!(ok(&app, &["serve", "--help"]).await.contains("--database-url"));
    let version = ok(&app, &["--version"]).await;
    assert!(version.starts_with("agent-registry ") && version.contains('('), "{version}");
    let bad = run(&app, &["check-config", "--default-ttl-seconds", "0"]).await;
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--default-ttl-seconds"));
    let scheme = run(&app, &["check-config", "--database-url", "mysql://nope"]).await;
    assert!(!scheme.status.success());
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("c.db").display());
    assert!(ok(&app, &["check-config", "--database-url", &db]).await.contains("ok"));
    assert!(!dir.path().join("c.db").exists(), "check-config creates nothing");
    let misplaced = run(&app, &["--log", "warn", "discover"]).await;
    assert_eq!(misplaced.status.code(), Some(2), "a service flag before a client command is refused");
}

/// The Python A2A agent the gateway tests use (tests/tasks.rs).
async fn a2a_agent() -> crate::embedded::tasks::Agent {
    crate::embedded::tasks::a2a_agent_with(&[]).await
}
