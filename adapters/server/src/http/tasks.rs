//! The gateway's routes: send a task to a live agent (`POST /tasks`, also `POST /execute-task`),
//! read it, follow its log as Server-Sent Events, list and cancel tasks. Extract, one `Gateway`
//! call, render; the rules live in `agent_registry_core::task`.

use std::convert::Infallible;
use std::time::Duration;

use agent_registry_core::RegistryError;
use agent_registry_core::model::AgentId;
use agent_registry_core::query::MAX_PAGE_SIZE;
use agent_registry_core::task::{Submitted, Task, TaskId, TaskInput, TaskQuery, TaskView};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::json;

use super::AppState;
use super::extract::{Auth, JsonBody, QueryPairs, idempotency_key};
use super::problem::{ApiError, Problem};

type ApiResult = Result<Response, ApiError>;

fn task_response(status: StatusCode, task: &Task) -> Response {
    let mut response = (status, Json(task.view())).into_response();
    if status == StatusCode::ACCEPTED
        && let Ok(location) = HeaderValue::from_str(&format!("/tasks/{}", task.id))
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// Send a task to a live agent.
///
/// Names exactly one of `capability`, `agentId` or `tool`. Answers `200` with the finished task
/// when it rests (completed, failed, input-required, ...) within `waitSeconds`, else `202` with
/// `Location: /tasks/{id}`. A retry with the same `Idempotency-Key` and body returns the first
/// task instead of sending it again.
#[utoipa::path(post, path = "/tasks", tag = "tasks", security(("api_key" = [])), request_body = TaskInput,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses(
        (status = 200, description = "The task rested within waitSeconds", body = TaskView),
        (status = 202, description = "Still running; follow Location", body = TaskView),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem), (status = 501, body = Problem), (status = 503, body = Problem)))]
pub async fn submit(
    State(state): State<AppState>,
    Auth(caller): Auth,
    headers: HeaderMap,
    JsonBody(input): JsonBody<TaskInput>,
) -> ApiResult {
    let wait = input.wait_seconds.unwrap_or(u64::from(agent_registry_core::task::limits::DEFAULT_WAIT_SECONDS));
    match state.gateway.submit(&caller, &input, idempotency_key(&headers)?).await? {
        Submitted::Created { task, finished } => {
            match tokio::time::timeout(Duration::from_secs(wait), finished).await {
                Ok(Ok(done)) => Ok(task_response(StatusCode::OK, &done)),
                _ => Ok(task_response(StatusCode::ACCEPTED, &task)),
            }
        }
        Submitted::Replayed(task) => {
            let status = if task.state.is_resting() { StatusCode::OK } else { StatusCode::ACCEPTED };
            let mut response = task_response(status, &task);
            response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
            Ok(response)
        }
    }
}

/// Send a task to a live agent (the orchestration spec's name for `POST /tasks`).
#[utoipa::path(post, path = "/execute-task", tag = "tasks", security(("api_key" = [])), request_body = TaskInput,
    responses((status = 200, body = TaskView), (status = 202, body = TaskView), (status = 400, body = Problem)))]
pub async fn execute_task(
    state: State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    body: JsonBody<TaskInput>,
) -> ApiResult {
    submit(state, auth, headers, body).await
}

/// A task: its state, where it went, its output or error.
#[utoipa::path(get, path = "/tasks/{id}", tag = "tasks", security(("api_key" = [])),
    params(("id" = String, Path, description = "The task's id")),
    responses((status = 200, body = TaskView), (status = 404, body = Problem)))]
pub async fn get(State(state): State<AppState>, Auth(caller): Auth, Path(id): Path<String>) -> ApiResult {
    let task = state.gateway.task(&caller, TaskId::parse(&id)?).await?;
    Ok(task_response(StatusCode::OK, &task))
}

/// Cancel a task that has not finished: logged as `canceled`, the agent asked to cancel it.
#[utoipa::path(post, path = "/tasks/{id}/cancel", tag = "tasks", security(("api_key" = [])),
    params(("id" = String, Path, description = "The task's id")),
    responses((status = 200, body = TaskView), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn cancel(State(state): State<AppState>, Auth(caller): Auth, Path(id): Path<String>) -> ApiResult {
    let task = state.gateway.cancel(&caller, TaskId::parse(&id)?).await?;
    Ok(task_response(StatusCode::OK, &task))
}

/// The task's execution log as Server-Sent Events: each event's `id` is its sequence number
/// (resume with `Last-Event-ID`), its `event` the kind, its data the event's JSON. The stream
/// ends after the event that leaves the task resting (completed, failed, canceled, rejected,
/// input-required).
#[utoipa::path(get, path = "/tasks/{id}/events", tag = "tasks", security(("api_key" = [])),
    params(("id" = String, Path, description = "The task's id"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event")),
    responses((status = 200, description = "text/event-stream of task events"), (status = 404, body = Problem)))]
pub async fn events(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    let id = TaskId::parse(&id)?;
    let after = match headers.get("last-event-id") {
        None => 0,
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| ApiError::bad_header("Last-Event-ID", "must be the id of an event of this stream"))?,
    };
    // Read once here, so a task the caller may not read is a 404 rather than an empty stream.
    state.gateway.task(&caller, id).await?;
    let follow = Follow { state, caller, id, after, done: false };
    let stream = futures_util::stream::unfold(follow, |mut follow| async move {
        let batch = follow.next().await?;
        Some((futures_util::stream::iter(batch), follow))
    });
    let stream = futures_util::StreamExt::flatten(stream);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response())
}

