//! A2A: where the agent's card says `capabilities.streaming`, `SendStreamingMessage` (v1.0) or
//! `message/stream` (v0.3) over the JSON-RPC binding, or `POST {url}/message:stream` over
//! HTTP+JSON, read as Server-Sent Events until the task rests; otherwise `SendMessage` /
//! `message/send` (or `POST {url}/message:send`) asking not to block, and the task followed with
//! `GetTask` / `tasks/get` (or `GET {url}/tasks/{id}`) until it rests: completed, failed,
//! canceled, rejected or input-required. A stream that breaks off after the agent took the task
//! is followed by polling. `CancelTask` / `tasks/cancel` (or `POST {url}/tasks/{id}:cancel`)
//! cancels. The version and binding come from the endpoint's `protocolVersion` and
//! `protocolBinding` (set from the agent's card), else the card's version.

use std::time::{Duration, Instant};

use agent_registry_core::error::catalogue;
use agent_registry_core::protocol::DocumentFormat;
use agent_registry_core::task::{Call, InvokeError, Outcome, Step, Target};
use serde_json::{Map, Value, json};

use crate::egress::EgressPolicy;
use crate::http::{HttpBounds, Opened, Phase, exchange, open_stream};

/// How often a task that is not resting yet is read again.
const POLL: Duration = Duration::from_millis(300);
/// How long a cancel request may take.
const CANCEL_WITHIN: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    V1,
    V03,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Binding {
    JsonRpc,
    HttpJson,
}

fn version_of(target: &Target) -> Version {
    let declared = target.protocol_metadata.get("protocolVersion").and_then(Value::as_str).or_else(|| {
        target.document.as_ref().filter(|d| d.format == DocumentFormat::A2aAgentCard).map(|d| d.version.as_str())
    });
    match declared {
        Some(v) if v.trim_start_matches('v').starts_with("0.") => Version::V03,
        _ => Version::V1,
    }
}

fn binding_of(target: &Target) -> Binding {
    match target.protocol_metadata.get("protocolBinding").and_then(Value::as_str) {
        Some(b) if b.eq_ignore_ascii_case("HTTP+JSON") || b.eq_ignore_ascii_case("REST") => Binding::HttpJson,
        _ => Binding::JsonRpc,
    }
}

/// Whether the agent's card says it streams (A2A §5.5.2 `AgentCapabilities.streaming`).
fn streams(target: &Target) -> bool {
    let Some(document) = target.document.as_ref().filter(|d| d.format == DocumentFormat::A2aAgentCard) else {
        return false;
    };
    let card: Value = serde_json::from_str(&document.text).unwrap_or(Value::Null);
    let card = card.get("card").filter(|c| c.is_object()).unwrap_or(&card);
    card.get("capabilities").and_then(|c| c.get("streaming")).and_then(Value::as_bool).unwrap_or(false)
}

/// `{url}/<segments>`, each segment escaped (a task id is the agent's text).
fn url_of(target: &Target, segments: &[&str]) -> String {
    match url::Url::parse(&target.address) {
        Ok(mut url) => {
            if let Ok(mut path) = url.path_segments_mut() {
                path.pop_if_empty().extend(segments);
            }
            url.to_string()
        }
        Err(_) => format!("{}/{}", target.address.trim_end_matches('/'), segments.join("/")),
    }
}

/// What the client knows of the agent's task as it follows it: whether the agent took it, its
/// id, the last state reported, and the task as the agent's updates built it.
#[derive(Default)]
struct Tracker {
    accepted: bool,
    remote_id: Option<String>,
    reported: String,
    task: Map<String, Value>,
}

impl Tracker {
    fn accept(&mut self, remote_id: Option<&str>, events: &(dyn Fn(Step) + Send + Sync)) {
        if self.remote_id.is_none() {
            self.remote_id = remote_id.map(str::to_owned);
        }
        if !self.accepted {
            self.accepted = true;
            events(Step::Accepted { remote_id: self.remote_id.clone() });
        }
    }

    /// Takes the agent's whole task; its outcome once it rests.
    fn task(&mut self, task: Map<String, Value>, events: &(dyn Fn(Step) + Send + Sync)) -> Option<Outcome> {
        self.accept(task.get("id").and_then(Value::as_str), events);
        self.task = task;
        self.status(events)
    }

