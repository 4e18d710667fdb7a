//! Queued A2A cards: A2A over a message broker (RabbitMQ or Azure Service Bus), in the shape the
//! .NET agent registry serves at `/a2a/async/agents` (its `QueuedAgentCard`, reference §5.4).
//!
//! A queued card is an A2A card without interfaces: `name`, `description`, `version`, `skills`,
//! `defaultInputModes`, `defaultOutputModes` and a `queueEndpoint`
//! `{technology, host?, port?, virtualHost?, exchange?, taskTopic, responseTopic?, namespace?,
//! entityPath?}` that says where tasks are sent. Unlike the .NET registry, an unknown technology
//! is refused (it read every unknown name as AMQP), and the endpoint's address is a real broker
//! address (`amqp://host:port/<vhost>/<taskTopic>`), not the bare topic name.
//!
//! One file on purpose (about 600 lines): the queued card's reading, building and address rules
//! are one format, and its tests sit beside them.

use agent_registry_core::RegistryError;
use agent_registry_core::address::{AmqpAddress, AmqpTarget, ServiceBusAddress, validate_address};
use agent_registry_core::input::{AgentInput, EndpointInput, limits};
use agent_registry_core::model::{Agent, Protocol, Transport};
use agent_registry_core::protocol::{DocumentFormat, ProtocolDocument, Served, Translation};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value, json};

use crate::fields::{self, Problems};
use crate::{METADATA_KEY, render, schemas, translate};

/// The version `registeredWith` reports for a queued card: the .NET shape, with A2A v1.0 skills.
pub const QUEUED_CARD_VERSION: &str = "1.0";

/// The key of an endpoint's `protocolMetadata` that keeps the card's `queueEndpoint` object.
pub const QUEUE_ENDPOINT_KEY: &str = "queueEndpoint";

/// The technology names a queued card may use, by transport (matched ignoring case).
const AMQP_NAMES: [&str; 2] = ["rabbitmq", "amqp"];
const SERVICE_BUS_NAMES: [&str; 3] = ["azure-service-bus", "servicebus", "asb"];

/// The transport a `queueEndpoint.technology` names: `rabbitmq`/`amqp` → `Amqp`,
/// `azure-service-bus`/`servicebus`/`asb` → `AzureServiceBus`, ignoring case; anything else
/// names none.
pub fn technology(name: &str) -> Option<Transport> {
    let name = name.trim();
    if AMQP_NAMES.iter().any(|n| n.eq_ignore_ascii_case(name)) {
        Some(Transport::Amqp)
    } else if SERVICE_BUS_NAMES.iter().any(|n| n.eq_ignore_ascii_case(name)) {
        Some(Transport::AzureServiceBus)
    } else {
        None
    }
}

/// The canonical technology name of a queue transport (what a card built from the domain says).
fn technology_name(transport: Transport) -> &'static str {
    match transport {
        Transport::AzureServiceBus => "azure-service-bus",
        _ => "rabbitmq",
    }
}

