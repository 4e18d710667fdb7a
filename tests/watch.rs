//! Following the registry live: the SSE change stream (order, filters, resume, reset, liveness
//! events) and the capability projection with its ETag.

use std::time::Duration;

use serde_json::json;

use super::support::{SseEvent, TestApp, Watcher, agent, ephemeral, persistent};

fn kinds(events: &[SseEvent]) -> Vec<&str> {
    events.iter().map(|e| e.event.as_str()).collect()
}

fn revisions(events: &[SseEvent]) -> Vec<u64> {
    events.iter().map(|e| e.id.as_deref().unwrap().parse().unwrap()).collect()
}

#[tokio::test]
async fn a_watcher_sees_every_change_in_revision_order_with_the_agent_as_it_stood() {
    let app = TestApp::spawn().await;
    let mut watcher = Watcher::open(&app.base, "", None).await;
    let created = app.register(agent("Watched", "summarize", persistent(30))).await;
    let id = created["id"].as_str().unwrap();
    app.put(&format!("/agents/{id}"), json!({"name": "Watched Twice"})).await.ok(200);
    let endpoint =
        app.post(&format!("/agents/{id}/endpoints"), json!({"name": "more", "address": "https://more.example/"})).await;
    let eid = endpoint.ok(201)["id"].as_str().unwrap().to_owned();
    app.delete(&format!("/agents/{id}/endpoints/{eid}")).await;
    app.delete(&format!("/agents/{id}")).await;
    let events = watcher.take(5).await;
    assert_eq!(kinds(&events), ["registered", "updated", "endpoint_added", "endpoint_removed", "deregistered"]);
    let revs = revisions(&events);
    assert!(revs.windows(2).all(|w| w[0] < w[1]), "{revs:?}");
    assert_eq!(events[0].data["agent"]["name"], "Watched");
    assert_eq!(events[1].data["agent"]["name"], "Watched Twice");
    assert_eq!(events[0].data["revision"], revs[0]);
    assert_eq!(events[4].data["agentId"], id);
    assert!(events[4].data["agent"].is_null());
}

