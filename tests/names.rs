//! Names an agent holds alone: ACP names, and an MCP server's name and version. Concurrent
//! registrations are decided under the registry's write lock, and the store refuses a second
//! holder across replicas (`replicas::` covers several processes).

use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};

use super::support::{TestApp, fixtures};

fn acp_manifest(name: &str) -> Value {
    json!({"manifest": {"name": name, "description": "Finds citations", "input_content_types": ["text/plain"],
        "output_content_types": ["text/plain"]}, "endpointUrl": "https://acp.example/"})
}

fn server_json() -> Value {
    let (_, bytes) = fixtures("mcp-server-json").remove(0);
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn twelve_concurrent_registrations_of_one_acp_manifest_get_twelve_distinct_acp_names() {
    let app = TestApp::spawn().await;
    let replies = join_all((0..12).map(|_| app.post("/acp/agents", acp_manifest("Citation Agent")))).await;
    let mut names: Vec<String> =
        replies.iter().map(|r| r.ok(201)["labels"]["acp.name"].as_str().unwrap().to_owned()).collect();
    names.sort();
    let mut expected: Vec<String> =
        std::iter::once("citation-agent".to_owned()).chain((2..=12).map(|n| format!("citation-agent-{n}"))).collect();
    expected.sort();
    assert_eq!(names, expected);
    for reply in &replies {
        let agent = reply.ok(201);
        let name = agent["labels"]["acp.name"].as_str().unwrap();
        let served = app.get(&format!("/acp/agents/{name}")).await.ok(200).clone();
        assert_eq!(served["name"], name);
        let listed = app.get(&format!("/agents/{}", agent["id"].as_str().unwrap())).await.ok(200).clone();
        assert_eq!(listed["labels"]["acp.name"], name, "the label shows the name granted");
    }
    let listed = app.get("/acp/agents?limit=100").await.ok(200).clone();
    let mut served: Vec<&str> =
        listed["agents"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    served.sort_unstable();
    served.dedup();
    assert_eq!(served.len(), 12, "every listed ACP name is unique: {served:?}");
}

#[tokio::test]
async fn an_acp_name_is_free_again_once_its_agent_is_gone_and_a_retry_keeps_the_name_it_got() {
    let app = TestApp::spawn().await;
    let first = app.post("/acp/agents", acp_manifest("Citation Agent")).await.ok(201).clone();
    let retried =
        app.send(Method::POST, "/acp/agents", Some(acp_manifest("Citation Agent")), &[("idempotency-key", "k1")]);
    let second = retried.await.ok(201).clone();
    assert_eq!(second["labels"]["acp.name"], "citation-agent-2");
    let again =
        app.send(Method::POST, "/acp/agents", Some(acp_manifest("Citation Agent")), &[("idempotency-key", "k1")]).await;
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.ok(201)["id"], second["id"]);
    assert_eq!(again.ok(201)["labels"]["acp.name"], "citation-agent-2");
    app.delete(&format!("/agents/{}", first["id"].as_str().unwrap())).await;
    let third = app.post("/acp/agents", acp_manifest("Citation Agent")).await.ok(201).clone();
    assert_eq!(third["labels"]["acp.name"], "citation-agent", "the name was released with its agent");
    assert_eq!(app.get("/acp/agents/citation-agent").await.ok(200)["name"], "citation-agent");
    assert_eq!(app.get("/acp/agents/Citation Agent").await.ok(200)["name"], "citation-agent");
}

#[tokio::test]
async fn a_server_json_name_and_version_is_registered_once_whatever_idempotency_keys_are_sent() {
    let app = TestApp::spawn().await;
    let document = server_json();
    let keys = ["a", "b", "c", "d"];
    let replies = join_all(keys.iter().map(|k| {
        let document = document.clone();
        let app = &app;
        async move { app.send(Method::POST, "/mcp/servers", Some(document), &[("idempotency-key", k)]).await }
    }))
    .await;
    let created: Vec<&Value> = replies.iter().filter(|r| r.status == 201).map(|r| r.ok(201)).collect();
    assert_eq!(created.len(), 1, "{:?}", replies.iter().map(|r| r.status).collect::<Vec<_>>());
    let holder = created[0]["id"].as_str().unwrap();
    for reply in replies.iter().filter(|r| r.status != 201) {
        let problem = reply.problem(409, "agent_exists");
        assert!(problem["detail"].as_str().unwrap().contains(holder), "{problem}");
    }
    // Without a key, too; and the key of the one that got in replays it.
    app.send(Method::POST, "/mcp/servers", Some(document.clone()), &[]).await.problem(409, "agent_exists");
    let winner = replies.iter().position(|r| r.status == 201).unwrap();
    let replay =
        app.send(Method::POST, "/mcp/servers", Some(document.clone()), &[("idempotency-key", keys[winner])]).await;
    assert_eq!(replay.ok(201)["id"], holder);
    let listed = app.get("/v0.1/servers").await.ok(200).clone();
    let name = document["name"].as_str().unwrap();
    let versions: Vec<&Value> =
        listed["servers"].as_array().unwrap().iter().filter(|s| s["server"]["name"] == name).collect();
    assert_eq!(versions.len(), 1, "{listed}");
    // Another version of the same server is another pair.
    let mut next = document.clone();
    next["version"] = json!("99.0.0");
    app.send(Method::POST, "/mcp/servers", Some(next), &[("idempotency-key", "e")]).await.ok(201);
}

#[tokio::test]
async fn an_acp_name_shown_by_another_agents_label_is_taken_too() {
    let app = TestApp::spawn().await;
    app.register(json!({"name": "Hand made", "labels": {"acp.name": "citation-agent"},
        "endpoints": [{"name": "acp", "protocol": "ACP", "address": "https://other.example/", "livenessModel": "Persistent"}]}))
        .await;
    let registered = app.post("/acp/agents", acp_manifest("Citation Agent")).await.ok(201).clone();
    assert_eq!(registered["labels"]["acp.name"], "citation-agent-2");
    assert_eq!(app.get("/acp/agents/citation-agent-2").await.ok(200)["name"], "citation-agent-2");
}

#[tokio::test]
async fn a_generic_acp_agent_is_found_by_its_derived_name_even_when_accents_were_folded() {
    let app = TestApp::spawn().await;
    app.register(json!({"name": "Bücher Bot",
        "endpoints": [{"name": "acp", "protocol": "ACP", "address": "https://books.example/", "livenessModel": "Persistent"}]}))
        .await;
    assert_eq!(app.get("/acp/agents/bucher-bot").await.ok(200)["name"], "bucher-bot");
    assert_eq!(app.get("/acp/agents/B%C3%BCcher%20Bot").await.ok(200)["name"], "bucher-bot");
    app.get("/acp/agents/nobody-here").await.problem(404, "agent_not_found");
}

#[tokio::test]
async fn an_mcp_namespace_belongs_to_the_owner_of_its_first_server_and_a_taken_name_is_not_leaked() {
    let app = TestApp::spawn().await;
    let alice = app.with_key(Some(&app.issue_key("alice", "Agent").await));
    let bob = app.with_key(Some(&app.issue_key("bob", "Agent").await));
    let named = |name: &str, version: &str| {
        let mut document = server_json();
        document["name"] = json!(name);
        document["version"] = json!(version);
        document
    };
    let weather = alice.post("/mcp/servers", named("io.github.alice/weather", "1.0.0")).await.ok(201).clone();
    let holder = weather["id"].as_str().unwrap();
    // Another owner: refused as forbidden, without learning which agent holds the name.
    let taken = bob.post("/mcp/servers", named("io.github.alice/weather", "1.0.0")).await;
    assert!(!taken.problem(403, "forbidden")["detail"].as_str().unwrap().contains(holder), "{}", taken.body);
    // Nor another server of alice's namespace.
    bob.post("/mcp/servers", named("io.github.alice/radar", "1.0.0")).await.problem(403, "forbidden");
    // Alice may; the owner sees its own conflict as one; bob has a namespace of his own.
    alice.post("/mcp/servers", named("io.github.alice/radar", "1.0.0")).await.ok(201);
    let again = alice.post("/mcp/servers", named("io.github.alice/weather", "1.0.0")).await;
    assert!(again.problem(409, "agent_exists")["detail"].as_str().unwrap().contains(holder));
    bob.post("/mcp/servers", named("io.github.bob/weather", "1.0.0")).await.ok(201);
    // The namespace is released with the last of its servers.
    for server in app.get("/agents?owner=alice&pageSize=100").await.body["items"].as_array().unwrap() {
        alice.delete(&format!("/agents/{}", server["id"].as_str().unwrap())).await.ok(204);
    }
    bob.post("/mcp/servers", named("io.github.alice/weather", "2.0.0")).await.ok(201);
}
