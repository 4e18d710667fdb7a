//! The gateway's domain: a task sent to a live agent in its own protocol, its states and the
//! events of its execution log; the validation of a task request; and, in the submodules, the
//! `Invoker` port the protocol clients implement, the choice of an endpoint, the `TaskStore`
//! port and the `Gateway` use-case that runs a task from request to its last event.

pub mod choose;
pub mod gateway;
pub mod invoke;
pub mod journal;
pub mod store;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{FieldError, RegistryError};
use crate::liveness::Millis;
use crate::model::{AgentId, EndpointId, Protocol};

pub use gateway::{Gateway, GatewayConfig, Submitted};
pub use invoke::{Call, InvokeError, Invoker, Outcome, Step, Target};
pub use journal::TaskJournal;
pub use store::{NewTask, TaskCreated, TaskPage, TaskQuery, TaskStore, TaskWrite, TaskWritten};

/// The label by which an agent restricts who may send it tasks: owner ids and `scope:<Scope>`
/// entries, separated by commas or spaces. Without it any authenticated caller may; an Admin
/// and the agent's own owner always may.
pub const CALLERS_LABEL: &str = "callers";

/// Whether `caller` may send tasks to `agent` (see [`CALLERS_LABEL`]).
pub fn may_call(caller: &Caller, agent: &crate::model::Agent) -> bool {
    let Some(callers) = agent.labels.get(CALLERS_LABEL) else { return true };
    if caller.is_admin() || caller.owner == agent.owner_id {
        return true;
    }
    let scope = format!("scope:{}", caller.scope.as_str());
    callers
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|entry| !entry.is_empty())
        .any(|entry| entry == caller.owner || entry.eq_ignore_ascii_case(&scope))
}

/// Request limits of `POST /tasks`.
pub mod limits {
    /// A capability or tool name.
    pub const NAME_CHARS: usize = 256;
    /// Serialized size of `input`.
    pub const INPUT_BYTES: usize = 256 * 1024;
    /// Serialized size of `metadata`.
    pub const METADATA_BYTES: usize = 16 * 1024;
    pub const DEFAULT_TIMEOUT_SECONDS: u32 = 60;
    pub const MAX_TIMEOUT_SECONDS: u32 = 3_600;
    pub const DEFAULT_WAIT_SECONDS: u32 = 5;
    pub const MAX_WAIT_SECONDS: u32 = 30;
    /// Largest output kept for a task (a larger answer fails the task, `output_too_large`).
    pub const OUTPUT_BYTES: usize = 1024 * 1024;
}

/// Identifier of a task (a UUID).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
#[serde(transparent)]
pub struct TaskId(pub Uuid);

impl TaskId {
    /// A new id, ordered by time (see `AgentId::generate`).
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn parse(value: &str) -> Result<Self, RegistryError> {
        Uuid::try_parse(value.trim())
            .map(Self)
            .map_err(|_| RegistryError::InvalidId { what: "task", value: value.chars().take(64).collect() })
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Debug for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Where a task stands. `submitted` and `working` are in flight; `input_required` is where a
/// run rests when the agent asks for more (the task is not resumed yet); the others are final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Submitted,
    Working,
    InputRequired,
    Completed,
    Failed,
    Canceled,
    Rejected,
}

impl TaskState {
    pub const ALL: [TaskState; 7] = [
        Self::Submitted,
        Self::Working,
        Self::InputRequired,
        Self::Completed,
        Self::Failed,
        Self::Canceled,
        Self::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submitted => "submitted",
            Self::Working => "working",
            Self::InputRequired => "input_required",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
            Self::Rejected => "rejected",
        }
    }

    /// No event changes a task in a final state.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Canceled | Self::Rejected)
    }

    /// The run of the task is over (final, or waiting for input nobody can give yet): its event
    /// stream ends here.
    pub fn is_resting(self) -> bool {
        self.is_final() || self == Self::InputRequired
    }

    /// The states a store finds "in flight": a task left in one of them by a stopped process is
    /// failed with `registry_restarted`.
    pub const IN_FLIGHT: [TaskState; 2] = [Self::Submitted, Self::Working];
}

