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
    /// Largest answer read from an agent.
    pub max_response_bytes: usize,
}

impl Default for HttpBounds {
    fn default() -> Self {
        Self { connect: Duration::from_secs(5), request: Duration::from_secs(30), max_response_bytes: 4 * 1024 * 1024 }
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
    let parsed = url::Url::parse(url).map_err(|e| phase.error(catalogue::AGENT_UNREACHABLE, format!("{url}: {e}")))?;
    let host = parsed.host_str().unwrap_or_default().to_owned();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let address = egress.resolve(&host, port).await?;
    let left = deadline.saturating_duration_since(Instant::now()).min(bounds.request);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(bounds.connect)
        .timeout(left)
        // Connect to the address the policy checked, whatever DNS would answer now.
        .resolve(host.trim_start_matches('[').trim_end_matches(']'), address)
        .build()
        .map_err(|e| phase.error(catalogue::AGENT_UNREACHABLE, format!("cannot call {url}: {e}")))?;
    let mut request = match body {
        Some(body) => client.post(parsed).json(body),
        None => client.get(parsed),
    };
    request = request.header("accept", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let shown = agent_registry_core::redact::url_credentials(url);
    let mut response = request.send().await.map_err(|e| {
        let why = if e.is_timeout() { "did not answer in time" } else { "could not be reached" };
        phase.error(catalogue::AGENT_UNREACHABLE, format!("{shown} {why}: {e}"))
    })?;
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
