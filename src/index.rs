//! The in-memory discovery index: every agent, posting lists for each indexed filter, the stable
//! order, and each endpoint's last-seen time. Discovery is answered here without touching a
//! store; heartbeats update a single atomic under a shared lock.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::liveness::{LivenessPolicy, Millis};
use crate::model::{Agent, AgentId, EndpointId, Protocol, Transport};
use crate::query::{DiscoveryQuery, Position, SortKey, words};

type Slot = u32;

/// Marks an endpoint whose eviction is under way, so a racing heartbeat cannot be lost.
const EVICTING: Millis = Millis::MIN;

/// A sorted list of slots.
#[derive(Default, Debug)]
struct Postings(Vec<Slot>);

impl Postings {
    fn insert(&mut self, slot: Slot) {
        if let Err(at) = self.0.binary_search(&slot) {
            self.0.insert(at, slot);
        }
    }
    fn remove(&mut self, slot: Slot) {
        if let Ok(at) = self.0.binary_search(&slot) {
            self.0.remove(at);
        }
    }
    fn contains(&self, slot: Slot) -> bool {
        self.0.binary_search(&slot).is_ok()
    }
}

struct Entry {
    agent: Arc<Agent>,
    key: SortKey,
    /// Last-seen time per endpoint, parallel to `agent.endpoints`.
    last_seen: Arc<[AtomicI64]>,
}

/// One agent of a result, with the endpoints that matched and when each was last seen.
#[derive(Clone, Debug)]
pub struct Hit {
    pub agent: Arc<Agent>,
    /// Indexes into `agent.endpoints` with their last-seen times.
    pub endpoints: Vec<(usize, Millis)>,
}

/// One page of a discovery result, counted after every filter (liveness included).
#[derive(Debug)]
pub struct SearchPage {
    pub hits: Vec<Hit>,
    pub total: usize,
    pub page: usize,
    pub page_size: usize,
    /// Cursor for the page after this one, if there is one.
    pub next_cursor: Option<String>,
}

/// Where an endpoint is, found by its id.
pub struct EndpointRef {
    pub agent: Arc<Agent>,
    pub index: usize,
    pub last_seen: Millis,
}

#[derive(Default)]
pub struct Index {
    entries: Vec<Option<Entry>>,
    free: Vec<Slot>,
    by_id: HashMap<AgentId, Slot>,
    by_endpoint: HashMap<EndpointId, Slot>,
    order: BTreeMap<SortKey, Slot>,
    capabilities: BTreeMap<String, Postings>,
    tags: HashMap<String, Postings>,
    labels: HashMap<(String, String), Postings>,
    owners: HashMap<String, Postings>,
    words: BTreeMap<String, Postings>,
    protocols: HashMap<Protocol, Postings>,
    transports: HashMap<Transport, Postings>,
}

/// The index terms of an agent; computed the same way on insert and on removal.
struct Terms {
    capabilities: Vec<String>,
    tags: Vec<String>,
    labels: Vec<(String, String)>,
    words: Vec<String>,
    protocols: Vec<Protocol>,
    transports: Vec<Transport>,
}

impl Terms {
    fn of(agent: &Agent) -> Self {
        let mut tags: Vec<String> = agent.tags.iter().map(|t| t.to_lowercase()).collect();
        let mut text = words(&agent.name);
        text.extend(agent.description.as_deref().map(words).unwrap_or_default());
        for cap in &agent.capabilities {
            tags.extend(cap.tags.iter().map(|t| t.to_lowercase()));
            text.extend(words(&cap.name));
            text.extend(cap.description.as_deref().map(words).unwrap_or_default());
        }
        for tag in &tags {
            text.extend(words(tag));
        }
        let mut capabilities: Vec<String> = agent
            .capabilities
            .iter()
            .map(|c| c.name.to_lowercase())
            .collect();
        let mut protocols: Vec<Protocol> = agent.endpoints.iter().map(|e| e.protocol).collect();
        let mut transports: Vec<Transport> = agent.endpoints.iter().map(|e| e.transport).collect();
        for v in [&mut capabilities, &mut tags, &mut text] {
            v.sort_unstable();
            v.dedup();
        }
        protocols.sort_unstable_by_key(|p| p.as_str());
        protocols.dedup();
        transports.sort_unstable_by_key(|t| t.as_str());
        transports.dedup();
        Self {
            capabilities,
            tags,
            labels: agent
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            words: text,
            protocols,
            transports,
        }
    }
}

/// A candidate set: borrowed posting list or a merged one.
enum Set<'a> {
    Borrowed(&'a Postings),
    Owned(Postings),
}