    /// Reports the task's state if it changed; its outcome once it rests.
    fn status(&mut self, events: &(dyn Fn(Step) + Send + Sync)) -> Option<Outcome> {
        let state = state_of(&self.task);
        if state != self.reported {
            let message = self.task.get("status").and_then(|s| s.get("message")).cloned();
            events(Step::Status { state: state.clone(), message });
            self.reported = state.clone();
        }
        outcome_of(&state, &self.task)
    }

    /// One event of a stream; the outcome once the task rests.
    fn update(&mut self, update: Update, events: &(dyn Fn(Step) + Send + Sync)) -> Option<Outcome> {
        match update {
            Update::Task(task) => self.task(task, events),
            // A message as the first answer is the whole answer (A2A §3.1.2); later, a note.
            Update::Message(message) if !self.accepted => {
                self.accept(None, events);
                Some(Outcome::Completed { output: output_of_message(&message) })
            }
            Update::Message(message) => {
                events(Step::Message(Value::Object(message)));
                None
            }
            Update::Status(update) => {
                self.accept(update.get("taskId").and_then(Value::as_str), events);
                if let Some(status) = update.get("status") {
                    self.task.insert("status".into(), status.clone());
                }
                self.status(events)
            }
            Update::Artifact(update) => {
                self.accept(update.get("taskId").and_then(Value::as_str), events);
                let artifact = update.get("artifact").cloned().unwrap_or(Value::Null);
                let append = update.get("append").and_then(Value::as_bool).unwrap_or(false);
                self.add_artifact(&artifact, append);
                events(Step::Artifact(artifact));
                None
            }
        }
    }

    /// Keeps an artifact for the output: a chunk with `append` extends the artifact of the same
    /// id, another replaces it (A2A §3.1.4 `TaskArtifactUpdateEvent`).
    fn add_artifact(&mut self, artifact: &Value, append: bool) {
        let Value::Array(artifacts) = self.task.entry("artifacts").or_insert_with(|| Value::Array(Vec::new())) else {
            return;
        };
        let id = artifact.get("artifactId");
        let same = artifacts.iter_mut().find(|a| id.is_some() && a.get("artifactId") == id);
        match (same, append) {
            (Some(existing), true) => {
                let more = artifact.get("parts").and_then(Value::as_array).cloned().unwrap_or_default();
                if let Some(Value::Array(parts)) = existing.get_mut("parts") {
                    parts.extend(more);
                }
            }
            (Some(existing), false) => *existing = artifact.clone(),
            (None, _) => artifacts.push(artifact.clone()),
        }
    }
}

/// One event of a stream (A2A §3.2.3 `StreamResponse`): v1.0 wraps it in a member named for
/// its kind, v0.3 tags it with `kind`.
enum Update {
    Task(Map<String, Value>),
    Message(Map<String, Value>),
    Status(Map<String, Value>),
    Artifact(Map<String, Value>),
}

impl Update {
    fn read(result: &Value) -> Option<Self> {
        let object = |v: &Value| v.as_object().cloned();
        let wrapped = [("task", 0), ("message", 1), ("statusUpdate", 2), ("artifactUpdate", 3)];
        for (name, kind) in wrapped {
            if let Some(inner) = result.get(name).and_then(object) {
                return Some(Self::of(kind, inner));
            }
        }
        let tagged = object(result)?;
        let kind = match tagged.get("kind").and_then(Value::as_str)? {
            "task" => 0,
            "message" => 1,
            "status-update" => 2,
            "artifact-update" => 3,
            _ => return None,
        };
        Some(Self::of(kind, tagged))
    }

    fn of(kind: u8, inner: Map<String, Value>) -> Self {
        match kind {
            0 => Self::Task(inner),
            1 => Self::Message(inner),
            2 => Self::Status(inner),
            _ => Self::Artifact(inner),
        }
    }
}

/// The A2A client.
pub struct A2aClient<'a> {
    pub egress: &'a EgressPolicy,
    pub bounds: &'a HttpBounds,
}

