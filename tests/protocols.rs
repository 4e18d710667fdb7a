//! Protocol documents end to end: A2A cards, MCP Server Cards and `server.json` (with the MCP
//! Registry API as VS Code calls it), ACP manifests: registered natively, served back unchanged,
//! and visible across protocols.

use reqwest::Method;
use serde_json::{Value, json};

use super::support::{TestApp, fixtures, persistent};

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("JSON")
}

/// Registers a document with a raw body (so its bytes are exactly the fixture's).
async fn post_raw(app: &TestApp, path: &str, body: &[u8]) -> super::support::Reply {
    app.raw(Method::POST, path, Some("application/json"), body.to_vec()).await
}

async fn agent_count(app: &TestApp) -> u64 {
    app.get("/agents?liveOnly=false").await.ok(200)["totalCount"].as_u64().unwrap()
}

#[tokio::test]
async fn every_example_a2a_card_registers_and_is_served_back_byte_for_byte() {
    let app = TestApp::spawn().await;
    for (name, bytes) in fixtures("a2a-agent-card") {
        let reply = post_raw(&app, "/a2a/agents", &bytes).await;
        let agent = reply.ok(201);
        let id = agent["id"].as_str().unwrap();
        assert_eq!(agent["registeredWith"]["format"], "a2a-agent-card", "{name}");
        let card = json_of(&bytes);
        assert_eq!(agent["name"], card["name"], "{name}");
        let skills = card["skills"].as_array().map_or(0, Vec::len);
        assert_eq!(agent["capabilities"].as_array().unwrap().len(), skills, "{name}: one capability per skill");
        assert!(!agent["endpoints"].as_array().unwrap().is_empty(), "{name}: interfaces become endpoints");
        // Asked for in its own version, or as the original, a card comes back as registered.
        let own = if card.get("supportedInterfaces").is_some() { "1.0" } else { "0.3" };
        for path in [
            format!("/a2a/agents/{id}"),
            format!("/a2a/agents/{id}/"),
            format!("/a2a/agents/{id}/.well-known/agent-card.json"),
            format!("/a2a/agents/{id}/.well-known/agent.json"),
        ] {
            let (status, headers, served) = app.get_bytes(&path, &[("a2a-version", own)]).await;
            assert_eq!(status, 200, "{name} {path}");
            assert_eq!(served, bytes, "{name}: {path} serves the card exactly as registered");
            assert_eq!(headers["content-type"], "application/json");
            assert_eq!(headers["vary"], "A2A-Version");
            let (_, _, original) = app.get_bytes(&format!("{path}?original=true"), &[("a2a-version", "9.9")]).await;
            assert_eq!(original, bytes, "{name}: {path}?original=true");
        }
    }
}

