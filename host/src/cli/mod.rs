//! The `freeway` command line.

mod accounts;
mod catalog_views;
mod chat;
mod chat_view;
mod demo;
mod eval;
mod features;
mod gateway;
mod keys;
mod labelled;
mod models;
mod paths;
mod plugins;
mod providers;
mod ready;
mod route;
mod scaffold;
mod setup;
mod stats;
mod stats_view;
mod status;
mod status_view;
mod usage;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::app::App;
use crate::config;

#[derive(Debug, Parser)]
#[command(name = "freeway", version, about = "Every free LLM tier behind one OpenAI-compatible endpoint")]
pub struct Cli {
    /// Log as JSON lines instead of text
    #[arg(long, global = true, env = "FREEWAY_LOG_JSON")]
    pub log_json: bool,

    /// Folder for the vault, master key, usage database and state files (default: `data/` in a
    /// project folder, else the platform's data folder, e.g. ~/.local/share/freeway)
    #[arg(long, global = true, env = "FREEWAY_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Folder for precompiled components (default: `data/cache` in a project folder, else the
    /// platform's cache folder, e.g. ~/.cache/freeway)
    #[arg(long, global = true, env = "FREEWAY_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway
    Serve {
        /// Configuration file (default: config/freeway.toml in a project folder, else
        /// ~/.config/freeway/freeway.toml, if present; else providers from their key variables)
        #[arg(long, short, env = "FREEWAY_CONFIG")]
        config: Option<PathBuf>,
        /// Address to listen on (default 127.0.0.1:8000): `host:port`, `localhost:port`, or a bare
        /// port (this machine only)
        #[arg(long, env = "FREEWAY_LISTEN", value_parser = config::parse_listen)]
        listen: Option<SocketAddr>,
        /// Serve a non-loopback address without client keys: anyone who reaches the port can
        /// spend your quota (refused otherwise; set FREEWAY_API_KEY or [server] api_keys instead)
        #[arg(long)]
        insecure_no_auth: bool,
    },
    /// Validate a configuration file and load the components it names, then exit
    CheckConfig {
        #[arg(long, short, env = "FREEWAY_CONFIG")]
        config: Option<PathBuf>,
    },
    /// The provider catalog, and which providers are configured
    Providers {
        #[arg(long, short, env = "FREEWAY_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Models of the configured providers (`models sync` lists them from each provider)
    Models(models::ModelsArgs),
    /// Accounts in the encrypted vault: add, list, remove, enable, disable, check, import, export
    Accounts(accounts::AccountsArgs),
    /// Virtual client keys with their own limits, model lists and tags: create, list, update,
    /// rotate, revoke
    Keys(keys::KeysArgs),
    /// The vault itself
    Vault {
        #[command(subcommand)]
        command: VaultCommand,
        #[arg(long, short, env = "FREEWAY_CONFIG", global = true)]
        config: Option<PathBuf>,
    },
    /// A first look with no keys: a gateway over a simulated fleet of free providers
    Demo(demo::DemoArgs),
    /// Chat with the gateway: interactive, or one answer with `-m "..."` (or a prompt on stdin)
    Chat(chat::ChatArgs),
    /// A running gateway's providers, accounts, quotas, cooldowns and components
    /// (`--watch` to refresh, `--json` for the admin API's JSON)
    Status(status::StatusArgs),
    /// Usage analytics from a running gateway: per provider, model, account and client key,
    /// the hourly trend, errors and quota peaks (`--since 1h|24h|7d`, `--json`)
    Stats(stats::StatsArgs),
    /// Usage per provider, model and account, from the usage store
    Usage {
        #[arg(long, short, env = "FREEWAY_CONFIG")]
        config: Option<PathBuf>,
        /// the last this many hours
        #[arg(long, default_value = "24")]
        hours: u64,
    },
    /// How a request would be routed: `freeway route --explain "prompt"` (nothing is sent)
    Route(route::RouteArgs),
    /// Measure the classifier and `auto` on a labelled prompt set (tests/eval/routing.jsonl)
    EvalRouting(eval::EvalArgs),
    /// What the learned classifier reads of a labelled set, for its training script
    #[command(hide = true)]
    ClassifierFeatures(features::FeatureArgs),
    /// Add your first providers: pick them, paste their keys, each key is checked at once
    /// (`--non-interactive --provider ID` for scripts)
    Setup(setup::SetupArgs),
    /// Where the configuration, data, vault, cache and component folders are
    Paths(paths::PathsArgs),
    /// The provider and policy components a running gateway has loaded (or would find)
    Plugins(plugins::PluginsArgs),
    /// Exit 0 when a running gateway is ready to serve (GET /ready), 1 otherwise (health checks)
    Ready(ready::ReadyArgs),
}

#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Re-encrypt every account under a new master key, atomically
    RotateKey {
        /// seal with a passphrase (asked for) instead of a random key
        #[arg(long)]
        passphrase: bool,
    },
}