impl A2aClient<'_> {
    pub async fn invoke(
        &self,
        target: &Target,
        call: &Call,
        events: &(dyn Fn(Step) + Send + Sync),
    ) -> Result<Outcome, InvokeError> {
        let (version, binding) = (version_of(target), binding_of(target));
        let mut tracker = Tracker::default();
        if streams(target) {
            match self.stream(target, version, binding, call, &mut tracker, events).await {
                Ok(Some(outcome)) => return Ok(outcome),
                // The stream ended or broke before the task rested: follow it by polling.
                Ok(None) if tracker.remote_id.is_some() => {}
                Err(e) if tracker.remote_id.is_some() => {
                    tracing::info!(error = %e, "the agent's stream broke off; following the task by polling");
                }
                Ok(None) => {
                    return Err(InvokeError::AfterAccepted {
                        code: catalogue::PROTOCOL_ERROR,
                        detail: "the agent's stream ended before the task rested, with no task id to follow".into(),
                    });
                }
                Err(e) => return Err(e),
            }
        } else {
            let answer = self.send(target, version, binding, call).await?;
            let reply = Update::read(&answer).or_else(|| {
                // Some v0.3 servers answer a bare Task without `kind`.
                answer.get("status").and(answer.as_object().cloned()).map(Update::Task)
            });
            let Some(reply @ (Update::Task(_) | Update::Message(_))) = reply else {
                return Err(InvokeError::NotAccepted {
                    code: catalogue::PROTOCOL_ERROR,
                    detail: format!("the agent's answer is neither an A2A Task nor a Message: {}", excerpt(&answer)),
                });
            };
            if let Some(outcome) = tracker.update(reply, events) {
                return Ok(outcome);
            }
        }
        self.poll(target, version, binding, call, &mut tracker, events).await
    }

    /// Reads the task again until it rests.
    async fn poll(
        &self,
        target: &Target,
        version: Version,
        binding: Binding,
        call: &Call,
        tracker: &mut Tracker,
        events: &(dyn Fn(Step) + Send + Sync),
    ) -> Result<Outcome, InvokeError> {
        let Some(id) = tracker.remote_id.clone() else {
            return Err(InvokeError::AfterAccepted {
                code: catalogue::PROTOCOL_ERROR,
                detail: "the agent's task has no id to follow it by".into(),
            });
        };
        loop {
            tokio::time::sleep(POLL.min(call.deadline.saturating_duration_since(Instant::now()))).await;
            let task = self.get_task(target, version, binding, &id, call.deadline).await?;
            if let Some(outcome) = tracker.task(task, events) {
                return Ok(outcome);
            }
        }
    }

    /// Sends the message as a stream and reads its events until the task rests (`Some`) or the
    /// stream ends (`None`).
    async fn stream(
        &self,
        target: &Target,
        version: Version,
        binding: Binding,
        call: &Call,
        tracker: &mut Tracker,
        events: &(dyn Fn(Step) + Send + Sync),
    ) -> Result<Option<Outcome>, InvokeError> {
        let params = json!({ "message": message(version, call), "metadata": call.metadata });
        let method = if version == Version::V1 { "SendStreamingMessage" } else { "message/stream" };
        let (url, body) = match binding {
            Binding::JsonRpc => (target.address.clone(), rpc_body(method, params)),
            Binding::HttpJson => (url_of(target, &["message:stream"]), params),
        };
        let headers = headers(version);
        let before = Phase::BeforeAcceptance;
        let opened = open_stream(self.egress, self.bounds, &url, &body, &headers, call.deadline, before).await?;
        let mut stream = match opened {
            Opened::Stream(stream) => stream,
            // A plain answer: a refusal, or the whole answer at once.
            Opened::Json(answer) => {
                let result = self.result_of(binding, method, &answer, before)?;
                let update = Update::read(&result).ok_or_else(|| {
                    before.error(catalogue::PROTOCOL_ERROR, format!("{method} answered {}", excerpt(&result)))
                })?;
                return Ok(tracker.update(update, events));
            }
        };
        loop {
            let phase = if tracker.accepted { Phase::AfterAcceptance } else { Phase::BeforeAcceptance };
            // Once the answer's head came, the agent may have the task: in doubt, accepted.
            let Some(event) = stream.next(call.deadline, Phase::AfterAcceptance).await? else {
                return Ok(None);
            };
            let payload: Value = serde_json::from_str(&event.data).map_err(|e| {
                phase.error(catalogue::PROTOCOL_ERROR, format!("{method} streamed an event that is not JSON: {e}"))
            })?;
            let result = self.result_of(binding, method, &payload, phase)?;
            if event.event.as_deref() == Some("error") {
                return Err(
                    phase.error(catalogue::AGENT_ERROR, format!("{method} streamed an error: {}", excerpt(&result)))
                );
            }
            let update = Update::read(&result).ok_or_else(|| {
                phase.error(
                    catalogue::PROTOCOL_ERROR,
                    format!("{method} streamed an unknown event: {}", excerpt(&result)),
                )
            })?;
            if let Some(outcome) = tracker.update(update, events) {
                return Ok(Some(outcome));
            }
        }
    }

    /// The result of a JSON-RPC answer (its error as the agent's failure); an HTTP+JSON answer
    /// is its own result.
    fn result_of(&self, binding: Binding, method: &str, answer: &Value, phase: Phase) -> Result<Value, InvokeError> {
        if binding == Binding::HttpJson {
            return Ok(answer.clone());
        }
        if let Some(error) = answer.get("error") {
            let message = error.get("message").and_then(Value::as_str).unwrap_or("no message");
            let code = error.get("code").map(Value::to_string).unwrap_or_default();
            return Err(
                phase.error(catalogue::AGENT_ERROR, format!("{method} failed with JSON-RPC error {code}: {message}"))
            );
        }
        answer.get("result").cloned().ok_or_else(|| {
            phase.error(catalogue::PROTOCOL_ERROR, format!("{method} answered no result: {}", excerpt(answer)))
        })
    }

    /// Asks the agent to cancel its task (`CancelTask`, A2A §3.1.5), within a few seconds.
    pub async fn cancel(&self, target: &Target, remote_id: Option<&str>) -> Result<(), InvokeError> {
        let Some(id) = remote_id else { return Ok(()) };
        let version = version_of(target);
        let deadline = Instant::now() + CANCEL_WITHIN;
        let phase = Phase::AfterAcceptance;
        match binding_of(target) {
            Binding::JsonRpc => {
                let method = if version == Version::V1 { "CancelTask" } else { "tasks/cancel" };
                self.rpc(target, version, method, json!({ "id": id }), deadline, phase).await?;
            }
            Binding::HttpJson => {
                let url = url_of(target, &["tasks", &format!("{id}:cancel")]);
                exchange(self.egress, self.bounds, &url, Some(&json!({})), &headers(version), deadline, phase).await?;
            }
        }
        Ok(())
    }

    async fn send(
        &self,
        target: &Target,
        version: Version,
        binding: Binding,
        call: &Call,
    ) -> Result<Value, InvokeError> {
        // Not blocking: the answer comes once the agent took the task, which is then followed
        // by polling (a blocking send would outlast the request bound on a long task).
        let configuration = match version {
            Version::V1 => json!({ "returnImmediately": true }),
            Version::V03 => json!({ "blocking": false }),
        };
        let params =
            json!({ "message": message(version, call), "configuration": configuration, "metadata": call.metadata });
        match binding {
            Binding::JsonRpc => {
                let method = if version == Version::V1 { "SendMessage" } else { "message/send" };
                self.rpc(target, version, method, params, call.deadline, Phase::BeforeAcceptance).await
            }
            Binding::HttpJson => {
                let url = url_of(target, &["message:send"]);
                let headers = headers(version);
                exchange(
                    self.egress,
                    self.bounds,
                    &url,
                    Some(&params),
                    &headers,
                    call.deadline,
                    Phase::BeforeAcceptance,
                )
                .await
            }
        }
    }

    async fn get_task(
        &self,
        target: &Target,
        version: Version,
        binding: Binding,
        id: &str,
        deadline: Instant,
    ) -> Result<Map<String, Value>, InvokeError> {
        let answer = match binding {
            Binding::JsonRpc => {
                let method = if version == Version::V1 { "GetTask" } else { "tasks/get" };
                self.rpc(target, version, method, json!({ "id": id }), deadline, Phase::AfterAcceptance).await?
            }
            Binding::HttpJson => {
                let url = url_of(target, &["tasks", id]);
                exchange(self.egress, self.bounds, &url, None, &headers(version), deadline, Phase::AfterAcceptance)
                    .await?
            }
        };
        // GetTask answers the Task itself (v1.0 and v0.3 alike).
        let task = answer.get("task").unwrap_or(&answer);
        task.as_object().cloned().ok_or_else(|| InvokeError::AfterAccepted {
            code: catalogue::PROTOCOL_ERROR,
            detail: format!("GetTask answered something that is not a Task: {}", excerpt(&answer)),
        })
    }

    /// One JSON-RPC call; a JSON-RPC error is the agent refusing (before acceptance) or
    /// failing to answer (after).
    async fn rpc(
        &self,
        target: &Target,
        version: Version,
        method: &str,
        params: Value,
        deadline: Instant,
        phase: Phase,
    ) -> Result<Value, InvokeError> {
        let body = rpc_body(method, params);
        let answer =
            exchange(self.egress, self.bounds, &target.address, Some(&body), &headers(version), deadline, phase)
                .await?;
        self.result_of(Binding::JsonRpc, method, &answer, phase)
    }
}

