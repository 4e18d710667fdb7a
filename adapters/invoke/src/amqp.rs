//! Queue-backed agents over AMQP 0-9-1 (RabbitMQ, the KEDA case): the task is published to the
//! endpoint's queue (through the default exchange) or exchange (with its routing key), and the
//! agent's worker answers on a reply queue the registry owns.
//!
//! - **Only the configured broker.** As for queue facts, the gateway connects only to the broker
//!   of `--amqp-url`, with its credentials, and only for addresses whose scheme, host and port
//!   are that broker's (compared as written; no DNS). Any other address is refused like the
//!   egress policy refuses an address (`egress_refused`): a registration must not make the
//!   registry connect to a host of its choosing. Addresses never carry credentials.
//! - **The message:** `{"taskId", "input", "tool", "metadata"}` as JSON, persistent, with
//!   `correlation_id` and `message_id` = the task id, `reply_to` = the reply queue, `type: task`
//!   and an `expiration` of the task's time left (a worker started after the task's deadline
//!   never sees it). Published `mandatory` with publisher confirms.
//! - **Acceptance** is the broker's confirm: the message is safe in a queue, whether or not a
//!   worker runs (KEDA starts one). A message no queue takes comes back unrouted: not accepted.
//! - **The reply** (on the reply queue, with the task id as `correlation_id`):
//!   `{"status": "completed" | "failed" | "input_required" | "rejected" | "canceled", "output",
//!   "error": {"code", "detail"} | "text"}`.
//! - **Reply queues:** one per process and vhost, named `<prefix><uuid>`, exclusive and
//!   auto-delete (the broker deletes it with the connection). A reply that arrives when the
//!   task is over is dropped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_registry_core::address::{AmqpAddress, AmqpTarget};
use agent_registry_core::error::catalogue;
use agent_registry_core::task::{Call, InvokeError, Outcome, Step, Target};
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// The longest connecting to the broker may take (the socket probe, the handshake, the reply
/// queue's declaration and consumer).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest the broker may take to confirm a publish.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);
/// Reply queues are named with this prefix unless configured otherwise.
pub const DEFAULT_REPLY_PREFIX: &str = "agent-registry.replies.";

/// Reads `--gateway-amqp-reply-prefix`: the queue name it starts (with 32 more characters)
/// must fit AMQP's 255 bytes and stay out of the broker's reserved `amq.` names.
pub fn parse_reply_prefix(text: &str) -> Result<String, String> {
    if text.len() > 200 {
        return Err("a reply queue prefix has at most 200 bytes".into());
    }
    if text.starts_with("amq.") {
        return Err("queue names starting with `amq.` are reserved by the broker".into());
    }
    Ok(text.to_owned())
}

/// Waiters for replies, by correlation id.
type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Vec<u8>>>>>;

/// One connection to a vhost, with its confirm-mode channel and reply queue.
struct Link {
    connection: Connection,
    channel: Channel,
    reply_queue: String,
    pending: Pending,
}

/// The AMQP client of the gateway: connections to the `--amqp-url` broker, one per vhost.
pub struct AmqpClient {
    broker: url::Url,
    host: String,
    port: u16,
    tls: bool,
    reply_queue: String,
    links: tokio::sync::Mutex<HashMap<String, Arc<Link>>>,
}

impl std::fmt::Debug for AmqpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The broker URL holds credentials.
        write!(f, "AmqpClient({}:{}, replies on {})", self.host, self.port, self.reply_queue)
    }
}

impl AmqpClient {
    /// A client of the broker at `broker` (`amqp[s]://USER:PASSWORD@HOST[:PORT]/VHOST`), its
    /// reply queues named `<reply_prefix><uuid>`.
    pub fn new(broker: &url::Url, reply_prefix: &str) -> Result<Self, String> {
        let tls = match broker.scheme() {
            "amqp" => false,
            "amqps" => true,
            other => return Err(format!("the broker URL has the scheme `{other}`; expected amqp:// or amqps://")),
        };
        let host = broker.host_str().filter(|h| !h.is_empty()).ok_or("the broker URL names no host")?;
        Ok(Self {
            host: host.to_ascii_lowercase(),
            port: broker.port().unwrap_or(if tls { 5671 } else { 5672 }),
            tls,
            broker: broker.clone(),
            reply_queue: format!("{reply_prefix}{}", uuid::Uuid::new_v4().simple()),
            links: tokio::sync::Mutex::default(),
        })
    }

