//! Backing up, upgrading and stopping the real binary as an operator does: copy the database file
//! of a stopped registry, `backup --to` a running one, `migrate` and its report, a schema newer
//! than the binary, and a rolling update's SIGTERM (not ready first, watch streams told to go).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::cluster::{Replica, eventually};
use crate::support::{Watcher, postgres_schema};

const BINARY: &str = env!("CARGO_BIN_EXE_agent-registry");

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// Runs the binary to its end, failing (and killing it) if it has not ended within a minute: a
/// command that retries forever is a failure, not a hang.
fn run(args: &[&str]) -> (Output, String) {
    let mut child =
        Command::new(BINARY).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("binary starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!("`{}` did not end; it printed:\n{}", args.join(" "), text(&output));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("output");
    let printed = text(&output);
    (output, printed)
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// The newest migration the binary ships for `database` (`sqlite` or `postgres`): its version
/// and its description as sqlx reads it from the file name.
fn newest_migration(database: &str) -> (i64, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations").join(database);
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|f| f.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    let newest = names.last().expect("migrations").trim_end_matches(".sql").to_owned();
    let (version, description) = newest.split_once('_').unwrap();
    (version.parse().unwrap(), description.replace('_', " "))
}

fn registration(name: &str) -> serde_json::Value {
    json!({"name": name, "capabilities": [{"name": "keep"}],
           "endpoints": [{"name": "e", "address": format!("https://{}.example", name.to_lowercase()), "ttlSeconds": 3600}]})
}

/// Whether the write-ahead log beside `db` holds nothing (absent or empty).
fn write_ahead_log_is_empty(db: &Path) -> bool {
    let wal = db.with_file_name(format!("{}-wal", db.file_name().unwrap().to_string_lossy()));
    std::fs::metadata(wal).map_or(true, |m| m.len() == 0)
}

#[tokio::test]
async fn after_a_graceful_stop_the_database_file_alone_is_a_full_copy() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("registry.db");
    let elsewhere = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    // Several stops: whether a log was left behind depended on how the process's last moments
    // were scheduled (most stops, not all).
    for round in 0..5 {
        let server = Replica::start(&["--database-url", &sqlite_url(&db)]).await;
        for n in 0..5 {
            let agent = server.register(registration(&format!("Kept{round}x{n}"))).await;
            ids.push(agent["id"].as_str().unwrap().to_owned());
        }
        assert!(server.terminate().success(), "graceful exit status");
        assert!(write_ahead_log_is_empty(&db), "round {round}: the write-ahead log is folded into the database file");

        // "Stop and copy the file": only registry.db, none of its companions.
        let copy = elsewhere.path().join(format!("copy{round}.db"));
        std::fs::copy(&db, &copy).unwrap();
        let pool =
            sqlx::SqlitePool::connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(&copy)).await.unwrap();
        let stored: Vec<String> = sqlx::query_scalar("SELECT id FROM agents").fetch_all(&pool).await.unwrap();
        pool.close().await;
        let mut expected = ids.clone();
        expected.sort();
        let mut stored = stored;
        stored.sort();
        assert_eq!(stored, expected, "round {round}: the copy holds every agent");
    }
    // And a registry started on the last copy serves them.
    let restored = Replica::start(&["--database-url", &sqlite_url(&elsewhere.path().join("copy4.db"))]).await;
    for id in &ids {
        restored.get(&format!("/agents/{id}")).await.ok(200);
    }
}

