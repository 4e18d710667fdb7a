//! Writes: registration, updates, endpoint changes, ownership, deregistration. Each is made
//! from the agent as the index holds it, under the write lock, and retried from the new state
//! when another replica changed the agent first.

use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::commit::InFlight;
use super::replication::WriteGuard;
use super::{AgentRegistry, RegisterOptions, Registration};
use crate::auth::Caller;
use crate::claim::ClaimRequest;
use crate::error::{RegistryError, Result};
use crate::index::{Hit, Index};
use crate::input::{AgentInput, EndpointInput, ensure_unique_endpoints};
use crate::liveness::Millis;
use crate::model::{Agent, AgentId, EndpointId};
use crate::ports::{Change, ChangeKind, IdempotencyRecord};
use crate::quota::Usage;

/// Tries of a write that meets concurrent changes from other replicas.
const WRITE_ATTEMPTS: u32 = 10;

impl AgentRegistry {
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn register(
        &self,
        caller: &Caller,
        input: &AgentInput,
        options: &RegisterOptions,
    ) -> Result<(Hit, Registration)> {
        let now = self.clock.now();
        let (spec, requested_owner, endpoints) = input.to_registration(&self.config.liveness, now)?;
        let owner = match requested_owner {
            Some(owner) if owner != caller.owner => {
                caller.require_admin().map_err(|_| {
                    RegistryError::Forbidden("an Agent credential registers agents for its own owner id only".into())
                })?;
                owner
            }
            _ => caller.owner.clone(),
        };
        let request_hash = hash_request(input);
        // A retry (same key or same client-chosen id, same body) gets the first result back.
        let key = options.idempotency_key.clone().or_else(|| input.id.map(|id| format!("agent-id:{id}")));
        let id = input.id.unwrap_or_else(AgentId::generate);
        let now_ms = now.timestamp_millis();
        let mut attempt = 1;
        loop {
            let in_flight = |f: &InFlight| f.holds_agent(id) || key.as_ref().is_some_and(|k| f.holds_key(&owner, k));
            let mut write = self.lock_clear(attempt > 1, in_flight).await?;
            if let Some(key) = &key
                && let Some(record) = self.replica.store.find_idempotency(&owner, key).await?
            {
                if record.request_hash != request_hash {
                    return Err(match input.id {
                        Some(id) if options.idempotency_key.is_none() => RegistryError::AgentExists(id.to_string()),
                        _ => RegistryError::IdempotencyKeyReused,
                    });
                }
                // Registered through another replica moments ago, perhaps.
                self.catch_up_if(&mut write, self.get(record.agent_id).is_err()).await?;
                return Ok((self.get(record.agent_id)?, Registration::Replayed));
            }
            let exists = || self.replica.index.read().agent(id, 0).is_some();
            // Perhaps removed through another replica moments ago.
            self.catch_up_if(&mut write, exists()).await?;
            if exists() {
                return Err(RegistryError::AgentExists(id.to_string()));
            }
            let mut agent = spec.to_agent(id, owner.clone(), endpoints.clone(), now);
            // A name held by an agent that another replica removed moments ago is free.
            let contested = input.claims.iter().any(|r| r.is_taken(&self.replica.index.read(), id));
            self.catch_up_if(&mut write, contested).await?;
            self.grant_names(&input.claims, &mut agent, caller.is_admin())?;
            if self.committer.in_flight.lock().holds_any_name(&agent.claims) {
                // A registration in flight may take the same name: decided again after it.
                self.wait_for_batch(write).await?;
                continue;
            }
            let charge = self.ensure_quota(caller, &owner, 1, || document_bytes(&agent))?;
            let seen: Vec<_> = agent.endpoints.iter().map(|e| (e.id, now_ms)).collect();
            let idempotency = key.clone().map(|key| IdempotencyRecord {
                owner_id: owner.clone(),
                key,
                request_hash: request_hash.clone(),
                agent_id: id,
                created_at: now_ms,
            });
            let note = caller.note(describe(ChangeKind::Registered, None, &agent));
            let change =
                Change::Put { agent: Box::new(agent), kind: ChangeKind::Registered, seen, idempotency, expected: None };
            let result = self.commit(write, change, &note, charge).await;
            if !try_again(&result, &mut attempt).await {
                if result.is_ok() {
                    crate::metrics::count(crate::metrics::REGISTRATIONS, 1);
                }
                return result.map(|hit| (hit, Registration::Created));
            }
        }
    }