fn rpc_body(method: &str, params: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": uuid::Uuid::new_v4().to_string(), "method": method, "params": params })
}

fn headers(version: Version) -> Vec<(&'static str, &'static str)> {
    // A2A v1.0 §3.2.6: clients name the version they speak; v0.3 servers know no such header.
    match version {
        Version::V1 => vec![("A2A-Version", "1.0")],
        Version::V03 => Vec::new(),
    }
}

/// The user's message in the version's shape: text, or a data part for a JSON object.
fn message(version: Version, call: &Call) -> Value {
    let id = call.task_id.to_string();
    match version {
        Version::V1 => {
            let part = match &call.input {
                Value::String(text) => json!({ "text": text }),
                other => json!({ "data": other }),
            };
            json!({ "messageId": id, "role": "ROLE_USER", "parts": [part] })
        }
        Version::V03 => {
            let part = match &call.input {
                Value::String(text) => json!({ "kind": "text", "text": text }),
                other => json!({ "kind": "data", "data": other }),
            };
            json!({ "kind": "message", "messageId": id, "role": "user", "parts": [part] })
        }
    }
}

/// A task's state in one spelling: `TASK_STATE_INPUT_REQUIRED` (v1.0) and `input-required`
/// (v0.3) are both `input_required`.
fn state_of(task: &Map<String, Value>) -> String {
    let raw = task.get("status").and_then(|s| s.get("state")).and_then(Value::as_str).unwrap_or("unknown");
    raw.trim_start_matches("TASK_STATE_").to_ascii_lowercase().replace('-', "_")
}

