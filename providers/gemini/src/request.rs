//! OpenAI chat request -> Gemini `generateContent` request.

use std::collections::HashMap;

use freeway_sdk::errors::bad_request;
use freeway_sdk::openai::{ChatRequest, Content, ContentPart, Message};
use freeway_sdk::provider::{join_url, setting};
use freeway_sdk::tools::{ToolChoice, Tools};
use freeway_sdk::translate::tool_arguments;
use freeway_sdk::types::{ProviderConfig, ProviderError};
use serde_json::{Map, Value, json};

use crate::schema;

/// What Gemini accepts instead of a missing thought signature on a replayed function call
/// (documented for conversations that come from elsewhere).
pub const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";

/// Gemini allows at most this many stop sequences.
const MAX_STOP: usize = 5;

/// Harm categories `safety_threshold` applies to.
const HARM_CATEGORIES: &[&str] = &[
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
];

/// `{base}/models/{model}:generateContent`, or `:streamGenerateContent?alt=sse`.
pub fn url(base: &str, model: &str, streaming: bool) -> String {
    // `models/x` and `tunedModels/x` are resource names already
    let resource = if model.contains('/') { model.to_owned() } else { format!("models/{model}") };
    if streaming {
        join_url(base, &format!("{resource}:streamGenerateContent?alt=sse"))
    } else {
        join_url(base, &format!("{resource}:generateContent"))
    }
}

/// Models that insist on thought signatures for replayed function calls (Gemini 3 and later;
/// 1.x, 2.x and Gemma do not).
fn wants_signatures(model: &str) -> bool {
    let id = model.rsplit('/').next().unwrap_or(model);
    id.starts_with("gemini-") && !id.starts_with("gemini-1") && !id.starts_with("gemini-2")
}

/// Gemini 2.x controls thinking with a token budget; later models with a level.
fn uses_thinking_budget(model: &str) -> bool {
    let id = model.rsplit('/').next().unwrap_or(model);
    id.starts_with("gemini-2")
}

/// Build the request body. `raw` is the client's JSON (for fields the typed request drops, such
/// as tool calls' `extra_content`).
pub fn build(body: &str, model: &str, streaming: bool, config: &ProviderConfig) -> Result<Value, ProviderError> {
    let raw: Value =
        serde_json::from_str(body).map_err(|e| bad_request(&format!("the request body is not valid JSON: {e}")))?;
    let req: ChatRequest = serde_json::from_value(raw.clone())
        .map_err(|e| bad_request(&format!("the request is not a valid chat completion request: {e}")))?;
    refuse_unsupported(&req, streaming)?;

    let mut conv = Conversation::new(model);
    for (i, msg) in req.messages.iter().enumerate() {
        conv.message(msg, raw.pointer(&format!("/messages/{i}")))?;
    }
    let Conversation { mut contents, system, .. } = conv;

    let mut out = Map::new();
    if contents.is_empty() {
        // only instructions: Gemini needs contents, so they become the user's turn
        if system.is_empty() {
            return Err(bad_request("the request has no messages Gemini can answer"));
        }
        contents.push(json!({"role": "user", "parts": system}));
    } else if !system.is_empty() {
        out.insert("systemInstruction".to_owned(), json!({"parts": system}));
    }
    out.insert("contents".to_owned(), Value::Array(contents));

    let tools = Tools::read(&req, "Gemini")?;
    if !tools.declared.is_empty() {
        out.insert("tools".to_owned(), json!([{"functionDeclarations": declarations(&tools)}]));
        if let Some(tc) = tool_config(tools.choice.as_ref()) {
            out.insert("toolConfig".to_owned(), tc);
        }
    }

    let generation = generation_config(&req, model, config)?;
    if !generation.is_empty() {
        out.insert("generationConfig".to_owned(), Value::Object(generation));
    }
    if let Some(threshold) = setting(config, "safety_threshold") {
        let settings: Vec<Value> =
            HARM_CATEGORIES.iter().map(|c| json!({"category": c, "threshold": threshold})).collect();
        out.insert("safetySettings".to_owned(), Value::Array(settings));
    }
    Ok(Value::Object(out))
}