    /// Grants a new agent the names it asks for, as the index stands under the write lock. The
    /// store refuses a name another replica granted meanwhile, and the retry decides again.
    fn grant_names(&self, requests: &[ClaimRequest], agent: &mut Agent, admin: bool) -> Result<()> {
        let index = self.replica.index.read();
        for request in requests {
            let claim = request.resolve(&index, agent.id, &agent.owner_id, admin)?;
            if let Some(label) = &request.label {
                agent.labels.insert(label.clone(), claim.name.clone());
            }
            if !agent.claims.contains(&claim) {
                agent.claims.push(claim);
            }
        }
        Ok(())
    }

    /// Replaces the descriptive fields; capabilities are replaced when given and kept when
    /// absent; endpoints are never touched.
    #[tracing::instrument(level = "debug", skip_all, fields(agent.id = %id))]
    pub async fn update(&self, caller: &Caller, id: AgentId, input: &AgentInput, if_match: Option<u64>) -> Result<Hit> {
        if input.id.is_some_and(|given| given != id) {
            return Err(RegistryError::field("/id", "does not match the agent id in the path"));
        }
        let now = self.clock.now();
        let edit = |agent: &mut Agent| {
            let spec = input.to_spec(&agent.capabilities)?;
            agent.name = spec.name;
            agent.description = spec.description;
            agent.version = spec.version;
            agent.tags = spec.tags;
            agent.labels = spec.labels;
            if let Some(caps) = spec.capabilities {
                agent.capabilities = caps;
            }
            agent.metadata = spec.metadata;
            agent.permanent = spec.permanent;
            // The agent no longer is what its protocol document says; documents are built
            // from the domain from now on.
            agent.origin = spec.origin;
            agent.updated_at = now;
            Ok(())
        };
        self.modify(caller, id, if_match, ChangeKind::Updated, &[], edit).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(agent.id = %id))]
    pub async fn deregister(&self, caller: &Caller, id: AgentId, if_match: Option<u64>) -> Result<()> {
        let mut attempt = 1;
        loop {
            let mut write = self.lock_clear(attempt > 1, |f| f.holds_agent(id)).await?;
            let current = self.current_for_write(&mut write, caller, id, if_match).await?;
            let change = Change::Delete { agent_id: id, kind: ChangeKind::Deregistered, expected: current.revision };
            let note = caller.note(format!("deregistered `{}`", current.name));
            let result = self.apply(write, change, &note, Usage::default()).await;
            if !try_again(&result, &mut attempt).await {
                result?;
                crate::metrics::count(crate::metrics::DEREGISTRATIONS, 1);
                let ids: Vec<EndpointId> = current.endpoints.iter().map(|e| e.id).collect();
                self.forget_liveness(&ids).await;
                return Ok(());
            }
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(agent.id = %id))]
    pub async fn add_endpoint(
        &self,
        caller: &Caller,
        id: AgentId,
        input: &EndpointInput,
        if_match: Option<u64>,
    ) -> Result<(Hit, EndpointId)> {
        let now = self.clock.now();
        let endpoint = input.to_endpoint(&self.config.liveness, EndpointId::generate(), now)?;
        let endpoint_id = endpoint.id;
        let edit = |agent: &mut Agent| {
            if agent.endpoints.len() >= crate::input::limits::ENDPOINTS {
                return Err(RegistryError::field(
                    "/",
                    format!("the agent already has {} endpoints, the limit", crate::input::limits::ENDPOINTS),
                ));
            }
            agent.endpoints.push(endpoint.clone());
            ensure_unique_endpoints(&agent.endpoints, "").map_err(point_at_body_name)?;
            agent.origin = None;
            agent.updated_at = now;
            Ok(())
        };
        let seen = [(endpoint_id, now.timestamp_millis())];
        Ok((self.modify(caller, id, if_match, ChangeKind::EndpointAdded, &seen, edit).await?, endpoint_id))
    }

    /// Replaces an endpoint's settings, keeping its id and when it was last seen.
    #[tracing::instrument(level = "debug", skip_all, fields(agent.id = %id))]
    pub async fn update_endpoint(
        &self,
        caller: &Caller,
        id: AgentId,
        endpoint_id: EndpointId,
        input: &EndpointInput,
        if_match: Option<u64>,
    ) -> Result<Hit> {
        let now = self.clock.now();
        let edit = |agent: &mut Agent| {
            let created_at = agent.endpoint(endpoint_id).ok_or_else(|| endpoint_not_found(id, endpoint_id))?.created_at;
            let endpoint = input.to_endpoint(&self.config.liveness, endpoint_id, created_at)?;
            for e in &mut agent.endpoints {
                if e.id == endpoint_id {
                    *e = endpoint.clone();
                }
            }
            ensure_unique_endpoints(&agent.endpoints, "").map_err(point_at_body_name)?;
            agent.origin = None;
            agent.updated_at = now;
            Ok(())
        };
        self.modify(caller, id, if_match, ChangeKind::EndpointUpdated, &[], edit).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(agent.id = %id))]
    pub async fn remove_endpoint(
        &self,
        caller: &Caller,
        id: AgentId,
        endpoint_id: EndpointId,
        if_match: Option<u64>,
    ) -> Result<Hit> {
        let now = self.clock.now();
        let edit = |agent: &mut Agent| {
            agent.endpoint(endpoint_id).ok_or_else(|| endpoint_not_found(id, endpoint_id))?;
            agent.endpoints.retain(|e| e.id != endpoint_id);
            agent.origin = None;
            agent.updated_at = now;
            Ok(())
        };
        let hit = self.modify(caller, id, if_match, ChangeKind::EndpointRemoved, &[], edit).await?;
        self.forget_liveness(&[endpoint_id]).await;
        Ok(hit)
    }
    /// Gives an agent to another owner (Admin only).
    #[tracing::instrument(level = "debug", skip_all, fields(agent.id = %id))]
    pub async fn transfer_owner(
        &self,
        caller: &Caller,
        id: AgentId,
        owner: &str,
        if_match: Option<u64>,
    ) -> Result<Hit> {
        caller.require_admin()?;
        let owner = crate::input::check_owner(owner)?;
        let now = self.clock.now();
        let edit = |agent: &mut Agent| {
            agent.owner_id.clone_from(&owner);
            agent.updated_at = now;
            Ok(())
        };
        self.modify(caller, id, if_match, ChangeKind::OwnerTransferred, &[], edit).await
    }

    /// The agent a write starts from. An unknown agent, or a client that knows a newer
    /// revision, may mean a change through another replica has not reached this index yet.
    async fn current_for_write(
        &self,
        write: &mut WriteGuard,
        caller: &Caller,
        id: AgentId,
        if_match: Option<u64>,
    ) -> Result<Agent> {
        let current = self.authorize(caller, id).and_then(|()| self.current(id, if_match));
        let behind = matches!(current, Err(RegistryError::AgentNotFound(_) | RegistryError::Forbidden(_)))
            || matches!(current, Err(RegistryError::RevisionMismatch { expected, current }) if expected > current);
        if !behind {
            return current;
        }
        self.catch_up_if(write, true).await?;
        self.authorize(caller, id)?;
        self.current(id, if_match)
    }

    /// Whether the caller may manage the agent. To an Agent-scoped caller, someone else's agent
    /// and one that does not exist look the same.
    pub(super) fn authorize(&self, caller: &Caller, id: AgentId) -> Result<()> {
        if caller.is_admin() || self.replica.index.read().owned_by(id, &caller.owner) {
            Ok(())
        } else {
            Err(RegistryError::Forbidden(format!("agent {id} does not exist or belongs to another owner")))
        }
    }

    /// The agent as it stands, if it is at the revision the caller expects.
    fn current(&self, id: AgentId, if_match: Option<u64>) -> Result<Agent> {
        let hit = self.get(id)?;
        match if_match {
            Some(expected) if expected != hit.revision() => {
                Err(RegistryError::RevisionMismatch { expected, current: hit.revision() })
            }
            _ => hit.agent(),
        }
    }

    pub(super) fn missing(&self, index: &Index, id: AgentId, endpoint_id: EndpointId) -> RegistryError {
        if index.agent(id, 0).is_none() {
            RegistryError::AgentNotFound(id.to_string())
        } else {
            endpoint_not_found(id, endpoint_id)
        }
    }

    /// Edits an agent as it currently stands and stores the result; when another replica
    /// changed the agent in the meantime, catches up and edits again.
    async fn modify(
        &self,
        caller: &Caller,
        id: AgentId,
        if_match: Option<u64>,
        kind: ChangeKind,
        seen: &[(EndpointId, Millis)],
        edit: impl Fn(&mut Agent) -> Result<()>,
    ) -> Result<Hit> {
        let mut attempt = 1;
        loop {
            let mut write = self.lock_clear(attempt > 1, |f| f.holds_agent(id)).await?;
            let mut agent = self.current_for_write(&mut write, caller, id, if_match).await?;
            let (expected, before) = (agent.revision, agent.clone());
            edit(&mut agent)?;
            let charge = self.ensure_quota(caller, &agent.owner_id, 0, || {
                document_bytes(&agent).saturating_sub(document_bytes(&before))
            })?;
            let note = caller.note(describe(kind, Some(&before), &agent));
            let change = Change::Put {
                agent: Box::new(agent),
                kind,
                seen: seen.to_vec(),
                idempotency: None,
                expected: Some(expected),
            };
            let result = self.commit(write, change, &note, charge).await;
            if !try_again(&result, &mut attempt).await {
                return result;
            }
        }
    }
}

