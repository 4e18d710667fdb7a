//! A real server on a random port, with a test clock, and a small HTTP client for it.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use agent_registry::{AbortOnDrop, AppState, Config, build, router, spawn_followers};
use agent_registry_core::clock::ManualClock;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

/// Which backends a test app runs on.
pub trait Backend: Send + Sync + 'static {
    /// Arguments that select the backends, and the PostgreSQL schema to drop afterwards.
    fn arguments(dir: &TempDir) -> impl Future<Output = (Vec<String>, Option<SchemaGuard>)> + Send;
}

/// The embedded default: SQLite in a temporary directory, liveness in the process.
pub struct Embedded;

impl Backend for Embedded {
    async fn arguments(dir: &TempDir) -> (Vec<String>, Option<SchemaGuard>) {
        let url = format!("sqlite://{}", dir.path().join("registry.db").display());
        (vec!["--database-url".into(), url], None)
    }
}

/// The production backends: a PostgreSQL schema and a Redis key prefix of the test's own.
pub struct Shared;

impl Backend for Shared {
    async fn arguments(_dir: &TempDir) -> (Vec<String>, Option<SchemaGuard>) {
        let (url, schema) = postgres_schema().await;
        let args = ["--database-url", &url, "--auto-migrate", "--redis-url", &redis_url()];
        let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        args.extend(["--redis-key-prefix".into(), redis_prefix()]);
        (args, Some(schema))
    }
}

/// The app most tests use; the API suite also runs with `App<Shared>` (see `shared.rs`).
pub type TestApp = App<Embedded>;

pub struct App<B> {
    http: Http,
    pub clock: Arc<ManualClock>,
    pub state: AppState,
    dir: Arc<TempDir>,
    /// The arguments it was started with, to restart it the same way.
    args: Vec<String>,
    schema: Option<Arc<SchemaGuard>>,
    server: tokio::task::JoinHandle<()>,
    /// Keep following other replicas (on shared backends) while the app lives.
    _followers: Vec<AbortOnDrop>,
    backend: PhantomData<B>,
}

impl<B> std::ops::Deref for App<B> {
    type Target = Http;

    fn deref(&self) -> &Http {
        &self.http
    }
}

/// A small HTTP client for one registry.
#[derive(Clone)]
pub struct Http {
    pub base: String,
    client: reqwest::Client,
    /// Sent as `X-Api-Key` with every request, when set.
    key: Option<String>,
}

/// The bootstrap token every test registry is started with.
pub const BOOTSTRAP_TOKEN: &str = "test-bootstrap-token-0123456789";

/// Arguments that let a test registry issue Admin keys with `BOOTSTRAP_TOKEN`.
pub fn bootstrap_args() -> Vec<String> {
    vec!["--bootstrap-token".into(), BOOTSTRAP_TOKEN.into(), "--allow-repeated-bootstrap".into()]
}

/// A response as a user sees it.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem+json error with this status and code; returns the body.
    #[track_caller]
    pub fn problem(&self, status: u16, code: &str) -> &Value {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.body);
        assert_eq!(self.header("content-type"), Some("application/problem+json"), "body: {}", self.body);
        // Under /acp the body is an ACP Error object: ACP's `code`, the registry's in `data.code`.
        let registry_code =
            if self.body["message"].is_string() { &self.body["data"]["code"] } else { &self.body["code"] };
        assert_eq!(registry_code, code, "body: {}", self.body);
        assert_eq!(self.body["status"], status);
        assert!(self.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
        &self.body
    }

    /// The JSON pointers of the fields at fault.
    pub fn pointers(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|a| a.iter().map(|e| e["pointer"].as_str().unwrap_or_default().to_owned()).collect())
            .unwrap_or_default()
    }

    #[track_caller]
    pub fn ok(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        &self.body
    }
}

impl<B: Backend> App<B> {
    pub async fn spawn() -> Self {
        Self::spawn_with_args(&[]).await
    }

    pub async fn spawn_with_args(args: &[&str]) -> Self {
        let dir = Arc::new(TempDir::new().expect("temp dir"));
        let (mut argv, schema) = B::arguments(&dir).await;
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        Self::start(dir, Arc::new(ManualClock::starting_now()), argv, schema.map(Arc::new), true).await
    }

    /// A registry started without a bootstrap token, so without any API key.
    pub async fn spawn_without_keys() -> Self {
        Self::spawn_with_args_without_keys(&[]).await
    }

