//! Core of the agent registry: the domain (agents, capabilities, endpoints, liveness), discovery
//! queries and their in-memory index, the ports to storage and liveness, and the `AgentRegistry`
//! use-cases. No web, database or cache crate is used here; adapters implement the ports.
#![forbid(unsafe_code)]

pub mod address;
pub mod audit;
pub mod auth;
pub mod bounded;
pub mod claim;
pub mod clock;
pub mod error;
pub mod index;
pub mod input;
pub mod liveness;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod parallel;
pub mod ports;
pub mod protocol;
pub mod query;
pub mod quota;
pub mod redact;
pub mod registry;
pub mod render;
pub mod schema;
pub mod task;
pub mod throttle;
pub mod view;

pub use error::{ErrorKind, FieldError, RegistryError, Result};
pub use registry::{AgentRegistry, KeyRequest, RegisterOptions, Registration, RegistryConfig};
