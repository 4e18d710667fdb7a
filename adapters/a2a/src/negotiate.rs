//! Card version negotiation: the card a client gets depends on the A2A version it asks for.
//!
//! A2A §3.6: clients name the version they speak as `A2A-Version: Major.Minor`, in a header or a
//! query parameter, and an empty or missing value means 0.3. A card registered in one version is
//! unusable by clients of the other (a v1.0 client finds no `supportedInterfaces` in a v0.3 card;
//! a v0.3 client finds no `url` in a v1.0 one), so a card asked for in a version it is not in is
//! served as a dual-format card: the registered card, every member kept as it was, with the
//! members of the asked-for version added beside them (as a2a-python 1.x serves its own cards,
//! protocols.md §1.1 and §1.6 item 6). Clients of both versions ignore the members they do not
//! know (A2A v1 §5.5, the v0.3 SDK models).
//!
//! A `provider` that names itself with `name` instead of `organization`, as some live cards do,
//! gains `organization` in either version.
//!
//! The registered bytes are served unchanged when the card already is in the asked-for version,
//! when it is signed (adding members would break its JWS signatures, §8.4), and when the request
//! asks for the original.

use agent_registry_core::RegistryError;
use agent_registry_core::model::Agent;
use agent_registry_core::protocol::{DocumentFormat, Served};
use serde_json::{Map, Value, json};

use crate::fields;
use crate::translate::{CardVersion, legacy_interfaces};

/// The card a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CardRequest {
    /// The card as registered, byte for byte (`?original=true`).
    Original,
    /// A card v0.x clients read: `url`, `preferredTransport`, `type`-tagged security schemes.
    V03,
    /// A card v1.0 clients read: `supportedInterfaces`, ProtoJSON security schemes.
    V1,
}

impl CardRequest {
    /// The request named by an `A2A-Version` value (`None` when the request carries none):
    /// missing or empty is 0.3 (A2A §3.6); any `0.x` is 0.3 (v0.2 clients read v0.3 cards);
    /// any `1.x` is 1.0. Other versions are refused with a sentence saying which are served.
    pub fn from_version(value: Option<&str>) -> Result<Self, String> {
        let value = value.map(str::trim).unwrap_or_default();
        if value.is_empty() {
            return Ok(Self::V03);
        }
        match fields::major_minor(value) {
            Some((0, _)) => Ok(Self::V03),
            Some((1, _)) => Ok(Self::V1),
            _ => Err(format!(
                "asks for A2A version `{}`; cards are served in versions 0.3 and 1.0 (or as registered with \
                 `original=true`)",
                value.chars().take(32).collect::<String>()
            )),
        }
    }
}

/// The card of `agent` for a request: [`crate::card`] when the agent registered no card (that
/// card is dual-format already), else the registered card, byte for byte when it is signed, in
/// the asked-for version already, or asked for as the original; otherwise the registered card
/// with the asked-for version's members added (see the module documentation).
pub fn negotiated_card(agent: &Agent, request: CardRequest) -> Result<Served, RegistryError> {
    let Some(origin) = agent.origin_of(DocumentFormat::A2aAgentCard) else {
        return crate::card(agent);
    };
    let verbatim = || Ok(Served::Verbatim(origin.text.clone()));
    if request == CardRequest::Original {
        return verbatim();
    }
    let Ok(Value::Object(mut card)) = serde_json::from_str::<Value>(&origin.text) else { return verbatim() };
    if !fields::array(&card, "signatures").is_empty() {
        return verbatim();
    }
    let provider = add_provider_organization(&mut card);
    let changed = match request {
        CardRequest::V03 => add_v03_members(&mut card),
        CardRequest::V1 => add_v1_members(&mut card),
        CardRequest::Original => false,
    };
    let changed = changed || provider;
    if changed { Ok(Served::Built(Value::Object(card))) } else { verbatim() }
}

/// A `provider` with `name` but no `organization` (seen in live cards, protocols.md §1.6 item 7;
/// registration reads `name` as the organization) gets `organization`, which both versions
/// require of a provider; `false` when nothing was added.
fn add_provider_organization(card: &mut Map<String, Value>) -> bool {
    let Some(Value::Object(provider)) = card.get_mut("provider") else { return false };
    if fields::member(provider, "organization").is_some() {
        return false;
    }
    let Some(name) = fields::string(provider, "name").map(str::to_owned) else { return false };
    provider.insert("organization".into(), Value::from(name));
    true
}

/// Whether a card has what v0.3 clients need to connect (`url`); the v0.x SDK models fill
/// everything else they need from defaults.
fn is_v03(card: &Map<String, Value>) -> bool {
    fields::string(card, "url").is_some()
}

