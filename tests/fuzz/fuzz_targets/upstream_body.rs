//! Structured request bodies (built with `arbitrary`) -> JSON text -> `ChatBody::parse` ->
//! `write_upstream` with no edits.
//!
//! Properties: a well-formed body always parses and the fields the gateway reads are what was
//! sent; the upstream body is the same JSON with only `model` replaced (and `stream_options`
//! with `include_usage: true` when usage is injected), keys in the same order.

#![no_main]

use arbitrary::{Arbitrary, Result, Unstructured};
use freeway_core::wire::chat::{ChatBody, UpstreamBody};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

/// Keys the parser reads itself; extra fields are drawn from other names.
const KNOWN: &[&str] = &["model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens"];

#[derive(Debug, Arbitrary)]
enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
    Function,
}

#[derive(Debug, Arbitrary)]
enum Part {
    Text(String),
    Image(String),
    Other(String, String),
}

#[derive(Debug, Arbitrary)]
enum Content {
    Absent,
    Null,
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Arbitrary)]
struct Message {
    role: Role,
    content: Content,
    name: Option<String>,
}

#[derive(Debug)]
struct Json(Value);

/// Any JSON value, nested at most a few levels.
fn json_value(u: &mut Unstructured, depth: u8) -> Result<Value> {
    let top = if depth == 0 { 4 } else { 6 };
    Ok(match u.int_in_range(0..=top)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => json!(u.arbitrary::<i64>()?),
        3 => {
            let f: f64 = u.arbitrary()?;
            if f.is_finite() { json!(f) } else { json!(u.arbitrary::<u64>()?) }
        }
        4 => Value::String(u.arbitrary()?),
        5 => {
            let n = u.int_in_range(0..=4)?;
            Value::Array((0..n).map(|_| json_value(u, depth - 1)).collect::<Result<_>>()?)
        }
        _ => {
            let mut m = Map::new();
            for _ in 0..u.int_in_range(0..=4)? {
                m.insert(u.arbitrary()?, json_value(u, depth - 1)?);
            }
            Value::Object(m)
        }
    })
}

impl<'a> Arbitrary<'a> for Json {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        json_value(u, 3).map(Json)
    }
}

#[derive(Debug, Arbitrary)]
struct Body {
    model: String,
    messages: Vec<Message>,
    stream: Option<bool>,
    include_usage: Option<Option<bool>>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    extra: Vec<(String, Json)>,
    /// where the extra fields go: before or after the known ones
    extra_first: bool,
    inject_usage: bool,
    upstream_model: String,
}

fn message(m: &Message) -> Value {
    let mut o = Map::new();
    let role = match m.role {
        Role::System => "system",
        Role::Developer => "developer",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
        Role::Function => "function",
    };
    o.insert("role".into(), json!(role));
    match &m.content {
        Content::Absent => {}
        Content::Null => {
            o.insert("content".into(), Value::Null);
        }
        Content::Text(t) => {
            o.insert("content".into(), json!(t));
        }
        Content::Parts(parts) => {
            let parts: Vec<Value> = parts
                .iter()
                .map(|p| match p {
                    Part::Text(t) => json!({"type": "text", "text": t}),
                    Part::Image(url) => json!({"type": "image_url", "image_url": {"url": url}}),
                    Part::Other(kind, v) => json!({"type": kind, "x": v}),
                })
                .collect();
            o.insert("content".into(), Value::Array(parts));
        }
    }
    if let Some(n) = &m.name {
        o.insert("name".into(), json!(n));
    }
    Value::Object(o)
}

fn is_image(p: &Part) -> bool {
    match p {
        Part::Image(_) => true,
        Part::Other(kind, _) => matches!(kind.as_str(), "image_url" | "input_image" | "image"),
        Part::Text(_) => false,
    }
}

fuzz_target!(|b: Body| {
    let mut known = Map::new();
    known.insert("model".into(), json!(b.model));
    known.insert("messages".into(), Value::Array(b.messages.iter().map(message).collect()));
    if let Some(s) = b.stream {
        known.insert("stream".into(), json!(s));
    }
    if let Some(iu) = b.include_usage {
        known.insert("stream_options".into(), json!({ "include_usage": iu }));
    }
    // 0 is refused by the parser (tested in request_parser); here the bodies are valid
    let max_tokens = b.max_tokens.filter(|n| *n > 0);
    let max_completion = b.max_completion_tokens.filter(|n| *n > 0);
    if let Some(n) = max_tokens {
        known.insert("max_tokens".into(), json!(n));
    }
    if let Some(n) = max_completion {
        known.insert("max_completion_tokens".into(), json!(n));
    }
    let mut extra = Map::new();
    for (k, v) in b.extra {
        if !KNOWN.contains(&k.as_str()) {
            extra.insert(k, v.0);
        }
    }
    let mut fields = Map::new();
    let (first, second) = if b.extra_first { (extra, known) } else { (known, extra) };
    fields.extend(first);
    fields.extend(second);
    let sent = Value::Object(fields);
    let Ok(text) = serde_json::to_vec(&sent) else { return };

    let parsed = ChatBody::parse(&text);
    if b.model.trim().is_empty() || b.messages.is_empty() {
        assert!(parsed.is_err(), "an empty model or no messages was accepted");
        return;
    }
    let parsed = match parsed {
        Ok(p) => p,
        Err(e) => panic!("a well-formed body was refused: {e:?}\n{}", String::from_utf8_lossy(&text)),
    };
    assert_eq!(parsed.model, b.model);
    assert_eq!(parsed.stream, b.stream.unwrap_or(false));
    assert_eq!(parsed.include_usage, b.include_usage.flatten().unwrap_or(false));
    assert_eq!(parsed.max_tokens, max_completion.or(max_tokens));
    assert_eq!(parsed.message_count, b.messages.len());
    let images = b.messages.iter().any(|m| matches!(&m.content, Content::Parts(p) if p.iter().any(is_image)));
    assert_eq!(parsed.has_images, images);
    let keys: Vec<&str> = parsed.keys().collect();
    let sent_keys: Vec<&str> = sent.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
    assert_eq!(keys, sent_keys);

    let mut out = Vec::new();
    let spec = UpstreamBody { model: &b.upstream_model, inject_usage: b.inject_usage, edits: &[] };
    parsed.write_upstream(&spec, &mut out).expect("no edits, no failure");
    let got: Value = serde_json::from_slice(&out).expect("the upstream body is JSON");
    // what the upstream should see: the same text, reparsed, with model (and usage) changed
    let mut want: Value = serde_json::from_slice(&text).expect("we wrote it");
    let obj = want.as_object_mut().expect("an object");
    obj.insert("model".into(), json!(b.upstream_model));
    if b.inject_usage {
        match obj.get_mut("stream_options").and_then(Value::as_object_mut) {
            Some(so) => {
                so.insert("include_usage".into(), json!(true));
            }
            None => {
                obj.insert("stream_options".into(), json!({"include_usage": true}));
            }
        }
    }
    assert_eq!(got, want, "\nsent: {}\nupstream: {}", String::from_utf8_lossy(&text), String::from_utf8_lossy(&out));
    let got_keys: Vec<&String> = got.as_object().map(|o| o.keys().collect()).unwrap_or_default();
    let want_keys: Vec<&String> = want.as_object().map(|o| o.keys().collect()).unwrap_or_default();
    assert_eq!(got_keys, want_keys, "keys keep their order");
});
