//! The in-memory discovery index: every agent, posting lists for each indexed filter, the stable
//! order, and each endpoint's last-seen time. Discovery is answered here without touching a
//! store; heartbeats update a single atomic under a shared lock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::claim::NameClaim;
use crate::liveness::{LivenessPolicy, Millis};
use crate::model::{Agent, AgentId, EndpointId, Protocol, Transport};
use crate::render::Privacy;

mod entry;
mod postings;
mod rank;
mod search;
mod sweep;
#[cfg(test)]
mod tests;

pub use entry::{AgentTerms, EndpointRef, Hit, Prepared};
use entry::{EndpointSlot, Entry, rank_of};
use postings::{Postings, Terms, insert_into, insert_text, label_key, remove_from};
pub use rank::{CapabilitySummary, Ranked, Serving, task_terms};
pub use search::{Matches, SearchPage};
pub use sweep::Census;
use sweep::deadlines;

type Slot = u32;

/// A claim namespace and a scope within it.
type ScopeKey = (Box<str>, Box<str>);

/// Marks an endpoint whose eviction is under way, so a racing heartbeat cannot be lost.
const EVICTING: Millis = Millis::MIN;

pub struct Index {
    policy: LivenessPolicy,
    privacy: Privacy,
    entries: Vec<Option<Entry>>,
    /// Per slot, what filtering and sorting read for every candidate, kept contiguous so that
    /// only the agents of a page are dereferenced.
    meta: Vec<SlotMeta>,
    /// Moves on every change that can alter an answer other than by time passing: a write, or
    /// a dead endpoint coming back to life.
    generation: AtomicU64,
    free: Vec<Slot>,
    by_id: HashMap<AgentId, Slot>,
    by_endpoint: HashMap<EndpointId, Slot>,
    capabilities: Terms,
    words: Terms,
    tags: HashMap<Box<str>, Postings>,
    labels: HashMap<Box<str>, Postings>,
    owners: HashMap<Box<str>, Postings>,
    protocols: HashMap<Protocol, Postings>,
    transports: HashMap<Transport, Postings>,
    documents: HashMap<Protocol, Postings>,
    /// The holder of every claimed name.
    claims: HashMap<NameClaim, AgentId>,
    /// Per claim namespace and scope: the owner of the first agent holding a name in it, and
    /// how many agents hold one.
    scopes: HashMap<ScopeKey, (Box<str>, usize)>,
}

/// The hot part of an entry.
struct SlotMeta {
    /// The first 16 bytes of the sort key's name, big-endian: ordering by it agrees with the
    /// key's order, and most comparisons end here.
    rank: u128,
    /// The latest expiry of the agent's endpoints (raised by every touch).
    live_until: AtomicI64,
    /// No later than the earliest lease end, and the earliest eviction time, of the agent's
    /// endpoints: the periodic sweeps for expiries and evictions read this array and visit
    /// only the entries it points them to, instead of every entry each time.
    first_end: AtomicI64,
    first_eviction: AtomicI64,
}

impl SlotMeta {
    fn vacant() -> Self {
        Self::of(0, &[])
    }

    fn of(rank: u128, endpoints: &[EndpointSlot]) -> Self {
        let live_until = endpoints.iter().map(|e| e.last_seen.load(Ordering::Acquire).saturating_add(e.lease)).max();
        let (first_end, first_eviction) = deadlines(endpoints);
        Self {
            rank,
            live_until: AtomicI64::new(live_until.unwrap_or(Millis::MIN)),
            first_end: AtomicI64::new(first_end),
            first_eviction: AtomicI64::new(first_eviction),
        }
    }
}

