//! The agent registry service: configuration, wiring of the ports to their adapters, the HTTP
//! API, background upkeep and graceful shutdown.
#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod connections;
pub mod http;
pub mod json;
pub mod lifecycle;
pub mod limits;
pub mod mcp_server;
pub mod metrics;
pub mod queues;
pub mod telemetry;

use std::sync::Arc;
use std::time::Duration;

use agent_registry_core::bounded::BoundedStore;
use agent_registry_core::clock::{Clock, SystemClock};
use agent_registry_core::memory::InProcessLiveness;
use agent_registry_core::metrics::MeteredLiveness;
use agent_registry_core::ports::{AgentStore, LivenessStore, Migrated};
use agent_registry_core::redact::url_credentials;
use agent_registry_core::task::TaskStore;
use agent_registry_core::task::store::BoundedTaskStore;
use agent_registry_core::{AgentRegistry, RegistryConfig};
use agent_registry_liveness_redis::RedisLiveness;
use agent_registry_publish::Publisher;
use agent_registry_store_postgres::PostgresStore;
use agent_registry_store_sqlite::SqliteStore;
use tokio::net::TcpListener;

pub use config::{Cli, Command, Config, MigrateArgs};
pub use http::{AppState, router};
use lifecycle::{Lifecycle, Phase};

/// Errors that stop the service from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Registry(#[from] agent_registry_core::RegistryError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("cannot build the HTTP client that fetches {what}: {source}")]
    HttpClient { what: &'static str, source: reqwest::Error },
}

/// Opens the configured store, loads the registry and returns the app state.
pub async fn build(config: &Config, clock: Arc<dyn Clock>) -> Result<AppState, StartError> {
    let registry_config = config.registry().map_err(StartError::Config)?;
    // Installed before anything records (the recorder is global to the process).
    let metrics = Arc::new(metrics::Exporter::new(config.metrics_listen.is_none()));
    let (store, tasks) = open_store(config).await?;
    let liveness: Arc<dyn LivenessStore> = match &config.redis_url {
        Some(url) => Arc::new(RedisLiveness::connect(url, &config.redis_key_prefix).await?),
        None => {
            if !config.database_url.starts_with("sqlite:") {
                tracing::warn!("no --redis-url: liveness is kept in this process; run a single replica");
            }
            Arc::new(InProcessLiveness::new(store.clone()))
        }
    };
    let liveness: Arc<dyn LivenessStore> = Arc::new(MeteredLiveness::new(liveness));
    let registry_config_privacy = registry_config.privacy.clone();
    let shared_store = store.change_signal().is_some();
    let registry = Arc::new(AgentRegistry::open(store, liveness, clock.clone(), registry_config).await?);
    let invokers: Arc<dyn agent_registry_core::task::Invoker> = Arc::new(config.invokers());
    let gateway = agent_registry_core::task::Gateway::open(
        registry.clone(),
        tasks,
        invokers,
        clock,
        config.gateway(shared_store),
    )
    .await?;
    let bootstrap =
        config.bootstrap_token.as_ref().map(|t| http::keys::Bootstrap::new(&t.0, config.allow_repeated_bootstrap));
    let rates = limits::Rates {
        discovery_per_address: config.rate_limit_discovery,
        management_per_key: config.rate_limit_key,
        management_per_address: config.rate_limit_address,
    };
    let limits = limits::Limits::new(rates, config.trusted_proxies.clone());
    let secret = config.jwt_hs256_secret.as_ref().map(|s| s.0.as_str());
    let oidc = config.oidc_issuer.as_ref().map(url::Url::as_str);
    let jwt = if secret.is_some() || oidc.is_some() {
        let verifier =
            http::jwt::JwtVerifier::new(secret, oidc, config.jwt_issuer.as_deref(), config.jwt_audience.as_deref())
                .map_err(|source| StartError::HttpClient { what: "the OIDC issuer's keys", source })?
                .with_owner_prefix(&config.jwt_owner_prefix);
        Some(Arc::new(verifier))
    } else {
        None
    };
    let cors_origins = config
        .cors_allow_origins
        .iter()
        .map(|o| o.trim().parse().map_err(|_| StartError::Config(format!("`{o}` is not a valid CORS origin"))))
        .collect::<Result<_, _>>()?;
    let card_keys = match &config.a2a_signing_keys {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| StartError::Config(format!("--a2a-signing-keys {}: {e}", path.display())))?;
            serde_json::from_str(&text).map_err(|e| {
                StartError::Config(format!("--a2a-signing-keys {} is not a JWK Set: {e}", path.display()))
            })?
        }
        None => jsonwebtoken::jwk::JwkSet { keys: Vec::new() },
    };
    let protocols =
        http::documents::Protocols::new(config.document_liveness_model, card_keys, config.a2a_trusted_jku.clone())
            .map_err(|source| StartError::HttpClient { what: "A2A card signing keys (`jku`)", source })?;
    Ok(AppState::new(http::Context {
        registry,
        gateway,
        public_url: config.public_url().into(),
        public_url_configured: config.public_url.is_some(),
        protocols: Arc::new(protocols),
        mcp: Arc::new(config.mcp_settings()),
        watch: Arc::new(http::watch::Shared::new(config.max_watchers)),
        queues: Arc::new(queues::QueueFacts::new(config.amqp_url.clone())),
        bootstrap,
        limits,
        jwt,
        cors_origins,
        privacy: Arc::new(registry_config_privacy),
        lifecycle: Lifecycle::default(),
        metrics,
        started: std::time::Instant::now(),
    }))
}

