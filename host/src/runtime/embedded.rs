//! The built-in components compiled into the binary (see `host/build.rs`): the provider adapters
//! and the default `smart` policy. A component file of the same name in the providers or
//! policies folder takes their place. Each is known by a path of the form `embedded:<name>`, which
//! no file watcher reports and no configured `.wasm` path can spell.

use std::path::{Path, PathBuf};

mod generated {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

const SCHEME: &str = "embedded:";

/// The embedded provider component of this name.
pub fn provider(name: &str) -> Option<&'static [u8]> {
    find(generated::PROVIDERS, name)
}

/// The embedded policy component of this name.
pub fn policy(name: &str) -> Option<&'static [u8]> {
    find(generated::POLICIES, name)
}

pub fn provider_names() -> impl Iterator<Item = &'static str> {
    generated::PROVIDERS.iter().map(|(n, _)| *n)
}

pub fn policy_names() -> impl Iterator<Item = &'static str> {
    generated::POLICIES.iter().map(|(n, _)| *n)
}

/// The path an embedded component is known by.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from(format!("{SCHEME}{name}"))
}

/// The embedded component's name, when `path` names one.
pub fn name(path: &Path) -> Option<&str> {
    path.to_str()?.strip_prefix(SCHEME)
}

/// The bytes behind an `embedded:` path.
pub fn bytes(path: &Path) -> Option<&'static [u8]> {
    let name = name(path)?;
    provider(name).or_else(|| policy(name))
}

fn find(list: &'static [(&'static str, &'static [u8])], name: &str) -> Option<&'static [u8]> {
    list.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_providers_and_the_smart_policy_are_embedded_as_components() {
        let providers: Vec<_> = provider_names().collect();
        assert_eq!(providers, ["openai-compat", "gemini", "cloudflare", "cohere", "anthropic"]);
        assert_eq!(policy_names().collect::<Vec<_>>(), ["smart"]);
        for name in providers.iter().copied().chain(policy_names()) {
            let wasm = bytes(&path(name)).unwrap();
            assert_eq!(&wasm[..4], b"\0asm", "{name}");
            assert_ne!(wasm[4..8], [1, 0, 0, 0], "{name} is a core module, not a component");
        }
    }

    #[test]
    fn only_embedded_paths_name_embedded_components() {
        assert_eq!(name(&path("gemini")), Some("gemini"));
        assert_eq!(name(Path::new("providers/gemini.wasm")), None);
        assert!(bytes(Path::new("embedded:nothing-by-this-name")).is_none());
        assert!(bytes(Path::new("/abs/embedded:gemini")).is_none());
    }
}
