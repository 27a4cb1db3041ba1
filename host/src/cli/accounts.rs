//! `freeway accounts ...` and `freeway vault rotate-key`: managing credentials in the vault.
//! Keys come from a hidden prompt or `--key-stdin`, never from an argument (which would land in
//! shell history); they are shown masked (`gsk_…a1b2`) and never printed.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};

use super::catalog_views::{load, table};
use crate::accounts::audit;
use crate::accounts::health::HealthRecord;
use crate::accounts::manage::Manager;
use crate::app::App;
use crate::config::{Catalog, LoadedConfig, SecretString};
use crate::registry::recheck::{self, Verdict};
use crate::vault::{AccountTier, KeyKind, MasterKey, NewAccount, Vault, VaultError};

#[derive(Debug, Args)]
pub struct AccountsArgs {
    #[command(subcommand)]
    pub command: AccountsCommand,
    #[arg(long, short, env = "FREEWAY_CONFIG", global = true)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TierArg {
    Free,
    Credits,
}

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Add an account (the key is asked for, hidden; or read from stdin with --key-stdin)
    Add {
        provider: String,
        #[arg(long)]
        label: Option<String>,
        /// quota pool: keys of one provider account share one (e.g. two OpenRouter keys)
        #[arg(long)]
        pool: Option<String>,
        /// read the key from the first line of stdin
        #[arg(long)]
        key_stdin: bool,
        /// a non-secret account setting, e.g. --setting account_id=abc (Cloudflare)
        #[arg(long = "setting", value_parser = parse_setting)]
        settings: Vec<(String, String)>,
        #[arg(long, value_enum, default_value = "free")]
        tier: TierArg,
    },
    /// List accounts (keys masked) with their status, pool and the provider's data-use notes
    List {
        #[arg(long)]
        provider: Option<String>,
    },
    /// Remove an account
    Remove { account: String },
    /// Put an account back into rotation
    Enable { account: String },
    /// Take an account out of rotation
    Disable { account: String },
    /// Check credentials with each provider's cheapest call
    Check { accounts: Vec<String> },
    /// Import keys: from the environment (`env`), a .env file, or a TOML file of [[accounts]]
    Import { source: String },
    /// Write an encrypted backup of every account (sealed with a passphrase you choose)
    Export {
        file: PathBuf,
        /// read the passphrase from stdin
        #[arg(long)]
        passphrase_stdin: bool,
    },
}

fn parse_setting(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("\"{s}\" is not key=value"))?;
    Ok((k.trim().to_owned(), v.trim().to_owned()))
}

/// A secret from stdin or a hidden prompt.
pub fn read_secret(prompt: &str, from_stdin: bool) -> Result<SecretString, String> {
    if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(|e| format!("reading stdin: {e}"))?;
        let line = line.trim();
        if line.is_empty() {
            return Err("no key on stdin".into());
        }
        return Ok(SecretString::new(line));
    }
    let value = inquire::Password::new(prompt)
        .without_confirmation()
        .with_display_mode(inquire::PasswordDisplayMode::Hidden)
        .prompt()
        .map_err(|e| e.to_string())?;
    Ok(SecretString::new(value.trim()))
}

fn manager<'a>(loaded: &'a LoadedConfig, catalog: &'a Catalog) -> Manager<'a> {
    Manager {
        vault: &loaded.config.vault,
        catalog,
        actor: audit::cli_actor(),
        passphrase: None,
        configured: loaded.config.providers.iter().map(|p| p.id.get_ref().clone()).collect(),
    }
}

pub async fn run(args: AccountsArgs) -> i32 {
    let (loaded, catalog) = match load(args.config.as_deref()) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("freeway: {e}");
            return 2;
        }
    };
    let result = match args.command {
        AccountsCommand::Add { provider, label, pool, key_stdin, settings, tier } => {
            add(&loaded, &catalog, provider, label, pool, key_stdin, settings, tier)
        }
        AccountsCommand::List { provider } => print_list(&loaded, &catalog, provider.as_deref()),
        AccountsCommand::Remove { account } => manager(&loaded, &catalog)
            .remove(&account)
            .map(|r| {
                println!("removed {} ({} {}, {})", r.id, r.provider, r.label, r.masked);
            })
            .map_err(|e| e.to_string()),
        AccountsCommand::Enable { account } => toggle(&loaded, &catalog, &account, true),
        AccountsCommand::Disable { account } => toggle(&loaded, &catalog, &account, false),
        AccountsCommand::Check { accounts } => return check(loaded, &accounts).await,
        AccountsCommand::Import { source } => import(&loaded, &catalog, &source),
        AccountsCommand::Export { file, passphrase_stdin } => export(&loaded, &file, passphrase_stdin),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("freeway: {e}");
            1
        }
    }
}

