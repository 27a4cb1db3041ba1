//! Built against `freeway:gateway@0.2.0`; Freeway 0.1 must refuse to load it.

wit_bindgen::generate!({ path: "wit", world: "provider" });

use exports::freeway::gateway::provider_api::Guest;
use freeway::gateway::types::{AuthStyle, ProviderManifest};

struct Future;

impl Guest for Future {
    fn manifest() -> ProviderManifest {
        ProviderManifest {
            id: "future".into(),
            name: "from the future".into(),
            version: "9.9.9".into(),
            allowed_hosts: Vec::new(),
            auth: AuthStyle::None,
            default_base_url: None,
            needs_body: false,
            limit_headers: Vec::new(),
            models: Vec::new(),
        }
    }
}

export!(Future);
