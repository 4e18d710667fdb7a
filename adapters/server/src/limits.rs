//! Rate limits: per client address on discovery (REST routes and MCP tools alike), per key and
//! per address on management routes. A refusal is a `RateLimited`, which each front door renders
//! its own way (REST: `429` with `Retry-After`; MCP: an `isError` result). Behind a proxy, the
//! client address is taken from `X-Forwarded-For` only when the connection comes from a
//! configured trusted proxy.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;

/// A request refused by a rate limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("too many requests; retry in {retry_after} s")]
pub struct RateLimited {
    /// Whole seconds until a retry can succeed, at least 1.
    pub retry_after: u64,
}

/// Requests per second (with a burst of twice that); `0` turns a limit off.
#[derive(Clone, Copy, Debug)]
pub struct Rates {
    pub discovery_per_address: u32,
    pub management_per_key: u32,
    pub management_per_address: u32,
}

pub struct Limits {
    discovery: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_key: Option<DefaultKeyedRateLimiter<String>>,
    per_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    trusted_proxies: Vec<IpNet>,
}

fn limiter<K: std::hash::Hash + Eq + Clone>(per_second: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(per_second.saturating_mul(2)).unwrap_or(rate);
    Some(RateLimiter::dashmap(Quota::per_second(rate).allow_burst(burst)))
}

/// Whether `key` may go on now; a refusal is counted under `limit`.
fn check<K: std::hash::Hash + Eq + Clone>(
    limiter: Option<&DefaultKeyedRateLimiter<K>>,
    key: &K,
    limit: &'static str,
) -> Result<(), RateLimited> {
    let Some(limiter) = limiter else { return Ok(()) };
    limiter.check_key(key).map_err(|not_until| {
        crate::metrics::rate_limited(limit);
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        RateLimited { retry_after: (wait.as_secs_f64().ceil() as u64).max(1) }
    })
}

impl Limits {
    pub fn new(rates: Rates, trusted_proxies: Vec<IpNet>) -> Arc<Self> {
        Arc::new(Self {
            discovery: limiter(rates.discovery_per_address),
            per_key: limiter(rates.management_per_key),
            per_address: limiter(rates.management_per_address),
            trusted_proxies,
        })
    }

    /// The client's address: the connection's, or, when that is a trusted proxy, the nearest
    /// untrusted address in `X-Forwarded-For`.
    pub fn client(&self, parts: &Parts) -> Option<IpAddr> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>()?.0.ip();
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        let forwarded = parts.headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
        let hops: Vec<IpAddr> = forwarded.flat_map(|v| v.split(',')).filter_map(|h| h.trim().parse().ok()).collect();
        Some(hops.into_iter().rev().find(|ip| !self.is_trusted(*ip)).unwrap_or(peer))
    }

    /// Whether the request came through a configured trusted proxy (whose forwarded headers
    /// may then be believed).
    pub fn from_trusted_proxy(&self, parts: &Parts) -> bool {
        parts.extensions.get::<ConnectInfo<SocketAddr>>().is_some_and(|c| self.is_trusted(c.0.ip()))
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    pub fn discovery(&self, client: Option<IpAddr>) -> Result<(), RateLimited> {
        client.map_or(Ok(()), |ip| check(self.discovery.as_ref(), &ip, "discovery"))
    }

    /// Before credentials are checked: also slows down guessing keys.
    pub fn management_address(&self, client: Option<IpAddr>) -> Result<(), RateLimited> {
        client.map_or(Ok(()), |ip| check(self.per_address.as_ref(), &ip, "management_address"))
    }

    pub fn management_key(&self, actor: &str) -> Result<(), RateLimited> {
        check(self.per_key.as_ref(), &actor.to_owned(), "management_key")
    }

    /// Forgets clients and keys that have been idle long enough to be back at a full burst.
    pub fn forget_idle(&self) {
        self.discovery.iter().for_each(|l| l.retain_recent());
        self.per_key.iter().for_each(|l| l.retain_recent());
        self.per_address.iter().for_each(|l| l.retain_recent());
    }
}
