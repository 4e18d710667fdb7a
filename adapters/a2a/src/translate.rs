//! Reading a submitted agent card into a registration (protocols.md §1.6, §1.7).

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use agent_registry_core::RegistryError;
use agent_registry_core::address::validate_address;
use agent_registry_core::input::{AgentInput, CapabilityInput, EndpointInput, limits};
use agent_registry_core::model::{Protocol, Transport};
use agent_registry_core::protocol::{DocumentFormat, ProtocolDocument, Translation};
use serde_json::{Map, Value};

use crate::fields::{self, Names, Problems};
use crate::{METADATA_KEY, schemas};

/// The A2A card shapes the registry reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CardVersion {
    /// `supportedInterfaces`, ProtoJSON security (A2A v1.0.x).
    V1,
    /// `url` + `preferredTransport` + `additionalInterfaces` (A2A v0.3.0).
    V03,
    /// The same connection fields, before `protocolVersion` was required (A2A ≤ v0.2.6).
    V02,
}

impl CardVersion {
    fn name(self) -> &'static str {
        match self {
            Self::V1 => "1.0",
            Self::V03 => "0.3",
            Self::V02 => "0.2",
        }
    }

    /// A card is v1 when it has `supportedInterfaces` (hybrid cards carry the v0.3 fields beside
    /// them, protocols.md §1.6 item 6); otherwise its `protocolVersion` decides, and a card
    /// without one is of the v0.2 era (the field became required in v0.2.5).
    pub(crate) fn detect(card: &Map<String, Value>, base: &str) -> Result<Self, RegistryError> {
        if fields::member(card, "supportedInterfaces").is_some() {
            return Ok(Self::V1);
        }
        let Some(version) = fields::member(card, "protocolVersion") else {
            return Ok(Self::V02);
        };
        // Not a string: the v0.3 schema says what is wrong with it.
        let Some(text) = version.as_str() else { return Ok(Self::V03) };
        match fields::major_minor(text) {
            Some((0, minor)) if minor < 3 => Ok(Self::V02),
            Some((0, _)) => Ok(Self::V03),
            // A v1 card without `supportedInterfaces`: the v1 schema reports the missing field.
            Some(_) => Ok(Self::V1),
            None => Err(RegistryError::field(
                format!("{base}/protocolVersion"),
                "is not an A2A version: expected Major.Minor or Major.Minor.Patch, e.g. 0.3.0",
            )),
        }
    }
}

