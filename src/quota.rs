//! How much one owner may keep registered: a number of agents and the bytes of their documents.
//! Every owner has the registry's default quota unless the Admin who issued its key gave that
//! key another; Admin callers have none (they are the operators).

use serde::{Deserialize, Serialize};

use crate::error::{RegistryError, Result};

/// Limits on what one owner keeps registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Quota {
    /// Agents the owner may have registered at once.
    pub max_agents: u32,
    /// Total size of their documents (each agent's JSON, its protocol document included).
    pub max_document_bytes: u64,
}

impl Default for Quota {
    /// Sized for a small pod: a thousand agents, 16 MiB of documents, per owner.
    fn default() -> Self {
        Self { max_agents: 1_000, max_document_bytes: 16 << 20 }
    }
}

/// What an owner has registered now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub agents: u32,
    pub document_bytes: u64,
}

impl Quota {
    /// Whether `usage` may grow by `agents` more agents and `bytes` more bytes.
    pub fn allows(&self, owner: &str, usage: Usage, agents: u32, bytes: u64) -> Result<()> {
        if agents > 0 && usage.agents.saturating_add(agents) > self.max_agents {
            return Err(RegistryError::QuotaExceeded {
                owner: owner.to_owned(),
                quota: "maxAgents",
                limit: u64::from(self.max_agents),
            });
        }
        if bytes > 0 && usage.document_bytes.saturating_add(bytes) > self.max_document_bytes {
            return Err(RegistryError::QuotaExceeded {
                owner: owner.to_owned(),
                quota: "maxDocumentBytes",
                limit: self.max_document_bytes,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_refuses_growth_past_either_limit_and_never_a_shrink() {
        let quota = Quota { max_agents: 2, max_document_bytes: 100 };
        let usage = Usage { agents: 1, document_bytes: 60 };
        assert!(quota.allows("kim", usage, 1, 40).is_ok());
        assert_eq!(quota.allows("kim", usage, 2, 0).unwrap_err().code(), "quota_exceeded");
        assert!(quota.allows("kim", usage, 0, 41).unwrap_err().to_string().contains("maxDocumentBytes"));
        // An owner already over a lowered quota may still change agents without growing.
        assert!(quota.allows("kim", Usage { agents: 5, document_bytes: 500 }, 0, 0).is_ok());
    }
}