#[tokio::test]
async fn a_card_asked_for_in_the_other_a2a_version_gains_that_versions_members_and_keeps_its_own() {
    let app = TestApp::spawn().await;
    let mut cards = fixtures("a2a-agent-card");
    cards.extend(super::support::edge_fixtures("a2a-edge").0);
    for (name, bytes) in cards {
        let card = json_of(&bytes);
        let id = post_raw(&app, "/a2a/agents", &bytes).await.ok(201)["id"].as_str().unwrap().to_owned();
        // No version asked means 0.3 (A2A §3.6); the query parameter wins over the header.
        for (query, header, wants_v1) in [
            ("", None, false),
            ("", Some("0.3"), false),
            ("", Some("1.0"), true),
            ("?A2A-Version=0.3", Some("1.0"), false),
            ("?A2A-Version=1.0", None, true),
        ] {
            let path = format!("/a2a/agents/{id}/{query}");
            let headers: Vec<(&str, &str)> = header.map(|v| ("a2a-version", v)).into_iter().collect();
            let (status, _, body) = app.get_bytes(&path, &headers).await;
            assert_eq!(status, 200, "{name} {path} {header:?}");
            if card["signatures"].as_array().is_some_and(|s| !s.is_empty()) {
                assert_eq!(body, bytes, "{name}: a signed card is served as signed, whatever is asked");
                continue;
            }
            let served: serde_json::Value = serde_json::from_slice(&body).unwrap();
            // Members are only added: everything the card said is still there, unchanged.
            assert!(keeps(&served, &card), "{name} {path} {header:?}: {served}");
            if wants_v1 {
                let interfaces = served["supportedInterfaces"].as_array();
                assert!(interfaces.is_some_and(|i| !i.is_empty()), "{name} {path} {header:?}: {served}");
            } else {
                assert!(served["url"].is_string(), "{name} {path} {header:?}: a v0.3 card has `url`: {served}");
            }
        }
    }
    let id = app
        .register(serde_json::json!({"name": "plain", "endpoints": [{"name": "a", "protocol": "A2A",
        "address": "https://plain.example/a2a"}]}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (query, header) in [("", "2.0"), ("?A2A-Version=latest", "1.0")] {
        let reply = app
            .send(reqwest::Method::GET, &format!("/a2a/agents/{id}/{query}"), None, &[("a2a-version", header)])
            .await;
        assert_eq!(reply.status, 400, "{query} {header}: {}", reply.body);
    }
}

/// Whether `served` holds every member of `original` at every level, with the same values
/// (objects may have more members; arrays have the same items in the same order).
fn keeps(served: &serde_json::Value, original: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (served, original) {
        (Value::Object(served), Value::Object(original)) => {
            original.iter().all(|(k, v)| served.get(k).is_some_and(|s| keeps(s, v)))
        }
        (Value::Array(served), Value::Array(original)) => {
            served.len() == original.len() && served.iter().zip(original).all(|(s, o)| keeps(s, o))
        }
        _ => served == original,
    }
}

#[tokio::test]
async fn a_wrapped_card_takes_liveness_from_the_request_and_is_discoverable_by_skill() {
    let app = TestApp::spawn().await;
    let card = json_of(&fixtures("a2a-agent-card").into_iter().find(|(n, _)| n.contains("currency")).unwrap().1);
    let skill = card["skills"][0]["id"].as_str().unwrap().to_owned();
    let reply = app
        .post("/a2a/agents", json!({"card": card, "liveness": {"livenessModel": "Ephemeral", "ttlSeconds": 45}}))
        .await;
    let agent = reply.ok(201).clone();
    let id = agent["id"].as_str().unwrap();
    assert_eq!(reply.header("location"), Some(format!("/agents/{id}").as_str()));
    let endpoint = &agent["endpoints"][0];
    assert_eq!(endpoint["livenessModel"], "Ephemeral");
    assert_eq!(endpoint["ttlSeconds"], 45);
    assert_eq!(endpoint["protocol"], "A2A");
    let eid = endpoint["id"].as_str().unwrap();
    app.post_empty(&format!("/agents/{id}/endpoints/{eid}/renew")).await.ok(200);

    let found = app.get(&format!("/discover/agents?capability={skill}&protocol=A2A")).await;
    assert_eq!(found.ok(200)["items"][0]["id"], id);
    let cards = app.get(&format!("/a2a/agents?capability={skill}")).await;
    let item = &cards.ok(200)["items"][0];
    assert_eq!(item["agentId"], id);
    assert_eq!(item["isLive"], true);
    assert_eq!(item["card"], card, "listed cards are the registered ones");

    // Liveness also comes from query parameters, and the configured default otherwise.
    let mut other = card.clone();
    other["name"] = json!("Second");
    let reply = app.post("/a2a/agents?livenessModel=Persistent&heartbeatIntervalSeconds=20", other.clone()).await;
    assert_eq!(reply.ok(201)["endpoints"][0]["heartbeatIntervalSeconds"], 20);
    other["name"] = json!("Third");
    assert_eq!(app.post("/a2a/agents", other).await.ok(201)["endpoints"][0]["livenessModel"], "Persistent");
}

#[tokio::test]
async fn cards_carry_etags_and_answer_if_none_match_with_304() {
    let app = TestApp::spawn().await;
    let (_, bytes) = fixtures("a2a-agent-card").remove(0);
    let id = post_raw(&app, "/a2a/agents", &bytes).await.ok(201)["id"].as_str().unwrap().to_owned();
    let path = format!("/a2a/agents/{id}");
    let (_, headers, _) = app.get_bytes(&path, &[]).await;
    let etag = headers["etag"].to_str().unwrap().to_owned();
    assert!(headers["cache-control"].to_str().unwrap().contains("max-age="));
    let (status, again, body) = app.get_bytes(&path, &[("if-none-match", &etag)]).await;
    assert_eq!(status, 304);
    assert!(body.is_empty());
    assert_eq!(again["etag"].to_str().unwrap(), etag);
    let (status, _, _) = app.get_bytes(&path, &[("if-none-match", "\"something-else\"")]).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_registrys_own_card_names_real_urls_from_the_public_url_never_from_the_host_header() {
    let app = TestApp::spawn_with_args(&["--public-url", "https://registry.example.com/"]).await;
    for path in ["/.well-known/agent-card.json", "/.well-known/agent.json"] {
        let (status, headers, body) = app.get_bytes(path, &[("host", "evil.example")]).await;
        assert_eq!(status, 200);
        assert!(headers.contains_key("etag"));
        let text = String::from_utf8(body).unwrap();
        assert!(!text.contains("evil.example"), "{text}");
        let card: Value = serde_json::from_str(&text).unwrap();
        let url = card["supportedInterfaces"][0]["url"].as_str().unwrap();
        assert!(url.starts_with("https://registry.example.com"), "{url}");
        for binding in card["supportedInterfaces"].as_array().unwrap() {
            let b = binding["protocolBinding"].as_str().unwrap();
            assert!(!["JSONRPC", "GRPC", "HTTP+JSON"].contains(&b), "the registry does not speak A2A {b}");
        }
        let skills: Vec<&str> = card["skills"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
        assert!(skills.len() >= 2, "{skills:?}");
    }
}

#[tokio::test]
async fn generic_agents_get_built_cards_and_agents_without_an_a2a_endpoint_get_a_clear_404() {
    let app = TestApp::spawn().await;
    let agent = app
        .register(json!({
            "name": "Generic", "description": "Summarises documents",
            "capabilities": [{"name": "summarize", "description": "Summaries", "tags": ["nlp"]}],
            "endpoints": [
                {"name": "a2a", "protocol": "A2A", "address": "https://generic.example/a2a", "livenessModel": "Persistent"},
                {"name": "mcp", "protocol": "MCP", "address": "https://generic.example/mcp", "livenessModel": "Persistent"},
                {"name": "acp", "protocol": "ACP", "address": "https://generic.example/acp", "livenessModel": "Persistent"}]
        }))
        .await;
    let id = agent["id"].as_str().unwrap();
    let card = app.get(&format!("/a2a/agents/{id}")).await.ok(200).clone();
    assert_eq!(card["name"], "Generic");
    assert_eq!(card["skills"].as_array().unwrap().len(), 1, "one skill per capability, never duplicated");
    assert_eq!(card["skills"][0]["id"], "summarize");
    assert_eq!(card["supportedInterfaces"][0]["url"], "https://generic.example/a2a");
    let server = app.get(&format!("/mcp/servers/{id}")).await.ok(200).clone();
    assert_eq!(server["remotes"][0]["url"], "https://generic.example/mcp");
    let manifest = app.get(&format!("/acp/agents/{id}")).await.ok(200).clone();
    assert_eq!(manifest["name"], "generic");

    let only_a2a = app.register(super::support::agent("Only A2A", "chat", persistent(30))).await;
    let oid = only_a2a["id"].as_str().unwrap();
    app.get(&format!("/mcp/servers/{oid}")).await.problem(404, "no_protocol_document");
    app.get(&format!("/acp/agents/{oid}")).await.problem(404, "no_protocol_document");
    app.get("/a2a/agents/not-a-uuid").await.problem(400, "invalid_id");
    app.get(&format!("/a2a/agents/{}", uuid::Uuid::new_v4())).await.problem(404, "agent_not_found");
}

#[tokio::test]
async fn a_card_breaking_its_schema_is_a_422_with_pointers_and_stores_nothing() {
    let app = TestApp::spawn().await;
    let before = agent_count(&app).await;
    let mut card = json_of(&fixtures("a2a-agent-card").into_iter().find(|(n, _)| n.contains("v1.0.1")).unwrap().1);
    card["skills"][0]["tags"] = json!("not-a-list");
    card["version"] = json!(7);
    let reply = app.post("/a2a/agents", json!({"card": card})).await;
    reply.problem(422, "schema_violation");
    let pointers = reply.pointers();
    assert!(pointers.iter().any(|p| p == "/card/skills/0/tags"), "{pointers:?}");
    assert!(pointers.iter().any(|p| p == "/card/version"), "{pointers:?}");

    let mut bare = json_of(&fixtures("a2a-agent-card").into_iter().find(|(n, _)| n.contains("v1.0.1")).unwrap().1);
    bare["supportedInterfaces"] = json!([]);
    let reply = app.post("/a2a/agents", bare).await;
    assert!(reply.status == 400 || reply.status == 422, "a card without interfaces is refused: {}", reply.body);
    app.raw(Method::POST, "/a2a/agents", Some("application/json"), b"{\"card\": [1,".to_vec())
        .await
        .problem(400, "malformed_json");
    app.post("/a2a/agents", json!({"card": {}, "extra": 1})).await.problem(400, "validation_failed");
    app.raw(Method::POST, "/a2a/agents", Some("text/plain"), b"{}".to_vec())
        .await
        .problem(415, "unsupported_media_type");
    assert_eq!(agent_count(&app).await, before);
}

#[tokio::test]
async fn registering_by_document_needs_credentials_reading_does_not() {
    let app = TestApp::spawn().await;
    let anonymous = app.with_key(None);
    let (_, card) = fixtures("a2a-agent-card").remove(0);
    anonymous.raw(Method::POST, "/a2a/agents", Some("application/json"), card).await.problem(401, "unauthenticated");
    let (_, server) = fixtures("mcp-server-json").remove(0);
    anonymous.raw(Method::POST, "/mcp/servers", Some("application/json"), server).await.problem(401, "unauthenticated");
    anonymous.post("/acp/agents", json!({})).await.problem(401, "unauthenticated");
    anonymous.get("/a2a/agents").await.ok(200);
    anonymous.get("/v0.1/servers").await.ok(200);
    anonymous.get("/acp/agents").await.ok(200);
}

#[tokio::test]
async fn every_example_server_json_registers_and_is_served_back_unchanged() {
    let app = TestApp::spawn().await;
    for (name, bytes) in fixtures("mcp-server-json") {
        let reply = post_raw(&app, "/mcp/servers", &bytes).await;
        let agent = reply.ok(201).clone();
        let id = agent["id"].as_str().unwrap();
        let doc = json_of(&bytes);
        assert_eq!(agent["name"], doc["name"], "{name}");
        assert_eq!(agent["registeredWith"]["format"], "mcp-server-json", "{name}");
        let remotes = doc["remotes"].as_array().map_or(0, Vec::len);
        let endpoints = agent["endpoints"].as_array().unwrap();
        assert!(endpoints.len() <= remotes, "{name}: packages give no endpoint");
        assert!(endpoints.iter().all(|e| e["protocol"] == "MCP" && e["transport"] == "Http"), "{name}");
        let (status, _, served) = app.get_bytes(&format!("/mcp/servers/{id}/server.json"), &[]).await;
        assert_eq!(status, 200);
        assert_eq!(served, bytes, "{name}");
        let (status, headers, card) = app.get_bytes(&format!("/mcp/servers/{id}/server-card"), &[]).await;
        assert_eq!(status, 200, "{name}");
        assert_eq!(headers["content-type"], "application/mcp-server-card+json");
        assert!(headers.contains_key("etag"));
        let card = json_of(&card);
        assert_eq!(card["name"], doc["name"]);
        assert_eq!(card["version"], doc["version"]);
    }
}

#[tokio::test]
async fn remote_url_variables_take_their_defaults_and_package_only_servers_are_listed_but_never_live() {
    let app = TestApp::spawn().await;
    let files = fixtures("mcp-server-json");
    let (_, templated) = files.iter().find(|(n, _)| n.contains("url-variables")).unwrap();
    let doc = json_of(templated);
    let agent = post_raw(&app, "/mcp/servers", templated).await.ok(201).clone();
    let default = doc["remotes"][0]["variables"]["region"]["default"].as_str().unwrap();
    assert_eq!(agent["endpoints"][0]["address"], format!("https://api.example.com/{default}/mcp"));

    let (_, package_only) = files.iter().find(|(n, _)| n.contains("playwright")).unwrap();
    let agent = post_raw(&app, "/mcp/servers", package_only).await.ok(201).clone();
    assert_eq!(agent["endpoints"], json!([]));
    let id = agent["id"].as_str().unwrap();
    let live: Vec<Value> = app.get("/mcp/servers").await.ok(200)["items"].as_array().unwrap().clone();
    assert!(live.iter().all(|i| i["agentId"] != id), "not live");
    let all = app.get("/mcp/servers?liveOnly=false").await.ok(200).clone();
    let item = all["items"].as_array().unwrap().iter().find(|i| i["agentId"] == id).expect("listed").clone();
    assert_eq!(item["isLive"], false);
    assert_eq!(item["serverCard"]["name"], doc_name(package_only));
}

fn doc_name(bytes: &[u8]) -> Value {
    json_of(bytes)["name"].clone()
}

#[tokio::test]
async fn the_same_server_name_and_version_cannot_be_registered_twice() {
    let app = TestApp::spawn().await;
    let (_, bytes) = fixtures("mcp-server-json").into_iter().find(|(n, _)| n.contains("remote-headers")).unwrap();
    post_raw(&app, "/mcp/servers", &bytes).await.ok(201);
    post_raw(&app, "/mcp/servers", &bytes).await.problem(409, "agent_exists");
    let mut newer = json_of(&bytes);
    newer["version"] = json!("99.0.0");
    app.post("/mcp/servers", json!({"serverCard": newer})).await.ok(201);
}

/// Registers three versions of one server and two other servers.
async fn mcp_catalogue(app: &TestApp) -> Vec<Value> {
    let (_, bytes) = fixtures("mcp-server-json").into_iter().find(|(n, _)| n.contains("remote-headers")).unwrap();
    let base = json_of(&bytes);
    let mut docs = Vec::new();
    for version in ["1.0.0", "1.10.0", "1.2.0"] {
        let mut doc = base.clone();
        doc["version"] = json!(version);
        docs.push(doc);
    }
    for name in ["io.github.alice/weather", "com.example/zeta-tools"] {
        let mut doc = base.clone();
        doc["name"] = json!(name);
        doc["description"] = json!(format!("{name} for tests"));
        docs.push(doc);
    }
    for doc in &docs {
        app.post("/mcp/servers", doc.clone()).await.ok(201);
    }
    docs
}

#[tokio::test]
async fn vs_code_lists_pages_and_installs_servers_through_the_mcp_registry_api() {
    let app = TestApp::spawn().await;
    let docs = mcp_catalogue(&app).await;
    let vscode = app.with_key(None);
    // 1. The version probe.
    vscode.get("/v0.1/servers?limit=1").await.ok(200);
    // 2. Listing with version=latest, paging on nextCursor.
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v0.1/servers?limit=2&version=latest&cursor={}", urlencode(c)),
            None => "/v0.1/servers?limit=2&version=latest".to_owned(),
        };
        let page = vscode.get(&path).await.ok(200).clone();
        for entry in page["servers"].as_array().unwrap() {
            for field in ["name", "description", "version"] {
                assert!(entry["server"][field].as_str().is_some_and(|s| !s.is_empty()), "{entry}");
            }
            let official = &entry["_meta"]["io.modelcontextprotocol.registry/official"];
            assert_eq!(official["isLatest"], true);
            assert_eq!(official["status"], "active");
            names.push((entry["server"]["name"].as_str().unwrap().to_owned(), entry["server"]["version"].clone()));
        }
        assert!(page["metadata"]["count"].as_u64().unwrap() <= 2);
        match page["metadata"]["nextCursor"].as_str() {
            Some(next) if !next.is_empty() => cursor = Some(next.to_owned()),
            _ => break,
        }
    }
    assert_eq!(names.len(), 3, "one latest entry per server name: {names:?}");
    let repeated = docs[0]["name"].as_str().unwrap();
    assert!(names.contains(&(repeated.to_owned(), json!("1.10.0"))), "semver, not text order: {names:?}");
    // 3. Detail, with the name URL-encoded.
    let encoded = repeated.replace('/', "%2F");
    let latest = vscode.get(&format!("/v0.1/servers/{encoded}/versions/latest")).await.ok(200).clone();
    assert_eq!(latest["server"]["version"], "1.10.0");
    let pinned = vscode.get(&format!("/v0.1/servers/{encoded}/versions/1.2.0")).await.ok(200).clone();
    assert_eq!(pinned["server"], docs[2]);
    assert_eq!(pinned["_meta"]["io.modelcontextprotocol.registry/official"]["isLatest"], false);
    let versions = vscode.get(&format!("/v0.1/servers/{encoded}/versions")).await.ok(200).clone();
    let order: Vec<&str> =
        versions["servers"].as_array().unwrap().iter().map(|e| e["server"]["version"].as_str().unwrap()).collect();
    assert_eq!(order, ["1.10.0", "1.2.0", "1.0.0"]);
    // The development alias, search, and errors.
    assert_eq!(vscode.get("/v0/servers?limit=50&version=latest").await.ok(200)["servers"].as_array().unwrap().len(), 3);
    let found = vscode.get("/v0.1/servers?search=WEATHER").await.ok(200).clone();
    assert_eq!(found["servers"][0]["server"]["name"], "io.github.alice/weather");
    // Answers as the official OpenAPI documents them (tests/clients/check_mcp_registry.py
    // validates each against the document): a 404 is `{"error": …}` in application/json, and
    // the list has no error to give for a limit or a cursor.
    let (status, headers, body) = vscode.get_bytes("/v0.1/servers/com.example%2Fnothing/versions/latest", &[]).await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 404);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!((&body["error"], &body["code"]), (&json!("Server not found"), &json!("server_not_found")), "{body}");
    assert_eq!(vscode.get("/v0.1/servers?limit=0").await.ok(200)["metadata"]["count"], 1);
    assert_eq!(vscode.get("/v0.1/servers?limit=500").await.ok(200)["metadata"]["count"], 5);
    vscode.get("/v0.1/servers?cursor=%25%25%25").await.ok(200);
    // A cursor as the official registry writes it (`name:version`) pages on after that entry.
    let after = vscode.get(&format!("/v0.1/servers?cursor={}", urlencode(&format!("{repeated}:1.2.0")))).await;
    let after: Vec<Value> =
        after.ok(200)["servers"].as_array().unwrap().iter().map(|e| e["server"]["version"].clone()).collect();
    assert!(!after.contains(&json!("1.0.0")) && !after.contains(&json!("1.2.0")), "{after:?}");
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn protocol_documents_allow_cross_origin_reads_as_github_and_the_server_card_draft_require() {
    let app = TestApp::spawn().await;
    mcp_catalogue(&app).await;
    let (_, headers, _) = app.get_bytes("/v0.1/servers?limit=1", &[("origin", "https://vscode.dev")]).await;
    assert_eq!(headers["access-control-allow-origin"], "*");
    let preflight = reqwest::Client::new()
        .request(Method::OPTIONS, format!("{}/v0.1/servers", app.base))
        .header("origin", "https://vscode.dev")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    let allowed = preflight.headers()["access-control-allow-methods"].to_str().unwrap().to_owned();
    assert!(allowed.contains("GET"), "{allowed}");
    let (_, headers, _) = app.get_bytes("/.well-known/agent-card.json", &[("origin", "https://a.example")]).await;
    assert_eq!(headers["access-control-allow-origin"], "*");
    // Management routes get no such headers.
    let (_, headers, _) = app.get_bytes("/agents", &[("origin", "https://a.example")]).await;
    assert!(!headers.contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn the_ai_catalog_lists_live_servers_and_agents_pointing_at_their_cards() {
    let app = TestApp::spawn_with_args(&["--public-url", "https://registry.example.com"]).await;
    let (_, card) = fixtures("a2a-agent-card").remove(0);
    let a2a = post_raw(&app, "/a2a/agents", &card).await.ok(201)["id"].as_str().unwrap().to_owned();
    let (_, server) = fixtures("mcp-server-json").into_iter().find(|(n, _)| n.contains("remote-headers")).unwrap();
    let mcp = post_raw(&app, "/mcp/servers", &server).await.ok(201)["id"].as_str().unwrap().to_owned();
    let (status, headers, body) = app.get_bytes("/.well-known/ai-catalog.json", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/ai-catalog+json");
    let catalog = json_of(&body);
    let urls: Vec<&str> = catalog["entries"].as_array().unwrap().iter().map(|e| e["url"].as_str().unwrap()).collect();
    assert!(urls.contains(&format!("https://registry.example.com/a2a/agents/{a2a}/").as_str()), "{urls:?}");
    assert!(urls.contains(&format!("https://registry.example.com/mcp/servers/{mcp}/server-card").as_str()), "{urls:?}");
}

#[tokio::test]
async fn every_example_acp_manifest_registers_and_reads_back_with_only_its_name_normalised() {
    let app = TestApp::spawn().await;
    let mut manifests = Vec::new();
    for (file, bytes) in fixtures("acp-agent-manifest") {
        let doc = json_of(&bytes);
        match doc.get("agents") {
            Some(list) => manifests.extend(list.as_array().unwrap().iter().map(|m| (file.clone(), m.clone()))),
            None => manifests.push((file, doc)),
        }
    }
    let mut registered = 0;
    for (file, manifest) in manifests {
        let reply = app.post("/acp/agents", json!({"manifest": manifest, "endpointUrl": "https://acp.example/"})).await;
        if reply.status == 409 {
            continue;
        }
        let agent = reply.ok(201).clone();
        registered += 1;
        let acp_name = agent["labels"]["acp.name"].as_str().expect("ACP name label").to_owned();
        assert!(
            acp_name.len() <= 63 && acp_name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        );
        let served = app.get(&format!("/acp/agents/{acp_name}")).await.ok(200).clone();
        let mut expected = with_run_annotation(&manifest, "https://acp.example/");
        expected["name"] = json!(acp_name);
        assert_eq!(served, expected, "{file}: only the name and where it runs may differ");
        // The original name finds it too.
        app.get(&format!("/acp/agents/{}", manifest["name"].as_str().unwrap())).await.ok(200);
    }
    assert!(registered >= 4);
    let listed = app.get("/acp/agents?limit=1000").await.ok(200).clone();
    assert_eq!(listed["agents"].as_array().unwrap().len(), registered);
}

#[tokio::test]
async fn acp_names_are_made_unique_pages_follow_limit_and_offset_and_domains_filter() {
    let app = TestApp::spawn().await;
    let manifest = |name: &str, domains: Value| {
        json!({"manifest": {"name": name, "description": "d", "input_content_types": ["text/plain"],
            "output_content_types": ["text/plain"], "metadata": {"domains": domains}},
            "endpointUrl": "https://acp.example"})
    };
    let first = app.post("/acp/agents", manifest("Chat New", json!(["finance"]))).await.ok(201).clone();
    let second = app.post("/acp/agents", manifest("chat_new", json!(["health"]))).await.ok(201).clone();
    assert_eq!(first["labels"]["acp.name"], "chat-new");
    assert_eq!(second["labels"]["acp.name"], "chat-new-2");
    assert_eq!(app.get("/acp/agents/chat-new-2").await.ok(200)["metadata"]["domains"], json!(["health"]));
    let finance = app.get("/acp/agents?domain=finance").await.ok(200).clone();
    assert_eq!(finance["agents"].as_array().unwrap().len(), 1);
    assert_eq!(finance["agents"][0]["name"], "chat-new");
    assert!(finance["agents"][0]["metadata"].get("tags").is_none(), "derived domain tags never leak into manifests");
    let one = app.get("/acp/agents?limit=1&offset=1").await.ok(200).clone();
    assert_eq!(one["agents"].as_array().unwrap().len(), 1);
    assert_eq!(one["agents"][0]["name"], "chat-new-2");
    app.get("/acp/agents?limit=1001").await.problem(400, "invalid_query");
    app.get("/acp/ping").await.ok(200);
    app.post(
        "/acp/agents",
        json!({"manifest": {"name": "x", "input_content_types": ["*/*"], "output_content_types": ["*/*"]}}),
    )
    .await
    .problem(400, "validation_failed");
    let reply = app
        .post(
            "/acp/agents",
            json!({"manifest": {"name": "x", "input_content_types": "text"}, "endpointUrl": "https://a.example"}),
        )
        .await;
    reply.problem(422, "schema_violation");
    assert!(reply.pointers().iter().any(|p| p.starts_with("/manifest/")), "{:?}", reply.pointers());
}

#[tokio::test]
async fn changing_an_agent_through_the_generic_api_replaces_its_document_with_one_built_from_the_domain() {
    let app = TestApp::spawn().await;
    let (_, bytes) = fixtures("a2a-agent-card").into_iter().find(|(n, _)| n.contains("currency")).unwrap();
    let agent = post_raw(&app, "/a2a/agents", &bytes).await.ok(201).clone();
    let id = agent["id"].as_str().unwrap();
    app.put(&format!("/agents/{id}"), json!({"name": "Renamed", "description": "changed"})).await.ok(200);
    let card = app.get(&format!("/a2a/agents/{id}")).await.ok(200).clone();
    assert_eq!(card["name"], "Renamed");
    assert!(app.get(&format!("/agents/{id}")).await.ok(200).get("registeredWith").is_none());
}

/// Signs a card as A2A §8.4 describes: JWS over the JCS-canonical card without `signatures`.
fn signed_card(card: Value, pem: &[u8], kid: &str) -> Vec<u8> {
    sign(card, pem, json!({"alg": "EdDSA", "typ": "JOSE", "kid": kid}))
}

fn sign(mut card: Value, pem: &[u8], header: Value) -> Vec<u8> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    card.as_object_mut().unwrap().remove("signatures");
    let payload = serde_json_canonicalizer::to_string(&card).unwrap();
    let header = b64.encode(header.to_string());
    let input = format!("{header}.{}", b64.encode(&payload));
    let key = jsonwebtoken::EncodingKey::from_ed_pem(pem).unwrap();
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &key, jsonwebtoken::Algorithm::EdDSA).unwrap();
    card["signatures"] = json!([{"protected": header, "signature": signature}]);
    // Pretty-printed on purpose: the served bytes must be these, not a re-serialisation.
    serde_json::to_vec_pretty(&card).unwrap()
}

#[tokio::test]
async fn signed_cards_are_verified_against_the_configured_keys_and_served_back_byte_for_byte() {
    let edge = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/protocols/a2a-edge");
    let keys = edge.join("test-only-keys.jwks.json");
    let app = TestApp::spawn_with_args(&["--a2a-signing-keys", keys.to_str().unwrap()]).await;
    let pem = std::fs::read(edge.join("test-only-ed25519.pem")).unwrap();
    let card = json_of(&fixtures("a2a-agent-card").into_iter().find(|(n, _)| n.contains("currency")).unwrap().1);

    let signed = signed_card(card.clone(), &pem, "test-ed25519");
    let agent = post_raw(&app, "/a2a/agents", &signed).await.ok(201).clone();
    assert_eq!(agent["registeredWith"]["signatureVerified"], true);
    let (_, _, served) = app.get_bytes(&format!("/a2a/agents/{}", agent["id"].as_str().unwrap()), &[]).await;
    assert_eq!(served, signed);

    // Changed after signing: still registered, reported as not verified.
    let mut tampered: Value = json_of(&signed);
    tampered["name"] = json!("Someone Else");
    let agent = app.post("/a2a/agents", tampered).await.ok(201).clone();
    assert_eq!(agent["registeredWith"]["signatureVerified"], false);

    // Unsigned cards say nothing about signatures.
    let agent = app.post("/a2a/agents", json!({"card": card})).await.ok(201).clone();
    assert!(agent["registeredWith"].get("signatureVerified").is_none(), "{agent}");
}

#[tokio::test]
async fn edge_case_documents_of_every_protocol_round_trip_and_invalid_ones_store_nothing() {
    let app = TestApp::spawn().await;
    for (dir, route) in [("a2a-edge", "/a2a/agents"), ("mcp-edge", "/mcp/servers")] {
        let (valid, invalid) = super::support::edge_fixtures(dir);
        for (name, bytes) in valid {
            let agent = post_raw(&app, route, &bytes).await.ok(201).clone();
            let id = agent["id"].as_str().unwrap();
            let path = match agent["registeredWith"]["format"].as_str().unwrap() {
                "a2a-agent-card" => format!("/a2a/agents/{id}"),
                "mcp-server-json" => format!("/mcp/servers/{id}/server.json"),
                _ => format!("/mcp/servers/{id}"),
            };
            let (status, _, served) = app.get_bytes(&format!("{path}?original=true"), &[]).await;
            assert_eq!(status, 200, "{name}");
            assert_eq!(served, bytes, "{name}: served byte for byte");
        }
        let before = agent_count(&app).await;
        for (name, bytes) in invalid {
            let reply = post_raw(&app, route, &bytes).await;
            assert!(matches!(reply.status.as_u16(), 400 | 422), "{name}: {}", reply.body);
            assert!(!reply.pointers().is_empty(), "{name}: errors name the fields: {}", reply.body);
        }
        assert_eq!(agent_count(&app).await, before);
    }
    for (name, bytes) in fixtures("acp-edge") {
        let manifest = json_of(&bytes);
        let agent = app
            .post("/acp/agents", json!({"manifest": manifest, "endpointUrl": "https://acp.example"}))
            .await
            .ok(201)
            .clone();
        let served = app.get(&format!("/acp/agents/{}", agent["id"].as_str().unwrap())).await.ok(200).clone();
        let mut expected = with_run_annotation(&manifest, "https://acp.example");
        expected["name"] = agent["labels"]["acp.name"].clone();
        assert_eq!(served, expected, "{name}");
    }
}

/// `manifest` as the registry serves it for an agent on the ACP server at `url`: with
/// `metadata.annotations.agent_registry` saying where to send runs, and the name to send.
fn with_run_annotation(manifest: &Value, url: &str) -> Value {
    let mut served = manifest.clone();
    let name = manifest["name"].as_str().unwrap().trim();
    if !served["metadata"].is_object() {
        served["metadata"] = json!({});
    }
    if !served["metadata"]["annotations"].is_object() {
        served["metadata"]["annotations"] = json!({});
    }
    served["metadata"]["annotations"]["agent_registry"] = json!({"acp_server_url": url, "agent_name": name});
    served
}

#[tokio::test]
async fn server_card_tools_become_capabilities_with_their_schemas() {
    let app = TestApp::spawn().await;
    let (_, bytes) = fixtures("mcp-edge").into_iter().find(|(n, _)| n.contains("with-primitives")).unwrap();
    let card = json_of(&bytes);
    let agent = post_raw(&app, "/mcp/servers", &bytes).await.ok(201).clone();
    assert_eq!(agent["registeredWith"]["format"], "mcp-server-card");
    let tool = &card["tools"][0];
    let capability = agent["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == tool["name"])
        .expect("a capability per tool")
        .clone();
    assert_eq!(capability["inputSchema"], tool["inputSchema"]);
    let found = app.get(&format!("/agents?capability={}", tool["name"].as_str().unwrap())).await;
    assert_eq!(found.ok(200)["items"][0]["id"], agent["id"]);
}

#[tokio::test]
async fn behind_a_trusted_proxy_documents_name_the_forwarded_host_and_otherwise_ignore_it() {
    let forwarded = [("x-forwarded-host", "registry.example.org"), ("x-forwarded-proto", "https")];
    let trusting = TestApp::spawn_with_args(&["--trusted-proxies", "127.0.0.1"]).await;
    let (_, _, body) = trusting.get_bytes("/.well-known/agent-card.json", &forwarded).await;
    let url = json_of(&body)["supportedInterfaces"][0]["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with("https://registry.example.org"), "{url}");
    let untrusting = TestApp::spawn().await;
    let (_, _, body) = untrusting.get_bytes("/.well-known/agent-card.json", &forwarded).await;
    assert!(!String::from_utf8(body).unwrap().contains("registry.example.org"));
}

#[tokio::test]
async fn card_keys_named_by_jku_are_fetched_only_under_a_trusted_prefix() {
    let edge = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/protocols/a2a-edge");
    let jwks = std::fs::read_to_string(edge.join("test-only-keys.jwks.json")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let keys_url = format!("http://{}/keys/jwks.json", listener.local_addr().unwrap());
    let fetched = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = fetched.clone();
    let keys = axum::Router::new().route(
        "/keys/jwks.json",
        axum::routing::get(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let jwks = jwks.clone();
            async move { ([("content-type", "application/json")], jwks) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, keys).await.unwrap() });

    let pem = std::fs::read(edge.join("test-only-ed25519.pem")).unwrap();
    let card = json_of(&fixtures("a2a-agent-card").into_iter().find(|(n, _)| n.contains("currency")).unwrap().1);
    let signed = signed_card_with_jku(card, &pem, "test-ed25519", &keys_url);

    let trusted_prefix = keys_url.trim_end_matches("jwks.json").to_owned();
    let app = TestApp::spawn_with_args(&["--a2a-trusted-jku", &trusted_prefix]).await;
    let agent = post_raw(&app, "/a2a/agents", &signed).await.ok(201).clone();
    assert_eq!(agent["registeredWith"]["signatureVerified"], true);
    assert_eq!(fetched.load(std::sync::atomic::Ordering::SeqCst), 1);

    let untrusting = TestApp::spawn().await;
    let agent = post_raw(&untrusting, "/a2a/agents", &signed).await.ok(201).clone();
    assert_eq!(agent["registeredWith"]["signatureVerified"], false);
    assert_eq!(fetched.load(std::sync::atomic::Ordering::SeqCst), 1, "an untrusted jku is never fetched");
}

fn signed_card_with_jku(card: Value, pem: &[u8], kid: &str, jku: &str) -> Vec<u8> {
    sign(card, pem, json!({"alg": "EdDSA", "typ": "JOSE", "kid": kid, "jku": jku}))
}

/// Serves the test keys at any path but `/trusted/{n}/…` with `n` > 0 (an empty key set there),
/// recording the paths fetched; with `together`, none is answered before that many fetches
/// have arrived.
async fn key_server(together: usize) -> (String, std::sync::Arc<parking_lot::Mutex<Vec<String>>>) {
    let edge = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/protocols/a2a-edge");
    let jwks = std::fs::read_to_string(edge.join("test-only-keys.jwks.json")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let fetched = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let (seen, barrier) = (fetched.clone(), std::sync::Arc::new(tokio::sync::Barrier::new(together)));
    let keys = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        seen.lock().push(uri.path().to_owned());
        let numbered =
            uri.path().strip_prefix("/trusted/").and_then(|rest| rest.split('/').next()?.parse::<u32>().ok());
        let set = if numbered.is_some_and(|n| n > 0) { r#"{"keys": []}"#.to_owned() } else { jwks.clone() };
        let barrier = barrier.clone();
        async move {
            barrier.wait().await;
            ([("content-type", "application/json")], set)
        }
    });
    tokio::spawn(async move { axum::serve(listener, keys).await.unwrap() });
    (base, fetched)
}

fn pem_and_card() -> (Vec<u8>, Value) {
    let edge = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/protocols/a2a-edge");
    let pem = std::fs::read(edge.join("test-only-ed25519.pem")).unwrap();
    let card = json_of(&fixtures("a2a-agent-card").into_iter().find(|(n, _)| n.contains("currency")).unwrap().1);
    (pem, card)
}

#[tokio::test]
async fn a_jku_that_leaves_the_trusted_path_once_resolved_is_never_fetched() {
    let (base, fetched) = key_server(1).await;
    let (pem, card) = pem_and_card();
    let app = TestApp::spawn_with_args(&["--a2a-trusted-jku", &format!("{base}/trusted")]).await;
    for outside in ["/trusted/../admin/jwks.json", "/trusted/%2e%2e/admin/jwks.json", "/trusted-evil/jwks.json"] {
        let signed = signed_card_with_jku(card.clone(), &pem, "test-ed25519", &format!("{base}{outside}"));
        let agent = post_raw(&app, "/a2a/agents", &signed).await.ok(201).clone();
        assert_eq!(agent["registeredWith"]["signatureVerified"], false, "{outside}");
    }
    assert_eq!(*fetched.lock(), Vec::<String>::new(), "nothing outside the prefix was fetched");
    let inside = signed_card_with_jku(card, &pem, "test-ed25519", &format!("{base}/trusted/a/../jwks.json"));
    let agent = post_raw(&app, "/a2a/agents", &inside).await.ok(201).clone();
    assert_eq!(agent["registeredWith"]["signatureVerified"], true);
    assert_eq!(*fetched.lock(), ["/trusted/jwks.json"], "the URL fetched is the one checked");
}

#[tokio::test]
async fn the_key_sets_of_several_signatures_are_fetched_at_once() {
    // The key server answers only once all eight fetches have arrived, and only the first set
    // holds the key: fetched one after the other, the first would have timed out before the
    // last arrived, and the card would not verify.
    let (base, fetched) = key_server(8).await;
    let (pem, card) = pem_and_card();
    let signatures: Vec<Value> = (0..8)
        .map(|i| {
            let jku = format!("{base}/trusted/{i}/jwks.json");
            json_of(&signed_card_with_jku(card.clone(), &pem, "test-ed25519", &jku))["signatures"][0].clone()
        })
        .collect();
    let mut signed = card;
    signed["signatures"] = Value::Array(signatures);
    let app = TestApp::spawn_with_args(&["--a2a-trusted-jku", &format!("{base}/trusted/")]).await;
    let agent = post_raw(&app, "/a2a/agents", &serde_json::to_vec(&signed).unwrap()).await.ok(201).clone();
    assert_eq!(agent["registeredWith"]["signatureVerified"], true);
    assert_eq!(fetched.lock().len(), 8);
}

#[tokio::test]
async fn a_v1_card_with_grpc_interfaces_registers_them_as_grpc_endpoints_that_discovery_filters_on() {
    let app = TestApp::spawn().await;
    let (_, bytes) = fixtures("a2a-edge").into_iter().find(|(n, _)| n.contains("grpc")).unwrap();
    let agent = post_raw(&app, "/a2a/agents", &bytes).await.ok(201).clone();
    let id = agent["id"].as_str().unwrap();
    let endpoints: Vec<(&str, &str)> = agent["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["transport"].as_str().unwrap(), e["address"].as_str().unwrap()))
        .collect();
    assert_eq!(
        endpoints,
        [
            ("Grpc", "grpc://ledger.example.com:50051"),
            ("Grpc", "ledger-internal.example.com:443"),
            ("Http", "https://ledger.example.com/a2a/jsonrpc")
        ]
    );
    for path in ["/discover/agents?transport=Grpc", "/discover/agents?transport=grpc&protocol=A2A"] {
        let found = app.get(path).await.ok(200).clone();
        assert_eq!(found["items"][0]["id"], id, "{path}: {found}");
    }
    let cards = app.get("/a2a/agents?transport=Grpc").await.ok(200).clone();
    assert_eq!(cards["items"][0]["agentId"], id, "{cards}");
    let (_, _, served) = app.get_bytes(&format!("/a2a/agents/{id}/"), &[("a2a-version", "1.0")]).await;
    assert_eq!(served, bytes, "the card keeps its gRPC interfaces");
    let reply = app
        .post(
            "/agents",
            serde_json::json!({"name": "g", "endpoints": [{"name": "g", "protocol": "A2A",
            "transport": "Grpc", "address": "ledger.example.com"}]}),
        )
        .await;
    assert_eq!(reply.status, 400, "a gRPC target without a port: {}", reply.body);
}
