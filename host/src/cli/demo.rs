//! `freeway demo`: a first look with no keys at all. The project's upstream simulator plays a
//! small fleet of free providers (three providers, four accounts, small limits, one provider that
//! fails now and then), and a gateway serves over it with an admin key made for the session.
//! Everything lives in a fresh data folder; Ctrl-C stops the gateway and the simulator together.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;
use freeway_sim::{LimitsConfig, Profile, SimConfig, Simulator, UpstreamConfig};

use crate::config;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address the gateway listens on (default 127.0.0.1:8000; port 0 picks a free one)
    #[arg(long, default_value = "127.0.0.1:8000", value_parser = config::parse_listen)]
    pub listen: SocketAddr,
    /// Where the demo keeps its configuration, usage and vault (default: a new folder under the
    /// system's temporary directory, removed when the demo stops)
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Only print the dashboard's address (by default it is opened in the browser when this runs
    /// in a terminal)
    #[arg(long)]
    pub no_open: bool,
}

/// One simulated provider of the demo fleet.
struct Member {
    id: &'static str,
    profile: Profile,
    prefix: &'static str,
    /// (key, account label)
    keys: &'static [(&'static str, &'static str)],
    models: &'static [&'static str],
    rpm: u64,
    rpd: u64,
    /// answers this many requests per thousand with a 500
    errors_per_mille: u32,
    latency_ms: u64,
    token_delay_ms: u64,
    /// what the provider's rate-limit headers mean (as the catalog says for the real one)
    settings: &'static [(&'static str, &'static str)],
    /// the gateway is told the per-minute limit; without it, it learns it from the provider's
    /// headers and its 429s (and the account cools down when it runs into one)
    rpm_known: bool,
}

const FLEET: &[Member] = &[
    Member {
        id: "groq-sim",
        profile: Profile::Groq,
        prefix: "/groq/openai/v1",
        keys: &[("demo-groq-key-1", "personal"), ("demo-groq-key-2", "work")],
        models: &["llama-3.1-8b-instant", "llama-3.3-70b-versatile"],
        rpm: 6,
        rpd: 200,
        errors_per_mille: 0,
        latency_ms: 80,
        token_delay_ms: 20,
        settings: &[("requests_window", "day"), ("tokens_window", "minute")],
        rpm_known: true,
    },
    Member {
        id: "cerebras-sim",
        profile: Profile::Cerebras,
        prefix: "/cerebras/v1",
        keys: &[("demo-cerebras-key-1", "personal")],
        models: &["qwen-3-32b"],
        rpm: 4,
        rpd: 100,
        errors_per_mille: 0,
        latency_ms: 40,
        token_delay_ms: 8,
        settings: &[],
        rpm_known: true,
    },
    Member {
        id: "openrouter-sim",
        profile: Profile::OpenRouter,
        prefix: "/openrouter/api/v1",
        keys: &[("demo-openrouter-key-1", "personal")],
        models: &["deepseek/deepseek-chat-v3:free"],
        rpm: 5,
        rpd: 50,
        // the flaky one: the gateway falls back, cools it down and shows why; and its minute limit
        // is not configured, so a busy minute ends in the provider's 429 and a cooldown
        errors_per_mille: 200,
        latency_ms: 250,
        token_delay_ms: 30,
        settings: &[],
        rpm_known: false,
    },
];

fn simulator_config() -> SimConfig {
    SimConfig {
        record: false,
        upstreams: FLEET
            .iter()
            .map(|m| UpstreamConfig {
                prefix: m.prefix.to_owned(),
                profile: m.profile,
                keys: m.keys.iter().map(|(k, _)| (*k).to_owned()).collect(),
                models: m.models.iter().map(|s| (*s).to_owned()).collect(),
                strict_models: true,
                latency_ms: m.latency_ms,
                token_delay_ms: m.token_delay_ms,
                reply_tokens: 48,
                limits: Some(LimitsConfig { rpm: Some(m.rpm), rpd: Some(m.rpd), ..LimitsConfig::default() }),
                error_per_mille: m.errors_per_mille,
                model_limits: Default::default(),
                ..UpstreamConfig::default()
            })
            .collect(),
    }
}

/// A TOML string literal.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// The gateway's configuration over the simulator at `sim` (`http://HOST:PORT`), its files under
/// `data`.
fn gateway_config(sim: &str, data: &Path, admin_key: &str) -> String {
    let path = |name: &str| quoted(&data.join(name).display().to_string());
    let mut out = format!(
        "# written by `freeway demo`: a gateway over the simulated fleet\n\n\
         [server]\nadmin_key = {admin}\n\n\
         [upstream]\negress_hosts = [\"127.0.0.1\"]\nproxy_from_env = false\n\n\
         [discovery]\ninterval_secs = 0\nstate_file = {models}\n\n\
         [vault]\npath = {vault}\nkey_file = {key}\naudit_log = {audit}\nhealth_file = {health}\n\n\
         [storage]\nurl = {storage}\n\n\
         [quota]\nstate_file = {quota}\n\n\
         [routing]\nstats_file = {stats}\n\n",
        admin = quoted(admin_key),
        models = path("models.json"),
        vault = path("vault.json"),
        key = path("master.key"),
        audit = path("audit.log"),
        health = path("health.json"),
        storage = quoted(&format!("sqlite://{}", data.join("freeway.db").display())),
        quota = path("quota.json"),
        stats = path("route-stats.json"),
    );
    for m in FLEET {
        let keys: Vec<String> =
            m.keys.iter().map(|(k, label)| format!("{{ key = {}, label = {} }}", quoted(k), quoted(label))).collect();
        let models: Vec<String> = m.models.iter().map(|s| quoted(s)).collect();
        let settings: Vec<String> = m.settings.iter().map(|(k, v)| format!("{k} = {}", quoted(v))).collect();
        let limits = if m.rpm_known { format!("rpm = {}, rpd = {}", m.rpm, m.rpd) } else { format!("rpd = {}", m.rpd) };
        out.push_str(&format!(
            "[[providers]]\nid = {id}\ncomponent = \"openai-compat\"\nbase_url = {base}\napi_keys = [{keys}]\nmodels = [{models}]\nlimits = {{ {limits} }}\nsettings = {{ {settings} }}\n\n",
            id = quoted(m.id),
            base = quoted(&format!("{sim}{}", m.prefix)),
            keys = keys.join(", "),
            models = models.join(", "),
            settings = settings.join(", "),
        ));
    }
    out
}

