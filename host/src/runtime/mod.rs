//! The Wasm component runtime: one wasmtime engine (pooling allocator, epoch interruption), the
//! components loaded into it, per-call sandbox limits, and the host functions guests import.

pub use crate::bindings;
pub mod cache;
pub mod component;
pub mod embedded;
pub mod engine;
pub mod guest;
pub mod host_impl;
pub mod output;
pub mod pool;
pub mod state;

pub use crate::accounts::Account;
pub use component::{ComponentError, PolicyComponent, ProviderComponent, Runtime};
pub use freeway_core::hosts::{self, AllowedHosts};
pub use guest::{EmbedRequest, EmbedResponse, GuestFailure, ProviderInstance, live_instances};
pub use pool::ProviderLease;
pub use state::GuestIo;
