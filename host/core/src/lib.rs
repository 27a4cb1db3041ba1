//! Freeway's leaf modules: what the gateway's trust boundaries are made of, with no knowledge of
//! the gateway itself (no configuration, no runtime, no server), so that each can be tested, and
//! fuzzed, on its own.
//!
//! - [`errors`]: every failure, its status, OpenAI error shape, blame and retryability
//! - [`wire`]: request bodies read without building a tree (and their shape bounded), SSE framing
//! - [`scrub`]: removing every known key from bytes read back from upstream
//! - [`secret`], [`interp`]: secrets that never print; `${ENV_VAR}` interpolation
//! - [`hosts`]: which hosts a component may reach
//! - [`vault`]: credentials encrypted at rest, and who may touch the vault's files when
//! - [`clock`]: Unix time in milliseconds

pub mod clock;
pub mod dialect;
pub mod errors;
pub mod hosts;
pub mod interp;
pub mod scrub;
pub mod secret;
pub mod vault;
pub mod wire;
