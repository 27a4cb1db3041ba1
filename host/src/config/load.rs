//! Reading and validating the configuration file. Every error names the file, the line and the
//! field (`config/freeway.toml:7:12: providers[0].base_url: ...`).

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::paths::Layout;
use super::{Config, auto};

/// Where a configuration came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: Config,
    /// the file read, or `None` when providers came from the environment
    pub path: Option<PathBuf>,
    /// where the configuration's relative paths were placed (kept for reloads)
    pub layout: Layout,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(p) => write!(f, "{}", p.display())?,
            None => write!(f, "<configuration>")?,
        }
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.column {
                write!(f, ":{c}")?;
            }
        }
        write!(f, ": ")?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(offset, |i| offset - i - 1) + 1;
    (line, col)
}

struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn err(&self, span: Option<Range<usize>>, field: Option<String>, message: impl Into<String>) -> ConfigError {
        let (line, column) = match span {
            Some(s) if s.end > 0 || s.start > 0 => {
                let (l, c) = line_col(self.text, s.start);
                (Some(l), Some(c))
            }
            _ => (None, None),
        };
        ConfigError { file: Some(self.file.to_owned()), line, column, field, message: message.into() }
    }
}

/// Parse and validate configuration text read from `file`.
pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
    let ctx = Ctx { file, text };
    let de = toml::de::Deserializer::parse(text).map_err(|e| ctx.err(e.span(), None, e.message().to_owned()))?;
    let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = (path != ".").then_some(path);
        ctx.err(inner.span(), field, inner.message().to_owned())
    })?;
    validate(&ctx, &config)?;
    Ok(config)
}

