//! `agent-registry`: `serve` (default) runs the service; `migrate` prepares the database;
//! `check-config` validates the service's flags; the other commands are a client of a running
//! registry (`agent-registry --help`).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use agent_registry::{Cli, Command, MigrateArgs, telemetry};

/// jemalloc: the index is many small long-lived allocations and responses are large
/// short-lived buffers; glibc's allocator fragmented under that mix (RSS grew by a fifth under
/// load at 100,000 agents).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::from_process();
    let config = match cli.command {
        None => cli.config,
        Some(Command::Serve(config)) => config,
        Some(Command::Migrate(args)) => {
            let _telemetry = telemetry::init(&args.log, args.log_format, None);
            return migrate(&args).await;
        }
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
    // Kept to the end of `main`: dropping it exports the last spans.
    let _telemetry = telemetry::init(&config.log, config.log_format, config.otlp_endpoint.as_ref());
    // Give memory freed after a burst back to the system in the background, not only when the
    // allocator happens to be called again.
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!(error = %e, "jemalloc background purging is unavailable");
    }
    match agent_registry::serve(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "agent registry failed");
            ExitCode::FAILURE
        }
    }
}

/// `migrate`: logs each migration it applied, or that there was none to apply.
async fn migrate(args: &MigrateArgs) -> ExitCode {
    match agent_registry::migrate(args).await {
        Ok(migrated) => {
            for (version, description) in &migrated.applied {
                tracing::info!(version, description = %description, "applied migration");
            }
            let (version, description) = migrated.newest.unwrap_or((0, "none".into()));
            if migrated.applied.is_empty() {
                tracing::info!(version, description = %description, "the database schema is already up to date");
            } else {
                tracing::info!(
                    applied = migrated.applied.len(),
                    version,
                    description = %description,
                    "the database schema is migrated"
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "migration failed");
            ExitCode::FAILURE
        }
    }
}
