//! What the reloader reacts to: files the watcher saw change, discovery results, requests from
//! the admin API.

use std::path::PathBuf;

use tokio::sync::oneshot;

use crate::bindings::wit;

/// The outcome of a model sync, per provider: model count or the failure.
pub type SyncReport = Vec<(String, Result<usize, String>)>;

/// Something the reloader should react to.
#[derive(Debug)]
pub enum Event {
    ConfigChanged,
    /// a `.wasm` file was created or written
    FileChanged(PathBuf),
    FileRemoved(PathBuf),
    /// the discovery state file changed (e.g. `freeway models sync` ran)
    DiscoveryFileChanged,
    /// the vault changed (accounts added, removed, enabled or disabled)
    VaultChanged,
    /// the task-classifier model file (`[routing] classifier_model`) changed
    ClassifierChanged,
    Discovered {
        provider: String,
        result: Result<Vec<wit::ModelInfo>, String>,
    },
    /// list every provider's models now; the report goes to `reply` when all are done
    SyncModels(Option<oneshot::Sender<SyncReport>>),
}
