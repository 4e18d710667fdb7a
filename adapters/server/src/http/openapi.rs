//! The OpenAPI document as clients and code generators need it: what the route annotations
//! cannot say once for all routes is added here, after generation. Every response gets a
//! description; errors are `application/problem+json`; the answers every route may give (a bad
//! request, a missing or refused credential, a body too large or of the wrong type, a rate
//! limit, an outage with `Retry-After`) are listed where they apply; operation ids are unique;
//! both credentials (an API key, a bearer JWT) are declared.

use serde_json::{Map, Value, json};

/// Methods of an OpenAPI path item that are operations.
const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// Routes that answer without the rate limits and credentials of the API (probes).
const PROBES: [&str; 2] = ["/healthz", "/readyz"];

/// The route whose credential is the bootstrap token.
const BOOTSTRAP: &str = "/api-keys/bootstrap";

/// The finished document, as served at `/openapi.json`.
pub fn finish(api: &utoipa::openapi::OpenApi) -> Value {
    let mut doc = serde_json::to_value(api).unwrap_or_else(|_| json!({}));
    doc["info"]["license"] = json!({"name": "Apache-2.0", "identifier": "Apache-2.0"});
    doc["info"]["version"] = json!(env!("CARGO_PKG_VERSION"));
    add_components(&mut doc);
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
    let has_body = operation.get("requestBody").is_some();
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
        if status.starts_with('4') || status.starts_with('5') {
            problem_content(response);
        }
    }
    let mut standard: Vec<(&str, &str)> = Vec::new();
    if has_body || has_parameters {
        standard.push(("400", "BadRequest"));
    }
    if secured {
        standard.extend([("401", "Unauthenticated"), ("403", "Forbidden")]);
    }
    if has_body {
        standard.extend([("413", "PayloadTooLarge"), ("415", "UnsupportedMediaType")]);
    }
    if !PROBES.contains(&path) {
        standard.extend([("429", "RateLimited"), ("503", "Unavailable")]);
    }
    for (status, name) in standard {
        responses.entry(status).or_insert_with(|| json!({"$ref": format!("#/components/responses/{name}")}));
    }
}

/// An error's JSON body is a problem document, whatever the annotation said.
fn problem_content(response: &mut Map<String, Value>) {
    let Some(content) = response.get_mut("content").and_then(Value::as_object_mut) else { return };
    if let Some(json_body) = content.remove("application/json") {
        content.entry("application/problem+json").or_insert(json_body);
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