#[tokio::test]
async fn backup_copies_a_running_registry_and_a_registry_started_on_the_copy_serves_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Replica::start(&["--database-url", &sqlite_url(&dir.path().join("registry.db"))]).await;
    let before = server.register(registration("Before")).await;
    let backups = tempfile::tempdir().unwrap();
    let file = backups.path().join("registry-backup.db");
    let to = file.to_str().unwrap();
    let key = server.key().unwrap().to_owned();

    let (output, printed) = run(&["backup", "--url", &server.base, "--key", &key, "--to", to]);
    assert!(output.status.success(), "{printed}");
    assert!(printed.contains("wrote") && printed.contains(to), "{printed}");
    // Writes go on after the copy; the copy is of its moment.
    let after = server.register(registration("After")).await;

    // A backup never overwrites a file unless told to, and needs an Admin key.
    let (refused, printed) = run(&["backup", "--url", &server.base, "--key", &key, "--to", to]);
    assert_eq!(refused.status.code(), Some(2), "{printed}");
    assert!(printed.contains("--force"), "{printed}");
    let agent_key = server.issue_key("kim", "Agent").await;
    let other = backups.path().join("other.db");
    let (forbidden, printed) =
        run(&["backup", "--url", &server.base, "--key", &agent_key, "--to", other.to_str().unwrap()]);
    assert_eq!(forbidden.status.code(), Some(4), "{printed}");
    assert!(printed.contains("forbidden"), "{printed}");
    assert!(!other.exists() && std::fs::read_dir(backups.path()).unwrap().count() == 1, "nothing partial is left");
    drop(server);

    // Restore: a registry started on the copy.
    let restored = Replica::start(&["--database-url", &sqlite_url(&file)]).await;
    restored.get(&format!("/agents/{}", before["id"].as_str().unwrap())).await.ok(200);
    restored.get(&format!("/agents/{}", after["id"].as_str().unwrap())).await.problem(404, "agent_not_found");
}

#[tokio::test]
async fn a_registry_on_postgres_answers_a_backup_request_with_pg_dump_guidance() {
    let (url, schema) = postgres_schema().await;
    let app = crate::support::TestApp::spawn_postgres(&url).await;
    let reply = app.get("/backup").await;
    let body = reply.problem(501, "backup_not_supported");
    assert!(body["detail"].as_str().unwrap().contains("pg_dump"), "{body}");
    drop(app);
    schema.drop_now().await;
}

#[test]
fn migrate_says_what_it_applied_then_that_the_schema_is_up_to_date_and_leaves_it_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let url = sqlite_url(&db);
    let (newest, description) = newest_migration("sqlite");

    let (output, first) = run(&["migrate", "--database-url", &url]);
    assert!(output.status.success(), "{first}");
    assert!(first.contains("applied migration version=1 description=registry"), "{first}");
    assert!(first.contains(&format!("applied migration version={newest} description={description}")), "{first}");
    assert!(!first.contains("already up to date"), "{first}");
    assert!(write_ahead_log_is_empty(&db), "the schema is in the database file");

    let (output, second) = run(&["migrate", "--database-url", &url]);
    assert!(output.status.success(), "{second}");
    assert!(!second.contains("applied migration"), "nothing is applied twice: {second}");
    assert!(second.contains("already up to date") && second.contains(&format!("version={newest}")), "{second}");
}

#[test]
fn migrate_help_lists_only_the_flags_migrate_uses() {
    let (output, help) = run(&["migrate", "--help"]);
    assert!(output.status.success(), "{help}");
    for own in ["--database-url", "--store-timeout-ms", "--log", "--log-format"] {
        assert!(help.contains(own), "{own} missing:\n{help}");
    }
    for foreign in ["--listen", "--bootstrap-token", "--redis-url", "--shutdown-grace-seconds", "--amqp-url"] {
        assert!(!help.contains(foreign), "{foreign} is not a flag of migrate:\n{help}");
    }
    let (refused, printed) = run(&["migrate", "--listen", "127.0.0.1:0"]);
    assert!(!refused.status.success(), "a service flag is refused: {printed}");
}

/// Asserts the binary refuses the database at `url`, naming its version and the binary's.
fn refuses_newer_schema(args: &[&str], database: &str) {
    let (newest, description) = newest_migration(database);
    let (output, printed) = run(args);
    assert!(!output.status.success(), "`{}` went on with a newer schema:\n{printed}", args.join(" "));
    assert!(printed.contains("migration 9999 (from the future)"), "{printed}");
    assert!(printed.contains(&format!("its newest is {newest} ({description})")), "{printed}");
    assert!(!printed.contains("not ready yet"), "refused, not retried: {printed}");
}

