//! Black-box tests of the assembled service: one test binary, a real server per test on a
//! random port, each on its own database. The API suite runs twice: on the embedded default
//! (`embedded::`) and on PostgreSQL + Redis (`shared::`).

// The API suite's files are compiled once per configuration, on purpose.
#![allow(clippy::duplicate_mod)]
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers outside #[test] functions panic when a test cannot set up: that is the test failing"
)]

mod cli;
mod clients;
mod cluster;
mod connections;
mod docs;
mod dotnet;
mod embedded;
mod errors;
mod faults;
mod mcp;
mod metrics;
mod operations;
mod parsing;
mod postgres;
mod process;
mod publish;
mod queues;
mod redis;
mod replicas;
mod shared;
mod storage;
mod store_contract;
mod support;
mod task_processes;
mod traces;
