//! The real binary: starts with no setup, keeps data across a graceful restart.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn start(db: &str, port: u16) -> Running {
    let running = Running(
        Command::new(env!("CARGO_BIN_EXE_agent-registry"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--database-url", db, "--log", "warn"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("binary starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await.is_ok_and(|r| r.status() == 200) {
            return running;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the registry did not answer /healthz within 20 s");
}

fn terminate(mut running: Running) -> std::process::ExitStatus {
    let pid = running.0.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = running.0.try_wait().expect("wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "no exit within 15 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn the_binary_serves_stops_on_sigterm_and_keeps_registrations_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("nested-registry.db").display());
    let port = free_port();
    let server = start(&db, port).await;
    let client = reqwest::Client::new();
    let created: serde_json::Value = client
        .post(format!("http://127.0.0.1:{port}/agents"))
        .json(&json!({"name": "Durable", "capabilities": [{"name": "keep"}],
                      "endpoints": [{"name": "e", "address": "https://d.example", "ttlSeconds": 3600}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(terminate(server).success(), "graceful exit status");

    let port = free_port();
    let _server = start(&db, port).await;
    let found: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/discover/agents?capability=keep"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["items"][0]["id"], created["id"]);
    assert_eq!(found["items"][0]["endpoints"][0]["isLive"], true);
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
