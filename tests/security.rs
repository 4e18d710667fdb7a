//! Credentials and ownership on every management route: API keys with scopes, bootstrap,
//! revocation and expiry, and agents that only their owner (or Admin) may change.

use reqwest::Method;
use serde_json::{Value, json};

use super::support::{BOOTSTRAP_TOKEN, Http, TestApp, agent, ephemeral, persistent};

/// Every management route, for an agent `id` with one Persistent endpoint `eid`.
fn management_routes(id: &str, eid: &str) -> Vec<(Method, String, Option<Value>)> {
    let endpoint = json!({"name": "other", "address": "https://other.example"});
    vec![
        (Method::POST, "/agents".into(), Some(agent("New", "skill", ephemeral(60)))),
        (Method::PUT, format!("/agents/{id}"), Some(json!({"name": "Renamed"}))),
        (Method::POST, format!("/agents/{id}/endpoints"), Some(endpoint.clone())),
        (Method::PUT, format!("/agents/{id}/endpoints/{eid}"), Some(endpoint)),
        (Method::POST, format!("/agents/{id}/endpoints/{eid}/heartbeat"), None),
        (Method::POST, format!("/agents/{id}/endpoints/{eid}/renew"), None),
        (Method::POST, format!("/agents/{id}/heartbeat"), None),
        (Method::POST, format!("/agents/{id}/owner"), Some(json!({"ownerId": "someone"}))),
        (Method::DELETE, format!("/agents/{id}/endpoints/{eid}"), None),
        (Method::DELETE, format!("/agents/{id}"), None),
        (Method::POST, "/api-keys".into(), Some(json!({"ownerId": "x", "scope": "Agent"}))),
        (Method::GET, "/api-keys".into(), None),
    ]
}