/// What keeps the trace exporter running (when one was started); [`Telemetry::shutdown`] sends
/// its last spans.
#[must_use = "dropping it stops exporting traces without sending the last ones"]
pub struct Telemetry {
    #[cfg(feature = "otel")]
    exporter: Option<crate::telemetry::otel::Exporter>,
}

impl Telemetry {
    /// Send the spans still queued and stop exporting. Blocks (briefly): call it off the async
    /// runtime.
    pub fn shutdown(self) {
        #[cfg(feature = "otel")]
        if let Some(e) = self.exporter {
            e.shutdown();
        }
    }
}

/// `report`: a command whose stdout is its result (`route --explain --json`, `eval-routing`):
/// logs go to stderr, warnings and errors only unless `RUST_LOG` says otherwise. Other commands
/// (the gateway) also export traces over OTLP when the environment names an endpoint
/// (`telemetry::otel`).
pub fn init_tracing_for(json: bool, report: bool) -> Telemetry {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let default = if report { "warn" } else { "info,wasmtime=warn,cranelift=warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let fmt = tracing_subscriber::fmt::layer().with_target(false).with_ansi(ansi);
    let console = match (json, report) {
        (true, true) => fmt.json().with_writer(std::io::stderr).boxed(),
        (true, false) => fmt.json().boxed(),
        (false, true) => fmt.compact().with_writer(std::io::stderr).boxed(),
        (false, false) => fmt.compact().boxed(),
    };
    let registry = tracing_subscriber::registry().with(console.with_filter(filter));
    #[cfg(feature = "otel")]
    {
        let wanted = if report { None } else { crate::telemetry::otel::endpoint_from_env() };
        let started = wanted.map(|endpoint| (crate::telemetry::otel::layer(&endpoint), endpoint));
        let (layer, exporter, outcome) = match started {
            Some((Ok((layer, exporter)), endpoint)) => (Some(layer), Some(exporter), Some(Ok(endpoint))),
            Some((Err(why), _)) => (None, None, Some(Err(why))),
            None => (None, None, None),
        };
        registry.with(layer).init();
        match outcome {
            Some(Ok(endpoint)) => tracing::info!("exporting traces over OTLP to {endpoint}"),
            Some(Err(why)) => tracing::warn!("traces are not exported: {why}"),
            None => {}
        }
        Telemetry { exporter }
    }
    #[cfg(not(feature = "otel"))]
    {
        registry.init();
        if !report && std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() {
            tracing::warn!("OTEL_EXPORTER_OTLP_ENDPOINT is set, but this freeway was built without the `otel` feature");
        }
        Telemetry {}
    }
}

impl Cli {
    /// Whether the command's stdout is a report that logs must not mix into.
    pub fn reports(&self) -> bool {
        matches!(
            self.command,
            Command::Route(_)
                | Command::EvalRouting(_)
                | Command::ClassifierFeatures(_)
                | Command::Status(_)
                | Command::Chat(_)
                | Command::Stats(_)
                | Command::Setup(_)
                | Command::Paths(_)
                | Command::Plugins(_)
                | Command::Ready(_)
                | Command::Keys(_)
        )
    }
}

/// Run a parsed command; the process exit code.
pub async fn run(cli: Cli) -> i32 {
    config::paths::set_flags(cli.data_dir, cli.cache_dir);
    match cli.command {
        Command::Serve { config, listen, insecure_no_auth } => serve(config, listen, insecure_no_auth).await,
        Command::CheckConfig { config } => check_config(config).await,
        Command::Providers { config } => providers::run(config.as_deref()),
        Command::Models(args) => models::run(args).await,
        Command::Accounts(args) => accounts::run(args).await,
        Command::Keys(args) => keys::run(args).await,
        Command::Vault { command: VaultCommand::RotateKey { passphrase }, config } => {
            accounts::rotate_key(config.as_deref(), passphrase)
        }
        Command::Setup(args) => setup::run(args).await,
        Command::Route(args) => route::run(args).await,
        Command::EvalRouting(args) => eval::run(args).await,
        Command::ClassifierFeatures(args) => features::run(args),
        Command::Usage { config, hours } => usage::run(config.as_deref(), hours).await,
        Command::Status(args) => status::run(args).await,
        Command::Chat(args) => chat::run(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Stats(args) => stats::run(args).await,
        Command::Paths(args) => paths::run(&args),
        Command::Plugins(args) => plugins::run(args).await,
        Command::Ready(args) => ready::run(args).await,
    }
}

async fn serve(config_path: Option<PathBuf>, listen: Option<SocketAddr>, insecure_no_auth: bool) -> i32 {
    let loaded = match config::load_or_auto(config_path.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("freeway: {e}");
            return 2;
        }
    };
    match &loaded.path {
        Some(p) => tracing::info!("configuration: {}", p.display()),
        None => tracing::info!(
            "no configuration file: enabled {} provider(s) from their key variables",
            loaded.config.providers.len()
        ),
    }
    let addr = listen.unwrap_or(loaded.config.server.listen);
    run_gateway(loaded, addr, insecure_no_auth, |_| {}).await
}

/// Start the gateway on `addr` and serve until SIGTERM or Ctrl-C; `started` is told the URL it
/// listens on, once it does.
async fn run_gateway(
    loaded: config::LoadedConfig,
    addr: SocketAddr,
    insecure_no_auth: bool,
    started: impl FnOnce(&str),
) -> i32 {
    let grace = Duration::from_secs(loaded.config.server.shutdown_grace_secs);
    let server = loaded.config.server.clone();
    let app = match App::start(loaded).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("freeway: {e}");
            return 1;
        }
    };
    // after the start: virtual keys in the store close the gateway as static ones do
    match crate::server::exposure(&addr, &server, insecure_no_auth, app.keys.any()) {
        Ok(None) => {}
        Ok(Some(warning)) => tracing::warn!("{warning}"),
        Err(refusal) => {
            eprintln!("freeway: {refusal}");
            return 2;
        }
    }
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("freeway: cannot listen on {addr}: {e}");
            return 1;
        }
    };
    let local = listener.local_addr().map_or_else(|_| addr.to_string(), |a| a.to_string());
    spawn_sighup(app.clone());
    // printed whatever the log level: scripts and tests wait for this line
    println!("freeway listening on http://{local}");
    started(&format!("http://{local}"));
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let result = crate::server::serve(app.clone(), listener, grace, shutdown_signal()).await;
    // usage records still queued are committed before the process ends
    if !app.usage.flush(std::time::Duration::from_secs(5)).await {
        tracing::warn!("some usage records were not stored before exit");
    }
    // and the quota counters, so a restart knows what today already spent
    app.ledger.save().await;
    app.stats.save();
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            0
        }
        Err(e) => {
            eprintln!("freeway: server error: {e}");
            1
        }
    }
}

async fn check_config(config_path: Option<PathBuf>) -> i32 {
    let loaded = match config::load_or_auto(config_path.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let mut loaded = loaded;
    loaded.config.runtime.watch = false;
    let app = match App::start(loaded).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let snapshot = app.registry.snapshot();
    for p in &snapshot.providers {
        println!(
            "ok  provider {:<16} component {} {} ({} models, {} accounts)",
            p.id,
            p.component.name,
            p.component.manifest.version,
            p.models.len(),
            p.accounts.len()
        );
    }
    for problem in &snapshot.problems {
        println!("ERR {problem}");
    }
    i32::from(!snapshot.ready())
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// SIGHUP reloads the configuration (besides the file watcher).
fn spawn_sighup(app: std::sync::Arc<App>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
        while s.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the configuration");
            app.reloader.send(crate::registry::Event::ConfigChanged).await;
        }
    });
}
