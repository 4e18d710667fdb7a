//! JWT bearer tokens (`Authorization: Bearer`), validated with `jsonwebtoken`: HS256 with a
//! shared secret, or the keys of an OIDC issuer (its JWKS, fetched with reqwest, cached, and
//! fetched again when a token names an unknown `kid`). `exp`, `nbf`, issuer and audience are
//! checked. The scope comes from a `registry_scope` claim (`Admin`/`Agent`) or `roles`
//! (`registry.admin`/`registry.agent`), the owner from `sub`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use agent_registry_core::RegistryError;
use agent_registry_core::auth::{Caller, Scope};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;

/// How often an unknown `kid` may make the registry fetch the issuer's keys again.
const REFRESH_AT_MOST_EVERY: Duration = Duration::from_secs(5);

pub struct JwtVerifier {
    secret: Option<DecodingKey>,
    oidc: Option<Oidc>,
    issuer: Option<String>,
    audience: Option<String>,
    /// Put before each subject to make its owner id, so that token subjects and the owners of
    /// API keys can be kept apart (empty: they share one namespace).
    owner_prefix: String,
}

/// An OIDC issuer's signing keys, by `kid`.
struct Oidc {
    issuer: String,
    client: reqwest::Client,
    keys: tokio::sync::RwLock<HashMap<String, (Algorithm, DecodingKey)>>,
    refreshed: parking_lot::Mutex<Option<Instant>>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    registry_scope: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
}

#[derive(Deserialize)]
struct Discovery {
    jwks_uri: String,
}

fn invalid(detail: impl std::fmt::Display) -> RegistryError {
    RegistryError::Unauthenticated(format!("the bearer token is not valid: {detail}"))
}

impl JwtVerifier {
    /// Accepts HS256 tokens signed with `secret` and/or tokens signed by the keys of
    /// `oidc_issuer`; `issuer` defaults to the OIDC issuer. Fails when the client that fetches
    /// the issuer's keys cannot be built (a default client would fetch without a timeout).
    pub fn new(
        secret: Option<&str>,
        oidc_issuer: Option<&str>,
        issuer: Option<&str>,
        audience: Option<&str>,
    ) -> Result<Self, reqwest::Error> {
        let oidc = match oidc_issuer {
            Some(url) => Some(Oidc {
                issuer: url.trim_end_matches('/').to_owned(),
                // Key fetches follow no redirect: the issuer's own URLs only.
                client: reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(2))
                    .timeout(Duration::from_secs(5))
                    .redirect(reqwest::redirect::Policy::none())
                    .build()?,
                keys: Default::default(),
                refreshed: Default::default(),
            }),
            None => None,
        };
        Ok(Self {
            secret: secret.map(|s| DecodingKey::from_secret(s.as_bytes())),
            issuer: issuer.or_else(|| oidc_issuer.map(|u| u.trim_end_matches('/'))).map(str::to_owned),
            oidc,
            audience: audience.map(str::to_owned),
            owner_prefix: String::new(),
        })
    }

    /// Owner ids of token subjects start with `prefix` (`--jwt-owner-prefix`).
    pub fn with_owner_prefix(self, prefix: &str) -> Self {
        Self { owner_prefix: prefix.to_owned(), ..self }
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.validate_nbf = true;
        validation.leeway = 5;
        // A configured issuer or audience is required, not only checked when present: a token
        // without the claim would otherwise pass.
        let mut required = vec!["exp", "sub"];
        required.extend(self.issuer.as_ref().map(|_| "iss"));
        required.extend(self.audience.as_ref().map(|_| "aud"));
        validation.set_required_spec_claims(&required);
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
        }
        match &self.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        validation
    }

    /// The caller a token names; every invalid token is a 401 that says why, without echoing it.
    pub async fn verify(&self, token: &str, source: Option<String>) -> Result<Caller, RegistryError> {
        let header = decode_header(token).map_err(invalid)?;
        let claims = match (header.alg, &self.secret, &self.oidc) {
            (Algorithm::HS256, Some(secret), _) => {
                decode::<Claims>(token, secret, &self.validation(Algorithm::HS256)).map_err(invalid)?.claims
            }
            (_, _, Some(oidc)) => {
                let kid = header.kid.ok_or_else(|| invalid("it names no key (`kid`)"))?;
                let (algorithm, key) = oidc.key(&kid).await?;
                if algorithm != header.alg {
                    return Err(invalid("its algorithm is not its key's"));
                }
                decode::<Claims>(token, &key, &self.validation(algorithm)).map_err(invalid)?.claims
            }
            _ => return Err(invalid("this registry accepts no tokens signed that way")),
        };
        // The subject becomes an owner id: it obeys the same rules as one given in a body.
        let owner =
            agent_registry_core::input::check_owner(&format!("{}{}", self.owner_prefix, claims.sub)).map_err(|_| {
                RegistryError::Unauthenticated(format!(
                    "the bearer token's `sub` is not a valid owner id (not empty, at most {} characters, no \
                 control characters)",
                    agent_registry_core::input::limits::OWNER_CHARS
                ))
            })?;
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
        Ok(Caller { actor: format!("jwt:{owner}"), source, owner, scope, quota: None })
    }
}

impl Oidc {
    /// The key `kid` names, fetching the issuer's keys again if it is unknown (rotation).
    async fn key(&self, kid: &str) -> Result<(Algorithm, DecodingKey), RegistryError> {
        if let Some(found) = self.keys.read().await.get(kid) {
            return Ok(found.clone());
        }
        let due = {
            let mut refreshed = self.refreshed.lock();
            let due = refreshed.is_none_or(|t| t.elapsed() >= REFRESH_AT_MOST_EVERY);
            if due {
                *refreshed = Some(Instant::now());
            }
            due
        };
        if due {
            match self.fetch().await {
                Ok(keys) => *self.keys.write().await = keys,
                Err(e) => tracing::warn!(error = %e, issuer = %self.issuer, "cannot fetch the issuer's keys"),
            }
        }
        self.keys.read().await.get(kid).cloned().ok_or_else(|| invalid(format!("its key `{kid}` is unknown")))
    }

    async fn fetch(&self) -> Result<HashMap<String, (Algorithm, DecodingKey)>, reqwest::Error> {
        let discovery = format!("{}/.well-known/openid-configuration", self.issuer);
        let config: Discovery = self.client.get(discovery).send().await?.error_for_status()?.json().await?;
        let set: JwkSet = self.client.get(config.jwks_uri).send().await?.error_for_status()?.json().await?;
        Ok(set
            .keys
            .iter()
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                let algorithm = jwk.common.key_algorithm.and_then(|a| a.to_string().parse().ok())?;
                Some((kid, (algorithm, DecodingKey::from_jwk(jwk).ok()?)))
            })
            .collect())
    }
}
