//! File watching: the providers folder, the policies folder and the configuration file. Bursts
//! of events (an editor saving, a copy in progress) settle for a moment before the reloader hears
//! of them, once per file; files that do not matter (the usage database beside the vault) are
//! ignored as they arrive, so their constant changes never delay a reload.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::event::Event;
use crate::config::LoadedConfig;

/// Quiet time before a changed file is reloaded.
const SETTLE: Duration = Duration::from_millis(200);

pub fn spawn(config: &LoadedConfig, tx: mpsc::Sender<Event>) {
    let (raw_tx, raw_rx) = mpsc::unbounded_channel::<PathBuf>();
    let handler = move |res: notify::Result<notify::Event>| match res {
        Ok(ev) => {
            if matches!(ev.kind, notify::EventKind::Access(_)) {
                return;
            }
            for p in ev.paths {
                let _ = raw_tx.send(p);
            }
        }
        Err(e) => tracing::warn!("file watcher: {e}"),
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!("cannot watch files, hot reload is off: {e}");
            return;
        }
    };
    let rt = &config.config.runtime;
    let config_file = config.path.as_ref().map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()));
    let state = &config.config.discovery.state_file;
    let state_file = std::path::absolute(state).unwrap_or_else(|_| state.clone());
    let vault = &config.config.vault.path;
    let vault_file = std::path::absolute(vault).unwrap_or_else(|_| vault.clone());
    let classifier =
        config.config.routing.classifier_model.as_ref().map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()));
    let mut dirs: Vec<PathBuf> = vec![rt.providers_dir.clone(), rt.policies_dir.clone()];
    for dir in &dirs {
        // so a component dropped in later is seen (a fresh install has neither folder)
        let _ = std::fs::create_dir_all(dir);
    }
    if let Some(parent) = config_file.as_ref().and_then(|p| p.parent()) {
        dirs.push(parent.to_owned());
    }
    for file in [&state_file, &vault_file].into_iter().chain(classifier.as_ref()) {
        if let Some(parent) = file.parent() {
            // the data folder may not exist yet; model listings and the vault are saved there
            let _ = std::fs::create_dir_all(parent);
            dirs.push(parent.to_owned());
        }
    }
    let mut watched = HashSet::new();
    for dir in dirs {
        let dir = std::path::absolute(&dir).unwrap_or(dir);
        if !dir.is_dir() || !watched.insert(dir.clone()) {
            continue;
        }
        match watcher.watch(&dir, RecursiveMode::NonRecursive) {
            Ok(()) => tracing::debug!("watching {}", dir.display()),
            Err(e) => tracing::warn!("cannot watch {}: {e}", dir.display()),
        }
    }
    tokio::spawn(settle(watcher, raw_rx, Watched { config_file, state_file, vault_file, classifier }, tx));
}

/// Files (besides components) whose changes matter.
struct Watched {
    config_file: Option<PathBuf>,
    state_file: PathBuf,
    vault_file: PathBuf,
    classifier: Option<PathBuf>,
}

async fn settle<W: Watcher + Send + 'static>(
    _watcher: W,
    mut raw: mpsc::UnboundedReceiver<PathBuf>,
    watched: Watched,
    tx: mpsc::Sender<Event>,
) {
    // each file that matters settles on its own: changes to other files in the same folders
    // (the usage database committing every few milliseconds beside the vault) never hold it back
    let mut pending: HashMap<PathBuf, tokio::time::Instant> = HashMap::new();
    loop {
        let next = match pending.values().min().copied() {
            None => raw.recv().await,
            Some(due) => match tokio::time::timeout_at(due, raw.recv()).await {
                Ok(p) => p,
                Err(_) => {
                    let now = tokio::time::Instant::now();
                    let ready: Vec<PathBuf> =
                        pending.iter().filter(|(_, d)| **d <= now).map(|(p, _)| p.clone()).collect();
                    for path in ready {
                        pending.remove(&path);
                        if let Some(event) = classify(&path, &watched)
                            && tx.send(event).await.is_err()
                        {
                            return;
                        }
                    }
                    continue;
                }
            },
        };
        match next {
            Some(p) => {
                let path = std::path::absolute(&p).unwrap_or(p);
                if matters(&path, &watched) {
                    pending.insert(path, tokio::time::Instant::now() + SETTLE);
                }
            }
            None => return,
        }
    }
}

/// Whether a change to `path` may mean a reload (decided before it is settled; whether the file
/// still exists is decided after).
fn matters(path: &Path, watched: &Watched) -> bool {
    Some(path) == watched.config_file.as_deref()
        || path == watched.state_file
        || path == watched.vault_file
        || Some(path) == watched.classifier.as_deref()
        || path.extension().is_some_and(|e| e == "wasm")
}

fn classify(path: &Path, watched: &Watched) -> Option<Event> {
    if Some(path) == watched.config_file.as_deref() {
        return Some(Event::ConfigChanged);
    }
    if path == watched.state_file {
        return Some(Event::DiscoveryFileChanged);
    }
    if path == watched.vault_file {
        return Some(Event::VaultChanged);
    }
    if Some(path) == watched.classifier.as_deref() {
        return path.exists().then_some(Event::ClassifierChanged);
    }
    if path.extension().is_some_and(|e| e == "wasm") {
        return Some(if path.exists() {
            Event::FileChanged(path.to_owned())
        } else {
            Event::FileRemoved(path.to_owned())
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_component_change_is_delivered_while_other_files_in_its_folders_keep_changing() {
        let (raw_tx, raw_rx) = mpsc::unbounded_channel();
        let (tx, mut rx) = mpsc::channel(8);
        let watched = Watched {
            config_file: Some(PathBuf::from("/cfg/freeway.toml")),
            state_file: PathBuf::from("/data/models.json"),
            vault_file: PathBuf::from("/data/vault.json"),
            classifier: None,
        };
        let watcher = notify::NullWatcher;
        tokio::spawn(settle(watcher, raw_rx, watched, tx));
        raw_tx.send(PathBuf::from("/providers/openai-compat.wasm")).unwrap();
        // the usage database commits every 50 ms, for ever
        let noise = tokio::spawn(async move {
            loop {
                let _ = raw_tx.send(PathBuf::from("/data/freeway.db-wal"));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let got = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await;
        noise.abort();
        match got {
            Ok(Some(Event::FileRemoved(p) | Event::FileChanged(p))) => assert!(p.ends_with("openai-compat.wasm")),
            other => panic!("the component change was held back: {:?}", other.map(|e| e.map(|_| ()))),
        }
    }
}
