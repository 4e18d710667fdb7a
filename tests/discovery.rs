//! Discovery: exact filters, liveness before paging, stable order and cursors.

use serde_json::json;

use super::support::{TestApp, agent, ephemeral};

#[tokio::test]
async fn pages_are_exact_when_dead_agents_are_mixed_in() {
    let app = TestApp::spawn().await;
    // 30 agents; every third one has a short lease that will lapse.
    for i in 0..30 {
        let ttl = if i % 3 == 0 { 5 } else { 500 };
        app.register(agent(&format!("agent-{i:02}"), "paged", ephemeral(ttl))).await;
    }
    app.clock.advance_secs(5);
    let expected: Vec<String> = (0..30).filter(|i| i % 3 != 0).map(|i| format!("agent-{i:02}")).collect();

    let first = app.get("/discover/agents?capability=paged&pageSize=7").await;
    let body = first.ok(200);
    assert_eq!(body["totalCount"], 20);
    assert_eq!(body["totalPages"], 3);
    assert_eq!(body["hasNextPage"], true);
    assert_eq!(body["hasPreviousPage"], false);

    let mut by_page = Vec::new();
    for page in 1..=3 {
        by_page.extend(app.discovered(&format!("/discover/agents?capability=paged&pageSize=7&page={page}")).await);
    }
    assert_eq!(by_page, expected, "pages are full, ordered by name, and hold only live agents");
    let last = app.get("/discover/agents?capability=paged&pageSize=7&page=3").await;
    assert_eq!(last.body["items"].as_array().unwrap().len(), 6);
    assert_eq!(last.body["hasNextPage"], false);
    assert!(app.discovered("/discover/agents?capability=paged&pageSize=7&page=4").await.is_empty());

    let mut by_cursor = Vec::new();
    let mut url = "/discover/agents?capability=paged&pageSize=7".to_owned();
    loop {
        let reply = app.get(&url).await;
        by_cursor
            .extend(reply.body["items"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap().to_owned()));
        match reply.body["nextCursor"].as_str() {
            Some(cursor) => url = format!("/discover/agents?capability=paged&pageSize=7&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(by_cursor, expected);

    let all = app.get("/discover/agents?capability=paged&liveOnly=false&pageSize=100").await;
    assert_eq!(all.body["totalCount"], 30);
}

#[tokio::test]
async fn equal_names_are_ordered_by_id_so_paging_is_stable() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(app.register(agent("Same", "same", ephemeral(100))).await["id"].as_str().unwrap().to_owned());
    }
    ids.sort();
    let mut seen = Vec::new();
    for page in 1..=5 {
        let reply = app.get(&format!("/discover/agents?capability=same&pageSize=1&page={page}")).await;
        seen.push(reply.body["items"][0]["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, ids);
}

async fn catalogue(app: &TestApp) {
    let endpoint = |name: &str, transport: &str, protocol: &str, address: &str| json!({"name": name, "transport": transport, "protocol": protocol, "address": address, "ttlSeconds": 100});
    app.register(json!({
        "name": "Legal Summariser", "description": "Summarises contracts", "tags": ["legal"], "labels": {"team": "law", "tier": "gold"},
        "capabilities": [{"name": "summarize", "description": "Condense documents", "tags": ["nlp", "text"]}],
        "endpoints": [endpoint("a2a", "Http", "A2A", "https://legal.example/a2a"), endpoint("queue", "Amqp", "MCP", "amqp://mq.example/v/legal")],
    })).await;
    app.register(json!({
        "name": "Translator", "description": "Translates text", "tags": ["nlp"], "labels": {"team": "lang"},
        "capabilities": [{"name": "translate", "tags": ["text"]}, {"name": "summarize-lite"}],
        "endpoints": [endpoint("mcp", "Http", "MCP", "https://tr.example/mcp")],
    }))
    .await;
    app.register(json!({
        "name": "Image Captioner", "capabilities": [{"name": "caption", "tags": ["vision"]}],
        "endpoints": [endpoint("acp", "Http", "ACP", "https://img.example/acp")],
    }))
    .await;
}

#[tokio::test]
async fn each_filter_matches_exactly_what_it_documents() {
    let app = TestApp::spawn().await;
    catalogue(&app).await;
    let cases: &[(&str, &[&str])] = &[
        ("capability=SUMMARIZE", &["Legal Summariser"]),
        ("capability=summ", &[]),
        ("capabilityPrefix=Summ", &["Legal Summariser", "Translator"]),
        ("tags=nlp", &["Legal Summariser", "Translator"]),
        ("tags=nlp,legal", &["Legal Summariser"]),
        ("tags=nlp&tags=TEXT", &["Legal Summariser", "Translator"]),
        ("tags=vision,nlp", &[]),
        ("label=team:law", &["Legal Summariser"]),
        ("label=team:law&label=tier:silver", &[]),
        ("label=team:LAW", &[]),
        ("protocol=MCP", &["Legal Summariser", "Translator"]),
        ("protocol=acp,a2a", &["Image Captioner", "Legal Summariser"]),
        ("transport=Amqp", &["Legal Summariser"]),
        ("protocol=MCP&transport=Http", &["Translator"]),
        ("protocol=A2A&transport=Amqp", &[]),
        ("q=contracts", &["Legal Summariser"]),
        ("q=condense", &["Legal Summariser"]),
        ("q=transl", &["Translator"]),
        ("q=text%20summ", &["Legal Summariser", "Translator"]),
        ("q=vision", &["Image Captioner"]),
        ("q=nothing-like-this", &[]),
        ("capability=caption&protocol=ACP&tags=vision", &["Image Captioner"]),
    ];
    for (query, expected) in cases {
        let found = app.discovered(&format!("/discover/agents?{query}")).await;
        assert_eq!(&found, expected, "{query}");
    }
}

#[tokio::test]
async fn only_matching_live_endpoints_are_returned() {
    let app = TestApp::spawn().await;
    catalogue(&app).await;
    let reply = app.get("/discover/agents?protocol=MCP&capability=summarize").await;
    let endpoints = reply.ok(200)["items"][0]["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0]["name"], "queue");
    assert_eq!(endpoints[0]["isLive"], true);

    app.clock.advance_secs(100);
    assert!(app.discovered("/discover/agents").await.is_empty());
    let dead = app.get("/discover/agents?liveOnly=false&capability=summarize").await;
    let endpoints = dead.body["items"][0]["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 2);
    assert!(endpoints.iter().all(|e| e["isLive"] == false));
}

#[tokio::test]
async fn updates_and_removals_are_reflected_in_discovery_at_once() {
    let app = TestApp::spawn().await;
    let created = app.register(agent("Mover", "old-skill", ephemeral(100))).await;
    let id = created["id"].as_str().unwrap();
    app.put(&format!("/agents/{id}"), json!({"name": "Mover", "capabilities": [{"name": "new-skill"}]})).await.ok(200);
    assert!(app.discovered("/discover/agents?capability=old-skill").await.is_empty());
    assert_eq!(app.discovered("/discover/agents?capability=new-skill").await, ["Mover"]);
    let eid = created["endpoints"][0]["id"].as_str().unwrap();
    app.delete(&format!("/agents/{id}/endpoints/{eid}")).await;
    assert!(app.discovered("/discover/agents?capability=new-skill").await.is_empty());
}

#[tokio::test]
async fn deep_pages_beyond_the_remembered_first_pages_are_exact() {
    let app = TestApp::spawn().await;
    for i in 0..250 {
        app.register(agent(&format!("deep-{i:03}"), "deep", ephemeral(500))).await;
    }
    let expected: Vec<String> = (0..250).map(|i| format!("deep-{i:03}")).collect();
    // The first request is answered in full and its first pages are remembered.
    assert_eq!(app.discovered("/discover/agents?capability=deep&pageSize=100").await, expected[..100]);
    assert_eq!(app.discovered("/discover/agents?capability=deep&pageSize=100&page=3").await, expected[200..]);
    assert_eq!(app.discovered("/discover/agents?capability=deep&pageSize=100&page=2").await, expected[100..200]);
    let mut walked = Vec::new();
    let mut url = "/discover/agents?capability=deep&pageSize=100".to_owned();
    loop {
        let reply = app.get(&url).await;
        assert_eq!(reply.body["totalCount"], 250);
        walked.extend(reply.body["items"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap().to_owned()));
        match reply.body["nextCursor"].as_str() {
            Some(cursor) => url = format!("/discover/agents?capability=deep&pageSize=100&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(walked, expected);
}
