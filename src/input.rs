//! What clients send, and its validation into domain values. Every field is optional at the serde
//! level so that a missing field is reported like any other invalid one: with a JSON pointer and
//! a sentence, all problems of a request at once.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::address::validate_address;
use crate::error::{FieldError, RegistryError};
use crate::liveness::LivenessPolicy;
use crate::model::{
    Agent, AgentId, Capability, CapabilityId, Endpoint, EndpointId, LivenessModel, Protocol, Transport,
};

/// Documented size limits. Requests beyond them are rejected with a 400 naming the field.
pub mod limits {
    pub const NAME_CHARS: usize = 256;
    pub const DESCRIPTION_CHARS: usize = 4_096;
    pub const VERSION_CHARS: usize = 64;
    pub const OWNER_CHARS: usize = 256;
    pub const TAG_CHARS: usize = 64;
    pub const TAGS: usize = 32;
    pub const LABELS: usize = 64;
    pub const LABEL_KEY_CHARS: usize = 128;
    pub const LABEL_VALUE_CHARS: usize = 256;
    pub const CAPABILITIES: usize = 128;
    pub const ENDPOINTS: usize = 32;
    pub const ENDPOINT_NAME_CHARS: usize = 128;
    pub const ADDRESS_CHARS: usize = 2_048;
    /// Serialized size of `metadata`, `protocolMetadata` and each capability schema.
    pub const JSON_OBJECT_BYTES: usize = 64 * 1024;
    /// Largest request body the HTTP API accepts.
    pub const BODY_BYTES: usize = 1024 * 1024;
}

/// Body of `POST /agents` and `PUT /agents/{id}`.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AgentInput {
    /// Client-chosen id (registration only): a retried registration with the same id and body
    /// returns the first result instead of creating a duplicate.
    pub id: Option<AgentId>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub version: Option<String>,
    /// Owner of the agent (until authentication decides it).
    pub owner_id: Option<String>,
    pub tags: Option<Vec<String>>,
    pub labels: Option<BTreeMap<String, String>>,
    pub capabilities: Option<Vec<CapabilityInput>>,
    /// Registration only; `PUT` keeps endpoints, which are managed through their own routes.
    pub endpoints: Option<Vec<EndpointInput>>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<Map<String, Value>>,
    /// A permanent agent is kept when its last endpoint is evicted.
    pub permanent: Option<bool>,
    /// Set by the protocol routes: the document the agent is registered with.
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub origin: Option<crate::protocol::ProtocolDocument>,
    /// Set by the protocol routes: names the agent must hold alone.
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub claims: Vec<crate::claim::ClaimRequest>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CapabilityInput {
    pub name: Option<String>,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub input_schema: Option<Value>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub output_schema: Option<Value>,
}

/// Body of `POST /agents/{id}/endpoints` and `PUT /agents/{id}/endpoints/{eid}`.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct EndpointInput {
    pub name: Option<String>,
    /// Default `Http`.
    pub transport: Option<Transport>,
    /// Default `Custom`.
    pub protocol: Option<Protocol>,
    pub address: Option<String>,
    /// Default `Ephemeral`.
    pub liveness_model: Option<LivenessModel>,
    pub ttl_seconds: Option<i64>,
    pub heartbeat_interval_seconds: Option<i64>,
    /// A JSON object, or a string holding one (as the .NET registry's clients send it).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub protocol_metadata: Option<Value>,
}

/// A validated agent description (everything but identity, ownership and endpoints).
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSpec {
    pub name: String,
    pub description: Option<String>,
    pub version: Option<String>,
    pub tags: Vec<String>,
    pub labels: BTreeMap<String, String>,
    /// `None` when the request did not mention capabilities.
    pub capabilities: Option<Vec<Capability>>,
    pub metadata: Map<String, Value>,
    pub permanent: bool,
    pub origin: Option<crate::protocol::ProtocolDocument>,
}

