//! Per-owner quotas: an Agent key's owner keeps at most so many agents and so many document
//! bytes; the Admin who issues a key may give it another quota; Admin callers have none.

use serde_json::{Value, json};

use crate::support::{TestApp, agent, ephemeral};

fn numbered(n: usize) -> Value {
    agent(&format!("Quota {n}"), "quota-skill", ephemeral(60))
}

#[tokio::test]
async fn an_owner_at_its_agent_quota_is_refused_naming_the_quota_until_it_removes_one() {
    let app = TestApp::spawn_with_args(&["--quota-max-agents", "3"]).await;
    let kim = app.with_key(Some(&app.issue_key("kim", "Agent").await));
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(kim.register(numbered(n)).await["id"].as_str().unwrap().to_owned());
    }
    let refused = kim.post("/agents", numbered(3)).await;
    let body = refused.problem(403, "quota_exceeded");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("maxAgents") && detail.contains('3') && detail.contains("kim"), "{detail}");
    // Another owner has a quota of its own; the Admin has none.
    let lee = app.with_key(Some(&app.issue_key("lee", "Agent").await));
    lee.register(numbered(10)).await;
    for n in 20..25 {
        app.register(numbered(n)).await;
    }
    // Making room makes room.
    kim.delete(&format!("/agents/{}", ids[0])).await.ok(204);
    kim.register(numbered(4)).await;
    assert_eq!(app.get("/agents?owner=kim&pageSize=100").await.body["items"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn a_key_given_its_own_quota_keeps_it_for_agents_and_for_document_bytes() {
    let app = TestApp::spawn().await;
    let issued = app
        .post(
            "/api-keys",
            json!({"ownerId": "ana", "scope": "Agent", "quota": {"maxAgents": 50, "maxDocumentBytes": 6_000}}),
        )
        .await;
    assert_eq!(issued.ok(201)["quota"], json!({"maxAgents": 50, "maxDocumentBytes": 6_000}));
    let ana = app.with_key(Some(issued.body["key"].as_str().unwrap()));
    let bulky = |n: usize| {
        let mut body = numbered(n);
        body["metadata"] = json!({"notes": "x".repeat(2_000)});
        body
    };
    let first = ana.register(bulky(0)).await;
    ana.register(bulky(1)).await;
    ana.post("/agents", bulky(2)).await.problem(403, "quota_exceeded");
    // Growing an agent counts too; shrinking one is always allowed.
    let path = format!("/agents/{}", first["id"].as_str().unwrap());
    let mut grown = bulky(0);
    grown["metadata"] = json!({"notes": "x".repeat(4_000)});
    ana.put(&path, grown).await.problem(403, "quota_exceeded");
    ana.put(&path, numbered(0)).await.ok(200);
    assert_eq!(app.get("/api-keys?owner=ana").await.body["items"][0]["quota"]["maxDocumentBytes"], 6_000);
    // A quota is an Admin's to give, and must make sense.
    let half = app.post("/api-keys", json!({"ownerId": "bo", "scope": "Agent", "quota": {"maxAgents": 5}})).await;
    half.problem(400, "validation_failed");
    assert_eq!(half.pointers(), ["/quota"]);
}

#[tokio::test]
async fn concurrent_registrations_committed_together_never_overshoot_a_quota() {
    // Sixteen registrations at once are decided while earlier ones are still being stored (group
    // commit): each counts the agents in flight, so exactly the quota's worth are created.
    let app = TestApp::spawn_with_args(&["--quota-max-agents", "5"]).await;
    let kim = app.with_key(Some(&app.issue_key("kim", "Agent").await));
    let replies = futures_util::future::join_all((0..16).map(|n| kim.post("/agents", numbered(n)))).await;
    let statuses: Vec<u16> = replies.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 5, "{statuses:?}");
    for refused in replies.iter().filter(|r| r.status != 201) {
        refused.problem(403, "quota_exceeded");
    }
    let listed = app.get("/agents?owner=kim&pageSize=100").await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 5);
}
