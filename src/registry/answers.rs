//! Remembered discovery answers: the ordered matches of a query, kept while they hold.

use std::collections::HashMap;
use std::sync::Arc;

use crate::index::Matches;
use crate::query::DiscoveryQuery;

/// Remembered discovery answers, bounded by the number of agents they list in all.
#[derive(Default)]
pub(super) struct Answers {
    by_query: HashMap<DiscoveryQuery, Arc<Matches>>,
    listed: usize,
}

impl Answers {
    /// Agents all remembered answers may list together (about 4 bytes each).
    const MAX_LISTED: usize = 500_000;
    /// Agents one remembered answer lists: the first pages of default size.
    pub(super) const KEPT_PER_ANSWER: usize = 100;

    pub(super) fn get(&self, key: &DiscoveryQuery) -> Option<Arc<Matches>> {
        self.by_query.get(key).cloned()
    }

    pub(super) fn remember(&mut self, key: DiscoveryQuery, matches: Arc<Matches>) {
        if self.listed + matches.listed() > Self::MAX_LISTED {
            self.by_query.clear();
            self.listed = 0;
        }
        self.listed += matches.listed();
        if let Some(old) = self.by_query.insert(key, matches) {
            self.listed -= old.listed();
        }
    }
}
