//! The discovery tools an LLM calls: their descriptions and JSON Schemas (written for a model to
//! read), and their implementation over the `AgentRegistry`. Failures a model can act on (a bad
//! argument, an unknown agent) are `isError` results carrying the REST API's stable error codes.

use std::sync::Arc;

use agent_registry_core::RegistryError;
use agent_registry_core::error::catalogue::RATE_LIMITED;
use agent_registry_core::index::Hit;
use agent_registry_core::model::{AgentId, Protocol};
use agent_registry_core::protocol::Served;
use agent_registry_core::query::DiscoveryQuery;
use rmcp::ErrorData as McpError;
use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool, ToolAnnotations};
use serde_json::{Value, json};

use crate::http::AppState;

pub const INSTRUCTIONS: &str = "This server is an agent registry. To find an agent for a job, call find_agent_for_task \
with a short description of the task; to filter precisely (capability name, protocol, transport, tags), call \
discover_agents. list_capabilities tells what the registry can do right now. get_agent and the get_*_card tools \
return one agent's details or its protocol document (A2A card, MCP server card, ACP manifest).";

/// The resources of each agent: `agent://{id}` plus these suffixes.
pub const RESOURCE_KINDS: &[(&str, &str, &str)] = &[
    ("", "agent", "A registered agent: capabilities, endpoints and their liveness"),
    ("/a2a-card", "a2a-card", "The agent's A2A agent card"),
    ("/mcp-server-card", "mcp-server-card", "The agent's MCP Server Card"),
    ("/acp-manifest", "acp-manifest", "The agent's ACP manifest"),
];

const TASK_CHARS: usize = 1_000;
const DEFAULT_RESULTS: usize = 5;
const MAX_RESULTS: usize = 20;
const DEFAULT_CHARS: usize = 4_000;
const MIN_CHARS: usize = 300;
const MAX_CHARS: usize = 50_000;
/// Descriptions are cut to this length when an answer must shrink to fit its budget.
const SHORT_DESCRIPTION: usize = 120;

/// Tool names the .NET registry's clients call, mapped to ours.
pub fn canonical(name: &str) -> &str {
    match name {
        "get_a2_a_card" => "get_a2a_card",
        other => other,
    }
}

fn object(value: Value) -> Arc<JsonObject> {
    Arc::new(value.as_object().cloned().unwrap_or_default())
}

fn tool(name: &'static str, title: &str, description: &'static str, input: Value, output: Value) -> Tool {
    let annotations =
        ToolAnnotations::with_title(title).read_only(true).destructive(false).idempotent(true).open_world(false);
    Tool::new(name, description, object(input)).with_raw_output_schema(object(output)).with_annotations(annotations)
}

fn id_input(what: &str) -> Value {
    json!({"type": "object", "properties": {"id": {"type": "string", "description": what}}, "required": ["id"]})
}

fn endpoint_schema() -> Value {
    json!({"type": "object", "properties": {
        "id": {"type": "string"}, "name": {"type": "string"},
        "protocol": {"type": "string", "enum": ["A2A", "MCP", "ACP", "Custom"]},
        "transport": {"type": "string", "enum": ["Http", "Amqp", "AzureServiceBus"]},
        "address": {"type": "string", "description": "URL or queue address to reach the agent"},
        "isLive": {"type": "boolean"}},
        "required": ["id", "protocol", "transport", "address", "isLive"]})
}

fn agent_summary_schema() -> Value {
    json!({"type": "object", "properties": {
        "id": {"type": "string"}, "name": {"type": "string"}, "description": {"type": ["string", "null"]},
        "capabilities": {"type": "array", "items": {"type": "string"}},
        "tags": {"type": "array", "items": {"type": "string"}},
        "endpoints": {"type": "array", "items": endpoint_schema()}},
        "required": ["id", "name", "capabilities", "endpoints"]})
}

fn document_output(what: &str) -> Value {
    json!({"type": "object", "description": what, "additionalProperties": true})
}

