//! Configuration: TOML, validated when read, with `${ENV_VAR}` interpolation for secrets.
//!
//! Layers, lowest first: built-in defaults < the file (or, with no file, providers enabled from
//! their usual key variables through the embedded catalog) < command-line flags.

pub mod auto;
pub mod catalog;
#[cfg(test)]
mod example_keys;
mod interp;
mod listen;
mod load;
pub mod paths;
mod resolve;
pub mod rules;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

pub use catalog::{Catalog, CatalogModel, CatalogProvider};
pub use interp::{Interpolated, SecretString, mask};
pub use listen::parse_listen;
pub use load::{ConfigError, LoadedConfig, load, load_or_auto, reload};
pub use resolve::{ResolvedKey, ResolvedProvider, resolve};
pub use rules::RoutingRuleConfig;

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
    pub vault: VaultConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub catalog: CatalogConfig,
    #[serde(default)]
    pub discovery: DiscoveryConfig,
    #[serde(default)]
    pub quota: QuotaConfig,
    #[serde(default)]
    pub client_limits: ClientLimitsConfig,
    /// requests held while every candidate is out of quota but one frees soon (`[queue]`)
    #[serde(default)]
    pub queue: QueueConfig,
    /// aliases and fallback chains: `[[routes]] model = "chat"`, `fallback_chain = [...]`
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// how `auto` aliases and policy routes choose (`[routing]`)
    #[serde(default)]
    pub routing: RoutingConfig,
    /// operator rules for policy-routed requests (`[[routing_rules]]`)
    #[serde(default)]
    pub routing_rules: Vec<RoutingRuleConfig>,
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,
    /// request and response bodies kept for debugging (`[body_log]`, off by default)
    #[serde(default)]
    pub body_log: BodyLogConfig,
    /// the exact response cache (`[cache]`, off by default)
    #[serde(default)]
    pub cache: CacheConfig,
    /// virtual client keys (`freeway keys`): their calendar and how often gateways look for
    /// changes (`[keys]`)
    #[serde(default)]
    pub keys: KeysConfig,
    /// HTTP POSTs to operator endpoints when something worth telling happens
    /// (`[[webhooks]]`: account disabled, quota exhausted, a key at its budget, ...)
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// providers whose key variable is set (`GROQ_API_KEY`, ...) are enabled besides those
    /// listed here (paid ones only when `FREEWAY_PAID_PROVIDERS` names them); `false`: only the
    /// listed providers serve
    #[serde(default)]
    pub auto_env: AutoEnv,
}

/// Request and response bodies of API requests, kept in the usage store for debugging and read
/// with `GET /admin/requests/{request_id}/bodies`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BodyLogConfig {
    pub enabled: bool,
    /// bytes kept of each body (request and response alike); the rest is cut, and marked so
    pub max_bytes: usize,
    /// bodies older than this are deleted
    pub retention_hours: u64,
    /// JSON fields whose values are replaced by `[redacted]` wherever they appear (any depth,
    /// case-insensitive); account keys are scrubbed from everything whatever this says
    pub redact_fields: Vec<String>,
}

impl Default for BodyLogConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            max_bytes: 64 * 1024,
            retention_hours: 24,
            redact_fields: ["api_key", "authorization", "password", "secret", "token"].map(str::to_owned).to_vec(),
        }
    }
}

/// `[cache]`: identical requests answered from a stored response instead of a provider. Off by
/// default; `[[routes]] cache = true|false` turns it on or off for one model name whatever
/// `enabled` says. `backend`, `ttl_seconds` and `max_bytes` are read at start; the rest on every
/// reload.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    pub enabled: bool,
    /// `memory` (this process) or `redis` (shared by every gateway on the same Redis: the URL of
    /// `[quota] redis_url` / `FREEWAY_REDIS_URL`)
    pub backend: CacheBackend,
    /// a stored response is served for this long
    pub ttl_seconds: u64,
    /// the memory backend's bound on the bytes it holds (least useful entries go first)
    pub max_bytes: u64,
    /// a response (a stream: all its events) larger than this is not stored
    pub max_entry_bytes: usize,
    /// cache only requests that ask for a repeatable answer (`temperature` 0 or a `seed`)
    pub only_deterministic: bool,
}