fn outcome_of(state: &str, task: &Map<String, Value>) -> Option<Outcome> {
    let message = task.get("status").and_then(|s| s.get("message")).cloned();
    let said = || message.as_ref().and_then(|m| text_of(m.get("parts"))).unwrap_or_default();
    Some(match state {
        "completed" => Outcome::Completed { output: output_of_task(task) },
        "failed" => Outcome::Failed {
            code: catalogue::AGENT_FAILED.into(),
            detail: Some(said())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "the agent reports the task failed".into()),
        },
        "canceled" | "cancelled" => Outcome::Canceled,
        "rejected" => Outcome::Rejected { detail: Some(said()).filter(|s| !s.is_empty()) },
        "input_required" | "auth_required" => Outcome::InputRequired { message },
        _ => return None,
    })
}

/// The text of the parts, when every part is text.
fn text_of(parts: Option<&Value>) -> Option<String> {
    let parts = parts?.as_array()?;
    let texts: Option<Vec<&str>> = parts.iter().map(|p| p.get("text").and_then(Value::as_str)).collect();
    texts.filter(|t| !t.is_empty()).map(|t| t.join("\n"))
}

/// A completed task's output: the text of its artifacts when all is text, else the artifacts;
/// with no artifact, the status message.
fn output_of_task(task: &Map<String, Value>) -> Value {
    let artifacts = task.get("artifacts").and_then(Value::as_array).filter(|a| !a.is_empty());
    match artifacts {
        Some(artifacts) => {
            let texts: Option<Vec<String>> = artifacts.iter().map(|a| text_of(a.get("parts"))).collect();
            texts.map_or_else(|| Value::Array(artifacts.clone()), |t| Value::String(t.join("\n")))
        }
        None => task
            .get("status")
            .and_then(|s| s.get("message"))
            .map_or(Value::Null, |m| m.as_object().map_or(Value::Null, output_of_message)),
    }
}

fn output_of_message(message: &Map<String, Value>) -> Value {
    text_of(message.get("parts")).map_or_else(|| Value::Object(message.clone()), Value::String)
}

fn excerpt(value: &Value) -> String {
    value.to_string().chars().take(200).collect()
}
