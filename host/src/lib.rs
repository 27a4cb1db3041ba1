//! Freeway: a self-hosted LLM gateway that puts free LLM API tiers behind one OpenAI-compatible
//! endpoint. Provider adapters and routing policies are sandboxed WebAssembly components.
//!
//! The request lifecycle is documented in [`pipeline`].

pub mod accounts;
pub mod admission;
pub mod app;
pub mod cli;
pub mod config;
pub mod cpu;
pub mod discovery;
pub mod errors;
pub mod pipeline;
pub mod quota;
pub mod registry;
pub mod routing;
pub mod runtime;
pub mod scrub;
pub mod server;
pub mod store;
pub mod upstream;
pub mod vault;
pub mod wire;
