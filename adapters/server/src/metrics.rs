//! Prometheus metrics: the exporter behind `GET /metrics` (on the main listener, or only on
//! `--metrics-listen`), the HTTP layer's own metrics, and the gauges read from the registry at
//! each scrape. The core and the publisher record theirs through the same `metrics` facade
//! (`agent_registry_core::metrics`, `agent_registry_publish`); docs/operations.md lists every metric.

use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::http::AppState;

/// HTTP requests answered, by `method`, matched `route` template and `status`.
pub const HTTP_REQUESTS: &str = "agent_registry_http_requests_total";
/// How long answering took (to the response's head), by `method` and `route`.
pub const HTTP_DURATION: &str = "agent_registry_http_request_duration_seconds";
pub const AGENTS: &str = "agent_registry_agents";
pub const AGENTS_LIVE: &str = "agent_registry_agents_live";
pub const ENDPOINTS: &str = "agent_registry_endpoints";
pub const ENDPOINTS_LIVE: &str = "agent_registry_endpoints_live";
pub const WATCH_STREAMS: &str = "agent_registry_watch_streams_open";
pub const WATCH_REFUSALS: &str = "agent_registry_watch_refusals_total";
pub const REVISION: &str = "agent_registry_change_log_revision";
pub const CHANGE_LOG_LAG: &str = "agent_registry_change_log_lag_revisions";
pub const RATE_LIMITED: &str = "agent_registry_rate_limited_total";
pub const QUEUE_CHECKS: &str = "agent_registry_queue_facts_checks_total";
pub const QUEUE_CHECK_DURATION: &str = "agent_registry_queue_facts_check_duration_seconds";
pub const TASKS_RUNNING: &str = "agent_registry_tasks_running";
pub const BUILD_INFO: &str = "agent_registry_build_info";

/// Bucket bounds of every `_seconds` histogram: from a cached discovery (well under a
/// millisecond) to a store call cut off by its timeout (seconds).
const BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Bucket bounds of the group-commit batch size, up to the committer's 256 changes.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// How often recorded histogram samples are folded into their buckets between scrapes (so they
/// never pile up when nobody scrapes).
const UPKEEP: Duration = Duration::from_secs(5);

/// The process's exporter, and whether the main listener serves it.
pub struct Exporter {
    handle: PrometheusHandle,
    pub on_main_listener: bool,
}

impl Exporter {
    /// The process's exporter (installed on first use: the `metrics` recorder is global).
    pub fn new(on_main_listener: bool) -> Self {
        static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
        Self { handle: HANDLE.get_or_init(install).clone(), on_main_listener }
    }
}

fn install() -> PrometheusHandle {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full(agent_registry_core::metrics::WRITE_BATCH.into()), BATCH_BUCKETS)
        })
        // Only an empty list of buckets is refused; summaries are still metrics.
        .unwrap_or_else(|_| PrometheusBuilder::new());
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    if metrics::set_global_recorder(recorder).is_err() {
        tracing::warn!("another metrics recorder is installed: /metrics shows nothing the registry records");
    }
    describe();
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "commit" => env!("AGENT_REGISTRY_COMMIT"))
        .set(1.0);
    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
        loop {
            std::thread::sleep(UPKEEP);
            upkeep.run_upkeep();
        }
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no metrics upkeep thread: histograms are folded at each scrape only");
    }
    handle
}

fn describe() {
    agent_registry_core::metrics::describe();
    agent_registry_publish::describe_metrics();
    describe_counter!(HTTP_REQUESTS, Unit::Count, "HTTP requests answered, by method, route template and status.");
    describe_histogram!(HTTP_DURATION, Unit::Seconds, "Time to answer an HTTP request, by method and route template.");
    describe_gauge!(AGENTS, Unit::Count, "Agents in this replica's index.");
    describe_gauge!(AGENTS_LIVE, Unit::Count, "Agents with at least one live endpoint.");
    describe_gauge!(ENDPOINTS, Unit::Count, "Endpoints in this replica's index.");
    describe_gauge!(ENDPOINTS_LIVE, Unit::Count, "Endpoints whose lease has not ended.");
    describe_gauge!(WATCH_STREAMS, Unit::Count, "/watch streams open on this replica.");
    describe_counter!(WATCH_REFUSALS, Unit::Count, "/watch streams refused: too many were open.");
    describe_gauge!(REVISION, Unit::Count, "The change-log revision this replica's index has applied.");
    describe_gauge!(CHANGE_LOG_LAG, Unit::Count, "Revisions stored by other replicas and not yet applied here.");
    describe_counter!(RATE_LIMITED, Unit::Count, "Requests refused with 429, by limit.");
    describe_counter!(QUEUE_CHECKS, Unit::Count, "Queue-facts checks against the AMQP broker, by outcome.");
    describe_histogram!(QUEUE_CHECK_DURATION, Unit::Seconds, "Duration of queue-facts checks that reached the broker.");
    describe_gauge!(TASKS_RUNNING, Unit::Count, "Tasks the gateway is running now.");
    describe_gauge!(BUILD_INFO, Unit::Count, "Always 1; the labels name the version and commit.");
}

