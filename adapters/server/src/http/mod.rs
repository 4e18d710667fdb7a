//! The HTTP API: one `router(state)` that builds every route, the OpenAPI document generated from
//! the handlers, and the API explorer at `/docs`.

pub mod agents;
pub mod events;
pub mod extract;
pub mod jwt;
pub mod keys;
pub mod limits;
pub mod problem;
pub mod system;

use std::sync::Arc;

use agent_registry_core::Registry;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::IntoResponse;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_scalar::{Scalar, Servable};

use problem::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<Registry>,
    pub public_url: Arc<str>,
    /// How the first Admin key may be issued (`None`: bootstrap is off).
    pub bootstrap: Option<Arc<keys::Bootstrap>>,
    pub limits: Arc<limits::Limits>,
    /// Validates bearer tokens (`None`: they are refused).
    pub jwt: Option<Arc<jwt::JwtVerifier>>,
    /// Browser origins allowed cross-origin (none: no CORS headers at all).
    pub cors_origins: Vec<HeaderValue>,
    /// What anonymous readers may not see.
    pub privacy: Arc<agent_registry_core::render::Privacy>,
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

/// Cross-origin access for the configured browser origins only.
fn cors(origins: &[HeaderValue]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::Method;
    (!origins.is_empty()).then(|| {
        tower_http::cors::CorsLayer::new()
            .allow_origin(origins.to_vec())
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

/// The whole service as one router.
pub fn router(state: AppState) -> Router {
    let public_url = state.public_url.to_string();
    let cors = cors(&state.cors_origins);
    let (router, mut api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(agents::register, agents::list))
        .routes(routes!(agents::get, agents::update, agents::deregister))
        .routes(routes!(agents::add_endpoint))
        .routes(routes!(agents::get_endpoint, agents::update_endpoint, agents::remove_endpoint))
        .routes(routes!(agents::heartbeat))
        .routes(routes!(agents::renew))
        .routes(routes!(agents::heartbeat_agent))
        .routes(routes!(agents::transfer_owner))
        .routes(routes!(keys::issue, keys::list))
        .routes(routes!(keys::get, keys::revoke))
        .routes(routes!(keys::bootstrap))
        .routes(routes!(events::list))
        .routes(routes!(events::of_agent))
        .routes(routes!(agents::discover))
        .routes(routes!(system::healthz))
        .routes(routes!(system::readyz))
        .with_state(state)
        .split_for_parts();
    // Clients (and the explorer) call the registry where it is published, not where it listens.
    api.servers = Some(vec![utoipa::openapi::Server::new(public_url)]);
    let spec = api.clone();
    router
        .route("/openapi.json", axum::routing::get(move || async move { axum::Json(spec.clone()) }))
        .merge(Scalar::with_url("/docs", api))
        .fallback(|uri: Uri| async move {
            ApiError::http(StatusCode::NOT_FOUND, "route_not_found", format!("no route for {}", uri.path()))
        })
        .method_not_allowed_fallback(|| async {
            ApiError::http(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method",
            )
        })
        .layer(DefaultBodyLimit::max(agent_registry_core::input::limits::BODY_BYTES))
        .layer(security_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(security_header(header::X_FRAME_OPTIONS, "DENY"))
        .layer(security_header(header::REFERRER_POLICY, "no-referrer"))
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("a request handler panicked");
            ApiError::http(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "An internal error occurred; it has been logged.",
            )
            .into_response()
        }))
        .layer(tower::util::option_layer(cors))
        .layer(TraceLayer::new_for_http())
}
