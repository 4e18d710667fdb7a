//! The OpenAPI document as clients and code generators need it: what the route annotations
//! cannot say once for all routes is added here, after generation. Every response gets a
//! description; errors are `application/problem+json`; the answers every route may give (a bad
//! request, a missing or refused credential, a body too large or of the wrong type, a rate
//! limit, an outage with `Retry-After`) are listed where they apply; operation ids are unique;
//! ids are UUIDs; the credentials (an API key, a bearer JWT, the bootstrap token) are declared;
//! `/mcp`, `/metrics` and the aliases are described beside the annotated routes.

use serde_json::{Map, Value, json};

/// Methods of an OpenAPI path item that are operations.
const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// Routes that answer without the rate limits and credentials of the API (probes).
const PROBES: [&str; 2] = ["/healthz", "/readyz"];

/// The route whose credential is the bootstrap token.
const BOOTSTRAP: &str = "/api-keys/bootstrap";

/// Routes served by the same handler as a documented one (`(alias, documented)`), listed so that
/// clients that use them find them.
const ALIASES: [(&str, &str); 6] = [
    ("/.well-known/agent.json", "/.well-known/agent-card.json"),
    ("/a2a/agents/{id}/.well-known/agent-card.json", "/a2a/agents/{id}"),
    ("/a2a/agents/{id}/.well-known/agent.json", "/a2a/agents/{id}"),
    ("/v0/servers", "/v0.1/servers"),
    ("/v0/servers/{name}/versions", "/v0.1/servers/{name}/versions"),
    ("/v0/servers/{name}/versions/{version}", "/v0.1/servers/{name}/versions/{version}"),
];

/// The finished document, as served at `/openapi.json`; `metrics` when `/metrics` is served on
/// the same listener.
pub fn finish(api: &utoipa::openapi::OpenApi, metrics: bool) -> Value {
    let mut doc = serde_json::to_value(api).unwrap_or_else(|_| json!({}));
    doc["info"]["license"] = json!({"name": "Apache-2.0", "identifier": "Apache-2.0"});
    doc["info"]["version"] = json!(env!("CARGO_PKG_VERSION"));
    add_components(&mut doc);
    add_routes_outside_the_annotations(&mut doc, metrics);
    constrain_bodies(&mut doc);
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else { continue };
            for (method, operation) in item.iter_mut().filter(|(m, _)| METHODS.contains(&m.as_str())) {
                finish_operation(path, method, operation);
            }
        }
    }
    unique_operation_ids(&mut doc);
    doc
}

/// The shared responses and the credentials (indexing a missing field of a JSON object makes it).
fn add_components(doc: &mut Value) {
    let problem = |description: &str| {
        json!({"description": description,
               "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}})
    };
    let retry_after = json!({"Retry-After": {"description": "Seconds to wait before trying again.",
                                             "schema": {"type": "integer", "minimum": 0}}});
    let mut rate_limited = problem("Over a rate limit (`rate_limited`): come back after `Retry-After` seconds.");
    rate_limited["headers"] = retry_after.clone();
    let mut unavailable = problem(
        "A backend (database, cache, broker) is unavailable or did not answer in time, or the service is \
         starting or stopping (`storage_unavailable`, `liveness_unavailable`, `not_ready`, ...): retry after \
         `Retry-After` seconds.",
    );
    unavailable["headers"] = retry_after;
    for (name, response) in [
        (
            "BadRequest",
            problem("The request is invalid (`validation_failed`, ...): `errors[]` names each field at fault."),
        ),
        ("Unauthenticated", problem("No credential, or an unknown, revoked or expired one (`unauthenticated`).")),
        ("Forbidden", problem("The credential may not do this (`forbidden`, `not_owner`, ...).")),
        ("PayloadTooLarge", problem("The body is larger than the registry accepts (`payload_too_large`).")),
        ("UnsupportedMediaType", problem("The body is not `application/json` (`unsupported_media_type`).")),
        ("NotFound", problem("Nothing of that id, or no live agent that can take the task (`agent_not_found`, ...).")),
        ("RateLimited", rate_limited),
        ("Unavailable", unavailable),
    ] {
        doc["components"]["responses"][name] = response;
    }
    let schemes = &mut doc["components"]["securitySchemes"];
    schemes["bearer"] = json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                               "description": "A JWT from the configured issuer (see docs/security.md)"});
    schemes["bootstrap_token"] = json!({"type": "apiKey", "in": "header", "name": "X-Bootstrap-Token",
        "description": "The --bootstrap-token secret, which issues the first Admin key once"});
    schemes["api_key"]["description"] = json!("An API key of the registry (`agent-registry keys issue`)");
}