/// Reads a submitted queued A2A card into a registration.
///
/// `text` is the card exactly as submitted: it becomes the origin document, served back byte for
/// byte. `base` is the card's pointer in the request body (`""` bare, `/card` wrapped).
///
/// Checks, each at its pointer under `base`:
/// - every skill against the A2A v1.0 `AgentSkill` schema (422 `schema_violation`);
/// - then, as 400 `validation_failed`: `name`, `description`, `version` present and within the
///   registry's limits; `skills` a list with unique ids; `defaultInputModes` and
///   `defaultOutputModes` lists of media types; `queueEndpoint` an object whose `technology` is
///   one of the names [`technology`] knows, whose `taskTopic` is a non-empty string, whose other
///   members have their types (`port` 1–65535), with a `host` for RabbitMQ and a `namespace` (or
///   `host`) for Service Bus; and the broker address built from it valid for its transport.
///
/// The registration: name, description and version from the card; each skill a capability
/// (named by skill `id`, as [`crate::translate`] does); one endpoint `async-<technology>`
/// (`async-rabbitmq`, `async-azure-service-bus`) speaking A2A over the technology's transport,
/// whose address is built from the queue endpoint:
/// - RabbitMQ without `exchange`: the queue `taskTopic` in `virtualHost` (default `/`):
///   `amqp://host[:port]/<vhost>/<taskTopic>`;
/// - RabbitMQ with `exchange`: `amqp://host[:port]/<vhost>?exchange=<exchange>&routingKey=<taskTopic>`;
/// - port 5671 (AMQP over TLS) makes the scheme `amqps`;
/// - Service Bus: `sb://<namespace>/<taskTopic>`, a namespace without a dot being completed with
///   `.servicebus.windows.net`.
///
/// The endpoint's `protocolMetadata` is `{"queueEndpoint": <the object as submitted>}`, so
/// `responseTopic`, `entityPath` and any other member reach consumers through discovery. The
/// card's modes go to `metadata.a2a` as for A2A cards. Endpoint liveness, owner and
/// `agent.origin` are left to the caller, as with [`crate::translate`].
pub fn translate_queued(text: &str, base: &str) -> Result<Translation, RegistryError> {
    let document: Value =
        serde_json::from_str(text).map_err(|e| RegistryError::field(base, format!("is not valid JSON ({e})")))?;
    let Value::Object(card) = &document else {
        return Err(RegistryError::field(base, "must be a JSON object: a queued A2A agent card"));
    };
    check_skills_schema(card, base)?;

    let mut problems = Problems::default();
    for key in ["name", "description", "version"] {
        if fields::member(card, key).is_some_and(|v| !v.is_string()) {
            problems.fail(format!("{base}/{key}"), "must be a string");
        }
    }
    let name = problems.required_text(&format!("{base}/name"), fields::string(card, "name"), limits::NAME_CHARS);
    let description = required_member(card, base, "description", &mut problems).and_then(|_| {
        problems.optional_text(
            &format!("{base}/description"),
            fields::string(card, "description"),
            limits::DESCRIPTION_CHARS,
            true,
        )
    });
    let version = required_member(card, base, "version", &mut problems).map(|_| {
        problems.required_text(&format!("{base}/version"), fields::string(card, "version"), limits::VERSION_CHARS)
    });
    if fields::member(card, "skills").is_none_or(|s| !s.is_array()) {
        problems.fail(format!("{base}/skills"), "is required: a list of A2A skills (it may be empty)");
    }
    let capabilities = translate::capabilities(card, base, &mut problems);
    let mut facts = Map::new();
    for key in ["defaultInputModes", "defaultOutputModes"] {
        match fields::member(card, key).and_then(Value::as_array) {
            Some(modes) if modes.iter().all(Value::is_string) => {
                facts.insert(key.to_owned(), Value::Array(modes.clone()));
            }
            _ => problems
                .fail(format!("{base}/{key}"), "is required: a list of media types, e.g. [\"application/json\"]"),
        }
    }
    let endpoint = queue_endpoint(card, base, &mut problems);
    let mut metadata = Map::new();
    metadata.insert(METADATA_KEY.to_owned(), Value::Object(facts));
    let agent = AgentInput {
        name: Some(name),
        description,
        version,
        capabilities: Some(capabilities),
        endpoints: Some(endpoint.into_iter().collect()),
        metadata: Some(metadata),
        ..AgentInput::default()
    };
    let agent = problems.finish(agent)?;
    let origin = ProtocolDocument {
        format: DocumentFormat::A2aQueuedCard,
        version: QUEUED_CARD_VERSION.to_owned(),
        text: text.to_owned(),
        signature_verified: None,
    };
    Ok(Translation { agent, origin })
}

/// Fails when a member the .NET shape requires is absent; `Some(())` when present.
fn required_member(card: &Map<String, Value>, base: &str, key: &str, problems: &mut Problems) -> Option<()> {
    if fields::member(card, key).is_some() {
        return Some(());
    }
    problems.fail(format!("{base}/{key}"), "is required");
    None
}

/// Each skill against A2A v1.0's `AgentSkill` (422 with pointers), nulls read as absent.
fn check_skills_schema(card: &Map<String, Value>, base: &str) -> Result<(), RegistryError> {
    let schema = schemas::skill()?;
    let errors: Vec<_> = fields::array(card, "skills")
        .iter()
        .enumerate()
        .flat_map(|(i, skill)| {
            let skill = match skill {
                Value::Object(object) => Value::Object(translate::without_null_members(object)),
                other => other.clone(),
            };
            schema.violations(&skill, &format!("{base}/skills/{i}"))
        })
        .collect();
    if errors.is_empty() { Ok(()) } else { Err(RegistryError::SchemaViolation(errors)) }
}

