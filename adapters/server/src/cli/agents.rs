//! `agents list|get|register|deregister`, `discover`, `heartbeat`, `renew`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{CliError, Client, read_json};
use super::table;

#[derive(Subcommand, Debug)]
pub enum AgentsCommand {
    /// List agents (`GET /agents`: all of them, live or not, unless `--live-only`).
    List(List),
    /// One agent with each endpoint's live state.
    Get {
        /// The agent's id.
        id: String,
    },
    /// Register an agent from a file: the registry's JSON or a protocol's own document.
    Register(Register),
    /// Deregister an agent.
    Deregister {
        /// The agent's id.
        id: String,
    },
}

/// The discovery filters (the "Discovery" table of docs/api.md); the registry checks the values.
#[derive(Args, Debug)]
pub struct Filters {
    /// Exact capability name (case-insensitive).
    #[arg(long)]
    capability: Option<String>,
    /// Capability name prefix.
    #[arg(long)]
    capability_prefix: Option<String>,
    /// A tag every match has (repeat for several).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// A `key:value` label every match has (repeat for several).
    #[arg(long = "label")]
    labels: Vec<String>,
    /// `A2A`, `MCP`, `ACP` or `Custom` (a comma list: any of them).
    #[arg(long)]
    protocol: Option<String>,
    /// `Http`, `Amqp` or `AzureServiceBus` (a comma list: any of them).
    #[arg(long)]
    transport: Option<String>,
    /// Words that start words of the name, description, tags or capabilities.
    #[arg(short = 'q', long = "query")]
    q: Option<String>,
    /// Results per page (1–100).
    #[arg(long)]
    page_size: Option<u32>,
    /// 1-based page number.
    #[arg(long)]
    page: Option<u32>,
    /// The `nextCursor` of the previous page.
    #[arg(long)]
    cursor: Option<String>,
}

impl Filters {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        let mut one = |name: &'static str, value: &Option<String>| {
            if let Some(value) = value {
                query.push((name, value.clone()));
            }
        };
        one("capability", &self.capability);
        one("capabilityPrefix", &self.capability_prefix);
        one("protocol", &self.protocol);
        one("transport", &self.transport);
        one("q", &self.q);
        one("cursor", &self.cursor);
        query.extend(self.tags.iter().map(|t| ("tag", t.clone())));
        query.extend(self.labels.iter().map(|l| ("label", l.clone())));
        query.extend(self.page_size.map(|n| ("pageSize", n.to_string())));
        query.extend(self.page.map(|n| ("page", n.to_string())));
        query
    }
}

#[derive(Args, Debug)]
pub struct List {
    #[command(flatten)]
    filters: Filters,
    /// Only agents of this owner.
    #[arg(long)]
    owner: Option<String>,
    /// Only agents with a live endpoint (and only those endpoints).
    #[arg(long)]
    live_only: bool,
}

#[derive(Args, Debug)]
pub struct Discover {
    #[command(flatten)]
    filters: Filters,
    /// Not live agents too (`liveOnly=false`).
    #[arg(long)]
    all: bool,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("document").required(true)
    .args(["file", "a2a_card", "mcp_server_json", "acp_manifest"])))]
pub struct Register {
    /// The registry's own JSON (`POST /agents`; `-` reads standard input).
    #[arg(long)]
    file: Option<PathBuf>,
    /// An A2A agent card (`POST /a2a/agents`).
    #[arg(long)]
    a2a_card: Option<PathBuf>,
    /// An MCP Registry `server.json` or MCP Server Card (`POST /mcp/servers`).
    #[arg(long)]
    mcp_server_json: Option<PathBuf>,
    /// An ACP agent manifest (`POST /acp/agents`), with `--endpoint-url`.
    #[arg(long, requires = "endpoint_url")]
    acp_manifest: Option<PathBuf>,
    /// The base URL of the ACP server that runs the manifest's agent.
    #[arg(long, requires = "acp_manifest")]
    endpoint_url: Option<String>,
    /// Sent as `Idempotency-Key`: a retry with the same key returns the first registration.
    #[arg(long)]
    idempotency_key: Option<String>,
}

