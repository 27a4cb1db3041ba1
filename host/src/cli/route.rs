//! `freeway route --explain`: the routing decision for a prompt or a request, made on this
//! machine's configuration, accounts, quota state and live statistics, without sending
//! anything. `freeway eval-routing`: the classifier and `auto` measured on a labelled set.

use std::io::Read as _;
use std::path::PathBuf;

use clap::Args;

use crate::app::App;
use crate::config;

#[derive(Debug, Args)]
pub struct RouteArgs {
    /// Show every candidate, its score and why it was dropped (the only mode so far)
    #[arg(long)]
    pub explain: bool,
    /// The prompt (a user message); `-` reads it from stdin
    pub prompt: Option<String>,
    /// A chat completion request JSON file instead of a prompt (`-` for stdin)
    #[arg(long, conflicts_with = "prompt")]
    pub request: Option<PathBuf>,
    /// The model or alias to route (for a bare prompt)
    #[arg(long, default_value = "auto")]
    pub model: String,
    /// Print JSON (the admin endpoint's shape)
    #[arg(long)]
    pub json: bool,
    #[arg(long, short, env = "FREEWAY_CONFIG")]
    pub config: Option<PathBuf>,
}

fn read_stdin() -> Result<String, String> {
    let mut s = String::new();
    std::io::stdin().read_to_string(&mut s).map_err(|e| format!("reading stdin: {e}"))?;
    Ok(s)
}

/// The gateway's state as `serve` would build it, without listening.
pub async fn start_app(config_path: Option<&std::path::Path>) -> Result<std::sync::Arc<App>, String> {
    start_loaded(config::load_or_auto(config_path).map_err(|e| e.to_string())?).await
}

pub async fn start_loaded(mut loaded: config::LoadedConfig) -> Result<std::sync::Arc<App>, String> {
    // a dry run never waits on, nor writes, anything a running gateway owns
    loaded.config.discovery.interval_secs = 0;
    loaded.config.runtime.watch = false;
    App::start(loaded).await
}

pub async fn run(args: RouteArgs) -> i32 {
    if !args.explain {
        eprintln!("freeway route: only --explain is supported: freeway route --explain \"your prompt\"");
        return 2;
    }
    let body = match (&args.request, &args.prompt) {
        (Some(p), _) if p.as_os_str() == "-" => read_stdin().map(String::into_bytes),
        (Some(p), _) => std::fs::read(p).map_err(|e| format!("{}: {e}", p.display())),
        (None, Some(p)) if p == "-" => read_stdin().map(|t| crate::pipeline::explain::prompt_body(&args.model, &t)),
        (None, Some(p)) => Ok(crate::pipeline::explain::prompt_body(&args.model, p)),
        (None, None) => Err("give a prompt or --request FILE".to_owned()),
    };
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            eprintln!("freeway route: {e}");
            return 2;
        }
    };
    let app = match start_app(args.config.as_deref()).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("freeway route: {e}");
            return 1;
        }
    };
    match crate::pipeline::explain::dry_run(
        app.services(),
        &app.registry.snapshot(),
        &body,
        crate::principal::Principal::Anyone,
        true,
    )
    .await
    {
        Ok(d) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&crate::pipeline::explain::to_json(&d)).unwrap_or_default()
                );
            } else {
                print!("{}", crate::pipeline::explain::to_text(&d));
            }
            0
        }
        Err(e) => {
            eprintln!("freeway route: {}", e.message);
            2
        }
    }
}
