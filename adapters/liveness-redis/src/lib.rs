//! Liveness in Redis: one sorted set per registry, member = endpoint id, score = when it was last
//! seen (milliseconds). A heartbeat is one round trip (a cached script: `ZSCORE` then `ZADD GT`);
//! start-up reads scores in batches; the periodic read-back of other replicas' touches goes in
//! short pages over a connection of its own, so heartbeats never queue behind it.
#![forbid(unsafe_code)]

use agent_registry_core::liveness::Millis;
use agent_registry_core::model::EndpointId;
use agent_registry_core::ports::LivenessStore;
use agent_registry_core::{RegistryError, Result};
use async_trait::async_trait;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// Returns the member's score before `ZADD GT` sets the new one (Redis runs a script atomically).
const TOUCH: &str = "local previous = redis.call('ZSCORE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[1], 'GT', ARGV[1], ARGV[2])
return previous";

/// Endpoints one `ZADD` of `touch_all` sets.
const TOUCH_ALL_CHUNK: usize = 1_000;

/// Touches one command of the read-back returns: Redis runs one command at a time, and
/// heartbeats run between pages this short.
const READ_PAGE: usize = 1_000;

pub struct RedisLiveness {
    /// Reconnects by itself after Redis comes back.
    connection: ConnectionManager,
    /// The read-back's own connection: its replies, large under load, never sit in front of a
    /// heartbeat's answer on the multiplexed one.
    reader: ConnectionManager,
    key: String,
    /// Sent by its digest (`EVALSHA`), loaded once.
    touch: redis::Script,
}

/// The one place Redis's errors get their class: an unreachable, slow or busy server is retried
/// (503), one that refuses this registry's credentials, commands or keys stops start-up,
/// anything else is a bug.
fn classify(e: redis::RedisError) -> RegistryError {
    use redis::{ErrorKind as K, ServerErrorKind as S};
    if e.is_io_error() || e.is_timeout() || e.is_connection_refusal() || e.is_connection_dropped() {
        return RegistryError::liveness_unavailable(e);
    }
    match e.kind() {
        // Loading a dump, failing over (a replica that is read-only for now), a cluster re-forming.
        K::Server(S::BusyLoading | S::TryAgain | S::ClusterDown | S::MasterDown | S::ReadOnly) => {
            RegistryError::liveness_unavailable(e)
        }
        K::AuthenticationFailed | K::InvalidClientConfig | K::Server(S::NoPerm) | K::RESP3NotSupported => {
            RegistryError::misconfigured("Redis refuses this registry's URL or credentials", e)
        }
        // An unknown command (a Redis older than 6.2) or a key of another type (a prefix shared
        // with something else).
        K::Server(S::ResponseError) | K::Extension | K::UnexpectedReturnType => RegistryError::misconfigured(
            "Redis does not fit this registry (version 6.2 or later, its own key prefix)",
            e,
        ),
        _ => RegistryError::internal_from("a Redis call failed", e),
    }
}

impl RedisLiveness {
    /// Connects to `url`; every key this store writes starts with `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self> {
        let client = redis::Client::open(url).map_err(|e| {
            RegistryError::misconfigured("the Redis URL (--redis-url) is not `redis://HOST:PORT` or `rediss://…`", e)
        })?;
        // Fail fast while Redis is away (callers answer 503 and retry later) instead of queueing
        // behind long reconnection back-offs.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let connection = ConnectionManager::new_with_config(client.clone(), config.clone()).await.map_err(classify)?;
        let reader = ConnectionManager::new_with_config(client, config).await.map_err(classify)?;
        Ok(Self { connection, reader, key: format!("{prefix}:last-seen"), touch: redis::Script::new(TOUCH) })
    }
}

#[async_trait]
impl LivenessStore for RedisLiveness {
    async fn touch(&self, endpoint: EndpointId, at: Millis, _lease_millis: Millis) -> Result<Option<Millis>> {
        // The previous time and the new one in one step, so that racing replicas agree on which
        // touch revived the endpoint. GT: a late or replayed touch never moves the time back.
        let previous: Option<f64> = self
            .touch
            .key(&self.key)
            .arg(at)
            .arg(endpoint.to_string())
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(classify)?;
        #[expect(clippy::cast_possible_truncation, reason = "scores are whole milliseconds below 2^53")]
        Ok(previous.map(|p| p as Millis))
    }