fn validate(ctx: &Ctx<'_>, config: &Config) -> Result<(), ConfigError> {
    if config.server.max_body_bytes == 0 {
        return Err(ctx.err(None, Some("server.max_body_bytes".into()), "must be greater than 0"));
    }
    if config.upstream.max_attempts == 0 {
        return Err(ctx.err(None, Some("upstream.max_attempts".into()), "must be at least 1"));
    }
    if let Err(e) = jiff::tz::TimeZone::get(config.keys.timezone.trim()) {
        return Err(ctx.err(None, Some("keys.timezone".into()), format!("not a time zone: {e}")));
    }
    if config.keys.refresh_ms > 5000 {
        return Err(ctx.err(
            None,
            Some("keys.refresh_ms".into()),
            "at most 5000 (revocations must reach every gateway within 5 s)",
        ));
    }
    if config.queue.max_wait_ms > config.queue.max_wait_cap_ms {
        return Err(ctx.err(None, Some("queue.max_wait_ms".into()), "must not exceed queue.max_wait_cap_ms"));
    }
    if config.queue.max_wait_cap_ms > 600_000 {
        return Err(ctx.err(None, Some("queue.max_wait_cap_ms".into()), "at most 600000 (10 minutes)"));
    }
    if config.queue.max_queued == 0 && config.queue.max_wait_ms > 0 {
        return Err(ctx.err(
            None,
            Some("queue.max_queued".into()),
            "must be at least 1 while waiting is on (set max_wait_ms = 0 to never wait)",
        ));
    }
    if let Some((tag, _)) = config.queue.weights.iter().find(|(_, w)| **w == 0 || **w > 1000) {
        return Err(ctx.err(None, Some(format!("queue.weights.{tag}")), "a weight is from 1 to 1000"));
    }
    if config.runtime.guest_cpu_ms == 0 || config.runtime.guest_memory_mib == 0 || config.runtime.max_instances == 0 {
        return Err(ctx.err(
            None,
            Some("runtime".into()),
            "guest_cpu_ms, guest_memory_mib and max_instances must be greater than 0",
        ));
    }
    for (i, r) in config.routing_rules.iter().enumerate() {
        if let Err(e) = r.parsed() {
            return Err(ctx.err(None, Some(format!("routing_rules[{i}]")), e));
        }
    }
    for (i, r) in config.routes.iter().enumerate() {
        let field = Some(format!("routes[{i}]"));
        match &r.to {
            Some(to) if to.trim().is_empty() || to.contains('*') => {
                return Err(ctx.err(None, field, "`to` must name one model or alias (no `*`)"));
            }
            Some(_) if !r.fallback_chain.is_empty() || r.policy.is_some() || r.hedge || r.cache.is_some() => {
                return Err(ctx.err(
                    None,
                    field,
                    "a route with `to` only renames: give `fallback_chain`, `policy`, `hedge` or `cache` to the route it names",
                ));
            }
            Some(to) if config.routes.iter().any(|o| o.to.is_some() && o.matches(to)) => {
                return Err(ctx.err(None, field, format!("`to = \"{to}\"` is itself renamed by a route")));
            }
            None if r.model.contains('*') => {
                return Err(ctx.err(None, field, "a `*` in `model` needs `to` (the model or alias it is served as)"));
            }
            _ => {}
        }
    }
    validate_webhooks(ctx, config)?;
    let mut ids = HashSet::new();
    for (i, p) in config.providers.iter().enumerate() {
        let id = p.id.get_ref();
        let field = |name: &str| Some(format!("providers[{i}].{name}"));
        if !super::catalog::valid_provider_id(id) {
            return Err(ctx.err(
                Some(p.id.span()),
                field("id"),
                format!("\"{id}\" is not a valid provider id (letters, digits, '-', '_' and '.' only)"),
            ));
        }
        if !ids.insert(id.as_str()) {
            return Err(ctx.err(Some(p.id.span()), field("id"), format!("provider id \"{id}\" is used twice")));
        }
        if let Some(c) = &p.component
            && c.get_ref().trim().is_empty()
        {
            return Err(ctx.err(Some(c.span()), field("component"), "must name a built-in component or a .wasm file"));
        }
        if let Some(url) = &p.base_url {
            match url::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                Ok(u) => {
                    return Err(ctx.err(
                        span_of(ctx.text, i, "base_url"),
                        field("base_url"),
                        format!("\"{}\" must be an http(s) URL with a host (scheme is {})", &**url, u.scheme()),
                    ));
                }
                Err(e) => {
                    return Err(ctx.err(
                        span_of(ctx.text, i, "base_url"),
                        field("base_url"),
                        format!("\"{}\" is not a URL: {e}", &**url),
                    ));
                }
            }
        }
        let mut models = HashSet::new();
        for (j, m) in p.models.iter().enumerate() {
            if m.id().trim().is_empty() {
                return Err(ctx.err(None, Some(format!("providers[{i}].models[{j}]")), "model id is empty"));
            }
            if !models.insert(m.id()) {
                return Err(ctx.err(
                    None,
                    Some(format!("providers[{i}].models[{j}]")),
                    format!("model \"{}\" is listed twice", m.id()),
                ));
            }
        }
    }
    Ok(())
}

/// `[[webhooks]]`: an http(s) URL with a host, known event names, a deadline and an attempt.
fn validate_webhooks(ctx: &Ctx<'_>, config: &Config) -> Result<(), ConfigError> {
    for (i, w) in config.webhooks.iter().enumerate() {
        let field = |name: &str| Some(format!("webhooks[{i}].{name}"));
        match url::Url::parse(&w.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            Ok(u) => {
                return Err(ctx.err(
                    None,
                    field("url"),
                    format!("\"{}\" must be an http(s) URL with a host (scheme is {})", &*w.url, u.scheme()),
                ));
            }
            Err(e) => return Err(ctx.err(None, field("url"), format!("\"{}\" is not a URL: {e}", &*w.url))),
        }
        if w.events.is_empty() {
            return Err(ctx.err(None, field("events"), "names no event (leave it out for every event)"));
        }
        if let Some(bad) = w.events.iter().find(|e| *e != "*" && !super::WEBHOOK_EVENTS.contains(&e.as_str())) {
            return Err(ctx.err(
                None,
                field("events"),
                format!("unknown event \"{bad}\" (known: \"*\", {})", super::WEBHOOK_EVENTS.join(", ")),
            ));
        }
        if w.timeout_ms == 0 {
            return Err(ctx.err(None, field("timeout_ms"), "must be greater than 0"));
        }
        if !(1..=20).contains(&w.max_attempts) {
            return Err(ctx.err(None, field("max_attempts"), "must be between 1 and 20"));
        }
    }
    Ok(())
}

