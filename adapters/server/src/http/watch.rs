//! Following the registry live: `GET /watch` streams every change as a Server-Sent Event, in
//! revision order, resumable without gaps; `GET /capabilities` is the capability projection
//! (each capability with its live endpoints), cached per revision and served with an `ETag`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use agent_registry_core::RegistryError;
use agent_registry_core::auth::Caller;
use agent_registry_core::error::catalogue;
use agent_registry_core::model::{AgentId, Protocol};
use agent_registry_core::ports::{ChangeKind, LoggedChange};
use agent_registry_core::task::journal::CommittedTaskEvent;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::extract::{Auth, ClientAddress, QueryPairs, if_none_match};
use super::problem::{ApiError, Problem};

/// Changes read per step of a stream.
const BATCH: usize = 256;
/// A comment line keeps proxies from closing a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What a watcher wants to hear about; all given filters must match.
#[derive(Debug, Default, Clone)]
struct Filter {
    /// Capability names, lower case (any of them).
    capabilities: Vec<String>,
    protocols: Vec<Protocol>,
    agents: Vec<AgentId>,
    kinds: Vec<ChangeKind>,
}

impl Filter {
    fn matches(&self, change: &LoggedChange) -> bool {
        if !self.kinds.is_empty() && !self.kinds.contains(&change.kind) {
            return false;
        }
        if !self.agents.is_empty() && !self.agents.contains(&change.agent_id) {
            return false;
        }
        let Some(agent) = &change.agent else {
            // The agent is gone, so its capabilities and protocols are unknown: every watcher
            // hears of it (an id it never saw can be ignored).
            return true;
        };
        let capability_ok = self.capabilities.is_empty()
            || agent.capabilities.iter().any(|c| self.capabilities.contains(&c.name.to_lowercase()));
        let protocol_ok =
            self.protocols.is_empty() || agent.endpoints.iter().any(|e| self.protocols.contains(&e.protocol));
        capability_ok && protocol_ok
    }
}

/// Where a stream starts, what it filters and whether it carries task events, from the query
/// string and `Last-Event-ID`.
fn parse(pairs: &QueryPairs, headers: &HeaderMap) -> Result<(Option<u64>, Filter, bool), ApiError> {
    let mut filter = Filter::default();
    let mut since = None;
    let mut tasks = false;
    for (key, value) in &pairs.0 {
        let values = value.split(',').map(str::trim).filter(|v| !v.is_empty());
        match key.as_str() {
            "include" => {
                for v in values {
                    if v != "tasks" {
                        return Err(RegistryError::query(key, format!("unknown `{v}`; expected `tasks`")).into());
                    }
                    tasks = true;
                }
            }
            "since" => {
                since = Some(value.trim().parse::<u64>().map_err(|_| RegistryError::query(key, "must be a revision"))?)
            }
            "capability" => filter.capabilities.extend(values.map(str::to_lowercase)),
            "protocol" => {
                for v in values {
                    filter.protocols.push(v.parse().map_err(|e: String| RegistryError::query(key, e))?);
                }
            }
            "agentId" => {
                for v in values {
                    filter.agents.push(AgentId::parse(v).map_err(|e| RegistryError::query(key, e.to_string()))?);
                }
            }
            "kind" => {
                for v in values {
                    let kinds: Vec<&str> = ChangeKind::ALL.iter().map(|k| k.as_str()).collect();
                    let kind = ChangeKind::parse(v).ok_or_else(|| {
                        RegistryError::query(key, format!("unknown kind `{v}`; expected one of {}", kinds.join(", ")))
                    })?;
                    filter.kinds.push(kind);
                }
            }
            other => return Err(RegistryError::query(other, format!("`{other}` is not a known parameter")).into()),
        }
    }
    // A reconnecting EventSource says where it stopped; it wins over the URL it reuses.
    if let Some(last) = headers.get("last-event-id") {
        let last = last.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok());
        since =
            Some(last.ok_or_else(|| ApiError::bad_header("Last-Event-ID", "must be a revision this registry sent"))?);
    }
    Ok((since, filter, tasks))
}

