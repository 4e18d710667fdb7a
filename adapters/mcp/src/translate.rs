//! Reading a submitted MCP document into a registration. Three shapes are read:
//!
//! - a **Server Card** (SEP-2127 draft, protocols.md §2.4), recognised by its required `$schema`;
//! - a **legacy card** (`serverInfo`, `endpoints.streamableHttp`, `tools`…: the .NET registry's
//!   shape, dotnet-agentregistry.md §5.2, and `/.well-known/mcp.json` deployments), recognised
//!   by `serverInfo`; it has no official schema, so it is read leniently;
//! - otherwise an MCP Registry **`server.json`** (protocols.md §2.5), checked against the schema
//!   its `$schema` names (2025-12-11 when it names none).
//!
//! Every remote becomes an MCP endpoint over HTTP; packages (stdio or local HTTP) are run by
//! the client, so they give none. Declared tools, resources and prompts become capabilities.
//! The result is checked with the core's own rules here, so that a document is refused with
//! pointers into the document rather than into the registration made from it.

use std::collections::HashSet;

use agent_registry_core::address::validate_address;
use agent_registry_core::input::{AgentInput, CapabilityInput, EndpointInput, limits};
use agent_registry_core::liveness::LivenessPolicy;
use agent_registry_core::model::{Protocol, Transport};
use agent_registry_core::protocol::{DocumentFormat, ProtocolDocument, Translation};
use agent_registry_core::{FieldError, RegistryError};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::names::{REMOTE_TYPES, STREAMABLE_HTTP, resolve_template};
use crate::schemas::{self, LEGACY_CARD_VERSION, SERVER_CARD_SCHEMA_URL, SERVER_CARD_VERSION, ServerJsonVersion};

/// Reads an MCP Server Card, a legacy card or a `server.json` (see the module documentation).
/// `base` is the document's pointer in the request (`""` for a bare document, `/serverCard`
/// when wrapped); every error points below it. Fails with `validation_failed` (400) for text
/// that is not a JSON object, an unknown `$schema`, or a rule the schema does not express, and
/// with `schema_violation` (422) listing every violation of the official schema.
pub fn translate(text: &str, base: &str) -> Result<Translation, RegistryError> {
    let document: Value =
        serde_json::from_str(text).map_err(|e| RegistryError::field(base, format!("is not valid JSON: {e}")))?;
    let Value::Object(fields) = &document else {
        return Err(RegistryError::field(
            base,
            "must be a JSON object: an MCP Server Card or an MCP Registry server.json",
        ));
    };
    let mut reader = Reader::new(fields, base);
    let (format, version) = match detect(fields, base)? {
        Shape::Card => {
            schemas::server_card()?.check(&document, base)?;
            reader.read_standard();
            (DocumentFormat::McpServerCard, SERVER_CARD_VERSION)
        }
        Shape::ServerJson(version) => {
            version.schema()?.check(&document, base)?;
            reader.read_standard();
            (DocumentFormat::McpServerJson, version.label)
        }
        Shape::Legacy => {
            reader.read_legacy();
            (DocumentFormat::McpServerCard, LEGACY_CARD_VERSION)
        }
    };
    reader.finish(ProtocolDocument {
        format,
        version: version.to_owned(),
        text: text.to_owned(),
        signature_verified: None,
    })
}

enum Shape {
    Card,
    Legacy,
    ServerJson(ServerJsonVersion),
}

fn detect(fields: &Map<String, Value>, base: &str) -> Result<Shape, RegistryError> {
    let schema = fields.get("$schema");
    if let Some(url) = schema.and_then(Value::as_str) {
        if url == SERVER_CARD_SCHEMA_URL {
            return Ok(Shape::Card);
        }
        if let Some(version) = ServerJsonVersion::from_url(url) {
            return Ok(Shape::ServerJson(version));
        }
    }
    // Legacy cards predate the `$schema` URLs above; some carry a `$schema` of their own.
    if fields.contains_key("serverInfo") {
        return Ok(Shape::Legacy);
    }
    match schema {
        None => Ok(Shape::ServerJson(ServerJsonVersion::default_version())),
        Some(other) => {
            let shown = match other {
                Value::String(url) => format!("`{}`", crate::names::truncate_chars(url, 200)),
                _ => "a non-string value".to_owned(),
            };
            Err(RegistryError::field(
                format!("{base}/$schema"),
                format!(
                    "is {shown}, not a schema this registry reads; use one of {}",
                    schemas::supported_urls().join(", ")
                ),
            ))
        }
    }
}

