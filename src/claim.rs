//! Names an agent holds alone: an ACP name, an MCP server's name and version. A protocol route
//! asks for a name with a [`ClaimRequest`]; the registry resolves it under its write lock (after
//! the idempotency check), the store enforces it across replicas with a unique index, and the
//! index finds the holder of a name without a scan.

use serde::{Deserialize, Serialize};

use crate::error::RegistryError;
use crate::index::Index;
use crate::model::AgentId;

/// Candidates tried for a name before giving up.
const MAX_SUFFIXES: u32 = 1_000;

/// A name held by one agent within its namespace. Two claims are the same name whatever their
/// scopes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NameClaim {
    pub namespace: String,
    pub name: String,
    /// A part of the name that one owner holds: every name of the namespace in this scope
    /// belongs to agents of the owner who registered the first (an MCP server name's
    /// reverse-DNS namespace, `io.github.alice` of `io.github.alice/weather`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl NameClaim {
    /// A name without a scope.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self { namespace: namespace.into(), name: name.into(), scope: None }
    }

    fn key(&self) -> (&str, &str) {
        (&self.namespace, &self.name)
    }
}

impl PartialEq for NameClaim {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for NameClaim {}

impl std::hash::Hash for NameClaim {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl PartialOrd for NameClaim {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for NameClaim {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// What to do when the name asked for is taken.
#[derive(Clone, Copy, Debug)]
pub enum OnTaken {
    /// Refuse the registration (`agent_exists`, naming the holder).
    Refuse,
    /// Take the first free of `name`, `next(name, 2)`, `next(name, 3)`, …
    Suffix(fn(&str, u32) -> String),
}

/// A name a registration asks for.
#[derive(Clone, Debug)]
pub struct ClaimRequest {
    pub namespace: String,
    pub name: String,
    pub on_taken: OnTaken,
    /// A label that is set to the name granted (the ACP name is visible as a label).
    pub label: Option<String>,
    /// The scope of the name (see [`NameClaim::scope`]).
    pub scope: Option<String>,
}

impl ClaimRequest {
    /// Whether the name asked for may be held by an agent other than `id` (then a replica
    /// catches up with the others before deciding).
    pub(crate) fn is_taken(&self, index: &Index, id: AgentId) -> bool {
        // A scope is decided from the latest state too: which owner got it first.
        self.scope.is_some() || self.holder(index, &self.claim(self.name.clone()), id).is_some()
    }

    /// The agent other than `id` that holds a name. A name shown as a label is also held by an
    /// agent that only has the label (registered before names were claimed, or labelled through
    /// the generic API).
    fn holder(&self, index: &Index, claim: &NameClaim, id: AgentId) -> Option<AgentId> {
        index
            .claim_holder(claim)
            .filter(|holder| *holder != id)
            .or_else(|| self.label.as_deref().and_then(|label| index.labelled(label, &claim.name, id)))
    }

    fn claim(&self, name: String) -> NameClaim {
        NameClaim { namespace: self.namespace.clone(), name, scope: self.scope.clone() }
    }

    /// The name this request is granted for agent `id` of `owner` as the index stands, or why
    /// not. Ownership comes before conflict: a name, or a scope, held by another owner's agent
    /// is refused as forbidden without saying which agent holds it (an Admin caller, `admin`,
    /// may register in any scope and learns the holder).
    pub(crate) fn resolve(
        &self,
        index: &Index,
        id: AgentId,
        owner: &str,
        admin: bool,
    ) -> Result<NameClaim, RegistryError> {
        if let Some(scope) = &self.scope
            && let Some(holder) = index.scope_owner(&self.namespace, scope)
            && holder != owner
            && !admin
        {
            return Err(RegistryError::Forbidden(format!("names in `{scope}` belong to another owner")));
        }
        let holder = |claim: &NameClaim| self.holder(index, claim, id);
        let wanted = self.claim(self.name.clone());
        let Some(taken_by) = holder(&wanted) else {
            return Ok(wanted);
        };
        match self.on_taken {
            OnTaken::Refuse if !admin && !index.owned_by(taken_by, owner) => {
                Err(RegistryError::Forbidden(format!("`{}` is held by another owner's agent", self.name)))
            }
            OnTaken::Refuse => Err(RegistryError::AgentExists(taken_by.to_string())),
            OnTaken::Suffix(next) => (2..=MAX_SUFFIXES)
                .map(|n| self.claim(next(&self.name, n)))
                .find(|candidate| holder(candidate).is_none())
                .ok_or_else(|| RegistryError::AgentExists(taken_by.to_string())),
        }
    }
}