impl Index {
    pub fn new(policy: LivenessPolicy, privacy: Privacy) -> Self {
        Self {
            policy,
            privacy,
            entries: Vec::new(),
            meta: Vec::new(),
            generation: AtomicU64::new(0),
            free: Vec::new(),
            by_id: HashMap::new(),
            by_endpoint: HashMap::new(),
            capabilities: Terms::default(),
            words: Terms::default(),
            tags: HashMap::new(),
            labels: HashMap::new(),
            owners: HashMap::new(),
            protocols: HashMap::new(),
            transports: HashMap::new(),
            documents: HashMap::new(),
            claims: HashMap::new(),
            scopes: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// An agent with all its endpoints and their live state at `now`.
    pub fn agent(&self, id: AgentId, now: Millis) -> Option<Hit> {
        Some(Hit::of(self.entry(*self.by_id.get(&id)?)?, now))
    }

    fn entry(&self, slot: Slot) -> Option<&Entry> {
        self.entries.get(slot as usize)?.as_ref()
    }

    fn slot_of(&self, endpoint: EndpointId) -> Option<&EndpointSlot> {
        let entry = self.entry(*self.by_endpoint.get(&endpoint)?)?;
        entry.endpoints.iter().find(|e| e.id == endpoint)
    }

    /// The liveness rule of an endpoint of this agent.
    pub fn endpoint(&self, agent: AgentId, endpoint: EndpointId) -> Option<EndpointRef> {
        let entry = self.entry(*self.by_endpoint.get(&endpoint)?)?;
        if entry.key.id != agent {
            return None;
        }
        let slot = entry.endpoints.iter().find(|e| e.id == endpoint)?;
        Some(EndpointRef { model: slot.model, lease: slot.lease })
    }

    /// Whether the agent is in the index and belongs to `owner`.
    pub fn owned_by(&self, agent: AgentId, owner: &str) -> bool {
        match (self.by_id.get(&agent), self.owners.get(owner)) {
            (Some(slot), Some(list)) => list.0.binary_search(slot).is_ok(),
            _ => false,
        }
    }

    /// Inserts or replaces an agent. Endpoints that stay keep their last-seen time; new ones
    /// take it from `seen`, or else their creation time.
    pub fn upsert(&mut self, agent: &Agent, seen: &[(EndpointId, Millis)]) {
        let prepared = self.prepare(agent, seen);
        self.upsert_prepared(prepared);
    }

    /// Renders and analyses an agent for [`Index::upsert_prepared`]: the costly part of an
    /// upsert, done under a read lock so that readers do not wait for it.
    pub fn prepare(&self, agent: &Agent, seen: &[(EndpointId, Millis)]) -> Prepared {
        Prepared::new(&self.policy, &self.privacy, agent, seen)
    }

    /// Inserts or replaces a prepared agent; endpoints that stay keep their last-seen time.
    pub fn upsert_prepared(&mut self, prepared: Prepared) {
        if let Some(removed) = self.remove(prepared.entry.key.id) {
            for slot in &prepared.entry.endpoints {
                if let Some((_, known)) = removed.endpoints.iter().find(|(id, _)| *id == slot.id) {
                    slot.last_seen.store(*known, Ordering::Release);
                }
            }
        }
        self.insert(prepared);
    }

    /// Inserts an agent that is not in the index yet.
    pub fn insert(&mut self, prepared: Prepared) {
        let Prepared { entry, terms } = prepared;
        if self.by_id.contains_key(&entry.key.id) {
            self.remove(entry.key.id);
        }
        let slot = self.free.pop().unwrap_or_else(|| {
            self.entries.push(None);
            self.meta.push(SlotMeta::vacant());
            Slot::try_from(self.entries.len() - 1).unwrap_or(Slot::MAX)
        });
        self.meta[slot as usize] = SlotMeta::of(rank_of(&entry.key.name), &entry.endpoints);
        self.index_terms(&terms, slot, true);
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.by_id.insert(entry.key.id, slot);
        for e in &entry.endpoints {
            self.by_endpoint.insert(e.id, slot);
        }
        for claim in &entry.claims {
            self.claims.insert(claim.clone(), entry.key.id);
            if let Some(scope) = &claim.scope {
                let held = self.scopes.entry((claim.namespace.as_str().into(), scope.as_str().into()));
                held.or_insert_with(|| (terms.owner.as_str().into(), 0)).1 += 1;
            }
        }
        self.entries[slot as usize] = Some(entry);
    }

    /// What an owner has registered: its agents, and the bytes of their JSON and protocol
    /// documents.
    pub fn usage(&self, owner: &str) -> crate::quota::Usage {
        let Some(list) = self.owners.get(owner) else {
            return crate::quota::Usage::default();
        };
        let document_bytes = list.0.iter().filter_map(|slot| self.entry(*slot)).map(Entry::document_bytes).sum();
        crate::quota::Usage { agents: u32::try_from(list.0.len()).unwrap_or(u32::MAX), document_bytes }
    }

    /// The owner whose agents hold the names of `namespace` in `scope`, if any agent does.
    pub fn scope_owner(&self, namespace: &str, scope: &str) -> Option<&str> {
        self.scopes.get(&(namespace.into(), scope.into())).map(|(owner, _)| &**owner)
    }

    /// The agent holding a name, if any.
    pub fn claim_holder(&self, claim: &NameClaim) -> Option<AgentId> {
        self.claims.get(claim).copied()
    }

    /// An agent other than `except` whose label `key` is `value`, if any.
    pub fn labelled(&self, key: &str, value: &str, except: AgentId) -> Option<AgentId> {
        let list = self.labels.get(label_key(key, value).as_str())?;
        list.0.iter().filter_map(|slot| self.entry(*slot)).map(|e| e.key.id).find(|id| *id != except)
    }

    /// Removes an agent; returns its endpoints' last-seen times.
    pub fn remove(&mut self, id: AgentId) -> Option<Removed> {
        let slot = self.by_id.remove(&id)?;
        let entry = self.entries[slot as usize].take()?;
        // The index keeps agents only in rendered form; their terms are recomputed from it.
        match entry.agent() {
            Ok(agent) => self.index_terms(&AgentTerms::of(&agent), slot, false),
            // A defect, never a client's doing: said loudly, and the slot is taken out of every
            // posting list the slow way, so that no later agent in it inherits this one's terms.
            Err(e) => {
                tracing::error!(agent.id = %id, error = %e, "an index entry did not parse back; purging its slot");
                self.purge(slot);
            }
        }
        self.free.push(slot);
        for e in &entry.endpoints {
            self.by_endpoint.remove(&e.id);
        }
        for claim in &entry.claims {
            if self.claims.get(claim) == Some(&id) {
                self.claims.remove(claim);
            }
            if let Some(scope) = &claim.scope {
                let key = (claim.namespace.as_str().into(), scope.as_str().into());
                if let Some((_, holders)) = self.scopes.get_mut(&key) {
                    *holders -= 1;
                    if *holders == 0 {
                        self.scopes.remove(&key);
                    }
                }
            }
        }
        self.meta[slot as usize] = SlotMeta::vacant();
        self.generation.fetch_add(1, Ordering::AcqRel);
        let endpoints = entry
            .endpoints
            .iter()
            .map(|e| (e.id, e.last_seen.load(Ordering::Acquire)))
            .filter(|(_, t)| *t != EVICTING)
            .collect();
        Some(Removed { endpoints })
    }

    /// Takes a slot out of every posting list.
    fn purge(&mut self, slot: Slot) {
        let lists = (self.capabilities.lists.values_mut())
            .chain(self.words.lists.values_mut())
            .chain(self.tags.values_mut())
            .chain(self.labels.values_mut())
            .chain(self.owners.values_mut())
            .chain(self.protocols.values_mut())
            .chain(self.transports.values_mut())
            .chain(self.documents.values_mut());
        lists.for_each(|list| list.remove(slot));
        for terms in [&mut self.capabilities, &mut self.words] {
            terms.lists.retain(|_, list| !list.0.is_empty());
            let lists = &terms.lists;
            terms.sorted.retain(|term| lists.contains_key(term));
        }
        for map in [&mut self.tags, &mut self.labels, &mut self.owners] {
            map.retain(|_, list| !list.0.is_empty());
        }
        self.protocols.retain(|_, list| !list.0.is_empty());
        self.transports.retain(|_, list| !list.0.is_empty());
        self.documents.retain(|_, list| !list.0.is_empty());
    }

    fn index_terms(&mut self, terms: &AgentTerms, slot: Slot, insert: bool) {
        if insert {
            terms.capabilities.iter().for_each(|c| self.capabilities.insert(c, slot));
            terms.words.iter().for_each(|w| self.words.insert(w, slot));
            terms.tags.iter().for_each(|t| insert_text(&mut self.tags, t, slot));
            for (k, v) in &terms.labels {
                insert_text(&mut self.labels, &label_key(k, v), slot);
            }
            insert_text(&mut self.owners, &terms.owner, slot);
            terms.protocols.iter().for_each(|p| insert_into(&mut self.protocols, *p, slot));
            terms.transports.iter().for_each(|t| insert_into(&mut self.transports, *t, slot));
            terms.document.iter().for_each(|p| insert_into(&mut self.documents, *p, slot));
        } else {
            terms.capabilities.iter().for_each(|c| self.capabilities.remove(c, slot));
            terms.words.iter().for_each(|w| self.words.remove(w, slot));
            terms.tags.iter().for_each(|t| remove_from(&mut self.tags, t.as_str(), slot));
            for (k, v) in &terms.labels {
                remove_from(&mut self.labels, label_key(k, v).as_str(), slot);
            }
            remove_from(&mut self.owners, terms.owner.as_str(), slot);
            terms.protocols.iter().for_each(|p| remove_from(&mut self.protocols, p, slot));
            terms.transports.iter().for_each(|t| remove_from(&mut self.transports, t, slot));
            terms.document.iter().for_each(|p| remove_from(&mut self.documents, p, slot));
        }
    }
}

/// What remained of a removed agent.
pub struct Removed {
    pub endpoints: Vec<(EndpointId, Millis)>,
}
