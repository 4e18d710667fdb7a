//! In-memory implementations of the ports: a store for tests and the in-process liveness store
//! of the embedded default.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::audit::{AuditEvent, AuditNote, EventQuery, NewEvent};
use crate::auth::ApiKey;
use crate::error::{RegistryError, Result};
use crate::liveness::Millis;
use crate::model::{Agent, AgentId, EndpointId};
use crate::ports::{AgentStore, Change, IdempotencyRecord, LivenessChange, LivenessStore, LoggedChange, StoredAgent};

/// An `AgentStore` that keeps everything in memory (lost on restart).
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<MemoryState>,
}

#[derive(Default)]
struct MemoryState {
    revision: u64,
    agents: HashMap<AgentId, Agent>,
    last_seen: HashMap<EndpointId, Millis>,
    idempotency: HashMap<(String, String), IdempotencyRecord>,
    /// Who holds each claimed name (as the SQL stores' `unique_names`).
    claims: HashMap<crate::claim::NameClaim, AgentId>,
    api_keys: Vec<ApiKey>,
    events: Vec<AuditEvent>,
    dedupe: std::collections::HashSet<String>,
    /// The change log, with when each change was recorded.
    log: std::collections::VecDeque<(Millis, LoggedChange)>,
}

impl MemoryState {
    fn record(
        &mut self,
        at: Millis,
        action: &str,
        agent_id: Option<AgentId>,
        key_id: Option<uuid::Uuid>,
        revision: Option<u64>,
        note: &AuditNote,
    ) {
        self.events.push(AuditEvent {
            id: self.events.last().map_or(1, |e| e.id + 1),
            at: crate::clock::to_datetime(at),
            actor: note.actor.clone(),
            source: note.source.clone(),
            action: action.to_owned(),
            agent_id,
            key_id,
            revision,
            summary: note.summary.clone(),
        });
    }
}

#[async_trait]
impl AgentStore for MemoryStore {
    async fn load_page(&self, after: Option<AgentId>, limit: usize) -> Result<Vec<StoredAgent>> {
        let state = self.state.lock();
        let mut agents: Vec<&Agent> =
            state.agents.values().filter(|a| after.is_none_or(|after| a.id > after)).collect();
        agents.sort_unstable_by_key(|a| a.id);
        Ok(agents
            .into_iter()
            .take(limit)
            .map(|agent| StoredAgent {
                last_seen: agent
                    .endpoints
                    .iter()
                    .filter_map(|e| state.last_seen.get(&e.id).map(|t| (e.id, *t)))
                    .collect(),
                agent: agent.clone(),
            })
            .collect())
    }

    async fn apply(&self, change: Change, note: &AuditNote) -> Result<u64> {
        let mut state = self.state.lock();
        let (agent_id, kind) = (change.agent_id(), change.kind());
        let stored = state.agents.get(&agent_id).map(|a| a.revision);
        let expected = match &change {
            Change::Put { expected, .. } => *expected,
            Change::Delete { expected, .. } => Some(*expected),
        };
        let taken = match &change {
            Change::Put { idempotency: Some(r), .. }
                if state.idempotency.contains_key(&(r.owner_id.clone(), r.key.clone())) =>
            {
                true
            }
            Change::Put { agent, expected: None, .. } => agent.claims.iter().any(|c| state.claims.contains_key(c)),
            _ => false,
        };
        if stored != expected || taken {
            return Err(RegistryError::StaleWrite(agent_id.to_string()));
        }
        state.revision += 1;
        let revision = state.revision;
        let now = chrono::Utc::now().timestamp_millis();
        let mut logged = LoggedChange { revision, agent_id, kind, agent: None, at: now, endpoint_id: None };
        match change {
            Change::Put { mut agent, seen, idempotency, .. } => {
                agent.revision = revision;
                logged.agent = Some((*agent).clone());
                if let Some(old) = state.agents.get(&agent.id) {
                    let removed: Vec<_> =
                        old.endpoints.iter().filter(|e| agent.endpoint(e.id).is_none()).map(|e| e.id).collect();
                    for id in removed {
                        state.last_seen.remove(&id);
                    }
                }
                state.last_seen.extend(seen);
                if let Some(record) = idempotency {
                    state.idempotency.insert((record.owner_id.clone(), record.key.clone()), record);
                }
                if expected.is_none() {
                    for claim in &agent.claims {
                        state.claims.insert(claim.clone(), agent.id);
                    }
                }
                state.agents.insert(agent.id, *agent);
            }
            Change::Delete { agent_id, .. } => {
                if let Some(old) = state.agents.remove(&agent_id) {
                    for e in &old.endpoints {
                        state.last_seen.remove(&e.id);
                    }
                    for claim in &old.claims {
                        state.claims.remove(claim);
                    }
                }
            }
        }
        state.record(now, kind.as_str(), Some(agent_id), None, Some(revision), note);
        state.log.push_back((now, logged));
        Ok(revision)
    }

