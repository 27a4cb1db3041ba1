//! freeway-sim: a real HTTP server that emulates OpenAI-compatible LLM providers (including
//! their rate-limit headers and error shapes) for Freeway's integration tests, end-to-end SDK
//! tests and load benchmarks.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use freeway_sim::{SimConfig, Simulator};
//! let sim = Simulator::start("127.0.0.1:0".parse().unwrap(), SimConfig::default()).await?;
//! let base = sim.base_url(); // http://127.0.0.1:PORT/v1
//! # let _ = base;
//! sim.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! Modules: [`config`] (the TOML/JSON config), [`catalog`] (impersonating every provider of
//! Freeway's catalog), [`profiles`] (per-provider headers and error bodies), [`limits`]
//! (rpm/rpd/tpm/tpd counters), [`daily`] (when day windows reset), [`script`] (per-test
//! rules), [`chat`] and [`stream`] (the completions themselves), [`record`] (recorded
//! requests and stats), `provider` (the provider API), `native` (profiles with their own API,
//! e.g. Gemini's `generateContent`), `control` (`/_sim` endpoints) and `server` (accept loop).

pub mod catalog;
pub mod chat;
pub mod config;
mod control;
pub mod daily;
mod embed;
mod legacy;
pub mod limits;
mod native;
pub mod profiles;
mod provider;
pub mod record;
pub mod script;
mod server;
mod state;
pub mod stream;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use catalog::{catalog_prefix, catalog_profile, sim_base_url};
pub use config::{ConfigError, LimitsConfig, SimConfig, UpstreamConfig};
pub use daily::DailyReset;
pub use profiles::Profile;
pub use record::{RecordedRequest, StatsReport};
pub use script::{Action, Match, Rule, Window};

use state::Shared;

/// How long `shutdown` waits for the server task before giving up on it.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(3);

/// A running simulator. Dropping it stops the server too (without waiting).
#[derive(Debug)]
pub struct Simulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Simulator {
    /// Binds `listen` (port 0 picks a free port) and starts serving on the current Tokio runtime.
    /// An invalid config (duplicate or reserved prefixes) is an `InvalidInput` error.
    pub async fn start(listen: SocketAddr, config: SimConfig) -> io::Result<Simulator> {
        let config = config.normalized().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(config));
        let app = control::router(Arc::clone(&shared));
        let (shutdown, rx) = watch::channel(false);
        let task = tokio::spawn(server::serve(listener, app, rx));
        Ok(Simulator { addr, shared, shutdown, task })
    }

    /// The bound address (with the real port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` + the first upstream's prefix, e.g. "http://127.0.0.1:PORT/v1".
    /// An unspecified listen address (0.0.0.0 / ::) is reported as loopback.
    pub fn base_url(&self) -> String {
        let prefix = self.shared.runtime().default_prefix().unwrap_or(config::DEFAULT_PREFIX).to_owned();
        self.url(&prefix)
    }

    /// `http://HOST:PORT` + `path` (path should start with "/"), e.g. `url("/_sim/requests")`.
    pub fn url(&self, path: &str) -> String {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}{path}", SocketAddr::new(ip, self.addr.port()))
    }

    /// Appends scripted rules (same as `POST /_sim/script`).
    pub fn add_rules(&self, rules: Vec<Rule>) {
        self.shared.rules.add(rules);
    }

    /// Clears rules, counters, recorded requests and the request sequence (`POST /_sim/reset`).
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// Replaces the configuration and resets counters (`POST /_sim/config`).
    pub fn set_config(&self, config: SimConfig) -> Result<(), ConfigError> {
        self.shared.set_config(config.normalized()?);
        Ok(())
    }

    /// Recorded requests, oldest first (`GET /_sim/requests`).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.recorder.list()
    }

    /// Request and status counters (`GET /_sim/stats`).
    pub fn stats(&self) -> StatsReport {
        self.shared.stats.report()
    }

    /// Stops accepting, closes idle connections, gives in-flight ones a short grace and waits
    /// (at most a few seconds) for the server to finish.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let mut task = self.task;
        if tokio::time::timeout(SHUTDOWN_LIMIT, &mut task).await.is_err() {
            task.abort();
        }
    }
}
