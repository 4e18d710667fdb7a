//! Query evaluation: the candidates a query's filters select from the posting lists, checked
//! for protocol, transport and liveness at the current clock, counted, ordered and paged.

use std::sync::atomic::Ordering;

use smallvec::SmallVec;

use super::entry::{EndpointSlot, Entry, Hit, rank_of};
use super::postings::{Postings, Set, label_key, union};
use super::{Index, Slot};
use crate::liveness::Millis;
use crate::query::{DiscoveryQuery, Position};

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

impl Index {
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
        if let Some(part) = &q.capability_contains {
            sets.push(self.capabilities.containing(part));
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
    pub(super) fn compare(&self, a: Slot, b: Slot) -> std::cmp::Ordering {
        let (ma, mb) = (&self.meta[a as usize], &self.meta[b as usize]);
        ma.rank.cmp(&mb.rank).then_with(|| match (self.entry(a), self.entry(b)) {
            (Some(ea), Some(eb)) => ea.key.cmp(&eb.key),
            _ => std::cmp::Ordering::Equal,
        })
    }

    /// Until when an agent passes the endpoint filters (`None`: it does not now). Its entry is
    /// read only when a protocol or transport filter asks about individual endpoints.
    pub(super) fn qualifies_until(&self, slot: Slot, q: &DiscoveryQuery, now: Millis) -> Option<Millis> {
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
pub(super) fn unreachable_page(matches: &Matches, q: &DiscoveryQuery) -> SearchPage {
    SearchPage { hits: Vec::new(), total: matches.total, page: 1, page_size: q.page_size, next_cursor: None }
}

pub(super) fn endpoint_matches(e: &EndpointSlot, q: &DiscoveryQuery) -> bool {
    (q.protocols.is_empty() || q.protocols.contains(&e.protocol))
        && (q.transports.is_empty() || q.transports.contains(&e.transport))
}

/// The hit of an agent that qualifies: the endpoints that pass the filters, with their state.
pub(super) fn hit(entry: &Entry, q: &DiscoveryQuery, now: Millis) -> Hit {
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
    pub(super) slots: Vec<Slot>,
    /// How many agents match.
    pub(super) total: usize,
    pub(super) valid_until: Millis,
    pub(super) generation: u64,
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
