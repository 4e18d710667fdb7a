//! All configuration, in one place: command-line flags, each with an `AGENT_REGISTRY_*`
//! environment variable and a documented default. Parsed and validated once at start-up.

use std::net::SocketAddr;
use std::time::Duration;

use agent_registry_core::RegistryConfig;
use agent_registry_core::liveness::LivenessPolicy;
use agent_registry_core::model::LivenessModel;
use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

/// `--version`: the crate's version and the commit it was built from (build.rs).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("AGENT_REGISTRY_COMMIT"), ")");

#[derive(Parser, Debug)]
#[command(name = "agent-registry", version = VERSION, about = "Registry and discovery gateway for AI agents",
          after_help = "Run with no command to serve; `agent-registry serve --help` lists the service's flags.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The service's flags also work without `serve` (`agent-registry --listen …`), as they always
    /// have; they are hidden from the top-level help so that it shows the commands.
    #[command(flatten)]
    pub config: Config,
}

impl Cli {
    /// Parses the command line and the environment. A variable set to the empty string counts as
    /// unset: an emptied Kubernetes Secret leaves `AGENT_REGISTRY_BOOTSTRAP_TOKEN=` behind.
    pub fn from_process() -> Self {
        let mut command = Self::clap_command();
        // A client command never uses the service's settings: a variable meant for the service
        // (a short token, a malformed address) must not make `agent-registry status` fail.
        let first = std::env::args_os().nth(1).and_then(|a| a.into_string().ok()).unwrap_or_default();
        if command.find_subcommand(&first).is_some() && !matches!(first.as_str(), "serve" | "migrate" | "check-config")
        {
            command = command.mut_args(|arg| arg.env(None));
        }
        let matches = command.get_matches();
        let cli = Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        // Before a command, service flags would be parsed and then silently not used.
        if let Some((name, _)) = matches.subcommand() {
            let early = Self::command().get_arguments().find_map(|arg| {
                let given = matches.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine);
                given.then(|| arg.get_long().unwrap_or_default().to_owned())
            });
            if let Some(flag) = early {
                let message = if matches!(name, "serve" | "migrate" | "check-config") {
                    format!("--{flag} belongs after the command: `agent-registry {name} --{flag} …`")
                } else {
                    format!("--{flag} is a flag of the service (`serve`), not of `{name}`")
                };
                Self::clap_command().error(clap::error::ErrorKind::ArgumentConflict, message).exit();
            }
        }
        cli
    }

    /// The command line as clap sees it, with empty variables unset, service flags hidden at the
    /// top level and commands grouped by topic in the help.
    pub fn clap_command() -> clap::Command {
        let unset_empty = |arg: clap::Arg| {
            let empty = arg.get_env().and_then(std::env::var_os).is_some_and(|value| value.is_empty());
            if empty { arg.env(None) } else { arg }
        };
        let command = Self::command().mut_args(|arg| unset_empty(arg).hide(true));
        let names: Vec<String> = command.get_subcommands().map(|c| c.get_name().to_owned()).collect();
        let command =
            names.iter().fold(command, |command, name| command.mut_subcommand(name, |sub| sub.mut_args(unset_empty)));
        crate::cli::group_help(command)
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP service (the default).
    Serve(Config),
    /// Create the database if needed, apply pending migrations, say which, and exit.
    Migrate(MigrateArgs),
    /// Validate the service's flags and reach its database and Redis, without serving.
    CheckConfig(Config),
    #[command(flatten)]
    Client(crate::cli::ClientCommand),
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// SQLite's `synchronous` setting (`--sqlite-synchronous`).
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqliteSynchronous {
    /// A commit is synced at the next checkpoint: a power loss or OS crash can lose the last
    /// commits (a crash of the process alone loses nothing).
    Normal,
    /// Every commit is synced before it is acknowledged; one disk sync per write.
    Full,
}

/// The flags of `migrate`: where the database is and how to log.
#[derive(Args, Debug, Clone)]
pub struct MigrateArgs {
    /// Database URL: `sqlite://PATH` (created if missing) or `postgres://USER@HOST/DB`.
    #[arg(long, env = "AGENT_REGISTRY_DATABASE_URL", default_value = "sqlite://agent-registry.db")]
    pub database_url: String,

    /// Longest to wait for a database connection or lock, in milliseconds (migrations
    /// themselves may run for up to an hour).
    #[arg(long, env = "AGENT_REGISTRY_STORE_TIMEOUT_MS", default_value_t = 2_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub store_timeout_ms: u64,

    /// Log output format.
    #[arg(long, env = "AGENT_REGISTRY_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Log filter, in `tracing` env-filter syntax.
    #[arg(long, env = "AGENT_REGISTRY_LOG", default_value = "info")]
    pub log: String,
}

#[derive(Args, Debug, Clone)]
pub struct Config {
    /// Address and port to listen on.
    #[arg(long, env = "AGENT_REGISTRY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// A second address serving the .NET registry's wire format (the `/dotnet` routes) at its
    /// root, for .NET C# clients, which drop a base path.
    #[arg(long, env = "AGENT_REGISTRY_DOTNET_LISTEN")]
    pub dotnet_listen: Option<SocketAddr>,

    /// Serve Prometheus metrics (`GET /metrics`) on this address only, instead of on the main
    /// listener (where anyone who reaches the API may read them).
    #[arg(long, env = "AGENT_REGISTRY_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Export traces over OTLP/HTTP (protobuf) to this collector base URL (`/v1/traces` is
    /// appended, as for `OTEL_EXPORTER_OTLP_ENDPOINT`); none: no traces.
    #[arg(long, env = "AGENT_REGISTRY_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<url::Url>,

    /// Database URL: `sqlite://PATH` (the embedded default, created if missing) or
    /// `postgres://USER@HOST/DB`.
    #[arg(long, env = "AGENT_REGISTRY_DATABASE_URL", default_value = "sqlite://agent-registry.db")]
    pub database_url: String,

    /// Longest a request waits for one database call (a pooled connection, a lock, a
    /// statement), in milliseconds: past it the request is answered `503 storage_unavailable`
    /// with `Retry-After`, whatever the database does.
    #[arg(long, env = "AGENT_REGISTRY_STORE_TIMEOUT_MS", default_value_t = 2_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub store_timeout_ms: u64,

    /// Agents one owner may keep registered, unless the Admin who issued its key set another
    /// quota (Admin callers have none).
    #[arg(long, env = "AGENT_REGISTRY_QUOTA_MAX_AGENTS", default_value_t = 1_000)]
    pub quota_max_agents: u32,

    /// MiB of documents (each agent's JSON, its protocol document included) one owner may keep
    /// registered, unless its key says otherwise.
    #[arg(long, env = "AGENT_REGISTRY_QUOTA_MAX_DOCUMENT_MIB", default_value_t = 16)]
    pub quota_max_document_mib: u64,

    /// Largest size of the SQLite database file, in MiB (0: as large as the disk allows). Writes
    /// that do not fit are refused with `507 insufficient_storage`, as on a full disk.
    #[arg(long, env = "AGENT_REGISTRY_SQLITE_MAX_SIZE_MIB", default_value_t = 0)]
    pub sqlite_max_size_mib: u64,

    /// When a SQLite commit is on the disk: `normal` syncs at checkpoints (a power loss can lose
    /// the last commits, never corrupt the file), `full` before every acknowledgement.
    #[arg(long, env = "AGENT_REGISTRY_SQLITE_SYNCHRONOUS", value_enum, default_value = "normal")]
    pub sqlite_synchronous: SqliteSynchronous,

    /// Redis URL (`redis://HOST:PORT`) for liveness; without it, liveness is kept in the process
    /// and written to the database in batches.
    #[arg(long, env = "AGENT_REGISTRY_REDIS_URL")]
    pub redis_url: Option<String>,

    /// Prefix of every Redis key the registry writes (several registries can share a Redis).
    #[arg(long, env = "AGENT_REGISTRY_REDIS_KEY_PREFIX", default_value = "agent-registry")]
    pub redis_key_prefix: String,

    /// Publish every change to this NATS server (`nats://HOST:PORT`): on subjects
    /// `<--nats-subject-prefix>.<kind>`, and each agent's document in a JetStream KV bucket.
    /// Off when unset.
    #[arg(long, env = "AGENT_REGISTRY_NATS_URL")]
    pub nats_url: Option<String>,

    /// Prefix of the NATS subjects changes are published on.
    #[arg(long, env = "AGENT_REGISTRY_NATS_SUBJECT_PREFIX", default_value = "registry.agent",
          value_parser = agent_registry_publish::parse_subject_prefix)]
    pub nats_subject_prefix: String,

    /// JetStream KV bucket that holds the current agent documents (key: agent id), created if
    /// missing.
    #[arg(long, env = "AGENT_REGISTRY_NATS_KV_BUCKET", default_value = "agent-registry",
          value_parser = agent_registry_publish::parse_kv_bucket)]
    pub nats_kv_bucket: String,

    /// Also publish the events of the gateway's tasks this process commits, to the same brokers:
    /// NATS subjects `<prefix>.task.<type>`, AMQP routing keys `registry.agent.task.<type>`.
    #[arg(long, env = "AGENT_REGISTRY_PUBLISH_TASK_EVENTS")]
    pub publish_task_events: bool,

    /// Publish every change to this AMQP broker (`amqp://USER:PASSWORD@HOST:PORT/VHOST`), on a
    /// durable topic exchange with routing key `registry.agent.<kind>`. Off when unset.
    #[arg(long, env = "AGENT_REGISTRY_AMQP_PUBLISH_URL", hide_env_values = true)]
    pub amqp_publish_url: Option<String>,

    /// The topic exchange changes are published to, declared durable if missing.
    #[arg(long, env = "AGENT_REGISTRY_AMQP_EXCHANGE", default_value = "agent-registry",
          value_parser = agent_registry_publish::parse_exchange)]
    pub amqp_exchange: String,

    /// The AMQP broker queue facts are read from (`GET /agents/{id}/endpoints/{eid}/queue`,
    /// `include=queue`): `amqp[s]://USER:PASSWORD@HOST:PORT/VHOST`. Only endpoints on this host
    /// and port are checked, with these credentials; other brokers are never contacted.
    #[arg(
        long,
        env = "AGENT_REGISTRY_AMQP_URL",
        hide_env_values = true,
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: crate::queues::BrokerUrl,

    /// Apply pending PostgreSQL migrations at start (SQLite is always migrated at start).
    #[arg(long, env = "AGENT_REGISTRY_AUTO_MIGRATE")]
    pub auto_migrate: bool,

    /// Public base URL of the registry (as clients reach it, e.g. behind a proxy); used for
    /// absolute links. Defaults to `http://<listen>`.
    #[arg(long, env = "AGENT_REGISTRY_PUBLIC_URL")]
    pub public_url: Option<url::Url>,

    /// Log output format.
    #[arg(long, env = "AGENT_REGISTRY_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Log filter, in `tracing` env-filter syntax.
    #[arg(long, env = "AGENT_REGISTRY_LOG", default_value = "info")]
    pub log: String,

    /// Lease of an Ephemeral endpoint when the registration gives no `ttlSeconds`.
    #[arg(long, env = "AGENT_REGISTRY_DEFAULT_TTL_SECONDS", default_value_t = 300)]
    pub default_ttl_seconds: u32,

    /// Heartbeat interval of a Persistent endpoint when the registration gives none.
    #[arg(long, env = "AGENT_REGISTRY_DEFAULT_HEARTBEAT_INTERVAL_SECONDS", default_value_t = 30)]
    pub default_heartbeat_interval_seconds: u32,

    /// Largest `ttlSeconds` accepted.
    #[arg(long, env = "AGENT_REGISTRY_MAX_TTL_SECONDS", default_value_t = 86_400)]
    pub max_ttl_seconds: u32,

    /// Largest `heartbeatIntervalSeconds` accepted.
    #[arg(long, env = "AGENT_REGISTRY_MAX_HEARTBEAT_INTERVAL_SECONDS", default_value_t = 3_600)]
    pub max_heartbeat_interval_seconds: u32,

    /// How long an expired Ephemeral endpoint stays listed (as not live) before eviction.
    #[arg(long, env = "AGENT_REGISTRY_EPHEMERAL_GRACE_SECONDS", default_value_t = 300)]
    pub ephemeral_grace_seconds: u32,

    /// Evict a Persistent endpoint after this many heartbeat intervals without a heartbeat.
    #[arg(long, env = "AGENT_REGISTRY_EVICT_AFTER_MISSED_HEARTBEATS", default_value_t = 3)]
    pub evict_after_missed_heartbeats: u32,

    /// How often eviction runs and liveness is written to the database, in milliseconds.
    #[arg(long, env = "AGENT_REGISTRY_MAINTENANCE_INTERVAL_MS", default_value_t = 1_000)]
    pub maintenance_interval_ms: u64,

    /// With a shared store (PostgreSQL), how often the change log is read even without a
    /// notification (a missed LISTEN/NOTIFY is repaired within this time), in milliseconds.
    #[arg(long, env = "AGENT_REGISTRY_FOLLOW_INTERVAL_MS", default_value_t = 1_000)]
    pub follow_interval_ms: u64,

    /// With Redis liveness, how often heartbeats received by other replicas are read back, in
    /// milliseconds.
    #[arg(long, env = "AGENT_REGISTRY_LIVENESS_SYNC_INTERVAL_MS", default_value_t = 250)]
    pub liveness_sync_interval_ms: u64,

    /// How long the change log keeps a change, in hours.
    #[arg(long, env = "AGENT_REGISTRY_CHANGE_RETENTION_HOURS", default_value_t = 168)]
    pub change_retention_hours: u32,

    /// How long a finished task and its execution log are kept, in hours.
    #[arg(long, env = "AGENT_REGISTRY_TASK_RETENTION_HOURS", default_value_t = 168)]
    pub task_retention_hours: u32,

    /// Addresses the gateway may send tasks to although the default policy refuses them
    /// (link-local and cloud-metadata ranges): CIDR blocks, addresses or host names,
    /// comma-separated.
    #[arg(long, env = "AGENT_REGISTRY_GATEWAY_ALLOW", value_delimiter = ',')]
    pub gateway_allow: Vec<agent_registry_invoke::Rule>,

    /// Addresses the gateway never sends tasks to (wins over `--gateway-allow`): CIDR blocks,
    /// addresses or host names, comma-separated.
    #[arg(long, env = "AGENT_REGISTRY_GATEWAY_DENY", value_delimiter = ',')]
    pub gateway_deny: Vec<agent_registry_invoke::Rule>,

    /// Prefix of the reply queue the gateway declares on the `--amqp-url` broker to receive
    /// queue workers' answers to tasks (one per process and vhost, exclusive, auto-delete).
    #[arg(long, global = true, env = "AGENT_REGISTRY_GATEWAY_AMQP_REPLY_PREFIX",
          default_value = agent_registry_invoke::amqp::DEFAULT_REPLY_PREFIX,
          value_parser = agent_registry_invoke::amqp::parse_reply_prefix)]
    pub gateway_amqp_reply_prefix: String,

    /// Endpoints the gateway tries at most for one task when they fail before accepting it.
    #[arg(long, env = "AGENT_REGISTRY_GATEWAY_MAX_ATTEMPTS", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=10))]
    pub gateway_max_attempts: u32,

    /// How long the audit trail keeps an event, in days.
    #[arg(long, env = "AGENT_REGISTRY_AUDIT_RETENTION_DAYS", default_value_t = 90)]
    pub audit_retention_days: u32,

    /// How long an `Idempotency-Key` is remembered, in hours.
    #[arg(long, env = "AGENT_REGISTRY_IDEMPOTENCY_RETENTION_HOURS", default_value_t = 24)]
    pub idempotency_retention_hours: u32,

    /// Secret that lets `POST /api-keys/bootstrap` issue the first Admin key (off when unset).
    #[arg(long, env = "AGENT_REGISTRY_BOOTSTRAP_TOKEN", hide_env_values = true)]
    pub bootstrap_token: Option<Secret>,

    /// Let the bootstrap token issue another Admin key even when one exists (to recover from
    /// lost keys).
    #[arg(long, env = "AGENT_REGISTRY_ALLOW_REPEATED_BOOTSTRAP")]
    pub allow_repeated_bootstrap: bool,

    /// Shared secret (32+ characters) of HS256 bearer tokens; without it, `Authorization:
    /// Bearer` is refused.
    #[arg(long, env = "AGENT_REGISTRY_JWT_HS256_SECRET", hide_env_values = true)]
    pub jwt_hs256_secret: Option<Secret>,

    /// OIDC issuer whose signing keys (JWKS, found through its
    /// `/.well-known/openid-configuration`) validate bearer tokens.
    #[arg(long, env = "AGENT_REGISTRY_OIDC_ISSUER")]
    pub oidc_issuer: Option<url::Url>,

    /// The `iss` bearer tokens must carry (default: the OIDC issuer, if any).
    #[arg(long, env = "AGENT_REGISTRY_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// The `aud` bearer tokens must carry.
    #[arg(long, env = "AGENT_REGISTRY_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Put before every bearer token's `sub` to make its owner id (e.g. `oidc:`), so that token
    /// subjects never share owner ids with API keys; empty: a token with `sub: kim` manages
    /// the agents of API keys of owner `kim`.
    #[arg(long, env = "AGENT_REGISTRY_JWT_OWNER_PREFIX", default_value = "")]
    pub jwt_owner_prefix: String,

    /// Leave `ownerId` out of what anonymous callers read (discovery, agent reads).
    #[arg(long, env = "AGENT_REGISTRY_HIDE_OWNER_FROM_ANONYMOUS")]
    pub hide_owner_from_anonymous: bool,

    /// Labels whose key starts with one of these (comma-separated, e.g. `internal.`) are private:
    /// anonymous callers neither see them nor filter by them.
    #[arg(long, env = "AGENT_REGISTRY_PRIVATE_LABEL_PREFIXES", value_delimiter = ',')]
    pub private_label_prefixes: Vec<String>,

    /// Browser origins allowed to call the API cross-origin (comma-separated, e.g.
    /// `https://console.example.com`); none by default.
    #[arg(long, env = "AGENT_REGISTRY_CORS_ALLOW_ORIGINS", value_delimiter = ',')]
    pub cors_allow_origins: Vec<String>,

    /// Discovery requests (GET /discover/agents, GET /agents) per second per client address,
    /// with bursts of twice that; 0 turns the limit off.
    #[arg(long, env = "AGENT_REGISTRY_RATE_LIMIT_DISCOVERY", default_value_t = 1_000)]
    pub rate_limit_discovery: u32,

    /// Management requests per second per API key (bursts of twice that); 0: no limit.
    #[arg(long, env = "AGENT_REGISTRY_RATE_LIMIT_KEY", default_value_t = 1_000)]
    pub rate_limit_key: u32,

    /// Management requests per second per client address, counted before credentials are
    /// checked (bursts of twice that); 0: no limit.
    #[arg(long, env = "AGENT_REGISTRY_RATE_LIMIT_ADDRESS", default_value_t = 2_000)]
    pub rate_limit_address: u32,

    /// Proxies whose `X-Forwarded-For` gives the client address: addresses or CIDR networks,
    /// comma-separated. Without them the connection's address is the client's.
    #[arg(long, env = "AGENT_REGISTRY_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_network)]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// Liveness model of the endpoints an A2A card, MCP server card or `server.json`, or ACP
    /// manifest registers, when the request names none (`liveness.livenessModel`).
    #[arg(long, env = "AGENT_REGISTRY_DOCUMENT_LIVENESS_MODEL", default_value = "Persistent")]
    pub document_liveness_model: LivenessModel,

    /// A JWK Set file with the keys A2A card signatures are verified against.
    #[arg(long, env = "AGENT_REGISTRY_A2A_SIGNING_KEYS")]
    pub a2a_signing_keys: Option<std::path::PathBuf>,

    /// URL prefixes (comma-separated) of `jku` key sets that may be fetched to verify A2A card
    /// signatures; a card's `jku` elsewhere is never fetched. Compared as parsed URLs: the same
    /// scheme, host and port, and a path under the prefix's segments (`..` resolved first).
    #[arg(long, env = "AGENT_REGISTRY_A2A_TRUSTED_JKU", value_delimiter = ',')]
    pub a2a_trusted_jku: Vec<crate::http::jku::TrustedPrefix>,

    /// Keep MCP sessions of 2025-era clients in this process (only with a single replica): they
    /// get a stream of `notifications/resources/list_changed`. Off: stateless, any replica
    /// answers any MCP request.
    #[arg(long, env = "AGENT_REGISTRY_MCP_SESSIONS")]
    pub mcp_sessions: bool,

    /// `Host` values the MCP endpoint accepts (DNS-rebinding protection), comma-separated;
    /// default: loopback names and the host of `--public-url`; `*`: any.
    #[arg(long, env = "AGENT_REGISTRY_MCP_ALLOWED_HOSTS", value_delimiter = ',')]
    pub mcp_allowed_hosts: Vec<String>,

    /// Browser `Origin` values the MCP endpoint accepts, comma-separated; default: any (browsers
    /// are also held back by CORS, which `/mcp` does not grant).
    #[arg(long, env = "AGENT_REGISTRY_MCP_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub mcp_allowed_origins: Vec<String>,

    /// Most `GET /watch` streams one replica serves at once; more are refused with 503.
    #[arg(long, env = "AGENT_REGISTRY_MAX_WATCHERS", default_value_t = 10_000)]
    pub max_watchers: usize,

    /// A request's head must arrive within this time of its connection opening or of the
    /// previous response on it, in milliseconds; slower connections are closed (slowloris).
    #[arg(long, env = "AGENT_REGISTRY_HTTP_HEADER_TIMEOUT_MS", default_value_t = 10_000)]
    pub http_header_timeout_ms: u64,

    /// A connection with no request in flight is closed after this many milliseconds.
    #[arg(long, env = "AGENT_REGISTRY_HTTP_KEEP_ALIVE_TIMEOUT_MS", default_value_t = 5_000)]
    pub http_keep_alive_timeout_ms: u64,

    /// Most connections open at once (default: the process's file-descriptor limit less a
    /// quarter, at least 64, for its other files). The last 8 serve only `/healthz` and
    /// `/readyz`; connections beyond the cap are closed at once.
    #[arg(long, env = "AGENT_REGISTRY_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// On SIGTERM, keep serving for this many seconds with `/readyz` answering 503 (so load
    /// balancers and Kubernetes stop routing here first), then close the listener and drain.
    #[arg(long, env = "AGENT_REGISTRY_SHUTDOWN_DELAY_SECONDS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub shutdown_delay_seconds: u64,

    /// Longest a graceful shutdown waits for in-flight requests once the listener is closed, in
    /// seconds (`/watch` streams end at once, with a `shutdown` event).
    #[arg(long, env = "AGENT_REGISTRY_SHUTDOWN_GRACE_SECONDS", default_value_t = 10)]
    pub shutdown_grace_seconds: u64,
}

