//! The production store: PostgreSQL through sqlx, shared by every replica of one registry.
//!
//! One file on purpose (about 500 lines): every statement of the store contract, read together
//! with the transaction each one runs in.
#![forbid(unsafe_code)]

use std::str::FromStr;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use agent_registry_core::audit::{AuditEvent, AuditNote, EventQuery, EventRow, NewEvent};
use agent_registry_core::auth::{ApiKey, KeyRow};
use agent_registry_core::liveness::Millis;
use agent_registry_core::model::{AgentId, EndpointId};
use agent_registry_core::ports::{
    AgentStore, Change, ChangeRow, ChangeSignal, IdempotencyRecord, LivenessChange, LoggedChange, Migrated, StoreSizes,
    StoredAgent, apply_each,
};
use agent_registry_core::{RegistryError, Result};
use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use uuid::Uuid;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// The SQLSTATE the store's functions raise for a change made from an outdated view.
const STALE_WRITE: &str = "AR001";

/// Key of the advisory lock that orders writers across replicas.
const WRITE_LOCK: i64 = 0x6167_656e_7472_6567; // "agentreg"

/// The channel each stored change is announced on (its payload is the revision).
const CHANGES_CHANNEL: &str = "agent_registry_changes";
/// The payload announcing that an API key was issued or revoked.
const KEYS_CHANGED: &str = "keys";

pub struct PostgresStore {
    pool: PgPool,
    /// Woken by LISTEN/NOTIFY; created with its listener on first use.
    signal: OnceLock<Arc<ChangeSignal>>,
}

/// The one place PostgreSQL's errors get their class: an outage is retried (503), a database
/// that does not fit this binary stops start-up, anything else is a bug.
fn classify(e: sqlx::Error) -> RegistryError {
    use sqlx::Error as E;
    if is_outage(&e) {
        return RegistryError::storage_unavailable(e);
    }
    match e {
        E::Database(ref db) => match db.code().as_deref().unwrap_or_default() {
            // Wrong password or role, unknown database, missing privileges.
            c if c.starts_with("28") || c == "3D000" || c == "42501" => {
                RegistryError::misconfigured("PostgreSQL refuses this registry's credentials or database", e)
            }
            // Undefined table, column, function, type or schema: migrations are missing.
            "42P01" | "42703" | "42883" | "42704" | "3F000" => RegistryError::misconfigured(SCHEMA_MISMATCH, e),
            _ => RegistryError::internal_from("PostgreSQL refused a statement", e),
        },
        E::Migrate(m) => classify_migration(*m),
        E::Configuration(_) | E::Tls(_) => {
            RegistryError::misconfigured("the PostgreSQL connection settings are wrong", e)
        }
        E::TypeNotFound { .. }
        | E::ColumnNotFound(_)
        | E::ColumnIndexOutOfBounds { .. }
        | E::ColumnDecode { .. }
        | E::Decode(_) => RegistryError::misconfigured(SCHEMA_MISMATCH, e),
        _ => RegistryError::internal_from("a PostgreSQL call failed", e),
    }
}