/// A method as a label: the standard ones by name, any other as `OTHER` (a client must not be
/// able to make a series per made-up method).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "OTHER",
    }
}

/// Records one answered request. `route` is the matched template (`/agents/{id}`) or
/// `(no route)`, never the path: a series per agent id would be unbounded.
pub fn record_request(method: &Method, route: &str, status: u16, latency: Duration) {
    let method = method_label(method);
    metrics::counter!(HTTP_REQUESTS, "method" => method, "route" => route.to_owned(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!(HTTP_DURATION, "method" => method, "route" => route.to_owned()).record(latency.as_secs_f64());
}

/// Counts a 429 refusal by the limit that refused it.
pub fn rate_limited(limit: &'static str) {
    metrics::counter!(RATE_LIMITED, "limit" => limit).increment(1);
}

/// Counts a queue-facts check by its outcome (and how long the broker took, when it was asked).
pub fn queue_check(outcome: &'static str, took: Option<Duration>) {
    metrics::counter!(QUEUE_CHECKS, "outcome" => outcome).increment(1);
    if let Some(took) = took {
        metrics::histogram!(QUEUE_CHECK_DURATION).record(took.as_secs_f64());
    }
}

/// `GET /metrics`: the gauges read now, then everything in Prometheus' text format. Anonymous,
/// as Prometheus scrapes; `--metrics-listen` moves it off the main listener.
pub async fn scrape(State(state): State<AppState>) -> Response {
    let registry = &state.registry;
    let census = registry.census();
    metrics::gauge!(AGENTS).set(census.agents as f64);
    metrics::gauge!(AGENTS_LIVE).set(census.live_agents as f64);
    metrics::gauge!(ENDPOINTS).set(census.endpoints as f64);
    metrics::gauge!(ENDPOINTS_LIVE).set(census.live_endpoints as f64);
    metrics::gauge!(WATCH_STREAMS).set(state.watch.open_streams() as f64);
    metrics::gauge!(TASKS_RUNNING).set(state.gateway.running() as f64);
    metrics::gauge!(REVISION).set(registry.applied_revision() as f64);
    metrics::gauge!(CHANGE_LOG_LAG).set(registry.change_log_lag() as f64);
    let handle = state.metrics.handle.clone();
    // Rendering walks every series: off the async workers.
    let body = tokio::task::spawn_blocking(move || {
        handle.run_upkeep();
        handle.render()
    })
    .await
    .unwrap_or_default();
    ([(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"))], body)
        .into_response()
}

/// What `--metrics-listen` serves: `/metrics`, and a problem for anything else.
pub fn router(state: AppState) -> Router {
    use agent_registry_core::error::catalogue;
    Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .fallback(|uri: axum::http::Uri| async move {
            crate::http::problem::ApiError::http(
                catalogue::ROUTE_NOT_FOUND,
                format!("no route for {}; this address serves /metrics only", uri.path()),
            )
        })
        .with_state(state)
}

/// Serves [`router`] on `addr` until stopped.
pub fn serve(
    addr: std::net::SocketAddr,
    state: AppState,
    limits: crate::connections::ConnectionLimits,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<tokio::task::JoinHandle<()>, crate::StartError> {
    let listen = |source| crate::StartError::Listen { addr, source };
    let socket = std::net::TcpListener::bind(addr).map_err(listen)?;
    socket.set_nonblocking(true).map_err(listen)?;
    let listener = tokio::net::TcpListener::from_std(socket).map_err(listen)?;
    tracing::info!(%addr, "metrics are served at /metrics of this address only");
    let app = router(state);
    Ok(tokio::spawn(async move { crate::connections::serve(listener, app, limits, stop).await }))
}
