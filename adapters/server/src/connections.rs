//! Accepting and serving HTTP/1.1 connections, with the limits a public listener needs against
//! slow and idle clients (slowloris):
//!
//! - a request's head must arrive within `header_timeout`, counted from when the connection
//!   opens or its previous response was sent, however slowly its bytes trickle in;
//! - a connection with no request in flight is closed after `keep_alive_timeout`;
//! - at most `max_connections` are open at once, so sockets never exhaust the process's file
//!   descriptors (its database, logs and outbound calls need some too). The last
//!   `PROBE_RESERVE` of them serve only `/healthz` and `/readyz` (one request, a short header
//!   timeout), so an orchestrator can still tell the process is alive when clients hold all the
//!   others;
//!   beyond the cap, a connection is accepted and closed at once (a refusal, not a hang).
//!
//! Stopping stops accepting, lets each connection finish its request in flight, and closes it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use agent_registry_core::error::catalogue;
use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, header};
use axum::response::IntoResponse;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tower::ServiceExt;

use crate::http::problem::ApiError;

/// Connections (within the cap) kept for `/healthz` and `/readyz`.
pub const PROBE_RESERVE: usize = 8;

/// Paths a probe connection may ask for.
const PROBES: [&str; 2] = ["/healthz", "/readyz"];

/// A probe connection's head must arrive within this time (or the header timeout, if shorter):
/// an orchestrator's probe sends it at once, and a silent client must not hold the reserve long.
const PROBE_HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// How connections are limited.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_timeout: Duration,
    pub keep_alive_timeout: Duration,
    /// Connections open at once, the probe reserve included (at least `PROBE_RESERVE + 1`).
    pub max_connections: usize,
}

/// What a connection may ask for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    Any,
    ProbesOnly,
}

/// Serves `app` on `listener` until `stop` resolves, then until every connection has finished
/// its request in flight (the caller bounds that wait).
pub async fn serve(listener: TcpListener, app: Router, limits: ConnectionLimits, stop: impl Future<Output = ()>) {
    let general = Arc::new(Semaphore::new(limits.max_connections.saturating_sub(PROBE_RESERVE).max(1)));
    let probes = Arc::new(Semaphore::new(PROBE_RESERVE));
    let refusals = agent_registry_core::throttle::Throttle::<()>::per_minute();
    let started = std::time::Instant::now();
    let millis = || i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let (stopping, stopped) = watch::channel(false);
    let (open, mut all_closed) = tokio::sync::mpsc::channel::<()>(1);
    let mut stop = std::pin::pin!(stop);
    loop {
        let (stream, remote) = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors, most likely: wait for some to be released.
                    if let Some(suppressed) = refusals.admit((), millis()) {
                        tracing::error!(error = %e, suppressed, "cannot accept connections (logged at most once a minute)");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (slot, permit) = match general.clone().try_acquire_owned() {
            Ok(permit) => (Slot::Any, permit),
            Err(_) => match probes.clone().try_acquire_owned() {
                Ok(permit) => (Slot::ProbesOnly, permit),
                Err(_) => {
                    if let Some(suppressed) = refusals.admit((), millis()) {
                        tracing::warn!(
                            max_connections = limits.max_connections,
                            suppressed,
                            "refused a connection: the connection cap is reached (logged at most once a minute)"
                        );
                    }
                    drop(stream);
                    continue;
                }
            },
        };
        let connection = Connection { app: app.clone(), limits, slot, remote, _permit: permit, _open: open.clone() };
        tokio::spawn(connection.serve(stream, stopped.clone()));
    }
    drop(listener);
    let _ = stopping.send(true);
    drop(open);
    let _ = all_closed.recv().await;
}

/// Errors of one incoming connection (not of the listener): the next accept may well work.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset)
}

/// One accepted connection and what it holds until it closes.
struct Connection {
    app: Router,
    limits: ConnectionLimits,
    slot: Slot,
    remote: SocketAddr,
    _permit: OwnedSemaphorePermit,
    _open: tokio::sync::mpsc::Sender<()>,
}