impl FromStr for TaskState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let names: Vec<&str> = Self::ALL.iter().map(|s| s.as_str()).collect();
        Self::ALL
            .into_iter()
            .find(|state| state.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown task state `{}`; expected one of {}", truncated(s), names.join(", ")))
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn truncated(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Why a task failed: a stable code (see `crate::error::catalogue::TASK_FAILURES`) and a text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskFailure {
    pub code: String,
    pub detail: String,
}

/// One entry of a task's execution log, as the protocols report it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case", rename_all_fields = "camelCase")]
pub enum TaskEvent {
    /// The task was accepted by the registry.
    Created,
    /// The task is being sent to this endpoint (attempt `attempt`, from 1).
    Dispatched {
        agent_id: AgentId,
        endpoint_id: EndpointId,
        protocol: Protocol,
        address: String,
        attempt: u32,
    },
    /// The agent took the task; from here on it is never sent again.
    Accepted {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        remote_id: Option<String>,
    },
    /// A state change the agent reported, with its message if any.
    Status {
        state: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
        message: Option<Value>,
    },
    Progress {
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        progress: Value,
    },
    Artifact {
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        artifact: Value,
    },
    Message {
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        message: Value,
    },
    /// The agent needs more input; the run ends here.
    InputRequired {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
        message: Option<Value>,
    },
    /// The attempt before failed before the agent accepted the task; the next endpoint follows.
    Retrying {
        reason: String,
    },
    Completed {
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        output: Value,
    },
    Failed {
        code: String,
        detail: String,
    },
    /// The agent refused the task.
    Rejected {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    Canceled,
}

/// What an event changes in the task it is appended to (the store writes these columns).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskEffects {
    pub state: Option<TaskState>,
    pub agent_id: Option<AgentId>,
    pub endpoint_id: Option<EndpointId>,
    pub protocol: Option<Protocol>,
    pub output: Option<Value>,
    pub failure: Option<TaskFailure>,
}

impl TaskEvent {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Dispatched { .. } => "dispatched",
            Self::Accepted { .. } => "accepted",
            Self::Status { .. } => "status",
            Self::Progress { .. } => "progress",
            Self::Artifact { .. } => "artifact",
            Self::Message { .. } => "message",
            Self::InputRequired { .. } => "input_required",
            Self::Retrying { .. } => "retrying",
            Self::Completed { .. } => "completed",
            Self::Failed { .. } => "failed",
            Self::Rejected { .. } => "rejected",
            Self::Canceled => "canceled",
        }
    }

    /// A failure event with a code of the task-failure catalogue.
    pub fn failed(code: &str, detail: impl Into<String>) -> Self {
        Self::Failed { code: code.to_owned(), detail: detail.into() }
    }

    /// The task's columns this event sets.
    pub fn effects(&self) -> TaskEffects {
        let state = |s| TaskEffects { state: Some(s), ..TaskEffects::default() };
        match self {
            Self::Created => state(TaskState::Submitted),
            Self::Dispatched { agent_id, endpoint_id, protocol, .. } => TaskEffects {
                agent_id: Some(*agent_id),
                endpoint_id: Some(*endpoint_id),
                protocol: Some(*protocol),
                ..TaskEffects::default()
            },
            Self::Retrying { .. } => TaskEffects::default(),
            Self::Accepted { .. } | Self::Status { .. } | Self::Progress { .. } | Self::Artifact { .. } => {
                state(TaskState::Working)
            }
            Self::Message { .. } => state(TaskState::Working),
            Self::InputRequired { .. } => state(TaskState::InputRequired),
            Self::Completed { output } => TaskEffects { output: Some(output.clone()), ..state(TaskState::Completed) },
            Self::Failed { code, detail } => TaskEffects {
                failure: Some(TaskFailure { code: code.clone(), detail: detail.clone() }),
                ..state(TaskState::Failed)
            },
            Self::Rejected { detail } => TaskEffects {
                failure: Some(TaskFailure {
                    code: crate::error::catalogue::AGENT_REJECTED.to_owned(),
                    detail: detail.clone().unwrap_or_else(|| "the agent rejected the task".to_owned()),
                }),
                ..state(TaskState::Rejected)
            },
            Self::Canceled => state(TaskState::Canceled),
        }
    }
}

