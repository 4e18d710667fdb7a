//! Liveness in Redis: shared, durable across registry restarts, one round trip per heartbeat.

use crate::support::{TestApp, agent, persistent, redis_prefix, redis_url};

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
