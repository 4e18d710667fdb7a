//! Test helpers: the example documents, and agents made the way the registry makes them.

use std::path::PathBuf;

use agent_registry_core::input::{AgentInput, EndpointInput};
use agent_registry_core::liveness::LivenessPolicy;
use agent_registry_core::model::{Agent, AgentId, Protocol, Transport};
use agent_registry_core::protocol::Translation;
use chrono::{DateTime, Utc};
use serde_json::Value;

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/protocols")
}

/// Every MCP example document: the official `server.json` examples and the edge cases, as
/// (file name, text).
pub fn fixtures() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for dir in ["mcp-server-json", "mcp-edge"] {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(fixtures_dir().join(dir))
            .unwrap_or_else(|e| panic!("fixtures/protocols/{dir}: {e}"))
            .map(|entry| entry.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        for path in paths {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            out.push((name, std::fs::read_to_string(&path).unwrap()));
        }
    }
    assert!(out.len() >= 18, "expected the MCP fixtures, found {}", out.len());
    out
}

/// One fixture's text by file name.
pub fn fixture(name: &str) -> String {
    fixtures().into_iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no fixture {name}")).1
}

/// The agent the registry would store for `input`: validated by the core, with fresh ids.
pub fn agent_from_input(input: &AgentInput, at: DateTime<Utc>) -> Agent {
    let (spec, owner, endpoints) =
        input.to_registration(&LivenessPolicy::default(), at).unwrap_or_else(|e| panic!("does not register: {e}"));
    Agent {
        revision: 1,
        ..spec.to_agent(AgentId::generate(), owner.unwrap_or_else(|| "owner".to_owned()), endpoints, at)
    }
}

/// The agent registered from a translation.
pub fn agent_from(translation: &Translation) -> Agent {
    let mut agent = agent_from_input(&translation.agent, Utc::now());
    agent.origin = Some(translation.origin.clone());
    agent
}

/// An agent registered through the generic API, with one endpoint per (protocol, address,
/// protocol metadata).
pub fn generic_agent(
    name: &str,
    description: Option<&str>,
    version: Option<&str>,
    endpoints: &[(Protocol, &str, Value)],
) -> Agent {
    let input = AgentInput {
        name: Some(name.to_owned()),
        description: description.map(str::to_owned),
        version: version.map(str::to_owned),
        endpoints: Some(
            endpoints
                .iter()
                .enumerate()
                .map(|(i, (protocol, address, metadata))| EndpointInput {
                    name: Some(format!("e{i}")),
                    transport: Some(Transport::Http),
                    protocol: Some(*protocol),
                    address: Some((*address).to_owned()),
                    protocol_metadata: Some(metadata.clone()),
                    ..EndpointInput::default()
                })
                .collect(),
        ),
        ..AgentInput::default()
    };
    agent_from_input(&input, Utc::now())
}

/// Parses JSON text that is known to be valid.
pub fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}