fn is_v1(card: &Map<String, Value>) -> bool {
    !fields::array(card, "supportedInterfaces").is_empty()
}

/// Fills in `protocolBinding` (from `transport`, else `JSONRPC`) and `protocolVersion` (`1.0`)
/// where a v1 card's interface lacks them; `false` when none did.
fn complete_v1_interfaces(card: &mut Map<String, Value>) -> bool {
    let mut changed = false;
    let Some(Value::Array(interfaces)) = card.get_mut("supportedInterfaces") else { return false };
    for interface in interfaces.iter_mut().filter_map(Value::as_object_mut) {
        if fields::string(interface, "protocolBinding").is_none() {
            let binding = fields::string(interface, "transport").unwrap_or("JSONRPC").to_owned();
            interface.insert("protocolBinding".into(), Value::from(binding));
            changed = true;
        }
        if fields::string(interface, "protocolVersion").is_none() {
            interface.insert("protocolVersion".into(), Value::from("1.0"));
            changed = true;
        }
    }
    changed
}

/// Adds the v0.3 members of a v1 card; `false` when it had them already.
fn add_v03_members(card: &mut Map<String, Value>) -> bool {
    if is_v03(card) {
        return false;
    }
    let interfaces: Vec<(String, String, String)> = fields::array(card, "supportedInterfaces")
        .iter()
        .filter_map(Value::as_object)
        .map(|i| {
            let get = |key| fields::string(i, key).unwrap_or_default().to_owned();
            let binding = fields::string(i, "protocolBinding").or_else(|| fields::string(i, "transport"));
            (get("url"), binding.unwrap_or("JSONRPC").to_owned(), get("protocolVersion"))
        })
        .filter(|(url, _, _)| !url.is_empty())
        .collect();
    // As v0.3 clients prefer `url`: the preferred interface of the 0.x ones, all when none is 0.x.
    let legacy: Vec<_> = interfaces
        .iter()
        .filter(|(_, _, v)| fields::major_minor(v).is_some_and(|(major, _)| major == 0))
        .cloned()
        .collect();
    let chosen = if legacy.is_empty() { interfaces } else { legacy };
    let Some((url, binding, version)) = chosen.first().cloned() else { return false };
    card.insert("url".into(), Value::from(url));
    card.entry("preferredTransport").or_insert_with(|| Value::from(binding));
    if !version.is_empty() {
        card.entry("protocolVersion").or_insert_with(|| Value::from(version));
    }
    if chosen.len() > 1 && !card.contains_key("additionalInterfaces") {
        let additional = chosen.iter().map(|(url, binding, _)| json!({"url": url, "transport": binding})).collect();
        card.insert("additionalInterfaces".into(), Value::Array(additional));
    }
    let extended = fields::object(card, "capabilities")
        .and_then(|c| fields::member(c, "extendedAgentCard"))
        .and_then(Value::as_bool);
    if extended == Some(true) {
        card.entry("supportsAuthenticatedExtendedCard").or_insert(Value::Bool(true));
    }
    if let Some(Value::Object(schemes)) = card.get_mut("securitySchemes") {
        schemes.values_mut().filter_map(Value::as_object_mut).for_each(add_v03_scheme);
    }
    add_legacy_requirements(card);
    if let Some(Value::Array(skills)) = card.get_mut("skills") {
        skills.iter_mut().filter_map(Value::as_object_mut).for_each(add_legacy_requirements);
    }
    true
}

/// Adds the v1 members of a v0.x card; `false` when it had them already. A v1 card whose
/// interfaces lack `protocolBinding` or `protocolVersion` (as the .NET registry wrote them, with
/// `transport`) gets them, read the way registration reads them: v1 clients index by both.
fn add_v1_members(card: &mut Map<String, Value>) -> bool {
    if is_v1(card) {
        return complete_v1_interfaces(card);
    }
    let version = CardVersion::detect(card, "").unwrap_or(CardVersion::V03);
    let mut interfaces: Vec<Value> = legacy_interfaces(card, version).into_iter().map(Value::Object).collect();
    if fields::member(card, "protocolVersion").is_none() {
        // A card that names no version is read as 0.3 by the SDKs (a2a-python 1.x's
        // `parse_agent_card`, a2a-js's v0.3 compatibility layer); v1 clients connect to 0.3
        // interfaces and to no older ones.
        for interface in interfaces.iter_mut().filter_map(Value::as_object_mut) {
            interface.insert("protocolVersion".into(), Value::from("0.3"));
        }
    }
    if interfaces.is_empty() {
        return false;
    }
    card.insert("supportedInterfaces".into(), Value::Array(interfaces));
    if fields::member(card, "supportsAuthenticatedExtendedCard").and_then(Value::as_bool) == Some(true)
        && let Some(Value::Object(capabilities)) = card.get_mut("capabilities")
    {
        capabilities.entry("extendedAgentCard").or_insert(Value::Bool(true));
    }
    if let Some(Value::Object(schemes)) = card.get_mut("securitySchemes") {
        schemes.values_mut().filter_map(Value::as_object_mut).for_each(add_v1_scheme);
    }
    add_v1_requirements(card);
    if let Some(Value::Array(skills)) = card.get_mut("skills") {
        skills.iter_mut().filter_map(Value::as_object_mut).for_each(add_v1_requirements);
    }
    true
}

