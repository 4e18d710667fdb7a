//! MCP: `tools/call` over Streamable HTTP with rmcp's client. The era comes from the endpoint's
//! `protocolVersion` or `supportedProtocolVersions` (from its Server Card): a 2026-07-28 server
//! is reached with `server/discover`, any other with `initialize` (2025-11-25, negotiated down).
//!
//! The tool is the task's `tool` (or the capability the agent was chosen by) when the server
//! lists it, else the server's only tool. A JSON object input is the tool's arguments; text goes
//! to the tool's one string argument. rmcp sends a progress token with every request: each
//! `notifications/progress` is a progress step, and the first one (or the call's answer) is the
//! acceptance. A dropped call (timeout, cancel) sends `notifications/cancelled` for it.

use std::time::{Duration, Instant};

use agent_registry_core::error::catalogue;
use agent_registry_core::task::{Call, InvokeError, Outcome, Step, Target};
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, CancelledNotificationParam, ClientCapabilities,
    ClientConfig, ClientRequest, ContentBlock, Implementation, ProgressNotificationParam, ProtocolVersion, RequestId,
    ServerResult, Tool,
};
use rmcp::service::{
    ClientInitializeError, ClientLifecycleMode, ClientServiceExt, NotificationContext, PeerRequestOptions, RoleClient,
    RunningService, ServiceError,
};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::{
    HttpStatusError, StreamableHttpClientTransportConfig, StreamableHttpError,
};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::egress::EgressPolicy;
use crate::http::{HttpBounds, Phase};

/// How long closing a session (and telling the server a call was abandoned) may take.
const CLOSE: Duration = Duration::from_secs(2);

/// The MCP client.
pub struct McpClient<'a> {
    pub egress: &'a EgressPolicy,
    pub bounds: &'a HttpBounds,
}

/// Forwards the server's progress notifications to the invocation.
#[derive(Clone)]
struct Listener {
    progress: mpsc::UnboundedSender<ProgressNotificationParam>,
}

impl rmcp::ClientHandler for Listener {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("agent-registry-gateway", env!("CARGO_PKG_VERSION")),
        )
    }

    async fn on_progress(&self, params: ProgressNotificationParam, _context: NotificationContext<RoleClient>) {
        let _ = self.progress.send(params);
    }
}

/// A connection to the server; dropped, it closes in the background, first telling the server
/// that the call still in flight (if any) is abandoned.
struct Session {
    service: Option<RunningService<RoleClient, Listener>>,
    in_flight: Option<RequestId>,
}

impl Drop for Session {
    fn drop(&mut self) {
        let Some(mut service) = self.service.take() else { return };
        let in_flight = self.in_flight.take();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(async move {
            if let Some(id) = in_flight {
                let reason = "the registry's task was canceled or timed out".to_owned();
                let cancelled =
                    service.peer().notify_cancelled(CancelledNotificationParam::new(Some(id), Some(reason)));
                let _ = tokio::time::timeout(CLOSE, cancelled).await;
            }
            let _ = service.close_with_timeout(CLOSE).await;
        });
    }
}