    /// A registry started with `args` and without any API key.
    pub async fn spawn_with_args_without_keys(args: &[&str]) -> Self {
        let dir = Arc::new(TempDir::new().expect("temp dir"));
        let (mut argv, schema) = B::arguments(&dir).await;
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        Self::start(dir, Arc::new(ManualClock::starting_now()), argv, schema.map(Arc::new), false).await
    }

    async fn start(
        dir: Arc<TempDir>,
        clock: Arc<ManualClock>,
        args: Vec<String>,
        schema: Option<Arc<SchemaGuard>>,
        with_admin: bool,
    ) -> Self {
        // Unless the test sets up bootstrap itself, every start may issue an Admin key.
        let own_bootstrap =
            if !with_admin || args.iter().any(|a| a == "--bootstrap-token") { Vec::new() } else { bootstrap_args() };
        let argv = std::iter::once("agent-registry".to_owned()).chain(args.iter().cloned()).chain(own_bootstrap);
        let config = Config::from_args(argv).expect("test config");
        let state = build(&config, clock.clone()).await.expect("registry starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let registry_config = config.registry().expect("test config");
        let followers = spawn_followers(&state.registry, &registry_config);
        // Served as the binary serves, with its connection limits.
        let limits = config.connection_limits().expect("test config");
        let server = tokio::spawn(agent_registry::connections::serve(
            listener,
            router(state.clone()),
            limits,
            std::future::pending(),
        ));
        let mut http = Http::new(base);
        if with_admin {
            http.bootstrap().await;
        }
        Self { http, clock, state, dir, args, schema, server, _followers: followers, backend: PhantomData }
    }

    /// Stops this server (writing pending liveness as a graceful stop does) and starts a new
    /// one on the same database and clock.
    pub async fn restart(self) -> Self {
        self.state.registry.flush().await.expect("flush");
        self.server.abort();
        let _ = self.server.await;
        let (dir, clock, args, schema) = (self.dir.clone(), self.clock.clone(), self.args.clone(), self.schema.clone());
        drop(self.state);
        let with_admin = self.http.key.is_some();
        Self::start(dir, clock, args, schema, with_admin).await
    }

    /// Runs one round of upkeep (eviction, liveness persistence) now.
    pub async fn maintain(&self) -> usize {
        self.state.registry.maintain().await.expect("maintenance")
    }
}

impl TestApp {
    /// A registry on PostgreSQL, in the schema `url` selects.
    pub async fn spawn_postgres(url: &str) -> Self {
        let args = vec!["--database-url".to_owned(), url.to_owned(), "--auto-migrate".to_owned()];
        let dir = Arc::new(TempDir::new().expect("temp dir"));
        Self::start(dir, Arc::new(ManualClock::starting_now()), args, None, true).await
    }
}

impl Http {
    pub fn new(base: String) -> Self {
        Self { base, client: reqwest::Client::new(), key: None }
    }

    /// The same server, called with `key` (or without credentials for `None`).
    pub fn with_key(&self, key: Option<&str>) -> Self {
        Self { key: key.map(str::to_owned), ..self.clone() }
    }

    /// Issues an Admin key with the bootstrap token and uses it from now on.
    pub async fn bootstrap(&mut self) {
        let reply =
            self.send(Method::POST, "/api-keys/bootstrap", None, &[("x-bootstrap-token", BOOTSTRAP_TOKEN)]).await;
        self.key = Some(reply.ok(201)["key"].as_str().expect("the key").to_owned());
    }

    /// The key sent as `X-Api-Key`, if any.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// Issues a key of `scope` for `owner` with the current (Admin) key; returns the secret.
    pub async fn issue_key(&self, owner: &str, scope: &str) -> String {
        let reply = self.post("/api-keys", json!({"ownerId": owner, "scope": scope, "description": "test"})).await;
        reply.ok(201)["key"].as_str().expect("the key").to_owned()
    }

    /// The status of a GET, or `None` if the server cannot be reached.
    pub async fn try_get(&self, path: &str) -> Option<StatusCode> {
        self.client.get(format!("{}{path}", self.base)).send().await.ok().map(|r| r.status())
    }

