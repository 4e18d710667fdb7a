//! The HTTP side of the client: one reqwest client per command, every request bounded, answers
//! read with a size cap, problem+json turned into an error that prints its code and detail.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use url::Url;

use super::{ClientOptions, Output, exit};

/// Largest answer read (discovery pages and event pages are far below it).
const MAX_BODY: usize = 64 << 20;

/// Why a client command failed; each kind has its exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot reach the registry at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("the registry answered {status}")]
    Api { status: StatusCode, body: Value, text: String },
    #[error("{0}")]
    Failed(String),
    #[error("the task ended {0}")]
    TaskNotCompleted(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => exit::USAGE,
            Self::Unreachable { .. } => exit::UNREACHABLE,
            Self::Api { status, .. } if status.is_client_error() => exit::CLIENT_ERROR,
            Self::Api { .. } => exit::SERVER_ERROR,
            Self::Failed(_) => exit::FAILURE,
            Self::TaskNotCompleted(_) => exit::TASK_NOT_COMPLETED,
        }
    }

    /// Prints the error on stderr: a problem's code, detail and the fields at fault.
    pub fn report(&self) {
        match self {
            Self::Api { status, body, text } => {
                match body.get("code").and_then(Value::as_str) {
                    Some(code) => {
                        let detail = body.get("detail").and_then(Value::as_str).unwrap_or_default();
                        eprintln!("error: {code} ({}): {detail}", status.as_u16());
                    }
                    None => eprintln!("error: the registry answered {status}: {}", clip(text, 500)),
                }
                for problem in body.get("errors").and_then(Value::as_array).into_iter().flatten() {
                    let at = problem.get("pointer").and_then(Value::as_str).unwrap_or("?");
                    let detail = problem.get("detail").and_then(Value::as_str).unwrap_or_default();
                    eprintln!("  {at}: {detail}");
                }
            }
            other => eprintln!("error: {other}"),
        }
    }
}

fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// An answer: the status, the body as it came, and parsed (`null` when empty).
pub struct Reply {
    pub status: StatusCode,
    pub text: String,
    pub body: Value,
}

/// A registry to call.
pub struct Client {
    http: reqwest::Client,
    /// For Server-Sent Events: no total timeout, a bound on silence instead.
    streaming: reqwest::Client,
    base: Url,
    key: Option<String>,
    pub output: Output,
    pub timeout: Duration,
}

impl Client {
    pub fn new(options: &ClientOptions) -> Result<Self, CliError> {
        let base = Url::parse(options.url.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| CliError::Usage(format!("--url `{}` is not an http(s) URL", options.url)))?;
        let timeout = Duration::from_secs(options.timeout);
        let connect = timeout.min(Duration::from_secs(10));
        let builder = || {
            reqwest::Client::builder()
                .connect_timeout(connect)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("agent-registry-cli/", env!("CARGO_PKG_VERSION")))
        };
        let failed = |e: reqwest::Error| CliError::Failed(format!("cannot build the HTTP client: {e}"));
        let http = builder().timeout(timeout).build().map_err(failed)?;
        // The server sends a comment every 15 s on a quiet stream.
        let silence = (timeout * 2).max(Duration::from_secs(60));
        let streaming = builder().read_timeout(silence).build().map_err(failed)?;
        let key = options.key.clone().filter(|k| !k.trim().is_empty());
        Ok(Self { http, streaming, base, key, output: options.output, timeout })
    }

    /// The URL of `segments` under the base URL (each segment percent-encoded) with `query`.
    pub fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    pub fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.authorized(self.http.request(method, url))
    }

    pub fn stream_request(&self, url: Url) -> RequestBuilder {
        self.authorized(self.streaming.get(url).header("accept", "text/event-stream"))
    }

    /// A large download: no total timeout (the registry writes the whole copy before it sends a
    /// byte), a bound on silence instead.
    pub fn download_request(&self, url: Url) -> RequestBuilder {
        self.authorized(self.streaming.get(url))
    }

    fn authorized(&self, request: RequestBuilder) -> RequestBuilder {
        match &self.key {
            Some(key) => request.header("x-api-key", key),
            None => request,
        }
    }

    /// Sends a request and reads its answer; a non-2xx answer is an error.
    pub async fn send(&self, request: RequestBuilder) -> Result<Reply, CliError> {
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let text = self.read(response).await?;
        let body =
            if text.trim().is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::Null) };
        if !status.is_success() {
            return Err(CliError::Api { status, body, text });
        }
        Ok(Reply { status, text, body })
    }

    /// Opens a stream; a non-2xx answer is an error.
    pub async fn open(&self, request: RequestBuilder) -> Result<Response, CliError> {
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let text = self.read(response).await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Err(CliError::Api { status, body, text })
    }

    async fn read(&self, mut response: Response) -> Result<String, CliError> {
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.unreachable(&e))? {
            if bytes.len() + chunk.len() > MAX_BODY {
                return Err(CliError::Failed(format!("the answer is larger than {} MiB", MAX_BODY >> 20)));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    pub fn unreachable(&self, e: &reqwest::Error) -> CliError {
        let detail = if e.is_timeout() {
            format!("no answer within {} s", self.timeout.as_secs())
        } else {
            // reqwest's message repeats the URL; the innermost cause says what happened.
            let mut cause: &dyn std::error::Error = e;
            while let Some(inner) = cause.source() {
                cause = inner;
            }
            cause.to_string()
        };
        CliError::Unreachable { url: self.base.to_string(), detail }
    }

    /// Prints an answer: its JSON as it came, or `table` for people.
    pub fn print(&self, reply: &Reply, table: impl FnOnce(&Value)) {
        match self.output {
            Output::Json => println!("{}", reply.text.trim_end()),
            Output::Table => table(&reply.body),
        }
    }
}

/// Reads a JSON document from a file (`-`: standard input).
pub fn read_json(path: &std::path::Path) -> Result<Value, CliError> {
    let text =
        if path.as_os_str() == "-" { std::io::read_to_string(std::io::stdin()) } else { std::fs::read_to_string(path) }
            .map_err(|e| CliError::Failed(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| CliError::Failed(format!("{} is not JSON: {e}", path.display())))
}
