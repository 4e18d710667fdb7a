//! The discovery tools an LLM calls, routed by rmcp's typed tool router: each tool's arguments
//! are a struct whose JSON Schema (written for a model to read) is derived from the same type
//! that parses them, and each structured answer's schema from the type that writes it. Failures
//! a model can act on (a bad argument, an unknown agent) are `isError` results carrying the REST
//! API's stable error codes.
//!
//! One file on purpose (about 750 lines): each tool's argument struct, answer struct and body
//! sit together, so that a tool's schema and its parsing cannot drift apart. The tools that send
//! tasks have their own router in `task_tools`.

use std::collections::BTreeMap;
use std::sync::Arc;

use agent_registry_core::RegistryError;
use agent_registry_core::error::catalogue::RATE_LIMITED;
use agent_registry_core::index::Hit;
use agent_registry_core::model::{AgentId, EndpointId, Protocol, Transport};
use agent_registry_core::protocol::Served;
use agent_registry_core::query::{DiscoveryQuery, Filters};
use rmcp::ErrorData as McpError;
use rmcp::handler::server::tool::{IntoCallToolResult, schema_for_output};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock, JsonObject};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};

use super::RegistryMcp;
use crate::http::AppState;

pub const INSTRUCTIONS: &str = "This server is an agent registry. To find an agent for a job, call find_agent_for_task \
with a short description of the task; to filter precisely (capability name, protocol, transport, tags), call \
discover_agents. list_capabilities tells what the registry can do right now. get_agent and the get_*_card tools \
return one agent's details or its protocol document (A2A card, MCP server card, ACP manifest). execute_task \
sends work to a live agent (it calls out, so it needs the registry's credentials) and get_task follows it.";

/// The resources of each agent: `agent://{id}` plus these suffixes.
pub const RESOURCE_KINDS: &[(&str, &str, &str)] = &[
    ("", "agent", "A registered agent: capabilities, endpoints and their liveness"),
    ("/a2a-card", "a2a-card", "The agent's A2A agent card"),
    ("/mcp-server-card", "mcp-server-card", "The agent's MCP Server Card"),
    ("/acp-manifest", "acp-manifest", "The agent's ACP manifest"),
];

/// `tools/list` keeps this order (the router sorts by name): the tool a model should try first
/// comes first.
const ORDER: &[&str] = &[
    "find_agent_for_task",
    "discover_agents",
    "get_agent",
    "get_a2a_card",
    "get_mcp_server_card",
    "get_acp_manifest",
    "list_capabilities",
    "execute_task",
    "get_task",
];

const TASK_CHARS: usize = 1_000;
const DEFAULT_RESULTS: usize = 5;
const MAX_RESULTS: usize = 20;
pub(super) const DEFAULT_CHARS: usize = 4_000;
pub(super) const MIN_CHARS: usize = 300;
pub(super) const MAX_CHARS: usize = 50_000;
const DEFAULT_PAGE_SIZE: usize = 10;
/// Descriptions are cut to this length when an answer must shrink to fit its budget.
const SHORT_DESCRIPTION: usize = 120;

/// Tool names the .NET registry's clients call, mapped to ours.
pub fn canonical(name: &str) -> &str {
    match name {
        "get_a2_a_card" => "get_a2a_card",
        other => other,
    }
}

/// Every tool, in the order of `ORDER`.
pub fn ordered(mut tools: Vec<rmcp::model::Tool>) -> Vec<rmcp::model::Tool> {
    tools.sort_by_key(|t| ORDER.iter().position(|name| *name == t.name).unwrap_or(ORDER.len()));
    tools
}