/// The card's `queueEndpoint` as the registry's endpoint, or `None` with the problems noted.
fn queue_endpoint(card: &Map<String, Value>, base: &str, problems: &mut Problems) -> Option<EndpointInput> {
    let p = format!("{base}/{QUEUE_ENDPOINT_KEY}");
    let Some(queue) = fields::object(card, QUEUE_ENDPOINT_KEY) else {
        problems.fail(
            p,
            "is required: an object naming the broker (`technology`, `host` or `namespace`) and the `taskTopic` \
             tasks are sent to",
        );
        return None;
    };
    let transport = match fields::member(queue, "technology") {
        None => {
            problems.fail(
                format!("{p}/technology"),
                "is required: `rabbitmq` (or `amqp`) or `azure-service-bus` (or `servicebus`, `asb`)",
            );
            None
        }
        Some(Value::String(name)) => {
            let transport = technology(name);
            if transport.is_none() {
                problems.fail(
                    format!("{p}/technology"),
                    format!(
                        "`{name}` is not a known broker technology: use `rabbitmq` (or `amqp`) or \
                         `azure-service-bus` (or `servicebus`, `asb`)"
                    ),
                );
            }
            transport
        }
        Some(_) => {
            problems.fail(format!("{p}/technology"), "must be a string");
            None
        }
    };
    let mut text = |key: &str| match fields::member(queue, key) {
        None => None,
        Some(Value::String(value)) => Some(value.trim().to_owned()),
        Some(_) => {
            problems.fail(format!("{p}/{key}"), "must be a string");
            None
        }
    };
    let task_topic = text("taskTopic");
    let host = text("host");
    let vhost = text("virtualHost");
    let exchange = text("exchange").filter(|e| !e.is_empty());
    let namespace = text("namespace");
    for key in ["responseTopic", "entityPath"] {
        text(key);
    }
    let port = match fields::member(queue, "port") {
        None => None,
        Some(value) => match value.as_u64().and_then(|n| u16::try_from(n).ok()).filter(|n| *n > 0) {
            Some(port) => Some(port),
            None => {
                problems.fail(format!("{p}/port"), "must be a whole number from 1 to 65535");
                None
            }
        },
    };
    let task_topic = match task_topic {
        Some(topic) if !topic.is_empty() => topic,
        _ => {
            problems.fail(
                format!("{p}/taskTopic"),
                "is required: the queue (or routing key, or Service Bus queue or topic) tasks are sent to",
            );
            return None;
        }
    };
    let transport = transport?;
    let address = match transport {
        Transport::AzureServiceBus => {
            let Some(namespace) = namespace.filter(|n| !n.is_empty()).or(host.filter(|h| !h.is_empty())) else {
                problems.fail(
                    format!("{p}/namespace"),
                    "is required for Azure Service Bus: the namespace, e.g. `contoso` or \
                     `contoso.servicebus.windows.net`",
                );
                return None;
            };
            let namespace_host = if namespace.contains('.') {
                namespace.to_ascii_lowercase()
            } else {
                format!("{}.servicebus.windows.net", namespace.to_ascii_lowercase())
            };
            format!("sb://{namespace_host}/{}", encode_path(&task_topic, true))
        }
        _ => {
            let Some(host) = host.filter(|h| !h.is_empty()) else {
                problems.fail(format!("{p}/host"), "is required for RabbitMQ: the broker's host name or address");
                return None;
            };
            if !host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']')) {
                problems.fail(format!("{p}/host"), "must be a host name or IP address (without scheme or path)");
                return None;
            }
            let host = if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host };
            let scheme = if port == Some(5671) { "amqps" } else { "amqp" };
            let authority = port.map_or_else(|| host.clone(), |port| format!("{host}:{port}"));
            let vhost = encode_path(vhost.as_deref().filter(|v| !v.is_empty()).unwrap_or("/"), false);
            match exchange {
                Some(exchange) => format!(
                    "{scheme}://{authority}/{vhost}?exchange={}&routingKey={}",
                    encode_path(&exchange, false),
                    encode_path(&task_topic, false)
                ),
                None => format!("{scheme}://{authority}/{vhost}/{}", encode_path(&task_topic, false)),
            }
        }
    };
    if let Err(detail) = validate_address(transport, &address) {
        problems.fail(p, format!("does not make a valid {transport} address: `{address}` {detail}"));
        return None;
    }
    let mut metadata = Map::new();
    metadata.insert(QUEUE_ENDPOINT_KEY.to_owned(), Value::Object(queue.clone()));
    Some(EndpointInput {
        name: Some(format!("async-{}", technology_name(transport))),
        transport: Some(transport),
        protocol: Some(Protocol::A2A),
        address: Some(address),
        protocol_metadata: Some(Value::Object(metadata)),
        ..EndpointInput::default()
    })
}

