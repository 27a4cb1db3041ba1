//! `freeway models`: the models of the configured providers (or of the whole catalog), their
//! context window, capabilities, limits and status; `freeway models sync` lists them from each
//! provider through its component.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};

use super::catalog_views::{load, table, tokens, yes_no};
use crate::app::App;
use crate::config::{Catalog, CatalogModel, CatalogProvider, ResolvedProvider, resolve};
use crate::registry::discovery::{DiscoveryState, ModelRecord};

#[derive(Debug, Args)]
pub struct ModelsArgs {
    #[command(subcommand)]
    pub command: Option<ModelsCommand>,
    #[arg(long, short, env = "FREEWAY_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// only models served free
    #[arg(long)]
    pub free: bool,
    /// only this provider's models
    #[arg(long)]
    pub provider: Option<String>,
    /// only models with this capability
    #[arg(long, value_enum)]
    pub capability: Option<Capability>,
    /// include catalog providers that are not configured
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// List every configured provider's models through its component, now
    Sync,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Capability {
    Tools,
    Vision,
    Reasoning,
    Json,
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: String,
    pub provider: String,
    pub context: Option<u32>,
    pub max_output: Option<u32>,
    pub tools: Option<bool>,
    pub vision: Option<bool>,
    pub reasoning: Option<bool>,
    pub json: Option<bool>,
    pub free: Option<bool>,
    pub limits: String,
    pub status: &'static str,
}

fn from_catalog(m: &CatalogModel, provider: &CatalogProvider, status: &'static str) -> Row {
    Row {
        id: m.id.clone(),
        provider: provider.id.clone(),
        context: m.context_window,
        max_output: m.max_output_tokens,
        tools: m.tools,
        vision: m.vision,
        reasoning: m.reasoning,
        json: m.json_mode,
        free: Some(m.free),
        limits: m.limits.as_ref().map_or_else(|| provider.limits.summary(), crate::config::catalog::Limits::summary),
        status,
    }
}

fn from_listing(m: &ModelRecord, provider: &str, catalog: Option<(&CatalogModel, &CatalogProvider)>) -> Row {
    let mut row = match catalog {
        Some((c, p)) => from_catalog(c, p, "available"),
        None => Row {
            id: m.id.clone(),
            provider: provider.to_owned(),
            context: None,
            max_output: None,
            tools: None,
            vision: None,
            reasoning: None,
            json: None,
            free: None,
            limits: String::new(),
            status: "available",
        },
    };
    row.provider = provider.to_owned();
    row.context = m.context_window.or(row.context);
    row.max_output = m.max_output_tokens.or(row.max_output);
    let or = |listed: bool, known: Option<bool>| if listed { Some(true) } else { known };
    row.tools = or(m.tools, row.tools);
    row.vision = or(m.vision, row.vision);
    row.reasoning = or(m.reasoning, row.reasoning);
    row.json = or(m.json_mode, row.json);
    row.free = m.free.or(row.free);
    row
}

/// The rows for configured providers (and, with `all`, the rest of the catalog).
pub fn rows(resolved: &[ResolvedProvider], catalog: &Catalog, state: &DiscoveryState, all: bool) -> Vec<Row> {
    let mut out = Vec::new();
    for p in resolved {
        let entry = p.catalog.as_ref();
        let known = |id: &str| entry.and_then(|e| e.models.iter().find(|m| m.id == id).map(|m| (m, e)));
        if !p.models.is_empty() {
            for m in &p.models {
                let mut row = match known(m.id()) {
                    Some((c, e)) => from_catalog(c, e, "configured"),
                    None => from_listing(&ModelRecord { id: m.id().to_owned(), ..empty_record() }, &p.id, None),
                };
                row.provider = p.id.clone();
                row.status = "configured";
                out.push(row);
            }
            continue;
        }
        let listing = state.providers.get(&p.id).filter(|l| l.succeeded());
        if let Some(l) = listing {
            out.extend(l.models.iter().map(|m| from_listing(m, &p.id, known(&m.id))));
        }
        for (m, e) in entry.iter().flat_map(|e| e.models.iter().map(move |m| (m, e))) {
            if listing.is_some_and(|l| l.models.iter().any(|x| x.id == m.id)) {
                continue;
            }
            let mut row = from_catalog(m, e, if listing.is_some() { "unavailable" } else { "not listed yet" });
            row.provider = p.id.clone();
            out.push(row);
        }
    }
    if all {
        for e in &catalog.providers {
            if resolved.iter().any(|p| p.catalog.as_ref().is_some_and(|c| c.id == e.id)) {
                continue;
            }
            out.extend(e.models.iter().map(|m| from_catalog(m, e, "not configured")));
        }
    }
    out
}

fn empty_record() -> ModelRecord {
    ModelRecord {
        id: String::new(),
        context_window: None,
        max_output_tokens: None,
        tools: false,
        vision: false,
        reasoning: false,
        json_mode: false,
        free: None,
        owned_by: None,
    }
}

/// Apply the command-line filters.
pub fn filter(rows: Vec<Row>, args: &ModelsArgs) -> Vec<Row> {
    rows.into_iter()
        .filter(|r| !args.free || r.free == Some(true))
        .filter(|r| args.provider.as_ref().is_none_or(|p| &r.provider == p))
        .filter(|r| match args.capability {
            None => true,
            Some(Capability::Tools) => r.tools == Some(true),
            Some(Capability::Vision) => r.vision == Some(true),
            Some(Capability::Reasoning) => r.reasoning == Some(true),
            Some(Capability::Json) => r.json == Some(true),
        })
        .collect()
}

fn caps(r: &Row) -> String {
    let mut c = Vec::new();
    for (on, name) in [(r.tools, "tools"), (r.vision, "vision"), (r.reasoning, "reasoning"), (r.json, "json")] {
        if on == Some(true) {
            c.push(name);
        }
    }
    if c.is_empty() { "-".to_owned() } else { c.join(",") }
}

pub async fn run(args: ModelsArgs) -> i32 {
    if matches!(args.command, Some(ModelsCommand::Sync)) {
        return sync(args.config.as_deref()).await;
    }
    let (loaded, catalog) = match load(args.config.as_deref()) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("freeway: {e}");
            return 2;
        }
    };
    let vault = super::catalog_views::vault_for_view(&loaded);
    let resolved = resolve(&loaded.config, &catalog, &vault, &|v| std::env::var(v).ok());
    let state = DiscoveryState::load(&loaded.config.discovery.state_file);
    let rows = filter(rows(&resolved, &catalog, &state, args.all || resolved.is_empty()), &args);
    let mut t = table(&["MODEL", "PROVIDER", "CONTEXT", "MAX OUT", "CAPABILITIES", "FREE", "LIMITS", "STATUS"]);
    for r in &rows {
        t.add_row(vec![
            r.id.clone(),
            r.provider.clone(),
            tokens(r.context),
            tokens(r.max_output),
            caps(r),
            yes_no(r.free).to_owned(),
            if r.limits.is_empty() { "-".to_owned() } else { r.limits.clone() },
            r.status.to_owned(),
        ]);
    }
    println!("{t}");
    if resolved.is_empty() {
        println!("No provider is configured: showing the catalog. Set a key variable or write config/freeway.toml.");
    }
    0
}

