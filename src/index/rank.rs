//! Answers for language models: live agents ranked against a free-text task (BM25 over the
//! agent's name, capabilities, tags and descriptions), and the capability projection (what the
//! registry can do right now, with live endpoint counts).

use std::collections::{BTreeMap, HashMap};

use super::search::hit;
use super::{Hit, Index, Slot};
use crate::liveness::Millis;
use crate::model::{Agent, AgentId, EndpointId, Protocol, Transport};
use crate::query::{DiscoveryQuery, words};

/// BM25 parameters (the usual ones).
const K1: f64 = 1.2;
const B: f64 = 0.75;
/// Query words this short or common say nothing about a task.
const STOPWORDS: &[&str] = &[
    "a", "an", "and", "any", "are", "be", "can", "do", "find", "for", "from", "i", "in", "is", "it", "me", "my",
    "need", "of", "on", "or", "please", "some", "that", "the", "this", "to", "want", "which", "who", "with", "you",
];
/// Words sharing this many leading letters count as one (summarise/summarize, document/documents).
const STEM: usize = 6;
/// Candidates scored in full; the rest are dropped by a first, cheaper pass.
const MAX_SCORED: usize = 500;

/// Where a word of the agent was found, with the weight of that field.
const FIELDS: &[(&str, f64)] =
    &[("name", 3.0), ("capability", 2.5), ("tag", 1.5), ("description", 1.0), ("capability description", 1.0)];

/// Each query word that matched, with the fields it was found in.
type Matched = BTreeMap<String, Vec<&'static str>>;

/// One agent of a task's answer, with why it matched.
#[derive(Debug)]
pub struct Ranked {
    pub hit: Hit,
    pub score: f64,
    pub matched: Matched,
}

/// The capability projection: a capability with how many agents offer it and the live
/// endpoints that serve it. The MCP tool and `GET /capabilities` both read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapabilitySummary {
    /// The capability name (lower case, as discovery matches it).
    pub name: String,
    /// The name as the first live agent (in discovery order) spells it, else as discovery
    /// matches it.
    pub display_name: String,
    pub agents: usize,
    pub live_agents: usize,
    pub live_endpoints: usize,
    /// Protocols of the live endpoints.
    pub protocols: Vec<Protocol>,
    /// The live endpoints, agents in discovery order.
    pub endpoints: Vec<Serving>,
}

/// A live endpoint serving a capability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serving {
    pub agent_id: AgentId,
    pub agent_name: String,
    pub endpoint_id: EndpointId,
    pub protocol: Protocol,
    pub transport: Transport,
    pub address: String,
}

/// The stem a word is matched by.
fn stem(word: &str) -> &str {
    match word.char_indices().nth(STEM) {
        Some((at, _)) => &word[..at],
        None => word,
    }
}

/// The words of a task that carry meaning, deduplicated by stem.
pub fn task_terms(task: &str) -> Vec<String> {
    let mut terms: Vec<String> = words(task).into_iter().filter(|w| !STOPWORDS.contains(&w.as_str())).collect();
    terms.sort_by(|a, b| stem(a).cmp(stem(b)));
    terms.dedup_by(|a, b| stem(a) == stem(b));
    terms
}

/// The agent's words by field, lower case.
fn fields_of(agent: &Agent) -> [Vec<String>; 5] {
    let mut caps = Vec::new();
    let mut cap_descriptions = Vec::new();
    let mut tags: Vec<String> = agent.tags.iter().flat_map(|t| words(t)).collect();
    for c in &agent.capabilities {
        caps.extend(words(&c.name));
        cap_descriptions.extend(c.description.as_deref().map(words).unwrap_or_default());
        tags.extend(c.tags.iter().flat_map(|t| words(t)));
    }
    [words(&agent.name), caps, tags, agent.description.as_deref().map(words).unwrap_or_default(), cap_descriptions]
}

