//! Queue facts: whether the queue an `Amqp` endpoint names exists on the broker, with its message
//! and consumer counts, read with a passive `queue.declare` (which creates nothing) through lapin.
//!
//! Three rules keep this from harming the registry or anyone else:
//! - **Only the configured broker.** The registry connects to the broker of `--amqp-url`, with
//!   its credentials, and only for endpoints whose host and port are that broker's (compared as
//!   written, without DNS). Any other address gets `exists: null` with a reason: a registration
//!   must not make the registry connect to a host of its choosing (SSRF).
//! - **Bounded time.** Each check (connecting included) has [`TIMEOUT`]; a broker that does not
//!   answer in time, or refuses the connection, is not tried again on that vhost for
//!   [`RETRY_AFTER`], so a dead broker costs one timeout, then nothing. Discovery without
//!   `include=queue` never comes here.
//! - **A short cache.** Facts are kept [`CACHE_FOR`] per address; concurrent requests for the
//!   same address wait for one check instead of each asking the broker.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_registry_core::address::{AmqpAddress, AmqpTarget};
use chrono::{DateTime, Utc};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use serde::Serialize;

/// How long facts about one address are reused.
pub const CACHE_FOR: Duration = Duration::from_secs(2);
/// The longest one check may take, connecting to the broker included.
pub const TIMEOUT: Duration = Duration::from_secs(1);
/// How long a vhost whose connection failed is left alone before the next attempt.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Addresses remembered at most; beyond that, expired facts are dropped.
const MAX_CACHED: usize = 10_000;

/// What the registry knows about an endpoint's queue.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueFactsView {
    /// Whether the queue exists; `null` when the registry could not tell (see `error`).
    pub exists: Option<bool>,
    /// Messages ready for delivery (not those delivered and awaiting an ack).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_count: Option<u32>,
    /// Consumers attached to the queue: workers currently serving it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer_count: Option<u32>,
    /// When the broker was asked (facts are reused for up to 2 s).
    #[serde(with = "agent_registry_core::render::timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub checked_at: DateTime<Utc>,
    /// Why `exists` is `null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl QueueFactsView {
    fn found(message_count: u32, consumer_count: u32) -> Self {
        Self {
            exists: Some(true),
            message_count: Some(message_count),
            consumer_count: Some(consumer_count),
            checked_at: Utc::now(),
            error: None,
        }
    }

    fn missing() -> Self {
        Self { exists: Some(false), message_count: None, consumer_count: None, checked_at: Utc::now(), error: None }
    }

    fn unknown(reason: impl Into<String>) -> Self {
        Self {
            exists: None,
            message_count: None,
            consumer_count: None,
            checked_at: Utc::now(),
            error: Some(reason.into()),
        }
    }
}

/// The broker of `--amqp-url`. Its credentials never appear in `Debug` output or in facts.
#[derive(Clone)]
pub struct BrokerUrl {
    url: url::Url,
    host: String,
    port: u16,
}

impl std::fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BrokerUrl({}://{}:{})", self.url.scheme(), self.host, self.port)
    }
}

impl std::str::FromStr for BrokerUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let url = url::Url::parse(text.trim()).map_err(|e| format!("is not a URL ({e})"))?;
        let port = match url.scheme() {
            "amqp" => url.port().unwrap_or(5672),
            "amqps" => url.port().unwrap_or(5671),
            other => return Err(format!("has the scheme `{other}`; expected amqp:// or amqps://")),
        };
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or("names no host")?.to_ascii_lowercase();
        Ok(Self { url, host, port })
    }
}

impl BrokerUrl {
    /// `scheme://host:port`, without credentials or vhost: where bare queue names of migrated
    /// .NET registrations are read to live.
    pub fn origin(&self) -> String {
        format!("{}://{}:{}", self.url.scheme(), self.host, self.port)
    }

    /// The URL as configured, credentials included (for the gateway's AMQP client).
    pub fn url(&self) -> &url::Url {
        &self.url
    }

    /// The URI lapin connects with: this broker and its credentials, on `vhost` (as encoded in
    /// the endpoint's address).
    fn on_vhost(&self, vhost_encoded: &str) -> String {
        let mut url = self.url.clone();
        url.set_path(&format!("/{vhost_encoded}"));
        url.to_string()
    }
}

/// Why a check gave no answer.
enum Failure {
    /// The queue does not exist (the broker answered 404 to the passive declare).
    NotFound,
    /// Connecting failed: the vhost is left alone for a while.
    Connect(String),
    /// The connection worked but the declare did not (it is dropped and opened again next time).
    Broker(String),
}

type Slot = Arc<tokio::sync::Mutex<Option<(Instant, QueueFactsView)>>>;

