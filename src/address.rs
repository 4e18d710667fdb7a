//! The transport-address grammar: what an endpoint's address must look like for its transport
//! (an HTTP URL, an AMQP queue or exchange, an Azure Service Bus entity), and the parts a valid
//! queue address names. Addresses are public: credentials in them are refused.

use crate::model::Transport;

/// Checks that an address suits its transport, with a sentence naming the expected form when it
/// does not:
///
/// - `Http`: an `http`/`https` URL with a host.
/// - `Amqp`: a queue, `amqp[s]://host[:port]/<vhost>/<queue>`, or an exchange with a routing key,
///   `amqp[s]://host[:port]/<vhost>?exchange=<exchange>&routingKey=<key>`. The vhost is one
///   URL-encoded path segment (`%2F` for the default vhost `/`), as in RabbitMQ's AMQP URI spec;
///   names are at most 255 bytes (AMQP short strings); a routing key may be empty (fanout
///   exchanges ignore it).
/// - `AzureServiceBus`: `sb://<namespace>.servicebus.windows.net/<queue-or-topic>`, or a topic's
///   subscription `…/<topic>/subscriptions/<subscription>`; `amqps://` and `https://` name the
///   same entity. Sovereign clouds' suffixes (`servicebus.chinacloudapi.cn`,
///   `servicebus.usgovcloudapi.net`) and `localhost` (the Service Bus emulator) are hosts too.
/// - `Grpc`: a gRPC target as A2A v1 cards write it (§5.8, and `AgentInterface.url` after v1.0.1):
///   `grpc://host:port`, `grpcs://host:port`, an `http(s)://` URL, or a bare `host:port`.
///
/// Addresses are public, so credentials in them are refused.
pub fn validate_address(transport: Transport, address: &str) -> Result<(), String> {
    if transport == Transport::Grpc {
        return grpc_target(address);
    }
    let url = checked_url(transport, address)?;
    match transport {
        Transport::Http | Transport::Grpc => Ok(()),
        Transport::Amqp => amqp_parts(&url).map(drop).map_err(|e| explained(transport, e)),
        Transport::AzureServiceBus => service_bus_parts(&url).map(drop).map_err(|e| explained(transport, e)),
    }
}

/// What every transport asks of an address (a URL of one of its schemes, with a host and no
/// credentials), before its own form is checked.
fn checked_url(transport: Transport, address: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(address).map_err(|e| match transport {
        Transport::Http => format!("is not a valid URL ({e})"),
        _ => format!("is not a valid URL ({e}); {}", expected_form(transport)),
    })?;
    let schemes: &[&str] = match transport {
        Transport::Http => &["http", "https"],
        Transport::Amqp => &["amqp", "amqps"],
        Transport::AzureServiceBus => &["sb", "amqps", "https"],
        Transport::Grpc => &["grpc", "grpcs", "http", "https"],
    };
    if !schemes.contains(&url.scheme()) {
        return Err(format!(
            "a {transport} address must use one of the schemes {}; {}",
            schemes.join(", "),
            expected_form(transport)
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("must name a host; {}", expected_form(transport)));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials: addresses are public".into());
    }
    Ok(url)
}

/// A gRPC target: a URL of one of the gRPC schemes, or `host:port` without a scheme (the form
/// gRPC clients dial and A2A cards use), which must then name its port.
fn grpc_target(address: &str) -> Result<(), String> {
    if address.contains("://") {
        return checked_url(Transport::Grpc, address).map(drop);
    }
    let url = checked_url(Transport::Grpc, &format!("grpc://{address}"))?;
    if url.port().is_none() || !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        return Err(format!("is not a gRPC target; {}", expected_form(Transport::Grpc)));
    }
    Ok(())
}

/// A refusal of a queue address, with the form it should have.
fn explained(transport: Transport, refusal: String) -> String {
    format!("{refusal}; {}", expected_form(transport))
}

