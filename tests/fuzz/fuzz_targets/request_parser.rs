//! `ChatBody::parse` on arbitrary bytes; for the bodies it accepts, `write_upstream` with
//! arbitrary edits.
//!
//! Input: the request body, then optionally a 0xFF byte (never in UTF-8 JSON) followed by the
//! bytes the edits are drawn from. Seeds are plain JSON bodies.
//!
//! Properties: no panic; the upstream body is valid JSON whenever every `Set` value is; every
//! top-level key no edit touches reaches the upstream body with its value unchanged; `model` is
//! the upstream model.

#![no_main]

use std::collections::HashMap;

use arbitrary::{Result, Unstructured};
use freeway_core::wire::chat::{ChatBody, Edit, UpstreamBody};
use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;

/// A key for an edit: mostly one of the body's own, so edits hit something.
fn key(u: &mut Unstructured, keys: &[String]) -> Result<String> {
    if !keys.is_empty() && u.ratio(3, 4)? {
        let k = u.choose(keys)?.clone();
        // sometimes a nested path under it (`messages[].name`, `response_format.x`)
        return Ok(match u.int_in_range(0..=3)? {
            0 => format!("{k}[].{}", u.arbitrary::<String>()?),
            1 => format!("{k}.{}", u.arbitrary::<String>()?),
            _ => k,
        });
    }
    u.arbitrary()
}

/// A value for `Set`: valid JSON most of the time, arbitrary text otherwise.
fn value(u: &mut Unstructured) -> Result<String> {
    Ok(match u.int_in_range(0..=6)? {
        0 => u.arbitrary()?,
        1 => serde_json::to_string(&u.arbitrary::<String>()?).unwrap_or_default(),
        2 => u.arbitrary::<i64>()?.to_string(),
        3 => u.arbitrary::<bool>()?.to_string(),
        4 => "null".to_owned(),
        5 => format!("{{\"a\":[1,{}]}}", serde_json::to_string(&u.arbitrary::<String>()?).unwrap_or_default()),
        _ => format!(" [ {} ] ", u.arbitrary::<u8>()?),
    })
}

fn edits(u: &mut Unstructured, keys: &[String]) -> Result<Vec<Edit>> {
    let mut out = Vec::new();
    for _ in 0..u.int_in_range(0..=6)? {
        out.push(match u.int_in_range(0..=2)? {
            0 => Edit::Remove(key(u, keys)?),
            1 => Edit::Rename(key(u, keys)?, key(u, keys)?),
            _ => Edit::Set(key(u, keys)?, value(u)?),
        });
    }
    Ok(out)
}

/// Whether `edits` leave the top-level entry `key` alone (and write no other entry named so).
fn untouched(key: &str, edits: &[Edit]) -> bool {
    let nested = |path: &str| path.strip_prefix(key).is_some_and(|rest| rest.starts_with(['[', '.']));
    !edits.iter().any(|e| match e {
        Edit::Remove(p) => p == key || nested(p),
        Edit::Rename(from, to) => from == key || to == key,
        Edit::Set(k, _) => k == key,
    })
}

/// The top-level keys of a JSON object, duplicates included, in order.
struct Keys(Vec<String>);

impl<'de> serde::Deserialize<'de> for Keys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Keys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                let mut keys = Vec::new();
                while let Some((k, _)) = map.next_entry::<String, serde::de::IgnoredAny>()? {
                    keys.push(k);
                }
                Ok(Keys(keys))
            }
        }
        d.deserialize_map(V)
    }
}

fuzz_target!(|data: &[u8]| {
    let (body, tail) = match data.iter().position(|b| *b == 0xFF) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(parsed) = ChatBody::parse(body) else { return };
    let keys: Vec<String> = parsed.keys().map(str::to_owned).collect();
    let mut u = Unstructured::new(tail);
    let edits = edits(&mut u, &keys).unwrap_or_default();
    let inject_usage = u.arbitrary().unwrap_or(false);
    let model = u.arbitrary::<String>().unwrap_or_default();

    let mut out = Vec::new();
    let spec = UpstreamBody { model: &model, inject_usage, edits: &edits };
    let written = parsed.write_upstream(&spec, &mut out);
    let sets_are_json = edits.iter().all(|e| match e {
        Edit::Set(_, v) => serde_json::from_str::<&RawValue>(v).is_ok(),
        _ => true,
    });
    if !sets_are_json {
        return;
    }
    assert!(written.is_ok(), "edits with JSON values were refused: {written:?}");
    let upstream: HashMap<String, &RawValue> = match serde_json::from_slice(&out) {
        Ok(v) => v,
        Err(e) => panic!("upstream body is not JSON ({e}): {}\nedits: {edits:?}", String::from_utf8_lossy(&out)),
    };
    // every key is written once, renames included
    {
        let Keys(written) = serde_json::from_slice(&out).expect("checked above");
        let mut seen = std::collections::HashSet::new();
        for k in &written {
            assert!(seen.insert(k), "key {k:?} written twice: {}\nedits: {edits:?}", String::from_utf8_lossy(&out));
        }
    }
    for k in &keys {
        if k == "model" || k == "stream_options" || !untouched(k, &edits) {
            continue;
        }
        let Some(original) = parsed.get(k) else { continue };
        let got = upstream.get(k).map(|v| v.get());
        assert_eq!(got, Some(original.get()), "key {k:?} did not survive\nedits: {edits:?}");
    }
    // a nested removal rewrites that one value: nothing else of it may be lost
    for k in &keys {
        let nested_only = k != "model"
            && !untouched(k, &edits)
            && !edits.iter().any(|e| match e {
                Edit::Remove(p) => p == k,
                Edit::Rename(from, to) => from == k || to == k,
                Edit::Set(key, _) => key == k,
            });
        let Some(original) = parsed.get(k) else { continue };
        if nested_only && original.get() != "null" {
            let got = upstream.get(k).map(|v| v.get());
            assert_ne!(got, Some("null"), "key {k:?} ({}) was replaced by null\nedits: {edits:?}", original.get());
        }
    }
    if untouched("model", &edits) {
        let m = upstream.get("model").and_then(|v| serde_json::from_str::<String>(v.get()).ok());
        assert_eq!(m.as_deref(), Some(model.as_str()), "edits: {edits:?}");
    }
});