/// The store `--database-url` names, each call bounded by `--store-timeout-ms`. SQLite is
/// created and migrated at start (the embedded default needs no setup); PostgreSQL is migrated
/// by `migrate` or `--auto-migrate`.
async fn open_store(config: &Config) -> Result<(Arc<dyn AgentStore>, Arc<dyn TaskStore>), StartError> {
    let bounds = config.store_bounds();
    let url = config.database_url.as_str();
    let (store, tasks): (Arc<dyn AgentStore>, Arc<dyn TaskStore>) = match url.split(':').next().unwrap_or_default() {
        "sqlite" => {
            let store = Arc::new(SqliteStore::open_with(url, &config.sqlite_settings()).await?);
            (store.clone(), store)
        }
        "postgres" | "postgresql" => {
            let store = PostgresStore::connect(url, bounds.request, bounds.upkeep).await?;
            if config.auto_migrate {
                store.migrate().await?;
            } else if store.pending_migrations().await? > 0 {
                return Err(StartError::Config(
                    "the PostgreSQL schema is not up to date: run `agent-registry migrate` or start with --auto-migrate"
                        .into(),
                ));
            }
            let store = Arc::new(store);
            (store.clone(), store)
        }
        other => {
            return Err(StartError::Config(format!(
                "unsupported --database-url scheme `{other}`: use sqlite://PATH or postgres://..."
            )));
        }
    };
    Ok((Arc::new(BoundedStore::new(store, bounds)), Arc::new(BoundedTaskStore::new(tasks, bounds))))
}

/// Applies pending migrations and says which; a schema a newer binary migrated is refused. A
/// SQLite database is left whole in its main file.
pub async fn migrate(args: &MigrateArgs) -> Result<Migrated, StartError> {
    let url = args.database_url.as_str();
    let wait = Duration::from_millis(args.store_timeout_ms);
    match url.split(':').next().unwrap_or_default() {
        "postgres" | "postgresql" => {
            // Migrations may rewrite large tables: only the wait for a connection is bounded.
            let statement = Duration::from_secs(3_600);
            Ok(PostgresStore::connect(url, wait, statement).await?.migrate().await?)
        }
        "sqlite" => {
            let settings = agent_registry_store_sqlite::SqliteSettings { wait, ..Default::default() };
            Ok(SqliteStore::migrate(url, &settings).await?)
        }
        other => Err(StartError::Config(format!(
            "unsupported --database-url scheme `{other}`: use sqlite://PATH or postgres://..."
        ))),
    }
}

/// Runs eviction and liveness persistence every `interval` until the task is dropped.
pub fn spawn_maintenance(registry: Arc<AgentRegistry>, interval: Duration) -> tokio::task::JoinHandle<()> {
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

/// Keeps this replica in step with the others on shared backends: follows the store's change
/// log (woken by its notifications, and every `--follow-interval-ms` in case one was missed) and
/// reads back heartbeats other replicas recorded in a shared liveness store. The tasks end when
/// the returned handles are dropped.
pub fn spawn_followers(registry: &Arc<AgentRegistry>, config: &RegistryConfig) -> Vec<AbortOnDrop> {
    let mut tasks = Vec::new();
    if let Some(signal) = registry.change_signal() {
        let (registry, interval) = (registry.clone(), config.follow_interval);
        tasks.push(AbortOnDrop(tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                tokio::select! {
                    () = signal.announced() => {
                        // This replica's own writes are announced too; they are applied already.
                        if !signal.take_keys_changed() && signal.latest() <= registry.applied_revision() {
                            continue;
                        }
                    },
                    _ = tick.tick() => {},
                }
                failing = report(failing, registry.follow().await, "following the change log");
            }
        })));
    }
    let (registry, interval) = (registry.clone(), config.liveness_sync);
    tasks.push(AbortOnDrop(tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tick.tick().await;
            failing = report(failing, registry.sync_liveness().await, "reading heartbeats from the liveness store");
        }
    })));
    tasks
}