impl McpClient<'_> {
    pub async fn invoke(
        &self,
        target: &Target,
        call: &Call,
        events: &(dyn Fn(Step) + Send + Sync),
    ) -> Result<Outcome, InvokeError> {
        let shown = agent_registry_core::redact::url_credentials(&target.address);
        let (sender, mut progress) = mpsc::unbounded_channel();
        let transport = self.transport(&target.address, call.deadline).await?;
        let step = self.bounds.request.min(left(call.deadline));
        let started = tokio::time::timeout(
            step,
            Listener { progress: sender }.serve_with_lifecycle(transport, lifecycle(target)),
        )
        .await
        .map_err(|_| unreachable(format!("{shown} did not finish the MCP handshake in time")))?
        .map_err(|e| handshake_error(&shown, &e))?;
        let mut session = Session { service: Some(started), in_flight: None };
        let Some(service) = session.service.as_ref() else { return Err(unreachable(format!("{shown} closed"))) };
        let peer = service.peer().clone();
        let tools = tokio::time::timeout(step, peer.list_all_tools())
            .await
            .map_err(|_| unreachable(format!("{shown} did not answer tools/list in time")))?
            .map_err(|e| request_error(&shown, "tools/list", &e, Phase::BeforeAcceptance))?;
        let tool = choose(&tools, call.tool.as_deref())?;
        let params = CallToolRequestParams::new(tool.name.clone()).with_arguments(arguments(tool, &call.input)?);
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        let handle = peer
            .send_request_with_option(request, PeerRequestOptions::no_options())
            .await
            .map_err(|e| request_error(&shown, "tools/call", &e, Phase::BeforeAcceptance))?;
        session.in_flight = Some(handle.id.clone());
        let mut accepted = false;
        let answer = handle.await_response();
        tokio::pin!(answer);
        let answered = tokio::time::timeout_at(call.deadline.into(), async {
            loop {
                tokio::select! {
                    biased;
                    Some(note) = progress.recv() => {
                        if !accepted {
                            accepted = true;
                            events(Step::Accepted { remote_id: None });
                        }
                        events(Step::Progress(progress_value(&note)));
                    }
                    answer = &mut answer => return answer,
                }
            }
        })
        .await;
        let answered = match answered {
            Ok(answered) => answered,
            // The call may be running on the server: it is not sent anywhere else.
            Err(_) => {
                return Err(InvokeError::AfterAccepted {
                    code: catalogue::TASK_TIMEOUT,
                    detail: format!("{} did not answer tools/call `{}` before the task's deadline", shown, tool.name),
                });
            }
        };
        session.in_flight = None;
        let phase = if accepted { Phase::AfterAcceptance } else { Phase::BeforeAcceptance };
        let result = match answered {
            Ok(result) => result,
            Err(e) => return Err(call_error(&shown, &e, phase)),
        };
        if !accepted {
            events(Step::Accepted { remote_id: None });
        }
        // Notifications handled while the answer was read belong before the outcome.
        while let Ok(note) = progress.try_recv() {
            events(Step::Progress(progress_value(&note)));
        }
        match result {
            ServerResult::CallToolResult(result) => Ok(outcome(result)),
            ServerResult::InputRequiredResult(asked) => {
                Ok(Outcome::InputRequired { message: serde_json::to_value(asked).ok() })
            }
            ServerResult::EmptyResult(_) => Ok(Outcome::Completed { output: Value::Null }),
            other => Err(InvokeError::AfterAccepted {
                code: catalogue::PROTOCOL_ERROR,
                detail: format!(
                    "{shown} answered tools/call with something that is not a tool result: {}",
                    excerpt(&serde_json::to_value(other).unwrap_or_default())
                ),
            }),
        }
    }

    /// The Streamable HTTP transport over a reqwest client bound like `http::exchange`: the host
    /// resolved and checked by the egress policy, the connection made to the checked address,
    /// no redirects, answers capped, nothing past the task's deadline.
    async fn transport(
        &self,
        address: &str,
        deadline: Instant,
    ) -> Result<StreamableHttpClientTransport<reqwest::Client>, InvokeError> {
        let parsed = url::Url::parse(address).map_err(|e| unreachable(format!("{address}: {e}")))?;
        let host = parsed.host_str().unwrap_or_default().to_owned();
        let port = parsed.port_or_known_default().unwrap_or(80);
        let checked = self.egress.resolve(&host, port).await?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.bounds.connect)
            .timeout(left(deadline))
            .resolve(host.trim_start_matches('[').trim_end_matches(']'), checked)
            .build()
            .map_err(|e| unreachable(format!("cannot call {address}: {e}")))?;
        let config = StreamableHttpClientTransportConfig::with_uri(address.to_owned())
            .max_json_response_size(self.bounds.max_response_bytes)
            .max_sse_event_size(self.bounds.max_response_bytes)
            .max_error_response_size(4096);
        Ok(StreamableHttpClientTransport::with_client(client, config))
    }
}

fn left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// `server/discover` for a server that declares 2026-07-28 (or later), else `initialize`.
fn lifecycle(target: &Target) -> ClientLifecycleMode {
    let metadata = &target.protocol_metadata;
    let mut declared: Vec<&str> = metadata.get("protocolVersion").and_then(Value::as_str).into_iter().collect();
    if let Some(Value::Array(versions)) = metadata.get("supportedProtocolVersions") {
        declared.extend(versions.iter().filter_map(Value::as_str));
    }
    // Dates in ISO form order as text.
    if declared.iter().any(|v| *v >= ProtocolVersion::NO_INITIALIZE.as_str()) {
        ClientLifecycleMode::Discover { preferred_versions: vec![ProtocolVersion::LATEST] }
    } else {
        ClientLifecycleMode::Initialize
    }
}