/// Every tool, in a fixed order.
pub fn definitions() -> Vec<Tool> {
    let protocol = json!({"type": "string", "enum": ["A2A", "MCP", "ACP", "Custom"],
        "description": "Only agents with an endpoint speaking this protocol"});
    let mut ranked = agent_summary_schema();
    ranked["properties"]["score"] = json!({"type": "number", "description": "BM25 relevance; higher is better"});
    ranked["properties"]["matched"] = json!({"type": "object", "description":
        "Each task word that matched, with the fields it was found in (name, capability, tag, description)",
        "additionalProperties": {"type": "array", "items": {"type": "string"}}});
    ranked["required"] = json!(["id", "name", "score", "matched", "capabilities", "endpoints"]);
    vec![
        tool(
            "find_agent_for_task",
            "Find an agent for a task",
            "Rank live agents against a task described in plain words (BM25 over names, capabilities, tags and \
             descriptions) and return the best few, each with why it matched and how to reach it. The answer fits \
             maxChars characters and maxResults agents, so it never floods the context.",
            json!({"type": "object", "properties": {
                "task": {"type": "string", "description": "What needs doing, e.g. 'summarise a PDF contract'", "maxLength": TASK_CHARS},
                "protocol": protocol,
                "maxResults": {"type": "integer", "minimum": 1, "maximum": MAX_RESULTS, "default": DEFAULT_RESULTS,
                    "description": "At most this many agents"},
                "maxChars": {"type": "integer", "minimum": MIN_CHARS, "maximum": MAX_CHARS, "default": DEFAULT_CHARS,
                    "description": "The JSON answer stays within this many characters (descriptions are shortened, then results dropped)"}},
                "required": ["task"]}),
            json!({"type": "object", "properties": {
                "task": {"type": "string"},
                "results": {"type": "array", "items": ranked},
                "omitted": {"type": "integer", "description": "Matching agents left out to fit the budget"}},
                "required": ["task", "results", "omitted"]}),
        ),
        tool(
            "discover_agents",
            "Discover agents",
            "Find agents by exact filters, all combined with AND: capability name, capability prefix, tags, protocol, \
             transport and words of text. Only agents with a live endpoint are returned unless liveOnly is false. \
             Results are paged: pass nextCursor back as cursor.",
            json!({"type": "object", "properties": {
                "capability": {"type": "string", "description": "Exact capability name (case-insensitive)"},
                "capabilityPrefix": {"type": "string", "description": "Capability names starting with this"},
                "tags": {"type": "array", "items": {"type": "string"}, "description": "Every tag must be on the agent or one of its capabilities"},
                "protocol": {"type": "string", "enum": ["A2A", "MCP", "ACP", "Custom"], "description": "An endpoint must speak it"},
                "transport": {"type": "string", "enum": ["Http", "Amqp", "AzureServiceBus"], "description": "An endpoint must use it"},
                "q": {"type": "string", "description": "Words that must each start a word of the agent's name, description, tags or capabilities"},
                "liveOnly": {"type": "boolean", "default": true, "description": "Only agents with a live matching endpoint"},
                "pageSize": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
                "cursor": {"type": "string", "description": "nextCursor of the previous page"}}}),
            json!({"type": "object", "properties": {
                "totalCount": {"type": "integer", "description": "Agents matching every filter"},
                "agents": {"type": "array", "items": agent_summary_schema()},
                "nextCursor": {"type": ["string", "null"], "description": "Pass as cursor for the next page"}},
                "required": ["totalCount", "agents"]}),
        ),
        tool(
            "get_agent",
            "Get an agent",
            "One registered agent by id: description, capabilities (with input/output schemas), labels, and every \
             endpoint with its liveness (isLive, lastSeenAt, expiresAt).",
            id_input("The agent's id (a UUID)"),
            json!({"type": "object", "properties": {
                "id": {"type": "string"}, "name": {"type": "string"},
                "capabilities": {"type": "array", "items": {"type": "object"}},
                "endpoints": {"type": "array", "items": {"type": "object"}}},
                "required": ["id", "name", "capabilities", "endpoints"], "additionalProperties": true}),
        ),
        tool(
            "get_a2a_card",
            "Get an A2A agent card",
            "The A2A agent card of an agent with an A2A endpoint (the card it registered with, unchanged, or one \
             built from its registration).",
            id_input("The agent's id"),
            document_output("An A2A AgentCard"),
        ),
        tool(
            "get_mcp_server_card",
            "Get an MCP server card",
            "The MCP Server Card of an agent that is an MCP server.",
            id_input("The agent's id"),
            document_output("An MCP Server Card"),
        ),
        tool(
            "get_acp_manifest",
            "Get an ACP manifest",
            "The ACP agent manifest of an agent with an ACP endpoint.",
            id_input("The agent's id, or its ACP name"),
            document_output("An ACP AgentManifest"),
        ),
        tool(
            "list_capabilities",
            "List capabilities",
            "What the registry can do right now: every capability name with how many agents offer it, how many of \
             them are live, their live endpoints and the protocols those speak.",
            json!({"type": "object", "properties": {
                "prefix": {"type": "string", "description": "Only capability names starting with this"},
                "liveOnly": {"type": "boolean", "default": true, "description": "Leave out capabilities no live agent serves"}}}),
            json!({"type": "object", "properties": {
                "capabilities": {"type": "array", "items": {"type": "object", "properties": {
                    "name": {"type": "string"}, "agents": {"type": "integer"}, "liveAgents": {"type": "integer"},
                    "liveEndpoints": {"type": "integer"},
                    "protocols": {"type": "array", "items": {"type": "string"}}},
                    "required": ["name", "agents", "liveAgents", "liveEndpoints", "protocols"]}},
                "count": {"type": "integer"}},
                "required": ["capabilities", "count"]}),
        ),
    ]
}

