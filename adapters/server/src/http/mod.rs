//! The HTTP API: one `router(state)` that builds every route, the OpenAPI document generated from
//! the handlers, and the API explorer at `/docs`.

pub mod a2a;
pub mod a2a_async;
pub mod access;
pub mod acp;
pub mod agents;
pub mod documents;
pub mod dotnet;
pub mod events;
pub mod extract;
pub mod jku;
pub mod jwt;
pub mod keys;
pub mod mcp;
pub mod openapi;
pub mod problem;
pub mod queues;
pub mod system;
pub mod tasks;
pub mod watch;

use std::sync::Arc;

use agent_registry_core::AgentRegistry;
use agent_registry_core::error::catalogue;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::IntoResponse;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::classify::ServerErrorsFailureClass;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::{Config as ExplorerConfig, SwaggerUi};

use problem::ApiError;

/// What every handler can reach. Extractors clone it for every request, so it is one shared
/// reference: cloning a dozen reference counts that both cores touch costs more than it seems.
#[derive(Clone)]
pub struct AppState(Arc<Context>);

impl AppState {
    pub fn new(context: Context) -> Self {
        Self(Arc::new(context))
    }
}

impl std::ops::Deref for AppState {
    type Target = Context;
    fn deref(&self) -> &Context {
        &self.0
    }
}

/// The registry, settings and caches behind `AppState`.
pub struct Context {
    pub registry: Arc<AgentRegistry>,
    /// Sends tasks to agents and keeps their logs.
    pub gateway: Arc<agent_registry_core::task::Gateway>,
    pub public_url: Arc<str>,
    /// Whether `public_url` was configured (else forwarded headers of trusted proxies count).
    pub public_url_configured: bool,
    /// Settings and caches of the A2A, MCP and ACP routes.
    pub protocols: Arc<documents::Protocols>,
    /// Change payloads and the capability projection, rendered once for every reader.
    pub watch: Arc<watch::Shared>,
    /// Facts about the queues of Amqp endpoints, read from the `--amqp-url` broker.
    pub queues: Arc<crate::queues::QueueFacts>,
    /// How the registry's own MCP endpoint (`/mcp`) is served.
    pub mcp: Arc<crate::mcp_server::McpSettings>,
    /// How the first Admin key may be issued (`None`: bootstrap is off).
    pub bootstrap: Option<Arc<keys::Bootstrap>>,
    pub limits: Arc<crate::limits::Limits>,
    /// Validates bearer tokens (`None`: they are refused).
    pub jwt: Option<Arc<jwt::JwtVerifier>>,
    /// Browser origins allowed cross-origin (none: no CORS headers at all).
    pub cors_origins: Vec<HeaderValue>,
    /// What anonymous readers may not see.
    pub privacy: Arc<agent_registry_core::render::Privacy>,
    /// Serving, or stopping (readiness and watch streams follow it).
    pub lifecycle: crate::lifecycle::Lifecycle,
    /// The Prometheus exporter behind `/metrics`.
    pub metrics: Arc<crate::metrics::Exporter>,
    /// When the service started, for its uptime.
    pub started: std::time::Instant,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Agent Registry API", description = "Registry and discovery gateway for AI agents."),
    modifiers(&ApiKeyScheme),
    tags(
        (name = "agents", description = "Register and manage agents"),
        (name = "endpoints", description = "Manage an agent's endpoints"),
        (name = "liveness", description = "Heartbeats and lease renewals"),
        (name = "discovery", description = "Find live agents"),
        (name = "api-keys", description = "API keys for management routes"),
        (name = "audit", description = "The audit trail of every change"),
        (name = "system", description = "Health and readiness"),
        (name = "a2a", description = "A2A agent cards"),
        (name = "mcp", description = "MCP Server Cards, server.json and the AI Catalog"),
        (name = "mcp-registry", description = "The MCP Registry read API (also under /v0)"),
        (name = "acp", description = "ACP agent manifests (an ACP client's base URL is /acp)"),
        (name = "watch", description = "Follow changes live; the capability projection"),
        (name = "tasks", description = "Send tasks to live agents (the gateway) and follow them"),
    )
)]
struct ApiDoc;

/// The `X-Api-Key` credential of management routes, in the OpenAPI document.
struct ApiKeyScheme;

impl utoipa::Modify for ApiKeyScheme {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
        let components = api.components.get_or_insert_with(Default::default);
        components
            .add_security_scheme("api_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Api-Key"))));
    }
}

/// A header every response carries (unless a handler set it): browsers must not sniff types,
/// frame the API or send referrers along.
fn security_header(name: HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
}

/// Where pages of the API explorer may load from: this origin only. Operators paste Admin keys
/// into it, so no third-party script may run there (and the page works with no internet).
const EXPLORER_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// The API explorer at `/docs`: Swagger UI, its assets embedded in the binary at build time, reading
/// `/openapi.json`; no validator badge (it would call a third-party service).
fn explorer() -> Router {
    let config = ExplorerConfig::new(["/openapi.json"])
        .validator_url("none")
        .persist_authorization(false)
        .display_operation_id(true)
        .filter(true);
    Router::from(SwaggerUi::new("/docs").config(config)).layer(SetResponseHeaderLayer::overriding(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(EXPLORER_POLICY),
    ))
}

