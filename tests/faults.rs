//! A replica cut off from Redis or PostgreSQL (through a proxy), and started while they are
//! away: it answers what it can, refuses what it cannot with 503, and recovers by itself.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::cluster::{Proxy, Replica, eventually, shared_backends};
use crate::support::{agent, ephemeral, persistent, postgres_schema, redis_prefix, redis_url};

fn heartbeat_path(agent: &Value) -> String {
    format!(
        "/agents/{}/endpoints/{}/heartbeat",
        agent["id"].as_str().unwrap(),
        agent["endpoints"][0]["id"].as_str().unwrap()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn without_redis_reads_work_discovery_and_heartbeats_answer_503_and_all_resumes() {
    let (url, schema) = postgres_schema().await;
    let redis = Proxy::to(&redis_url()).await;
    let args = shared_backends(&url, &redis.url(&redis_url()), &redis_prefix());
    let replica = Replica::start(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let beating = replica.register(agent("Beating", "fault-skill", persistent(30))).await;
    let path = format!("/agents/{}", beating["id"].as_str().unwrap());

    redis.cut();
    eventually(Duration::from_secs(5), "discovery refuses", || async {
        replica.get("/discover/agents?capability=fault-skill").await.status == 503
    })
    .await;
    replica.get("/discover/agents?capability=fault-skill").await.problem(503, "liveness_unavailable");
    replica.post_empty(&heartbeat_path(&beating)).await.problem(503, "liveness_unavailable");
    assert_eq!(replica.get(&path).await.ok(200)["name"], "Beating", "reads of agents keep working");
    let ready = replica.get("/readyz").await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.body["checks"]["liveness"]["status"], "down");
    assert_eq!(ready.body["checks"]["storage"]["status"], "up");

    redis.restore();
    eventually(Duration::from_secs(10), "discovery resumes", || async {
        replica.get("/discover/agents?capability=fault-skill").await.status == 200
    })
    .await;
    assert_eq!(replica.discovered("/discover/agents?capability=fault-skill").await, ["Beating"]);
    replica.post_empty(&heartbeat_path(&beating)).await.ok(200);
    replica.get("/readyz").await.ok(200);
    drop(replica);
    schema.drop_now().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_postgres_writes_answer_503_discovery_says_how_stale_and_all_resumes() {
    let (url, schema) = postgres_schema().await;
    let postgres = Proxy::to(&url).await;
    let args = shared_backends(&postgres.url(&url), &redis_url(), &redis_prefix());
    let replica = Replica::start(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let kept = replica.register(agent("Kept", "pg-fault", persistent(30))).await;

    postgres.cut();
    let refused = replica.post("/agents", agent("Refused", "pg-fault", ephemeral(60))).await;
    refused.problem(503, "storage_unavailable");
    // Heartbeats need only Redis.
    replica.post_empty(&heartbeat_path(&kept)).await.ok(200);
    // Discovery keeps answering from the last known index, and says how old it is.
    eventually(Duration::from_secs(10), "a staleness header", || async {
        replica.get("/discover/agents?capability=pg-fault").await.header("x-registry-stale-seconds").is_some()
    })
    .await;
    assert_eq!(replica.discovered("/discover/agents?capability=pg-fault").await, ["Kept"]);
    assert_eq!(replica.get("/readyz").await.body["checks"]["storage"]["status"], "down");

    postgres.restore();
    eventually(Duration::from_secs(10), "writes work again", || async {
        replica.post("/agents", agent("After", "pg-fault", ephemeral(60))).await.status == 201
    })
    .await;
    let found = replica.get("/discover/agents?capability=pg-fault").await;
    assert!(found.header("x-registry-stale-seconds").is_none());
    let names: Vec<&str> =
        found.body["items"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["After", "Kept"], "the refused registration left nothing behind");
    drop(replica);
    schema.drop_now().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_postgres_frozen_every_write_is_answered_503_within_its_bound_and_all_resumes() {
    let (url, schema) = postgres_schema().await;
    let postgres = Proxy::to(&url).await;
    let mut args = shared_backends(&postgres.url(&url), &redis_url(), &redis_prefix());
    args.extend(["--store-timeout-ms".into(), "300".into()]);
    let replica = Replica::start(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let kept = replica.register(agent("Kept", "pg-frozen", persistent(30))).await;
    let path = format!("/agents/{}", kept["id"].as_str().unwrap());

    postgres.freeze();
    // Writes at once, some queued behind others: each gets an answer, none hangs. (The limit is
    // not a speed promise: without bounds they would wait for ever, and the test must end.)
    let writes = (0..6).map(|n| replica.post("/agents", agent(&format!("Frozen {n}"), "pg-frozen", ephemeral(60))));
    let answers = tokio::time::timeout(Duration::from_secs(60), futures_util::future::join_all(writes))
        .await
        .expect("writes to a frozen database hung");
    for answer in &answers {
        answer.problem(503, "storage_unavailable");
        assert!(answer.header("retry-after").is_some(), "a 503 says when to retry");
    }
    assert_eq!(replica.get(&path).await.ok(200)["name"], "Kept", "reads are served from the index");
    let ready = tokio::time::timeout(Duration::from_secs(60), replica.get("/readyz")).await.expect("readiness hung");
    assert_eq!(ready.body["checks"]["storage"]["status"], "down", "{}", ready.body);

    postgres.thaw();
    eventually(Duration::from_secs(20), "writes work again", || async {
        replica.post("/agents", agent("After", "pg-frozen", ephemeral(60))).await.status == 201
    })
    .await;
    let names = replica.discovered("/discover/agents?capability=pg-frozen").await;
    assert!(names.contains(&"After".to_owned()) && names.contains(&"Kept".to_owned()), "{names:?}");
    drop(replica);
    schema.drop_now().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoints_that_kept_heartbeating_through_a_redis_outage_do_not_expire_for_it() {
    let (url, schema) = postgres_schema().await;
    let redis = Proxy::to(&redis_url()).await;
    let mut args = shared_backends(&url, &redis.url(&redis_url()), &redis_prefix());
    args.extend(["--maintenance-interval-ms".into(), "50".into()]);
    let replica = Replica::start(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    // Live for 2.5 s after each heartbeat, which it sends every 300 ms, outage or not.
    let beating = replica.register(agent("Beating", "outage-grace", persistent(1))).await;
    let beat = heartbeat_path(&beating);
    let sender = crate::support::Http::clone(&replica);
    let heartbeats = tokio::spawn(async move {
        loop {
            let _ = sender.post_empty(&beat).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(600)).await;
    redis.cut();
    // Longer than the lease: every heartbeat meanwhile is refused.
    tokio::time::sleep(Duration::from_secs(4)).await;
    redis.restore();
    eventually(Duration::from_secs(10), "discovery answers again", || async {
        replica.get("/discover/agents?capability=outage-grace").await.status == 200
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(replica.discovered("/discover/agents?capability=outage-grace").await, ["Beating"]);
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    let kinds: Vec<String> = sqlx::query_scalar("SELECT kind FROM changes WHERE agent_id = $1::uuid ORDER BY revision")
        .bind(beating["id"].as_str().unwrap())
        .fetch_all(&admin)
        .await
        .unwrap();
    assert_eq!(kinds, ["registered"], "no expiry (nor revival) for the outage");

    // Once it stops, it expires as usual.
    heartbeats.abort();
    eventually(Duration::from_secs(10), "the lease ends", || async {
        replica.discovered("/discover/agents?capability=outage-grace").await.is_empty()
    })
    .await;
    eventually(Duration::from_secs(10), "the expiry is logged", || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM changes WHERE agent_id = $1::uuid AND kind = 'expired'")
            .bind(beating["id"].as_str().unwrap())
            .fetch_one(&admin)
            .await
            .unwrap();
        n == 1
    })
    .await;
    drop(replica);
    schema.drop_now().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_cut_off_from_postgres_says_it_cannot_tell_instead_of_answering_404() {
    let (url, schema) = postgres_schema().await;
    let postgres = Proxy::to(&url).await;
    let lagging = shared_backends(&postgres.url(&url), &redis_url(), &redis_prefix());
    let lagging = Replica::start(&lagging.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let direct = shared_backends(&url, &redis_url(), &redis_prefix());
    let direct = Replica::start(&direct.iter().map(String::as_str).collect::<Vec<_>>()).await;

    postgres.cut();
    let newer = direct.register(agent("Newer", "lag", persistent(30))).await;
    let path = format!("/agents/{}", newer["id"].as_str().unwrap());
    // It exists; the cut-off replica cannot know: a 503, never a 404.
    lagging.get(&path).await.problem(503, "storage_unavailable");
    lagging.post_empty(&heartbeat_path(&newer)).await.problem(503, "storage_unavailable");
    // An agent it knows is served as before.
    let known = direct.register(agent("Known", "lag", persistent(30))).await;
    postgres.restore();
    eventually(Duration::from_secs(10), "the replica catches up", || async { lagging.get(&path).await.status == 200 })
        .await;
    lagging.post_empty(&heartbeat_path(&known)).await.ok(200);
    // And a real 404 stays one.
    lagging.get(&format!("/agents/{}", uuid::Uuid::new_v4())).await.problem(404, "agent_not_found");
    drop((lagging, direct));
    schema.drop_now().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_started_while_the_backends_are_down_waits_reports_not_ready_and_then_serves() {
    let (url, schema) = postgres_schema().await;
    let (postgres, redis) = (Proxy::to(&url).await, Proxy::to(&redis_url()).await);
    postgres.cut();
    redis.cut();
    let args = shared_backends(&postgres.url(&url), &redis.url(&redis_url()), &redis_prefix());
    let mut replica = Replica::launch(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let ready = replica.get("/readyz").await;
    assert_eq!(ready.status, 503, "not ready while the backends are away: {}", ready.body);
    assert_eq!(ready.body["status"], "starting");
    replica.get("/agents").await.problem(503, "not_ready");
    replica.get("/healthz").await.ok(200);

    postgres.restore();
    redis.restore();
    replica.wait_ready().await;
    replica.bootstrap().await;
    replica.register(agent("Late", "late-start", ephemeral(60))).await;
    assert_eq!(replica.discovered("/discover/agents?capability=late-start").await, ["Late"]);
    drop(replica);
    schema.drop_now().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schema_whose_applied_migration_was_changed_stops_the_binary_with_the_reason_instead_of_retrying() {
    let (url, schema) = postgres_schema().await;
    let binary = env!("CARGO_BIN_EXE_agent-registry");
    let migrated = Command::new(binary).args(["migrate", "--database-url", &url, "--log", "warn"]).status().unwrap();
    assert!(migrated.success(), "the schema is migrated first");
    // The URL's search_path selects this test's own schema: no other schema is touched.
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query("UPDATE _sqlx_migrations SET checksum = '\\x00'::bytea WHERE version = (SELECT min(version) FROM _sqlx_migrations)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    // With and without --auto-migrate: migrating, or only checking the schema, finds it.
    for migrate in [&["--auto-migrate"][..], &[]] {
        refuses_to_start(binary, &url, migrate).await;
    }
    schema.drop_now().await;
}

async fn refuses_to_start(binary: &str, url: &str, extra: &[&str]) {
    let log = tempfile::NamedTempFile::new().unwrap();
    let append = || std::fs::OpenOptions::new().append(true).open(log.path()).unwrap();
    let mut child = Command::new(binary)
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", url, "--log", "warn"])
        .args(extra)
        .stdout(append())
        .stderr(append())
        .spawn()
        .unwrap();
    // Not a speed promise: a binary that retries would never exit, and the test must end.
    let mut waited = Duration::ZERO;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if waited > Duration::from_secs(120) {
            let _ = child.kill();
            panic!(
                "the binary kept retrying a misconfigured schema:\n{}",
                std::fs::read_to_string(log.path()).unwrap()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += Duration::from_millis(100);
    };
    let output = std::fs::read_to_string(log.path()).unwrap();
    assert!(!status.success(), "a misconfiguration is a failed start:\n{output}");
    assert!(output.contains("misconfigured"), "the message names the class:\n{output}");
    assert!(output.contains("previously applied but has been modified"), "and the cause:\n{output}");
    assert!(!output.contains("not ready yet"), "it never retried:\n{output}");
}