/// The server cannot be reached or is overloaded, shutting down, or timed out a statement: all
/// pass, so the call is worth retrying.
fn is_outage(e: &sqlx::Error) -> bool {
    use sqlx::Error as E;
    match e {
        E::Io(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed | E::Protocol(_) => true,
        // SQLSTATE classes: connection exception, insufficient resources, operator
        // intervention, transaction rollback (serialization failure, deadlock).
        // And a lock wait past `lock_timeout`.
        E::Database(db) => {
            db.code().is_some_and(|c| c == "55P03" || ["08", "53", "57", "40"].iter().any(|class| c.starts_with(class)))
        }
        _ => false,
    }
}

const SCHEMA_MISMATCH: &str = "the PostgreSQL schema does not match this binary (run `agent-registry migrate`)";

/// A migration that cannot run is a misconfiguration, unless the database went away meanwhile.
fn classify_migration(e: sqlx::migrate::MigrateError) -> RegistryError {
    use sqlx::migrate::MigrateError as M;
    match e {
        M::Execute(ref inner) | M::ExecuteMigration(ref inner, _) if is_outage(inner) => {
            RegistryError::storage_unavailable(e)
        }
        _ => RegistryError::misconfigured("the PostgreSQL migrations do not match this binary's", e),
    }
}

impl PostgresStore {
    /// Connects (the pool reconnects by itself later) without touching the schema. `wait` bounds
    /// a wait for a pooled connection (connecting included) and for a lock; statements that run
    /// longer than `statement` are cancelled by the server.
    pub async fn connect(url: &str, wait: Duration, statement: Duration) -> Result<Self> {
        let millis = |d: Duration| d.as_millis().to_string();
        let options = PgConnectOptions::from_str(url)
            .map_err(classify)?
            .options([("lock_timeout", millis(wait)), ("statement_timeout", millis(statement))]);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(wait)
            .connect_with(options)
            .await
            .map_err(classify)?;
        Ok(Self { pool, signal: OnceLock::new() })
    }

    /// Applies pending migrations from `migrations/postgres` and says which it applied. A schema
    /// a newer binary migrated is refused untouched.
    pub async fn migrate(&self) -> Result<Migrated> {
        let before = self.applied_versions().await?;
        self.refuse_newer_schema(&before)?;
        MIGRATOR.run(&self.pool).await.map_err(classify_migration)?;
        let after = self.applied_versions().await?;
        let applied = after.iter().filter(|(v, _)| !before.iter().any(|(b, _)| b == v)).cloned().collect();
        Ok(Migrated { applied, newest: after.last().cloned() })
    }

    /// The migrations the schema has applied, oldest first (none when it never was migrated).
    async fn applied_versions(&self) -> Result<Vec<(i64, String)>> {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(&self.pool)
            .await
            .map_err(classify)?;
        if !exists {
            return Ok(Vec::new());
        }
        sqlx::query_as("SELECT version, description FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&self.pool)
            .await
            .map_err(classify)
    }

    /// A schema migrated by a newer binary (its stored functions may differ) is never used.
    fn refuse_newer_schema(&self, applied: &[(i64, String)]) -> Result<()> {
        let known = MIGRATOR.iter().rfind(|m| m.migration_type.is_up_migration());
        agent_registry_core::ports::refuse_newer_schema(
            "PostgreSQL",
            applied.last().map(|(v, d)| (*v, d.as_str())),
            known.map(|m| (m.version, &*m.description)),
        )
    }
}

impl PostgresStore {
    /// Migrations this binary knows that the database has not applied; a schema a newer binary
    /// migrated is refused.
    pub async fn pending_migrations(&self) -> Result<usize> {
        self.refuse_newer_schema(&self.applied_versions().await?)?;
        let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(&self.pool)
            .await
            .map_err(classify)?;
        let applied: Vec<(i64, Vec<u8>)> = if exists {
            sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.pool)
                .await
                .map_err(classify)?
        } else {
            Vec::new()
        };
        // An applied migration this binary ships differently is a schema it cannot trust.
        for (version, checksum) in &applied {
            if MIGRATOR.iter().any(|m| m.version == *version && *m.checksum != checksum[..]) {
                return Err(RegistryError::misconfigured(
                    "the PostgreSQL migrations do not match this binary's",
                    sqlx::migrate::MigrateError::VersionMismatch(*version),
                ));
            }
        }
        Ok(MIGRATOR.iter().count().saturating_sub(applied.len()))
    }
}

#[async_trait]
impl AgentStore for PostgresStore {
    async fn load_page(&self, after: Option<AgentId>, limit: usize) -> Result<Vec<StoredAgent>> {
        let rows: Vec<(String, String)> = sqlx::query_as(sql::LOAD_PAGE)
            .bind(after.map_or(Uuid::nil(), |a| a.0))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        let ids: Vec<Uuid> = rows.iter().filter_map(|(id, _)| Uuid::try_parse(id).ok()).collect();
        let last_seen: Vec<(String, String, i64)> =
            sqlx::query_as(sql::LOAD_LAST_SEEN).bind(&ids).fetch_all(&self.pool).await.map_err(classify)?;
        StoredAgent::parse_page(&rows, last_seen)
    }

    async fn apply(&self, change: Change, note: &AuditNote) -> Result<u64> {
        // One call, one round trip: the function takes the write lock, draws the revision and
        // stores the change, its change-log row and its audit event (migration 0005).
        call_apply(&self.pool, &change, note).await
    }

    /// One call for the whole batch: one round trip, one transaction, one commit (migration
    /// 0014); a stale change answers NULL and leaves nothing behind (migration 0013). Any other
    /// failure undoes the batch, and each change is then tried on its own: one bad write fails
    /// only itself.
    async fn apply_batch(&self, changes: &[(Change, AuditNote)]) -> Vec<Result<u64>> {
        let together = async {
            let rows = changes.iter().map(|(change, note)| batch_row(change, note)).collect::<Result<Vec<_>>>()?;
            let revisions: Vec<Option<i64>> = sqlx::query_scalar(sql::APPLY_BATCH)
                .bind(WRITE_LOCK)
                .bind(serde_json::Value::Array(rows).to_string())
                .fetch_one(&self.pool)
                .await
                .map_err(classify)?;
            if revisions.len() != changes.len() {
                return Err(RegistryError::internal("a batch of changes was answered for some of them only"));
            }
            Ok(changes
                .iter()
                .zip(revisions)
                .map(|((change, _), revision)| match revision {
                    Some(revision) => {
                        u64::try_from(revision).map_err(|e| RegistryError::internal_from("a revision is negative", e))
                    }
                    None => Err(RegistryError::StaleWrite(change.agent_id().to_string())),
                })
                .collect())
        };
        match together.await {
            Ok(answers) => answers,
            Err(e) => {
                tracing::warn!(error = %e, changes = changes.len(), "a batch of changes failed; storing each on its own");
                apply_each(self, changes).await
            }
        }
    }

    async fn record_event(&self, event: &NewEvent) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_events (at, actor, source, action, agent_id, key_id, summary, dedupe)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        )
        .bind(event.at)
        .bind(&event.note.actor)
        .bind(&event.note.source)
        .bind(event.action)
        .bind(event.agent_id.map(|a| a.0))
        .bind(event.key_id)
        .bind(&event.note.summary)
        .bind(&event.dedupe)
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }

    async fn events(&self, query: &EventQuery) -> Result<Vec<AuditEvent>> {
        let rows: Vec<EventRow> = sqlx::query_as(sql::EVENTS)
            .bind(&query.actor)
            .bind(&query.action)
            .bind(query.agent.map(|a| a.0))
            .bind(query.since)
            .bind(query.until)
            .bind(query.before.map(|b| i64::try_from(b).unwrap_or(i64::MAX)))
            .bind(i64::try_from(query.limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        rows.into_iter().map(AuditEvent::from_row).collect()
    }

    async fn prune_events(&self, before: Millis) -> Result<u64> {
        let done = sqlx::query(sql::PRUNE_EVENTS).bind(before).execute(&self.pool).await.map_err(classify)?;
        Ok(done.rows_affected())
    }

    async fn find_idempotency(&self, owner_id: &str, key: &str) -> Result<Option<IdempotencyRecord>> {
        let row: Option<(String, Uuid, i64)> = sqlx::query_as(sql::FIND_IDEMPOTENCY)
            .bind(owner_id)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        Ok(row.map(|(request_hash, agent, created_at)| IdempotencyRecord {
            owner_id: owner_id.to_owned(),
            key: key.to_owned(),
            request_hash,
            agent_id: AgentId(agent),
            created_at,
        }))
    }

    async fn expire_idempotency(&self, before: Millis) -> Result<u64> {
        let done = sqlx::query(sql::EXPIRE_IDEMPOTENCY).bind(before).execute(&self.pool).await.map_err(classify)?;
        Ok(done.rows_affected())
    }

    async fn record_last_seen(&self, seen: &[(EndpointId, Millis)]) -> Result<()> {
        let (ids, times): (Vec<Uuid>, Vec<i64>) = seen.iter().map(|(id, at)| (id.0, *at)).unzip();
        sqlx::query(sql::RECORD_LAST_SEEN).bind(&ids).bind(&times).execute(&self.pool).await.map_err(classify)?;
        Ok(())
    }

    async fn current_revision(&self) -> Result<u64> {
        // The newest committed change, not the sequence: a drawn revision may belong to a
        // transaction still in flight (or one rolled back).
        let last: i64 = sqlx::query_scalar(sql::CURRENT_REVISION).fetch_one(&self.pool).await.map_err(classify)?;
        Ok(u64::try_from(last).unwrap_or_default())
    }

    async fn changes_since(&self, after: u64, limit: usize) -> Result<Vec<LoggedChange>> {
        let rows: Vec<ChangeRow> = sqlx::query_as(sql::CHANGES_SINCE)
            .bind(i64::try_from(after).unwrap_or(i64::MAX))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        rows.iter().map(LoggedChange::parse).collect()
    }

    async fn oldest_change(&self) -> Result<Option<u64>> {
        let oldest: Option<i64> =
            sqlx::query_scalar(sql::OLDEST_CHANGE).fetch_one(&self.pool).await.map_err(classify)?;
        Ok(oldest.and_then(|r| u64::try_from(r).ok()))
    }

    async fn append_event(&self, event: &LivenessChange) -> Result<Option<u64>> {
        let document =
            serde_json::to_string(&event.agent).map_err(|e| RegistryError::internal_from("encoding an agent", e))?;
        let revision: Option<i64> = sqlx::query_scalar(sql::EVENT)
            .bind(WRITE_LOCK)
            .bind(event.agent.id.0)
            .bind(event.endpoint_id.0)
            .bind(event.kind.as_str())
            .bind(event.at)
            .bind(document)
            .bind(&event.dedupe)
            .fetch_one(&self.pool)
            .await
            .map_err(classify)?;
        Ok(revision.and_then(|r| u64::try_from(r).ok()))
    }

    async fn prune_changes(&self, before: Millis) -> Result<u64> {
        let done = sqlx::query(sql::PRUNE_CHANGES).bind(before).execute(&self.pool).await.map_err(classify)?;
        Ok(done.rows_affected())
    }

    fn change_signal(&self) -> Option<Arc<ChangeSignal>> {
        Some(
            self.signal
                .get_or_init(|| {
                    let signal = Arc::new(ChangeSignal::default());
                    tokio::spawn(listen_for_changes(self.pool.clone(), Arc::downgrade(&signal)));
                    signal
                })
                .clone(),
        )
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ()).map_err(classify)
    }

    async fn save_api_key(&self, key: &ApiKey) -> Result<u64> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        // Ordered like the change log, so a replica reading keys by revision misses none.
        let revision: i64 =
            sqlx::query_scalar("SELECT nextval('api_key_revision') FROM (SELECT pg_advisory_xact_lock($1)) AS locked")
                .bind(WRITE_LOCK)
                .fetch_one(&mut *tx)
                .await
                .map_err(classify)?;
        sqlx::query(
            "INSERT INTO api_keys
               (id, prefix, hash, owner_id, scope, description, created_at, expires_at, revoked_at, revision,
                max_agents, max_document_bytes)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (id) DO UPDATE SET revoked_at = excluded.revoked_at, expires_at = excluded.expires_at,
               description = excluded.description, owner_id = excluded.owner_id, scope = excluded.scope,
               max_agents = excluded.max_agents, max_document_bytes = excluded.max_document_bytes,
               revision = excluded.revision",
        )
        .bind(key.id)
        .bind(&key.prefix)
        .bind(&key.hash)
        .bind(&key.owner_id)
        .bind(key.scope.as_str())
        .bind(&key.description)
        .bind(key.created_at)
        .bind(key.expires_at)
        .bind(key.revoked_at)
        .bind(revision)
        .bind(key.quota.map(|q| i64::from(q.max_agents)))
        .bind(key.quota.map(|q| i64::try_from(q.max_document_bytes).unwrap_or(i64::MAX)))
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        // Other replicas read the change at once (a revoked key must fail everywhere quickly).
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANGES_CHANNEL)
            .bind(KEYS_CHANGED)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        u64::try_from(revision).map_err(|e| RegistryError::internal_from("a revision is negative", e))
    }

    async fn sizes(&self) -> Result<StoreSizes> {
        let row: (i64, i64, i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT COALESCE(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c
                       JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')),
                    (SELECT count(*) FROM agents), (SELECT count(*) FROM changes),
                    (SELECT count(*) FROM audit_events), (SELECT count(*) FROM idempotency_keys)",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(classify)?;
        let n = |v: i64| u64::try_from(v).unwrap_or_default();
        // Autovacuum reuses and returns space on its own: nothing is reported free here.
        Ok(StoreSizes {
            bytes: n(row.0),
            free_bytes: 0,
            agents: n(row.1),
            changes: n(row.2),
            audit_events: n(row.3),
            idempotency_keys: n(row.4),
        })
    }

    async fn api_keys_since(&self, after: u64, limit: usize) -> Result<Vec<ApiKey>> {
        let rows: Vec<KeyRow> = sqlx::query_as(sql::KEYS_SINCE)
            .bind(i64::try_from(after).unwrap_or(i64::MAX))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        rows.into_iter().map(ApiKey::from_row).collect()
    }
}

/// Announces every change notification on `signal` until the store is dropped. Notifications
/// sent while the connection is being re-established are lost; followers' periodic catch-up
/// repairs that.
async fn listen_for_changes(pool: PgPool, signal: Weak<ChangeSignal>) {
    loop {
        match PgListener::connect_with(&pool).await {
            Ok(mut listener) => match listener.listen(CHANGES_CHANNEL).await {
                Ok(()) => loop {
                    // `Ok(None)`: the connection was lost and is re-established on the next call.
                    let Ok(notification) = listener.try_recv().await else { break };
                    let Some(signal) = signal.upgrade() else { return };
                    match notification.as_ref().map(|n| n.payload()) {
                        Some(KEYS_CHANGED) => signal.announce_keys(),
                        Some(revision) => revision.parse().into_iter().for_each(|r| signal.announce(r)),
                        None => {}
                    }
                },
                Err(e) => tracing::warn!(error = %e, "cannot listen for registry changes; retrying"),
            },
            Err(e) => tracing::warn!(error = %e, "cannot connect to listen for registry changes; retrying"),
        }
        if signal.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The agent's JSON without its revision: `revision` is the document's last field, and the
/// function that stores it appends the revision it draws.
fn document_prefix(agent: &agent_registry_core::model::Agent) -> Result<String> {
    let mut document =
        serde_json::to_string(agent).map_err(|e| RegistryError::internal_from("encoding an agent", e))?;
    let suffix = format!("{}}}", agent.revision);
    if !document.ends_with(&suffix) || !document[..document.len() - suffix.len()].ends_with("\"revision\":") {
        return Err(RegistryError::internal("an agent document does not end with its revision"));
    }
    document.truncate(document.len() - suffix.len());
    Ok(document)
}

/// A change as an element of `registry_apply_batch`'s array (the arguments of its function).
fn batch_row(change: &Change, note: &AuditNote) -> Result<serde_json::Value> {
    let common = |mut row: serde_json::Value| {
        row["agent"] = change.agent_id().to_string().into();
        row["kind"] = change.kind().as_str().into();
        row["actor"] = note.actor.clone().into();
        row["source"] = note.source.clone().into();
        row["summary"] = note.summary.clone().into();
        row
    };
    Ok(match change {
        Change::Put { agent, seen, idempotency, expected, .. } => common(serde_json::json!({
            "op": "put", "owner": agent.owner_id, "name": agent.name,
            "created": agent.created_at.to_rfc3339(), "updated": agent.updated_at.to_rfc3339(),
            "doc_prefix": document_prefix(agent)?, "expected": expected,
            "endpoints": agent.endpoints.iter().map(|e| e.id.to_string()).collect::<Vec<_>>(),
            "seen_ids": seen.iter().map(|(id, _)| id.to_string()).collect::<Vec<_>>(),
            "seen_at": seen.iter().map(|(_, at)| at).collect::<Vec<_>>(),
            "idem_owner": idempotency.as_ref().map(|r| &r.owner_id), "idem_key": idempotency.as_ref().map(|r| &r.key),
            "idem_hash": idempotency.as_ref().map(|r| &r.request_hash),
            "idem_at": idempotency.as_ref().map(|r| r.created_at),
            "claim_spaces": agent.claims.iter().map(|c| &c.namespace).collect::<Vec<_>>(),
            "claim_names": agent.claims.iter().map(|c| &c.name).collect::<Vec<_>>(),
        })),
        Change::Delete { expected, .. } => common(serde_json::json!({"op": "delete", "expected": expected})),
    })
}

/// Stores one change with one call of its function; the revision drawn.
async fn call_apply(executor: impl sqlx::PgExecutor<'_>, change: &Change, note: &AuditNote) -> Result<u64> {
    let stale = |e: sqlx::Error| match &e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some(STALE_WRITE) => {
            RegistryError::StaleWrite(change.agent_id().to_string())
        }
        _ => classify(e),
    };
    let agent_id = change.agent_id().0;
    let revision: i64 = match change {
        Change::Put { agent, kind, seen, idempotency, expected } => {
            let document = document_prefix(agent)?;
            let prefix = document.as_str();
            let endpoints: Vec<Uuid> = agent.endpoints.iter().map(|e| e.id.0).collect();
            let (seen_ids, seen_at): (Vec<Uuid>, Vec<i64>) = seen.iter().map(|(id, at)| (id.0, *at)).unzip();
            let (claim_spaces, claim_names): (Vec<&str>, Vec<&str>) =
                agent.claims.iter().map(|c| (c.namespace.as_str(), c.name.as_str())).unzip();
            sqlx::query_scalar(sql::PUT)
                .bind(WRITE_LOCK)
                .bind(agent_id)
                .bind(&agent.owner_id)
                .bind(&agent.name)
                .bind(agent.created_at.to_rfc3339())
                .bind(agent.updated_at.to_rfc3339())
                .bind(prefix)
                .bind(expected.map(|r| i64::try_from(r).unwrap_or(i64::MAX)))
                .bind(kind.as_str())
                .bind(&endpoints)
                .bind(&seen_ids)
                .bind(&seen_at)
                .bind(idempotency.as_ref().map(|r| &r.owner_id))
                .bind(idempotency.as_ref().map(|r| &r.key))
                .bind(idempotency.as_ref().map(|r| &r.request_hash))
                .bind(idempotency.as_ref().map(|r| r.created_at))
                .bind(&note.actor)
                .bind(&note.source)
                .bind(&note.summary)
                .bind(&claim_spaces)
                .bind(&claim_names)
                .fetch_one(executor)
                .await
                .map_err(stale)?
        }
        Change::Delete { kind, expected, .. } => sqlx::query_scalar(sql::DELETE)
            .bind(WRITE_LOCK)
            .bind(agent_id)
            .bind(i64::try_from(*expected).unwrap_or(i64::MAX))
            .bind(kind.as_str())
            .bind(&note.actor)
            .bind(&note.source)
            .bind(&note.summary)
            .fetch_one(executor)
            .await
            .map_err(stale)?,
    };
    u64::try_from(revision).map_err(|e| RegistryError::internal_from("a revision is negative", e))
}

/// The statements that look rows up, each answered through an index (see `LOOKUPS`).
pub mod sql {
    /// Stores a change in one call (see migrations/postgres/0005 and 0008).
    pub const PUT: &str = "SELECT registry_put($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
        $17, $18, $19, $20, $21)";
    pub const DELETE: &str = "SELECT registry_delete($1, $2, $3, $4, $5, $6, $7)";
    pub const APPLY_BATCH: &str = "SELECT registry_apply_batch($1, $2::jsonb)";
    pub const LOAD_PAGE: &str = "SELECT id::text, document FROM agents WHERE id > $1 ORDER BY agents.id LIMIT $2";
    pub const LOAD_LAST_SEEN: &str =
        "SELECT endpoint_id::text, agent_id::text, last_seen_at FROM endpoint_liveness WHERE agent_id = ANY($1)";
    // The statements `registry_put` and `registry_delete` run (migration 0005), as the EXPLAIN
    // check sees them.
    pub const DELETE_AGENT: &str = "DELETE FROM agents WHERE id = $1 AND revision = $2";
    pub const FIND_IDEMPOTENCY: &str =
        "SELECT request_hash, agent_id, created_at FROM idempotency_keys WHERE owner_id = $1 AND key = $2";
    pub const EXPIRE_IDEMPOTENCY: &str = "DELETE FROM idempotency_keys WHERE created_at < $1";
    pub const CURRENT_REVISION: &str = "SELECT COALESCE(max(revision), 0) FROM changes";
    pub const CHANGES_SINCE: &str =
        "SELECT revision, agent_id::text, kind, at, document, endpoint_id::text FROM changes
        WHERE revision > $1 ORDER BY revision LIMIT $2";
    pub const OLDEST_CHANGE: &str = "SELECT min(revision) FROM changes";
    /// Appends a liveness event in one call (see migrations/postgres/0007).
    pub const EVENT: &str = "SELECT registry_event($1, $2, $3, $4, $5, $6, $7)";
    /// The duplicate check `registry_event` makes.
    pub const EVENT_DEDUPE: &str = "SELECT 1 FROM changes WHERE dedupe = $1";
    pub const PRUNE_CHANGES: &str =
        "DELETE FROM changes WHERE at < $1 AND revision < (SELECT max(revision) FROM changes)";
    pub const UPDATE_AGENT: &str = "UPDATE agents
        SET owner_id = $2, name = $3, revision = $4, updated_at = $5::timestamptz, document = $6
        WHERE id = $1 AND revision = $7";
    /// Forgets removed endpoints and records newly seen ones, in one statement.
    pub const REPLACE_LIVENESS: &str = "WITH gone AS (
            DELETE FROM endpoint_liveness WHERE agent_id = $1 AND NOT (endpoint_id = ANY($2))
        )
        INSERT INTO endpoint_liveness (endpoint_id, agent_id, last_seen_at)
        SELECT id, $1, at FROM UNNEST($3::uuid[], $4::bigint[]) AS v(id, at)
        ON CONFLICT (endpoint_id)
        DO UPDATE SET last_seen_at = GREATEST(endpoint_liveness.last_seen_at, excluded.last_seen_at)";
    pub const RECORD_LAST_SEEN: &str = "UPDATE endpoint_liveness AS e SET last_seen_at = GREATEST(e.last_seen_at, v.at)
        FROM UNNEST($1::uuid[], $2::bigint[]) AS v(id, at) WHERE e.endpoint_id = v.id";

    pub const KEYS_SINCE: &str = "SELECT id::text, prefix, hash, owner_id, scope, description, created_at, expires_at,
          revoked_at, revision, max_agents, max_document_bytes
        FROM api_keys WHERE revision > $1 ORDER BY revision LIMIT $2";

    /// Events newest first; each filter applies when given. The planner picks the agent index
    /// or the primary key (newest first) depending on the filters.
    pub const EVENTS: &str = "SELECT id, at, actor, source, action, agent_id::text, key_id::text, revision, summary
        FROM audit_events
        WHERE ($1::text IS NULL OR actor = $1) AND ($2::text IS NULL OR action = $2)
          AND ($3::uuid IS NULL OR agent_id = $3) AND ($4::bigint IS NULL OR at >= $4)
          AND ($5::bigint IS NULL OR at < $5) AND ($6::bigint IS NULL OR id < $6)
        ORDER BY id DESC LIMIT $7";
    pub const PRUNE_EVENTS: &str = "DELETE FROM audit_events WHERE at < $1";

    /// Every lookup with a name, for the check that each one uses an index (tests and
    /// docs/postgres.md show the plans).
    pub const LOOKUPS: &[(&str, &str)] = &[
        ("start-up: a page of agents", LOAD_PAGE),
        ("start-up: last-seen times of a page", LOAD_LAST_SEEN),
        ("write: replace an agent at a revision", UPDATE_AGENT),
        ("write: delete an agent at a revision", DELETE_AGENT),
        ("write: endpoints' liveness rows", REPLACE_LIVENESS),
        ("write: find an idempotency key", FIND_IDEMPOTENCY),
        ("upkeep: expire idempotency keys", EXPIRE_IDEMPOTENCY),
        ("upkeep: record last-seen times", RECORD_LAST_SEEN),
        ("start-up: newest revision", CURRENT_REVISION),
        ("follow: changes after a revision", CHANGES_SINCE),
        ("watch: the oldest change kept", OLDEST_CHANGE),
        ("liveness events: is this one logged already", EVENT_DEDUPE),
        ("upkeep: prune the change log", PRUNE_CHANGES),
        ("follow: API keys changed after a revision", KEYS_SINCE),
        ("upkeep: prune the audit trail", PRUNE_EVENTS),
        ("audit: events, newest first", EVENTS),
    ];
}

