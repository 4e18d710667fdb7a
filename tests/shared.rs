//! The API suite on the production backends: PostgreSQL (a schema per test) and Redis (a key
//! prefix per test), exactly as on the embedded default.

mod support {
    pub use crate::support::*;
    pub type TestApp = crate::support::App<crate::support::Shared>;
}

#[path = "agents.rs"]
mod agents;
#[path = "bad_input.rs"]
mod bad_input;
#[path = "discovery.rs"]
mod discovery;
#[path = "liveness.rs"]
mod liveness;
#[path = "names.rs"]
mod names;
#[path = "protocols.rs"]
mod protocols;
#[path = "quotas.rs"]
mod quotas;
#[path = "security.rs"]
mod security;
#[path = "system.rs"]
mod system;
#[path = "tasks.rs"]
mod tasks;
#[path = "tasks_acp.rs"]
mod tasks_acp;
#[path = "tasks_amqp.rs"]
mod tasks_amqp;
#[path = "tasks_mcp.rs"]
mod tasks_mcp;
#[path = "watch.rs"]
mod watch;
