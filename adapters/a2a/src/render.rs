//! Serving cards: a registered agent's card, and the registry's own.

use agent_registry_core::RegistryError;
use agent_registry_core::model::{Agent, Protocol, Transport};
use agent_registry_core::protocol::{DocumentFormat, Served};
use serde_json::{Map, Value, json};

use crate::fields;
use crate::{METADATA_KEY, REGISTRY_BINDING};

/// The bindings A2A v1 defines (the field is open-form; others should be URIs, §5.8).
const CORE_BINDINGS: [&str; 3] = ["JSONRPC", "GRPC", "HTTP+JSON"];

/// Media types a built card declares when the agent's registration named none.
const DEFAULT_MODES: [&str; 1] = ["application/json"];

/// The version a built card declares for an agent registered without one (the field is required).
pub(crate) const UNKNOWN_VERSION: &str = "0.0.0";

/// The A2A card of a registered agent.
///
/// - Registered with a card: that card, byte for byte ([`Served::Verbatim`]), so its signatures
///   stay valid, its skills are never listed twice and its interface bindings are never rewritten.
/// - Otherwise, when the agent has `A2A` endpoints over `Http` or `Grpc`: a v1.0 card built from the domain
///   ([`Served::Built`]). Each such endpoint is an interface (binding, version and tenant from its
///   `protocolMetadata`, else `JSONRPC` (`GRPC` over `Grpc`) and `1.0`); each capability a skill (`id` = `name` = the
///   capability name, description falling back to the name, tags falling back to `["general"]`
///   since A2A asks for at least one); modes, provider, links and capability flags from
///   `metadata.a2a` when the agent has them. Beside the v1 fields it carries the v0.3 ones
///   (`url`, `preferredTransport`, `protocolVersion`, `additionalInterfaces`,
///   `supportsAuthenticatedExtendedCard`) as a2a-python 1.x serves hybrid cards, taken from the
///   interfaces of a 0.x version when there are some and from all of them otherwise, so that v0.3
///   and v1 clients both resolve it. The card validates against the v1 and v0.3 schemas.
/// - Otherwise `NoProtocolDocument` (404). Queue endpoints (AMQP, Azure Service Bus) have no URL
///   an A2A client can call, so they are never advertised; an agent with only those has no card.
pub fn card(agent: &Agent) -> Result<Served, RegistryError> {
    if let Some(origin) = agent.origin_of(DocumentFormat::A2aAgentCard) {
        return Ok(Served::Verbatim(origin.text.clone()));
    }
    let interfaces = interfaces(agent);
    if interfaces.is_empty() {
        return Err(RegistryError::NoProtocolDocument { agent: agent.id.to_string(), protocol: Protocol::A2A });
    }
    let empty = Map::new();
    let facts = agent.metadata.get(METADATA_KEY).and_then(Value::as_object).unwrap_or(&empty);

    let skills = skills(agent);
    let capabilities = capability_flags(facts);
    let extended = capabilities.get("extendedAgentCard").and_then(Value::as_bool).unwrap_or(false);

    let mut card = Map::new();
    card.insert("name".into(), Value::from(agent.name.as_str()));
    card.insert("description".into(), Value::from(agent.description.as_deref().unwrap_or(&agent.name)));
    card.insert("supportedInterfaces".into(), Value::Array(interfaces.iter().cloned().map(Value::Object).collect()));
    if let Some(provider) = fields::object(facts, "provider")
        && let (Some(organization), Some(url)) =
            (fields::string(provider, "organization"), fields::string(provider, "url"))
    {
        card.insert("provider".into(), json!({"organization": organization, "url": url}));
    }
    card.insert("version".into(), Value::from(agent.version.as_deref().unwrap_or(UNKNOWN_VERSION)));
    if let Some(url) = fields::string(facts, "documentationUrl") {
        card.insert("documentationUrl".into(), Value::from(url));
    }
    card.insert("capabilities".into(), Value::Object(capabilities));
    card.insert("defaultInputModes".into(), modes(facts, "defaultInputModes"));
    card.insert("defaultOutputModes".into(), modes(facts, "defaultOutputModes"));
    card.insert("skills".into(), Value::Array(skills));
    if let Some(url) = fields::string(facts, "iconUrl") {
        card.insert("iconUrl".into(), Value::from(url));
    }
    add_v03_fields(&mut card, &interfaces, extended);
    Ok(Served::Built(Value::Object(card)))
}

