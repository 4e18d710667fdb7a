//! Liveness for both models, eviction and restarts, driven by the test clock (no sleeping).

use serde_json::json;

use super::support::{TestApp, agent, ephemeral, persistent};

fn ids(body: &serde_json::Value) -> (String, String) {
    (body["id"].as_str().unwrap().to_owned(), body["endpoints"][0]["id"].as_str().unwrap().to_owned())
}

/// Maintenance evicts nothing one second before `secs` from now, then `evicted` endpoints at it.
async fn evicts_in(app: &TestApp, secs: i64, evicted: usize) {
    app.clock.advance_secs(secs - 1);
    assert_eq!(app.maintain().await, 0, "nothing is due a second early");
    app.clock.advance_secs(1);
    assert_eq!(app.maintain().await, evicted);
}

#[tokio::test]
async fn an_ephemeral_endpoint_is_live_for_its_ttl_and_renew_extends_it() {
    let app = TestApp::spawn().await;
    let (id, eid) = ids(&app.register(agent("Lease", "lease", ephemeral(10))).await);
    app.clock.advance_secs(9);
    assert_eq!(app.discovered("/discover/agents?capability=lease").await, ["Lease"]);
    app.clock.advance_secs(1);
    assert!(app.discovered("/discover/agents?capability=lease").await.is_empty(), "gone at once after 10 s");
    let read = app.get(&format!("/agents/{id}")).await;
    assert_eq!(read.body["endpoints"][0]["isLive"], false);

    let renewed = app.post_empty(&format!("/agents/{id}/endpoints/{eid}/renew")).await;
    assert_eq!(renewed.ok(200)["isLive"], true);
    assert_eq!(renewed.body["livenessModel"], "Ephemeral");
    assert_eq!(app.discovered("/discover/agents?capability=lease").await, ["Lease"]);
    let heartbeat = app.post_empty(&format!("/agents/{id}/endpoints/{eid}/heartbeat")).await;
    assert!(heartbeat.problem(409, "liveness_model_mismatch")["detail"].as_str().unwrap().contains("/renew"));
}

#[tokio::test]
async fn a_persistent_endpoint_is_live_for_two_and_a_half_intervals_after_a_heartbeat() {
    let app = TestApp::spawn().await;
    let (id, eid) = ids(&app.register(agent("Beat", "beat", persistent(10))).await);
    app.clock.advance_secs(24);
    assert_eq!(app.discovered("/discover/agents?capability=beat").await, ["Beat"]);
    app.clock.advance_secs(1);
    assert!(app.discovered("/discover/agents?capability=beat").await.is_empty());

    let beat = app.post_empty(&format!("/agents/{id}/endpoints/{eid}/heartbeat")).await;
    assert_eq!(beat.ok(200)["isLive"], true);
    app.clock.advance_secs(20);
    let read = app.get(&format!("/agents/{id}")).await;
    assert_eq!(read.body["endpoints"][0]["isLive"], true);
    let renew = app.post_empty(&format!("/agents/{id}/endpoints/{eid}/renew")).await;
    assert!(renew.problem(409, "liveness_model_mismatch")["detail"].as_str().unwrap().contains("/heartbeat"));
}

#[tokio::test]
async fn an_agent_heartbeat_covers_all_its_persistent_endpoints() {
    let app = TestApp::spawn().await;
    let body = app
        .register(json!({"name": "Two", "endpoints": [
            {"name": "a", "address": "https://a.example", "livenessModel": "Persistent", "heartbeatIntervalSeconds": 10},
            {"name": "b", "address": "https://b.example", "livenessModel": "Persistent", "heartbeatIntervalSeconds": 20},
            {"name": "c", "address": "https://c.example", "livenessModel": "Ephemeral", "ttlSeconds": 30}]}))
        .await;
    let id = body["id"].as_str().unwrap();
    app.clock.advance_secs(26);
    let beat = app.post_empty(&format!("/agents/{id}/heartbeat")).await;
    let beats = beat.ok(200).as_array().unwrap();
    assert_eq!(beats.len(), 2, "only the Persistent endpoints");
    let read = app.get(&format!("/agents/{id}")).await;
    let live: Vec<bool> = read.body["endpoints"].as_array().unwrap().iter().map(|e| e["isLive"] == true).collect();
    assert_eq!(live, [true, true, true]);

    let lease_only = app.register(agent("LeaseOnly", "x", ephemeral(30))).await;
    let path = format!("/agents/{}/heartbeat", lease_only["id"].as_str().unwrap());
    app.post_empty(&path).await.problem(409, "liveness_model_mismatch");
}