/// Routes that register a protocol's own document (checked against that protocol's schema, so
/// any JSON object is worth sending), with what the body holds.
const DOCUMENT_ROUTES: [(&str, &str); 4] = [
    (
        "/a2a/agents",
        "An A2A agent card (v1.0, v0.3 or v0.2), bare or as `{\"card\": …}`, with optional `liveness`, `ownerId`, `permanent`",
    ),
    (
        "/a2a/async/agents",
        "A queued A2A agent card, bare or as `{\"card\": …}`, with optional `liveness`, `ownerId`, `permanent`",
    ),
    ("/mcp/servers", "An MCP Server Card or MCP Registry `server.json`, bare or as `{\"serverCard\": …}`"),
    ("/acp/agents", "`{\"manifest\": <ACP agent manifest>, \"endpointUrl\": <ACP server base URL>}`"),
];

/// Bodies as the registry reads them: the document routes take a JSON object; in the
/// registry's own inputs names and addresses are not empty and leases within their bounds.
fn constrain_bodies(doc: &mut Value) {
    for (path, description) in DOCUMENT_ROUTES {
        if let Some(operation) = doc["paths"].get_mut(path).and_then(|item| item.get_mut("post")) {
            operation["requestBody"] = json!({"required": true, "description": description,
                "content": {"application/json": {"schema": {"type": "object"}}}});
        }
    }
    if let Some(operation) = doc["paths"].get_mut("/acp/agents").and_then(|item| item.get_mut("post")) {
        operation["requestBody"]["content"]["application/json"]["schema"] = json!({
            "type": "object", "required": ["manifest", "endpointUrl"], "additionalProperties": false,
            "properties": {"manifest": {"type": "object", "description": "An ACP agent manifest"},
                           "endpointUrl": {"type": "string", "format": "uri", "description": "The ACP server's base URL"},
                           "liveness": {"type": "object"}, "ownerId": {"type": "string", "minLength": 1},
                           "permanent": {"type": "boolean"}}});
    }
    let schemas = &mut doc["components"]["schemas"];
    // A task names exactly one of its targets.
    schemas["TaskInput"]["oneOf"] = json!(
        ["capability", "agentId", "tool"]
            .map(|target| json!({"required": [target], "properties": {target: {"type": "string"}}}))
    );
    // Each rule adds to the property as generated: (schema, property, constraints).
    let rules = [
        ("AgentInput", "name", json!({"minLength": 1})),
        ("EndpointInput", "name", json!({"minLength": 1})),
        ("EndpointInput", "address", json!({"minLength": 1})),
        ("EndpointInput", "ttlSeconds", json!({"minimum": 1, "maximum": 86_400})),
        ("EndpointInput", "heartbeatIntervalSeconds", json!({"minimum": 1, "maximum": 3_600})),
        ("CapabilityInput", "name", json!({"minLength": 1})),
        ("OwnerInput", "ownerId", json!({"minLength": 1})),
        ("TaskInput", "capability", json!({"minLength": 1})),
        ("TaskInput", "tool", json!({"minLength": 1})),
        ("TaskInput", "agentId", json!({"format": "uuid"})),
        ("TaskInput", "protocol", json!({"enum": ["A2A", "MCP", "ACP", null]})),
        ("TaskInput", "timeoutSeconds", json!({"minimum": 1, "maximum": 3_600})),
    ];
    for (schema, property, constraints) in rules {
        let Some(target) = schemas[schema]["properties"].get_mut(property).and_then(Value::as_object_mut) else {
            continue;
        };
        if let Some(constraints) = constraints.as_object() {
            target.extend(constraints.clone());
        }
    }
    // `input` is text or a JSON object (for MCP, the tool's arguments).
    if let Some(input) = schemas["TaskInput"]["properties"].get_mut("input") {
        input["type"] = json!(["string", "object"]);
    }
}

/// A refusal of `/mcp`: a JSON-RPC error object.
fn json_rpc_error(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"type": "object"}}}})
}