impl Connection {
    async fn serve(self, stream: TcpStream, mut stopping: watch::Receiver<bool>) {
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let (app, remote, slot, tracked) = (self.app.clone(), self.remote, self.slot, activity.clone());
        let service = hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ConnectInfo(remote));
            let request = request.map(axum::body::Body::new);
            let app = app.clone();
            let guard = tracked.begin();
            async move {
                if slot == Slot::ProbesOnly && !PROBES.contains(&request.uri().path()) {
                    return Ok::<_, Infallible>(too_many_connections().map(|body| guard.track(body)));
                }
                let Ok(mut response) = app.oneshot(request).await;
                if slot == Slot::ProbesOnly {
                    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                Ok(response.map(|body| guard.track(body)))
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        let header_timeout = match slot {
            Slot::Any => self.limits.header_timeout,
            Slot::ProbesOnly => self.limits.header_timeout.min(PROBE_HEADER_TIMEOUT),
        };
        builder.timer(TokioTimer::new()).header_read_timeout(header_timeout).keep_alive(slot == Slot::Any);
        let connection = builder.serve_connection(TokioIo::new(stream), service).with_upgrades();
        let mut connection = std::pin::pin!(connection);
        let mut closing = false;
        loop {
            let check_at = activity.next_check(self.limits.keep_alive_timeout);
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(e) = served {
                        tracing::debug!(error = %e, remote = %self.remote, "connection ended with an error");
                    }
                    break;
                }
                _ = stopping.wait_for(|s| *s), if !closing => {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
                () = tokio::time::sleep_until(check_at), if !closing => {
                    if activity.idle_deadline(self.limits.keep_alive_timeout).is_some_and(|t| t <= tokio::time::Instant::now()) {
                        connection.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
            }
        }
    }
}

/// The answer on a probe connection to anything but a probe.
fn too_many_connections() -> Response<axum::body::Body> {
    let mut response = ApiError::http(
        catalogue::TOO_MANY_CONNECTIONS,
        "this replica holds as many connections as it may; retry shortly or on another replica",
    )
    .into_response();
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Whether a connection has a request in flight, and since when it has had none.
struct Activity {
    in_flight: AtomicUsize,
    idle_since: parking_lot::Mutex<tokio::time::Instant>,
}

impl Activity {
    fn new() -> Self {
        Self { in_flight: AtomicUsize::new(0), idle_since: parking_lot::Mutex::new(tokio::time::Instant::now()) }
    }

    /// A request has begun; it ends when its response's body has been sent (or dropped).
    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// When the connection will have been idle for `timeout`, if it is idle now.
    fn idle_deadline(&self, timeout: Duration) -> Option<tokio::time::Instant> {
        (self.in_flight.load(Ordering::Acquire) == 0).then(|| *self.idle_since.lock() + timeout)
    }

    /// When to look again: at the idle deadline, or (while a request is in flight) one timeout
    /// from now, since nothing wakes the connection when its request ends.
    fn next_check(&self, timeout: Duration) -> tokio::time::Instant {
        self.idle_deadline(timeout).unwrap_or_else(|| tokio::time::Instant::now() + timeout)
    }
}

/// A request in flight on a connection.
struct InFlight(Arc<Activity>);

impl InFlight {
    /// The response body, which holds the request in flight until it is dropped.
    fn track(self, body: axum::body::Body) -> axum::body::Body {
        axum::body::Body::new(Tracked { body, _in_flight: self })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        *self.0.idle_since.lock() = tokio::time::Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted as in flight.
struct Tracked {
    body: axum::body::Body,
    _in_flight: InFlight,
}

impl http_body::Body for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The default connection cap: the process's file-descriptor limit less a quarter (at least
/// 64) for everything else it opens.
pub fn default_max_connections() -> usize {
    let limit = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft);
    let limit = usize::try_from(limit).unwrap_or(usize::MAX).min(1 << 20);
    limit.saturating_sub((limit / 4).max(64)).max(PROBE_RESERVE + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_leaves_file_descriptors_for_everything_else() {
        let (soft, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
        let soft = usize::try_from(soft).unwrap_or(usize::MAX).min(1 << 20);
        let cap = default_max_connections();
        assert!(cap > PROBE_RESERVE);
        if soft >= 256 {
            assert!(cap + (soft / 4).max(64) <= soft, "{cap} connections of {soft} descriptors");
        }
    }
}
