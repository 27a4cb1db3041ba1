//! Where Freeway keeps its files.
//!
//! Two layouts:
//! - **project folder**: the current directory holds `config/freeway.toml`, Freeway's own data
//!   (`data/master.key`, `data/vault.json`, `data/freeway.db`) or components (`providers/*.wasm`,
//!   as a checkout does once built), or a configuration file was named with `--config` /
//!   `FREEWAY_CONFIG`. Relative paths are relative to the current directory, as
//!   every command-line tool's are; data lives in `data/`.
//! - **user**: anywhere else. The configuration file is `$XDG_CONFIG_HOME/freeway/freeway.toml`
//!   (if it exists), data lives in `$XDG_DATA_HOME/freeway/`, precompiled components in
//!   `$XDG_CACHE_HOME/freeway/` (the platform's equivalents on macOS and Windows), and relative
//!   paths are relative to the data folder.
//!
//! In both, `FREEWAY_DATA_DIR` (`--data-dir`) and `FREEWAY_CACHE_DIR` (`--cache-dir`) move the
//! data and cache folders: a path that starts with `data/` (every default does) lands in the data
//! folder, `data/cache` in the cache folder. `freeway paths` prints where everything is.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::Config;

pub const DATA_DIR_VAR: &str = "FREEWAY_DATA_DIR";
pub const CACHE_DIR_VAR: &str = "FREEWAY_CACHE_DIR";
/// The configuration file a project folder reads by default.
pub const PROJECT_CONFIG: &str = "config/freeway.toml";

/// Which layout is in use and its folders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub project: bool,
    /// what relative paths are relative to (empty: the current directory)
    pub base: PathBuf,
    pub data_dir: PathBuf,
    pub cache_dir: PathBuf,
    /// where the user layout looks for `freeway.toml`
    pub config_dir: Option<PathBuf>,
}

/// What the layout is decided from (the process environment, or a test's).
pub struct Env<'a> {
    pub cwd: &'a Path,
    pub var: &'a dyn Fn(&str) -> Option<String>,
    /// the platform's folders for an application called `freeway`: (config, data, cache)
    pub platform: Option<(PathBuf, PathBuf, PathBuf)>,
}

impl Env<'_> {
    fn dir_var(&self, name: &str) -> Option<PathBuf> {
        (self.var)(name).filter(|v| !v.trim().is_empty()).map(|v| PathBuf::from(v.trim()))
    }
}

/// The platform's folders for Freeway: XDG on Linux (`$XDG_CONFIG_HOME/freeway`, ...).
pub fn platform_dirs() -> Option<(PathBuf, PathBuf, PathBuf)> {
    let d = directories::ProjectDirs::from("", "", "freeway")?;
    Some((d.config_dir().to_owned(), d.data_dir().to_owned(), d.cache_dir().to_owned()))
}

/// Whether `dir` is a project folder (see the module documentation).
pub fn is_project_folder(dir: &Path) -> bool {
    dir.join(PROJECT_CONFIG).is_file()
        || ["data/master.key", "data/vault.json", "data/freeway.db"].iter().any(|f| dir.join(f).is_file())
        || has_components(&dir.join("providers"))
}

fn has_components(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(Result::ok).any(|e| e.path().extension().is_some_and(|x| x == "wasm")))
        .unwrap_or(false)
}

/// `--data-dir` and `--cache-dir`, which outrank their variables.
static FLAGS: OnceLock<(Option<PathBuf>, Option<PathBuf>)> = OnceLock::new();

/// Record `--data-dir` / `--cache-dir` for every layout this process decides (call once, first).
pub fn set_flags(data_dir: Option<PathBuf>, cache_dir: Option<PathBuf>) {
    let _ = FLAGS.set((data_dir, cache_dir));
}