/// `/mcp`, `/metrics` and the aliases, which no handler annotation describes.
fn add_routes_outside_the_annotations(doc: &mut Value, metrics: bool) {
    for (alias, documented) in ALIASES {
        let Some(mut item) = doc["paths"].get(documented).cloned() else { continue };
        for method in METHODS {
            if let Some(operation) = item.get_mut(method) {
                let id = operation.get("operationId").and_then(Value::as_str).unwrap_or(method);
                operation["operationId"] = json!(format!("{id}{}", words(alias)));
                operation["description"] = json!(format!("The same as `{} {documented}`.", method.to_uppercase()));
                operation["summary"] = json!(format!("Alias of {documented}"));
            }
        }
        doc["paths"][alias] = item;
    }
    let mcp = |summary: &str, description: &str, success: Value| {
        json!({"tags": ["mcp-server"], "summary": summary, "description": description,
               "operationId": format!("mcp{}", summary.split(' ').next().unwrap_or_default()),
               "security": [{}, {"api_key": []}, {"bearer": []}],
               "parameters": [{"name": "Mcp-Session-Id", "in": "header", "required": false,
                               "description": "The session the initialize answer named", "schema": {"type": "string"}}],
               "responses": success})
    };
    let mut post = mcp(
        "Send a JSON-RPC message",
        "MCP Streamable HTTP (2025-03-26 and later): a JSON-RPC request, notification or response. The tools \
         find agents; `execute_task` and `get_task` need credentials and call agents out. A `Host` that is not \
         allowed (--mcp-allowed-hosts) is refused with 403.",
        json!({"200": {"description": "The JSON-RPC answer, as JSON or as a stream of events",
                       "content": {"application/json": {"schema": {"type": "object"}},
                                   "text/event-stream": {"schema": {"type": "string"}}}},
               "202": {"description": "A notification or response, accepted"},
               "403": {"description": "The Host header is not allowed"},
               "404": {"description": "The session is unknown or has ended"},
               "400": json_rpc_error("The message is not JSON-RPC, or not valid for the session"),
               "406": json_rpc_error("`Accept` must allow `application/json` and `text/event-stream`"),
               "413": {"description": "The message is larger than the registry accepts"},
               "415": json_rpc_error("The message is not `application/json`"),
               "429": {"description": "Over a rate limit: come back after `Retry-After` seconds"}}),
    );
    post["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"type": "object"}}}});
    // Stateless, answered in JSON: no server stream to `GET`, no session to `DELETE` (both 405).
    doc["paths"]["/mcp"] = json!({"post": post});
    if metrics {
        doc["paths"]["/metrics"] = json!({"get": {
            "tags": ["system"], "operationId": "metrics", "summary": "Prometheus metrics",
            "description": "Every metric in Prometheus' text format (docs/operations.md lists them).",
            "security": [{}],
            "responses": {"200": {"description": "The metrics",
                                  "content": {"text/plain; version=0.0.4": {"schema": {"type": "string"}}}}}}});
    }
    if let Some(tags) = doc["tags"].as_array_mut() {
        tags.push(json!({"name": "mcp-server", "description": "The registry as an MCP server (Streamable HTTP)"}));
    }
}

fn finish_operation(path: &str, method: &str, operation: &mut Value) {
    if path == BOOTSTRAP {
        operation["security"] = json!([{"bootstrap_token": []}]);
    } else if operation.get("security").is_none() {
        // Public: no credential needed (`{}` is the anonymous alternative).
        operation["security"] = json!([{}]);
    }
    let secured = operation
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|alternatives| alternatives.iter().any(|a| a.as_object().is_some_and(|a| !a.is_empty())));
    if secured && let Some(alternatives) = operation.get_mut("security").and_then(Value::as_array_mut) {
        // A bearer JWT is accepted wherever an API key is.
        if !alternatives.iter().any(|a| a.get("bearer").is_some()) {
            alternatives.push(json!({"bearer": []}));
        }
    }
    if operation.get("summary").is_none() {
        let summary = operation
            .get("description")
            .and_then(Value::as_str)
            .and_then(|d| d.lines().next())
            .map_or_else(|| format!("{} {path}", method.to_uppercase()), |line| line.trim_end_matches('.').to_owned());
        operation["summary"] = json!(summary);
    }
    // Agent, endpoint, task and key ids are UUIDs: say so, for generated clients and fuzzers.
    if let Some(parameters) = operation.get_mut("parameters").and_then(Value::as_array_mut) {
        for parameter in
            parameters.iter_mut().filter(|p| p["in"] == "path" && matches!(p["name"].as_str(), Some("id" | "eid")))
        {
            parameter["schema"] = json!({"type": "string", "format": "uuid"});
        }
    }
    constrain_headers(operation);
    constrain_query(path, operation);
    let has_body = operation.get("requestBody").is_some() || matches!(method, "post" | "put" | "patch");
    // The MCP Registry API answers its errors as the official document says (`application/json`).
    let registry_api = path.starts_with("/v0");
    let has_parameters = operation.get("parameters").and_then(Value::as_array).is_some_and(|p| !p.is_empty());
    let Some(responses) = operation["responses"].as_object_mut() else { return };
    for (status, response) in responses.iter_mut() {
        let Some(response) = response.as_object_mut() else { continue };
        if response.contains_key("$ref") {
            continue;
        }
        if !response.contains_key("description") {
            response.insert("description".into(), json!(reason(status)));
        }
        if (status.starts_with('4') || status.starts_with('5')) && path != "/mcp" {
            problem_content(response, registry_api);
        }
    }
    let mut standard: Vec<(&str, &str)> = Vec::new();
    // `/mcp` answers its own refusals in JSON-RPC (listed with it); only an outage is a problem.
    if path == "/mcp" {
        standard.push(("503", "Unavailable"));
    } else if has_body || has_parameters {
        standard.push(("400", "BadRequest"));
    }
    if secured && path != "/mcp" {
        standard.extend([("401", "Unauthenticated"), ("403", "Forbidden")]);
    }
    if has_body && path != "/mcp" {
        standard.extend([("413", "PayloadTooLarge"), ("415", "UnsupportedMediaType")]);
    }
    if matches!(path, "/tasks" | "/execute-task") && method == "post" {
        standard.push(("404", "NotFound"));
    }
    if !PROBES.contains(&path) && path != "/mcp" {
        standard.extend([("429", "RateLimited"), ("503", "Unavailable")]);
    }
    for (status, name) in standard {
        responses.entry(status).or_insert_with(|| json!({"$ref": format!("#/components/responses/{name}")}));
    }
}

