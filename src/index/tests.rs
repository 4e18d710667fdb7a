//! The index against a naive model: random upserts, removals, touches and clock steps, and
//! after each, every query's count and page compared with a filter over a plain list of agents.
//! Remembered answers are checked too: while the index says one still holds, it must page
//! exactly like a fresh evaluation.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use uuid::Uuid;

use super::{Index, Matches};
use crate::liveness::{LivenessPolicy, Millis};
use crate::model::{
    Agent, AgentId, Capability, CapabilityId, Endpoint, EndpointId, LivenessModel, Protocol, Transport,
};
use crate::query::{DiscoveryQuery, Position, words};
use crate::render::Privacy;

const AGENTS: u128 = 6;
const ENDPOINTS: u128 = 3;
const NAMES: [&str; 4] = ["Alpha", "alpha", "Beta search", "gamma"];
const CAPABILITIES: [&str; 3] = ["summarize", "Translate", "search-web"];
const TAGS: [&str; 2] = ["nlp", "legal"];
const PROTOCOLS: [Protocol; 3] = [Protocol::A2A, Protocol::MCP, Protocol::ACP];
const TRANSPORTS: [Transport; 2] = [Transport::Http, Transport::Amqp];

fn agent_id(i: u128) -> AgentId {
    AgentId(Uuid::from_u128(i + 1))
}

fn endpoint_id(agent: u128, j: u128) -> EndpointId {
    EndpointId(Uuid::from_u128(1_000 + agent * 10 + j))
}

fn at(millis: Millis) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(millis).unwrap_or_default()
}

/// What a generated agent looks like: indices into the constants above.
#[derive(Clone, Debug)]
struct Shape {
    name: usize,
    owner: bool,
    team: bool,
    capabilities: Vec<(usize, Vec<usize>)>,
    tags: Vec<usize>,
    /// Per endpoint slot (at most `ENDPOINTS`): protocol, transport, Ephemeral TTL or Persistent.
    endpoints: Vec<Option<(usize, usize, Option<u32>)>>,
}

#[derive(Clone, Debug)]
enum Step {
    Upsert(u128, Shape),
    Remove(u128),
    Touch(u128, u128),
    Advance(Millis),
}

fn shape() -> impl Strategy<Value = Shape> {
    let capability = (0..CAPABILITIES.len(), prop::collection::vec(0..TAGS.len(), 0..2));
    let endpoint = prop::option::of((0..PROTOCOLS.len(), 0..TRANSPORTS.len(), prop::option::of(10u32..60)));
    (
        0..NAMES.len(),
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(capability, 0..3),
        prop::collection::vec(0..TAGS.len(), 0..2),
        prop::collection::vec(endpoint, 0..=ENDPOINTS as usize),
    )
        .prop_map(|(name, owner, team, capabilities, tags, endpoints)| Shape {
            name,
            owner,
            team,
            capabilities,
            tags,
            endpoints,
        })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..AGENTS, shape()).prop_map(|(i, s)| Step::Upsert(i, s)),
        1 => (0..AGENTS).prop_map(Step::Remove),
        3 => (0..AGENTS, 0..ENDPOINTS).prop_map(|(i, j)| Step::Touch(i, j)),
        2 => (0i64..90_000).prop_map(Step::Advance),
    ]
}