#[tokio::test]
async fn stale_endpoints_are_evicted_and_agents_with_them_unless_permanent() {
    let app = TestApp::spawn().await;
    let (gone_id, _) = ids(&app.register(agent("Gone", "evict", persistent(10))).await);
    let mut permanent = agent("Stays", "evict", persistent(10));
    permanent["permanent"] = json!(true);
    let (stays_id, _) = ids(&app.register(permanent).await);
    let (kept_id, kept_eid) = ids(&app.register(agent("Beating", "evict", persistent(10))).await);

    // 3 missed heartbeats (30 s) is the default eviction point; heartbeat one just before.
    app.clock.advance_secs(28);
    app.post_empty(&format!("/agents/{kept_id}/endpoints/{kept_eid}/heartbeat")).await.ok(200);
    evicts_in(&app, 2, 2).await;

    app.get(&format!("/agents/{gone_id}")).await.problem(404, "agent_not_found");
    let stays = app.get(&format!("/agents/{stays_id}")).await;
    assert_eq!(stays.ok(200)["endpoints"], json!([]), "a permanent agent outlives its endpoints");
    assert_eq!(app.get(&format!("/agents/{kept_id}")).await.ok(200)["endpoints"][0]["isLive"], true);

    // The heartbeat moved its eviction time; it still comes when the heartbeats stop.
    evicts_in(&app, 28, 1).await;
    app.get(&format!("/agents/{kept_id}")).await.problem(404, "agent_not_found");
}

#[tokio::test]
async fn an_endpoint_that_stops_beating_is_evicted_while_its_sibling_beats_on() {
    let app = TestApp::spawn().await;
    let mut two = agent("Pair", "evict", persistent(10));
    let mut second = two["endpoints"][0].clone();
    second["name"] = json!("spare");
    second["address"] = json!("https://pair.example/spare");
    two["endpoints"].as_array_mut().unwrap().push(second);
    let body = app.register(two).await;
    let id = body["id"].as_str().unwrap();
    let beating = body["endpoints"][0]["id"].as_str().unwrap();
    let silent = body["endpoints"][1]["id"].as_str().unwrap();

    for _ in 0..3 {
        app.clock.advance_secs(9);
        app.post_empty(&format!("/agents/{id}/endpoints/{beating}/heartbeat")).await.ok(200);
        assert_eq!(app.maintain().await, 0);
    }
    // The silent endpoint missed three heartbeats; its sibling's heartbeats do not keep it.
    evicts_in(&app, 3, 1).await;
    let endpoints = app.get(&format!("/agents/{id}")).await.ok(200)["endpoints"].clone();
    let left: Vec<&str> = endpoints.as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(left, [beating], "the silent endpoint {silent} is evicted, the beating one stays");
}

#[tokio::test]
async fn expired_ephemeral_endpoints_are_evicted_after_the_grace_period() {
    let app = TestApp::spawn_with_args(&["--ephemeral-grace-seconds", "60"]).await;
    let (id, _) = ids(&app.register(agent("Lapsed", "x", ephemeral(10))).await);
    app.clock.advance_secs(10);
    assert_eq!(app.get(&format!("/agents/{id}")).await.ok(200)["endpoints"][0]["isLive"], false);
    evicts_in(&app, 60, 1).await;
    app.get(&format!("/agents/{id}")).await.problem(404, "agent_not_found");
}

#[tokio::test]
async fn a_restart_keeps_registrations_and_never_revives_a_dead_endpoint() {
    let app = TestApp::spawn().await;
    let (dead_id, _) = ids(&app.register(agent("Dead", "restart", ephemeral(10))).await);
    let (live_id, live_eid) = ids(&app.register(agent("Live", "restart", ephemeral(100))).await);
    app.clock.advance_secs(50);
    app.post_empty(&format!("/agents/{live_id}/endpoints/{live_eid}/renew")).await.ok(200);
    let before = app.get(&format!("/agents/{live_id}")).await.body["endpoints"][0]["lastSeenAt"].clone();

    let app = app.restart().await;
    let dead = app.get(&format!("/agents/{dead_id}")).await;
    assert_eq!(dead.ok(200)["endpoints"][0]["isLive"], false, "still dead after the restart");
    let live = app.get(&format!("/agents/{live_id}")).await;
    assert_eq!(live.ok(200)["endpoints"][0]["isLive"], true);
    assert_eq!(live.body["endpoints"][0]["lastSeenAt"], before, "the renewal was kept");
    assert_eq!(app.discovered("/discover/agents?capability=restart").await, ["Live"]);

    app.clock.advance_secs(100);
    assert!(app.discovered("/discover/agents?capability=restart").await.is_empty());
}

#[tokio::test]
async fn revisions_increase_strictly_across_every_change_and_restarts() {
    let app = TestApp::spawn().await;
    let a = app.register(agent("A", "x", persistent(10))).await;
    let b = app.register(agent("B", "x", persistent(10))).await;
    let id = a["id"].as_str().unwrap();
    let updated = app.put(&format!("/agents/{id}"), json!({"name": "A2"})).await.body.clone();
    let app = app.restart().await;
    let c = app.register(agent("C", "x", persistent(10))).await;
    let revisions: Vec<u64> = [&a, &b, &updated, &c].iter().map(|v| v["revision"].as_u64().unwrap()).collect();
    assert!(revisions.windows(2).all(|w| w[0] < w[1]), "{revisions:?}");
}
