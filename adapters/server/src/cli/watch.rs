//! `watch`: follows `GET /watch`, one line per change (and, with `--include-tasks`, per task
//! step), and after a dropped connection reconnects with `Last-Event-ID`, so no change is missed
//! or repeated.

use std::time::Duration;

use clap::Args;
use serde_json::Value;

use super::client::{CliError, Client};
use super::sse::Reader;
use super::{Output, table};

#[derive(Args, Debug)]
pub struct Watch {
    /// Start after this revision (the `id` of the last event seen); default: from now.
    #[arg(long, value_name = "REVISION")]
    since: Option<u64>,
    /// Only changes of agents with this capability (a comma list: any of them).
    #[arg(long)]
    capability: Option<String>,
    /// Only changes of endpoints of this protocol (a comma list).
    #[arg(long)]
    protocol: Option<String>,
    /// Only changes of this agent (a comma list).
    #[arg(long)]
    agent_id: Option<String>,
    /// Only these kinds: `registered`, `updated`, `expired`, … (a comma list).
    #[arg(long)]
    kind: Option<String>,
    /// Also every step of the tasks the key may read (`task_created`, …, `task_completed`).
    #[arg(long)]
    include_tasks: bool,
}

/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub async fn run(client: Client, watch: Watch) -> Result<(), CliError> {
    let mut query: Vec<(&str, String)> = Vec::new();
    for (name, value) in [
        ("capability", &watch.capability),
        ("protocol", &watch.protocol),
        ("agentId", &watch.agent_id),
        ("kind", &watch.kind),
    ] {
        query.extend(value.clone().map(|v| (name, v)));
    }
    if watch.include_tasks {
        query.push(("include", "tasks".to_owned()));
    }
    let url = client.url(&["watch"], &query);
    let mut last = watch.since.map(|s| s.to_string());
    let mut backoff = Duration::from_secs(1);
    let mut connected_once = false;
    loop {
        let mut request = client.stream_request(url.clone());
        if let Some(last) = &last {
            request = request.header("last-event-id", last);
        }
        let mut connected = false;
        let outcome = tokio::select! {
            outcome = follow(&client, request, &mut last, &mut connected) => outcome,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        if connected {
            // A connection that worked starts the back-off afresh.
            (connected_once, backoff) = (true, Duration::from_secs(1));
        }
        match outcome {
            // A refusal (bad filter, bad revision) will not change by retrying.
            Err(e @ CliError::Api { status, .. }) if status.is_client_error() => return Err(e),
            // The first connection failing is most likely a wrong --url: say so at once.
            Err(e) if !connected_once => return Err(e),
            Err(e) => e.report(),
            Ok(()) => eprintln!("the stream ended; reconnecting"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Reads one connection's events until it ends.
async fn follow(
    client: &Client,
    request: reqwest::RequestBuilder,
    last: &mut Option<String>,
    connected: &mut bool,
) -> Result<(), CliError> {
    let response = client.open(request).await?;
    *connected = true;
    eprintln!("watching {} (after revision {})", client.url(&["watch"], &[]), last.as_deref().unwrap_or("now"));
    let mut reader = Reader::new(response);
    loop {
        let event = match reader.next().await {
            Ok(Some(event)) => event,
            Ok(None) => return Ok(()),
            Err(super::sse::SseError::Transport(e)) => return Err(client.unreachable(&e)),
            Err(e) => return Err(CliError::Failed(e.to_string())),
        };
        if event.event == "shutdown" {
            // Not a change: the replica is stopping, and the stream ends next.
            eprintln!("the registry is shutting down");
            continue;
        }
        if event.id.is_some() {
            last.clone_from(&event.id);
        }
        match client.output {
            Output::Json => println!("{}", event.data),
            Output::Table => line(&event),
        }
    }
}

fn line(event: &super::sse::Event) {
    let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
    let id = event.id.as_deref().unwrap_or("-");
    if event.event == "reset" {
        println!("{id}  reset  {}: re-list, then follow from here", table::cell(&data, "reason"));
        return;
    }
    if let Some(step) = event.event.strip_prefix("task_") {
        let detail = match step {
            "completed" => table::cell(&data, "output"),
            "failed" => table::cell(&data["error"], "detail"),
            _ => String::new(),
        };
        println!("{id}  task {step:<13} {}  {detail}", table::cell(&data, "taskId"));
        return;
    }
    let endpoint = data["endpointId"].as_str().map(|e| format!(" endpoint {e}")).unwrap_or_default();
    println!(
        "{id}  {:<18} {}  {}{endpoint}",
        event.event,
        table::cell(&data, "agentId"),
        table::cell(&data["agent"], "name")
    );
}