/// Rewrites a tool's schemas for clients that read one `type` per schema, and drops the
/// `format`s JSON Schema does not define. Each
/// `"type": [T, "null"]` (how schemars writes an `Option`) becomes
/// `"anyOf": [{"type": T, …}, {"type": "null"}]`, which validates the same values. MCP Inspector's
/// `--strict` check flags type arrays because tool schemas are mapped onto single-type dialects
/// (the OpenAPI subset of Gemini function declarations, among others).
pub fn make_portable(tool: &mut rmcp::model::Tool) {
    let mut input = tool.input_schema.as_ref().clone();
    portable_object(&mut input);
    tool.input_schema = Arc::new(input);
    if let Some(output) = &tool.output_schema {
        let mut output = output.as_ref().clone();
        portable_object(&mut output);
        tool.output_schema = Some(Arc::new(output));
    }
}

/// Keywords that describe a schema rather than constrain it: they stay beside `anyOf`.
const ANNOTATIONS: &[&str] = &["title", "description", "default", "examples", "deprecated", "readOnly", "$comment"];

fn portable_value(value: &mut Value) {
    match value {
        Value::Object(object) => portable_object(object),
        Value::Array(items) => items.iter_mut().for_each(portable_value),
        _ => {}
    }
}

/// The `format`s JSON Schema 2020-12 defines (§7.3); schemars adds Rust's (`uint`, `double`),
/// which validators warn about and ignore.
const FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

fn portable_object(schema: &mut JsonObject) {
    schema.values_mut().for_each(portable_value);
    if schema.get("format").and_then(Value::as_str).is_some_and(|f| !FORMATS.contains(&f)) {
        schema.remove("format");
    }
    let Some(Value::Array(types)) = schema.get("type") else { return };
    let nullable = types.iter().any(|t| t == "null");
    let others: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
    schema.remove("type");
    let mut branches: Vec<Value> = if let [only] = others.as_slice() {
        // The constraints belong to the one non-null type.
        let mut branch = JsonObject::new();
        branch.insert("type".into(), only.clone());
        let keys: Vec<String> = schema.keys().filter(|k| !ANNOTATIONS.contains(&k.as_str())).cloned().collect();
        for key in keys {
            if let Some(mut v) = schema.remove(&key) {
                if key == "enum"
                    && let Value::Array(values) = &mut v
                {
                    values.retain(|v| !v.is_null());
                }
                branch.insert(key, v);
            }
        }
        vec![Value::Object(branch)]
    } else {
        others.into_iter().map(|t| json!({"type": t})).collect()
    };
    if nullable {
        branches.push(json!({"type": "null"}));
    }
    schema.insert("anyOf".into(), Value::Array(branches));
}

// ---------------------------------------------------------------------------------------------
// Arguments

/// A tool's arguments, or the error that refuses them. rmcp answers arguments that do not
/// deserialize with a bare text error; the registry's answer is `validation_failed` with a JSON
/// pointer at the argument, as REST gives for a bad body.
pub struct Checked<T>(pub Result<T, RegistryError>);

impl<'de, T: DeserializeOwned> Deserialize<'de> for Checked<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let arguments = Value::deserialize(deserializer)?;
        Ok(Self(serde_path_to_error::deserialize(arguments).map_err(|e| {
            let pointer: String = e
                .path()
                .iter()
                .map(|segment| match segment {
                    serde_path_to_error::Segment::Seq { index } => format!("/{index}"),
                    serde_path_to_error::Segment::Map { key } => format!("/{key}"),
                    serde_path_to_error::Segment::Enum { variant } => format!("/{variant}"),
                    serde_path_to_error::Segment::Unknown => "/?".to_owned(),
                })
                .collect();
            RegistryError::field(pointer, e.into_inner().to_string())
        })))
    }
}

impl<T: JsonSchema> JsonSchema for Checked<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

pub(super) fn protocol_names() -> Vec<&'static str> {
    Protocol::ALL.iter().map(|p| p.as_str()).collect()
}

fn transport_names() -> Vec<&'static str> {
    Transport::ALL.iter().map(|t| t.as_str()).collect()
}

