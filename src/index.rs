//! The in-memory discovery index: every agent, posting lists for each indexed filter, the stable
//! order, and each endpoint's last-seen time. Discovery is answered here without touching a
//! store; heartbeats update a single atomic under a shared lock.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::error::RegistryError;
use crate::liveness::{LivenessPolicy, Millis};
use crate::model::{Agent, AgentId, EndpointId, LivenessModel, Protocol, Transport};
use crate::protocol::ProtocolDocument;
use crate::query::{DiscoveryQuery, Position, SortKey, words};
use crate::render::{Layout, LiveState, Privacy, RenderedAgent, parse_document};
use smallvec::SmallVec;

mod rank;
pub use rank::{CapabilitySummary, Ranked, task_terms};

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

/// What discovery needs to know about one endpoint, and when it was last seen.
struct EndpointSlot {
    id: EndpointId,
    protocol: Protocol,
    transport: Transport,
    model: LivenessModel,
    /// How long after `last_seen` the endpoint stays live.
    lease: Millis,
    /// How long after `last_seen` the endpoint may be evicted.
    evict_after: Millis,
    last_seen: AtomicI64,
}

impl EndpointSlot {
    fn state(&self, now: Millis) -> Option<LiveState> {
        let t = self.last_seen.load(Ordering::Acquire);
        (t != EVICTING).then(|| {
            let expires_at = t.saturating_add(self.lease);
            LiveState { is_live: now < expires_at, last_seen: t, expires_at }
        })
    }
}

/// One agent as the index holds it, in one allocation: what filtering needs, then the agent's
/// rendered JSON. A page reads twenty of these, and at 100,000 agents each is likely a cache
/// miss: one run of bytes is fetched sooner than two allocations found one through the other.
#[derive(Clone)]
pub struct Entry(triomphe::Arc<triomphe::HeaderSlice<EntryHead, str>>);

/// What an entry holds besides the JSON.
pub struct EntryHead {
    key: SortKey,
    revision: u64,
    layout: Layout,
    /// Kept beside the rendering, which only mentions it.
    origin: Option<Arc<ProtocolDocument>>,
    /// Inline for the usual one or two endpoints.
    endpoints: SmallVec<[EndpointSlot; 2]>,
}

impl std::ops::Deref for Entry {
    type Target = EntryHead;

    fn deref(&self) -> &EntryHead {
        &self.0.header
    }
}

impl Entry {
    fn rendered(&self) -> RenderedAgent<'_> {
        RenderedAgent::new(&self.0.slice, &self.0.header.layout)
    }

    /// The agent's descriptive fields, parsed from its rendering (without its protocol document).
    fn fields(&self) -> serde_json::Result<Agent> {
        parse_document(&self.rendered().document())
    }

    /// The full agent, with the protocol document it was registered with.
    fn agent(&self) -> Result<Agent, RegistryError> {
        let mut agent = self
            .fields()
            .map_err(|e| RegistryError::internal_from(format!("agent {} does not parse back", self.key.id), e))?;
        agent.origin = self.origin.as_deref().cloned();
        Ok(agent)
    }

    /// Reads what a page needs (the endpoints, then a byte every 64 of the JSON), so that
    /// fetching it from memory begins.
    fn touch(&self) -> u8 {
        let seen = self.endpoints.iter().fold(0, |x, e| x ^ e.last_seen.load(Ordering::Relaxed));
        self.rendered().touch() ^ seen.to_le_bytes()[0]
    }
}

/// One agent of a result, with the endpoints that matched and their live state.
#[derive(Clone)]
pub struct Hit {
    entry: Entry,
    pub endpoints: SmallVec<[(usize, LiveState); 2]>,
}

impl Hit {
    pub fn id(&self) -> AgentId {
        self.entry.key.id
    }

    pub fn revision(&self) -> u64 {
        self.entry.revision
    }

    /// The full agent, parsed from its rendered form (for writes and protocol documents).
    pub fn agent(&self) -> Result<Agent, RegistryError> {
        self.entry.agent()
    }

    /// The protocol document the agent was registered with.
    pub fn origin(&self) -> Option<&ProtocolDocument> {
        self.entry.origin.as_deref()
    }

    /// Position of an endpoint among the agent's endpoints.
    pub fn endpoint_index(&self, id: EndpointId) -> Option<usize> {
        self.entry.endpoints.iter().position(|e| e.id == id)
    }