    async fn touch_all(&self, endpoints: &[EndpointId], at: Millis) -> Result<()> {
        for chunk in endpoints.chunks(TOUCH_ALL_CHUNK) {
            let mut zadd = redis::cmd("ZADD");
            zadd.arg(&self.key).arg("GT");
            for endpoint in chunk {
                zadd.arg(at).arg(endpoint.to_string());
            }
            zadd.query_async::<()>(&mut self.connection.clone()).await.map_err(classify)?;
        }
        Ok(())
    }

    async fn forget(&self, endpoints: &[EndpointId]) -> Result<()> {
        if endpoints.is_empty() {
            return Ok(());
        }
        let members: Vec<String> = endpoints.iter().map(ToString::to_string).collect();
        redis::cmd("ZREM")
            .arg(&self.key)
            .arg(&members)
            .query_async::<()>(&mut self.connection.clone())
            .await
            .map_err(classify)
    }

    async fn last_seen(&self, endpoints: &[EndpointId]) -> Result<Vec<Option<Millis>>> {
        if endpoints.is_empty() {
            return Ok(Vec::new());
        }
        let members: Vec<String> = endpoints.iter().map(ToString::to_string).collect();
        let scores: Vec<Option<f64>> = redis::cmd("ZMSCORE")
            .arg(&self.key)
            .arg(&members)
            .query_async(&mut self.connection.clone())
            .await
            .map_err(classify)?;
        // Milliseconds since 1970 stay far below 2^53: the scores are exact.
        #[expect(clippy::cast_possible_truncation, reason = "scores are whole milliseconds below 2^53")]
        Ok(scores.into_iter().map(|s| s.map(|s| s as Millis)).collect())
    }

    async fn flush(&self) -> Result<()> {
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        redis::cmd("PING").query_async::<()>(&mut self.connection.clone()).await.map_err(classify)
    }

    fn is_shared(&self) -> bool {
        true
    }

    async fn seen_since(&self, since: Millis) -> Result<Vec<(EndpointId, Millis)>> {
        let mut seen = Vec::new();
        let mut from = since.to_string();
        loop {
            let page: Vec<(String, f64)> = redis::cmd("ZRANGE")
                .arg(&self.key)
                .arg(&from)
                .arg("+inf")
                .arg("BYSCORE")
                .arg("LIMIT")
                .arg(0)
                .arg(READ_PAGE)
                .arg("WITHSCORES")
                .query_async(&mut self.reader.clone())
                .await
                .map_err(classify)?;
            let full = page.len() == READ_PAGE;
            #[expect(clippy::cast_possible_truncation, reason = "scores are whole milliseconds below 2^53")]
            let page: Vec<(EndpointId, Millis)> =
                page.into_iter().filter_map(|(id, at)| Some((EndpointId::parse(&id).ok()?, at as Millis))).collect();
            let last = page.last().map(|(_, at)| at.to_string());
            seen.extend(page);
            let Some(last) = last.filter(|_| full) else {
                return Ok(seen);
            };
            // The next page starts at the last score, inclusive: touches of that millisecond
            // are read again, harmlessly. A page of one millisecond alone moves past it.
            from = if last == from { format!("({last}") } else { last };
        }
    }
}

#[cfg(test)]
mod tests {
    use agent_registry_core::ErrorKind;
    use redis::{ErrorKind as K, RedisError};

    use super::classify;

    #[test]
    fn an_outage_is_unavailable_and_refused_credentials_are_misconfigured() {
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(classify(refused).kind(), ErrorKind::Unavailable);
        let denied = RedisError::from((K::AuthenticationFailed, "WRONGPASS"));
        assert_eq!(classify(denied).kind(), ErrorKind::Misconfigured);
        assert!(std::error::Error::source(&classify(RedisError::from((K::Client, "bug")))).is_some());
    }
}