/// Reads a submitted A2A agent card into a registration.
///
/// `text` is the card exactly as submitted: it becomes the origin document, served back byte for
/// byte. `base` is the card's JSON pointer in the request body (`""` for a bare card, `/card` when
/// wrapped) and prefixes every error pointer.
///
/// The card is checked against the official schema of its version (422 `schema_violation` with a
/// pointer per violation): v1 when it has `supportedInterfaces`, else v0.3 or v0.2 by its
/// `protocolVersion`, v0.2 when it has none. The schema check reads the card with the leniencies
/// that real cards and the reference SDK (a2a-python 1.x) need, and only those:
///
/// - a member whose value is `null` counts as absent (ProtoJSON reads `null` as the default, and
///   the v0.x SDK models accept `None` for optional fields);
/// - a card without `protocolVersion` is a v0.2-era card (before v0.2.5 made the field required;
///   the a2a-samples air-ticketing card);
/// - a `provider` with `name` instead of `organization` is accepted (seen in live cards);
/// - a v1 interface written the way the .NET agent registry wrote them (`transport` instead of
///   `protocolBinding`, no `protocolVersion`) reads `transport` as the binding and version `1.0`,
///   so cards its clients publish still register.
///
/// Non-MIME modes such as `"text"` and unknown members at any level already pass the schemas.
///
/// Then the registry's own rules, as 400 `validation_failed` with pointers into the card: the
/// name, description, version and skill ids within `agent_registry_core::input::limits`; skill
/// ids unique ignoring case (they become capability names); at least one interface; every
/// interface URL absolute `http(s)` (a relative URL such as `/api/a2a` cannot be resolved), but
/// for `GRPC` interfaces, whose URL is a gRPC target (`grpc[s]://host:port`, `host:port`);
/// at most `limits::ENDPOINTS` interfaces and `limits::CAPABILITIES` skills.
///
/// The registration: name, description and version from the card; each skill a capability
/// (name = skill `id`, description, and the skill's tags that discovery can index: at most
/// `limits::TAGS`, each without commas and within `limits::TAG_CHARS`); each interface an `A2A`
/// endpoint (transport `Grpc` for the `GRPC` binding, `Http` for the others) in the card's order (v1 `supportedInterfaces`; v0.x `url` with
/// `preferredTransport`, default `JSONRPC`, then `additionalInterfaces` less exact repeats of an
/// earlier url and transport) named after its binding (`jsonrpc`, `grpc`, `http-json`, then
/// `jsonrpc-0.3` for a second JSON-RPC interface of version 0.3, ...), with `protocolMetadata` the
/// interface object as submitted (v1) or `{url, protocolBinding, protocolVersion}` (v0.x, version
/// as `Major.Minor`). Card-level facts go to `metadata.a2a` (see [`crate::METADATA_KEY`]).
/// Endpoint liveness settings, the owner and `agent.origin` are left for the caller to set.
pub fn translate(text: &str, base: &str) -> Result<Translation, RegistryError> {
    let document: Value =
        serde_json::from_str(text).map_err(|e| RegistryError::field(base, format!("is not valid JSON ({e})")))?;
    let Value::Object(card) = &document else {
        return Err(RegistryError::field(base, "must be a JSON object: an A2A agent card"));
    };
    let version = CardVersion::detect(card, base)?;
    schemas::for_version(version.name())?.check(&validation_view(card, version), base)?;

    let mut problems = Problems::default();
    let name = problems.required_text(&format!("{base}/name"), fields::string(card, "name"), limits::NAME_CHARS);
    let description = problems.optional_text(
        &format!("{base}/description"),
        fields::string(card, "description"),
        limits::DESCRIPTION_CHARS,
        true,
    );
    let agent_version = problems.optional_text(
        &format!("{base}/version"),
        fields::string(card, "version"),
        limits::VERSION_CHARS,
        false,
    );
    let capabilities = capabilities(card, base, &mut problems);
    let endpoints = endpoints(card, base, version, &mut problems);
    let agent = AgentInput {
        name: Some(name),
        description,
        version: agent_version,
        capabilities: Some(capabilities),
        endpoints: Some(endpoints),
        metadata: card_facts(card, version),
        ..AgentInput::default()
    };
    let agent = problems.finish(agent)?;
    let origin = ProtocolDocument {
        format: DocumentFormat::A2aAgentCard,
        version: version.name().to_owned(),
        text: text.to_owned(),
        signature_verified: None,
    };
    Ok(Translation { agent, origin })
}

/// The card as the schema check reads it, with the leniencies documented on [`translate`].
fn validation_view(card: &Map<String, Value>, version: CardVersion) -> Value {
    let mut view = without_null_members(card);
    if version == CardVersion::V02 && !view.contains_key("protocolVersion") {
        // Any string satisfies the schema; the card itself is kept without one.
        view.insert("protocolVersion".to_owned(), Value::from("0.2.0"));
    }
    if let Some(Value::Object(provider)) = view.get_mut("provider")
        && !provider.contains_key("organization")
        && let Some(name) = provider.get("name").filter(|n| n.is_string()).cloned()
    {
        provider.insert("organization".to_owned(), name);
    }
    if version == CardVersion::V1
        && let Some(Value::Array(interfaces)) = view.get_mut("supportedInterfaces")
    {
        for interface in interfaces.iter_mut().filter_map(Value::as_object_mut) {
            if interface.contains_key("protocolBinding") {
                continue;
            }
            if let Some(transport) = interface.get("transport").filter(|t| t.is_string()).cloned() {
                interface.insert("protocolBinding".to_owned(), transport);
                interface.entry("protocolVersion").or_insert_with(|| Value::from("1.0"));
            }
        }
    }
    Value::Object(view)
}