/// `/` for a person who opens the registry in a browser: what it is and where to go.
async fn landing() -> impl IntoResponse {
    let page = concat!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Agent registry</title></head>",
        "<body><h1>Agent registry</h1><p>A registry and discovery gateway for AI agents.</p><ul>",
        "<li><a href=\"/docs\">API explorer</a> (<a href=\"/openapi.json\">OpenAPI document</a>)</li>",
        "<li><a href=\"/discover/agents\">Live agents</a> (JSON)</li>",
        "<li><a href=\"/status\">Status</a>, <a href=\"/readyz\">readiness</a>, <a href=\"/healthz\">health</a></li>",
        "<li><a href=\"/.well-known/agent-card.json\">The registry's A2A card</a>; MCP at <code>/mcp</code></li>",
        "</ul></body></html>"
    );
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CONTENT_SECURITY_POLICY, "default-src 'none'")],
        page,
    )
}

/// Cross-origin access for the configured browser origins only; `*` allows every origin (the
/// API sends no credentialed CORS, so a wildcard is allowed by browsers).
fn cors(origins: &[HeaderValue]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::Method;
    use tower_http::cors::AllowOrigin;
    (!origins.is_empty()).then(|| {
        // tower-http refuses `*` inside a list (it panics): a wildcard stands alone.
        let allowed =
            if origins.iter().any(|o| o == "*") { AllowOrigin::any() } else { AllowOrigin::list(origins.to_vec()) };
        tower_http::cors::CorsLayer::new()
            .allow_origin(allowed)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                header::IF_MATCH,
                HeaderName::from_static("x-api-key"),
                HeaderName::from_static("idempotency-key"),
            ])
            .expose_headers([header::ETAG, header::LOCATION, header::RETRY_AFTER])
    })
}

/// Whether a path serves public protocol documents, which any web page may fetch (GitHub's MCP
/// registry docs and the Server Card draft require it; no credentials are involved).
fn is_public_document(path: &str) -> bool {
    ["/.well-known/", "/a2a/", "/mcp/servers", "/v0/", "/v0.1/", "/acp/"].iter().any(|p| path.starts_with(p))
}

/// Cross-origin reads from anywhere for public protocol documents: answers their preflights and
/// marks their responses; other routes keep the configured CORS policy.
async fn public_cors(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::http::Method;
    if !is_public_document(request.uri().path()) {
        return next.run(request).await;
    }
    let preflight =
        request.method() == Method::OPTIONS && request.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = if preflight { StatusCode::NO_CONTENT.into_response() } else { next.run(request).await };
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("etag, link"));
    if preflight {
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, HEAD, OPTIONS"));
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type, if-none-match, a2a-version"),
        );
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    }
    response
}

/// The protocol routes (A2A, MCP, ACP, MCP Registry API).
fn protocol_routes() -> OpenApiRouter<AppState> {
    let registry_api = |prefix: &str| {
        OpenApiRouter::new()
            .route(&format!("{prefix}/servers"), axum::routing::get(mcp::registry_list))
            .route(&format!("{prefix}/servers/{{name}}/versions"), axum::routing::get(mcp::registry_versions))
            .route(
                &format!("{prefix}/servers/{{name}}/versions/{{version}}"),
                axum::routing::get(mcp::registry_version),
            )
    };
    OpenApiRouter::new()
        .routes(routes!(a2a::registry_card))
        .route("/.well-known/agent.json", axum::routing::get(a2a::registry_card))
        .routes(routes!(a2a::register, a2a::list))
        .routes(routes!(a2a::card))
        .routes(routes!(a2a_async::register, a2a_async::list))
        .routes(routes!(a2a_async::card))
        .route("/a2a/agents/{id}/", axum::routing::get(a2a::card_well_known))
        .route("/a2a/agents/{id}/.well-known/agent-card.json", axum::routing::get(a2a::card_well_known))
        .route("/a2a/agents/{id}/.well-known/agent.json", axum::routing::get(a2a::card_well_known))
        .routes(routes!(mcp::register, mcp::list))
        .routes(routes!(mcp::card))
        .routes(routes!(mcp::server_card))
        .routes(routes!(mcp::server_json))
        .routes(routes!(mcp::registry_list))
        .routes(routes!(mcp::registry_versions))
        .routes(routes!(mcp::registry_version))
        .merge(registry_api("/v0"))
        .routes(routes!(mcp::ai_catalog))
        .routes(routes!(acp::ping))
        .routes(routes!(acp::register, acp::list))
        .routes(routes!(acp::get))
}

