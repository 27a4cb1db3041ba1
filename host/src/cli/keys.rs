//! `freeway keys`: virtual client keys, read and written in the usage store directly (no
//! running gateway needed; running gateways pick changes up within `[keys] refresh_ms`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::catalog_views::table;
use crate::config;
use crate::keys::manage::{self, KeyPatch, ManageError, NewKey, split_list};
use crate::keys::view;
use crate::store::Store;

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
    #[arg(long, short, env = "FREEWAY_CONFIG", global = true)]
    pub config: Option<PathBuf>,
}

/// A key's limits and settings, as `create` and `update` take them.
#[derive(Debug, Args, Default)]
pub struct KeySettings {
    /// Models it may use, comma-separated: names, aliases, `provider/model`, `auto`, globs
    /// (`auto:*`, `llama-*`); what `auto` picks is held to the model entries
    #[arg(long)]
    pub models: Option<String>,
    /// Requests per minute (`none` removes the limit, with update)
    #[arg(long)]
    pub rpm: Option<String>,
    /// Tokens per minute
    #[arg(long)]
    pub tpm: Option<String>,
    /// Requests per day (days start at midnight in `[keys] timezone`)
    #[arg(long)]
    pub rpd: Option<String>,
    /// Tokens per day
    #[arg(long)]
    pub tpd: Option<String>,
    /// Tokens per calendar month
    #[arg(long)]
    pub monthly_tokens: Option<String>,
    /// When it stops working: a date (works through that day), an instant, or a span (30d);
    /// `never` removes it (update)
    #[arg(long)]
    pub expires: Option<String>,
    /// Tags routing rules, policies and the wait queue's weights see, comma-separated
    #[arg(long)]
    pub tags: Option<String>,
    /// The routing policy its `auto` requests use (`none` removes it)
    #[arg(long)]
    pub policy: Option<String>,
    /// Providers to try first, comma-separated, in order
    #[arg(long)]
    pub prefer: Option<String>,
    /// The most a request may wait for quota, in ms (`none` removes it)
    #[arg(long)]
    pub max_wait_ms: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a key: its secret is printed once, only its hash is stored
    Create {
        #[arg(long)]
        name: String,
        #[command(flatten)]
        settings: KeySettings,
        /// Print the new key as JSON ({"id","name","key"})
        #[arg(long)]
        json: bool,
    },
    /// Every key, masked, with its usage against each limit
    List {
        /// Revoked and expired keys too
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Change a key's limits, models, tags, expiry or name
    Update {
        /// The key's name or id
        key: String,
        /// A new name
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        settings: KeySettings,
    },
    /// A new secret for the same key (same id, limits and usage)
    Rotate {
        key: String,
        /// How long the old secret keeps working (e.g. 10m, 24h; default: it stops now)
        #[arg(long)]
        grace: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key: it stops working on every gateway within [keys] refresh_ms
    Revoke { key: String },
}

/// `N` → `Some(N)`, `none` → `None`.
fn limit(flag: &str, text: &str) -> Result<Option<u64>, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    t.replace('_', "").parse::<u64>().map(Some).map_err(|_| format!("--{flag} {t:?}: a whole number, or none"))
}

fn limit_patch(flag: &str, v: Option<&String>) -> Result<Option<Option<u64>>, String> {
    v.map(|t| limit(flag, t)).transpose()
}

fn limit_new(flag: &str, v: Option<&String>) -> Result<Option<u64>, String> {
    Ok(limit_patch(flag, v)?.flatten())
}

fn span(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("{t:?}: a span like 30s, 10m, 24h or 7d"))?;
    let secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{t:?}: a span like 30s, 10m, 24h or 7d")),
    };
    Ok(Duration::from_secs(n.saturating_mul(secs)))
}

struct Env {
    store: Store,
    zone: jiff::tz::TimeZone,
}

async fn open(config_path: Option<&std::path::Path>) -> Result<Env, (i32, String)> {
    let loaded = config::load_or_auto(config_path).map_err(|e| (2, e.to_string()))?;
    let store = Store::open(&loaded.config.storage.effective_url()).await.map_err(|e| (1, e))?;
    Ok(Env { store, zone: loaded.config.keys.zone() })
}

fn failure(e: &ManageError) -> i32 {
    match e {
        ManageError::Store(_) => 1,
        _ => 2,
    }
}

