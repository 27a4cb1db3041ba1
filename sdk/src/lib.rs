//! # freeway-sdk
//!
//! Everything a Rust author needs to write a Freeway component:
//!
//! - [`Provider`] and [`export_provider!`]: implement two functions (`manifest`, `chat`), get
//!   sensible defaults for the rest (OpenAI-style error mapping, `x-ratelimit-*` parsing, model
//!   listing through `GET {base_url}/models`).
//! - [`openai`]: OpenAI chat types that keep unknown fields, for translating providers.
//! - [`sse`]: a server-sent-events parser; [`errors`]: status and body -> typed errors;
//!   [`limits`]: rate-limit header parsing; [`http`]: the host's HTTP import, ergonomically.
//!
//! Enable the `policy` feature (and disable default features) to write a routing policy
//! instead; see [`Policy`] and [`export_policy!`].
//!
//! See `sdk/README.md` for "a provider in 50 lines".

// lets generated code and the export macros name this crate the same way inside and out
extern crate self as freeway_sdk;

pub mod openai;
pub mod sse;

#[cfg(feature = "provider")]
pub mod errors;
#[cfg(feature = "provider")]
pub mod http;
#[cfg(feature = "provider")]
pub mod limits;
#[cfg(feature = "provider")]
pub mod provider;
#[cfg(feature = "provider")]
pub mod tools;
#[cfg(feature = "provider")]
pub mod translate;
#[cfg(feature = "provider")]
pub use provider::{Provider, types};

#[cfg(feature = "policy")]
pub mod policy;
#[cfg(feature = "policy")]
pub use policy::Policy;

/// Re-exported for the export macros.
#[doc(hidden)]
pub use wit_bindgen;
