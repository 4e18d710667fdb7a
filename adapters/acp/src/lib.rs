//! ACP (IBM/BeeAI Agent Communication Protocol, OpenAPI 0.2.0) agent manifests to and from the
//! registry's domain (protocols.md §3).
//!
//! - [`translate`] reads a submitted `AgentManifest` into a registration: the agent keeps the
//!   manifest's name, gets the label [`NAME_LABEL`] with an RFC 1123 form of it, tags from
//!   `metadata.tags` and `metadata.domains` (as [`domain_tag`]s), capabilities from
//!   `metadata.capabilities`, and one HTTP endpoint at the ACP server's base URL.
//! - [`manifest`] serves the submitted manifest back unchanged but for `name`, or builds one from
//!   the domain for agents registered otherwise.
//! - [`error_object`] turns a problem body into an ACP `Error` object.
//!
//! Manifests are checked against a JSON Schema derived by hand from the OpenAPI and relaxed
//! where the reference SDK deviates from it (protocols.md §3.4):
//! `fixtures/protocols/acp-0.2.0-agent-manifest.DERIVED.schema.json`.

#![forbid(unsafe_code)]

mod document;
mod error;
mod ingest;
mod name;
mod serve;
mod splice;

#[cfg(test)]
mod tests;

use std::sync::LazyLock;

use agent_registry_core::RegistryError;
use agent_registry_core::schema::Schema;

pub use error::{error_code, error_object};
pub use ingest::translate;
pub use name::{MAX_LABEL_CHARS, is_label, normalise_name, with_suffix};
pub use serve::{RUN_ANNOTATION, acp_name, endpoint_url, find, manifest};

/// The ACP version the manifests are read and served as (OpenAPI `info.version`).
pub const VERSION: &str = "0.2.0";

/// The label holding the name an agent is served under in ACP (an RFC 1123 label, unique in
/// the registry: a translated manifest claims it, and the registry resolves collisions with
/// [`with_suffix`]). Also the namespace of that claim.
pub const NAME_LABEL: &str = "acp.name";

/// The name of the one endpoint a manifest registers: an ACP server has one REST surface for
/// all its agents (protocols.md §3.1), so there is no per-agent URL to tell apart.
pub const ENDPOINT_NAME: &str = "acp";

/// The most manifests `GET /acp/agents` answers with: ACP's own bound on `limit` (1–1000). A
/// request without `limit` gets all of them up to this bound, as the reference server answers
/// every agent and the reference client never pages.
pub const MAX_LIST: usize = 1000;

/// The prefix of the tags made from `metadata.domains`.
const DOMAIN_PREFIX: &str = "domain:";

/// The agent tag standing for one of `metadata.domains`: `domain:<domain in lower case>`, so
/// that `?domain=` can be answered from tags (the .NET registry's domain filter never matched,
/// dotnet-agentregistry.md §8.1 bug 8).
pub fn domain_tag(domain: &str) -> String {
    format!("{DOMAIN_PREFIX}{}", domain.trim().to_lowercase())
}

/// The domain a tag made by [`domain_tag`] stands for (the prefix in any case); `None` for other
/// tags.
pub fn domain_of_tag(tag: &str) -> Option<&str> {
    let prefix = tag.get(..DOMAIN_PREFIX.len())?;
    let domain = tag.get(DOMAIN_PREFIX.len()..)?.trim();
    (prefix.eq_ignore_ascii_case(DOMAIN_PREFIX) && !domain.is_empty()).then_some(domain)
}

/// The derived `AgentManifest` schema, compiled once.
static SCHEMA: LazyLock<Result<Schema, String>> = LazyLock::new(|| {
    Schema::compile(
        "ACP 0.2.0 AgentManifest (derived)",
        include_str!("../../../fixtures/protocols/acp-0.2.0-agent-manifest.DERIVED.schema.json"),
    )
});

/// The derived schema submitted manifests are checked against (a 500 if it did not compile,
/// which a unit test rules out).
pub fn schema() -> Result<&'static Schema, RegistryError> {
    SCHEMA.as_ref().map_err(|e| RegistryError::internal(e.clone()))
}
