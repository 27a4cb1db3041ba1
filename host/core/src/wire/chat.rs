//! `POST /v1/chat/completions` bodies, read without building a tree.
//!
//! The body is parsed once into its top-level entries, each value kept as the raw JSON text it
//! arrived as (`RawValue`, borrowed from the request bytes). The gateway validates and reads the
//! few fields it needs (`model`, `messages`, `stream`, `stream_options`, `max_tokens`, ...) and
//! writes the body upstream by copying the raw values, so every field it does not know reaches the
//! provider unchanged and in order.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::shape::ShapeLimits;
use crate::errors::{ErrorKind, GatewayError};

/// A validated chat completion request, borrowing from the request bytes.
#[derive(Debug)]
pub struct ChatBody<'a> {
    entries: Vec<(Cow<'a, str>, &'a RawValue)>,
    pub model: Cow<'a, str>,
    pub stream: bool,
    /// `stream_options.include_usage` as the client sent it
    pub include_usage: bool,
    /// `max_completion_tokens`, else `max_tokens`
    pub max_tokens: Option<u32>,
    pub messages: &'a RawValue,
    pub message_count: usize,
    /// the last `user` message's `content` (what the router classifies)
    pub last_user: Option<&'a RawValue>,
    /// the first `system` / `developer` message's `content`
    pub system: Option<&'a RawValue>,
    /// the `user` message before the last one, and the last `assistant` message before the last
    /// `user` one: the conversation the classifier reads the last message in
    pub earlier_user: Option<&'a RawValue>,
    pub last_assistant: Option<&'a RawValue>,
    pub has_tools: bool,
    pub has_images: bool,
    pub json_mode: bool,
}

/// A change to a top-level entry on the way upstream (from the provider component).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// a top-level key, or a path into one: `messages[].name` removes `name` from every element
    /// of `messages`; `response_format.json_schema.strict` a nested field
    Remove(String),
    Rename(String, String),
    /// key, JSON text
    Set(String, String),
}

/// How the body is written upstream.
pub struct UpstreamBody<'e> {
    pub model: &'e str,
    /// make the upstream report usage in streams (`stream_options.include_usage = true`)
    pub inject_usage: bool,
    pub edits: &'e [Edit],
}

struct Entries<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries: Vec<(Cow<'de, str>, &'de RawValue)> =
                    Vec::with_capacity(map.size_hint().unwrap_or(12));
                while let Some((k, v)) = map.next_entry::<Cow<'de, str>, &'de RawValue>()? {
                    entries.push((k, v));
                }
                Ok(Entries(last_wins(entries)))
            }
        }
        d.deserialize_map(V)
    }
}

/// JSON allows duplicate keys; the last one wins, as in most parsers, and keeps the position of
/// its last occurrence. Linear: a hash of the keys when there are more than a handful.
fn last_wins<'a>(entries: Vec<(Cow<'a, str>, &'a RawValue)>) -> Vec<(Cow<'a, str>, &'a RawValue)> {
    const SMALL: usize = 16;
    if entries.len() <= SMALL {
        let dup = |i: usize| entries[i + 1..].iter().any(|(k, _)| *k == entries[i].0);
        if !(0..entries.len()).any(dup) {
            return entries;
        }
    }
    let mut last: std::collections::HashMap<&str, usize> = std::collections::HashMap::with_capacity(entries.len());
    for (i, (k, _)) in entries.iter().enumerate() {
        last.insert(k.as_ref(), i);
    }
    if last.len() == entries.len() {
        return entries;
    }
    let keep: Vec<bool> = entries.iter().enumerate().map(|(i, (k, _))| last.get(k.as_ref()) == Some(&i)).collect();
    entries.into_iter().zip(keep).filter_map(|(e, keep)| keep.then_some(e)).collect()
}

/// The JSON kind of a raw value, from its first byte.
fn kind_of(v: &RawValue) -> &'static str {
    match v.get().as_bytes().first() {
        Some(b'"') => "string",
        Some(b'[') => "array",
        Some(b'{') => "object",
        Some(b't' | b'f') => "boolean",
        Some(b'n') => "null",
        _ => "number",
    }
}