pub(crate) fn without_null_members(object: &Map<String, Value>) -> Map<String, Value> {
    object.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), strip_nulls(v))).collect()
}

fn strip_nulls(value: &Value) -> Value {
    match value {
        Value::Object(object) => Value::Object(without_null_members(object)),
        Value::Array(items) => Value::Array(items.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

/// Skills → capabilities (shared with the queued card).
pub(crate) fn capabilities(card: &Map<String, Value>, base: &str, problems: &mut Problems) -> Vec<CapabilityInput> {
    let skills = fields::array(card, "skills");
    if skills.len() > limits::CAPABILITIES {
        problems.fail(
            format!("{base}/skills"),
            format!("has {} skills; the registry keeps at most {} per agent", skills.len(), limits::CAPABILITIES),
        );
        return Vec::new();
    }
    let mut first_with_id: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(skills.len());
    for (i, skill) in skills.iter().enumerate() {
        let Some(skill) = skill.as_object() else { continue };
        let p = format!("{base}/skills/{i}");
        let id = problems.required_text(&format!("{p}/id"), fields::string(skill, "id"), limits::NAME_CHARS);
        if !id.is_empty() {
            match first_with_id.entry(id.to_lowercase()) {
                Entry::Occupied(first) => problems.fail(
                    format!("{p}/id"),
                    format!(
                        "repeats the id of skill {}: a skill id identifies the skill (AgentSkill.id) and becomes \
                         the name of one of the agent's capabilities, which are unique ignoring case",
                        first.get()
                    ),
                ),
                Entry::Vacant(slot) => {
                    slot.insert(i);
                }
            }
        }
        let description = problems.optional_text(
            &format!("{p}/description"),
            fields::string(skill, "description"),
            limits::DESCRIPTION_CHARS,
            true,
        );
        out.push(CapabilityInput {
            name: Some(id),
            description,
            tags: Some(discovery_tags(fields::strings(skill, "tags"))),
            input_schema: None,
            output_schema: None,
        });
    }
    out
}

/// The tags discovery can index. A card's tags are free text, so the ones core would refuse (too
/// long, with a comma or a control character, beyond the count limit) are left out of discovery
/// rather than failing a valid card; the card itself keeps them.
fn discovery_tags<'a>(tags: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    tags.map(str::trim)
        .filter(|t| {
            !t.is_empty() && t.chars().count() <= limits::TAG_CHARS && !t.contains(',') && fields::text_fits(t, false)
        })
        .filter(|t| seen.insert(t.to_lowercase()))
        .take(limits::TAGS)
        .map(str::to_owned)
        .collect()
}

/// One interface of a card, whatever its version.
struct Interface<'a> {
    /// Pointer of the interface's URL in the request.
    url_pointer: String,
    /// Pointer of the list the interface is in (for the count limit).
    list_pointer: String,
    url: &'a str,
    binding: &'a str,
    version: String,
    metadata: Map<String, Value>,
}

/// The card's interfaces in order of preference (A2A v1: the first is preferred; v0.x: `url` is).
fn interfaces<'a>(card: &'a Map<String, Value>, base: &str, version: CardVersion) -> Vec<Interface<'a>> {
    if version == CardVersion::V1 {
        let list_pointer = format!("{base}/supportedInterfaces");
        return fields::array(card, "supportedInterfaces")
            .iter()
            .enumerate()
            .filter_map(|(i, interface)| {
                let object = interface.as_object()?;
                Some(Interface {
                    url_pointer: format!("{list_pointer}/{i}/url"),
                    list_pointer: list_pointer.clone(),
                    url: fields::string(object, "url").unwrap_or_default(),
                    binding: fields::string(object, "protocolBinding")
                        .or_else(|| fields::string(object, "transport"))
                        .unwrap_or("JSONRPC"),
                    version: fields::string(object, "protocolVersion").unwrap_or("1.0").to_owned(),
                    metadata: object.clone(),
                })
            })
            .collect();
    }
    // protocols.md §1.6 item 2: the card's protocol version holds for every interface.
    let protocol_version =
        fields::string(card, "protocolVersion").map_or_else(|| version.name().to_owned(), fields::normalize_version);
    let legacy = |url_pointer: String, list_pointer: String, url: &'a str, binding: &'a str| {
        let mut metadata = Map::new();
        metadata.insert("url".to_owned(), Value::from(url));
        metadata.insert("protocolBinding".to_owned(), Value::from(binding));
        metadata.insert("protocolVersion".to_owned(), Value::from(protocol_version.clone()));
        Interface { url_pointer, list_pointer, url, binding, version: protocol_version.clone(), metadata }
    };
    let mut out = vec![legacy(
        format!("{base}/url"),
        format!("{base}/additionalInterfaces"),
        fields::string(card, "url").unwrap_or_default(),
        // The v0.3 schema's default when the card names no preferred transport.
        fields::string(card, "preferredTransport").unwrap_or("JSONRPC"),
    )];
    for (i, interface) in fields::array(card, "additionalInterfaces").iter().enumerate() {
        let Some(object) = interface.as_object() else { continue };
        let url = fields::string(object, "url").unwrap_or_default();
        let binding = fields::string(object, "transport").unwrap_or("JSONRPC");
        // The v0.3 spec asks cards to repeat the main interface here; one endpoint is enough
        // (a2a-python 1.x would list it twice).
        if out.iter().any(|seen| seen.url.trim() == url.trim() && seen.binding == binding) {
            continue;
        }
        out.push(legacy(
            format!("{base}/additionalInterfaces/{i}/url"),
            format!("{base}/additionalInterfaces"),
            url,
            binding,
        ));
    }
    out
}