/// An event as the log keeps it: its sequence number within the task (from 1), and when.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct LoggedTaskEvent {
    pub seq: u64,
    #[serde(with = "crate::render::timestamp")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub event: TaskEvent,
}

impl LoggedTaskEvent {
    /// Reads a stored event (`data` is the event's JSON).
    pub fn from_row(seq: i64, at: Millis, data: &str) -> Result<Self, RegistryError> {
        let event = serde_json::from_str(data)
            .map_err(|e| RegistryError::internal_from(format!("task event {seq} is unreadable"), e))?;
        Ok(Self { seq: u64::try_from(seq).unwrap_or_default(), at: crate::clock::to_datetime(at), event })
    }
}

/// What a task is sent to: a capability any matching agent offers, one agent, or a tool (an
/// MCP tool or an A2A skill) by name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TaskTarget {
    Capability(String),
    AgentId(AgentId),
    Tool(String),
}

/// A validated task request: built only by [`TaskInput::validate`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskRequest {
    pub target: TaskTarget,
    /// Text, or a JSON object (for MCP, the tool's arguments).
    pub input: Value,
    /// The protocol to prefer when an agent speaks several.
    pub protocol: Option<Protocol>,
    pub timeout_seconds: u32,
    pub wait_seconds: u32,
    pub metadata: Map<String, Value>,
}

impl TaskRequest {
    pub fn capability(&self) -> Option<&str> {
        match &self.target {
            TaskTarget::Capability(name) => Some(name),
            _ => None,
        }
    }

    pub fn tool(&self) -> Option<&str> {
        match &self.target {
            TaskTarget::Tool(name) => Some(name),
            _ => None,
        }
    }
}

/// Body of `POST /tasks`, as sent: checked by [`TaskInput::validate`].
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TaskInput {
    /// A capability name: any live agent offering it may take the task.
    pub capability: Option<String>,
    /// One agent, by id.
    pub agent_id: Option<String>,
    /// An MCP tool or an A2A skill, by name.
    pub tool: Option<String>,
    /// Text, or a JSON object.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub input: Option<Value>,
    /// The protocol to prefer: `A2A`, `MCP` or `ACP`.
    pub protocol: Option<String>,
    /// How long the whole task may take (1 to 3600, default 60).
    pub timeout_seconds: Option<u64>,
    /// How long the request waits for the answer before answering 202 (0 to 30, default 5).
    pub wait_seconds: Option<u64>,
    /// Caller's notes, kept with the task.
    pub metadata: Option<Map<String, Value>>,
}