/// The v1 ProtoJSON wrapper of each security scheme kind and its v0.3 `type` (protocols.md §1.4).
const SCHEME_KINDS: [(&str, &str); 5] = [
    ("apiKeySecurityScheme", "apiKey"),
    ("httpAuthSecurityScheme", "http"),
    ("oauth2SecurityScheme", "oauth2"),
    ("openIdConnectSecurityScheme", "openIdConnect"),
    ("mtlsSecurityScheme", "mutualTLS"),
];

/// A v1 scheme (`{"apiKeySecurityScheme": {location, name}}`) gets its v0.3 form beside it
/// (`type: "apiKey"`, `in`, `name`), as a2a-python 1.x serves schemes.
fn add_v03_scheme(scheme: &mut Map<String, Value>) {
    if scheme.contains_key("type") {
        return;
    }
    let Some((wrapper, kind)) = SCHEME_KINDS.iter().find(|(wrapper, _)| scheme.contains_key(*wrapper)) else {
        return;
    };
    let Some(inner) = fields::object(scheme, wrapper).cloned() else { return };
    scheme.insert("type".into(), Value::from(*kind));
    for (key, value) in inner {
        let key = if *kind == "apiKey" && key == "location" { "in".to_owned() } else { key };
        scheme.entry(key).or_insert(value);
    }
}

/// A v0.3 scheme (`{"type": "apiKey", "in", "name"}`) gets its v1 wrapper beside it. A v0.3
/// OAuth2 scheme may list several flows where v1 allows one (a oneof): the wrapper keeps the
/// first; the v0.3 form keeps them all.
fn add_v1_scheme(scheme: &mut Map<String, Value>) {
    let Some(kind) = fields::string(scheme, "type") else { return };
    let Some((wrapper, kind)) = SCHEME_KINDS.iter().find(|(_, k)| *k == kind) else { return };
    if scheme.contains_key(*wrapper) {
        return;
    }
    let mut inner = Map::new();
    for (key, value) in scheme.iter().filter(|(k, v)| *k != "type" && !v.is_null()) {
        match (*kind, key.as_str()) {
            ("apiKey", "in") => _ = inner.insert("location".into(), value.clone()),
            ("oauth2", "flows") => {
                let first = value.as_object().and_then(|f| f.iter().next()).map(|(k, v)| json!({ k: v }));
                inner.insert("flows".into(), first.unwrap_or_else(|| json!({})));
            }
            _ => _ = inner.insert(key.clone(), value.clone()),
        }
    }
    scheme.insert((*wrapper).into(), Value::Object(inner));
}

/// v1 `securityRequirements` (`[{"schemes": {"x": {"list": [...]}}}]`) as v0.3 `security`
/// (`[{"x": [...]}]`), on a card or a skill that has no `security` yet.
fn add_legacy_requirements(object: &mut Map<String, Value>) {
    if object.contains_key("security") {
        return;
    }
    let requirements = fields::array(object, "securityRequirements");
    if requirements.is_empty() {
        return;
    }
    let legacy: Vec<Value> = requirements
        .iter()
        .filter_map(|r| r.as_object().and_then(|r| fields::object(r, "schemes")))
        .map(|schemes| {
            let entries = schemes.iter().map(|(name, scopes)| {
                let list = scopes.get("list").cloned().unwrap_or_else(|| json!([]));
                (name.clone(), list)
            });
            Value::Object(entries.collect())
        })
        .collect();
    object.insert("security".into(), Value::Array(legacy));
}

/// v0.3 `security` as v1 `securityRequirements`, on a card or a skill that has none yet.
fn add_v1_requirements(object: &mut Map<String, Value>) {
    if object.contains_key("securityRequirements") {
        return;
    }
    let security = fields::array(object, "security");
    if security.is_empty() {
        return;
    }
    let requirements: Vec<Value> = security
        .iter()
        .filter_map(Value::as_object)
        .map(|r| {
            let schemes: Map<String, Value> =
                r.iter().map(|(name, scopes)| (name.clone(), json!({ "list": scopes }))).collect();
            json!({ "schemes": schemes })
        })
        .collect();
    object.insert("securityRequirements".into(), Value::Array(requirements));
}
