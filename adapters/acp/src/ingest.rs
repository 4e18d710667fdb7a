//! From a submitted ACP manifest to a registration (`translate`).
//!
//! The order of checks: the text must be a JSON object (400), then it must pass the derived
//! schema (422, every violation at its pointer), then the registry's own rules that the schema
//! cannot express (400, every problem at its pointer into the manifest, all at once).

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};

use agent_registry_core::address::validate_address;
use agent_registry_core::claim::{ClaimRequest, OnTaken};
use agent_registry_core::input::{AgentInput, CapabilityInput, EndpointInput, limits};
use agent_registry_core::model::{Protocol, Transport};
use agent_registry_core::protocol::{DocumentFormat, ProtocolDocument, Translation};
use agent_registry_core::{FieldError, RegistryError};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::document::{AcpFacts, AgentManifest, Link, Metadata};
use crate::{ENDPOINT_NAME, NAME_LABEL, VERSION, domain_tag, normalise_name, schema, with_suffix};

/// Where the endpoint URL sits in the body of `POST /acp/agents` (`{manifest, endpointUrl}`).
const ENDPOINT_URL_POINTER: &str = "/endpointUrl";

/// Reads a manifest into a registration. `text` is the manifest exactly as submitted, `base` its
/// JSON pointer in the request body (e.g. `/manifest`), `endpoint_url` the base URL of the ACP
/// server that runs the agent.
pub fn translate(text: &str, base: &str, endpoint_url: &str) -> Result<Translation, RegistryError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| RegistryError::field(base, format!("is not a JSON document ({e})")))?;
    if !value.is_object() {
        return Err(RegistryError::field(base, "must be a JSON object (an ACP AgentManifest)"));
    }
    schema()?.check(&value, base)?;
    // The schema has checked every type read here; a failure means the two disagree.
    let manifest = AgentManifest::deserialize(&value)
        .map_err(|e| RegistryError::field(base, format!("is not an ACP AgentManifest ({e})")))?;

    let mut rules = Rules { base, errors: Vec::new() };
    let address = rules.endpoint_url(endpoint_url);
    let name = manifest.name.trim();
    rules.text("/name", name, limits::NAME_CHARS, false);
    if name.is_empty() {
        rules.fail("/name", "must not be blank");
    }
    let description = manifest.description.as_deref().map(str::trim).filter(|d| !d.is_empty());
    if let Some(d) = description {
        rules.text("/description", d, limits::DESCRIPTION_CHARS, true);
    }
    let empty = Metadata::default();
    let metadata = manifest.metadata.as_ref().unwrap_or(&empty);
    let tags = rules.tags(metadata);
    let capabilities = rules.capabilities(metadata);
    let facts = facts(&manifest);
    rules.size(&facts);
    if !rules.errors.is_empty() {
        return Err(RegistryError::Validation(rules.errors));
    }

    let origin = ProtocolDocument {
        format: DocumentFormat::AcpAgentManifest,
        version: VERSION.to_owned(),
        text: text.to_owned(),
        signature_verified: None,
    };
    let agent = AgentInput {
        name: Some(name.to_owned()),
        description: description.map(str::to_owned),
        tags: Some(tags),
        labels: Some(BTreeMap::from([(NAME_LABEL.to_owned(), normalise_name(name))])),
        capabilities: Some(capabilities),
        endpoints: Some(vec![EndpointInput {
            name: Some(ENDPOINT_NAME.to_owned()),
            transport: Some(Transport::Http),
            protocol: Some(Protocol::ACP),
            address: Some(address),
            // The ACP server knows the agent by its original name, which is what a client puts
            // in `RunCreateRequest.agent_name` (`POST {endpoint}/runs`, protocols.md §3.1);
            // the registry may serve the manifest under another name.
            protocol_metadata: Some(Value::Object(Map::from_iter([(
                "agent_name".to_owned(),
                Value::String(manifest.name.clone()),
            )]))),
            ..EndpointInput::default()
        }]),
        metadata: Some(facts),
        claims: vec![name_claim(&normalise_name(name))],
        ..AgentInput::default()
    };
    Ok(Translation { agent, origin })
}

/// The ACP name is the registry's alone: a name already held gets the first free suffix, and
/// the name granted is the agent's [`NAME_LABEL`].
fn name_claim(name: &str) -> ClaimRequest {
    ClaimRequest {
        namespace: NAME_LABEL.to_owned(),
        name: name.to_owned(),
        on_taken: OnTaken::Suffix(with_suffix),
        label: Some(NAME_LABEL.to_owned()),
        scope: None,
    }
}

/// The agent's `metadata`: `{"acp": AcpFacts}`.
fn facts(manifest: &AgentManifest) -> Map<String, Value> {
    let metadata = manifest.metadata.clone().unwrap_or_default();
    let facts = AcpFacts {
        input_content_types: Some(manifest.input_content_types.clone()),
        output_content_types: Some(manifest.output_content_types.clone()),
        framework: metadata.framework,
        programming_language: metadata.programming_language,
        license: metadata.license,
        natural_languages: metadata.natural_languages,
        links: metadata.links.map(|links| links.into_iter().map(|l| Link { extra: Map::new(), ..l }).collect()),
        status: manifest.status.as_ref().and_then(|s| s.within_bounds()),
    };
    let facts = serde_json::to_value(facts).unwrap_or_else(|_| Value::Object(Map::new()));
    Map::from_iter([(AcpFacts::KEY.to_owned(), facts)])
}