/// An optional argument's enum: `null` is taken as "any", as an absent argument is.
pub(super) fn or_null(names: Vec<&'static str>) -> Vec<Option<&'static str>> {
    names.into_iter().map(Some).chain([None]).collect()
}

/// `tags` is a list; a single comma-separated string is taken too, as the query string takes it.
#[derive(Deserialize)]
#[serde(untagged)]
enum Tags {
    List(Vec<String>),
    Text(String),
}

/// Arguments of `find_agent_for_task`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FindArgs {
    /// What needs doing, e.g. 'summarise a PDF contract'
    #[schemars(required, with = "String", length(max = TASK_CHARS))]
    task: Option<String>,
    /// Only agents with an endpoint speaking this protocol
    #[schemars(extend("enum" = or_null(protocol_names())))]
    protocol: Option<String>,
    /// At most this many agents
    #[schemars(range(min = 1, max = MAX_RESULTS), extend("default" = DEFAULT_RESULTS))]
    max_results: Option<usize>,
    /// The JSON answer stays within this many characters (descriptions are shortened, then results dropped)
    #[schemars(range(min = MIN_CHARS, max = MAX_CHARS), extend("default" = DEFAULT_CHARS))]
    max_chars: Option<usize>,
}

/// Arguments of `discover_agents`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DiscoverArgs {
    /// Exact capability name (case-insensitive)
    capability: Option<String>,
    /// Capability names starting with this
    capability_prefix: Option<String>,
    /// Capability names containing this, in any case (the .NET registry's `capability`)
    capability_contains: Option<String>,
    /// Every tag must be on the agent or one of its capabilities
    #[schemars(with = "Option<Vec<String>>")]
    tags: Option<Tags>,
    /// An endpoint must speak it
    #[schemars(extend("enum" = or_null(protocol_names())))]
    protocol: Option<String>,
    /// An endpoint must use it
    #[schemars(extend("enum" = or_null(transport_names())))]
    transport: Option<String>,
    /// Words that must each start a word of the agent's name, description, tags or capabilities
    q: Option<String>,
    /// Only agents with a live matching endpoint
    #[schemars(extend("default" = true))]
    live_only: Option<bool>,
    #[schemars(range(min = 1, max = agent_registry_core::query::MAX_PAGE_SIZE), extend("default" = DEFAULT_PAGE_SIZE))]
    page_size: Option<usize>,
    /// nextCursor of the previous page
    cursor: Option<String>,
    /// A page number instead of a cursor (1 is the first page), as the .NET registry's tool takes
    #[schemars(range(min = 1, max = agent_registry_core::query::MAX_PAGE))]
    page: Option<usize>,
}

/// Arguments of `get_agent`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentArgs {
    /// The agent's id (a UUID)
    #[schemars(required, with = "String")]
    id: Option<String>,
}

/// Arguments of the tools that return an agent's A2A card or MCP Server Card.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CardArgs {
    /// The agent's id
    #[schemars(required, with = "String")]
    id: Option<String>,
}

/// Arguments of `get_acp_manifest`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManifestArgs {
    /// The agent's id, or its ACP name
    #[schemars(required, with = "String")]
    id: Option<String>,
}

/// Arguments of `list_capabilities`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CapabilitiesArgs {
    /// Only capability names starting with this
    prefix: Option<String>,
    /// Leave out capabilities no live agent serves
    #[schemars(extend("default" = true))]
    live_only: Option<bool>,
}

pub(super) fn bad_argument(name: &str, detail: impl Into<String>) -> RegistryError {
    RegistryError::field(format!("/{name}"), detail)
}

/// A required argument (absent and `null` are both missing).
pub(super) fn required(value: Option<String>, name: &str) -> Result<String, RegistryError> {
    value.ok_or_else(|| bad_argument(name, "is required"))
}

/// A whole-number argument held to the bounds its schema states.
pub(super) fn bounded(
    value: Option<usize>,
    name: &str,
    default: usize,
    min: usize,
    max: usize,
) -> Result<usize, RegistryError> {
    let n = value.unwrap_or(default);
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(bad_argument(name, format!("must be a whole number from {min} to {max}")))
    }
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

// ---------------------------------------------------------------------------------------------
// Answers

