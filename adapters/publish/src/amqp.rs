//! AMQP 0-9-1: each change on a durable topic exchange with routing key
//! `registry.agent.<kind>`, as a persistent JSON message whose `message_id` is the revision and
//! whose `type` is the kind. Publisher confirms tell when the broker has taken a message; a
//! negative confirm is a failure, and the batch is published again.

use std::time::Duration;

use async_trait::async_trait;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
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
        let connection = tokio::time::timeout(
            CONNECT_TIMEOUT,
            Connection::connect(&self.settings.url, ConnectionProperties::default()),
        )
        .await
        .map_err(|_| format!("AMQP: no connection within {CONNECT_TIMEOUT:?}"))?
        .map_err(failed)?;
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
                .with_message_id(event.revision.to_string().into())
                .with_type(event.kind.into())
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
            .field("url", &crate::without_password(&self.url))
            .field("exchange", &self.exchange)
            .finish()
    }
}
