//! A KEDA-style queue worker that keeps its queue registered in the agent registry.
//!
//! KEDA starts workers when messages wait in a queue and stops them when it is empty. Such a
//! worker is live exactly while it has work, so it registers its queue as an `Ephemeral`
//! endpoint with a short lease and:
//! - renews the lease after each message it processes (a busy worker stays live);
//! - never renews when idle, so the registration lapses by itself once the work is done (and
//!   KEDA may scale the worker to zero without anyone deregistering anything);
//! - keeps the agent registered across restarts and replicas: the agent id is derived from the
//!   queue's address, and a registration that exists already is reused.
//!
//! Consumers find the queue with `GET /discover/agents?transport=Amqp` (live workers) or with
//! `liveOnly=false` (the queue, whether or not a worker runs: KEDA starts one when work arrives).
//!
//! The "work" here is a stand-in ([`work`]); a reply goes to the message's `reply_to` queue
//! when it names one, with its `correlation_id`. Tasks the registry's gateway sends
//! (`POST /tasks` to this queue) are answered in the gateway's reply contract ([`answer`]).
#![forbid(unsafe_code)]

use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

/// The name of the endpoint the worker registers (the agent has no other).
pub const ENDPOINT_NAME: &str = "queue";

/// What the worker needs to know, from its environment (see [`Settings::from_env`]).
#[derive(Clone)]
pub struct Settings {
    /// Base URL of the agent registry, e.g. `http://agent-registry:8080`.
    pub registry_url: String,
    /// An API key of the registry (`Agent` scope is enough).
    pub api_key: String,
    /// The broker, with the worker's credentials: `amqp://USER:PASSWORD@HOST:PORT/VHOST`.
    pub amqp_url: String,
    /// The queue the worker consumes (declared durable if missing).
    pub queue: String,
    /// Lease of the registration, renewed on each message.
    pub ttl_seconds: u32,
    pub agent_name: String,
    /// The capability the worker offers.
    pub capability: String,
    /// The registered agent's id; default: derived from the queue's address, so every replica
    /// and restart of the worker shares one registration.
    pub agent_id: Option<String>,
    /// The address to publish; default: `amqp_url` without credentials, plus the queue.
    pub queue_address: Option<String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Both the API key and the broker URL hold secrets.
        f.debug_struct("Settings")
            .field("registry_url", &self.registry_url)
            .field("queue", &self.queue)
            .field("ttl_seconds", &self.ttl_seconds)
            .field("agent_name", &self.agent_name)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(String),
    #[error("the registry: {0}")]
    Registry(String),
    #[error("the broker: {0}")]
    Broker(#[from] lapin::Error),
}

impl From<reqwest::Error> for Error {
    fn from(e: reqwest::Error) -> Self {
        Self::Registry(e.to_string())
    }
}

impl Settings {
    /// Reads `REGISTRY_URL` (default `http://127.0.0.1:8080`), `REGISTRY_API_KEY` (required),
    /// `AMQP_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`), `QUEUE_NAME` (default
    /// `tasks`), `LEASE_TTL_SECONDS` (default 30), `AGENT_NAME` (default `keda-worker`),
    /// `AGENT_CAPABILITY` (default `process-task`), and optionally `AGENT_ID` and
    /// `QUEUE_ADDRESS`.
    pub fn from_env() -> Result<Self, Error> {
        let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
        let api_key =
            std::env::var("REGISTRY_API_KEY").map_err(|_| Error::Config("REGISTRY_API_KEY is required".into()))?;
        let ttl_seconds = var("LEASE_TTL_SECONDS", "30")
            .parse()
            .map_err(|_| Error::Config("LEASE_TTL_SECONDS must be a whole number of seconds".into()))?;
        Ok(Self {
            registry_url: var("REGISTRY_URL", "http://127.0.0.1:8080"),
            api_key,
            amqp_url: var("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
            queue: var("QUEUE_NAME", "tasks"),
            ttl_seconds,
            agent_name: var("AGENT_NAME", "keda-worker"),
            capability: var("AGENT_CAPABILITY", "process-task"),
            agent_id: std::env::var("AGENT_ID").ok().filter(|id| !id.is_empty()),
            queue_address: std::env::var("QUEUE_ADDRESS").ok().filter(|a| !a.is_empty()),
        })
    }

    /// The queue's public address: `amqp[s]://host[:port]/<vhost>/<queue>` (the registry refuses
    /// credentials in addresses, so they are left out).
    pub fn queue_address(&self) -> Result<String, Error> {
        if let Some(address) = &self.queue_address {
            return Ok(address.clone());
        }
        let url = url::Url::parse(&self.amqp_url).map_err(|e| Error::Config(format!("AMQP_URL: {e}")))?;
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or(Error::Config("AMQP_URL names no host".into()))?;
        let authority = url.port().map_or_else(|| host.to_owned(), |port| format!("{host}:{port}"));
        // `amqp://host` means the default vhost `/` (AMQP URI spec).
        let vhost = match url.path().trim_start_matches('/') {
            "" => "%2F",
            vhost => vhost,
        };
        Ok(format!("{}://{authority}/{vhost}/{}", url.scheme(), encode(&self.queue)))
    }
}

/// Percent-encodes a queue name for a URL path segment.
fn encode(name: &str) -> String {
    const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    utf8_percent_encode(name, UNRESERVED).to_string()
}

/// The work a message asks for. A stand-in: the answer says what was received.
pub fn work(task: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(task);
    json!({"processed": text, "bytes": task.len()}).to_string().into_bytes()
}

/// The reply to a message. A task from the registry's gateway (`type: task`, a JSON body
/// `{"taskId", "input", "tool", "metadata"}`) gets `{"status": "completed", "output": ...}`
/// with the work done on its input (text as is, JSON as its text), or `{"status": "failed",
/// "error": {"code", "detail"}}` when the body is not such a task; any other message gets the
/// bare answer of [`work`].
pub fn answer(kind: Option<&str>, body: &[u8]) -> Vec<u8> {
    if kind != Some("task") {
        return work(body);
    }
    let task: Option<Value> = serde_json::from_slice::<Value>(body).ok().filter(|t| t.get("taskId").is_some());
    let reply = match task.as_ref().and_then(|t| t.get("input")) {
        Some(input) => {
            let text = input.as_str().map_or_else(|| input.to_string(), str::to_owned);
            let output: Value = serde_json::from_slice(&work(text.as_bytes())).unwrap_or(Value::Null);
            json!({"status": "completed", "output": output})
        }
        None => json!({"status": "failed",
            "error": {"code": "bad_task", "detail": "the message is not a task: JSON with taskId and input"}}),
    };
    reply.to_string().into_bytes()
}

/// A registered worker, ready to consume.
pub struct Worker {
    settings: Settings,
    http: reqwest::Client,
    agent_id: String,
    endpoint_id: String,
    address: String,
}

impl Worker {
    /// Registers the worker's queue (or finds its registration) and returns the worker.
    pub async fn register(settings: Settings) -> Result<Self, Error> {
        let address = settings.queue_address()?;
        let agent_id = settings
            .agent_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, address.as_bytes()).to_string());
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
        let mut worker = Self { settings, http, agent_id, endpoint_id: String::new(), address };
        worker.ensure_registered().await?;
        tracing::info!(agent = %worker.agent_id, endpoint = %worker.endpoint_id, address = %worker.address,
            "registered the queue");
        Ok(worker)
    }

    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }

    pub fn endpoint_id(&self) -> &str {
        &self.endpoint_id
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.registry_url.trim_end_matches('/'))
    }

    fn endpoint(&self) -> Value {
        json!({"name": ENDPOINT_NAME, "transport": "Amqp", "protocol": "A2A", "address": self.address,
               "livenessModel": "Ephemeral", "ttlSeconds": self.settings.ttl_seconds})
    }

    /// Registers the agent with its client-chosen id: the same registration again is replayed;
    /// one with other settings (`409`) is read back and its endpoint reused, or added.
    async fn ensure_registered(&mut self) -> Result<(), Error> {
        let body = json!({
            "id": self.agent_id,
            "name": self.settings.agent_name,
            "description": format!("Processes tasks from the AMQP queue `{}`.", self.settings.queue),
            "capabilities": [{"name": self.settings.capability}],
            "endpoints": [self.endpoint()],
        });
        let key = self.settings.api_key.as_str();
        let response = self.http.post(self.url("/agents")).header("x-api-key", key).json(&body).send().await?;
        let agent: Value = match response.status().as_u16() {
            201 => response.json().await?,
            409 => {
                let path = format!("/agents/{}", self.agent_id);
                self.http.get(self.url(&path)).send().await?.error_for_status()?.json().await?
            }
            status => {
                let text = response.text().await.unwrap_or_default();
                return Err(Error::Registry(format!("registration answered {status}: {text}")));
            }
        };
        let existing = agent["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(ENDPOINT_NAME)));
        let (endpoint, live) = match existing {
            Some(endpoint) => (endpoint.clone(), endpoint["isLive"].as_bool().unwrap_or(false)),
            None => {
                let path = format!("/agents/{}/endpoints", self.agent_id);
                let request = self.http.post(self.url(&path)).header("x-api-key", key).json(&self.endpoint());
                (request.send().await?.error_for_status()?.json().await?, true)
            }
        };
        self.endpoint_id = endpoint["id"].as_str().unwrap_or_default().to_owned();
        if self.endpoint_id.is_empty() {
            return Err(Error::Registry(format!("the registry's answer has no endpoint id: {agent}")));
        }
        // A replayed registration whose lease lapsed: the worker is up, so say so.
        if !live {
            self.renew().await?;
        }
        Ok(())
    }

    /// Renews the lease; an agent the registry evicted meanwhile is registered again.
    pub async fn renew(&mut self) -> Result<(), Error> {
        let path = format!("/agents/{}/endpoints/{}/renew", self.agent_id, self.endpoint_id);
        let response = self.http.post(self.url(&path)).header("x-api-key", &self.settings.api_key).send().await?;
        match response.status().as_u16() {
            200 => Ok(()),
            404 => Box::pin(self.ensure_registered()).await,
            status => {
                let text = response.text().await.unwrap_or_default();
                Err(Error::Registry(format!("renewal answered {status}: {text}")))
            }
        }
    }

    /// Consumes the queue until `shutdown` completes; returns how many messages were processed.
    /// Each message is processed, answered (when it names `reply_to`), acknowledged, and then
    /// the lease renewed. Nothing is renewed while no message comes.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<u64, Error> {
        let properties = ConnectionProperties::default().with_connection_name("keda-worker".into());
        let connection = Connection::connect(&self.settings.amqp_url, properties).await?;
        let channel = connection.create_channel().await?;
        let queue = self.settings.queue.as_str();
        channel.queue_declare(queue.into(), QueueDeclareOptions::durable(), FieldTable::default()).await?;
        // One message at a time: KEDA adds workers when the queue grows, not prefetch.
        channel.basic_qos(1, BasicQosOptions::default()).await?;
        let tag = format!("keda-worker-{}", uuid::Uuid::new_v4().simple());
        let mut consumer = channel
            .basic_consume(queue.into(), tag.into(), BasicConsumeOptions::default(), FieldTable::default())
            .await?;
        tokio::pin!(shutdown);
        let mut processed = 0;
        loop {
            let next = tokio::select! {
                () = &mut shutdown => break,
                next = consumer.next() => next,
            };
            let Some(delivery) = next else { break };
            let delivery = delivery?;
            let kind = delivery.properties.kind().as_ref().map(|k| k.as_str());
            let answer = answer(kind, &delivery.data);
            if let Some(reply_to) = delivery.properties.reply_to() {
                let mut properties = BasicProperties::default().with_content_type("application/json".into());
                if let Some(id) = delivery.properties.correlation_id() {
                    properties = properties.with_correlation_id(id.clone());
                }
                channel
                    .basic_publish("".into(), reply_to.clone(), BasicPublishOptions::default(), &answer, properties)
                    .await?;
            }
            delivery.ack(BasicAckOptions::default()).await?;
            processed += 1;
            if let Err(e) = self.renew().await {
                // The message is done either way; the next one renews again.
                tracing::warn!(error = %e, "could not renew the lease");
            }
        }
        let _ = channel.close(200, "worker stopping".into()).await;
        let _ = connection.close(200, "worker stopping".into()).await;
        tracing::info!(processed, "stopped; the registration lapses when its lease ends");
        Ok(processed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(amqp_url: &str, queue: &str) -> Settings {
        Settings {
            registry_url: "http://127.0.0.1:8080".into(),
            api_key: "ar_x".into(),
            amqp_url: amqp_url.into(),
            queue: queue.into(),
            ttl_seconds: 30,
            agent_name: "w".into(),
            capability: "c".into(),
            agent_id: None,
            queue_address: None,
        }
    }

    #[test]
    fn the_published_address_has_no_credentials_and_names_vhost_and_queue() {
        let address = |url, queue| settings(url, queue).queue_address().unwrap();
        assert_eq!(address("amqp://guest:guest@127.0.0.1:5672/%2f", "tasks"), "amqp://127.0.0.1:5672/%2f/tasks");
        assert_eq!(address("amqps://u:p@mq.example/prod", "a/b c"), "amqps://mq.example/prod/a%2Fb%20c");
        assert_eq!(address("amqp://mq.example", "q"), "amqp://mq.example/%2F/q");
        assert!(!format!("{:?}", settings("amqp://u:secret@h/%2f", "q")).contains("secret"));
    }

    #[test]
    fn tasks_of_the_gateway_are_answered_in_its_reply_contract() {
        let read = |kind, body: &[u8]| serde_json::from_slice::<Value>(&answer(kind, body)).unwrap();
        let task = json!({"taskId": "t-1", "input": "resize", "tool": null, "metadata": {}}).to_string();
        assert_eq!(
            read(Some("task"), task.as_bytes()),
            json!({"status": "completed", "output": {"processed": "resize", "bytes": 6}})
        );
        assert_eq!(read(Some("task"), b"resize")["status"], "failed");
        assert_eq!(read(None, b"resize"), json!({"processed": "resize", "bytes": 6}));
    }

    #[test]
    fn the_work_says_what_it_received() {
        let answer: Value = serde_json::from_slice(&work(b"resize")).unwrap();
        assert_eq!(answer, json!({"processed": "resize", "bytes": 6}));
    }
}
