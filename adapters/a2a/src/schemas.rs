//! The official card schemas, embedded and compiled once.
//!
//! A2A v1.0 has no official JSON Schema (the proto is normative), so v1 cards are checked against
//! the schema derived from `a2a-v1.0.1.proto` in `fixtures/protocols`; v0.3 and v0.2 cards against
//! `#/definitions/AgentCard` of the official v0.3.0 and v0.2.6 schemas.

use std::sync::LazyLock;

use agent_registry_core::RegistryError;
use agent_registry_core::schema::Schema;

type Compiled = LazyLock<Result<Schema, String>>;

static V1: Compiled = LazyLock::new(|| {
    Schema::compile(
        "A2A v1.0.1 AgentCard",
        include_str!("../../../fixtures/protocols/a2a-v1.0.1-agent-card.DERIVED.schema.json"),
    )
});

static V03: Compiled = LazyLock::new(|| {
    Schema::compile_definition(
        "A2A v0.3.0 AgentCard",
        include_str!("../../../fixtures/protocols/a2a-v0.3.0.schema.json"),
        "#/definitions/AgentCard",
    )
});

static V02: Compiled = LazyLock::new(|| {
    Schema::compile_definition(
        "A2A v0.2.6 AgentCard",
        include_str!("../../../fixtures/protocols/a2a-v0.2.6.schema.json"),
        "#/definitions/AgentCard",
    )
});

/// A2A v1.0.1 `AgentSkill`, which the skills of queued cards follow.
static SKILL: Compiled = LazyLock::new(|| {
    Schema::compile_definition(
        "A2A v1.0.1 AgentSkill",
        include_str!("../../../fixtures/protocols/a2a-v1.0.1-agent-card.DERIVED.schema.json"),
        "#/$defs/AgentSkill",
    )
});

/// The schema each skill of a queued card is checked against.
pub(crate) fn skill() -> Result<&'static Schema, RegistryError> {
    SKILL.as_ref().map_err(|e| RegistryError::internal(e.clone()))
}

/// The schema a card of `version` ("1.0", "0.3" or "0.2") is checked against.
pub(crate) fn for_version(version: &str) -> Result<&'static Schema, RegistryError> {
    let compiled = match version {
        "1.0" => &V1,
        "0.3" => &V03,
        _ => &V02,
    };
    // The schemas are embedded, so this fails only if a fixture file is broken; a test compiles
    // all three.
    compiled.as_ref().map_err(|e| RegistryError::internal(e.clone()))
}