impl AgentRegistry {
    /// An Agent caller's owner stays within its quota, the one its key carries or the
    /// registry's default; Admin callers are the operators and have none. Checked under the
    /// write lock against what is registered and what writes in flight add, so concurrent
    /// registrations cannot overshoot it together. Returns what the write adds, for the writes
    /// decided while it is in flight (an Admin's registration counts its agent only).
    fn ensure_quota(&self, caller: &Caller, owner: &str, agents: u32, bytes: impl FnOnce() -> u64) -> Result<Usage> {
        if caller.is_admin() {
            return Ok(Usage { agents, document_bytes: 0 });
        }
        let quota = caller.quota.unwrap_or(self.config.quota);
        let (registered, in_flight) =
            (self.replica.index.read().usage(owner), self.committer.in_flight.lock().usage(owner));
        let usage = Usage {
            agents: registered.agents.saturating_add(in_flight.agents),
            document_bytes: registered.document_bytes.saturating_add(in_flight.document_bytes),
        };
        let bytes = bytes();
        quota.allows(owner, usage, agents, bytes)?;
        Ok(Usage { agents, document_bytes: bytes })
    }
}

/// What an agent counts against its owner's quota: its JSON as stored, protocol document included.
fn document_bytes(agent: &Agent) -> u64 {
    serde_json::to_vec(agent).map_or(u64::MAX, |json| u64::try_from(json.len()).unwrap_or(u64::MAX))
}