/// How to reach an agent.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(inline)]
struct EndpointSummary {
    #[schemars(with = "String")]
    id: EndpointId,
    name: String,
    #[schemars(with = "String", extend("enum" = protocol_names()))]
    protocol: Protocol,
    #[schemars(with = "String", extend("enum" = transport_names()))]
    transport: Transport,
    /// URL or queue address to reach the agent
    address: String,
    is_live: bool,
}

/// The compact form of an agent a model reads: what it does and how to reach it.
#[derive(Serialize, JsonSchema)]
#[schemars(inline)]
struct AgentSummary {
    #[schemars(with = "String")]
    id: AgentId,
    name: String,
    description: Option<String>,
    capabilities: Vec<String>,
    tags: Vec<String>,
    endpoints: Vec<EndpointSummary>,
    /// Where an A2A client resolves the agent's card through this registry (agents with an A2A
    /// endpoint): the card is at .well-known/agent-card.json under it
    #[serde(rename = "a2aBaseUrl", skip_serializing_if = "Option::is_none")]
    a2a_base_url: Option<String>,
}

/// One agent of a task's answer.
#[derive(Serialize, JsonSchema)]
#[schemars(inline)]
struct RankedAgent {
    #[serde(flatten)]
    agent: AgentSummary,
    /// BM25 relevance; higher is better
    score: f64,
    /// Each task word that matched, with the fields it was found in (name, capability, tag, description)
    matched: BTreeMap<String, Vec<&'static str>>,
}

/// The answer of `find_agent_for_task`.
#[derive(Serialize, JsonSchema)]
struct TaskAnswer {
    task: String,
    results: Vec<RankedAgent>,
    /// Matching agents left out to fit the budget
    omitted: usize,
}

/// The answer of `discover_agents`.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct DiscoverAnswer {
    /// Agents matching every filter
    total_count: usize,
    agents: Vec<AgentSummary>,
    /// Pass as cursor for the next page
    next_cursor: Option<String>,
    /// This page's number, unless it was asked for by cursor
    #[serde(skip_serializing_if = "Option::is_none")]
    page: Option<usize>,
    page_size: usize,
    total_pages: usize,
    has_next_page: bool,
}

/// One capability of `list_capabilities`.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(inline)]
struct CapabilityLine {
    name: String,
    agents: usize,
    live_agents: usize,
    live_endpoints: usize,
    #[schemars(with = "Vec<String>")]
    protocols: Vec<Protocol>,
}

/// The answer of `list_capabilities`.
#[derive(Serialize, JsonSchema)]
struct CapabilityList {
    capabilities: Vec<CapabilityLine>,
    count: usize,
}

/// The schema of `get_agent`'s answer: the REST API's agent document (rendered by the core, not
/// through this type), of which a model relies on these fields.
#[derive(JsonSchema)]
#[expect(dead_code, reason = "only its schema is used")]
struct AgentDocument {
    id: String,
    name: String,
    capabilities: Vec<JsonObject>,
    endpoints: Vec<JsonObject>,
    #[serde(flatten)]
    rest: JsonObject,
}

/// The schema of a protocol document (an A2A card, an MCP Server Card, an ACP manifest): any
/// object, described for the model.
fn document_schema(description: &str) -> Arc<JsonObject> {
    let mut schema = schema_for_output::<JsonObject>().as_ref().clone();
    schema.insert("description".into(), json!(description));
    Arc::new(schema)
}

/// A structured answer and, when the JSON is not the best reading for a model, a text rendering.
pub struct Answer {
    value: Value,
    text: Option<String>,
}

impl Answer {
    pub(super) fn new(value: impl Serialize, text: Option<String>) -> Result<Self, ToolError> {
        let value = serde_json::to_value(value)
            .map_err(|e| RegistryError::internal_from("an MCP answer did not serialise", e))?;
        Ok(Self { value, text })
    }
}

