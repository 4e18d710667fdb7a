//! Serving an agent's MCP documents. The document an agent was registered with is served as it
//! came; the other MCP format is derived from it (a Server Card is a subset of `server.json`,
//! protocols.md §2.4); agents registered generically, or whose document was dropped by a
//! generic change, get documents built from the domain. Every built document is checked
//! against its official schema before it is served: a field that would break it is reduced to
//! its essentials or left out, never served invalid.

use agent_registry_core::RegistryError;
use agent_registry_core::model::{Agent, Protocol, Transport};
use agent_registry_core::protocol::{DocumentFormat, Served};
use agent_registry_core::schema::Schema;
use serde_json::{Map, Value};

use crate::names::{STREAMABLE_HTTP, derive_server_name, is_server_name, resolve_template, truncate_chars};
use crate::schemas::{self, LEGACY_CARD_VERSION, SERVER_CARD_SCHEMA_URL, SERVER_JSON_SCHEMA_URL};

/// The agent's MCP Server Card: the registered card as it came (Server Card or legacy card), a
/// card derived from a registered `server.json`, or one built from the domain for an agent
/// with MCP endpoints over HTTP. Fails with `no_protocol_document` (404) for an agent that
/// speaks no MCP.
pub fn server_card(agent: &Agent) -> Result<Served, RegistryError> {
    if let Some(origin) = agent.origin_of(DocumentFormat::McpServerCard) {
        return Ok(Served::Verbatim(origin.text.clone()));
    }
    if let Some(source) = registered(agent, DocumentFormat::McpServerJson)
        && let Some(card) = derive(&source, Target::Card)?
    {
        return Ok(Served::Built(card));
    }
    from_domain(agent, Target::Card).map(Served::Built)
}

/// The agent's `server.json`: the registered one as it came, one derived from a registered
/// Server Card (2025-12-11 schema), or one built from the domain. Fails with
/// `no_protocol_document` (404) for an agent that speaks no MCP.
pub fn server_json(agent: &Agent) -> Result<Served, RegistryError> {
    if let Some(origin) = agent.origin_of(DocumentFormat::McpServerJson) {
        return Ok(Served::Verbatim(origin.text.clone()));
    }
    if let Some(source) = registered(agent, DocumentFormat::McpServerCard)
        && let Some(document) = derive(&source, Target::ServerJson)?
    {
        return Ok(Served::Built(document));
    }
    from_domain(agent, Target::ServerJson).map(Served::Built)
}

/// The server name the agent's MCP documents carry: the registered document's `name`, or one
/// derived from the agent's name (`agent-registry/<slug>` unless it is a server name already).
pub fn server_name(agent: &Agent) -> String {
    registered_field(agent, "name")
        .filter(|name| is_server_name(name))
        .unwrap_or_else(|| derive_server_name(&agent.name, &agent.id.to_string()))
}

/// The server version the agent's MCP documents carry: the registered document's `version`,
/// else the agent's version, else `0.0.0`.
pub fn server_version(agent: &Agent) -> String {
    registered_field(agent, "version").filter(|v| !v.trim().is_empty()).unwrap_or_else(|| version_of(agent))
}

/// The registered document of `format` as a JSON object, when it is a Server Card or a
/// `server.json` (a legacy card has neither's fields; its agent is described by the domain).
fn registered(agent: &Agent, format: DocumentFormat) -> Option<Map<String, Value>> {
    let origin = agent.origin_of(format).filter(|o| o.version != LEGACY_CARD_VERSION)?;
    match serde_json::from_str(&origin.text) {
        Ok(Value::Object(fields)) => Some(fields),
        _ => None,
    }
}

fn registered_field(agent: &Agent, key: &str) -> Option<String> {
    [DocumentFormat::McpServerJson, DocumentFormat::McpServerCard]
        .into_iter()
        .find_map(|format| registered(agent, format))
        .and_then(|fields| fields.get(key).and_then(Value::as_str).map(str::to_owned))
}

/// The document being built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Card,
    ServerJson,
}

impl Target {
    fn schema_url(self) -> &'static str {
        match self {
            Self::Card => SERVER_CARD_SCHEMA_URL,
            Self::ServerJson => SERVER_JSON_SCHEMA_URL,
        }
    }

    fn schema(self) -> Result<&'static Schema, RegistryError> {
        match self {
            Self::Card => schemas::server_card(),
            Self::ServerJson => schemas::server_json_latest(),
        }
    }

    /// The fields a derived document takes over from the other format: the card's fields are
    /// a subset of `server.json`'s (SEP-2127), and `packages` exist only in `server.json`.
    fn takes(self, key: &str) -> bool {
        matches!(
            key,
            "name" | "title" | "description" | "version" | "websiteUrl" | "repository" | "icons" | "remotes" | "_meta"
        )
    }

    /// Remote fields copied from an endpoint's metadata besides `type` and `url`
    /// (`supportedProtocolVersions` is a Server Card field).
    fn remote_extras(self) -> &'static [&'static str] {
        match self {
            Self::Card => &["headers", "supportedProtocolVersions"],
            Self::ServerJson => &["headers"],
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Card => "MCP Server Card",
            Self::ServerJson => "server.json",
        }
    }
}