/// Percent-encodes a name for a URL path segment or query value (everything but RFC 3986's
/// unreserved characters; `/` too, unless `keep_slashes`, as Service Bus entity paths use it).
fn encode_path(text: &str, keep_slashes: bool) -> String {
    const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    const WITH_SLASHES: &AsciiSet = &UNRESERVED.remove(b'/');
    utf8_percent_encode(text, if keep_slashes { WITH_SLASHES } else { UNRESERVED }).to_string()
}

/// The queued A2A card of an agent.
///
/// - Registered with a queued card: that card, byte for byte ([`Served::Verbatim`]).
/// - Otherwise, when the agent has `A2A` endpoints over a queue transport (`Amqp`,
///   `AzureServiceBus`): a card built from the domain ([`Served::Built`]) with the agent's `id`,
///   `name`, `description` (else the name), `version` (else `0.0.0`), skills from capabilities
///   (as [`crate::card`] builds them), modes from `metadata.a2a` (else `["application/json"]`)
///   and the first such endpoint's `queueEndpoint`: the one its `protocolMetadata` keeps, else
///   one read from its address (`rabbitmq` with `host`, `port`, `virtualHost`, `exchange` and
///   `taskTopic`; `azure-service-bus` with `namespace`, `taskTopic` and `entityPath`).
/// - Otherwise `NoProtocolDocument` (404): an agent reachable only over HTTP or gRPC has no queued
///   card.
pub fn queued_card(agent: &Agent) -> Result<Served, RegistryError> {
    if let Some(origin) = agent.origin_of(DocumentFormat::A2aQueuedCard) {
        return Ok(Served::Verbatim(origin.text.clone()));
    }
    let Some(endpoint) =
        agent.endpoints_speaking(Protocol::A2A).find(|e| !crate::render::is_card_transport(e.transport))
    else {
        return Err(RegistryError::NoProtocolDocument { agent: agent.id.to_string(), protocol: Protocol::A2A });
    };
    let queue = match fields::object(&endpoint.protocol_metadata, QUEUE_ENDPOINT_KEY) {
        Some(kept) => Value::Object(kept.clone()),
        None => queue_endpoint_of(endpoint.transport, &endpoint.address),
    };
    let empty = Map::new();
    let facts = agent.metadata.get(METADATA_KEY).and_then(Value::as_object).unwrap_or(&empty);
    Ok(Served::Built(json!({
        "id": agent.id.to_string(),
        "name": agent.name,
        "description": agent.description.as_deref().unwrap_or(&agent.name),
        "version": agent.version.as_deref().unwrap_or(render::UNKNOWN_VERSION),
        "skills": render::skills(agent),
        "defaultInputModes": render::modes(facts, "defaultInputModes"),
        "defaultOutputModes": render::modes(facts, "defaultOutputModes"),
        "queueEndpoint": queue,
    })))
}