#[derive(Args, Debug)]
pub struct Heartbeat {
    /// The agent's id.
    agent_id: String,
    /// One Persistent endpoint; all of the agent's when absent.
    endpoint_id: Option<String>,
    /// Keep beating every SECONDS until interrupted (Ctrl-C); outages are reported and retried.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    every: Option<u64>,
}

#[derive(Args, Debug)]
pub struct Renew {
    /// The agent's id.
    agent_id: String,
    /// The Ephemeral endpoint whose lease to renew.
    endpoint_id: String,
    /// Keep renewing every SECONDS until interrupted (Ctrl-C); outages are reported and retried.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    every: Option<u64>,
}

pub async fn run(client: Client, command: AgentsCommand) -> Result<(), CliError> {
    match command {
        AgentsCommand::List(list) => {
            let mut query = list.filters.query();
            query.extend(list.owner.map(|o| ("owner", o)));
            query.push(("liveOnly", list.live_only.to_string()));
            let reply = client.send(client.request(Method::GET, client.url(&["agents"], &query))).await?;
            client.print(&reply, agent_page);
        }
        AgentsCommand::Get { id } => {
            let reply = client.send(client.request(Method::GET, client.url(&["agents", &id], &[]))).await?;
            client.print(&reply, agent);
        }
        AgentsCommand::Register(register) => {
            let (path, body) = register_request(&register)?;
            let mut request = client.request(Method::POST, client.url(path, &[])).json(&body);
            if let Some(key) = &register.idempotency_key {
                request = request.header("idempotency-key", key);
            }
            let reply = client.send(request).await?;
            client.print(&reply, agent);
        }
        AgentsCommand::Deregister { id } => {
            let reply = client.send(client.request(Method::DELETE, client.url(&["agents", &id], &[]))).await?;
            client.print(&reply, |_| println!("deregistered {id}"));
        }
    }
    Ok(())
}

/// The route and body of a registration.
fn register_request(register: &Register) -> Result<(&'static [&'static str], Value), CliError> {
    if let Some(path) = &register.file {
        return Ok((&["agents"], read_json(path)?));
    }
    if let Some(path) = &register.a2a_card {
        return Ok((&["a2a", "agents"], read_json(path)?));
    }
    if let Some(path) = &register.mcp_server_json {
        return Ok((&["mcp", "servers"], read_json(path)?));
    }
    match (&register.acp_manifest, &register.endpoint_url) {
        (Some(path), Some(url)) => Ok((&["acp", "agents"], json!({"manifest": read_json(path)?, "endpointUrl": url}))),
        _ => Err(CliError::Usage("give --file, --a2a-card, --mcp-server-json or --acp-manifest".into())),
    }
}

pub async fn discover(client: Client, discover: Discover) -> Result<(), CliError> {
    let mut query = discover.filters.query();
    if discover.all {
        query.push(("liveOnly", "false".into()));
    }
    let reply = client.send(client.request(Method::GET, client.url(&["discover", "agents"], &query))).await?;
    client.print(&reply, agent_page);
    Ok(())
}

pub async fn heartbeat(client: Client, beat: Heartbeat) -> Result<(), CliError> {
    let url = match &beat.endpoint_id {
        Some(eid) => client.url(&["agents", &beat.agent_id, "endpoints", eid, "heartbeat"], &[]),
        None => client.url(&["agents", &beat.agent_id, "heartbeat"], &[]),
    };
    repeat(&client, url, beat.every).await
}

pub async fn renew(client: Client, renew: Renew) -> Result<(), CliError> {
    let url = client.url(&["agents", &renew.agent_id, "endpoints", &renew.endpoint_id, "renew"], &[]);
    repeat(&client, url, renew.every).await
}

