//! Host-side bindings generated from `wit/` (package `freeway:gateway`).

/// The WIT package version this host implements. Components built against another
/// incompatible version are refused when they load.
///
/// 0.1.1 added the optional `embeddings` export (world `embedding-provider`). A component built
/// against 0.1.0 still loads: wasmtime looks imports and exports up by semver-compatible name, so
/// its `provider-api@0.1.0` satisfies this host's `provider-api@0.1.1`, and it simply lacks the
/// optional exports.
pub const WIT_VERSION: &str = "0.1.1";
pub const WIT_PACKAGE: &str = "freeway:gateway";

pub mod provider {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "provider",
        imports: {
            "freeway:gateway/http.send": async,
            default: trappable,
        },
        exports: { default: async },
    });
}

pub mod policy {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "policy",
        imports: { default: trappable },
        exports: { default: async },
        with: {
            "freeway:gateway/types": super::provider::freeway::gateway::types,
            "freeway:gateway/log": super::provider::freeway::gateway::log,
            "freeway:gateway/clock": super::provider::freeway::gateway::clock,
        },
    });
}

/// The optional `declare` export of drop-in providers (world `declared-provider`); every other
/// interface is the provider world's.
pub mod declared {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "declared-provider",
        exports: { default: async },
        with: {
            "freeway:gateway/types": super::provider::freeway::gateway::types,
            "freeway:gateway/http": super::provider::freeway::gateway::http,
            "freeway:gateway/credentials": super::provider::freeway::gateway::credentials,
            "freeway:gateway/rate-limit": super::provider::freeway::gateway::rate_limit,
            "freeway:gateway/log": super::provider::freeway::gateway::log,
            "freeway:gateway/clock": super::provider::freeway::gateway::clock,
            "freeway:gateway/provider-api": super::provider::exports::freeway::gateway::provider_api,
        },
    });
}

/// The optional `embeddings` export (world `embedding-provider`, since 0.1.1).
pub mod embedding {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "embedding-provider",
        exports: { default: async },
        with: {
            "freeway:gateway/types": super::provider::freeway::gateway::types,
            "freeway:gateway/http": super::provider::freeway::gateway::http,
            "freeway:gateway/credentials": super::provider::freeway::gateway::credentials,
            "freeway:gateway/rate-limit": super::provider::freeway::gateway::rate_limit,
            "freeway:gateway/log": super::provider::freeway::gateway::log,
            "freeway:gateway/clock": super::provider::freeway::gateway::clock,
            "freeway:gateway/provider-api": super::provider::exports::freeway::gateway::provider_api,
            "freeway:gateway/declare": super::declared::exports::freeway::gateway::declare,
        },
    });
}

pub use provider::freeway::gateway::types as wit;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wit_version_matches_the_wit_files() {
        for (name, text) in [
            ("types.wit", include_str!("../../wit/types.wit")),
            ("host.wit", include_str!("../../wit/host.wit")),
            ("provider.wit", include_str!("../../wit/provider.wit")),
            ("policy.wit", include_str!("../../wit/policy.wit")),
            ("worlds.wit", include_str!("../../wit/worlds.wit")),
        ] {
            assert!(text.contains(&format!("package {WIT_PACKAGE}@{WIT_VERSION};")), "{name} declares another version");
        }
    }
}
