//! `keys issue|list|get|revoke`, `bootstrap`, `events` (the audit trail) and `status`.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::client::{CliError, Client};
use super::table;

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Issue a key (Admin); its secret is shown once.
    Issue(Issue),
    /// List keys without their secrets (Admin).
    List {
        /// Only keys of this owner.
        #[arg(long)]
        owner: Option<String>,
        /// Only active (`true`) or only revoked and expired (`false`) keys.
        #[arg(long)]
        active: Option<bool>,
    },
    /// One key (Admin, or the key itself).
    Get {
        /// The key's id.
        id: String,
    },
    /// Revoke a key (Admin, or the key itself).
    Revoke {
        /// The key's id.
        id: String,
        /// Revoke even the last active Admin key.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Args, Debug)]
pub struct Issue {
    /// Whose agents the key manages (Agent), or who holds it (Admin).
    #[arg(long)]
    owner: String,
    /// `Admin` or `Agent`.
    #[arg(long)]
    scope: String,
    /// What the key is for.
    #[arg(long, default_value = "")]
    description: String,
    /// When the key stops working (RFC 3339); never when absent.
    #[arg(long)]
    expires_at: Option<String>,
}

#[derive(Args, Debug)]
pub struct Bootstrap {
    /// The registry's bootstrap token (`--bootstrap-token` of the service).
    #[arg(long, env = "AGENT_REGISTRY_BOOTSTRAP_TOKEN", hide_env_values = true)]
    token: String,
    /// Owner id of the Admin key (`admin` when absent).
    #[arg(long)]
    owner: Option<String>,
}

#[derive(Args, Debug)]
pub struct Events {
    /// Only events of this agent (`GET /agents/{id}/events`: its owner may read them too).
    #[arg(long)]
    agent: Option<String>,
    /// Only this actor (`key:<id>`, `jwt:<sub>`, `registry`).
    #[arg(long)]
    actor: Option<String>,
    /// Only this action (`registered`, `api_key_issued`, …).
    #[arg(long)]
    action: Option<String>,
    /// Not before this time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Not after this time (RFC 3339).
    #[arg(long)]
    until: Option<String>,
    /// Events per page (1–500).
    #[arg(long)]
    page_size: Option<u32>,
    /// The `nextCursor` of the previous page.
    #[arg(long)]
    cursor: Option<String>,
}

#[derive(Args, Debug)]
pub struct Status {}

pub async fn run(client: Client, command: KeysCommand) -> Result<(), CliError> {
    match command {
        KeysCommand::Issue(issue) => {
            let mut body = Map::new();
            body.insert("ownerId".into(), issue.owner.into());
            body.insert("scope".into(), issue.scope.into());
            body.insert("description".into(), issue.description.into());
            if let Some(at) = issue.expires_at {
                body.insert("expiresAt".into(), at.into());
            }
            let request = client.request(Method::POST, client.url(&["api-keys"], &[])).json(&body);
            let reply = client.send(request).await?;
            client.print(&reply, issued);
        }
        KeysCommand::List { owner, active } => {
            let mut query: Vec<(&str, String)> = owner.map(|o| ("owner", o)).into_iter().collect();
            query.extend(active.map(|a| ("active", a.to_string())));
            let reply = client.send(client.request(Method::GET, client.url(&["api-keys"], &query))).await?;
            client.print(&reply, |body| {
                let items = body["items"].as_array().map(Vec::as_slice).unwrap_or_default();
                table::print(&KEY_COLUMNS.map(|(h, _)| h), &items.iter().map(key_row).collect::<Vec<_>>());
            });
        }
        KeysCommand::Get { id } => {
            let reply = client.send(client.request(Method::GET, client.url(&["api-keys", &id], &[]))).await?;
            client.print(&reply, |body| table::print(&KEY_COLUMNS.map(|(h, _)| h), &[key_row(body)]));
        }
        KeysCommand::Revoke { id, force } => {
            let query: Vec<(&str, String)> = if force { vec![("force", "true".into())] } else { Vec::new() };
            let reply = client.send(client.request(Method::DELETE, client.url(&["api-keys", &id], &query))).await?;
            client.print(&reply, |_| println!("revoked {id}"));
        }
    }
    Ok(())
}

const KEY_COLUMNS: [(&str, &str); 7] = [
    ("ID", "id"),
    ("PREFIX", "prefix"),
    ("OWNER", "ownerId"),
    ("SCOPE", "scope"),
    ("ACTIVE", "active"),
    ("EXPIRES", "expiresAt"),
    ("DESCRIPTION", "description"),
];

fn key_row(key: &Value) -> Vec<String> {
    KEY_COLUMNS.iter().map(|(_, field)| table::cell(key, field)).collect()
}

/// An issued key: the secret first, since it is shown only once.
fn issued(body: &Value) {
    table::fields(&[
        ("key", table::cell(body, "key")),
        ("id", table::cell(body, "id")),
        ("owner", table::cell(body, "ownerId")),
        ("scope", table::cell(body, "scope")),
        ("expires", table::cell(body, "expiresAt")),
    ]);
    eprintln!("the key is shown only once: keep it now");
}

pub async fn bootstrap(client: Client, bootstrap: Bootstrap) -> Result<(), CliError> {
    let body = bootstrap.owner.map_or_else(|| json!({}), |owner| json!({"ownerId": owner}));
    let request = client
        .request(Method::POST, client.url(&["api-keys", "bootstrap"], &[]))
        .header("x-bootstrap-token", bootstrap.token)
        .json(&body);
    let reply = client.send(request).await?;
    client.print(&reply, issued);
    Ok(())
}

pub async fn events(client: Client, events: Events) -> Result<(), CliError> {
    let mut query: Vec<(&str, String)> = Vec::new();
    for (name, value) in [
        ("actor", &events.actor),
        ("action", &events.action),
        ("since", &events.since),
        ("until", &events.until),
        ("cursor", &events.cursor),
    ] {
        query.extend(value.clone().map(|v| (name, v)));
    }
    query.extend(events.page_size.map(|n| ("pageSize", n.to_string())));
    let url = match &events.agent {
        Some(agent) => client.url(&["agents", agent, "events"], &query),
        None => client.url(&["events"], &query),
    };
    let reply = client.send(client.request(Method::GET, url)).await?;
    client.print(&reply, |body| {
        let items = body["items"].as_array().map(Vec::as_slice).unwrap_or_default();
        let rows: Vec<Vec<String>> = items
            .iter()
            .map(|e| ["at", "action", "actor", "agentId", "summary"].map(|k| table::cell(e, k)).to_vec())
            .collect();
        table::print(&["TIME", "ACTION", "ACTOR", "AGENT", "SUMMARY"], &rows);
        if let Some(cursor) = body.get("nextCursor").filter(|c| !c.is_null()) {
            println!("next page: --cursor {}", table::text(cursor));
        }
    });
    Ok(())
}

pub async fn status(client: Client, _: Status) -> Result<(), CliError> {
    let reply = client.send(client.request(Method::GET, client.url(&["status"], &[]))).await?;
    client.print(&reply, table::flat);
    Ok(())
}