/// Runs a tool. Unknown tools are protocol errors; everything else answers with a result.
pub fn call(state: &AppState, name: &str, args: &JsonObject) -> Result<CallToolResult, McpError> {
    let outcome = match canonical(name) {
        "find_agent_for_task" => find_agent_for_task(state, args),
        "discover_agents" => discover_agents(state, args),
        "get_agent" => get_agent(state, args),
        "get_a2a_card" => document(state, args, agent_registry_a2a::card),
        "get_mcp_server_card" => document(state, args, agent_registry_mcp::server_card),
        "get_acp_manifest" => acp_manifest(state, args),
        "list_capabilities" => list_capabilities(state, args),
        other => return Err(McpError::invalid_params(format!("unknown tool `{other}`"), None)),
    };
    Ok(match outcome {
        Ok((value, text)) => {
            let mut result = CallToolResult::structured(value);
            if let Some(text) = text {
                result.content = vec![ContentBlock::text(text)];
            }
            result
        }
        Err(e) => failure(&e),
    })
}

/// A structured result and, when the JSON is not the best reading for a model, a text rendering.
type Outcome = Result<(Value, Option<String>), RegistryError>;

/// An `isError` result with the REST API's code, detail and field errors.
fn failure(e: &RegistryError) -> CallToolResult {
    let errors: Vec<Value> = e.fields().iter().map(|f| json!({"pointer": f.pointer, "detail": f.detail})).collect();
    let detail = match e.kind() {
        agent_registry_core::ErrorKind::Internal | agent_registry_core::ErrorKind::Misconfigured => {
            "an internal error occurred; it has been logged".to_owned()
        }
        _ => e.to_string(),
    };
    if matches!(e.kind(), agent_registry_core::ErrorKind::Internal | agent_registry_core::ErrorKind::Misconfigured) {
        tracing::error!(error = %e, "an MCP tool failed");
    }
    let mut result = CallToolResult::structured_error(json!({"code": e.code(), "detail": detail, "errors": errors}));
    result.content = vec![ContentBlock::text(format!("Error {}: {detail}", e.code()))];
    result
}

