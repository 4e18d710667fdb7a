//! Who is calling, and what they may do. API keys are random 256-bit secrets shown once; the
//! registry keeps only their SHA-256 (a secret that random needs no slow hash) and finds a key
//! by its short visible prefix before comparing hashes in constant time.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{RegistryError, Result};
use crate::liveness::Millis;

/// Every key starts with this, so leaked keys are easy to recognise (and to scan for).
pub const KEY_PREFIX: &str = "ar_";
/// Characters of a key after `ar_` shown when listing keys.
pub const VISIBLE_CHARS: usize = 8;

/// What a caller may do. Read in any letter case, or as the .NET registry's integer code
/// (`0` Agent, `1` Admin: the declaration order of its `ApiKeyScope`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Scope {
    /// Everything: every agent, API keys, ownership transfers.
    Admin,
    /// Register agents, and manage only the agents it owns.
    Agent,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "Admin",
            Self::Agent => "Agent",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Admin, Self::Agent].into_iter().find(|s| s.as_str().eq_ignore_ascii_case(text))
    }

    /// The .NET registry's integer code of this scope.
    pub fn dotnet_code(self) -> u8 {
        match self {
            Self::Agent => 0,
            Self::Admin => 1,
        }
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Scope;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("`Admin` or `Agent` (or the .NET codes 1 and 0)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Scope, E> {
                Scope::parse(v).ok_or_else(|| E::custom(format!("unknown scope `{v}`; expected `Admin` or `Agent`")))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<Scope, E> {
                match v {
                    0 => Ok(Scope::Agent),
                    1 => Ok(Scope::Admin),
                    _ => Err(E::custom(format!("unknown scope code {v}; expected 0 (Agent) or 1 (Admin)"))),
                }
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<Scope, E> {
                self.visit_u64(u64::try_from(v).unwrap_or(u64::MAX))
            }
        }
        d.deserialize_any(V)
    }
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// What its owner may keep registered, when its key says (else the registry's default).
    pub quota: Option<crate::quota::Quota>,
    /// Who acted, for the audit trail: `key:<id>` or `jwt:<subject>`.
    pub actor: String,
    /// The client's address, for the audit trail.
    pub source: Option<String>,
    /// The owner id its agents get.
    pub owner: String,
    pub scope: Scope,
}

impl Caller {
    /// The audit note of a change this caller makes.
    pub fn note(&self, summary: impl Into<String>) -> crate::audit::AuditNote {
        crate::audit::AuditNote { actor: self.actor.clone(), source: self.source.clone(), summary: summary.into() }
    }

    pub fn is_admin(&self) -> bool {
        self.scope == Scope::Admin
    }

    /// Admin only.
    pub fn require_admin(&self) -> Result<()> {
        if self.is_admin() { Ok(()) } else { Err(RegistryError::Forbidden("this needs an Admin credential".into())) }
    }

    /// Whether the caller may change an agent with this owner.
    pub fn may_manage(&self, owner: &str) -> bool {
        self.is_admin() || self.owner == owner
    }
}

/// A stored key's columns, in the order `ApiKey::from_row` reads them.
pub type KeyRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    Millis,
    Option<Millis>,
    Option<Millis>,
    i64,
    Option<i64>,
    Option<i64>,
);

/// An API key as stored: everything but the secret, of which only the hash is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    pub id: Uuid,
    /// The first characters of the key after `ar_`, to tell keys apart in listings.
    pub prefix: String,
    /// Hex SHA-256 of the whole key.
    pub hash: String,
    pub owner_id: String,
    pub scope: Scope,
    pub description: String,
    pub created_at: Millis,
    pub expires_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
    /// Orders changes to keys, so replicas can read the ones they have not seen.
    pub revision: u64,
    /// The quota of the owner's agents registered with this key (`None`: the default).
    pub quota: Option<crate::quota::Quota>,
}

impl ApiKey {
    /// A new key and its secret (to be shown once).
    pub fn issue(
        owner_id: String,
        scope: Scope,
        description: String,
        now: Millis,
        expires_at: Option<Millis>,
    ) -> (Self, String) {
        let secret = format!("{KEY_PREFIX}{}", random_token());
        let key = Self {
            id: Uuid::new_v4(),
            prefix: secret[KEY_PREFIX.len()..KEY_PREFIX.len() + VISIBLE_CHARS].to_owned(),
            hash: hash_secret(&secret),
            owner_id,
            scope,
            description,
            created_at: now,
            expires_at,
            revoked_at: None,
            revision: 0,
            quota: None,
        };
        (key, secret)
    }