/// Where each part of the registration came from in the document, so that the core's
/// verdicts can be reported against the document.
#[derive(Default)]
struct Origins {
    name: String,
    description: String,
    version: String,
    /// One pointer per capability, in order.
    capabilities: Vec<String>,
    /// One (item, address) pointer pair per endpoint, in order.
    endpoints: Vec<(String, String)>,
    endpoint_list: String,
}

impl Origins {
    /// The document pointer for a pointer into the `AgentInput` built from it.
    fn locate(&self, base: &str, pointer: &str) -> String {
        let mut tokens = pointer.split('/').skip(1);
        let top = tokens.next();
        let index = tokens.next().and_then(|t| t.parse::<usize>().ok());
        let field = tokens.next();
        match (top, index, field) {
            (Some("name"), ..) => self.name.clone(),
            (Some("description"), ..) => self.description.clone(),
            (Some("version"), ..) => self.version.clone(),
            (Some("capabilities"), Some(i), field) => match (self.capabilities.get(i), field) {
                // Capability fields carry the names of the MCP fields they were read from.
                (Some(at), Some(f @ ("name" | "description" | "inputSchema" | "outputSchema"))) => format!("{at}/{f}"),
                (Some(at), _) => at.clone(),
                (None, _) => base.to_owned(),
            },
            (Some("endpoints"), Some(i), field) => match (self.endpoints.get(i), field) {
                (Some((_, address)), Some("address")) => address.clone(),
                (Some((item, _)), _) => item.clone(),
                (None, _) => self.endpoint_list.clone(),
            },
            (Some("endpoints"), None, _) => self.endpoint_list.clone(),
            _ => base.to_owned(),
        }
    }
}

struct Reader<'a> {
    doc: &'a Map<String, Value>,
    base: &'a str,
    errors: Vec<FieldError>,
    name: Option<String>,
    description: Option<String>,
    version: Option<String>,
    capabilities: Vec<CapabilityInput>,
    endpoints: Vec<EndpointInput>,
    /// The remote type of each endpoint, for naming the next one.
    endpoint_kinds: Vec<String>,
    metadata: Map<String, Value>,
    tags: Vec<String>,
    origins: Origins,
}

/// Document fields copied into the agent's metadata, for generic discovery clients and so that
/// documents built from the domain later can write them back.
const METADATA_FIELDS: [&str; 5] = ["title", "websiteUrl", "repository", "icons", "packages"];

/// Metadata is kept well under the core's limit, so that a large (valid) document never fails
/// registration because of what the adapter chose to copy.
const METADATA_BUDGET: usize = limits::JSON_OBJECT_BYTES / 2;

/// MCP primitives a card may declare (legacy cards do; SEP-2127 cards leave them to runtime
/// listing but the schema is open, so they are read when present), with their capability tag.
const PRIMITIVES: [(&str, &str); 3] = [("tools", "tool"), ("resources", "resource"), ("prompts", "prompt")];

impl<'a> Reader<'a> {
    fn new(doc: &'a Map<String, Value>, base: &'a str) -> Self {
        Self {
            doc,
            base,
            errors: Vec::new(),
            name: None,
            description: None,
            version: None,
            capabilities: Vec::new(),
            endpoints: Vec::new(),
            endpoint_kinds: Vec::new(),
            metadata: Map::new(),
            tags: vec!["mcp".to_owned()],
            origins: Origins { endpoint_list: format!("{base}/remotes"), ..Origins::default() },
        }
    }

