//! `freeway ready`: exit 0 when a running gateway is ready to serve (`GET /ready` answers 200),
//! 1 otherwise (unreachable, not ready, or a bad `--url`). For container health checks, where
//! there is no curl.

use clap::Args;

use super::gateway::Gateway;

#[derive(Debug, Args)]
pub struct ReadyArgs {
    /// The gateway (default: the configuration's listen address)
    #[arg(long, env = "FREEWAY_URL")]
    pub url: Option<String>,
    #[arg(long, short, env = "FREEWAY_CONFIG")]
    pub config: Option<std::path::PathBuf>,
}

pub async fn run(args: ReadyArgs) -> i32 {
    let loaded = if args.url.is_some() { None } else { crate::config::load_or_auto(args.config.as_deref()).ok() };
    let gateway = match Gateway::new(args.url.as_deref(), loaded.as_ref()) {
        Ok(g) => g,
        Err(e) => {
            // 1, not 2: Docker reserves exit code 2 in HEALTHCHECK
            eprintln!("freeway ready: {e}");
            return 1;
        }
    };
    match gateway.ready().await {
        Ok(200) => {
            println!("ready");
            0
        }
        Ok(status) => {
            println!("not ready (HTTP {status} from {}/ready)", gateway.url);
            1
        }
        Err(e) => {
            println!("not ready: {e}");
            1
        }
    }
}
