//! Black-box tests of the assembled service: one test binary, a real server per test on a
//! random port, each on its own database.

mod agents;
mod bad_input;
mod discovery;
mod liveness;
mod parsing;
mod postgres;
mod process;
mod redis;
mod store_contract;
mod support;
mod system;
