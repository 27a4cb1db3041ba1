//! One request's usage record: what the pipeline hands to the usage writer and the store keeps.
//! A leaf: it knows the wire's token counts and the client's name, nothing of the pipeline or
//! the store.

use std::time::{Duration, SystemTime};

use crate::principal::Principal;
use crate::wire::types::Usage;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Ok,
    /// the upstream failed (after fallbacks, or mid-stream)
    UpstreamError,
    /// the client went away before the end
    ClientGone,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::UpstreamError => "upstream_error",
            Outcome::ClientGone => "client_gone",
        }
    }
}

#[derive(Debug, Clone)]
pub struct UsageRecord {
    pub at: SystemTime,
    pub provider: String,
    pub model: String,
    pub account: String,
    pub usage: Option<Usage>,
    pub outcome: Outcome,
    pub stream: bool,
    pub attempts: u32,
    pub latency: Duration,
    pub first_byte: Option<Duration>,
    /// the client key it came in with
    pub client: Principal,
    /// why it failed: the error code the client was given (`upstream_rate_limited`, ...)
    pub error: Option<&'static str>,
    /// the routing policy that ranked the candidates (`auto` and policy routes only)
    pub policy: Option<String>,
    /// answered from the response cache: no provider was called, no quota spent (`usage` is
    /// what the stored answer took, the tokens the hit saved)
    pub cache_read: bool,
}