/// The JSON of one change: the agent as the change left it (as anonymous readers may see it).
fn payload(state: &AppState, change: &LoggedChange) -> String {
    let agent = change.agent.as_ref().and_then(|a| serde_json::to_value(a).ok()).map(|mut agent| {
        if let Some(object) = agent.as_object_mut() {
            // The document an agent registered with is served by its protocol's routes.
            object.remove("origin");
            // Held names are the registry's bookkeeping; the agent's JSON never shows them.
            object.remove("claims");
            if state.privacy.hide_owner {
                object.remove("ownerId");
            }
            if let Some(labels) = object.get_mut("labels").and_then(Value::as_object_mut) {
                labels.retain(|k, _| !state.privacy.is_private_label(k));
            }
        }
        agent
    });
    json!({
        "revision": change.revision,
        "kind": change.kind.as_str(),
        "agentId": change.agent_id,
        "endpointId": change.endpoint_id,
        "at": chrono::DateTime::from_timestamp_millis(change.at),
        "agent": agent,
    })
    .to_string()
}

/// Payloads of recent changes, rendered once however many watchers send them.
#[derive(Default)]
struct Payloads {
    recent: parking_lot::Mutex<VecDeque<(u64, Arc<str>)>>,
}

impl Payloads {
    const KEPT: usize = 256;

    fn get(&self, state: &AppState, change: &LoggedChange) -> Arc<str> {
        // Watchers ask for the newest payloads: look from the back.
        if let Some((_, text)) = self.recent.lock().iter().rev().find(|(r, _)| *r == change.revision) {
            return text.clone();
        }
        let text: Arc<str> = payload(state, change).into();
        let mut recent = self.recent.lock();
        if recent.len() == Self::KEPT {
            recent.pop_front();
        }
        recent.push_back((change.revision, text.clone()));
        text
    }
}

fn change_event(state: &AppState, change: &LoggedChange) -> Event {
    let data = state.watch.payloads.get(state, change);
    Event::default().id(change.revision.to_string()).event(change.kind.as_str()).data(&*data)
}

/// A task event, for a watcher who asked for them: `event: task_<type>` with the event as the
/// task's log has it and the task's id. It has no `id`: ids are change revisions, which a
/// reconnecting client resumes from.
fn task_event(committed: &CommittedTaskEvent) -> Event {
    let mut data = serde_json::to_value(&committed.logged).unwrap_or_else(|_| json!({}));
    data["taskId"] = json!(committed.task_id);
    Event::default().event(format!("task_{}", committed.logged.event.kind())).data(data.to_string())
}

/// Tells a watcher its stream fell behind the task events and `missed` of them are lost to it
/// (`GET /tasks/{id}/events` has every one).
fn tasks_missed_event(missed: u64) -> Event {
    Event::default().event("tasks_missed").data(
        json!({"missed": missed, "detail": "task events were lost to this slow stream; read each task's log with GET /tasks/{id}/events"})
            .to_string(),
    )
}

/// The task events of one watcher: those of tasks its caller may read.
struct TaskFollow {
    feed: tokio::sync::broadcast::Receiver<Arc<CommittedTaskEvent>>,
    caller: Caller,
}