#[cfg(test)]
mod tests {
    use agent_registry_core::ErrorKind;
    use sqlx::migrate::MigrateError;

    use super::{classify, classify_migration};

    #[test]
    fn an_outage_is_unavailable_a_schema_that_does_not_fit_is_misconfigured_and_the_rest_internal() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(classify(sqlx::Error::Io(refused)).kind(), ErrorKind::Unavailable);
        assert_eq!(classify(sqlx::Error::PoolTimedOut).kind(), ErrorKind::Unavailable);
        assert_eq!(classify(sqlx::Error::ColumnNotFound("document".into())).kind(), ErrorKind::Misconfigured);
        assert_eq!(classify(sqlx::Error::Decode("not a uuid".into())).kind(), ErrorKind::Misconfigured);
        assert_eq!(classify_migration(MigrateError::VersionMismatch(1)).kind(), ErrorKind::Misconfigured);
        assert_eq!(classify(sqlx::Error::RowNotFound).kind(), ErrorKind::Internal);
        let lost = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(classify_migration(MigrateError::Execute(lost)).kind(), ErrorKind::Unavailable);
    }

    #[test]
    fn the_driver_error_is_kept_as_the_source() {
        let e = classify(sqlx::Error::PoolTimedOut);
        let source = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("pool timed out while waiting for an open connection"));
    }
}

