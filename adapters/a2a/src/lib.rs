//! A2A agent cards and the registry's domain.
//!
//! - [`translate`] reads a submitted card (A2A v1.0, v0.3 or v0.2, as they exist in the wild) into
//!   a registration: skills become capabilities, interfaces become endpoints, and the card itself
//!   is kept byte for byte as the agent's origin document.
//! - [`card`] serves an agent's card: the one it registered with, unchanged (so its signatures
//!   stay valid), or a v1.0 card built from the domain with the v0.3 fields beside it.
//!   [`negotiated_card`] serves it in the A2A version a client asks for ([`CardRequest`]).
//! - [`translate_queued`] and [`queued_card`] do the same for queued A2A cards (A2A over
//!   RabbitMQ or Azure Service Bus, the .NET registry's `QueuedAgentCard`).
//! - [`registry_card`] is the registry's own card.
//! - [`signature_key_urls`] and [`verify_signatures`] check the JWS signatures of a card
//!   (A2A v1.0.1 §8.4).
//!
//! Nothing here panics on any input: every document is read as a `serde_json::Value` and every
//! field is looked at with its type checked.
#![forbid(unsafe_code)]

mod fields;
mod negotiate;
mod queued;
mod render;
mod schemas;
mod signature;
mod translate;

#[cfg(test)]
mod tests;

pub use negotiate::{CardRequest, negotiated_card};
pub use queued::{QUEUE_ENDPOINT_KEY, QUEUED_CARD_VERSION, queued_card, technology, translate_queued};
pub use render::{card, is_card_transport, registry_card};
pub use signature::{MAX_SIGNATURES, signature_key_urls, verify_signatures};
pub use translate::translate;

/// The key of `Agent.metadata` under which a registration by card keeps the card-level facts a
/// card built later from the domain needs (provider, modes, capability flags, links).
pub const METADATA_KEY: &str = "a2a";

/// The binding the registry's own card advertises: its REST API, named by a URI as A2A §5.8 asks
/// of custom bindings. The registry does not serve A2A JSON-RPC, gRPC or HTTP+JSON, so it does not
/// claim them.
pub const REGISTRY_BINDING: &str = "urn:agent-registry:rest";