/// A reader of one task's log.
struct Follow {
    state: AppState,
    caller: agent_registry_core::auth::Caller,
    id: TaskId,
    after: u64,
    done: bool,
}

impl Follow {
    /// The next events (waiting for them), `None` once the stream is over.
    async fn next(&mut self) -> Option<Vec<Result<Event, Infallible>>> {
        if self.done {
            return None;
        }
        loop {
            let since = self.state.gateway.subscribe();
            let (task, events) = match self.state.gateway.events(&self.caller, self.id, self.after).await {
                Ok(read) => read,
                Err(e) => {
                    // The stream is open already: say why it ends, as an event.
                    self.done = true;
                    let data = json!({"code": e.code(), "detail": e.to_string()}).to_string();
                    return Some(vec![Ok(Event::default().event("error").data(data))]);
                }
            };
            if let Some(last) = events.last() {
                self.after = last.seq;
                let rested = events.iter().any(|e| e.event.effects().state.is_some_and(|s| s.is_resting()));
                self.done = rested && self.after >= task.last_seq;
                let sent = events
                    .iter()
                    .map(|e| {
                        let data = serde_json::to_string(e).unwrap_or_default();
                        Ok(Event::default().id(e.seq.to_string()).event(e.event.kind()).data(data))
                    })
                    .collect();
                return Some(sent);
            }
            if task.state.is_resting() {
                return None;
            }
            self.state.gateway.changed(since).await;
        }
    }
}

/// Tasks the caller sent (an Admin: everyone's), newest first. Filters: `state`, `agentId`,
/// `capability`, `caller` (an owner id; Admin only), `since` (RFC 3339); paged with `pageSize`
/// and `cursor`.
#[utoipa::path(get, path = "/tasks", tag = "tasks", security(("api_key" = [])),
    responses((status = 200, description = "A page of tasks: items, nextCursor"), (status = 400, body = Problem)))]
pub async fn list(State(state): State<AppState>, Auth(caller): Auth, pairs: QueryPairs) -> ApiResult {
    let mut query = TaskQuery { limit: 20, ..TaskQuery::default() };
    for (key, value) in &pairs.0 {
        let bad = |detail: &str| ApiError::from(RegistryError::query(key, detail));
        match key.as_str() {
            "state" => query.state = Some(value.parse().map_err(|e: String| bad(&e))?),
            "agentId" => query.agent_id = Some(AgentId::parse(value).map_err(|_| bad("must be an agent id"))?),
            "capability" => query.capability = Some(value.trim().to_owned()),
            "caller" if caller.is_admin() => query.owner_id = Some(value.trim().to_owned()),
            "caller" => return Err(bad("only an Admin may list other callers' tasks")),
            "since" => {
                let at =
                    chrono::DateTime::parse_from_rfc3339(value.trim()).map_err(|_| bad("must be an RFC 3339 time"))?;
                query.since = Some(at.timestamp_millis());
            }
            "pageSize" => {
                query.limit = value
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
                    .ok_or_else(|| bad(&format!("must be between 1 and {MAX_PAGE_SIZE}")))?;
            }
            "cursor" => {
                query.before = Some(read_cursor(value).ok_or_else(|| bad("is not a cursor this registry issued"))?)
            }
            other => return Err(bad(&format!("`{other}` is not a known parameter"))),
        }
    }
    let (tasks, next) = state.gateway.list(&caller, query).await?;
    let items: Vec<TaskView> = tasks.iter().map(Task::view).collect();
    Ok(Json(json!({ "items": items, "nextCursor": next.map(write_cursor) })).into_response())
}

fn write_cursor((at, id): (i64, TaskId)) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{at}.{id}"))
}

fn read_cursor(text: &str) -> Option<(i64, TaskId)> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text.trim()).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (at, id) = text.split_once('.')?;
    Some((at.parse().ok()?, TaskId::parse(id).ok()?))
}