/// The interfaces of a v0.x card as v1 `AgentInterface` objects (`url`, `protocolBinding`,
/// `protocolVersion` as `Major.Minor`), in the card's order and without repeats: what a v1 client
/// would read from its `url`, `preferredTransport` and `additionalInterfaces`.
pub(crate) fn legacy_interfaces(card: &Map<String, Value>, version: CardVersion) -> Vec<Map<String, Value>> {
    interfaces(card, "", version).into_iter().filter(|i| !i.url.trim().is_empty()).map(|i| i.metadata).collect()
}

/// Interfaces → endpoints.
fn endpoints(
    card: &Map<String, Value>,
    base: &str,
    version: CardVersion,
    problems: &mut Problems,
) -> Vec<EndpointInput> {
    let interfaces = interfaces(card, base, version);
    let Some(first) = interfaces.first() else {
        // The .NET registry registered such a card as an agent without endpoints and then served
        // `null` for it; an agent nobody can reach is refused instead.
        problems.fail(
            format!("{base}/supportedInterfaces"),
            "lists no interface: a card needs at least one URL where the agent can be reached",
        );
        return Vec::new();
    };
    if interfaces.len() > limits::ENDPOINTS {
        problems.fail(
            first.list_pointer.clone(),
            format!(
                "makes {} interfaces; the registry keeps at most {} endpoints per agent",
                interfaces.len(),
                limits::ENDPOINTS
            ),
        );
        return Vec::new();
    }
    let mut names = Names::default();
    let mut versions_seen: Vec<(String, String)> = Vec::new();
    let mut out = Vec::with_capacity(interfaces.len());
    for interface in interfaces {
        let url = interface.url.trim();
        let transport = transport_of(interface.binding);
        check_url(problems, &interface.url_pointer, url, transport);
        let metadata = Value::Object(interface.metadata);
        let size = serde_json::to_vec(&metadata).map_or(usize::MAX, |v| v.len());
        if size > limits::JSON_OBJECT_BYTES {
            let pointer = interface.url_pointer.strip_suffix("/url").unwrap_or(&interface.url_pointer);
            problems.fail(
                pointer,
                format!(
                    "is {size} bytes of JSON; the registry keeps at most {} per interface",
                    limits::JSON_OBJECT_BYTES
                ),
            );
        }
        out.push(EndpointInput {
            name: Some(names.pick(&name_candidates(interface.binding, &interface.version, &mut versions_seen))),
            transport: Some(transport),
            protocol: Some(Protocol::A2A),
            address: Some(url.to_owned()),
            protocol_metadata: Some(metadata),
            ..EndpointInput::default()
        });
    }
    out
}

