//! Agent card signatures (A2A v1.0.1 §8.4, protocols.md §1.5): JWS over the card without its
//! `signatures`, canonicalised with RFC 8785 (JCS), in the flattened form split into `protected`,
//! `signature` and an optional unprotected `header`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use crate::fields;

/// At most this many signatures of a card are looked at: a card is signed by its provider, maybe
/// also by a few others, and each signature costs a public-key verification (or a key fetch).
pub const MAX_SIGNATURES: usize = 8;

/// The `jku` (JWK Set URL) of every signature's protected header, in order, without repeats (of
/// the first [`MAX_SIGNATURES`] signatures). The caller decides which of them it trusts enough to
/// fetch.
pub fn signature_key_urls(text: &str) -> Vec<String> {
    let Ok(Value::Object(card)) = serde_json::from_str::<Value>(text) else { return Vec::new() };
    let mut urls: Vec<String> = Vec::new();
    for signature in fields::array(&card, "signatures").iter().take(MAX_SIGNATURES).filter_map(Value::as_object) {
        if let Some(header) = protected_header(signature)
            && let Some(url) = fields::string(&header, "jku")
            && !urls.iter().any(|u| u == url)
        {
            urls.push(url.to_owned());
        }
    }
    urls
}

/// Whether the card's signatures verify with `keys`.
///
/// `None` when the card has no signatures (or is not a JSON object); `Some(true)` when at least
/// one signature (of the first [`MAX_SIGNATURES`]) verifies with a key of `keys` whose `kid` its
/// header names; `Some(false)` otherwise. The payload is the card without `signatures`, canonicalised with JCS; signers that
/// drop empty values first (§8.4 asks to leave out fields at their default value; a2a-python
/// drops `null`, `""`, `[]` and `{}`) are matched by trying that form too. Algorithms: EdDSA
/// (Ed25519), ES256, ES384, RS256/384/512 and PS256/384/512; HMAC is refused (a shared secret
/// proves nothing to a third party), as are keys whose `use`, `alg` or curve does not fit the
/// header's `alg`, and headers with `crit` (RFC 7515 §4.1.11: no extension is understood here).
pub fn verify_signatures(text: &str, keys: &JwkSet) -> Option<bool> {
    let Ok(Value::Object(mut card)) = serde_json::from_str::<Value>(text) else { return None };
    let signatures = match card.remove("signatures") {
        None | Some(Value::Null) => return None,
        Some(Value::Array(signatures)) if signatures.is_empty() => return None,
        Some(Value::Array(signatures)) => signatures,
        Some(_) => return Some(false),
    };
    let mut payloads: Vec<String> = Vec::with_capacity(2);
    let as_published = Value::Object(card);
    let without_empty = without_empty_values(&as_published).unwrap_or(Value::Object(Map::new()));
    for payload in [&as_published, &without_empty] {
        if let Ok(canonical) = serde_json_canonicalizer::to_vec(payload) {
            let encoded = URL_SAFE_NO_PAD.encode(canonical);
            if !payloads.contains(&encoded) {
                payloads.push(encoded);
            }
        }
    }
    Some(signatures.iter().take(MAX_SIGNATURES).filter_map(Value::as_object).any(|s| verifies(s, &payloads, keys)))
}

/// Whether one signature verifies over one of the candidate payloads (base64url already).
fn verifies(signature: &Map<String, Value>, payloads: &[String], keys: &JwkSet) -> bool {
    let (Some(protected), Some(value), Some(header)) =
        (fields::string(signature, "protected"), fields::string(signature, "signature"), protected_header(signature))
    else {
        return false;
    };
    if header.contains_key("crit") {
        return false;
    }
    let Some(algorithm) = fields::string(&header, "alg").and_then(|a| a.parse::<Algorithm>().ok()) else {
        return false;
    };
    // The kid belongs in the protected header (§8.4); RFC 7515 also allows the unprotected one,
    // which is harmless here since the signature must verify with the key either way.
    let Some(kid) = fields::string(&header, "kid")
        .or_else(|| fields::object(signature, "header").and_then(|h| fields::string(h, "kid")))
    else {
        return false;
    };
    keys.keys
        .iter()
        .filter(|jwk| jwk.common.key_id.as_deref() == Some(kid) && key_fits(jwk, algorithm))
        .filter_map(|jwk| DecodingKey::from_jwk(jwk).ok())
        .any(|key| {
            payloads.iter().any(|payload| {
                let input = format!("{protected}.{payload}");
                jsonwebtoken::crypto::verify(value, input.as_bytes(), &key, algorithm).unwrap_or(false)
            })
        })
}

/// Whether a key may check a signature made with `algorithm` (no algorithm confusion).
fn key_fits(jwk: &Jwk, algorithm: Algorithm) -> bool {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))) {
        return false;
    }
    if let Some(declared) = &jwk.common.key_algorithm {
        // Both serialise to their JWA name ("EdDSA", "ES256", ...).
        if serde_json::to_value(declared).ok() != serde_json::to_value(algorithm).ok() {
            return false;
        }
    }
    match (&jwk.algorithm, algorithm) {
        (AlgorithmParameters::OctetKeyPair(params), Algorithm::EdDSA) => params.curve == EllipticCurve::Ed25519,
        (AlgorithmParameters::EllipticCurve(params), Algorithm::ES256) => params.curve == EllipticCurve::P256,
        (AlgorithmParameters::EllipticCurve(params), Algorithm::ES384) => params.curve == EllipticCurve::P384,
        (
            AlgorithmParameters::RSA(_),
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
        ) => true,
        _ => false,
    }
}

/// The decoded protected header of a signature, when it is a base64url JSON object.
fn protected_header(signature: &Map<String, Value>) -> Option<Map<String, Value>> {
    let encoded = fields::string(signature, "protected")?;
    let bytes = URL_SAFE_NO_PAD.decode(encoded.trim_end_matches('=')).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(header) => Some(header),
        _ => None,
    }
}

/// The value with `null`, `""`, `[]` and `{}` removed at every depth (`None` when nothing is
/// left), the form some signers canonicalise.
fn without_empty_values(value: &Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::Array(items) => {
            let items: Vec<Value> = items.iter().filter_map(without_empty_values).collect();
            (!items.is_empty()).then_some(Value::Array(items))
        }
        Value::Object(members) => {
            let members: Map<String, Value> =
                members.iter().filter_map(|(k, v)| Some((k.clone(), without_empty_values(v)?))).collect();
            (!members.is_empty()).then_some(Value::Object(members))
        }
        other => Some(other.clone()),
    }
}
