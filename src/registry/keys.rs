//! API keys: issue, list, revoke, and authentication against the keys held in memory.

use uuid::Uuid;

use super::AgentRegistry;
use crate::audit::{AuditEvent, AuditNote, EventQuery, NewEvent};
use crate::auth::{ApiKey, Caller, Scope};
use crate::error::{RegistryError, Result};
use crate::input::check_owner;
use crate::liveness::Millis;

/// Keys read from the store at a time.
const KEYS_PAGE: usize = 1_000;

/// What a new key is for.
#[derive(Clone, Debug)]
pub struct KeyRequest {
    pub owner_id: String,
    pub scope: Scope,
    pub description: String,
    pub expires_at: Option<Millis>,
    /// What the owner may keep registered through this key (`None`: the registry's default).
    pub quota: Option<crate::quota::Quota>,
}

impl AgentRegistry {
    /// The caller a key belongs to; revoked, expired and unknown keys are refused alike.
    pub fn authenticate(&self, secret: &str, source: Option<String>) -> Result<Caller> {
        let now = self.clock.now_millis();
        let keys = self.keys.read();
        match keys.find(secret) {
            Some(key) if key.is_active(now) => Ok(Caller { source, ..key.caller() }),
            Some(key) if key.revoked_at.is_some() => {
                self.audit_revoked_use(key.id, source, now);
                Err(RegistryError::Unauthenticated("this API key has been revoked".into()))
            }
            Some(_) => Err(RegistryError::Unauthenticated("this API key has expired".into())),
            None => Err(RegistryError::Unauthenticated("unknown API key".into())),
        }
    }

    /// Records the use of a revoked key in the audit trail, at most once a minute per key (an
    /// attacker replaying it must not be able to flood the database).
    fn audit_revoked_use(&self, key_id: Uuid, source: Option<String>, now: Millis) {
        let Some(suppressed) = self.revoked_uses.admit(key_id, now) else {
            return;
        };
        // Logged as often as audited: a client retrying a revoked key must not flood the log.
        tracing::warn!(
            key.id = %key_id,
            source,
            suppressed,
            "a revoked API key was used (logged at most once a minute per key; `suppressed` uses since the last line)"
        );
        let note = AuditNote { actor: format!("key:{key_id}"), source, summary: "a revoked API key was used".into() };
        self.audit_later(NewEvent::about_key(now, "revoked_api_key_used", key_id, note));
    }

    /// Issues a key (Admin only); returns it with its secret, which is never shown again.
    pub async fn issue_key(&self, caller: &Caller, request: KeyRequest) -> Result<(ApiKey, String)> {
        caller.require_admin()?;
        self.store_new_key(caller.note(""), "api_key_issued", request).await
    }

    /// Issues the first Admin key, for `owner_id` (`admin` when `None`). Refused once an active
    /// Admin key exists, unless `again`.
    pub async fn bootstrap_key(
        &self,
        owner_id: Option<String>,
        description: String,
        again: bool,
        source: Option<String>,
    ) -> Result<(ApiKey, String)> {
        self.follow_keys().await?;
        if !again && self.keys.read().has_active_admin(self.clock.now_millis()) {
            return Err(RegistryError::BootstrapRefused);
        }
        let request = KeyRequest {
            owner_id: owner_id.unwrap_or_else(|| "admin".into()),
            scope: Scope::Admin,
            description,
            expires_at: None,
            quota: None,
        };
        let note = AuditNote { actor: "bootstrap".into(), source, summary: String::new() };
        self.store_new_key(note, "bootstrap", request).await
    }

    async fn store_new_key(
        &self,
        mut note: AuditNote,
        action: &'static str,
        request: KeyRequest,
    ) -> Result<(ApiKey, String)> {
        let owner_id = check_owner(&request.owner_id)?;
        let description = request.description.trim();
        if description.chars().count() > 1_024 || description.chars().any(char::is_control) {
            return Err(RegistryError::field("/description", "must be at most 1024 characters, on one line"));
        }
        let now = self.clock.now_millis();
        if request.expires_at.is_some_and(|t| t <= now) {
            return Err(RegistryError::field("/expiresAt", "must lie in the future"));
        }
        let (mut key, secret) = ApiKey::issue(owner_id, request.scope, description.to_owned(), now, request.expires_at);
        key.quota = request.quota;
        key.revision = self.replica.store.save_api_key(&key).await?;
        self.keys.write().put(key.clone());
        note.summary = format!("issued {} key ar_{}… for owner `{}`", key.scope.as_str(), key.prefix, key.owner_id);
        self.audit(NewEvent::about_key(now, action, key.id, note)).await;
        Ok((key, secret))
    }