impl TaskFollow {
    /// The next event for this caller; cancelling it loses nothing (`recv` is cancel-safe).
    async fn next(&mut self) -> Option<Event> {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match self.feed.recv().await {
                Ok(committed) if self.caller.is_admin() || committed.owner_id == self.caller.owner => {
                    return Some(task_event(&committed));
                }
                Ok(_) => {}
                Err(RecvError::Lagged(missed)) => return Some(tasks_missed_event(missed)),
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

/// Tells a watcher it missed changes it can no longer get: re-list, then follow from here.
fn reset_event(revision: u64, reason: &str) -> Event {
    Event::default()
        .id(revision.to_string())
        .event("reset")
        .data(json!({"revision": revision, "reason": reason}).to_string())
}

/// The last event of every stream when the replica stops: reconnect (to another replica, with
/// `Last-Event-ID`) to follow on. It has no `id`, so the client's last id stays the last change
/// it received.
fn shutdown_event() -> Event {
    Event::default()
        .event("shutdown")
        .data(json!({"reason": "this replica is shutting down; reconnect with Last-Event-ID to follow on"}).to_string())
}

struct Stream {
    _open: Open,
    /// The stream ended (with the shutdown event).
    ended: bool,
    state: AppState,
    filter: Filter,
    cursor: u64,
    pending: VecDeque<Arc<LoggedChange>>,
    revisions: tokio::sync::watch::Receiver<u64>,
    first: Option<Event>,
    tasks: Option<TaskFollow>,
}

impl Stream {
    /// The next event; at shutdown, the `shutdown` event and then the end, instead of holding
    /// the connection through the grace period.
    async fn next(&mut self) -> Option<Event> {
        if self.ended {
            return None;
        }
        let closing = self.state.lifecycle.reached(crate::lifecycle::Phase::Closing);
        // Held apart while both sources are awaited, then put back.
        let mut tasks = self.tasks.take();
        let event = tokio::select! {
            // Before any change: a stream that is told to stop stops, and resumes elsewhere
            // from the last change it received. Cancelling `next_change` loses nothing, since
            // its cursor only moves past changes it holds.
            biased;
            () = closing => {
                self.ended = true;
                Some(shutdown_event())
            }
            event = self.next_change() => event,
            Some(event) = next_task(&mut tasks) => Some(event),
        };
        self.tasks = tasks;
        event
    }

    async fn next_change(&mut self) -> Option<Event> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        loop {
            while let Some(change) = self.pending.pop_front() {
                if self.filter.matches(&change) {
                    return Some(change_event(&self.state, &change));
                }
            }
            if *self.revisions.borrow_and_update() <= self.cursor {
                // Nothing new: wait for the index to apply the next change.
                self.revisions.changed().await.ok()?;
                continue;
            }
            match self.state.registry.changes_after(self.cursor, BATCH).await {
                Ok(batch) => {
                    if let Some(last) = batch.last() {
                        self.cursor = last.revision;
                    } else {
                        // Only gaps up to the applied revision.
                        self.cursor = self.cursor.max(*self.revisions.borrow());
                    }
                    self.pending.extend(batch);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a watch could not read the change log; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// The next task event of a stream that follows them; never, for one that does not.
async fn next_task(tasks: &mut Option<TaskFollow>) -> Option<Event> {
    match tasks {
        Some(follow) => follow.next().await,
        None => std::future::pending().await,
    }
}

/// Follow every change as Server-Sent Events.
///
/// Each event's `id` is its revision and its `event` the kind (`registered`, `updated`,
/// `endpoint_added`, `endpoint_updated`, `endpoint_removed`, `owner_transferred`, `became_live`,
/// `expired`, `evicted`, `deregistered`); `data` is `{revision, kind, agentId, endpointId, at,
/// agent}`. Resume with `Last-Event-ID` or `?since=<revision>`: every later change follows,
/// without gaps. A stream that cannot resume (its revision was pruned from the change log, or
/// is unknown) starts with a `reset` event: re-list, then keep following. Without `since`, the
/// stream starts at the current revision. When the replica stops, the stream ends with a
/// `shutdown` event (no `id`): reconnect with `Last-Event-ID` to follow on.
///
/// `include=tasks` (credentials required) adds the events of gateway tasks the caller may read
/// (its own; every task for an Admin) as this replica commits them: `event: task_<type>`
/// (`task_created`, `task_dispatched`, …, `task_completed`) with `{taskId, seq, at, type, …}` and
/// no `id`; `tasks_missed` when a slow stream lost some.
#[utoipa::path(get, path = "/watch", tag = "watch",
    params(("since" = Option<u64>, Query, description = "Resume after this revision"),
        ("capability" = Option<String>, Query, description = "Only agents with one of these capabilities (comma list)"),
        ("protocol" = Option<String>, Query, description = "Only agents with an endpoint speaking one of these"),
        ("agentId" = Option<String>, Query, description = "Only these agents"),
        ("kind" = Option<String>, Query, description = "Only these kinds of change"),
        ("include" = Option<String>, Query, description = "`tasks`: also the caller's task events (credentials required)"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this revision")),
    responses((status = 200, description = "text/event-stream of changes", content_type = "text/event-stream"),
        (status = 400, body = Problem), (status = 401, body = Problem)))]
pub async fn watch(
    State(state): State<AppState>,
    client: ClientAddress,
    pairs: QueryPairs,
    mut parts: Parts,
) -> Result<Response, ApiError> {
    state.limits.discovery(client.0)?;
    let (since, filter, include_tasks) = parse(&pairs, &parts.headers)?;
    // Subscribed before the stream opens: every task event from here on reaches it.
    let tasks = match include_tasks {
        true => {
            let Auth(caller) = Auth::from_request_parts(&mut parts, &state).await?;
            Some(TaskFollow { feed: state.gateway.feed(), caller })
        }
        false => None,
    };
    let open = &state.watch.open;
    if open.fetch_add(1, std::sync::atomic::Ordering::AcqRel) >= state.watch.max_watchers {
        open.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        metrics::counter!(crate::metrics::WATCH_REFUSALS).increment(1);
        // A client retrying in a loop must not flood the log: one line a minute, with a count.
        if let Some(suppressed) = state.watch.refusals.admit((), state.registry.now_millis()) {
            tracing::warn!(
                max_watchers = state.watch.max_watchers,
                suppressed,
                "refused a watch stream: too many are open (logged at most once a minute; `suppressed` refusals \
                 since the last line)"
            );
        }
        return Err(ApiError::http(
            catalogue::TOO_MANY_WATCHERS,
            format!(
                "this replica serves {} watch streams already; retry later or on another replica",
                state.watch.max_watchers
            ),
        ));
    }
    let guard = Open(open.clone());
    let mut revisions = state.registry.watch_revision();
    let current = *revisions.borrow_and_update();
    let mut first = None;
    let cursor = match since {
        None => current,
        Some(since) if since > current => {
            first = Some(reset_event(current, "this registry has not reached that revision"));
            current
        }
        Some(since) => match state.registry.oldest_change().await? {
            Some(oldest) if since + 1 < oldest => {
                first = Some(reset_event(current, "changes after that revision were pruned from the change log"));
                current
            }
            _ => since,
        },
    };
    let stream =
        Stream { _open: guard, ended: false, state, filter, cursor, pending: VecDeque::new(), revisions, first, tasks };
    let events = futures_util::stream::unfold(stream, |mut stream| async move {
        let event = stream.next().await?;
        Some((Ok::<_, std::convert::Infallible>(event), stream))
    });
    let mut response = Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)).into_response();
    // Proxies must not buffer the stream.
    response.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// What watchers and projection readers share: rendered once, read many times.
pub struct Shared {
    payloads: Payloads,
    projection: Projection,
    /// Streams open now, and how many may be.
    open: Arc<std::sync::atomic::AtomicUsize>,
    max_watchers: usize,
    /// Refusals beyond `max_watchers` are logged at most once a minute.
    refusals: agent_registry_core::throttle::Throttle<()>,
}

impl Shared {
    pub fn new(max_watchers: usize) -> Self {
        Self {
            payloads: Payloads::default(),
            projection: Projection::default(),
            open: Arc::default(),
            max_watchers,
            refusals: agent_registry_core::throttle::Throttle::per_minute(),
        }
    }

    /// Watch streams open now.
    pub fn open_streams(&self) -> usize {
        self.open.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// Counts a stream as open until it is dropped.
struct Open(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// The capability projection at one revision, rendered once.
#[derive(Default)]
struct Projection {
    at: parking_lot::Mutex<Option<(u64, Bytes)>>,
}

impl Projection {
    fn render(&self, state: &AppState) -> Result<(u64, Bytes), RegistryError> {
        let revision = state.registry.applied_revision();
        if let Some((at, body)) = self.at.lock().as_ref()
            && *at == revision
        {
            return Ok((revision, body.clone()));
        }
        let capabilities: Vec<Value> = state
            .registry
            .capability_summary(None, true)?
            .into_iter()
            .map(|c| {
                let endpoints: Vec<Value> = c
                    .endpoints
                    .iter()
                    .map(|e| {
                        json!({"agentId": e.agent_id, "agentName": e.agent_name, "endpointId": e.endpoint_id,
                            "protocol": e.protocol, "transport": e.transport, "address": e.address})
                    })
                    .collect();
                json!({"name": c.display_name, "endpoints": endpoints})
            })
            .collect();
        let body = Bytes::from(json!({"revision": revision, "capabilities": capabilities}).to_string());
        *self.at.lock() = Some((revision, body.clone()));
        Ok((revision, body))
    }
}

/// Every capability live agents offer, each with the live endpoints that serve it (protocol,
/// transport, address). The `ETag` is the registry revision it reflects (liveness changes are
/// revisions too); `If-None-Match` with it answers `304`.
#[utoipa::path(get, path = "/capabilities", tag = "watch",
    responses((status = 200, description = "`{revision, capabilities: [{name, endpoints: [{agentId, agentName, endpointId, protocol, transport, address}]}]}`"),
        (status = 304, description = "Unchanged since the `If-None-Match` revision")))]
pub async fn capabilities(
    State(state): State<AppState>,
    client: ClientAddress,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.limits.discovery(client.0)?;
    let (revision, body) = state.watch.projection.render(&state)?;
    let etag = format!("\"{revision}\"");
    let unchanged = if_none_match(&headers, &etag);
    let etag = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"0\""));
    if unchanged {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    Ok((
        StatusCode::OK,
        [(header::ETAG, etag), (header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body,
    )
        .into_response())
}
