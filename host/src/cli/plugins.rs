//! `freeway plugins`: the components a running gateway has loaded (name, kind, version, WIT
//! version, source, the provider a drop-in declares, hash), or, with no gateway answering, the
//! components it would find; `freeway plugins new provider NAME` scaffolds a project.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use sha2::{Digest, Sha256};

use super::catalog_views::table;
use super::gateway::{CallError, Gateway};
use crate::registry::components::ComponentStatus;
use crate::runtime::embedded;

#[derive(Debug, Args)]
pub struct PluginsArgs {
    #[command(subcommand)]
    pub command: Option<PluginsCommand>,
    /// The gateway (default: the configuration's listen address)
    #[arg(long, env = "FREEWAY_URL", global = true)]
    pub url: Option<String>,
    #[arg(long, short, env = "FREEWAY_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Print JSON
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// List the components (the default)
    List,
    /// Scaffold a buildable component project: `freeway plugins new provider acme --lang python`
    New(super::scaffold::NewArgs),
}

pub async fn run(args: PluginsArgs) -> i32 {
    match &args.command {
        Some(PluginsCommand::New(new)) => super::scaffold::run(new),
        None | Some(PluginsCommand::List) => list(&args).await,
    }
}

async fn list(args: &PluginsArgs) -> i32 {
    let loaded = crate::config::load_or_auto(args.config.as_deref()).ok();
    let gateway = match Gateway::new(args.url.as_deref(), loaded.as_ref()) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("freeway plugins: {e}");
            return 2;
        }
    };
    let (components, live) = match gateway.admin_get("/admin/status").await {
        Ok(body) => match serde_json::from_value::<Vec<ComponentStatus>>(body["components"].clone()) {
            Ok(c) => (c, true),
            Err(e) => {
                eprintln!(
                    "freeway plugins: the gateway at {} answered in a shape this version does not read: {e}",
                    gateway.url
                );
                return 2;
            }
        },
        Err(CallError::Refused(status, m)) => {
            eprintln!("freeway plugins: the gateway at {} refused: HTTP {status}: {m}", gateway.url);
            return 2;
        }
        Err(CallError::Unreachable(m)) => {
            let Some(loaded) = &loaded else {
                eprintln!(
                    "freeway plugins: no gateway is answering at {} ({m}) and no configuration loads",
                    gateway.url
                );
                return 1;
            };
            if !args.json {
                eprintln!("No gateway is answering at {} ({m}): the components it would find:", gateway.url);
            }
            (on_disk(&loaded.config.runtime.providers_dir, &loaded.config.runtime.policies_dir), false)
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&components).unwrap_or_default());
        return 0;
    }
    let mut t = table(&["name", "kind", "version", "wit", "source", "declares", "sha256", "path"]);
    for c in &components {
        let dash = || "-".to_owned();
        t.add_row(vec![
            c.name.clone(),
            c.kind.clone(),
            c.version.clone().unwrap_or_else(dash),
            c.wit.clone().unwrap_or_else(dash),
            c.source.clone(),
            c.declares.clone().unwrap_or_else(dash),
            c.sha256.as_deref().map_or_else(dash, |h| h.get(..12).unwrap_or(h).to_owned()),
            c.path.clone(),
        ]);
    }
    println!("{t}");
    if live && components.iter().any(|c| c.last_refusal.is_some()) {
        println!("Some files were refused: `freeway status` says why.");
    }
    0
}

/// The embedded components, then the component files in the two folders (a file replaces the
/// embedded component of its name), as far as files tell without loading them.
fn on_disk(providers_dir: &Path, policies_dir: &Path) -> Vec<ComponentStatus> {
    let mut out = Vec::new();
    let files = |dir: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    for (kind, dir, names) in [
        ("provider", providers_dir, embedded::provider_names().collect::<Vec<_>>()),
        ("policy", policies_dir, embedded::policy_names().collect::<Vec<_>>()),
    ] {
        let found = files(dir);
        for name in names {
            if found.iter().any(|f| f.file_stem().is_some_and(|s| s == name)) {
                continue;
            }
            let path = embedded::path(name);
            let bytes = embedded::bytes(&path).unwrap_or_default();
            out.push(status(name, kind, "embedded", &path, bytes));
        }
        for f in found {
            let Ok(bytes) = std::fs::read(&f) else { continue };
            let name = f.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            out.push(status(&name, kind, "folder", &f, &bytes));
        }
    }
    out
}

fn status(name: &str, kind: &str, source: &str, path: &Path, bytes: &[u8]) -> ComponentStatus {
    ComponentStatus {
        name: name.to_owned(),
        kind: kind.to_owned(),
        path: path.display().to_string(),
        source: source.to_owned(),
        wit: None,
        declares: None,
        version: None,
        sha256: Some(hex::encode(Sha256::digest(bytes))),
        loaded_at_ms: None,
        loads: 0,
        last_refusal: None,
        history: Vec::new(),
    }
}