/// A document of `target` made of the other format's shared fields, in their order. `None`
/// when a required field cannot be made valid (the caller then builds from the domain).
fn derive(source: &Map<String, Value>, target: Target) -> Result<Option<Value>, RegistryError> {
    let mut document = Map::new();
    document.insert("$schema".to_owned(), Value::from(target.schema_url()));
    for (key, value) in source {
        if target.takes(key) {
            document.insert(key.clone(), value.clone());
        }
    }
    Ok(make_valid(document, target.schema()?))
}

/// Whether the agent has MCP documents at all: it was registered with one, or it has an MCP
/// endpoint over HTTP (a document describes remotes by URL only).
fn speaks_mcp(agent: &Agent) -> bool {
    agent.origin.as_ref().is_some_and(|o| o.protocol() == Protocol::MCP) || mcp_endpoints(agent).next().is_some()
}

fn mcp_endpoints(agent: &Agent) -> impl Iterator<Item = &agent_registry_core::model::Endpoint> {
    agent.endpoints_speaking(Protocol::MCP).filter(|e| e.transport == Transport::Http)
}

fn version_of(agent: &Agent) -> String {
    match agent.version.as_deref().map(str::trim) {
        Some(version) if !version.is_empty() => truncate_chars(version, 255),
        _ => "0.0.0".to_owned(),
    }
}

/// A description of 1 to 100 characters (both schemas): the agent's, else its name.
fn description_of(agent: &Agent) -> String {
    let text = agent.description.as_deref().map(str::trim).filter(|d| !d.is_empty()).unwrap_or(agent.name.trim());
    if text.is_empty() { "MCP server".to_owned() } else { truncate_chars(text, 100) }
}

fn from_domain(agent: &Agent, target: Target) -> Result<Value, RegistryError> {
    if !speaks_mcp(agent) {
        return Err(RegistryError::NoProtocolDocument { agent: agent.id.to_string(), protocol: Protocol::MCP });
    }
    let schema = target.schema()?;
    let mut document = Map::new();
    document.insert("$schema".to_owned(), Value::from(target.schema_url()));
    document.insert("name".to_owned(), Value::from(server_name_from_domain(agent)));
    // Metadata fields were copied from a registered document (or set by a client); each is
    // written back only if the schema accepts it (make_valid below leaves the others out).
    let kept = |document: &mut Map<String, Value>, key: &str| {
        if let Some(value) = agent.metadata.get(key).filter(|v| !v.is_null()) {
            document.insert(key.to_owned(), value.clone());
        }
    };
    kept(&mut document, "title");
    document.insert("description".to_owned(), Value::from(description_of(agent)));
    document.insert("version".to_owned(), Value::from(version_of(agent)));
    for key in ["websiteUrl", "repository", "icons"] {
        kept(&mut document, key);
    }
    let remotes: Vec<Value> = mcp_endpoints(agent).map(|e| remote_of(e, target, schema)).collect();
    if !remotes.is_empty() {
        document.insert("remotes".to_owned(), Value::Array(remotes));
    }
    if target == Target::ServerJson {
        kept(&mut document, "packages");
    }
    make_valid(document, schema).ok_or_else(|| {
        RegistryError::internal(format!(
            "the {} built for agent {} does not follow its schema",
            target.label(),
            agent.id
        ))
    })
}

fn server_name_from_domain(agent: &Agent) -> String {
    derive_server_name(&agent.name, &agent.id.to_string())
}

/// The remote describing an endpoint. An endpoint registered from a remote keeps it in its
/// metadata; when that remote still resolves to the endpoint's address it is written back as
/// it was (URL template and all). Otherwise the remote is the endpoint's address with the
/// metadata's headers (and, in a card, protocol versions), or without them if they are invalid.
fn remote_of(endpoint: &agent_registry_core::model::Endpoint, target: Target, schema: &Schema) -> Value {
    let metadata = &endpoint.protocol_metadata;
    let kind = match metadata.get("type").and_then(Value::as_str) {
        Some("sse") => "sse",
        _ => STREAMABLE_HTTP,
    };
    let mut candidates = Vec::with_capacity(3);
    let unchanged = metadata
        .get("url")
        .and_then(Value::as_str)
        .and_then(|url| resolve_template(url, metadata.get("variables")))
        .is_some_and(|resolved| resolved == endpoint.address);
    if unchanged {
        candidates.push(metadata.clone());
    }
    let mut plain = Map::new();
    plain.insert("type".to_owned(), Value::from(kind));
    plain.insert("url".to_owned(), Value::from(endpoint.address.as_str()));
    let mut extended = plain.clone();
    for key in target.remote_extras() {
        if let Some(value) = metadata.get(*key) {
            extended.insert((*key).to_owned(), value.clone());
        }
    }
    if extended.len() > plain.len() {
        candidates.push(extended);
    }
    candidates
        .into_iter()
        .find(|remote| remote_is_valid(remote, target, schema))
        .map_or(Value::Object(plain), Value::Object)
}