/// Tasks and their logs (migration 0011); the statements are shared with the other SQL store.
mod tasks {
    use agent_registry_core::liveness::Millis;
    use agent_registry_core::task::store::{
        NewTask, TaskCount, TaskCreated, TaskQuery, TaskStore, TaskWrite, TaskWritten, abandoned_event, sql, write_each,
    };
    use agent_registry_core::task::{LoggedTaskEvent, Task, TaskEvent, TaskId, TaskRow};
    use agent_registry_core::{RegistryError, Result};
    use async_trait::async_trait;

    use super::{PostgresStore, classify};

    /// A statement of `sql` in this store's dialect; constant text, never built from input.
    fn q(statement: &str) -> sqlx::AssertSqlSafe<String> {
        sqlx::AssertSqlSafe(statement.to_owned())
    }

    fn encode(value: &impl serde::Serialize) -> Result<String> {
        serde_json::to_string(value).map_err(|e| RegistryError::internal_from("a task could not be written", e))
    }

    impl PostgresStore {
        async fn create_in(
            &self,
            tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
            new: &NewTask,
            created: &TaskEvent,
        ) -> Result<TaskCreated> {
            let task = &new.task;
            let (key, hash) = new.idempotency.clone().map_or((None, String::new()), |(k, h)| (Some(k), h));
            let deadline = task.created_at + i64::from(task.request.timeout_seconds) * 1000;
            let inserted = sqlx::query(q(sql::INSERT_TASK))
                .bind(task.id.to_string())
                .bind(&task.owner_id)
                .bind(&task.actor)
                .bind(task.request.capability())
                .bind(encode(&task.request)?)
                .bind(task.state.as_str())
                .bind(task.agent_id.map(|a| a.to_string()))
                .bind(&key)
                .bind(&hash)
                .bind(task.created_at)
                .bind(deadline)
                .execute(&mut **tx)
                .await
                .map_err(classify)?;
            if inserted.rows_affected() == 0 {
                let existing: Option<(String, String)> = sqlx::query_as(q(sql::EXISTING_TASK))
                    .bind(&task.owner_id)
                    .bind(&key)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(classify)?;
                let Some((id, request_hash)) = existing else {
                    return Err(RegistryError::internal(format!("task {} exists already", task.id)));
                };
                let row: TaskRow =
                    sqlx::query_as(q(&sql::task())).bind(&id).fetch_one(&mut **tx).await.map_err(classify)?;
                return Ok(TaskCreated::Existing { task: Box::new(Task::from_row(row)?), request_hash });
            }
            sqlx::query(q(sql::INSERT_EVENT))
                .bind(task.id.to_string())
                .bind(1_i64)
                .bind(task.created_at)
                .bind(created.kind())
                .bind(encode(created)?)
                .execute(&mut **tx)
                .await
                .map_err(classify)?;
            Ok(TaskCreated::Created)
        }