async fn registered(app: &Http, name: &str) -> (String, String) {
    let created = app.register(agent(name, "guarded", persistent(30))).await;
    (created["id"].as_str().unwrap().to_owned(), created["endpoints"][0]["id"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn every_management_route_needs_credentials_and_public_reads_do_not() {
    let app = TestApp::spawn_with_args(&JWT_ARGS).await;
    let (id, eid) = registered(&app, "Guarded").await;
    let anonymous = app.with_key(None);
    // Credentials that must all fail: a revoked key, an expired key, and bad tokens.
    let revoked = app.issue_key("admin", "Admin").await;
    let keys = app.get("/api-keys?active=true").await.body["items"].as_array().unwrap().clone();
    let revoked_id = keys.iter().find(|k| revoked.starts_with(k["prefix"].as_str().unwrap())).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.delete(&format!("/api-keys/{revoked_id}")).await.ok(204);
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc3339();
    let expiring = app.post("/api-keys", json!({"ownerId": "admin", "scope": "Admin", "expiresAt": soon})).await;
    let expired = expiring.ok(201)["key"].as_str().unwrap().to_owned();
    app.clock.advance_secs(31);
    let admin = json!({"sub": "ops", "registry_scope": "Admin"});
    let now = chrono::Utc::now().timestamp();
    let with = |extra: Value| {
        let mut claims = admin.clone();
        extra.as_object().unwrap().iter().for_each(|(k, v)| claims[k] = v.clone());
        claims
    };
    let bad_tokens = [
        token(JWT_SECRET, with(json!({"exp": now - 600}))),
        token("another-secret-of-at-least-32-characters", admin.clone()),
        token(JWT_SECRET, with(json!({"aud": "someone-else"}))),
        token(JWT_SECRET, with(json!({"iss": "https://evil.test"}))),
    ];
    for (method, path, body) in management_routes(&id, &eid) {
        let reply = anonymous.send(method.clone(), &path, body.clone(), &[]).await;
        reply.problem(401, "unauthenticated");
        assert!(reply.header("www-authenticate").is_some(), "{method} {path}");
        for key in [&revoked, &expired] {
            app.with_key(Some(key))
                .send(method.clone(), &path, body.clone(), &[])
                .await
                .problem(401, "unauthenticated");
        }
        for bad in &bad_tokens {
            let auth = format!("Bearer {bad}");
            let reply = anonymous.send(method.clone(), &path, body.clone(), &[("authorization", &auth)]).await;
            assert_eq!(reply.status, 401, "{method} {path}: {}", reply.body);
        }
    }
    // Admin-only routes refuse an Agent credential.
    let agent_key = app.with_key(Some(&app.issue_key("nora", "Agent").await));
    for (method, path, body) in
        management_routes(&id, &eid).into_iter().filter(|(_, p, _)| p.contains("api-keys") || p.ends_with("/owner"))
    {
        agent_key.send(method.clone(), &path, body, &[]).await.problem(403, "forbidden");
    }
    agent_key.get("/events").await.problem(403, "forbidden");
    let forged = app.with_key(Some("ar_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
    forged.send(Method::DELETE, &format!("/agents/{id}"), None, &[]).await.problem(401, "unauthenticated");
    let bearer =
        anonymous.send(Method::DELETE, &format!("/agents/{id}"), None, &[("authorization", "Bearer x.y.z")]).await;
    bearer.problem(401, "unauthenticated");
    for path in ["/discover/agents?capability=guarded", "/agents", "/healthz", "/readyz", "/openapi.json"] {
        assert_eq!(anonymous.get(path).await.status, 200, "{path} is public");
    }
    assert_eq!(anonymous.get(&format!("/agents/{id}")).await.ok(200)["name"], "Guarded");
}

#[tokio::test]
async fn an_agent_key_manages_its_own_agents_only_and_cannot_tell_whether_others_exist() {
    let app = TestApp::spawn().await;
    let alice = app.with_key(Some(&app.issue_key("alice", "Agent").await));
    let bob = app.with_key(Some(&app.issue_key("bob", "Agent").await));
    let (id, eid) = registered(&bob, "Bob's").await;
    assert_eq!(bob.get(&format!("/agents/{id}")).await.body["ownerId"], "bob", "the creator's owner id");
    let missing = "00000000-0000-4000-8000-000000000000";
    for (method, path, body) in management_routes(&id, &eid).into_iter().skip(1) {
        let theirs = alice.send(method.clone(), &path, body.clone(), &[]).await;
        theirs.problem(403, "forbidden");
        let unknown = alice.send(method.clone(), &path.replace(&id, missing), body, &[]).await;
        assert_eq!(unknown.status, 403, "{method} {path}: an unknown agent looks like someone else's");
        assert_eq!(unknown.body["detail"], theirs.body["detail"].as_str().unwrap().replace(&id, missing));
    }
    // Bob manages his own agent; he may not register for someone else.
    bob.post_empty(&format!("/agents/{id}/endpoints/{eid}/heartbeat")).await.ok(200);
    bob.put(&format!("/agents/{id}"), json!({"name": "Bob's renamed"})).await.ok(200);
    let mut for_alice = agent("Not mine", "guarded", ephemeral(60));
    for_alice["ownerId"] = json!("alice");
    bob.post("/agents", for_alice.clone()).await.problem(403, "forbidden");
    // Admin may act for anyone, and give the agent away.
    assert_eq!(app.post("/agents", for_alice).await.ok(201)["ownerId"], "alice");
    let moved = app.post(&format!("/agents/{id}/owner"), json!({"ownerId": "alice"})).await;
    assert_eq!(moved.ok(200)["ownerId"], "alice");
    alice.post_empty(&format!("/agents/{id}/endpoints/{eid}/heartbeat")).await.ok(200);
    bob.delete(&format!("/agents/{id}")).await.problem(403, "forbidden");
    alice.delete(&format!("/agents/{id}")).await;
    app.get(&format!("/agents/{id}")).await.problem(404, "agent_not_found");
}

#[tokio::test]
async fn keys_are_shown_once_listed_without_secrets_and_revoked_or_expired_keys_fail() {
    let app = TestApp::spawn().await;
    let issued = app.post("/api-keys", json!({"ownerId": "carol", "scope": "Agent", "description": "ci"})).await;
    let body = issued.ok(201).clone();
    let secret = body["key"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("ar_") && secret.len() >= 46, "256 random bits: {secret}");
    assert_eq!(issued.header("cache-control"), Some("no-store"));
    assert!(secret.starts_with(body["prefix"].as_str().unwrap()));
    let id = body["id"].as_str().unwrap().to_owned();
    let listed = app.get("/api-keys?owner=carol").await;
    assert_eq!(listed.ok(200)["items"].as_array().unwrap().len(), 1);
    assert!(!listed.body.to_string().contains(&secret[3..]), "listings never carry the secret");
    assert!(!app.get(&format!("/api-keys/{id}")).await.body.to_string().contains(&secret[3..]));

    let carol = app.with_key(Some(&secret));
    carol.get("/api-keys").await.problem(403, "forbidden");
    carol.post("/api-keys", json!({"ownerId": "carol", "scope": "Admin"})).await.problem(403, "forbidden");
    let (id_a, _) = registered(&carol, "Carol's").await;
    app.delete(&format!("/api-keys/{id}")).await.ok(204);
    app.delete(&format!("/api-keys/{id}")).await.problem(409, "api_key_revoked");
    app.delete("/api-keys/00000000-0000-4000-8000-000000000000").await.problem(404, "api_key_not_found");
    carol.delete(&format!("/agents/{id_a}")).await.problem(401, "unauthenticated");
    assert_eq!(app.get("/api-keys?owner=carol&active=false").await.body["items"][0]["active"], false);

    let soon = (chrono::Utc::now() + chrono::Duration::seconds(60)).to_rfc3339();
    let expiring = app.post("/api-keys", json!({"ownerId": "dave", "scope": "Agent", "expiresAt": soon})).await;
    let dave = app.with_key(Some(expiring.ok(201)["key"].as_str().unwrap()));
    registered(&dave, "Dave's").await;
    app.clock.advance_secs(61);
    dave.post("/agents", agent("Late", "guarded", ephemeral(60))).await.problem(401, "unauthenticated");
    let past =
        app.post("/api-keys", json!({"ownerId": "d", "scope": "Agent", "expiresAt": "2001-01-01T00:00:00Z"})).await;
    assert_eq!(past.problem(400, "validation_failed")["errors"][0]["pointer"], "/expiresAt");
    app.post("/api-keys", json!({"ownerId": "d", "scope": "Root"})).await.problem(400, "validation_failed");
}

#[tokio::test]
async fn the_last_active_admin_key_is_not_revoked_unless_forced() {
    let app = TestApp::spawn().await;
    let id_of = |keys: &Value, secret: &str| {
        let keys = keys["items"].as_array().unwrap();
        keys.iter().find(|k| secret.starts_with(k["prefix"].as_str().unwrap())).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let second = app.issue_key("ops", "Admin").await;
    let keys = app.get("/api-keys?active=true").await.ok(200).clone();
    let ops = app.with_key(Some(&second));
    let first_id = keys["items"].as_array().unwrap().iter().find(|k| k["ownerId"] == "admin").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let second_id = id_of(&keys, &second);

    // With two Admin keys one may go; the other is then the last and stays.
    ops.delete(&format!("/api-keys/{first_id}")).await.ok(204);
    let refused = ops.delete(&format!("/api-keys/{second_id}")).await;
    assert!(refused.problem(409, "last_admin_key")["detail"].as_str().unwrap().contains(&second_id));
    ops.get("/api-keys").await.ok(200);
    // An Agent key going away is never refused, and neither is a forced revocation.
    let agent_key = ops.issue_key("carol", "Agent").await;
    let agent_id = id_of(&ops.get("/api-keys?owner=carol").await.ok(200).clone(), &agent_key);
    ops.delete(&format!("/api-keys/{agent_id}")).await.ok(204);
    ops.delete(&format!("/api-keys/{second_id}?force=yes")).await.problem(400, "invalid_query");
    ops.delete(&format!("/api-keys/{second_id}?force=true")).await.ok(204);
    ops.get("/api-keys").await.problem(401, "unauthenticated");
}

#[tokio::test]
async fn bootstrap_needs_the_token_is_refused_once_an_admin_exists_and_slows_guessing() {
    // The test app issues itself the first Admin key with the token; that closes bootstrap.
    let app = TestApp::spawn_with_args(&["--bootstrap-token", BOOTSTRAP_TOKEN]).await;
    let anonymous = app.with_key(None);
    let bootstrap = |token: &'static str| {
        let anonymous = anonymous.clone();
        async move { anonymous.send(Method::POST, "/api-keys/bootstrap", None, &[("x-bootstrap-token", token)]).await }
    };
    bootstrap(BOOTSTRAP_TOKEN).await.problem(409, "bootstrap_refused");
    for _ in 0..5 {
        bootstrap("a-wrong-token-of-some-length").await.problem(401, "unauthenticated");
    }
    bootstrap("a-wrong-token-of-some-length").await.problem(429, "rate_limited");
    bootstrap(BOOTSTRAP_TOKEN).await.problem(429, "rate_limited");
}

#[tokio::test]
async fn a_bootstrap_guesser_locks_out_its_own_address_only() {
    let app = TestApp::spawn_with_args(&["--bootstrap-token", BOOTSTRAP_TOKEN, "--trusted-proxies", "127.0.0.1"]).await;
    let anonymous = app.with_key(None);
    let from = |client: &'static str, token: &'static str| {
        let anonymous = anonymous.clone();
        async move {
            let headers = [("x-bootstrap-token", token), ("x-forwarded-for", client)];
            anonymous.send(Method::POST, "/api-keys/bootstrap", None, &headers).await
        }
    };
    for _ in 0..5 {
        from("203.0.113.9", "a-wrong-token-of-some-length").await.problem(401, "unauthenticated");
    }
    from("203.0.113.9", BOOTSTRAP_TOKEN).await.problem(429, "rate_limited");
    // Another address still reaches the token check (bootstrap is closed: the app has its key).
    from("203.0.113.10", BOOTSTRAP_TOKEN).await.problem(409, "bootstrap_refused");
}

#[tokio::test]
async fn without_a_bootstrap_token_the_bootstrap_route_does_not_exist() {
    let app = TestApp::spawn_without_keys().await;
    for body in [None, Some(json!({"description": "x"}))] {
        let reply =
            app.send(Method::POST, "/api-keys/bootstrap", body, &[("x-bootstrap-token", BOOTSTRAP_TOKEN)]).await;
        reply.problem(404, "route_not_found");
    }
    app.post("/agents", agent("Nobody", "skill", ephemeral(60))).await.problem(401, "unauthenticated");
}

#[tokio::test]
async fn every_change_is_audited_with_who_and_from_where_and_only_admin_or_the_owner_reads_it() {
    let app = TestApp::spawn().await;
    let gina_key = app.issue_key("gina", "Agent").await;
    let gina = app.with_key(Some(&gina_key));
    let (id, eid) = registered(&gina, "Gina's").await;
    gina.put(&format!("/agents/{id}"), json!({"name": "Gina's", "description": "new"})).await.ok(200);
    gina.delete(&format!("/agents/{id}/endpoints/{eid}")).await.ok(204);
    app.post(&format!("/agents/{id}/owner"), json!({"ownerId": "hugo"})).await.ok(200);

    let trail = app.get(&format!("/agents/{id}/events")).await;
    let items = trail.ok(200)["items"].as_array().unwrap().clone();
    let actions: Vec<&str> = items.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["owner_transferred", "endpoint_removed", "updated", "registered"], "newest first");
    let gina_id = app.get("/api-keys?owner=gina").await.body["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(items[3]["actor"], format!("key:{gina_id}"));
    assert_eq!(items[3]["source"], "127.0.0.1");
    assert_eq!(items[2]["summary"], "changed description");
    assert_eq!(items[0]["summary"], "owner `gina` → `hugo`");
    assert!(items.windows(2).all(|w| w[0]["revision"].as_u64() > w[1]["revision"].as_u64()));

    // Key events are in the registry-wide trail; secrets never are.
    let all = app.get("/events?action=api_key_issued").await;
    assert!(all.ok(200)["items"].as_array().unwrap().iter().any(|e| e["keyId"] == gina_id.as_str()));
    assert!(!app.get("/events?limit=500").await.body.to_string().contains(&gina_key[3..]));
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let none_yet = app.get(&format!("/events?since={}", later.replace('+', "%2B"))).await;
    assert_eq!(none_yet.ok(200)["items"].as_array().unwrap().len(), 0);
    let before_later = app.get(&format!("/events?until={}", later.replace('+', "%2B"))).await;
    assert!(before_later.ok(200)["items"].as_array().unwrap().len() >= 4);
    let first = app.get("/events?limit=2").await;
    let cursor = first.ok(200)["nextCursor"].as_u64().expect("a next page");
    let next = app.get(&format!("/events?limit=2&cursor={cursor}")).await;
    assert!(next.ok(200)["items"][0]["id"].as_u64().unwrap() < cursor);

    // Gina no longer owns the agent; she may read no trail but her own agents'.
    gina.get(&format!("/agents/{id}/events")).await.problem(403, "forbidden");
    gina.get("/events").await.problem(403, "forbidden");
    app.with_key(None).get("/events").await.problem(401, "unauthenticated");
    app.get("/events?limit=0").await.problem(400, "invalid_query");
    // One paging spelling everywhere: `pageSize`, as discovery has it (`limit` stays accepted).
    let by_page_size = app.get("/events?pageSize=2").await;
    assert_eq!(by_page_size.ok(200)["items"], first.body["items"]);
    assert_eq!(app.get("/events?pageSize=501").await.pointers(), ["?pageSize"]);
    assert_eq!(app.get("/events?pageSize=2&limit=2").await.pointers(), ["?limit"]);
    // The parameter at fault is named, whatever it is.
    assert_eq!(app.get("/events?actr=me").await.pointers(), ["?actr"]);
    assert_eq!(app.get("/events?cursor=soon").await.pointers(), ["?cursor"]);
    assert_eq!(app.get("/events?since=yesterday").await.pointers(), ["?since"]);
    assert_eq!(app.get("/api-keys?active=maybe").await.pointers(), ["?active"]);
    assert_eq!(app.get("/api-keys?ownr=gina").await.pointers(), ["?ownr"]);
    // Nothing edits or deletes events.
    assert_eq!(app.delete("/events").await.status, 405);
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after_per_address_and_per_key() {
    let app = TestApp::spawn_with_args(&["--rate-limit-discovery", "5", "--rate-limit-key", "3"]).await;
    // A burst of twice the rate per second, then 429.
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(app.get("/discover/agents").await.status.as_u16());
    }
    assert!(statuses[..10].iter().all(|s| *s == 200), "{statuses:?}");
    let limited = app.get("/discover/agents").await;
    limited.problem(429, "rate_limited");
    assert!(limited.header("retry-after").and_then(|s| s.parse::<u64>().ok()).is_some_and(|s| s >= 1));
    // Looking an ACP agent up by name may search them all: it counts as discovery.
    app.get("/acp/agents/no-such-agent").await.problem(429, "rate_limited");
    // Management: per key (the test app's Admin key used one request to issue itself).
    let key = app.issue_key("ivan", "Agent").await;
    let ivan = app.with_key(Some(&key));
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(ivan.get("/api-keys/00000000-0000-4000-8000-000000000000").await.status.as_u16());
    }
    assert_eq!(statuses[..6], [404; 6], "{statuses:?}");
    assert_eq!(statuses[6], 429);
    // Another key is not slowed down by Ivan's.
    app.with_key(Some(&app.issue_key("judy", "Agent").await))
        .post("/agents", agent("J", "s", ephemeral(9)))
        .await
        .ok(201);
}

#[tokio::test]
async fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
    let trusting = TestApp::spawn_with_args(&["--rate-limit-discovery", "1", "--trusted-proxies", "127.0.0.1"]).await;
    for client in ["203.0.113.1", "203.0.113.2"] {
        let forwarded = [("x-forwarded-for", client)];
        for _ in 0..2 {
            trusting.send(Method::GET, "/discover/agents", None, &forwarded).await.ok(200);
        }
        trusting.send(Method::GET, "/discover/agents", None, &forwarded).await.problem(429, "rate_limited");
    }
    // The audit trail names the forwarded client, not the proxy.
    let forwarded = [("x-forwarded-for", "198.51.100.7, 127.0.0.1")];
    let created = trusting.send(Method::POST, "/agents", Some(agent("Proxied", "p", ephemeral(9))), &forwarded).await;
    let id = created.ok(201)["id"].as_str().unwrap().to_owned();
    assert_eq!(trusting.get(&format!("/agents/{id}/events")).await.body["items"][0]["source"], "198.51.100.7");

    // Without trusted proxies the header is ignored: clients cannot pick their own address.
    let plain = TestApp::spawn_with_args(&["--rate-limit-discovery", "1"]).await;
    let mut limited = 0;
    for client in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        let reply = plain.send(Method::GET, "/discover/agents", None, &[("x-forwarded-for", client)]).await;
        limited += usize::from(reply.status == 429);
    }
    assert_eq!(limited, 1, "three requests from one real address: the third is limited");
}

/// The HS256 secret, issuer and audience of the JWT tests.
const JWT_SECRET: &str = "a-test-secret-of-at-least-32-characters!";
const JWT_ARGS: [&str; 6] =
    ["--jwt-hs256-secret", JWT_SECRET, "--jwt-issuer", "https://issuer.test", "--jwt-audience", "agent-registry"];

/// A token with these claims (defaults: valid for an hour, right issuer and audience); a claim
/// given as `null` is left out.
fn token(secret: &str, claims: Value) -> String {
    let now = chrono::Utc::now().timestamp();
    let mut all = json!({"iss": "https://issuer.test", "aud": "agent-registry", "exp": now + 3600, "nbf": now - 10});
    for (k, v) in claims.as_object().unwrap() {
        all[k] = v.clone();
    }
    all.as_object_mut().unwrap().retain(|_, v| !v.is_null());
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &all,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn jwt_bearer_tokens_carry_owner_and_scope_and_bad_ones_are_401() {
    let app = TestApp::spawn_with_args(&JWT_ARGS).await;
    let anonymous = app.with_key(None);
    let bearer = |t: &str| format!("Bearer {t}");
    let send = |token: String| {
        let anonymous = anonymous.clone();
        async move {
            let body = Some(agent("By token", "jwt", ephemeral(60)));
            anonymous.send(Method::POST, "/agents", body, &[("authorization", &bearer(&token))]).await
        }
    };
    let agent_token = token(JWT_SECRET, json!({"sub": "kim", "registry_scope": "Agent"}));
    let created = send(agent_token.clone()).await;
    assert_eq!(created.ok(201)["ownerId"], "kim", "the owner is the token's subject");
    let id = created.body["id"].as_str().unwrap().to_owned();
    let admin_by_role = token(JWT_SECRET, json!({"sub": "ops", "roles": ["registry.admin"]}));
    let headers = [("authorization", bearer(&admin_by_role))];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    anonymous.send(Method::GET, "/api-keys", None, &headers).await.ok(200);
    let other = token(JWT_SECRET, json!({"sub": "lee", "roles": ["registry.agent"]}));
    let headers = [("authorization", bearer(&other))];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    anonymous.send(Method::DELETE, &format!("/agents/{id}"), None, &headers).await.problem(403, "forbidden");

    let now = chrono::Utc::now().timestamp();
    for (what, bad) in [
        ("expired", token(JWT_SECRET, json!({"sub": "kim", "registry_scope": "Agent", "exp": now - 600}))),
        ("forged", token("another-secret-of-at-least-32-characters", json!({"sub": "kim", "registry_scope": "Agent"}))),
        ("wrong audience", token(JWT_SECRET, json!({"sub": "kim", "registry_scope": "Agent", "aud": "other"}))),
        (
            "wrong issuer",
            token(JWT_SECRET, json!({"sub": "kim", "registry_scope": "Agent", "iss": "https://evil.test"})),
        ),
        ("not yet valid", token(JWT_SECRET, json!({"sub": "kim", "registry_scope": "Agent", "nbf": now + 600}))),
        ("without sub", token(JWT_SECRET, json!({"registry_scope": "Agent"}))),
        ("without aud", token(JWT_SECRET, json!({"sub": "ops", "roles": ["registry.admin"], "aud": null}))),
        ("without iss", token(JWT_SECRET, json!({"sub": "ops", "roles": ["registry.admin"], "iss": null}))),
        ("a subject too long", token(JWT_SECRET, json!({"sub": "k".repeat(5_000), "registry_scope": "Agent"}))),
        (
            "a subject with control characters",
            token(JWT_SECRET, json!({"sub": "bad\nsub\u{0}", "registry_scope": "Agent"})),
        ),
        ("an empty subject", token(JWT_SECRET, json!({"sub": " ", "registry_scope": "Agent"}))),
        ("not a JWT", "x.y.z".to_owned()),
    ] {
        let reply = send(bad).await;
        assert_eq!(reply.status, 401, "{what}: {}", reply.body);
        reply.problem(401, "unauthenticated");
    }
    send(token(JWT_SECRET, json!({"sub": "kim"}))).await.problem(403, "forbidden");
    assert!(!app.get("/events?limit=500").await.body.to_string().contains(&agent_token), "tokens are not audited");
}

#[tokio::test]
async fn anonymous_readers_see_no_owner_or_private_labels_when_configured() {
    let app = TestApp::spawn_with_args(&["--hide-owner-from-anonymous", "--private-label-prefixes", "internal."]).await;
    let mut body = agent("Private", "secretive", ephemeral(60));
    body["labels"] = json!({"team": "a", "internal.cost-center": "42"});
    body["ownerId"] = json!("lena");
    let id = app.register(body).await["id"].as_str().unwrap().to_owned();
    let anonymous = app.with_key(None);

    let seen = anonymous.get(&format!("/agents/{id}")).await;
    assert!(seen.ok(200).get("ownerId").is_none(), "{}", seen.body);
    assert_eq!(seen.body["labels"], json!({"team": "a"}));
    let found = anonymous.get("/discover/agents?capability=secretive").await;
    assert!(found.ok(200)["items"][0].get("ownerId").is_none());
    assert_eq!(found.body["items"][0]["labels"], json!({"team": "a"}));
    // Filtering by what is hidden would reveal it.
    anonymous.get("/agents?owner=lena").await.problem(403, "forbidden");
    anonymous.get("/discover/agents?label=internal.cost-center:42").await.problem(403, "forbidden");
    anonymous.get("/discover/agents?label=team:a").await.ok(200);
    for route in ["/a2a/agents", "/mcp/servers", "/acp/agents"] {
        let filtered = format!("{route}?label=internal.cost-center:42&liveOnly=false");
        anonymous.get(&filtered).await.problem(403, "forbidden");
        app.get(&filtered).await.ok(200);
    }

    // With credentials, everything.
    let full = app.get(&format!("/agents/{id}")).await;
    assert_eq!(full.ok(200)["ownerId"], "lena");
    assert_eq!(full.body["labels"]["internal.cost-center"], "42");
    assert_eq!(app.get("/agents?owner=lena").await.ok(200)["totalCount"], 1);
    assert_eq!(app.discovered("/discover/agents?label=internal.cost-center:42").await, ["Private"]);

    // By default nothing is hidden.
    let open = TestApp::spawn().await;
    let mut body = agent("Open", "open", ephemeral(60));
    body["labels"] = json!({"internal.x": "1"});
    let id = open.register(body).await["id"].as_str().unwrap().to_owned();
    let seen = open.with_key(None).get(&format!("/agents/{id}")).await;
    assert_eq!(seen.ok(200)["labels"]["internal.x"], "1");
    assert!(seen.body["ownerId"].is_string());
}

/// A token signed with one of the RSA test keys in `fixtures/jwt`, naming it as `kid`.
fn rsa_token(key_file: &str, kid: &str, claims: Value) -> String {
    let pem = std::fs::read(format!("{}/../../fixtures/jwt/{key_file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    let now = chrono::Utc::now().timestamp();
    let mut all = json!({"aud": "agent-registry", "exp": now + 3600});
    for (k, v) in claims.as_object().unwrap() {
        all[k] = v.clone();
    }
    jsonwebtoken::encode(&header, &all, &jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap()
}

/// A local OIDC issuer serving its discovery document and a key set that a test can swap.
async fn oidc_issuer(jwks: &'static str) -> (String, std::sync::Arc<parking_lot::Mutex<&'static str>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let current = std::sync::Arc::new(parking_lot::Mutex::new(jwks));
    let (served, jwks_uri) = (current.clone(), format!("{base}/keys"));
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            axum::routing::get(move || {
                let jwks_uri = jwks_uri.clone();
                async move { axum::Json(json!({"jwks_uri": jwks_uri})) }
            }),
        )
        .route(
            "/keys",
            axum::routing::get(move || {
                let file = *served.lock();
                async move {
                    let path = format!("{}/../../fixtures/jwt/{file}", env!("CARGO_MANIFEST_DIR"));
                    let text = std::fs::read_to_string(path).unwrap();
                    ([("content-type", "application/json")], text)
                }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, current)
}

#[tokio::test]
async fn tokens_of_an_oidc_issuer_are_checked_against_its_keys_which_may_rotate() {
    let (issuer, jwks) = oidc_issuer("jwks-key1.json").await;
    let app = TestApp::spawn_with_args(&["--oidc-issuer", &issuer, "--jwt-audience", "agent-registry"]).await;
    let anonymous = app.with_key(None);
    let claims = json!({"iss": issuer, "sub": "mia", "registry_scope": "Agent"});
    let send = |token: String| {
        let anonymous = anonymous.clone();
        async move {
            let auth = format!("Bearer {token}");
            anonymous
                .send(
                    Method::POST,
                    "/agents",
                    Some(agent("By OIDC", "oidc", ephemeral(60))),
                    &[("authorization", &auth)],
                )
                .await
        }
    };
    assert_eq!(send(rsa_token("test-only-key1.pem", "key1", claims.clone())).await.ok(201)["ownerId"], "mia");
    // Signed with another key than the one it names, or naming an unknown key: refused.
    send(rsa_token("test-only-key2.pem", "key1", claims.clone())).await.problem(401, "unauthenticated");
    send(rsa_token("test-only-key1.pem", "key9", claims.clone())).await.problem(401, "unauthenticated");
    let mut wrong_issuer = claims.clone();
    wrong_issuer["iss"] = json!("https://elsewhere.test");
    send(rsa_token("test-only-key1.pem", "key1", wrong_issuer)).await.problem(401, "unauthenticated");

    // The issuer rotates to key 2: the first token naming it makes the registry fetch the keys.
    *jwks.lock() = "jwks-key2.json";
    tokio::time::sleep(std::time::Duration::from_secs(5)).await; // fetches are at most every 5 s
    assert_eq!(send(rsa_token("test-only-key2.pem", "key2", claims.clone())).await.status, 201);
    // An HS256 token is not accepted without a configured secret (no algorithm confusion).
    send(token("any-secret-of-at-least-32-characters-long", json!({"sub": "mia", "registry_scope": "Admin"})))
        .await
        .problem(401, "unauthenticated");
}

#[tokio::test]
async fn an_endpoint_expiring_and_coming_back_is_in_the_audit_trail_once() {
    let app = TestApp::spawn().await;
    let created = app.register(agent("Lapsing", "lapse", ephemeral(10))).await;
    let (id, eid) = (created["id"].as_str().unwrap(), created["endpoints"][0]["id"].as_str().unwrap());
    app.maintain().await;
    app.clock.advance_secs(11);
    app.maintain().await;
    app.maintain().await;
    app.post_empty(&format!("/agents/{id}/endpoints/{eid}/renew")).await.ok(200);
    let actions = || async {
        let trail = app.get(&format!("/agents/{id}/events")).await;
        trail.ok(200)["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    // The "live again" event is written off the request path.
    let mut seen = actions().await;
    for _ in 0..50 {
        if seen.len() == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        seen = actions().await;
    }
    assert_eq!(seen, ["endpoint_live", "endpoint_expired", "registered"]);
}

/// Reads one HTTP/1.1 response (head and a `Content-Length` body) from `socket`: its head, or
/// `None` if the connection closed first.
async fn read_response(socket: &mut tokio::net::TcpStream) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
            let length: usize =
                head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap());
            if bytes.len() >= end + 4 + length {
                return Some(head);
            }
        }
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
        }
    }
}

#[tokio::test]
async fn a_connection_answered_before_its_body_was_read_serves_the_next_request_or_says_it_closes() {
    use tokio::io::AsyncWriteExt;
    let app = TestApp::spawn().await;
    let mut socket = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap();
    let body = json!({"name": "Early", "description": "x".repeat(4_000)}).to_string();
    let head = format!(
        "POST /agents HTTP/1.1\r\nhost: registry\r\ncontent-type: application/json\r\nx-api-key: ar_wrong\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    );
    // The head alone: the 401 is answered before any of the body arrives.
    socket.write_all(head.as_bytes()).await.unwrap();
    let first = read_response(&mut socket).await.expect("the 401 arrives");
    assert!(first.starts_with("http/1.1 401"), "{first}");
    if first.lines().any(|l| l == "connection: close") {
        // Told: a client opens a new connection for its next request.
        return;
    }
    let sent = socket.write_all(body.as_bytes()).await.is_ok()
        && socket.write_all(b"GET /healthz HTTP/1.1\r\nhost: registry\r\n\r\n").await.is_ok();
    let second = if sent { read_response(&mut socket).await } else { None };
    assert!(
        second.as_deref().is_some_and(|h| h.starts_with("http/1.1 200")),
        "the connection was kept without `Connection: close`, so it must answer the next request: {second:?}"
    );
}

#[tokio::test]
async fn with_an_owner_prefix_token_subjects_never_manage_the_agents_of_api_key_owners() {
    let mut args = JWT_ARGS.to_vec();
    args.extend(["--jwt-owner-prefix", "oidc:"]);
    let app = TestApp::spawn_with_args(&args).await;
    let kim_key = app.with_key(Some(&app.issue_key("kim", "Agent").await));
    let by_key = kim_key.register(agent("Kim's by key", "prefix", ephemeral(60))).await;
    let bearer = format!("Bearer {}", token(JWT_SECRET, json!({"sub": "kim", "registry_scope": "Agent"})));
    let by_token = app
        .with_key(None)
        .send(
            Method::POST,
            "/agents",
            Some(agent("Kim's by token", "prefix", ephemeral(60))),
            &[("authorization", &bearer)],
        )
        .await;
    assert_eq!(by_token.ok(201)["ownerId"], "oidc:kim");
    let path = format!("/agents/{}", by_key["id"].as_str().unwrap());
    let delete = app.with_key(None).send(Method::DELETE, &path, None, &[("authorization", &bearer)]).await;
    delete.problem(403, "forbidden");
    kim_key.delete(&format!("/agents/{}", by_token.body["id"].as_str().unwrap())).await.problem(403, "forbidden");
}