    /// Keys, newest first, optionally of one owner and only active ones (Admin only).
    pub fn list_keys(&self, caller: &Caller, owner: Option<&str>, active: Option<bool>) -> Result<Vec<ApiKey>> {
        caller.require_admin()?;
        let now = self.clock.now_millis();
        let mut keys: Vec<ApiKey> = self
            .keys
            .read()
            .all()
            .filter(|k| owner.is_none_or(|o| k.owner_id == o) && active.is_none_or(|a| k.is_active(now) == a))
            .cloned()
            .collect();
        keys.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        Ok(keys)
    }

    /// One key: Admin sees every key, others only their own.
    pub fn get_key(&self, caller: &Caller, id: Uuid) -> Result<ApiKey> {
        let keys = self.keys.read();
        match keys.get(id) {
            Some(key) if caller.is_admin() || caller.actor == key.caller().actor => Ok(key.clone()),
            _ => Err(RegistryError::KeyNotFound(id.to_string())),
        }
    }

    /// Revokes a key at once on this replica, and within a follow interval on the others.
    /// Admin may revoke any key, others only the key they call with. The last active Admin key
    /// is kept unless `force`: without one, nobody could issue or revoke keys any more (only a
    /// repeated bootstrap could recover).
    pub async fn revoke_key(&self, caller: &Caller, id: Uuid, force: bool) -> Result<ApiKey> {
        // Under the write lock, so two revocations on this replica cannot each leave the other
        // key as "the one that remains".
        let _writing = self.replica.lock().await;
        self.follow_keys().await?;
        let mut key = self.get_key(caller, id)?;
        if key.revoked_at.is_some() {
            return Err(RegistryError::KeyRevoked(id.to_string()));
        }
        let now = self.clock.now_millis();
        if !force && key.scope == Scope::Admin && key.is_active(now) {
            let others = self.keys.read().all().any(|k| k.id != id && k.scope == Scope::Admin && k.is_active(now));
            if !others {
                return Err(RegistryError::LastAdminKey(id.to_string()));
            }
        }
        key.revoked_at = Some(now);
        key.revision = self.replica.store.save_api_key(&key).await?;
        self.keys.write().put(key.clone());
        let note =
            caller.note(format!("revoked {} key ar_{}… of owner `{}`", key.scope.as_str(), key.prefix, key.owner_id));
        self.audit(NewEvent::about_key(now, "api_key_revoked", key.id, note)).await;
        Ok(key)
    }

    /// Appends an event; the change it records has happened, so a failure is logged, not
    /// returned.
    /// Appends an event without making the caller wait for the database.
    pub(super) fn audit_later(&self, event: NewEvent) {
        let store = self.replica.store.clone();
        tokio::spawn(tracing::Instrument::in_current_span(async move {
            if let Err(e) = store.record_event(&event).await {
                tracing::warn!(error = %e, action = event.action, "could not append to the audit trail");
            }
        }));
    }

    pub(super) async fn audit(&self, event: NewEvent) {
        if let Err(e) = self.replica.store.record_event(&event).await {
            tracing::warn!(error = %e, action = event.action, "could not append to the audit trail");
        }
    }

    /// The audit trail, newest first: Admin sees everything; others only the events of an
    /// agent they own.
    pub async fn events(&self, caller: &Caller, query: &EventQuery) -> Result<Vec<AuditEvent>> {
        match query.agent {
            Some(agent) if !caller.is_admin() => self.authorize(caller, agent)?,
            _ => caller.require_admin()?,
        }
        self.replica.store.events(query).await
    }

    /// Reads keys other replicas issued or revoked.
    pub(super) async fn follow_keys(&self) -> Result<()> {
        loop {
            let after = self.keys.read().revision;
            let changed = self.replica.store.api_keys_since(after, KEYS_PAGE).await?;
            let n = changed.len();
            let mut keys = self.keys.write();
            changed.into_iter().for_each(|k| keys.put(k));
            if n < KEYS_PAGE {
                return Ok(());
            }
        }
    }
}
