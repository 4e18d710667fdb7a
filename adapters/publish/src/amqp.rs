//! AMQP 0-9-1: each change on a durable topic exchange with routing key
//! `registry.agent.<kind>`, as a persistent JSON message whose `message_id` is the revision and
//! whose `type` is the kind. Publisher confirms tell when the broker has taken a message; a
//! negative confirm is a failure, and the batch is published again.

use std::time::Duration;

use async_trait::async_trait;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

use crate::{Event, Sink};

/// The routing key of a change is `registry.agent.<kind>`.
const ROUTING_PREFIX: &str = "registry.agent";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// AMQP `delivery_mode` of a message the broker keeps on disk.
const PERSISTENT: u8 = 2;

/// Where changes go over AMQP.
#[derive(Clone)]
pub struct AmqpSettings {
    /// `amqp://USER:PASSWORD@HOST:PORT/VHOST` (never logged).
    pub url: String,
    /// The topic exchange, declared durable if missing.
    pub exchange: String,
}

/// Checks an exchange name: 1 to 255 bytes (the nameless default exchange cannot be declared).
pub fn parse_exchange(text: &str) -> Result<String, String> {
    if (1..=255).contains(&text.len()) {
        Ok(text.to_owned())
    } else {
        Err("an AMQP exchange name has 1 to 255 bytes".into())
    }
}

/// Whether the broker at `host:port` answers an AMQP protocol header at all. lapin runs each
/// connection on a thread of its own that waits as long as the peer keeps the socket open,
/// even once the connecting future is dropped, so a peer that accepts and stays silent would
/// keep one thread per attempt. This probe is a plain socket, closed when the caller's timeout
/// drops it. Over TLS (`tls`) only the TCP connection is probed.
pub async fn probe_broker(host: &str, port: u16, tls: bool) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let mut stream = tokio::net::TcpStream::connect((host, port)).await.map_err(|e| e.to_string())?;
    if tls {
        return Ok(());
    }
    stream.write_all(b"AMQP\x00\x00\x09\x01").await.map_err(|e| e.to_string())?;
    let mut first = [0_u8; 1];
    match stream.read(&mut first).await {
        Ok(0) => Err("the broker closed the connection at once".into()),
        Ok(_) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

struct Connected {
    connection: Connection,
    channel: Channel,
}

pub(crate) struct AmqpSink {
    settings: AmqpSettings,
    /// Dropped after a failure: the next attempt connects anew.
    connected: Option<Connected>,
}

impl AmqpSink {
    pub fn new(settings: AmqpSettings) -> Self {
        Self { settings, connected: None }
    }

    async fn connect(&self) -> Result<Connected, String> {
        let failed = |e: lapin::Error| format!("AMQP: {e}");
        let uri: AMQPUri = self.settings.url.parse().map_err(|e| format!("AMQP: {e}"))?;
        let connecting = async {
            let (host, port) = (&uri.authority.host, uri.authority.port);
            probe_broker(host, port, uri.scheme == AMQPScheme::AMQPS).await.map_err(|e| format!("AMQP: {e}"))?;
            Connection::connect_uri(uri.clone(), ConnectionProperties::default()).await.map_err(failed)
        };
        let connection = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| format!("AMQP: no connection within {CONNECT_TIMEOUT:?}"))??;
        let channel = connection.create_channel().await.map_err(failed)?;
        let durable = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
        channel
            .exchange_declare(
                self.settings.exchange.as_str().into(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await
            .map_err(|e| format!("AMQP: cannot declare the topic exchange `{}`: {e}", self.settings.exchange))?;
        channel.confirm_select(ConfirmSelectOptions::default()).await.map_err(failed)?;
        Ok(Connected { connection, channel })
    }
}

impl Connected {
    async fn publish(&self, events: &[Event], exchange: &str) -> Result<(), String> {
        let failed = |e: lapin::Error| format!("AMQP: {e}");
        let mut confirms = Vec::with_capacity(events.len());
        for event in events {
            let properties = BasicProperties::default()
                .with_content_type("application/json".into())
                .with_delivery_mode(PERSISTENT)
                .with_message_id(event.message_id.as_str().into())
                .with_type(event.kind.as_ref().into())
                .with_app_id("agent-registry".into());
            let routing_key = event.subject(ROUTING_PREFIX);
            let confirm = self
                .channel
                .basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    BasicPublishOptions::default(),
                    &event.payload,
                    properties,
                )
                .await
                .map_err(failed)?;
            confirms.push(confirm);
        }
        for confirm in confirms {
            if confirm.await.map_err(failed)?.is_nack() {
                return Err("AMQP: the broker refused a message".into());
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Sink for AmqpSink {
    fn name(&self) -> &'static str {
        "amqp"
    }

    async fn publish(&mut self, events: &[Event]) -> Result<(), String> {
        let connected = match self.connected.take() {
            Some(connected) => connected,
            None => self.connect().await?,
        };
        match connected.publish(events, &self.settings.exchange).await {
            Ok(()) => {
                self.connected = Some(connected);
                Ok(())
            }
            Err(e) => {
                connected.close().await;
                Err(e)
            }
        }
    }

    async fn close(&mut self) {
        if let Some(connected) = self.connected.take() {
            connected.close().await;
        }
    }
}

impl Connected {
    /// Closes the connection, briefly: a broken one has nobody to answer.
    async fn close(self) {
        let closing = self.connection.close(200, "agent-registry publisher closes".into());
        let _ = tokio::time::timeout(Duration::from_millis(500), closing).await;
    }
}

impl std::fmt::Debug for AmqpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpSettings")
            .field("url", &agent_registry_core::redact::url_credentials(&self.url))
            .field("exchange", &self.exchange)
            .finish()
    }
}