impl Layout {
    /// The layout for this process: `explicit_config` is `--config` / `FREEWAY_CONFIG`.
    pub fn detect(explicit_config: bool) -> Layout {
        let cwd = std::env::current_dir().unwrap_or_default();
        let flags = FLAGS.get();
        let var = |v: &str| {
            let flag = match v {
                DATA_DIR_VAR => flags.and_then(|f| f.0.as_ref()),
                CACHE_DIR_VAR => flags.and_then(|f| f.1.as_ref()),
                _ => None,
            };
            flag.map(|p| p.display().to_string()).or_else(|| std::env::var(v).ok())
        };
        Self::decide(explicit_config, &Env { cwd: &cwd, var: &var, platform: platform_dirs() })
    }

    pub fn decide(explicit_config: bool, env: &Env<'_>) -> Layout {
        let project = explicit_config || is_project_folder(env.cwd) || env.platform.is_none();
        if project {
            let data_dir = env.dir_var(DATA_DIR_VAR).unwrap_or_else(|| PathBuf::from("data"));
            let cache_dir = env.dir_var(CACHE_DIR_VAR).unwrap_or_else(|| data_dir.join("cache"));
            return Layout { project, base: PathBuf::new(), data_dir, cache_dir, config_dir: None };
        }
        let (config, data, cache) = env.platform.clone().unwrap_or_default();
        let data_dir = env.dir_var(DATA_DIR_VAR).unwrap_or(data);
        let cache_dir = env.dir_var(CACHE_DIR_VAR).unwrap_or(cache);
        Layout { project, base: data_dir.clone(), data_dir, cache_dir, config_dir: Some(config) }
    }

    /// The configuration file read when none is named: the project's, or the user's.
    pub fn default_config_file(&self) -> Option<PathBuf> {
        let file =
            if self.project { PathBuf::from(PROJECT_CONFIG) } else { self.config_dir.as_ref()?.join("freeway.toml") };
        file.is_file().then_some(file)
    }

