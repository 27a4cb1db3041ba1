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

    /// A cached compilation of the component with this hash, if one exists and loads.
    pub fn load(&self, engine: &Engine, content_hash: &str) -> Option<Component> {
        let path = self.path(content_hash);
        if !path.exists() {
            return None;
        }
        // SAFETY: the file is one this gateway serialised with `Component::serialize` for an engine
        // with the same compatibility hash (both are in its name), written atomically into its own
        // cache directory (mode 0700). wasmtime still checks the header and version.
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
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    }
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
