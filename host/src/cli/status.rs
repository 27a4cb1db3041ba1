//! `freeway status`: the running gateway's `GET /admin/status` in the terminal (or as JSON), once
//! or refreshed with `--watch`. With no gateway answering it says so and shows what the vault,
//! the health file and the quota state file hold.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::gateway::{CallError, Gateway};
use crate::status::Status;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The gateway (default: the configuration's listen address)
    #[arg(long, env = "FREEWAY_URL")]
    pub url: Option<String>,
    /// Print the JSON of `GET /admin/status`
    #[arg(long)]
    pub json: bool,
    /// Refresh every SECS seconds (default 2) until Ctrl-C
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "2")]
    pub watch: Option<u64>,
    #[arg(long, short, env = "FREEWAY_CONFIG")]
    pub config: Option<PathBuf>,
}

pub async fn run(args: StatusArgs) -> i32 {
    let loaded = crate::config::load_or_auto(args.config.as_deref()).ok();
    let gateway = match Gateway::new(args.url.as_deref(), loaded.as_ref()) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("freeway status: {e}");
            return 2;
        }
    };
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let Some(every) = args.watch else { return once(&gateway, args.json, colour, loaded.as_ref()).await };
    let every = Duration::from_secs(every.max(1));
    loop {
        if colour {
            // clear the screen, cursor home
            print!("\x1b[2J\x1b[H");
        }
        let code = once(&gateway, args.json, colour, None).await;
        if code == 2 {
            return code;
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = tokio::signal::ctrl_c() => return 0,
        }
    }
}

/// One look: 0 shown, 1 no gateway answering (the offline view follows when `offline` is
/// given), 2 the gateway refused.
async fn once(gateway: &Gateway, json: bool, colour: bool, offline: Option<&crate::config::LoadedConfig>) -> i32 {
    match gateway.admin_get("/admin/status").await {
        Ok(body) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&body).unwrap_or_default());
                return 0;
            }
            match serde_json::from_value::<Status>(body) {
                Ok(status) => {
                    print!("{}", super::status_view::render(&status, &gateway.url, colour));
                    0
                }
                Err(e) => {
                    eprintln!(
                        "freeway status: the gateway at {} answered in a shape this version does not read: {e}",
                        gateway.url
                    );
                    2
                }
            }
        }
        Err(CallError::Refused(status, m)) => {
            eprintln!("freeway status: the gateway at {} refused: HTTP {status}: {m}", gateway.url);
            2
        }
        Err(CallError::Unreachable(m)) => {
            eprintln!("freeway status: no gateway is answering at {} ({m}).", gateway.url);
            if let Some(loaded) = offline {
                offline_view(loaded, json);
            }
            1
        }
    }
}

/// What the files hold while no gateway runs: the vault's accounts with their last known health,
/// and the quota counters saved at the last stop.
fn offline_view(loaded: &crate::config::LoadedConfig, json: bool) {
    let saved = crate::quota::persist::load(&loaded.config.quota.state_file);
    if json {
        return;
    }
    println!("\nWhat the vault and state files hold:");
    let catalog = crate::config::Catalog::load(&loaded.config.catalog.files).unwrap_or_default();
    if let Err(e) = super::accounts::print_list(loaded, &catalog, None) {
        eprintln!("freeway status: {e}");
    }
    match saved {
        Ok(saved) if !saved.pools.is_empty() => {
            println!("Quota counters saved at the last stop ({}):", loaded.config.quota.state_file.display());
            let now = crate::clock::now_ms();
            for pool in &saved.pools {
                for (scope, book) in &pool.books {
                    for c in &book.counters {
                        let Some(limit) = c.limit() else { continue };
                        let scope = if scope == "*" { String::new() } else { format!(" ({scope})") };
                        let used = c.used_at(now);
                        println!(
                            "    {} pool {}{scope}: {} {}/{}",
                            pool.provider,
                            pool.pool,
                            crate::quota::spec::code(c.dim, c.window).to_uppercase(),
                            used,
                            limit
                        );
                    }
                }
            }
        }
        Ok(_) => println!("No quota counters saved yet."),
        Err(e) => eprintln!("freeway status: {e}"),
    }
}