/// Reads and caches queue facts from the configured broker.
pub struct QueueFacts {
    broker: BrokerUrl,
    cache: parking_lot::Mutex<HashMap<String, Slot>>,
    /// One connection per vhost, opened on first use and reused while it stays open.
    connections: tokio::sync::Mutex<HashMap<String, Connection>>,
    /// Vhosts whose last connection attempt failed: until when, and why.
    down: parking_lot::Mutex<HashMap<String, (Instant, String)>>,
}

impl QueueFacts {
    /// The `--amqp-url` broker.
    pub fn broker(&self) -> &BrokerUrl {
        &self.broker
    }

    pub fn new(broker: BrokerUrl) -> Self {
        Self {
            broker,
            cache: parking_lot::Mutex::default(),
            connections: tokio::sync::Mutex::default(),
            down: parking_lot::Mutex::default(),
        }
    }

    /// The facts of the queue an `Amqp` endpoint address names. Never fails and never takes
    /// much longer than [`TIMEOUT`]: what cannot be known is `exists: null` with the reason.
    pub async fn of(&self, address: &str) -> QueueFactsView {
        let parsed = match AmqpAddress::parse(address) {
            Ok(parsed) => parsed,
            Err(e) => return QueueFactsView::unknown(format!("the address is not an AMQP queue address: it {e}")),
        };
        let queue = match &parsed.target {
            AmqpTarget::Queue(queue) => queue.clone(),
            AmqpTarget::Exchange { .. } => {
                return QueueFactsView::unknown(
                    "the address names an exchange, not a queue: its messages go to whichever queues are bound to it",
                );
            }
        };
        if parsed.host != self.broker.host || parsed.effective_port() != self.broker.port {
            return QueueFactsView::unknown(
                "the queue is on another broker than the one the registry is configured to read (--amqp-url); the \
                 registry connects to no other",
            );
        }
        let slot = self.slot(address);
        let mut cached = slot.lock().await;
        if let Some((at, facts)) = cached.as_ref()
            && at.elapsed() < CACHE_FOR
        {
            return facts.clone();
        }
        let facts = self.check(&parsed.vhost_encoded, &queue).await;
        *cached = Some((Instant::now(), facts.clone()));
        facts
    }

    fn slot(&self, address: &str) -> Slot {
        let mut cache = self.cache.lock();
        if cache.len() >= MAX_CACHED && !cache.contains_key(address) {
            cache.retain(|_, slot| {
                slot.try_lock().map_or(true, |facts| facts.as_ref().is_some_and(|(at, _)| at.elapsed() < CACHE_FOR))
            });
        }
        cache.entry(address.to_owned()).or_default().clone()
    }

    async fn check(&self, vhost: &str, queue: &str) -> QueueFactsView {
        if let Some(reason) = self.still_down(vhost) {
            crate::metrics::queue_check("broker_down", None);
            return QueueFactsView::unknown(reason);
        }
        let started = Instant::now();
        let declaring = self.declare(vhost, queue);
        let declaring = tracing::Instrument::instrument(
            declaring,
            agent_registry_core::metrics::call_span("amqp", "queue.declare"),
        );
        let answer = tokio::time::timeout(TIMEOUT, declaring).await;
        let outcome = match &answer {
            Ok(Ok(_)) => "found",
            Ok(Err(Failure::NotFound)) => "missing",
            Ok(Err(Failure::Broker(_))) => "refused",
            Ok(Err(Failure::Connect(_))) => "unreachable",
            Err(_) => "timeout",
        };
        crate::metrics::queue_check(outcome, Some(started.elapsed()));
        match answer {
            Ok(Ok((messages, consumers))) => QueueFactsView::found(messages, consumers),
            Ok(Err(Failure::NotFound)) => QueueFactsView::missing(),
            // The broker's own words stay in the log: echoed, they would let anyone probe the
            // operator's broker (which vhosts exist, what the account may do).
            Ok(Err(Failure::Broker(e))) => {
                tracing::warn!(error = %e, "queue facts: the AMQP broker refused a check");
                self.connections.lock().await.remove(vhost);
                QueueFactsView::unknown("the broker refused the check")
            }
            Ok(Err(Failure::Connect(e))) => {
                tracing::warn!(error = %e, "queue facts: the AMQP broker could not be reached");
                self.went_down(vhost, "the broker is unreachable".to_owned()).await
            }
            Err(_) => {
                let reason = format!("the broker did not answer within {} ms", TIMEOUT.as_millis());
                self.went_down(vhost, reason).await
            }
        }
    }

    fn still_down(&self, vhost: &str) -> Option<String> {
        let mut down = self.down.lock();
        match down.get(vhost) {
            Some((until, reason)) if Instant::now() < *until => Some(reason.clone()),
            Some(_) => {
                down.remove(vhost);
                None
            }
            None => None,
        }
    }