impl Set<'_> {
    fn postings(&self) -> &Postings {
        match self {
            Set::Borrowed(p) => p,
            Set::Owned(p) => p,
        }
    }
}

impl Index {
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn agent(&self, id: AgentId) -> Option<Hit> {
        let entry = self.entry(*self.by_id.get(&id)?)?;
        Some(Hit {
            agent: entry.agent.clone(),
            endpoints: entry
                .last_seen
                .iter()
                .enumerate()
                .map(|(i, t)| (i, t.load(Ordering::Acquire)))
                .collect(),
        })
    }

    fn entry(&self, slot: Slot) -> Option<&Entry> {
        self.entries.get(slot as usize)?.as_ref()
    }

    pub fn endpoint(&self, agent: AgentId, endpoint: EndpointId) -> Option<EndpointRef> {
        let slot = *self.by_endpoint.get(&endpoint)?;
        let entry = self.entry(slot)?;
        if entry.agent.id != agent {
            return None;
        }
        let index = entry
            .agent
            .endpoints
            .iter()
            .position(|e| e.id == endpoint)?;
        Some(EndpointRef {
            agent: entry.agent.clone(),
            index,
            last_seen: entry.last_seen[index].load(Ordering::Acquire),
        })
    }

    /// Records that an endpoint was seen at `at`. Returns false if it is gone or being evicted.
    pub fn touch(&self, endpoint: EndpointId, at: Millis) -> bool {
        let Some(entry) = self.by_endpoint.get(&endpoint).and_then(|s| self.entry(*s)) else {
            return false;
        };
        let Some(i) = entry.agent.endpoints.iter().position(|e| e.id == endpoint) else {
            return false;
        };
        entry.last_seen[i]
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                (t != EVICTING).then_some(t.max(at))
            })
            .is_ok()
    }

    /// Claims an endpoint for eviction if it was not seen since `observed`.
    pub fn claim_for_eviction(&self, endpoint: EndpointId, observed: Millis) -> bool {
        self.last_seen_cell(endpoint).is_some_and(|c| {
            c.compare_exchange(observed, EVICTING, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        })
    }

    /// Gives back a claim when the eviction could not be stored.
    pub fn release_claim(&self, endpoint: EndpointId, observed: Millis) {
        if let Some(c) = self.last_seen_cell(endpoint) {
            let _ = c.compare_exchange(EVICTING, observed, Ordering::AcqRel, Ordering::Acquire);
        }
    }

    fn last_seen_cell(&self, endpoint: EndpointId) -> Option<&AtomicI64> {
        let entry = self.entry(*self.by_endpoint.get(&endpoint)?)?;
        let i = entry
            .agent
            .endpoints
            .iter()
            .position(|e| e.id == endpoint)?;
        Some(&entry.last_seen[i])
    }

    /// Endpoints that may be evicted at `now`: (agent, endpoint, last seen).
    pub fn evictable(
        &self,
        policy: &LivenessPolicy,
        now: Millis,
    ) -> Vec<(AgentId, EndpointId, Millis)> {
        let mut out = Vec::new();
        for entry in self.entries.iter().flatten() {
            for (ep, t) in entry.agent.endpoints.iter().zip(entry.last_seen.iter()) {
                let t = t.load(Ordering::Acquire);
                if t != EVICTING && now >= policy.evict_at(ep, t) {
                    out.push((entry.agent.id, ep.id, t));
                }
            }
        }
        out
    }

    /// Inserts or replaces an agent. Endpoints that stay keep their last-seen time; new ones
    /// take it from `seen` (or `default_seen`).
    pub fn upsert(
        &mut self,
        agent: Arc<Agent>,
        seen: &[(EndpointId, Millis)],
        default_seen: Millis,
    ) {
        let previous = self.remove(agent.id);
        let last_seen: Arc<[AtomicI64]> = agent
            .endpoints
            .iter()
            .map(|e| {
                let kept = previous
                    .as_ref()
                    .and_then(|p| p.endpoints.iter().find(|(id, _)| *id == e.id))
                    .map(|x| x.1);
                let fresh = seen.iter().find(|(id, _)| *id == e.id).map(|x| x.1);
                AtomicI64::new(kept.or(fresh).unwrap_or(default_seen))
            })
            .collect();
        let slot = self.free.pop().unwrap_or_else(|| {
            self.entries.push(None);
            (self.entries.len() - 1) as Slot
        });
        let terms = Terms::of(&agent);
        self.each_posting(&terms, &agent.owner_id, |p| p.insert(slot));
        let key = SortKey::new(&agent.name, agent.id);
        self.order.insert(key.clone(), slot);
        self.by_id.insert(agent.id, slot);
        for e in &agent.endpoints {
            self.by_endpoint.insert(e.id, slot);
        }
        self.entries[slot as usize] = Some(Entry {
            agent,
            key,
            last_seen,
        });
    }

    /// Removes an agent; returns its endpoints' last-seen times.
    pub fn remove(&mut self, id: AgentId) -> Option<Removed> {
        let slot = self.by_id.remove(&id)?;
        let entry = self.entries[slot as usize].take()?;
        let terms = Terms::of(&entry.agent);
        self.each_posting(&terms, &entry.agent.owner_id, |p| p.remove(slot));
        self.order.remove(&entry.key);
        for e in &entry.agent.endpoints {
            self.by_endpoint.remove(&e.id);
        }
        self.free.push(slot);
        let endpoints = entry
            .agent
            .endpoints
            .iter()
            .zip(entry.last_seen.iter())
            .map(|(e, t)| (e.id, t.load(Ordering::Acquire)))
            .filter(|(_, t)| *t != EVICTING)
            .collect();
        Some(Removed { endpoints })
    }

    fn each_posting(&mut self, terms: &Terms, owner: &str, mut f: impl FnMut(&mut Postings)) {
        for c in &terms.capabilities {
            f(self.capabilities.entry(c.clone()).or_default());
        }
        for t in &terms.tags {
            f(self.tags.entry(t.clone()).or_default());
        }
        for l in &terms.labels {
            f(self.labels.entry(l.clone()).or_default());
        }
        for w in &terms.words {
            f(self.words.entry(w.clone()).or_default());
        }
        for p in &terms.protocols {
            f(self.protocols.entry(*p).or_default());
        }
        for t in &terms.transports {
            f(self.transports.entry(*t).or_default());
        }
        f(self.owners.entry(owner.to_owned()).or_default());
        // Drop emptied lists so the maps do not grow without bound.
        prune(&mut self.capabilities, &terms.capabilities);
        prune(&mut self.words, &terms.words);
        prune_hash(&mut self.tags, &terms.tags);
        prune_hash(&mut self.labels, &terms.labels);
        if self.owners.get(owner).is_some_and(|p| p.0.is_empty()) {
            self.owners.remove(owner);
        }
    }

    /// Answers a discovery query, exactly: filters (liveness included) first, then the page.
    pub fn search(&self, q: &DiscoveryQuery, policy: &LivenessPolicy, now: Millis) -> SearchPage {
        let mut sets: Vec<Set<'_>> = Vec::new();
        let mut nothing = false;
        if let Some(c) = &q.capability {
            match self.capabilities.get(c) {
                Some(p) => sets.push(Set::Borrowed(p)),
                None => nothing = true,
            }
        }
        if let Some(prefix) = &q.capability_prefix {
            sets.push(prefix_union(&self.capabilities, prefix));
        }
        for t in &q.tags {
            match self.tags.get(t) {
                Some(p) => sets.push(Set::Borrowed(p)),
                None => nothing = true,
            }
        }
        for l in &q.labels {
            match self.labels.get(l) {
                Some(p) => sets.push(Set::Borrowed(p)),
                None => nothing = true,
            }
        }
        if let Some(o) = &q.owner {
            match self.owners.get(o) {
                Some(p) => sets.push(Set::Borrowed(p)),
                None => nothing = true,
            }
        }
        for w in &q.words {
            sets.push(prefix_union(&self.words, w));
        }
        if !q.protocols.is_empty() {
            sets.push(union(
                q.protocols.iter().filter_map(|p| self.protocols.get(p)),
            ));
        }
        if !q.transports.is_empty() {
            sets.push(union(
                q.transports.iter().filter_map(|t| self.transports.get(t)),
            ));
        }
        if nothing || sets.iter().any(|s| s.postings().0.is_empty()) {
            return self.paginate(Vec::new().into_iter(), q);
        }
        sets.sort_by_key(|s| s.postings().0.len());
        let matches = |slot: Slot, skip_first: bool| {
            sets.iter()
                .skip(usize::from(skip_first))
                .all(|s| s.postings().contains(slot))
        };

        // A small candidate set is sorted; a large one is read in the stored order instead.
        match sets.first() {
            Some(first) if first.postings().0.len() * 8 < self.len().max(1) => {
                let mut hits: Vec<(&SortKey, Hit)> = first
                    .postings()
                    .0
                    .iter()
                    .filter(|s| matches(**s, true))
                    .filter_map(|s| self.entry(*s))
                    .filter_map(|e| self.evaluate(e, q, policy, now).map(|h| (&e.key, h)))
                    .collect();
                hits.sort_unstable_by(|a, b| a.0.cmp(b.0));
                self.paginate(hits.into_iter(), q)
            }
            _ => {
                let hits = self
                    .order
                    .iter()
                    .filter(|(_, slot)| matches(**slot, false))
                    .filter_map(|(key, slot)| self.entry(*slot).map(|e| (key, e)))
                    .filter_map(|(key, e)| self.evaluate(e, q, policy, now).map(|h| (key, h)));
                self.paginate(hits, q)
            }
        }
    }

    /// The endpoints of an agent that pass the endpoint filters, or `None` if the agent fails.
    fn evaluate(
        &self,
        entry: &Entry,
        q: &DiscoveryQuery,
        policy: &LivenessPolicy,
        now: Millis,
    ) -> Option<Hit> {
        let all = entry
            .agent
            .endpoints
            .iter()
            .zip(entry.last_seen.iter())
            .enumerate();
        let endpoints: Vec<(usize, Millis)> = if q.filters_endpoints() {
            all.filter(|(_, (e, t))| {
                (q.protocols.is_empty() || q.protocols.contains(&e.protocol))
                    && (q.transports.is_empty() || q.transports.contains(&e.transport))
                    && (!q.live_only || {
                        let t = t.load(Ordering::Acquire);
                        t != EVICTING && policy.is_live(e, t, now)
                    })
            })
            .map(|(i, (_, t))| (i, t.load(Ordering::Acquire)))
            .collect()
        } else {
            all.map(|(i, (_, t))| (i, t.load(Ordering::Acquire)))
                .collect()
        };
        if q.filters_endpoints() && endpoints.is_empty() {
            return None;
        }
        Some(Hit {
            agent: entry.agent.clone(),
            endpoints,
        })
    }

    /// Counts every hit and keeps only the requested page.
    fn paginate<'k>(
        &self,
        hits: impl Iterator<Item = (&'k SortKey, Hit)>,
        q: &DiscoveryQuery,
    ) -> SearchPage {
        let size = q.page_size;
        let mut total = 0;
        let mut before = 0;
        let mut page = Vec::with_capacity(size);
        let mut last_key = None;
        let mut has_more = false;
        for (key, hit) in hits {
            total += 1;
            let in_page = match &q.position {
                Position::Page(n) => total > (n - 1) * size,
                Position::After(after) => {
                    if key <= after {
                        before += 1;
                        false
                    } else {
                        true
                    }
                }
            };
            if in_page {
                if page.len() < size {
                    page.push(hit);
                    last_key = Some(key);
                } else {
                    has_more = true;
                }
            }
        }
        let page_number = match &q.position {
            Position::Page(n) => *n,
            Position::After(_) => before / size + 1,
        };
        SearchPage {
            hits: page,
            total,
            page: page_number,
            page_size: size,
            next_cursor: if has_more {
                last_key.map(SortKey::to_cursor)
            } else {
                None
            },
        }
    }
}

