//! Shared helpers for the catalog views (`freeway providers`, `freeway models`).

use std::path::Path;

use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{ContentArrangement, Table};

use crate::config::{self, Catalog, LoadedConfig};

/// The vault's accounts for a view: with their secrets when the vault opens, otherwise with a
/// placeholder (views never use secrets).
pub fn vault_for_view(loaded: &LoadedConfig) -> Vec<(crate::vault::Record, crate::config::SecretString)> {
    let paths = loaded.config.vault.paths();
    if !paths.vault.exists() {
        return Vec::new();
    }
    match crate::vault::Vault::open(&paths, None) {
        Ok(v) => v.records().iter().map(|r| (r.clone(), crate::config::SecretString::new("(sealed)"))).collect(),
        Err(e) => {
            eprintln!("freeway: {e}");
            Vec::new()
        }
    }
}

/// The configuration (or the environment's providers), and the catalog it extends.
pub fn load(config_path: Option<&Path>) -> Result<(LoadedConfig, Catalog), String> {
    let loaded = config::load_or_auto(config_path).map_err(|e| e.to_string())?;
    let catalog = Catalog::load(&loaded.config.catalog.files)?;
    Ok((loaded, catalog))
}

pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_BORDERS_ONLY).set_content_arrangement(ContentArrangement::Dynamic).set_header(header.to_vec());
    t
}

/// `128k`, `1M`, `-`.
pub fn tokens(n: Option<u32>) -> String {
    match n {
        None => "-".to_owned(),
        Some(n) if n >= 1_000_000 && n.is_multiple_of(1_000_000) => format!("{}M", n / 1_000_000),
        Some(n) if n >= 1_000_000 => format!("{:.1}M", f64::from(n) / 1e6),
        Some(n) if n >= 1_000 => format!("{}k", if n.is_multiple_of(1024) { n / 1024 } else { n / 1000 }),
        Some(n) => n.to_string(),
    }
}

pub fn yes_no(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_counts_read_like_model_cards() {
        assert_eq!(tokens(Some(131_072)), "128k");
        assert_eq!(tokens(Some(32_000)), "32k");
        assert_eq!(tokens(Some(1_000_000)), "1M");
        assert_eq!(tokens(Some(1_048_576)), "1.0M");
        assert_eq!(tokens(Some(512)), "512");
        assert_eq!(tokens(None), "-");
    }
}
