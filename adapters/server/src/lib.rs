//! The agent registry service: configuration, wiring of the ports to their adapters, the HTTP
//! API, background upkeep and graceful shutdown.
#![forbid(unsafe_code)]

pub mod config;
pub mod http;

use std::sync::Arc;
use std::time::Duration;

use agent_registry_core::Registry;
use agent_registry_core::clock::{Clock, SystemClock};
use agent_registry_core::memory::InProcessLiveness;
use agent_registry_core::ports::{AgentStore, LivenessStore};
use agent_registry_liveness_redis::RedisLiveness;
use agent_registry_store_postgres::PostgresStore;
use agent_registry_store_sqlite::SqliteStore;
use tokio::net::TcpListener;

pub use config::{Cli, Command, Config};
pub use http::{AppState, router};

/// Errors that stop the service from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Registry(#[from] agent_registry_core::RegistryError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: std::net::SocketAddr, source: std::io::Error },
}

/// Opens the configured store, loads the registry and returns the app state.
pub async fn build(config: &Config, clock: Arc<dyn Clock>) -> Result<AppState, StartError> {
    let registry_config = config.registry().map_err(StartError::Config)?;
    let store = open_store(&config.database_url, config.auto_migrate).await?;
    let liveness: Arc<dyn LivenessStore> = match &config.redis_url {
        Some(url) => Arc::new(RedisLiveness::connect(url, &config.redis_key_prefix).await?),
        None => {
            if !config.database_url.starts_with("sqlite:") {
                tracing::warn!("no --redis-url: liveness is kept in this process; run a single replica");
            }
            Arc::new(InProcessLiveness::new(store.clone()))
        }
    };
    let registry = Registry::open(store, liveness, clock, registry_config).await?;
    Ok(AppState { registry: Arc::new(registry), public_url: config.public_url().into() })
}

/// The store a database URL names. SQLite is created and migrated at start (the embedded
/// default needs no setup); PostgreSQL is migrated by `migrate` or `--auto-migrate`.
async fn open_store(url: &str, auto_migrate: bool) -> Result<Arc<dyn AgentStore>, StartError> {
    match url.split(':').next().unwrap_or_default() {
        "sqlite" => Ok(Arc::new(SqliteStore::open(url).await?)),
        "postgres" | "postgresql" => {
            let store = PostgresStore::connect(url).await?;
            if auto_migrate {
                store.migrate().await?;
            } else if store.pending_migrations().await? > 0 {
                return Err(StartError::Config(
                    "the PostgreSQL schema is not up to date: run `agent-registry migrate` or start with --auto-migrate"
                        .into(),
                ));
            }
            Ok(Arc::new(store))
        }
        other => Err(StartError::Config(format!(
            "unsupported --database-url scheme `{other}`: use sqlite://PATH or postgres://..."
        ))),
    }
}

/// Applies migrations and reports how many the database has.
pub async fn migrate(config: &Config) -> Result<usize, StartError> {
    match config.database_url.split(':').next().unwrap_or_default() {
        "postgres" | "postgresql" => Ok(PostgresStore::connect(&config.database_url).await?.migrate().await?),
        "sqlite" => Ok(SqliteStore::migrate(&config.database_url).await?),
        _ => open_store(&config.database_url, false).await.map(|_| 0),
    }
}

/// Runs eviction and liveness persistence every `interval` until the task is dropped.
pub fn spawn_maintenance(registry: Arc<Registry>, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match registry.maintain().await {
                Ok(0) => {}
                Ok(evicted) => tracing::info!(evicted, "evicted stale endpoints"),
                Err(e) => {
                    tracing::warn!(error = %e, code = e.code(), "maintenance failed; will retry")
                }
            }
        }
    })
}

/// Serves until SIGINT or SIGTERM, then drains requests (up to the grace period) and writes
/// pending liveness to the database.
pub async fn serve(config: Config) -> Result<(), StartError> {
    let started = std::time::Instant::now();
    let state = build(&config, Arc::new(SystemClock)).await?;
    let listener =
        TcpListener::bind(config.listen).await.map_err(|source| StartError::Listen { addr: config.listen, source })?;
    let addr = listener.local_addr().map_err(|source| StartError::Listen { addr: config.listen, source })?;
    let registry = state.registry.clone();
    let maintenance = spawn_maintenance(registry.clone(), Duration::from_millis(config.maintenance_interval_ms));
    tracing::info!(
        %addr,
        agents = registry.agent_count(),
        startup_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        database = %redact(&config.database_url),
        "agent registry listening"
    );
    let (stopping_tx, mut stopping) = tokio::sync::watch::channel(false);
    let server = axum::serve(listener, router(state)).with_graceful_shutdown(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: draining in-flight requests");
        let _ = stopping_tx.send(true);
    });
    let grace = Duration::from_secs(config.shutdown_grace_seconds);
    tokio::select! {
        result = server.into_future() => result.map_err(|source| StartError::Listen { addr, source })?,
        _ = async { let _ = stopping.wait_for(|s| *s).await; tokio::time::sleep(grace).await } => {
            tracing::warn!(?grace, "grace period over; dropping remaining connections");
        }
    }
    maintenance.abort();
    if let Err(e) = registry.flush().await {
        tracing::warn!(error = %e, "could not write liveness at shutdown");
    }
    tracing::info!("agent registry stopped");
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        () = terminate => {},
    }
}

/// A database URL without its password, for logs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}