    /// A data path from the configuration, placed by the layout.
    pub fn data_path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            return p.to_owned();
        }
        let under = |dir: &Path, rest: &Path| if rest.as_os_str().is_empty() { dir.to_owned() } else { dir.join(rest) };
        if let Ok(rest) = p.strip_prefix("data/cache") {
            return under(&self.cache_dir, rest);
        }
        if let Ok(rest) = p.strip_prefix("data") {
            return under(&self.data_dir, rest);
        }
        self.base.join(p)
    }

    /// Any other relative path from the configuration (component folders, catalog files).
    pub fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() { p.to_owned() } else { self.base.join(p) }
    }

    /// Place every path of `config` by this layout.
    pub fn apply(&self, c: &mut Config) {
        for p in [
            &mut c.vault.path,
            &mut c.vault.key_file,
            &mut c.vault.audit_log,
            &mut c.vault.health_file,
            &mut c.quota.state_file,
            &mut c.discovery.state_file,
            &mut c.routing.stats_file,
            &mut c.runtime.cache_dir,
        ] {
            *p = self.data_path(p);
        }
        for p in [&mut c.runtime.providers_dir, &mut c.runtime.policies_dir] {
            *p = self.path(p);
        }
        for p in &mut c.catalog.files {
            *p = self.path(p);
        }
        if let Some(file) = c.storage.url.0.strip_prefix("sqlite://") {
            let (file, query) = file.split_once('?').map_or((file, None), |(f, q)| (f, Some(q)));
            if !file.is_empty() && file != ":memory:" {
                let placed = self.data_path(Path::new(file));
                c.storage.url.0 = match query {
                    Some(q) => format!("sqlite://{}?{q}", placed.display()),
                    None => format!("sqlite://{}", placed.display()),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform() -> Option<(PathBuf, PathBuf, PathBuf)> {
        Some(("/h/.config/freeway".into(), "/h/.local/share/freeway".into(), "/h/.cache/freeway".into()))
    }

    fn layout(explicit: bool, cwd: &Path, vars: &[(&str, &str)]) -> Layout {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let var = move |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        Layout::decide(explicit, &Env { cwd, var: &var, platform: platform() })
    }

    #[test]
    fn outside_a_project_folder_everything_lives_in_the_platform_folders() {
        let empty = tempfile::tempdir().unwrap();
        let l = layout(false, empty.path(), &[]);
        assert!(!l.project);
        let mut c = Config::default();
        l.apply(&mut c);
        assert_eq!(c.vault.path, Path::new("/h/.local/share/freeway/vault.json"));
        assert_eq!(c.vault.key_file, Path::new("/h/.local/share/freeway/master.key"));
        assert_eq!(c.quota.state_file, Path::new("/h/.local/share/freeway/quota.json"));
        assert_eq!(c.runtime.cache_dir.as_os_str(), "/h/.cache/freeway", "no trailing separator");
        assert_eq!(c.runtime.providers_dir, Path::new("/h/.local/share/freeway/providers"));
        assert_eq!(c.runtime.policies_dir, Path::new("/h/.local/share/freeway/policies"));
        assert_eq!(c.storage.url.0, "sqlite:///h/.local/share/freeway/freeway.db");
        assert_eq!(l.config_dir.as_deref(), Some(Path::new("/h/.config/freeway")));
    }

    #[test]
    fn a_project_folder_keeps_its_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("config")).unwrap();
        std::fs::write(dir.path().join(PROJECT_CONFIG), "").unwrap();
        let l = layout(false, dir.path(), &[]);
        assert!(l.project);
        let mut c = Config::default();
        l.apply(&mut c);
        assert_eq!(c.vault.path, Path::new("data/vault.json"));
        assert_eq!(c.runtime.cache_dir, Path::new("data/cache"));
        assert_eq!(c.runtime.providers_dir, Path::new("providers"));
        assert_eq!(c.storage.url.0, "sqlite://data/freeway.db");
        // a folder with a gateway's data, and a named configuration file, are projects too
        let old = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(old.path().join("data")).unwrap();
        std::fs::write(old.path().join("data/master.key"), "").unwrap();
        assert!(layout(false, old.path(), &[]).project);
        assert!(layout(true, tempfile::tempdir().unwrap().path(), &[]).project);
        let built = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(built.path().join("providers")).unwrap();
        assert!(!layout(false, built.path(), &[]).project, "an empty providers folder says nothing");
        std::fs::write(built.path().join("providers/mine.wasm"), "").unwrap();
        assert!(layout(false, built.path(), &[]).project);
    }

    #[test]
    fn the_data_and_cache_variables_move_the_data_paths_in_either_layout() {
        let vars = [(DATA_DIR_VAR, "/srv/fw"), (CACHE_DIR_VAR, "/var/cache/fw")];
        for explicit in [false, true] {
            let l = layout(explicit, tempfile::tempdir().unwrap().path(), &vars);
            let mut c = Config::default();
            c.storage.url.0 = "sqlite://data/usage.db?mode=rwc".into();
            l.apply(&mut c);
            assert_eq!(c.vault.path, Path::new("/srv/fw/vault.json"));
            assert_eq!(c.runtime.cache_dir, Path::new("/var/cache/fw"));
            assert_eq!(c.storage.url.0, "sqlite:///srv/fw/usage.db?mode=rwc");
        }
        // absolute paths and other databases are left alone
        let l = layout(false, tempfile::tempdir().unwrap().path(), &vars);
        let mut c = Config::default();
        c.vault.path = "/etc/fw/vault.json".into();
        c.storage.url.0 = "postgres://db/x".into();
        l.apply(&mut c);
        assert_eq!(c.vault.path, Path::new("/etc/fw/vault.json"));
        assert_eq!(c.storage.url.0, "postgres://db/x");
    }

    #[test]
    fn the_user_configuration_file_is_read_only_outside_a_project() {
        let home = tempfile::tempdir().unwrap();
        let conf = home.path().join("xdg-config");
        std::fs::create_dir_all(&conf).unwrap();
        std::fs::write(conf.join("freeway.toml"), "").unwrap();
        let var = |_: &str| None;
        let env = Env {
            cwd: home.path(),
            var: &var,
            platform: Some((conf.clone(), home.path().join("data"), home.path().join("cache"))),
        };
        let l = Layout::decide(false, &env);
        assert_eq!(l.default_config_file(), Some(conf.join("freeway.toml")));
    }
}
