//! Impersonating the providers of Freeway's catalog (`config/catalog.toml`): one upstream per
//! non-local provider, at `/<provider id>` + the path of its `base_url`, speaking the profile of
//! its component (or id), listing its catalog models and enforcing its catalog limits.
//!
//! The catalog is read with the small structs below (only the fields the simulator uses), not
//! with the gateway's own types, so the simulator does not depend on the gateway.
//!
//! | catalog | simulator |
//! | --- | --- |
//! | `base_url = "https://api.groq.com/openai/v1"`, `id = "groq"` | `prefix = "/groq/openai/v1"` |
//! | `component` / `id` | `profile` (see [`catalog_profile`]) |
//! | `models[].id` | `models`, `strict_models = true` (when the catalog lists any) |
//! | `limits` rpm / rpd / tpm / tpd / neurons_per_day | `limits` (per key; `scope = "model"`: per key and model) |
//! | `models[].limits` | `model_limits."<id>"` (per key and model) |
//! | `daily_reset` (`"00:00 UTC"`, `"00:00 America/Los_Angeles"`) | `daily_reset` of every limit |
//!
//! Cohere's chat lives under `/v2` and its model list under `/v1`: a `cohere` provider whose base
//! URL ends in `/v2` gets a second upstream at the `/v1` sibling (e.g. `/cohere/v1`).
//!
//! Not simulated: `rph`, `tokens_per_month`, `credits_per_month` (no such counters), `local`
//! providers (they run on the user's machine), and `keys` (any key is accepted).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::Deserialize;

use crate::config::{ConfigError, LimitsConfig, SimConfig, UpstreamConfig, normalize_prefix};
use crate::daily::DailyReset;
use crate::profiles::Profile;

#[derive(Debug, Deserialize)]
struct CatalogFile {
    #[serde(default)]
    providers: Vec<CatalogProvider>,
}

#[derive(Debug, Deserialize)]
struct CatalogProvider {
    id: String,
    base_url: String,
    component: String,
    #[serde(default)]
    local: bool,
    #[serde(default)]
    daily_reset: Option<String>,
    #[serde(default)]
    limits: Option<CatalogLimits>,
    #[serde(default)]
    models: Vec<CatalogModel>,
}

#[derive(Debug, Default, Deserialize)]
struct CatalogLimits {
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    rpm: Option<u64>,
    #[serde(default)]
    rpd: Option<u64>,
    #[serde(default)]
    tpm: Option<u64>,
    #[serde(default)]
    tpd: Option<u64>,
    #[serde(default)]
    neurons_per_day: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct CatalogModel {
    id: String,
    #[serde(default)]
    limits: Option<CatalogLimits>,
}

impl CatalogLimits {
    /// The simulator's limits, or `None` when the catalog gives no number it can count.
    fn to_sim(&self, daily_reset: Option<DailyReset>) -> Option<LimitsConfig> {
        let limits = LimitsConfig {
            rpm: self.rpm,
            rpd: self.rpd,
            tpm: self.tpm,
            tpd: self.tpd,
            neurons_per_day: self.neurons_per_day,
            per_model: self.scope.as_deref() == Some("model"),
            daily_reset,
        };
        let counted = [limits.rpm, limits.rpd, limits.tpm, limits.tpd, limits.neurons_per_day];
        counted.iter().any(Option::is_some).then_some(limits)
    }
}

impl SimConfig {
    /// One upstream per non-local provider of a Freeway catalog (the text of
    /// `config/catalog.toml`), normalized: see the [module docs](crate::catalog).
    pub fn from_catalog(text: &str) -> Result<SimConfig, ConfigError> {
        let catalog: CatalogFile = toml::from_str(text).map_err(|e| ConfigError(format!("invalid catalog: {e}")))?;
        let mut upstreams = Vec::new();
        for provider in catalog.providers.iter().filter(|p| !p.local) {
            let main = upstream(provider)?;
            // Cohere chats under /v2 but lists its models under /v1
            let sibling = (main.profile.name() == "cohere")
                .then(|| main.prefix.strip_suffix("/v2").map(|root| format!("{root}/v1")))
                .flatten()
                .map(|prefix| UpstreamConfig { prefix, ..main.clone() });
            upstreams.push(main);
            upstreams.extend(sibling);
        }
        SimConfig { record: true, upstreams }.normalized()
    }
}

fn upstream(p: &CatalogProvider) -> Result<UpstreamConfig, ConfigError> {
    let daily_reset = p
        .daily_reset
        .as_deref()
        .map(str::parse::<DailyReset>)
        .transpose()
        .map_err(|e| ConfigError(format!("catalog provider {}: daily_reset {e}", p.id)))?;
    let models: Vec<String> = p.models.iter().map(|m| m.id.clone()).collect();
    let model_limits = p
        .models
        .iter()
        .filter_map(|m| {
            // a model's own limits are always per model
            let limits = m.limits.as_ref()?.to_sim(daily_reset)?;
            Some((m.id.clone(), LimitsConfig { per_model: false, ..limits }))
        })
        .collect();
    Ok(UpstreamConfig {
        prefix: catalog_prefix(&p.base_url, &p.id),
        profile: profile_named(catalog_profile(&p.id, &p.component)),
        keys: Vec::new(),
        strict_models: !models.is_empty(),
        models,
        limits: p.limits.as_ref().and_then(|l| l.to_sim(daily_reset)),
        model_limits,
        ..UpstreamConfig::default()
    })
}

/// The profile (by config name) that impersonates a catalog provider: the component's API
/// first (`gemini`, `cohere`, `anthropic`, `cloudflare`), else the provider's own headers and
/// errors for `openai-compat` providers (`groq`, `cerebras`, `openrouter`, `mistral` and
/// `codestral` -> `mistral`, `gemini` -> `gemini-openai`), else `openai`.
pub fn catalog_profile(provider_id: &str, component: &str) -> &'static str {
    match component {
        "gemini" => "gemini",
        "cohere" => "cohere",
        "anthropic" => "anthropic",
        "cloudflare" => "cloudflare",
        _ => match provider_id {
            "groq" => "groq",
            "cerebras" => "cerebras",
            "openrouter" => "openrouter",
            "mistral" | "codestral" => "mistral",
            "gemini" => "gemini-openai",
            _ => "openai",
        },
    }
}

