//! The phases of a graceful stop, which the probes, the watch streams and the listeners follow:
//! serving; draining (after SIGTERM, for `--shutdown-delay-seconds`: everything is served but
//! `/readyz` answers 503, so load balancers stop routing here before the listener closes);
//! closing (the listener is closed, watch streams end with a `shutdown` event, requests in
//! flight finish within the grace period).

use std::sync::Arc;

use tokio::sync::watch;

/// Where the process is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Serving,
    /// Stopping soon: not ready, still serving.
    Draining,
    /// No new connections; streams end; in-flight requests finish.
    Closing,
}

/// The current phase, shared; phases only move forward.
#[derive(Clone)]
pub struct Lifecycle(Arc<watch::Sender<Phase>>);

impl Default for Lifecycle {
    fn default() -> Self {
        Self(Arc::new(watch::Sender::new(Phase::Serving)))
    }
}

impl Lifecycle {
    pub fn phase(&self) -> Phase {
        *self.0.borrow()
    }

    /// Moves to `phase`, unless the process is there or past it already.
    pub fn enter(&self, phase: Phase) {
        self.0.send_if_modified(|current| {
            let later = phase > *current;
            if later {
                *current = phase;
            }
            later
        });
    }

    /// Resolves once the process has reached `phase`.
    pub fn reached(&self, phase: Phase) -> impl Future<Output = ()> + Send + 'static {
        let mut phases = self.0.subscribe();
        async move {
            // The sender lives as long as `self`'s clones; were it gone, nothing would move on.
            if phases.wait_for(|current| *current >= phase).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}
