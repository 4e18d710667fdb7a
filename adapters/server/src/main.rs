//! `agent-registry`: `serve` (default) runs the service; `migrate` prepares the database;
//! `check-config` validates the service's flags; the other commands are a client of a running
//! registry (`agent-registry --help`).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use agent_registry::config::LogFormat;
use agent_registry::{Cli, Command, Config};
use tracing_subscriber::EnvFilter;

/// jemalloc: the index is many small long-lived allocations and responses are large
/// short-lived buffers; glibc's allocator fragmented under that mix (RSS grew by a fifth under
/// load at 100,000 agents).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::from_process();
    let (config, migrate) = match cli.command {
        None => (cli.config, false),
        Some(Command::Serve(config)) => (config, false),
        Some(Command::Migrate(config)) => (config, true),
        Some(Command::CheckConfig(config)) => {
            return match agent_registry::cli::check::run(&config).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(problem) => {
                    eprintln!("error: {}", problem.message);
                    ExitCode::from(problem.code)
                }
            };
        }
        // A client prints its answers and errors itself; the service's log would only add noise.
        Some(Command::Client(command)) => return ExitCode::from(agent_registry::cli::run(command).await),
    };
    init_logging(&config);
    // Give memory freed after a burst back to the system in the background, not only when the
    // allocator happens to be called again.
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!(error = %e, "jemalloc background purging is unavailable");
    }
    let result = if migrate {
        agent_registry::migrate(&config).await.map(|applied| {
            tracing::info!(applied, "database is migrated");
        })
    } else {
        agent_registry::serve(config).await
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "agent registry failed");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &Config) {
    let filter = EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal, never in files or log collectors.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let subscriber = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi);
    match config.log_format {
        LogFormat::Json => subscriber.json().init(),
        LogFormat::Text => subscriber.init(),
    }
}