/// Parameters that would change what the client gets back in ways Gemini cannot honour.
fn refuse_unsupported(req: &ChatRequest, streaming: bool) -> Result<(), ProviderError> {
    let extra = &req.extra;
    req.refuse_untranslatable("Gemini")?;
    if streaming && extra.get("n").and_then(Value::as_u64).is_some_and(|n| n > 1) {
        return Err(bad_request("`n` greater than 1 is not supported with `stream` by the Gemini provider"));
    }
    Ok(())
}

/// Contents and system instruction built message by message.
struct Conversation<'a> {
    model: &'a str,
    contents: Vec<Value>,
    system: Vec<Value>,
    /// tool call id -> function name, from the assistant messages seen so far
    call_names: HashMap<String, String>,
}

impl<'a> Conversation<'a> {
    fn new(model: &'a str) -> Self {
        Self { model, contents: Vec::new(), system: Vec::new(), call_names: HashMap::new() }
    }

    /// Append parts as `role`, merging with the previous turn when it has the same role
    /// (Gemini wants user and model turns to alternate).
    fn push(&mut self, role: &str, parts: Vec<Value>) {
        if parts.is_empty() {
            return;
        }
        if let Some(last) = self.contents.last_mut()
            && last.get("role").and_then(Value::as_str) == Some(role)
            && let Some(existing) = last.get_mut("parts").and_then(Value::as_array_mut)
        {
            existing.extend(parts);
            return;
        }
        self.contents.push(json!({"role": role, "parts": parts}));
    }

    fn message(&mut self, msg: &Message, raw: Option<&Value>) -> Result<(), ProviderError> {
        match msg.role.as_str() {
            "system" | "developer" => {
                let text = msg.content.as_ref().map(Content::text).unwrap_or_default();
                if !text.is_empty() {
                    self.system.push(json!({"text": text}));
                }
            }
            "user" => {
                let parts = match &msg.content {
                    Some(content) => content_parts(content)?,
                    None => Vec::new(),
                };
                self.push("user", parts);
            }
            "assistant" => {
                let mut parts = match &msg.content {
                    Some(content) => content_parts(content)?,
                    None => Vec::new(),
                };
                let mut signed = false;
                let mut first_call = None;
                for (j, call) in msg.tool_calls.iter().flatten().enumerate() {
                    let name = call
                        .function
                        .name
                        .clone()
                        .ok_or_else(|| bad_request("an assistant tool call has no function name"))?;
                    if let Some(id) = &call.id {
                        self.call_names.insert(id.clone(), name.clone());
                    }
                    let args = tool_arguments(&call.function.arguments, &name)?;
                    let mut part = json!({"functionCall": {"name": name, "args": args}});
                    let signature = raw
                        .and_then(|m| m.pointer(&format!("/tool_calls/{j}/extra_content/google/thought_signature")))
                        .and_then(Value::as_str);
                    if let Some(sig) = signature {
                        part["thoughtSignature"] = json!(sig);
                        signed = true;
                    }
                    first_call.get_or_insert(parts.len());
                    parts.push(part);
                }
                if let Some(index) = first_call
                    && !signed
                    && wants_signatures(self.model)
                {
                    parts[index]["thoughtSignature"] = json!(SKIP_SIGNATURE);
                }
                self.push("model", parts);
            }
            "tool" | "function" => {
                let name = match (&msg.tool_call_id, &msg.name) {
                    (Some(id), _) if self.call_names.contains_key(id) => self.call_names[id].clone(),
                    (_, Some(name)) => name.clone(),
                    (Some(id), None) => {
                        return Err(bad_request(&format!(
                            "the tool message for tool_call_id `{id}` does not answer any earlier assistant tool call"
                        )));
                    }
                    (None, None) => return Err(bad_request("a tool message has no `tool_call_id`")),
                };
                let text = msg.content.as_ref().map(Content::text).unwrap_or_default();
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(obj)) => Value::Object(obj),
                    Ok(other) if !other.is_null() => json!({"content": other}),
                    _ => json!({"content": text}),
                };
                self.push("user", vec![json!({"functionResponse": {"name": name, "response": response}})]);
            }
            other => return Err(bad_request(&format!("unsupported message role `{other}`"))),
        }
        Ok(())
    }
}

