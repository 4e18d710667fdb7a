//! The official schemas this adapter validates against, compiled once, and the `$schema` URLs
//! that select them. The files are embedded from `fixtures/protocols/`, where they are byte-for-byte
//! copies of the upstream files.

use std::sync::LazyLock;

use agent_registry_core::RegistryError;
use agent_registry_core::schema::Schema;

/// The `$schema` a Server Card must carry (SEP-2127 draft, experimental-ext-server-card
/// `schema.json`: the `$schema` property's pattern admits exactly this URL).
pub const SERVER_CARD_SCHEMA_URL: &str = "https://static.modelcontextprotocol.io/schemas/v1/server-card.schema.json";

/// The `server.json` schema this adapter writes, and assumes when a document names none
/// (the latest published one, protocols.md §2.5).
pub const SERVER_JSON_SCHEMA_URL: &str = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json";

/// The version label of [`SERVER_JSON_SCHEMA_URL`].
pub const SERVER_JSON_VERSION: &str = "2025-12-11";

/// The version label kept on documents read as Server Cards (the card schema is versioned by
/// the `vN` segment of its URL, not by date).
pub const SERVER_CARD_VERSION: &str = "v1";

/// The version label kept on cards of the older, pre-SEP-2127 shape (`serverInfo`, `endpoints`,
/// `tools`), as the .NET registry and `/.well-known/mcp.json` deployments serve them.
pub const LEGACY_CARD_VERSION: &str = "legacy";

/// Which `server.json` schema files exist here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ServerJsonSchema {
    V2025_09_29,
    V2025_10_17,
    V2025_12_11,
    Draft,
}

/// `$schema` URL → (version label, schema file). 2025-10-11 has no file here: it differs from
/// 2025-10-17 only in that mcpb packages may not carry a `version`, which 2025-10-17 accepts too
/// (protocols.md §2.5, schema history), so its documents are checked against 2025-10-17. The
/// snake_case schemas (2025-07-09, 2025-09-16) are not supported: their field names differ.
const SERVER_JSON_URLS: &[(&str, &str, ServerJsonSchema)] = &[
    (SERVER_JSON_SCHEMA_URL, SERVER_JSON_VERSION, ServerJsonSchema::V2025_12_11),
    (
        "https://static.modelcontextprotocol.io/schemas/2025-10-17/server.schema.json",
        "2025-10-17",
        ServerJsonSchema::V2025_10_17,
    ),
    (
        "https://static.modelcontextprotocol.io/schemas/2025-10-11/server.schema.json",
        "2025-10-11",
        ServerJsonSchema::V2025_10_17,
    ),
    (
        "https://static.modelcontextprotocol.io/schemas/2025-09-29/server.schema.json",
        "2025-09-29",
        ServerJsonSchema::V2025_09_29,
    ),
    // The unreleased draft's own `$id`.
    (
        "https://raw.githubusercontent.com/modelcontextprotocol/registry/main/docs/reference/server-json/draft/server.schema.json",
        "draft",
        ServerJsonSchema::Draft,
    ),
];

/// A `server.json` schema selected by a document's `$schema`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerJsonVersion {
    /// The label kept as `ProtocolDocument.version`, e.g. `2025-12-11`.
    pub label: &'static str,
    schema: ServerJsonSchema,
}

impl ServerJsonVersion {
    /// The version assumed for a `server.json` without `$schema`.
    pub fn default_version() -> Self {
        Self { label: SERVER_JSON_VERSION, schema: ServerJsonSchema::V2025_12_11 }
    }

    /// The version a `$schema` URL names, if it is one this adapter knows.
    pub fn from_url(url: &str) -> Option<Self> {
        SERVER_JSON_URLS.iter().find(|(u, ..)| *u == url).map(|&(_, label, schema)| Self { label, schema })
    }

    /// The compiled schema for this version.
    pub fn schema(self) -> Result<&'static Schema, RegistryError> {
        let compiled = match self.schema {
            ServerJsonSchema::V2025_09_29 => &*SERVER_JSON_2025_09_29,
            ServerJsonSchema::V2025_10_17 => &*SERVER_JSON_2025_10_17,
            ServerJsonSchema::V2025_12_11 => &*SERVER_JSON_2025_12_11,
            ServerJsonSchema::Draft => &*SERVER_JSON_DRAFT,
        };
        available(compiled)
    }
}

/// Every `$schema` URL this adapter accepts, for the error that lists them.
pub fn supported_urls() -> Vec<&'static str> {
    std::iter::once(SERVER_CARD_SCHEMA_URL).chain(SERVER_JSON_URLS.iter().map(|(u, ..)| *u)).collect()
}

/// The Server Card schema (its `ServerCard` definition).
pub fn server_card() -> Result<&'static Schema, RegistryError> {
    available(&SERVER_CARD)
}

/// The schema of the `server.json` documents this adapter builds.
pub fn server_json_latest() -> Result<&'static Schema, RegistryError> {
    ServerJsonVersion::default_version().schema()
}

/// A schema that failed to compile is a build defect, not a client error; the tests compile
/// every one, so this is never seen in practice, but it must not panic a request.
fn available(compiled: &'static Result<Schema, String>) -> Result<&'static Schema, RegistryError> {
    compiled.as_ref().map_err(|e| RegistryError::internal(e.clone()))
}

static SERVER_CARD: LazyLock<Result<Schema, String>> = LazyLock::new(|| {
    Schema::compile_definition(
        "MCP Server Card v1",
        include_str!("../../../fixtures/protocols/mcp-server-card-experimental.schema.json"),
        "#/$defs/ServerCard",
    )
});
static SERVER_JSON_2025_09_29: LazyLock<Result<Schema, String>> = LazyLock::new(|| {
    Schema::compile(
        "server.json 2025-09-29",
        include_str!("../../../fixtures/protocols/mcp-registry-server-2025-09-29.schema.json"),
    )
});
static SERVER_JSON_2025_10_17: LazyLock<Result<Schema, String>> = LazyLock::new(|| {
    Schema::compile(
        "server.json 2025-10-17",
        include_str!("../../../fixtures/protocols/mcp-registry-server-2025-10-17.schema.json"),
    )
});
static SERVER_JSON_2025_12_11: LazyLock<Result<Schema, String>> = LazyLock::new(|| {
    Schema::compile(
        "server.json 2025-12-11",
        include_str!("../../../fixtures/protocols/mcp-registry-server-2025-12-11.schema.json"),
    )
});
static SERVER_JSON_DRAFT: LazyLock<Result<Schema, String>> = LazyLock::new(|| {
    Schema::compile(
        "server.json draft",
        include_str!("../../../fixtures/protocols/mcp-registry-server-draft.schema.json"),
    )
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_schema_compiles() {
        server_card().unwrap();
        for (url, label, _) in SERVER_JSON_URLS {
            let version = ServerJsonVersion::from_url(url).unwrap();
            assert_eq!(version.label, *label);
            version.schema().unwrap();
        }
        assert_eq!(supported_urls().len(), SERVER_JSON_URLS.len() + 1);
    }
}
