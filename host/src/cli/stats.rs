//! `freeway stats`: usage analytics from a running gateway's `GET /admin/stats` — requests,
//! success, tokens and latency per provider, model, account and client key, the hourly trend,
//! errors by class and how close each quota pool came to its limits.

use std::path::PathBuf;

use clap::Args;

use super::gateway::{CallError, Gateway};
use crate::report::Report;

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The period: 30m, 1h, 24h, 7d (at most 31d)
    #[arg(long, default_value = "24h")]
    pub since: String,
    /// Print the JSON of `GET /admin/stats`
    #[arg(long)]
    pub json: bool,
    /// Only this client key's usage: a virtual key's name or id (`freeway keys list`), or key-N
    #[arg(long)]
    pub key: Option<String>,
    /// The gateway (default: the configuration's listen address)
    #[arg(long, env = "FREEWAY_URL")]
    pub url: Option<String>,
    #[arg(long, short, env = "FREEWAY_CONFIG")]
    pub config: Option<PathBuf>,
}

pub async fn run(args: StatsArgs) -> i32 {
    if let Err(e) = crate::report::parse_period(&args.since) {
        eprintln!("freeway stats: --since {e}");
        return 2;
    }
    let loaded = crate::config::load_or_auto(args.config.as_deref()).ok();
    let gateway = match Gateway::new(args.url.as_deref(), loaded.as_ref()) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("freeway stats: {e}");
            return 2;
        }
    };
    let mut path = format!("/admin/stats?since={}", args.since.trim());
    if let Some(key) = &args.key {
        let encoded: String = url::form_urlencoded::byte_serialize(key.trim().as_bytes()).collect();
        path.push_str("&key=");
        path.push_str(&encoded);
    }
    match gateway.admin_get(&path).await {
        Ok(body) if args.json => {
            println!("{}", serde_json::to_string_pretty(&body).unwrap_or_default());
            0
        }
        Ok(body) => match serde_json::from_value::<Report>(body) {
            Ok(report) => {
                print!("{}", super::stats_view::render(&report));
                0
            }
            Err(e) => {
                eprintln!("freeway stats: the gateway answered in a shape this version does not read: {e}");
                2
            }
        },
        Err(CallError::Unreachable(m)) => {
            eprintln!(
                "freeway stats: no gateway is answering at {} ({m}); `freeway usage` reads the usage store directly.",
                gateway.url
            );
            1
        }
        Err(e) => {
            eprintln!("freeway stats: the gateway at {} refused: {e}", gateway.url);
            2
        }
    }
}