    /// Reads a stored row: (id, prefix, hash, owner, scope, description, created, expires,
    /// revoked, revision).
    pub fn from_row(row: KeyRow) -> Result<Self> {
        let (
            id,
            prefix,
            hash,
            owner_id,
            scope,
            description,
            created_at,
            expires_at,
            revoked_at,
            revision,
            agents,
            bytes,
        ) = row;
        let unreadable = |what: &str| RegistryError::internal(format!("stored API key {id} is unreadable: {what}"));
        Ok(Self {
            id: Uuid::try_parse(&id).map_err(|_| unreadable("id"))?,
            prefix,
            hash,
            owner_id,
            scope: Scope::parse(&scope).ok_or_else(|| unreadable("scope"))?,
            description,
            created_at,
            expires_at,
            revoked_at,
            revision: u64::try_from(revision).map_err(|_| unreadable("revision"))?,
            quota: match (agents, bytes) {
                (Some(agents), Some(bytes)) => Some(crate::quota::Quota {
                    max_agents: u32::try_from(agents).map_err(|_| unreadable("quota"))?,
                    max_document_bytes: u64::try_from(bytes).map_err(|_| unreadable("quota"))?,
                }),
                _ => None,
            },
        })
    }

    pub fn is_active(&self, now: Millis) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|t| now < t)
    }

    pub fn caller(&self) -> Caller {
        Caller {
            actor: format!("key:{}", self.id),
            source: None,
            owner: self.owner_id.clone(),
            scope: self.scope,
            quota: self.quota,
        }
    }
}

/// 256 random bits from the operating system, URL-safe base64 without padding (43 characters).
fn random_token() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    // The OS generator failing is not a state the service can run in.
    #[expect(clippy::expect_used, reason = "no randomness from the OS means no safe keys at all")]
    getrandom::fill(&mut bytes).expect("the operating system's random generator works");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Equality whose time does not depend on where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

/// Every key this replica knows, by visible prefix, for authentication without a database call.
#[derive(Default)]
pub struct KeyRing {
    by_prefix: HashMap<String, Vec<ApiKey>>,
    /// The highest key revision seen.
    pub revision: u64,
}

impl KeyRing {
    /// Adds or replaces a key (by id).
    pub fn put(&mut self, key: ApiKey) {
        self.revision = self.revision.max(key.revision);
        let keys = self.by_prefix.entry(key.prefix.clone()).or_default();
        // A follower's page read before a change this replica made (a revocation) arrives after
        // it: the older version must not bring the key back.
        if keys.iter().any(|k| k.id == key.id && k.revision > key.revision) {
            return;
        }
        keys.retain(|k| k.id != key.id);
        keys.push(key);
    }

    pub fn get(&self, id: Uuid) -> Option<&ApiKey> {
        self.by_prefix.values().flatten().find(|k| k.id == id)
    }

    pub fn all(&self) -> impl Iterator<Item = &ApiKey> {
        self.by_prefix.values().flatten()
    }

    pub fn has_active_admin(&self, now: Millis) -> bool {
        self.all().any(|k| k.scope == Scope::Admin && k.is_active(now))
    }

    /// The key a secret belongs to, whether or not it is still active.
    pub fn find(&self, secret: &str) -> Option<&ApiKey> {
        let rest = secret.strip_prefix(KEY_PREFIX)?;
        let prefix = rest.get(..VISIBLE_CHARS)?;
        // On the stack: every authenticated request comes through here.
        let mut hash = [0u8; 64];
        hex::encode_to_slice(Sha256::digest(secret.as_bytes()), &mut hash).ok()?;
        self.by_prefix.get(prefix)?.iter().find(|k| constant_time_eq(k.hash.as_bytes(), &hash))
    }
}

/// A timestamp for API responses.
pub fn to_datetime(millis: Millis) -> DateTime<Utc> {
    crate::clock::to_datetime(millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_found_only_by_their_whole_secret() {
        let (key, secret) = ApiKey::issue("o".into(), Scope::Agent, "d".into(), 0, None);
        assert!(secret.starts_with("ar_") && secret.len() == 3 + 43, "{secret}");
        assert_ne!(key.hash, secret, "only the hash is kept");
        let (_, other) = ApiKey::issue("o".into(), Scope::Agent, "d".into(), 0, None);
        assert_ne!(secret, other);
        let mut ring = KeyRing::default();
        ring.put(key.clone());
        assert_eq!(ring.find(&secret).map(|k| k.id), Some(key.id));
        let mut forged = secret.clone();
        forged.pop();
        forged.push(if secret.ends_with('A') { 'B' } else { 'A' });
        assert!(ring.find(&forged).is_none());
        assert!(ring.find("ar_").is_none() && ring.find("").is_none() && ring.find("ar_ééééééééé").is_none());
    }
}
