//! ACP (Agent Communication Protocol, acp-sdk 1.0): `POST {address}/runs` with the run's
//! `agent_name` (the endpoint's `protocolMetadata.agent_name`: the name the agent's ACP server
//! knows it by; the gateway fills in the agent's own name when registration left none) and the
//! input as one ACP message. `mode: stream` by default, read as Server-Sent Events of run
//! events; an endpoint whose `protocolMetadata.mode` is `sync` is sent a `sync` run and the
//! finished run is read from the answer. Cancel: `POST {address}/runs/{run_id}/cancel`.
//!
//! Acceptance is the run id: the `run.created` event of a stream, the run of a sync answer.
//! A run that rests `awaiting` (the agent yielded a `MessageAwaitRequest`) is input-required.

use std::time::Instant;

use agent_registry_core::error::catalogue;
use agent_registry_core::task::{Call, InvokeError, Outcome, Step, Target};
use serde_json::{Map, Value, json};

use crate::egress::EgressPolicy;
use crate::http::{HttpBounds, Phase, exchange};

/// The ACP client.
pub struct AcpClient<'a> {
    pub egress: &'a EgressPolicy,
    pub bounds: &'a HttpBounds,
}

/// How runs are asked for: the endpoint may say `sync` for servers without streaming.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Stream,
    Sync,
}

fn mode_of(target: &Target) -> Mode {
    match target.protocol_metadata.get("mode").and_then(Value::as_str) {
        Some(m) if m.eq_ignore_ascii_case("sync") => Mode::Sync,
        _ => Mode::Stream,
    }
}

fn base(target: &Target) -> &str {
    target.address.trim_end_matches('/')
}