    fn at(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn fail(&mut self, pointer: String, detail: impl Into<String>) {
        self.errors.push(FieldError::new(pointer, detail));
    }

    /// A Server Card or `server.json`, already checked against its schema.
    fn read_standard(&mut self) {
        self.origins.name = self.at("/name");
        self.origins.description = self.at("/description");
        self.origins.version = self.at("/version");
        self.name = self.doc.get("name").and_then(Value::as_str).map(str::to_owned);
        // The schemas admit a blank version and a blank description, but MCP clients drop a
        // server whose `name`, `description` or `version` is empty (VS Code: protocols.md §2.6,
        // item 4), and would then reject the whole page it is on.
        for (key, slot) in [("description", &mut self.description), ("version", &mut self.version)] {
            match self.doc.get(key).and_then(Value::as_str) {
                Some(text) if !text.trim().is_empty() => *slot = Some(text.to_owned()),
                _ => self.errors.push(FieldError::new(
                    format!("{}/{key}", self.base),
                    "must not be blank: MCP clients drop servers without one",
                )),
            }
        }
        self.read_remotes();
        self.read_primitives();
        for key in METADATA_FIELDS {
            self.keep_metadata(key, self.doc.get(key));
        }
        self.read_package_tags();
    }

    fn read_remotes(&mut self) {
        let Some(Value::Array(remotes)) = self.doc.get("remotes") else { return };
        for (i, remote) in remotes.iter().enumerate() {
            let Some(fields) = remote.as_object() else { continue };
            let Some(kind) = fields.get("type").and_then(Value::as_str).filter(|t| REMOTE_TYPES.contains(t)) else {
                continue;
            };
            let Some(url) = fields.get("url").and_then(Value::as_str) else { continue };
            // A remote whose URL needs a value from the user is listed but not reachable as is.
            let Some(address) = resolve_template(url, fields.get("variables")) else { continue };
            let item = self.at(&format!("/remotes/{i}"));
            let templated = address != url;
            self.endpoint(kind, address, templated, item.clone(), format!("{item}/url"), fields.clone());
        }
    }

    fn endpoint(
        &mut self,
        kind: &str,
        address: String,
        templated: bool,
        item: String,
        address_at: String,
        metadata: Map<String, Value>,
    ) {
        if let Err(detail) = validate_address(Transport::Http, &address) {
            let detail = if templated {
                let shown = crate::names::truncate_chars(&address, 200);
                format!("{detail} (it reads `{shown}` once its template variables take their defaults)")
            } else {
                detail
            };
            self.fail(address_at, detail);
            return;
        }
        // Endpoint names are unique per agent: `streamable-http`, `sse`, `streamable-http-2`…
        let taken = self.endpoint_kinds.iter().filter(|k| *k == kind).count();
        self.endpoint_kinds.push(kind.to_owned());
        let name = if taken == 0 { kind.to_owned() } else { format!("{kind}-{}", taken + 1) };
        self.endpoints.push(EndpointInput {
            name: Some(name),
            transport: Some(Transport::Http),
            protocol: Some(Protocol::MCP),
            address: Some(address),
            protocol_metadata: Some(Value::Object(metadata)),
            ..EndpointInput::default()
        });
        self.origins.endpoints.push((item, address_at));
    }

    /// Tools, resources and prompts. They are not part of any schema here, so their shape is
    /// checked by hand: each must be an object with a non-blank `name`. Tool names are unique
    /// per server (MCP `Tool.name`), but a resource or prompt may share a tool's name; capability
    /// names are unique per agent, so such a one is named `resource:<name>` or `prompt:<name>`.
    fn read_primitives(&mut self) {
        let mut taken = HashSet::new();
        for (key, kind) in PRIMITIVES {
            let list = match self.doc.get(key) {
                None | Some(Value::Null) => continue,
                Some(Value::Array(list)) => list,
                Some(_) => {
                    self.fail(self.at(&format!("/{key}")), format!("must be an array of MCP {kind} descriptions"));
                    continue;
                }
            };
            for (i, item) in list.iter().enumerate() {
                let at = self.at(&format!("/{key}/{i}"));
                let Some(item) = item.as_object() else {
                    self.fail(at, format!("must be an object describing an MCP {kind}"));
                    continue;
                };
                let name = match item.get("name") {
                    Some(Value::String(name)) if !name.trim().is_empty() => name.trim(),
                    Some(Value::String(_)) | None | Some(Value::Null) => {
                        self.fail(format!("{at}/name"), "is required");
                        continue;
                    }
                    Some(_) => {
                        self.fail(format!("{at}/name"), "must be a string");
                        continue;
                    }
                };
                let description = match item.get("description") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(text)) => Some(text.clone()),
                    Some(_) => {
                        self.fail(format!("{at}/description"), "must be a string");
                        continue;
                    }
                };
                let name = if kind != "tool" && taken.contains(&name.to_lowercase()) {
                    format!("{kind}:{name}")
                } else {
                    name.to_owned()
                };
                taken.insert(name.to_lowercase());
                let schema = |field: &str| if kind == "tool" { item.get(field).cloned() } else { None };
                self.capabilities.push(CapabilityInput {
                    name: Some(name),
                    description,
                    tags: Some(vec![kind.to_owned()]),
                    input_schema: schema("inputSchema"),
                    output_schema: schema("outputSchema"),
                });
                self.origins.capabilities.push(at);
            }
        }
    }

    fn keep_metadata(&mut self, key: &str, value: Option<&Value>) {
        let Some(value) = value.filter(|v| !v.is_null()) else { return };
        self.metadata.insert(key.to_owned(), value.clone());
        let size = serde_json::to_vec(&self.metadata).map_or(usize::MAX, |bytes| bytes.len());
        if size > METADATA_BUDGET {
            self.metadata.remove(key);
        }
    }

    /// Package registry types (`npm`, `pypi`, `oci`…) as agent tags, so that generic discovery
    /// can find the servers a given installer runs.
    fn read_package_tags(&mut self) {
        let Some(Value::Array(packages)) = self.doc.get("packages") else { return };
        for package in packages {
            let Some(kind) = package.get("registryType").and_then(Value::as_str) else { continue };
            let tag = kind.trim().to_lowercase();
            let usable = !tag.is_empty()
                && tag.chars().count() <= limits::TAG_CHARS
                && !tag.contains(',')
                && !tag.chars().any(char::is_control);
            if usable && !self.tags.contains(&tag) && self.tags.len() < limits::TAGS {
                self.tags.push(tag);
            }
        }
    }

    /// The pre-SEP-2127 card: `serverInfo {name, version, title?, websiteUrl?, icons?}`, the
    /// endpoint in `endpoints.streamableHttp` (the .NET registry) or `endpoints.sse`, or in
    /// `transport {type, url | endpoint}` (SEP-1649 drafts; a relative endpoint cannot be
    /// resolved without the card's own URL and gives none), the description in `description`,
    /// `serverInfo.description` or `instructions`, and `tools`/`resources`/`prompts`.
    fn read_legacy(&mut self) {
        let info = match self.doc.get("serverInfo") {
            Some(Value::Object(info)) => info,
            _ => {
                self.fail(self.at("/serverInfo"), "must be an object naming the server (`name`, `version`)");
                return;
            }
        };
        self.origins.name = self.at("/serverInfo/name");
        self.origins.version = self.at("/serverInfo/version");
        match info.get("name") {
            Some(Value::String(name)) if !name.trim().is_empty() => self.name = Some(name.clone()),
            _ => self.fail(self.at("/serverInfo/name"), "is required and must be a non-blank string"),
        }
        match info.get("version") {
            None | Some(Value::Null) => {}
            Some(Value::String(version)) => self.version = Some(version.clone()),
            Some(_) => self.fail(self.at("/serverInfo/version"), "must be a string"),
        }
        let candidates = [
            (self.doc.get("description"), "/description"),
            (info.get("description"), "/serverInfo/description"),
            (self.doc.get("instructions"), "/instructions"),
        ];
        if let Some((text, at)) = candidates
            .into_iter()
            .find_map(|(v, at)| v.and_then(Value::as_str).filter(|t| !t.trim().is_empty()).map(|t| (t, at)))
        {
            self.description = Some(text.to_owned());
            self.origins.description = self.at(at);
        }
        let protocol_version = ["mcpVersion", "protocolVersion"]
            .into_iter()
            .find_map(|key| self.doc.get(key).and_then(Value::as_str))
            .map(str::to_owned);
        self.origins.endpoint_list = self.at("/endpoints");
        match self.doc.get("endpoints") {
            None | Some(Value::Null) => {}
            Some(Value::Object(endpoints)) => {
                for (key, kind) in [("streamableHttp", STREAMABLE_HTTP), ("sse", "sse")] {
                    let at = self.at(&format!("/endpoints/{key}"));
                    match endpoints.get(key) {
                        None | Some(Value::Null) => {}
                        Some(Value::String(url)) => self.legacy_endpoint(kind, url, at, protocol_version.as_deref()),
                        Some(_) => self.fail(at, "must be the endpoint's URL"),
                    }
                }
            }
            Some(_) => {
                self.fail(self.at("/endpoints"), "must be an object such as {\"streamableHttp\": \"https://…\"}")
            }
        }
        if let Some(Value::Object(transport)) = self.doc.get("transport") {
            let kind = transport.get("type").and_then(Value::as_str).unwrap_or(STREAMABLE_HTTP);
            let located = ["url", "endpoint"]
                .into_iter()
                .find_map(|key| transport.get(key).and_then(Value::as_str).map(|url| (key, url)));
            if let Some((key, url)) = located
                && REMOTE_TYPES.contains(&kind)
                && (url.starts_with("http://") || url.starts_with("https://"))
            {
                let at = self.at(&format!("/transport/{key}"));
                self.legacy_endpoint(kind, url, at, protocol_version.as_deref());
            }
        }
        self.read_primitives();
        for key in ["title", "websiteUrl", "icons"] {
            self.keep_metadata(key, info.get(key));
        }
    }

    fn legacy_endpoint(&mut self, kind: &str, url: &str, at: String, protocol_version: Option<&str>) {
        // Kept in the shape of a Server Card remote, so that documents built later read it alike.
        let mut remote = Map::new();
        remote.insert("type".to_owned(), Value::from(kind));
        remote.insert("url".to_owned(), Value::from(url));
        if let Some(version) = protocol_version {
            remote.insert("supportedProtocolVersions".to_owned(), Value::from(vec![version]));
        }
        self.endpoint(kind, url.trim().to_owned(), false, at.clone(), at, remote);
    }

    fn finish(self, origin: ProtocolDocument) -> Result<Translation, RegistryError> {
        if !self.errors.is_empty() {
            return Err(RegistryError::Validation(self.errors));
        }
        let agent = AgentInput {
            name: self.name,
            description: self.description,
            version: self.version,
            tags: Some(self.tags),
            capabilities: Some(self.capabilities),
            endpoints: Some(self.endpoints),
            metadata: Some(self.metadata),
            origin: Some(origin.clone()),
            ..AgentInput::default()
        };
        check_with_core(&agent, &self.origins, self.base)?;
        Ok(Translation { agent, origin })
    }
}

/// Runs the core's validation of a registration (lengths, control characters, schema shapes,
/// unique names) and reports its findings at their places in the document. The liveness
/// settings are left to the request, so the default policy stands in for them here.
fn check_with_core(agent: &AgentInput, origins: &Origins, base: &str) -> Result<(), RegistryError> {
    let unique = |name: String, pointer: String| {
        RegistryError::Validation(vec![FieldError::new(
            origins.locate(base, &pointer),
            format!("`{name}` is used more than once (names are unique per agent, ignoring case)"),
        )])
    };
    match agent.to_registration(&LivenessPolicy::default(), DateTime::<Utc>::UNIX_EPOCH) {
        Ok(_) => Ok(()),
        Err(RegistryError::Validation(errors)) => Err(RegistryError::Validation(
            errors.into_iter().map(|e| FieldError::new(origins.locate(base, &e.pointer), e.detail)).collect(),
        )),
        Err(RegistryError::DuplicateCapabilityName { name, pointer }) => Err(unique(name, pointer)),
        Err(RegistryError::DuplicateEndpointName { name, pointer }) => Err(unique(name, pointer)),
        Err(other) => Err(other),
    }
}
