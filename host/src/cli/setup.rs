//! `freeway setup`: a first run. Pick providers from the catalog (free tiers first, with their
//! limits, and how many accounts each already has), paste their keys (hidden), and each new key
//! is checked against its provider at once: a key the provider refuses is named with the reason
//! and taken out again (or kept, if you say so). Re-running it adds to what is there; nothing is
//! overwritten. `--non-interactive --provider ID` does the same for scripts, keys from stdin.

use std::collections::BTreeMap;
use std::io::{BufRead as _, IsTerminal as _};
use std::path::PathBuf;

use clap::Args;

use super::catalog_views::{load, vault_for_view};
use crate::accounts::audit;
use crate::accounts::manage::Manager;
use crate::config::catalog::Tier;
use crate::config::{Catalog, CatalogProvider, LoadedConfig, SecretString};
use crate::registry::recheck::{self, Verdict};
use crate::vault::{AccountTier, NewAccount, Record};

#[derive(Debug, Args)]
pub struct SetupArgs {
    #[arg(long, short, env = "FREEWAY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Ask nothing: add the `--provider`s given, their keys read from stdin (one line each, in
    /// order) or, without a line, from their usual key variable (GROQ_API_KEY, ...)
    #[arg(long, requires = "providers")]
    pub non_interactive: bool,
    /// A provider to add an account for (repeatable; with --non-interactive)
    #[arg(long = "provider", value_name = "ID")]
    pub providers: Vec<String>,
    /// Keep keys their provider refuses (they are taken out again otherwise)
    #[arg(long)]
    pub keep_failed: bool,
    /// Do not check the new keys against their providers
    #[arg(long)]
    pub no_check: bool,
}

/// A key to add.
struct Pending {
    provider: String,
    key: SecretString,
    settings: BTreeMap<String, String>,
}

pub async fn run(args: SetupArgs) -> i32 {
    let interactive = !args.non_interactive;
    if interactive && !std::io::stdin().is_terminal() {
        eprintln!(
            "freeway setup is interactive; without a terminal use `freeway setup --non-interactive --provider ID` (keys on stdin)"
        );
        return 2;
    }
    let (loaded, catalog) = match load(args.config.as_deref()) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("freeway setup: {e}");
            return 2;
        }
    };
    let existing = vault_for_view(&loaded);
    println!(
        "Freeway keeps your keys encrypted in {} (key: {}).",
        loaded.config.vault.path.display(),
        loaded.config.vault.key_file.display()
    );
    let pending = if interactive { ask(&catalog, &existing) } else { from_args(&args, &catalog) };
    let pending = match pending {
        Ok(p) => p,
        Err(e) => {
            eprintln!("freeway setup: {e}");
            return if interactive { 1 } else { 2 };
        }
    };
    let manager = Manager {
        vault: &loaded.config.vault,
        catalog: &catalog,
        actor: audit::cli_actor(),
        passphrase: None,
        configured: loaded.config.providers.iter().map(|p| p.id.get_ref().clone()).collect(),
    };
    let mut added: Vec<Record> = Vec::new();
    for p in pending {
        let tier = match catalog.provider(&p.provider) {
            Some(e) if e.tier == Tier::Credits => AccountTier::Credits,
            _ => AccountTier::Free,
        };
        let new =
            NewAccount { provider: p.provider, label: None, pool: None, secret: p.key, settings: p.settings, tier };
        match manager.add(new) {
            Ok((r, warnings)) => {
                for w in warnings {
                    println!("warning: {w}");
                }
                println!("added {} ({}, {})", r.label, r.provider, r.masked);
                added.push(r);
            }
            Err(e) => println!("not added: {e}"),
        }
    }
    let mut failed = 0;
    if !args.no_check && !added.is_empty() {
        failed = check(&loaded, &manager, &added, interactive, args.keep_failed).await;
    }
    let kept = added.len() - failed;
    println!("\n{kept} account(s) added{}.", if failed > 0 { format!(", {failed} refused") } else { String::new() });
    if kept > 0 || !existing.is_empty() {
        println!("Next:\n  freeway serve     # the gateway, on http://{}", loaded.config.server.listen);
        println!("  freeway chat      # ask it something (in another terminal)");
    }
    i32::from(failed > 0 && !interactive)
}

/// One line per provider: free tiers first, then free credit.
fn choices<'c>(catalog: &'c Catalog, existing: &[(Record, SecretString)]) -> Vec<(String, &'c CatalogProvider)> {
    let mut providers: Vec<&CatalogProvider> =
        catalog.providers.iter().filter(|p| matches!(p.tier, Tier::Free | Tier::Credits) && !p.local).collect();
    providers.sort_by_key(|p| (p.tier != Tier::Free, p.id.clone()));
    providers
        .into_iter()
        .map(|p| {
            let limits = p.limits.summary();
            let mut line = format!("{} — {}", p.id, p.name);
            if !limits.is_empty() {
                line.push_str(&format!(" ({limits})"));
            }
            if p.tier == Tier::Credits {
                line.push_str(" [free credit]");
            }
            if let Some(url) = &p.keys_url {
                line.push_str(&format!(" · keys: {url}"));
            }
            let have = existing.iter().filter(|(r, _)| r.provider == p.id).count();
            if have > 0 {
                line.push_str(&format!(" · {have} account(s) already"));
            }
            (line, p)
        })
        .collect()
}

