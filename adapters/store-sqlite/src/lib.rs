//! The embedded default store: SQLite through sqlx, in WAL mode, created and migrated at start.
//!
//! Every statement of the store contract, read together with the transaction each one runs in;
//! a batch of changes (group commit) is written by `batch`, one statement per table.
#![forbid(unsafe_code)]

mod batch;

use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use agent_registry_core::audit::{AuditEvent, AuditNote, EventQuery, EventRow, NewEvent};
use agent_registry_core::auth::{ApiKey, KeyRow};
use agent_registry_core::liveness::Millis;
use agent_registry_core::model::{AgentId, EndpointId};
use agent_registry_core::ports::{
    AgentStore, Change, ChangeRow, IdempotencyRecord, LivenessChange, LoggedChange, Migrated, StoreSizes, StoredAgent,
    apply_each,
};
use agent_registry_core::{RegistryError, Result};
use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteAutoVacuum, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Connection, Row};

/// Endpoints whose last-seen time one statement records.
const LAST_SEEN_CHUNK: usize = 2_000;

/// Bytes the readiness probe writes once a write found the database full: ready again means a
/// registration of this size fits.
const PROBE_BYTES: i64 = 64 * 1024;

/// Free pages (1 MiB) past which pruned space is given back to the file system.
const RECLAIM_AFTER_PAGES: i64 = 256;

/// Gives back at most 2,048 pages (8 MiB) in one maintenance round.
const RECLAIM_STEP: &str = "PRAGMA incremental_vacuum(2048)";

/// SQLite's page size, which `max_page_count` counts in.
const PAGE_BYTES: u64 = 4096;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

/// How the database file is used.
#[derive(Clone, Debug)]
pub struct SqliteSettings {
    /// Largest size the database file may grow to (`None`: as large as the disk allows). A write
    /// past it is refused like one on a full disk.
    pub max_size_bytes: Option<u64>,
    /// Longest a statement waits for another connection's write lock, and for a pooled
    /// connection.
    pub wait: Duration,
    /// When a commit reaches the disk.
    pub synchronous: Synchronous,
}

impl Default for SqliteSettings {
    fn default() -> Self {
        Self { max_size_bytes: None, wait: Duration::from_secs(2), synchronous: Synchronous::Normal }
    }
}

/// SQLite's `synchronous` setting in WAL mode: when a commit is on the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// The write-ahead log is synced at each checkpoint, not at each commit: a crash of the
    /// process loses nothing, a power loss or an operating-system crash can lose the last
    /// commits (never corrupt the file).
    #[default]
    Normal,
    /// Every commit is synced before it is acknowledged: nothing acknowledged is lost even on a
    /// power loss, at the price of one sync per write.
    Full,
}

pub struct SqliteStore {
    pool: SqlitePool,
    /// One connection that maps the database file into memory, for the bulk reads of start-up
    /// (about twice as fast as reading through the pool); closed once they are done, so the
    /// mapping does not stay in the process's memory.
    loader: SqlitePool,
    /// A write found no room; readiness stays down until a probe write fits again.
    full: AtomicBool,
    /// The database file, whose write-ahead log counts in its size.
    path: std::path::PathBuf,
    /// The task that checkpoints beside the writes; it stops with the store.
    checkpoints: tokio::task::AbortHandle,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.checkpoints.abort();
    }
}

/// The one place SQLite's errors get their class: a busy, locked or unreadable file is retried
/// (503), a database that does not fit this binary stops start-up, anything else is a bug.
fn classify(e: sqlx::Error) -> RegistryError {
    use sqlx::Error as E;
    if is_full(&e) {
        return RegistryError::storage_full(e);
    }
    if is_outage(&e) {
        return RegistryError::storage_unavailable(e);
    }
    match e {
        E::Database(ref db) => match primary_code(db.as_ref()) {
            // READONLY, CORRUPT, AUTH, NOTADB
            8 | 11 | 23 | 26 => RegistryError::misconfigured("the SQLite database file cannot be used", e),
            // ERROR, for a table, column or function this binary expects and does not find.
            1 if db.message().starts_with("no such ") => RegistryError::misconfigured(SCHEMA_MISMATCH, e),
            _ => RegistryError::internal_from("SQLite refused a statement", e),
        },
        E::Migrate(m) => classify_migration(*m),
        E::Configuration(_) => RegistryError::misconfigured("the SQLite database URL is wrong", e),
        E::TypeNotFound { .. }
        | E::ColumnNotFound(_)
        | E::ColumnIndexOutOfBounds { .. }
        | E::ColumnDecode { .. }
        | E::Decode(_) => RegistryError::misconfigured(SCHEMA_MISMATCH, e),
        _ => RegistryError::internal_from("a SQLite call failed", e),
    }
}

/// The disk is full, or the database reached `max_page_count`.
fn is_full(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if primary_code(db.as_ref()) == 13)
}