impl AcpClient<'_> {
    pub async fn invoke(
        &self,
        target: &Target,
        call: &Call,
        events: &(dyn Fn(Step) + Send + Sync),
    ) -> Result<Outcome, InvokeError> {
        let Some(agent_name) = target.protocol_metadata.get("agent_name").and_then(Value::as_str) else {
            return Err(InvokeError::NotAccepted {
                code: catalogue::PROTOCOL_ERROR,
                detail: "the ACP endpoint names no agent_name to run".into(),
            });
        };
        let mode = mode_of(target);
        let body = json!({
            "agent_name": agent_name,
            "input": [input_message(&call.input)],
            "mode": if mode == Mode::Stream { "stream" } else { "sync" },
        });
        let url = format!("{}/runs", base(target));
        match mode {
            Mode::Sync => {
                // The answer comes when the run rests: acceptance and outcome arrive together.
                let run =
                    exchange(self.egress, self.bounds, &url, Some(&body), &[], call.deadline, Phase::BeforeAcceptance)
                        .await?;
                rested(&run, events)
            }
            Mode::Stream => self.stream(&url, &body, call.deadline, events).await,
        }
    }

    /// A streamed run: each SSE `data:` is one run event, followed until the run rests.
    async fn stream(
        &self,
        url: &str,
        body: &Value,
        deadline: Instant,
        events: &(dyn Fn(Step) + Send + Sync),
    ) -> Result<Outcome, InvokeError> {
        let shown = agent_registry_core::redact::url_credentials(url);
        let mut response = self.open(url, body, deadline).await?;
        let is_stream = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !is_stream {
            // A server that ignored `mode` answered the run as JSON, as for `sync`.
            let bytes = read_all(&mut response, self.bounds.max_response_bytes, &shown).await?;
            let run: Value = serde_json::from_slice(&bytes).map_err(|e| InvokeError::NotAccepted {
                code: catalogue::PROTOCOL_ERROR,
                detail: format!("{shown} answered neither a stream nor JSON: {e}"),
            })?;
            return rested(&run, events);
        }
        let header_run_id = response.headers().get("run-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let mut phase = Phase::BeforeAcceptance;
        let accept = |run_id: Option<String>, phase: &mut Phase| {
            if *phase == Phase::BeforeAcceptance {
                events(Step::Accepted { remote_id: run_id.or_else(|| header_run_id.clone()) });
                *phase = Phase::AfterAcceptance;
            }
        };
        let mut reader = Sse::default();
        let mut read = 0_usize;
        let mut last_error: Option<String> = None;
        loop {
            let chunk = match response.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => {
                    let why = if e.is_timeout() { "stopped streaming in time" } else { "broke off" };
                    return Err(phase.error(catalogue::AGENT_UNREACHABLE, format!("{shown} {why}: {e}")));
                }
            };
            read += chunk.len();
            if read > self.bounds.max_response_bytes {
                return Err(phase.error(
                    catalogue::PROTOCOL_ERROR,
                    format!("{shown} streamed more than {} bytes", self.bounds.max_response_bytes),
                ));
            }
            for data in reader.push(&chunk) {
                let event: Value = serde_json::from_str(&data).map_err(|e| {
                    phase.error(catalogue::PROTOCOL_ERROR, format!("{shown} streamed an event that is not JSON: {e}"))
                })?;
                let kind = event.get("type").and_then(Value::as_str).unwrap_or_default();
                let run = event.get("run").and_then(Value::as_object);
                let run_id = run.and_then(|r| r.get("run_id")).and_then(Value::as_str).map(str::to_owned);
                match kind {
                    "run.created" => accept(run_id.clone(), &mut phase),
                    "run.in-progress" => {
                        accept(run_id.clone(), &mut phase);
                        events(Step::Status { state: "in-progress".into(), message: None });
                    }
                    "message.part" => {
                        accept(None, &mut phase);
                        let part = event.get("part").cloned().unwrap_or(Value::Null);
                        // ACP: a part with a name is an artifact.
                        let named = part.get("name").is_some_and(|n| !n.is_null());
                        events(if named { Step::Artifact(part) } else { Step::Progress(json!({ "part": part })) });
                    }
                    "message.completed" => {
                        accept(None, &mut phase);
                        events(Step::Message(event.get("message").cloned().unwrap_or(Value::Null)));
                    }
                    "generic" => {
                        accept(None, &mut phase);
                        events(Step::Progress(event.get("generic").cloned().unwrap_or(Value::Null)));
                    }
                    "error" => {
                        last_error = event.pointer("/error/message").and_then(Value::as_str).map(str::to_owned);
                    }
                    _ => {}
                }
                if let Some(run) = run
                    && let Some(outcome) = outcome_of_run(run)
                {
                    accept(run_id, &mut phase);
                    return Ok(outcome);
                }
            }
        }
        let detail = match last_error {
            Some(error) => format!("{shown} ended the run's stream with an error: {error}"),
            None => format!("{shown} ended the run's stream before the run rested"),
        };
        Err(phase.error(catalogue::PROTOCOL_ERROR, detail))
    }

    /// Sends the run request and returns the answer once its status is in (the body is read
    /// by the caller). Bounded by the deadline in all, each read by the request bound.
    async fn open(&self, url: &str, body: &Value, deadline: Instant) -> Result<reqwest::Response, InvokeError> {
        let phase = Phase::BeforeAcceptance;
        let (parsed, client) = crate::http::pinned(self.egress, self.bounds, url, phase).await?;
        let shown = agent_registry_core::redact::url_credentials(url);
        let response = client
            .post(parsed)
            .timeout(deadline.saturating_duration_since(Instant::now()))
            .header("accept", "text/event-stream, application/json")
            .json(body)
            .send()
            .await
            .map_err(|e| {
                let why = if e.is_timeout() { "did not answer in time" } else { "could not be reached" };
                phase.error(catalogue::AGENT_UNREACHABLE, format!("{shown} {why}: {e}"))
            })?;
        let status = response.status();
        if !status.is_success() {
            let text = tokio::time::timeout(self.bounds.connect, response.text()).await.ok().and_then(Result::ok);
            let text: String = text.unwrap_or_default().chars().take(200).collect();
            return Err(phase.error(catalogue::AGENT_ERROR, format!("{shown} answered HTTP {status}: {text}")));
        }
        Ok(response)
    }

    /// Asks the agent's ACP server to cancel the run.
    pub async fn cancel(&self, target: &Target, run_id: Option<&str>) -> Result<(), InvokeError> {
        let Some(run_id) = run_id else { return Ok(()) };
        let url = format!("{}/runs/{run_id}/cancel", base(target));
        let deadline = Instant::now() + self.bounds.request;
        exchange(self.egress, self.bounds, &url, Some(&json!({})), &[], deadline, Phase::AfterAcceptance).await?;
        Ok(())
    }
}

/// The task's input as one ACP user message: text is a `text/plain` part, a JSON object an
/// `application/json` part (ACP part content is a string).
fn input_message(input: &Value) -> Value {
    let part = match input {
        Value::String(text) => json!({ "content_type": "text/plain", "content": text }),
        other => json!({ "content_type": "application/json", "content": other.to_string() }),
    };
    json!({ "role": "user", "parts": [part] })
}

/// Where a run rests, if it does: completed, failed, cancelled or awaiting.
fn outcome_of_run(run: &Map<String, Value>) -> Option<Outcome> {
    let status = run.get("status").and_then(Value::as_str).unwrap_or_default();
    Some(match status {
        "completed" => Outcome::Completed { output: output_of(run.get("output")) },
        "failed" => Outcome::Failed {
            code: catalogue::AGENT_FAILED.into(),
            detail: run
                .get("error")
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str)
                .map_or_else(|| "the agent reports the run failed".to_owned(), str::to_owned),
        },
        "cancelled" | "canceled" => Outcome::Canceled,
        "awaiting" => {
            Outcome::InputRequired { message: run.get("await_request").and_then(|a| a.get("message")).cloned() }
        }
        _ => return None,
    })
}

