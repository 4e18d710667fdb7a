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

/// A name held by one agent within its namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NameClaim {
    pub namespace: String,
    pub name: String,
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
}

impl ClaimRequest {
    /// Whether the name asked for is held by an agent other than `id`.
    pub(crate) fn is_taken(&self, index: &Index, id: AgentId) -> bool {
        let wanted = NameClaim { namespace: self.namespace.clone(), name: self.name.clone() };
        self.holder(index, &wanted, id).is_some()
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

    /// The name this request is granted for agent `id` as the index stands, or why not.
    pub(crate) fn resolve(&self, index: &Index, id: AgentId) -> Result<NameClaim, RegistryError> {
        let claim = |name: String| NameClaim { namespace: self.namespace.clone(), name };
        let holder = |claim: &NameClaim| self.holder(index, claim, id);
        let wanted = claim(self.name.clone());
        let Some(taken_by) = holder(&wanted) else {
            return Ok(wanted);
        };
        match self.on_taken {
            OnTaken::Refuse => Err(RegistryError::AgentExists(taken_by.to_string())),
            OnTaken::Suffix(next) => (2..=MAX_SUFFIXES)
                .map(|n| claim(next(&self.name, n)))
                .find(|candidate| holder(candidate).is_none())
                .ok_or_else(|| RegistryError::AgentExists(taken_by.to_string())),
        }
    }
}
