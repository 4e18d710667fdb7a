//! `tasks send|get|list|follow|cancel`: work sent through the gateway (`POST /tasks`) and its
//! execution log followed live (`GET /tasks/{id}/events`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Map, Value};

use super::client::{CliError, Client, read_json};
use super::sse::{Reader, SseError};
use super::{Output, table};

#[derive(Subcommand, Debug)]
pub enum TasksCommand {
    /// Send a task to a live agent and print its result (or follow its log with `--follow`).
    Send(Send),
    /// One task: state, output, timings.
    Get {
        /// The task's id.
        id: String,
    },
    /// Tasks this key sent (an Admin's: everyone's), newest first.
    List(List),
    /// Print a task's log as it happens, until the task ends.
    Follow {
        /// The task's id.
        id: String,
    },
    /// Cancel a running task.
    Cancel {
        /// The task's id.
        id: String,
    },
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["capability", "agent", "tool"])))]
#[command(group(clap::ArgGroup::new("what").required(true).args(["input", "input_json"])))]
pub struct Send {
    /// Any live agent offering this capability.
    #[arg(long)]
    capability: Option<String>,
    /// This agent (its id).
    #[arg(long)]
    agent: Option<String>,
    /// An MCP tool or A2A skill by name.
    #[arg(long)]
    tool: Option<String>,
    /// The input, as text.
    #[arg(long)]
    input: Option<String>,
    /// The input, a JSON document read from a file (`-`: standard input); for MCP, the tool's
    /// arguments.
    #[arg(long, value_name = "FILE")]
    input_json: Option<PathBuf>,
    /// Preferred protocol: `A2A`, `MCP` or `ACP`.
    #[arg(long)]
    protocol: Option<String>,
    /// Longest the whole task may take, in seconds (1–3600; the registry's default: 60).
    #[arg(long)]
    task_timeout: Option<u32>,
    /// How long the registry waits for the result before answering that the task runs on
    /// (0–30 seconds; its default: 5).
    #[arg(long, value_name = "SECONDS")]
    wait: Option<u32>,
    /// Follow the task's log until it ends, instead of printing the task.
    #[arg(long)]
    follow: bool,
    /// Sent as `Idempotency-Key`: a retry with the same key returns the first task.
    #[arg(long)]
    idempotency_key: Option<String>,
}

#[derive(Args, Debug)]
pub struct List {
    /// Only tasks in this state (`working`, `completed`, `failed`, …).
    #[arg(long)]
    state: Option<String>,
    /// Only tasks sent to this agent.
    #[arg(long)]
    agent: Option<String>,
    /// Only tasks sent by capability.
    #[arg(long)]
    capability: Option<String>,
    /// Only tasks of this caller (an owner id; Admin).
    #[arg(long)]
    caller: Option<String>,
    /// Only tasks created since (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Tasks per page.
    #[arg(long)]
    page_size: Option<u32>,
    /// The `nextCursor` of the previous page.
    #[arg(long)]
    cursor: Option<String>,
}

/// States in which a task rests: its log ends there.
const RESTING: [&str; 5] = ["completed", "failed", "canceled", "rejected", "input_required"];

pub async fn run(client: Client, command: TasksCommand) -> Result<(), CliError> {
    match command {
        TasksCommand::Send(send) => self::send(&client, send).await,
        TasksCommand::Get { id } => {
            let reply = client.send(client.request(Method::GET, client.url(&["tasks", &id], &[]))).await?;
            client.print(&reply, task);
            Ok(())
        }
        TasksCommand::List(list) => {
            let mut query: Vec<(&str, String)> = Vec::new();
            for (name, value) in [
                ("state", &list.state),
                ("agentId", &list.agent),
                ("capability", &list.capability),
                ("caller", &list.caller),
                ("since", &list.since),
                ("cursor", &list.cursor),
            ] {
                query.extend(value.clone().map(|v| (name, v)));
            }
            query.extend(list.page_size.map(|n| ("pageSize", n.to_string())));
            let reply = client.send(client.request(Method::GET, client.url(&["tasks"], &query))).await?;
            client.print(&reply, task_page);
            Ok(())
        }
        TasksCommand::Follow { id } => follow(&client, &id).await,
        TasksCommand::Cancel { id } => {
            let url = client.url(&["tasks", &id, "cancel"], &[]);
            let reply = client.send(client.request(Method::POST, url)).await?;
            client.print(&reply, task);
            Ok(())
        }
    }
}

