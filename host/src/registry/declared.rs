//! Drop-in providers: a provider component in the providers folder that declares the provider
//! it serves (`declare.declaration`) becomes a catalog entry, so the provider registers with no
//! configuration entry (its key from its key variable, the vault or `freeway accounts add`) and
//! unregisters when the file goes. A catalog entry of the same id is replaced; a configuration
//! entry still overrides every field, as it does for any catalog provider.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::bindings::wit;
use crate::config::catalog::{Catalog, CatalogProvider, Limits, Tier};
use crate::runtime::ProviderComponent;

/// The catalog entries the components in `providers_dir` declare, in id order; a second file
/// declaring an id already declared is ignored (with a warning).
pub fn catalog(components: &HashMap<PathBuf, Arc<ProviderComponent>>, providers_dir: &Path) -> Catalog {
    let dir = std::path::absolute(providers_dir).unwrap_or_else(|_| providers_dir.to_owned());
    let mut found: Vec<(&PathBuf, &ProviderComponent, &wit::ProviderDeclaration)> = components
        .iter()
        .filter(|(path, _)| path.parent() == Some(dir.as_path()))
        .filter_map(|(path, c)| c.declaration.as_ref().map(|d| (path, c.as_ref(), d)))
        .collect();
    found.sort_by(|a, b| a.0.cmp(b.0));
    let mut providers: Vec<CatalogProvider> = Vec::new();
    for (path, c, d) in found {
        if let Some(first) = providers.iter().find(|p| p.id == c.manifest.id) {
            tracing::warn!(
                "{} declares provider '{}', which {} already declares: ignored",
                path.display(),
                c.manifest.id,
                first.component
            );
            continue;
        }
        providers.push(entry(path, &c.manifest, d));
    }
    providers.sort_by(|a, b| a.id.cmp(&b.id));
    Catalog { providers }
}

fn entry(path: &Path, m: &wit::ProviderManifest, d: &wit::ProviderDeclaration) -> CatalogProvider {
    let l = &d.limits;
    CatalogProvider {
        id: m.id.clone(),
        name: m.name.clone(),
        base_url: m.default_base_url.clone().unwrap_or_default(),
        component: path.display().to_string(),
        key_env: d.key_env.clone(),
        keys_url: d.keys_url.clone(),
        // a keyless provider serves the models it lists, as a local server does
        local: d.keyless,
        tier: match (d.keyless, d.free) {
            (true, _) => Tier::Local,
            (false, true) => Tier::Free,
            (false, false) => Tier::Paid,
        },
        settings: Default::default(),
        account_settings: d.account_settings.clone(),
        poll_limits: false,
        legacy_completions: false,
        rate_limit_headers: Vec::new(),
        limits: Limits {
            rpm: l.requests_per_minute,
            rpd: l.requests_per_day,
            tpm: l.tokens_per_minute,
            tpd: l.tokens_per_day,
            ..Limits::default()
        },
        daily_reset: None,
        terms: Default::default(),
        models: Vec::new(),
        notes: vec![format!("declared by the component {}", path.display())],
        sources: Vec::new(),
    }
}