/// Skills built from the agent's capabilities (shared with the queued card).
pub(crate) fn skills(agent: &Agent) -> Vec<Value> {
    agent
        .capabilities
        .iter()
        .map(|capability| {
            let description = capability.description.as_deref().unwrap_or(&capability.name);
            let tags = if capability.tags.is_empty() { vec!["general".to_owned()] } else { capability.tags.clone() };
            json!({"id": capability.name, "name": capability.name, "description": description, "tags": tags})
        })
        .collect()
}

/// Whether endpoints of a transport are card interfaces: `Http` and `Grpc` ones are (A2A's
/// JSON-RPC, HTTP+JSON and gRPC bindings); queue endpoints are served as queued cards instead.
pub fn is_card_transport(transport: Transport) -> bool {
    matches!(transport, Transport::Http | Transport::Grpc)
}

/// The agent's A2A interfaces: its `Http` and `Grpc` `A2A` endpoints in order, repeats left out.
fn interfaces(agent: &Agent) -> Vec<Map<String, Value>> {
    let mut out: Vec<Map<String, Value>> = Vec::new();
    for endpoint in agent.endpoints_speaking(Protocol::A2A).filter(|e| is_card_transport(e.transport)) {
        let metadata = &endpoint.protocol_metadata;
        let present = |key| fields::string(metadata, key).map(str::trim).filter(|v| !v.is_empty());
        // `transport` is how v0.x (and the .NET registry) named the binding; only a core binding
        // is read from it, since generic clients may use the key for something else.
        let default = if endpoint.transport == Transport::Grpc { "GRPC" } else { "JSONRPC" };
        let binding = present("protocolBinding")
            .or_else(|| present("transport").filter(|t| CORE_BINDINGS.contains(t)))
            .unwrap_or(default);
        let mut interface = Map::new();
        interface.insert("url".into(), Value::from(endpoint.address.as_str()));
        interface.insert("protocolBinding".into(), Value::from(binding));
        interface.insert("protocolVersion".into(), Value::from(present("protocolVersion").unwrap_or("1.0")));
        if let Some(tenant) = fields::string(metadata, "tenant") {
            interface.insert("tenant".into(), Value::from(tenant));
        }
        if !out.contains(&interface) {
            out.push(interface);
        }
    }
    out
}

fn capability_flags(facts: &Map<String, Value>) -> Map<String, Value> {
    let mut flags = Map::new();
    let Some(known) = fields::object(facts, "capabilities") else { return flags };
    for key in ["streaming", "pushNotifications", "extendedAgentCard"] {
        if let Some(flag) = fields::member(known, key).and_then(Value::as_bool) {
            flags.insert(key.into(), Value::from(flag));
        }
    }
    let extensions: Vec<Value> = fields::strings(known, "extensions").map(|uri| json!({"uri": uri})).collect();
    if !extensions.is_empty() {
        flags.insert("extensions".into(), Value::Array(extensions));
    }
    flags
}

pub(crate) fn modes(facts: &Map<String, Value>, key: &str) -> Value {
    let modes: Vec<Value> = fields::strings(facts, key).map(Value::from).collect();
    if modes.is_empty() { json!(DEFAULT_MODES) } else { Value::Array(modes) }
}

/// The v0.3 connection fields beside the v1 ones (protocols.md §1.1 and §1.6 item 6): the
/// preferred interface of the 0.x ones (all of them when none is 0.x) as `url`,
/// `preferredTransport` and `protocolVersion`, and, when there are several, all of them as
/// `additionalInterfaces` (which v0.3 asks to repeat the main one).
fn add_v03_fields(card: &mut Map<String, Value>, interfaces: &[Map<String, Value>], extended: bool) {
    let is_legacy = |i: &&Map<String, Value>| {
        fields::string(i, "protocolVersion").and_then(fields::major_minor).is_some_and(|(major, _)| major == 0)
    };
    let mut chosen: Vec<&Map<String, Value>> = interfaces.iter().filter(is_legacy).collect();
    if chosen.is_empty() {
        chosen = interfaces.iter().collect();
    }
    let Some(first) = chosen.first() else { return };
    let field = |i: &Map<String, Value>, key| Value::from(fields::string(i, key).unwrap_or_default());
    card.insert("url".into(), field(first, "url"));
    card.insert("preferredTransport".into(), field(first, "protocolBinding"));
    card.insert("protocolVersion".into(), field(first, "protocolVersion"));
    if chosen.len() > 1 {
        let additional =
            chosen.iter().map(|i| json!({"url": field(i, "url"), "transport": field(i, "protocolBinding")})).collect();
        card.insert("additionalInterfaces".into(), Value::Array(additional));
    }
    if extended {
        card.insert("supportsAuthenticatedExtendedCard".into(), Value::Bool(true));
    }
}

