//! Posting lists: sorted slot lists per term, the term maps discovery filters read, and the
//! candidate sets built from them. Generic over what a slot holds, so that other catalogues
//! (named registries) can index their entries the same way.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::Slot;

/// A sorted list of slots.
#[derive(Default, Debug)]
pub(super) struct Postings(pub(super) Vec<Slot>);

impl Postings {
    pub(super) fn insert(&mut self, slot: Slot) {
        if let Err(at) = self.0.binary_search(&slot) {
            self.0.insert(at, slot);
        }
    }
    pub(super) fn remove(&mut self, slot: Slot) {
        if let Ok(at) = self.0.binary_search(&slot) {
            self.0.remove(at);
        }
    }
    pub(super) fn contains(&self, slot: Slot) -> bool {
        self.0.binary_search(&slot).is_ok()
    }
}

/// Posting lists by term, with the terms also kept in order for prefix searches.
#[derive(Default)]
pub(super) struct Terms {
    pub(super) lists: HashMap<Arc<str>, Postings>,
    /// The same terms (shared, not copied), in order.
    pub(super) sorted: BTreeSet<Arc<str>>,
}

impl Terms {
    pub(super) fn insert(&mut self, term: &str, slot: Slot) {
        if let Some(list) = self.lists.get_mut(term) {
            list.insert(slot);
        } else {
            let term: Arc<str> = term.into();
            self.lists.insert(term.clone(), Postings(vec![slot]));
            self.sorted.insert(term);
        }
    }

    pub(super) fn remove(&mut self, term: &str, slot: Slot) {
        if let Some(list) = self.lists.get_mut(term) {
            list.remove(slot);
            if list.0.is_empty() {
                self.lists.remove(term);
                self.sorted.remove(term);
            }
        }
    }

    /// Agents with a term starting with `prefix`.
    pub(super) fn with_prefix(&self, prefix: &str) -> Set<'_> {
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

impl Terms {
    /// Agents with a term containing `part`: every term is read (capability names are few
    /// beside agents, and a substring has no order to search by).
    pub(super) fn containing(&self, part: &str) -> Set<'_> {
        let mut matching = self.sorted.iter().filter(|k| k.contains(part)).filter_map(|k| self.lists.get(k));
        match (matching.next(), matching.next()) {
            (None, _) => Set::Owned(Postings::default()),
            (Some(one), None) => Set::Borrowed(one),
            (Some(a), Some(b)) => union([a, b].into_iter().chain(matching)),
        }
    }
}

pub(super) fn insert_into<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Postings>, key: K, slot: Slot) {
    map.entry(key).or_default().insert(slot);
}

/// Like `insert_into`, allocating the key only when it is new.
pub(super) fn insert_text(map: &mut HashMap<Box<str>, Postings>, key: &str, slot: Slot) {
    match map.get_mut(key) {
        Some(list) => list.insert(slot),
        None => {
            map.insert(key.into(), Postings(vec![slot]));
        }
    }
}

/// The single key a label is indexed under (label keys cannot contain `:`).
pub(super) fn label_key(key: &str, value: &str) -> String {
    format!("{key}:{value}")
}

pub(super) fn remove_from<K: std::hash::Hash + Eq + std::borrow::Borrow<Q>, Q: std::hash::Hash + Eq + ?Sized>(
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

/// A candidate set: borrowed posting list or a merged one.
pub(super) enum Set<'a> {
    Borrowed(&'a Postings),
    Owned(Postings),
}

impl Set<'_> {
    pub(super) fn postings(&self) -> &Postings {
        match self {
            Set::Borrowed(p) => p,
            Set::Owned(p) => p,
        }
    }
}

pub(super) fn union<'a>(lists: impl Iterator<Item = &'a Postings>) -> Set<'a> {
    let mut all: Vec<Slot> = lists.flat_map(|p| p.0.iter().copied()).collect();
    all.sort_unstable();
    all.dedup();
    Set::Owned(Postings(all))
}