    pub async fn invoke(
        &self,
        target: &Target,
        call: &Call,
        events: &(dyn Fn(Step) + Send + Sync),
    ) -> Result<Outcome, InvokeError> {
        let address = AmqpAddress::parse(&target.address).map_err(|e| InvokeError::NotAccepted {
            code: catalogue::PROTOCOL_ERROR,
            detail: format!("the endpoint's address is not an AMQP address: it {e}"),
        })?;
        if address.host != self.host || address.effective_port() != self.port || address.tls != self.tls {
            return Err(InvokeError::Refused {
                detail: format!(
                    "{} is on another broker than the registry's (--amqp-url); the gateway publishes to no other",
                    target.address
                ),
            });
        }
        let (exchange, routing_key) = match &address.target {
            AmqpTarget::Queue(queue) => (String::new(), queue.clone()),
            AmqpTarget::Exchange { exchange, routing_key } => (exchange.clone(), routing_key.clone()),
        };
        let link = self.link(&address.vhost_encoded, call.deadline).await?;
        let id = call.task_id.to_string();
        let (reply_tx, reply_rx) = oneshot::channel();
        link.pending.lock().insert(id.clone(), reply_tx);
        // The waiter goes when this call ends, however it ends (the gateway may drop it).
        let _waiting = Waiting { pending: &link.pending, id: &id };

        let body = json!({ "taskId": id, "input": call.input, "tool": call.tool, "metadata": call.metadata });
        let left = call.deadline.saturating_duration_since(Instant::now());
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_correlation_id(id.as_str().into())
            .with_message_id(id.as_str().into())
            .with_reply_to(link.reply_queue.as_str().into())
            .with_type("task".into())
            .with_app_id("agent-registry".into())
            .with_expiration(left.as_millis().max(1).to_string().into());
        let options = BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() };
        let bytes = body.to_string().into_bytes();
        let confirm = link
            .channel
            .basic_publish(exchange.as_str().into(), routing_key.as_str().into(), options, &bytes, properties)
            .await;
        let confirm = match confirm {
            Ok(confirm) => confirm,
            Err(e) => {
                self.forget(&address.vhost_encoded).await;
                return Err(InvokeError::NotAccepted {
                    code: catalogue::AGENT_UNREACHABLE,
                    detail: format!("the broker did not take the task: {e}"),
                });
            }
        };
        // From here the message may be in the queue: when in doubt, it was accepted.
        let confirmed = tokio::time::timeout_at(
            tokio::time::Instant::from_std(call.deadline.min(Instant::now() + CONFIRM_TIMEOUT)),
            confirm,
        )
        .await;
        match confirmed {
            Ok(Ok(Confirmation::Nack(_))) => {
                return Err(InvokeError::NotAccepted {
                    code: catalogue::AGENT_ERROR,
                    detail: "the broker refused the task's message (nack)".into(),
                });
            }
            Ok(Ok(Confirmation::Ack(Some(_)))) => {
                return Err(InvokeError::NotAccepted {
                    code: catalogue::AGENT_UNREACHABLE,
                    detail: format!("no queue takes messages for {}: the broker returned the task", target.address),
                });
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                self.forget(&address.vhost_encoded).await;
                return Err(after(format!("the broker did not confirm the task: {e}")));
            }
            Err(_) => return Err(after("the broker did not confirm the task in time".into())),
        }
        events(Step::Accepted { remote_id: None });
        let reply = tokio::time::timeout_at(tokio::time::Instant::from_std(call.deadline), reply_rx).await;
        match reply {
            Ok(Ok(bytes)) => outcome_of_reply(&bytes),
            Ok(Err(_)) => Err(after(
                "the connection to the broker closed while waiting for the reply; its reply queue is gone".into(),
            )),
            Err(_) => Err(InvokeError::AfterAccepted {
                code: catalogue::TASK_TIMEOUT,
                detail: "no reply came before the task's deadline".into(),
            }),
        }
    }

    /// The vhost's link, connected if need be.
    async fn link(&self, vhost: &str, deadline: Instant) -> Result<Arc<Link>, InvokeError> {
        let mut links = self.links.lock().await;
        if let Some(link) = links.get(vhost)
            && link.connection.status().connected()
            && link.channel.status().connected()
        {
            return Ok(link.clone());
        }
        let until = tokio::time::Instant::from_std(deadline.min(Instant::now() + CONNECT_TIMEOUT));
        let link = tokio::time::timeout_at(until, self.connect(vhost))
            .await
            .map_err(|_| unreachable("the broker did not answer in time".into()))?
            .map_err(unreachable)?;
        let link = Arc::new(link);
        links.insert(vhost.to_owned(), link.clone());
        Ok(link)
    }

    async fn forget(&self, vhost: &str) {
        self.links.lock().await.remove(vhost);
    }

    async fn connect(&self, vhost: &str) -> Result<Link, String> {
        // lapin keeps a thread waiting on a peer that accepts and stays silent: probe first.
        agent_registry_publish::probe_broker(&self.host, self.port, self.tls).await?;
        let mut uri = self.broker.clone();
        uri.set_path(&format!("/{vhost}"));
        let properties = ConnectionProperties::default().with_connection_name("agent-registry gateway".into());
        let failed = |e: lapin::Error| e.to_string();
        let connection = Connection::connect(uri.as_str(), properties).await.map_err(failed)?;
        let channel = connection.create_channel().await.map_err(failed)?;
        channel.confirm_select(ConfirmSelectOptions::default()).await.map_err(failed)?;
        let replies = connection.create_channel().await.map_err(failed)?;
        let options = QueueDeclareOptions { exclusive: true, auto_delete: true, ..QueueDeclareOptions::default() };
        replies
            .queue_declare(self.reply_queue.as_str().into(), options, FieldTable::default())
            .await
            .map_err(failed)?;
        let consume = BasicConsumeOptions { no_ack: true, exclusive: true, ..BasicConsumeOptions::default() };
        let mut consumer = replies
            .basic_consume(self.reply_queue.as_str().into(), "gateway".into(), consume, FieldTable::default())
            .await
            .map_err(failed)?;
        let pending = Pending::default();
        let waiting = pending.clone();
        tokio::spawn(async move {
            while let Some(delivery) = consumer.next().await {
                let Ok(delivery) = delivery else { break };
                let id = delivery.properties.correlation_id().as_ref().map(|id| id.as_str().to_owned());
                let waiter = id.and_then(|id| waiting.lock().remove(&id));
                match waiter {
                    Some(waiter) => {
                        let _ = waiter.send(delivery.data);
                    }
                    None => tracing::debug!("a reply for no task waiting here was dropped"),
                }
            }
            // The reply queue went with the connection: no waiter can be answered any more.
            waiting.lock().clear();
            drop(replies);
        });
        tracing::info!(vhost, queue = %self.reply_queue, "the gateway's AMQP reply queue is ready");
        Ok(Link { connection, channel, reply_queue: self.reply_queue.clone(), pending })
    }
}