pub async fn run(args: KeysArgs) -> i32 {
    let env = match open(args.config.as_deref()).await {
        Ok(e) => e,
        Err((code, m)) => {
            eprintln!("freeway keys: {m}");
            return code;
        }
    };
    let now = crate::clock::now_ms();
    let result = match args.command {
        KeysCommand::Create { name, settings, json } => create(&env, name, &settings, json, now).await,
        KeysCommand::List { all, json } => list(&env, all, json, now).await,
        KeysCommand::Update { key, name, settings } => update(&env, &key, name, &settings, now).await,
        KeysCommand::Rotate { key, grace, json } => rotate(&env, &key, grace.as_deref(), json, now).await,
        KeysCommand::Revoke { key } => match manage::revoke(&env.store, &key, now).await {
            Ok(row) => {
                println!("revoked {} ({}); every gateway refuses it within its [keys] refresh_ms", row.name, row.id);
                Ok(())
            }
            Err(e) => Err((failure(&e), e.to_string())),
        },
    };
    match result {
        Ok(()) => 0,
        Err((code, m)) => {
            eprintln!("freeway keys: {m}");
            code
        }
    }
}

type Outcome = Result<(), (i32, String)>;

fn usage_error(m: String) -> (i32, String) {
    (2, m)
}

async fn create(env: &Env, name: String, s: &KeySettings, json: bool, now: u64) -> Outcome {
    let new = NewKey {
        name,
        models: s.models.as_deref().map(split_list).unwrap_or_default(),
        rpm: limit_new("rpm", s.rpm.as_ref()).map_err(usage_error)?,
        tpm: limit_new("tpm", s.tpm.as_ref()).map_err(usage_error)?,
        rpd: limit_new("rpd", s.rpd.as_ref()).map_err(usage_error)?,
        tpd: limit_new("tpd", s.tpd.as_ref()).map_err(usage_error)?,
        monthly_tokens: limit_new("monthly-tokens", s.monthly_tokens.as_ref()).map_err(usage_error)?,
        expires_at_ms: s
            .expires
            .as_deref()
            .map(|t| manage::parse_expiry(t, &env.zone, now))
            .transpose()
            .map_err(|e| (2, e.to_string()))?,
        tags: s.tags.as_deref().map(split_list).unwrap_or_default(),
        policy: s.policy.clone().filter(|p| !p.eq_ignore_ascii_case("none")),
        prefer: s.prefer.as_deref().map(split_list).unwrap_or_default(),
        max_wait_ms: limit_new("max-wait-ms", s.max_wait_ms.as_ref()).map_err(usage_error)?,
    };
    let (row, secret) = manage::create(&env.store, new, now).await.map_err(|e| (failure(&e), e.to_string()))?;
    if json {
        println!("{}", serde_json::json!({ "id": row.id, "name": row.name, "key": secret }));
    } else {
        println!("{secret}");
        eprintln!(
            "key {} ({}) made: the line above is its secret, shown this once (only its hash is kept)",
            row.name, row.id
        );
    }
    Ok(())
}

async fn list(env: &Env, all: bool, json: bool, now: u64) -> Outcome {
    let rows = env.store.keys_all().await.map_err(|e| (1, e.to_string()))?;
    let (minute, day, month) = view::window_starts(now, &env.zone);
    let usage = env.store.keys_usage(minute, day, month).await.map_err(|e| (1, e.to_string()))?;
    let rows: Vec<_> = rows.into_iter().filter(|r| all || view::is_active(r, now)).collect();
    if json {
        let data: Vec<_> =
            rows.iter().map(|r| view::key_json(r, &usage.get(&r.id).copied().unwrap_or_default(), now)).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "object": "list", "data": data })).unwrap_or_default()
        );
        return Ok(());
    }
    let mut t = table(&[
        "NAME",
        "ID",
        "KEY",
        "STATUS",
        "MODELS",
        "RPM",
        "TPM",
        "RPD",
        "TPD",
        "TOKENS/MONTH",
        "TAGS",
        "EXPIRES",
    ]);
    for r in &rows {
        let u = usage.get(&r.id).copied().unwrap_or_default();
        let l = &r.doc.limits;
        let expires = r.doc.expires_at_ms.map_or_else(
            || "-".to_owned(),
            |ms| {
                jiff::Timestamp::from_millisecond(i64::try_from(ms).unwrap_or(i64::MAX)).map_or_else(
                    |_| ms.to_string(),
                    |t| t.to_zoned(env.zone.clone()).strftime("%Y-%m-%d %H:%M").to_string(),
                )
            },
        );
        t.add_row(vec![
            r.name.clone(),
            r.id.clone(),
            r.doc.hint.clone(),
            r.doc.standing(now).as_str().to_owned(),
            if r.doc.models.is_empty() { "*".to_owned() } else { r.doc.models.join(",") },
            view::cell(u.requests_minute, l.rpm),
            view::cell(u.tokens_minute, l.tpm),
            view::cell(u.requests_day, l.rpd),
            view::cell(u.tokens_day, l.tpd),
            view::cell(u.tokens_month, l.monthly_tokens),
            r.doc.tags.join(","),
            expires,
        ]);
    }
    println!("{t}");
    println!(
        "{} key(s); usage from the usage store (days and months in {})",
        rows.len(),
        env.zone.iana_name().unwrap_or("UTC")
    );
    Ok(())
}