impl Config {
    /// Parses flags from a list of arguments (the first is the program name); for tests.
    pub fn from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Cli::try_parse_from(args).map(|cli| match cli.command {
            Some(Command::Serve(config) | Command::CheckConfig(config)) => config,
            _ => cli.config,
        })
    }

    /// The use-case settings, checked for consistency.
    pub fn registry(&self) -> Result<RegistryConfig, String> {
        let liveness = LivenessPolicy {
            default_ttl_seconds: self.default_ttl_seconds,
            default_heartbeat_interval_seconds: self.default_heartbeat_interval_seconds,
            max_ttl_seconds: self.max_ttl_seconds,
            max_heartbeat_interval_seconds: self.max_heartbeat_interval_seconds,
            ephemeral_grace_seconds: self.ephemeral_grace_seconds,
            evict_after_missed_heartbeats: self.evict_after_missed_heartbeats,
            ..LivenessPolicy::default()
        };
        if !(liveness.min_ttl_seconds..=liveness.max_ttl_seconds).contains(&liveness.default_ttl_seconds) {
            return Err("--default-ttl-seconds must lie between 1 and --max-ttl-seconds".into());
        }
        if !(liveness.min_heartbeat_interval_seconds..=liveness.max_heartbeat_interval_seconds)
            .contains(&liveness.default_heartbeat_interval_seconds)
        {
            return Err(
                "--default-heartbeat-interval-seconds must lie between 1 and --max-heartbeat-interval-seconds".into()
            );
        }
        if liveness.evict_after_missed_heartbeats == 0 {
            return Err("--evict-after-missed-heartbeats must be at least 1".into());
        }
        for (value, flag) in [
            (self.maintenance_interval_ms, "--maintenance-interval-ms"),
            (self.follow_interval_ms, "--follow-interval-ms"),
            (self.liveness_sync_interval_ms, "--liveness-sync-interval-ms"),
        ] {
            if value == 0 {
                return Err(format!("{flag} must be at least 1"));
            }
        }
        Ok(RegistryConfig {
            liveness,
            idempotency_retention_secs: i64::from(self.idempotency_retention_hours) * 3600,
            change_retention_secs: i64::from(self.change_retention_hours) * 3600,
            audit_retention_secs: i64::from(self.audit_retention_days) * 86_400,
            liveness_sync: Duration::from_millis(self.liveness_sync_interval_ms),
            follow_interval: Duration::from_millis(self.follow_interval_ms),
            write_wait: Duration::from_millis(self.store_timeout_ms),
            quota: agent_registry_core::quota::Quota {
                max_agents: self.quota_max_agents,
                max_document_bytes: self.quota_max_document_mib.saturating_mul(1 << 20),
            },
            privacy: agent_registry_core::render::Privacy {
                hide_owner: self.hide_owner_from_anonymous,
                private_label_prefixes: self.private_label_prefixes.iter().filter(|p| !p.is_empty()).cloned().collect(),
            },
            // ACP names shown as labels are found through the label; an MCP server's name and
            // version have to be read from its document.
            legacy_claims: |agent| agent_registry_mcp::held_claim(agent).into_iter().collect(),
        })
    }

    /// The gateway's settings (`shared_store`: other replicas run tasks in the same store).
    pub fn gateway(&self, shared_store: bool) -> agent_registry_core::task::GatewayConfig {
        agent_registry_core::task::GatewayConfig {
            max_attempts: self.gateway_max_attempts,
            retention_secs: i64::from(self.task_retention_hours) * 3600,
            shared_store,
            ..Default::default()
        }
    }

    /// The gateway's outbound clients, behind the egress policy.
    pub fn invokers(&self) -> agent_registry_invoke::Invokers {
        agent_registry_invoke::Invokers {
            egress: agent_registry_invoke::EgressPolicy {
                allow: self.gateway_allow.clone(),
                deny: self.gateway_deny.clone(),
            },
            bounds: agent_registry_invoke::HttpBounds::default(),
            // Tasks to queues go to the `--amqp-url` broker only, as queue facts do.
            amqp: agent_registry_invoke::amqp::AmqpClient::new(self.amqp_url.url(), &self.gateway_amqp_reply_prefix)
                .map_err(|e| tracing::warn!(error = %e, "tasks to AMQP queues are not sent"))
                .ok()
                .map(std::sync::Arc::new),
        }
    }

    /// How long database calls may take.
    pub fn store_bounds(&self) -> agent_registry_core::bounded::StoreBounds {
        let request = Duration::from_millis(self.store_timeout_ms);
        agent_registry_core::bounded::StoreBounds { request, upkeep: (request * 15).max(Duration::from_secs(30)) }
    }

    /// How the SQLite file is used.
    pub fn sqlite_settings(&self) -> agent_registry_store_sqlite::SqliteSettings {
        agent_registry_store_sqlite::SqliteSettings {
            max_size_bytes: (self.sqlite_max_size_mib > 0).then(|| self.sqlite_max_size_mib.saturating_mul(1 << 20)),
            wait: Duration::from_millis(self.store_timeout_ms),
            synchronous: match self.sqlite_synchronous {
                SqliteSynchronous::Normal => agent_registry_store_sqlite::Synchronous::Normal,
                SqliteSynchronous::Full => agent_registry_store_sqlite::Synchronous::Full,
            },
        }
    }

    /// How connections are limited, checked for consistency.
    pub fn connection_limits(&self) -> Result<crate::connections::ConnectionLimits, String> {
        for (value, flag) in [
            (self.http_header_timeout_ms, "--http-header-timeout-ms"),
            (self.http_keep_alive_timeout_ms, "--http-keep-alive-timeout-ms"),
        ] {
            if value == 0 {
                return Err(format!("{flag} must be at least 1"));
            }
        }
        let max_connections = self.max_connections.unwrap_or_else(crate::connections::default_max_connections);
        if max_connections <= crate::connections::PROBE_RESERVE {
            return Err(format!(
                "--max-connections must be more than {} (the connections kept for probes)",
                crate::connections::PROBE_RESERVE
            ));
        }
        Ok(crate::connections::ConnectionLimits {
            header_timeout: Duration::from_millis(self.http_header_timeout_ms),
            keep_alive_timeout: Duration::from_millis(self.http_keep_alive_timeout_ms),
            max_connections,
        })
    }

    /// How `/mcp` is served.
    pub fn mcp_settings(&self) -> crate::mcp_server::McpSettings {
        let listed: Vec<String> =
            self.mcp_allowed_hosts.iter().map(|h| h.trim().to_owned()).filter(|h| !h.is_empty()).collect();
        let allowed_hosts = if listed.iter().any(|h| h == "*") {
            Vec::new()
        } else if listed.is_empty() {
            let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
            hosts.extend(self.public_url.as_ref().and_then(|u| u.host_str()).map(str::to_owned));
            hosts
        } else {
            listed
        };
        crate::mcp_server::McpSettings {
            sessions: self.mcp_sessions,
            allowed_hosts,
            allowed_origins: self.mcp_allowed_origins.iter().filter(|o| !o.trim().is_empty()).cloned().collect(),
        }
    }

    /// The base URL clients use to reach this registry.
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.as_str().trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.listen),
        }
    }
}

/// A network (`10.0.0.0/8`) or a single address (`10.0.0.1`).
fn parse_network(text: &str) -> Result<ipnet::IpNet, String> {
    text.trim()
        .parse::<ipnet::IpNet>()
        .or_else(|_| text.trim().parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("`{text}` is not an IP address or CIDR network"))
}

/// A secret setting: never shown by `Debug`, so it cannot reach a log.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::str::FromStr for Secret {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.len() < 16 {
            return Err("must be at least 16 characters".into());
        }
        Ok(Self(s.to_owned()))
    }
}
