//! Liveness in Redis: shared, durable across registry restarts, one round trip per heartbeat.

use agent_registry_core::model::EndpointId;
use agent_registry_core::ports::LivenessStore;
use agent_registry_liveness_redis::RedisLiveness;

use crate::support::{TestApp, agent, persistent, redis_prefix, redis_url};

#[tokio::test]
async fn redis_liveness_keeps_the_latest_time_and_forgets_on_request() {
    let store =
        RedisLiveness::connect(&redis_url(), &redis_prefix()).await.expect("Redis is reachable; .ci/run starts it");
    store.ping().await.unwrap();
    let (a, b) = (EndpointId::new_random(), EndpointId::new_random());
    store.touch(a, 2_000, 10).await.unwrap();
    store.touch(a, 1_000, 10).await.unwrap();
    store.touch(b, 1_795_000_000_123, 10).await.unwrap();
    assert_eq!(
        store.last_seen(&[a, b, EndpointId::new_random()]).await.unwrap(),
        [Some(2_000), Some(1_795_000_000_123), None]
    );
    store.forget(&[a]).await.unwrap();
    assert_eq!(store.last_seen(&[a, b]).await.unwrap(), [None, Some(1_795_000_000_123)]);
    store.forget(&[b]).await.unwrap();
}

#[tokio::test]
async fn with_redis_a_heartbeat_survives_a_restart_without_touching_the_database() {
    let prefix = redis_prefix();
    let app = TestApp::spawn_with_args(&["--redis-url", &redis_url(), "--redis-key-prefix", &prefix]).await;
    let created = app.register(agent("Redis Beat", "redis-skill", persistent(10))).await;
    let (id, eid) = (created["id"].as_str().unwrap(), created["endpoints"][0]["id"].as_str().unwrap());
    app.clock.advance_secs(20);
    app.post_empty(&format!("/agents/{id}/endpoints/{eid}/heartbeat")).await.ok(200);
    let app = app.restart().await;
    app.clock.advance_secs(10);
    // Live 30 s after registration only because the heartbeat is in Redis.
    assert_eq!(app.discovered("/discover/agents?capability=redis-skill").await, ["Redis Beat"]);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.ok(200)["checks"]["liveness"]["status"], "up");
}
