//! The gateway's state as `GET /admin/status` returns it and `freeway status` reads it: one set of
//! types for both sides, so the terminal and the API cannot drift apart. Times are Unix
//! milliseconds; every figure is as this process counts it at `server.now_ms`.

use serde::{Deserialize, Serialize};

pub use crate::registry::components::{ComponentStatus, Refusal};
pub use crate::routing::stats::Detail as ModelFigures;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub server: Server,
    pub providers: Vec<Provider>,
    pub components: Vec<ComponentStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Server {
    pub version: String,
    pub now_ms: u64,
    pub started_at_ms: u64,
    pub uptime_secs: u64,
    /// the routing table's generation: one more on every reload
    pub config_generation: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_path: Option<String>,
    pub ready: bool,
    /// why the gateway is not ready, if it is not
    pub problems: Vec<String>,
    /// API requests being served now
    pub in_flight: usize,
    pub storage: Storage,
    /// `None`: no Redis configured (limits and quotas are this process's own)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<Redis>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Storage {
    /// what the usage store is (`SQLite database ...`, `PostgreSQL database ... on host:port`)
    pub store: String,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// usage records since start: made, committed, dropped
    pub usage_recorded: u64,
    pub usage_stored: u64,
    pub usage_dropped: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redis {
    pub up: bool,
    /// reservations made locally while Redis was unreachable
    pub fallbacks: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provider {
    pub id: String,
    pub component: String,
    pub component_version: String,
    /// a local server (Ollama, llama.cpp, vLLM, ...)
    pub local: bool,
    /// requests in flight to this provider now
    pub in_flight: usize,
    pub accounts: Vec<Account>,
    /// quota per pool (accounts with one pool share it)
    pub pools: Vec<Pool>,
    /// models with recent figures
    pub models: Vec<ModelFigures>,
    /// the latest failure on any of its accounts
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    pub label: String,
    pub pool: String,
    /// false: disabled by an operator (never used)
    pub enabled: bool,
    /// `ok`, `cooling` (resting until `until_ms`), `disabled` (by the gateway, re-checked at
    /// `until_ms`), or `off` (disabled by an operator)
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastError {
    pub at_ms: u64,
    pub message: String,
    /// the account's label
    pub account: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    pub pool: String,
    /// `*` for limits the pool's models share, else the model with limits of its own
    pub scope: String,
    pub quota: Vec<Quota>,
}

/// One limit of a pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    /// `rpm`, `rpd`, `tpm`, ...
    pub name: String,
    /// used in the current window, this gateway's reservations in flight included
    pub used: u64,
    pub limit: u64,
    /// when usage next goes down (rolling windows) or the window ends (fixed ones); absent for
    /// a rolling window with nothing in it
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resets_at_ms: Option<u64>,
    /// `learned` (the provider's headers) or `configured` (configuration or catalog)
    pub source: String,
}