/// What remained of a removed agent.
pub struct Removed {
    pub endpoints: Vec<(EndpointId, Millis)>,
}

fn union<'a>(lists: impl Iterator<Item = &'a Postings>) -> Set<'a> {
    let mut all: Vec<Slot> = lists.flat_map(|p| p.0.iter().copied()).collect();
    all.sort_unstable();
    all.dedup();
    Set::Owned(Postings(all))
}

fn prefix_union<'a>(map: &'a BTreeMap<String, Postings>, prefix: &str) -> Set<'a> {
    let mut matching = map
        .range(prefix.to_owned()..)
        .take_while(|(k, _)| k.starts_with(prefix))
        .map(|(_, p)| p);
    match (matching.next(), matching.next()) {
        (None, _) => Set::Owned(Postings::default()),
        (Some(one), None) => Set::Borrowed(one),
        (Some(a), Some(b)) => union([a, b].into_iter().chain(matching)),
    }
}

fn prune(map: &mut BTreeMap<String, Postings>, keys: &[String]) {
    for k in keys {
        if map.get(k).is_some_and(|p| p.0.is_empty()) {
            map.remove(k);
        }
    }
}

fn prune_hash<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Postings>, keys: &[K]) {
    for k in keys {
        if map.get(k).is_some_and(|p| p.0.is_empty()) {
            map.remove(k);
        }
    }
}
