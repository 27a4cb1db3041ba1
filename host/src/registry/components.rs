//! What the reloader did with each component file: when the serving version was loaded, how many
//! times it was (re)loaded, and the last time a version was refused and why. Kept apart from the
//! snapshot, so that a refused file (which publishes nothing new) still shows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// One component file, as `/admin/status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentStatus {
    pub name: String,
    /// `provider` or `policy`
    pub kind: String,
    pub path: String,
    /// `embedded` (compiled into the binary), `folder` (the providers or policies folder) or
    /// `path` (a `.wasm` the configuration names elsewhere)
    #[serde(default)]
    pub source: String,
    /// the `freeway:gateway` WIT version it was built against, when one is serving
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wit: Option<String>,
    /// the provider a drop-in component declares it serves
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declares: Option<String>,
    /// the version the component declares (providers), when one is serving
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// sha256 of the serving file
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Unix ms when the serving version was loaded
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loaded_at_ms: Option<u64>,
    /// versions loaded since the gateway started (the first load included)
    pub loads: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refusal: Option<Refusal>,
    /// the latest loads and refusals, oldest first (at most [`HISTORY`])
    #[serde(default)]
    pub history: Vec<Change>,
}

/// One load or refusal of a component file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub at_ms: u64,
    /// `loaded`, `refused` or `removed`
    pub event: String,
    /// the version and hash loaded, or why it was refused
    pub detail: String,
}

/// How many changes each file keeps.
pub const HISTORY: usize = 10;

fn remember(history: &mut Vec<Change>, change: Change) {
    if history.len() == HISTORY {
        history.remove(0);
    }
    history.push(change);
}

/// A version of a component that was not loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub at_ms: u64,
    pub why: String,
}

/// Every component file the reloader has seen.
#[derive(Debug, Default)]
pub struct ComponentLog {
    files: Mutex<BTreeMap<PathBuf, ComponentStatus>>,
}

/// A component version that loaded.
pub struct Loaded<'a> {
    pub kind: &'a str,
    pub name: &'a str,
    pub source: &'a str,
    pub wit: &'a str,
    pub declares: Option<&'a str>,
    pub version: Option<&'a str>,
    pub sha256: &'a str,
    pub loaded_at_ms: u64,
}

impl ComponentLog {
    fn entry<'m>(
        files: &'m mut BTreeMap<PathBuf, ComponentStatus>,
        path: &Path,
        kind: &str,
        name: &str,
    ) -> &'m mut ComponentStatus {
        files.entry(path.to_owned()).or_insert_with(|| ComponentStatus {
            name: name.to_owned(),
            kind: kind.to_owned(),
            path: path.display().to_string(),
            source: String::new(),
            wit: None,
            declares: None,
            version: None,
            sha256: None,
            loaded_at_ms: None,
            loads: 0,
            last_refusal: None,
            history: Vec::new(),
        })
    }

    pub fn loaded(&self, path: &Path, l: &Loaded<'_>) {
        let mut files = self.files.lock();
        let e = Self::entry(&mut files, path, l.kind, l.name);
        l.source.clone_into(&mut e.source);
        e.wit = Some(l.wit.to_owned());
        e.declares = l.declares.map(str::to_owned);
        e.version = l.version.map(str::to_owned);
        e.sha256 = Some(l.sha256.to_owned());
        e.loaded_at_ms = Some(l.loaded_at_ms);
        e.loads = e.loads.saturating_add(1);
        let short = l.sha256.get(..12).unwrap_or(l.sha256);
        let detail = match l.version {
            Some(v) => format!("{v} (sha256 {short})"),
            None => format!("sha256 {short}"),
        };
        remember(&mut e.history, Change { at_ms: l.loaded_at_ms, event: "loaded".to_owned(), detail });
    }

    pub fn refused(&self, path: &Path, kind: &str, name: &str, source: &str, why: &str, at_ms: u64) {
        let mut files = self.files.lock();
        let e = Self::entry(&mut files, path, kind, name);
        source.clone_into(&mut e.source);
        e.last_refusal = Some(Refusal { at_ms, why: why.to_owned() });
        remember(&mut e.history, Change { at_ms, event: "refused".to_owned(), detail: why.to_owned() });
    }

    /// The file was removed: nothing of it serves any more.
    pub fn removed(&self, path: &Path, at_ms: u64) {
        let mut files = self.files.lock();
        if let Some(e) = files.get_mut(path) {
            e.version = None;
            e.wit = None;
            e.declares = None;
            e.sha256 = None;
            e.loaded_at_ms = None;
            remember(&mut e.history, Change { at_ms, event: "removed".to_owned(), detail: "file removed".to_owned() });
        }
    }

    /// Every file, in path order.
    pub fn list(&self) -> Vec<ComponentStatus> {
        self.files.lock().values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_count_and_a_refusal_stays_beside_the_serving_version() {
        let log = ComponentLog::default();
        let p = Path::new("/p/groq.wasm");
        let v = |version, at| Loaded {
            kind: "provider",
            name: "groq",
            source: "folder",
            wit: "0.1.0",
            declares: None,
            version: Some(version),
            sha256: "ab",
            loaded_at_ms: at,
        };
        log.loaded(p, &v("1.0.0", 10));
        log.refused(p, "provider", "groq", "folder", "not a component", 20);
        log.loaded(p, &v("1.1.0", 30));
        let list = log.list();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].loads, 2);
        assert_eq!(list[0].version.as_deref(), Some("1.1.0"));
        assert_eq!(list[0].loaded_at_ms, Some(30));
        assert_eq!(list[0].last_refusal, Some(Refusal { at_ms: 20, why: "not a component".into() }));
        let events: Vec<(u64, &str)> = list[0].history.iter().map(|c| (c.at_ms, c.event.as_str())).collect();
        assert_eq!(events, [(10, "loaded"), (20, "refused"), (30, "loaded")]);
        assert_eq!(list[0].history[2].detail, "1.1.0 (sha256 ab)");
        for i in 0..20 {
            log.refused(p, "provider", "groq", "folder", "again", 100 + i);
        }
        let h = &log.list()[0].history;
        assert_eq!(h.len(), HISTORY, "bounded");
        assert_eq!(h.last().map(|c| c.at_ms), Some(119));
    }
}
