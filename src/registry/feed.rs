//! The most recent changes this replica's index applied, in revision order, kept in memory so
//! that watchers (SSE, MCP notifications, publishers) read them without each querying the store.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::ports::LoggedChange;

/// Changes kept; a watcher further behind reads the store's change log instead.
const KEPT: usize = 1_000;

pub struct Feed {
    inner: RwLock<Inner>,
}

struct Inner {
    changes: VecDeque<Arc<LoggedChange>>,
    /// Every change with a revision above this one is held (or was never made).
    floor: u64,
}

impl Feed {
    /// A feed that holds everything after `floor` (the revision the index starts from).
    pub fn new(floor: u64) -> Self {
        Self { inner: RwLock::new(Inner { changes: VecDeque::new(), floor }) }
    }

    /// Adds the change the index has just applied (revisions only grow).
    pub fn push(&self, change: LoggedChange) {
        let mut inner = self.inner.write();
        if inner.changes.back().is_some_and(|last| last.revision >= change.revision) {
            return;
        }
        if inner.changes.len() == KEPT
            && let Some(oldest) = inner.changes.pop_front()
        {
            inner.floor = oldest.revision;
        }
        inner.changes.push_back(Arc::new(change));
    }

    /// Up to `limit` changes after revision `after`, or `None` when some of them are no longer
    /// held here.
    pub fn after(&self, after: u64, limit: usize) -> Option<Vec<Arc<LoggedChange>>> {
        let inner = self.inner.read();
        if after < inner.floor {
            return None;
        }
        let start = inner.changes.partition_point(|c| c.revision <= after);
        Some(inner.changes.iter().skip(start).take(limit).cloned().collect())
    }
}