impl AgentSpec {
    /// A new agent (revision 0 until it is stored) described by this spec.
    pub fn to_agent(&self, id: AgentId, owner_id: String, endpoints: Vec<Endpoint>, now: DateTime<Utc>) -> Agent {
        Agent {
            id,
            name: self.name.clone(),
            description: self.description.clone(),
            version: self.version.clone(),
            owner_id,
            tags: self.tags.clone(),
            labels: self.labels.clone(),
            capabilities: self.capabilities.clone().unwrap_or_default(),
            endpoints,
            metadata: self.metadata.clone(),
            permanent: self.permanent,
            claims: Vec::new(),
            origin: self.origin.clone(),
            created_at: now,
            updated_at: now,
            revision: 0,
        }
    }
}

/// Collects every problem of a request before failing.
#[derive(Default)]
struct Check {
    errors: Vec<FieldError>,
}

impl Check {
    fn fail(&mut self, pointer: impl Into<String>, detail: impl Into<String>) {
        self.errors.push(FieldError::new(pointer, detail));
    }

    fn finish<T>(self, value: T) -> Result<T, RegistryError> {
        if self.errors.is_empty() { Ok(value) } else { Err(RegistryError::Validation(self.errors)) }
    }

    /// A required, trimmed, non-empty single-line string of at most `max` characters.
    fn required(&mut self, pointer: &str, value: Option<&str>, max: usize) -> String {
        match value {
            None => {
                self.fail(pointer, "is required");
                String::new()
            }
            Some(v) => {
                let v = v.trim();
                if v.is_empty() {
                    self.fail(pointer, "must not be empty");
                }
                self.text(pointer, v, max, false);
                v.to_owned()
            }
        }
    }

    fn optional(&mut self, pointer: &str, value: Option<&str>, max: usize, multiline: bool) -> Option<String> {
        let v = value?.trim();
        self.text(pointer, v, max, multiline);
        (!v.is_empty()).then(|| v.to_owned())
    }

    fn text(&mut self, pointer: &str, v: &str, max: usize, multiline: bool) {
        let chars = v.chars().count();
        if chars > max {
            self.fail(pointer, format!("is {chars} characters long; the limit is {max}"));
        }
        if v.chars().any(|c| c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t'))) {
            self.fail(pointer, "must not contain control characters");
        }
        // In a name, tag or label an invisible character makes two values look alike
        // (`summar\u{200b}ize` and `summarize`), and a bidi override makes one read backwards.
        if !multiline && v.chars().any(is_invisible) {
            self.fail(pointer, "must not contain invisible or bidirectional formatting characters");
        }
    }

    fn tags(&mut self, pointer: &str, tags: Option<&[String]>) -> Vec<String> {
        let tags = tags.unwrap_or_default();
        if tags.len() > limits::TAGS {
            self.fail(pointer, format!("has {} tags; the limit is {}", tags.len(), limits::TAGS));
            return Vec::new();
        }
        let mut seen = HashSet::new();
        let mut out = Vec::with_capacity(tags.len());
        for (i, tag) in tags.iter().enumerate() {
            let p = format!("{pointer}/{i}");
            let tag = self.required(&p, Some(tag), limits::TAG_CHARS);
            if tag.contains(',') {
                self.fail(&p, "must not contain a comma (discovery splits tag lists on commas)");
            }
            if seen.insert(tag.to_lowercase()) {
                out.push(tag);
            }
        }
        out
    }

    fn labels(&mut self, labels: Option<&BTreeMap<String, String>>) -> BTreeMap<String, String> {
        let labels = labels.cloned().unwrap_or_default();
        if labels.len() > limits::LABELS {
            self.fail("/labels", format!("has {} labels; the limit is {}", labels.len(), limits::LABELS));
            return BTreeMap::new();
        }
        for (key, value) in &labels {
            let p = format!("/labels/{}", escape_pointer(key));
            let key_ok = !key.is_empty()
                && key.len() <= limits::LABEL_KEY_CHARS
                && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
            if !key_ok {
                self.fail(
                    &p,
                    format!(
                        "label keys are 1 to {} characters of letters, digits, `.`, `_`, `-` and `/`",
                        limits::LABEL_KEY_CHARS
                    ),
                );
            }
            self.text(&p, value, limits::LABEL_VALUE_CHARS, false);
        }
        labels
    }