/// The profile with this config name; a profile this simulator does not have (yet) falls back
/// to `openai`, with a warning.
fn profile_named(name: &str) -> Profile {
    let parsed = Profile::deserialize(serde::de::value::StrDeserializer::<serde::de::value::Error>::new(name));
    parsed.unwrap_or_else(|_| {
        tracing::warn!("freeway-sim has no `{name}` profile; impersonating it with `openai`");
        Profile::OpenAi
    })
}

/// The simulator path prefix of a catalog provider: `/<id>` + the path of its base URL, e.g.
/// `("https://api.groq.com/openai/v1", "groq")` -> `/groq/openai/v1`.
pub fn catalog_prefix(catalog_base_url: &str, provider_id: &str) -> String {
    let rest = catalog_base_url.split_once("://").map_or(catalog_base_url, |(_, rest)| rest);
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    let path = path.split(['?', '#']).next().unwrap_or("");
    normalize_prefix(&format!("/{provider_id}{}", path.trim_end_matches('/')))
}

/// A catalog provider's base URL rewritten to a simulator started with
/// [`SimConfig::from_catalog`] at `sim_addr`: `("https://api.cloudflare.com/client/v4",
/// "cloudflare", 127.0.0.1:9000)` -> `http://127.0.0.1:9000/cloudflare/client/v4`. An unspecified
/// address (0.0.0.0, ::) is written as loopback.
pub fn sim_base_url(catalog_base_url: &str, provider_id: &str, sim_addr: SocketAddr) -> String {
    let ip = match sim_addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}{}", SocketAddr::new(ip, sim_addr.port()), catalog_prefix(catalog_base_url, provider_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daily::Zone;

    const CATALOG: &str = include_str!("../../../config/catalog.toml");

    fn find<'a>(config: &'a SimConfig, prefix: &str) -> &'a UpstreamConfig {
        config.upstreams.iter().find(|u| u.prefix == prefix).unwrap_or_else(|| panic!("no upstream {prefix}"))
    }

    #[test]
    fn prefixes_are_the_provider_id_and_the_base_url_path() {
        assert_eq!(catalog_prefix("https://api.groq.com/openai/v1", "groq"), "/groq/openai/v1");
        assert_eq!(catalog_prefix("https://openrouter.ai/api/v1/", "openrouter"), "/openrouter/api/v1");
        assert_eq!(catalog_prefix("https://generativelanguage.googleapis.com/v1beta", "gemini"), "/gemini/v1beta");
        assert_eq!(catalog_prefix("https://api.cloudflare.com/client/v4", "cloudflare"), "/cloudflare/client/v4");
        assert_eq!(catalog_prefix("https://models.github.ai/inference?x=1", "github"), "/github/inference");
        assert_eq!(catalog_prefix("https://example.com", "bare"), "/bare");
        let addr: SocketAddr = "0.0.0.0:9000".parse().unwrap();
        assert_eq!(
            sim_base_url("https://api.cloudflare.com/client/v4", "cloudflare", addr),
            "http://127.0.0.1:9000/cloudflare/client/v4"
        );
        let addr: SocketAddr = "127.0.0.1:1234".parse().unwrap();
        assert_eq!(
            sim_base_url("https://api.groq.com/openai/v1", "groq", addr),
            "http://127.0.0.1:1234/groq/openai/v1"
        );
    }

    #[test]
    fn profiles_follow_the_component_then_the_id() {
        assert_eq!(catalog_profile("groq", "openai-compat"), "groq");
        assert_eq!(catalog_profile("cerebras", "openai-compat"), "cerebras");
        assert_eq!(catalog_profile("openrouter", "openai-compat"), "openrouter");
        assert_eq!(catalog_profile("codestral", "openai-compat"), "mistral");
        assert_eq!(catalog_profile("mistral", "openai-compat"), "mistral");
        assert_eq!(catalog_profile("gemini", "gemini"), "gemini");
        assert_eq!(catalog_profile("gemini", "openai-compat"), "gemini-openai");
        assert_eq!(catalog_profile("cohere", "cohere"), "cohere");
        assert_eq!(catalog_profile("anthropic", "anthropic"), "anthropic");
        assert_eq!(catalog_profile("cloudflare", "cloudflare"), "cloudflare");
        assert_eq!(catalog_profile("nvidia", "openai-compat"), "openai");
        assert_eq!(profile_named("cloudflare"), Profile::Cloudflare);
        assert_eq!(profile_named("no-such-profile"), Profile::OpenAi);
    }

    #[test]
    fn the_embedded_catalog_becomes_one_upstream_per_remote_provider() {
        let config = SimConfig::from_catalog(CATALOG).unwrap();
        assert!(config.record);
        let prefixes: Vec<&str> = config.upstreams.iter().map(|u| u.prefix.as_str()).collect();
        for want in ["/openrouter/api/v1", "/groq/openai/v1", "/gemini/v1beta", "/cloudflare/client/v4", "/cohere/v2"] {
            assert!(prefixes.contains(&want), "{want} in {prefixes:?}");
        }
        assert!(
            !prefixes.iter().any(|p| p.starts_with("/ollama") || p.starts_with("/vllm")),
            "local ones are left out"
        );
        assert!(config.upstreams.iter().all(|u| u.keys.is_empty()));

        let groq = find(&config, "/groq/openai/v1");
        assert_eq!(groq.profile, Profile::Groq);
        assert!(groq.strict_models && groq.models.iter().any(|m| m == "llama-3.1-8b-instant"));
        assert!(groq.limits.is_none(), "Groq documents no account-wide numbers");
        let small = groq.model_limits["llama-3.1-8b-instant"];
        assert_eq!((small.rpm, small.rpd, small.tpm, small.tpd), (Some(30), Some(14_400), Some(6_000), Some(500_000)));
        assert_eq!(groq.model_limits["groq/compound"].tpd, None);

        let cerebras = find(&config, "/cerebras/v1");
        let limits = cerebras.limits.unwrap();
        assert!(limits.per_model, "scope = model");
        assert_eq!((limits.rpm, limits.rpd, limits.tpm), (Some(5), Some(2_400), Some(30_000)));

        let openrouter = find(&config, "/openrouter/api/v1");
        assert_eq!(openrouter.profile, Profile::OpenRouter);
        let limits = openrouter.limits.unwrap();
        assert_eq!((limits.rpm, limits.rpd, limits.per_model), (Some(20), Some(50), false));
        assert_eq!(limits.daily_reset, Some(DailyReset::UTC_MIDNIGHT));

        let gemini = find(&config, "/gemini/v1beta");
        assert_eq!(gemini.profile, Profile::Gemini);
        let flash = gemini.model_limits["gemini-2.5-flash"];
        assert_eq!((flash.rpm, flash.rpd), (Some(5), Some(20)));
        assert_eq!(flash.daily_reset.map(|r| r.zone), Some(Zone::UsPacific));

        let cloudflare = find(&config, "/cloudflare/client/v4");
        assert_eq!(cloudflare.profile, Profile::Cloudflare);
        let limits = cloudflare.limits.unwrap();
        assert_eq!((limits.rpm, limits.neurons_per_day), (Some(300), Some(10_000)));

        assert_eq!(find(&config, "/codestral/v1").profile, Profile::Mistral);
        if find(&config, "/cohere/v2").profile.name() == "cohere" {
            assert_eq!(find(&config, "/cohere/v1").models, find(&config, "/cohere/v2").models, "models under /v1");
        }
        assert_eq!(find(&config, "/github/inference").profile, Profile::OpenAi);
        let vercel = find(&config, "/vercel-ai-gateway/v1");
        assert!(vercel.models.is_empty() && !vercel.strict_models && vercel.limits.is_none(), "credits only");
    }

    #[test]
    fn bad_catalogs_are_errors() {
        assert!(SimConfig::from_catalog("providers = 3").is_err());
        let bad_reset = "[[providers]]\nid = \"x\"\nbase_url = \"https://x/v1\"\ncomponent = \"openai-compat\"\ndaily_reset = \"noon\"\n";
        let err = SimConfig::from_catalog(bad_reset).unwrap_err();
        assert!(err.0.contains("catalog provider x"), "{err}");
        let twice = "[[providers]]\nid = \"x\"\nbase_url = \"https://x/v1\"\ncomponent = \"c\"\n[[providers]]\nid = \"x\"\nbase_url = \"https://y/v1\"\ncomponent = \"c\"\n";
        assert!(SimConfig::from_catalog(twice).is_err(), "duplicate prefixes");
    }
}