/// The file is busy, locked or cannot be read or opened now: worth retrying.
fn is_outage(e: &sqlx::Error) -> bool {
    use sqlx::Error as E;
    match e {
        E::Io(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => true,
        // BUSY, LOCKED, IOERR, CANTOPEN, PROTOCOL
        E::Database(db) => matches!(primary_code(db.as_ref()), 5 | 6 | 10 | 14 | 15),
        _ => false,
    }
}

/// SQLite's primary result code: the low byte of the extended code sqlx reports.
fn primary_code(db: &dyn sqlx::error::DatabaseError) -> i32 {
    db.code().and_then(|c| c.parse::<i32>().ok()).unwrap_or_default() & 0xff
}

/// How often the write-ahead log is folded back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Folds the write-ahead log back into the database file as writes go on (a passive checkpoint
/// waits for no writer and no reader), until the store is closed.
async fn checkpoint_beside_writes(pool: SqlitePool) {
    let mut every = tokio::time::interval(CHECKPOINT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if pool.is_closed() {
            return;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
            tracing::debug!(error = %e, "a checkpoint of the write-ahead log did not run");
        }
    }
}

/// SQLite creates the database file, never its directory: a missing one is named at start.
fn ensure_directory(path: &Path) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if dir.is_dir() {
        return Ok(());
    }
    Err(RegistryError::misconfigured(
        format!("the directory of the SQLite database {} does not exist", path.display()),
        "create it, or point --database-url at a writable directory",
    ))
}

/// Opening or first writing the file failed. One that cannot be opened, created or written
/// (permissions, a read-only file or mount) stays so: a misconfiguration that names the path. A
/// busy or full one is retried.
fn unusable_file(path: &Path, e: sqlx::Error) -> RegistryError {
    let permanent = match &e {
        sqlx::Error::Io(io) => io.kind() == std::io::ErrorKind::PermissionDenied,
        // READONLY, CANTOPEN, PERM
        sqlx::Error::Database(db) => matches!(primary_code(db.as_ref()), 8 | 14 | 3),
        _ => false,
    };
    if permanent {
        return RegistryError::misconfigured(
            format!(
                "the SQLite database {} cannot be opened or written (check its path and permissions)",
                path.display()
            ),
            e,
        );
    }
    classify(e)
}

const SCHEMA_MISMATCH: &str = "the SQLite schema does not match this binary";

/// The migrations the database has applied, oldest first (none when it never was migrated).
async fn applied_versions(pool: &SqlitePool) -> Result<Vec<(i64, String)>> {
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
    )
    .fetch_one(pool)
    .await
    .map_err(classify)?;
    if !exists {
        return Ok(Vec::new());
    }
    sqlx::query_as("SELECT version, description FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(pool)
        .await
        .map_err(classify)
}

/// A database a newer binary migrated is refused before anything runs on it.
async fn refuse_newer_schema(pool: &SqlitePool) -> Result<()> {
    let stored = applied_versions(pool).await?;
    let known = MIGRATOR.iter().rfind(|m| m.migration_type.is_up_migration());
    agent_registry_core::ports::refuse_newer_schema(
        "SQLite",
        stored.last().map(|(v, d)| (*v, d.as_str())),
        known.map(|m| (m.version, &*m.description)),
    )
}

