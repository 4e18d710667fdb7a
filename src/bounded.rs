//! Every call to the store ends within a bound, whatever the backend does (a frozen server, a
//! partition, a full pool): past it the call fails as an outage, which clients retry. The
//! drivers have bounds of their own (pool waits, lock waits); this one holds when they do not.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::audit::{AuditEvent, AuditNote, EventQuery, NewEvent};
use crate::auth::ApiKey;
use crate::error::{ErrorKind, RegistryError, Result};
use crate::liveness::Millis;
use crate::model::{AgentId, EndpointId};
use crate::ports::{
    AgentStore, Change, ChangeSignal, IdempotencyRecord, LivenessChange, LoggedChange, StoreSizes, StoredAgent,
};

/// How long store calls may take.
#[derive(Clone, Copy, Debug)]
pub struct StoreBounds {
    /// A call a request waits for.
    pub request: Duration,
    /// Start-up's page reads and upkeep's bulk deletes, which nobody waits for and which may
    /// touch many rows.
    pub upkeep: Duration,
}

impl Default for StoreBounds {
    fn default() -> Self {
        Self { request: Duration::from_secs(2), upkeep: Duration::from_secs(30) }
    }
}

/// A store whose every call is bounded by [`StoreBounds`].
pub struct BoundedStore {
    inner: Arc<dyn AgentStore>,
    bounds: StoreBounds,
    outages: AtomicU64,
}

impl BoundedStore {
    pub fn new(inner: Arc<dyn AgentStore>, bounds: StoreBounds) -> Self {
        Self { inner, bounds, outages: AtomicU64::new(0) }
    }

    /// Runs `call` for at most `bound`, counting the calls that end in an outage (cut off here,
    /// or by the driver's own bounds). A write cut off may still commit: the registry then
    /// treats its index as in doubt and reads the change log back (see `Replica::store_and_apply`).
    /// Each call's duration and failure are recorded under `operation` (the port's method).
    async fn within<T>(
        &self,
        bound: Duration,
        operation: &'static str,
        what: &'static str,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let started = Instant::now();
        let call = tracing::Instrument::instrument(call, crate::metrics::call_span("store", operation));
        let result = tokio::time::timeout(bound, call).await.unwrap_or_else(|_| {
            Err(RegistryError::storage_unavailable(format!("the database did not answer {what} within {bound:?}")))
        });
        if result.as_ref().is_err_and(|e| e.kind() == ErrorKind::Unavailable) {
            self.outages.fetch_add(1, Ordering::Relaxed);
        }
        crate::metrics::observe(
            crate::metrics::STORE_DURATION,
            crate::metrics::STORE_ERRORS,
            operation,
            started,
            &result,
        );
        result
    }
}

#[async_trait]
impl AgentStore for BoundedStore {
    fn outages(&self) -> u64 {
        self.outages.load(Ordering::Relaxed)
    }

    async fn load_page(&self, after: Option<AgentId>, limit: usize) -> Result<Vec<StoredAgent>> {
        self.within(self.bounds.upkeep, "load_page", "a page of agents", self.inner.load_page(after, limit)).await
    }

    async fn finished_loading(&self) {
        let _ = tokio::time::timeout(self.bounds.upkeep, self.inner.finished_loading()).await;
    }

    async fn close(&self) {
        let _ = tokio::time::timeout(self.bounds.upkeep, self.inner.close()).await;
    }

    async fn snapshot(&self) -> Result<Option<std::path::PathBuf>> {
        // Unbounded: copying a large database takes as long as it takes; the caller (an HTTP
        // client waiting for the copy) bounds its wait.
        self.inner.snapshot().await
    }

    async fn apply(&self, change: Change, note: &AuditNote) -> Result<u64> {
        self.within(self.bounds.request, "apply", "a change", self.inner.apply(change, note)).await
    }