/// The sentence every refused queue address ends with.
fn expected_form(transport: Transport) -> &'static str {
    match transport {
        Transport::Http => "expected http(s)://host/path",
        Transport::Grpc => "expected grpc[s]://host:port, http(s)://host[:port] or host:port",
        Transport::Amqp => {
            "expected amqp[s]://host[:port]/<vhost>/<queue> (the vhost URL-encoded, %2F for the default vhost `/`) \
             or amqp[s]://host[:port]/<vhost>?exchange=<exchange>&routingKey=<key>"
        }
        Transport::AzureServiceBus => {
            "expected sb://<namespace>.servicebus.windows.net/<queue-or-topic>[/subscriptions/<subscription>] \
             (amqps:// and https:// work too)"
        }
    }
}

/// Where an AMQP address sends messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AmqpTarget {
    /// A queue, through the default exchange.
    Queue(String),
    /// An exchange, with the routing key to publish with.
    Exchange { exchange: String, routing_key: String },
}

/// A valid `Amqp` address taken apart (names decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpAddress {
    /// `amqps`.
    pub tls: bool,
    /// Lower case, as the URL parser leaves it.
    pub host: String,
    /// The port the address names, if any (AMQP's defaults are 5672, and 5671 with TLS).
    pub port: Option<u16>,
    pub vhost: String,
    /// The vhost as written in the address (URL-encoded), for building another URI on it.
    pub vhost_encoded: String,
    pub target: AmqpTarget,
}

impl AmqpAddress {
    /// Reads an `Amqp` address; the error is the sentence [`validate_address`] gives.
    pub fn parse(address: &str) -> Result<Self, String> {
        let url = checked_url(Transport::Amqp, address)?;
        amqp_parts(&url).map_err(|e| explained(Transport::Amqp, e))
    }

    /// The port connections go to: the one named, else AMQP's default for the scheme.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(if self.tls { 5671 } else { 5672 })
    }
}

/// A valid `AzureServiceBus` address taken apart (names decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceBusAddress {
    /// The namespace host, e.g. `contoso.servicebus.windows.net`.
    pub host: String,
    /// The queue or topic.
    pub entity: String,
    /// With a topic: the subscription the address names.
    pub subscription: Option<String>,
}

impl ServiceBusAddress {
    /// Reads an `AzureServiceBus` address; the error is the sentence [`validate_address`] gives.
    pub fn parse(address: &str) -> Result<Self, String> {
        let url = checked_url(Transport::AzureServiceBus, address)?;
        service_bus_parts(&url).map_err(|e| explained(Transport::AzureServiceBus, e))
    }
}

fn amqp_parts(url: &url::Url) -> Result<AmqpAddress, String> {
    if url.fragment().is_some() {
        return Err("must not have a #fragment".into());
    }
    let path = url.path().strip_prefix('/').unwrap_or(url.path());
    let segments: Vec<&str> = if path.is_empty() { Vec::new() } else { path.split('/').collect() };
    let query = url.query().filter(|q| !q.is_empty());
    let vhost_encoded = (*segments.first().ok_or("names no vhost and no queue")?).to_owned();
    let vhost = amqp_name(&vhost_encoded, "the vhost")?;
    if vhost.is_empty() {
        return Err("has an empty vhost segment (write the default vhost `/` as %2F)".into());
    }
    if segments.len() > 2 {
        return Err("has more than two path segments (write a `/` inside a vhost or queue name as %2F)".into());
    }
    let Some(query) = query else {
        let Some(queue) = segments.get(1) else {
            return Err(format!("names the vhost `{vhost}` but no queue (or exchange)"));
        };
        let queue = amqp_name(queue, "the queue name")?;
        if queue.is_empty() {
            return Err("has an empty queue name".into());
        }
        return Ok(parts(url, vhost, vhost_encoded, AmqpTarget::Queue(queue)));
    };
    if segments.len() == 2 {
        return Err("names both a queue (in its path) and parameters (in its query): an address names a queue or an \
                    exchange"
            .into());
    }
    let (mut exchange, mut routing_key) = (None, None);
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let slot = match key.as_ref() {
            "exchange" => &mut exchange,
            "routingKey" => &mut routing_key,
            other => return Err(format!("has the unknown query parameter `{other}` (only exchange and routingKey)")),
        };
        if slot.replace(value.into_owned()).is_some() {
            return Err(format!("repeats the query parameter `{key}`"));
        }
    }
    let exchange = exchange.filter(|e| !e.is_empty()).ok_or("names no exchange (`exchange=` is missing or empty)")?;
    let routing_key = routing_key.ok_or("names no routing key (`routingKey=` is missing; it may be empty)")?;
    for (what, name) in [("the exchange name", &exchange), ("the routing key", &routing_key)] {
        check_amqp_name(name, what)?;
    }
    Ok(parts(url, vhost, vhost_encoded, AmqpTarget::Exchange { exchange, routing_key }))
}