/// Logs when a recurring task starts or stops failing (not on every attempt); returns whether
/// it is failing now.
fn report<T>(was_failing: bool, result: agent_registry_core::Result<T>, what: &str) -> bool {
    match (&result, was_failing) {
        (Err(e), false) => tracing::warn!(error = %e, code = e.code(), "{what} failed; retrying"),
        (Ok(_), true) => tracing::info!("{what} works again"),
        _ => {}
    }
    result.is_err()
}

/// Starts publishing changes to the brokers `--nats-url` and `--amqp-publish-url` name (`None`
/// when neither is set). With `--redis-url`, one replica publishes to each, from where the last
/// one stopped; without, this process publishes on its own.
/// With `--publish-task-events`, the events of the tasks `gateway` commits go there too.
pub fn spawn_publisher(
    registry: &Arc<AgentRegistry>,
    gateway: &Arc<agent_registry_core::task::Gateway>,
    config: &Config,
) -> Result<Option<Publisher>, StartError> {
    use agent_registry_publish::{AmqpSettings, NatsSettings, PublishSettings, TaskFeed};
    let task_events = config.publish_task_events.then(|| {
        let gateway = gateway.clone();
        Arc::new(move || gateway.feed()) as TaskFeed
    });
    let settings = PublishSettings {
        nats: config.nats_url.as_ref().map(|url| NatsSettings {
            url: url.clone(),
            subject_prefix: config.nats_subject_prefix.clone(),
            kv_bucket: config.nats_kv_bucket.clone(),
        }),
        amqp: config
            .amqp_publish_url
            .as_ref()
            .map(|url| AmqpSettings { url: url.clone(), exchange: config.amqp_exchange.clone() }),
        redis: config.redis_url.as_ref().map(|url| (url.clone(), config.redis_key_prefix.clone())),
        task_events,
    };
    let publisher = Publisher::spawn(registry.clone(), settings).map_err(StartError::Config)?;
    if publisher.is_some() {
        tracing::info!(
            nats = config.nats_url.as_deref().map(url_credentials),
            amqp = config.amqp_publish_url.as_deref().map(url_credentials),
            shared = config.redis_url.is_some(),
            tasks = config.publish_task_events,
            "publishing changes"
        );
    }
    Ok(publisher)
}

/// A background task that stops when its handle is dropped.
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Serves until SIGINT or SIGTERM; then answers `/readyz` 503 while serving on for
/// `--shutdown-delay-seconds`, closes the listener, ends watch streams, drains requests (up to
/// the grace period), writes pending liveness to the database and closes it. While a backend is
/// unreachable at start, it keeps retrying and answers probes as not ready instead of exiting.
pub async fn serve(config: Config) -> Result<(), StartError> {
    let started = std::time::Instant::now();
    let limits = config.connection_limits().map_err(StartError::Config)?;
    let listen = |source| StartError::Listen { addr: config.listen, source };
    let socket = std::net::TcpListener::bind(config.listen).map_err(listen)?;
    socket.set_nonblocking(true).map_err(listen)?;
    let addr = socket.local_addr().map_err(listen)?;
    let stop = stop_on_signal();
    let Some(state) = open_when_reachable(&config, &socket, limits, stop.clone()).await? else {
        tracing::info!("stopped before the backends became reachable");
        return Ok(());
    };
    let listener = TcpListener::from_std(socket).map_err(listen)?;
    let registry = state.registry.clone();
    let lifecycle = state.lifecycle.clone();
    let _stopping = AbortOnDrop(spawn_stopping(stop, lifecycle.clone(), config.shutdown_delay_seconds));
    let registry_config = config.registry().map_err(StartError::Config)?;
    let _followers = spawn_followers(&registry, &registry_config);
    let publisher = spawn_publisher(&registry, &state.gateway, &config)?;
    let maintenance =
        AbortOnDrop(spawn_maintenance(registry.clone(), Duration::from_millis(config.maintenance_interval_ms)));
    let gateway = state.gateway.clone();
    let _task_upkeep = AbortOnDrop(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tick.tick().await;
            failing = report(failing, gateway.upkeep().await, "task upkeep");
        }
    }));
    let rates = state.limits.clone();
    let _forget_idle_clients = AbortOnDrop(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            rates.forget_idle();
        }
    }));
    tracing::info!(
        %addr,
        agents = registry.agent_count(),
        startup_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        database = %url_credentials(&config.database_url),
        max_connections = limits.max_connections,
        "agent registry listening"
    );
    let service_state = state.clone();
    let service = router(state);
    let _dotnet = match config.dotnet_listen {
        Some(addr) => Some(AbortOnDrop(serve_dotnet(addr, service.clone(), limits, lifecycle.clone())?)),
        None => None,
    };
    let _metrics = match config.metrics_listen {
        Some(addr) => {
            Some(AbortOnDrop(metrics::serve(addr, service_state, limits, lifecycle.reached(Phase::Closing))?))
        }
        None => None,
    };
    let server = connections::serve(listener, service, limits, lifecycle.reached(Phase::Closing));
    let grace = Duration::from_secs(config.shutdown_grace_seconds);
    tokio::select! {
        () = server => {},
        () = async { lifecycle.reached(Phase::Closing).await; tokio::time::sleep(grace).await } => {
            tracing::warn!(?grace, "grace period over; dropping remaining connections");
        }
    }
    drop(maintenance);
    if let Some(publisher) = publisher {
        // Finish the batch in flight and hand the lease to another replica.
        publisher.stop(Duration::from_secs(3)).await;
    }
    if let Err(e) = registry.close().await {
        tracing::warn!(error = %e, "could not write liveness at shutdown");
    }
    tracing::info!("agent registry stopped");
    Ok(())
}