/// Removes a task's reply waiter when its call ends.
struct Waiting<'a> {
    pending: &'a Pending,
    id: &'a str,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.pending.lock().remove(self.id);
    }
}

fn unreachable(detail: String) -> InvokeError {
    InvokeError::NotAccepted { code: catalogue::AGENT_UNREACHABLE, detail: format!("AMQP: {detail}") }
}

fn after(detail: String) -> InvokeError {
    InvokeError::AfterAccepted { code: catalogue::AGENT_UNREACHABLE, detail }
}

/// The worker's reply read as an outcome (see the module documentation for its shape).
fn outcome_of_reply(bytes: &[u8]) -> Result<Outcome, InvokeError> {
    let bad = |why: String| InvokeError::AfterAccepted { code: catalogue::PROTOCOL_ERROR, detail: why };
    let reply: Value =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("the worker's reply is not JSON: {e}")))?;
    let status = reply.get("status").and_then(Value::as_str).unwrap_or_default();
    let output = reply.get("output").cloned().unwrap_or(Value::Null);
    let error = reply.get("error");
    let said = error
        .and_then(|e| e.as_str().or_else(|| e.get("detail").and_then(Value::as_str)))
        .map(str::to_owned)
        .filter(|d| !d.is_empty());
    Ok(match status {
        "completed" => Outcome::Completed { output },
        // The worker's own code goes into the detail: task failure codes are the registry's.
        "failed" => Outcome::Failed {
            code: catalogue::AGENT_FAILED.into(),
            detail: match (error.and_then(|e| e.get("code")).and_then(Value::as_str), said) {
                (Some(code), Some(said)) => format!("{code}: {said}"),
                (Some(code), None) => code.to_owned(),
                (None, Some(said)) => said,
                (None, None) => "the worker reports the task failed".into(),
            },
        },
        "input_required" => Outcome::InputRequired { message: Some(output).filter(|o| !o.is_null()) },
        "rejected" => Outcome::Rejected { detail: said },
        "canceled" | "cancelled" => Outcome::Canceled,
        _ => {
            let excerpt: String = reply.to_string().chars().take(200).collect();
            return Err(bad(format!("the worker's reply has no known status: {excerpt}")));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_become_outcomes() {
        let read = |v: Value| outcome_of_reply(v.to_string().as_bytes());
        assert_eq!(read(json!({"status": "completed", "output": 1})), Ok(Outcome::Completed { output: json!(1) }));
        assert_eq!(
            read(json!({"status": "failed", "error": "disk full"})),
            Ok(Outcome::Failed { code: "agent_failed".into(), detail: "disk full".into() })
        );
        assert_eq!(
            read(json!({"status": "failed", "error": {"code": "quota", "detail": "no"}})),
            Ok(Outcome::Failed { code: "agent_failed".into(), detail: "quota: no".into() })
        );
        assert!(read(json!({"processed": "x"})).is_err());
        assert!(outcome_of_reply(b"not json").is_err());
    }

    #[test]
    fn only_amqp_broker_urls_are_taken_and_their_credentials_stay_hidden() {
        let url = |s: &str| url::Url::parse(s).unwrap();
        let client = AmqpClient::new(&url("amqp://u:secret@MQ.example/%2f"), "p.").unwrap();
        assert_eq!((client.host.as_str(), client.port, client.tls), ("mq.example", 5672, false));
        assert!(client.reply_queue.starts_with("p."));
        assert!(!format!("{client:?}").contains("secret"));
        assert!(AmqpClient::new(&url("http://mq.example"), "p.").is_err());
        assert!(parse_reply_prefix("amq.gen").is_err());
        assert!(parse_reply_prefix(&"x".repeat(201)).is_err());
    }
}
