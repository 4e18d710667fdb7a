//! Registration and management of agents and endpoints.

use reqwest::Method;
use serde_json::json;

use super::support::{TestApp, agent, ephemeral, persistent};

#[tokio::test]
async fn registration_returns_201_with_location_etag_and_endpoint_ids() {
    let app = TestApp::spawn().await;
    let reply = app.post("/agents", agent("Summariser", "summarize", persistent(30))).await;
    let body = reply.ok(201);
    let id = body["id"].as_str().unwrap();
    assert_eq!(reply.header("location"), Some(format!("/agents/{id}").as_str()));
    assert_eq!(reply.header("etag"), Some(format!("\"{}\"", body["revision"]).as_str()));
    let endpoint = &body["endpoints"][0];
    assert!(endpoint["id"].as_str().is_some_and(|e| uuid::Uuid::parse_str(e).is_ok()));
    assert_eq!(endpoint["isLive"], true);
    assert_eq!(endpoint["livenessModel"], "Persistent");
    assert_eq!(endpoint["heartbeatIntervalSeconds"], 30);
    assert_eq!(body["capabilities"][0]["name"], "summarize");

    let read = app.get(&format!("/agents/{id}")).await;
    assert_eq!(read.ok(200)["name"], "Summariser");
    assert_eq!(read.body["endpoints"][0]["id"], endpoint["id"]);
}

#[tokio::test]
async fn dotnet_clients_integer_enums_and_string_metadata_are_understood() {
    let app = TestApp::spawn().await;
    let body = app
        .register(json!({
            "name": "Legacy",
            "endpoints": [{"name": "q", "transport": 1, "protocol": 2, "address": "amqp://broker.example/vhost/tasks",
                           "livenessModel": 1, "heartbeatIntervalSeconds": 20,
                           "protocolMetadata": "{\"queue\":\"tasks\",\"nested\":{\"b\":[1,2]}}"},
                          {"name": "web", "transport": "HTTP", "protocol": "a2a", "livenessModel": "ephemeral",
                           "address": "https://legacy.example/"}]
        }))
        .await;
    let q = &body["endpoints"][0];
    assert_eq!(
        (q["transport"].as_str(), q["protocol"].as_str(), q["livenessModel"].as_str()),
        (Some("Amqp"), Some("MCP"), Some("Persistent"))
    );
    assert_eq!(q["protocolMetadata"], json!({"queue": "tasks", "nested": {"b": [1, 2]}}));
    let web = &body["endpoints"][1];
    assert_eq!((web["transport"].as_str(), web["protocol"].as_str()), (Some("Http"), Some("A2A")));
    assert_eq!(web["ttlSeconds"], 300, "the default TTL applies");
}