/// An error's JSON body is a problem document, whatever the annotation said; the MCP Registry
/// API keeps the official document's `application/json` for its own errors (unknown servers)
/// and answers the registry's (a bad query) as problems, so both are listed there.
fn problem_content(response: &mut Map<String, Value>, both: bool) {
    let Some(content) = response.get_mut("content").and_then(Value::as_object_mut) else { return };
    let Some(json_body) = content.get("application/json").cloned() else { return };
    if !both {
        content.remove("application/json");
    }
    content.entry("application/problem+json").or_insert(json_body);
}

/// Query parameters as each route reads them: those a shared filter list names but the route
/// refuses are left out (a protocol route fixes `protocol`; ACP pages with `limit` and
/// `offset`; `pageSize` and its alias `limit` are not given together, so only `pageSize` is
/// listed), and the values the registry knows are listed.
fn constrain_query(path: &str, operation: &mut Value) {
    let Some(parameters) = operation.get_mut("parameters").and_then(Value::as_array_mut) else { return };
    let refused: &[&str] = match path {
        "/a2a/agents" | "/a2a/async/agents" | "/mcp/servers" => &["protocol"],
        "/acp/agents" => &["page", "pageSize", "cursor", "protocol", "transport"],
        "/events" | "/agents/{id}/events" => &["limit"],
        _ => &[],
    };
    parameters.retain(|p| !(p["in"] == "query" && p["name"].as_str().is_some_and(|n| refused.contains(&n))));
    // `/watch` takes an empty value as no filter; the discovery routes refuse one.
    let optional = if path == "/watch" { "?" } else { "" };
    let list = |values: &str| json!({"type": "string", "pattern": format!("^(({values})(,({values}))*){optional}$")});
    let names = |values: &str| json!({"type": "string", "description": format!("{values}; a comma list: any of them")});
    let filtered = DISCOVERY_ROUTES.contains(&path);
    let kinds: Vec<&str> = agent_registry_core::ports::ChangeKind::ALL.iter().map(|k| k.as_str()).collect();
    for parameter in parameters.iter_mut().filter(|p| p["in"] == "query") {
        let schema = match parameter["name"].as_str() {
            // Names in any case, or the .NET registry's integer codes: more than a pattern says.
            Some("protocol") => names("`A2A`, `MCP`, `ACP` or `Custom`"),
            Some("transport") => names("`Http`, `Amqp` or `AzureServiceBus`"),
            Some("kind") if path == "/watch" => list(&kinds.join("|")),
            Some("A2A-Version") => json!({"type": "string", "enum": ["0.3", "1.0"]}),
            Some("include") if path == "/discover/agents" => json!({"type": "string", "enum": ["queue"]}),
            Some("include") if path == "/watch" => json!({"type": "string", "enum": ["tasks"]}),
            // An empty value is no filter.
            // The MCP Registry API brings any `limit` within its bounds, as the official one does.
            Some("limit") if path.starts_with("/v0") => json!({"type": "integer"}),
            Some("updated_since") => json!({"type": "string", "anyOf": [{"format": "date-time"}, {"maxLength": 0}]}),
            Some("page") if filtered => json!({"type": "integer", "minimum": 1, "maximum": 1_000_000}),
            // Revisions are unsigned 64-bit numbers.
            Some("cursor") if path.ends_with("/events") => {
                json!({"type": "integer", "minimum": 0, "maximum": u64::MAX})
            }
            Some("since") if path == "/watch" => json!({"type": "integer", "minimum": 0, "maximum": u64::MAX}),
            Some("label") if filtered => json!({"type": "string", "pattern": "^[^:]+:.*$"}),
            // ACP clients page with `limit` (up to 1,000) and `offset`; a negative offset is 0.
            Some("limit") if path == "/acp/agents" => json!({"type": "integer", "maximum": 1000}),
            Some("offset") if path == "/acp/agents" => json!({"type": "integer"}),
            Some("agent") if path == "/events" => json!({"type": "string", "format": "uuid"}),
            Some("agentId") if path == "/watch" => list(UUID),
            Some("pageSize") if filtered => json!({"type": "integer", "minimum": 1, "maximum": 100}),
            Some("pageSize") if path.ends_with("/events") => json!({"type": "integer", "minimum": 1, "maximum": 500}),
            // The discovery filters refuse an empty value rather than ignore it.
            Some(_) if filtered && parameter["schema"]["type"] == "string" => {
                let mut schema = parameter["schema"].clone();
                schema["minLength"] = json!(1);
                schema
            }
            _ => continue,
        };
        parameter["schema"] = schema;
    }
}