/// Checks one remote on its own, inside the smallest valid document.
fn remote_is_valid(remote: &Map<String, Value>, target: Target, schema: &Schema) -> bool {
    let mut probe = Map::new();
    probe.insert("$schema".to_owned(), Value::from(target.schema_url()));
    probe.insert("name".to_owned(), Value::from("a/b"));
    probe.insert("description".to_owned(), Value::from("probe"));
    probe.insert("version".to_owned(), Value::from("0.0.0"));
    probe.insert("remotes".to_owned(), Value::Array(vec![Value::Object(remote.clone())]));
    schema.violations(&Value::Object(probe), "").is_empty()
}

/// Fields a built document cannot do without: the schemas' required fields.
const REQUIRED: [&str; 4] = ["$schema", "name", "description", "version"];

/// Fields an array element cannot do without; any other field of an invalid element is
/// removed before the element itself is.
const ESSENTIAL: [&str; 6] = ["type", "url", "src", "registryType", "identifier", "transport"];

/// At most this many rounds of pruning; each round removes something or gives up.
const MAX_ROUNDS: usize = 32;

/// Returns the document once it follows `schema`, after removing what breaks it: an invalid
/// optional field, an invalid element of an optional array (first reduced to its essential
/// fields, then dropped), or an element's invalid non-essential field. `None` when a required
/// field is at fault.
fn make_valid(mut document: Map<String, Value>, schema: &Schema) -> Option<Value> {
    for _ in 0..MAX_ROUNDS {
        let value = Value::Object(document);
        let violations = schema.violations(&value, "");
        let Value::Object(fields) = value else { return None };
        document = fields;
        if violations.is_empty() {
            return Some(Value::Object(document));
        }
        let mut faults: Vec<Fault> = violations.iter().map(|v| Fault::at(&v.pointer)).collect::<Option<_>>()?;
        // Inner removals first, then elements from the back, so indices stay right in a round.
        faults.sort_by(|a, b| b.cmp(a));
        faults.dedup();
        let mut changed = false;
        let mut touched = Vec::new();
        for fault in faults {
            // One change per element and round: removing a field may be all the element needed.
            if fault.index.is_some() && touched.contains(&(fault.key.clone(), fault.index)) {
                continue;
            }
            touched.push((fault.key.clone(), fault.index));
            changed |= fault.remove(&mut document);
        }
        if !changed {
            return None;
        }
    }
    None
}

/// Where a violation is, as far as pruning cares: a top-level field, one of its elements, and
/// a field of that element.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Fault {
    key: String,
    index: Option<usize>,
    field: Option<String>,
}

impl Fault {
    fn at(pointer: &str) -> Option<Self> {
        let mut tokens = pointer.split('/').skip(1).map(|t| t.replace("~1", "/").replace("~0", "~"));
        let key = tokens.next()?;
        if REQUIRED.contains(&key.as_str()) {
            return None;
        }
        let index = tokens.next().map(|t| t.parse::<usize>().ok());
        match index {
            Some(Some(index)) => Some(Self { key, index: Some(index), field: tokens.next() }),
            // Inside an object-valued field (e.g. `repository/url`): the field goes.
            Some(None) | None => Some(Self { key, index: None, field: None }),
        }
    }

    fn remove(&self, document: &mut Map<String, Value>) -> bool {
        let Some(index) = self.index else { return document.shift_remove(&self.key).is_some() };
        let Some(Value::Array(items)) = document.get_mut(&self.key) else {
            return document.shift_remove(&self.key).is_some();
        };
        let Some(item) = items.get_mut(index) else { return false };
        let removed = match (item, &self.field) {
            (Value::Object(fields), Some(field)) if !ESSENTIAL.contains(&field.as_str()) => {
                fields.shift_remove(field).is_some()
            }
            (Value::Object(fields), _) if fields.keys().any(|k| !ESSENTIAL.contains(&k.as_str())) => {
                fields.retain(|k, _| ESSENTIAL.contains(&k.as_str()));
                true
            }
            _ => {
                items.remove(index);
                true
            }
        };
        if items.is_empty() {
            document.shift_remove(&self.key);
        }
        removed
    }
}