impl TaskInput {
    /// Checks every field at once; the errors name each field by its JSON pointer.
    pub fn validate(&self) -> Result<TaskRequest, RegistryError> {
        let mut errors = Vec::new();
        let mut name = |pointer: &str, value: &Option<String>| -> Option<String> {
            let value = value.as_deref()?.trim();
            if value.is_empty() {
                errors.push(FieldError::new(pointer, "must not be empty"));
            } else if value.chars().count() > limits::NAME_CHARS {
                errors.push(FieldError::new(pointer, format!("must be at most {} characters", limits::NAME_CHARS)));
            }
            Some(value.to_owned())
        };
        let capability = name("/capability", &self.capability);
        let tool = name("/tool", &self.tool);
        let agent = self.agent_id.as_deref().map(|id| {
            AgentId::parse(id).map_err(|_| errors.push(FieldError::new("/agentId", "must be an agent id (a UUID)")))
        });
        let chosen = [self.capability.is_some(), self.agent_id.is_some(), self.tool.is_some()];
        if chosen.iter().filter(|c| **c).count() != 1 {
            errors.push(FieldError::new("/capability", "name exactly one of `capability`, `agentId` and `tool`"));
        }
        match &self.input {
            None => errors.push(FieldError::new("/input", "is required: text or a JSON object")),
            Some(Value::String(_) | Value::Object(_)) => {
                if json_size(self.input.as_ref()) > limits::INPUT_BYTES {
                    errors.push(FieldError::new("/input", format!("must be at most {} bytes", limits::INPUT_BYTES)));
                }
            }
            Some(_) => errors.push(FieldError::new("/input", "must be text or a JSON object")),
        }
        let protocol = self.protocol.as_deref().and_then(|p| match p.parse::<Protocol>() {
            Ok(Protocol::Custom) | Err(_) => {
                errors.push(FieldError::new("/protocol", "must be one of A2A, MCP, ACP"));
                None
            }
            Ok(p) => Some(p),
        });
        let mut seconds = |pointer: &str, value: Option<u64>, range: (u32, u32), default: u32| -> u32 {
            match value {
                None => default,
                Some(v) if v >= u64::from(range.0) && v <= u64::from(range.1) => u32::try_from(v).unwrap_or(default),
                Some(_) => {
                    errors.push(FieldError::new(pointer, format!("must be between {} and {}", range.0, range.1)));
                    default
                }
            }
        };
        let timeout_seconds = seconds(
            "/timeoutSeconds",
            self.timeout_seconds,
            (1, limits::MAX_TIMEOUT_SECONDS),
            limits::DEFAULT_TIMEOUT_SECONDS,
        );
        let wait_seconds =
            seconds("/waitSeconds", self.wait_seconds, (0, limits::MAX_WAIT_SECONDS), limits::DEFAULT_WAIT_SECONDS);
        let metadata = self.metadata.clone().unwrap_or_default();
        if json_size(Some(&Value::Object(metadata.clone()))) > limits::METADATA_BYTES {
            errors.push(FieldError::new("/metadata", format!("must be at most {} bytes", limits::METADATA_BYTES)));
        }
        let target = match (capability, agent, tool) {
            (Some(c), None, None) => Some(TaskTarget::Capability(c)),
            (None, Some(Ok(a)), None) => Some(TaskTarget::AgentId(a)),
            (None, None, Some(t)) => Some(TaskTarget::Tool(t)),
            _ => None,
        };
        match (errors.is_empty(), target, &self.input) {
            (true, Some(target), Some(input)) => {
                Ok(TaskRequest { target, input: input.clone(), protocol, timeout_seconds, wait_seconds, metadata })
            }
            _ => Err(RegistryError::Validation(errors)),
        }
    }
}

fn json_size(value: Option<&Value>) -> usize {
    value.map_or(0, |v| serde_json::to_vec(v).map_or(usize::MAX, |b| b.len()))
}

/// A task as stored and shown: the request, where it went, where it stands.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    pub id: TaskId,
    /// The owner id of the caller who sent it (who may read it, besides an Admin).
    pub owner_id: String,
    /// Who sent it, for the audit trail: `key:<id>` or `jwt:<subject>`.
    pub actor: String,
    pub request: TaskRequest,
    pub state: TaskState,
    pub agent_id: Option<AgentId>,
    pub endpoint_id: Option<EndpointId>,
    pub protocol: Option<Protocol>,
    pub output: Option<Value>,
    pub failure: Option<TaskFailure>,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// When it reached a final state.
    pub finished_at: Option<Millis>,
    /// The sequence number of its newest event.
    pub last_seq: u64,
}

/// A stored task's columns, in the order [`Task::from_row`] reads them: id, owner, actor,
/// request (JSON), state, agent, endpoint, protocol, output (JSON), failure code and detail,
/// created, updated, finished, last event.
pub type TaskRow = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Millis,
    Millis,
    Option<Millis>,
    i64,
);