/// The transport of an interface: `Grpc` for A2A's `GRPC` binding (its URL is a gRPC target such
/// as `grpc://host:port` or `host:port`, A2A v1.0.1 §5.8), `Http` for every other binding.
pub(crate) fn transport_of(binding: &str) -> Transport {
    if binding.trim().eq_ignore_ascii_case("GRPC") { Transport::Grpc } else { Transport::Http }
}

fn check_url(problems: &mut Problems, pointer: &str, url: &str, transport: Transport) {
    let chars = url.chars().count();
    if url.is_empty() {
        problems.fail(pointer, "must not be empty");
    } else if chars > limits::ADDRESS_CHARS {
        problems
            .fail(pointer, format!("is {chars} characters long; the registry's limit is {}", limits::ADDRESS_CHARS));
    } else if url.starts_with('/') || url.starts_with('.') {
        problems.fail(
            pointer,
            "is a relative URL: the registry cannot tell what it is relative to, so interfaces need absolute \
             http(s) URLs (gRPC interfaces: grpc://host:port or host:port)",
        );
    } else if let Err(detail) = validate_address(transport, url) {
        problems.fail(pointer, detail);
    }
}

/// Readable names for an interface's endpoint, in order of preference: the binding (`jsonrpc`),
/// then the binding and version (`jsonrpc-0.3`) unless an earlier interface had both already;
/// [`Names`] appends an index when all are taken (`jsonrpc-2`).
fn name_candidates(binding: &str, version: &str, seen: &mut Vec<(String, String)>) -> Vec<String> {
    let binding = match fields::slug(binding, false) {
        slug if slug.is_empty() => "a2a".to_owned(),
        slug => slug,
    };
    let version = fields::slug(&fields::normalize_version(version), true);
    let pair = (binding.clone(), version.clone());
    if version.is_empty() || seen.contains(&pair) {
        return vec![binding];
    }
    seen.push(pair);
    vec![binding.clone(), format!("{binding}-{version}")]
}

