//! The command-line client: subcommands of `agent-registry` that call a running registry over its
//! HTTP API like any other client (never its database). Tables for people, `--output json` for
//! scripts (the API's JSON as it came). Each topic has its file; handlers stay thin: build the
//! request, send it, render the answer.

mod agents;
mod backup;
pub mod check;
mod client;
mod keys;
mod sse;
mod table;
mod tasks;
mod watch;

use clap::{Args, Subcommand, ValueEnum};

pub use client::{CliError, Client};

/// Exit codes of the client commands (documented in docs/cli.md).
pub mod exit {
    /// Anything else: a file that cannot be read, an answer that is not what the API sends.
    pub const FAILURE: u8 = 1;
    /// A usage error (clap's code as well): a bad flag or argument, an invalid URL.
    pub const USAGE: u8 = 2;
    /// The registry could not be reached, or did not answer in time.
    pub const UNREACHABLE: u8 = 3;
    /// The registry refused the request (4xx).
    pub const CLIENT_ERROR: u8 = 4;
    /// The registry failed (5xx).
    pub const SERVER_ERROR: u8 = 5;
    /// `tasks send|follow`: the task ended other than `completed`.
    pub const TASK_NOT_COMPLETED: u8 = 6;
}

/// How answers are printed.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Aligned columns for people.
    Table,
    /// The API's JSON, as it came (one document per line for streams).
    Json,
}

/// Where the registry is and who calls it; on every client command.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Client options")]
pub struct ClientOptions {
    /// Base URL of the registry.
    #[arg(long, global = true, env = "AGENT_REGISTRY_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,

    /// API key sent as `X-Api-Key`.
    #[arg(long, global = true, env = "AGENT_REGISTRY_KEY", hide_env_values = true)]
    pub key: Option<String>,

    /// Output format.
    #[arg(long, short = 'o', global = true, env = "AGENT_REGISTRY_OUTPUT", value_enum, default_value = "table")]
    pub output: Output,

    /// Longest a request may take, in seconds (connecting included); streams (`watch`,
    /// `tasks follow`) only bound the connection and a silence of twice this or 60 s.
    #[arg(long, global = true, env = "AGENT_REGISTRY_TIMEOUT_SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
}

/// A client command with subcommands of its own.
#[derive(Args, Debug)]
pub struct Group<T: Subcommand> {
    #[command(flatten)]
    pub client: ClientOptions,
    #[command(subcommand)]
    pub command: T,
}

/// A client command with arguments.
#[derive(Args, Debug)]
pub struct Call<T: Args> {
    // First: the client options' help heading would otherwise cover the command's own.
    #[command(flatten)]
    pub args: T,
    #[command(flatten)]
    pub client: ClientOptions,
}

/// The commands that talk to a running registry.
#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// List, read, register and deregister agents.
    Agents(Group<agents::AgentsCommand>),
    /// Find live agents by capability, tag, protocol, transport or words.
    Discover(Call<agents::Discover>),
    /// Heartbeat a Persistent endpoint, or all of an agent's (optionally every N seconds).
    Heartbeat(Call<agents::Heartbeat>),
    /// Renew an Ephemeral endpoint's lease.
    Renew(Call<agents::Renew>),
    /// Follow every change live (`GET /watch`), resuming after a dropped connection.
    Watch(Call<watch::Watch>),
    /// Send tasks to live agents through the gateway and follow them.
    Tasks(Group<tasks::TasksCommand>),
    /// Issue, list and revoke API keys.
    Keys(Group<keys::KeysCommand>),
    /// Exchange the bootstrap token for the first Admin key.
    Bootstrap(Call<keys::Bootstrap>),
    /// The audit trail, newest first.
    Events(Call<keys::Events>),
    /// What the registry holds and keeps (Admin).
    Status(Call<keys::Status>),
    /// Save a consistent copy of a running registry's embedded (SQLite) database (Admin).
    Backup(Call<backup::Backup>),
    /// Print a shell completion script (`agent-registry completions bash > …`).
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

/// Runs a client command; the exit code says how it went (see [`exit`]).
pub async fn run(command: ClientCommand) -> u8 {
    let result = match command {
        ClientCommand::Agents(g) => with(&g.client, |c| agents::run(c, g.command)).await,
        ClientCommand::Discover(call) => with(&call.client, |c| agents::discover(c, call.args)).await,
        ClientCommand::Heartbeat(call) => with(&call.client, |c| agents::heartbeat(c, call.args)).await,
        ClientCommand::Renew(call) => with(&call.client, |c| agents::renew(c, call.args)).await,
        ClientCommand::Watch(call) => with(&call.client, |c| watch::run(c, call.args)).await,
        ClientCommand::Tasks(g) => with(&g.client, |c| tasks::run(c, g.command)).await,
        ClientCommand::Keys(g) => with(&g.client, |c| keys::run(c, g.command)).await,
        ClientCommand::Bootstrap(call) => with(&call.client, |c| keys::bootstrap(c, call.args)).await,
        ClientCommand::Events(call) => with(&call.client, |c| keys::events(c, call.args)).await,
        ClientCommand::Status(call) => with(&call.client, |c| keys::status(c, call.args)).await,
        ClientCommand::Backup(call) => with(&call.client, |c| backup::run(c, call.args)).await,
        ClientCommand::Completions { shell } => {
            let mut command = crate::config::Cli::clap_command();
            clap_complete::generate(shell, &mut command, "agent-registry", &mut std::io::stdout());
            Ok(())
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            e.report();
            e.exit_code()
        }
    }
}

async fn with<F, Fut>(options: &ClientOptions, command: F) -> Result<(), CliError>
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = Result<(), CliError>>,
{
    command(Client::new(options)?).await
}

/// Which top-level commands `--help` lists under which topic.
const TOPICS: &[(&str, &[&str])] = &[
    ("Service", &["serve", "migrate", "check-config"]),
    ("Agents", &["agents", "discover", "heartbeat", "renew", "watch"]),
    ("Tasks (the gateway)", &["tasks"]),
    ("Access", &["keys", "bootstrap"]),
    ("Operations", &["events", "status", "backup", "completions"]),
];

/// The top-level help with the commands grouped by topic (clap lists them in one block).
pub fn group_help(command: clap::Command) -> clap::Command {
    let about = |name: &str| {
        command.find_subcommand(name).and_then(|c| c.get_about()).map(|a| a.to_string()).unwrap_or_default()
    };
    let listed: Vec<&str> = TOPICS.iter().flat_map(|(_, names)| names.iter().copied()).collect();
    let others: Vec<&str> =
        command.get_subcommands().map(clap::Command::get_name).filter(|n| !listed.contains(n)).collect();
    let width = listed.iter().chain(&others).map(|n| n.len()).max().unwrap_or(0);
    let mut text = String::new();
    let topics = TOPICS.iter().copied().chain((!others.is_empty()).then_some(("Other", others.as_slice())));
    for (topic, names) in topics {
        text.push_str(&format!("{topic}:\n"));
        for name in names {
            text.push_str(&format!("  {name:width$}  {}\n", about(name)));
        }
        text.push('\n');
    }
    // Braces would be read as template tags.
    let text = text.replace('{', "(").replace('}', ")");
    let template =
        format!("{{about-with-newline}}\n{{usage-heading}} {{usage}}\n\n{text}Options:\n{{options}}{{after-help}}");
    command.help_template(template)
}