/// The whole service as one router.
pub fn router(state: AppState) -> Router {
    let public_url = state.public_url.to_string();
    let mcp = crate::mcp_server::service(state.clone(), &state.mcp);
    let cors = cors(&state.cors_origins);
    let dotnet_state = state.clone();
    let access_state = state.clone();
    let (on_main_listener, metrics_state) = (state.metrics.on_main_listener, state.clone());
    let (router, mut api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(agents::register, agents::list))
        .routes(routes!(agents::get, agents::update, agents::deregister))
        .routes(routes!(agents::add_endpoint))
        .routes(routes!(agents::get_endpoint, agents::update_endpoint, agents::remove_endpoint))
        .routes(routes!(agents::heartbeat))
        .routes(routes!(agents::renew))
        .routes(routes!(agents::heartbeat_agent))
        .routes(routes!(queues::facts))
        .routes(routes!(agents::transfer_owner))
        .routes(routes!(keys::issue, keys::list))
        .routes(routes!(keys::get, keys::revoke))
        .routes(routes!(keys::bootstrap))
        .routes(routes!(events::list))
        .routes(routes!(events::of_agent))
        .routes(routes!(agents::discover))
        .routes(routes!(system::healthz))
        .routes(routes!(system::readyz))
        .routes(routes!(system::status))
        .routes(routes!(system::backup))
        .routes(routes!(tasks::submit, tasks::list))
        .routes(routes!(tasks::execute_task))
        .routes(routes!(tasks::get))
        .routes(routes!(tasks::events))
        .routes(routes!(tasks::cancel))
        .routes(routes!(watch::watch))
        .routes(routes!(watch::capabilities))
        .merge(protocol_routes())
        .with_state(state)
        .split_for_parts();
    // Clients (and the explorer) call the registry where it is published, not where it listens.
    api.servers = Some(vec![utoipa::openapi::Server::new(public_url)]);
    let spec = openapi::finish(&api, on_main_listener);
    let metrics = on_main_listener.then(|| Router::new().route("/metrics", axum::routing::get(crate::metrics::scrape)));
    router
        .merge(metrics.map(|m| m.with_state(metrics_state)).unwrap_or_default())
        .nest("/dotnet", dotnet::routes().with_state(dotnet_state))
        .merge(mcp)
        .route("/openapi.json", axum::routing::get(move || async move { axum::Json(spec.clone()) }))
        .merge(explorer())
        .route("/", axum::routing::get(landing))
        .fallback(|uri: Uri| async move {
            ApiError::http(catalogue::ROUTE_NOT_FOUND, format!("no route for {}", uri.path()))
        })
        .method_not_allowed_fallback(|| async {
            ApiError::http(catalogue::METHOD_NOT_ALLOWED, "this route does not accept that method")
        })
        .layer(DefaultBodyLimit::max(agent_registry_core::input::limits::BODY_BYTES))
        .layer(security_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(security_header(header::X_FRAME_OPTIONS, "DENY"))
        .layer(security_header(header::REFERRER_POLICY, "no-referrer"))
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("a request handler panicked");
            ApiError::http(catalogue::INTERNAL_ERROR, "An internal error occurred; it has been logged.").into_response()
        }))
        .layer(axum::middleware::from_fn(acp::acp_errors))
        .layer(tower::util::option_layer(cors))
        .layer(axum::middleware::from_fn(public_cors))
        .layer(axum::middleware::from_fn(close_after_unread_body))
        .layer(axum::middleware::from_fn_with_state(access_state, access::log))
        .layer(TraceLayer::new_for_http().on_failure(on_failure))
}

/// An answer given before the request's body was read to its end (a `401` before the body of a
/// POST, a `413`) says `Connection: close`: hyper closes such a connection rather than read a
/// body nobody wants, and a client that was not told would send its next request on it and
/// fail (RFC 9112 §9.6).
async fn close_after_unread_body(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use http_body::Body as _;
    let version = request.version();
    if request.body().is_end_stream() || version >= axum::http::Version::HTTP_2 {
        return next.run(request).await;
    }
    let read = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let request = request.map(|body| axum::body::Body::new(ReadToEnd { body, read: read.clone() }));
    let mut response = next.run(request).await;
    if !read.load(std::sync::atomic::Ordering::Acquire) {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A request body that notes when it has been read to its end.
struct ReadToEnd {
    body: axum::body::Body,
    read: Arc<std::sync::atomic::AtomicBool>,
}

impl http_body::Body for ReadToEnd {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.body).poll_frame(cx);
        if matches!(polled, std::task::Poll::Ready(None)) || self.body.is_end_stream() {
            self.read.store(true, std::sync::atomic::Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// A failed response. An answer with a 5xx status is logged by the access log (with method,
/// path and problem code: see `access::log`), so here only at debug; a body that broke while
/// being sent is an error.
fn on_failure(failure: ServerErrorsFailureClass, latency: std::time::Duration, _span: &tracing::Span) {
    let latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
    match failure {
        ServerErrorsFailureClass::StatusCode(status) => {
            tracing::debug!(status = status.as_u16(), latency_ms, "response failed");
        }
        other => tracing::error!(classification = %other, latency_ms, "response failed"),
    }
}