async fn send(client: &Client, send: Send) -> Result<(), CliError> {
    let mut body = Map::new();
    for (name, value) in
        [("capability", &send.capability), ("agentId", &send.agent), ("tool", &send.tool), ("protocol", &send.protocol)]
    {
        if let Some(value) = value {
            body.insert(name.into(), value.clone().into());
        }
    }
    let input = match (&send.input, &send.input_json) {
        (Some(text), _) => Value::String(text.clone()),
        (None, Some(path)) => read_json(path)?,
        (None, None) => return Err(CliError::Usage("give --input or --input-json".into())),
    };
    body.insert("input".into(), input);
    if let Some(timeout) = send.task_timeout {
        body.insert("timeoutSeconds".into(), timeout.into());
    }
    if let Some(wait) = send.wait {
        body.insert("waitSeconds".into(), wait.into());
    }
    // The registry holds the answer for up to `waitSeconds` (30 at most): the request may take
    // that long on top of the usual bound.
    let held = Duration::from_secs(u64::from(send.wait.unwrap_or(5).min(30)));
    let mut request =
        client.request(Method::POST, client.url(&["tasks"], &[])).json(&body).timeout(client.timeout + held);
    if let Some(key) = &send.idempotency_key {
        request = request.header("idempotency-key", key);
    }
    let reply = client.send(request).await?;
    let id = table::cell(&reply.body, "id");
    if send.follow {
        if client.output == Output::Table {
            println!("task {id}");
        }
        return follow(client, &id).await;
    }
    client.print(&reply, task);
    let state = table::cell(&reply.body, "state");
    if !RESTING.contains(&state.as_str()) {
        eprintln!("the task runs on: `agent-registry tasks follow {id}`");
        return Ok(());
    }
    ended(&state)
}

fn ended(state: &str) -> Result<(), CliError> {
    if state == "completed" { Ok(()) } else { Err(CliError::TaskNotCompleted(state.to_owned())) }
}

/// Reconnections after the log's stream broke, before giving up.
const RECONNECTS: u32 = 5;

/// Prints the task's events until the one it rests on; the exit code follows its final state.
async fn follow(client: &Client, id: &str) -> Result<(), CliError> {
    let url = client.url(&["tasks", id, "events"], &[]);
    let mut last: Option<String> = None;
    let mut final_state: Option<String> = None;
    let mut failures = 0;
    loop {
        let mut request = client.stream_request(url.clone());
        if let Some(last) = &last {
            request = request.header("last-event-id", last);
        }
        let outcome = read_log(client, request, &mut last, &mut final_state).await;
        match outcome {
            Ok(()) => break,
            Err(e @ CliError::Unreachable { .. }) if last.is_some() && failures < RECONNECTS => {
                failures += 1;
                e.report();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e),
        }
    }
    match final_state {
        Some(state) => ended(&state),
        None => {
            // The stream ended without a resting event (the task rested before `Last-Event-ID`).
            let reply = client.send(client.request(Method::GET, client.url(&["tasks", id], &[]))).await?;
            ended(&table::cell(&reply.body, "state"))
        }
    }
}

async fn read_log(
    client: &Client,
    request: reqwest::RequestBuilder,
    last: &mut Option<String>,
    final_state: &mut Option<String>,
) -> Result<(), CliError> {
    let mut reader = Reader::new(client.open(request).await?);
    loop {
        let event = match reader.next().await {
            Ok(Some(event)) => event,
            Ok(None) => return Ok(()),
            Err(SseError::Transport(e)) => return Err(client.unreachable(&e)),
            Err(e) => return Err(CliError::Failed(e.to_string())),
        };
        let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
        if event.event == "error" {
            // The stream was open already when the registry could no longer read the log.
            let detail = format!("{}: {}", table::cell(&data, "code"), table::cell(&data, "detail"));
            return Err(CliError::Failed(format!("the log cannot be read: {detail}")));
        }
        if event.id.is_some() {
            last.clone_from(&event.id);
        }
        if RESTING.contains(&event.event.as_str()) {
            *final_state = Some(event.event.clone());
        }
        match client.output {
            Output::Json => println!("{}", event.data),
            Output::Table => println!("{:>4}  {:<14} {}", table::cell(&data, "seq"), event.event, details(&data)),
        }
    }
}

/// What an event says beyond its sequence number, kind and time.
fn details(event: &Value) -> String {
    let Some(fields) = event.as_object() else { return String::new() };
    if let Some(output) = fields.get("output") {
        return table::text(output);
    }
    let rest: Vec<String> = fields
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "seq" | "type" | "at"))
        .map(|(k, v)| format!("{k}={}", table::text(v)))
        .collect();
    rest.join(" ")
}

fn task(body: &Value) {
    let error = match &body["error"] {
        Value::Null => String::new(),
        e => format!("{}: {}", table::cell(e, "code"), table::cell(e, "detail")),
    };
    table::fields(&[
        ("id", table::cell(body, "id")),
        ("state", table::cell(body, "state")),
        ("agent", table::cell(body, "agentId")),
        ("protocol", table::cell(body, "protocol")),
        ("output", table::cell(body, "output")),
        ("error", error),
        ("created", table::cell(body, "createdAt")),
        ("finished", table::cell(body, "finishedAt")),
    ]);
}

fn task_page(body: &Value) {
    let items = body["items"].as_array().map(Vec::as_slice).unwrap_or_default();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|t| ["id", "state", "protocol", "agentId", "capability", "createdAt"].map(|k| table::cell(t, k)).to_vec())
        .collect();
    table::print(&["ID", "STATE", "PROTOCOL", "AGENT", "CAPABILITY", "CREATED"], &rows);
    if let Some(cursor) = body["nextCursor"].as_str() {
        println!("next page: --cursor {cursor}");
    }
}
