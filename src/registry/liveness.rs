//! Liveness: heartbeats and lease renewals (never a database write on the request path), the
//! touches other replicas made in a shared liveness store, and the liveness events the change
//! log records.

use std::time::Instant;

use super::AgentRegistry;
use super::write::endpoint_not_found;
use crate::audit::NewEvent;
use crate::auth::Caller;
use crate::error::{RegistryError, Result};
use crate::liveness::Millis;
use crate::model::{AgentId, EndpointId, LivenessModel};
use crate::ports::{ChangeKind, LivenessChange};
use crate::view::LivenessView;

/// Touches are read back from a little before the previous read, so a heartbeat stamped just
/// before that read but stored just after it is not missed.
const LIVENESS_MARGIN_MILLIS: Millis = 500;

impl AgentRegistry {
    /// Heartbeat of one Persistent endpoint.
    pub async fn heartbeat(&self, caller: &Caller, id: AgentId, endpoint_id: EndpointId) -> Result<LivenessView> {
        self.touch(caller, id, endpoint_id, LivenessModel::Persistent).await
    }

    /// Lease renewal of one Ephemeral endpoint.
    pub async fn renew(&self, caller: &Caller, id: AgentId, endpoint_id: EndpointId) -> Result<LivenessView> {
        self.touch(caller, id, endpoint_id, LivenessModel::Ephemeral).await
    }

    /// Heartbeat of every Persistent endpoint of an agent in one call.
    #[tracing::instrument(level = "debug", skip_all, fields(agent.id = %id))]
    pub async fn heartbeat_agent(&self, caller: &Caller, id: AgentId) -> Result<Vec<LivenessView>> {
        self.catch_up_unless(|index| index.agent(id, 0).is_some()).await?;
        self.authorize(caller, id)?;
        let agent = self.get(id)?.agent()?;
        let persistent: Vec<EndpointId> =
            agent.endpoints.iter().filter(|e| e.liveness_model == LivenessModel::Persistent).map(|e| e.id).collect();
        if persistent.is_empty() {
            return Err(RegistryError::LivenessModelMismatch {
                agent: id.to_string(),
                endpoint: None,
                uses: LivenessModel::Ephemeral,
            });
        }
        let mut out = Vec::with_capacity(persistent.len());
        for endpoint_id in persistent {
            out.push(self.touch(caller, id, endpoint_id, LivenessModel::Persistent).await?);
        }
        Ok(out)
    }

    async fn touch(
        &self,
        caller: &Caller,
        id: AgentId,
        endpoint_id: EndpointId,
        model: LivenessModel,
    ) -> Result<LivenessView> {
        self.catch_up_unless(|index| index.endpoint(id, endpoint_id).is_some()).await?;
        self.authorize(caller, id)?;
        let (actual, lease) = {
            let index = self.replica.index.read();
            let found = index.endpoint(id, endpoint_id).ok_or_else(|| self.missing(&index, id, endpoint_id))?;
            (found.model, found.lease)
        };
        if actual != model {
            return Err(RegistryError::LivenessModelMismatch {
                agent: id.to_string(),
                endpoint: Some(endpoint_id.to_string()),
                uses: actual,
            });
        }
        let now = self.clock.now_millis();
        let before = self.liveness.touch(endpoint_id, now, lease).await?;
        let Some(revived_here) = self.replica.index.read().touch(endpoint_id, now) else {
            // Evicted or removed while we were recording the touch.
            return Err(endpoint_not_found(id, endpoint_id));
        };
        // A shared store says whether this touch is the one that ended the endpoint's death
        // there: of replicas racing, one announces it, and one that has not yet read back
        // another's touch announces nothing.
        // Right after an outage, endpoints are given a lease rather than announced (see
        // `grant_grace`).
        let revived = revived_here && before.is_none_or(|t| t.saturating_add(lease) <= now) && !self.liveness_lost();
        if revived {
            let note = caller.note(format!("endpoint {endpoint_id} is live again"));
            let event =
                NewEvent { at: now, action: "endpoint_live", agent_id: Some(id), key_id: None, note, dedupe: None };
            // Off the request path: a heartbeat never waits for the database.
            self.audit_later(event);
            if let Some(logging) = self.log_liveness(id, endpoint_id, ChangeKind::BecameLive, now) {
                tokio::spawn(tracing::Instrument::in_current_span(logging));
            }
        }
        let counter = match actual {
            LivenessModel::Persistent => crate::metrics::HEARTBEATS,
            LivenessModel::Ephemeral => crate::metrics::RENEWALS,
        };
        crate::metrics::count(counter, 1);
        Ok(LivenessView {
            endpoint_id,
            liveness_model: actual,
            is_live: true,
            last_seen_at: crate::clock::to_datetime(now),
            expires_at: crate::clock::to_datetime(now + lease),
        })
    }

