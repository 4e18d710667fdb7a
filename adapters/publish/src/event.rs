//! A change as it is published: the message body every destination sends, and the agent
//! document the NATS KV bucket keeps.

use std::borrow::Cow;

use agent_registry_core::ports::LoggedChange;
use agent_registry_core::render::{self, write_timestamp};
use agent_registry_core::task::journal::CommittedTaskEvent;
use serde::Serialize;
use serde_json::value::RawValue;

/// One change (or, with `--publish-task-events`, one task event), ready to publish.
pub(crate) struct Event {
    /// The broker's message id: the revision of a change, `<task id>:<seq>` of a task event.
    pub message_id: String,
    /// `registered`, `updated`, …: `ChangeKind::as_str`, whatever kinds the core has; a task
    /// event's is `task.<type>` (`task.completed`).
    pub kind: Cow<'static, str>,
    pub agent_id: String,
    /// The agent document after the change, as `GET /agents/{id}` shows it without live state
    /// (an operator's broker sees everything: no privacy filter); `None` once removed.
    pub document: Option<Box<RawValue>>,
    /// Whether this change wrote `document`: a liveness event carries the agent unchanged, and
    /// rewriting the KV entry would only wake its watchers for nothing.
    pub rewrites_document: bool,
    /// Whether the NATS KV bucket hears of it (changes do; task events do not).
    pub keyed: bool,
    /// `{"revision", "kind", "agentId", "at", "endpointId"?, "agent"?}`, or a task event's
    /// `{"kind", "taskId", "ownerId", "seq", "at", "type", …}`.
    pub payload: Vec<u8>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Message<'a> {
    revision: u64,
    kind: &'a str,
    agent_id: &'a str,
    at: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoint_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent: Option<&'a RawValue>,
}

impl Event {
    pub fn of(change: &LoggedChange) -> Self {
        #[expect(clippy::expect_used, reason = "render::document writes JSON; RawValue only re-parses it")]
        let document = change.agent.as_ref().map(|agent| {
            let text = render::document(agent);
            RawValue::from_string(text).expect("a rendered agent is JSON")
        });
        let rewrites_document = change.agent.as_ref().is_some_and(|agent| agent.revision == change.revision);
        let mut at = Vec::with_capacity(24);
        write_timestamp(&mut at, change.at);
        let agent_id = change.agent_id.to_string();
        let message = Message {
            revision: change.revision,
            kind: change.kind.as_str(),
            agent_id: &agent_id,
            at: std::str::from_utf8(&at).unwrap_or_default(),
            endpoint_id: change.endpoint_id.map(|id| id.to_string()),
            agent: document.as_deref(),
        };
        #[expect(clippy::expect_used, reason = "strings, numbers and valid JSON always serialise to a Vec")]
        let payload = serde_json::to_vec(&message).expect("a message serialises");
        Self {
            message_id: change.revision.to_string(),
            kind: Cow::Borrowed(change.kind.as_str()),
            agent_id,
            document,
            rewrites_document,
            keyed: true,
            payload,
        }
    }

    /// A task event as the task's log has it, with its task, owner and `kind`.
    pub fn task(committed: &CommittedTaskEvent) -> Self {
        let kind = format!("task.{}", committed.logged.event.kind());
        let mut message = serde_json::to_value(&committed.logged).unwrap_or_else(|_| serde_json::json!({}));
        if let Some(fields) = message.as_object_mut() {
            fields.insert("kind".into(), kind.clone().into());
            fields.insert("taskId".into(), committed.task_id.to_string().into());
            fields.insert("ownerId".into(), committed.owner_id.clone().into());
        }
        Self {
            message_id: format!("{}:{}", committed.task_id, committed.logged.seq),
            kind: Cow::Owned(kind),
            agent_id: String::new(),
            document: None,
            rewrites_document: false,
            keyed: false,
            payload: message.to_string().into_bytes(),
        }
    }

    /// The routing key or subject of this event under `prefix`.
    pub fn subject(&self, prefix: &str) -> String {
        format!("{prefix}.{}", self.kind)
    }
}
