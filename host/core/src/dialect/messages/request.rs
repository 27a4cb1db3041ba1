//! An Anthropic Messages request -> an OpenAI chat completion request.
//!
//! Served: `model`, `max_tokens`, `messages` (text, image, `tool_use`, `tool_result`, `document`
//! with a text source; `thinking` blocks are dropped), `system` (string or text blocks),
//! `stop_sequences`, `stream`, `temperature`, `top_p`, `tools` (client tools), `tool_choice`
//! (incl. `disable_parallel_tool_use`). Accepted and ignored: `metadata`, `thinking`, `top_k`,
//! `service_tier`, `cache_control` (anywhere), `context_management`. Refused (400): server tools
//! (a `tools` entry with a `type` other than `custom`), `mcp_servers`, `container`, PDF documents.

use serde_json::{Map, Value, json};

use super::super::json::{
    Obj, as_obj, body, copy_numbers, invalid, invalid_type, missing, opt, opt_array, opt_bool, opt_u32, req_str,
    unsupported,
};
use crate::errors::GatewayError;

/// The chat request a Messages request becomes.
#[derive(Debug)]
pub struct Translated {
    pub chat: Value,
    pub model: String,
    pub stream: bool,
}

/// Top-level fields refused: they need servers the gateway does not run.
const REFUSED: &[&str] = &["mcp_servers", "container"];

pub fn to_chat(bytes: &[u8]) -> Result<Translated, GatewayError> {
    let o = body(bytes)?;
    for k in REFUSED {
        if opt(&o, k).is_some() {
            return Err(unsupported(k, format!("'{k}' is not supported: Freeway does not run Anthropic's servers.")));
        }
    }
    let model = req_str(&o, "model")?.to_owned();
    let max_tokens = opt_u32(&o, "max_tokens")?.ok_or_else(|| missing("max_tokens"))?;
    if max_tokens == 0 {
        return Err(invalid("max_tokens", "max_tokens: must be greater than or equal to 1"));
    }
    let stream = opt_bool(&o, "stream")?.unwrap_or(false);
    let mut messages = Vec::new();
    if let Some(system) = system_text(opt(&o, "system"))? {
        messages.push(json!({ "role": "system", "content": system }));
    }
    let given = opt_array(&o, "messages")?.ok_or_else(|| missing("messages"))?;
    for (i, m) in given.iter().enumerate() {
        message(m, i, &mut messages)?;
    }
    let mut chat = Map::new();
    chat.insert("model".into(), Value::String(model.clone()));
    chat.insert("messages".into(), Value::Array(messages));
    chat.insert("max_tokens".into(), max_tokens.into());
    copy_numbers(&o, &mut chat, &["temperature", "top_p"])?;
    if let Some(stops) = opt_array(&o, "stop_sequences")? {
        if stops.iter().any(|s| !s.is_string()) {
            return Err(invalid_type("stop_sequences", "an array of strings", &Value::Array(stops.clone())));
        }
        if !stops.is_empty() {
            chat.insert("stop".into(), Value::Array(stops.clone()));
        }
    }
    let tools = tools(&o)?;
    if !tools.is_empty() {
        chat.insert("tools".into(), Value::Array(tools));
        if let Some(tc) = opt(&o, "tool_choice") {
            tool_choice(tc, &mut chat)?;
        }
    }
    if stream {
        chat.insert("stream".into(), Value::Bool(true));
        chat.insert("stream_options".into(), json!({ "include_usage": true }));
    }
    Ok(Translated { chat: Value::Object(chat), model, stream })
}

/// `system`: a string, or text blocks (joined by blank lines).
fn system_text(system: Option<&Value>) -> Result<Option<String>, GatewayError> {
    match system {
        None => Ok(None),
        Some(Value::String(s)) => Ok((!s.is_empty()).then(|| s.clone())),
        Some(Value::Array(blocks)) => {
            let mut parts = Vec::with_capacity(blocks.len());
            for (i, b) in blocks.iter().enumerate() {
                let b = as_obj(b, &format!("system.{i}"))?;
                match b.get("type").and_then(Value::as_str) {
                    Some("text") => parts.push(text_field(b, &format!("system.{i}.text"))?),
                    other => {
                        return Err(invalid(
                            &format!("system.{i}.type"),
                            format!("system.{i}: expected a text block, got {}", other.unwrap_or("no type")),
                        ));
                    }
                }
            }
            let joined = parts.join("\n\n");
            Ok((!joined.is_empty()).then_some(joined))
        }
        Some(v) => Err(invalid_type("system", "a string or an array of text blocks", v)),
    }
}

fn text_field(b: &Obj, param: &str) -> Result<String, GatewayError> {
    match b.get("text") {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Err(invalid_type(param, "a string", v)),
        None => Err(missing(param)),
    }
}

