//! The tools that send work through the gateway: `execute_task` and `get_task`, so that a model
//! finds an agent and uses it in one conversation. Unlike discovery they call out, so they need
//! the registry's credentials on the `/mcp` request (`X-Api-Key` or `Authorization: Bearer`,
//! checked as on the REST routes, with the same rate limits); tasks are never anonymous. The
//! answer keeps to the caller's wait (`waitSeconds`) and size (`maxChars`) budget.

use std::time::Duration;

use agent_registry_core::RegistryError;
use agent_registry_core::auth::Caller;
use agent_registry_core::task::{Submitted, Task, TaskId, TaskInput, TaskState, limits};
use rmcp::handler::server::tool::schema_for_output;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::JsonObject;
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::RegistryMcp;
use super::tools::{
    Answer, Checked, DEFAULT_CHARS, MAX_CHARS, MIN_CHARS, Outcome, ToolError, bad_argument, bounded, or_null,
    protocol_names, required,
};

/// `execute_task` waits this long for the answer unless told otherwise (a model's turn should
/// not hang: a longer task is followed with `get_task`).
const DEFAULT_WAIT_SECONDS: u32 = 10;
/// Events `get_task` shows, the most recent ones.
const RECENT_EVENTS: u64 = 10;

fn text_or_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "What to send: text, or a JSON object (for an MCP tool, its arguments)",
        "anyOf": [{"type": "string"}, {"type": "object"}]
    })
}

fn any_value(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "The agent's answer: its text, or its structured result",
        "anyOf": [{"type": "string"}, {"type": "object"}, {"type": "array"}, {"type": "number"},
                  {"type": "boolean"}, {"type": "null"}]
    })
}

fn state_names() -> Vec<&'static str> {
    TaskState::ALL.iter().map(|s| s.as_str()).collect()
}

/// Arguments of `execute_task`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExecuteArgs {
    /// A capability name: a live agent offering it takes the task. Name exactly one of capability, agentId and tool
    capability: Option<String>,
    /// One agent, by id (as find_agent_for_task or discover_agents return it)
    agent_id: Option<String>,
    /// An MCP tool or an A2A skill, by name
    tool: Option<String>,
    #[schemars(required, schema_with = "text_or_object")]
    input: Option<Value>,
    /// The protocol to prefer when agents speak several
    #[schemars(extend("enum" = or_null(protocol_names())))]
    protocol: Option<String>,
    /// Seconds to wait for the answer; if the task is still running then, its id is returned for get_task
    #[schemars(range(min = 0, max = limits::MAX_WAIT_SECONDS), extend("default" = DEFAULT_WAIT_SECONDS))]
    wait_seconds: Option<u64>,
    /// Seconds the whole task may take
    #[schemars(range(min = 1, max = limits::MAX_TIMEOUT_SECONDS), extend("default" = limits::DEFAULT_TIMEOUT_SECONDS))]
    timeout_seconds: Option<u64>,
    /// The JSON answer stays within this many characters (the output is cut if it must be)
    #[schemars(range(min = MIN_CHARS, max = MAX_CHARS), extend("default" = DEFAULT_CHARS))]
    max_chars: Option<usize>,
}

/// Arguments of `get_task`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GetTaskArgs {
    /// The task's id, as execute_task returned it
    #[schemars(required, with = "String")]
    id: Option<String>,
    /// The JSON answer stays within this many characters (older events are left out first, then the output is cut)
    #[schemars(range(min = MIN_CHARS, max = MAX_CHARS), extend("default" = DEFAULT_CHARS))]
    max_chars: Option<usize>,
}

/// Why a task failed.
#[derive(Serialize, JsonSchema)]
#[schemars(inline)]
struct TaskFailure {
    /// A stable code: agent_failed, agent_unreachable, task_timeout, ...
    code: String,
    detail: String,
}

/// A task as a model reads it.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct TaskResult {
    /// Pass it to get_task to follow the task
    id: String,
    #[schemars(extend("enum" = state_names()))]
    state: String,
    /// Whether the task rests (completed, failed, canceled, rejected, or waiting for input); if not, call get_task later
    finished: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_value")]
    output: Option<Value>,
    /// The output was cut to fit maxChars: it is the beginning of its JSON
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    output_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<TaskFailure>,
    /// The agent the task went to
    agent_id: Option<String>,
    protocol: Option<String>,
    /// The most recent events of the task's log (get_task only): created, dispatched, accepted, progress, completed, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<Vec<JsonObject>>,
}

impl TaskResult {
    fn of(task: &Task, events: Option<Vec<JsonObject>>) -> Self {
        Self {
            id: task.id.to_string(),
            state: task.state.as_str().to_owned(),
            finished: task.state.is_resting(),
            output: task.output.clone(),
            output_truncated: false,
            error: task.failure.as_ref().map(|f| TaskFailure { code: f.code.clone(), detail: f.detail.clone() }),
            agent_id: task.agent_id.map(|id| id.to_string()),
            protocol: task.protocol.map(|p| p.as_str().to_owned()),
            events,
        }
    }