/// `[keys]`: virtual client keys (made with `freeway keys create` or the admin API, stored hashed
/// in the usage store).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// the IANA zone whose midnights and calendar months the keys' daily and monthly limits
    /// reset on (`UTC`, `Europe/Paris`)
    pub timezone: String,
    /// how often each gateway looks for keys made, changed or revoked elsewhere (the CLI,
    /// another gateway on the same database), in ms; at most 5000
    pub refresh_ms: u64,
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self { timezone: "UTC".to_owned(), refresh_ms: 1000 }
    }
}

impl KeysConfig {
    /// The configured zone (UTC when it names none; the loader refuses unknown names).
    pub fn zone(&self) -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::get(self.timezone.trim()).unwrap_or(jiff::tz::TimeZone::UTC)
    }

    /// The refresh period, within 50 ms and 5 s.
    pub fn refresh(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.refresh_ms.clamp(50, 5000))
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum CacheBackend {
    #[default]
    Memory,
    Redis,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            backend: CacheBackend::Memory,
            ttl_seconds: 3600,
            max_bytes: 256 * 1024 * 1024,
            max_entry_bytes: 1024 * 1024,
            only_deterministic: true,
        }
    }
}

/// The event types a webhook may subscribe to (`events = [...]`; `*` is every one).
pub const WEBHOOK_EVENTS: &[&str] = &[
    "account.disabled",
    "account.recovered",
    "quota.exhausted",
    "quota.reset",
    "key.budget",
    "component.reload_refused",
    "provider.down",
    "provider.up",
];

/// One `[[webhooks]]` endpoint: events are POSTed to `url` as JSON, signed with `secret`
/// (HMAC-SHA256, `x-freeway-signature`), retried with backoff, never on a request's path.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// where deliveries are POSTed (`http://` or `https://`)
    pub url: Interpolated,
    /// the HMAC-SHA256 key of the signature header; `${ENV_VAR}` keeps it out of the file
    pub secret: SecretString,
    /// the event types sent here (`["key.budget", "provider.down"]`); `["*"]` (the default) is
    /// every one
    #[serde(default = "every_event")]
    pub events: Vec<String>,
    /// one attempt's deadline, in milliseconds
    #[serde(default = "webhook_timeout_ms")]
    pub timeout_ms: u64,
    /// attempts per delivery, the first included (backoff 1 s doubling to 60 s between them)
    #[serde(default = "webhook_max_attempts")]
    pub max_attempts: u32,
}

impl WebhookConfig {
    /// Whether events of type `name` are sent to this endpoint.
    pub fn wants(&self, name: &str) -> bool {
        self.events.iter().any(|e| e == "*" || e == name)
    }
}

fn every_event() -> Vec<String> {
    vec!["*".to_owned()]
}

fn webhook_timeout_ms() -> u64 {
    5000
}

fn webhook_max_attempts() -> u32 {
    6
}

/// `auto_env`, on unless the file turns it off.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct AutoEnv(pub bool);

impl Default for AutoEnv {
    fn default() -> Self {
        AutoEnv(true)
    }
}

/// A model name clients may ask for (a new alias, or a served model) and the models to fall back
/// to, in order, after its own providers (`provider/model` or a model id).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub model: String,
    #[serde(default)]
    pub fallback_chain: Vec<String>,
    /// when the first candidate is slower than its p95 time to first byte, start the next too
    #[serde(default)]
    pub hedge: bool,
    /// rank this alias's candidates with this policy component (file stem in the policies
    /// folder); without a fallback chain, the alias routes over every free model like `auto`
    #[serde(default)]
    pub policy: Option<String>,
    /// serve requests for `model` as requests for this model or alias (`to = "auto:code"`);
    /// `model` may then be a glob with `*` (`model = "claude-*"`), so a client's own model names
    /// (Claude Code's, say) land on routes the gateway serves
    #[serde(default)]
    pub to: Option<String>,
    /// answer this name's requests from the response cache (`true`) or never (`false`),
    /// whatever `[cache] enabled` says
    #[serde(default)]
    pub cache: Option<bool>,
}

impl RouteConfig {
    /// Whether `name` is this route's model: equal, or matched by its `*` glob when it renames.
    pub fn matches(&self, name: &str) -> bool {
        if self.to.is_none() || !self.model.contains('*') {
            return self.model == name;
        }
        glob_match(&self.model, name)
    }
}

/// `*` matches any run of characters (none included); everything else matches itself.
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let mut parts: Vec<&str> = parts.collect();
    let last = parts.pop();
    for part in parts {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    match last {
        Some(last) => rest.len() >= last.len() && rest.ends_with(last),
        None => rest.is_empty(),
    }
}

