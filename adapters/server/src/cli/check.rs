//! `check-config`: the service's flags validated as `serve` validates them, then its database and
//! Redis reached with short timeouts, without serving and without changing anything (the SQLite
//! file is not opened: opening creates and migrates it). Brokers (NATS, AMQP) are not contacted.

use std::time::Duration;

use agent_registry_core::redact::url_credentials;
use agent_registry_liveness_redis::RedisLiveness;
use agent_registry_store_postgres::PostgresStore;

use crate::Config;

/// Longest each backend is given to answer.
const REACH: Duration = Duration::from_secs(5);

/// Why the configuration cannot serve, with the exit code to leave with.
pub struct Problem {
    pub message: String,
    pub code: u8,
}

fn usage(message: String) -> Problem {
    Problem { message, code: super::exit::USAGE }
}

fn unreachable(message: String) -> Problem {
    Problem { message, code: super::exit::UNREACHABLE }
}

/// Checks `config`, printing what was checked; the first problem found ends the check.
pub async fn run(config: &Config) -> Result<(), Problem> {
    config.registry().map_err(usage)?;
    config.connection_limits().map_err(usage)?;
    println!("ok  flags");
    database(config).await?;
    if let Some(url) = &config.redis_url {
        let shown = url_credentials(url);
        match tokio::time::timeout(REACH, RedisLiveness::connect(url, &config.redis_key_prefix)).await {
            Err(_) => return Err(unreachable(format!("Redis at {shown} did not answer within {} s", REACH.as_secs()))),
            Ok(Err(e)) => return Err(unreachable(format!("Redis at {shown}: {e}"))),
            Ok(Ok(_)) => println!("ok  Redis {shown}"),
        }
    }
    Ok(())
}

async fn database(config: &Config) -> Result<(), Problem> {
    let url = config.database_url.as_str();
    let shown = url_credentials(url);
    match url.split(':').next().unwrap_or_default() {
        "sqlite" => {
            let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
            let path = std::path::Path::new(path.split('?').next().unwrap_or_default());
            if path.is_file() {
                println!("ok  SQLite file {} (not opened)", path.display());
                return Ok(());
            }
            if path.exists() {
                return Err(usage(format!("{} exists but is not a file", path.display())));
            }
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
            if !parent.is_dir() {
                return Err(usage(format!("the folder of the SQLite file, {}, does not exist", parent.display())));
            }
            println!("ok  SQLite file {} (created at start)", path.display());
            Ok(())
        }
        "postgres" | "postgresql" => {
            let reached = tokio::time::timeout(REACH, async {
                let store = PostgresStore::connect(url, REACH, REACH).await?;
                store.pending_migrations().await
            })
            .await;
            let pending = match reached {
                Err(_) => {
                    return Err(unreachable(format!(
                        "PostgreSQL at {shown} did not answer within {} s",
                        REACH.as_secs()
                    )));
                }
                Ok(Err(e)) => return Err(unreachable(format!("PostgreSQL at {shown}: {e}"))),
                Ok(Ok(pending)) => pending,
            };
            if pending > 0 && !config.auto_migrate {
                return Err(usage(format!(
                    "PostgreSQL at {shown} has {pending} pending migrations: run `agent-registry migrate` or add --auto-migrate"
                )));
            }
            println!("ok  PostgreSQL {shown} ({pending} migrations pending)");
            Ok(())
        }
        other => {
            Err(usage(format!("unsupported --database-url scheme `{other}`: use sqlite://PATH or postgres://...")))
        }
    }
}
