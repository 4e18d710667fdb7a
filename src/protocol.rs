//! Protocol documents (A2A agent cards, MCP server cards and `server.json`, ACP manifests) as the
//! domain sees them: the document an agent was registered with, kept byte for byte, and what a
//! protocol adapter turns a document into. The adapters under `adapters/{a2a,mcp,acp}` do the
//! translating; nothing here knows any protocol's fields.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::input::AgentInput;
use crate::model::{Agent, Endpoint, Protocol};

/// The document formats the registry reads and serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum DocumentFormat {
    /// A2A `AgentCard` (v1.0, v0.3 or v0.2).
    A2aAgentCard,
    /// MCP Server Card (SEP-2127 draft).
    McpServerCard,
    /// The official MCP Registry's `server.json`.
    McpServerJson,
    /// ACP `AgentManifest` (0.2.0).
    AcpAgentManifest,
    /// A queued A2A card: an A2A card whose `queueEndpoint` names a broker queue or topic instead
    /// of interfaces (the .NET agent registry's `QueuedAgentCard`).
    A2aQueuedCard,
}

impl DocumentFormat {
    pub fn protocol(self) -> Protocol {
        match self {
            Self::A2aAgentCard | Self::A2aQueuedCard => Protocol::A2A,
            Self::McpServerCard | Self::McpServerJson => Protocol::MCP,
            Self::AcpAgentManifest => Protocol::ACP,
        }
    }
}

/// The protocol document an agent was registered with. Its text is served back unchanged as
/// long as the agent is not changed through the generic API (which drops it: from then on the
/// agent's documents are built from the domain).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProtocolDocument {
    pub format: DocumentFormat,
    /// The spec version the document was read as, e.g. `1.0`, `0.3`, `2025-12-11`, `0.2.0`.
    pub version: String,
    /// The document exactly as submitted (so that signatures over it stay valid).
    pub text: String,
    /// For signed A2A cards: whether a signature verified against a trusted key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_verified: Option<bool>,
}

impl ProtocolDocument {
    pub fn protocol(&self) -> Protocol {
        self.format.protocol()
    }
}

/// What an adapter makes of a submitted document: a registration (endpoints without liveness
/// settings, which the request decides) and the document to keep.
#[derive(Debug, Clone)]
pub struct Translation {
    pub agent: AgentInput,
    pub origin: ProtocolDocument,
}

/// A protocol document to serve: the one the agent was registered with, or one built from the
/// domain.
#[derive(Debug, Clone, PartialEq)]
pub enum Served {
    Verbatim(String),
    Built(Value),
}

impl Served {
    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            Self::Verbatim(text) => text.into_bytes(),
            Self::Built(value) => serde_json::to_vec(&value).unwrap_or_default(),
        }
    }

    /// The document as a JSON value (for embedding it in a list).
    pub fn into_value(self) -> Value {
        match self {
            Self::Verbatim(text) => serde_json::from_str(&text).unwrap_or(Value::Null),
            Self::Built(value) => value,
        }
    }
}

impl Agent {
    /// The document this agent was registered with, when it is of `format`.
    pub fn origin_of(&self, format: DocumentFormat) -> Option<&ProtocolDocument> {
        self.origin.as_ref().filter(|d| d.format == format)
    }

    /// The agent's endpoints that speak `protocol`, in registration order.
    pub fn endpoints_speaking(&self, protocol: Protocol) -> impl Iterator<Item = &Endpoint> {
        self.endpoints.iter().filter(move |e| e.protocol == protocol)
    }
}