/// Open `url` with the desktop's handler, if there is one (nothing happens otherwise).
fn open_in_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") { "open" } else { "xdg-open" };
    let _ = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}

/// A fresh random admin key for the session.
fn session_key() -> Result<String, String> {
    let mut bytes = [0u8; 18];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for the admin key: {e}"))?;
    Ok(format!("fw-demo-{}", hex::encode(bytes)))
}

pub async fn run(args: DemoArgs) -> i32 {
    let (data, temporary) = match &args.data {
        Some(d) => (d.clone(), false),
        None => (std::env::temp_dir().join(format!("freeway-demo-{}", std::process::id())), true),
    };
    let code = demo(&args, &data).await;
    if temporary {
        let _ = std::fs::remove_dir_all(&data);
    }
    code
}

async fn demo(args: &DemoArgs, data: &Path) -> i32 {
    if let Err(e) = std::fs::create_dir_all(data) {
        eprintln!("freeway demo: {}: {e}", data.display());
        return 1;
    }
    let sim = match Simulator::start(SocketAddr::from(([127, 0, 0, 1], 0)), simulator_config()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("freeway demo: cannot start the simulator: {e}");
            return 1;
        }
    };
    let admin_key = match session_key() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("freeway demo: {e}");
            return 1;
        }
    };
    let config_path = data.join("freeway.toml");
    if let Err(e) = std::fs::write(&config_path, gateway_config(&sim.url(""), data, &admin_key)) {
        eprintln!("freeway demo: {}: {e}", config_path.display());
        return 1;
    }
    let loaded = match config::load(&config_path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("freeway demo: {e}");
            return 1;
        }
    };
    let open = !args.no_open && std::io::IsTerminal::is_terminal(&std::io::stdout());
    let code = super::run_gateway(loaded, args.listen, false, |url| {
        println!(
            "\nFreeway demo: a gateway over a simulated fleet (groq-sim, cerebras-sim, openrouter-sim; small limits;\n\
             openrouter-sim fails one request in five, and its minute limit is learned the hard way). No real provider is called.\n\n\
             \x20 dashboard     {url}/ui  (sign in with the admin key)\n\
             \x20 admin key     {admin_key}\n\
             \x20 chat          freeway chat --url {url}\n\
             \x20 live status   FREEWAY_ADMIN_KEY={admin_key} freeway status --watch --url {url}\n\
             \x20 usage         FREEWAY_ADMIN_KEY={admin_key} freeway stats --url {url}\n\
             \x20 any client    OpenAI base URL {url}/v1, model \"auto\"\n\
             \x20 configuration {}\n\n\
             Ctrl-C stops the demo.",
            config_path.display()
        );
        if open {
            open_in_browser(&format!("{url}/ui"));
        }
    })
    .await;
    sim.shutdown().await;
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_fleet_has_several_providers_and_accounts_and_one_that_fails() {
        assert!(FLEET.len() >= 3);
        assert!(FLEET.iter().map(|m| m.keys.len()).sum::<usize>() >= 4);
        assert!(FLEET.iter().any(|m| m.errors_per_mille > 0));
        assert!(FLEET.iter().any(|m| !m.rpm_known), "one provider's minute limit is met the hard way");
        assert_eq!(simulator_config().normalized().map(|c| c.upstreams.len()).ok(), Some(FLEET.len()));
    }

    #[test]
    fn the_generated_configuration_loads_with_every_provider_and_account() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("freeway.toml");
        std::fs::write(&path, gateway_config("http://127.0.0.1:9", dir.path(), "fw-demo-key")).unwrap();
        let loaded = config::load(&path).unwrap();
        let c = &loaded.config;
        assert_eq!(c.providers.len(), FLEET.len());
        assert_eq!(c.providers.iter().map(|p| p.api_keys.len()).sum::<usize>(), 4);
        assert_eq!(c.server.admin_key.as_ref().map(|k| k.expose().to_owned()).as_deref(), Some("fw-demo-key"));
        assert!(c.storage.effective_url().starts_with("sqlite://"));
        let groq = &c.providers[0];
        assert_eq!(groq.settings.get("requests_window").map(|v| v.0.as_str()), Some("day"));
    }
}