#[tokio::test]
async fn protocol_metadata_round_trips_verbatim() {
    let app = TestApp::spawn().await;
    let metadata = json!({"z": null, "a": {"deep": [1.5, "x", false]}, "unicode": "é✓"});
    let body = app
        .register(json!({"name": "M", "endpoints": [{"name": "e", "address": "https://m.example", "protocolMetadata": metadata}]}))
        .await;
    let read = app.get(&format!("/agents/{}", body["id"].as_str().unwrap())).await;
    assert_eq!(read.body["endpoints"][0]["protocolMetadata"], metadata);
    // Key order too, not only content.
    let text = serde_json::to_string(&read.body["endpoints"][0]["protocolMetadata"]).unwrap();
    assert_eq!(text, r#"{"z":null,"a":{"deep":[1.5,"x",false]},"unicode":"é✓"}"#);
}

#[tokio::test]
async fn put_replaces_descriptive_fields_keeps_endpoints_and_capability_ids() {
    let app = TestApp::spawn().await;
    let created = app.register(agent("Before", "summarize", persistent(30))).await;
    let id = created["id"].as_str().unwrap();
    let cap_id = created["capabilities"][0]["id"].clone();

    let updated = app
        .put(
            &format!("/agents/{id}"),
            json!({"name": "After", "tags": ["x"], "capabilities": [{"name": "SUMMARIZE"}, {"name": "translate"}]}),
        )
        .await;
    let body = updated.ok(200);
    assert_eq!(body["name"], "After");
    assert_eq!(body["description"], json!(null), "absent description is cleared");
    assert_eq!(body["tags"], json!(["x"]));
    assert_eq!(body["capabilities"][0]["id"], cap_id, "a capability keeps its id while its name does");
    assert_eq!(body["endpoints"], created["endpoints"], "PUT never touches endpoints");
    assert!(body["revision"].as_u64() > created["revision"].as_u64());

    // Capabilities absent from the body are kept (the .NET registry's PUT has none).
    let kept = app.put(&format!("/agents/{id}"), json!({"name": "Again"})).await;
    assert_eq!(kept.ok(200)["capabilities"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn if_match_with_a_stale_revision_is_412_and_nothing_changes() {
    let app = TestApp::spawn().await;
    let created = app.register(agent("Guarded", "x", persistent(30))).await;
    let id = created["id"].as_str().unwrap();
    let etag = format!("\"{}\"", created["revision"]);
    let first =
        app.send(Method::PUT, &format!("/agents/{id}"), Some(json!({"name": "One"})), &[("if-match", &etag)]).await;
    first.ok(200);
    let second =
        app.send(Method::PUT, &format!("/agents/{id}"), Some(json!({"name": "Two"})), &[("if-match", &etag)]).await;
    second.problem(412, "revision_mismatch");
    let delete = app.send(Method::DELETE, &format!("/agents/{id}"), None, &[("if-match", &etag)]).await;
    delete.problem(412, "revision_mismatch");
    assert_eq!(app.get(&format!("/agents/{id}")).await.body["name"], "One");
    let bad = app
        .send(Method::PUT, &format!("/agents/{id}"), Some(json!({"name": "Three"})), &[("if-match", "nonsense")])
        .await;
    bad.problem(400, "invalid_header");
}

#[tokio::test]
async fn deregistering_removes_the_agent_and_a_second_delete_is_404() {
    let app = TestApp::spawn().await;
    let created = app.register(agent("Gone", "x", ephemeral(60))).await;
    let path = format!("/agents/{}", created["id"].as_str().unwrap());
    assert_eq!(app.delete(&path).await.status, 204);
    app.get(&path).await.problem(404, "agent_not_found");
    app.delete(&path).await.problem(404, "agent_not_found");
    assert!(app.discovered("/discover/agents?capability=x").await.is_empty());
}

#[tokio::test]
async fn endpoints_are_added_read_replaced_and_removed() {
    let app = TestApp::spawn().await;
    let created = app.register(agent("Multi", "x", persistent(30))).await;
    let id = created["id"].as_str().unwrap();

    let added = app
        .post(
            &format!("/agents/{id}/endpoints"),
            json!({"name": "mcp", "protocol": "MCP", "address": "https://multi.example/mcp"}),
        )
        .await;
    let eid = added.ok(201)["id"].as_str().unwrap().to_owned();
    assert_eq!(added.header("location"), Some(format!("/agents/{id}/endpoints/{eid}").as_str()));
    assert_eq!(added.body["isLive"], true);
    assert_eq!(app.get(&format!("/agents/{id}/endpoints/{eid}")).await.ok(200)["name"], "mcp");

    let duplicate =
        app.post(&format!("/agents/{id}/endpoints"), json!({"name": "MCP", "address": "https://other.example"})).await;
    assert_eq!(duplicate.problem(409, "duplicate_endpoint_name")["errors"][0]["pointer"], "/name");

    let replaced = app
        .put(
            &format!("/agents/{id}/endpoints/{eid}"),
            json!({"name": "mcp2", "protocol": "MCP", "address": "https://multi.example/v2"}),
        )
        .await;
    assert_eq!(replaced.ok(200)["id"], eid.as_str());
    assert_eq!(replaced.body["address"], "https://multi.example/v2");
    let clash = app
        .put(&format!("/agents/{id}/endpoints/{eid}"), json!({"name": "main", "address": "https://multi.example"}))
        .await;
    clash.problem(409, "duplicate_endpoint_name");

    assert_eq!(app.delete(&format!("/agents/{id}/endpoints/{eid}")).await.status, 204);
    app.delete(&format!("/agents/{id}/endpoints/{eid}")).await.problem(404, "endpoint_not_found");
    app.get(&format!("/agents/{id}/endpoints/{eid}")).await.problem(404, "endpoint_not_found");
    let agent = app.get(&format!("/agents/{id}")).await;
    assert_eq!(agent.body["endpoints"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_retried_registration_with_an_idempotency_key_returns_the_first_result() {
    let app = TestApp::spawn().await;
    let body = agent("Once", "x", persistent(30));
    let first = app.send(Method::POST, "/agents", Some(body.clone()), &[("idempotency-key", "k-1")]).await;
    let retry = app.send(Method::POST, "/agents", Some(body.clone()), &[("idempotency-key", "k-1")]).await;
    assert_eq!(retry.ok(201)["id"], first.ok(201)["id"]);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    let list = app.get("/agents").await;
    assert_eq!(list.body["totalCount"], 1, "no duplicate was created");

    let other = app
        .send(Method::POST, "/agents", Some(agent("Different", "x", persistent(30))), &[("idempotency-key", "k-1")])
        .await;
    other.problem(422, "idempotency_key_reused");

    // Survives a restart.
    let app = app.restart().await;
    let again = app.send(Method::POST, "/agents", Some(body), &[("idempotency-key", "k-1")]).await;
    assert_eq!(again.ok(201)["id"], first.body["id"]);
}

#[tokio::test]
async fn concurrent_writes_committed_in_batches_each_get_their_own_answer_in_revision_order() {
    // Registrations sent at once are stored in batches (group commit); retries under one key
    // in the same burst still create one agent, and every revision is distinct.
    let app = TestApp::spawn().await;
    let body = agent("Once", "x", persistent(30));
    let retries =
        (0..8).map(|_| app.send(Method::POST, "/agents", Some(body.clone()), &[("idempotency-key", "burst")]));
    let others =
        (0..24).map(|n| app.send(Method::POST, "/agents", Some(agent(&format!("Many {n}"), "x", persistent(30))), &[]));
    let replies = futures_util::future::join_all(retries.chain(others)).await;
    let ids: std::collections::HashSet<&str> = replies[..8].iter().map(|r| r.ok(201)["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 1, "one agent for the one key");
    let mut revisions: Vec<u64> = replies.iter().map(|r| r.ok(201)["revision"].as_u64().unwrap()).collect();
    revisions.sort_unstable();
    revisions.dedup();
    assert_eq!(revisions.len(), 25, "one revision per agent created: {revisions:?}");
    assert_eq!(app.get("/agents?pageSize=100").await.body["totalCount"], 25);
    // Updates of distinct agents at once, and a burst on one agent, all land.
    let paths: Vec<String> =
        replies[8..].iter().map(|r| format!("/agents/{}", r.body["id"].as_str().unwrap())).collect();
    let renamed = paths.iter().map(|path| app.put(path, agent("Renamed", "y", persistent(30))));
    for reply in futures_util::future::join_all(renamed).await {
        assert_eq!(reply.ok(200)["name"], "Renamed");
    }
    let hits = app.get("/discover/agents?capability=y&pageSize=100").await;
    assert_eq!(hits.ok(200)["totalCount"], 24);
}

#[tokio::test]
async fn a_client_chosen_id_makes_registration_idempotent() {
    let app = TestApp::spawn().await;
    let id = uuid::Uuid::new_v4().to_string();
    let mut body = agent("Chosen", "x", persistent(30));
    body["id"] = json!(id);
    assert_eq!(app.post("/agents", body.clone()).await.ok(201)["id"], id.as_str());
    assert_eq!(app.post("/agents", body.clone()).await.ok(201)["id"], id.as_str());
    body["name"] = json!("Changed");
    app.post("/agents", body).await.problem(409, "agent_exists");
    assert_eq!(app.get("/agents").await.body["totalCount"], 1);
}

#[tokio::test]
async fn listing_agents_filters_by_owner_and_includes_agents_without_endpoints() {
    let app = TestApp::spawn().await;
    app.register(json!({"name": "Bare", "ownerId": "team-a"})).await;
    app.register(
        json!({"name": "Other", "ownerId": "team-b", "endpoints": [{"name": "e", "address": "https://o.example"}]}),
    )
    .await;
    let all = app.get("/agents").await;
    assert_eq!(all.ok(200)["totalCount"], 2);
    let mine = app.get("/agents?owner=team-a").await;
    assert_eq!(mine.body["items"][0]["name"], "Bare");
    assert_eq!(mine.body["totalCount"], 1);
    assert!(app.discovered("/discover/agents").await == ["Other"], "discovery needs a live endpoint");
    app.get("/discover/agents?owner=team-a").await.problem(400, "invalid_query");
}