    fn json_size(&mut self, pointer: &str, value: &Value) {
        let size = serde_json::to_vec(value).map(|v| v.len()).unwrap_or(usize::MAX);
        if size > limits::JSON_OBJECT_BYTES {
            self.fail(pointer, format!("is {size} bytes of JSON; the limit is {}", limits::JSON_OBJECT_BYTES));
        } else {
            self.no_nul(pointer, value);
        }
    }

    /// Refuses NUL in the keys and strings of stored JSON, as every other string refuses it:
    /// PostgreSQL cannot store it, and many clients cut text there.
    fn no_nul(&mut self, pointer: &str, value: &Value) {
        match value {
            Value::String(s) if s.contains('\0') => self.fail(pointer, "contains a NUL character"),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.no_nul(&format!("{pointer}/{i}"), item);
                }
            }
            Value::Object(map) => {
                for (key, item) in map {
                    let at = format!("{pointer}/{}", escape_pointer(key));
                    if key.contains('\0') {
                        self.fail(&at, "has a NUL character in its key");
                    } else {
                        self.no_nul(&at, item);
                    }
                }
            }
            _ => {}
        }
    }

    fn schema(&mut self, pointer: &str, value: Option<&Value>) -> Option<Value> {
        match value {
            None | Some(Value::Null) => None,
            Some(v @ (Value::Object(_) | Value::Bool(_))) => {
                self.json_size(pointer, v);
                Some(v.clone())
            }
            Some(_) => {
                self.fail(pointer, "must be a JSON Schema (an object or a boolean)");
                None
            }
        }
    }

    fn capabilities(&mut self, input: &[CapabilityInput], previous: &[Capability]) -> Vec<Capability> {
        if input.len() > limits::CAPABILITIES {
            self.fail(
                "/capabilities",
                format!("has {} capabilities; the limit is {}", input.len(), limits::CAPABILITIES),
            );
            return Vec::new();
        }
        input
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let p = format!("/capabilities/{i}");
                let name = self.required(&format!("{p}/name"), c.name.as_deref(), limits::NAME_CHARS);
                // Keep ids stable across updates: a capability keeps its id while its name does.
                let id = previous
                    .iter()
                    .find(|old| old.name.eq_ignore_ascii_case(&name))
                    .map_or_else(CapabilityId::generate, |old| old.id);
                Capability {
                    id,
                    description: self.optional(
                        &format!("{p}/description"),
                        c.description.as_deref(),
                        limits::DESCRIPTION_CHARS,
                        true,
                    ),
                    tags: self.tags(&format!("{p}/tags"), c.tags.as_deref()),
                    input_schema: self.schema(&format!("{p}/inputSchema"), c.input_schema.as_ref()),
                    output_schema: self.schema(&format!("{p}/outputSchema"), c.output_schema.as_ref()),
                    name,
                }
            })
            .collect()
    }
}

/// Zero-width and bidirectional formatting characters (Unicode's default-ignorable ones a reader
/// cannot see, and the explicit direction marks, embeddings, overrides and isolates).
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}'
        | '\u{061C}' | '\u{FEFF}' | '\u{180E}')
}