/// One call, or one every `every` seconds until Ctrl-C. While repeating, an outage (unreachable,
/// 5xx, 429) is reported and the next beat tries again: the agent must outlive a registry restart.
/// Any other refusal (the agent is gone, the key revoked) ends it, since retrying cannot help.
async fn repeat(client: &Client, url: url::Url, every: Option<u64>) -> Result<(), CliError> {
    let Some(every) = every else {
        let reply = client.send(client.request(Method::POST, url)).await?;
        client.print(&reply, liveness);
        return Ok(());
    };
    let mut ticks = tokio::time::interval(Duration::from_secs(every));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        match client.send(client.request(Method::POST, url.clone())).await {
            Ok(reply) => client.print(&reply, liveness),
            Err(e @ (CliError::Unreachable { .. } | CliError::Api { .. })) if transient(&e) => e.report(),
            Err(e) => return Err(e),
        }
    }
}

fn transient(e: &CliError) -> bool {
    match e {
        CliError::Unreachable { .. } => true,
        CliError::Api { status, .. } => status.is_server_error() || status.as_u16() == 429,
        _ => false,
    }
}

/// A heartbeat's or renewal's answer: one endpoint's liveness, or a list of them.
fn liveness(body: &Value) {
    let items = match body {
        Value::Array(items) => items.clone(),
        one => vec![one.clone()],
    };
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|e| {
            ["endpointId", "livenessModel", "isLive", "lastSeenAt", "expiresAt"].map(|k| table::cell(e, k)).to_vec()
        })
        .collect();
    table::print(&["ENDPOINT", "MODEL", "LIVE", "LAST SEEN", "EXPIRES"], &rows);
}

/// A page of agents, one line each.
pub fn agent_page(body: &Value) {
    let items = body["items"].as_array().map(Vec::as_slice).unwrap_or_default();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|a| {
            let endpoints = a["endpoints"].as_array().map(Vec::as_slice).unwrap_or_default();
            let live = endpoints.iter().filter(|e| e["isLive"] == true).count();
            vec![
                table::cell(a, "id"),
                table::cell(a, "name"),
                names(&a["capabilities"]),
                format!("{live}/{}", endpoints.len()),
                table::cell(a, "ownerId"),
            ]
        })
        .collect();
    table::print(&["ID", "NAME", "CAPABILITIES", "LIVE/ENDPOINTS", "OWNER"], &rows);
    let total = table::cell(body, "totalCount");
    println!("{} of {total} (page {} of {})", rows.len(), table::cell(body, "page"), table::cell(body, "totalPages"));
    if let Some(cursor) = body["nextCursor"].as_str() {
        println!("next page: --cursor {cursor}");
    }
}

/// One agent: its fields, then its endpoints.
fn agent(body: &Value) {
    table::fields(&[
        ("id", table::cell(body, "id")),
        ("name", table::cell(body, "name")),
        ("description", table::cell(body, "description")),
        ("version", table::cell(body, "version")),
        ("owner", table::cell(body, "ownerId")),
        ("tags", list(&body["tags"])),
        ("capabilities", names(&body["capabilities"])),
        ("revision", table::cell(body, "revision")),
        ("updated", table::cell(body, "updatedAt")),
    ]);
    let endpoints = body["endpoints"].as_array().map(Vec::as_slice).unwrap_or_default();
    if endpoints.is_empty() {
        return;
    }
    println!();
    let rows: Vec<Vec<String>> = endpoints
        .iter()
        .map(|e| {
            ["id", "name", "protocol", "transport", "livenessModel", "isLive", "address"]
                .map(|k| table::cell(e, k))
                .to_vec()
        })
        .collect();
    table::print(&["ENDPOINT", "NAME", "PROTOCOL", "TRANSPORT", "LIVENESS", "LIVE", "ADDRESS"], &rows);
}

fn names(capabilities: &Value) -> String {
    let names = capabilities.as_array().map(Vec::as_slice).unwrap_or_default();
    names.iter().filter_map(|c| c["name"].as_str()).collect::<Vec<_>>().join(",")
}

fn list(values: &Value) -> String {
    let values = values.as_array().map(Vec::as_slice).unwrap_or_default();
    values.iter().map(table::text).collect::<Vec<_>>().join(",")
}
