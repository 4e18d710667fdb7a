//! The .NET agent registry's clients, unchanged, against `/dotnet` (and the leniencies of the
//! main routes they need): every request is replayed as `MarimerLLC.AgentRegistry.Client` (C#,
//! System.Net.Http.Json with the web defaults: camelCase, nulls written, integer enums,
//! `application/json; charset=utf-8`, no body on heartbeat and renew) or the Python client in
//! that repository's `clients/python` (httpx: `None` fields left out, integer enums) sends it,
//! and every answer is checked the way their record types read it: System.Text.Json throws on a
//! JSON type that does not fit the declared one (an object for `string? ProtocolMetadata`), and
//! the Python `from_dict`s raise `KeyError` on a missing key.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{BOOTSTRAP_TOKEN, TestApp};

/// Requests as one of the .NET registry's clients sends them.
#[derive(Clone, Copy, PartialEq)]
enum Client {
    CSharp,
    Python,
}

struct Replay {
    http: reqwest::Client,
    base: String,
    key: String,
    client: Client,
}

struct Answer {
    status: u16,
    body: Value,
}

impl Replay {
    /// A client whose base URL is `<registry>/dotnet` (Python) or the root of `--dotnet-listen`
    /// (C#), with a key issued the .NET way: the
    /// README's bootstrap body, then `POST /api-keys {"description", "scope": 0}`.
    async fn new(app: &TestApp, client: Client) -> Self {
        let base = match client {
            // `HttpClient` drops a base path: the C# client needs the .NET surface at a root.
            Client::CSharp => dotnet_root(app).await,
            Client::Python => format!("{}/dotnet", app.base),
        };
        let http = reqwest::Client::new();
        let admin = http
            .post(format!("{base}/api-keys/bootstrap"))
            .header("x-bootstrap-token", BOOTSTRAP_TOKEN)
            .header("content-type", "application/json")
            .body(r#"{"ownerId": "platform-team", "description": "Initial admin key"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(admin.status(), 201);
        let admin: Value = admin.json().await.unwrap();
        dotnet_key(&admin, true);
        assert_eq!(admin["ownerId"], "platform-team");
        let mut replay = Self { http, base, key: admin["rawKey"].as_str().unwrap().to_owned(), client };
        let issued = replay.send(Method::POST, "/api-keys", Some(r#"{"description":"my agent","scope":0}"#)).await;
        assert_eq!(issued.status, 201, "{}", issued.body);
        dotnet_key(&issued.body, true);
        assert_eq!(issued.body["scope"], 0);
        assert_eq!(issued.body["ownerId"], "platform-team", "the key is the caller's owner's");
        replay.key = issued.body["rawKey"].as_str().unwrap().to_owned();
        replay
    }

    /// `body` is the exact text the client serialises.
    async fn send(&self, method: Method, path: &str, body: Option<&str>) -> Answer {
        let mut request = self.http.request(method, format!("{}{path}", self.base)).header("X-Api-Key", &self.key);
        if let Some(body) = body {
            let content_type = match self.client {
                Client::CSharp => "application/json; charset=utf-8",
                Client::Python => "application/json",
            };
            request = request.header("content-type", content_type).body(body.to_owned());
        } else if self.client == Client::CSharp {
            // `PostAsync(url, content: null)`.
            request = request.header("content-length", "0");
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
        Answer { status, body }
    }
}

/// The .NET surface of `app` at the root of a listener of its own, as `--dotnet-listen` serves it.
async fn dotnet_root(app: &TestApp) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let service = agent_registry::http::dotnet::at_root(agent_registry::router(app.state.clone()));
    let limits = agent_registry::connections::ConnectionLimits {
        header_timeout: std::time::Duration::from_secs(10),
        keep_alive_timeout: std::time::Duration::from_secs(5),
        max_connections: 64,
    };
    tokio::spawn(agent_registry::connections::serve(listener, service, limits, std::future::pending()));
    base
}

#[track_caller]
fn string(v: &Value, what: &str) {
    assert!(v.is_string(), "{what} must be a JSON string: {v}");
}

#[track_caller]
fn nullable(v: &Value, what: &str, ok: fn(&Value) -> bool) {
    assert!(v.is_null() || ok(v), "{what} has the wrong JSON type: {v}");
}

#[track_caller]
fn key_of<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.as_object().and_then(|o| o.get(key)).unwrap_or_else(|| panic!("`{key}` is missing (Python: KeyError): {v}"))
}

/// `EndpointResponse` (C#) / `EndpointResponse.from_dict` (Python).
#[track_caller]
fn dotnet_endpoint(e: &Value) {
    for field in ["id", "name", "transport", "protocol", "address", "livenessModel"] {
        string(key_of(e, field), field);
    }
    nullable(&e["ttlSeconds"], "ttlSeconds (int?)", |v| v.is_i64());
    nullable(&e["heartbeatIntervalSeconds"], "heartbeatIntervalSeconds (int?)", |v| v.is_i64());
    nullable(&e["isLive"], "isLive (bool?)", Value::is_boolean);
    nullable(&e["protocolMetadata"], "protocolMetadata (string?)", Value::is_string);
}

/// `AgentResponse` (C#) / `AgentResponse.from_dict` (Python).
#[track_caller]
fn dotnet_agent(a: &Value) {
    for field in ["id", "name", "ownerId", "createdAt", "updatedAt"] {
        string(key_of(a, field), field);
    }
    for field in ["createdAt", "updatedAt"] {
        chrono::DateTime::parse_from_rfc3339(a[field].as_str().unwrap()).expect("a DateTimeOffset");
    }
    nullable(&a["description"], "description", Value::is_string);
    assert!(a["labels"].as_object().unwrap().values().all(Value::is_string), "labels: Dictionary<string, string>");
    for c in a["capabilities"].as_array().expect("capabilities: List") {
        string(key_of(c, "id"), "capability id");
        string(key_of(c, "name"), "capability name");
        nullable(&c["description"], "capability description", Value::is_string);
        assert!(c["tags"].as_array().unwrap().iter().all(Value::is_string), "tags: List<string>");
    }
    a["endpoints"].as_array().expect("endpoints: List").iter().for_each(dotnet_endpoint);
}

/// `PagedAgentResponse`.
#[track_caller]
fn dotnet_page(p: &Value) {
    p["items"].as_array().expect("items: List").iter().for_each(dotnet_agent);
    for field in ["totalCount", "page", "pageSize", "totalPages"] {
        assert!(key_of(p, field).is_i64(), "{field}: int");
    }
    for field in ["hasNextPage", "hasPreviousPage"] {
        assert!(key_of(p, field).is_boolean(), "{field}: bool");
    }
}

/// The .NET registry's key answer: `scope` an integer, `rawKey` and `keyPrefix` its first 10
/// characters.
#[track_caller]
fn dotnet_key(k: &Value, issued: bool) {
    for field in ["id", "ownerId", "keyPrefix", "createdAt"] {
        string(key_of(k, field), field);
    }
    assert!(k["scope"].is_u64(), "scope is the integer code: {k}");
    assert!(k["isActive"].is_boolean());
    if issued {
        let raw = k["rawKey"].as_str().expect("rawKey");
        assert_eq!(k["keyPrefix"].as_str().unwrap(), &raw[..10]);
    }
}

/// What the C# client's `RegisterAsync` sends for an agent with one endpoint of each liveness.
const CSHARP_REGISTER: &str = concat!(
    r#"{"name":"Contract summariser","description":null,"labels":{"team":"legal"},"#,
    r#""capabilities":[{"name":"Summarize","description":null,"tags":["nlp"]}],"#,
    r#""endpoints":[{"name":"primary","transport":0,"protocol":1,"address":"https://summariser.example/a2a","#,
    r#""livenessModel":1,"ttlSeconds":null,"heartbeatIntervalSeconds":60,"#,
    r#""protocolMetadata":"{\"version\":\"1.0\",\"skills\":[]}"},"#,
    r#"{"name":"lease","transport":0,"protocol":0,"address":"https://summariser.example/x","#,
    r#""livenessModel":0,"ttlSeconds":300,"heartbeatIntervalSeconds":null,"protocolMetadata":null}]}"#
);

#[tokio::test]
async fn the_csharp_client_registers_reads_updates_heartbeats_and_deregisters_through_dotnet() {
    let app = TestApp::spawn().await;
    let cs = Replay::new(&app, Client::CSharp).await;

    let registered = cs.send(Method::POST, "/agents", Some(CSHARP_REGISTER)).await;
    assert_eq!(registered.status, 201, "{}", registered.body);
    let agent = registered.body;
    dotnet_agent(&agent);
    let id = agent["id"].as_str().unwrap();
    let primary = &agent["endpoints"].as_array().unwrap().iter().find(|e| e["name"] == "primary").unwrap().clone();
    let metadata: Value = serde_json::from_str(primary["protocolMetadata"].as_str().unwrap()).unwrap();
    assert_eq!(metadata, json!({"version": "1.0", "skills": []}));
    let lease = agent["endpoints"].as_array().unwrap().iter().find(|e| e["name"] == "lease").unwrap().clone();
    assert_eq!(lease["protocol"], "Unknown");
    assert_eq!(lease["protocolMetadata"], Value::Null);
    // `AgentHeartbeatService` heartbeats the endpoints whose `LivenessModel == "Persistent"`.
    assert_eq!(primary["livenessModel"], "Persistent");

    let read = cs.send(Method::GET, &format!("/agents/{id}"), None).await;
    assert_eq!(read.status, 200);
    dotnet_agent(&read.body);

    let updated = cs
        .send(Method::PUT, &format!("/agents/{id}"), Some(r#"{"name":"Summariser","description":"v2","labels":null}"#))
        .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    dotnet_agent(&updated.body);
    assert_eq!(updated.body["name"], "Summariser");

    let added = cs
        .send(
            Method::POST,
            &format!("/agents/{id}/endpoints"),
            Some(concat!(
                r#"{"name":"mcp","transport":0,"protocol":2,"address":"https://summariser.example/mcp","#,
                r#""livenessModel":1,"ttlSeconds":null,"heartbeatIntervalSeconds":30,"#,
                r#""protocolMetadata":"{\"mcpVersion\":\"2025-06-18\"}"}"#
            )),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.body);
    dotnet_endpoint(&added.body);
    assert_eq!(added.body["protocol"], "MCP");
    assert!(added.body["protocolMetadata"].is_string());

    let (pid, lid) = (primary["id"].as_str().unwrap(), lease["id"].as_str().unwrap());
    assert_eq!(cs.send(Method::POST, &format!("/agents/{id}/endpoints/{pid}/heartbeat"), None).await.status, 204);
    assert_eq!(cs.send(Method::POST, &format!("/agents/{id}/endpoints/{lid}/renew"), None).await.status, 204);

    let found = cs.send(Method::GET, "/discover/agents?capability=summ&protocol=A2A", None).await;
    assert_eq!(found.status, 200, "{}", found.body);
    dotnet_page(&found.body);
    assert_eq!(found.body["items"][0]["id"], id);

    let eid = added.body["id"].as_str().unwrap();
    assert_eq!(cs.send(Method::DELETE, &format!("/agents/{id}/endpoints/{eid}"), None).await.status, 204);
    assert_eq!(cs.send(Method::DELETE, &format!("/agents/{id}"), None).await.status, 204);
    // `GetAgentAsync` returns null on 404.
    assert_eq!(cs.send(Method::GET, &format!("/agents/{id}"), None).await.status, 404);
}

#[tokio::test]
async fn the_python_client_flows_work_against_the_dotnet_surface() {
    let app = TestApp::spawn().await;
    let py = Replay::new(&app, Client::Python).await;
    // `_serialize` leaves `None` out and writes IntEnums as integers; httpx's `json=`.
    let body = concat!(
        r#"{"name": "Python agent", "capabilities": [{"name": "summarize-text", "tags": ["nlp"]}], "#,
        r#""endpoints": [{"name": "primary", "transport": 0, "protocol": 3, "address": "https://py.example/acp", "#,
        r#""livenessModel": 0, "ttlSeconds": 120}]}"#
    );
    let registered = py.send(Method::POST, "/agents", Some(body)).await;
    assert_eq!(registered.status, 201, "{}", registered.body);
    dotnet_agent(&registered.body);
    let id = registered.body["id"].as_str().unwrap();
    let eid = registered.body["endpoints"][0]["id"].as_str().unwrap();

    // `discover(DiscoveryFilter(capability="summ", page_size=5))` sends `params`.
    let found = py.send(Method::GET, "/discover/agents?capability=summ&pageSize=5", None).await;
    assert_eq!(found.status, 200, "{}", found.body);
    dotnet_page(&found.body);
    assert_eq!(found.body["totalCount"], 1);
    assert_eq!(py.send(Method::POST, &format!("/agents/{id}/endpoints/{eid}/renew"), None).await.status, 204);
    let read = py.send(Method::GET, &format!("/agents/{id}"), None).await;
    dotnet_agent(&read.body);
    assert_eq!(read.body["endpoints"][0]["isLive"], true);
    assert_eq!(py.send(Method::DELETE, &format!("/agents/{id}"), None).await.status, 204);
    assert_eq!(py.send(Method::GET, &format!("/agents/{id}"), None).await.status, 404);
}

#[tokio::test]
async fn dotnet_discovery_matches_capability_substrings_and_clamps_paging_where_the_main_routes_refuse() {
    let app = TestApp::spawn().await;
    let cs = Replay::new(&app, Client::CSharp).await;
    assert_eq!(cs.send(Method::POST, "/agents", Some(CSHARP_REGISTER)).await.status, 201);

    for query in ["capability=SUMM", "capability=mari", "pageSize=500", "pageSize=200", "page=0", "pageSize=0&page=-3"]
    {
        let found = cs.send(Method::GET, &format!("/discover/agents?{query}"), None).await;
        assert_eq!(found.status, 200, "{query}: {}", found.body);
        dotnet_page(&found.body);
        assert_eq!(found.body["totalCount"], 1, "{query}");
    }
    let clamped = cs.send(Method::GET, "/discover/agents?pageSize=500&page=0", None).await.body;
    assert_eq!((clamped["pageSize"].as_u64(), clamped["page"].as_u64()), (Some(100), Some(1)));
    let none = cs.send(Method::GET, "/discover/agents?capability=translate", None).await.body;
    assert_eq!(none["totalCount"], 0);

    // Today's clients keep today's answers.
    app.get("/discover/agents?pageSize=500").await.problem(400, "invalid_query");
    app.get("/discover/agents?page=0").await.problem(400, "invalid_query");
    assert!(app.discovered("/discover/agents?capability=summ").await.is_empty());
    let main = app.get("/discover/agents").await;
    assert!(main.ok(200)["items"][0]["endpoints"][0]["protocolMetadata"].is_object());
}

#[tokio::test]
async fn the_main_routes_accept_the_dotnet_bootstrap_body_integer_scopes_and_a_missing_owner() {
    let app = TestApp::spawn().await;
    let boot = app
        .send(
            Method::POST,
            "/api-keys/bootstrap",
            Some(json!({"ownerId": "platform-team", "description": "Initial admin key"})),
            &[("x-bootstrap-token", BOOTSTRAP_TOKEN)],
        )
        .await;
    let boot = boot.ok(201);
    assert_eq!(boot["ownerId"], "platform-team");
    assert_eq!(boot["scope"], "Admin");
    assert_eq!(boot["rawKey"], boot["key"]);
    assert_eq!(boot["keyPrefix"].as_str().unwrap(), &boot["key"].as_str().unwrap()[..10]);

    let admin = app.with_key(boot["key"].as_str());
    let agent_key = admin.post("/api-keys", json!({"description": "worker", "scope": 0})).await;
    let agent_key = agent_key.ok(201);
    assert_eq!((agent_key["scope"].as_str(), agent_key["ownerId"].as_str()), (Some("Agent"), Some("platform-team")));
    let admin_key = admin.post("/api-keys", json!({"description": "ops", "scope": 1, "ownerId": "ops"})).await;
    assert_eq!(admin_key.ok(201)["scope"], "Admin");
    let listed = admin.get("/api-keys").await;
    assert!(listed.ok(200)["items"].as_array().unwrap().iter().all(|k| k["keyPrefix"].as_str().unwrap().len() == 10));

    // Valid JSON that fails a field check is a validation failure, never malformed JSON.
    for bad in [json!({"scope": 7}), json!({"scope": "Root"}), json!({"scope": [0]}), json!({"ownerId": 5})] {
        let reply = admin.post("/api-keys", bad.clone()).await;
        reply.problem(400, "validation_failed");
    }
    let broken = admin.raw(Method::POST, "/api-keys", Some("application/json"), b"{\"scope\":".to_vec()).await;
    broken.problem(400, "malformed_json");
}

#[tokio::test]
async fn dotnet_api_keys_are_listed_as_an_array_with_integer_scopes() {
    let app = TestApp::spawn().await;
    let cs = Replay::new(&app, Client::CSharp).await;
    let admin = app.post("/api-keys", json!({"scope": "Admin", "ownerId": "x"})).await.ok(201).clone();
    let admin = Replay { key: admin["key"].as_str().unwrap().to_owned(), ..cs };
    let listed = admin.send(Method::GET, "/api-keys", None).await;
    assert_eq!(listed.status, 200);
    let keys = listed.body.as_array().expect("GET /api-keys is an array");
    assert!(keys.len() >= 3);
    keys.iter().for_each(|k| dotnet_key(k, false));
    assert!(keys.iter().all(|k| k.get("rawKey").is_none() && k.get("key").is_none()));
    let worker = keys.iter().find(|k| k["description"] == "my agent").unwrap();
    let revoked = admin.send(Method::DELETE, &format!("/api-keys/{}", worker["id"].as_str().unwrap()), None).await;
    assert_eq!(revoked.status, 204);
}

#[tokio::test]
async fn dotnet_mcp_server_cards_and_acp_manifests_have_the_dotnet_shape() {
    let app = TestApp::spawn().await;
    let cs = Replay::new(&app, Client::CSharp).await;
    let mcp = concat!(
        r#"{"name":"Weather MCP","description":"Forecasts","capabilities":[{"name":"forecast","tags":["tool","mcp"]}],"#,
        r#""endpoints":[{"name":"streamable-http","transport":0,"protocol":2,"address":"https://weather.example/mcp","#,
        r#""livenessModel":1,"heartbeatIntervalSeconds":30,"#,
        r#""protocolMetadata":"{\"mcpVersion\":\"2025-06-18\",\"serverVersion\":\"2.1.0\",\"tools\":[{\"name\":\"forecast\"}]}"}]}"#
    );
    let acp = concat!(
        r#"{"name":"My Agent Name","description":"Chats","capabilities":[{"name":"chat"}],"#,
        r#""endpoints":[{"name":"acp-http","transport":0,"protocol":3,"address":"https://acp.example","#,
        r#""livenessModel":1,"heartbeatIntervalSeconds":30}]}"#
    );
    let mcp_id = cs.send(Method::POST, "/agents", Some(mcp)).await.body["id"].as_str().unwrap().to_owned();
    let acp_id = cs.send(Method::POST, "/agents", Some(acp)).await.body["id"].as_str().unwrap().to_owned();

    let card = cs.send(Method::GET, &format!("/mcp/servers/{mcp_id}"), None).await;
    assert_eq!(card.status, 200, "{}", card.body);
    let card = card.body;
    assert_eq!(card["id"], mcp_id.as_str());
    assert_eq!(card["mcpVersion"], "2025-06-18");
    assert_eq!(card["serverInfo"], json!({"name": "Weather MCP", "version": "2.1.0"}));
    assert_eq!(card["endpoints"], json!({"streamableHttp": "https://weather.example/mcp"}));
    assert_eq!(card["capabilities"], json!({"tools": {"listChanged": false}}));
    assert_eq!(card["tools"], json!([{"name": "forecast"}]));
    assert_eq!((card["instructions"].as_str(), card["isLive"].as_bool()), (Some("Forecasts"), Some(true)));
    let servers = cs.send(Method::GET, "/mcp/servers?pageSize=500", None).await.body;
    assert_eq!(servers["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        (servers["totalCount"].as_u64(), servers["pageSize"].as_u64(), servers["hasNextPage"].as_bool()),
        (Some(1), Some(100), Some(false))
    );
    assert_eq!(cs.send(Method::GET, &format!("/mcp/servers/{acp_id}"), None).await.status, 404);

    let manifest = cs.send(Method::GET, &format!("/acp/agents/{acp_id}"), None).await;
    assert_eq!(manifest.status, 200, "{}", manifest.body);
    let manifest = manifest.body;
    assert_eq!(manifest["name"], "my-agent-name");
    assert_eq!(manifest["endpoint_url"], "https://acp.example");
    assert_eq!(manifest["is_live"], true);
    assert!(manifest["input_content_types"].is_array() && manifest["output_content_types"].is_array());
    let agents = cs.send(Method::GET, "/acp/agents?page=0", None).await.body;
    assert_eq!(agents["agents"].as_array().unwrap().len(), 1);
    assert_eq!((agents["totalCount"].as_u64(), agents["page"].as_u64()), (Some(1), Some(1)));
    assert_eq!(agents["agents"][0]["endpoint_url"], "https://acp.example");
}

#[tokio::test]
async fn a_bare_queue_name_of_a_migrated_registration_is_a_queue_on_the_amqp_url_broker() {
    let app = TestApp::spawn_with_args(&["--amqp-url", "amqp://user:secret@broker.example:5673/%2f"]).await;
    let cs = Replay::new(&app, Client::CSharp).await;
    let body = concat!(
        r#"{"name":"Queued worker","endpoints":[{"name":"async-rabbitmq","transport":1,"protocol":1,"#,
        r#""address":"tasks.summarize","livenessModel":1,"heartbeatIntervalSeconds":30}]}"#
    );
    let registered = cs.send(Method::POST, "/agents", Some(body)).await;
    assert_eq!(registered.status, 201, "{}", registered.body);
    let endpoint = &registered.body["endpoints"][0];
    assert_eq!(endpoint["address"], "amqp://broker.example:5673/%2F/tasks.summarize", "no credentials in it");
    assert_eq!(endpoint["transport"], "Amqp");

    let id = registered.body["id"].as_str().unwrap();
    let added = cs
        .send(
            Method::POST,
            &format!("/agents/{id}/endpoints"),
            Some(r#"{"name":"replies","transport":1,"protocol":1,"address":"replies","livenessModel":1}"#),
        )
        .await;
    assert_eq!(added.body["address"], "amqp://broker.example:5673/%2F/replies");

    // The main routes still ask for a full address.
    let main = app.post("/agents", serde_json::from_str(body).unwrap()).await;
    main.problem(400, "validation_failed");
}
