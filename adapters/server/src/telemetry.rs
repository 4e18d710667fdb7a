//! Logs and traces: the `tracing` subscriber that writes the log, and, with `--otlp-endpoint`,
//! the OpenTelemetry layer that exports every span (a request's, and the store, liveness-store,
//! dispatch and publication calls under it) to an OTLP/HTTP collector.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::http::{HeaderMap, Method};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;

/// How long one export may take: a collector that does not answer must not hold spans (or the
/// shutdown) for long.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether spans are exported: without a collector no request span is made, so the log and the
/// cost of a request stay as they are.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Keeps the trace exporter running; dropping it exports what is left (at shutdown).
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(traces) = self.traces.take()
            && let Err(e) = traces.shutdown_with_timeout(EXPORT_TIMEOUT)
        {
            eprintln!("agent-registry: the last traces were not exported: {e}");
        }
    }
}

/// Installs the log (filtered by `log`, in `format`) and, when `otlp` is set, trace export.
/// A collector that cannot be reached costs spans, never requests: export runs on a thread of
/// the SDK's own and its failures are logged.
pub fn init(log: &str, format: LogFormat, otlp: Option<&url::Url>) -> Telemetry {
    let filter = EnvFilter::try_new(log).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal, never in files or log collectors.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let fmt = tracing_subscriber::fmt::layer().with_ansi(ansi);
    let fmt = match format {
        LogFormat::Json => fmt.json().with_filter(filter).boxed(),
        LogFormat::Text => fmt.with_filter(filter).boxed(),
    };
    let (traces, trace_error) = match otlp.map(provider) {
        Some(Ok(provider)) => (Some(provider), None),
        Some(Err(e)) => (None, Some(e)),
        None => (None, None),
    };
    // Spans are exported whatever `--log` keeps: the log's level is not the traces'.
    let otel = traces
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("agent-registry")).with_filter(LevelFilter::INFO));
    tracing_subscriber::registry().with(fmt).with(otel).init();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    EXPORTING.store(traces.is_some(), Ordering::Relaxed);
    agent_registry_core::metrics::trace_calls(traces.is_some());
    if let Some(e) = trace_error {
        tracing::error!(error = %e, "traces are not exported");
    } else if let Some(endpoint) = otlp {
        tracing::info!(endpoint = %traces_url(endpoint), "exporting traces over OTLP/HTTP");
    }
    Telemetry { traces }
}

/// The collector's traces URL: the base URL with `/v1/traces`, as OTLP/HTTP defines it.
fn traces_url(base: &url::Url) -> String {
    format!("{}/v1/traces", base.as_str().trim_end_matches('/'))
}

fn provider(endpoint: &url::Url) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(traces_url(endpoint))
        .with_timeout(EXPORT_TIMEOUT)
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build()?;
    let resource = Resource::builder()
        .with_service_name("agent-registry")
        .with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
}

/// Whether spans are exported to an OTLP collector.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// The span of one request, named `METHOD /route/{template}` and continuing the caller's trace
/// when a W3C `traceparent` header names one; a disabled span when nothing is exported.
pub fn request_span(headers: &HeaderMap, method: &Method, route: &str, request_id: &str) -> tracing::Span {
    if !EXPORTING.load(Ordering::Relaxed) {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        "request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = route,
        http.response.status_code = tracing::field::Empty,
        request_id,
    );
    let caller = opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(headers)));
    // Fails only without the OpenTelemetry layer, which EXPORTING rules out.
    let _ = tracing_opentelemetry::OpenTelemetrySpanExt::set_parent(&span, caller);
    span
}

/// Request headers as the propagator reads them.
struct Headers<'a>(&'a HeaderMap);

impl opentelemetry::propagation::Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}