    /// Live state of one endpoint, whether or not it matched.
    pub fn live_state(&self, index: usize, now: Millis) -> Option<LiveState> {
        self.entry.endpoints.get(index)?.state(now)
    }

    /// Bytes the agent's JSON needs at most.
    pub fn size(&self) -> usize {
        self.entry.rendered().size()
    }

    /// Writes the agent JSON with the endpoints of this hit (as anonymous callers may see it
    /// when `public`).
    pub fn write(&self, out: &mut Vec<u8>, public: bool) {
        self.entry.rendered().write(out, &self.endpoints, public);
    }

    pub fn write_endpoint(&self, out: &mut Vec<u8>, index: usize, live: &LiveState) {
        self.entry.rendered().write_endpoint(out, index, live);
    }
}

impl std::fmt::Debug for Hit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hit").field("id", &self.id()).field("endpoints", &self.endpoints).finish()
    }
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
    pub model: LivenessModel,
    pub lease: Millis,
}

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

/// The earliest lease end and eviction time of some endpoints. One under eviction counts as
/// due now, so that a claim given back is looked at again.
fn deadlines(endpoints: &[EndpointSlot]) -> (Millis, Millis) {
    endpoints.iter().fold((Millis::MAX, Millis::MAX), |(end, evict), e| match e.last_seen.load(Ordering::Acquire) {
        EVICTING => (Millis::MIN, Millis::MIN),
        t => (end.min(t.saturating_add(e.lease)), evict.min(t.saturating_add(e.evict_after))),
    })
}

/// Posting lists by term, with the terms also kept in order for prefix searches.
#[derive(Default)]
struct Terms {
    lists: HashMap<Arc<str>, Postings>,
    /// The same terms (shared, not copied), in order.
    sorted: BTreeSet<Arc<str>>,
}

impl Terms {
    fn insert(&mut self, term: &str, slot: Slot) {
        if let Some(list) = self.lists.get_mut(term) {
            list.insert(slot);
        } else {
            let term: Arc<str> = term.into();
            self.lists.insert(term.clone(), Postings(vec![slot]));
            self.sorted.insert(term);
        }
    }

    fn remove(&mut self, term: &str, slot: Slot) {
        if let Some(list) = self.lists.get_mut(term) {
            list.remove(slot);
            if list.0.is_empty() {
                self.lists.remove(term);
                self.sorted.remove(term);
            }
        }
    }

    /// Agents with a term starting with `prefix`.
    fn with_prefix(&self, prefix: &str) -> Set<'_> {
        let mut matching = self
            .sorted
            .range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
            .take_while(|k| k.starts_with(prefix))
            .filter_map(|k| self.lists.get(k));
        match (matching.next(), matching.next()) {
            (None, _) => Set::Owned(Postings::default()),
            (Some(one), None) => Set::Borrowed(one),
            (Some(a), Some(b)) => union([a, b].into_iter().chain(matching)),
        }
    }
}

fn insert_into<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Postings>, key: K, slot: Slot) {
    map.entry(key).or_default().insert(slot);
}

/// Like `insert_into`, allocating the key only when it is new.
fn insert_text(map: &mut HashMap<Box<str>, Postings>, key: &str, slot: Slot) {
    match map.get_mut(key) {
        Some(list) => list.insert(slot),
        None => {
            map.insert(key.into(), Postings(vec![slot]));
        }
    }
}

/// The single key a label is indexed under (label keys cannot contain `:`).
fn label_key(key: &str, value: &str) -> String {
    format!("{key}:{value}")
}

fn remove_from<K: std::hash::Hash + Eq + std::borrow::Borrow<Q>, Q: std::hash::Hash + Eq + ?Sized>(
    map: &mut HashMap<K, Postings>,
    key: &Q,
    slot: Slot,
) {
    if let Some(list) = map.get_mut(key) {
        list.remove(slot);
        if list.0.is_empty() {
            map.remove(key);
        }
    }
}

/// What an agent is indexed under; computed the same way on insert and on removal.
pub struct AgentTerms {
    capabilities: Vec<String>,
    tags: Vec<String>,
    labels: Vec<(String, String)>,
    words: Vec<String>,
    owner: String,
    protocols: Vec<Protocol>,
    transports: Vec<Transport>,
    /// The protocol of the document the agent was registered with.
    document: Option<Protocol>,
}

