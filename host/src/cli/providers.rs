//! `freeway providers`: every catalog provider, whether it is configured, its free-tier limits
//! and what its terms say.

use std::path::Path;

use super::catalog_views::{load, table, yes_no};
use crate::config::catalog::{MultipleAccounts, Tier};
use crate::config::resolve;
use crate::registry::discovery::DiscoveryState;

pub fn run(config_path: Option<&Path>) -> i32 {
    let (loaded, catalog) = match load(config_path) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("freeway: {e}");
            return 2;
        }
    };
    let vault = super::catalog_views::vault_for_view(&loaded);
    let resolved = resolve(&loaded.config, &catalog, &vault, &|v| std::env::var(v).ok());
    let state = DiscoveryState::load(&loaded.config.discovery.state_file);
    let mut t = table(&["PROVIDER", "NAME", "COMPONENT", "CONFIGURED", "FREE TIER", "TERMS", "MODELS"]);
    for p in &catalog.providers {
        let configured: Vec<_> = resolved.iter().filter(|r| r.catalog.as_ref().is_some_and(|c| c.id == p.id)).collect();
        let status = if !configured.is_empty() {
            let keys: usize = configured.iter().map(|r| r.keys.len()).sum();
            if p.local { "yes (local)".to_owned() } else { format!("yes, {keys} key(s)") }
        } else if let Some(var) = p.key_env.iter().find(|v| std::env::var(v).is_ok_and(|x| !x.trim().is_empty())) {
            format!("no ({var} is set)")
        } else if p.local {
            "no ([discovery] local)".to_owned()
        } else {
            format!("no ({})", p.key_env.first().map_or("-", String::as_str))
        };
        let limits = match p.tier {
            Tier::Local => "local".to_owned(),
            Tier::Paid => "paid".to_owned(),
            _ if p.limits.is_empty() && p.models.iter().any(|m| m.limits.is_some()) => {
                "per model (see models)".to_owned()
            }
            _ if p.limits.is_empty() => "-".to_owned(),
            _ => format!("{} ({:?})", p.limits.summary(), p.limits.scope).to_lowercase(),
        };
        let mut terms = Vec::new();
        match p.terms.multiple_accounts {
            MultipleAccounts::Prohibited => terms.push("one account only".to_owned()),
            MultipleAccounts::Allowed => {}
            MultipleAccounts::Unknown => {}
        }
        if p.terms.trains_on_data == Some(true) {
            terms.push("trains on data".to_owned());
        }
        if p.terms.evaluation_only {
            terms.push("evaluation only".to_owned());
        }
        let models = match state.providers.get(&p.id) {
            Some(l) if l.succeeded() => format!("{} listed", l.models.len()),
            _ => format!("{} known", p.models.len()),
        };
        t.add_row(vec![
            p.id.clone(),
            p.name.clone(),
            p.component.clone(),
            status,
            limits,
            if terms.is_empty() { format!("training: {}", yes_no(p.terms.trains_on_data)) } else { terms.join(", ") },
            models,
        ]);
    }
    println!("{t}");
    0
}