fn invalid_type(param: &'static str, expected: &str, got: &RawValue) -> GatewayError {
    GatewayError::new(
        ErrorKind::InvalidType,
        format!("Invalid type for '{param}': expected {expected}, but got {} instead.", article(kind_of(got))),
    )
    .with_param(param)
}

fn article(kind: &str) -> String {
    match kind {
        "array" | "object" => format!("an {kind}"),
        "null" => "null".to_owned(),
        _ => format!("a {kind}"),
    }
}

fn missing(param: &'static str) -> GatewayError {
    GatewayError::new(ErrorKind::MissingParameter, format!("Missing required parameter: '{param}'.")).with_param(param)
}

#[derive(Deserialize)]
struct MessageView<'a> {
    #[serde(borrow, default)]
    role: Option<&'a RawValue>,
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct PartView<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Option<Cow<'a, str>>,
}

const ROLES: &[&str] = &["system", "developer", "user", "assistant", "tool", "function"];

impl<'a> ChatBody<'a> {
    /// Parse and validate a request body. Every failure is a client error with an OpenAI-shaped
    /// message naming the parameter.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, GatewayError> {
        Self::parse_with(bytes, &ShapeLimits::default())
    }

    /// [`ChatBody::parse`] with the body's shape bounded by `limits` (checked first, in one
    /// linear pass).
    pub fn parse_with(bytes: &'a [u8], limits: &ShapeLimits) -> Result<Self, GatewayError> {
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first.is_none() {
            return Err(GatewayError::new(
                ErrorKind::InvalidJson,
                "The request body is empty; expected a JSON object.",
            ));
        }
        if first != Some(&b'{') {
            if std::str::from_utf8(bytes).is_err() {
                return Err(invalid_utf8());
            }
            return Err(GatewayError::new(ErrorKind::InvalidJson, "The request body must be a JSON object."));
        }
        super::shape::check(bytes, limits)?;
        let Entries(entries) = serde_json::from_slice(bytes).map_err(|e| {
            if std::str::from_utf8(bytes).is_err() {
                invalid_utf8()
            } else {
                GatewayError::new(
                    ErrorKind::InvalidJson,
                    format!("We could not parse the JSON body of your request ({e}). Expected a JSON object."),
                )
            }
        })?;
        let get = |k: &str| entries.iter().find(|(e, _)| e == k).map(|(_, v)| *v);

        let model_raw = get("model").ok_or_else(|| missing("model"))?;
        if kind_of(model_raw) != "string" {
            return Err(invalid_type("model", "a string", model_raw));
        }
        let model: Cow<'a, str> =
            serde_json::from_str(model_raw.get()).map_err(|_| invalid_type("model", "a string", model_raw))?;
        if model.trim().is_empty() {
            return Err(GatewayError::new(ErrorKind::InvalidValue, "Invalid value for 'model': it must not be empty.")
                .with_param("model"));
        }

        let messages = get("messages").ok_or_else(|| missing("messages"))?;
        if kind_of(messages) != "array" {
            return Err(invalid_type("messages", "an array of message objects", messages));
        }
        let views: Vec<&RawValue> = serde_json::from_str(messages.get())
            .map_err(|_| invalid_type("messages", "an array of message objects", messages))?;
        if views.is_empty() {
            return Err(GatewayError::new(
                ErrorKind::InvalidValue,
                "Invalid 'messages': the array must contain at least one message.",
            )
            .with_param("messages"));
        }
        let mut has_images = false;
        let (mut last_user, mut system) = (None, None);
        let (mut earlier_user, mut last_assistant, mut assistant) = (None, None, None);
        for (i, raw) in views.iter().enumerate() {
            if kind_of(raw) != "object" {
                return Err(GatewayError::new(
                    ErrorKind::InvalidType,
                    format!(
                        "Invalid type for 'messages[{i}]': expected an object, but got {} instead.",
                        article(kind_of(raw))
                    ),
                )
                .with_param(format!("messages[{i}]")));
            }
            let m: MessageView = serde_json::from_str(raw.get()).map_err(|_| {
                GatewayError::new(ErrorKind::InvalidValue, format!("Invalid 'messages[{i}]'."))
                    .with_param(format!("messages[{i}]"))
            })?;
            let role_raw = m.role.ok_or_else(|| {
                GatewayError::new(
                    ErrorKind::MissingParameter,
                    format!("Missing required parameter: 'messages[{i}].role'."),
                )
                .with_param(format!("messages[{i}].role"))
            })?;
            let role: Option<Cow<str>> = serde_json::from_str(role_raw.get()).ok();
            match role.as_deref() {
                Some("user") => {
                    earlier_user = last_user;
                    last_assistant = assistant;
                    last_user = m.content;
                }
                Some("assistant") => assistant = m.content,
                Some("system" | "developer") if system.is_none() => system = m.content,
                Some(r) if ROLES.contains(&r) => {}
                Some(r) => {
                    return Err(GatewayError::new(
                        ErrorKind::InvalidValue,
                        format!(
                            "Invalid value for 'messages[{i}].role': '{r}'. Supported values are: {}.",
                            ROLES.join(", ")
                        ),
                    )
                    .with_param(format!("messages[{i}].role")));
                }
                None => {
                    return Err(GatewayError::new(
                        ErrorKind::InvalidType,
                        format!(
                            "Invalid type for 'messages[{i}].role': expected a string, but got {} instead.",
                            article(kind_of(role_raw))
                        ),
                    )
                    .with_param(format!("messages[{i}].role")));
                }
            }
            if let Some(content) = m.content {
                match kind_of(content) {
                    "string" | "null" => {}
                    "array" => {
                        let parts: Vec<PartView> = serde_json::from_str(content.get()).map_err(|_| {
                            GatewayError::new(
                                ErrorKind::InvalidType,
                                format!("Invalid type for 'messages[{i}].content': expected a string or an array of content parts."),
                            )
                            .with_param(format!("messages[{i}].content"))
                        })?;
                        has_images |= parts
                            .iter()
                            .any(|p| matches!(p.kind.as_deref(), Some("image_url" | "input_image" | "image")));
                    }
                    other => {
                        return Err(GatewayError::new(
                            ErrorKind::InvalidType,
                            format!(
                                "Invalid type for 'messages[{i}].content': expected a string or an array of content parts, but got {} instead.",
                                article(other)
                            ),
                        )
                        .with_param(format!("messages[{i}].content")));
                    }
                }
            }
        }

        let stream = match get("stream") {
            None => false,
            Some(v) => match v.get() {
                "true" => true,
                "false" | "null" => false,
                _ => return Err(invalid_type("stream", "a boolean", v)),
            },
        };
        let mut include_usage = false;
        if let Some(so) = get("stream_options") {
            match kind_of(so) {
                "null" => {}
                "object" => {
                    #[derive(Deserialize)]
                    struct StreamOptions {
                        #[serde(default)]
                        include_usage: Option<bool>,
                    }
                    let parsed: StreamOptions = serde_json::from_str(so.get()).map_err(|_| {
                        GatewayError::new(
                            ErrorKind::InvalidType,
                            "Invalid type for 'stream_options.include_usage': expected a boolean.",
                        )
                        .with_param("stream_options.include_usage")
                    })?;
                    include_usage = parsed.include_usage.unwrap_or(false);
                }
                _ => return Err(invalid_type("stream_options", "an object", so)),
            }
        }
        let mut max_tokens = None;
        for key in ["max_tokens", "max_completion_tokens"] {
            if let Some(v) = get(key) {
                match kind_of(v) {
                    "null" => {}
                    "number" => {
                        let n: u64 = v.get().parse().map_err(|_| {
                            GatewayError::new(
                                ErrorKind::InvalidValue,
                                format!("Invalid value for '{key}': expected a positive integer."),
                            )
                            .with_param(key)
                        })?;
                        if n == 0 {
                            return Err(GatewayError::new(
                                ErrorKind::InvalidValue,
                                format!("Invalid value for '{key}': it must be at least 1."),
                            )
                            .with_param(key));
                        }
                        max_tokens = Some(u32::try_from(n).unwrap_or(u32::MAX));
                    }
                    _ => {
                        return Err(GatewayError::new(
                            ErrorKind::InvalidType,
                            format!(
                                "Invalid type for '{key}': expected an integer, but got {} instead.",
                                article(kind_of(v))
                            ),
                        )
                        .with_param(key));
                    }
                }
            }
        }
        let has_tools = get("tools").is_some_and(|t| kind_of(t) == "array" && t.get().len() > 2);
        let json_mode = get("response_format").is_some_and(|r| r.get().contains("json"));

        Ok(Self {
            model,
            stream,
            include_usage,
            max_tokens,
            messages,
            message_count: views.len(),
            last_user,
            system,
            earlier_user,
            last_assistant,
            has_tools,
            has_images,
            json_mode,
            entries,
        })
    }

    /// Top-level keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_ref())
    }

    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// Write the body for the upstream: `model` replaced, usage reporting injected for streams,
    /// the component's edits applied; everything else copied verbatim.
    pub fn write_upstream(&self, spec: &UpstreamBody<'_>, out: &mut Vec<u8>) -> Result<(), GatewayError> {
        for edit in spec.edits {
            if let Edit::Set(k, v) = edit
                && serde_json::from_str::<&RawValue>(v).is_err()
            {
                return Err(GatewayError::new(
                    ErrorKind::ComponentFailed,
                    format!("provider component set '{k}' to text that is not JSON"),
                ));
            }
        }
        out.reserve(self.messages.get().len() + 256);
        out.push(b'{');
        let mut first = true;
        // every key is written once: names written so far, and those a rename, a `Set` or the
        // usage injection introduced (few; the body's own keys are unique already)
        let mut written: Vec<&str> = Vec::with_capacity(self.entries.len() + 2);
        let mut introduced: Vec<&str> = Vec::new();
        let push_key = |out: &mut Vec<u8>, key: &str, first: &mut bool| {
            if !*first {
                out.push(b',');
            }
            *first = false;
            // serialising a &str into a Vec cannot fail
            let _ = serde_json::to_writer(&mut *out, key);
            out.push(b':');
        };
        // an entry of the body that reaches upstream under its own name
        let survives = |k: &str| self.entries.iter().any(|(key, _)| key == k && final_name(key, spec.edits) == Some(k));
        // the last value a component set for `k`
        let set_value = |k: &str| {
            spec.edits.iter().rev().find_map(|e| match e {
                Edit::Set(sk, v) if sk == k => Some(v.as_str()),
                _ => None,
            })
        };
        for (key, value) in &self.entries {
            let Some(name) = final_name(key, spec.edits) else { continue };
            if introduced.contains(&name) {
                continue;
            }
            if name != key.as_ref() {
                // renamed onto a key the body keeps: the body's own value wins
                if survives(name) {
                    continue;
                }
                introduced.push(name);
            }
            let usage = name == "stream_options" && spec.inject_usage;
            written.push(name);
            push_key(out, name, &mut first);
            if let Some(v) = set_value(name) {
                if usage {
                    out.extend_from_slice(with_include_usage(v).as_bytes());
                } else {
                    out.extend_from_slice(v.as_bytes());
                }
                continue;
            }
            if key == "model" {
                let _ = serde_json::to_writer(&mut *out, spec.model);
                continue;
            }
            // rare (provider quirks): removals inside this value, done on its JSON text so that
            // everything else in it (numbers of any size, order, spacing) is copied as it came
            let mut text: Cow<'_, str> = Cow::Borrowed(value.get());
            for edit in spec.edits {
                if let Edit::Remove(path) = edit
                    && let Some(rest) = path.strip_prefix(key.as_ref()).filter(|rest| rest.starts_with(['[', '.']))
                    && let Some(edited) = remove_raw(&text, rest)
                {
                    text = Cow::Owned(edited);
                }
            }
            if usage {
                out.extend_from_slice(with_include_usage(&text).as_bytes());
            } else {
                out.extend_from_slice(text.as_bytes());
            }
        }
        if spec.inject_usage && !written.contains(&"stream_options") {
            written.push("stream_options");
            push_key(out, "stream_options", &mut first);
            out.extend_from_slice(with_include_usage(set_value("stream_options").unwrap_or("null")).as_bytes());
        }
        // keys the body lacks, added once with the last value set for each
        for edit in spec.edits {
            if let Edit::Set(k, _) = edit
                && !written.contains(&k.as_str())
                && let Some(v) = set_value(k)
            {
                written.push(k);
                push_key(out, k, &mut first);
                out.extend_from_slice(v.as_bytes());
            }
        }
        out.push(b'}');
        Ok(())
    }

    /// The body as JSON text with `model` set to the upstream id (for translating components).
    pub fn to_upstream_string(&self, model: &str) -> Result<String, GatewayError> {
        let mut out = Vec::with_capacity(self.messages.get().len() + 256);
        self.write_upstream(&UpstreamBody { model, inject_usage: false, edits: &[] }, &mut out)?;
        String::from_utf8(out).map_err(|_| GatewayError::internal("request body is not UTF-8"))
    }

    /// A rough prompt size in tokens (4 bytes a token) until a real tokenizer is wired in.
    pub fn estimated_prompt_tokens(&self) -> u32 {
        u32::try_from(self.messages.get().len() / 4).unwrap_or(u32::MAX).max(1)
    }
}

