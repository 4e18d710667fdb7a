//! The real binary: starts with no setup, keeps data across a graceful restart.

use std::process::Command;

use serde_json::json;

use crate::cluster::Replica;

#[tokio::test]
async fn the_binary_serves_stops_on_sigterm_and_keeps_registrations_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("nested-registry.db").display());
    let server = Replica::start(&["--database-url", &db]).await;
    let created = server
        .register(json!({"name": "Durable", "capabilities": [{"name": "keep"}],
                         "endpoints": [{"name": "e", "address": "https://d.example", "ttlSeconds": 3600}]}))
        .await;
    assert!(server.terminate().success(), "graceful exit status");

    let server = Replica::start(&["--database-url", &db]).await;
    let found = server.get("/discover/agents?capability=keep").await;
    assert_eq!(found.ok(200)["items"][0]["id"], created["id"]);
    assert_eq!(found.body["items"][0]["endpoints"][0]["isLive"], true);
}

/// Registrations sent at once, committed together in batches; the process is killed (SIGKILL)
/// the moment the last answer arrives; a restart must find every agent that was answered 201.
/// What this cannot test here: power loss. A killed process leaves the operating system's page
/// cache behind, so `--sqlite-synchronous normal` survives this as well as `full`; only `full`
/// fsyncs each commit and so survives losing the machine's power too.
async fn every_201_survives_sigkill(synchronous: &str) {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("killed.db").display());
    let server = Replica::start(&["--database-url", &db, "--sqlite-synchronous", synchronous]).await;
    let body = |n: usize| {
        json!({"name": format!("Killed {n}"), "capabilities": [{"name": "survive"}],
               "endpoints": [{"name": "e", "address": "https://k.example", "ttlSeconds": 3600}]})
    };
    let replies = futures_util::future::join_all((0..64).map(|n| server.post("/agents", body(n)))).await;
    drop(server); // SIGKILL, at once
    let answered: Vec<&str> = replies.iter().map(|r| r.ok(201)["id"].as_str().unwrap()).collect();
    let server = Replica::start(&["--database-url", &db, "--sqlite-synchronous", synchronous]).await;
    for id in answered {
        server.get(&format!("/agents/{id}")).await.ok(200);
    }
    assert_eq!(server.get("/discover/agents?capability=survive&pageSize=100").await.ok(200)["totalCount"], 64);
}

#[tokio::test]
async fn with_synchronous_normal_every_registration_answered_201_survives_sigkill() {
    every_201_survives_sigkill("normal").await;
}

#[tokio::test]
async fn with_synchronous_full_every_registration_answered_201_survives_sigkill() {
    every_201_survives_sigkill("full").await;
}

#[tokio::test]
async fn migrate_prepares_the_database_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("m.db").display());
    let status = Command::new(env!("CARGO_BIN_EXE_agent-registry"))
        .args(["migrate", "--database-url", &db, "--log", "warn"])
        .status()
        .expect("binary runs");
    assert!(status.success());
    assert!(dir.path().join("m.db").exists());
    let bad = Command::new(env!("CARGO_BIN_EXE_agent-registry"))
        .args(["migrate", "--database-url", "mysql://nope", "--log", "off"])
        .status()
        .expect("binary runs");
    assert!(!bad.success(), "an unsupported database is refused");
}

#[tokio::test]
async fn an_empty_environment_variable_counts_as_unset_and_a_short_secret_is_still_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("e.db").display());
    let check = |secret: &str| {
        Command::new(env!("CARGO_BIN_EXE_agent-registry"))
            .args(["check-config", "--database-url", &db, "--log", "off"])
            .env("AGENT_REGISTRY_BOOTSTRAP_TOKEN", secret)
            .env("AGENT_REGISTRY_JWT_HS256_SECRET", secret)
            .env("AGENT_REGISTRY_OIDC_ISSUER", "")
            .output()
            .expect("binary runs")
    };
    let emptied = check("");
    assert!(emptied.status.success(), "{}", String::from_utf8_lossy(&emptied.stderr));
    let short = check("short");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 16 characters"));
}