/// On the stop signal: drains for `delay_seconds` (not ready, still serving), then closes.
fn spawn_stopping(
    stop: tokio::sync::watch::Receiver<bool>,
    lifecycle: Lifecycle,
    delay_seconds: u64,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        stopped(stop).await;
        if delay_seconds > 0 {
            tracing::info!(delay_seconds, "shutting down: /readyz answers 503; serving on until the delay is over");
            lifecycle.enter(Phase::Draining);
            tokio::time::sleep(Duration::from_secs(delay_seconds)).await;
        }
        tracing::info!("shutting down: the listener is closed; ending watch streams and draining in-flight requests");
        lifecycle.enter(Phase::Closing);
    })
}

/// Serves the .NET surface at the root of `addr` (`--dotnet-listen`) until stopped.
fn serve_dotnet(
    addr: std::net::SocketAddr,
    service: axum::Router,
    limits: connections::ConnectionLimits,
    lifecycle: Lifecycle,
) -> Result<tokio::task::JoinHandle<()>, StartError> {
    let listen = |source| StartError::Listen { addr, source };
    let socket = std::net::TcpListener::bind(addr).map_err(listen)?;
    socket.set_nonblocking(true).map_err(listen)?;
    let listener = TcpListener::from_std(socket).map_err(listen)?;
    tracing::info!(%addr, "the .NET registry's wire format is served at the root of this address too");
    let app = http::dotnet::at_root(service);
    Ok(tokio::spawn(async move { connections::serve(listener, app, limits, lifecycle.reached(Phase::Closing)).await }))
}

/// Opens the registry, retrying while a backend is unreachable; meanwhile the listener answers
/// `/healthz` and reports not-ready. `None` when asked to stop before it could open.
async fn open_when_reachable(
    config: &Config,
    socket: &std::net::TcpListener,
    limits: connections::ConnectionLimits,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Option<AppState>, StartError> {
    let listen = |source| StartError::Listen { addr: config.listen, source };
    let probes = TcpListener::from_std(socket.try_clone().map_err(listen)?).map_err(listen)?;
    let waiting = http::system::Waiting::default();
    let (opened, opened_rx) = tokio::sync::oneshot::channel::<()>();
    let answering =
        tokio::spawn(connections::serve(probes, http::system::starting_router(waiting.clone()), limits, async move {
            let _ = opened_rx.await;
        }));
    let mut delay = Duration::from_millis(250);
    let outcome = loop {
        match build(config, Arc::new(SystemClock)).await {
            Ok(state) => break Ok(Some(state)),
            Err(StartError::Registry(e)) if e.kind() == agent_registry_core::ErrorKind::Unavailable => {
                tracing::warn!(error = %e, code = e.code(), retry_in = ?delay, "a backend is unreachable; not ready yet");
                waiting.failed(&e);
                tokio::select! {
                    () = tokio::time::sleep(delay) => {},
                    _ = stop.wait_for(|s| *s) => break Ok(None),
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => break Err(e),
        }
    };
    let _ = opened.send(());
    let _ = answering.await;
    outcome
}

/// Becomes true on SIGINT or SIGTERM.
fn stop_on_signal() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = tx.send(true);
    });
    rx
}

async fn stopped(mut stop: tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
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
