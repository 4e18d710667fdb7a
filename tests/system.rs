//! Health, readiness, the OpenAPI document and the API explorer.

use super::support::TestApp;

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = TestApp::spawn().await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status, 200);
    for reply in [&health, &app.get("/no/such/route").await] {
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(reply.header("x-frame-options"), Some("DENY"));
        assert_eq!(reply.header("referrer-policy"), Some("no-referrer"));
    }
    let ready = app.get("/readyz").await;
    let body = ready.ok(200);
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["storage"]["status"], "up");
    assert_eq!(body["checks"]["liveness"]["status"], "up");
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let app = TestApp::spawn_with_args(&["--public-url", "https://registry.example.com/base/"]).await;
    let spec = app.get("/openapi.json").await;
    let paths = spec.ok(200)["paths"].as_object().unwrap();
    let expected = [
        ("/agents", vec!["get", "post"]),
        ("/agents/{id}", vec!["delete", "get", "put"]),
        ("/agents/{id}/endpoints", vec!["post"]),
        ("/agents/{id}/endpoints/{eid}", vec!["delete", "get", "put"]),
        ("/agents/{id}/endpoints/{eid}/heartbeat", vec!["post"]),
        ("/agents/{id}/endpoints/{eid}/renew", vec!["post"]),
        ("/agents/{id}/heartbeat", vec!["post"]),
        ("/agents/{id}/owner", vec!["post"]),
        ("/api-keys", vec!["get", "post"]),
        ("/api-keys/{id}", vec!["delete", "get"]),
        ("/api-keys/bootstrap", vec!["post"]),
        ("/backup", vec!["get"]),
        ("/discover/agents", vec!["get"]),
        ("/healthz", vec!["get"]),
        ("/readyz", vec!["get"]),
    ];
    for (path, methods) in expected {
        let mut found: Vec<&str> = paths[path].as_object().unwrap().keys().map(String::as_str).collect();
        found.retain(|m| ["get", "post", "put", "delete"].contains(m));
        found.sort_unstable();
        assert_eq!(found, methods, "{path}");
    }
    assert_eq!(spec.body["servers"][0]["url"], "https://registry.example.com/base");
    assert_eq!(spec.body["components"]["securitySchemes"]["api_key"]["name"], "X-Api-Key");
    assert_eq!(paths["/agents"]["post"]["security"][0]["api_key"], serde_json::json!([]));
    assert_eq!(paths["/agents"]["post"]["security"][1]["bearer"], serde_json::json!([]), "or a bearer JWT");
    assert_eq!(paths["/agents"]["get"]["security"], serde_json::json!([{}]), "reads are public");
    let read = &paths["/agents/{id}"]["get"]["responses"];
    assert!(read["404"]["content"]["application/problem+json"].is_object(), "errors are problem documents: {read}");
    assert_eq!(read["503"]["$ref"], "#/components/responses/Unavailable");
    let unavailable = &spec.body["components"]["responses"]["Unavailable"];
    assert!(unavailable["headers"]["Retry-After"].is_object(), "{unavailable}");
    let register = &paths["/agents"]["post"]["responses"];
    for status in ["400", "401", "403", "413", "415", "429"] {
        assert!(register.get(status).is_some(), "POST /agents documents {status}");
    }
    let ids: Vec<&str> = paths
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    let unique: std::collections::BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "operation ids are unique");
    for outside in ["/mcp", "/metrics", "/.well-known/agent.json", "/v0/servers"] {
        assert!(paths.contains_key(outside), "{outside} is described too");
    }
    assert!(paths["/mcp"]["post"]["requestBody"].is_object());
    let schemas = spec.body["components"]["schemas"].as_object().unwrap();
    for schema in ["AgentInput", "EndpointInput", "Problem", "Transport", "Protocol", "LivenessModel"] {
        assert!(schemas.contains_key(schema), "{schema} is described");
    }
}

#[tokio::test]
async fn the_api_explorer_is_served_from_the_binary_and_allows_nothing_from_elsewhere() {
    let app = TestApp::spawn().await;
    let docs = app.get("/docs/").await;
    assert_eq!(docs.status, 200);
    assert!(docs.header("content-type").is_some_and(|c| c.starts_with("text/html")));
    let policy = docs.header("content-security-policy").expect("a policy").to_owned();
    assert!(policy.contains("default-src 'none'") && policy.contains("script-src 'self'"), "{policy}");
    let initializer = app.get("/docs/swagger-initializer.js").await;
    let script = initializer.body.as_str().unwrap_or_default();
    assert!(script.contains("/openapi.json"), "the explorer reads this registry's document: {script}");
    let landing = app.get("/").await;
    assert_eq!(landing.status, 200);
    let page = landing.body.as_str().unwrap_or_default();
    assert!(page.contains("href=\"/docs\"") && page.contains("href=\"/status\""), "{page}");
}