impl AgentTerms {
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
        let mut capabilities: Vec<String> = agent.capabilities.iter().map(|c| c.name.to_lowercase()).collect();
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
            labels: agent.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            words: text,
            owner: agent.owner_id.clone(),
            protocols,
            transports,
            document: agent.origin.as_ref().map(|o| o.protocol()),
        }
    }
}

/// An agent made ready for the index (rendered, terms computed) without touching the index,
/// so that many can be prepared in parallel at start-up.
pub struct Prepared {
    entry: Entry,
    terms: AgentTerms,
}

impl Prepared {
    /// `seen` gives last-seen times of endpoints; the first time listed for an endpoint wins.
    /// Endpoints without one count as seen when they were created.
    pub fn new(policy: &LivenessPolicy, privacy: &Privacy, agent: &Agent, seen: &[(EndpointId, Millis)]) -> Self {
        let endpoints = agent
            .endpoints
            .iter()
            .map(|e| EndpointSlot {
                id: e.id,
                protocol: e.protocol,
                transport: e.transport,
                model: e.liveness_model,
                lease: policy.lease_millis(e),
                evict_after: policy.evict_after_millis(e),
                last_seen: AtomicI64::new(
                    seen.iter().find(|(id, _)| *id == e.id).map_or_else(|| e.created_at.timestamp_millis(), |x| x.1),
                ),
            })
            .collect();
        let key = SortKey::new(&agent.name, agent.id);
        let (layout, json) = Layout::render(agent, privacy);
        let head =
            EntryHead { key, revision: agent.revision, layout, origin: agent.origin.clone().map(Arc::new), endpoints };
        let entry = Entry(triomphe::Arc::from_header_and_str(head, &json));
        Self { entry, terms: AgentTerms::of(agent) }
    }
}