impl IntoCallToolResult for Answer {
    fn into_call_tool_result(self) -> Result<CallToolResponse, McpError> {
        let mut result = CallToolResult::structured(self.value);
        if let Some(text) = self.text {
            result.content = vec![ContentBlock::text(text)];
        }
        Ok(result.into())
    }
}

/// A tool's failure: an `isError` result with the REST API's code, detail and field errors, or
/// a call refused by a rate limit.
pub enum ToolError {
    Registry(RegistryError),
    RateLimited(crate::limits::RateLimited),
}

impl From<RegistryError> for ToolError {
    fn from(e: RegistryError) -> Self {
        Self::Registry(e)
    }
}

impl From<crate::limits::RateLimited> for ToolError {
    fn from(refused: crate::limits::RateLimited) -> Self {
        Self::RateLimited(refused)
    }
}

impl IntoCallToolResult for ToolError {
    fn into_call_tool_result(self) -> Result<CallToolResponse, McpError> {
        let e = match self {
            Self::Registry(e) => e,
            Self::RateLimited(refused) => return Ok(rate_limited(refused).into()),
        };
        let internal = matches!(
            e.kind(),
            agent_registry_core::ErrorKind::Internal | agent_registry_core::ErrorKind::Misconfigured
        );
        let detail = if internal {
            tracing::error!(error = %e, "an MCP tool failed");
            "an internal error occurred; it has been logged".to_owned()
        } else {
            e.to_string()
        };
        let errors: Vec<(String, String)> = e.fields().iter().map(|f| (f.pointer.clone(), f.detail.clone())).collect();
        Ok(failure(e.code(), &detail, &errors, JsonObject::new()).into())
    }
}

pub(super) type Outcome = Result<Answer, ToolError>;

/// Where a failed call's `{code, detail, errors}` sits in the result's `_meta`.
pub const ERROR_META: &str = "agent-registry/error";

/// A failed call as every MCP client takes it: `isError`, the code, detail and each pointer in
/// the text a model reads, the same as JSON in `_meta` for programs, and no
/// `structuredContent`. Structured content must follow the tool's `outputSchema` (MCP
/// 2025-11-25, "Structured Content"), and the TypeScript SDK checks that on errors too: an error
/// object there makes `callTool` throw instead of returning the result.
fn failure(code: &str, detail: &str, errors: &[(String, String)], extra: JsonObject) -> CallToolResult {
    let mut text = format!("Error {code}: {detail}");
    for (pointer, detail) in errors {
        text.push_str(&format!("\n- {pointer}: {detail}"));
    }
    let errors: Vec<Value> = errors.iter().map(|(p, d)| json!({"pointer": p, "detail": d})).collect();
    let mut error = JsonObject::new();
    error.insert("code".into(), json!(code));
    error.insert("detail".into(), json!(detail));
    error.insert("errors".into(), Value::Array(errors));
    error.extend(extra);
    let mut meta = JsonObject::new();
    meta.insert(ERROR_META.into(), Value::Object(error));
    CallToolResult::error(vec![ContentBlock::text(text)]).with_meta(Some(rmcp::model::MetaObject(meta)))
}