/// A UUID, as a pattern (for lists of them).
const UUID: &str = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}";

/// The routes that take the discovery filters.
const DISCOVERY_ROUTES: [&str; 6] =
    ["/agents", "/discover/agents", "/a2a/agents", "/a2a/async/agents", "/acp/agents", "/mcp/servers"];

/// What the registry accepts in the headers it reads, so that clients (and fuzzers) send them
/// well formed.
fn constrain_headers(operation: &mut Value) {
    let Some(parameters) = operation.get_mut("parameters").and_then(Value::as_array_mut) else { return };
    for parameter in parameters.iter_mut().filter(|p| p["in"] == "header") {
        let schema = match parameter["name"].as_str().map(str::to_ascii_lowercase).as_deref() {
            Some("if-match") => json!({"type": "string", "description": "The agent's ETag (its revision, quoted)"}),
            Some("idempotency-key") => json!({"type": "string", "pattern": "^[!-~]{1,255}$"}),
            Some("a2a-version") => json!({"type": "string", "enum": ["0.3", "1.0"]}),
            Some("last-event-id") => json!({"type": "string", "pattern": "^[0-9]{1,19}$"}),
            _ => continue,
        };
        parameter["schema"] = schema;
    }
}

/// Operation ids that several routes share (`list`, `get`, `register`) get the route's words:
/// `list` of `/api-keys` becomes `listApiKeys`.
fn unique_operation_ids(doc: &mut Value) {
    let mut seen = std::collections::HashMap::<String, usize>::new();
    let operations = || METHODS.iter();
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for item in paths.values() {
        for method in operations() {
            if let Some(id) = item.get(*method).and_then(|o| o.get("operationId")).and_then(Value::as_str) {
                *seen.entry(id.to_owned()).or_default() += 1;
            }
        }
    }
    for (path, item) in paths.iter_mut() {
        for method in operations() {
            let Some(operation) = item.get_mut(*method) else { continue };
            let id = operation.get("operationId").and_then(Value::as_str).unwrap_or(method).to_owned();
            if seen.get(&id).is_none_or(|n| *n > 1) {
                operation["operationId"] = json!(format!("{id}{}", words(path)));
            }
        }
    }
}

/// `/a2a/async/agents/{id}` as `A2aAsyncAgents`: the literal segments, each capitalised.
fn words(path: &str) -> String {
    path.split(['/', '-', '.', '_'])
        .filter(|s| !s.is_empty() && !s.starts_with('{'))
        .map(|s| {
            let mut chars = s.chars();
            chars.next().map(|c| c.to_uppercase().chain(chars).collect::<String>()).unwrap_or_default()
        })
        .collect()
}

fn reason(status: &str) -> String {
    status
        .parse::<u16>()
        .ok()
        .and_then(|s| axum::http::StatusCode::from_u16(s).ok())
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Response")
        .to_owned()
}