/// A call refused by the discovery rate limit.
pub fn rate_limited(retry_after: u64) -> CallToolResult {
    let detail = format!("too many requests from this client; retry in {retry_after} s");
    let mut result = CallToolResult::structured_error(
        json!({"code": RATE_LIMITED.code, "detail": detail, "errors": [], "retryAfterSeconds": retry_after}),
    );
    result.content = vec![ContentBlock::text(format!("Error {}: {detail}", RATE_LIMITED.code))];
    result
}

/// Errors of resource reads and listings, which MCP reports as JSON-RPC errors.
pub fn protocol_error(e: RegistryError) -> McpError {
    let data = Some(json!({"code": e.code()}));
    match e.kind() {
        agent_registry_core::ErrorKind::Internal | agent_registry_core::ErrorKind::Misconfigured => {
            McpError::internal_error("internal error", data)
        }
        _ => McpError::invalid_params(e.to_string(), data),
    }
}

fn bad_argument(name: &str, detail: impl Into<String>) -> RegistryError {
    RegistryError::field(format!("/{name}"), detail)
}

fn string_arg(args: &JsonObject, name: &str) -> Result<Option<String>, RegistryError> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad_argument(name, "must be a string")),
    }
}

fn bool_arg(args: &JsonObject, name: &str, default: bool) -> Result<bool, RegistryError> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(bad_argument(name, "must be true or false")),
    }
}

fn number_arg(args: &JsonObject, name: &str, default: usize, min: usize, max: usize) -> Result<usize, RegistryError> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| bad_argument(name, format!("must be a whole number from {min} to {max}"))),
    }
}

fn required_id(args: &JsonObject) -> Result<String, RegistryError> {
    string_arg(args, "id")?.ok_or_else(|| bad_argument("id", "is required"))
}

/// Query-parameter errors point at `?name`; tool arguments are JSON, so at `/name`.
fn as_argument_error(e: RegistryError) -> RegistryError {
    match e {
        RegistryError::InvalidQuery { detail, pointer } => {
            RegistryError::field(format!("/{}", pointer.trim_start_matches('?')), detail)
        }
        other => other,
    }
}

/// The compact form of an agent a model reads: what it does and how to reach it.
fn summary(hit: &Hit) -> Result<Value, RegistryError> {
    let agent = hit.agent()?;
    let endpoints: Vec<Value> = hit
        .endpoints
        .iter()
        .filter_map(|(i, live)| {
            let e = agent.endpoints.get(*i)?;
            Some(json!({"id": e.id, "name": e.name, "protocol": e.protocol, "transport": e.transport,
                "address": e.address, "isLive": live.is_live}))
        })
        .collect();
    Ok(json!({
        "id": agent.id,
        "name": agent.name,
        "description": agent.description,
        "capabilities": agent.capabilities.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        "tags": agent.tags,
        "endpoints": endpoints,
    }))
}