/// The name a top-level key reaches upstream under (`None`: removed), the edits applied in order.
fn final_name<'s>(key: &'s str, edits: &'s [Edit]) -> Option<&'s str> {
    let mut name = key;
    for edit in edits {
        match edit {
            Edit::Remove(k) if k == name => return None,
            Edit::Rename(from, to) if from == name => name = to,
            _ => {}
        }
    }
    Some(name)
}

/// `raw` (JSON text) with what `path` (`[].name`, `.a.b`, `[].content[].cache_control`) points to
/// removed, everything else copied as it was; `None` when nothing was removed (or `raw` does not
/// have the shape the path walks).
fn remove_raw(raw: &str, path: &str) -> Option<String> {
    if let Some(rest) = path.strip_prefix("[]") {
        let items: Vec<&RawValue> = serde_json::from_str(raw).ok()?;
        let mut changed = false;
        let mut out = String::with_capacity(raw.len());
        out.push('[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            match remove_raw(item.get(), rest) {
                Some(edited) => {
                    changed = true;
                    out.push_str(&edited);
                }
                None => out.push_str(item.get()),
            }
        }
        out.push(']');
        return changed.then_some(out);
    }
    let rest = path.strip_prefix('.')?;
    let end = rest.find(['.', '[']).unwrap_or(rest.len());
    let (field, tail) = rest.split_at(end);
    let Entries(entries) = serde_json::from_str(raw).ok()?;
    let mut changed = false;
    let mut kept: Vec<(&str, Cow<'_, str>)> = Vec::with_capacity(entries.len());
    for (k, v) in &entries {
        if k == field {
            if tail.is_empty() {
                changed = true;
                continue;
            }
            if let Some(edited) = remove_raw(v.get(), tail) {
                changed = true;
                kept.push((k, Cow::Owned(edited)));
                continue;
            }
        }
        kept.push((k, Cow::Borrowed(v.get())));
    }
    changed.then(|| object_text(kept.iter().map(|(k, v)| (*k, v.as_ref()))))
}