/// A one-line account of a change, for the audit trail.
fn describe(kind: ChangeKind, before: Option<&Agent>, after: &Agent) -> String {
    let endpoints = |a: &Agent| a.endpoints.iter().map(|e| (e.id, e.name.clone())).collect::<Vec<_>>();
    match (kind, before) {
        (ChangeKind::Registered, _) | (_, None) => format!(
            "registered `{}` with {} capabilities and {} endpoints",
            after.name,
            after.capabilities.len(),
            after.endpoints.len()
        ),
        (ChangeKind::OwnerTransferred, Some(b)) => format!("owner `{}` → `{}`", b.owner_id, after.owner_id),
        (ChangeKind::EndpointAdded | ChangeKind::EndpointRemoved | ChangeKind::EndpointUpdated, Some(b)) => {
            let (old, new) = (endpoints(b), endpoints(after));
            let added = new.iter().filter(|e| !old.contains(e)).map(|(_, n)| format!("+`{n}`"));
            let removed = old.iter().filter(|e| !new.contains(e)).map(|(_, n)| format!("-`{n}`"));
            let changed: Vec<String> = added.chain(removed).collect();
            if changed.is_empty() {
                "changed an endpoint's settings".into()
            } else {
                format!("endpoints {}", changed.join(" "))
            }
        }
        (_, Some(b)) => {
            let fields = [
                ("name", b.name != after.name),
                ("description", b.description != after.description),
                ("version", b.version != after.version),
                ("tags", b.tags != after.tags),
                ("labels", b.labels != after.labels),
                ("capabilities", b.capabilities != after.capabilities),
                ("metadata", b.metadata != after.metadata),
                ("permanent", b.permanent != after.permanent),
            ];
            let changed: Vec<&str> = fields.iter().filter(|(_, c)| *c).map(|(f, _)| *f).collect();
            if changed.is_empty() { "no field changed".into() } else { format!("changed {}", changed.join(", ")) }
        }
    }
}

/// Whether a write that met another replica's concurrent change should be made again from the
/// new state. A short pause, random and growing, lets replicas contending for one agent take
/// turns instead of colliding again.
pub(super) async fn try_again<T>(result: &Result<T>, attempt: &mut u32) -> bool {
    if !matches!(result, Err(RegistryError::StaleWrite(_))) || *attempt >= WRITE_ATTEMPTS {
        return false;
    }
    let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0] % 8);
    tokio::time::sleep(Duration::from_millis(jitter * u64::from(*attempt))).await;
    *attempt += 1;
    true
}

/// A single-endpoint request has one name to blame: the body's.
fn point_at_body_name(e: RegistryError) -> RegistryError {
    match e {
        RegistryError::DuplicateEndpointName { name, .. } => {
            RegistryError::DuplicateEndpointName { name, pointer: "/name".into() }
        }
        other => other,
    }
}

pub(super) fn endpoint_not_found(id: AgentId, endpoint_id: EndpointId) -> RegistryError {
    RegistryError::EndpointNotFound { agent: id.to_string(), endpoint: endpoint_id.to_string() }
}

/// A stable hash of a registration request, to recognise retries.
fn hash_request(input: &impl Serialize) -> String {
    let bytes = serde_json::to_vec(input).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
}