/// RFC 6901 escaping of one reference token.
pub fn escape_pointer(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Fails with a 409 when two capabilities share a name (case-insensitive).
pub fn ensure_unique_capabilities(caps: &[Capability]) -> Result<(), RegistryError> {
    let mut seen = HashSet::new();
    for (i, cap) in caps.iter().enumerate() {
        if !seen.insert(cap.name.to_lowercase()) {
            return Err(RegistryError::DuplicateCapabilityName {
                name: cap.name.clone(),
                pointer: format!("/capabilities/{i}/name"),
            });
        }
    }
    Ok(())
}

/// Fails with a 409 when two endpoints share a name (case-insensitive).
pub fn ensure_unique_endpoints(endpoints: &[Endpoint], base: &str) -> Result<(), RegistryError> {
    let mut seen = HashSet::new();
    for (i, ep) in endpoints.iter().enumerate() {
        if !seen.insert(ep.name.to_lowercase()) {
            return Err(RegistryError::DuplicateEndpointName {
                name: ep.name.clone(),
                pointer: format!("{base}/{i}/name"),
            });
        }
    }
    Ok(())
}

impl AgentInput {
    /// Validates the descriptive part of an agent. `previous` capabilities keep their ids.
    pub fn to_spec(&self, previous: &[Capability]) -> Result<AgentSpec, RegistryError> {
        let mut check = Check::default();
        let spec = self.spec_into(&mut check, previous);
        let spec = check.finish(spec)?;
        if let Some(caps) = &spec.capabilities {
            ensure_unique_capabilities(caps)?;
        }
        Ok(spec)
    }

    fn spec_into(&self, check: &mut Check, previous: &[Capability]) -> AgentSpec {
        let metadata = self.metadata.clone().unwrap_or_default();
        check.json_size("/metadata", &Value::Object(metadata.clone()));
        AgentSpec {
            name: check.required("/name", self.name.as_deref(), limits::NAME_CHARS),
            description: check.optional("/description", self.description.as_deref(), limits::DESCRIPTION_CHARS, true),
            version: check.optional("/version", self.version.as_deref(), limits::VERSION_CHARS, false),
            tags: check.tags("/tags", self.tags.as_deref()),
            labels: check.labels(self.labels.as_ref()),
            capabilities: self.capabilities.as_deref().map(|c| check.capabilities(c, previous)),
            metadata,
            permanent: self.permanent.unwrap_or(false),
            origin: self.origin.clone(),
        }
    }

    /// Validates a full registration: description, owner and endpoints.
    pub fn to_registration(
        &self,
        policy: &LivenessPolicy,
        now: DateTime<Utc>,
    ) -> Result<(AgentSpec, Option<String>, Vec<Endpoint>), RegistryError> {
        let mut check = Check::default();
        let spec = self.spec_into(&mut check, &[]);
        let owner = check.optional("/ownerId", self.owner_id.as_deref(), limits::OWNER_CHARS, false);
        let inputs = self.endpoints.as_deref().unwrap_or_default();
        let endpoints = if inputs.len() > limits::ENDPOINTS {
            check.fail("/endpoints", format!("has {} endpoints; the limit is {}", inputs.len(), limits::ENDPOINTS));
            Vec::new()
        } else {
            inputs
                .iter()
                .enumerate()
                .map(|(i, e)| e.check_into(&mut check, &format!("/endpoints/{i}"), policy, EndpointId::generate(), now))
                .collect()
        };
        let spec = check.finish(spec)?;
        if let Some(caps) = &spec.capabilities {
            ensure_unique_capabilities(caps)?;
        }
        ensure_unique_endpoints(&endpoints, "/endpoints")?;
        Ok((spec, owner, endpoints))
    }
}

/// Validates an owner id given on its own (`/ownerId` of a request body).
pub fn check_owner(owner: &str) -> Result<String, RegistryError> {
    let mut check = Check::default();
    let owner = check.optional("/ownerId", Some(owner), limits::OWNER_CHARS, false);
    check.finish(owner)?.ok_or_else(|| RegistryError::field("/ownerId", "must not be empty"))
}

impl EndpointInput {
    /// Validates one endpoint; `id` and `created_at` are kept by updates.
    pub fn to_endpoint(
        &self,
        policy: &LivenessPolicy,
        id: EndpointId,
        created_at: DateTime<Utc>,
    ) -> Result<Endpoint, RegistryError> {
        let mut check = Check::default();
        let endpoint = self.check_into(&mut check, "", policy, id, created_at);
        check.finish(endpoint)
    }

    fn check_into(
        &self,
        check: &mut Check,
        p: &str,
        policy: &LivenessPolicy,
        id: EndpointId,
        created_at: DateTime<Utc>,
    ) -> Endpoint {
        let name = check.required(&format!("{p}/name"), self.name.as_deref(), limits::ENDPOINT_NAME_CHARS);
        let transport = self.transport.unwrap_or(Transport::Http);
        let address = check.required(&format!("{p}/address"), self.address.as_deref(), limits::ADDRESS_CHARS);
        if !address.is_empty()
            && let Err(detail) = validate_address(transport, &address)
        {
            check.fail(format!("{p}/address"), detail);
        }
        let liveness_model = self.liveness_model.unwrap_or(LivenessModel::Ephemeral);
        let (ttl_seconds, heartbeat_interval_seconds) = match liveness_model {
            LivenessModel::Ephemeral => {
                let ttl = in_range(
                    check,
                    &format!("{p}/ttlSeconds"),
                    self.ttl_seconds,
                    policy.default_ttl_seconds,
                    policy.min_ttl_seconds,
                    policy.max_ttl_seconds,
                );
                (Some(ttl), None)
            }
            LivenessModel::Persistent => {
                let interval = in_range(
                    check,
                    &format!("{p}/heartbeatIntervalSeconds"),
                    self.heartbeat_interval_seconds,
                    policy.default_heartbeat_interval_seconds,
                    policy.min_heartbeat_interval_seconds,
                    policy.max_heartbeat_interval_seconds,
                );
                (None, Some(interval))
            }
        };
        let protocol_metadata = match &self.protocol_metadata {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => map.clone(),
            // The .NET registry's clients send the metadata as a string holding JSON.
            Some(Value::String(text)) if text.trim().is_empty() => Map::new(),
            Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(map)) => map,
                _ => {
                    check.fail(format!("{p}/protocolMetadata"), "must be a JSON object or a string holding one");
                    Map::new()
                }
            },
            Some(_) => {
                check.fail(format!("{p}/protocolMetadata"), "must be a JSON object or a string holding one");
                Map::new()
            }
        };
        check.json_size(&format!("{p}/protocolMetadata"), &Value::Object(protocol_metadata.clone()));
        Endpoint {
            id,
            name,
            transport,
            protocol: self.protocol.unwrap_or(Protocol::Custom),
            address,
            liveness_model,
            ttl_seconds,
            heartbeat_interval_seconds,
            protocol_metadata,
            created_at,
        }
    }
}