/// Card-level facts kept in `metadata.a2a`, so that a card built from the domain later (once the
/// agent is changed through the generic API and its card is dropped) still says how to talk to
/// the agent: provider, links, default modes and capability flags. Only well-typed values are
/// kept; facts beyond the metadata size limit are left out (the card keeps them).
fn card_facts(card: &Map<String, Value>, version: CardVersion) -> Option<Map<String, Value>> {
    let mut facts = Map::new();
    facts.insert("cardVersion".to_owned(), Value::from(version.name()));
    if let Some(provider) = fields::object(card, "provider") {
        let mut kept = Map::new();
        if let Some(organization) =
            fields::string(provider, "organization").or_else(|| fields::string(provider, "name"))
        {
            kept.insert("organization".to_owned(), Value::from(organization));
        }
        if let Some(url) = fields::string(provider, "url") {
            kept.insert("url".to_owned(), Value::from(url));
        }
        if !kept.is_empty() {
            facts.insert("provider".to_owned(), Value::Object(kept));
        }
    }
    for key in ["documentationUrl", "iconUrl"] {
        if let Some(url) = fields::string(card, key) {
            facts.insert(key.to_owned(), Value::from(url));
        }
    }
    for key in ["defaultInputModes", "defaultOutputModes"] {
        let modes: Vec<Value> = fields::strings(card, key).map(Value::from).collect();
        if !modes.is_empty() {
            facts.insert(key.to_owned(), Value::Array(modes));
        }
    }
    let mut flags = Map::new();
    if let Some(capabilities) = fields::object(card, "capabilities") {
        for key in ["streaming", "pushNotifications", "extendedAgentCard"] {
            if let Some(flag) = fields::member(capabilities, key).and_then(Value::as_bool) {
                flags.insert(key.to_owned(), Value::from(flag));
            }
        }
        let uris: Vec<Value> = fields::array(capabilities, "extensions")
            .iter()
            .filter_map(|e| e.as_object().and_then(|e| fields::string(e, "uri")))
            .map(Value::from)
            .collect();
        if !uris.is_empty() {
            flags.insert("extensions".to_owned(), Value::Array(uris));
        }
    }
    // protocols.md §1.6 item 3: the v0.x flag is v1's `capabilities.extendedAgentCard`.
    if let Some(flag) = fields::member(card, "supportsAuthenticatedExtendedCard").and_then(Value::as_bool) {
        flags.entry("extendedAgentCard").or_insert(Value::from(flag));
    }
    if !flags.is_empty() {
        facts.insert("capabilities".to_owned(), Value::Object(flags));
    }
    let mut metadata = Map::new();
    metadata.insert(METADATA_KEY.to_owned(), Value::Object(facts));
    let size = serde_json::to_vec(&metadata).map_or(usize::MAX, |v| v.len());
    (size <= limits::JSON_OBJECT_BYTES).then_some(metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v1(interfaces: Value) -> Map<String, Value> {
        let mut card = Map::new();
        card.insert("supportedInterfaces".into(), interfaces);
        card
    }

    #[test]
    fn the_version_comes_from_the_shape_then_from_protocol_version() {
        let detect = |card: Value| CardVersion::detect(card.as_object().unwrap(), "/card");
        assert_eq!(detect(Value::Object(v1(Value::Array(vec![])))).unwrap(), CardVersion::V1);
        assert_eq!(detect(serde_json::json!({"supportedInterfaces": null})).unwrap(), CardVersion::V02);
        assert_eq!(detect(serde_json::json!({})).unwrap(), CardVersion::V02);
        assert_eq!(detect(serde_json::json!({"protocolVersion": "0.2.9"})).unwrap(), CardVersion::V02);
        assert_eq!(detect(serde_json::json!({"protocolVersion": "0.3.0"})).unwrap(), CardVersion::V03);
        assert_eq!(detect(serde_json::json!({"protocolVersion": 3})).unwrap(), CardVersion::V03);
        assert_eq!(detect(serde_json::json!({"protocolVersion": "1.0"})).unwrap(), CardVersion::V1);
        let Err(RegistryError::Validation(errors)) = detect(serde_json::json!({"protocolVersion": "latest"})) else {
            panic!("expected a validation error")
        };
        assert_eq!(errors[0].pointer, "/card/protocolVersion");
    }

    #[test]
    fn endpoint_names_follow_bindings_then_versions() {
        let mut names = Names::default();
        let mut seen = Vec::new();
        let picked: Vec<String> = [("JSONRPC", "1.0"), ("GRPC", "1.0"), ("HTTP+JSON", "1.0"), ("JSONRPC", "0.3")]
            .iter()
            .chain(&[("JSONRPC", "0.3"), ("JSONRPC", "1.0"), ("+", ""), ("+", "")])
            .map(|(b, v)| names.pick(&name_candidates(b, v, &mut seen)))
            .collect();
        assert_eq!(picked, ["jsonrpc", "grpc", "http-json", "jsonrpc-0.3", "jsonrpc-2", "jsonrpc-3", "a2a", "a2a-2"]);
    }

    #[test]
    fn tags_discovery_cannot_index_are_left_out() {
        let long = "x".repeat(limits::TAG_CHARS + 1);
        let many: Vec<String> = (0..40).map(|i| format!("t{i}")).collect();
        let tags = discovery_tags(["a,b", " maps ", "MAPS", "", long.as_str(), "bell\u{7}"].into_iter());
        assert_eq!(tags, ["maps"]);
        assert_eq!(discovery_tags(many.iter().map(String::as_str)).len(), limits::TAGS);
    }
}
