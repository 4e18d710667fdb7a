//! Who publishes, and from which revision. One replica publishes to each destination: with
//! Redis it holds a lease (`SET NX PX`, renewed at every step) and records the last published
//! revision next to it, so a new leader resumes where the old one stopped. Without Redis the
//! process publishes on its own and remembers the revision in memory: changes it had not
//! published when it stopped are not published after a restart.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// How long a lease lasts without renewal: a replica that dies is replaced after this.
pub const LEASE: Duration = Duration::from_secs(10);

/// The lease and the last published revision of one destination.
#[async_trait]
pub trait Coordination: Send + Sync {
    /// Takes the lease or renews it; `true` while this process may publish.
    async fn lead(&self) -> Result<bool, String>;
    /// The last published revision; `start` when nothing was published yet.
    async fn cursor(&self, start: u64) -> Result<u64, String>;
    /// Records `revision` as published (never moving back); `false`, recording nothing, when
    /// this process no longer holds the lease.
    async fn advance(&self, revision: u64) -> Result<bool, String>;
    /// Gives the lease up (at shutdown), so another replica takes over at once.
    async fn release(&self);
}

/// A process that publishes alone (the embedded setup): always the leader, the revision kept
/// in memory.
#[derive(Default)]
pub struct Solo {
    cursor: Mutex<Option<u64>>,
}

#[async_trait]
impl Coordination for Solo {
    async fn lead(&self) -> Result<bool, String> {
        Ok(true)
    }

    async fn cursor(&self, start: u64) -> Result<u64, String> {
        Ok(*self.cursor.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get_or_insert(start))
    }

    async fn advance(&self, revision: u64) -> Result<bool, String> {
        let mut cursor = self.cursor.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *cursor = Some(cursor.map_or(revision, |c| c.max(revision)));
        Ok(true)
    }

    async fn release(&self) {}
}

/// Replicas sharing a Redis: `<prefix>:leader` holds the leader's token, `<prefix>:cursor` the
/// last published revision.
pub struct RedisCoordination {
    client: redis::Client,
    /// Opened on first use and again after a failure to open (Redis may be down at start).
    connection: tokio::sync::Mutex<Option<ConnectionManager>>,
    lease_key: String,
    cursor_key: String,
    /// Tells this process's lease from another's.
    token: String,
}

/// Renews the lease if this process holds it.
const RENEW: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end return 0";
/// Moves the cursor forward, only for the lease holder.
const ADVANCE: &str = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end \
    local current = tonumber(redis.call('GET', KEYS[2]) or '0') \
    if tonumber(ARGV[2]) > current then redis.call('SET', KEYS[2], ARGV[2]) end return 1";
/// Starts the cursor at ARGV[1] unless publication happened already; returns it.
const CURSOR: &str = "redis.call('SET', KEYS[1], ARGV[1], 'NX') return redis.call('GET', KEYS[1])";
/// Deletes the lease if this process holds it.
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end return 0";

fn failed(e: &redis::RedisError) -> String {
    format!("Redis: {e}")
}

impl RedisCoordination {
    /// Coordination under `prefix` in the Redis at `url` (connected on first use).
    pub fn new(url: &str, prefix: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("invalid Redis URL: {e}"))?;
        Ok(Self {
            client,
            connection: tokio::sync::Mutex::new(None),
            lease_key: format!("{prefix}:leader"),
            cursor_key: format!("{prefix}:cursor"),
            token: uuid::Uuid::new_v4().simple().to_string(),
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, String> {
        let mut held = self.connection.lock().await;
        if let Some(connection) = held.as_ref() {
            return Ok(connection.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let connection =
            ConnectionManager::new_with_config(self.client.clone(), config).await.map_err(|e| failed(&e))?;
        Ok(held.insert(connection).clone())
    }

    async fn eval<T: redis::FromRedisValue>(&self, script: &str, keys: &[&str], args: &[String]) -> Result<T, String> {
        let mut command = redis::cmd("EVAL");
        command.arg(script).arg(keys.len()).arg(keys).arg(args);
        command.query_async(&mut self.connection().await?).await.map_err(|e| failed(&e))
    }
}

#[async_trait]
impl Coordination for RedisCoordination {
    async fn lead(&self) -> Result<bool, String> {
        let ttl = LEASE.as_millis().to_string();
        let taken: Option<String> = redis::cmd("SET")
            .arg(&self.lease_key)
            .arg(&self.token)
            .arg("NX")
            .arg("PX")
            .arg(&ttl)
            .query_async(&mut self.connection().await?)
            .await
            .map_err(|e| failed(&e))?;
        if taken.is_some() {
            tracing::info!(lease = %self.lease_key, "this replica now publishes changes");
            return Ok(true);
        }
        Ok(self.eval::<i64>(RENEW, &[&self.lease_key], &[self.token.clone(), ttl]).await? == 1)
    }

    async fn cursor(&self, start: u64) -> Result<u64, String> {
        let text: String = self.eval(CURSOR, &[&self.cursor_key], &[start.to_string()]).await?;
        text.parse().map_err(|_| format!("{} holds `{text}`, not a revision", self.cursor_key))
    }

    async fn advance(&self, revision: u64) -> Result<bool, String> {
        let args = [self.token.clone(), revision.to_string()];
        Ok(self.eval::<i64>(ADVANCE, &[&self.lease_key, &self.cursor_key], &args).await? == 1)
    }

    async fn release(&self) {
        if let Err(e) = self.eval::<i64>(RELEASE, &[&self.lease_key], std::slice::from_ref(&self.token)).await {
            tracing::warn!(error = %e, "could not give up the publishing lease; another replica takes over when it lapses");
        }
    }
}
