//! `config/freeway.example.toml` names every key the configuration reads: each section's keys are
//! taken from the types themselves (the field list serde's derive hands its deserializer), so a
//! new key that is not in the example fails this test.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde::de::{self, Visitor};

/// A deserializer that records the fields a struct asks for, then stops.
struct FieldProbe<'a>(&'a mut Vec<&'static str>);

#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stop")
    }
}
impl std::error::Error for Stop {}
impl de::Error for Stop {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Stop
    }
}

impl<'de> de::Deserializer<'de> for FieldProbe<'_> {
    type Error = Stop;
    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        self.0.extend_from_slice(fields);
        Err(Stop)
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

fn fields<'de, T: Deserialize<'de>>() -> Vec<&'static str> {
    let mut out = Vec::new();
    let _ = T::deserialize(FieldProbe(&mut out));
    out
}

/// Keys per section of the example, commented-out ones included (`# key = ...`).
fn example_keys(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines() {
        let l = line.trim_start_matches('#').trim();
        if l.starts_with('[') {
            section = l.trim_start_matches('[').split(']').next().unwrap_or_default().trim().to_owned();
            // `[server.client_tags]` shows the key `client_tags` of `[server]`
            if let Some((parent, key)) = section.rsplit_once('.') {
                out.entry(parent.to_owned()).or_default().insert(key.to_owned());
            }
            continue;
        }
        if let Some((key, _)) = l.split_once('=') {
            let key = key.trim();
            if !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
                out.entry(section.clone()).or_default().insert(key.to_owned());
            }
        }
    }
    out
}

#[test]
fn the_example_configuration_names_every_key() {
    use super::*;
    let text = include_str!("../../../config/freeway.example.toml");
    let keys = example_keys(text);
    let sections: Vec<(&str, Vec<&'static str>)> = vec![
        ("", fields::<Config>()),
        ("server", fields::<ServerConfig>()),
        ("runtime", fields::<RuntimeConfig>()),
        ("upstream", fields::<UpstreamConfig>()),
        ("vault", fields::<VaultConfig>()),
        ("storage", fields::<StorageConfig>()),
        ("catalog", fields::<CatalogConfig>()),
        ("discovery", fields::<DiscoveryConfig>()),
        ("quota", fields::<QuotaConfig>()),
        ("client_limits", fields::<ClientLimitsConfig>()),
        ("queue", fields::<QueueConfig>()),
        ("body_log", fields::<BodyLogConfig>()),
        ("cache", fields::<CacheConfig>()),
        ("keys", fields::<KeysConfig>()),
        ("routes", fields::<RouteConfig>()),
        ("routing", fields::<RoutingConfig>()),
        ("routing_rules", fields::<RoutingRuleConfig>()),
        ("providers", fields::<ProviderConfig>()),
        ("webhooks", fields::<WebhookConfig>()),
    ];
    let mut missing = Vec::new();
    for (section, names) in &sections {
        assert!(!names.is_empty(), "no fields probed for [{section}]");
        for name in names {
            // top-level keys that are tables are sections of their own
            if section.is_empty() && sections.iter().any(|(s, _)| s == name) {
                continue;
            }
            let listed = keys.get(*section).is_some_and(|k| k.contains(*name));
            if !listed {
                missing.push(if section.is_empty() { (*name).to_owned() } else { format!("{section}.{name}") });
            }
        }
    }
    assert!(missing.is_empty(), "config/freeway.example.toml does not show: {missing:?}");
}

#[test]
fn the_probe_sees_a_struct_s_fields() {
    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct S {
        a: u8,
        #[serde(rename = "b_b")]
        b: String,
    }
    assert_eq!(fields::<S>(), ["a", "b_b"]);
    let keys = example_keys("top = 1\n[s]\nx = 1 # c\n# y = \"z\"\n# [[t]]\n# q = 2\n# [s.sub]\n");
    assert_eq!(keys[""], BTreeSet::from(["top".to_owned()]));
    assert_eq!(keys["s"], BTreeSet::from(["x".to_owned(), "y".to_owned(), "sub".to_owned()]));
    assert_eq!(keys["t"], BTreeSet::from(["q".to_owned()]));
}