#[tokio::test]
async fn a_sqlite_database_migrated_by_a_newer_binary_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("newer.db");
    let url = sqlite_url(&db);
    assert!(run(&["migrate", "--database-url", &url, "--log", "warn"]).0.status.success());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (9999, 'from the future', TRUE, x'00', 1)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    refuses_newer_schema(&["serve", "--database-url", &url, "--listen", "127.0.0.1:0", "--log", "warn"], "sqlite");
    refuses_newer_schema(&["migrate", "--database-url", &url, "--log", "warn"], "sqlite");
}

#[tokio::test]
async fn a_postgres_schema_migrated_by_a_newer_binary_is_refused_naming_both_versions() {
    let (url, schema) = postgres_schema().await;
    assert!(run(&["migrate", "--database-url", &url, "--log", "warn"]).0.status.success());
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (9999, 'from the future', TRUE, '\\x00', 1)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let serve = ["serve", "--database-url", &url, "--listen", "127.0.0.1:0", "--log", "warn"];
    refuses_newer_schema(&serve, "postgres");
    refuses_newer_schema(&[&serve[..], &["--auto-migrate"]].concat(), "postgres");
    refuses_newer_schema(&["migrate", "--database-url", &url, "--log", "warn"], "postgres");
    schema.drop_now().await;
}

#[tokio::test]
async fn on_sigterm_readyz_answers_503_while_the_rest_is_served_then_watch_streams_end_with_a_shutdown_event() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(&dir.path().join("registry.db"));
    let server = Replica::start(&["--database-url", &db, "--shutdown-delay-seconds", "8"]).await;
    let agent = server.register(registration("Draining")).await;
    let mut watcher = Watcher::open(&server.base, "", None).await;
    let id = agent["id"].as_str().unwrap().to_owned();
    let http = (*server).clone();

    server.signal_term();
    eventually(Duration::from_secs(5), "readiness goes down", || async {
        http.try_get("/readyz").await.is_some_and(|s| s == 503)
    })
    .await;
    let ready = http.get("/readyz").await;
    assert_eq!(ready.body["status"], "stopping", "{}", ready.body);
    // Everything else is still served while load balancers move away.
    http.get("/healthz").await.ok(200);
    let found = http.get("/discover/agents?capability=keep").await;
    assert_eq!(found.ok(200)["items"][0]["id"], id.as_str());
    http.post("/agents", registration("Late")).await.ok(201);
    let late = watcher.next(Duration::from_secs(5)).await.expect("the stream still follows changes");
    assert_eq!(late.event, "registered");

    // Then the stream is told to go, and ends: it does not hold the process to its grace period.
    let last = watcher.next(Duration::from_secs(30)).await.expect("a final event");
    assert_eq!(last.event, "shutdown", "{last:?}");
    assert!(last.id.is_none(), "the client's Last-Event-ID stays the last change: {last:?}");
    assert!(watcher.ends(Duration::from_secs(30)).await, "the stream ends after the shutdown event");
    assert!(server.wait_exit(Duration::from_secs(30)).success(), "graceful exit status");
    assert!(http.try_get("/healthz").await.is_none(), "the listener is closed");
}

#[test]
fn sqlite_synchronous_full_is_offered_and_normal_is_the_default() {
    use agent_registry::Config;
    use agent_registry_store_sqlite::Synchronous;
    let parse = |extra: &[&str]| Config::from_args([&["agent-registry"][..], extra].concat());
    assert_eq!(parse(&[]).unwrap().sqlite_settings().synchronous, Synchronous::Normal);
    let full = parse(&["--sqlite-synchronous", "full"]).unwrap();
    assert_eq!(full.sqlite_settings().synchronous, Synchronous::Full);
    assert!(parse(&["--sqlite-synchronous", "off"]).is_err(), "only normal and full");
}