/// A migration that cannot run is a misconfiguration, unless the file was busy or unreadable.
fn classify_migration(e: sqlx::migrate::MigrateError) -> RegistryError {
    use sqlx::migrate::MigrateError as M;
    match e {
        M::Execute(ref inner) | M::ExecuteMigration(ref inner, _) if is_outage(inner) => {
            RegistryError::storage_unavailable(e)
        }
        _ => RegistryError::misconfigured("the SQLite migrations do not match this binary's", e),
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` with the default settings and applies
    /// pending migrations.
    pub async fn open(url: &str) -> Result<Self> {
        Self::open_with(url, &SqliteSettings::default()).await
    }

    /// Opens (creating if missing) the database at `url` and applies pending migrations. A file
    /// that cannot be created or written is a misconfiguration naming its path, not an outage:
    /// retrying would not help.
    pub async fn open_with(url: &str, settings: &SqliteSettings) -> Result<Self> {
        let mut options = SqliteConnectOptions::from_str(url)
            .map_err(classify)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match settings.synchronous {
                Synchronous::Normal => SqliteSynchronous::Normal,
                Synchronous::Full => SqliteSynchronous::Full,
            })
            .foreign_keys(true)
            .busy_timeout(settings.wait)
            // Past a checkpoint, the write-ahead log shrinks back to this size (64 MiB).
            .pragma("journal_size_limit", "67108864")
            // Checkpoints run beside the writes (`checkpoint_beside_writes`), not inside the commit
            // that fills the log, which would hold the write lock meanwhile.
            .pragma("wal_autocheckpoint", "0")
            // A batch's multi-row statements keep their statement journals in memory, not in
            // temporary files written for each statement.
            .pragma("temp_store", "memory");
        if let Some(bytes) = settings.max_size_bytes {
            options = options.pragma("max_page_count", (bytes / PAGE_BYTES).max(1).to_string());
        }
        let path = options.get_filename().to_owned();
        let unusable = |e: sqlx::Error| unusable_file(&path, e);
        // Pruned space goes back to the file system bit by bit (see `reclaim`). Takes effect when
        // the file is created; an older file keeps reusing its free pages instead.
        let options = options.auto_vacuum(SqliteAutoVacuum::Incremental);
        ensure_directory(&path)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(settings.wait)
            .connect_with(options.clone())
            .await
            .map_err(unusable)?;
        refuse_newer_schema(&pool).await?;
        MIGRATOR.run(&pool).await.map_err(classify_migration)?;
        let loader = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.pragma("mmap_size", "4294967296"))
            .await
            .map_err(unusable)?;
        let checkpoints = tokio::spawn(checkpoint_beside_writes(pool.clone())).abort_handle();
        let store = Self { pool, loader, full: AtomicBool::new(false), path: path.clone(), checkpoints };
        // A read-only file opens and reads: only a write finds it out.
        store.probe_write().await.map_err(unusable)?;
        Ok(store)
    }

    /// Writes and removes a row of `PROBE_BYTES` in one transaction: it fails when the file is
    /// read-only, the disk is full or the database reached its size.
    async fn probe_write(&self) -> std::result::Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO storage_probe (filler) VALUES (zeroblob(?))")
            .bind(PROBE_BYTES)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM storage_probe").execute(&mut *tx).await?;
        tx.commit().await
    }

    /// Classifies a failed write, and remembers a full database for readiness.
    fn failed(&self, e: sqlx::Error) -> RegistryError {
        let e = classify(e);
        if matches!(e, RegistryError::StorageFull { .. }) {
            self.full.store(true, Ordering::Release);
        }
        e
    }

    /// Applies pending migrations and says which it applied; the database is then left whole in
    /// its main file (the write-ahead log checkpointed), ready to be copied.
    pub async fn migrate(url: &str, settings: &SqliteSettings) -> Result<Migrated> {
        let before = {
            let options = SqliteConnectOptions::from_str(url).map_err(classify)?;
            let path = options.get_filename().to_owned();
            if path.exists() {
                let pool = SqlitePool::connect_with(options).await.map_err(|e| unusable_file(&path, e))?;
                let applied = applied_versions(&pool).await;
                pool.close().await;
                applied?
            } else {
                Vec::new()
            }
        };
        let store = Self::open_with(url, settings).await?;
        let after = applied_versions(&store.pool).await?;
        store.close().await;
        let applied = after.iter().filter(|(v, _)| !before.iter().any(|(b, _)| b == v)).cloned().collect();
        Ok(Migrated { applied, newest: after.last().cloned() })
    }

    /// Folds the write-ahead log back into the database file and empties it; `false` when
    /// readers kept it from finishing.
    async fn checkpoint(&self) -> Result<bool> {
        // One row: whether it was kept from finishing, pages in the log, pages checkpointed.
        let (busy, _, _): (i64, i64, i64) =
            sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(&self.pool).await.map_err(classify)?;
        Ok(busy == 0)
    }

    /// Stores one change in one transaction on `conn`.
    async fn apply_on(conn: &mut SqliteConnection, change: &Change, note: &AuditNote) -> Result<u64> {
        let mut tx = conn.begin().await.map_err(classify)?;
        let stale = || RegistryError::StaleWrite(change.agent_id().to_string());
        let agent_id = change.agent_id().to_string();
        let revision: i64 = sqlx::query_scalar(
            "INSERT INTO changes (agent_id, kind, at) VALUES (?, ?, CAST(unixepoch('subsec') * 1000 AS INTEGER))
             RETURNING revision",
        )
        .bind(&agent_id)
        .bind(change.kind().as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(classify)?;
        match change {
            Change::Put { agent, seen, idempotency, expected, .. } => {
                let mut agent = agent.clone();
                agent.revision = u64::try_from(revision).unwrap_or_default();
                let document =
                    serde_json::to_string(&agent).map_err(|e| RegistryError::internal_from("encoding an agent", e))?;
                if let Some(r) = idempotency {
                    let recorded = sqlx::query(
                        "INSERT INTO idempotency_keys (owner_id, key, request_hash, agent_id, created_at)
                         VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    )
                    .bind(&r.owner_id)
                    .bind(&r.key)
                    .bind(&r.request_hash)
                    .bind(r.agent_id.to_string())
                    .bind(r.created_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?;
                    if recorded.rows_affected() == 0 {
                        return Err(stale());
                    }
                }
                let stored = match expected {
                    None => sqlx::query(
                        "INSERT INTO agents (id, owner_id, name, revision, created_at, updated_at, document)
                         VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                    )
                    .bind(&agent_id)
                    .bind(&agent.owner_id)
                    .bind(&agent.name)
                    .bind(revision)
                    .bind(agent.created_at.to_rfc3339())
                    .bind(agent.updated_at.to_rfc3339())
                    .bind(&document),
                    Some(expected) => sqlx::query(
                        "UPDATE agents SET owner_id = ?, name = ?, revision = ?, updated_at = ?, document = ?
                         WHERE id = ? AND revision = ?",
                    )
                    .bind(&agent.owner_id)
                    .bind(&agent.name)
                    .bind(revision)
                    .bind(agent.updated_at.to_rfc3339())
                    .bind(&document)
                    .bind(&agent_id)
                    .bind(i64::try_from(*expected).unwrap_or(i64::MAX)),
                }
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
                if stored.rows_affected() == 0 {
                    return Err(stale());
                }
                // Names are granted at registration and kept until the agent is removed (the
                // foreign key releases them).
                if expected.is_none() {
                    for claim in &agent.claims {
                        let granted = sqlx::query(
                            "INSERT INTO unique_names (namespace, name, agent_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                        )
                        .bind(&claim.namespace)
                        .bind(&claim.name)
                        .bind(&agent_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(classify)?;
                        if granted.rows_affected() == 0 {
                            return Err(stale());
                        }
                    }
                }
                let current: Vec<String> = agent.endpoints.iter().map(|e| e.id.to_string()).collect();
                sqlx::query(
                    "DELETE FROM endpoint_liveness WHERE agent_id = ? AND endpoint_id NOT IN (SELECT value FROM json_each(?))",
                )
                .bind(&agent_id)
                .bind(serde_json::to_string(&current).unwrap_or_default())
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
                for (endpoint, at) in seen {
                    sqlx::query(
                        "INSERT INTO endpoint_liveness (endpoint_id, agent_id, last_seen_at) VALUES (?, ?, ?)
                         ON CONFLICT (endpoint_id) DO UPDATE SET last_seen_at = max(last_seen_at, excluded.last_seen_at)",
                    )
                    .bind(endpoint.to_string())
                    .bind(&agent_id)
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?;
                }
                sqlx::query("UPDATE changes SET document = ? WHERE revision = ?")
                    .bind(&document)
                    .bind(revision)
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?;
            }
            Change::Delete { expected, .. } => {
                let deleted = sqlx::query("DELETE FROM agents WHERE id = ? AND revision = ?")
                    .bind(&agent_id)
                    .bind(i64::try_from(*expected).unwrap_or(i64::MAX))
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?;
                if deleted.rows_affected() == 0 {
                    return Err(stale());
                }
            }
        }
        sqlx::query(
            "INSERT INTO audit_events (at, actor, source, action, agent_id, revision, summary)
             VALUES (CAST(unixepoch('subsec') * 1000 AS INTEGER), ?, ?, ?, ?, ?, ?)",
        )
        .bind(&note.actor)
        .bind(&note.source)
        .bind(change.kind().as_str())
        .bind(&agent_id)
        .bind(revision)
        .bind(&note.summary)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        u64::try_from(revision).map_err(|e| RegistryError::internal_from("a revision is negative", e))
    }

    /// The changes in one transaction of at most fifteen statements whatever their number: the
    /// rows they would find are read first, which changes are stale is decided from them (as
    /// applying them one by one would), and each table is then written with one statement for
    /// the whole batch. Fails as a whole on any database error.
    async fn apply_together(conn: &mut SqliteConnection, changes: &[(Change, AuditNote)]) -> Result<Vec<Result<u64>>> {
        // The write lock from the start: nothing changes between the reads and the writes.
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(classify)?;
        let facts = batch::Facts::read(&mut tx, changes).await?;
        let plan = batch::Plan::decide(changes, facts)?;
        plan.write(&mut tx).await?;
        tx.commit().await.map_err(classify)?;
        Ok(plan.answers)
    }

    fn reader(&self) -> &SqlitePool {
        if self.loader.is_closed() { &self.pool } else { &self.loader }
    }
}

#[async_trait]
impl AgentStore for SqliteStore {
    async fn finished_loading(&self) {
        self.loader.close().await;
    }

    async fn close(&self) {
        self.loader.close().await;
        match self.checkpoint().await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(path = %self.path.display(), "the write-ahead log could not be emptied at shutdown: copy the -wal file with the database")
            }
            Err(e) => tracing::warn!(error = %e, "could not checkpoint the write-ahead log at shutdown"),
        }
        // The last connection to close removes the (now empty) write-ahead log.
        self.pool.close().await;
    }

    async fn snapshot(&self) -> Result<Option<std::path::PathBuf>> {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".backup-{}", uuid::Uuid::new_v4().simple()));
        let to = self.path.with_file_name(name);
        let target = to
            .to_str()
            .ok_or_else(|| RegistryError::internal(format!("the backup path {} is not UTF-8", to.display())))?;
        // One read transaction, so a consistent copy, written compact (no free pages) while
        // other connections keep writing.
        if let Err(e) = sqlx::query("VACUUM INTO ?").bind(target).execute(&self.pool).await {
            let _ = std::fs::remove_file(&to);
            return Err(self.failed(e));
        }
        Ok(Some(to))
    }

    async fn load_page(&self, after: Option<AgentId>, limit: usize) -> Result<Vec<StoredAgent>> {
        // UUIDs are stored hyphenated and lower-case, so text order is id order.
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT id, document FROM agents WHERE id > ? ORDER BY id LIMIT ?")
                .bind(after.map(|a| a.to_string()).unwrap_or_default())
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(self.reader())
                .await
                .map_err(classify)?;
        let ids: Vec<&str> = rows.iter().map(|(id, _)| id.as_str()).collect();
        let last_seen: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT endpoint_id, agent_id, last_seen_at FROM endpoint_liveness
             WHERE agent_id IN (SELECT value FROM json_each(?))",
        )
        .bind(serde_json::to_string(&ids).map_err(|e| RegistryError::internal_from("encoding agent ids", e))?)
        .fetch_all(self.reader())
        .await
        .map_err(classify)?;
        StoredAgent::parse_page(&rows, last_seen)
    }

    async fn apply(&self, change: Change, note: &AuditNote) -> Result<u64> {
        let mut conn = self.pool.acquire().await.map_err(classify)?;
        let applied = Self::apply_on(&mut conn, &change, note).await;
        if let Err(e) = &applied {
            // After a failed statement SQLite may have rolled the transaction back by itself, or
            // not: the connection is closed, never reused, so no later write can run inside a
            // transaction that is never committed.
            conn.close_on_drop();
            if matches!(e, RegistryError::StorageFull { .. }) {
                self.full.store(true, Ordering::Release);
            }
        } else {
            self.full.store(false, Ordering::Release);
        }
        applied
    }

    /// One transaction, one commit: each change in a savepoint of its own, so a stale one is
    /// undone alone. Any other failure (a full disk, a lost connection) undoes the batch, and
    /// each change is then tried on its own: one bad write fails only itself.
    async fn apply_batch(&self, changes: &[(Change, AuditNote)]) -> Vec<Result<u64>> {
        let mut conn = match self.pool.acquire().await.map_err(classify) {
            Ok(conn) => conn,
            Err(e) => return changes.iter().map(|_| Err(RegistryError::storage_unavailable(e.to_string()))).collect(),
        };
        match Self::apply_together(&mut conn, changes).await {
            Ok(answers) => {
                self.full.store(false, Ordering::Release);
                answers
            }
            Err(e) => {
                tracing::warn!(error = %e, changes = changes.len(), "a batch of changes failed; storing each on its own");
                conn.close_on_drop();
                drop(conn);
                apply_each(self, changes).await
            }
        }
    }

    async fn record_event(&self, event: &NewEvent) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_events (at, actor, source, action, agent_id, key_id, summary, dedupe)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(event.at)
        .bind(&event.note.actor)
        .bind(&event.note.source)
        .bind(event.action)
        .bind(event.agent_id.map(|a| a.to_string()))
        .bind(event.key_id.map(|k| k.to_string()))
        .bind(&event.note.summary)
        .bind(&event.dedupe)
        .execute(&self.pool)
        .await
        .map_err(|e| self.failed(e))?;
        Ok(())
    }

    async fn events(&self, query: &EventQuery) -> Result<Vec<AuditEvent>> {
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT id, at, actor, source, action, agent_id, key_id, revision, summary FROM audit_events
             WHERE (?1 IS NULL OR actor = ?1) AND (?2 IS NULL OR action = ?2) AND (?3 IS NULL OR agent_id = ?3)
               AND (?4 IS NULL OR at >= ?4) AND (?5 IS NULL OR at < ?5) AND (?6 IS NULL OR id < ?6)
             ORDER BY id DESC LIMIT ?7",
        )
        .bind(&query.actor)
        .bind(&query.action)
        .bind(query.agent.map(|a| a.to_string()))
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
        let done = sqlx::query("DELETE FROM audit_events WHERE at < ?")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(done.rows_affected())
    }

    async fn find_idempotency(&self, owner_id: &str, key: &str) -> Result<Option<IdempotencyRecord>> {
        let row = sqlx::query(
            "SELECT request_hash, agent_id, created_at FROM idempotency_keys WHERE owner_id = ? AND key = ?",
        )
        .bind(owner_id)
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        row.map(|row| {
            let agent: String = row.get(1);
            Ok(IdempotencyRecord {
                owner_id: owner_id.to_owned(),
                key: key.to_owned(),
                request_hash: row.get(0),
                agent_id: AgentId::parse(&agent)?,
                created_at: row.get(2),
            })
        })
        .transpose()
    }

    async fn expire_idempotency(&self, before: Millis) -> Result<u64> {
        let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < ?")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(done.rows_affected())
    }

    async fn record_last_seen(&self, seen: &[(EndpointId, Millis)]) -> Result<()> {
        // One statement per chunk, each its own short transaction, so a large batch never
        // holds the write lock long enough to stall registrations.
        for chunk in seen.chunks(LAST_SEEN_CHUNK) {
            let pairs: Vec<(String, Millis)> = chunk.iter().map(|(id, at)| (id.to_string(), *at)).collect();
            sqlx::query(
                "UPDATE endpoint_liveness SET last_seen_at = max(last_seen_at, v.at)
                 FROM (SELECT value ->> 0 AS id, value ->> 1 AS at FROM json_each(?)) AS v
                 WHERE endpoint_liveness.endpoint_id = v.id",
            )
            .bind(
                serde_json::to_string(&pairs)
                    .map_err(|e| RegistryError::internal_from("encoding last-seen times", e))?,
            )
            .execute(&self.pool)
            .await
            .map_err(|e| self.failed(e))?;
        }
        Ok(())
    }

    async fn current_revision(&self) -> Result<u64> {
        let revision: Option<i64> = sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = 'changes'")
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        Ok(revision.and_then(|r| u64::try_from(r).ok()).unwrap_or(0))
    }

    async fn changes_since(&self, after: u64, limit: usize) -> Result<Vec<LoggedChange>> {
        let rows: Vec<ChangeRow> = sqlx::query_as(
            "SELECT revision, agent_id, kind, at, document, endpoint_id FROM changes WHERE revision > ?
             ORDER BY revision LIMIT ?",
        )
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.iter().map(LoggedChange::parse).collect()
    }

    async fn oldest_change(&self) -> Result<Option<u64>> {
        let oldest: Option<i64> =
            sqlx::query_scalar("SELECT min(revision) FROM changes").fetch_one(&self.pool).await.map_err(classify)?;
        Ok(oldest.and_then(|r| u64::try_from(r).ok()))
    }

    async fn append_event(&self, event: &LivenessChange) -> Result<Option<u64>> {
        let document =
            serde_json::to_string(&event.agent).map_err(|e| RegistryError::internal_from("encoding an agent", e))?;
        let done = sqlx::query(
            "INSERT OR IGNORE INTO changes (agent_id, kind, at, document, endpoint_id, dedupe)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(event.agent.id.to_string())
        .bind(event.kind.as_str())
        .bind(event.at)
        .bind(document)
        .bind(event.endpoint_id.to_string())
        .bind(&event.dedupe)
        .execute(&self.pool)
        .await
        .map_err(|e| self.failed(e))?;
        Ok((done.rows_affected() > 0).then(|| u64::try_from(done.last_insert_rowid()).unwrap_or_default()))
    }

    async fn prune_changes(&self, before: Millis) -> Result<u64> {
        let done = sqlx::query("DELETE FROM changes WHERE at < ? AND revision < (SELECT max(revision) FROM changes)")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(done.rows_affected())
    }

    async fn ping(&self) -> Result<()> {
        if self.full.load(Ordering::Acquire) {
            self.probe_write().await.map_err(|e| self.failed(e))?;
            self.full.store(false, Ordering::Release);
            return Ok(());
        }
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ()).map_err(classify)
    }

    async fn sizes(&self) -> Result<StoreSizes> {
        let (pages, free, page_size): (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT page_count FROM pragma_page_count()), (SELECT freelist_count FROM pragma_freelist_count()),
                    (SELECT page_size FROM pragma_page_size())",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(classify)?;
        let counts: (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM agents), (SELECT count(*) FROM changes), (SELECT count(*) FROM audit_events),
                    (SELECT count(*) FROM idempotency_keys)",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(classify)?;
        let wal = std::fs::metadata(format!("{}-wal", self.path.display())).map_or(0, |m| m.len());
        let n = |v: i64| u64::try_from(v).unwrap_or_default();
        Ok(StoreSizes {
            bytes: n(pages * page_size) + wal,
            free_bytes: n(free * page_size),
            agents: n(counts.0),
            changes: n(counts.1),
            audit_events: n(counts.2),
            idempotency_keys: n(counts.3),
        })
    }

    async fn reclaim(&self) -> Result<u64> {
        let (free, page_size): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT freelist_count FROM pragma_freelist_count()), (SELECT page_size FROM pragma_page_size())",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(classify)?;
        if free < RECLAIM_AFTER_PAGES {
            return Ok(0);
        }
        // A bounded step each round, so that a large prune never holds the write lock for long.
        sqlx::query(RECLAIM_STEP).execute(&self.pool).await.map_err(|e| self.failed(e))?;
        // And the write-ahead log that the vacuum filled, down to nothing.
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.pool).await.map_err(classify)?;
        let left: i64 = sqlx::query_scalar("SELECT freelist_count FROM pragma_freelist_count()")
            .fetch_one(&self.pool)
            .await
            .map_err(classify)?;
        Ok(u64::try_from((free - left) * page_size).unwrap_or_default())
    }

    async fn save_api_key(&self, key: &ApiKey) -> Result<u64> {
        let revision: i64 = sqlx::query_scalar(
            "INSERT INTO api_keys
               (id, prefix, hash, owner_id, scope, description, created_at, expires_at, revoked_at, max_agents,
                max_document_bytes, revision)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, (SELECT COALESCE(max(revision), 0) + 1 FROM api_keys))
             ON CONFLICT (id) DO UPDATE SET revoked_at = excluded.revoked_at, expires_at = excluded.expires_at,
               description = excluded.description, owner_id = excluded.owner_id, scope = excluded.scope,
               max_agents = excluded.max_agents, max_document_bytes = excluded.max_document_bytes,
               revision = excluded.revision
             RETURNING revision",
        )
        .bind(key.id.to_string())
        .bind(&key.prefix)
        .bind(&key.hash)
        .bind(&key.owner_id)
        .bind(key.scope.as_str())
        .bind(&key.description)
        .bind(key.created_at)
        .bind(key.expires_at)
        .bind(key.revoked_at)
        .bind(key.quota.map(|q| i64::from(q.max_agents)))
        .bind(key.quota.map(|q| i64::try_from(q.max_document_bytes).unwrap_or(i64::MAX)))
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.failed(e))?;
        u64::try_from(revision).map_err(|e| RegistryError::internal_from("a revision is negative", e))
    }

    async fn api_keys_since(&self, after: u64, limit: usize) -> Result<Vec<ApiKey>> {
        let rows: Vec<KeyRow> = sqlx::query_as(
            "SELECT id, prefix, hash, owner_id, scope, description, created_at, expires_at, revoked_at, revision,
               max_agents, max_document_bytes
             FROM api_keys WHERE revision > ? ORDER BY revision LIMIT ?",
        )
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.into_iter().map(ApiKey::from_row).collect()
    }
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
        NewTask, TaskAppends, TaskCount, TaskCreated, TaskQuery, TaskStore, TaskWrite, TaskWritten, abandoned_event,
        fold_appends, sql, write_each,
    };
    use agent_registry_core::task::{LoggedTaskEvent, Task, TaskEvent, TaskId, TaskRow};
    use agent_registry_core::{RegistryError, Result};
    use async_trait::async_trait;

    use super::{SqliteStore, classify};

    /// New tasks from a JSON array of [`task_row`]s; returns the ids it stored (`WHERE true`
    /// tells SQLite's parser that `ON CONFLICT` is not a join's).
    const INSERT_TASKS: &str = "INSERT INTO tasks (id, owner_id, actor, capability, request, state, agent_id,
        idempotency_key, request_hash, created_at, updated_at, deadline_at, last_seq)
        SELECT value ->> 'id', value ->> 'owner', value ->> 'actor', value ->> 'capability', value ->> 'request',
            value ->> 'state', value ->> 'agent', value ->> 'key', value ->> 'hash', value ->> 'at', value ->> 'at',
            value ->> 'deadline', 1
        FROM json_each(?1) WHERE true ON CONFLICT DO NOTHING RETURNING id";

    /// The folded appends of a JSON array of [`appends_row`]s, each to a task not yet final;
    /// returns the tasks it changed with their new last sequence number.
    const UPDATE_TASKS: &str = "UPDATE tasks SET last_seq = last_seq + e.n, updated_at = e.at,
        state = COALESCE(e.new_state, state), agent_id = COALESCE(e.agent, agent_id),
        endpoint_id = COALESCE(e.endpoint, endpoint_id), protocol = COALESCE(e.new_protocol, protocol),
        output = COALESCE(e.new_output, output), error_code = COALESCE(e.code, error_code),
        error_detail = COALESCE(e.detail, error_detail), finished_at = CASE WHEN e.finished THEN e.at ELSE finished_at END
        FROM (SELECT value ->> 'id' AS task, value ->> 'n' AS n, value ->> 'at' AS at, value ->> 'state' AS new_state,
                value ->> 'agent' AS agent, value ->> 'endpoint' AS endpoint, value ->> 'protocol' AS new_protocol,
                value ->> 'output' AS new_output, value ->> 'code' AS code, value ->> 'detail' AS detail,
                value ->> 'finished' AS finished
              FROM json_each(?1)) AS e
        WHERE tasks.id = e.task AND tasks.state NOT IN ('completed', 'failed', 'canceled', 'rejected')
        RETURNING id, last_seq";

    /// Events from a JSON array of `{task, seq, at, kind, data}`.
    const INSERT_EVENTS: &str = "INSERT INTO task_events (task_id, seq, at, kind, data)
        SELECT value ->> 'task', value ->> 'seq', value ->> 'at', value ->> 'kind', value ->> 'data' FROM json_each(?1)";

    /// A new task as a row of [`INSERT_TASKS`].
    fn task_row(new: &NewTask) -> Result<serde_json::Value> {
        let task = &new.task;
        let (key, hash) = new.idempotency.clone().map_or((None, String::new()), |(k, h)| (Some(k), h));
        Ok(serde_json::json!({
            "id": task.id.to_string(), "owner": task.owner_id, "actor": task.actor,
            "capability": task.request.capability(), "request": encode(&task.request)?, "state": task.state.as_str(),
            "agent": task.agent_id.map(|a| a.to_string()), "key": key, "hash": hash, "at": task.created_at,
            "deadline": task.created_at + i64::from(task.request.timeout_seconds) * 1000,
        }))
    }

    /// One task's folded appends as a row of [`UPDATE_TASKS`].
    fn appends_row(task: &TaskAppends<'_>) -> Result<serde_json::Value> {
        let effects = &task.effects;
        Ok(serde_json::json!({
            "id": task.id.to_string(), "n": task.events.len(), "at": task.at,
            "state": effects.state.map(|s| s.as_str()), "agent": effects.agent_id.map(|a| a.to_string()),
            "endpoint": effects.endpoint_id.map(|e| e.to_string()), "protocol": effects.protocol.map(|p| p.as_str()),
            "output": effects.output.as_ref().map(encode).transpose()?,
            "code": effects.failure.as_ref().map(|f| &f.code), "detail": effects.failure.as_ref().map(|f| &f.detail),
            "finished": task.finished,
        }))
    }

    /// A statement of `sql` in this store's dialect; constant text, never built from input.
    fn q(statement: &str) -> sqlx::AssertSqlSafe<String> {
        sqlx::AssertSqlSafe(statement.replace('$', "?"))
    }

    fn encode(value: &impl serde::Serialize) -> Result<String> {
        serde_json::to_string(value).map_err(|e| RegistryError::internal_from("a task could not be written", e))
    }

    impl SqliteStore {
        async fn create_in(
            &self,
            tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
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
                return Self::existing_in(tx, new).await;
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

        /// The task an earlier request created under the same owner and idempotency key, for a
        /// creation the store did not take; without such a task the id was taken.
        async fn existing_in(tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>, new: &NewTask) -> Result<TaskCreated> {
            let task = &new.task;
            let key = new.idempotency.as_ref().map(|(key, _)| key.as_str());
            let existing: Option<(String, String)> = sqlx::query_as(q(sql::EXISTING_TASK))
                .bind(&task.owner_id)
                .bind(key)
                .fetch_optional(&mut **tx)
                .await
                .map_err(classify)?;
            let Some((id, request_hash)) = existing else {
                return Err(RegistryError::internal(format!("task {} exists already", task.id)));
            };
            let row: TaskRow =
                sqlx::query_as(q(&sql::task())).bind(&id).fetch_one(&mut **tx).await.map_err(classify)?;
            Ok(TaskCreated::Existing { task: Box::new(Task::from_row(row)?), request_hash })
        }

        /// The writes in one transaction of at most four statements whatever their number: the
        /// new tasks in one insert, the appends folded into one update per task (all in one
        /// statement), the events in one insert. A write refused on its own (a task id taken)
        /// fails alone; a statement that fails aborts them all.
        async fn write_together(&self, writes: &[TaskWrite]) -> Result<Vec<Result<TaskWritten>>> {
            let mut tx = self.pool.begin().await.map_err(classify)?;
            let mut answers: Vec<Option<Result<TaskWritten>>> = writes.iter().map(|_| None).collect();
            let mut events = Vec::new();
            let mut event_row = |task: TaskId, seq: i64, at: Millis, event: &TaskEvent| -> Result<()> {
                let data = encode(event)?;
                events.push(serde_json::json!({"task": task.to_string(), "seq": seq, "at": at, "kind": event.kind(), "data": data}));
                Ok(())
            };

            let creates: Vec<(usize, &NewTask, &TaskEvent)> = writes
                .iter()
                .enumerate()
                .filter_map(|(i, w)| match w {
                    TaskWrite::Create { new, created } => Some((i, &**new, created)),
                    TaskWrite::Append { .. } => None,
                })
                .collect();
            if !creates.is_empty() {
                let rows = creates.iter().map(|(_, new, _)| task_row(new)).collect::<Result<Vec<_>>>()?;
                let inserted: Vec<String> = sqlx::query_scalar(INSERT_TASKS)
                    .bind(serde_json::Value::Array(rows).to_string())
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(classify)?;
                let mut inserted: std::collections::HashSet<String> = inserted.into_iter().collect();
                for (i, new, created) in creates {
                    // Rows go in in order: of two creations with one id, the first took it.
                    answers[i] = Some(if inserted.remove(&new.task.id.to_string()) {
                        event_row(new.task.id, 1, new.task.created_at, created)?;
                        Ok(TaskWritten::Created(TaskCreated::Created))
                    } else {
                        Self::existing_in(&mut tx, new).await.map(TaskWritten::Created)
                    });
                }
            }

            let appends = fold_appends(writes);
            if !appends.is_empty() {
                let rows = appends.iter().map(appends_row).collect::<Result<Vec<_>>>()?;
                let updated: Vec<(String, i64)> = sqlx::query_as(UPDATE_TASKS)
                    .bind(serde_json::Value::Array(rows).to_string())
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(classify)?;
                let last_seqs: std::collections::HashMap<String, i64> = updated.into_iter().collect();
                for task in &appends {
                    let last_seq = last_seqs.get(&task.id.to_string()).copied();
                    let first_seq =
                        last_seq.map(|last| last - i64::try_from(task.events.len()).unwrap_or(i64::MAX) + 1);
                    for (k, (i, at, event)) in task.events.iter().enumerate() {
                        let seq = first_seq.map(|first| first + i64::try_from(k).unwrap_or(i64::MAX));
                        if let Some(seq) = seq {
                            event_row(task.id, seq, *at, event)?;
                        }
                        answers[*i] = Some(Ok(TaskWritten::Appended(seq.and_then(|s| u64::try_from(s).ok()))));
                    }
                    for i in &task.refused {
                        answers[*i] = Some(Ok(TaskWritten::Appended(None)));
                    }
                }
            }

            if !events.is_empty() {
                sqlx::query(INSERT_EVENTS)
                    .bind(serde_json::Value::Array(events).to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?;
            }
            tx.commit().await.map_err(classify)?;
            answers
                .into_iter()
                .map(|answer| answer.ok_or_else(|| RegistryError::internal("a task write went unanswered")))
                .collect()
        }

        async fn append_in(
            &self,
            tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
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
    impl TaskStore for SqliteStore {
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
