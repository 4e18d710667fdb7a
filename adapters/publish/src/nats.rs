//! NATS: each change on the core subject `<prefix>.<kind>`, and every agent's current document
//! in a JetStream KV bucket (key: the agent id; deleted when the agent goes), which NATS-native
//! coordinators watch as ADR-0010 has them do. Each message carries `Nats-Msg-Id` = revision,
//! so JetStream drops a retried one (the KV bucket, or a stream an operator puts on the
//! subjects).

use std::time::Duration;

use async_nats::header::{self, HeaderMap};
use async_nats::jetstream;
use async_trait::async_trait;

use crate::{Event, Sink};

/// Where and under which names changes go to NATS.
#[derive(Clone)]
pub struct NatsSettings {
    /// `nats://HOST:PORT` (credentials in the URL are used, never logged).
    pub url: String,
    /// Subjects are `<prefix>.<kind>`.
    pub subject_prefix: String,
    /// The JetStream KV bucket of the agent documents, created if missing.
    pub kv_bucket: String,
}

/// Checks a subject prefix: dot-separated tokens without wildcards or white space.
pub fn parse_subject_prefix(text: &str) -> Result<String, String> {
    let valid = text
        .split('.')
        .all(|token| !token.is_empty() && token.chars().all(|c| !c.is_whitespace() && c != '*' && c != '>'));
    if valid {
        Ok(text.to_owned())
    } else {
        Err(format!("`{text}` is not a NATS subject prefix like `registry.agent`"))
    }
}

/// Checks a KV bucket name: letters, digits, `-` and `_`.
pub fn parse_kv_bucket(text: &str) -> Result<String, String> {
    let valid = !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(text.to_owned())
    } else {
        Err(format!("`{text}` is not a KV bucket name (letters, digits, - and _)"))
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long JetStream may take to acknowledge a KV write.
const ACK_TIMEOUT: Duration = Duration::from_secs(3);

struct Connected {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    /// `$KV.<bucket>.`: a key's subject is this and the key.
    kv_subject: String,
}

pub(crate) struct NatsSink {
    settings: NatsSettings,
    /// Dropped after a failure: the next attempt connects anew (and creates the bucket again
    /// if someone deleted it), so nothing is queued in a client that lost its server.
    connected: Option<Connected>,
}

impl NatsSink {
    pub fn new(settings: NatsSettings) -> Self {
        Self { settings, connected: None }
    }

    async fn connect(&self) -> Result<Connected, String> {
        let client = async_nats::ConnectOptions::new()
            .name("agent-registry publisher")
            .connection_timeout(CONNECT_TIMEOUT)
            .event_callback(|event| async move {
                // Connecting and closing happen at every attempt while NATS is away; the
                // attempt's own failure is what gets logged then.
                match event {
                    async_nats::Event::Connected | async_nats::Event::Closed => tracing::debug!(%event, "NATS"),
                    _ => tracing::info!(%event, "NATS"),
                }
            })
            .connect(&self.settings.url)
            .await
            .map_err(|e| format!("cannot connect to NATS: {e}"))?;
        let mut jetstream = jetstream::new(client.clone());
        jetstream.set_timeout(ACK_TIMEOUT);
        let bucket = &self.settings.kv_bucket;
        let store = match jetstream.get_key_value(bucket).await {
            Ok(store) => store,
            Err(_) => {
                // The bucket's stream as the KV convention (ADR-8) defines it. Created directly:
                // the client's `create_key_value` first reads account details in a form NATS
                // 2.9 does not send.
                let config = jetstream::stream::Config {
                    name: format!("KV_{bucket}"),
                    description: Some("agent documents published by agent-registry, keyed by agent id".into()),
                    subjects: vec![format!("$KV.{bucket}.>")],
                    max_messages_per_subject: 1,
                    discard: jetstream::stream::DiscardPolicy::New,
                    allow_rollup: true,
                    deny_delete: true,
                    allow_direct: true,
                    num_replicas: 1,
                    ..jetstream::stream::Config::default()
                };
                let cannot =
                    |e: &dyn std::fmt::Display| format!("cannot create the JetStream KV bucket `{bucket}`: {e}");
                jetstream.get_or_create_stream(config).await.map_err(|e| cannot(&e))?;
                jetstream.get_key_value(bucket).await.map_err(|e| cannot(&e))?
            }
        };
        let kv_subject = store.put_prefix.clone().unwrap_or_else(|| store.prefix.clone());
        Ok(Connected { client, jetstream, kv_subject })
    }
}

impl Connected {
    async fn publish(&self, events: &[Event], subject_prefix: &str) -> Result<(), String> {
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err("NATS is not connected".into());
        }
        let failed = |e: &dyn std::fmt::Display| format!("NATS: {e}");
        let mut acks = Vec::new();
        for event in events {
            let mut headers = HeaderMap::new();
            headers.insert(header::NATS_MESSAGE_ID, event.message_id.as_str());
            let subject = event.subject(subject_prefix);
            let payload = event.payload.clone().into();
            self.client.publish_with_headers(subject, headers.clone(), payload).await.map_err(|e| failed(&e))?;
            if !event.keyed {
                continue;
            }
            let key = format!("{}{}", self.kv_subject, event.agent_id);
            let value = match &event.document {
                Some(document) if event.rewrites_document => document.get().as_bytes().to_vec(),
                Some(_) => continue,
                None => {
                    // A delete marker, as the KV API writes one: watchers see the key go.
                    headers.insert("KV-Operation", "DEL");
                    Vec::new()
                }
            };
            acks.push(self.jetstream.publish_with_headers(key, headers, value.into()).await.map_err(|e| failed(&e))?);
        }
        // The server has the core messages once it answers a ping sent after them.
        self.client.flush().await.map_err(|e| failed(&e))?;
        for ack in acks {
            ack.await.map_err(|e| format!("JetStream refused a KV write: {e}"))?;
        }
        Ok(())
    }
}

#[async_trait]
impl Sink for NatsSink {
    fn name(&self) -> &'static str {
        "nats"
    }

    async fn publish(&mut self, events: &[Event]) -> Result<(), String> {
        let connected = match self.connected.take() {
            Some(connected) => connected,
            None => self.connect().await?,
        };
        connected.publish(events, &self.settings.subject_prefix).await?;
        self.connected = Some(connected);
        Ok(())
    }

    async fn close(&mut self) {
        if let Some(connected) = self.connected.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), connected.client.drain()).await;
        }
    }
}

impl std::fmt::Debug for NatsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSettings")
            .field("url", &agent_registry_core::redact::url_credentials(&self.url))
            .field("subject_prefix", &self.subject_prefix)
            .field("kv_bucket", &self.kv_bucket)
            .finish()
    }
}