impl Index {
    /// Live agents (with a live endpoint of `protocol`, when given) ranked by BM25 against the
    /// task's words; at most `limit`, best first. Agents matching no word are left out.
    pub fn rank_for_task(&self, task: &str, protocol: Option<Protocol>, now: Millis, limit: usize) -> Vec<Ranked> {
        let terms = task_terms(task);
        if terms.is_empty() || limit == 0 {
            return Vec::new();
        }
        let query = DiscoveryQuery { protocols: protocol.into_iter().collect(), ..DiscoveryQuery::all(true) };
        let n = self.len().max(1) as f64;
        // Candidates and each term's document frequency come from the word index.
        let mut first_pass: HashMap<Slot, f64> = HashMap::new();
        let mut idf = Vec::with_capacity(terms.len());
        for term in &terms {
            let set = self.words.with_prefix(stem(term));
            let postings = &set.postings().0;
            let df = postings.len() as f64;
            let weight = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
            idf.push(weight);
            for slot in postings {
                *first_pass.entry(*slot).or_default() += weight;
            }
        }
        let mut candidates: Vec<(Slot, f64)> =
            first_pass.into_iter().filter(|(slot, _)| self.qualifies_until(*slot, &query, now).is_some()).collect();
        candidates.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        candidates.truncate(MAX_SCORED);

        let agents: Vec<(Slot, [Vec<String>; 5])> = candidates
            .iter()
            .filter_map(|(slot, _)| Some((*slot, fields_of(&self.entry(*slot)?.fields().ok()?))))
            .collect();
        let lengths: Vec<f64> = agents.iter().map(|(_, f)| weighted_length(f)).collect();
        let average = (lengths.iter().sum::<f64>() / lengths.len().max(1) as f64).max(1.0);

        let mut ranked: Vec<(Slot, f64, Matched)> = agents
            .into_iter()
            .zip(lengths)
            .filter_map(|((slot, fields), length)| {
                let mut score = 0.0;
                let mut matched = BTreeMap::new();
                for (term, weight) in terms.iter().zip(&idf) {
                    let mut tf = 0.0;
                    for ((field, field_weight), words) in FIELDS.iter().zip(&fields) {
                        let count = words.iter().filter(|w| stem(w) == stem(term)).count();
                        if count > 0 {
                            tf += field_weight * count as f64;
                            matched.entry(term.clone()).or_insert_with(Vec::new).push(*field);
                        }
                    }
                    score += weight * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * length / average));
                }
                (score > 0.0).then_some((slot, score, matched))
            })
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked
            .into_iter()
            .take(limit)
            .filter_map(|(slot, score, matched)| {
                Some(Ranked { hit: hit(self.entry(slot)?, &query, now), score, matched })
            })
            .collect()
    }

    /// Every capability (or those starting with `prefix`), with its agents, the live ones, and
    /// their live endpoints; with `live_only`, capabilities nobody serves right now are left out.
    pub fn capability_summary(&self, prefix: Option<&str>, live_only: bool, now: Millis) -> Vec<CapabilitySummary> {
        let prefix = prefix.unwrap_or_default();
        let terms =
            self.capabilities.sorted.range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded));
        let mut out = Vec::new();
        for term in terms.take_while(|t| t.starts_with(prefix)) {
            let Some(postings) = self.capabilities.lists.get(term) else { continue };
            let mut entries: Vec<&super::Entry> = postings.0.iter().filter_map(|slot| self.entry(*slot)).collect();
            entries.sort_unstable_by(|a, b| a.key.cmp(&b.key));
            let mut summary = CapabilitySummary {
                name: term.to_string(),
                display_name: String::new(),
                agents: entries.len(),
                live_agents: 0,
                live_endpoints: 0,
                protocols: Vec::new(),
                endpoints: Vec::new(),
            };
            for entry in entries {
                let live: Vec<usize> = (0..entry.endpoints.len())
                    .filter(|i| entry.endpoints[*i].state(now).is_some_and(|s| s.is_live))
                    .collect();
                if live.is_empty() {
                    continue;
                }
                // Addresses and spellings live in the agent's JSON: parsed for live agents only.
                let Ok(agent) = entry.agent() else { continue };
                if summary.display_name.is_empty()
                    && let Some(c) = agent.capabilities.iter().find(|c| c.name.to_lowercase() == summary.name)
                {
                    summary.display_name.clone_from(&c.name);
                }
                summary.live_agents += 1;
                summary.live_endpoints += live.len();
                for e in live.into_iter().filter_map(|i| agent.endpoints.get(i)) {
                    summary.protocols.push(e.protocol);
                    summary.endpoints.push(Serving {
                        agent_id: agent.id,
                        agent_name: agent.name.clone(),
                        endpoint_id: e.id,
                        protocol: e.protocol,
                        transport: e.transport,
                        address: e.address.clone(),
                    });
                }
            }
            if summary.display_name.is_empty() {
                summary.display_name.clone_from(&summary.name);
            }
            summary.protocols.sort_unstable_by_key(|p| p.as_str());
            summary.protocols.dedup();
            if !live_only || summary.live_agents > 0 {
                out.push(summary);
            }
        }
        out
    }
}

fn weighted_length(fields: &[Vec<String>; 5]) -> f64 {
    FIELDS.iter().zip(fields).map(|((_, w), words)| w * words.len() as f64).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_terms_drop_stopwords_and_merge_spelling_variants() {
        assert_eq!(
            task_terms("Find me an agent that can summarise and summarize documents"),
            ["agent", "documents", "summarise"]
        );
        assert!(task_terms("the of and").is_empty());
    }
}