/// The registry's rules, checked with pointers into the manifest so that a client sees which
/// of its fields to change (core would report the same problems at `/name`, `/tags/3`, …,
/// which do not exist in the request).
struct Rules<'a> {
    base: &'a str,
    errors: Vec<FieldError>,
}

impl Rules<'_> {
    fn fail(&mut self, pointer: &str, detail: impl Into<String>) {
        self.errors.push(FieldError::new(format!("{}{pointer}", self.base), detail));
    }

    /// Core's limits on names and descriptions (`input::limits`).
    fn text(&mut self, pointer: &str, value: &str, max: usize, multiline: bool) {
        let chars = value.chars().count();
        if chars > max {
            self.fail(pointer, format!("is {chars} characters long; the registry's limit is {max}"));
        }
        if value.chars().any(|c| c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t'))) {
            self.fail(pointer, "must not contain control characters");
        }
    }

    fn endpoint_url(&mut self, url: &str) -> String {
        let url = url.trim();
        let detail = if url.is_empty() {
            Some("is required: the base URL of the ACP server that runs the agent".to_owned())
        } else if url.chars().count() > limits::ADDRESS_CHARS {
            Some(format!("is longer than {} characters", limits::ADDRESS_CHARS))
        } else {
            validate_address(Transport::Http, url).err()
        };
        if let Some(detail) = detail {
            self.errors.push(FieldError::new(ENDPOINT_URL_POINTER, detail));
        }
        url.to_owned()
    }

    /// `metadata.tags` as they are, then each of `metadata.domains` as `domain:<domain>`;
    /// duplicates (ignoring case) once.
    fn tags(&mut self, metadata: &Metadata) -> Vec<String> {
        let tags = metadata
            .tags
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, t)| (format!("/metadata/tags/{i}"), t, t.trim().to_owned()));
        let domains = metadata
            .domains
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, d)| (format!("/metadata/domains/{i}"), d, domain_tag(d)));
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (pointer, original, tag) in tags.chain(domains) {
            if original.trim().is_empty() {
                self.fail(&pointer, "must not be blank: the registry indexes it as a tag");
                continue;
            }
            self.text(&pointer, &tag, limits::TAG_CHARS, false);
            if tag.contains(',') {
                self.fail(&pointer, "must not contain a comma: the registry indexes it as a tag, and discovery splits tag lists on commas");
            }
            if seen.insert(tag.to_lowercase()) {
                out.push(tag);
            }
        }
        if out.len() > limits::TAGS {
            self.fail(
                "/metadata/tags",
                format!("with `domains` makes {} distinct tags; the registry's limit is {}", out.len(), limits::TAGS),
            );
        }
        out
    }

    /// `metadata.capabilities[]` → capabilities (name, description). Names are unique per agent
    /// regardless of case, as in the registry.
    fn capabilities(&mut self, metadata: &Metadata) -> Vec<CapabilityInput> {
        let capabilities = metadata.capabilities.as_deref().unwrap_or_default();
        if capabilities.len() > limits::CAPABILITIES {
            self.fail(
                "/metadata/capabilities",
                format!("has {} capabilities; the registry's limit is {}", capabilities.len(), limits::CAPABILITIES),
            );
            return Vec::new();
        }
        let mut first_with_name = HashMap::new();
        let mut out = Vec::with_capacity(capabilities.len());
        for (i, capability) in capabilities.iter().enumerate() {
            let pointer = format!("/metadata/capabilities/{i}/name");
            let name = capability.name.trim();
            if name.is_empty() {
                self.fail(&pointer, "must not be blank");
            }
            self.text(&pointer, name, limits::NAME_CHARS, false);
            match first_with_name.entry(name.to_lowercase()) {
                Entry::Occupied(first) if !name.is_empty() => self.fail(
                    &pointer,
                    format!(
                        "repeats the name of capability {}; capability names must be unique (ignoring case)",
                        first.get()
                    ),
                ),
                Entry::Occupied(_) => {}
                Entry::Vacant(slot) => {
                    slot.insert(i);
                }
            }
            let description = capability.description.trim();
            self.text(&format!("/metadata/capabilities/{i}/description"), description, limits::DESCRIPTION_CHARS, true);
            out.push(CapabilityInput {
                name: Some(name.to_owned()),
                description: (!description.is_empty()).then(|| description.to_owned()),
                ..CapabilityInput::default()
            });
        }
        out
    }

    /// Core's limit on the serialized size of `metadata`.
    fn size(&mut self, metadata: &Map<String, Value>) {
        let size = serde_json::to_vec(metadata).map_or(usize::MAX, |v| v.len());
        if size > limits::JSON_OBJECT_BYTES {
            self.fail(
                "",
                format!(
                    "has content types, links and other facts the registry keeps in `metadata.acp` taking {size} bytes of JSON; the limit is {}",
                    limits::JSON_OBJECT_BYTES
                ),
            );
        }
    }
}