fn summary_line(agent: &Value) -> String {
    let reach: Vec<String> = agent["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let live = if e["isLive"] == true { "live" } else { "not live" };
            format!("{} over {} at {} ({live})", text(&e["protocol"]), text(&e["transport"]), text(&e["address"]))
        })
        .collect();
    let capabilities: Vec<&str> =
        agent["capabilities"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    format!(
        "{} (id {}): {}\n  capabilities: {}\n  reach: {}",
        text(&agent["name"]),
        text(&agent["id"]),
        agent["description"].as_str().unwrap_or("no description"),
        if capabilities.is_empty() { "none".to_owned() } else { capabilities.join(", ") },
        if reach.is_empty() { "no endpoint".to_owned() } else { reach.join("; ") }
    )
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

fn discover_agents(state: &AppState, args: &JsonObject) -> Outcome {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for key in ["capability", "capabilityPrefix", "protocol", "transport", "q", "cursor"] {
        if let Some(v) = string_arg(args, key)? {
            pairs.push((key.to_owned(), v));
        }
    }
    match args.get("tags") {
        None | Some(Value::Null) => {}
        Some(Value::Array(tags)) => {
            for (i, tag) in tags.iter().enumerate() {
                let tag = tag.as_str().ok_or_else(|| bad_argument(&format!("tags/{i}"), "must be a string"))?;
                pairs.push(("tags".to_owned(), tag.to_owned()));
            }
        }
        Some(Value::String(tags)) => pairs.push(("tags".to_owned(), tags.clone())),
        Some(_) => return Err(bad_argument("tags", "must be a list of strings")),
    }
    pairs.push(("liveOnly".to_owned(), bool_arg(args, "liveOnly", true)?.to_string()));
    pairs.push(("pageSize".to_owned(), number_arg(args, "pageSize", 10, 1, 100)?.to_string()));
    if let Some(unknown) = args.keys().find(|k| !DISCOVER_ARGS.contains(&k.as_str())) {
        return Err(bad_argument(unknown, "is not an argument of discover_agents"));
    }
    let query = DiscoveryQuery::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())), true, false)
        .map_err(as_argument_error)?;
    let page = state.registry.search(&query)?;
    let agents = page.hits.iter().map(summary).collect::<Result<Vec<_>, _>>()?;
    let mut rendering = format!("{} agent(s) match.", page.total);
    for agent in &agents {
        rendering.push_str("\n- ");
        rendering.push_str(&summary_line(agent));
    }
    if let Some(cursor) = &page.next_cursor {
        rendering.push_str(&format!("\nMore: call again with cursor \"{cursor}\"."));
    }
    let value = json!({"totalCount": page.total, "agents": agents, "nextCursor": page.next_cursor});
    Ok((value, Some(rendering)))
}

const DISCOVER_ARGS: &[&str] =
    &["capability", "capabilityPrefix", "tags", "protocol", "transport", "q", "liveOnly", "pageSize", "cursor"];

fn agent_hit(state: &AppState, args: &JsonObject) -> Result<Hit, RegistryError> {
    state.registry.get(AgentId::parse(&required_id(args)?).map_err(|e| bad_argument("id", e.to_string()))?)
}

fn get_agent(state: &AppState, args: &JsonObject) -> Outcome {
    let hit = agent_hit(state, args)?;
    let bytes = agent_registry_core::view::agent_json(&hit, true);
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| RegistryError::internal_from("a rendered page does not parse", e))?;
    Ok((value, None))
}

fn document(
    state: &AppState,
    args: &JsonObject,
    render: impl Fn(&agent_registry_core::model::Agent) -> Result<Served, RegistryError>,
) -> Outcome {
    let agent = agent_hit(state, args)?.agent()?;
    Ok((render(&agent)?.into_value(), None))
}

fn acp_manifest(state: &AppState, args: &JsonObject) -> Outcome {
    let id = required_id(args)?;
    let hit = match AgentId::parse(&id) {
        Ok(id) => state.registry.get(id)?,
        Err(_) => crate::http::acp::find(state, &id)
            .map_err(|_| RegistryError::AgentNotFound(id.clone()))?
            .ok_or(RegistryError::AgentNotFound(id))?,
    };
    let agent = hit.agent()?;
    let manifest = agent_registry_acp::manifest(&agent, &agent_registry_acp::acp_name(&agent))?;
    Ok((manifest.into_value(), None))
}

fn list_capabilities(state: &AppState, args: &JsonObject) -> Outcome {
    let prefix = string_arg(args, "prefix")?.map(|p| p.to_lowercase());
    let live_only = bool_arg(args, "liveOnly", true)?;
    let summaries = state.registry.capability_summary(prefix.as_deref(), live_only)?;
    let mut rendering = format!("{} capabilities.", summaries.len());
    let capabilities: Vec<Value> = summaries
        .iter()
        .map(|c| {
            rendering.push_str(&format!(
                "\n- {}: {} agent(s), {} live, {} live endpoint(s){}",
                c.name,
                c.agents,
                c.live_agents,
                c.live_endpoints,
                if c.protocols.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", c.protocols.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", "))
                }
            ));
            json!({"name": c.name, "agents": c.agents, "liveAgents": c.live_agents,
                "liveEndpoints": c.live_endpoints, "protocols": c.protocols})
        })
        .collect();
    Ok((json!({"capabilities": capabilities, "count": summaries.len()}), Some(rendering)))
}

