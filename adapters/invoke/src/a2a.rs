//! A2A: `SendMessage` (v1.0) or `message/send` (v0.3) over the JSON-RPC binding, or
//! `POST {url}/message:send` over HTTP+JSON; then the task is followed with `GetTask` /
//! `tasks/get` (or `GET {url}/tasks/{id}`) until it rests: completed, failed, canceled,
//! rejected or input-required. The version and binding come from the endpoint's
//! `protocolVersion` and `protocolBinding` (set from the agent's card), else the card's version.

use std::time::{Duration, Instant};

use agent_registry_core::error::catalogue;
use agent_registry_core::protocol::DocumentFormat;
use agent_registry_core::task::{Call, InvokeError, Outcome, Step, Target};
use serde_json::{Map, Value, json};

use crate::egress::EgressPolicy;
use crate::http::{HttpBounds, Phase, exchange};

/// How often a task that is not resting yet is read again.
const POLL: Duration = Duration::from_millis(300);

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
        let answer = self.send(target, version, binding, call).await?;
        let reply = Reply::read(&answer, version).ok_or_else(|| InvokeError::NotAccepted {
            code: catalogue::PROTOCOL_ERROR,
            detail: format!("the agent's answer is neither an A2A Task nor a Message: {}", excerpt(&answer)),
        })?;
        let mut task = match reply {
            Reply::Message(message) => {
                events(Step::Accepted { remote_id: None });
                return Ok(Outcome::Completed { output: output_of_message(&message) });
            }
            Reply::Task(task) => task,
        };
        let remote_id = task.get("id").and_then(Value::as_str).map(str::to_owned);
        events(Step::Accepted { remote_id: remote_id.clone() });
        let mut reported = String::new();
        loop {
            let state = state_of(&task);
            if state != reported {
                let message = task.get("status").and_then(|s| s.get("message")).cloned();
                events(Step::Status { state: state.clone(), message });
                reported = state.clone();
            }
            if let Some(outcome) = outcome_of(&state, &task) {
                return Ok(outcome);
            }
            let Some(id) = &remote_id else {
                return Err(InvokeError::AfterAccepted {
                    code: catalogue::PROTOCOL_ERROR,
                    detail: "the agent's task has no id to follow it by".into(),
                });
            };
            tokio::time::sleep(POLL.min(call.deadline.saturating_duration_since(Instant::now()))).await;
            task = self.get_task(target, version, binding, id, call.deadline).await?;
        }
    }

    async fn send(
        &self,
        target: &Target,
        version: Version,
        binding: Binding,
        call: &Call,
    ) -> Result<Value, InvokeError> {
        let params = json!({ "message": message(version, call), "metadata": call.metadata });
        match binding {
            Binding::JsonRpc => {
                let method = if version == Version::V1 { "SendMessage" } else { "message/send" };
                self.rpc(target, version, method, params, call.deadline, Phase::BeforeAcceptance).await
            }
            Binding::HttpJson => {
                let url = format!("{}/message:send", target.address.trim_end_matches('/'));
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
                let url = format!("{}/tasks/{id}", target.address.trim_end_matches('/'));
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
        let body =
            json!({ "jsonrpc": "2.0", "id": uuid::Uuid::new_v4().to_string(), "method": method, "params": params });
        let answer =
            exchange(self.egress, self.bounds, &target.address, Some(&body), &headers(version), deadline, phase)
                .await?;
        if let Some(error) = answer.get("error") {
            let message = error.get("message").and_then(Value::as_str).unwrap_or("no message");
            let code = error.get("code").map(Value::to_string).unwrap_or_default();
            return Err(
                phase.error(catalogue::AGENT_ERROR, format!("{method} failed with JSON-RPC error {code}: {message}"))
            );
        }
        answer.get("result").cloned().ok_or_else(|| {
            phase.error(catalogue::PROTOCOL_ERROR, format!("{method} answered no result: {}", excerpt(&answer)))
        })
    }
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

enum Reply {
    Task(Map<String, Value>),
    Message(Map<String, Value>),
}

impl Reply {
    /// v1.0 wraps the answer (`{"task": ...}` or `{"message": ...}`); v0.3 tags it with `kind`.
    fn read(answer: &Value, version: Version) -> Option<Self> {
        if let Some(task) = answer.get("task").and_then(Value::as_object) {
            return Some(Self::Task(task.clone()));
        }
        if let Some(message) = answer.get("message").and_then(Value::as_object) {
            return Some(Self::Message(message.clone()));
        }
        let object = answer.as_object()?;
        match (version, object.get("kind").and_then(Value::as_str)) {
            (_, Some("task")) => Some(Self::Task(object.clone())),
            (_, Some("message")) => Some(Self::Message(object.clone())),
            (_, _) if object.contains_key("status") => Some(Self::Task(object.clone())),
            _ => None,
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