/// A call refused by the discovery rate limit.
pub fn rate_limited(refused: crate::limits::RateLimited) -> CallToolResult {
    let retry_after = refused.retry_after;
    let detail = format!("too many requests from this client; retry in {retry_after} s");
    let mut extra = JsonObject::new();
    extra.insert("retryAfterSeconds".into(), json!(retry_after));
    failure(RATE_LIMITED.code, &detail, &[], extra)
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

/// `base` is the registry's public URL.
fn summary(hit: &Hit, base: &str) -> Result<AgentSummary, RegistryError> {
    let agent = hit.agent()?;
    let endpoints = hit
        .endpoints
        .iter()
        .filter_map(|(i, live)| {
            let e = agent.endpoints.get(*i)?;
            Some(EndpointSummary {
                id: e.id,
                name: e.name.clone(),
                protocol: e.protocol,
                transport: e.transport,
                address: e.address.clone(),
                is_live: live.is_live,
            })
        })
        .collect();
    Ok(AgentSummary {
        id: agent.id,
        name: agent.name.clone(),
        description: agent.description.clone(),
        capabilities: agent.capabilities.iter().map(|c| c.name.clone()).collect(),
        tags: agent.tags.clone(),
        endpoints,
        // With the slash, so that WHATWG URL joining (the A2A JavaScript SDK) keeps the id.
        a2a_base_url: agent
            .endpoints_speaking(Protocol::A2A)
            .next()
            .map(|_| format!("{}/a2a/agents/{}/", base.trim_end_matches('/'), agent.id)),
    })
}

fn summary_line(agent: &AgentSummary) -> String {
    let reach: Vec<String> = agent
        .endpoints
        .iter()
        .map(|e| {
            let live = if e.is_live { "live" } else { "not live" };
            format!("{} over {} at {} ({live})", e.protocol, e.transport, e.address)
        })
        .collect();
    format!(
        "{} (id {}): {}\n  capabilities: {}\n  reach: {}",
        agent.name,
        agent.id,
        agent.description.as_deref().unwrap_or("no description"),
        if agent.capabilities.is_empty() { "none".to_owned() } else { agent.capabilities.join(", ") },
        if reach.is_empty() { "no endpoint".to_owned() } else { reach.join("; ") }
    ) + &agent.a2a_base_url.as_ref().map(|url| format!("\n  A2A base URL: {url}")).unwrap_or_default()
}

async fn agent_hit(state: &AppState, id: Option<String>) -> Result<Hit, RegistryError> {
    let id = required(id, "id")?;
    state.registry.find(AgentId::parse(&id).map_err(|e| bad_argument("id", e.to_string()))?).await
}

async fn document(
    state: &AppState,
    id: Option<String>,
    render: impl Fn(&agent_registry_core::model::Agent) -> Result<Served, RegistryError>,
) -> Outcome {
    let agent = agent_hit(state, id).await?.agent()?;
    Answer::new(render(&agent)?.into_value(), None)
}

// ---------------------------------------------------------------------------------------------
// The tools

#[tool_router(vis = "pub(super)")]
impl RegistryMcp {
    /// Rank live agents against a task described in plain words (BM25 over names, capabilities, tags and
    /// descriptions) and return the best few, each with why it matched and how to reach it. The answer fits
    /// maxChars characters and maxResults agents, so it never floods the context.
    #[tool(
        annotations(
            title = "Find an agent for a task",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        ),
        output_schema = schema_for_output::<TaskAnswer>()
    )]
    fn find_agent_for_task(&self, Parameters(Checked(args)): Parameters<Checked<FindArgs>>) -> Outcome {
        let args = args?;
        let task = required(args.task, "task")?;
        if task.trim().is_empty() || task.chars().count() > TASK_CHARS {
            return Err(bad_argument("task", format!("must be 1 to {TASK_CHARS} characters")).into());
        }
        let protocol =
            args.protocol.map(|p| p.parse::<Protocol>().map_err(|e| bad_argument("protocol", e))).transpose()?;
        let max_results = bounded(args.max_results, "maxResults", DEFAULT_RESULTS, 1, MAX_RESULTS)?;
        let max_chars = bounded(args.max_chars, "maxChars", DEFAULT_CHARS, MIN_CHARS, MAX_CHARS)?;
        let ranked = self.state.registry.rank_for_task(&task, protocol, max_results)?;
        let mut results = Vec::with_capacity(ranked.len());
        for r in ranked {
            let agent = summary(&r.hit, &self.state.public_url)?;
            results.push(RankedAgent { agent, score: (r.score * 1000.0).round() / 1000.0, matched: r.matched });
        }
        let answer = fit(task, results, max_chars)?;
        let mut rendering = if answer.results.is_empty() {
            "No live agent matches this task.".to_owned()
        } else {
            format!("Best matches for \"{}\":", answer.task)
        };
        for (n, r) in answer.results.iter().enumerate() {
            let why: Vec<String> =
                r.matched.iter().map(|(term, fields)| format!("'{term}' in {}", fields.join("/"))).collect();
            rendering.push_str(&format!("\n{}. {}\n  matched: {}", n + 1, summary_line(&r.agent), why.join(", ")));
        }
        if answer.omitted > 0 {
            rendering.push_str(&format!("\n({} more left out to fit maxChars.)", answer.omitted));
        }
        Answer::new(answer, Some(rendering))
    }

    /// Find agents by exact filters, all combined with AND: capability name, capability prefix, tags, protocol,
    /// transport and words of text. Only agents with a live endpoint are returned unless liveOnly is false.
    /// Results are paged: pass nextCursor back as cursor.
    #[tool(
        annotations(
            title = "Discover agents",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        ),
        output_schema = schema_for_output::<DiscoverAnswer>()
    )]
    fn discover_agents(&self, Parameters(Checked(args)): Parameters<Checked<DiscoverArgs>>) -> Outcome {
        let args = args?;
        let tags: Vec<&str> = match &args.tags {
            None => Vec::new(),
            Some(Tags::List(tags)) => tags.iter().map(String::as_str).collect(),
            Some(Tags::Text(tags)) => vec![tags.as_str()],
        };
        let filters = Filters {
            capability: args.capability.as_deref(),
            capability_prefix: args.capability_prefix.as_deref(),
            capability_contains: args.capability_contains.as_deref(),
            tags,
            protocol: args.protocol.as_deref(),
            transport: args.transport.as_deref(),
            q: args.q.as_deref(),
            live_only: Some(args.live_only.unwrap_or(true)),
            page: args.page,
            page_size: Some(args.page_size.unwrap_or(DEFAULT_PAGE_SIZE)),
            cursor: args.cursor.as_deref(),
            ..Filters::default()
        };
        let page_size = args.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        let page_number = args.cursor.is_none().then(|| args.page.unwrap_or(1));
        let query = DiscoveryQuery::from_filters(filters, true).map_err(as_argument_error)?;
        let page = self.state.registry.search(&query)?;
        let agents = page.hits.iter().map(|hit| summary(hit, &self.state.public_url)).collect::<Result<Vec<_>, _>>()?;
        let mut rendering = format!("{} agent(s) match.", page.total);
        for agent in &agents {
            rendering.push_str("\n- ");
            rendering.push_str(&summary_line(agent));
        }
        if let Some(cursor) = &page.next_cursor {
            rendering.push_str(&format!("\nMore: call again with cursor \"{cursor}\"."));
        }
        let answer = DiscoverAnswer {
            total_count: page.total,
            agents,
            has_next_page: page.next_cursor.is_some(),
            next_cursor: page.next_cursor,
            page: page_number,
            page_size,
            total_pages: page.total.div_ceil(page_size),
        };
        Answer::new(answer, Some(rendering))
    }

    /// One registered agent by id: description, capabilities (with input/output schemas), labels, and every
    /// endpoint with its liveness (isLive, lastSeenAt, expiresAt).
    #[tool(
        annotations(
            title = "Get an agent",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        ),
        output_schema = schema_for_output::<AgentDocument>()
    )]
    async fn get_agent(&self, Parameters(Checked(args)): Parameters<Checked<AgentArgs>>) -> Outcome {
        let hit = agent_hit(&self.state, args?.id).await?;
        let bytes = agent_registry_core::view::agent_json(&hit, true);
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| RegistryError::internal_from("an MCP answer did not serialise", e))?;
        Answer::new(value, None)
    }

    /// The A2A agent card of an agent with an A2A endpoint (the card it registered with, unchanged, or one
    /// built from its registration).
    #[tool(
        annotations(
            title = "Get an A2A agent card",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        ),
        output_schema = document_schema("An A2A AgentCard")
    )]
    async fn get_a2a_card(&self, Parameters(Checked(args)): Parameters<Checked<CardArgs>>) -> Outcome {
        document(&self.state, args?.id, agent_registry_a2a::card).await
    }

    /// The MCP Server Card of an agent that is an MCP server.
    #[tool(
        annotations(
            title = "Get an MCP server card",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        ),
        output_schema = document_schema("An MCP Server Card")
    )]
    async fn get_mcp_server_card(&self, Parameters(Checked(args)): Parameters<Checked<CardArgs>>) -> Outcome {
        document(&self.state, args?.id, agent_registry_mcp::server_card).await
    }

    /// The ACP agent manifest of an agent with an ACP endpoint.
    #[tool(
        annotations(
            title = "Get an ACP manifest",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        ),
        output_schema = document_schema("An ACP AgentManifest")
    )]
    async fn get_acp_manifest(&self, Parameters(Checked(args)): Parameters<Checked<ManifestArgs>>) -> Outcome {
        let id = required(args?.id, "id")?;
        let hit = match AgentId::parse(&id) {
            Ok(id) => self.state.registry.find(id).await?,
            Err(_) => agent_registry_acp::find(&self.state.registry, &id)?.ok_or(RegistryError::AgentNotFound(id))?,
        };
        let agent = hit.agent()?;
        let manifest = agent_registry_acp::manifest(&agent, &agent_registry_acp::acp_name(&agent))?;
        Answer::new(manifest.into_value(), None)
    }

    /// What the registry can do right now: every capability name with how many agents offer it, how many of
    /// them are live, their live endpoints and the protocols those speak.
    #[tool(
        annotations(
            title = "List capabilities",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        ),
        output_schema = schema_for_output::<CapabilityList>()
    )]
    fn list_capabilities(&self, Parameters(Checked(args)): Parameters<Checked<CapabilitiesArgs>>) -> Outcome {
        let args = args?;
        let prefix = args.prefix.map(|p| p.to_lowercase());
        let summaries = self.state.registry.capability_summary(prefix.as_deref(), args.live_only.unwrap_or(true))?;
        let mut rendering = format!("{} capabilities.", summaries.len());
        let capabilities: Vec<CapabilityLine> = summaries
            .into_iter()
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
                CapabilityLine {
                    name: c.name,
                    agents: c.agents,
                    live_agents: c.live_agents,
                    live_endpoints: c.live_endpoints,
                    protocols: c.protocols,
                }
            })
            .collect();
        let count = capabilities.len();
        Answer::new(CapabilityList { capabilities, count }, Some(rendering))
    }
}

