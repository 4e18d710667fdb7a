//! One HTTP exchange with an agent, bounded and behind the egress policy: the host resolved and
//! checked first, the connection made to the checked address, no redirects, the answer's size
//! capped and every request limited in time.

use std::time::{Duration, Instant};

use agent_registry_core::error::catalogue;
use agent_registry_core::task::InvokeError;
use serde_json::Value;

use crate::egress::EgressPolicy;

/// Bounds of the gateway's outbound HTTP calls.
#[derive(Clone, Debug)]
pub struct HttpBounds {
    pub connect: Duration,
    /// Longest one request may take (the task's deadline may cut it shorter).
    pub request: Duration,
    /// Largest answer read from an agent (and largest event of a streamed answer).
    pub max_response_bytes: usize,
    /// Longest a streamed answer may stay silent (SSE servers send a comment every 15 s or so
    /// to keep quiet streams open, so silence past this means the agent is gone).
    pub stream_idle: Duration,
}

impl Default for HttpBounds {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            request: Duration::from_secs(30),
            max_response_bytes: 4 * 1024 * 1024,
            stream_idle: Duration::from_secs(60),
        }
    }
}

/// Whether a failure may be retried elsewhere: before acceptance it may.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    BeforeAcceptance,
    AfterAcceptance,
}

impl Phase {
    pub fn error(self, code: &'static str, detail: String) -> InvokeError {
        match self {
            Self::BeforeAcceptance => InvokeError::NotAccepted { code, detail },
            Self::AfterAcceptance => InvokeError::AfterAccepted { code, detail },
        }
    }
}

/// Sends `body` (POST) or nothing (GET) to `url` and reads the JSON answer.
pub async fn exchange(
    egress: &EgressPolicy,
    bounds: &HttpBounds,
    url: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
    deadline: Instant,
    phase: Phase,
) -> Result<Value, InvokeError> {
    let left = deadline.saturating_duration_since(Instant::now()).min(bounds.request);
    let request = Request { url, body, headers, accept: "application/json" };
    let (shown, response) = send(egress, bounds, &request, left, phase).await?;
    read_json(bounds, &shown, response, phase).await
}

/// What to send.
struct Request<'a> {
    url: &'a str,
    body: Option<&'a Value>,
    headers: &'a [(&'a str, &'a str)],
    accept: &'static str,
}

/// Clients pinned to checked addresses, kept so that calls to an agent reuse its connections:
/// building a client loads the TLS roots, and a new connection costs a handshake.
type Pinned = (String, std::net::SocketAddr, Duration, Duration);
static PINNED: std::sync::LazyLock<parking_lot::Mutex<std::collections::HashMap<Pinned, reqwest::Client>>> =
    std::sync::LazyLock::new(Default::default);
/// Pinned clients kept at most; past it the cache starts again (agents are far fewer).
const PINNED_MAX: usize = 1024;

/// `url` parsed, its host resolved and checked by the egress policy, and a client that connects
/// only to the checked address, whatever DNS would answer later (no rebinding), follows no
/// redirects and bounds connecting and each read. Callers bound each request's total time.
pub(crate) async fn pinned(
    egress: &EgressPolicy,
    bounds: &HttpBounds,
    url: &str,
    phase: Phase,
) -> Result<(url::Url, reqwest::Client), InvokeError> {
    let parsed = url::Url::parse(url).map_err(|e| phase.error(catalogue::AGENT_UNREACHABLE, format!("{url}: {e}")))?;
    let host = parsed.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let address = egress.resolve(&host, port).await?;
    let read = bounds.request.max(bounds.stream_idle);
    let key = (host, address, bounds.connect, read);
    if let Some(client) = PINNED.lock().get(&key) {
        return Ok((parsed, client.clone()));
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(bounds.connect)
        .read_timeout(read)
        .resolve(&key.0, address)
        .build()
        .map_err(|e| phase.error(catalogue::AGENT_UNREACHABLE, format!("cannot call {url}: {e}")))?;
    let mut clients = PINNED.lock();
    if clients.len() >= PINNED_MAX {
        clients.clear();
    }
    clients.insert(key, client.clone());
    Ok((parsed, client))
}

/// Resolves and checks the host, sends the request and returns the answer's head (the URL as
/// logs may show it, and the response).
async fn send(
    egress: &EgressPolicy,
    bounds: &HttpBounds,
    request: &Request<'_>,
    timeout: Duration,
    phase: Phase,
) -> Result<(String, reqwest::Response), InvokeError> {
    let url = request.url;
    let (parsed, client) = pinned(egress, bounds, url, phase).await?;
    let mut builder = match request.body {
        Some(body) => client.post(parsed).json(body),
        None => client.get(parsed),
    };
    builder = builder.timeout(timeout).header("accept", request.accept);
    for (name, value) in request.headers {
        builder = builder.header(*name, *value);
    }
    let shown = agent_registry_core::redact::url_credentials(url);
    let response = builder.send().await.map_err(|e| {
        let why = if e.is_timeout() { "did not answer in time" } else { "could not be reached" };
        phase.error(catalogue::AGENT_UNREACHABLE, format!("{shown} {why}: {e}"))
    })?;
    Ok((shown, response))
}

/// Reads a whole answer (at most `max_response_bytes`) as JSON; an HTTP error is the agent's.
async fn read_json(
    bounds: &HttpBounds,
    shown: &str,
    mut response: reqwest::Response,
    phase: Phase,
) -> Result<Value, InvokeError> {
    let status = response.status();
    let mut bytes = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if bytes.len() + chunk.len() > bounds.max_response_bytes {
                    return Err(phase.error(
                        catalogue::PROTOCOL_ERROR,
                        format!("{shown} answered more than {} bytes", bounds.max_response_bytes),
                    ));
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => return Err(phase.error(catalogue::AGENT_UNREACHABLE, format!("{shown} broke off: {e}"))),
        }
    }
    if !status.is_success() {
        let text: String = String::from_utf8_lossy(&bytes).chars().take(200).collect();
        return Err(phase.error(catalogue::AGENT_ERROR, format!("{shown} answered HTTP {status}: {text}")));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        phase.error(catalogue::PROTOCOL_ERROR, format!("{shown} answered something that is not JSON: {e}"))
    })
}