/// The columns of a task row, in [`TaskRow`] order, for stores' `SELECT`s.
pub const TASK_COLUMNS: &str = "id, owner_id, actor, request, state, agent_id, endpoint_id, protocol, output, \
     error_code, error_detail, created_at, updated_at, finished_at, last_seq";

impl Task {
    pub fn from_row(row: TaskRow) -> Result<Self, RegistryError> {
        let (id, owner_id, actor, request, state, agent, endpoint, protocol, output, code, detail, c, u, f, seq) = row;
        let unreadable = |what: String| RegistryError::internal(format!("task {id} is unreadable: {what}"));
        Ok(Self {
            id: TaskId::parse(&id)?,
            owner_id,
            actor,
            request: serde_json::from_str(&request).map_err(|e| unreadable(e.to_string()))?,
            state: state.parse().map_err(unreadable)?,
            agent_id: agent.as_deref().map(AgentId::parse).transpose()?,
            endpoint_id: endpoint.as_deref().map(EndpointId::parse).transpose()?,
            protocol: protocol.as_deref().map(str::parse).transpose().map_err(unreadable)?,
            output: output.as_deref().map(serde_json::from_str).transpose().map_err(|e| unreadable(e.to_string()))?,
            failure: code.map(|code| TaskFailure { code, detail: detail.unwrap_or_default() }),
            created_at: c,
            updated_at: u,
            finished_at: f,
            last_seq: u64::try_from(seq).unwrap_or_default(),
        })
    }

    /// Applies an event's effects as every store does: a final task takes no more events
    /// (`None`); otherwise the event's sequence number.
    pub fn apply(&mut self, at: Millis, event: &TaskEvent) -> Option<u64> {
        if self.state.is_final() {
            return None;
        }
        let effects = event.effects();
        self.last_seq += 1;
        self.updated_at = at;
        if let Some(state) = effects.state {
            self.state = state;
            if state.is_final() {
                self.finished_at = Some(at);
            }
        }
        self.agent_id = effects.agent_id.or(self.agent_id);
        self.endpoint_id = effects.endpoint_id.or(self.endpoint_id);
        self.protocol = effects.protocol.or(self.protocol);
        self.output = effects.output.or(self.output.take());
        self.failure = effects.failure.or(self.failure.take());
        Some(self.last_seq)
    }

    /// The task's JSON as the API shows it.
    pub fn view(&self) -> TaskView {
        let request = &self.request;
        TaskView {
            id: self.id,
            state: self.state,
            capability: request.capability().map(str::to_owned),
            tool: request.tool().map(str::to_owned),
            agent_id: self.agent_id,
            endpoint_id: self.endpoint_id,
            protocol: self.protocol,
            input: request.input.clone(),
            output: self.output.clone(),
            error: self.failure.clone(),
            metadata: request.metadata.clone(),
            owner_id: self.owner_id.clone(),
            timeout_seconds: request.timeout_seconds,
            created_at: crate::clock::to_datetime(self.created_at),
            updated_at: crate::clock::to_datetime(self.updated_at),
            finished_at: self.finished_at.map(crate::clock::to_datetime),
            events: self.last_seq,
        }
    }
}

/// A task as `GET /tasks/{id}` answers it.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TaskView {
    pub id: TaskId,
    pub state: TaskState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capability: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// The agent it was sent to (the pinned one, or the one chosen).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<AgentId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_id: Option<EndpointId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub input: Value,
    /// The agent's answer, once completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub output: Option<Value>,
    /// Why it failed or was rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<TaskFailure>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: Map<String, Value>,
    pub owner_id: String,
    pub timeout_seconds: u32,
    #[serde(with = "crate::render::timestamp")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::render::timestamp")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none", with = "crate::render::timestamp::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub finished_at: Option<DateTime<Utc>>,
    /// How many events its log holds (`GET /tasks/{id}/events`).
    pub events: u64,
}

#[cfg(test)]
mod tests;