#[tokio::test]
async fn a_watcher_resumes_after_its_last_event_without_gaps_or_repeats() {
    let app = TestApp::spawn().await;
    let mut first = Watcher::open(&app.base, "", None).await;
    for i in 0..3 {
        app.register(agent(&format!("Early {i}"), "chat", persistent(30))).await;
    }
    let seen = first.take(2).await;
    drop(first);
    for i in 0..3 {
        app.register(agent(&format!("Late {i}"), "chat", persistent(30))).await;
    }
    let last = seen[1].id.clone().unwrap();
    let mut resumed = Watcher::open(&app.base, "", Some(&last)).await;
    let rest = resumed.take(4).await;
    let names: Vec<&str> = rest.iter().map(|e| e.data["agent"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Early 2", "Late 0", "Late 1", "Late 2"]);
    assert!(resumed.next(Duration::from_millis(300)).await.is_none(), "nothing twice");
    // `?since=` does the same.
    let mut by_query = Watcher::open(&app.base, &format!("?since={last}"), None).await;
    assert_eq!(revisions(&by_query.take(4).await), revisions(&rest));
}

#[tokio::test]
async fn filters_select_by_capability_protocol_agent_and_kind() {
    let app = TestApp::spawn().await;
    let mut by_capability = Watcher::open(&app.base, "?capability=Translate", None).await;
    let mut by_protocol = Watcher::open(&app.base, "?protocol=MCP", None).await;
    let mut by_kind = Watcher::open(&app.base, "?kind=deregistered", None).await;
    let summariser = app.register(agent("Summariser", "summarize", persistent(30))).await;
    let translator = app
        .register(json!({"name": "Translator", "capabilities": [{"name": "translate"}],
            "endpoints": [{"name": "m", "protocol": "MCP", "address": "https://t.example/mcp", "livenessModel": "Persistent"}]}))
        .await;
    let mut by_agent =
        Watcher::open(&app.base, &format!("?agentId={}&since=0", summariser["id"].as_str().unwrap()), None).await;
    app.delete(&format!("/agents/{}", summariser["id"].as_str().unwrap())).await;

    let only = by_capability.take(1).await;
    assert_eq!(only[0].data["agentId"], translator["id"]);
    assert_eq!(by_protocol.take(1).await[0].data["agentId"], translator["id"]);
    let deregistered = by_kind.take(1).await;
    assert_eq!(kinds(&deregistered), ["deregistered"]);
    assert_eq!(kinds(&by_agent.take(2).await), ["registered", "deregistered"]);
    // Deregistrations reach every watcher: the agent's capabilities are gone with it.
    assert_eq!(kinds(&by_capability.take(1).await), ["deregistered"]);

    app.get("/watch?kind=exploded").await.problem(400, "invalid_query");
    app.get("/watch?since=yesterday").await.problem(400, "invalid_query");
    app.get("/watch?protocol=Smoke").await.problem(400, "invalid_query");
}

#[tokio::test]
async fn expiry_and_revival_are_changes_too_and_arrive_within_a_maintenance_round() {
    let app = TestApp::spawn().await;
    let created = app.register(agent("Fleeting", "chat", ephemeral(5))).await;
    let (id, eid) = (created["id"].as_str().unwrap(), created["endpoints"][0]["id"].as_str().unwrap());
    let mut watcher = Watcher::open(&app.base, "", None).await;
    app.clock.advance_secs(6);
    app.maintain().await;
    let expired = watcher.take(1).await;
    assert_eq!(kinds(&expired), ["expired"]);
    assert_eq!(expired[0].data["endpointId"], eid);
    app.post_empty(&format!("/agents/{id}/endpoints/{eid}/renew")).await.ok(200);
    let revived = watcher.take(1).await;
    assert_eq!(kinds(&revived), ["became_live"]);
    assert!(revisions(&revived)[0] > revisions(&expired)[0]);
    // A second maintenance round does not report the same expiry again.
    app.maintain().await;
    assert!(watcher.next(Duration::from_millis(300)).await.is_none());
}

#[tokio::test]
async fn a_watcher_that_cannot_resume_is_told_to_reset() {
    let app = TestApp::spawn().await;
    app.register(agent("One", "chat", persistent(30))).await;
    let mut watcher = Watcher::open(&app.base, "?since=999999", None).await;
    let reset = watcher.take(1).await;
    assert_eq!(reset[0].event, "reset");
    let current = reset[0].data["revision"].as_u64().unwrap();
    app.register(agent("Two", "chat", persistent(30))).await;
    let next = watcher.take(1).await;
    assert!(revisions(&next)[0] > current);
    assert_eq!(next[0].data["agent"]["name"], "Two");
}

#[tokio::test]
async fn the_capability_projection_lists_live_endpoints_with_a_revision_etag() {
    let app = TestApp::spawn().await;
    let summariser = app.register(agent("Summariser", "summarize", persistent(30))).await;
    app.register(agent("Gone", "summarize", ephemeral(1))).await;
    app.clock.advance_secs(3);
    app.maintain().await;
    let reply = app.get("/capabilities").await;
    let body = reply.ok(200).clone();
    let etag = reply.header("etag").unwrap().to_owned();
    assert_eq!(etag, format!("\"{}\"", body["revision"]));
    let summarize = body["capabilities"].as_array().unwrap().iter().find(|c| c["name"] == "summarize").unwrap().clone();
    let endpoints = summarize["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 1, "only live endpoints: {summarize}");
    assert_eq!(endpoints[0]["agentId"], summariser["id"]);
    assert_eq!(endpoints[0]["address"], summariser["endpoints"][0]["address"]);
    let unchanged = app.send(reqwest::Method::GET, "/capabilities", None, &[("if-none-match", &etag)]).await;
    assert_eq!(unchanged.status, 304);
    app.register(agent("Translator", "translate", persistent(30))).await;
    let changed = app.send(reqwest::Method::GET, "/capabilities", None, &[("if-none-match", &etag)]).await;
    assert_eq!(changed.status, 200);
    assert_ne!(changed.header("etag").unwrap(), etag);
}

#[tokio::test]
async fn a_replica_refuses_watchers_beyond_its_limit_with_a_clear_503() {
    let app = TestApp::spawn_with_args(&["--max-watchers", "1"]).await;
    let _first = Watcher::open(&app.base, "", None).await;
    app.get("/watch").await.problem(503, "too_many_watchers");
}
