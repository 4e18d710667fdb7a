//! From an agent to the ACP manifest the registry serves for it (`manifest`).
//!
//! An agent registered with a manifest gets that manifest back as submitted, with only the
//! registry-owned `name` changed. Any other agent with an ACP endpoint gets a manifest built
//! from the domain. The .NET registry rebuilt every manifest and leaked its `acp`/`capability`
//! marker tags into `metadata.tags` (dotnet-agentregistry.md §5.3, §8.1 bug 8); this adds no
//! tag of its own, and the `domain:` tags it derives go back to `metadata.domains`.

use agent_registry_core::index::Hit;
use agent_registry_core::model::{Agent, Protocol, Transport};
use agent_registry_core::protocol::{DocumentFormat, Served};
use agent_registry_core::{AgentRegistry, RegistryError};
use serde_json::{Map, Value, json};

use crate::document::{AcpFacts, AgentManifest, Capability, Metadata};
use crate::{NAME_LABEL, domain_of_tag, normalise_name, splice};

/// The member of `metadata.annotations` (ACP's free-form annotations) that tells an ACP client
/// where the agent runs: `{"acp_server_url", "agent_name"}`, the `base_url` of the client that
/// runs it and the `agent_name` of `POST {acp_server_url}/runs`.
pub const RUN_ANNOTATION: &str = "agent_registry";

/// The content types of a manifest built for an agent that never said: anything (the
/// reference SDK's default, `["*/*"]`).
const ANY_CONTENT: &str = "*/*";

/// The manifest to serve for `agent` under the name `acp_name` (normalised again, so that what
/// is served is always an RFC 1123 `AgentName`). `NoProtocolDocument` when the agent has no ACP
/// endpoint over HTTP: an ACP manifest describes an agent reachable on an ACP server.
///
/// A submitted manifest comes back as `Served::Verbatim`: its own text when the name is
/// unchanged, else that text with only the top-level `name` value replaced (every other byte,
/// key order and number as submitted). Other agents get `Served::Built`.
pub fn manifest(agent: &Agent, acp_name: &str) -> Result<Served, RegistryError> {
    let Some(url) = endpoint_url(agent) else {
        return Err(RegistryError::NoProtocolDocument { agent: agent.id.to_string(), protocol: Protocol::ACP });
    };
    let name = normalise_name(acp_name);
    let annotation = json!({"acp_server_url": url, "agent_name": server_agent_name(agent)});
    match agent.origin_of(DocumentFormat::AcpAgentManifest) {
        Some(origin) => submitted(&origin.text, &name).map(|served| annotated(served, &annotation)),
        None => built(agent, &name, annotation).map(Served::Built),
    }
}

/// The name the agent's ACP server knows it by: kept in its endpoint's `protocolMetadata`
/// when it was registered by manifest, else the agent's own name.
fn server_agent_name(agent: &Agent) -> &str {
    agent
        .endpoints_speaking(Protocol::ACP)
        .filter_map(|e| e.protocol_metadata.get("agent_name")?.as_str())
        .next()
        .unwrap_or(&agent.name)
}

/// A submitted manifest with [`RUN_ANNOTATION`] set, every other byte kept. A manifest whose
/// `metadata` or `annotations` is not an object (which the schema refuses anyway) goes without.
fn annotated(served: Served, annotation: &Value) -> Served {
    let path = ["metadata", "annotations", RUN_ANNOTATION];
    match served {
        Served::Verbatim(text) => {
            Served::Verbatim(splice::set_path(&text, &path, &annotation.to_string()).unwrap_or(text))
        }
        Served::Built(mut document) => {
            let metadata = document.as_object_mut().map(|d| d.entry("metadata").or_insert_with(|| json!({})));
            if let Some(metadata) = metadata.filter(|m| m.is_object() || m.is_null()) {
                if metadata.is_null() {
                    *metadata = json!({});
                }
                let annotations = metadata.as_object_mut().map(|m| m.entry("annotations").or_insert_with(|| json!({})));
                if let Some(Value::Object(annotations)) = annotations {
                    annotations.insert(RUN_ANNOTATION.to_owned(), annotation.clone());
                }
            }
            Served::Built(document)
        }
    }
}

/// The name the agent is served under: the ACP name it holds, else its [`NAME_LABEL`] label,
/// else its name normalised.
pub fn acp_name(agent: &Agent) -> String {
    if let Some(claim) = agent.claims.iter().find(|c| c.namespace == NAME_LABEL) {
        return claim.name.clone();
    }
    // Labels can be set through the generic API, so the value is normalised too.
    normalise_name(agent.labels.get(NAME_LABEL).unwrap_or(&agent.name))
}

