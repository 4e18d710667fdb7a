//! The registry's own metrics, recorded through the `metrics` facade: recording only, no I/O.
//! The server installs the Prometheus exporter that renders them at `/metrics`; without an
//! installed recorder every call here is a no-op. Names follow Prometheus' conventions: the
//! `agent_registry_` prefix, the unit in the name, `_total` on counters. The table of metrics
//! in docs/operations.md lists each of them (a test checks it against a scrape).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use metrics::{Unit, describe_counter, describe_histogram};

use crate::error::{ErrorKind, Result};
use crate::liveness::Millis;
use crate::model::EndpointId;
use crate::ports::LivenessStore;

/// Agents registered (not replays of an idempotent registration), through any front door.
pub const REGISTRATIONS: &str = "agent_registry_registrations_total";
/// Agents deregistered by a client (evictions are counted apart).
pub const DEREGISTRATIONS: &str = "agent_registry_deregistrations_total";
/// Heartbeats of Persistent endpoints accepted.
pub const HEARTBEATS: &str = "agent_registry_heartbeats_total";
/// Lease renewals of Ephemeral endpoints accepted.
pub const RENEWALS: &str = "agent_registry_renewals_total";
/// Leases that ended unrenewed, as this replica noticed them.
pub const EXPIRIES: &str = "agent_registry_expiries_total";
/// Endpoints this replica evicted.
pub const EVICTIONS: &str = "agent_registry_evictions_total";
/// How long each call to the database took, by `operation`.
pub const STORE_DURATION: &str = "agent_registry_store_operation_duration_seconds";
/// Changes stored together in one batch (group commit).
pub const WRITE_BATCH: &str = "agent_registry_write_batch_changes";
/// Database calls that failed with an outage or an internal error, by `operation` and `code`.
pub const STORE_ERRORS: &str = "agent_registry_store_errors_total";
/// How long each call to the liveness store took, by `operation`.
pub const LIVENESS_DURATION: &str = "agent_registry_liveness_store_operation_duration_seconds";
/// Liveness-store calls that failed with an outage or an internal error, by `operation` and `code`.
pub const LIVENESS_ERRORS: &str = "agent_registry_liveness_store_errors_total";
/// Tasks the gateway finished running, by `protocol` (of the endpoint that took it, `none`
/// when none did) and final `state`.
pub const TASKS: &str = "agent_registry_tasks_total";

/// Registers the help text and unit of the core's metrics with the installed recorder.
pub fn describe() {
    describe_counter!(REGISTRATIONS, Unit::Count, "Agents registered (idempotent replays not counted).");
    describe_counter!(DEREGISTRATIONS, Unit::Count, "Agents deregistered by a client.");
    describe_counter!(HEARTBEATS, Unit::Count, "Heartbeats of Persistent endpoints accepted.");
    describe_counter!(RENEWALS, Unit::Count, "Lease renewals of Ephemeral endpoints accepted.");
    describe_counter!(EXPIRIES, Unit::Count, "Endpoint leases that ended unrenewed, as this replica noticed them.");
    describe_counter!(EVICTIONS, Unit::Count, "Endpoints this replica evicted (dead past the eviction limit).");
    describe_counter!(TASKS, Unit::Count, "Tasks the gateway ran to an end, by protocol and state.");
    describe_histogram!(STORE_DURATION, Unit::Seconds, "Duration of database calls, by operation.");
    describe_histogram!(WRITE_BATCH, Unit::Count, "Changes stored together in one batch (group commit).");
    describe_counter!(STORE_ERRORS, Unit::Count, "Database calls that failed (outage or internal error).");
    describe_histogram!(LIVENESS_DURATION, Unit::Seconds, "Duration of liveness-store calls, by operation.");
    describe_counter!(LIVENESS_ERRORS, Unit::Count, "Liveness-store calls that failed (outage or internal error).");
}

/// Adds `n` to a counter without labels.
pub(crate) fn count(name: &'static str, n: u64) {
    metrics::counter!(name).increment(n);
}

/// Whether calls get spans of their own: set by the server when it exports traces, so that
/// without a collector a heartbeat pays for no span.
static TRACED: AtomicBool = AtomicBool::new(false);

/// Turns the spans of `call_span` on (the server does when it exports traces).
pub fn trace_calls(on: bool) {
    TRACED.store(on, Ordering::Relaxed);
}

/// The span of one call to a backend (`system`: `store`, `liveness`, `amqp`, `nats`, or
/// `agent` with the agent's protocol as `operation`), named `"{system} {operation}"` as a child
/// of the current span; a disabled span when traces are not exported.
pub fn call_span(system: &'static str, operation: &str) -> tracing::Span {
    if !TRACED.load(Ordering::Relaxed) {
        return tracing::Span::none();
    }
    tracing::info_span!("call", otel.name = %format_args!("{system} {operation}"), otel.kind = "client", system, operation)
}

/// Records one backend call: its duration, and its failure when it is the backend's (an outage
/// or an internal error), not the caller's (a stale write, a missing row).
pub(crate) fn observe<T>(
    duration: &'static str,
    errors: &'static str,
    operation: &'static str,
    started: Instant,
    result: &Result<T>,
) {
    metrics::histogram!(duration, "operation" => operation).record(started.elapsed().as_secs_f64());
    if let Err(e) = result
        && matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Internal | ErrorKind::Misconfigured)
    {
        metrics::counter!(errors, "operation" => operation, "code" => e.code()).increment(1);
    }
}

/// A liveness store whose every call is measured (its duration, and its failures).
pub struct MeteredLiveness {
    inner: Arc<dyn LivenessStore>,
}

impl MeteredLiveness {
    pub fn new(inner: Arc<dyn LivenessStore>) -> Self {
        Self { inner }
    }

    async fn measure<T>(&self, operation: &'static str, call: impl Future<Output = Result<T>>) -> Result<T> {
        let started = Instant::now();
        let result = tracing::Instrument::instrument(call, call_span("liveness", operation)).await;
        observe(LIVENESS_DURATION, LIVENESS_ERRORS, operation, started, &result);
        result
    }
}

#[async_trait]
impl LivenessStore for MeteredLiveness {
    async fn touch(&self, endpoint: EndpointId, at: Millis, lease_millis: Millis) -> Result<Option<Millis>> {
        self.measure("touch", self.inner.touch(endpoint, at, lease_millis)).await
    }

    async fn touch_all(&self, endpoints: &[EndpointId], at: Millis) -> Result<()> {
        self.measure("touch_all", self.inner.touch_all(endpoints, at)).await
    }

    async fn forget(&self, endpoints: &[EndpointId]) -> Result<()> {
        self.measure("forget", self.inner.forget(endpoints)).await
    }

    async fn last_seen(&self, endpoints: &[EndpointId]) -> Result<Vec<Option<Millis>>> {
        self.measure("last_seen", self.inner.last_seen(endpoints)).await
    }

    async fn flush(&self) -> Result<()> {
        self.measure("flush", self.inner.flush()).await
    }

    async fn ping(&self) -> Result<()> {
        self.measure("ping", self.inner.ping()).await
    }

    fn is_shared(&self) -> bool {
        self.inner.is_shared()
    }

    async fn seen_since(&self, since: Millis) -> Result<Vec<(EndpointId, Millis)>> {
        self.measure("seen_since", self.inner.seen_since(since)).await
    }
}
