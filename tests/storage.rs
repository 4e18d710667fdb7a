//! The embedded database under faults of its own: a full database, a file that cannot be
//! written, a directory that does not exist. Each is met the way an operator meets it, with the
//! real binary.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::sqlite::SqliteConnectOptions;

use crate::cluster::{Replica, eventually};
use crate::support::{TestApp, agent, ephemeral, persistent};

/// A registration of about 6 KB: a database of 1 MiB holds well under two hundred.
fn bulky(n: usize) -> Value {
    let mut body = agent(&format!("Bulky {n}"), "fill-skill", persistent(30));
    body["metadata"] = json!({"notes": format!("agent {n} ").repeat(700)});
    body
}

/// The agent ids another connection to the file sees committed.
async fn committed_ids(path: &std::path::Path) -> BTreeSet<String> {
    let options = SqliteConnectOptions::new().filename(path).read_only(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM agents").fetch_all(&pool).await.unwrap();
    pool.close().await;
    ids.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_database_refuses_writes_with_507_loses_nothing_acknowledged_and_recovers_with_room() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    let url = format!("sqlite://{}", path.display());
    let replica = Replica::start(&["--database-url", &url, "--sqlite-max-size-mib", "1"]).await;

    // Fill the database: every answer is a 201 or a 507, never anything else.
    let mut acknowledged = BTreeSet::new();
    let mut refused = 0;
    for n in 0..2_000 {
        let reply = replica.post("/agents", bulky(n)).await;
        match reply.status.as_u16() {
            201 => {
                acknowledged.insert(reply.body["id"].as_str().unwrap().to_owned());
            }
            507 => {
                reply.problem(507, "insufficient_storage");
                assert!(reply.header("retry-after").is_some(), "a 507 says when to retry");
                refused += 1;
                if refused == 20 {
                    break;
                }
            }
            _ => panic!("a registration into a filling database answered {}: {}", reply.status, reply.body),
        }
    }
    assert_eq!(refused, 20, "the database never filled: {} registrations fit", acknowledged.len());
    // Each 5xx is logged as such, with what was asked and the problem's code.
    let log = replica.log();
    let line =
        log.lines().find(|l| l.contains("server error response")).unwrap_or_else(|| panic!("no 5xx line: {log}"));
    for part in ["WARN", "method=POST", "path=/agents", "status=507", "code=insufficient_storage"] {
        assert!(line.contains(part), "{part} missing from: {line}");
    }
    assert!(acknowledged.len() > 50, "the database filled too early: {}", acknowledged.len());

    // Readiness says so.
    let ready = replica.get("/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert_eq!(ready.body["checks"]["storage"]["status"], "down", "{}", ready.body);
    assert_eq!(ready.body["checks"]["storage"]["code"], "insufficient_storage", "{}", ready.body);
    // Reads still work, and every acknowledged agent is committed: another connection sees it.
    let first = acknowledged.iter().next().unwrap();
    assert_eq!(replica.get(&format!("/agents/{first}")).await.ok(200)["id"], first.as_str());
    assert_eq!(committed_ids(&path).await, acknowledged, "what was answered 201 is what is committed");

    // Room comes back (here: a larger limit at the next start); nothing acknowledged is gone,
    // and writes and readiness resume.
    drop(replica);
    let replica = Replica::start(&["--database-url", &url, "--sqlite-max-size-mib", "64"]).await;
    replica.get("/readyz").await.ok(200);
    for id in &acknowledged {
        replica.get(&format!("/agents/{id}")).await.ok(200);
    }
    replica.post("/agents", bulky(9_999)).await.ok(201);
    assert_eq!(committed_ids(&path).await.len(), acknowledged.len() + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_that_fills_while_serving_becomes_ready_again_once_a_write_fits() {
    // The limit counts the whole file, so removing agents makes room in it.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("registry.db").display());
    let replica = Replica::start(&["--database-url", &url, "--sqlite-max-size-mib", "1"]).await;
    let mut acknowledged = Vec::new();
    for n in 0..2_000 {
        let reply = replica.post("/agents", bulky(n)).await;
        if reply.status == 507 {
            break;
        }
        acknowledged.push(reply.ok(201)["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(replica.get("/readyz").await.status, 503);
    // Deregistering frees the agents' pages (its own small record fits where a bulky one did not).
    let mut removed = 0;
    for id in acknowledged.iter().rev().take(40) {
        if replica.delete(&format!("/agents/{id}")).await.status == 204 {
            removed += 1;
        }
    }
    assert!(removed > 0, "no deregistration fit into the full database");
    eventually(Duration::from_secs(10), "ready again", || async { replica.get("/readyz").await.status == 200 }).await;
    replica.post("/agents", bulky(9_999)).await.ok(201);
}

/// A small tmpfs of the test's own, unmounted when dropped: a disk that really fills.
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(mounted.success(), "this test mounts a tmpfs: run the suite as root, as .ci/run does");
        Self(dir)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_disk_that_fills_nothing_acknowledged_is_lost_and_writes_resume_when_space_returns() {
    let disk = SmallDisk::mount("4m");
    // Room an operator can give back later.
    let ballast = disk.0.path().join("ballast");
    std::fs::write(&ballast, vec![0u8; 1 << 20]).unwrap();
    let path = disk.0.path().join("registry.db");
    let replica = Replica::start(&["--database-url", &format!("sqlite://{}", path.display())]).await;
    let mut acknowledged = BTreeSet::new();
    let mut refused = 0;
    for n in 0..2_000 {
        let reply = replica.post("/agents", bulky(n)).await;
        match reply.status.as_u16() {
            201 => {
                acknowledged.insert(reply.body["id"].as_str().unwrap().to_owned());
            }
            507 => {
                reply.problem(507, "insufficient_storage");
                refused += 1;
                if refused == 20 {
                    break;
                }
            }
            _ => panic!("a registration onto a filling disk answered {}: {}", reply.status, reply.body),
        }
    }
    assert_eq!(refused, 20, "the disk never filled");
    assert_eq!(replica.get("/readyz").await.body["checks"]["storage"]["code"], "insufficient_storage");
    assert_eq!(committed_ids(&path).await, acknowledged, "what was answered 201 is what is committed");

    std::fs::remove_file(&ballast).unwrap();
    eventually(Duration::from_secs(10), "ready once space returns", || async {
        replica.get("/readyz").await.status == 200
    })
    .await;
    let after = replica.post("/agents", bulky(9_999)).await;
    acknowledged.insert(after.ok(201)["id"].as_str().unwrap().to_owned());
    assert_eq!(committed_ids(&path).await, acknowledged);
    drop(replica);
    let replica = Replica::start(&["--database-url", &format!("sqlite://{}", path.display())]).await;
    for id in &acknowledged {
        replica.get(&format!("/agents/{id}")).await.ok(200);
    }
}

/// Starts the binary on `url` and returns its exit status and log once it exits.
fn start_and_exit(url: &str) -> (std::process::ExitStatus, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_agent-registry"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", url, "--log", "warn"])
        .output()
        .unwrap();
    (output.status, format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)))
}

#[test]
fn an_unparsable_redis_url_stops_the_binary_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_agent-registry"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log", "warn", "--redis-url", "redis//no-colon"])
        .arg("--database-url")
        .arg(format!("sqlite://{}", dir.path().join("registry.db").display()))
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr).into_owned() + &String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{log}");
    assert!(log.contains("--redis-url") && !log.contains("not ready yet"), "{log}");
}