fn parts(url: &url::Url, vhost: String, vhost_encoded: String, target: AmqpTarget) -> AmqpAddress {
    AmqpAddress {
        tls: url.scheme() == "amqps",
        // Hosts of non-special schemes keep their case in the URL parser; DNS names have none.
        host: url.host_str().unwrap_or_default().to_ascii_lowercase(),
        port: url.port(),
        vhost,
        vhost_encoded,
        target,
    }
}

/// A percent-decoded path segment that is a valid AMQP name.
fn amqp_name(raw: &str, what: &str) -> Result<String, String> {
    let name = percent_decode(raw).ok_or_else(|| format!("{what} is not valid percent-encoded UTF-8"))?;
    check_amqp_name(&name, what)?;
    Ok(name)
}

/// The migration rule for the .NET registry's queue addresses: it stored an Amqp endpoint's
/// address as a bare queue name (its queued A2A cards' `taskTopic`), with the broker known only
/// to the agents. A bare name (no scheme, no `/`) is read as that queue on the default vhost `/`
/// of `broker` (`amqp[s]://host:port`, without credentials): `tasks.summarize` becomes
/// `amqp://host:5672/%2F/tasks.summarize`. `None` when `address` is not a bare queue name
/// (it is then validated as any other address).
pub fn qualify_bare_queue(address: &str, broker: &str) -> Option<String> {
    let name = address.trim();
    let bare = !name.is_empty() && !name.contains(['/', ':']) && !name.chars().any(char::is_whitespace);
    if !bare || check_amqp_name(name, "the queue name").is_err() {
        return None;
    }
    const SEGMENT: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    Some(format!("{}/%2F/{}", broker.trim_end_matches('/'), percent_encoding::utf8_percent_encode(name, SEGMENT)))
}

/// AMQP 0-9-1 names are short strings: at most 255 bytes; no control characters here.
fn check_amqp_name(name: &str, what: &str) -> Result<(), String> {
    if name.len() > 255 {
        return Err(format!("{what} is {} bytes long; AMQP allows 255", name.len()));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("{what} must not contain control characters"));
    }
    Ok(())
}

/// Decodes `%XX` escapes (a `+` stays a `+`, as in URL paths); `None` for a broken escape or
/// bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    // percent-encoding passes a broken escape through as it is; an address with one is refused.
    let broken = text
        .match_indices('%')
        .any(|(i, _)| !text.get(i + 1..i + 3).is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit())));
    if broken {
        return None;
    }
    percent_encoding::percent_decode_str(text).decode_utf8().ok().map(std::borrow::Cow::into_owned)
}

/// Host suffixes of Service Bus namespaces (public Azure, then the sovereign clouds).
const SERVICE_BUS_SUFFIXES: [&str; 3] =
    [".servicebus.windows.net", ".servicebus.chinacloudapi.cn", ".servicebus.usgovcloudapi.net"];

