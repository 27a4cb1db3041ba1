//! Freeway integration tests: the gateway library with real wasm components, serving over a
//! real socket, against the upstream simulator over real HTTP. One module per feature.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a broken expectation must fail the test loudly"
)]

/// Counts allocations for the allocation-budget test (a plain pass-through otherwise).
#[global_allocator]
static ALLOCATOR: allocations::Counting = allocations::Counting;

mod access_log;
mod accounts;
mod admin_api;
mod allocations;
mod anthropic;
mod bad_input;
mod body_log;
mod cache;
mod cancellation;
mod catalog;
mod chat;
mod classifier;
mod cli_chat;
mod cohere;
mod config_files;
mod crash;
mod dashboard;
mod demo;
mod dialects;
mod discovery;
mod drop_in;
mod durability;
mod edge;
mod embeddings;
mod fallback;
mod gemini;
mod hostile_guests;
mod hostile_input;
mod hot_reload;
mod hot_swap;
mod install;
mod keys;
mod language_providers;
mod metrics;
mod otel;
mod quota;
mod routing;
mod sandbox;
mod sdk_guide;
mod secrets;
mod setup;
mod shutdown;
mod stats;
mod status;
mod streaming;
mod upstream_failures;
mod vault_rotation;
mod waiting;
mod webhooks;
mod zero_config;