fn in_range(check: &mut Check, pointer: &str, value: Option<i64>, default: u32, min: u32, max: u32) -> u32 {
    let Some(v) = value else { return default };
    if v < i64::from(min) || v > i64::from(max) {
        check.fail(pointer, format!("must be between {min} and {max} seconds, got {v}"));
        return default;
    }
    u32::try_from(v).unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_accept_names_in_any_case_and_dotnet_integer_codes() {
        let e: EndpointInput =
            serde_json::from_str(r#"{"transport":"amqp","protocol":2,"livenessModel":"PERSISTENT"}"#).unwrap();
        assert_eq!(e.transport, Some(Transport::Amqp));
        assert_eq!(e.protocol, Some(Protocol::MCP));
        assert_eq!(e.liveness_model, Some(LivenessModel::Persistent));
        assert!(serde_json::from_str::<EndpointInput>(r#"{"transport":7}"#).is_err());
        assert!(serde_json::from_str::<EndpointInput>(r#"{"protocol":"Carrier pigeon"}"#).is_err());
    }

    #[test]
    fn every_problem_of_a_request_is_reported_with_its_pointer() {
        let input: AgentInput = serde_json::from_value(serde_json::json!({
            "name": " ",
            "endpoints": [{"name": "a", "address": "ftp://x", "ttlSeconds": 0}]
        }))
        .unwrap();
        let Err(RegistryError::Validation(errors)) = input.to_registration(&LivenessPolicy::default(), Utc::now())
        else {
            panic!("expected a validation error")
        };
        let mut pointers: Vec<_> = errors.iter().map(|e| e.pointer.as_str()).collect();
        pointers.sort_unstable();
        assert_eq!(pointers, ["/endpoints/0/address", "/endpoints/0/ttlSeconds", "/name"]);
    }
}