        /// The writes in one transaction; the first error aborts them all.
        async fn write_together(&self, writes: &[TaskWrite]) -> Result<Vec<Result<TaskWritten>>> {
            let mut tx = self.pool.begin().await.map_err(classify)?;
            let mut answers = Vec::with_capacity(writes.len());
            for write in writes {
                answers.push(Ok(match write {
                    TaskWrite::Create { new, created } => {
                        TaskWritten::Created(self.create_in(&mut tx, new, created).await?)
                    }
                    TaskWrite::Append { id, at, event } => {
                        TaskWritten::Appended(self.append_in(&mut tx, *id, *at, event).await?)
                    }
                }));
            }
            tx.commit().await.map_err(classify)?;
            Ok(answers)
        }

        async fn append_in(
            &self,
            tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
            id: TaskId,
            at: Millis,
            event: &TaskEvent,
        ) -> Result<Option<u64>> {
            let effects = event.effects();
            let output = effects.output.as_ref().map(encode).transpose()?;
            let finished = effects.state.is_some_and(|s| s.is_final());
            let seq: Option<i64> = sqlx::query_scalar(q(sql::APPLY_EVENT))
                .bind(id.to_string())
                .bind(at)
                .bind(effects.state.map(|s| s.as_str()))
                .bind(effects.agent_id.map(|a| a.to_string()))
                .bind(effects.endpoint_id.map(|e| e.to_string()))
                .bind(effects.protocol.map(|p| p.as_str()))
                .bind(output)
                .bind(effects.failure.as_ref().map(|f| f.code.clone()))
                .bind(effects.failure.as_ref().map(|f| f.detail.clone()))
                .bind(finished)
                .fetch_optional(&mut **tx)
                .await
                .map_err(classify)?;
            let Some(seq) = seq else { return Ok(None) };
            sqlx::query(q(sql::INSERT_EVENT))
                .bind(id.to_string())
                .bind(seq)
                .bind(at)
                .bind(event.kind())
                .bind(encode(event)?)
                .execute(&mut **tx)
                .await
                .map_err(classify)?;
            Ok(u64::try_from(seq).ok())
        }
    }