    async fn find_idempotency(&self, owner_id: &str, key: &str) -> Result<Option<IdempotencyRecord>> {
        Ok(self.state.lock().idempotency.get(&(owner_id.to_owned(), key.to_owned())).cloned())
    }

    async fn expire_idempotency(&self, before: Millis) -> Result<u64> {
        let mut state = self.state.lock();
        let n = state.idempotency.len();
        state.idempotency.retain(|_, r| r.created_at >= before);
        Ok((n - state.idempotency.len()) as u64)
    }

    async fn record_last_seen(&self, seen: &[(EndpointId, Millis)]) -> Result<()> {
        let mut state = self.state.lock();
        for (id, at) in seen {
            if let Some(t) = state.last_seen.get_mut(id) {
                *t = (*t).max(*at);
            }
        }
        Ok(())
    }

    async fn current_revision(&self) -> Result<u64> {
        Ok(self.state.lock().revision)
    }

    async fn changes_since(&self, after: u64, limit: usize) -> Result<Vec<LoggedChange>> {
        let state = self.state.lock();
        Ok(state.log.iter().map(|(_, c)| c).filter(|c| c.revision > after).take(limit).cloned().collect())
    }

    async fn prune_changes(&self, before: Millis) -> Result<u64> {
        let mut state = self.state.lock();
        let n = state.log.len();
        while state.log.len() > 1 && state.log.front().is_some_and(|(at, _)| *at < before) {
            state.log.pop_front();
        }
        Ok((n - state.log.len()) as u64)
    }

    async fn oldest_change(&self) -> Result<Option<u64>> {
        Ok(self.state.lock().log.front().map(|(_, c)| c.revision))
    }

    async fn append_event(&self, event: &LivenessChange) -> Result<Option<u64>> {
        let mut state = self.state.lock();
        let key = format!("change:{}", event.dedupe);
        if !state.dedupe.insert(key) {
            return Ok(None);
        }
        state.revision += 1;
        let revision = state.revision;
        state.log.push_back((event.at, event.logged(revision)));
        Ok(Some(revision))
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    async fn sizes(&self) -> Result<crate::ports::StoreSizes> {
        let state = self.state.lock();
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        Ok(crate::ports::StoreSizes {
            bytes: 0,
            free_bytes: 0,
            agents: count(state.agents.len()),
            changes: count(state.log.len()),
            audit_events: count(state.events.len()),
            idempotency_keys: count(state.idempotency.len()),
        })
    }

    async fn record_event(&self, event: &NewEvent) -> Result<()> {
        let mut state = self.state.lock();
        if let Some(key) = &event.dedupe
            && !state.dedupe.insert(key.clone())
        {
            return Ok(());
        }
        state.record(event.at, event.action, event.agent_id, event.key_id, None, &event.note);
        Ok(())
    }

    async fn events(&self, query: &EventQuery) -> Result<Vec<AuditEvent>> {
        let state = self.state.lock();
        Ok(state.events.iter().rev().filter(|e| query.matches(e)).take(query.limit).cloned().collect())
    }

    async fn prune_events(&self, before: Millis) -> Result<u64> {
        let mut state = self.state.lock();
        let n = state.events.len();
        state.events.retain(|e| e.at.timestamp_millis() >= before);
        Ok((n - state.events.len()) as u64)
    }

    async fn save_api_key(&self, key: &ApiKey) -> Result<u64> {
        let mut state = self.state.lock();
        let revision = state.api_keys.iter().map(|k| k.revision).max().unwrap_or(0) + 1;
        state.api_keys.retain(|k| k.id != key.id);
        state.api_keys.push(ApiKey { revision, ..key.clone() });
        Ok(revision)
    }

    async fn api_keys_since(&self, after: u64, limit: usize) -> Result<Vec<ApiKey>> {
        let state = self.state.lock();
        let mut keys: Vec<ApiKey> = state.api_keys.iter().filter(|k| k.revision > after).cloned().collect();
        keys.sort_by_key(|k| k.revision);
        keys.truncate(limit);
        Ok(keys)
    }
}

/// The embedded default's liveness store: touches are held in memory and written to the agent
/// store in batches by `flush`, so a heartbeat never waits on the database while a restart still
/// knows when each endpoint was last seen (possibly a little earlier than the truth, which can
/// only make an endpoint look dead too soon, never alive too long).
pub struct InProcessLiveness {
    pending: Mutex<HashMap<EndpointId, Millis>>,
    sink: Arc<dyn AgentStore>,
}

impl InProcessLiveness {
    pub fn new(sink: Arc<dyn AgentStore>) -> Self {
        Self { pending: Mutex::default(), sink }
    }
}

#[async_trait]
impl LivenessStore for InProcessLiveness {
    async fn touch(&self, endpoint: EndpointId, at: Millis, _lease_millis: Millis) -> Result<Option<Millis>> {
        let mut pending = self.pending.lock();
        let t = pending.entry(endpoint).or_insert(at);
        *t = (*t).max(at);
        // Touches already flushed are not kept here: the index, this process's own, knows.
        Ok(None)
    }