/// The registry's own card, served at `/.well-known/agent-card.json` (and the v0.2 path
/// `/.well-known/agent.json`, protocols.md §1.1).
///
/// It lists what the registry really does as skills (discovery; registration and liveness;
/// protocol documents) and one interface: the registry's REST API at `base_url`, under the custom
/// binding [`crate::REGISTRY_BINDING`] (A2A §5.8). The registry is not an A2A server, so unlike
/// the .NET registry it advertises no JSON-RPC, gRPC or HTTP+JSON binding an A2A client would try
/// to call. Changes go through an API key in `X-Api-Key`; reads are public. The v0.3 fields sit
/// beside the v1 ones, so the card validates against both schemas.
pub fn registry_card(base_url: &str, version: &str) -> Value {
    let base = base_url.trim_end_matches('/');
    let api_key = json!([{"schemes": {"apiKey": {"list": []}}}]);
    let api_key_v03 = json!([{"apiKey": []}]);
    json!({
        "name": "Agent Registry",
        "description": "A registry of AI agents. Agents register with their endpoints (A2A, MCP, ACP or \
            custom; HTTP, AMQP or Azure Service Bus) and keep them alive with heartbeats or lease \
            renewals; clients discover live agents by capability, tag, protocol, transport and text. \
            It speaks a REST API (see documentationUrl), not A2A JSON-RPC.",
        "supportedInterfaces": [{"url": base, "protocolBinding": REGISTRY_BINDING, "protocolVersion": "1.0"}],
        "version": version,
        "documentationUrl": format!("{base}/docs"),
        "capabilities": {"streaming": false, "pushNotifications": false, "extendedAgentCard": false},
        "securitySchemes": {
            "apiKey": {
                "apiKeySecurityScheme": {"location": "header", "name": "X-Api-Key",
                    "description": "An API key issued by the registry; needed to register and change agents."},
                "type": "apiKey", "in": "header", "name": "X-Api-Key",
                "description": "An API key issued by the registry; needed to register and change agents."
            }
        },
        "defaultInputModes": ["application/json"],
        "defaultOutputModes": ["application/json"],
        "skills": [
            {
                "id": "agent-discovery",
                "name": "Agent discovery",
                "description": format!("Find registered agents with GET {base}/discover/agents: filter by \
                    capability (or capabilityPrefix), tag, label, protocol (A2A, MCP, ACP, Custom), \
                    transport (Http, Amqp, AzureServiceBus) and words of text (q); liveOnly chooses \
                    whether only agents with a live endpoint count. Public."),
                "tags": ["discovery", "search", "registry"],
                "examples": [
                    format!("GET {base}/discover/agents?capability=translate&protocol=A2A"),
                    format!("GET {base}/discover/agents?tag=finance&q=invoice&liveOnly=true")
                ],
                "inputModes": ["application/json"],
                "outputModes": ["application/json"]
            },
            {
                "id": "agent-registration",
                "name": "Agent registration and liveness",
                "description": format!("Register an agent with its capabilities and endpoints with POST \
                    {base}/agents, then keep it alive with POST {base}/agents/{{id}}/heartbeat (or per \
                    endpoint: {base}/agents/{{id}}/endpoints/{{endpointId}}/heartbeat and /renew); update \
                    it with PUT and remove it with DELETE {base}/agents/{{id}}. Needs an API key."),
                "tags": ["registration", "liveness", "heartbeat", "registry"],
                "examples": [format!("POST {base}/agents {{\"name\": \"translator\", \"capabilities\": \
                    [{{\"name\": \"translate\"}}], \"endpoints\": [{{\"name\": \"a2a\", \"protocol\": \
                    \"A2A\", \"address\": \"https://translator.example.com/a2a\"}}]}}")],
                "inputModes": ["application/json"],
                "outputModes": ["application/json"],
                "securityRequirements": api_key,
                "security": api_key_v03
            },
            {
                "id": "protocol-documents",
                "name": "Protocol documents",
                "description": format!("Read and register agents by their protocol documents: A2A agent \
                    cards at {base}/a2a/agents (each agent's A2A base URL is {base}/a2a/agents/{{id}}/), MCP server \
                    cards at {base}/mcp/servers and the MCP Registry API at {base}/v0.1/servers, ACP agent \
                    manifests at {base}/acp/agents. Reads are public; registering needs an API key."),
                "tags": ["a2a", "mcp", "acp", "agent-card", "registry"],
                "examples": [
                    format!("GET {base}/a2a/agents?capability=translate"),
                    format!("GET {base}/v0.1/servers")
                ],
                "inputModes": ["application/json"],
                "outputModes": ["application/json"]
            }
        ],
        "url": base,
        "preferredTransport": REGISTRY_BINDING,
        "protocolVersion": "1.0"
    })
}