#[expect(clippy::too_many_arguments, reason = "one argument per command-line option")]
fn add(
    loaded: &LoadedConfig,
    catalog: &Catalog,
    provider: String,
    label: Option<String>,
    pool: Option<String>,
    key_stdin: bool,
    settings: Vec<(String, String)>,
    tier: TierArg,
) -> Result<(), String> {
    let name = catalog.provider(&provider).map_or(provider.clone(), |p| p.name.clone());
    let secret = read_secret(&format!("{name} API key:"), key_stdin)?;
    let settings: BTreeMap<String, String> = settings.into_iter().collect();
    if let Some(entry) = catalog.provider(&provider) {
        for needed in &entry.account_settings {
            if !settings.contains_key(needed) {
                return Err(format!("{name} accounts need --setting {needed}=..."));
            }
        }
    }
    let tier = match tier {
        TierArg::Free => AccountTier::Free,
        TierArg::Credits => AccountTier::Credits,
    };
    let (record, warnings) = manager(loaded, catalog)
        .add(NewAccount { provider, label, pool, secret, settings, tier })
        .map_err(|e| e.to_string())?;
    for w in warnings {
        eprintln!("warning: {w}");
    }
    println!("added {} ({} {}, {}, pool {})", record.id, record.provider, record.label, record.masked, record.pool);
    Ok(())
}

fn toggle(loaded: &LoadedConfig, catalog: &Catalog, account: &str, enabled: bool) -> Result<(), String> {
    let r = manager(loaded, catalog).set_enabled(account, enabled).map_err(|e| e.to_string())?;
    println!("{} {} ({} {})", if enabled { "enabled" } else { "disabled" }, r.id, r.provider, r.label);
    Ok(())
}

fn open_vault(loaded: &LoadedConfig) -> Result<Option<Vault>, VaultError> {
    let paths = loaded.config.vault.paths();
    if !paths.vault.exists() {
        return Ok(None);
    }
    Vault::open(&paths, None).map(Some)
}

pub(super) fn print_list(loaded: &LoadedConfig, catalog: &Catalog, provider: Option<&str>) -> Result<(), String> {
    let Some(vault) = open_vault(loaded).map_err(|e| e.to_string())? else {
        println!("No accounts yet: freeway accounts add <provider> (or freeway setup).");
        return Ok(());
    };
    let health: BTreeMap<String, HealthRecord> = std::fs::read(&loaded.config.vault.health_file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let now_ms = crate::clock::now_ms();
    let mut t = table(&["ID", "PROVIDER", "LABEL", "KEY", "POOL", "TIER", "STATUS", "DATA USE"]);
    for r in vault.records().iter().filter(|r| provider.is_none_or(|p| r.provider == p)) {
        let status = if !r.enabled {
            "disabled by you".to_owned()
        } else {
            health.get(&r.id).map_or_else(|| "enabled".to_owned(), |h| h.describe(now_ms))
        };
        let terms = catalog.provider(&r.provider).map(|p| &p.terms);
        let mut data_use = Vec::new();
        if let Some(t) = terms {
            if t.trains_on_data == Some(true) {
                data_use.push("free-tier prompts may be used for training".to_owned());
            }
            if t.evaluation_only {
                data_use.push("evaluation only".to_owned());
            }
        }
        t.add_row(vec![
            r.id.clone(),
            r.provider.clone(),
            r.label.clone(),
            r.masked.clone(),
            if r.pool == r.id { "own".to_owned() } else { r.pool.clone() },
            format!("{:?}", r.tier).to_lowercase(),
            status,
            if data_use.is_empty() { "-".to_owned() } else { data_use.join("; ") },
        ]);
    }
    println!("{t}");
    Ok(())
}

async fn check(mut loaded: LoadedConfig, which: &[String]) -> i32 {
    loaded.config.runtime.watch = false;
    loaded.config.discovery.interval_secs = 0;
    let app = match App::start(loaded).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("freeway: {e}");
            return 1;
        }
    };
    let snapshot = app.registry.snapshot();
    let mut t = table(&["ACCOUNT", "PROVIDER", "LABEL", "RESULT", "DETAIL"]);
    let mut bad = false;
    for p in &snapshot.providers {
        for a in &p.accounts {
            if a.secret.is_none() || (!which.is_empty() && !which.iter().any(|w| w == &a.id || w == &a.label)) {
                continue;
            }
            let verdict = recheck::check(p, a).await;
            bad |= !matches!(verdict, Verdict::Valid);
            let detail = match &verdict {
                Verdict::Valid => String::new(),
                Verdict::Invalid(m) | Verdict::RateLimited(m) | Verdict::Unreachable(m) => m.clone(),
            };
            t.add_row(vec![a.id.clone(), p.id.clone(), a.label.clone(), verdict.label().to_owned(), detail]);
        }
    }
    println!("{t}");
    i32::from(bad)
}

/// Keys found in a .env-style text: `NAME=value` lines for the catalog's key variables.
pub fn keys_in_dotenv(text: &str, catalog: &Catalog) -> Vec<(String, SecretString)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim().trim_start_matches("export ").trim();
        let Some((name, value)) = line.split_once('=') else { continue };
        let value = value.trim().trim_matches('"').trim_matches('\'');
        if value.is_empty() || name.starts_with('#') {
            continue;
        }
        if let Some(p) = catalog.providers.iter().find(|p| p.key_env.iter().any(|v| v == name.trim())) {
            out.push((p.id.clone(), SecretString::new(value)));
        }
    }
    out
}

