//! Freeway: a self-hosted LLM gateway that puts free LLM API tiers behind one OpenAI-compatible
//! endpoint. Provider adapters and routing policies are sandboxed WebAssembly components.
//!
//! The request lifecycle is documented in [`pipeline`].

pub use freeway_core::{clock, errors, scrub, vault, wire};

pub mod accounts;
pub mod admission;
pub mod app;
pub mod bindings;
pub mod body_log;
pub mod cache;
pub mod cli;
pub mod config;
pub mod cpu;
pub mod egress;
pub mod keys;
pub mod pipeline;
pub mod principal;
pub mod queue;
pub mod quota;
pub mod registry;
pub mod report;
pub mod routing;
pub mod runtime;
pub mod server;
pub mod status;
pub mod store;
pub mod task;
pub mod telemetry;
pub mod upstream;
pub mod usage;
pub mod webhooks;
