//! The `Invoker` port: how the gateway speaks to an agent in its own protocol. The adapters in
//! `adapters/invoke` implement it, one client per protocol (and transport), behind one
//! `Invoker` that dispatches on [`Target::protocol`] and [`Target::transport`].
//!
//! # The contract
//!
//! - [`Invoker::invoke`] sends one task to one endpoint and follows it until the agent reports a
//!   resting state ([`Outcome`]). It reports what happens on the way through `events`, in order:
//!   [`Step::Accepted`] exactly once, as soon as the agent has taken the task (an A2A `Task` or
//!   `Message` answer, an ACP run id, an MCP response or first progress notification, an AMQP
//!   reply or broker confirm), then any number of status, progress, artifact and message steps.
//! - Failover depends on that first step. A failure before `Accepted` is
//!   [`InvokeError::NotAccepted`]: connection refused or reset, a 5xx, a timeout before any
//!   answer. The gateway may send the task to the next endpoint. A failure after `Accepted` is
//!   [`InvokeError::AfterAccepted`]: the gateway never sends the task again (at most once per
//!   agent after acceptance). When in doubt (a request that may have reached the agent and a
//!   connection that broke before its answer), an invoker reports `AfterAccepted`.
//! - [`InvokeError::Refused`] is the egress policy's refusal: nothing was sent. The gateway
//!   moves on to the next endpoint, as for `NotAccepted`.
//! - An agent that answers that the task failed, was rejected or needs input is not an error:
//!   it is an [`Outcome`].
//! - Time: the call must end by [`Call::deadline`] (the gateway also drops the future at the
//!   deadline and when the task is canceled; dropping it must abandon the call cleanly).
//!   Every connection and read of an invoker has its own shorter bounds as well.
//! - `events` is called synchronously from the invoker's task; it only queues the step, so it
//!   never blocks.

use std::time::Instant;

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::model::{Protocol, Transport};
use crate::protocol::ProtocolDocument;
use crate::task::TaskId;

/// Where a task goes: one endpoint of one agent, as registered.
#[derive(Clone, Debug)]
pub struct Target {
    pub protocol: Protocol,
    pub transport: Transport,
    /// The endpoint's address (an HTTP URL, an AMQP queue or exchange address, ...).
    pub address: String,
    /// The endpoint's protocol-specific fields (e.g. an A2A `protocolBinding` and
    /// `protocolVersion`, an ACP `agentName`), kept verbatim.
    pub protocol_metadata: Map<String, Value>,
    /// The protocol document the agent was registered with, if any (an A2A card tells the
    /// binding, the version and whether it streams).
    pub document: Option<ProtocolDocument>,
}

/// The task as an invoker sends it.
#[derive(Clone, Debug)]
pub struct Call {
    pub task_id: TaskId,
    /// Text, or a JSON object (for MCP, the tool's arguments).
    pub input: Value,
    /// The MCP tool or A2A skill asked for, or the capability name the agent was chosen by.
    pub tool: Option<String>,
    /// The caller's metadata, passed on where the protocol has a place for it.
    pub metadata: Map<String, Value>,
    /// When the whole task must be over.
    pub deadline: Instant,
}

/// Something the agent reported while working on the task.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// The agent took the task (with its own id for it, if the protocol has one).
    Accepted {
        remote_id: Option<String>,
    },
    /// A state change in the protocol's own words (`working`, ...), with its message.
    Status {
        state: String,
        message: Option<Value>,
    },
    Progress(Value),
    Artifact(Value),
    Message(Value),
}

/// Where the agent left the task.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Completed {
        output: Value,
    },
    /// The agent reports the task failed; `code` is the protocol's code or `agent_failed`.
    Failed {
        code: String,
        detail: String,
    },
    /// The agent asks for more input (the message asking for it, if any).
    InputRequired {
        message: Option<Value>,
    },
    Canceled,
    Rejected {
        detail: Option<String>,
    },
}

/// Why an invocation did not reach an [`Outcome`].
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum InvokeError {
    /// The agent did not take the task: another endpoint may be tried.
    #[error("{detail}")]
    NotAccepted { code: &'static str, detail: String },
    /// The agent took the task, then the call failed: never sent again.
    #[error("{detail}")]
    AfterAccepted { code: &'static str, detail: String },
    /// The egress policy refused the address: nothing was sent.
    #[error("{detail}")]
    Refused { detail: String },
}

impl InvokeError {
    /// The task-failure code (see `crate::error::catalogue::TASK_FAILURES`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotAccepted { code, .. } | Self::AfterAccepted { code, .. } => code,
            Self::Refused { .. } => crate::error::catalogue::EGRESS_REFUSED,
        }
    }

    /// Whether the gateway may send the task to another endpoint.
    pub fn may_fail_over(&self) -> bool {
        !matches!(self, Self::AfterAccepted { .. })
    }

    pub fn detail(&self) -> &str {
        match self {
            Self::NotAccepted { detail, .. } | Self::AfterAccepted { detail, .. } | Self::Refused { detail } => detail,
        }
    }
}

/// Sends tasks to agents. See the module documentation for the contract.
#[async_trait]
pub trait Invoker: Send + Sync + 'static {
    /// Whether this invoker can send tasks to such a target at all; endpoints it cannot speak
    /// to are never chosen.
    fn speaks(&self, protocol: Protocol, transport: Transport) -> bool;

    /// Sends the task and follows it to a resting state, reporting each step through `events`.
    async fn invoke(
        &self,
        target: &Target,
        call: &Call,
        events: &(dyn Fn(Step) + Send + Sync),
    ) -> Result<Outcome, InvokeError>;

    /// Asks the agent to cancel a task it accepted (`remote_id` from [`Step::Accepted`]). Best
    /// effort: the gateway marks the task canceled whatever the answer. The default does
    /// nothing (protocols without a cancel message).
    async fn cancel(&self, _target: &Target, _remote_id: Option<&str>) -> Result<(), InvokeError> {
        Ok(())
    }
}