/// The answer to a request for a stream: Server-Sent Events, or a plain JSON answer (how
/// servers answer a streaming request they refuse, e.g. with a JSON-RPC error).
pub enum Opened {
    Stream(EventStream),
    Json(Value),
}

/// POSTs `body` asking for Server-Sent Events. The request may last until `deadline`; each
/// event is read within [`HttpBounds::stream_idle`] and at most `max_response_bytes` long.
pub async fn open_stream(
    egress: &EgressPolicy,
    bounds: &HttpBounds,
    url: &str,
    body: &Value,
    headers: &[(&str, &str)],
    deadline: Instant,
    phase: Phase,
) -> Result<Opened, InvokeError> {
    let left = deadline.saturating_duration_since(Instant::now());
    let request = Request { url, body: Some(body), headers, accept: "text/event-stream" };
    let (shown, response) = send(egress, bounds, &request, left, phase).await?;
    let is_stream = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/event-stream"));
    if !is_stream || !response.status().is_success() {
        return read_json(bounds, &shown, response, phase).await.map(Opened::Json);
    }
    Ok(Opened::Stream(EventStream {
        response,
        shown,
        buffer: Vec::new(),
        data: String::new(),
        event: None,
        ended: false,
        max_event: bounds.max_response_bytes,
        idle: bounds.stream_idle,
    }))
}

/// One Server-Sent Event: its `event` field (if any) and its data lines joined.
#[derive(Debug, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

/// A Server-Sent Events answer, read one event at a time (WHATWG HTML §9.2.6: lines end with
/// CRLF, LF or CR; comments start with `:`; a blank line ends an event).
pub struct EventStream {
    response: reqwest::Response,
    shown: String,
    buffer: Vec<u8>,
    data: String,
    event: Option<String>,
    ended: bool,
    max_event: usize,
    idle: Duration,
}

impl EventStream {
    /// The next event with data; `None` when the stream ends.
    pub async fn next(&mut self, deadline: Instant, phase: Phase) -> Result<Option<SseEvent>, InvokeError> {
        loop {
            while let Some(line) = self.take_line() {
                if line.is_empty() {
                    if !self.data.is_empty() {
                        let data = std::mem::take(&mut self.data);
                        return Ok(Some(SseEvent { event: self.event.take(), data }));
                    }
                    self.event = None;
                    continue;
                }
                let (field, value) = line.split_once(':').unwrap_or((line.as_str(), ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "data" => {
                        if !self.data.is_empty() {
                            self.data.push('\n');
                        }
                        self.data.push_str(value);
                    }
                    "event" => self.event = Some(value.to_owned()),
                    _ => {}
                }
            }
            if self.data.len() + self.buffer.len() > self.max_event {
                return Err(phase.error(
                    catalogue::PROTOCOL_ERROR,
                    format!("{} sent an event of more than {} bytes", self.shown, self.max_event),
                ));
            }
            if self.ended {
                // A last event without its blank line still counts.
                let data = std::mem::take(&mut self.data);
                return Ok((!data.is_empty()).then(|| SseEvent { event: self.event.take(), data }));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left.min(self.idle), self.response.chunk()).await {
                Ok(Ok(Some(chunk))) => self.buffer.extend_from_slice(&chunk),
                Ok(Ok(None)) => self.ended = true,
                Ok(Err(e)) => {
                    return Err(phase.error(catalogue::AGENT_UNREACHABLE, format!("{} broke off: {e}", self.shown)));
                }
                Err(_) if left <= self.idle => {
                    return Err(
                        phase.error(catalogue::TASK_TIMEOUT, format!("{} streamed past the deadline", self.shown))
                    );
                }
                Err(_) => {
                    return Err(phase.error(
                        catalogue::AGENT_UNREACHABLE,
                        format!("{} sent nothing for {:?}", self.shown, self.idle),
                    ));
                }
            }
        }
    }

    /// A whole line from the buffer, without its end.
    fn take_line(&mut self) -> Option<String> {
        let at = self.buffer.iter().position(|b| *b == b'\n' || *b == b'\r')?;
        let crlf = self.buffer[at] == b'\r';
        if crlf && at + 1 == self.buffer.len() && !self.ended {
            // A CR at the end of a chunk may be the first half of CRLF.
            return None;
        }
        let line = String::from_utf8_lossy(&self.buffer[..at]).into_owned();
        let skip = if crlf && self.buffer.get(at + 1) == Some(&b'\n') { 2 } else { 1 };
        self.buffer.drain(..at + skip);
        Some(line)
    }
}