/// One Anthropic message -> one or more chat messages (tool results become `tool` messages,
/// placed first, as chat requires them right after the assistant's tool calls).
fn message(m: &Value, i: usize, out: &mut Vec<Value>) -> Result<(), GatewayError> {
    let at = |k: &str| format!("messages.{i}.{k}");
    let m = as_obj(m, &format!("messages.{i}"))?;
    let role = match m.get("role") {
        Some(Value::String(r)) if r == "user" || r == "assistant" => r.as_str(),
        Some(v) => {
            return Err(invalid(&at("role"), format!("messages.{i}.role: expected 'user' or 'assistant', got {v}")));
        }
        None => return Err(missing(&at("role"))),
    };
    let blocks = match m.get("content") {
        Some(Value::String(s)) => {
            out.push(json!({ "role": role, "content": s }));
            return Ok(());
        }
        Some(Value::Array(blocks)) => blocks,
        Some(v) => return Err(invalid_type(&at("content"), "a string or an array of content blocks", v)),
        None => return Err(missing(&at("content"))),
    };
    if role == "assistant" {
        out.push(assistant(blocks, i)?);
        return Ok(());
    }
    let mut parts: Vec<Value> = Vec::new();
    let mut has_image = false;
    for (j, b) in blocks.iter().enumerate() {
        let param = format!("messages.{i}.content.{j}");
        let b = as_obj(b, &param)?;
        match b.get("type").and_then(Value::as_str) {
            Some("text") => parts.push(json!({ "type": "text", "text": text_field(b, &format!("{param}.text"))? })),
            Some("image") => {
                has_image = true;
                parts.push(image(b, &param)?);
            }
            Some("document") => parts.push(json!({ "type": "text", "text": document(b, &param)? })),
            Some("search_result") => parts.push(json!({ "type": "text", "text": search_result(b) })),
            Some("tool_result") => {
                let (tool, images) = tool_result(b, &param)?;
                out.push(tool);
                if !images.is_empty() {
                    has_image = true;
                    parts.extend(images);
                }
            }
            // earlier turns' reasoning: not sent back to another model
            Some("thinking" | "redacted_thinking") => {}
            Some(other) => {
                return Err(invalid(
                    &format!("{param}.type"),
                    format!("{param}: unsupported content block type '{other}'"),
                ));
            }
            None => return Err(missing(&format!("{param}.type"))),
        }
    }
    if parts.is_empty() {
        return Ok(());
    }
    let content = if has_image {
        Value::Array(parts)
    } else {
        let texts: Vec<&str> = parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect();
        Value::String(texts.join("\n\n"))
    };
    out.push(json!({ "role": "user", "content": content }));
    Ok(())
}

fn assistant(blocks: &[Value], i: usize) -> Result<Value, GatewayError> {
    let mut text = String::new();
    let mut calls = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let param = format!("messages.{i}.content.{j}");
        let b = as_obj(b, &param)?;
        match b.get("type").and_then(Value::as_str) {
            Some("text") => {
                if !text.is_empty() {
                    text.push_str("\n\n");
                }
                text.push_str(&text_field(b, &format!("{param}.text"))?);
            }
            Some("tool_use") => {
                let id = b.get("id").and_then(Value::as_str).ok_or_else(|| missing(&format!("{param}.id")))?;
                let name = b.get("name").and_then(Value::as_str).ok_or_else(|| missing(&format!("{param}.name")))?;
                let input = b.get("input").cloned().unwrap_or_else(|| json!({}));
                calls.push(json!({
                    "id": id,
                    "type": "function",
                    "function": { "name": name, "arguments": input.to_string() },
                }));
            }
            Some("thinking" | "redacted_thinking") => {}
            Some(other) => {
                return Err(invalid(
                    &format!("{param}.type"),
                    format!("{param}: unsupported content block type '{other}' in an assistant message"),
                ));
            }
            None => return Err(missing(&format!("{param}.type"))),
        }
    }
    let mut m = Map::new();
    m.insert("role".into(), "assistant".into());
    m.insert("content".into(), if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) });
    if !calls.is_empty() {
        m.insert("tool_calls".into(), Value::Array(calls));
    }
    Ok(Value::Object(m))
}

/// An image block -> an `image_url` part (base64 sources as a data URL).
fn image(b: &Obj, param: &str) -> Result<Value, GatewayError> {
    let src = b.get("source").ok_or_else(|| missing(&format!("{param}.source")))?;
    let src = as_obj(src, &format!("{param}.source"))?;
    let url = match src.get("type").and_then(Value::as_str) {
        Some("base64") => {
            let media = src.get("media_type").and_then(Value::as_str).unwrap_or("image/png");
            let data =
                src.get("data").and_then(Value::as_str).ok_or_else(|| missing(&format!("{param}.source.data")))?;
            format!("data:{media};base64,{data}")
        }
        Some("url") => {
            src.get("url").and_then(Value::as_str).ok_or_else(|| missing(&format!("{param}.source.url")))?.to_owned()
        }
        other => {
            return Err(unsupported(
                &format!("{param}.source.type"),
                format!("{param}: image source type '{}' is not supported (base64 or url)", other.unwrap_or("none")),
            ));
        }
    };
    Ok(json!({ "type": "image_url", "image_url": { "url": url } }))
}

