//! `freeway-sim --listen 127.0.0.1:9000 [--config sim.toml|sim.json | --catalog config/catalog.toml] [--no-record]`
//!
//! Prints `freeway-sim listening on http://ADDR` on stdout once it accepts connections and
//! exits cleanly on SIGTERM or Ctrl-C. Logs go to stderr (`RUST_LOG`, default `warn`).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use freeway_sim::{SimConfig, Simulator};
use tracing_subscriber::EnvFilter;

/// Upstream LLM provider simulator for Freeway's tests and benchmarks.
#[derive(Debug, Parser)]
#[command(name = "freeway-sim", version, about)]
struct Cli {
    /// Address to listen on; port 0 picks a free port (the printed line has the real one).
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// TOML or JSON config file (by extension; otherwise JSON is tried first).
    #[arg(long, conflicts_with = "catalog")]
    config: Option<PathBuf>,
    /// Impersonate every non-local provider of a Freeway catalog, each at `/<id>` + the path of
    /// its base URL (e.g. `/groq/openai/v1`).
    #[arg(long)]
    catalog: Option<PathBuf>,
    /// Do not keep requests for /_sim/requests (for benchmarks).
    #[arg(long)]
    no_record: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let loaded = match (&cli.config, &cli.catalog) {
        (Some(path), _) => SimConfig::load(path),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| freeway_sim::ConfigError(format!("cannot read {}: {e}", path.display())))
            .and_then(|text| SimConfig::from_catalog(&text)),
        (None, None) => Ok(SimConfig::default()),
    };
    let mut config = match loaded {
        Ok(config) => config,
        Err(error) => {
            eprintln!("freeway-sim: {error}");
            return ExitCode::from(2);
        }
    };
    if cli.no_record {
        config.record = false;
    }
    let sim = match Simulator::start(cli.listen, config).await {
        Ok(sim) => sim,
        Err(error) => {
            eprintln!("freeway-sim: cannot listen on {}: {error}", cli.listen);
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "freeway-sim listening on http://{}", sim.addr()).and_then(|()| stdout.flush()).is_err() {
        // Nobody reads stdout any more; keep serving anyway.
        tracing::debug!("stdout closed");
    }
    drop(stdout);
    wait_for_signal().await;
    sim.shutdown().await;
    ExitCode::SUCCESS
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the simulator");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