    #[async_trait]
    impl TaskStore for PostgresStore {
        async fn create_task(&self, new: &NewTask, created: &TaskEvent) -> Result<TaskCreated> {
            let mut tx = self.pool.begin().await.map_err(classify)?;
            let answer = self.create_in(&mut tx, new, created).await?;
            tx.commit().await.map_err(classify)?;
            Ok(answer)
        }

        async fn append_task_event(&self, id: TaskId, at: Millis, event: &TaskEvent) -> Result<Option<u64>> {
            let mut tx = self.pool.begin().await.map_err(classify)?;
            let seq = self.append_in(&mut tx, id, at, event).await?;
            tx.commit().await.map_err(classify)?;
            Ok(seq)
        }

        /// One transaction for the whole batch; when it fails, each write again on its own, so
        /// that only a bad write fails.
        async fn write_tasks(&self, writes: &[TaskWrite]) -> Vec<Result<TaskWritten>> {
            match self.write_together(writes).await {
                Ok(answers) => answers,
                Err(e) if writes.len() == 1 => vec![Err(e)],
                Err(_) => write_each(self, writes).await,
            }
        }

        async fn task(&self, id: TaskId) -> Result<Option<Task>> {
            let row: Option<TaskRow> = sqlx::query_as(q(&sql::task()))
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await
                .map_err(classify)?;
            row.map(Task::from_row).transpose()
        }