    pub async fn send(&self, method: Method, path: &str, body: Option<Value>, headers: &[(&str, &str)]) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(key) = &self.key {
            request = request.header("x-api-key", key);
        }
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.to_string());
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        Self::reply(request.send().await.expect("request sent")).await
    }

    pub async fn raw(&self, method: Method, path: &str, content_type: Option<&str>, body: Vec<u8>) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.base)).body(body);
        if let Some(key) = &self.key {
            request = request.header("x-api-key", key);
        }
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        Self::reply(request.send().await.expect("request sent")).await
    }

    async fn reply(response: reqwest::Response) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply { status, headers, body }
    }

    /// A GET with request headers, answered as raw bytes (for documents served byte for byte).
    pub async fn get_bytes(&self, path: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Vec<u8>) {
        let mut request = self.client.get(format!("{}{path}", self.base));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send().await.expect("request sent");
        let (status, headers) = (response.status(), response.headers().clone());
        (status, headers, response.bytes().await.expect("body").to_vec())
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None, &[]).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Some(body), &[]).await
    }

    pub async fn post_empty(&self, path: &str) -> Reply {
        self.send(Method::POST, path, None, &[]).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.send(Method::PUT, path, Some(body), &[]).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, None, &[]).await
    }

    /// Registers an agent and returns its JSON.
    pub async fn register(&self, body: Value) -> Value {
        self.post("/agents", body).await.ok(201).clone()
    }

    /// Ids of the agents a discovery URL returns (one page).
    pub async fn discovered(&self, path_and_query: &str) -> Vec<String> {
        let reply = self.get(path_and_query).await;
        reply.ok(200)["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|a| a["name"].as_str().expect("name").to_owned())
            .collect()
    }
}

/// A fixture file: its name and bytes.
pub type Fixture = (String, Vec<u8>);

/// The example documents of one protocol in `fixtures/protocols/<dir>`, by file name.
pub fn fixtures(dir: &str) -> Vec<Fixture> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/protocols").join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).expect("fixture")))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", path.display());
    files
}

/// The edge-case documents of one protocol (`fixtures/protocols/<dir>`): cards to accept and,
/// named `invalid_*`, cards to refuse; key files are left out.
pub fn edge_fixtures(dir: &str) -> (Vec<Fixture>, Vec<Fixture>) {
    fixtures(dir).into_iter().filter(|(n, _)| !n.contains("jwks")).partition(|(n, _)| !n.starts_with("invalid_"))
}

/// An agent with one Http endpoint of the given liveness.
pub fn agent(name: &str, capability: &str, liveness: Value) -> Value {
    let mut endpoint = json!({
        "name": "main", "transport": "Http", "protocol": "A2A",
        "address": format!("https://{}.example/a2a", name.to_lowercase().replace(' ', "-")),
    });
    for (k, v) in liveness.as_object().expect("liveness object") {
        endpoint[k] = v.clone();
    }
    json!({
        "name": name,
        "description": format!("{name} does {capability}"),
        "capabilities": [{"name": capability, "tags": ["nlp"]}],
        "endpoints": [endpoint],
    })
}

pub fn ephemeral(ttl: u32) -> Value {
    json!({"livenessModel": "Ephemeral", "ttlSeconds": ttl})
}

pub fn persistent(interval: u32) -> Value {
    json!({"livenessModel": "Persistent", "heartbeatIntervalSeconds": interval})
}

