//! Precompiled components on disk, keyed by the component's content hash and the engine's
//! compatibility hash, so restarts skip Cranelift. Only files this process wrote are loaded.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

pub struct ArtifactCache {
    dir: PathBuf,
    engine_tag: String,
}

impl ArtifactCache {
    pub fn new(dir: &Path, engine: &Engine) -> Self {
        let mut h = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Self { dir: dir.to_owned(), engine_tag: format!("{:016x}", h.finish()) }
    }

    fn path(&self, content_hash: &str) -> PathBuf {
        self.dir.join(format!("{content_hash}-{}.cwasm", self.engine_tag))
    }

    /// A cached compilation of the component with this hash, if one exists, is one this user
    /// wrote (see [`trusted`]) and loads.
    pub fn load(&self, engine: &Engine, content_hash: &str) -> Option<Component> {
        let path = self.path(content_hash);
        if !path.exists() {
            return None;
        }
        if let Err(why) = trusted(&self.dir).and_then(|()| trusted(&path)) {
            tracing::warn!("not loading the cached component {}: {why}; compiling it again", path.display());
            return None;
        }
        // SAFETY: the file is one this gateway serialised with `Component::serialize` for an engine
        // with the same compatibility hash (both are in its name), written atomically into its own
        // cache directory (mode 0700), owned by this user and writable by no one else (checked
        // just above). wasmtime still checks the header and version.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!("discarding unreadable cached component {}: {e}", path.display());
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Save a compiled component; failures only cost a recompilation later.
    pub fn store(&self, content_hash: &str, component: &Component) {
        if let Err(e) = self.try_store(content_hash, component) {
            tracing::warn!("cannot cache a compiled component in {}: {e}", self.dir.display());
        }
    }

    fn try_store(&self, content_hash: &str, component: &Component) -> std::io::Result<()> {
        let bytes = component.serialize().map_err(std::io::Error::other)?;
        create_private_dir(&self.dir)?;
        let path = self.path(content_hash);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    }
}

/// Precompiled code is loaded without validation, so only files (and a folder) that this user
/// owns and that no one else can write are trusted: another local user who could drop a file
/// into the cache could otherwise run native code in the gateway.
#[cfg(unix)]
fn trusted(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    if meta.file_type().is_symlink() {
        return Err("it is a symbolic link".to_owned());
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(format!("it is owned by user {}, not by this user ({me})", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!("others may write it (mode {:o})", meta.mode() & 0o777));
    }
    Ok(())
}

#[cfg(not(unix))]
fn trusted(_path: &Path) -> Result<(), String> {
    Ok(())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn only_private_files_of_this_user_are_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        create_private_dir(&cache).unwrap();
        let file = cache.join("x.cwasm");
        std::fs::write(&file, b"x").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(trusted(&cache).is_ok() && trusted(&file).is_ok());
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(trusted(&file).unwrap_err().contains("others may write"));
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(trusted(&cache).is_err());
        let link = dir.path().join("link.cwasm");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(trusted(&link).unwrap_err().contains("symbolic link"));
    }
}