/// `[routing]`: policy routing (`auto`, `auto:*` and `[[routes]]` with a `policy`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// the policy component `auto` aliases use (file stem in the policies folder)
    pub policy: String,
    /// where live latency / speed / success statistics are kept across restarts
    #[serde(deserialize_with = "interp::path")]
    pub stats_file: PathBuf,
    /// quality tiers per model id and task, overriding the estimate:
    /// `[routing.quality] "llama-3.3-70b-versatile" = { general = 78, code = 74 }`
    pub quality: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u8>>,
    /// offer `auto` only models known to be free (local servers count as free)
    pub free_only: bool,
    /// most candidates a policy is offered per request: the best for the task by rule
    /// preference, readiness and quality (0 = all). Each costs the policy call ~0.6 µs.
    pub max_candidates: usize,
    /// a task-classifier model file (from `tests/classifier/train.py`) instead of the built-in
    /// one; reloaded when it changes
    #[serde(deserialize_with = "interp::path_opt")]
    pub classifier_model: Option<PathBuf>,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            policy: "smart".to_owned(),
            stats_file: PathBuf::from("data/route-stats.json"),
            quality: std::collections::BTreeMap::new(),
            free_only: true,
            max_candidates: 16,
            classifier_model: None,
        }
    }
}

/// The gateway's own limits on its clients, per minute (0 = none). Per key means per entry of
/// `[server] api_keys`.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ClientLimitsConfig {
    /// requests per minute, all clients together
    pub rpm: u32,
    /// tokens per minute (prompt estimate + max_tokens), all clients together
    pub tpm: u32,
    /// requests per minute for each client key
    pub per_key_rpm: u32,
    /// tokens per minute for each client key
    pub per_key_tpm: u32,
}

/// `[queue]`: when every candidate is out of quota (or resting after a rate limit) but one frees
/// within the request's maximum wait, the request waits in a bounded queue, fair between client
/// keys, instead of being refused with a 429.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// how long a request may wait for capacity, in ms, unless its key or its
    /// `x-freeway-max-wait-ms` header says otherwise; 0 = never wait (every request is answered
    /// at once, as without a queue)
    pub max_wait_ms: u64,
    /// the longest wait a request may ask for with `x-freeway-max-wait-ms`, in ms
    pub max_wait_cap_ms: u64,
    /// requests waiting at once, at most; one more is refused at once (429)
    pub max_queued: usize,
    /// client tag -> weight (at least 1): a key's share of freed capacity is its weight (the
    /// largest of its tags' weights, 1 without one) over the waiting keys' weights together
    pub weights: BTreeMap<String, u32>,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self { max_wait_ms: 10_000, max_wait_cap_ms: 60_000, max_queued: 256, weights: BTreeMap::new() }
    }
}

impl QueueConfig {
    /// The weight of a client with `tags`: the largest of its tags' weights, 1 without one.
    pub fn weight(&self, tags: &[String]) -> u32 {
        tags.iter().filter_map(|t| self.weights.get(t)).copied().max().unwrap_or(1).max(1)
    }
}

/// Where the quota ledger lives.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaConfig {
    /// counters are written here every few seconds and restored at start-up
    #[serde(deserialize_with = "interp::path")]
    pub state_file: PathBuf,
    /// share counters with other gateway processes through Redis (`redis://127.0.0.1:6379`);
    /// `FREEWAY_REDIS_URL` overrides it; empty = this process only
    pub redis_url: Interpolated,
    /// output tokens reserved for a request that sets no `max_tokens` (capped by the model's
    /// maximum output); the reservation is settled with the real usage afterwards
    pub default_output_tokens: u32,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        Self {
            state_file: PathBuf::from("data/quota.json"),
            redis_url: Interpolated(String::new()),
            default_output_tokens: 512,
        }
    }
}

impl QuotaConfig {
    pub fn effective_redis_url(&self) -> Option<String> {
        std::env::var("FREEWAY_REDIS_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .or_else(|| Some(self.redis_url.0.clone()).filter(|u| !u.trim().is_empty()))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VaultConfig {
    /// the encrypted credentials file
    #[serde(deserialize_with = "interp::path")]
    pub path: PathBuf,
    /// the master key file (created on first use unless FREEWAY_MASTER_KEY or
    /// FREEWAY_MASTER_PASSPHRASE is set)
    #[serde(deserialize_with = "interp::path")]
    pub key_file: PathBuf,
    /// adding a second account where the provider's terms forbid it: "warn" or "block"
    pub accounts_policy: AccountsPolicy,
    /// append-only record of account changes and key rotations
    #[serde(deserialize_with = "interp::path")]
    pub audit_log: PathBuf,
    /// the gateway's view of each account's health, for `freeway accounts list`
    #[serde(deserialize_with = "interp::path")]
    pub health_file: PathBuf,
}

impl Default for VaultConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("data/vault.json"),
            key_file: PathBuf::from("data/master.key"),
            accounts_policy: AccountsPolicy::Warn,
            audit_log: PathBuf::from("data/audit.log"),
            health_file: PathBuf::from("data/health.json"),
        }
    }
}

