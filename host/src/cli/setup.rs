//! `freeway setup`: a first run, interactively: pick providers, paste their keys (hidden), see
//! what their free tiers give and what their terms say, done.

use std::io::IsTerminal;
use std::path::Path;

use super::catalog_views::load;
use crate::accounts::audit;
use crate::accounts::manage::Manager;
use crate::config::SecretString;
use crate::config::catalog::Tier;
use crate::vault::{AccountTier, NewAccount};

pub fn run(config: Option<&Path>) -> i32 {
    if !std::io::stdin().is_terminal() {
        eprintln!("freeway setup is interactive; without a terminal use `freeway accounts add <provider> --key-stdin`");
        return 2;
    }
    let (loaded, catalog) = match load(config) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("freeway: {e}");
            return 2;
        }
    };
    println!(
        "Freeway keeps your keys encrypted in {} (key: {}).",
        loaded.config.vault.path.display(),
        loaded.config.vault.key_file.display()
    );
    let choices: Vec<String> = catalog
        .providers
        .iter()
        .filter(|p| matches!(p.tier, Tier::Free | Tier::Credits))
        .map(|p| {
            let limits = p.limits.summary();
            if limits.is_empty() {
                format!("{} — {}", p.id, p.name)
            } else {
                format!("{} — {} ({limits})", p.id, p.name)
            }
        })
        .collect();
    let picked = match inquire::MultiSelect::new("Which providers do you have keys for?", choices).prompt() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("freeway: {e}");
            return 1;
        }
    };
    let manager = Manager {
        vault: &loaded.config.vault,
        catalog: &catalog,
        actor: audit::cli_actor(),
        passphrase: None,
        configured: Vec::new(),
    };
    let mut added = 0;
    for choice in picked {
        let id = choice.split(' ').next().unwrap_or_default().to_owned();
        let Some(entry) = catalog.provider(&id) else { continue };
        if entry.terms.trains_on_data == Some(true) {
            println!("note: {}'s free tier may use your prompts for training.", entry.name);
        }
        if entry.terms.evaluation_only {
            println!("note: {}'s free tier is for evaluation, not production.", entry.name);
        }
        let key = match inquire::Password::new(&format!("{} API key:", entry.name))
            .without_confirmation()
            .with_display_mode(inquire::PasswordDisplayMode::Hidden)
            .prompt()
        {
            Ok(k) if !k.trim().is_empty() => SecretString::new(k.trim()),
            Ok(_) => continue,
            Err(e) => {
                eprintln!("freeway: {e}");
                return 1;
            }
        };
        let mut settings = std::collections::BTreeMap::new();
        for needed in &entry.account_settings {
            match inquire::Text::new(&format!("{} {needed}:", entry.name)).prompt() {
                Ok(v) => {
                    settings.insert(needed.clone(), v.trim().to_owned());
                }
                Err(e) => {
                    eprintln!("freeway: {e}");
                    return 1;
                }
            }
        }
        let tier = if entry.tier == Tier::Credits { AccountTier::Credits } else { AccountTier::Free };
        match manager.add(NewAccount { provider: id, label: None, pool: None, secret: key, settings, tier }) {
            Ok((r, warnings)) => {
                for w in warnings {
                    println!("warning: {w}");
                }
                println!("added {} ({}, {})", r.label, r.provider, r.masked);
                added += 1;
            }
            Err(e) => println!("not added: {e}"),
        }
    }
    println!("\n{added} account(s) added. Start the gateway with `freeway serve` (or `cargo xtask run`);");
    println!("`freeway accounts check` tests every key, `freeway models --free` lists what you can use.");
    0
}
