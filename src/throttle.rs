//! Reports of a recurring event (the use of a revoked key, a refused watcher) at most once per
//! interval per subject, with the number left out since the last report: a client that retries
//! in a loop must not be able to flood the log or the audit trail.

use std::collections::HashMap;
use std::hash::Hash;

use crate::liveness::Millis;

/// Admits one report per `every` milliseconds per subject; counts the ones it holds back.
pub struct Throttle<K> {
    every: Millis,
    last: parking_lot::Mutex<HashMap<K, Window>>,
}

struct Window {
    /// When the last report was admitted.
    at: Millis,
    /// Events held back since then.
    suppressed: u64,
}

impl<K: Hash + Eq> Throttle<K> {
    /// One report per `every` milliseconds per subject.
    pub fn new(every: Millis) -> Self {
        Self { every, last: parking_lot::Mutex::default() }
    }

    /// One report a minute per subject.
    pub fn per_minute() -> Self {
        Self::new(60_000)
    }

    /// Whether the event of `subject` at `now` is to be reported: `Some(n)` with the `n` events
    /// held back since the last report, `None` when it is held back itself.
    pub fn admit(&self, subject: K, now: Millis) -> Option<u64> {
        let mut last = self.last.lock();
        match last.get_mut(&subject) {
            Some(window) if now - window.at < self.every => {
                window.suppressed += 1;
                None
            }
            Some(window) => {
                let suppressed = std::mem::take(&mut window.suppressed);
                window.at = now;
                Some(suppressed)
            }
            None => {
                last.insert(subject, Window { at: now, suppressed: 0 });
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_report_per_interval_per_subject_with_the_count_held_back() {
        let throttle = Throttle::new(60_000);
        assert_eq!(throttle.admit("a", 0), Some(0));
        assert_eq!(throttle.admit("a", 1), None);
        assert_eq!(throttle.admit("a", 59_999), None);
        assert_eq!(throttle.admit("b", 10), Some(0), "subjects are counted apart");
        assert_eq!(throttle.admit("a", 60_000), Some(2));
        assert_eq!(throttle.admit("a", 60_001), None);
        assert_eq!(throttle.admit("a", 200_000), Some(1));
        assert_eq!(throttle.admit("a", 400_000), Some(0));
    }
}