/// A message's content as Gemini parts (empty text is left out: Gemini refuses empty parts).
fn content_parts(content: &Content) -> Result<Vec<Value>, ProviderError> {
    match content {
        Content::Text(text) if text.is_empty() => Ok(Vec::new()),
        Content::Text(text) => Ok(vec![json!({"text": text})]),
        Content::Parts(parts) => {
            let mut out = Vec::with_capacity(parts.len());
            for part in parts {
                if let Some(p) = content_part(part)? {
                    out.push(p);
                }
            }
            Ok(out)
        }
    }
}

fn content_part(part: &ContentPart) -> Result<Option<Value>, ProviderError> {
    match part.kind.as_str() {
        "text" | "refusal" => {
            let text = part.text.as_deref().or_else(|| part.extra.get("refusal").and_then(Value::as_str)).unwrap_or("");
            Ok((!text.is_empty()).then(|| json!({"text": text})))
        }
        "image_url" => {
            let image = part.image_url.as_ref().ok_or_else(|| bad_request("an image_url part has no `image_url`"))?;
            media(&image.url, "image/jpeg").map(Some)
        }
        "input_audio" => {
            let audio = part.extra.get("input_audio");
            let data = audio
                .and_then(|a| a.get("data"))
                .and_then(Value::as_str)
                .ok_or_else(|| bad_request("an input_audio part has no `data`"))?;
            let format = audio.and_then(|a| a.get("format")).and_then(Value::as_str).unwrap_or("wav");
            Ok(Some(json!({"inlineData": {"mimeType": format!("audio/{format}"), "data": data}})))
        }
        "file" => {
            let file = part.extra.get("file");
            match file.and_then(|f| f.get("file_data")).and_then(Value::as_str) {
                Some(data) if data.starts_with("data:") => media(data, "application/pdf").map(Some),
                Some(data) => {
                    let mime = file
                        .and_then(|f| f.get("filename"))
                        .and_then(Value::as_str)
                        .and_then(mime_from_path)
                        .unwrap_or("application/pdf");
                    Ok(Some(json!({"inlineData": {"mimeType": mime, "data": data}})))
                }
                None => Err(bad_request("file parts need inline `file_data`; uploaded file ids are not supported")),
            }
        }
        other => Err(bad_request(&format!("content parts of type `{other}` are not supported by Gemini"))),
    }
}

/// A `data:` URL -> `inlineData`; an http(s) URL -> `fileData` with a mime type guessed from
/// the extension (`fallback` when there is none).
fn media(url: &str, fallback: &str) -> Result<Value, ProviderError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest.split_once(',').ok_or_else(|| bad_request("a data: URL has no data"))?;
        let mime = meta
            .strip_suffix(";base64")
            .ok_or_else(|| bad_request("data: URLs must be base64-encoded (`data:<mime>;base64,...`)"))?;
        let mime = if mime.is_empty() { fallback } else { mime };
        return Ok(json!({"inlineData": {"mimeType": mime, "data": data}}));
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        let mime = mime_from_path(url).unwrap_or(fallback);
        return Ok(json!({"fileData": {"mimeType": mime, "fileUri": url}}));
    }
    Err(bad_request("media URLs must be data: URLs or http(s) URLs"))
}

/// A mime type from a path's or URL's extension.
fn mime_from_path(path: &str) -> Option<&'static str> {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let name = path.rsplit('/').next().unwrap_or(path);
    let (_, ext) = name.rsplit_once('.')?;
    Some(match ext.to_ascii_lowercase().as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "mp3" => "audio/mp3",
        "wav" => "audio/wav",
        "ogg" => "audio/ogg",
        "flac" => "audio/flac",
        "mp4" => "video/mp4",
        "mov" => "video/mov",
        "webm" => "video/webm",
        _ => return None,
    })
}