/// A JSON object from keys and raw JSON values.
fn object_text<'v>(entries: impl Iterator<Item = (&'v str, &'v str)>) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in entries.enumerate() {
        if i > 0 {
            out.push(',');
        }
        // serialising a &str cannot fail
        out.push_str(&serde_json::to_string(k).unwrap_or_default());
        out.push(':');
        out.push_str(v);
    }
    out.push('}');
    out
}

/// `stream_options` (raw JSON, maybe `null`) with `include_usage` set to `true`.
fn with_include_usage(raw: &str) -> String {
    let entries = serde_json::from_str::<Entries<'_>>(raw).map(|Entries(e)| e).unwrap_or_default();
    let others = entries.iter().filter(|(k, _)| k != "include_usage").map(|(k, v)| (k.as_ref(), v.get()));
    object_text(others.chain(std::iter::once(("include_usage", "true"))))
}

fn invalid_utf8() -> GatewayError {
    GatewayError::new(ErrorKind::InvalidJson, "The request body is not valid UTF-8; JSON must be UTF-8 encoded.")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ChatBody<'_>, GatewayError> {
        ChatBody::parse(s.as_bytes())
    }

    fn upstream(body: &ChatBody, model: &str, inject: bool, edits: &[Edit]) -> serde_json::Value {
        let mut out = Vec::new();
        body.write_upstream(&UpstreamBody { model, inject_usage: inject, edits }, &mut out).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn valid_body_is_read() {
        let b =
            parse(r#"{"model":"local/m","messages":[{"role":"user","content":"hi"}],"stream":true,"max_tokens":5}"#)
                .unwrap();
        assert_eq!(b.model, "local/m");
        assert!(b.stream);
        assert_eq!(b.max_tokens, Some(5));
        assert!(!b.include_usage);
    }

    #[test]
    fn unknown_fields_survive_in_order() {
        let b = parse(
            r#"{"z_custom":{"a":[1,2]},"model":"x","messages":[{"role":"user","content":"hi"}],"logit_bias":{"1":2}}"#,
        )
        .unwrap();
        let mut out = Vec::new();
        b.write_upstream(&UpstreamBody { model: "up", inject_usage: false, edits: &[] }, &mut out).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"z_custom":{"a":[1,2]},"model":"up","messages":[{"role":"user","content":"hi"}],"logit_bias":{"1":2}}"#
        );
    }

    #[test]
    fn usage_is_injected_into_streams() {
        let b = parse(r#"{"model":"x","messages":[{"role":"user","content":"hi"}],"stream":true}"#).unwrap();
        assert_eq!(upstream(&b, "x", true, &[])["stream_options"]["include_usage"], true);
        let b = parse(
            r#"{"model":"x","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"foo":1}}"#,
        )
        .unwrap();
        let v = upstream(&b, "x", true, &[]);
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["stream_options"]["foo"], 1);
    }

    #[test]
    fn edits_remove_rename_and_set() {
        let b = parse(r#"{"model":"x","messages":[{"role":"user","content":"hi"}],"logprobs":true,"max_tokens":9}"#)
            .unwrap();
        let edits = [
            Edit::Remove("logprobs".into()),
            Edit::Rename("max_tokens".into(), "max_completion_tokens".into()),
            Edit::Set("safe_prompt".into(), "false".into()),
        ];
        let v = upstream(&b, "x", false, &edits);
        assert!(v.get("logprobs").is_none());
        assert_eq!(v["max_completion_tokens"], 9);
        assert_eq!(v["safe_prompt"], false);
    }

    #[test]
    fn a_key_set_twice_is_written_once_with_the_last_value() {
        let b = parse(r#"{"model":"x","messages":[{"role":"user","content":"hi"}],"top_p":1}"#).unwrap();
        let edits = [
            Edit::Set("safe".into(), "1".into()),
            Edit::Set("safe".into(), "2".into()),
            Edit::Set("top_p".into(), "0.5".into()),
            Edit::Set("top_p".into(), "0.7".into()),
        ];
        let mut out = Vec::new();
        b.write_upstream(&UpstreamBody { model: "x", inject_usage: false, edits: &edits }, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches("\"safe\"").count(), 1, "{text}");
        assert_eq!(text.matches("\"top_p\"").count(), 1, "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!((v["safe"].as_i64(), v["top_p"].as_f64()), (Some(2), Some(0.7)));
    }

    #[test]
    fn nested_removals_copy_everything_else_as_it_came() {
        let b = parse(r#"{"model":"x","messages":[{"role":"user","content":"hi"}],"x":{"big":1e400,"n":123456789012345678901234567890,"a":1}}"#).unwrap();
        let mut out = Vec::new();
        let edits = [Edit::Remove("x.a".into())];
        b.write_upstream(&UpstreamBody { model: "x", inject_usage: false, edits: &edits }, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(r#""x":{"big":1e400,"n":123456789012345678901234567890}"#), "{text}");
        // a path the value does not have leaves it untouched
        let mut out = Vec::new();
        let edits = [Edit::Remove("x.".into()), Edit::Remove("messages[].nope".into())];
        b.write_upstream(&UpstreamBody { model: "x", inject_usage: false, edits: &edits }, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(r#""x":{"big":1e400,"n":123456789012345678901234567890,"a":1}"#), "{text}");
    }

    #[test]
    fn stream_options_edited_and_injected_are_written_once() {
        let b = parse(r#"{"model":"x","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"a":{"b":1},"c":2}}"#).unwrap();
        let mut out = Vec::new();
        let edits = [Edit::Remove("stream_options.a".into())];
        b.write_upstream(&UpstreamBody { model: "x", inject_usage: true, edits: &edits }, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches("stream_options").count(), 1, "{text}");
        assert!(text.contains(r#""stream_options":{"c":2,"include_usage":true}"#), "{text}");
    }

    #[test]
    fn every_key_is_written_once_whatever_the_edits() {
        let b = parse(r#"{"model":"x","messages":[{"role":"user","content":"hi"}],"stream":true,"max_tokens":5,"max_completion_tokens":9}"#).unwrap();
        let cases: &[&[Edit]] = &[
            // set for a key the body lacks, with usage injected
            &[Edit::Set("stream_options".into(), "null".into())],
            &[Edit::Set("stream_options".into(), r#"{"x":1}"#.into())],
            // renamed onto a key the body has: the body's own value wins
            &[Edit::Rename("max_tokens".into(), "max_completion_tokens".into())],
            // two renames onto one name
            &[Edit::Rename("max_tokens".into(), "n".into()), Edit::Rename("max_completion_tokens".into(), "n".into())],
            // a rename chain back to the first name, and another rename onto it
            &[
                Edit::Rename("model".into(), "y".into()),
                Edit::Rename("y".into(), "model".into()),
                Edit::Rename("messages".into(), "model".into()),
            ],
            // renamed onto stream_options
            &[Edit::Rename("max_tokens".into(), "stream_options".into())],
        ];
        for edits in cases {
            let mut out = Vec::new();
            b.write_upstream(&UpstreamBody { model: "x", inject_usage: true, edits }, &mut out).unwrap();
            let text = String::from_utf8(out).unwrap();
            let entries: Entries = serde_json::from_str(&text).unwrap();
            let mut keys: Vec<&str> = entries.0.iter().map(|(k, _)| k.as_ref()).collect();
            let n = keys.len();
            keys.sort_unstable();
            keys.dedup();
            assert_eq!(keys.len(), n, "{edits:?}: {text}");
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["stream_options"]["include_usage"], true, "{edits:?}: {text}");
        }
        let mut out = Vec::new();
        let edits = [Edit::Rename("max_tokens".into(), "max_completion_tokens".into())];
        b.write_upstream(&UpstreamBody { model: "x", inject_usage: false, edits: &edits }, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["max_completion_tokens"], 9);
    }

    #[test]
    fn nested_removals_follow_the_path() {
        let b = parse(r#"{"model":"x","messages":[{"role":"user","content":"hi","name":"bob"},{"role":"assistant","content":"yo"}],"response_format":{"type":"json_schema","json_schema":{"strict":true,"name":"n"}}}"#).unwrap();
        let edits = [Edit::Remove("messages[].name".into()), Edit::Remove("response_format.json_schema.strict".into())];
        let v = upstream(&b, "x", false, &edits);
        assert!(v["messages"][0].get("name").is_none());
        assert_eq!(v["messages"][0]["content"], "hi");
        assert_eq!(v["messages"][1]["role"], "assistant");
        assert!(v["response_format"]["json_schema"].get("strict").is_none());
        assert_eq!(v["response_format"]["json_schema"]["name"], "n");
    }

    #[test]
    fn set_with_invalid_json_is_a_component_error() {
        let b = parse(r#"{"model":"x","messages":[{"role":"user","content":"hi"}]}"#).unwrap();
        let mut out = Vec::new();
        let err = b
            .write_upstream(
                &UpstreamBody { model: "x", inject_usage: false, edits: &[Edit::Set("a".into(), "{nope".into())] },
                &mut out,
            )
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::ComponentFailed);
    }

    #[test]
    fn client_mistakes_name_the_parameter() {
        let cases: &[(&str, ErrorKind, Option<&str>)] = &[
            ("", ErrorKind::InvalidJson, None),
            ("{not json", ErrorKind::InvalidJson, None),
            ("[1,2]", ErrorKind::InvalidJson, None),
            (r#"{"messages":[{"role":"user","content":"x"}]}"#, ErrorKind::MissingParameter, Some("model")),
            (r#"{"model":"m"}"#, ErrorKind::MissingParameter, Some("messages")),
            (r#"{"model":5,"messages":[]}"#, ErrorKind::InvalidType, Some("model")),
            (r#"{"model":"m","messages":"hi"}"#, ErrorKind::InvalidType, Some("messages")),
            (r#"{"model":"m","messages":[]}"#, ErrorKind::InvalidValue, Some("messages")),
            (r#"{"model":"m","messages":[1]}"#, ErrorKind::InvalidType, Some("messages[0]")),
            (r#"{"model":"m","messages":[{"content":"x"}]}"#, ErrorKind::MissingParameter, Some("messages[0].role")),
            (
                r#"{"model":"m","messages":[{"role":"wizard","content":"x"}]}"#,
                ErrorKind::InvalidValue,
                Some("messages[0].role"),
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":5}]}"#,
                ErrorKind::InvalidType,
                Some("messages[0].content"),
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"}"#,
                ErrorKind::InvalidType,
                Some("stream"),
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":"9"}"#,
                ErrorKind::InvalidType,
                Some("max_tokens"),
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":-1}"#,
                ErrorKind::InvalidValue,
                Some("max_tokens"),
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream_options":3}"#,
                ErrorKind::InvalidType,
                Some("stream_options"),
            ),
        ];
        for (body, kind, param) in cases {
            let err = parse(body).expect_err(body);
            assert_eq!(err.kind, *kind, "{body}");
            assert_eq!(err.param.as_deref(), *param, "{body}");
        }
    }

    #[test]
    fn invalid_utf8_is_a_client_error() {
        let mut bytes = br#"{"model":"m","messages":[{"role":"user","content":""#.to_vec();
        bytes.extend_from_slice(&[0xff, 0xfe]);
        bytes.extend_from_slice(br#""}]}"#);
        let err = ChatBody::parse(&bytes).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidJson);
        assert!(err.message.contains("UTF-8"));
    }

    #[test]
    fn duplicate_keys_keep_the_last_value_at_its_position() {
        let b = parse(r#"{"model":"a","messages":[{"role":"user","content":"hi"}],"model":"b","n":1}"#).unwrap();
        assert_eq!(b.model, "b");
        assert_eq!(b.keys().collect::<Vec<_>>(), ["messages", "model", "n"]);
    }

    #[test]
    fn a_hundred_thousand_distinct_keys_cost_linear_time() {
        let mut body = String::from(r#"{"model":"m","messages":[{"role":"user","content":"x"}]"#);
        for i in 0..100_000 {
            body.push_str(&format!(",\"k{i}\":{i}"));
        }
        body.push('}');
        let roomy = ShapeLimits { max_object_keys: 1_000_000, ..ShapeLimits::default() };
        let started = std::time::Instant::now();
        let b = ChatBody::parse_with(body.as_bytes(), &roomy).unwrap();
        assert_eq!(b.keys().count(), 100_002);
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
        // with the default bounds, the same body is a clear 400
        let err = ChatBody::parse(body.as_bytes()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::RequestTooComplex);
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn images_and_tools_are_noticed() {
        let b = parse(r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"x"},{"type":"image_url","image_url":{"url":"data:"}}]}],"tools":[{"type":"function","function":{"name":"f"}}]}"#).unwrap();
        assert!(b.has_images);
        assert!(b.has_tools);
    }
}