async fn sync(config_path: Option<&Path>) -> i32 {
    let mut loaded = match crate::config::load_or_auto(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("freeway: {e}");
            return 2;
        }
    };
    loaded.config.runtime.watch = false;
    loaded.config.discovery.interval_secs = 0;
    let state_file = loaded.config.discovery.state_file.clone();
    let app = match App::start(loaded).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("freeway: {e}");
            return 1;
        }
    };
    let report = app.reloader.sync_models().await;
    let mut t = table(&["PROVIDER", "RESULT"]);
    let mut failed = false;
    for (provider, outcome) in &report {
        let text = match outcome {
            Ok(n) => format!("{n} models"),
            Err(e) => {
                failed = true;
                format!("failed: {e}")
            }
        };
        t.add_row(vec![provider.clone(), text]);
    }
    println!("{t}");
    println!("saved to {}", state_file.display());
    i32::from(failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::wit;
    use crate::config::Config;

    fn catalog() -> Catalog {
        toml::from_str(
            r#"
[[providers]]
id = "groq"
name = "Groq"
base_url = "https://api.groq.com/openai/v1"
component = "openai-compat"
[providers.limits]
scope = "organization"
[[providers.models]]
id = "llama-3.1-8b-instant"
context_window = 131072
tools = true
[providers.models.limits]
scope = "model"
rpm = 30
rpd = 14400
[[providers.models]]
id = "retired-model"
context_window = 8192

[[providers]]
id = "cerebras"
name = "Cerebras"
base_url = "https://api.cerebras.ai/v1"
component = "openai-compat"
[[providers.models]]
id = "qwen-3-32b"
reasoning = true
"#,
        )
        .unwrap()
    }

    fn args() -> ModelsArgs {
        ModelsArgs { command: None, config: None, free: false, provider: None, capability: None, all: false }
    }

    #[test]
    fn listed_models_are_available_and_missing_ones_unavailable() {
        let config: Config = toml::from_str("[[providers]]\nid = \"groq\"\napi_keys = [\"k\"]\n").unwrap();
        let cat = catalog();
        let resolved = resolve(&config, &cat, &[], &|_| None);
        let mut state = DiscoveryState::default();
        state.record(
            "groq",
            Ok(vec![wit::ModelInfo {
                id: "llama-3.1-8b-instant".into(),
                context_window: None,
                max_output_tokens: Some(8192),
                capabilities: wit::Capabilities::STREAMING,
                free: None,
                owned_by: None,
            }]),
        );
        let rows = rows(&resolved, &cat, &state, false);
        let live = rows.iter().find(|r| r.id == "llama-3.1-8b-instant").unwrap();
        assert_eq!(
            (live.status, live.context, live.max_output, live.tools),
            ("available", Some(131_072), Some(8192), Some(true))
        );
        assert_eq!(live.limits, "30 rpm, 14,400 rpd");
        assert_eq!(rows.iter().find(|r| r.id == "retired-model").unwrap().status, "unavailable");
        assert!(!rows.iter().any(|r| r.provider == "cerebras"), "not configured");
        assert_eq!(
            super::rows(&resolved, &cat, &state, true).iter().filter(|r| r.status == "not configured").count(),
            1
        );
    }

    #[test]
    fn filters_by_capability_provider_and_price() {
        let config: Config =
            toml::from_str("[[providers]]\nid = \"groq\"\n[[providers]]\nid = \"cerebras\"\n").unwrap();
        let cat = catalog();
        let all = rows(&resolve(&config, &cat, &[], &|_| None), &cat, &DiscoveryState::default(), false);
        assert_eq!(all.len(), 3);
        assert!(all.iter().all(|r| r.status == "not listed yet"));
        let tools = filter(all.clone(), &ModelsArgs { capability: Some(Capability::Tools), ..args() });
        assert_eq!(tools.len(), 1);
        let reasoning = filter(all.clone(), &ModelsArgs { capability: Some(Capability::Reasoning), ..args() });
        assert_eq!(reasoning[0].provider, "cerebras");
        assert_eq!(filter(all, &ModelsArgs { provider: Some("groq".into()), free: true, ..args() }).len(), 2);
    }
}
