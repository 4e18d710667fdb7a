//! One agent as the index holds it: its endpoints' slots with their last-seen atomics, the
//! rendered JSON in the same allocation, the terms it is indexed under, and a hit of a result.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use smallvec::SmallVec;

use super::EVICTING;
use crate::claim::NameClaim;
use crate::error::RegistryError;
use crate::liveness::{LivenessPolicy, Millis};
use crate::model::{Agent, AgentId, EndpointId, LivenessModel, Protocol, Transport};
use crate::protocol::ProtocolDocument;
use crate::query::{SortKey, words};
use crate::render::{Layout, LiveState, Privacy, RenderedAgent, parse_document};

/// What discovery needs to know about one endpoint, and when it was last seen.
pub(super) struct EndpointSlot {
    pub(super) id: EndpointId,
    pub(super) protocol: Protocol,
    pub(super) transport: Transport,
    pub(super) model: LivenessModel,
    /// How long after `last_seen` the endpoint stays live.
    pub(super) lease: Millis,
    /// How long after `last_seen` the endpoint may be evicted.
    pub(super) evict_after: Millis,
    pub(super) last_seen: AtomicI64,
}

impl EndpointSlot {
    pub(super) fn state(&self, now: Millis) -> Option<LiveState> {
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
    pub(super) key: SortKey,
    pub(super) revision: u64,
    pub(super) layout: Layout,
    /// Kept beside the rendering, which only mentions it.
    pub(super) origin: Option<Arc<ProtocolDocument>>,
    /// Kept beside the rendering, which does not show them.
    pub(super) claims: Box<[NameClaim]>,
    /// Inline for the usual one or two endpoints.
    pub(super) endpoints: SmallVec<[EndpointSlot; 2]>,
}

impl std::ops::Deref for Entry {
    type Target = EntryHead;

    fn deref(&self) -> &EntryHead {
        &self.0.header
    }
}

impl Entry {
    /// What the agent counts against its owner's quota: its JSON and its protocol document.
    pub(super) fn document_bytes(&self) -> u64 {
        let origin = self.origin.as_ref().map_or(0, |o| o.text.len());
        u64::try_from(self.0.slice.len() + origin).unwrap_or(u64::MAX)
    }

    pub(super) fn rendered(&self) -> RenderedAgent<'_> {
        RenderedAgent::new(&self.0.slice, &self.0.header.layout)
    }

    /// The agent's descriptive fields, parsed from its rendering (without its protocol document).
    pub(super) fn fields(&self) -> serde_json::Result<Agent> {
        parse_document(&self.rendered().document())
    }

    /// The full agent, with the protocol document it was registered with.
    pub(super) fn agent(&self) -> Result<Agent, RegistryError> {
        let mut agent = self
            .fields()
            .map_err(|e| RegistryError::internal_from(format!("agent {} does not parse back", self.key.id), e))?;
        agent.origin = self.origin.as_deref().cloned();
        agent.claims = self.claims.to_vec();
        Ok(agent)
    }

    /// Reads what a page needs (the endpoints, then a byte every 64 of the JSON), so that
    /// fetching it from memory begins.
    pub(super) fn touch(&self) -> u8 {
        let seen = self.endpoints.iter().fold(0, |x, e| x ^ e.last_seen.load(Ordering::Relaxed));
        self.rendered().touch() ^ seen.to_le_bytes()[0]
    }
}

/// One agent of a result, with the endpoints that matched and their live state.
#[derive(Clone)]
pub struct Hit {
    pub(super) entry: Entry,
    pub endpoints: SmallVec<[(usize, LiveState); 2]>,
}

impl Hit {
    /// An entry with its endpoints' liveness at `now`.
    pub(super) fn of(entry: &Entry, now: Millis) -> Self {
        let endpoints = entry.endpoints.iter().enumerate().filter_map(|(i, e)| Some((i, e.state(now)?))).collect();
        Self { entry: entry.clone(), endpoints }
    }

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

/// Where an endpoint is, found by its id.
pub struct EndpointRef {
    pub model: LivenessModel,
    pub lease: Millis,
}

/// What an agent is indexed under; computed the same way on insert and on removal.
pub struct AgentTerms {
    pub(super) capabilities: Vec<String>,
    pub(super) tags: Vec<String>,
    pub(super) labels: Vec<(String, String)>,
    pub(super) words: Vec<String>,
    pub(super) owner: String,
    pub(super) protocols: Vec<Protocol>,
    pub(super) transports: Vec<Transport>,
    /// The protocol of the document the agent was registered with.
    pub(super) document: Option<Protocol>,
}

impl AgentTerms {
    pub(super) fn of(agent: &Agent) -> Self {
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
    pub(super) entry: Entry,
    pub(super) terms: AgentTerms,
}

impl Prepared {
    /// The agent as a hit, as the index would return it once inserted.
    pub fn hit(&self, now: Millis) -> Hit {
        Hit::of(&self.entry, now)
    }

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
        let head = EntryHead {
            key,
            revision: agent.revision,
            layout,
            origin: agent.origin.clone().map(Arc::new),
            claims: agent.claims.clone().into_boxed_slice(),
            endpoints,
        };
        let entry = Entry(triomphe::Arc::from_header_and_str(head, &json));
        Self { entry, terms: AgentTerms::of(agent) }
    }
}

pub(super) fn rank_of(name: &str) -> u128 {
    let mut bytes = [0u8; 16];
    let n = name.len().min(16);
    bytes[..n].copy_from_slice(&name.as_bytes()[..n]);
    u128::from_be_bytes(bytes)
}
