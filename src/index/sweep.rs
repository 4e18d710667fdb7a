//! Heartbeats and the periodic sweeps: touching an endpoint, the expiries and evictions due,
//! and the compare-and-swap claims that let a racing heartbeat win over an eviction.

use std::sync::atomic::Ordering;

use super::entry::{EndpointSlot, Entry};
use super::{EVICTING, Index, SlotMeta};
use crate::liveness::Millis;
use crate::model::{AgentId, EndpointId};

/// Counts of the index at one instant (see [`Index::census`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Census {
    pub agents: usize,
    pub live_agents: usize,
    pub endpoints: usize,
    pub live_endpoints: usize,
}

impl Index {
    /// Records that an endpoint was seen at `at`. `None` if it is gone or being evicted;
    /// otherwise whether this brought it back to life (its lease had ended).
    pub fn touch(&self, endpoint: EndpointId, at: Millis) -> Option<bool> {
        let slot = *self.by_endpoint.get(&endpoint)?;
        let entry = self.entry(slot)?;
        let e = entry.endpoints.iter().find(|e| e.id == endpoint)?;
        let before = e
            .last_seen
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| (t != EVICTING).then_some(t.max(at)))
            .ok()?;
        let meta = &self.meta[slot as usize];
        meta.live_until.fetch_max(at.saturating_add(e.lease), Ordering::AcqRel);
        // Last-seen times only grow (an eviction claim's sentinel reads as due now, and a claim
        // given back restores the time it replaced), so deadlines read now are never later than
        // the true ones, whichever concurrent touch stores last.
        let (first_end, first_eviction) = deadlines(&entry.endpoints);
        meta.first_end.store(first_end, Ordering::Release);
        meta.first_eviction.store(first_eviction, Ordering::Release);
        let revived = before.saturating_add(e.lease) <= at;
        if revived {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        Some(revived)
    }

    /// Endpoints whose lease had not ended at `at`.
    pub fn live_endpoints(&self, at: Millis) -> Vec<EndpointId> {
        let mut out = Vec::new();
        for entry in self.entries.iter().flatten() {
            for slot in &entry.endpoints {
                let t = slot.last_seen.load(Ordering::Acquire);
                if t != EVICTING && t.saturating_add(slot.lease) > at {
                    out.push(slot.id);
                }
            }
        }
        out
    }

    /// How many agents and endpoints there are, and how many are live at `at` (an agent is live
    /// when one of its endpoints is). One pass over the entries, without allocating.
    pub fn census(&self, at: Millis) -> Census {
        let mut census = Census::default();
        for entry in self.entries.iter().flatten() {
            let mut live = 0;
            for slot in &entry.endpoints {
                let t = slot.last_seen.load(Ordering::Acquire);
                if t != EVICTING && t.saturating_add(slot.lease) > at {
                    live += 1;
                }
            }
            census.agents += 1;
            census.live_agents += usize::from(live > 0);
            census.endpoints += entry.endpoints.len();
            census.live_endpoints += live;
        }
        census
    }

    /// Endpoints whose lease ended in `(after, until]`: (agent, endpoint, when it ended).
    pub fn expired_between(&self, after: Millis, until: Millis) -> Vec<(AgentId, EndpointId, Millis)> {
        let mut out = Vec::new();
        for entry in self.due(|m| m.first_end.load(Ordering::Acquire) <= until) {
            for slot in &entry.endpoints {
                let t = slot.last_seen.load(Ordering::Acquire);
                let ended = t.saturating_add(slot.lease);
                if t != EVICTING && after < ended && ended <= until {
                    out.push((entry.key.id, slot.id, ended));
                }
            }
        }
        out
    }

    /// The entries whose slot passes `due`, found without reading the others.
    pub(super) fn due(&self, due: impl Fn(&SlotMeta) -> bool) -> impl Iterator<Item = &Entry> {
        self.meta.iter().zip(&self.entries).filter(move |(m, _)| due(m)).filter_map(|(_, e)| e.as_ref())
    }

    /// Claims an endpoint for eviction if it was not seen since `observed`.
    pub fn claim_for_eviction(&self, endpoint: EndpointId, observed: Millis) -> bool {
        self.slot_of(endpoint).is_some_and(|slot| {
            slot.last_seen.compare_exchange(observed, EVICTING, Ordering::AcqRel, Ordering::Acquire).is_ok()
        })
    }

    /// Gives back a claim when the eviction could not be stored.
    pub fn release_claim(&self, endpoint: EndpointId, observed: Millis) {
        if let Some(slot) = self.slot_of(endpoint) {
            let _ = slot.last_seen.compare_exchange(EVICTING, observed, Ordering::AcqRel, Ordering::Acquire);
        }
    }

    /// Endpoints that may be evicted at `now`: (agent, endpoint, last seen).
    pub fn evictable(&self, now: Millis) -> Vec<(AgentId, EndpointId, Millis)> {
        let mut out = Vec::new();
        for entry in self.due(|m| m.first_eviction.load(Ordering::Acquire) <= now) {
            for slot in &entry.endpoints {
                let t = slot.last_seen.load(Ordering::Acquire);
                if t != EVICTING && now >= t.saturating_add(slot.evict_after) {
                    out.push((entry.key.id, slot.id, t));
                }
            }
        }
        out
    }
}

/// The earliest lease end and eviction time of some endpoints. One under eviction counts as
/// due now, so that a claim given back is looked at again.
pub(super) fn deadlines(endpoints: &[EndpointSlot]) -> (Millis, Millis) {
    endpoints.iter().fold((Millis::MAX, Millis::MAX), |(end, evict), e| match e.last_seen.load(Ordering::Acquire) {
        EVICTING => (Millis::MIN, Millis::MIN),
        t => (end.min(t.saturating_add(e.lease)), evict.min(t.saturating_add(e.evict_after))),
    })
}