/// The tool asked for when the server lists it (exactly, else in any case), else the server's
/// only tool: an agent registered with a capability whose one tool is named otherwise.
fn choose<'t>(tools: &'t [Tool], wanted: Option<&str>) -> Result<&'t Tool, InvokeError> {
    if let Some(name) = wanted {
        let found =
            tools.iter().find(|t| t.name == name).or_else(|| tools.iter().find(|t| t.name.eq_ignore_ascii_case(name)));
        if let Some(tool) = found {
            return Ok(tool);
        }
    }
    if let [only] = tools {
        return Ok(only);
    }
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    let listed = if names.is_empty() { "none".to_owned() } else { names.join(", ") };
    let detail = match wanted {
        Some(name) => format!("the MCP server has no tool `{name}` (its tools: {listed})"),
        None => format!("name the tool to call: the MCP server has more than one (its tools: {listed})"),
    };
    Err(InvokeError::NotAccepted { code: catalogue::TOOL_NOT_FOUND, detail })
}

/// The tool's arguments: a JSON object as it is; text as the value of the tool's one string
/// argument.
fn arguments(tool: &Tool, input: &Value) -> Result<Map<String, Value>, InvokeError> {
    let text = match input {
        Value::Object(arguments) => return Ok(arguments.clone()),
        Value::String(text) => text,
        other => return Ok(Map::from_iter([("input".to_owned(), other.clone())])),
    };
    let properties = tool.input_schema.get("properties").and_then(Value::as_object);
    let strings: Vec<&String> =
        properties.into_iter().flatten().filter(|(_, schema)| is_string(schema)).map(|(name, _)| name).collect();
    match strings.as_slice() {
        [only] => Ok(Map::from_iter([((*only).clone(), Value::String(text.clone()))])),
        _ => Err(InvokeError::NotAccepted {
            code: catalogue::INPUT_NOT_ACCEPTED,
            detail: format!(
                "the tool `{}` does not take text (it has {} string arguments, not one): send input as a JSON object of its arguments",
                tool.name,
                strings.len()
            ),
        }),
    }
}

fn is_string(schema: &Value) -> bool {
    match schema.get("type") {
        Some(Value::String(t)) => t == "string",
        Some(Value::Array(types)) => types.iter().any(|t| t == "string"),
        _ => false,
    }
}

fn progress_value(note: &ProgressNotificationParam) -> Value {
    let mut value = json!({ "progress": note.progress });
    if let Some(total) = note.total {
        value["total"] = json!(total);
    }
    if let Some(message) = &note.message {
        value["message"] = json!(message);
    }
    value
}

/// `isError` is the tool failing; otherwise the structured result, else the text, else the
/// content blocks.
fn outcome(result: CallToolResult) -> Outcome {
    let text = text_of(&result.content);
    if result.is_error == Some(true) {
        let detail = text.filter(|t| !t.is_empty()).unwrap_or_else(|| "the tool reports an error".into());
        return Outcome::Failed { code: catalogue::AGENT_FAILED.into(), detail };
    }
    let output = match (result.structured_content, text) {
        (Some(structured), _) => structured,
        (None, Some(text)) => Value::String(text),
        (None, None) => serde_json::to_value(&result.content).unwrap_or_default(),
    };
    Outcome::Completed { output }
}

/// The text of the content, when every block is text.
fn text_of(content: &[ContentBlock]) -> Option<String> {
    let texts: Option<Vec<&str>> = content.iter().map(|c| c.as_text().map(|t| t.text.as_str())).collect();
    texts.filter(|t| !t.is_empty()).map(|t| t.join("\n"))
}

fn unreachable(detail: String) -> InvokeError {
    InvokeError::NotAccepted { code: catalogue::AGENT_UNREACHABLE, detail }
}