    async fn apply_batch(&self, changes: &[(Change, AuditNote)]) -> Vec<Result<u64>> {
        if let [(change, note)] = changes {
            return vec![self.apply(change.clone(), note).await];
        }
        let (bound, batch) = (self.bounds.request, async { Ok(self.inner.apply_batch(changes).await) });
        match self.within(bound, "apply_batch", "a batch of changes", batch).await {
            Ok(answers) => {
                let outages = answers.iter().filter(|a| a.as_ref().is_err_and(|e| e.kind() == ErrorKind::Unavailable));
                self.outages.fetch_add(outages.count() as u64, Ordering::Relaxed);
                answers
            }
            // Only the bound fails the batch as a whole.
            Err(_) => changes
                .iter()
                .map(|_| {
                    let detail = format!("the database did not answer a batch of changes within {bound:?}");
                    Err(RegistryError::storage_unavailable(detail))
                })
                .collect(),
        }
    }

    async fn find_idempotency(&self, owner_id: &str, key: &str) -> Result<Option<IdempotencyRecord>> {
        self.within(
            self.bounds.request,
            "find_idempotency",
            "an idempotency lookup",
            self.inner.find_idempotency(owner_id, key),
        )
        .await
    }

    async fn expire_idempotency(&self, before: Millis) -> Result<u64> {
        self.within(
            self.bounds.upkeep,
            "expire_idempotency",
            "expiring idempotency keys",
            self.inner.expire_idempotency(before),
        )
        .await
    }

    async fn record_last_seen(&self, seen: &[(EndpointId, Millis)]) -> Result<()> {
        self.within(
            self.bounds.upkeep,
            "record_last_seen",
            "recording last-seen times",
            self.inner.record_last_seen(seen),
        )
        .await
    }

    async fn current_revision(&self) -> Result<u64> {
        self.within(self.bounds.request, "current_revision", "the current revision", self.inner.current_revision())
            .await
    }

    async fn changes_since(&self, after: u64, limit: usize) -> Result<Vec<LoggedChange>> {
        self.within(self.bounds.request, "changes_since", "the change log", self.inner.changes_since(after, limit))
            .await
    }

    async fn prune_changes(&self, before: Millis) -> Result<u64> {
        self.within(self.bounds.upkeep, "prune_changes", "pruning the change log", self.inner.prune_changes(before))
            .await
    }

    async fn oldest_change(&self) -> Result<Option<u64>> {
        self.within(self.bounds.request, "oldest_change", "the oldest change", self.inner.oldest_change()).await
    }

    async fn append_event(&self, event: &LivenessChange) -> Result<Option<u64>> {
        self.within(self.bounds.request, "append_event", "a liveness event", self.inner.append_event(event)).await
    }

    fn change_signal(&self) -> Option<Arc<ChangeSignal>> {
        self.inner.change_signal()
    }

    async fn ping(&self) -> Result<()> {
        self.within(self.bounds.request, "ping", "a ping", self.inner.ping()).await
    }

    async fn sizes(&self) -> Result<StoreSizes> {
        self.within(self.bounds.upkeep, "sizes", "its sizes", self.inner.sizes()).await
    }

    async fn reclaim(&self) -> Result<u64> {
        self.within(self.bounds.upkeep, "reclaim", "reclaiming space", self.inner.reclaim()).await
    }

    async fn record_event(&self, event: &NewEvent) -> Result<()> {
        self.within(self.bounds.request, "record_event", "an audit event", self.inner.record_event(event)).await
    }

    async fn events(&self, query: &EventQuery) -> Result<Vec<AuditEvent>> {
        self.within(self.bounds.request, "events", "audit events", self.inner.events(query)).await
    }

    async fn prune_events(&self, before: Millis) -> Result<u64> {
        self.within(self.bounds.upkeep, "prune_events", "pruning audit events", self.inner.prune_events(before)).await
    }

    async fn save_api_key(&self, key: &ApiKey) -> Result<u64> {
        self.within(self.bounds.request, "save_api_key", "an API key", self.inner.save_api_key(key)).await
    }

    async fn api_keys_since(&self, after: u64, limit: usize) -> Result<Vec<ApiKey>> {
        self.within(self.bounds.request, "api_keys_since", "API keys", self.inner.api_keys_since(after, limit)).await
    }
}