    async fn forget(&self, endpoints: &[EndpointId]) -> Result<()> {
        let mut pending = self.pending.lock();
        for id in endpoints {
            pending.remove(id);
        }
        Ok(())
    }

    async fn last_seen(&self, endpoints: &[EndpointId]) -> Result<Vec<Option<Millis>>> {
        let pending = self.pending.lock();
        Ok(endpoints.iter().map(|id| pending.get(id).copied()).collect())
    }

    async fn flush(&self) -> Result<()> {
        let batch: Vec<_> = std::mem::take(&mut *self.pending.lock()).into_iter().collect();
        if batch.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.sink.record_last_seen(&batch).await {
            // Put the batch back (keeping newer touches) so the next flush retries it.
            let mut pending = self.pending.lock();
            for (id, at) in batch {
                pending.entry(id).and_modify(|t| *t = (*t).max(at)).or_insert(at);
            }
            return Err(e);
        }
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}

/// A `TaskStore` in memory, for the core's tests.
#[derive(Default)]
pub struct MemoryTaskStore {
    tasks: Mutex<HashMap<crate::task::TaskId, (crate::task::Task, Vec<crate::task::LoggedTaskEvent>)>>,
    idempotency: Mutex<HashMap<(String, String), (crate::task::TaskId, String)>>,
}

impl MemoryTaskStore {
    fn append(
        entry: &mut (crate::task::Task, Vec<crate::task::LoggedTaskEvent>),
        at: Millis,
        event: &crate::task::TaskEvent,
    ) -> Option<u64> {
        let (task, events) = entry;
        task.apply(at, event)?;
        events.push(crate::task::LoggedTaskEvent {
            seq: task.last_seq,
            at: crate::clock::to_datetime(at),
            event: event.clone(),
        });
        Some(task.last_seq)
    }
}

#[async_trait]
impl crate::task::TaskStore for MemoryTaskStore {
    async fn create_task(
        &self,
        new: &crate::task::NewTask,
        created: &crate::task::TaskEvent,
    ) -> Result<crate::task::TaskCreated> {
        let mut keys = self.idempotency.lock();
        let mut tasks = self.tasks.lock();
        if let Some((key, hash)) = &new.idempotency {
            let slot = (new.task.owner_id.clone(), key.clone());
            if let Some((id, request_hash)) = keys.get(&slot)
                && let Some((task, _)) = tasks.get(id)
            {
                return Ok(crate::task::TaskCreated::Existing {
                    task: Box::new(task.clone()),
                    request_hash: request_hash.clone(),
                });
            }
            keys.insert(slot, (new.task.id, hash.clone()));
        }
        if tasks.contains_key(&new.task.id) {
            return Err(crate::RegistryError::internal(format!("task {} exists already", new.task.id)));
        }
        let mut task = new.task.clone();
        task.last_seq = 0;
        let mut entry = (task, Vec::new());
        Self::append(&mut entry, new.task.created_at, created);
        tasks.insert(new.task.id, entry);
        Ok(crate::task::TaskCreated::Created)
    }