fn build(i: u128, shape: &Shape, now: Millis) -> Agent {
    let mut capabilities: Vec<Capability> = Vec::new();
    for (c, tags) in &shape.capabilities {
        if capabilities.iter().all(|x| x.name != CAPABILITIES[*c]) {
            capabilities.push(Capability {
                id: CapabilityId(Uuid::from_u128(5_000 + *c as u128)),
                name: CAPABILITIES[*c].to_owned(),
                description: None,
                tags: tags.iter().map(|t| TAGS[*t].to_owned()).collect(),
                input_schema: None,
                output_schema: None,
            });
        }
    }
    let endpoints = (0..ENDPOINTS)
        .zip(&shape.endpoints)
        .filter_map(|(j, e)| e.map(|e| (j, e)))
        .map(|(j, (p, t, ttl))| Endpoint {
            id: endpoint_id(i, j),
            name: format!("e{j}"),
            transport: TRANSPORTS[t],
            protocol: PROTOCOLS[p],
            address: format!("https://a{i}.example/{j}"),
            liveness_model: if ttl.is_some() { LivenessModel::Ephemeral } else { LivenessModel::Persistent },
            ttl_seconds: ttl,
            heartbeat_interval_seconds: ttl.is_none().then_some(20),
            protocol_metadata: Default::default(),
            created_at: at(now),
        })
        .collect();
    Agent {
        id: agent_id(i),
        name: NAMES[shape.name].to_owned(),
        description: Some(format!("agent number {i}")),
        version: None,
        owner_id: if shape.owner { "owner-a".into() } else { "owner-b".into() },
        tags: shape.tags.iter().map(|t| TAGS[*t].to_owned()).collect(),
        labels: [("team".to_owned(), if shape.team { "a" } else { "b" }.to_owned())].into(),
        capabilities,
        endpoints,
        metadata: Default::default(),
        permanent: false,
        claims: Vec::new(),
        origin: None,
        created_at: at(now),
        updated_at: at(now),
        revision: 1,
    }
}

/// The index's contract written plainly: agents and when each endpoint was last seen.
#[derive(Default)]
struct Model {
    agents: Vec<Agent>,
    last_seen: HashMap<EndpointId, Millis>,
}

impl Model {
    fn live(&self, policy: &LivenessPolicy, e: &Endpoint, now: Millis) -> bool {
        now < self.last_seen[&e.id] + policy.lease_millis(e)
    }

    /// The ids of the agents a query matches, in discovery order.
    fn answer(&self, policy: &LivenessPolicy, q: &DiscoveryQuery, now: Millis) -> Vec<AgentId> {
        let lower = |v: &[String]| v.iter().map(|t| t.to_lowercase()).collect::<Vec<_>>();
        let mut found: Vec<&Agent> = self
            .agents
            .iter()
            .filter(|a| {
                let caps: Vec<String> = a.capabilities.iter().map(|c| c.name.to_lowercase()).collect();
                let mut tags = lower(&a.tags);
                a.capabilities.iter().for_each(|c| tags.extend(lower(&c.tags)));
                let mut text = words(&a.name);
                text.extend(a.description.as_deref().map(words).unwrap_or_default());
                a.capabilities.iter().for_each(|c| text.extend(words(&c.name)));
                tags.iter().for_each(|t| text.extend(words(t)));
                let endpoint_filtered = !q.protocols.is_empty() || !q.transports.is_empty();
                let endpoint_ok = |e: &Endpoint| {
                    (q.protocols.is_empty() || q.protocols.contains(&e.protocol))
                        && (q.transports.is_empty() || q.transports.contains(&e.transport))
                        && (!q.live_only || self.live(policy, e, now))
                };
                q.capability.as_ref().is_none_or(|c| caps.contains(c))
                    && q.capability_prefix.as_ref().is_none_or(|p| caps.iter().any(|c| c.starts_with(p.as_str())))
                    && q.capability_contains.as_ref().is_none_or(|p| caps.iter().any(|c| c.contains(p.as_str())))
                    && q.tags.iter().all(|t| tags.contains(t))
                    && q.labels.iter().all(|(k, v)| a.labels.get(k) == Some(v))
                    && q.owner.as_ref().is_none_or(|o| *o == a.owner_id)
                    && q.words.iter().all(|w| text.iter().any(|t| t.starts_with(w.as_str())))
                    && (!(endpoint_filtered || q.live_only) || a.endpoints.iter().any(endpoint_ok))
            })
            .collect();
        found.sort_by_key(|a| (a.name.to_lowercase(), a.id));
        found.into_iter().map(|a| a.id).collect()
    }
}

