//! JWT bearer tokens (`Authorization: Bearer`), validated with `jsonwebtoken`: HS256 with a
//! shared secret; `exp`, `nbf`, issuer and audience checked. The scope comes from a
//! `registry_scope` claim (`Admin`/`Agent`) or `roles` (`registry.admin`/`registry.agent`), the
//! owner from `sub`.

use agent_registry_core::RegistryError;
use agent_registry_core::auth::{Caller, Scope};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde::Deserialize;

pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    registry_scope: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
}

impl JwtVerifier {
    pub fn hs256(secret: &str, issuer: Option<&str>, audience: Option<&str>) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_nbf = true;
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        if let Some(issuer) = issuer {
            validation.set_issuer(&[issuer]);
        }
        match audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        Self { key: DecodingKey::from_secret(secret.as_bytes()), validation }
    }

    /// The caller a token names; every invalid token is a 401 that says why, without echoing it.
    pub fn verify(&self, token: &str, source: Option<String>) -> Result<Caller, RegistryError> {
        let data = decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| RegistryError::Unauthenticated(format!("the bearer token is not valid: {e}")))?;
        let claims = data.claims;
        if claims.sub.trim().is_empty() {
            return Err(RegistryError::Unauthenticated("the bearer token has an empty `sub`".into()));
        }
        let from_roles = || {
            if claims.roles.iter().any(|r| r == "registry.admin") {
                Some(Scope::Admin)
            } else if claims.roles.iter().any(|r| r == "registry.agent") {
                Some(Scope::Agent)
            } else {
                None
            }
        };
        let scope = claims.registry_scope.as_deref().and_then(Scope::parse).or_else(from_roles).ok_or_else(|| {
            RegistryError::Forbidden("the bearer token grants no registry scope (`registry_scope` or `roles`)".into())
        })?;
        Ok(Caller { actor: format!("jwt:{}", claims.sub), source, owner: claims.sub, scope })
    }
}