fn find_agent_for_task(state: &AppState, args: &JsonObject) -> Outcome {
    let task = string_arg(args, "task")?.ok_or_else(|| bad_argument("task", "is required"))?;
    if task.trim().is_empty() || task.chars().count() > TASK_CHARS {
        return Err(bad_argument("task", format!("must be 1 to {TASK_CHARS} characters")));
    }
    let protocol = string_arg(args, "protocol")?
        .map(|p| p.parse::<Protocol>().map_err(|e| bad_argument("protocol", e)))
        .transpose()?;
    let max_results = number_arg(args, "maxResults", DEFAULT_RESULTS, 1, MAX_RESULTS)?;
    let max_chars = number_arg(args, "maxChars", DEFAULT_CHARS, MIN_CHARS, MAX_CHARS)?;
    let ranked = state.registry.rank_for_task(&task, protocol, max_results)?;
    let mut results = Vec::with_capacity(ranked.len());
    for r in &ranked {
        let mut value = summary(&r.hit)?;
        value["score"] = json!((r.score * 1000.0).round() / 1000.0);
        value["matched"] = json!(r.matched);
        results.push(value);
    }
    let (results, omitted) = fit(&task, results, max_chars);
    let mut rendering = if results.is_empty() {
        "No live agent matches this task.".to_owned()
    } else {
        format!("Best matches for \"{task}\":")
    };
    for (n, r) in results.iter().enumerate() {
        let why: Vec<String> = r["matched"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(term, fields)| {
                let fields: Vec<&str> = fields.as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                format!("'{term}' in {}", fields.join("/"))
            })
            .collect();
        rendering.push_str(&format!("\n{}. {}\n  matched: {}", n + 1, summary_line(r), why.join(", ")));
    }
    if omitted > 0 {
        rendering.push_str(&format!("\n({omitted} more left out to fit maxChars.)"));
    }
    Ok((json!({"task": task, "results": results, "omitted": omitted}), Some(rendering)))
}

/// Shrinks an answer to `max_chars` of JSON: descriptions are shortened first, then the weakest
/// results dropped. Returns the results kept and how many were dropped.
fn fit(task: &str, mut results: Vec<Value>, max_chars: usize) -> (Vec<Value>, usize) {
    let size = |results: &[Value], omitted: usize| {
        json!({"task": task, "results": results, "omitted": omitted}).to_string().chars().count()
    };
    if size(&results, 0) > max_chars {
        for r in &mut results {
            if let Some(d) = r["description"].as_str()
                && d.chars().count() > SHORT_DESCRIPTION
            {
                let short: String = d.chars().take(SHORT_DESCRIPTION - 1).collect();
                r["description"] = json!(format!("{short}…"));
            }
        }
    }
    let mut omitted = 0;
    while !results.is_empty() && size(&results, omitted) > max_chars {
        results.pop();
        omitted += 1;
    }
    (results, omitted)
}

/// The document behind an `agent://{id}[/kind]` resource.
pub fn resource_document(state: &AppState, id: AgentId, kind: &str) -> Result<String, RegistryError> {
    let hit = state.registry.get(id)?;
    let served = match kind {
        "" => {
            return String::from_utf8(agent_registry_core::view::agent_json(&hit, true))
                .map_err(|e| RegistryError::internal_from("an agent's JSON is not UTF-8", e));
        }
        "a2a-card" => agent_registry_a2a::card(&hit.agent()?)?,
        "mcp-server-card" => agent_registry_mcp::server_card(&hit.agent()?)?,
        "acp-manifest" => {
            let agent = hit.agent()?;
            agent_registry_acp::manifest(&agent, &agent_registry_acp::acp_name(&agent))?
        }
        _ => return Err(RegistryError::AgentNotFound(format!("{id}/{kind}"))),
    };
    String::from_utf8(served.into_bytes())
        .map_err(|e| RegistryError::internal_from("a served document is not UTF-8", e))
}