/// `tools` -> function declarations.
fn declarations(tools: &Tools<'_>) -> Vec<Value> {
    let mut out = Vec::with_capacity(tools.declared.len());
    for tool in &tools.declared {
        let f = &tool.function;
        let mut decl = Map::new();
        decl.insert("name".to_owned(), json!(f.name));
        if let Some(d) = &f.description {
            decl.insert("description".to_owned(), json!(d));
        }
        if let Some(params) = &f.parameters {
            let cleaned = schema::clean(params);
            if !schema::is_empty_object(&cleaned) {
                decl.insert("parameters".to_owned(), cleaned);
            }
        }
        out.push(Value::Object(decl));
    }
    out
}

/// `tool_choice` -> `toolConfig.functionCallingConfig` (`allowed_tools` in `auto` mode cannot
/// name functions in Gemini: the model sees every declaration).
fn tool_config(choice: Option<&ToolChoice<'_>>) -> Option<Value> {
    let config = |mode: &str, names: Option<&[&str]>| {
        let mut c = json!({"mode": mode});
        if let Some(names) = names {
            c["allowedFunctionNames"] = json!(names);
        }
        json!({"functionCallingConfig": c})
    };
    Some(match choice? {
        ToolChoice::None => config("NONE", None),
        ToolChoice::Auto | ToolChoice::Allowed { required: false, .. } => config("AUTO", None),
        ToolChoice::Required => config("ANY", None),
        ToolChoice::Function(name) => config("ANY", Some(std::slice::from_ref(name))),
        ToolChoice::Allowed { names, required: true } => config("ANY", Some(names.as_slice())),
    })
}