/// Checks a Service Bus address: a namespace host and an entity path (Azure's naming rules:
/// namespaces 6–50 letters, digits and hyphens starting with a letter; queue and topic names up
/// to 260 characters of letters, digits, `.`, `-`, `_` and `/`, each part starting and ending
/// with a letter or digit; subscriptions up to 50 such characters without `/`).
fn service_bus_parts(url: &url::Url) -> Result<ServiceBusAddress, String> {
    if url.fragment().is_some() || url.query().is_some_and(|q| !q.is_empty()) {
        return Err("must not have a query or #fragment".into());
    }
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    if host != "localhost" {
        let namespace = SERVICE_BUS_SUFFIXES
            .iter()
            .find_map(|suffix| host.strip_suffix(suffix))
            .ok_or_else(|| format!("`{host}` is not a Service Bus namespace host"))?;
        let valid = (6..=50).contains(&namespace.len())
            && namespace.starts_with(|c: char| c.is_ascii_alphabetic())
            && namespace.ends_with(|c: char| c.is_ascii_alphanumeric())
            && namespace.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !valid {
            return Err(format!(
                "`{namespace}` is not a namespace name (6 to 50 letters, digits and hyphens, starting with a letter)"
            ));
        }
    }
    let path = url.path().trim_start_matches('/');
    let path = percent_decode(path).ok_or("its path is not valid percent-encoded UTF-8")?;
    let path = path.trim_end_matches('/');
    if path.is_empty() {
        return Err("names no queue or topic in its path".into());
    }
    let segments: Vec<&str> = path.split('/').collect();
    let (entity, subscription) = match segments.as_slice() {
        [topic @ .., marker, subscription] if !topic.is_empty() && marker.eq_ignore_ascii_case("subscriptions") => {
            if subscription.len() > 50 || !entity_part(subscription) {
                return Err(format!(
                    "`{subscription}` is not a subscription name (1 to 50 letters, digits, `.`, `-` and `_`, \
                     starting and ending with a letter or digit)"
                ));
            }
            (topic, Some((*subscription).to_owned()))
        }
        all => (all, None),
    };
    let entity_chars: usize = entity.iter().map(|s| s.chars().count() + 1).sum::<usize>() - 1;
    if entity_chars > 260 || !entity.iter().all(|s| entity_part(s)) {
        return Err(format!(
            "`{}` is not a queue or topic name (up to 260 letters, digits, `.`, `-`, `_` and `/`, each part starting \
             and ending with a letter or digit)",
            entity.join("/")
        ));
    }
    Ok(ServiceBusAddress { host, entity: entity.join("/"), subscription })
}