    /// Shrinks the answer to `max_chars` of JSON: the oldest events go first, then the output is
    /// cut.
    fn fit(mut self, max_chars: usize) -> Self {
        let size = |r: &Self| serde_json::to_string(r).map_or(usize::MAX, |s| s.chars().count());
        while size(&self) > max_chars && self.events.as_ref().is_some_and(|e| !e.is_empty()) {
            if let Some(events) = &mut self.events {
                events.remove(0);
            }
        }
        if size(&self) > max_chars
            && let Some(output) = self.output.take()
        {
            let text = match output {
                Value::String(text) => text,
                other => other.to_string(),
            };
            self.output_truncated = true;
            self.output = Some(Value::String(String::new()));
            // JSON escaping may lengthen the text: cut, then check again.
            let mut room = max_chars.saturating_sub(size(&self));
            loop {
                self.output = Some(Value::String(text.chars().take(room).collect()));
                if size(&self) <= max_chars || room == 0 {
                    break;
                }
                room = room.saturating_sub((size(&self) - max_chars).max(1));
            }
        }
        self
    }

    fn rendering(&self) -> String {
        let mut text = format!("Task {} is {}", self.id, self.state);
        if let (Some(agent), Some(protocol)) = (&self.agent_id, &self.protocol) {
            text.push_str(&format!(" (agent {agent}, over {protocol})"));
        }
        text.push('.');
        match &self.output {
            Some(Value::String(output)) => text.push_str(&format!("\nOutput: {output}")),
            Some(output) => text.push_str(&format!("\nOutput: {output}")),
            None => {}
        }
        if self.output_truncated {
            text.push_str("\n(The output was cut to fit maxChars.)");
        }
        if let Some(error) = &self.error {
            text.push_str(&format!("\nError {}: {}", error.code, error.detail));
        }
        if !self.finished {
            text.push_str(&format!("\nStill running: call get_task with id \"{}\" to follow it.", self.id));
        }
        text
    }
}

impl RegistryMcp {
    /// The caller the `/mcp` request's credentials name, held to the management rate limits.
    async fn caller(&self, context: &RequestContext<RoleServer>) -> Result<Caller, ToolError> {
        let Some(parts) = context.extensions.get::<axum::http::request::Parts>() else {
            return Err(RegistryError::Unauthenticated("tasks need credentials on the MCP request".into()).into());
        };
        let limits = &self.state.limits;
        let client = limits.client(parts);
        limits.management_address(client)?;
        let caller = crate::http::extract::identify(parts, &self.state, client.map(|ip| ip.to_string())).await?;
        limits.management_key(&caller.actor)?;
        Ok(caller)
    }
}

#[tool_router(router = task_router, vis = "pub(super)")]
impl RegistryMcp {
    /// Send a task to a live agent and return its answer: this CALLS OUT to the agent, in the agent's own
    /// protocol (A2A, MCP tools/call, ...), and the agent may act on the input. Name exactly one of capability
    /// (any live agent offering it), agentId or tool. Waits up to waitSeconds; a task still running then comes
    /// back with its id and state, to follow with get_task. Needs the registry's credentials (X-Api-Key or a
    /// bearer token on the MCP connection).
    #[tool(
        annotations(
            title = "Execute a task on an agent",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        ),
        output_schema = schema_for_output::<TaskResult>()
    )]
    async fn execute_task(
        &self,
        Parameters(Checked(args)): Parameters<Checked<ExecuteArgs>>,
        context: RequestContext<RoleServer>,
    ) -> Outcome {
        let caller = self.caller(&context).await?;
        let args = args?;
        let max_chars = bounded(args.max_chars, "maxChars", DEFAULT_CHARS, MIN_CHARS, MAX_CHARS)?;
        let wait = args.wait_seconds.unwrap_or(u64::from(DEFAULT_WAIT_SECONDS));
        let input = TaskInput {
            capability: args.capability,
            agent_id: args.agent_id,
            tool: args.tool,
            input: args.input,
            protocol: args.protocol,
            timeout_seconds: args.timeout_seconds,
            wait_seconds: Some(wait),
            metadata: None,
        };
        let task = match self.state.gateway.submit(&caller, &input, None).await? {
            Submitted::Created { task, finished } => {
                match tokio::time::timeout(Duration::from_secs(wait), finished).await {
                    Ok(Ok(done)) => done,
                    _ => *task,
                }
            }
            Submitted::Replayed(task) => *task,
        };
        let answer = TaskResult::of(&task, None).fit(max_chars);
        let text = answer.rendering();
        Answer::new(answer, Some(text))
    }

    /// A task sent with execute_task (or POST /tasks): its state, output or error, and its most recent events
    /// (progress the agent reported, retries, ...). Only the caller who sent it (or an Admin) may read it.
    #[tool(
        annotations(
            title = "Get a task",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        ),
        output_schema = schema_for_output::<TaskResult>()
    )]
    async fn get_task(
        &self,
        Parameters(Checked(args)): Parameters<Checked<GetTaskArgs>>,
        context: RequestContext<RoleServer>,
    ) -> Outcome {
        let caller = self.caller(&context).await?;
        let args = args?;
        let id = required(args.id, "id")?;
        let id = TaskId::parse(&id).map_err(|_| bad_argument("id", "must be a task id (a UUID)"))?;
        let max_chars = bounded(args.max_chars, "maxChars", DEFAULT_CHARS, MIN_CHARS, MAX_CHARS)?;
        let task = self.state.gateway.task(&caller, id).await?;
        let (task, logged) =
            self.state.gateway.events(&caller, id, task.last_seq.saturating_sub(RECENT_EVENTS)).await?;
        let events = logged
            .iter()
            .filter_map(|e| serde_json::to_value(e).ok())
            .filter_map(|e| match e {
                Value::Object(event) => Some(event),
                _ => None,
            })
            .collect();
        let answer = TaskResult::of(&task, Some(events)).fit(max_chars);
        let text = answer.rendering();
        Answer::new(answer, Some(text))
    }
}