fn handshake_error(shown: &str, e: &ClientInitializeError) -> InvokeError {
    let code = match e {
        ClientInitializeError::JsonRpcError(_) | ClientInitializeError::NoCompatibleProtocolVersion { .. } => {
            catalogue::AGENT_ERROR
        }
        ClientInitializeError::TransportError { error, .. } if http_status(error).is_some() => catalogue::AGENT_ERROR,
        ClientInitializeError::TransportError { .. } | ClientInitializeError::ConnectionClosed(_) => {
            catalogue::AGENT_UNREACHABLE
        }
        _ => catalogue::PROTOCOL_ERROR,
    };
    InvokeError::NotAccepted { code, detail: format!("the MCP handshake with {shown} failed: {}", describe(e)) }
}

/// A request that failed before the tool ran (`tools/list`), or whatever phase it is in.
fn request_error(shown: &str, method: &str, e: &ServiceError, phase: Phase) -> InvokeError {
    let code = match e {
        ServiceError::McpError(_) => catalogue::AGENT_ERROR,
        ServiceError::TransportSend(error) if http_status(error).is_some() => catalogue::AGENT_ERROR,
        ServiceError::TransportSend(_) | ServiceError::TransportClosed => catalogue::AGENT_UNREACHABLE,
        _ => catalogue::PROTOCOL_ERROR,
    };
    phase.error(code, format!("{method} to {shown} failed: {}", describe(e)))
}

/// `tools/call` failed. Before any answer, the server refusing it (a JSON-RPC error, an HTTP
/// error) or a connection never made lets another endpoint be tried; a connection that broke
/// while the call may have been running does not (at most once after it may have started).
fn call_error(shown: &str, e: &ServiceError, phase: Phase) -> InvokeError {
    let refused = match e {
        ServiceError::McpError(_) => true,
        ServiceError::TransportSend(error) => http_status(error).is_some() || never_connected(error),
        _ => false,
    };
    let phase = if refused { phase } else { Phase::AfterAcceptance };
    request_error(shown, "tools/call", e, phase)
}

type HttpError = StreamableHttpError<reqwest::Error>;

/// The HTTP error status the server answered, if that is the failure.
fn http_status(error: &(dyn std::error::Error + 'static)) -> Option<u16> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(status) = e.downcast_ref::<HttpStatusError>() {
            return Some(status.status);
        }
        if let Some(HttpError::HttpStatus(status)) = e.downcast_ref::<HttpError>() {
            return Some(status.status);
        }
        current = e.source();
    }
    None
}

/// Whether the request failed before a connection was made (nothing reached the server).
fn never_connected(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(HttpError::Client(client)) = e.downcast_ref::<HttpError>() {
            return client.is_connect();
        }
        if let Some(client) = e.downcast_ref::<reqwest::Error>() {
            return client.is_connect();
        }
        current = e.source();
    }
    false
}

/// An error with its causes, in one line.
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut current = e.source();
    while let Some(cause) = current {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        current = cause.source();
    }
    text.chars().take(300).collect()
}

fn excerpt(value: &Value) -> String {
    value.to_string().chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn tool(name: &str, schema: Value) -> Tool {
        let schema = schema.as_object().cloned().unwrap_or_default();
        Tool::new(name.to_owned(), "", Arc::new(schema))
    }

    #[test]
    fn text_goes_to_the_one_string_argument_and_is_refused_otherwise() {
        let one = tool(
            "echo",
            json!({"type": "object", "properties": {"text": {"type": "string"}, "n": {"type": "integer"}}}),
        );
        let taken = arguments(&one, &json!("hi")).ok();
        assert_eq!(taken, Some(Map::from_iter([("text".to_owned(), json!("hi"))])));
        let two =
            tool("pair", json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}}));
        let refused = arguments(&two, &json!("hi")).err().map(|e| e.code());
        assert_eq!(refused, Some(catalogue::INPUT_NOT_ACCEPTED));
        assert!(arguments(&two, &json!({"a": "x"})).is_ok());
    }

    #[test]
    fn the_tool_is_the_one_named_else_the_only_one() {
        let tools = [tool("echo", json!({})), tool("slow", json!({}))];
        assert_eq!(choose(&tools, Some("ECHO")).ok().map(|t| t.name.to_string()), Some("echo".into()));
        assert_eq!(choose(&tools, Some("other")).err().map(|e| e.code()), Some(catalogue::TOOL_NOT_FOUND));
        assert_eq!(choose(&tools[..1], Some("translate")).ok().map(|t| t.name.to_string()), Some("echo".into()));
    }
}