/// A `queueEndpoint` read back from an endpoint's address. Addresses stored before they were
/// validated per transport may not parse; they give `{technology, taskTopic: <address>}`, as the
/// .NET registry wrote them.
fn queue_endpoint_of(transport: Transport, address: &str) -> Value {
    let technology = technology_name(transport);
    match transport {
        Transport::Amqp => match AmqpAddress::parse(address) {
            Ok(parsed) => {
                let mut queue = Map::new();
                queue.insert("technology".into(), Value::from(technology));
                queue.insert("host".into(), Value::from(parsed.host.as_str()));
                if let Some(port) = parsed.port {
                    queue.insert("port".into(), Value::from(port));
                }
                queue.insert("virtualHost".into(), Value::from(parsed.vhost.as_str()));
                match parsed.target {
                    AmqpTarget::Queue(name) => {
                        queue.insert("taskTopic".into(), Value::from(name));
                    }
                    AmqpTarget::Exchange { exchange, routing_key } => {
                        queue.insert("exchange".into(), Value::from(exchange));
                        queue.insert("taskTopic".into(), Value::from(routing_key));
                    }
                }
                Value::Object(queue)
            }
            Err(_) => json!({"technology": technology, "taskTopic": address}),
        },
        _ => match ServiceBusAddress::parse(address) {
            Ok(parsed) => {
                let path = match &parsed.subscription {
                    Some(subscription) => format!("{}/subscriptions/{subscription}", parsed.entity),
                    None => parsed.entity.clone(),
                };
                json!({"technology": technology, "namespace": parsed.host, "taskTopic": parsed.entity,
                       "entityPath": path})
            }
            Err(_) => json!({"technology": technology, "taskTopic": address}),
        },
    }
}

#[cfg(test)]
mod tests {
    use agent_registry_core::input::CapabilityInput;
    use agent_registry_core::liveness::LivenessPolicy;
    use agent_registry_core::model::AgentId;

    use super::*;

    fn rabbit_card(queue: Value) -> String {
        json!({
            "name": "Invoice reader",
            "description": "Reads invoices from a queue.",
            "version": "2.1.0",
            "skills": [{"id": "read-invoice", "name": "Read invoice", "description": "Extracts totals.",
                        "tags": ["finance", "ocr"], "examples": ["read this"]}],
            "defaultInputModes": ["application/pdf"],
            "defaultOutputModes": ["application/json"],
            "queueEndpoint": queue
        })
        .to_string()
    }

    /// The agent core would store for a translation (fresh ids), through core's validation.
    fn stored(input: &AgentInput) -> Agent {
        let (spec, owner, endpoints) =
            input.to_registration(&LivenessPolicy::default(), chrono::Utc::now()).expect("core accepts it");
        Agent {
            revision: 1,
            ..spec.to_agent(
                AgentId::generate(),
                owner.unwrap_or_else(|| "test-owner".into()),
                endpoints,
                chrono::Utc::now(),
            )
        }
    }

    fn registered(text: &str) -> Agent {
        let translation = translate_queued(text, "").expect("the card translates");
        let mut input = translation.agent;
        input.origin = Some(translation.origin);
        stored(&input)
    }

    fn pointers(error: &RegistryError) -> Vec<String> {
        error.fields().into_iter().map(|e| e.pointer).collect()
    }

    #[test]
    fn technologies_are_read_ignoring_case_and_unknown_ones_name_no_transport() {
        assert_eq!(technology("RabbitMQ"), Some(Transport::Amqp));
        assert_eq!(technology("amqp"), Some(Transport::Amqp));
        assert_eq!(technology(" Azure-Service-Bus "), Some(Transport::AzureServiceBus));
        assert_eq!(technology("ASB"), Some(Transport::AzureServiceBus));
        assert_eq!(technology("servicebus"), Some(Transport::AzureServiceBus));
        assert_eq!(technology("kafka"), None);
        assert_eq!(technology(""), None);
    }

    #[test]
    fn a_rabbitmq_card_makes_one_queue_endpoint_with_a_real_broker_address() {
        let queue = json!({"technology": "rabbitmq", "host": "mq.example", "port": 5672, "virtualHost": "/",
                           "taskTopic": "invoices.in", "responseTopic": "invoices.out", "x-extra": 1});
        let text = rabbit_card(queue.clone());
        let agent = registered(&text);
        let [endpoint] = agent.endpoints.as_slice() else { panic!("one endpoint: {:?}", agent.endpoints) };
        assert_eq!(endpoint.name, "async-rabbitmq");
        assert_eq!((endpoint.transport, endpoint.protocol), (Transport::Amqp, Protocol::A2A));
        assert_eq!(endpoint.address, "amqp://mq.example:5672/%2F/invoices.in");
        assert_eq!(endpoint.protocol_metadata[QUEUE_ENDPOINT_KEY], queue);
        assert_eq!(agent.capabilities[0].name, "read-invoice");
        assert_eq!(agent.capabilities[0].tags, ["finance", "ocr"]);
        assert_eq!(agent.version.as_deref(), Some("2.1.0"));
        assert_eq!(queued_card(&agent).unwrap(), Served::Verbatim(text));
        // The A2A card route never makes up an interface for a queue.
        assert!(matches!(crate::card(&agent), Err(RegistryError::NoProtocolDocument { .. })));
    }