/// Best-effort span of `key` inside the i-th `[[providers]]` table, for errors found after parsing.
fn span_of(text: &str, provider: usize, key: &str) -> Option<Range<usize>> {
    let mut starts = text.match_indices("[[providers]]").map(|(i, _)| i);
    let start = starts.nth(provider)?;
    let end = text[start + 1..].find("[[").map_or(text.len(), |e| start + 1 + e);
    let section = &text[start..end];
    let mut offset = 0;
    for line in section.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if trimmed.starts_with(key) && trimmed[key.len()..].trim_start().starts_with('=') {
            let at = start + offset + (line.len() - trimmed.len());
            return Some(at..at + key.len());
        }
        offset += line.len();
    }
    None
}

/// Read and validate a configuration file named on the command line (its relative paths are
/// relative to the current directory).
pub fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
    load_in(path, Layout::detect(true))
}

/// Read the same file again, with the same layout (hot reload).
pub fn reload(previous: &LoadedConfig) -> Result<LoadedConfig, ConfigError> {
    match &previous.path {
        Some(path) => load_in(path, previous.layout.clone()),
        None => Ok(previous.clone()),
    }
}

fn load_in(path: &Path, layout: Layout) -> Result<LoadedConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: Some(path.to_owned()),
        line: None,
        column: None,
        field: None,
        message: format!("cannot read the configuration file: {e}"),
    })?;
    let mut config = parse(path, &text)?;
    layout.apply(&mut config);
    from_environment(&mut config);
    Ok(LoadedConfig { config, path: Some(path.to_owned()), layout })
}

/// Client keys from `FREEWAY_API_KEY` (several separated by commas) join `[server] api_keys`;
/// `FREEWAY_ADMIN_KEY` sets the admin key. Keys stay out of the file this way.
fn keys_from_env(config: &mut Config, var: impl Fn(&str) -> Option<String>) {
    if let Some(keys) = var("FREEWAY_API_KEY") {
        for key in keys.split(',').map(str::trim).filter(|k| !k.is_empty()) {
            if !config.server.api_keys.iter().any(|k| k.expose() == key) {
                config.server.api_keys.push(super::SecretString::new(key));
            }
        }
    }
    if let Some(admin) = var("FREEWAY_ADMIN_KEY").filter(|k| !k.trim().is_empty()) {
        config.server.admin_key = Some(super::SecretString::new(admin.trim()));
    }
}

/// `explicit`, else the default configuration file if it exists (`config/freeway.toml` in a
/// project folder, `$XDG_CONFIG_HOME/freeway/freeway.toml` elsewhere: see [`super::paths`]), else
/// providers from their key variables.
pub fn load_or_auto(explicit: Option<&Path>) -> Result<LoadedConfig, ConfigError> {
    if let Some(p) = explicit {
        return load(p);
    }
    let layout = Layout::detect(false);
    if let Some(file) = layout.default_config_file() {
        return load_in(&file, layout);
    }
    let mut config = Config::default();
    layout.apply(&mut config);
    from_environment(&mut config);
    Ok(LoadedConfig { config, path: None, layout })
}