fn ask(catalog: &Catalog, existing: &[(Record, SecretString)]) -> Result<Vec<Pending>, String> {
    let options = choices(catalog, existing);
    let labels: Vec<String> = options.iter().map(|(l, _)| l.clone()).collect();
    let picked =
        inquire::MultiSelect::new("Which providers do you have keys for? (type to filter, space to pick)", labels)
            .prompt()
            .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for label in picked {
        let Some((_, entry)) = options.iter().find(|(l, _)| *l == label) else { continue };
        if entry.terms.trains_on_data == Some(true) {
            println!("note: {}'s free tier may use your prompts for training.", entry.name);
        }
        if entry.terms.evaluation_only {
            println!("note: {}'s free tier is for evaluation, not production.", entry.name);
        }
        let key = inquire::Password::new(&format!("{} API key:", entry.name))
            .without_confirmation()
            .with_display_mode(inquire::PasswordDisplayMode::Hidden)
            .prompt()
            .map_err(|e| e.to_string())?;
        if key.trim().is_empty() {
            println!("no key: {} skipped", entry.name);
            continue;
        }
        let mut settings = BTreeMap::new();
        for needed in &entry.account_settings {
            let v = inquire::Text::new(&format!("{} {needed}:", entry.name)).prompt().map_err(|e| e.to_string())?;
            settings.insert(needed.clone(), v.trim().to_owned());
        }
        out.push(Pending { provider: entry.id.clone(), key: SecretString::new(key.trim()), settings });
    }
    Ok(out)
}

/// `--non-interactive`: the providers named, keys from stdin lines or their key variables.
fn from_args(args: &SetupArgs, catalog: &Catalog) -> Result<Vec<Pending>, String> {
    let mut lines: Vec<String> = Vec::new();
    if !std::io::stdin().is_terminal() {
        for line in std::io::stdin().lock().lines() {
            let line = line.map_err(|e| format!("reading stdin: {e}"))?;
            if !line.trim().is_empty() {
                lines.push(line.trim().to_owned());
            }
        }
    }
    let mut lines = lines.into_iter();
    let mut out = Vec::new();
    for id in &args.providers {
        let entry = catalog
            .provider(id)
            .ok_or_else(|| format!("`{id}` is not in the catalog (`freeway providers` lists them)"))?;
        if let Some(needed) = entry.account_settings.first() {
            return Err(format!(
                "{id} needs its {needed} as well: add it with `freeway accounts add {id} --setting {needed}=...`"
            ));
        }
        let key = lines
            .next()
            .or_else(|| entry.key_env.iter().find_map(|v| std::env::var(v).ok().filter(|k| !k.trim().is_empty())))
            .ok_or_else(|| {
                format!("no key for {id}: give one line per provider on stdin, or set {}", entry.key_env.join(" or "))
            })?;
        out.push(Pending { provider: id.clone(), key: SecretString::new(key.trim()), settings: BTreeMap::new() });
    }
    Ok(out)
}

/// Check every added key against its provider; a refused one is named and (unless kept) taken
/// out. Returns how many were refused and taken out.
async fn check(loaded: &LoadedConfig, manager: &Manager<'_>, added: &[Record], interactive: bool, keep: bool) -> usize {
    println!("\nChecking the new keys with their providers...");
    let app = match super::route::start_loaded(loaded.clone()).await {
        Ok(a) => a,
        Err(e) => {
            println!("could not check the keys ({e}); `freeway accounts check` does it later");
            return 0;
        }
    };
    let snapshot = app.registry.snapshot();
    let mut refused = 0;
    for r in added {
        let found = snapshot
            .providers
            .iter()
            .find_map(|p| p.accounts.iter().find(|a| a.id == r.id).map(|a| (p.clone(), a.clone())));
        let Some((p, a)) = found else {
            println!("? {} ({}): not in use, so not checked", r.provider, r.label);
            continue;
        };
        match recheck::check(&p, &a).await {
            Verdict::Valid => println!("ok      {} ({})", r.provider, r.label),
            Verdict::RateLimited(m) => {
                println!("ok      {} ({}): the key works; rate-limited just now ({m})", r.provider, r.label)
            }
            Verdict::Unreachable(m) => {
                println!("unknown {} ({}): could not reach the provider ({m}); kept, check later", r.provider, r.label);
            }
            Verdict::Invalid(m) => {
                println!("FAILED  {} ({}): the provider refused the key: {m}", r.provider, r.label);
                let remove = if keep {
                    false
                } else if interactive {
                    inquire::Confirm::new("Take this key out again?").with_default(true).prompt().unwrap_or(true)
                } else {
                    true
                };
                if remove {
                    match manager.remove(&r.id) {
                        Ok(_) => {
                            println!("        taken out");
                            refused += 1;
                        }
                        Err(e) => println!("        could not take it out: {e}"),
                    }
                }
            }
        }
    }
    refused
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_tiers_come_first_and_existing_accounts_are_counted() {
        let catalog = crate::config::catalog::embedded().clone();
        let list = choices(&catalog, &[]);
        assert!(!list.is_empty());
        let first_credit = list.iter().position(|(_, p)| p.tier == Tier::Credits).unwrap_or(list.len());
        assert!(list[first_credit..].iter().all(|(_, p)| p.tier == Tier::Credits), "free tiers first");
        assert!(list.iter().all(|(_, p)| !p.local), "local servers need no key");
        let groq = list.iter().find(|(_, p)| p.id == "groq").unwrap();
        assert!(groq.0.contains("keys: https://console.groq.com/keys"), "{}", groq.0);
        assert!(list.iter().all(|(_, p)| p.keys_url.is_some()), "every provider says where its keys are");
    }
}
