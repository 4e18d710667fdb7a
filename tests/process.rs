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
