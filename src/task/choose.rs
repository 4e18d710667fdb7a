//! Which endpoint a task goes to first, and which next when one fails before accepting it: the
//! caller's protocol preference, then the least loaded (tasks this registry has in flight on
//! it), with endpoints that failed within the circuit-breaker window put last (tried only when
//! nothing else is left), and ties broken by a hash of task and endpoint ids, so equal
//! endpoints share the work without a shared counter.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::model::{AgentId, Endpoint, EndpointId, Protocol};
use crate::protocol::ProtocolDocument;
use crate::task::TaskId;
use crate::task::invoke::Target;

/// A live endpoint of a matching agent.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub agent_id: AgentId,
    pub endpoint: Endpoint,
    pub document: Option<ProtocolDocument>,
}

impl Candidate {
    pub fn target(&self) -> Target {
        Target {
            protocol: self.endpoint.protocol,
            transport: self.endpoint.transport,
            address: self.endpoint.address.clone(),
            protocol_metadata: self.endpoint.protocol_metadata.clone(),
            document: self.document.clone(),
        }
    }
}

#[derive(Default)]
struct Load {
    in_flight: u32,
    failed_at: Option<Instant>,
}

/// What this registry knows of each endpoint's load and recent failures.
#[derive(Default)]
pub struct Loads {
    endpoints: Mutex<HashMap<EndpointId, Load>>,
}

/// Counts one task in flight on an endpoint for as long as it lives.
pub struct InFlight<'a> {
    loads: &'a Loads,
    endpoint: EndpointId,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut endpoints = self.loads.endpoints.lock();
        if let Some(load) = endpoints.get_mut(&self.endpoint) {
            load.in_flight = load.in_flight.saturating_sub(1);
            if load.in_flight == 0 && load.failed_at.is_none() {
                endpoints.remove(&self.endpoint);
            }
        }
    }
}

impl Loads {
    /// A task starts on `endpoint`.
    pub fn start(&self, endpoint: EndpointId) -> InFlight<'_> {
        self.endpoints.lock().entry(endpoint).or_default().in_flight += 1;
        InFlight { loads: self, endpoint }
    }

    /// `endpoint` failed before accepting a task.
    pub fn failed(&self, endpoint: EndpointId, now: Instant) {
        self.endpoints.lock().entry(endpoint).or_default().failed_at = Some(now);
    }

    /// Forgets failures older than `window` (so the map does not grow without bound).
    pub fn forget_before(&self, now: Instant, window: Duration) {
        self.endpoints.lock().retain(|_, load| {
            if load.failed_at.is_some_and(|at| now.duration_since(at) > window) {
                load.failed_at = None;
            }
            load.in_flight > 0 || load.failed_at.is_some()
        });
    }

    /// The candidates in the order they are tried.
    pub fn order(
        &self,
        mut candidates: Vec<Candidate>,
        preference: Option<Protocol>,
        task: TaskId,
        now: Instant,
        window: Duration,
    ) -> Vec<Candidate> {
        let endpoints = self.endpoints.lock();
        let key = |c: &Candidate| {
            let load = endpoints.get(&c.endpoint.id);
            let tripped = load.and_then(|l| l.failed_at).is_some_and(|at| now.duration_since(at) <= window);
            let unpreferred = preference.is_some_and(|p| p != c.endpoint.protocol);
            let in_flight = load.map_or(0, |l| l.in_flight);
            (tripped, unpreferred, in_flight, task.0.as_u128() ^ c.endpoint.id.0.as_u128())
        };
        candidates.sort_by_cached_key(key);
        candidates
    }
}