    #[test]
    fn exchanges_tls_vhosts_and_service_bus_namespaces_shape_the_address() {
        let address = |queue: Value| registered(&rabbit_card(queue)).endpoints[0].address.clone();
        assert_eq!(
            address(json!({"technology": "AMQP", "host": "mq.example", "virtualHost": "prod/eu",
                           "exchange": "agents", "taskTopic": "invoice.read"})),
            "amqp://mq.example/prod%2Feu?exchange=agents&routingKey=invoice.read"
        );
        assert_eq!(
            address(json!({"technology": "rabbitmq", "host": "mq.example", "port": 5671, "taskTopic": "a b"})),
            "amqps://mq.example:5671/%2F/a%20b"
        );
        assert_eq!(
            address(json!({"technology": "azure-service-bus", "namespace": "contoso-bus", "taskTopic": "tasks",
                           "entityPath": "tasks"})),
            "sb://contoso-bus.servicebus.windows.net/tasks"
        );
        let agent = registered(&rabbit_card(
            json!({"technology": "asb", "namespace": "contoso-bus.servicebus.windows.net", "taskTopic": "eu/tasks"}),
        ));
        assert_eq!(agent.endpoints[0].address, "sb://contoso-bus.servicebus.windows.net/eu/tasks");
        assert_eq!(agent.endpoints[0].name, "async-azure-service-bus");
        assert_eq!(agent.endpoints[0].transport, Transport::AzureServiceBus);
    }

    #[test]
    fn an_unknown_technology_is_refused_at_its_pointer_not_read_as_amqp() {
        let error =
            translate_queued(&rabbit_card(json!({"technology": "kafka", "host": "k", "taskTopic": "t"})), "/card")
                .unwrap_err();
        assert_eq!(error.code(), "validation_failed");
        assert_eq!(pointers(&error), ["/card/queueEndpoint/technology"]);
        assert!(error.to_string().contains("`kafka` is not a known broker technology"), "{error}");
    }

    #[test]
    fn missing_and_mistyped_members_are_400_at_their_pointers() {
        let error = translate_queued(&json!({"name": 3, "skills": {}}).to_string(), "").unwrap_err();
        let mut found = pointers(&error);
        found.sort();
        found.dedup();
        assert_eq!(
            found,
            [
                "/defaultInputModes",
                "/defaultOutputModes",
                "/description",
                "/name",
                "/queueEndpoint",
                "/skills",
                "/version"
            ]
        );
        for (queue, pointer) in [
            (json!({"technology": "rabbitmq", "host": "mq.example"}), "/queueEndpoint/taskTopic"),
            (json!({"technology": "rabbitmq", "host": "mq.example", "taskTopic": " "}), "/queueEndpoint/taskTopic"),
            (json!({"technology": "rabbitmq", "taskTopic": "t"}), "/queueEndpoint/host"),
            (json!({"technology": "rabbitmq", "host": "amqp://mq", "taskTopic": "t"}), "/queueEndpoint/host"),
            (json!({"technology": "rabbitmq", "host": "mq", "port": 70000, "taskTopic": "t"}), "/queueEndpoint/port"),
            (json!({"technology": "asb", "taskTopic": "t"}), "/queueEndpoint/namespace"),
            (json!({"technology": "asb", "namespace": "x", "taskTopic": "t"}), "/queueEndpoint"),
            (json!({"taskTopic": "t", "host": "mq"}), "/queueEndpoint/technology"),
            (json!({"technology": 1, "taskTopic": "t", "host": "mq"}), "/queueEndpoint/technology"),
            (
                json!({"technology": "rabbitmq", "host": "mq", "taskTopic": "t", "exchange": 5}),
                "/queueEndpoint/exchange",
            ),
        ] {
            let error = translate_queued(&rabbit_card(queue.clone()), "").unwrap_err();
            assert_eq!(pointers(&error), [pointer], "{queue}: {error}");
        }
    }