fn import(loaded: &LoadedConfig, catalog: &Catalog, source: &str) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    struct File {
        #[serde(default)]
        accounts: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Entry {
        provider: String,
        key: String,
        #[serde(default)]
        label: Option<String>,
        #[serde(default)]
        pool: Option<String>,
        #[serde(default)]
        settings: BTreeMap<String, String>,
    }
    let plain = |provider: String, secret: SecretString| NewAccount {
        provider,
        label: None,
        pool: None,
        secret,
        settings: BTreeMap::new(),
        tier: AccountTier::Free,
    };
    let entries: Vec<NewAccount> = if source == "env" {
        catalog
            .providers
            .iter()
            .filter_map(|p| {
                let key = p.key_env.iter().find_map(|v| std::env::var(v).ok().filter(|k| !k.trim().is_empty()))?;
                Some(plain(p.id.clone(), SecretString::new(key.trim())))
            })
            .collect()
    } else {
        let path = Path::new(source);
        let text = std::fs::read_to_string(path).map_err(|e| format!("{source}: {e}"))?;
        if path.extension().is_some_and(|e| e == "toml") {
            let f: File = toml::from_str(&text).map_err(|e| format!("{source}: {e}"))?;
            f.accounts
                .into_iter()
                .map(|e| NewAccount {
                    provider: e.provider,
                    label: e.label,
                    pool: e.pool,
                    secret: SecretString::new(e.key.trim()),
                    settings: e.settings,
                    tier: AccountTier::Free,
                })
                .collect()
        } else {
            keys_in_dotenv(&text, catalog).into_iter().map(|(p, k)| plain(p, k)).collect()
        }
    };
    if entries.is_empty() {
        return Err(format!("no provider keys found in {source}"));
    }
    let m = manager(loaded, catalog);
    let (mut added, mut skipped) = (0, 0);
    for new in entries {
        let provider = new.provider.clone();
        match m.add(new) {
            Ok((r, warnings)) => {
                for w in warnings {
                    eprintln!("warning: {w}");
                }
                println!("added {} ({} {}, {})", r.id, r.provider, r.label, r.masked);
                added += 1;
            }
            Err(VaultError::Invalid(m)) if m.contains("already") => {
                println!("skipped a {provider} key already in the vault");
                skipped += 1;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    println!("{added} added, {skipped} already there");
    Ok(())
}

fn export(loaded: &LoadedConfig, file: &Path, passphrase_stdin: bool) -> Result<(), String> {
    let vault = open_vault(loaded).map_err(|e| e.to_string())?.ok_or("there is no vault to export")?;
    let passphrase = read_secret("Passphrase for the backup:", passphrase_stdin)?;
    let text = vault.export(passphrase.expose()).map_err(|e| e.to_string())?;
    crate::vault::key::write_atomic(file, text.as_bytes()).map_err(|e| format!("{}: {e}", file.display()))?;
    println!("wrote {} account(s) to {}, sealed with your passphrase", vault.records().len(), file.display());
    Ok(())
}

/// `freeway vault rotate-key`
pub fn rotate_key(config: Option<&Path>, passphrase: bool) -> i32 {
    let (loaded, catalog) = match load(config) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("freeway: {e}");
            return 2;
        }
    };
    let paths = loaded.config.vault.paths();
    let current = match Vault::open(&paths, None) {
        Ok(v) => v.key_kind(),
        Err(e) => {
            eprintln!("freeway: {e}");
            return 1;
        }
    };
    let new = if passphrase {
        match read_secret("New passphrase:", false)
            .and_then(|p| crate::vault::key::Kdf::new().map_err(|e| e.to_string()).map(|k| (p, k)))
            .and_then(|(p, k)| MasterKey::from_passphrase(p.expose(), k).map_err(|e| e.to_string()))
        {
            Ok(k) => k,
            Err(e) => {
                eprintln!("freeway: {e}");
                return 1;
            }
        }
    } else {
        let kind = if current == KeyKind::Env { KeyKind::Env } else { KeyKind::File };
        match MasterKey::generate(kind) {
            Ok(k) => k,
            Err(e) => {
                eprintln!("freeway: {e}");
                return 1;
            }
        }
    };
    let kind = new.kind;
    let printable = new.to_base64();
    if let Err(e) = manager(&loaded, &catalog).rotate_key(new) {
        eprintln!("freeway: {e}");
        return 1;
    }
    match kind {
        KeyKind::Env => {
            println!("The vault is re-encrypted. Set the new key before the next start:");
            println!("FREEWAY_MASTER_KEY={}", printable.as_str());
        }
        KeyKind::File => println!("The vault is re-encrypted under a new key in {}.", paths.key_file.display()),
        KeyKind::Passphrase => println!("The vault is re-encrypted under the new passphrase."),
    }
    0
}