async fn update(env: &Env, key: &str, name: Option<String>, s: &KeySettings, now: u64) -> Outcome {
    let expires = match s.expires.as_deref() {
        None => None,
        Some(t) if t.trim().eq_ignore_ascii_case("never") || t.trim().eq_ignore_ascii_case("none") => Some(None),
        Some(t) => Some(Some(manage::parse_expiry(t, &env.zone, now).map_err(|e| (2, e.to_string()))?)),
    };
    let patch = KeyPatch {
        name,
        models: s.models.as_deref().map(split_list),
        rpm: limit_patch("rpm", s.rpm.as_ref()).map_err(usage_error)?,
        tpm: limit_patch("tpm", s.tpm.as_ref()).map_err(usage_error)?,
        rpd: limit_patch("rpd", s.rpd.as_ref()).map_err(usage_error)?,
        tpd: limit_patch("tpd", s.tpd.as_ref()).map_err(usage_error)?,
        monthly_tokens: limit_patch("monthly-tokens", s.monthly_tokens.as_ref()).map_err(usage_error)?,
        expires_at_ms: expires,
        tags: s.tags.as_deref().map(split_list),
        policy: s.policy.as_ref().map(|p| Some(p.clone()).filter(|p| !p.eq_ignore_ascii_case("none"))),
        prefer: s.prefer.as_deref().map(split_list),
        max_wait_ms: limit_patch("max-wait-ms", s.max_wait_ms.as_ref()).map_err(usage_error)?,
    };
    let row = manage::update(&env.store, key, patch, now).await.map_err(|e| (failure(&e), e.to_string()))?;
    println!("updated {} ({})", row.name, row.id);
    Ok(())
}

async fn rotate(env: &Env, key: &str, grace: Option<&str>, json: bool, now: u64) -> Outcome {
    let grace = grace.map(span).transpose().map_err(|m| (2, format!("--grace {m}")))?.unwrap_or(Duration::ZERO);
    let (row, secret) = manage::rotate(&env.store, key, grace, now).await.map_err(|e| (failure(&e), e.to_string()))?;
    if json {
        println!("{}", serde_json::json!({ "id": row.id, "name": row.name, "key": secret }));
    } else {
        println!("{secret}");
        let old = if grace.is_zero() {
            "the old secret stops working now".to_owned()
        } else {
            format!("the old secret keeps working for {} s", grace.as_secs())
        };
        eprintln!("key {} ({}) rotated: the line above is its new secret, shown this once; {old}", row.name, row.id);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_numbers_and_none() {
        assert_eq!(limit("rpm", "10").unwrap(), Some(10));
        assert_eq!(limit("rpm", "1_000_000").unwrap(), Some(1_000_000));
        assert_eq!(limit("rpm", "none").unwrap(), None);
        assert!(limit("rpm", "-1").unwrap_err().contains("--rpm"));
    }

    #[test]
    fn spans_read_units() {
        assert_eq!(span("90").unwrap(), Duration::from_secs(90));
        assert_eq!(span("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(span("2d").unwrap(), Duration::from_secs(172_800));
        assert!(span("soon").is_err());
    }
}