/// What the environment adds to a configuration: client and admin keys, and (with `auto_env`,
/// the default) the providers whose key variables are set.
fn from_environment(config: &mut Config) {
    keys_from_env(config, |v| std::env::var(v).ok());
    if config.auto_env.0 {
        let catalog =
            super::Catalog::load(&config.catalog.files).unwrap_or_else(|_| super::catalog::embedded().clone());
        auto::merge_from_env(config, &catalog, |v| std::env::var(v).ok());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_and_admin_keys_come_from_the_environment_too() {
        let mut c = Config::default();
        c.server.api_keys.push(crate::config::SecretString::new("fw-file"));
        let env = |v: &str| match v {
            "FREEWAY_API_KEY" => Some("fw-env-1, fw-env-2,,fw-file".to_owned()),
            "FREEWAY_ADMIN_KEY" => Some("fw-admin".to_owned()),
            _ => None,
        };
        keys_from_env(&mut c, env);
        let keys: Vec<&str> = c.server.api_keys.iter().map(|k| k.expose()).collect();
        assert_eq!(keys, ["fw-file", "fw-env-1", "fw-env-2"]);
        assert_eq!(c.server.admin_key.as_ref().map(|k| k.expose()), Some("fw-admin"));
    }

    fn parse_str(text: &str) -> Result<Config, ConfigError> {
        parse(Path::new("freeway.toml"), text)
    }

    #[test]
    fn renaming_routes_are_checked() {
        let ok = parse_str("[[routes]]\nmodel = \"claude-*\"\nto = \"auto:code\"\n").unwrap();
        assert_eq!(ok.routes[0].to.as_deref(), Some("auto:code"));
        for (bad, says) in [
            ("[[routes]]\nmodel = \"claude-*\"\nfallback_chain = [\"m\"]\n", "needs `to`"),
            ("[[routes]]\nmodel = \"c\"\nto = \"m\"\npolicy = \"smart\"\n", "only renames"),
            ("[[routes]]\nmodel = \"c\"\nto = \"m-*\"\n", "no `*`"),
            ("[[routes]]\nmodel = \"a*\"\nto = \"ab\"\n", "itself renamed"),
        ] {
            let e = parse_str(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn webhooks_are_checked_and_default_to_every_event() {
        let ok = parse_str("[[webhooks]]\nurl = \"http://127.0.0.1:9/hook\"\nsecret = \"whsec-123\"\n").unwrap();
        let w = &ok.webhooks[0];
        assert_eq!((w.events.as_slice(), w.timeout_ms, w.max_attempts), (["*".to_owned()].as_slice(), 5000, 6));
        assert!(w.wants("key.budget") && w.wants("provider.up"));
        assert!(!format!("{w:?}").contains("whsec-123"), "the secret never prints");
        for (bad, says) in [
            ("url = \"ftp://h/x\"\nsecret = \"s\"", "http(s)"),
            ("url = \"not a url\"\nsecret = \"s\"", "not a URL"),
            ("url = \"http://h\"\nsecret = \"s\"\nevents = [\"key.budgett\"]", "unknown event \"key.budgett\""),
            ("url = \"http://h\"\nsecret = \"s\"\nevents = []", "names no event"),
            ("url = \"http://h\"\nsecret = \"s\"\ntimeout_ms = 0", "greater than 0"),
            ("url = \"http://h\"\nsecret = \"s\"\nmax_attempts = 0", "between 1 and 20"),
            ("url = \"http://h\"\nsecret = \"\"", "empty"),
        ] {
            let e = parse_str(&format!("[[webhooks]]\n{bad}\n")).unwrap_err().to_string();
            assert!(e.contains(says) && e.contains("webhooks[0]"), "{bad}: {e}");
        }
    }

    #[test]
    fn paths_are_interpolated_like_every_other_string() {
        let home = std::env::var("HOME").unwrap_or_default();
        let c = parse_str(
            "[runtime]\nproviders_dir = \"${FREEWAY_SURELY_UNSET_FOR_TEST:-/opt/fw}/providers\"\ncache_dir = \"${HOME}/cache\"\n\
             [vault]\npath = \"${FREEWAY_SURELY_UNSET_FOR_TEST:-/srv}/vault.json\"\n\
             [catalog]\nfiles = [\"${FREEWAY_SURELY_UNSET_FOR_TEST:-/etc}/extra.toml\"]\n",
        )
        .unwrap();
        assert_eq!(c.runtime.providers_dir, std::path::PathBuf::from("/opt/fw/providers"));
        assert_eq!(c.runtime.cache_dir, std::path::PathBuf::from(format!("{home}/cache")));
        assert_eq!(c.vault.path, std::path::PathBuf::from("/srv/vault.json"));
        assert_eq!(c.catalog.files, [std::path::PathBuf::from("/etc/extra.toml")]);
        let e = parse_str("[quota]\nstate_file = \"${FREEWAY_SURELY_UNSET_FOR_TEST}/q.json\"\n").unwrap_err();
        assert!(e.to_string().contains("FREEWAY_SURELY_UNSET_FOR_TEST"), "{e}");
    }

    #[test]
    fn the_example_configuration_and_its_commented_routing_sections_parse() {
        let text = include_str!("../../../config/freeway.example.toml");
        let c = parse_str(text).unwrap();
        assert_eq!(c.routing.policy, "smart");
        // the commented rule, uncommented, is valid too
        let rules: String = text
            .lines()
            .skip_while(|l| !l.starts_with("# [[routing_rules]]"))
            .take_while(|l| l.starts_with('#'))
            .map(|l| format!("{}\n", l.trim_start_matches("# ")))
            .collect();
        let c = parse_str(&format!("{rules}\n{MINIMAL}")).unwrap();
        assert_eq!(c.routing_rules.len(), 1);
        assert_eq!(c.routing_rules[0].prefer_models, ["qwen-2.5-coder-32b"]);
    }

    #[test]
    fn a_routing_rule_with_a_bad_regex_names_the_rule() {
        let e = parse_str(&format!("[[routing_rules]]\nname = \"x\"\nregex = \"(\"\n{MINIMAL}")).unwrap_err();
        assert!(e.to_string().contains("routing rule `x`: regex"), "{e}");
    }

    const MINIMAL: &str = r#"
[[providers]]
id = "local"
component = "openai-compat"          # a built-in name, or a path to a .wasm file
base_url = "http://127.0.0.1:9000/v1"
api_keys = ["sk-local-1"]
models = ["local-model"]
"#;

    #[test]
    fn the_minimal_provider_parses_exactly_as_documented() {
        let c = parse_str(MINIMAL).unwrap();
        let p = &c.providers[0];
        assert_eq!(p.id.get_ref(), "local");
        assert_eq!(p.component.as_ref().unwrap().get_ref(), "openai-compat");
        assert_eq!(p.base_url.as_deref(), Some("http://127.0.0.1:9000/v1"));
        assert_eq!(p.api_keys[0].expose(), "sk-local-1");
        assert_eq!(p.models[0].id(), "local-model");
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8000");
    }

    #[test]
    fn unknown_field_names_file_line_and_field() {
        let err = parse_str("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n").unwrap_err();
        let s = err.to_string();
        assert!(s.starts_with("freeway.toml:3:"), "{s}");
        assert!(s.contains("lisen"), "{s}");
    }

    #[test]
    fn wrong_type_names_the_field_path() {
        let err = parse_str("[[providers]]\nid = \"a\"\napi_keys = \"sk\"\n").unwrap_err();
        assert_eq!(err.line, Some(3), "{err}");
        assert_eq!(err.field.as_deref(), Some("providers[0].api_keys"), "{err}");
    }

    #[test]
    fn missing_env_var_is_named_with_its_line() {
        let err =
            parse_str("[[providers]]\nid = \"a\"\napi_keys = [\"${FREEWAY_TEST_SURELY_UNSET_VAR}\"]\n").unwrap_err();
        assert!(err.message.contains("FREEWAY_TEST_SURELY_UNSET_VAR"), "{err}");
        assert_eq!(err.line, Some(3), "{err}");
        assert_eq!(err.field.as_deref(), Some("providers[0].api_keys[0]"), "{err}");
    }

    #[test]
    fn semantic_errors_point_at_the_value() {
        let err = parse_str("[[providers]]\nid = \"a\"\n\n[[providers]]\nid = \"a\"\n").unwrap_err();
        assert_eq!(err.line, Some(5), "{err}");
        assert_eq!(err.field.as_deref(), Some("providers[1].id"));
        let err = parse_str("[[providers]]\nid = \"a\"\nbase_url = \"ftp://x\"\n").unwrap_err();
        assert_eq!(err.line, Some(3), "{err}");
        assert!(err.message.contains("http"), "{err}");
        let err = parse_str("[[providers]]\nid = \"a/b\"\n").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("providers[0].id"));
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let err = parse_str("[server\nlisten = 1\n").unwrap_err();
        assert_eq!(err.line, Some(1), "{err}");
    }
}
