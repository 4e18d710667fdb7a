//! Several `agent-registry` processes on one PostgreSQL schema and one Redis key prefix.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::cluster::{Replica, eventually, shared_backends};
use crate::support::{agent, ephemeral, persistent, postgres_schema, redis_prefix, redis_url};

/// `n` replicas of one registry; `extra` arguments go to each.
async fn replicas(n: usize, database: &str, prefix: &str, extra: &[&str]) -> Vec<Replica> {
    let mut args = shared_backends(database, &redis_url(), prefix);
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut started = Vec::new();
    for _ in 0..n {
        started.push(Replica::start(&args).await);
    }
    started
}

fn id(agent: &Value) -> &str {
    agent["id"].as_str().expect("id")
}

// Behaviour only: every other replica comes to see the registration. How fast (docs/deployment.md's 100 ms
// propagation bound) is measured by `benches/run.py --backend postgres --replicas N`, not here.
#[tokio::test(flavor = "multi_thread")]
async fn a_registration_through_one_replica_is_discoverable_through_every_other() {
    let (url, schema) = postgres_schema().await;
    let cluster = replicas(3, &url, &redis_prefix(), &[]).await;
    for i in 0..12 {
        let writer = i % cluster.len();
        let skill = format!("propagation-{i}");
        let created = cluster[writer].register(agent(&format!("Agent {i}"), &skill, ephemeral(60))).await;
        for (r, reader) in cluster.iter().enumerate().filter(|(r, _)| *r != writer) {
            eventually(Duration::from_secs(10), &format!("agent {i} on replica {r}"), || async {
                reader.discovered(&format!("/discover/agents?capability={skill}")).await.len() == 1
            })
            .await;
            assert_eq!(reader.get(&format!("/agents/{}", id(&created))).await.ok(200)["revision"], created["revision"]);
        }
    }
    drop(cluster);
    schema.drop_now().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writes_through_every_replica_get_strictly_increasing_revisions_and_none_is_lost() {
    let (url, schema) = postgres_schema().await;
    let cluster = replicas(3, &url, &redis_prefix(), &[]).await;
    let shared = cluster[0].register(agent("Shared", "contended", ephemeral(600))).await;
    eventually(Duration::from_secs(5), "the shared agent on replica 2", || async {
        cluster[2].get(&format!("/agents/{}", id(&shared))).await.status == 200
    })
    .await;

    // Registrations through every replica at once, and updates of one agent from all three.
    let registrations = (0..30).map(|i| {
        let replica = &cluster[i % 3];
        async move { replica.register(agent(&format!("Parallel {i}"), "parallel", ephemeral(600))).await }
    });
    let updates = (0..15).map(|i| {
        let replica = &cluster[i % 3];
        let path = format!("/agents/{}", id(&shared));
        async move {
            let body = json!({"name": "Shared", "description": format!("update {i}")});
            replica.put(&path, body).await.ok(200).clone()
        }
    });
    let (registered, updated) = tokio::join!(join_all(registrations), join_all(updates));
    let mut revisions: Vec<u64> =
        registered.iter().chain(&updated).map(|a| a["revision"].as_u64().expect("revision")).collect();
    revisions.sort_unstable();
    revisions.dedup();
    assert_eq!(revisions.len(), 45, "every write got a revision of its own");

    // Every replica ends with the same state: all 31 agents, the shared one at its last update.
    let last = updated.iter().max_by_key(|a| a["revision"].as_u64()).expect("updates");
    for replica in &cluster {
        eventually(Duration::from_secs(5), "the same state everywhere", || async {
            let listed = replica.get("/agents?pageSize=100").await;
            let shared_now = replica.get(&format!("/agents/{}", id(&shared))).await;
            listed.body["totalCount"] == 31 && shared_now.body["revision"] == last["revision"]
        })
        .await;
        assert_eq!(replica.get(&format!("/agents/{}", id(&shared))).await.body["description"], last["description"]);
    }
    drop(cluster);
    schema.drop_now().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_heartbeat_through_one_replica_keeps_the_endpoint_live_on_every_replica() {
    let (url, schema) = postgres_schema().await;
    let cluster = replicas(3, &url, &redis_prefix(), &[]).await;
    // Live for 2.5 s after each heartbeat.
    let beating = cluster[0].register(agent("Beating", "beat-everywhere", persistent(1))).await;
    let path =
        format!("/agents/{}/endpoints/{}/heartbeat", id(&beating), beating["endpoints"][0]["id"].as_str().unwrap());
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        cluster[1].post_empty(&path).await.ok(200);
    }
    // 4 s after registration: live only thanks to heartbeats received by replica 1.
    for replica in &cluster {
        assert_eq!(replica.discovered("/discover/agents?capability=beat-everywhere").await, ["Beating"]);
    }
    // Once the heartbeats stop, every replica sees the lease end (polled: when depends on the machine).
    for (r, replica) in cluster.iter().enumerate() {
        eventually(Duration::from_secs(10), &format!("the lease ends on replica {r}"), || async {
            replica.discovered("/discover/agents?capability=beat-everywhere").await.is_empty()
        })
        .await;
    }
    drop(cluster);
    schema.drop_now().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn eviction_runs_on_every_replica_at_once_and_spares_an_agent_that_renews_in_time() {
    let (url, schema) = postgres_schema().await;
    let upkeep = ["--maintenance-interval-ms", "50", "--ephemeral-grace-seconds", "0"];
    let cluster = replicas(3, &url, &redis_prefix(), &upkeep).await;
    let mut lapsing = Vec::new();
    for i in 0..30 {
        lapsing.push(cluster[i % 3].register(agent(&format!("Lapsing {i}"), "lapse", ephemeral(1))).await);
    }
    let keeper = cluster[0].register(agent("Keeper", "keep", ephemeral(1))).await;
    let renew = format!("/agents/{}/endpoints/{}/renew", id(&keeper), keeper["endpoints"][0]["id"].as_str().unwrap());
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Renewed through a replica that does not run the eviction that would remove it first.
        cluster[2].post_empty(&renew).await.ok(200);
    }
    for replica in &cluster {
        for gone in &lapsing {
            replica.get(&format!("/agents/{}", id(gone))).await.problem(404, "agent_not_found");
        }
        assert_eq!(replica.discovered("/discover/agents?capability=keep").await, ["Keeper"]);
        let log = replica.log();
        assert!(!log.contains("failed"), "no replica reports a failure:\n{log}");
    }
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    let evicted: i64 =
        sqlx::query_scalar("SELECT count(*) FROM changes WHERE kind = 'evicted'").fetch_one(&admin).await.unwrap();
    assert_eq!(evicted, 30, "each lapsed agent was evicted exactly once");
    drop(cluster);
    schema.drop_now().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_revoked_through_one_replica_fails_on_the_other() {
    let (url, schema) = postgres_schema().await;
    let cluster = replicas(2, &url, &redis_prefix(), &[]).await;
    let secret = cluster[0].issue_key("erin", "Agent").await;
    let on_b = cluster[1].with_key(Some(&secret));
    eventually(Duration::from_secs(10), "the new key works on replica 1", || async {
        on_b.post("/agents", agent("Erin's", "revocation", ephemeral(60))).await.status == 201
    })
    .await;
    let id = cluster[0].get("/api-keys?owner=erin").await.body["items"][0]["id"].as_str().unwrap().to_owned();
    cluster[0].delete(&format!("/api-keys/{id}")).await.ok(204);
    eventually(Duration::from_secs(10), "the revocation on replica 1", || async {
        on_b.post("/agents", agent("Too late", "revocation", ephemeral(60))).await.status == 401
    })
    .await;
    drop(cluster);
    schema.drop_now().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watcher_on_one_replica_sees_changes_made_through_another_in_order_and_once() {
    let (url, _schema) = postgres_schema().await;
    let cluster = replicas(2, &url, &redis_prefix(), &[]).await;
    let mut watcher = crate::support::Watcher::open(&cluster[1].base, "", None).await;
    let mut created = Vec::new();
    for i in 0..6 {
        created.push(cluster[i % 2].register(agent(&format!("Watched {i}"), "chat", persistent(30))).await);
    }
    let events = watcher.take(6).await;
    let ids: Vec<&Value> = events.iter().map(|e| &e.data["agentId"]).collect();
    let expected: Vec<&Value> = created.iter().map(|a| &a["id"]).collect();
    assert_eq!(ids, expected, "in the order they were made");
    let revisions: Vec<u64> = events.iter().map(|e| e.id.as_deref().unwrap().parse().unwrap()).collect();
    assert!(revisions.windows(2).all(|w| w[0] < w[1]), "{revisions:?}");
    assert!(watcher.next(Duration::from_millis(500)).await.is_none(), "no duplicates");
}

#[tokio::test(flavor = "multi_thread")]
async fn names_registered_at_once_through_two_replicas_still_have_one_holder_each() {
    let (url, schema) = postgres_schema().await;
    let cluster = replicas(2, &url, &redis_prefix(), &[]).await;
    let manifest = json!({"manifest": {"name": "Citation Agent", "input_content_types": ["text/plain"],
        "output_content_types": ["text/plain"]}, "endpointUrl": "https://acp.example/"});
    let replies = join_all((0..12).map(|i| cluster[i % 2].post("/acp/agents", manifest.clone()))).await;
    let mut names: Vec<String> =
        replies.iter().map(|r| r.ok(201)["labels"]["acp.name"].as_str().unwrap().to_owned()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 12, "each replica granted names the other had granted: {names:?}");
    let (_, bytes) = crate::support::fixtures("mcp-server-json").remove(0);
    let document: Value = serde_json::from_slice(&bytes).unwrap();
    let replies = join_all((0..6).map(|i| {
        let key = format!("key-{i}");
        let document = document.clone();
        let replica = &cluster[i % 2];
        async move {
            replica.send(reqwest::Method::POST, "/mcp/servers", Some(document), &[("idempotency-key", &key)]).await
        }
    }))
    .await;
    let statuses: Vec<u16> = replies.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 201 || *s == 409), "{statuses:?}");
    drop(cluster);
    schema.drop_now().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_revived_through_every_replica_at_once_is_announced_live_once() {
    let (url, schema) = postgres_schema().await;
    let cluster = replicas(3, &url, &redis_prefix(), &["--maintenance-interval-ms", "50"]).await;
    let fleeting = cluster[0].register(agent("Fleeting", "revive-once", ephemeral(1))).await;
    let endpoint = fleeting["endpoints"][0]["id"].as_str().unwrap().to_owned();
    let renew = format!("/agents/{}/endpoints/{endpoint}/renew", id(&fleeting));
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    let count = |kind: &'static str| {
        let (admin, endpoint) = (admin.clone(), endpoint.clone());
        async move {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM changes WHERE kind = $1 AND endpoint_id = $2::uuid")
                .bind(kind)
                .bind(&endpoint)
                .fetch_one(&admin)
                .await
                .unwrap();
            n
        }
    };
    for round in 1..=3 {
        // The lease ends (every replica notices; one expiry is logged).
        eventually(Duration::from_secs(10), "the lease ends", || async { count("expired").await >= round }).await;
        for replica in &cluster {
            eventually(Duration::from_secs(10), "every replica sees it dead", || async {
                replica.discovered("/discover/agents?capability=revive-once").await.is_empty()
            })
            .await;
        }
        // Renewed through all three replicas at the same moment: one transition, one event.
        for reply in join_all(cluster.iter().map(|r| r.post_empty(&renew))).await {
            reply.ok(200);
        }
        eventually(Duration::from_secs(10), "the revival is logged", || async { count("became_live").await >= round })
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(count("became_live").await, round, "round {round}: one became_live per revival");
    }
    drop(cluster);
    schema.drop_now().await;
}