#[tokio::test]
async fn responses_match_the_documented_schemas_field_for_field() {
    use agent_registry_core::view::{AgentView, EndpointView, PageView};
    let app = TestApp::spawn().await;
    let mut body = super::support::agent("Schema", "check", super::support::persistent(10));
    body["endpoints"][0]["protocolMetadata"] = serde_json::json!({"b": 1, "a": [true]});
    body["labels"] = serde_json::json!({"k": "v"});
    body["metadata"] = serde_json::json!({"m": null});
    let created = app.register(body).await;
    let agent: AgentView = serde_json::from_value(created.clone()).expect("POST /agents matches AgentView");
    let path = format!("/agents/{}", agent.id);
    serde_json::from_value::<AgentView>(app.get(&path).await.body).expect("GET matches AgentView");
    let page = app.get("/discover/agents?capability=check&pageSize=1").await;
    let page: PageView = serde_json::from_value(page.body).expect("discovery matches PageView");
    assert_eq!(page.items.len(), 1);
    let eid = agent.endpoints[0].id;
    let endpoint = app.get(&format!("{path}/endpoints/{eid}")).await;
    serde_json::from_value::<EndpointView>(endpoint.body).expect("GET endpoint matches EndpointView");
}

#[tokio::test]
async fn cross_origin_access_is_off_by_default_and_allowed_only_for_configured_origins() {
    let preflight = [("origin", "https://console.example"), ("access-control-request-method", "POST")];
    let closed = TestApp::spawn().await;
    let reply = closed.send(reqwest::Method::OPTIONS, "/agents", None, &preflight).await;
    assert!(reply.header("access-control-allow-origin").is_none());

    let open = TestApp::spawn_with_args(&["--cors-allow-origins", "https://console.example"]).await;
    let reply = open.send(reqwest::Method::OPTIONS, "/agents", None, &preflight).await;
    assert_eq!(reply.header("access-control-allow-origin"), Some("https://console.example"));
    assert!(reply.header("access-control-allow-headers").is_some_and(|h| h.contains("x-api-key")));
    let other = [("origin", "https://evil.example"), ("access-control-request-method", "POST")];
    let reply = open.send(reqwest::Method::OPTIONS, "/agents", None, &other).await;
    assert!(reply.header("access-control-allow-origin").is_none());
    let read =
        open.send(reqwest::Method::GET, "/discover/agents", None, &[("origin", "https://console.example")]).await;
    assert_eq!(read.header("access-control-allow-origin"), Some("https://console.example"));

    // A wildcard allows every origin (it used to panic inside tower-http at start).
    let any = TestApp::spawn_with_args(&["--cors-allow-origins", "*"]).await;
    let reply = any.send(reqwest::Method::OPTIONS, "/agents", None, &other).await;
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
}

#[tokio::test]
async fn status_counts_what_the_store_holds_on_every_backend() {
    let app = TestApp::spawn().await;
    for n in 0..3 {
        app.register(crate::support::agent(&format!("Counted {n}"), "count", crate::support::ephemeral(60))).await;
    }
    let status = app.get("/status").await.ok(200).clone();
    assert_eq!(status["agents"], 3);
    assert_eq!(status["storage"]["agents"], 3, "{status}");
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert!(status["uptimeSeconds"].is_u64() && status["commit"].is_string(), "{status}");
    let index = &status["index"];
    assert_eq!((index["liveAgents"].as_u64(), index["staleAgents"].as_u64()), (Some(3), Some(0)), "{status}");
    assert_eq!((index["endpoints"].as_u64(), index["liveEndpoints"].as_u64()), (Some(3), Some(3)), "{status}");
    assert_eq!(status["backends"]["storage"]["state"]["status"], "up", "{status}");
    assert_eq!(status["backends"]["liveness"]["state"]["status"], "up", "{status}");
    assert_eq!(status["changeLog"]["lag"], 0, "{status}");
    assert_eq!(status["watchStreams"], 0, "{status}");
    // Once the leases end, the same agents are stale.
    app.clock.advance_secs(61);
    let later = app.get("/status").await.ok(200).clone();
    assert_eq!(later["index"]["staleAgents"], 3, "{later}");
    assert_eq!(later["index"]["liveEndpoints"], 0, "{later}");
    assert!(status["storage"]["changes"].as_u64().unwrap() >= 3, "{status}");
    assert!(status["storage"]["bytes"].as_u64().unwrap() > 0, "{status}");
}