/// The queries checked after every step.
fn queries() -> Vec<DiscoveryQuery> {
    let mut out = Vec::new();
    for live_only in [false, true] {
        let base = || DiscoveryQuery { page_size: 2, ..DiscoveryQuery::all(live_only) };
        out.push(base());
        out.push(DiscoveryQuery { capability: Some("translate".into()), ..base() });
        out.push(DiscoveryQuery { capability_prefix: Some("s".into()), ..base() });
        out.push(DiscoveryQuery { capability_contains: Some("ans".into()), ..base() });
        out.push(DiscoveryQuery { tags: vec!["nlp".into()], ..base() });
        out.push(DiscoveryQuery { labels: vec![("team".into(), "a".into())], ..base() });
        out.push(DiscoveryQuery { owner: Some("owner-a".into()), ..base() });
        out.push(DiscoveryQuery { words: vec!["sea".into()], ..base() });
        out.push(DiscoveryQuery { protocols: vec![Protocol::MCP], ..base() });
        out.push(DiscoveryQuery { protocols: vec![Protocol::A2A, Protocol::ACP], ..base() });
        out.push(DiscoveryQuery { transports: vec![Transport::Amqp], ..base() });
        out.push(DiscoveryQuery {
            capability: Some("summarize".into()),
            protocols: vec![Protocol::A2A],
            transports: vec![Transport::Http],
            ..base()
        });
    }
    out
}

fn ids(index: &Index, matches: &Matches, q: &DiscoveryQuery, now: Millis) -> Option<(usize, Vec<AgentId>)> {
    let mut all = Vec::new();
    let mut total = 0;
    for page in 1..=4 {
        let q = DiscoveryQuery { position: Position::Page(page), ..q.clone() };
        let answer = index.page(matches, &q, now)?;
        total = answer.total;
        all.extend(answer.hits.iter().map(|h| h.id()));
    }
    Some((total, all))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn the_index_answers_every_query_like_a_filter_over_every_agent(steps in prop::collection::vec(step(), 1..40)) {
        let policy = LivenessPolicy::default();
        let mut index = Index::new(policy.clone(), Privacy::default());
        let mut model = Model::default();
        let mut now: Millis = 1_800_000_000_000;
        let queries = queries();
        let mut remembered: Vec<Option<Matches>> = queries.iter().map(|_| None).collect();
        for step in steps {
            match step {
                Step::Upsert(i, shape) => {
                    let agent = build(i, &shape, now);
                    let previous = model.agents.iter().position(|a| a.id == agent.id).map(|p| model.agents.remove(p));
                    for e in previous.iter().flat_map(|a| &a.endpoints) {
                        if agent.endpoint(e.id).is_none() {
                            model.last_seen.remove(&e.id);
                        }
                    }
                    for e in &agent.endpoints {
                        model.last_seen.entry(e.id).or_insert(now);
                    }
                    let seen: Vec<(EndpointId, Millis)> = agent.endpoints.iter().map(|e| (e.id, now)).collect();
                    index.upsert(&agent, &seen);
                    model.agents.push(agent);
                }
                Step::Remove(i) => {
                    let removed = index.remove(agent_id(i)).is_some();
                    let position = model.agents.iter().position(|a| a.id == agent_id(i));
                    prop_assert_eq!(removed, position.is_some());
                    if let Some(p) = position {
                        for e in &model.agents.remove(p).endpoints {
                            model.last_seen.remove(&e.id);
                        }
                    }
                }
                Step::Touch(i, j) => {
                    let id = endpoint_id(i, j);
                    let touched = index.touch(id, now).is_some();
                    prop_assert_eq!(touched, model.last_seen.contains_key(&id));
                    if let Some(t) = model.last_seen.get_mut(&id) {
                        *t = (*t).max(now);
                    }
                }
                Step::Advance(by) => now += by,
            }
            prop_assert_eq!(index.len(), model.agents.len());
            for (q, kept) in queries.iter().zip(remembered.iter_mut()) {
                let expected = model.answer(&policy, q, now);
                let fresh = index.matches(q, now);
                let (total, listed) = ids(&index, &fresh, q, now).expect("a complete answer has every page");
                prop_assert_eq!(total, expected.len(), "count of {:?}", q);
                prop_assert_eq!(&listed, &expected[..expected.len().min(8)].to_vec(), "pages of {:?}", q);
                // An answer remembered earlier that the index still vouches for must agree.
                if let Some(old) = kept.as_ref().filter(|m| index.still_valid(m, now)) {
                    prop_assert_eq!(ids(&index, old, q, now), Some((total, listed)), "remembered {:?}", q);
                } else {
                    *kept = Some(fresh);
                }
            }
        }
    }
}