    #[test]
    fn skills_are_checked_against_the_a2a_skill_schema() {
        let mut card: Value = serde_json::from_str(&rabbit_card(
            json!({"technology": "rabbitmq", "host": "mq.example", "taskTopic": "t"}),
        ))
        .unwrap();
        card["skills"][0]["tags"] = json!("finance");
        let error = translate_queued(&card.to_string(), "/card").unwrap_err();
        assert_eq!(error.code(), "schema_violation");
        assert_eq!(pointers(&error), ["/card/skills/0/tags"]);
        card["skills"] = json!([{"id": "a", "name": "A", "description": "d", "tags": []},
                                {"id": "A", "name": "A", "description": "d", "tags": []}]);
        let error = translate_queued(&card.to_string(), "").unwrap_err();
        assert_eq!(pointers(&error), ["/skills/1/id"]);
    }

    #[test]
    fn a_generic_agent_with_queue_endpoints_gets_a_card_built_from_its_address() {
        let endpoint = |name: &str, transport, protocol, address: &str| EndpointInput {
            name: Some(name.into()),
            transport: Some(transport),
            protocol: Some(protocol),
            address: Some(address.into()),
            ..EndpointInput::default()
        };
        let agent = stored(&AgentInput {
            name: Some("Worker".into()),
            capabilities: Some(vec![CapabilityInput { name: Some("resize".into()), ..CapabilityInput::default() }]),
            endpoints: Some(vec![
                endpoint("http", Transport::Http, Protocol::A2A, "https://worker.example/a2a"),
                endpoint("mcp-queue", Transport::Amqp, Protocol::MCP, "amqp://mq.example/%2F/mcp"),
                endpoint(
                    "q",
                    Transport::Amqp,
                    Protocol::A2A,
                    "amqp://mq.example:5673/prod?exchange=x&routingKey=resize",
                ),
            ]),
            ..AgentInput::default()
        });
        let Served::Built(card) = queued_card(&agent).unwrap() else { panic!("a built card") };
        assert_eq!(
            card["queueEndpoint"],
            json!({"technology": "rabbitmq", "host": "mq.example", "port": 5673, "virtualHost": "prod",
                   "exchange": "x", "taskTopic": "resize"})
        );
        assert_eq!(card["id"], agent.id.to_string());
        assert_eq!(card["description"], "Worker");
        assert_eq!(card["version"], "0.0.0");
        assert_eq!(card["skills"][0]["id"], "resize");
        assert_eq!(card["defaultInputModes"], json!(["application/json"]));

        let bus = stored(&AgentInput {
            name: Some("Bus worker".into()),
            endpoints: Some(vec![endpoint(
                "q",
                Transport::AzureServiceBus,
                Protocol::A2A,
                "sb://contoso-bus.servicebus.windows.net/orders/subscriptions/billing",
            )]),
            ..AgentInput::default()
        });
        let Served::Built(card) = queued_card(&bus).unwrap() else { panic!("a built card") };
        assert_eq!(
            card["queueEndpoint"],
            json!({"technology": "azure-service-bus", "namespace": "contoso-bus.servicebus.windows.net",
                   "taskTopic": "orders", "entityPath": "orders/subscriptions/billing"})
        );

        let http_only = stored(&AgentInput {
            name: Some("Http".into()),
            endpoints: Some(vec![endpoint("http", Transport::Http, Protocol::A2A, "https://h.example/a2a")]),
            ..AgentInput::default()
        });
        assert!(matches!(queued_card(&http_only), Err(RegistryError::NoProtocolDocument { .. })));
    }

    #[test]
    fn the_queue_endpoint_a_card_registered_is_served_after_a_generic_change() {
        let queue = json!({"technology": "rabbitmq", "host": "mq.example", "taskTopic": "t", "responseTopic": "r"});
        let mut agent = registered(&rabbit_card(queue.clone()));
        agent.origin = None;
        let Served::Built(card) = queued_card(&agent).unwrap() else { panic!("a built card") };
        assert_eq!(card["queueEndpoint"], queue);
        assert_eq!(card["defaultInputModes"], json!(["application/pdf"]));
        assert_eq!(card["skills"][0]["id"], "read-invoice");
    }
}