/// The AMQP broker (RabbitMQ) every test run uses (see `.ci/run`); overridable for other machines.
pub fn amqp_url() -> String {
    std::env::var("AGENT_REGISTRY_TEST_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// The Redis server every test run uses (see `.ci/run`); overridable for other machines.
pub fn redis_url() -> String {
    std::env::var("AGENT_REGISTRY_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A Redis key prefix of its own for one test.
pub fn redis_prefix() -> String {
    format!("test-{}-{}", unix_secs(), uuid::Uuid::new_v4().simple())
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Test data older than this is left over from runs that ended (a test's own cleanup may not
/// run when its runtime stops first), and is removed by later runs.
const LEFTOVER_AFTER_SECS: u64 = 3_600;

/// Whether a name `<prefix><unix secs><separator>…` was made long enough ago to be a leftover.
fn is_leftover(name: &str, prefix: &str, separator: char) -> bool {
    let created = name.strip_prefix(prefix).and_then(|rest| rest.split(separator).next());
    created.and_then(|s| s.parse::<u64>().ok()).is_some_and(|t| t + LEFTOVER_AFTER_SECS < unix_secs())
}

/// Drops schemas and Redis keys that earlier test runs left behind.
async fn sweep_leftovers(admin: &sqlx::PgPool) {
    let schemas: Vec<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname ~ '^t_[0-9]+_[0-9a-f]+$'")
            .fetch_all(admin)
            .await
            .unwrap_or_default();
    for name in schemas.iter().filter(|n| is_leftover(n, "t_", '_')) {
        // The name matched the pattern above: digits, hex and underscores only.
        let drop = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {name} CASCADE")));
        let _ = drop.execute(admin).await;
    }
    if let Ok(client) = redis::Client::open(redis_url())
        && let Ok(mut redis) = client.get_multiplexed_async_connection().await
    {
        // SCAN, not KEYS: the Redis is shared, and KEYS blocks it for the whole keyspace.
        let mut cursor = 0_u64;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor).arg("MATCH").arg("test-*").arg("COUNT").arg(1_000);
            let Ok((next, keys)) = scan.query_async::<(u64, Vec<String>)>(&mut redis).await else { break };
            for key in keys.iter().filter(|k| is_leftover(k, "test-", '-')) {
                let _: redis::RedisResult<()> = redis::cmd("DEL").arg(key).query_async(&mut redis).await;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
}

/// The PostgreSQL server every test run uses (see `.ci/run`); overridable for other machines.
pub fn postgres_url() -> String {
    std::env::var("AGENT_REGISTRY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A schema of its own for one test, dropped when the guard goes; returns a URL that uses it.
pub async fn postgres_schema() -> (String, SchemaGuard) {
    let base = postgres_url();
    let name = format!("t_{}_{}", unix_secs(), uuid::Uuid::new_v4().simple());
    let admin = sqlx::PgPool::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {base} is unreachable ({e}); .ci/run starts it"));
    sweep_leftovers(&admin).await;
    // The name is ours (a UUID in hex), so formatting it into the statement is safe.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}"))).execute(&admin).await.expect("create schema");
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options=-c%20search_path%3D{name}");
    (url, SchemaGuard { admin, name })
}

pub struct SchemaGuard {
    admin: sqlx::PgPool,
    name: String,
}

impl SchemaGuard {
    /// Drops the schema now (a runtime that ends with the test may not run `Drop`'s cleanup).
    pub async fn drop_now(self) {
        let dropped = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name)));
        if let Err(e) = dropped.execute(&self.admin).await {
            eprintln!("could not drop test schema {}: {e}", self.name);
        }
    }
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Best effort: a leftover schema only costs disk space.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {name} CASCADE"))).execute(&admin).await;
            });
        }
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: Value,
}

/// A minimal SSE reader over a streaming response.
pub struct Watcher {
    response: reqwest::Response,
    buffer: String,
}

impl Watcher {
    pub async fn open(base: &str, query: &str, last_event_id: Option<&str>) -> Self {
        Self::open_as(base, query, last_event_id, None).await
    }

    /// A stream opened with the API key `key`.
    pub async fn open_as(base: &str, query: &str, last_event_id: Option<&str>, key: Option<&str>) -> Self {
        let mut request =
            reqwest::Client::new().get(format!("{base}/watch{query}")).header("accept", "text/event-stream");
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.expect("watch opens");
        assert_eq!(response.status(), 200, "watch answered {}", response.status());
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        Self { response, buffer: String::new() }
    }

    /// The next event (keep-alive comments are skipped), or `None` after `within`.
    pub async fn next(&mut self, within: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (None, "message".to_owned(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue;
                }
                return Some(SseEvent { id, event, data: serde_json::from_str(&data).expect("JSON data") });
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk()).await.ok()?.expect("stream reads")?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Whether the server ends the stream within `within` (keep-alive comments aside), with no
    /// event left unread; `false` if it is still open then.
    pub async fn ends(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Err(_) => return false,
                Ok(Ok(Some(chunk))) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                Ok(Err(e)) => panic!("the stream broke off instead of ending: {e}"),
                Ok(Ok(None)) => {
                    let unread = self.buffer.lines().any(|l| l.starts_with("data:"));
                    assert!(!unread, "events after the end: {}", self.buffer);
                    return true;
                }
            }
        }
    }

    /// The next `n` events, failing if they do not come within a few seconds.
    pub async fn take(&mut self, n: usize) -> Vec<SseEvent> {
        let mut events = Vec::new();
        while events.len() < n {
            let event = self.next(Duration::from_secs(5)).await;
            events.push(event.unwrap_or_else(|| panic!("only {} of {n} events arrived: {events:?}", events.len())));
        }
        events
    }
}