/// A completed run's output: the text of its messages when every part is text, the JSON when
/// it is one `application/json` part, else the messages as ACP has them.
fn output_of(output: Option<&Value>) -> Value {
    let Some(messages) = output.and_then(Value::as_array) else { return Value::Null };
    let parts: Vec<&Value> =
        messages.iter().filter_map(|m| m.get("parts").and_then(Value::as_array)).flatten().collect();
    let content_type = |p: &Value| p.get("content_type").and_then(Value::as_str).unwrap_or("text/plain").to_owned();
    let content = |p: &Value| p.get("content").and_then(Value::as_str).map(str::to_owned);
    if let [part] = parts.as_slice()
        && content_type(part).starts_with("application/json")
        && let Some(json) = content(part).and_then(|c| serde_json::from_str::<Value>(&c).ok())
    {
        return json;
    }
    let texts: Option<Vec<String>> =
        parts.iter().map(|p| content_type(p).starts_with("text/").then(|| content(p)).flatten()).collect();
    match texts {
        Some(texts) if !texts.is_empty() => Value::String(texts.concat()),
        _ => Value::Array(messages.clone()),
    }
}

/// A run answered whole (sync): accepted by its id, and where it rests.
fn rested(run: &Value, events: &(dyn Fn(Step) + Send + Sync)) -> Result<Outcome, InvokeError> {
    let Some(object) = run.as_object().filter(|r| r.get("run_id").is_some_and(Value::is_string)) else {
        return Err(not_a_run(run, Phase::BeforeAcceptance));
    };
    events(Step::Accepted { remote_id: object.get("run_id").and_then(Value::as_str).map(str::to_owned) });
    outcome_of_run(object).ok_or_else(|| InvokeError::AfterAccepted {
        code: catalogue::PROTOCOL_ERROR,
        detail: format!("the run answered is not resting: {}", excerpt(run)),
    })
}

/// The whole body, at most `max` bytes.
async fn read_all(response: &mut reqwest::Response, max: usize, shown: &str) -> Result<Vec<u8>, InvokeError> {
    let mut bytes = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) if bytes.len() + chunk.len() > max => {
                return Err(InvokeError::NotAccepted {
                    code: catalogue::PROTOCOL_ERROR,
                    detail: format!("{shown} answered more than {max} bytes"),
                });
            }
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) => return Ok(bytes),
            Err(e) => {
                return Err(InvokeError::NotAccepted {
                    code: catalogue::AGENT_UNREACHABLE,
                    detail: format!("{shown} broke off: {e}"),
                });
            }
        }
    }
}

fn not_a_run(value: &Value, phase: Phase) -> InvokeError {
    phase.error(catalogue::PROTOCOL_ERROR, format!("the ACP server's answer is not a run: {}", excerpt(value)))
}

fn excerpt(value: &Value) -> String {
    value.to_string().chars().take(200).collect()
}

/// Splits a Server-Sent Events byte stream into the data of its events.
#[derive(Default)]
struct Sse {
    buffer: String,
}

impl Sse {
    fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.buffer.push_str(&String::from_utf8_lossy(bytes).replace("\r\n", "\n"));
        let mut out = Vec::new();
        while let Some(end) = self.buffer.find("\n\n") {
            let block: String = self.buffer.drain(..end + 2).collect();
            let data: Vec<&str> = block
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            if !data.is_empty() {
                out.push(data.join("\n"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_sent_events_are_split_across_chunks() {
        let mut sse = Sse::default();
        assert!(sse.push(b"data: {\"a\"").is_empty());
        assert_eq!(sse.push(b":1}\r\n\r\ndata: 2\n\n: comment\n\n"), vec!["{\"a\":1}".to_owned(), "2".to_owned()]);
    }

    #[test]
    fn outputs_are_text_json_or_the_messages() {
        let text = json!([{"parts": [{"content_type": "text/plain", "content": "a"}, {"content": "b"}]}]);
        assert_eq!(output_of(Some(&text)), json!("ab"));
        let data = json!([{"parts": [{"content_type": "application/json", "content": "{\"x\":1}"}]}]);
        assert_eq!(output_of(Some(&data)), json!({"x": 1}));
        let image = json!([{"parts": [{"content_type": "image/png", "content_url": "http://x/y.png"}]}]);
        assert_eq!(output_of(Some(&image)), image);
    }

    #[test]
    fn runs_rest_completed_failed_cancelled_or_awaiting() {
        let run = |v: Value| v.as_object().cloned().unwrap_or_default();
        assert_eq!(outcome_of_run(&run(json!({"status": "in-progress"}))), None);
        assert_eq!(
            outcome_of_run(&run(json!({"status": "failed", "error": {"code": "server_error", "message": "no"}}))),
            Some(Outcome::Failed { code: "agent_failed".into(), detail: "no".into() })
        );
        assert_eq!(outcome_of_run(&run(json!({"status": "cancelled"}))), Some(Outcome::Canceled));
        let awaiting = json!({"status": "awaiting", "await_request": {"type": "message", "message": {"parts": []}}});
        assert_eq!(
            outcome_of_run(&run(awaiting)),
            Some(Outcome::InputRequired { message: Some(json!({"parts": []})) })
        );
    }
}