fn rank_of(name: &str) -> u128 {
    let mut bytes = [0u8; 16];
    let n = name.len().min(16);
    bytes[..n].copy_from_slice(&name.as_bytes()[..n]);
    u128::from_be_bytes(bytes)
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
        let entry = self.entry(*self.by_id.get(&id)?)?;
        Some(Hit {
            entry: entry.clone(),
            endpoints: entry.endpoints.iter().enumerate().filter_map(|(i, e)| Some((i, e.state(now)?))).collect(),
        })
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
    fn due(&self, due: impl Fn(&SlotMeta) -> bool) -> impl Iterator<Item = &Entry> {
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

    /// Inserts or replaces an agent. Endpoints that stay keep their last-seen time; new ones
    /// take it from `seen`, or else their creation time.
    pub fn upsert(&mut self, agent: &Agent, seen: &[(EndpointId, Millis)]) {
        let mut known = self.remove(agent.id).map(|r| r.endpoints).unwrap_or_default();
        known.extend_from_slice(seen);
        let prepared = Prepared::new(&self.policy, &self.privacy, agent, &known);
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
        self.entries[slot as usize] = Some(entry);
    }

    /// Removes an agent; returns its endpoints' last-seen times.
    pub fn remove(&mut self, id: AgentId) -> Option<Removed> {
        let slot = self.by_id.remove(&id)?;
        let entry = self.entries[slot as usize].take()?;
        // The index keeps agents only in rendered form; their terms are recomputed from it.
        if let Ok(agent) = entry.agent() {
            self.index_terms(&AgentTerms::of(&agent), slot, false);
        }
        for e in &entry.endpoints {
            self.by_endpoint.remove(&e.id);
        }
        self.meta[slot as usize] = SlotMeta::vacant();
        self.free.push(slot);
        self.generation.fetch_add(1, Ordering::AcqRel);
        let endpoints = entry
            .endpoints
            .iter()
            .map(|e| (e.id, e.last_seen.load(Ordering::Acquire)))
            .filter(|(_, t)| *t != EVICTING)
            .collect();
        Some(Removed { endpoints })
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

    /// Every agent matching a query at `now`, in discovery order: filters (liveness included)
    /// first, so counts and pages are exact.
    pub fn matches(&self, q: &DiscoveryQuery, now: Millis) -> Matches {
        let generation = self.generation.load(Ordering::Acquire);
        let none = Matches { slots: Vec::new(), total: 0, valid_until: Millis::MAX, generation };
        // Exact filters name one posting list each; a missing list means no agent matches.
        let mut required: Vec<Option<&Postings>> = Vec::new();
        if let Some(c) = &q.capability {
            required.push(self.capabilities.lists.get(c.as_str()));
        }
        required.extend(q.tags.iter().map(|t| self.tags.get(t.as_str())));
        required.extend(q.labels.iter().map(|(k, v)| self.labels.get(label_key(k, v).as_str())));
        if let Some(o) = &q.owner {
            required.push(self.owners.get(o.as_str()));
        }
        let Some(mut sets) = required.into_iter().map(|p| p.map(Set::Borrowed)).collect::<Option<Vec<_>>>() else {
            return none;
        };
        if let Some(prefix) = &q.capability_prefix {
            sets.push(self.capabilities.with_prefix(prefix));
        }
        for w in &q.words {
            sets.push(self.words.with_prefix(w));
        }
        if !q.protocols.is_empty() {
            let documents = q.protocols.iter().filter(|_| q.with_documents && !q.live_only);
            let documents = documents.filter_map(|p| self.documents.get(p));
            sets.push(union(q.protocols.iter().filter_map(|p| self.protocols.get(p)).chain(documents)));
        }
        if !q.transports.is_empty() {
            sets.push(union(q.transports.iter().filter_map(|t| self.transports.get(t))));
        }
        if sets.iter().any(|s| s.postings().0.is_empty()) {
            return none;
        }
        sets.sort_by_key(|s| s.postings().0.len());
        let in_all = |slot: Slot, skip_first: bool| {
            sets.iter().skip(usize::from(skip_first)).all(|s| s.postings().contains(slot))
        };
        let mut valid_until = Millis::MAX;
        let mut keep = |slot: Slot| match self.qualifies_until(slot, q, now) {
            Some(until) => {
                valid_until = valid_until.min(until);
                true
            }
            None => false,
        };

        // Candidates come from the smallest posting list, or from every slot when no filter
        // names one; either way they are sorted once, and the answer is remembered.
        let mut slots: Vec<Slot> = match sets.first() {
            Some(first) => first.postings().0.iter().copied().filter(|s| in_all(*s, true) && keep(*s)).collect(),
            None => (0..self.entries.len())
                .filter_map(|s| Slot::try_from(s).ok())
                .filter(|s| self.entry(*s).is_some() && keep(*s))
                .collect(),
        };
        slots.sort_unstable_by(|a, b| self.compare(*a, *b));
        Matches { total: slots.len(), slots, valid_until, generation }
    }

    /// Whether an earlier answer still holds: nothing was written or revived since, and none
    /// of its agents has expired.
    pub fn still_valid(&self, matches: &Matches, now: Millis) -> bool {
        now < matches.valid_until && matches.generation == self.generation.load(Ordering::Acquire)
    }

    /// Answers a discovery query.
    pub fn search(&self, q: &DiscoveryQuery, now: Millis) -> SearchPage {
        self.search_in(&self.matches(q, now), q, now)
    }

    /// A page of a complete answer.
    pub fn search_in(&self, matches: &Matches, q: &DiscoveryQuery, now: Millis) -> SearchPage {
        self.page(matches, q, now).unwrap_or_else(|| unreachable_page(matches, q))
    }

    /// Discovery order of two slots: by rank, then (rarely) by the whole key.
    fn compare(&self, a: Slot, b: Slot) -> std::cmp::Ordering {
        let (ma, mb) = (&self.meta[a as usize], &self.meta[b as usize]);
        ma.rank.cmp(&mb.rank).then_with(|| match (self.entry(a), self.entry(b)) {
            (Some(ea), Some(eb)) => ea.key.cmp(&eb.key),
            _ => std::cmp::Ordering::Equal,
        })
    }

    /// Until when an agent passes the endpoint filters (`None`: it does not now). Its entry is
    /// read only when a protocol or transport filter asks about individual endpoints.
    fn qualifies_until(&self, slot: Slot, q: &DiscoveryQuery, now: Millis) -> Option<Millis> {
        if !q.live_only {
            if q.protocols.is_empty() && q.transports.is_empty() {
                return Some(Millis::MAX);
            }
            let entry = self.entry(slot)?;
            let found = entry.endpoints.iter().any(|e| endpoint_matches(e, q));
            let by_document = q.with_documents
                && q.transports.is_empty()
                && entry.origin.as_ref().is_some_and(|o| q.protocols.contains(&o.protocol()));
            return (found || by_document).then_some(Millis::MAX);
        }
        let until = if q.protocols.is_empty() && q.transports.is_empty() {
            self.meta[slot as usize].live_until.load(Ordering::Acquire)
        } else {
            self.entry(slot)?
                .endpoints
                .iter()
                .filter(|e| endpoint_matches(e, q))
                .filter_map(|e| e.state(now))
                .map(|s| s.expires_at)
                .max()?
        };
        (until > now).then_some(until)
    }

    /// One page of an answer; only the agents of the page become hits. `None` when the answer
    /// was shortened (see `Matches::first`) and the page lies beyond what it kept.
    pub fn page(&self, matches: &Matches, q: &DiscoveryQuery, now: Millis) -> Option<SearchPage> {
        let size = q.page_size;
        let kept = matches.slots.len();
        let (start, page_number) = match &q.position {
            Position::Page(n) => ((n - 1).saturating_mul(size), *n),
            Position::Offset(n) => (*n, n / size.max(1) + 1),
            Position::After(key) => {
                let rank = rank_of(&key.name);
                let before = matches.slots.partition_point(|slot| match self.meta[*slot as usize].rank.cmp(&rank) {
                    std::cmp::Ordering::Equal => self.entry(*slot).is_some_and(|e| &e.key <= key),
                    other => other.is_lt(),
                });
                (before, before / size + 1)
            }
        };
        let end = start.saturating_add(size).min(matches.total);
        if end > kept || (start >= kept && kept < matches.total) {
            return None;
        }
        let on_page = matches.slots.get(start.min(end)..end).unwrap_or_default();
        let entries: SmallVec<[&Entry; 32]> = on_page.iter().filter_map(|slot| self.entry(*slot)).collect();
        // At 100,000 agents each agent of a page is likely a cache miss. Reading one field of
        // every entry first, with loads that do not depend on one another, lets those misses
        // overlap; then the rest of each entry is fetched the same way. Agent by agent, hit
        // building and rendering would wait for each miss in turn.
        std::hint::black_box(entries.iter().fold(0u64, |x, e| x ^ e.revision));
        std::hint::black_box(entries.iter().fold(0u8, |x, e| x ^ e.touch()));
        let hits: Vec<Hit> = entries.into_iter().map(|entry| hit(entry, q, now)).collect();
        let next_cursor = (end < matches.total)
            .then(|| on_page.last().and_then(|slot| self.entry(*slot)).map(|e| e.key.to_cursor()))
            .flatten();
        Some(SearchPage { hits, total: matches.total, page: page_number, page_size: size, next_cursor })
    }
}

/// A complete answer covers every page; this only guards the type.
fn unreachable_page(matches: &Matches, q: &DiscoveryQuery) -> SearchPage {
    SearchPage { hits: Vec::new(), total: matches.total, page: 1, page_size: q.page_size, next_cursor: None }
}

fn endpoint_matches(e: &EndpointSlot, q: &DiscoveryQuery) -> bool {
    (q.protocols.is_empty() || q.protocols.contains(&e.protocol))
        && (q.transports.is_empty() || q.transports.contains(&e.transport))
}

/// The hit of an agent that qualifies: the endpoints that pass the filters, with their state.
fn hit(entry: &Entry, q: &DiscoveryQuery, now: Millis) -> Hit {
    let endpoints = entry
        .endpoints
        .iter()
        .enumerate()
        .filter(|(_, e)| endpoint_matches(e, q))
        .filter_map(|(i, e)| Some((i, e.state(now)?)))
        .filter(|(_, live)| !q.live_only || live.is_live)
        .collect();
    Hit { entry: entry.clone(), endpoints }
}

/// Every agent that matched a query, in discovery order, and how long that answer holds.
#[derive(Debug)]
pub struct Matches {
    /// The matching agents in order: all of them, or the first ones of a shortened answer.
    slots: Vec<Slot>,
    /// How many agents match.
    total: usize,
    valid_until: Millis,
    generation: u64,
}

impl Matches {
    /// Agents this answer lists.
    pub fn listed(&self) -> usize {
        self.slots.len()
    }

    /// The same answer keeping only its first `n` agents: enough for the first pages, which is
    /// what most requests ask for, at a bounded size.
    pub fn first(&self, n: usize) -> Self {
        Self { slots: self.slots[..n.min(self.slots.len())].to_vec(), ..*self }
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