/// One `/`-separated part of a Service Bus entity name.
fn entity_part(part: &str) -> bool {
    part.starts_with(|c: char| c.is_ascii_alphanumeric())
        && part.ends_with(|c: char| c.is_ascii_alphanumeric())
        && part.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_targets_are_urls_of_grpc_schemes_or_a_host_with_a_port() {
        for ok in [
            "grpc://agent.example:50051",
            "grpcs://agent.example",
            "https://agent.example/grpc",
            "agent.example:50051",
            "127.0.0.1:443",
            "[::1]:50051",
            "localhost:8080",
        ] {
            assert_eq!(validate_address(Transport::Grpc, ok), Ok(()), "{ok}");
        }
        for bad in [
            "agent.example",
            "agent.example:50051/path",
            "ftp://agent.example:21",
            "grpc://u:p@agent.example:1",
            "",
            ":50051",
        ] {
            assert!(validate_address(Transport::Grpc, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn amqp_addresses_name_a_vhost_and_a_queue_or_an_exchange_with_a_routing_key() {
        for ok in [
            "amqp://broker.example/%2F/tasks",
            "amqps://broker.example:5671/prod/tasks.high",
            "amqp://10.0.0.7:5672/%2f/a%2Fqueue",
            "amqp://broker.example/%2F?exchange=agents&routingKey=summarize",
            "amqp://broker.example/%2F?exchange=fanout-x&routingKey=",
        ] {
            assert_eq!(validate_address(Transport::Amqp, ok), Ok(()), "{ok}");
        }
        let queue = AmqpAddress::parse("amqp://Broker.Example:5673/%2F/a%2Fqueue").unwrap();
        assert_eq!((queue.host.as_str(), queue.port, queue.vhost.as_str()), ("broker.example", Some(5673), "/"));
        assert_eq!(queue.target, AmqpTarget::Queue("a/queue".into()));
        assert_eq!(queue.vhost_encoded, "%2F");
        let migrated = qualify_bare_queue("tasks.summarize", "amqp://broker.example:5672").unwrap();
        assert_eq!(migrated, "amqp://broker.example:5672/%2F/tasks.summarize");
        assert_eq!(AmqpAddress::parse(&migrated).unwrap().target, AmqpTarget::Queue("tasks.summarize".into()));
        for not_bare in ["amqp://b.example/%2F/q", "a/b", "", "two words"] {
            assert_eq!(qualify_bare_queue(not_bare, "amqp://b.example:5672"), None, "{not_bare}");
        }
        let exchange = AmqpAddress::parse("amqps://b.example/prod?exchange=x&routingKey=k.1").unwrap();
        assert_eq!(exchange.effective_port(), 5671);
        assert_eq!(exchange.target, AmqpTarget::Exchange { exchange: "x".into(), routing_key: "k.1".into() });

        for (bad, why) in [
            ("amqp://broker.example", "names no vhost"),
            ("amqp://broker.example/%2F", "but no queue"),
            ("amqp://broker.example//tasks", "empty vhost"),
            ("amqp://broker.example/%2F/", "empty queue name"),
            ("amqp://broker.example/a/b/c", "more than two path segments"),
            ("amqp://broker.example/%2F/q?exchange=x&routingKey=k", "both a queue"),
            ("amqp://broker.example/%2F?exchange=x", "no routing key"),
            ("amqp://broker.example/%2F?routingKey=k", "no exchange"),
            ("amqp://broker.example/%2F?exchange=x&routingKey=k&durable=1", "unknown query parameter `durable`"),
            ("amqp://broker.example/%2F?exchange=x&exchange=y&routingKey=k", "repeats"),
            ("amqp://broker.example/%2F/q%ZZ", "percent-encoded"),
            ("amqp://user:secret@broker.example/%2F/q", "credentials"),
            ("https://broker.example/%2F/q", "schemes amqp, amqps"),
            ("amqp://broker.example/%2F/q#x", "fragment"),
        ] {
            let detail = validate_address(Transport::Amqp, bad).unwrap_err();
            assert!(detail.contains(why), "{bad}: {detail}");
            if why != "credentials" {
                assert!(detail.contains("expected amqp[s]://host[:port]/<vhost>/<queue>"), "{bad}: {detail}");
            }
        }
        let long = format!("amqp://b.example/%2F/{}", "q".repeat(256));
        assert!(validate_address(Transport::Amqp, &long).unwrap_err().contains("255"));
    }

    #[test]
    fn service_bus_addresses_name_a_namespace_and_a_queue_topic_or_subscription() {
        for ok in [
            "sb://contoso-bus.servicebus.windows.net/tasks",
            "amqps://contoso-bus.servicebus.windows.net/orders/subscriptions/billing",
            "https://contoso-bus.servicebus.windows.net/region/eu/tasks",
            "sb://contoso-bus.servicebus.chinacloudapi.cn/tasks",
            "sb://localhost/tasks",
        ] {
            assert_eq!(validate_address(Transport::AzureServiceBus, ok), Ok(()), "{ok}");
        }
        let topic = ServiceBusAddress::parse("sb://contoso-bus.servicebus.windows.net/orders/subscriptions/b").unwrap();
        assert_eq!(topic.entity, "orders");
        assert_eq!(topic.subscription.as_deref(), Some("b"));
        assert_eq!(topic.host, "contoso-bus.servicebus.windows.net");

        for (bad, why) in [
            ("sb://contoso-bus.servicebus.windows.net/", "no queue or topic"),
            ("sb://broker.example/tasks", "not a Service Bus namespace host"),
            ("sb://1bus.servicebus.windows.net/tasks", "not a namespace name"),
            ("sb://contoso-bus.servicebus.windows.net/-tasks", "not a queue or topic name"),
            ("sb://contoso-bus.servicebus.windows.net/t/subscriptions/bad!", "not a subscription name"),
            ("sb://contoso-bus.servicebus.windows.net/tasks?x=1", "query"),
            ("amqp://contoso-bus.servicebus.windows.net/tasks", "schemes sb, amqps, https"),
            ("sb://key:secret@contoso-bus.servicebus.windows.net/tasks", "credentials"),
        ] {
            let detail = validate_address(Transport::AzureServiceBus, bad).unwrap_err();
            assert!(detail.contains(why), "{bad}: {detail}");
        }
        let long = format!("sb://contoso-bus.servicebus.windows.net/{}", "q".repeat(261));
        assert!(validate_address(Transport::AzureServiceBus, &long).is_err());
    }
}
