//! MCP discovery documents to and from the registry's domain:
//!
//! - [`translate`] reads an MCP Server Card (SEP-2127 draft), a legacy card (the .NET
//!   registry's `serverInfo`/`endpoints` shape) or an MCP Registry `server.json` into a
//!   registration, keeping the document byte for byte;
//! - [`server_card`] and [`server_json`] serve an agent's documents: the registered one
//!   verbatim, the other format derived from it, or one built from the domain;
//! - [`Catalog`] answers the MCP Registry read API (`/v0.1/servers…`) over the agents' documents,
//!   so that MCP clients such as VS Code can use the registry as their MCP registry.
//!
//! Protocol facts come from `protocols.md` §2.4–2.6 and the official schemas in
//! `fixtures/protocols/`.
#![forbid(unsafe_code)]

mod ai_catalog;
mod build;
mod catalog;
mod names;
pub mod schemas;
mod translate;

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

pub use ai_catalog::{AGENT_CARD_TYPE, SERVER_CARD_TYPE, ai_catalog};
pub use build::{server_card, server_json, server_name, server_version};
pub use catalog::{
    Catalog, CatalogEntry, DEFAULT_LIMIT, ListCursor, ListQuery, MAX_LIMIT, OFFICIAL_META, SERVER_VERSION_CLAIM,
    VersionFilter, catalog_entry, held_claim, server_claim,
};
pub use names::GENERIC_NAMESPACE;
pub use translate::translate;
