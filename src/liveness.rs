//! Liveness rules. An endpoint is live from the moment it was last seen (registration, renew or
//! heartbeat) until its lease ends: `ttlSeconds` for Ephemeral endpoints, 2.5 × the heartbeat
//! interval for Persistent ones. A dead endpoint is evicted once it has been dead for a while.

use crate::model::{Endpoint, LivenessModel};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// Persistent endpoints stay live for this many heartbeat intervals (in tenths) after the last one.
const PERSISTENT_LEASE_TENTHS: i64 = 25;

/// Tunable liveness settings; validated once at start-up.
#[derive(Clone, Debug)]
pub struct LivenessPolicy {
    pub default_ttl_seconds: u32,
    pub default_heartbeat_interval_seconds: u32,
    pub min_ttl_seconds: u32,
    pub max_ttl_seconds: u32,
    pub min_heartbeat_interval_seconds: u32,
    pub max_heartbeat_interval_seconds: u32,
    /// How long a dead Ephemeral endpoint stays listed (as not live) before it is evicted.
    pub ephemeral_grace_seconds: u32,
    /// A Persistent endpoint is evicted after this many heartbeat intervals without one.
    pub evict_after_missed_heartbeats: u32,
}

impl Default for LivenessPolicy {
    fn default() -> Self {
        Self {
            default_ttl_seconds: 300,
            default_heartbeat_interval_seconds: 30,
            min_ttl_seconds: 1,
            max_ttl_seconds: 86_400,
            min_heartbeat_interval_seconds: 1,
            max_heartbeat_interval_seconds: 3_600,
            ephemeral_grace_seconds: 300,
            evict_after_missed_heartbeats: 3,
        }
    }
}

impl LivenessPolicy {
    /// How long after `last_seen` the endpoint stays live.
    pub fn lease_millis(&self, endpoint: &Endpoint) -> Millis {
        match endpoint.liveness_model {
            LivenessModel::Ephemeral => i64::from(endpoint.ttl_seconds.unwrap_or(self.default_ttl_seconds)) * 1000,
            LivenessModel::Persistent => {
                let interval = endpoint.heartbeat_interval_seconds.unwrap_or(self.default_heartbeat_interval_seconds);
                i64::from(interval) * 100 * PERSISTENT_LEASE_TENTHS
            }
        }
    }

    /// How long after it was last seen an endpoint may be evicted (never before it expires).
    pub fn evict_after_millis(&self, endpoint: &Endpoint) -> Millis {
        let lease = self.lease_millis(endpoint);
        let evict = match endpoint.liveness_model {
            LivenessModel::Ephemeral => lease.saturating_add(i64::from(self.ephemeral_grace_seconds) * 1000),
            LivenessModel::Persistent => {
                let interval =
                    i64::from(endpoint.heartbeat_interval_seconds.unwrap_or(self.default_heartbeat_interval_seconds));
                interval * 1000 * i64::from(self.evict_after_missed_heartbeats)
            }
        };
        evict.max(lease)
    }
}
