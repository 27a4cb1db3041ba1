//! Configuration: TOML, validated when read, with `${ENV_VAR}` interpolation for secrets.
//!
//! Layers, lowest first: built-in defaults < the file (or, with no file, providers enabled from
//! their usual key variables through the embedded catalog) < command-line flags.

mod auto;
mod interp;
mod load;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

pub use auto::{Catalog, CatalogProvider, catalog};
pub use interp::{Interpolated, SecretString};
pub use load::{ConfigError, LoadedConfig, load, load_or_auto};

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub runtime: RuntimeConfig,
    #[serde(default)]
    pub upstream: UpstreamConfig,
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// address to listen on; loopback unless told otherwise
    pub listen: SocketAddr,
    /// largest request body accepted, in bytes
    pub max_body_bytes: usize,
    /// on SIGTERM/Ctrl-C, how long open streams may run before the process exits
    pub shutdown_grace_secs: u64,
    /// keys clients must present (`Authorization: Bearer`); empty = no client auth
    pub api_keys: Vec<SecretString>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            max_body_bytes: 16 * 1024 * 1024,
            shutdown_grace_secs: 30,
            api_keys: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// folder of provider components (`<name>.wasm`), watched for changes
    pub providers_dir: PathBuf,
    /// folder of policy components, watched for changes
    pub policies_dir: PathBuf,
    /// where precompiled components are cached (keyed by content hash)
    pub cache_dir: PathBuf,
    /// CPU time one guest call may use, in milliseconds (time in host calls not counted)
    pub guest_cpu_ms: u64,
    /// linear memory one guest instance may grow to, in MiB
    pub guest_memory_mib: u64,
    /// guest instances alive at once (pooling allocator slots)
    pub max_instances: u32,
    /// idle provider instances kept warm per component and reused across requests (an
    /// instance that failed is never reused); 0 = a fresh instance for every request
    pub warm_instances: usize,
    /// watch files and reload on change
    pub watch: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            providers_dir: PathBuf::from("providers"),
            policies_dir: PathBuf::from("policies"),
            cache_dir: PathBuf::from("data/cache"),
            guest_cpu_ms: 100,
            guest_memory_mib: 64,
            max_instances: 512,
            warm_instances: 16,
            watch: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    pub connect_timeout_ms: u64,
    /// longest silence between two reads of an upstream response (stream chunks included)
    pub idle_timeout_ms: u64,
    /// whole-response deadline for non-streaming calls
    pub request_timeout_ms: u64,
    /// upstream attempts per client request (first try included)
    pub max_attempts: u32,
    /// largest upstream response body read for non-streaming calls, in bytes
    pub max_response_bytes: usize,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 5_000,
            idle_timeout_ms: 60_000,
            request_timeout_ms: 300_000,
            max_attempts: 3,
            max_response_bytes: 32 * 1024 * 1024,
        }
    }
}

/// One upstream provider instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub id: toml::Spanned<String>,
    /// a built-in component name (`openai-compat`, looked up in `providers_dir`) or a path to a `.wasm`
    #[serde(default = "default_component")]
    pub component: toml::Spanned<String>,
    /// defaults to the component's own default base URL
    #[serde(default)]
    pub base_url: Option<Interpolated>,
    #[serde(default)]
    pub api_keys: Vec<SecretString>,
    /// model ids served, as names or tables with details; empty = ask the provider
    #[serde(default)]
    pub models: Vec<ModelSpec>,
    /// non-secret settings handed to the component
    #[serde(default)]
    pub settings: BTreeMap<String, Interpolated>,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// list the provider's models through its component when `models` is empty
    #[serde(default = "yes")]
    pub discover_models: bool,
}

fn default_component() -> toml::Spanned<String> {
    toml::Spanned::new(0..0, "openai-compat".to_owned())
}

fn yes() -> bool {
    true
}

/// A model entry: a bare id or a table.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ModelSpec {
    Id(String),
    Detailed(ModelDetails),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelDetails {
    pub id: String,
    #[serde(default)]
    pub context_window: Option<u32>,
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    #[serde(default)]
    pub tools: Option<bool>,
    #[serde(default)]
    pub vision: Option<bool>,
    #[serde(default)]
    pub reasoning: Option<bool>,
    #[serde(default)]
    pub json_mode: Option<bool>,
}

impl ModelSpec {
    pub fn id(&self) -> &str {
        match self {
            ModelSpec::Id(id) => id,
            ModelSpec::Detailed(d) => &d.id,
        }
    }
}
