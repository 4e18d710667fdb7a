//! Upkeep, run periodically by the maintenance task on every replica: eviction of endpoints
//! dead past the limit, an audit event per lease that ended, durable liveness, and forgetting
//! old idempotency keys, changes and audit events.

use std::sync::atomic::Ordering;

use super::AgentRegistry;
use crate::audit::{AuditNote, NewEvent};
use crate::error::{RegistryError, Result};
use crate::liveness::Millis;
use crate::model::{AgentId, EndpointId};
use crate::ports::{Change, ChangeKind};

impl AgentRegistry {
    /// Evicts endpoints that have been dead long enough, and agents left without endpoints
    /// (unless permanent). Returns how many endpoints were evicted. Safe to run on every
    /// replica at once: each eviction is conditional on the agent's revision, and on a shared
    /// liveness store the endpoint's last touch is checked again first.
    pub async fn evict_stale(&self) -> Result<usize> {
        if self.liveness_lost() {
            // Heartbeats may have been refused: nobody is evicted for the liveness store's outage.
            return Ok(0);
        }
        let now = self.clock.now_millis();
        let candidates = self.replica.index.read().evictable(now);
        let mut by_agent: std::collections::BTreeMap<AgentId, Vec<(EndpointId, Millis)>> = Default::default();
        for (agent, endpoint, seen) in candidates {
            by_agent.entry(agent).or_default().push((endpoint, seen));
        }
        let mut evicted = 0;
        for (agent_id, endpoints) in by_agent {
            let write = self.lock_clear(false, |f| f.holds_agent(agent_id)).await?;
            // Claim each endpoint; a heartbeat that got in first keeps it.
            let mut claimed: Vec<(EndpointId, Millis)> = {
                let index = self.replica.index.read();
                endpoints.into_iter().filter(|(e, seen)| index.claim_for_eviction(*e, *seen)).collect()
            };
            if self.liveness.is_shared() && !claimed.is_empty() {
                claimed = self.confirm_unseen(claimed).await?;
            }
            if claimed.is_empty() {
                continue;
            }
            let Ok(hit) = self.get(agent_id) else {
                continue;
            };
            let mut agent = hit.agent()?;
            let expected = agent.revision;
            let names: Vec<String> = agent
                .endpoints
                .iter()
                .filter(|e| claimed.iter().any(|(id, _)| *id == e.id))
                .map(|e| format!("`{}`", e.name))
                .collect();
            agent.endpoints.retain(|e| !claimed.iter().any(|(id, _)| *id == e.id));
            let gone = agent.endpoints.is_empty() && !agent.permanent;
            let note = AuditNote::registry(format!(
                "evicted endpoint(s) {} (dead past the eviction limit){}",
                names.join(", "),
                if gone { "; the agent had no other endpoint and was removed" } else { "" }
            ));
            let change = if gone {
                Change::Delete { agent_id, kind: ChangeKind::Evicted, expected }
            } else {
                agent.updated_at = self.clock.now();
                Change::Put {
                    agent: Box::new(agent),
                    kind: ChangeKind::Evicted,
                    seen: Vec::new(),
                    idempotency: None,
                    expected: Some(expected),
                }
            };
            match self.apply(write, change, &note, crate::quota::Usage::default()).await {
                Ok(_) => {
                    let ids: Vec<EndpointId> = claimed.iter().map(|(id, _)| *id).collect();
                    self.forget_liveness(&ids).await;
                    evicted += claimed.len();
                    crate::metrics::count(crate::metrics::EVICTIONS, claimed.len() as u64);
                }
                Err(e) => {
                    let index = self.replica.index.read();
                    for (id, seen) in &claimed {
                        index.release_claim(*id, *seen);
                    }
                    // Another replica changed or evicted the agent first: its change arrives
                    // through the change log.
                    if !matches!(e, RegistryError::StaleWrite(_)) {
                        return Err(e);
                    }
                }
            }
        }
        Ok(evicted)
    }

    /// Of endpoints claimed for eviction, those the shared liveness store has not seen since
    /// (a heartbeat through another replica may not have reached this index yet). The others
    /// are released with their newer time.
    async fn confirm_unseen(&self, claimed: Vec<(EndpointId, Millis)>) -> Result<Vec<(EndpointId, Millis)>> {
        let ids: Vec<EndpointId> = claimed.iter().map(|(id, _)| *id).collect();
        let known = match self.liveness.last_seen(&ids).await {
            Ok(known) => known,
            Err(e) => {
                let index = self.replica.index.read();
                claimed.iter().for_each(|(id, seen)| index.release_claim(*id, *seen));
                return Err(e);
            }
        };
        let index = self.replica.index.read();
        Ok(claimed
            .into_iter()
            .zip(known)
            .filter_map(|((id, seen), newer)| match newer {
                Some(t) if t > seen => {
                    index.release_claim(id, seen);
                    index.touch(id, t);
                    None
                }
                _ => Some((id, seen)),
            })
            .collect())
    }

    /// Periodic upkeep: eviction, durable liveness, forgetting old idempotency keys and
    /// change-log entries.
    pub async fn maintain(&self) -> Result<usize> {
        if self.in_doubt() {
            // Reads the change log back, so readers see a write that was stored after all.
            drop(self.lock_writer(false).await?);
        }
        self.audit_expiries().await;
        let evicted = self.evict_stale().await?;
        self.liveness.flush().await?;
        let now = self.clock.now_millis();
        self.replica.store.expire_idempotency(now - self.config.idempotency_retention_secs * 1000).await?;
        self.replica.store.prune_changes(now - self.config.change_retention_secs * 1000).await?;
        self.replica.store.prune_events(now - self.config.audit_retention_secs * 1000).await?;
        self.replica.store.reclaim().await?;
        Ok(evicted)
    }

    /// Appends an `endpoint_expired` event for each lease that ended since the last look. Every
    /// replica notices the same expiries; the store records each once.
    async fn audit_expiries(&self) {
        if self.liveness_lost() {
            // Announced, if they still hold, once the liveness store is back (and its grace over).
            return;
        }
        let now = self.clock.now_millis();
        let after = self.expiries_seen_until.swap(now, Ordering::AcqRel);
        let expired = self.replica.index.read().expired_between(after, now);
        crate::metrics::count(crate::metrics::EXPIRIES, expired.len() as u64);
        for (agent, endpoint, at) in expired {
            let note = AuditNote::registry(format!("endpoint {endpoint} expired: not renewed or heartbeaten in time"));
            let dedupe = Some(format!("expired:{endpoint}:{at}"));
            let event = NewEvent { at, action: "endpoint_expired", agent_id: Some(agent), key_id: None, note, dedupe };
            self.audit(event).await;
            if let Some(logging) = self.log_liveness(agent, endpoint, ChangeKind::Expired, at) {
                logging.await;
            }
        }
    }
}