/// The agent an ACP client asks for by name (as listed, or its original name): the holder of
/// that ACP name, else an agent labelled with it, else an ACP agent whose name, normalised or
/// as given, is that name. Index lookups only.
pub fn find(registry: &AgentRegistry, name: &str) -> Result<Option<Hit>, RegistryError> {
    let wanted = normalise_name(name);
    registry.find_named(NAME_LABEL, &wanted, Protocol::ACP, |agent| acp_name(agent) == wanted || agent.name == name)
}

/// The base URL of the ACP server that runs the agent: the address of its first ACP endpoint
/// over HTTP. Runs go to `POST {url}/runs` (protocols.md §3.1).
pub fn endpoint_url(agent: &Agent) -> Option<&str> {
    agent.endpoints_speaking(Protocol::ACP).find(|e| e.transport == Transport::Http).map(|e| e.address.as_str())
}

/// The submitted manifest with its top-level `name` set to `name`: verbatim when it already is,
/// otherwise the same bytes with only that value replaced.
fn submitted(text: &str, name: &str) -> Result<Served, RegistryError> {
    let wanted = Value::String(name.to_owned());
    if let Some(ranges) = splice::top_level_values(text, "name").filter(|r| !r.is_empty()) {
        let current =
            |r: &std::ops::Range<usize>| text.get(r.clone()).and_then(|s| serde_json::from_str::<Value>(s).ok());
        if ranges.iter().all(|r| current(r).as_ref() == Some(&wanted)) {
            return Ok(Served::Verbatim(text.to_owned()));
        }
        if let Some(replaced) = splice::replace(text, &ranges, &wanted.to_string()) {
            return Ok(Served::Verbatim(replaced));
        }
    }
    // Only reached if the scanner and serde_json disagree about a stored text: fall back to
    // parsing (key order is kept; numbers beyond f64 would not be).
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(mut document)) => {
            document.insert("name".to_owned(), wanted);
            Ok(Served::Built(Value::Object(document)))
        }
        _ => Err(RegistryError::internal("a stored ACP manifest is not a JSON object")),
    }
}

/// A manifest built from the domain: the agent's description, its capabilities, its tags split
/// back into `tags` and `domains`, and what `metadata.acp` kept of an earlier manifest.
fn built(agent: &Agent, name: &str, annotation: Value) -> Result<Value, RegistryError> {
    let facts = AcpFacts::read(&agent.metadata);
    let (domains, tags): (Vec<&String>, Vec<&String>) = agent.tags.iter().partition(|t| domain_of_tag(t).is_some());
    let domains: Vec<String> = domains.into_iter().filter_map(|t| domain_of_tag(t)).map(str::to_owned).collect();
    let tags: Vec<String> = tags.into_iter().cloned().collect();
    let capabilities: Vec<Capability> = agent
        .capabilities
        .iter()
        .map(|c| Capability {
            name: c.name.clone(),
            // Required by the spec; the registry's capabilities may have none.
            description: c.description.clone().unwrap_or_default(),
            extra: Map::new(),
        })
        .collect();
    let manifest = AgentManifest {
        name: name.to_owned(),
        // Required by the spec (OpenAPI `AgentManifest.required`).
        description: Some(agent.description.clone().unwrap_or_default()),
        input_content_types: content_types(facts.input_content_types),
        output_content_types: content_types(facts.output_content_types),
        metadata: Some(Metadata {
            capabilities: non_empty(capabilities),
            domains: non_empty(domains),
            tags: non_empty(tags),
            framework: facts.framework,
            programming_language: facts.programming_language,
            license: facts.license,
            natural_languages: facts.natural_languages,
            links: facts.links.and_then(non_empty),
            extra: Map::from_iter([("annotations".to_owned(), json!({ RUN_ANNOTATION: annotation }))]),
        }),
        status: facts.status,
        extra: Map::new(),
    };
    serde_json::to_value(manifest).map_err(|e| RegistryError::internal_from("building an ACP manifest", e))
}

/// Kept content types, or `*/*` when there are none (the spec requires at least one).
fn content_types(kept: Option<Vec<String>>) -> Vec<String> {
    kept.and_then(non_empty).unwrap_or_else(|| vec![ANY_CONTENT.to_owned()])
}

fn non_empty<T>(items: Vec<T>) -> Option<Vec<T>> {
    (!items.is_empty()).then_some(items)
}