impl VaultConfig {
    pub fn paths(&self) -> crate::vault::VaultPaths {
        crate::vault::VaultPaths { vault: self.path.clone(), key_file: self.key_file.clone() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// where usage records go: `sqlite://path` (default) or `postgres://...`;
    /// `FREEWAY_DATABASE_URL` overrides it
    pub url: Interpolated,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self { url: Interpolated("sqlite://data/freeway.db".to_owned()) }
    }
}

impl StorageConfig {
    pub fn effective_url(&self) -> String {
        std::env::var("FREEWAY_DATABASE_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| self.url.0.clone())
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AccountsPolicy {
    #[default]
    Warn,
    Block,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogConfig {
    /// catalog files merged over the embedded one (entries replace by provider id)
    #[serde(deserialize_with = "interp::paths")]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoveryConfig {
    /// list every provider's models this often (0 = only at start-up and on `freeway models sync`)
    pub interval_secs: u64,
    /// where the last model listing of each provider is kept
    #[serde(deserialize_with = "interp::path")]
    pub state_file: PathBuf,
    /// local servers (catalog ids: ollama, lmstudio, llamacpp, vllm) to look for on their usual
    /// ports; each one found serves its models with no key
    pub local: Vec<String>,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self { interval_secs: 6 * 3600, state_file: PathBuf::from("data/models.json"), local: Vec::new() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// address to listen on; loopback unless told otherwise (`127.0.0.1:8000`, `localhost:8000`,
    /// `8000`, `0.0.0.0:8000`)
    #[serde(deserialize_with = "listen::deserialize")]
    pub listen: SocketAddr,
    /// largest request body accepted, in bytes
    pub max_body_bytes: usize,
    /// on SIGTERM/Ctrl-C, how long open streams may run before the process exits
    pub shutdown_grace_secs: u64,
    /// keys clients must present (`Authorization: Bearer`); empty = no client auth
    pub api_keys: Vec<SecretString>,
    /// the key for `/admin/` (`Authorization: Bearer`); unset = the admin API is off
    pub admin_key: Option<SecretString>,
    /// tags per client key, for routing rules and policies: `key-1 = ["batch"]` tags the first
    /// entry of `api_keys`
    pub client_tags: std::collections::BTreeMap<String, Vec<String>>,
    /// serve with no client key on a non-loopback address (anyone who can reach the port spends
    /// your quota); refused unless set here or with `--insecure-no-auth`, and warned about at
    /// every start
    pub insecure_no_auth: bool,
    /// `Host` names the gateway answers to besides loopback names (`localhost`, `*.localhost`)
    /// and IP addresses; anything else gets 421, which stops DNS-rebinding attacks from web
    /// pages. `["*"]` answers every name (behind a proxy that checks it)
    pub allowed_hosts: Vec<String>,
    /// browser origins allowed to call the API cross-origin (CORS), e.g.
    /// `["https://chat.example"]`; empty = no cross-origin access
    pub cors_origins: Vec<String>,
    /// deepest nesting of a JSON request body
    pub max_json_depth: usize,
    /// most keys in one JSON object of a request body
    pub max_json_object_keys: usize,
    /// most elements in one JSON array of a request body
    pub max_json_array_items: usize,
    /// most client connections open at once (further ones wait in the listen backlog)
    pub max_connections: usize,
    /// time a client has to send a request's headers, in milliseconds
    pub header_read_timeout_ms: u64,
    /// time a client has to send a request's body once its headers are read, in milliseconds
    pub body_read_timeout_ms: u64,
    /// memory for the Responses API's kept answers (`previous_response_id`), in bytes
    pub responses_store_bytes: u64,
    /// how long a kept answer lasts after its last use, in seconds
    pub responses_store_ttl_secs: u64,
    /// API requests (`/v1/...`) served at once; beyond it a request waits up to
    /// `queue_timeout_ms` for a slot, then gets 503 with `Retry-After`
    pub max_in_flight: usize,
    /// how long a request may wait for an in-flight slot, in milliseconds (0 = never wait)
    pub queue_timeout_ms: u64,
}

impl ServerConfig {
    /// The bounds on a request body's JSON shape.
    pub fn shape_limits(&self) -> crate::wire::shape::ShapeLimits {
        crate::wire::shape::ShapeLimits {
            max_depth: self.max_json_depth,
            max_object_keys: self.max_json_object_keys,
            max_array_items: self.max_json_array_items,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            max_body_bytes: 16 * 1024 * 1024,
            shutdown_grace_secs: 30,
            api_keys: Vec::new(),
            admin_key: None,
            client_tags: std::collections::BTreeMap::new(),
            insecure_no_auth: false,
            allowed_hosts: Vec::new(),
            cors_origins: Vec::new(),
            max_json_depth: 64,
            max_json_object_keys: 4096,
            max_json_array_items: 200_000,
            max_connections: 4096,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 30_000,
            responses_store_bytes: 64 * 1024 * 1024,
            responses_store_ttl_secs: 3600,
            max_in_flight: 2048,
            queue_timeout_ms: 2_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// folder of provider components (`<name>.wasm`), watched for changes
    #[serde(deserialize_with = "interp::path")]
    pub providers_dir: PathBuf,
    /// folder of policy components, watched for changes
    #[serde(deserialize_with = "interp::path")]
    pub policies_dir: PathBuf,
    /// where precompiled components are cached (keyed by content hash)
    #[serde(deserialize_with = "interp::path")]
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
    /// wall-clock time one guest call may take, in milliseconds, however it spends it (sleeping
    /// in WASI, waiting for host calls)
    pub guest_wall_ms: u64,
    /// most `http.send` calls one guest call may make
    pub guest_http_calls: u32,
    /// most bytes (request and response bodies) one guest call may move through `http.send`
    pub guest_http_bytes: usize,
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
            guest_wall_ms: 30_000,
            guest_http_calls: 16,
            guest_http_bytes: 16 * 1024 * 1024,
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
    /// no new attempt starts this long after the request arrived, however many accounts are left
    pub retry_budget_ms: u64,
    /// when a model refuses a request on content policy, try the next model instead of failing
    pub fallback_on_content_policy: bool,
    /// largest upstream response body read for non-streaming calls, in bytes
    pub max_response_bytes: usize,
    /// if set, the only hosts any upstream call may reach (checked before any DNS lookup);
    /// e.g. `["127.0.0.1", "localhost"]` to keep a test or air-gapped setup on this machine
    pub egress_hosts: Vec<String>,
    /// requests in flight to one provider at once, streams included; a provider at its bound is
    /// passed over like a busy one (the next candidate serves), and when every candidate is,
    /// the client gets 503 with `Retry-After`
    pub max_in_flight_per_provider: usize,
    /// largest single event of an upstream stream, in bytes
    pub max_event_bytes: usize,
    /// largest whole upstream stream, in bytes
    pub max_stream_bytes: u64,
    /// longest wait for a stream's first data event, in milliseconds (keep-alive comments do not
    /// count as data)
    pub first_event_timeout_ms: u64,
    /// reach upstreams through the proxy `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` name (hosts in
    /// `NO_PROXY` directly); `false`: always directly
    pub proxy_from_env: bool,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 5_000,
            idle_timeout_ms: 60_000,
            request_timeout_ms: 300_000,
            max_attempts: 3,
            retry_budget_ms: 20_000,
            fallback_on_content_policy: false,
            max_response_bytes: 32 * 1024 * 1024,
            egress_hosts: Vec::new(),
            max_in_flight_per_provider: 512,
            max_event_bytes: 4 * 1024 * 1024,
            max_stream_bytes: 256 * 1024 * 1024,
            first_event_timeout_ms: 120_000,
            proxy_from_env: true,
        }
    }
}

/// One upstream provider instance. A provider whose `id` (or `catalog`) names a catalog entry
/// takes its component, base URL, settings and models from the catalog unless set here.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub id: toml::Spanned<String>,
    /// the catalog entry this provider is (default: the one with the same id, if any)
    #[serde(default)]
    pub catalog: Option<String>,
    /// a built-in component name (`openai-compat`, looked up in `providers_dir`) or a path to a
    /// `.wasm`; default: the catalog's, else `openai-compat`
    #[serde(default)]
    pub component: Option<toml::Spanned<String>>,
    /// default: the catalog's, else the component's own default base URL
    #[serde(default)]
    pub base_url: Option<Interpolated>,
    /// keys, as strings or tables `{ key = "...", label = "...", settings = { account_id = "..." } }`
    #[serde(default)]
    pub api_keys: Vec<ApiKey>,
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
    /// let the component read quota after every response, not only when rate-limit headers
    /// came (for upstreams that report it only through an endpoint, like OpenRouter's `/key`)
    #[serde(default)]
    pub poll_limits: bool,
    /// the upstream still serves legacy `/completions`: `/v1/completions` requests are passed
    /// through to it (an OpenAI-format component's chat URL with `/completions` in place of
    /// `/chat/completions`) instead of translated to chat
    #[serde(default)]
    pub legacy_completions: bool,
    /// how requests spread over this provider's accounts
    #[serde(default)]
    pub rotation: Rotation,
    /// free-tier limits of each quota pool (replaces the catalog's provider-wide limits), e.g.
    /// `limits = { rpm = 30, rpd = 1000, tpm = 6000, scope = "account" }`
    #[serde(default)]
    pub limits: Option<catalog::Limits>,
}

/// How requests spread over a provider's accounts. Always across quota pools first: keys that
/// share one pool share one quota.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Rotation {
    #[default]
    RoundRobin,
    /// the pool that served the fewest requests recently
    LeastUsed,
    /// the pool with the most quota left (least-used while quota is unknown)
    MostHeadroom,
}

/// One account's key, with optional label and non-secret per-account settings.
#[derive(Debug, Clone)]
pub struct ApiKey {
    pub key: SecretString,
    pub label: Option<String>,
    pub settings: BTreeMap<String, String>,
}

impl ApiKey {
    pub fn new(key: SecretString) -> Self {
        Self { key, label: None, settings: BTreeMap::new() }
    }

    pub fn expose(&self) -> &str {
        self.key.expose()
    }
}

impl<'de> Deserialize<'de> for ApiKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ApiKey;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a key string, or a table { key = \"...\", label = \"...\", settings = { ... } }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ApiKey, E> {
                let key = SecretString::deserialize(serde::de::value::StrDeserializer::<E>::new(v))?;
                Ok(ApiKey::new(key))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<ApiKey, A::Error> {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Table {
                    key: SecretString,
                    #[serde(default)]
                    label: Option<String>,
                    #[serde(default)]
                    settings: BTreeMap<String, Interpolated>,
                }
                let t = Table::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(ApiKey {
                    key: t.key,
                    label: t.label,
                    settings: t.settings.into_iter().map(|(k, v)| (k, v.0)).collect(),
                })
            }
        }
        d.deserialize_any(V)
    }
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
    /// an embedding model, served on `POST /v1/embeddings` (never to chat requests)
    #[serde(default)]
    pub embeddings: Option<bool>,
    /// embedding models: the length of its vectors
    #[serde(default)]
    pub dimensions: Option<u32>,
    /// embedding models: the most tokens one input may have
    #[serde(default)]
    pub max_input_tokens: Option<u32>,
}

impl ModelSpec {
    pub fn id(&self) -> &str {
        match self {
            ModelSpec::Id(id) => id,
            ModelSpec::Detailed(d) => &d.id,
        }
    }
}

#[cfg(test)]
mod route_tests {
    use super::*;

    fn rename(model: &str) -> RouteConfig {
        RouteConfig {
            model: model.into(),
            fallback_chain: vec![],
            hedge: false,
            policy: None,
            to: Some("auto:code".into()),
            cache: None,
        }
    }

    #[test]
    fn a_renaming_route_matches_its_glob() {
        let r = rename("claude-*");
        assert!(r.matches("claude-sonnet-4-5-20250929"));
        assert!(r.matches("claude-"));
        assert!(!r.matches("gpt-4o"));
        assert!(!r.matches("xclaude-3"));
        let mid = rename("claude-*-haiku*");
        assert!(mid.matches("claude-3-5-haiku-latest"));
        assert!(!mid.matches("claude-sonnet-4"));
        let tail = rename("*-latest");
        assert!(tail.matches("claude-3-5-haiku-latest"));
        assert!(!tail.matches("claude-3-5-haiku"));
    }

    #[test]
    fn a_route_that_does_not_rename_matches_only_its_exact_name() {
        let r = RouteConfig { to: None, ..rename("claude-*") };
        assert!(r.matches("claude-*"));
        assert!(!r.matches("claude-3"));
    }
}