    async fn went_down(&self, vhost: &str, reason: String) -> QueueFactsView {
        tracing::warn!(reason, "queue facts: the configured AMQP broker cannot be checked; retrying later");
        self.connections.lock().await.remove(vhost);
        self.down.lock().insert(vhost.to_owned(), (Instant::now() + RETRY_AFTER, reason.clone()));
        QueueFactsView::unknown(reason)
    }

    /// Whether the broker answers at all, before lapin is given a connection to it (see
    /// `agent_registry_publish::probe_broker`).
    async fn probe(&self) -> Result<(), String> {
        let tls = self.broker.url.scheme() == "amqps";
        agent_registry_publish::probe_broker(&self.broker.host, self.broker.port, tls).await
    }

    /// A passive declare on a channel of its own (a 404 closes the channel it happens on).
    async fn declare(&self, vhost: &str, queue: &str) -> Result<(u32, u32), Failure> {
        let channel = {
            let mut connections = self.connections.lock().await;
            if !connections.get(vhost).is_some_and(|c| c.status().connected()) {
                self.probe().await.map_err(Failure::Connect)?;
                let properties =
                    ConnectionProperties::default().with_connection_name("agent-registry queue facts".into());
                let connection = Connection::connect(&self.broker.on_vhost(vhost), properties)
                    .await
                    .map_err(|e| Failure::Connect(e.to_string()))?;
                connections.insert(vhost.to_owned(), connection);
            }
            let connection = connections.get(vhost).ok_or_else(|| Failure::Connect("no connection".into()))?;
            connection.create_channel().await.map_err(|e| Failure::Broker(e.to_string()))?
        };
        let options = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
        match channel.queue_declare(queue.into(), options, FieldTable::default()).await {
            Ok(declared) => {
                // Closing waits for the broker's answer; nobody needs to wait for that.
                tokio::spawn(async move {
                    let _ = channel.close(200, "done".into()).await;
                });
                Ok((declared.message_count(), declared.consumer_count()))
            }
            Err(e) => match e.kind() {
                lapin::ErrorKind::ProtocolError(amqp) if amqp.get_id() == 404 => Err(Failure::NotFound),
                _ => Err(Failure::Broker(e.to_string())),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_broker_url_needs_amqp_and_a_host_and_hides_its_credentials() {
        let broker: BrokerUrl = "amqp://user:secret@Mq.Example/%2f".parse().unwrap();
        assert_eq!((broker.host.as_str(), broker.port), ("mq.example", 5672));
        assert!(!format!("{broker:?}").contains("secret"));
        assert_eq!(broker.on_vhost("prod%2Feu"), "amqp://user:secret@Mq.Example/prod%2Feu");
        let tls: BrokerUrl = "amqps://mq.example".parse().unwrap();
        assert_eq!(tls.port, 5671);
        assert!("http://mq.example".parse::<BrokerUrl>().unwrap_err().contains("scheme `http`"));
        assert!("amqp:///%2f".parse::<BrokerUrl>().is_err());
    }

    /// lapin's connection threads whose names start with `lapin-io`, in this process.
    fn connection_threads() -> usize {
        let tasks = std::fs::read_dir("/proc/self/task").expect("Linux /proc");
        tasks
            .filter_map(Result::ok)
            .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with("lapin-io")))
            .count()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_silent_broker_times_out_without_leaving_a_connection_thread_behind() {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = silent.local_addr().unwrap().port();
        let holding = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = silent.accept().await {
                held.push(socket);
            }
        });
        let facts = QueueFacts::new(format!("amqp://guest:guest@127.0.0.1:{port}/%2f").parse().unwrap());
        for _ in 0..2 {
            facts.down.lock().clear();
            let started = Instant::now();
            let view = facts.check("%2f", "q").await;
            assert!(started.elapsed() < TIMEOUT + Duration::from_millis(500));
            assert_eq!(view.error.as_deref(), Some("the broker did not answer within 1000 ms"));
        }
        assert_eq!(connection_threads(), 0, "a thread waits on the silent broker");
        holding.abort();
    }

    #[tokio::test]
    async fn addresses_on_other_brokers_or_of_exchanges_are_never_contacted() {
        let facts = QueueFacts::new("amqp://guest:guest@127.0.0.1:5672/%2f".parse().unwrap());
        for address in [
            "amqp://10.1.2.3:5672/%2F/q",
            "amqp://127.0.0.1:5673/%2F/q",
            "amqps://127.0.0.1/%2F/q",
            "amqp://127.0.0.1:5672/%2F?exchange=x&routingKey=k",
            "not an address",
        ] {
            let view = facts.of(address).await;
            assert_eq!(view.exists, None, "{address}");
            assert!(view.error.is_some(), "{address}");
        }
        assert!(facts.connections.lock().await.is_empty());
    }
}