    async fn append_task_event(
        &self,
        id: crate::task::TaskId,
        at: Millis,
        event: &crate::task::TaskEvent,
    ) -> Result<Option<u64>> {
        Ok(self.tasks.lock().get_mut(&id).and_then(|entry| Self::append(entry, at, event)))
    }

    async fn task(&self, id: crate::task::TaskId) -> Result<Option<crate::task::Task>> {
        Ok(self.tasks.lock().get(&id).map(|(task, _)| task.clone()))
    }

    async fn task_events(
        &self,
        id: crate::task::TaskId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<crate::task::LoggedTaskEvent>> {
        let tasks = self.tasks.lock();
        let events = tasks.get(&id).map(|(_, events)| events.as_slice()).unwrap_or_default();
        Ok(events.iter().filter(|e| e.seq > after).take(limit).cloned().collect())
    }

    async fn tasks(&self, query: &crate::task::TaskQuery) -> Result<Vec<crate::task::Task>> {
        let tasks = self.tasks.lock();
        let mut found: Vec<crate::task::Task> = tasks
            .values()
            .map(|(task, _)| task)
            .filter(|t| query.owner_id.as_ref().is_none_or(|o| *o == t.owner_id))
            .filter(|t| query.state.is_none_or(|s| s == t.state))
            .filter(|t| query.agent_id.is_none_or(|a| Some(a) == t.agent_id))
            .filter(|t| {
                query
                    .capability
                    .as_deref()
                    .is_none_or(|c| t.request.capability().is_some_and(|n| n.eq_ignore_ascii_case(c)))
            })
            .filter(|t| query.since.is_none_or(|s| t.created_at >= s))
            .filter(|t| query.before.is_none_or(|b| (t.created_at, t.id) < b))
            .cloned()
            .collect();
        found.sort_by_key(|t| std::cmp::Reverse((t.created_at, t.id)));
        found.truncate(query.limit);
        Ok(found)
    }

    async fn task_counts(&self, since: Millis) -> Result<Vec<crate::task::store::TaskCount>> {
        let mut counts: BTreeMap<(Option<String>, &'static str), u64> = BTreeMap::new();
        for (task, _) in self.tasks.lock().values() {
            let in_flight = crate::task::TaskState::IN_FLIGHT.contains(&task.state);
            if in_flight || task.finished_at.is_some_and(|f| f >= since) {
                *counts.entry((task.protocol.map(|p| p.to_string()), task.state.as_str())).or_default() += 1;
            }
        }
        counts
            .into_iter()
            .map(|((protocol, state), n)| {
                crate::task::store::TaskCount::from_row((
                    protocol,
                    state.to_owned(),
                    i64::try_from(n).unwrap_or(i64::MAX),
                ))
            })
            .collect()
    }

    async fn fail_abandoned_tasks(&self, overdue_at: Millis, at: Millis) -> Result<u64> {
        let mut tasks = self.tasks.lock();
        let mut failed = 0;
        for entry in tasks.values_mut() {
            let deadline = entry.0.created_at + i64::from(entry.0.request.timeout_seconds) * 1000;
            if crate::task::TaskState::IN_FLIGHT.contains(&entry.0.state) && deadline < overdue_at {
                Self::append(entry, at, &crate::task::store::abandoned_event());
                failed += 1;
            }
        }
        Ok(failed)
    }

    async fn prune_tasks(&self, before: Millis) -> Result<u64> {
        let mut tasks = self.tasks.lock();
        let count = tasks.len();
        tasks.retain(|_, (task, _)| {
            let waited_out = task.state == crate::task::TaskState::InputRequired && task.updated_at < before;
            task.finished_at.is_none_or(|f| f >= before) && !waited_out
        });
        Ok((count - tasks.len()) as u64)
    }
}