    /// Liveness answers must be exact: with a shared liveness store that could not be read
    /// lately, other replicas' heartbeats are unknown.
    pub(super) fn ensure_liveness_known(&self) -> Result<()> {
        if !self.liveness.is_shared() {
            return Ok(());
        }
        match self.sync.lock().liveness {
            Some(at) if at.elapsed() <= self.config.liveness_stale_after() => Ok(()),
            _ => Err(RegistryError::liveness_unavailable(
                "heartbeats recorded by other replicas cannot be read right now",
            )),
        }
    }

    /// Reads back the touches other replicas made in a shared liveness store since the last
    /// read. Until this succeeds again after a failure, discovery answers 503.
    pub async fn sync_liveness(&self) -> Result<usize> {
        if !self.liveness.is_shared() {
            return Ok(0);
        }
        let started = self.clock.now_millis();
        let since = self.sync.lock().liveness_cursor - LIVENESS_MARGIN_MILLIS;
        let lost_at = self.sync.lock().liveness_lost_at;
        if let Some(lost_at) = lost_at {
            self.grant_grace(lost_at, started).await?;
        }
        match self.liveness.seen_since(since).await {
            Ok(seen) => {
                {
                    let index = self.replica.index.read();
                    for (endpoint, at) in &seen {
                        index.touch(*endpoint, *at);
                    }
                }
                let mut sync = self.sync.lock();
                sync.liveness_cursor = started;
                sync.liveness = Some(Instant::now());
                Ok(seen.len())
            }
            Err(e) => {
                let mut sync = self.sync.lock();
                sync.liveness = None;
                sync.liveness_lost_at.get_or_insert(started);
                Err(e)
            }
        }
    }

    /// After an outage of the shared liveness store, during which heartbeats and renewals were
    /// refused, every endpoint live when it began counts as seen when it ended: it gets a full
    /// lease to be heard from again instead of expiring for the outage. Recorded in the store,
    /// so every replica reads the same times back.
    async fn grant_grace(&self, lost_at: Millis, now: Millis) -> Result<()> {
        let live = self.replica.index.read().live_endpoints(lost_at);
        self.liveness.touch_all(&live, now).await.inspect_err(|_| self.sync.lock().liveness = None)?;
        {
            let index = self.replica.index.read();
            for endpoint in &live {
                index.touch(*endpoint, now);
            }
        }
        self.sync.lock().liveness_lost_at = None;
        tracing::info!(endpoints = live.len(), "the liveness store is back: live endpoints get a lease from now");
        Ok(())
    }

    /// Whether the shared liveness store could not be read lately: expiries are not announced
    /// then, since the heartbeats that would have prevented them may have been refused.
    pub(super) fn liveness_lost(&self) -> bool {
        self.sync.lock().liveness_lost_at.is_some()
    }

    /// Logging a liveness event of one endpoint (`None` once the agent is gone). The future owns
    /// what it needs, so it can be spawned off a request's path.
    pub(super) fn log_liveness(
        &self,
        agent: AgentId,
        endpoint_id: EndpointId,
        kind: ChangeKind,
        at: Millis,
    ) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        let agent = self.replica.index.read().agent(agent, at)?.agent().ok()?;
        let dedupe = format!("{}:{endpoint_id}:{at}", kind.as_str());
        let event = LivenessChange { agent, endpoint_id, kind, at, dedupe };
        let replica = self.replica.clone();
        Some(async move {
            if let Err(e) = replica.append_liveness(event).await {
                tracing::warn!(error = %e, kind = kind.as_str(), "could not log a liveness event");
            }
        })
    }

    pub(super) async fn forget_liveness(&self, ids: &[EndpointId]) {
        // Leftover liveness records of removed endpoints are harmless (they expire or are
        // ignored), so a failure here must not fail the change that was already stored.
        if let Err(e) = self.liveness.forget(ids).await {
            tracing::warn!(error = %e, "liveness store update failed after a stored change");
        }
    }
}