/// Sampling, length, stop, JSON mode and thinking -> `generationConfig`.
fn generation_config(
    req: &ChatRequest,
    model: &str,
    config: &ProviderConfig,
) -> Result<Map<String, Value>, ProviderError> {
    let mut g = Map::new();
    let mut put = |k: &str, v: Value| {
        g.insert(k.to_owned(), v);
    };
    if let Some(t) = req.temperature {
        put("temperature", json!(t));
    }
    if let Some(p) = req.top_p {
        put("topP", json!(p));
    }
    if let Some(k) = req.extra.get("top_k").and_then(Value::as_u64) {
        put("topK", json!(k));
    }
    if let Some(max) = req.max_output() {
        put("maxOutputTokens", json!(max));
    }
    if let Some(stop) = &req.stop {
        let stop = stop.to_vec();
        if stop.len() > MAX_STOP {
            return Err(bad_request(&format!("Gemini accepts at most {MAX_STOP} stop sequences")));
        }
        if !stop.is_empty() {
            put("stopSequences", json!(stop));
        }
    }
    if let Some(n) = req.extra.get("n").and_then(Value::as_u64)
        && n > 1
    {
        put("candidateCount", json!(n));
    }
    if let Some(seed) = req.seed {
        put("seed", json!(seed));
    }
    for (from, to) in [("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty")] {
        if let Some(v) = req.extra.get(from).and_then(Value::as_f64) {
            put(to, json!(v));
        }
    }
    if let Some(format) = &req.response_format {
        match format.get("type").and_then(Value::as_str) {
            Some("json_object") => put("responseMimeType", json!("application/json")),
            Some("json_schema") => {
                put("responseMimeType", json!("application/json"));
                if let Some(s) = format.pointer("/json_schema/schema") {
                    put("responseSchema", schema::clean(s));
                }
            }
            Some("text") | None => {}
            Some(other) => return Err(bad_request(&format!("unsupported response_format type `{other}`"))),
        }
    }
    let always_thoughts = setting(config, "include_thoughts").is_some_and(|v| v == "true");
    let mut thinking = Map::new();
    if let Some(effort) = req.extra.get("reasoning_effort").and_then(Value::as_str) {
        let effort = effort.to_ascii_lowercase();
        if uses_thinking_budget(model) {
            let budget = match effort.as_str() {
                "none" => 0,
                "minimal" | "low" => 1024,
                "medium" => 8192,
                "high" => 24576,
                other => return Err(bad_request(&format!("unsupported reasoning_effort `{other}`"))),
            };
            thinking.insert("thinkingBudget".to_owned(), json!(budget));
        } else if model.contains("gemini") {
            let level = match effort.as_str() {
                "none" | "minimal" => "minimal",
                "low" => "low",
                "medium" => "medium",
                "high" => "high",
                other => return Err(bad_request(&format!("unsupported reasoning_effort `{other}`"))),
            };
            thinking.insert("thinkingLevel".to_owned(), json!(level));
        }
        if effort != "none" {
            thinking.insert("includeThoughts".to_owned(), json!(true));
        }
    } else if always_thoughts {
        thinking.insert("includeThoughts".to_owned(), json!(true));
    }
    if !thinking.is_empty() {
        g.insert("thinkingConfig".to_owned(), Value::Object(thinking));
    }
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(settings: &[(&str, &str)]) -> ProviderConfig {
        ProviderConfig {
            provider_id: "gemini".into(),
            base_url: "https://generativelanguage.googleapis.com/v1beta".into(),
            settings: settings.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        }
    }

    fn build_for(model: &str, body: Value) -> Result<Value, ProviderError> {
        build(&body.to_string(), model, false, &config(&[]))
    }

    fn ok(body: Value) -> Value {
        build_for("gemini-2.5-flash", body).unwrap()
    }

    #[test]
    fn urls() {
        let base = "https://generativelanguage.googleapis.com/v1beta/";
        assert_eq!(
            url(base, "gemini-2.5-flash", false),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(
            url(base, "gemini-2.5-flash", true),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        assert!(url(base, "tunedModels/mine", false).ends_with("/v1beta/tunedModels/mine:generateContent"));
    }

    #[test]
    fn system_and_multi_turn() {
        let g = ok(json!({"model": "gemini-2.5-flash", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
            {"role": "user", "content": "Hi"},
            {"role": "user", "content": "Are you there?"},
            {"role": "assistant", "content": "Oui."},
            {"role": "user", "content": ""},
            {"role": "user", "content": "Merci"},
        ]}));
        assert_eq!(g["systemInstruction"], json!({"parts": [{"text": "Be brief."}, {"text": "Use French."}]}));
        assert_eq!(
            g["contents"],
            json!([
                {"role": "user", "parts": [{"text": "Hi"}, {"text": "Are you there?"}]},
                {"role": "model", "parts": [{"text": "Oui."}]},
                {"role": "user", "parts": [{"text": "Merci"}]},
            ])
        );
        assert!(g.get("generationConfig").is_none());
        assert!(g.get("tools").is_none());
        // only a system message: it becomes the user's turn
        let g = ok(json!({"model": "m", "messages": [{"role": "system", "content": "Say hi"}]}));
        assert_eq!(g["contents"], json!([{"role": "user", "parts": [{"text": "Say hi"}]}]));
        assert!(g.get("systemInstruction").is_none());
        assert!(build_for("m", json!({"model": "m", "messages": []})).is_err());
    }

    #[test]
    fn images_audio_and_files() {
        let g = ok(json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.webp?size=2", "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/photo"}},
            {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "mp3"}},
            {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}},
        ]}]}));
        let parts = &g["contents"][0]["parts"];
        assert_eq!(parts[0], json!({"text": "What is this?"}));
        assert_eq!(parts[1], json!({"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}));
        assert_eq!(
            parts[2],
            json!({"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/cat.webp?size=2"}})
        );
        assert_eq!(parts[3]["fileData"]["mimeType"], "image/jpeg");
        assert_eq!(parts[4], json!({"inlineData": {"mimeType": "audio/mp3", "data": "UklGRg=="}}));
        assert_eq!(parts[5], json!({"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}}));
        let bad = build_for(
            "m",
            json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}]}),
        );
        assert!(bad.unwrap_err().message.contains("data: URLs or http(s)"));
        let bad = build_for(
            "m",
            json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "video", "video": {}}]}]}),
        );
        assert!(bad.unwrap_err().message.contains("`video`"));
    }

    fn weather_tools() -> Value {
        json!([{"type": "function", "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "strict": true,
            "parameters": {"type": "object", "additionalProperties": false, "$schema": "x",
                "properties": {"city": {"type": "string"}}, "required": ["city"]},
        }}, {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}])
    }

    #[test]
    fn tools_and_tool_results_round_trip() {
        let g = ok(json!({"model": "gemini-2.5-flash", "tools": weather_tools(), "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
                 "extra_content": {"google": {"thought_signature": "c2lnLTE="}}},
                {"id": "call_b", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}},
            ]},
            {"role": "tool", "tool_call_id": "call_a", "content": "{\"temp_c\": 21}"},
            {"role": "tool", "tool_call_id": "call_b", "content": "sunny"},
            {"role": "user", "content": "Thanks"},
        ]}));
        assert_eq!(
            g["tools"],
            json!([{"functionDeclarations": [
                {"name": "get_weather", "description": "Weather for a city",
                 "parameters": {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}},
                {"name": "now"},
            ]}])
        );
        let contents = g["contents"].as_array().unwrap();
        assert_eq!(contents.len(), 3);
        assert_eq!(contents[1]["role"], "model");
        assert_eq!(
            contents[1]["parts"],
            json!([
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2lnLTE="},
                {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
            ])
        );
        assert_eq!(contents[2]["role"], "user");
        assert_eq!(
            contents[2]["parts"],
            json!([
                {"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}}},
                {"functionResponse": {"name": "get_weather", "response": {"content": "sunny"}}},
                {"text": "Thanks"},
            ])
        );
        // a tool result for a call nobody made
        let bad = build_for(
            "m",
            json!({"model": "m", "messages": [
            {"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "nope", "content": "1"}]}),
        );
        assert!(bad.unwrap_err().message.contains("nope"));
    }

    #[test]
    fn gemini_3_gets_a_placeholder_signature_when_the_client_dropped_it() {
        let body = json!({"model": "gemini-3-flash-preview", "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}},
                {"id": "c2", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "1"},
        ]});
        let g = build_for("gemini-3-flash-preview", body.clone()).unwrap();
        let parts = &g["contents"][1]["parts"];
        assert_eq!(parts[0]["thoughtSignature"], SKIP_SIGNATURE);
        assert!(parts[1].get("thoughtSignature").is_none());
        assert_eq!(parts[0]["functionCall"]["args"], json!({}));
        let g = build_for("gemini-2.5-flash", body).unwrap();
        assert!(g["contents"][1]["parts"][0].get("thoughtSignature").is_none());
    }

    #[test]
    fn tool_choice_modes() {
        let with = |choice: Value| {
            ok(
                json!({"model": "m", "tools": weather_tools(), "tool_choice": choice, "messages": [{"role": "user", "content": "x"}]}),
            )
        };
        assert_eq!(with(json!("none"))["toolConfig"], json!({"functionCallingConfig": {"mode": "NONE"}}));
        assert_eq!(with(json!("auto"))["toolConfig"], json!({"functionCallingConfig": {"mode": "AUTO"}}));
        assert_eq!(with(json!("required"))["toolConfig"], json!({"functionCallingConfig": {"mode": "ANY"}}));
        assert_eq!(
            with(json!({"type": "function", "function": {"name": "get_weather"}}))["toolConfig"],
            json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}})
        );
        assert_eq!(
            with(
                json!({"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [{"type": "function", "function": {"name": "now"}}]}})
            )["toolConfig"],
            json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["now"]}})
        );
        let bad = build_for(
            "m",
            json!({"model": "m", "tools": weather_tools(), "tool_choice": {"type": "function", "function": {"name": "nope"}}, "messages": [{"role": "user", "content": "x"}]}),
        );
        assert!(bad.is_err());
        // no tools: no tool config
        let g = ok(json!({"model": "m", "tool_choice": "auto", "messages": [{"role": "user", "content": "x"}]}));
        assert!(g.get("toolConfig").is_none());
    }

    #[test]
    fn generation_config_json_mode_stop_and_lengths() {
        let g = ok(json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "x"}],
            "temperature": 0.2, "top_p": 0.9, "max_tokens": 100, "max_completion_tokens": 50, "stop": ["END", "STOP"],
            "n": 2, "seed": 7, "presence_penalty": 0.5, "response_format": {"type": "json_object"}}));
        assert_eq!(
            g["generationConfig"],
            json!({"temperature": 0.2, "topP": 0.9, "maxOutputTokens": 50, "stopSequences": ["END", "STOP"],
                   "candidateCount": 2, "seed": 7, "presencePenalty": 0.5, "responseMimeType": "application/json"})
        );
        let g = ok(json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": "END", "n": 1,
            "response_format": {"type": "json_schema", "json_schema": {"name": "r", "strict": true, "schema": {
                "type": "object", "additionalProperties": false, "properties": {"a": {"type": "integer"}}, "required": ["a"]}}}}));
        assert_eq!(
            g["generationConfig"],
            json!({"stopSequences": ["END"], "responseMimeType": "application/json",
                   "responseSchema": {"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}}})
        );
        let too_many = build_for(
            "m",
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": ["a", "b", "c", "d", "e", "f"]}),
        );
        assert!(too_many.is_err());
    }

    #[test]
    fn reasoning_effort_and_settings() {
        let g = ok(json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "reasoning_effort": "low"}));
        assert_eq!(g["generationConfig"]["thinkingConfig"], json!({"thinkingBudget": 1024, "includeThoughts": true}));
        let g = build_for(
            "gemini-3-flash-preview",
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "reasoning_effort": "none"}),
        )
        .unwrap();
        assert_eq!(g["generationConfig"]["thinkingConfig"], json!({"thinkingLevel": "minimal"}));
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}).to_string();
        let g = build(
            &body,
            "gemini-2.5-flash",
            false,
            &config(&[("safety_threshold", "BLOCK_NONE"), ("include_thoughts", "true")]),
        )
        .unwrap();
        assert_eq!(g["safetySettings"].as_array().unwrap().len(), 4);
        assert_eq!(g["safetySettings"][0]["threshold"], "BLOCK_NONE");
        assert_eq!(g["generationConfig"]["thinkingConfig"], json!({"includeThoughts": true}));
    }

    #[test]
    fn what_gemini_cannot_express_is_refused() {
        let base = || json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
        let with = |k: &str, v: Value| {
            let mut b = base();
            b[k] = v;
            b
        };
        assert!(build_for("m", with("logprobs", json!(true))).unwrap_err().message.contains("logprobs"));
        assert!(build_for("m", with("logprobs", json!(false))).is_ok());
        assert!(build_for("m", with("logit_bias", json!({"5": 1}))).is_err());
        assert!(build_for("m", with("logit_bias", json!({}))).is_ok());
        assert!(build_for("m", with("modalities", json!(["text", "audio"]))).is_err());
        assert!(build_for("m", with("functions", json!([{"name": "f"}]))).is_err());
        assert!(build_for("m", with("tools", json!([{"type": "web_search"}]))).is_err());
        let streamed_n = with("n", json!(2)).to_string();
        assert!(build(&streamed_n, "m", true, &config(&[])).is_err());
        assert!(build("not json", "m", false, &config(&[])).is_err());
        let e = build_for("m", json!({"model": "m", "messages": [{"role": "wizard", "content": "x"}]})).unwrap_err();
        assert!(e.message.contains("wizard"));
        assert_eq!(e.kind, freeway_sdk::types::ErrorKind::BadRequest);
    }
}