/// Shrinks an answer to `max_chars` of JSON: descriptions are shortened first, then the weakest
/// results dropped.
fn fit(task: String, results: Vec<RankedAgent>, max_chars: usize) -> Result<TaskAnswer, RegistryError> {
    let size = |answer: &TaskAnswer| {
        serde_json::to_string(answer)
            .map(|s| s.chars().count())
            .map_err(|e| RegistryError::internal_from("an MCP answer did not serialise", e))
    };
    let mut answer = TaskAnswer { task, results, omitted: 0 };
    if size(&answer)? > max_chars {
        for r in &mut answer.results {
            if let Some(d) = &mut r.agent.description
                && d.chars().count() > SHORT_DESCRIPTION
            {
                *d = format!("{}…", d.chars().take(SHORT_DESCRIPTION - 1).collect::<String>());
            }
        }
    }
    while !answer.results.is_empty() && size(&answer)? > max_chars {
        answer.results.pop();
        answer.omitted += 1;
    }
    Ok(answer)
}

/// The document behind an `agent://{id}[/kind]` resource.
pub async fn resource_document(state: &AppState, id: AgentId, kind: &str) -> Result<String, RegistryError> {
    let hit = state.registry.find(id).await?;
    let served = match kind {
        "" => {
            return String::from_utf8(agent_registry_core::view::agent_json(&hit, true))
                .map_err(|e| RegistryError::internal_from("an MCP answer did not serialise", e));
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
        .map_err(|e| RegistryError::internal_from("an MCP answer did not serialise", e))
}
