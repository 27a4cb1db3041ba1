//! Usage analytics as `GET /admin/stats` returns them and `freeway stats` reads them. Times are
//! Unix milliseconds; latencies are milliseconds.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub since_ms: u64,
    pub until_ms: u64,
    /// usage records read (the newest first)
    pub records: usize,
    /// more records than a report reads were stored in the period: the oldest were left out
    pub truncated: bool,
    pub total: Group,
    pub by_provider: Vec<Group>,
    /// keyed `provider/model`
    pub by_model: Vec<Group>,
    /// keyed `provider/account`
    pub by_account: Vec<Group>,
    /// keyed by client key (`key-N` for static keys, the `vk_` id of a virtual key, with its
    /// name), or `anyone` when no client keys are configured
    pub by_client: Vec<Group>,
    /// one per hour of the period, oldest first
    pub hourly: Vec<Hour>,
    /// failed requests by the error their client was given, most frequent first
    pub errors: Vec<ErrorClass>,
    /// how close each quota pool came to each of its limits
    pub quota: Vec<QuotaPeak>,
    /// the client key (`vk_` id or `key-N`) the report was limited to (`?key=`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub key: String,
    /// a virtual key's name (in `by_client`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub requests: u64,
    pub ok: u64,
    /// the client went away before the end (neither a success nor a failure)
    pub client_gone: u64,
    /// ok / (requests - client_gone)
    pub success_rate: Option<f64>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub latency_p50_ms: Option<u64>,
    pub latency_p95_ms: Option<u64>,
    /// time to the first byte (streams), p50 / p95
    pub ttft_p50_ms: Option<u64>,
    pub ttft_p95_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hour {
    pub start_ms: u64,
    pub requests: u64,
    pub ok: u64,
    pub tokens: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorClass {
    /// the error code (`upstream_rate_limited`, `upstream_stream_interrupted`, ...)
    pub error: String,
    pub requests: u64,
    pub last_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaPeak {
    pub provider: String,
    pub pool: String,
    /// `*` for limits the pool's models share, else the model with limits of its own
    pub scope: String,
    /// `rpm`, `rpd`, `tpm`, ...
    pub name: String,
    pub limit: u64,
    /// the most used in one window of the period (minutes and hours counted in clock-aligned
    /// windows, days from the provider's daily reset, months by the calendar)
    pub peak: u64,
    /// when the window of the peak ended (or ends)
    pub peak_window_end_ms: u64,
    /// peak / limit
    pub share: f64,
}