#[tokio::test]
async fn dotnet_listen_serves_the_dotnet_wire_format_at_the_root_of_its_own_address() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("d.db").display());
    let dotnet = format!("127.0.0.1:{}", crate::cluster::free_port());
    let server = Replica::start(&["--database-url", &db, "--dotnet-listen", &dotnet]).await;
    let agent = server
        .register(json!({"name": "Summariser", "capabilities": [{"name": "summarize"}],
            "endpoints": [{"name": "a2a", "protocol": "A2A", "address": "https://s.example/a2a",
                "protocolMetadata": {"version": "1.0"}, "ttlSeconds": 3600}]}))
        .await;
    let page: serde_json::Value = reqwest::get(format!("http://{dotnet}/discover/agents?capability=summ&pageSize=500"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"][0]["id"], agent["id"], "a substring match, as the .NET registry: {page}");
    assert_eq!(page["pageSize"], 100, "clamped as the .NET registry clamps");
    assert!(page["items"][0]["endpoints"][0]["protocolMetadata"].is_string(), "C# reads a string: {page}");
    let main = server.get("/discover/agents?capability=summ").await;
    assert_eq!(main.ok(200)["items"].as_array().unwrap().len(), 0, "the main routes keep exact matches");
}

#[tokio::test]
async fn every_request_is_one_access_log_line_with_its_request_id_route_status_and_actor() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("a.db").display());
    let server = Replica::start(&["--database-url", &db, "--log", "warn,agent_registry::access=info"]).await;
    let agent = server
        .register(json!({"name": "Logged", "capabilities": [{"name": "log"}],
            "endpoints": [{"name": "e", "address": "https://l.example", "ttlSeconds": 60}]}))
        .await;
    let id = agent["id"].as_str().unwrap();
    let mine = server
        .send(reqwest::Method::GET, &format!("/agents/{id}?x=secret-value"), None, &[("x-request-id", "trace-me-42")])
        .await;
    assert_eq!(mine.header("x-request-id"), Some("trace-me-42"), "a client's id is echoed");
    let generated =
        server.send(reqwest::Method::GET, "/discover/agents", None, &[("x-request-id", "bad id with spaces")]).await;
    let generated = generated.header("x-request-id").expect("an id is made").to_owned();
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");
    let log = server.log();
    let line = log.lines().find(|l| l.contains("trace-me-42")).unwrap_or_else(|| panic!("no access line:\n{log}"));
    for part in ["method=GET", "route=/agents/{id}", "status=200", "client=127.0.0.1", "actor=anonymous"] {
        assert!(line.contains(part), "{part} missing from {line}");
    }
    let write =
        log.lines().find(|l| l.contains("method=POST") && l.contains("route=/agents ")).expect("the registration");
    assert!(write.contains("status=201") && write.contains("actor=key:"), "the actor of a write is named: {write}");
    assert!(!line.contains("secret-value"), "queries are not logged: {line}");
    assert!(!line.contains('\u{1b}'), "no colours in a file: {line}");
    let discovery = log.lines().find(|l| l.contains(&generated)).expect("the generated id is logged");
    assert!(discovery.contains("route=/discover/agents") && discovery.contains("status=200"), "{discovery}");
}

#[tokio::test]
async fn api_key_secrets_appear_nowhere_but_in_the_answer_that_issued_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("secrets.db").display());
    let server = Replica::start(&["--database-url", &db, "--log", "debug"]).await;
    let secret = server.issue_key("frank", "Agent").await;
    let frank = server.with_key(Some(&secret));
    let created =
        frank.register(json!({"name": "Frank's", "endpoints": [{"name": "e", "address": "https://f.example"}]})).await;
    let id = server.get("/api-keys?owner=frank").await.body["items"][0]["id"].as_str().unwrap().to_owned();
    server.delete(&format!("/api-keys/{id}")).await.ok(204);
    frank.delete(&format!("/agents/{}", created["id"].as_str().unwrap())).await.problem(401, "unauthenticated");
    let log = server.log();
    assert!(server.terminate().success());
    assert!(log.contains("revoked API key"), "the use of a revoked key is logged:\n{log}");
    for (what, text) in [("the log", log.into_bytes()), ("the database", database_bytes(dir.path()))] {
        for needle in [secret.as_str(), crate::support::BOOTSTRAP_TOKEN] {
            assert!(!contains(&text, needle.as_bytes()), "{what} holds a secret");
        }
    }
}

/// Every byte of the SQLite files (database and write-ahead log) in `dir`.
fn database_bytes(dir: &std::path::Path) -> Vec<u8> {
    std::fs::read_dir(dir).unwrap().flat_map(|f| std::fs::read(f.unwrap().path()).unwrap_or_default()).collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn refused_watchers_are_logged_once_a_minute_not_once_each() {
    let server = Replica::start(&["--max-watchers", "1"]).await;
    let _holding = crate::support::Watcher::open(&server.base, "", None).await;
    for _ in 0..5 {
        server.get("/watch").await.problem(503, "too_many_watchers");
    }
    let log = server.log();
    let refusals = log.lines().filter(|l| l.contains("refused a watch stream")).count();
    assert_eq!(refusals, 1, "one line for five refusals:\n{log}");
    assert!(!log.contains("response failed"), "and none per response:\n{log}");
}