/// A document block: text sources (plain or as content blocks) are served; PDFs are refused.
fn document(b: &Obj, param: &str) -> Result<String, GatewayError> {
    let src = b.get("source").and_then(Value::as_object).ok_or_else(|| missing(&format!("{param}.source")))?;
    let title = b.get("title").and_then(Value::as_str);
    let body = match src.get("type").and_then(Value::as_str) {
        Some("text") => src.get("data").and_then(Value::as_str).unwrap_or("").to_owned(),
        Some("content") => match src.get("content") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => {
                parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n\n")
            }
            _ => String::new(),
        },
        other => {
            return Err(unsupported(
                &format!("{param}.source.type"),
                format!(
                    "{param}: document source '{}' is not supported; send the document's text (source type 'text')",
                    other.unwrap_or("none")
                ),
            ));
        }
    };
    Ok(match title {
        Some(t) => format!("{t}\n\n{body}"),
        None => body,
    })
}

fn search_result(b: &Obj) -> String {
    let title = b.get("title").and_then(Value::as_str).unwrap_or("");
    let source = b.get("source").and_then(Value::as_str).unwrap_or("");
    let text = b
        .get("content")
        .and_then(Value::as_array)
        .map(|c| c.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n"))
        .unwrap_or_default();
    format!("{title} ({source})\n{text}")
}

/// A `tool_result` block -> a `tool` message, and any images it holds as user parts.
fn tool_result(b: &Obj, param: &str) -> Result<(Value, Vec<Value>), GatewayError> {
    let id = b.get("tool_use_id").and_then(Value::as_str).ok_or_else(|| missing(&format!("{param}.tool_use_id")))?;
    let mut images = Vec::new();
    let mut text = match b.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::new();
            for (k, p) in parts.iter().enumerate() {
                let p = as_obj(p, &format!("{param}.content.{k}"))?;
                match p.get("type").and_then(Value::as_str) {
                    Some("text") => texts.push(text_field(p, &format!("{param}.content.{k}.text"))?),
                    Some("image") => images.push(image(p, &format!("{param}.content.{k}"))?),
                    Some("document") => texts.push(document(p, &format!("{param}.content.{k}"))?),
                    Some("search_result") => texts.push(search_result(p)),
                    other => {
                        return Err(invalid(
                            &format!("{param}.content.{k}.type"),
                            format!("{param}: unsupported tool result block '{}'", other.unwrap_or("none")),
                        ));
                    }
                }
            }
            texts.join("\n\n")
        }
        Some(v) => return Err(invalid_type(&format!("{param}.content"), "a string or an array of blocks", v)),
    };
    if b.get("is_error").and_then(Value::as_bool) == Some(true) {
        text = format!("Error: {text}");
    }
    Ok((json!({ "role": "tool", "tool_call_id": id, "content": text }), images))
}

/// Client tools -> chat function tools; server tools are refused.
fn tools(o: &Obj) -> Result<Vec<Value>, GatewayError> {
    let Some(list) = opt_array(o, "tools")? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        let param = format!("tools.{i}");
        let t = as_obj(t, &param)?;
        match t.get("type").and_then(Value::as_str) {
            None | Some("custom") => {}
            Some(kind) => {
                return Err(unsupported(
                    &format!("{param}.type"),
                    format!(
                        "{param}: server tool '{kind}' is not supported; only client tools (name, input_schema) are"
                    ),
                ));
            }
        }
        let name = t.get("name").and_then(Value::as_str).ok_or_else(|| missing(&format!("{param}.name")))?;
        let schema = t.get("input_schema").cloned().ok_or_else(|| missing(&format!("{param}.input_schema")))?;
        let mut f = Map::new();
        f.insert("name".into(), name.into());
        if let Some(d) = t.get("description").and_then(Value::as_str) {
            f.insert("description".into(), d.into());
        }
        f.insert("parameters".into(), schema);
        out.push(json!({ "type": "function", "function": Value::Object(f) }));
    }
    Ok(out)
}

fn tool_choice(tc: &Value, chat: &mut Obj) -> Result<(), GatewayError> {
    let tc = as_obj(tc, "tool_choice")?;
    let choice = match tc.get("type").and_then(Value::as_str) {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => json!("none"),
        Some("tool") => {
            let name = tc.get("name").and_then(Value::as_str).ok_or_else(|| missing("tool_choice.name"))?;
            json!({ "type": "function", "function": { "name": name } })
        }
        other => {
            return Err(invalid(
                "tool_choice.type",
                format!("tool_choice.type: expected auto, any, tool or none, got {}", other.unwrap_or("nothing")),
            ));
        }
    };
    chat.insert("tool_choice".into(), choice);
    if tc.get("disable_parallel_tool_use").and_then(Value::as_bool) == Some(true) {
        chat.insert("parallel_tool_calls".into(), Value::Bool(false));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
