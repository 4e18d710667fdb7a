//! The AI Catalog (`/.well-known/ai-catalog.json`): one entry per live registered MCP server
//! and A2A agent, each pointing at its card on this registry.

use agent_registry_core::model::Agent;
use serde_json::{Value, json};

use crate::build::server_name;

/// Media type of a Server Card (SEP-2127 draft), which MCP entries point at.
pub const SERVER_CARD_TYPE: &str = "application/mcp-server-card+json";
/// Media type of an A2A agent card, which A2A entries point at.
pub const AGENT_CARD_TYPE: &str = "application/a2a-agent-card+json";

/// The catalogue of `servers` (MCP) and `agents` (A2A) as served from `base`.
pub fn ai_catalog<'a>(
    base: &str,
    servers: impl IntoIterator<Item = &'a Agent>,
    agents: impl IntoIterator<Item = &'a Agent>,
) -> String {
    let server_entries = servers.into_iter().map(|agent| {
        let name = server_name(agent);
        let (namespace, short) = name.split_once('/').unwrap_or(("agent-registry", name.as_str()));
        let identifier = format!("urn:air:agent-registry:{namespace}:{short}");
        entry(agent, identifier, SERVER_CARD_TYPE, format!("{base}/mcp/servers/{}/server-card", agent.id))
    });
    let agent_entries = agents.into_iter().map(|agent| {
        let identifier = format!("urn:air:agent-registry:a2a:{}", agent.id);
        entry(agent, identifier, AGENT_CARD_TYPE, format!("{base}/a2a/agents/{}/", agent.id))
    });
    let entries: Vec<Value> = server_entries.chain(agent_entries).collect();
    json!({
        "specVersion": "1.0",
        "host": { "name": "Agent Registry", "documentationUrl": format!("{base}/docs") },
        "entries": entries,
    })
    .to_string()
}

fn entry(agent: &Agent, identifier: String, media_type: &str, url: String) -> Value {
    json!({
        "identifier": identifier,
        "name": agent.name,
        "description": agent.description,
        "type": media_type,
        "url": url,
        "updatedAt": agent.updated_at,
    })
}