#[test]
fn a_missing_directory_stops_the_binary_with_the_path_instead_of_retrying() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("registry.db");
    let (status, log) = start_and_exit(&format!("sqlite://{}", path.display()));
    assert!(!status.success(), "{log}");
    assert!(log.contains("misconfigured") && log.contains(&path.display().to_string()), "{log}");
    assert!(!log.contains("not ready yet"), "it never retried: {log}");
}

#[test]
fn a_read_only_database_file_stops_the_binary_instead_of_reporting_ready() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    let url = format!("sqlite://{}", path.display());
    let migrated = Command::new(env!("CARGO_BIN_EXE_agent-registry"))
        .args(["migrate", "--database-url", &url, "--log", "warn"])
        .status()
        .unwrap();
    assert!(migrated.success());
    // Opened read-only whatever the process's privileges: the mode of a read-only mount.
    let (status, log) = start_and_exit(&format!("{url}?mode=ro"));
    assert!(!status.success(), "{log}");
    assert!(log.contains("misconfigured") && log.contains("cannot be opened or written"), "{log}");
}

#[tokio::test]
async fn status_tells_an_admin_the_counts_sizes_and_retention_and_pruned_space_is_given_back() {
    let app = TestApp::spawn().await;
    app.with_key(None).get("/status").await.problem(401, "unauthenticated");
    let agent_key = app.issue_key("kim", "Agent").await;
    app.with_key(Some(&agent_key)).get("/status").await.problem(403, "forbidden");

    let mut ids = Vec::new();
    for n in 0..300 {
        let mut body = agent(&format!("Churn {n}"), "churn", ephemeral(60));
        body["metadata"] = json!({"notes": "x".repeat(6_000)});
        ids.push(app.register(body).await["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        app.delete(&format!("/agents/{id}")).await.ok(204);
    }
    let before = app.get("/status").await.ok(200).clone();
    assert_eq!(before["agents"], 0);
    assert_eq!(before["storage"]["agents"], 0);
    assert!(before["storage"]["changes"].as_u64().unwrap() >= 600, "{before}");
    assert_eq!(before["retention"], json!({"changeHours": 168, "auditDays": 90, "idempotencyHours": 24}));
    let bytes = |status: &Value| status["storage"]["bytes"].as_u64().unwrap();
    assert!(bytes(&before) > 3_000_000, "300 documents of 6 KB, twice in the change log: {before}");

    // Past the change log's retention, upkeep prunes it and gives the space back.
    app.clock.advance_secs(8 * 24 * 3600);
    for _ in 0..4 {
        app.maintain().await;
    }
    let after = app.get("/status").await.ok(200).clone();
    assert!(after["storage"]["changes"].as_u64().unwrap() <= 1, "{after}");
    assert!(bytes(&after) < bytes(&before) / 2, "before {before}\nafter {after}");
}