        async fn task_events(&self, id: TaskId, after: u64, limit: usize) -> Result<Vec<LoggedTaskEvent>> {
            let rows: Vec<(i64, i64, String)> = sqlx::query_as(q(sql::EVENTS))
                .bind(id.to_string())
                .bind(i64::try_from(after).unwrap_or(i64::MAX))
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await
                .map_err(classify)?;
            rows.iter().map(|(seq, at, data)| LoggedTaskEvent::from_row(*seq, *at, data)).collect()
        }

        async fn tasks(&self, query: &TaskQuery) -> Result<Vec<Task>> {
            let rows: Vec<TaskRow> = sqlx::query_as(q(&sql::tasks()))
                .bind(&query.owner_id)
                .bind(query.state.map(|s| s.as_str()))
                .bind(query.agent_id.map(|a| a.to_string()))
                .bind(&query.capability)
                .bind(query.since)
                .bind(query.before.map(|(at, _)| at))
                .bind(query.before.map(|(_, id)| id.to_string()))
                .bind(i64::try_from(query.limit).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await
                .map_err(classify)?;
            rows.into_iter().map(Task::from_row).collect()
        }

        async fn fail_abandoned_tasks(&self, overdue_at: Millis, at: Millis) -> Result<u64> {
            let ids: Vec<String> =
                sqlx::query_scalar(q(sql::ABANDONED)).bind(overdue_at).fetch_all(&self.pool).await.map_err(classify)?;
            let mut failed = 0;
            for id in ids {
                let mut tx = self.pool.begin().await.map_err(classify)?;
                if self.append_in(&mut tx, TaskId::parse(&id)?, at, &abandoned_event()).await?.is_some() {
                    failed += 1;
                }
                tx.commit().await.map_err(classify)?;
            }
            Ok(failed)
        }

        async fn task_counts(&self, since: Millis) -> Result<Vec<TaskCount>> {
            let rows: Vec<(Option<String>, String, i64)> =
                sqlx::query_as(q(sql::COUNTS)).bind(since).fetch_all(&self.pool).await.map_err(classify)?;
            rows.into_iter().map(TaskCount::from_row).collect()
        }

        async fn prune_tasks(&self, before: Millis) -> Result<u64> {
            let mut tx = self.pool.begin().await.map_err(classify)?;
            sqlx::query(q(sql::PRUNE_EVENTS)).bind(before).execute(&mut *tx).await.map_err(classify)?;
            let done = sqlx::query(q(sql::PRUNE_TASKS)).bind(before).execute(&mut *tx).await.map_err(classify)?;
            tx.commit().await.map_err(classify)?;
            Ok(done.rows_affected())
        }
    }
}
