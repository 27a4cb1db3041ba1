//! `freeway paths`: where this command would read its configuration and keep its data, and why
//! (project folder or the platform's folders; see `config::paths`).

use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::json;

use crate::config::{self, LoadedConfig};

#[derive(Debug, Args)]
pub struct PathsArgs {
    #[arg(long, short, env = "FREEWAY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &PathsArgs) -> i32 {
    let loaded = match config::load_or_auto(args.config.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("freeway paths: {e}");
            return 2;
        }
    };
    let rows = rows(&loaded);
    if args.json {
        let map: serde_json::Map<String, serde_json::Value> =
            rows.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
        println!("{}", serde_json::Value::Object(map));
        return 0;
    }
    for (name, value) in &rows {
        println!("{name:<16} {value}");
    }
    0
}

fn shown(p: &Path) -> String {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned()).display().to_string()
}

/// (what, where) for every file and folder the configuration names.
pub fn rows(loaded: &LoadedConfig) -> Vec<(&'static str, String)> {
    let c = &loaded.config;
    let layout = &loaded.layout;
    let config_file = match (&loaded.path, &layout.config_dir) {
        (Some(p), _) => shown(p),
        (None, Some(dir)) => format!("none (would read {})", shown(&dir.join("freeway.toml"))),
        (None, None) => format!("none (would read {})", shown(Path::new(config::paths::PROJECT_CONFIG))),
    };
    let layout_name = if layout.project {
        format!("project folder ({})", shown(Path::new(".")))
    } else {
        "user (the platform's folders)".to_owned()
    };
    let storage = c.storage.effective_url();
    let storage = match storage.strip_prefix("sqlite://") {
        Some(file) => format!("sqlite://{}", shown(Path::new(file.split('?').next().unwrap_or(file)))),
        None => without_password(&storage),
    };
    let mut rows = vec![
        ("layout", layout_name),
        ("config", config_file),
        ("data", shown(&layout.data_dir)),
        ("cache", shown(&c.runtime.cache_dir)),
        ("providers", shown(&c.runtime.providers_dir)),
        ("policies", shown(&c.runtime.policies_dir)),
        ("vault", shown(&c.vault.path)),
        ("master_key", master_key(c)),
        ("usage_store", storage),
        ("quota_state", shown(&c.quota.state_file)),
        ("model_state", shown(&c.discovery.state_file)),
        ("route_stats", shown(&c.routing.stats_file)),
        ("health_file", shown(&c.vault.health_file)),
        ("audit_log", shown(&c.vault.audit_log)),
    ];
    for f in &c.catalog.files {
        rows.push(("catalog_file", shown(f)));
    }
    rows
}

fn master_key(c: &config::Config) -> String {
    use freeway_core::vault::key::{ENV_KEY, ENV_PASSPHRASE};
    for var in [ENV_KEY, ENV_PASSPHRASE] {
        if std::env::var(var).is_ok_and(|v| !v.is_empty()) {
            return format!("from {var}");
        }
    }
    shown(&c.vault.key_file)
}

/// A database URL with its password (if any) hidden.
fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "(not a URL)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_password_is_never_printed() {
        assert_eq!(without_password("postgres://fw:s3cret@db:5432/fw"), "postgres://fw:***@db:5432/fw");
        assert_eq!(without_password("postgres://db/fw"), "postgres://db/fw");
        assert!(!without_password("postgres://fw:s3cret@[bad").contains("s3cret"));
    }
}
