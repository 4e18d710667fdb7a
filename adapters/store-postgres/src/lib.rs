//! The production store: PostgreSQL through sqlx, shared by every replica of one registry.
#![forbid(unsafe_code)]

use std::str::FromStr;
use std::time::Duration;

use agent_registry_core::liveness::Millis;
use agent_registry_core::model::{AgentId, EndpointId};
use agent_registry_core::ports::{AgentStore, Change, IdempotencyRecord, StoredAgent};
use agent_registry_core::{RegistryError, Result};
use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use uuid::Uuid;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// Key of the advisory lock that orders writers across replicas.
const WRITE_LOCK: i64 = 0x6167_656e_7472_6567; // "agentreg"

pub struct PostgresStore {
    pool: PgPool,
}

fn unavailable(e: impl std::fmt::Display) -> RegistryError {
    RegistryError::StorageUnavailable(e.to_string())
}

impl PostgresStore {
    /// Connects (the pool reconnects by itself later) without touching the schema.
    pub async fn connect(url: &str) -> Result<Self> {
        let options = PgConnectOptions::from_str(url).map_err(unavailable)?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(unavailable)?;
        Ok(Self { pool })
    }

    /// Applies pending migrations from `migrations/postgres`; returns how many the database has.
    pub async fn migrate(&self) -> Result<usize> {
        MIGRATOR.run(&self.pool).await.map_err(unavailable)?;
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(usize::try_from(applied).unwrap_or_default())
    }
}

impl PostgresStore {
    /// Migrations this binary knows that the database has not applied.
    pub async fn pending_migrations(&self) -> Result<usize> {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)?;
        let applied: i64 = if exists {
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await
                .map_err(unavailable)?
        } else {
            0
        };
        Ok(MIGRATOR.iter().count().saturating_sub(usize::try_from(applied).unwrap_or_default()))
    }
}

#[async_trait]
impl AgentStore for PostgresStore {
    async fn load_page(&self, after: Option<AgentId>, limit: usize) -> Result<Vec<StoredAgent>> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT id::text, document FROM agents WHERE id > $1 ORDER BY id LIMIT $2")
                .bind(after.map_or(Uuid::nil(), |a| a.0))
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)?;
        let ids: Vec<Uuid> = rows.iter().filter_map(|(id, _)| Uuid::try_parse(id).ok()).collect();
        let last_seen: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT endpoint_id::text, agent_id::text, last_seen_at FROM endpoint_liveness WHERE agent_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        StoredAgent::parse_page(&rows, last_seen)
    }

    async fn apply(&self, change: Change) -> Result<u64> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITE_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        let (agent_id, kind) = match &change {
            Change::Put { agent, kind, .. } => (agent.id, kind),
            Change::Delete { agent_id, kind } => (*agent_id, kind),
        };
        let revision: i64 = sqlx::query_scalar(
            "INSERT INTO changes (revision, agent_id, kind, at)
             VALUES (nextval('registry_revision'), $1, $2, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)
             RETURNING revision",
        )
        .bind(agent_id.0)
        .bind(kind.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable)?;
        match change {
            Change::Put { mut agent, seen, idempotency, .. } => {
                agent.revision = u64::try_from(revision).unwrap_or_default();
                let document = serde_json::to_string(&agent).map_err(|e| RegistryError::Internal(e.to_string()))?;
                sqlx::query(
                    "INSERT INTO agents (id, owner_id, name, revision, created_at, updated_at, document)
                     VALUES ($1, $2, $3, $4, $5::timestamptz, $6::timestamptz, $7)
                     ON CONFLICT (id) DO UPDATE SET owner_id = excluded.owner_id, name = excluded.name,
                       revision = excluded.revision, updated_at = excluded.updated_at, document = excluded.document",
                )
                .bind(agent.id.0)
                .bind(&agent.owner_id)
                .bind(&agent.name)
                .bind(revision)
                .bind(agent.created_at.to_rfc3339())
                .bind(agent.updated_at.to_rfc3339())
                .bind(&document)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
                let current: Vec<Uuid> = agent.endpoints.iter().map(|e| e.id.0).collect();
                sqlx::query("DELETE FROM endpoint_liveness WHERE agent_id = $1 AND NOT (endpoint_id = ANY($2))")
                    .bind(agent.id.0)
                    .bind(&current)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                let (ids, times): (Vec<Uuid>, Vec<i64>) = seen.iter().map(|(id, at)| (id.0, *at)).unzip();
                sqlx::query(
                    "INSERT INTO endpoint_liveness (endpoint_id, agent_id, last_seen_at)
                     SELECT id, $1, at FROM UNNEST($2::uuid[], $3::bigint[]) AS v(id, at)
                     ON CONFLICT (endpoint_id)
                     DO UPDATE SET last_seen_at = GREATEST(endpoint_liveness.last_seen_at, excluded.last_seen_at)",
                )
                .bind(agent.id.0)
                .bind(&ids)
                .bind(&times)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
                if let Some(r) = idempotency {
                    sqlx::query(
                        "INSERT INTO idempotency_keys (owner_id, key, request_hash, agent_id, created_at)
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    )
                    .bind(&r.owner_id)
                    .bind(&r.key)
                    .bind(&r.request_hash)
                    .bind(r.agent_id.0)
                    .bind(r.created_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                }
            }
            Change::Delete { agent_id, .. } => {
                sqlx::query("DELETE FROM agents WHERE id = $1")
                    .bind(agent_id.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
            }
        }
        sqlx::query("SELECT pg_notify('agent_registry_changes', $1)")
            .bind(revision.to_string())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        u64::try_from(revision).map_err(|e| RegistryError::Internal(e.to_string()))
    }

    async fn find_idempotency(&self, owner_id: &str, key: &str) -> Result<Option<IdempotencyRecord>> {
        let row: Option<(String, Uuid, i64)> = sqlx::query_as(
            "SELECT request_hash, agent_id, created_at FROM idempotency_keys WHERE owner_id = $1 AND key = $2",
        )
        .bind(owner_id)
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(row.map(|(request_hash, agent, created_at)| IdempotencyRecord {
            owner_id: owner_id.to_owned(),
            key: key.to_owned(),
            request_hash,
            agent_id: AgentId(agent),
            created_at,
        }))
    }

    async fn expire_idempotency(&self, before: Millis) -> Result<u64> {
        let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(done.rows_affected())
    }

    async fn record_last_seen(&self, seen: &[(EndpointId, Millis)]) -> Result<()> {
        let (ids, times): (Vec<Uuid>, Vec<i64>) = seen.iter().map(|(id, at)| (id.0, *at)).unzip();
        sqlx::query(
            "UPDATE endpoint_liveness AS e SET last_seen_at = GREATEST(e.last_seen_at, v.at)
             FROM UNNEST($1::uuid[], $2::bigint[]) AS v(id, at) WHERE e.endpoint_id = v.id",
        )
        .bind(&ids)
        .bind(&times)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn current_revision(&self) -> Result<u64> {
        let (last, called): (i64, bool) = sqlx::query_as("SELECT last_value, is_called FROM registry_revision")
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(if called { u64::try_from(last).unwrap_or_default() } else { 0 })
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ()).map_err(unavailable)
    }
}
