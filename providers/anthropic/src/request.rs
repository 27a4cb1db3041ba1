//! OpenAI chat request -> Anthropic Messages request (`POST /v1/messages`).
//!
//! - `system` and `developer` messages, wherever they appear, become the top-level `system`
//!   (joined with blank lines; kept as blocks when a part carries `cache_control`);
//! - consecutive messages of one role are merged into one turn with several blocks; tool
//!   messages become `tool_result` blocks of a user turn (results first, as Anthropic wants);
//! - assistant `tool_calls` become `tool_use` blocks (the arguments parsed as the `input`
//!   object); `thinking_blocks` on an assistant message (as this component returns them) are
//!   replayed before its text, which Anthropic needs when thinking and tools are combined;
//! - `response_format` (JSON mode) becomes a forced tool whose input schema is the requested
//!   schema: its `tool_use` comes back as the message content ([`JsonTool`]);
//! - `reasoning_effort` becomes `thinking`: a token budget on models before Claude 4.6,
//!   adaptive thinking with `output_config.effort` from 4.6 on.

use freeway_sdk::errors::bad_request;
use freeway_sdk::openai::{ChatRequest, Content, ContentPart, Message, Tool};
use freeway_sdk::provider::setting;
use freeway_sdk::tools::{ToolChoice, Tools};
use freeway_sdk::translate::tool_arguments;
use freeway_sdk::types::{ProviderConfig, ProviderError};
use serde_json::{Map, Value, json};

/// `max_tokens` when the client gives none (setting `default_max_tokens`).
pub const DEFAULT_MAX_TOKENS: u32 = 4096;
/// The `anthropic-version` header (setting `anthropic_version`).
pub const API_VERSION: &str = "2023-06-01";
/// The tool JSON mode forces.
pub const JSON_TOOL: &str = "json_response";
/// Image types the Messages API takes.
const IMAGE_TYPES: &[&str] = &["image/jpeg", "image/png", "image/gif", "image/webp"];
/// Models known to refuse a forced `tool_choice` (JSON mode then asks for the tool instead).
const NO_FORCED_TOOLS: &[&str] = &["claude-sonnet-5-5"];

/// JSON mode's tool, for reading the answer back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonTool {
    pub name: String,
    /// The schema was not an object, so the tool's input is `{"value": <answer>}`.
    pub wrapped: bool,
}

/// The upstream body and what the response translation needs to know about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub body: Value,
    pub json_tool: Option<JsonTool>,
}

/// `(major, minor)` of a Claude model id: `claude-3-7-sonnet-20250219` -> (3, 7),
/// `claude-sonnet-4-20250514` -> (4, 0), `claude-opus-4-1` -> (4, 1), `claude-opus-5-5` -> (5, 5).
pub fn model_version(model: &str) -> Option<(u32, u32)> {
    let id = model.rsplit('/').next().unwrap_or(model);
    let rest = id.strip_prefix("claude-")?;
    let mut tokens = rest.split(['-', '.', '@']).skip_while(|t| t.parse::<u32>().is_err());
    let major: u32 = tokens.next()?.parse().ok()?;
    // a date (`20250514`) is not a minor version
    let minor = tokens.next().and_then(|t| t.parse::<u32>().ok()).filter(|m| *m < 100).unwrap_or(0);
    Some((major, minor))
}

/// The largest output a known model allows (for `max_tokens` this component derives itself).
pub fn max_output(model: &str) -> Option<u32> {
    crate::models::known(model).map(|k| k.1)
}

/// Build the Messages request body. `raw` fields the typed request does not name
/// (`thinking_blocks`, `is_error`, `cache_control`) are read from the client's JSON.
pub fn build(body: &str, model: &str, streaming: bool, config: &ProviderConfig) -> Result<Plan, ProviderError> {
    let raw: Value =
        serde_json::from_str(body).map_err(|e| bad_request(&format!("the request body is not valid JSON: {e}")))?;
    let req: ChatRequest = serde_json::from_value(raw.clone())
        .map_err(|e| bad_request(&format!("the request is not a valid chat completion request: {e}")))?;
    refuse_unsupported(&req)?;

    let mut conv = Conversation::default();
    for (i, msg) in req.messages.iter().enumerate() {
        conv.message(msg, raw.pointer(&format!("/messages/{i}")))?;
    }
    let Conversation { mut system, mut turns } = conv;
    finish_turns(&mut turns);
    if turns.is_empty() {
        // only instructions: Anthropic needs a message, so they become the user's turn
        if system.is_empty() {
            return Err(bad_request("the request has no messages Anthropic can answer"));
        }
        turns.push(Turn { role: "user", blocks: std::mem::take(&mut system) });
    }

    let mut out = Map::new();
    out.insert("model".to_owned(), json!(model));

    let mut max_tokens = match req.max_output() {
        Some(n) => n,
        None => setting(config, "default_max_tokens")
            .and_then(|v| v.trim().parse::<u32>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(DEFAULT_MAX_TOKENS),
    };

    let thinking = thinking(&req, model, config, &mut max_tokens)?;
    let thinking_on = thinking.is_some();

    // tools, tool choice and JSON mode
    let client_tools = Tools::read(&req, "Anthropic")?;
    let mut tools = anthropic_tools(&client_tools.permitted())?;
    let mut choice = client_tools.choice.as_ref().map(Choice::of);
    if thinking_on && matches!(choice, Some(Choice::Any | Choice::Tool(_))) {
        return Err(bad_request(
            "a `tool_choice` that forces a tool call cannot be combined with `reasoning_effort`: Anthropic's extended thinking allows only `auto` or `none`",
        ));
    }
    let mut json_tool = None;
    if req.wants_json() {
        let (tool, wrapped) = json_mode_tool(req.response_format.as_ref())?;
        if tools.iter().any(|t| t.get("name").and_then(Value::as_str) == Some(JSON_TOOL)) {
            return Err(bad_request(&format!(
                "a tool named `{JSON_TOOL}` cannot be combined with `response_format`: the Anthropic provider uses that name for JSON mode"
            )));
        }
        let client_tools_active = !tools.is_empty() && choice != Some(Choice::None);
        let may_force = !thinking_on && forced_tools_allowed(model, config);
        if may_force && !client_tools_active {
            choice = Some(Choice::Tool(JSON_TOOL.to_owned()));
        } else {
            // the tool cannot be forced: ask for it
            system.push(json!({"type": "text", "text": format!(
                "Give your final answer by calling the `{JSON_TOOL}` tool with the answer as its input, not as text."
            )}));
            if choice == Some(Choice::None) {
                choice = Some(Choice::Auto);
            }
        }
        tools.push(tool);
        json_tool = Some(JsonTool { name: JSON_TOOL.to_owned(), wrapped });
    }

    if !system.is_empty() {
        out.insert("system".to_owned(), system_value(system));
    }
    let messages: Vec<Value> = turns.into_iter().map(|t| json!({"role": t.role, "content": t.blocks})).collect();
    out.insert("messages".to_owned(), Value::Array(messages));
    out.insert("max_tokens".to_owned(), json!(max_tokens));

    if !tools.is_empty() {
        out.insert("tools".to_owned(), Value::Array(tools));
        let no_parallel = req.extra.get("parallel_tool_calls").and_then(Value::as_bool) == Some(false);
        let choice = match (choice, no_parallel) {
            (None, true) => Some(Choice::Auto),
            (c, _) => c,
        };
        if let Some(choice) = choice {
            let mut tc = choice.to_json();
            if no_parallel && choice != Choice::None {
                tc["disable_parallel_tool_use"] = json!(true);
            }
            out.insert("tool_choice".to_owned(), tc);
        }
    }

    if let Some(stop) = &req.stop {
        let stops: Vec<String> = stop.to_vec().into_iter().filter(|s| !s.trim().is_empty()).collect();
        if !stops.is_empty() {
            out.insert("stop_sequences".to_owned(), json!(stops));
        }
    }
    match thinking {
        Some(Thinking { thinking, output_config }) => {
            // extended thinking refuses temperature, top_p and top_k changes
            out.insert("thinking".to_owned(), thinking);
            if let Some(oc) = output_config {
                out.insert("output_config".to_owned(), oc);
            }
        }
        None => {
            if let Some(t) = req.temperature {
                out.insert("temperature".to_owned(), json!(t.clamp(0.0, 1.0)));
            }
            if let Some(p) = req.top_p {
                out.insert("top_p".to_owned(), json!(p.clamp(0.0, 1.0)));
            }
            if let Some(k) = req.extra.get("top_k").and_then(Value::as_u64).filter(|k| *k > 0) {
                out.insert("top_k".to_owned(), json!(k));
            }
        }
    }
    let user = req.extra.get("user").or_else(|| req.extra.get("safety_identifier")).and_then(Value::as_str);
    if let Some(user) = user.filter(|u| !u.is_empty()) {
        out.insert("metadata".to_owned(), json!({"user_id": user}));
    }
    if streaming {
        out.insert("stream".to_owned(), json!(true));
    }
    Ok(Plan { body: Value::Object(out), json_tool })
}

/// Parameters that would change what the client gets back in ways Anthropic cannot honour.
fn refuse_unsupported(req: &ChatRequest) -> Result<(), ProviderError> {
    let extra = &req.extra;
    if extra.get("top_logprobs").is_some_and(|v| !v.is_null()) {
        return Err(bad_request("`logprobs` is not supported by Anthropic"));
    }
    if extra.get("n").and_then(Value::as_u64).is_some_and(|n| n > 1) {
        return Err(bad_request("`n` greater than 1 is not supported by Anthropic"));
    }
    req.refuse_untranslatable("Anthropic")
}

/// One turn of the conversation being built.
#[derive(Debug)]
struct Turn {
    role: &'static str,
    blocks: Vec<Value>,
}

#[derive(Debug, Default)]
struct Conversation {
    system: Vec<Value>,
    turns: Vec<Turn>,
}

impl Conversation {
    /// Append blocks as `role`, merged into the previous turn when it has the same role.
    fn push(&mut self, role: &'static str, blocks: Vec<Value>) {
        if blocks.is_empty() {
            return;
        }
        match self.turns.last_mut() {
            Some(last) if last.role == role => last.blocks.extend(blocks),
            _ => self.turns.push(Turn { role, blocks }),
        }
    }

    fn message(&mut self, msg: &Message, raw: Option<&Value>) -> Result<(), ProviderError> {
        match msg.role.as_str() {
            "system" | "developer" => {
                if let Some(content) = &msg.content {
                    self.system.extend(blocks(content, Media::None)?);
                }
            }
            "user" => {
                let blocks = match &msg.content {
                    Some(content) => blocks(content, Media::All)?,
                    None => Vec::new(),
                };
                self.push("user", blocks);
            }
            "assistant" => {
                let mut out = replayed_thinking(raw);
                if let Some(content) = &msg.content {
                    out.extend(blocks(content, Media::None)?);
                }
                for call in msg.tool_calls.iter().flatten() {
                    let name = call
                        .function
                        .name
                        .as_deref()
                        .filter(|n| !n.is_empty())
                        .ok_or_else(|| bad_request("an assistant tool call has no function name"))?;
                    let id = call.id.as_deref().ok_or_else(|| bad_request("an assistant tool call has no `id`"))?;
                    let input = tool_arguments(&call.function.arguments, name)?;
                    out.push(json!({"type": "tool_use", "id": tool_id(id), "name": name, "input": input}));
                }
                self.push("assistant", out);
            }
            "tool" => {
                let id =
                    msg.tool_call_id.as_deref().ok_or_else(|| bad_request("a tool message has no `tool_call_id`"))?;
                let mut block = json!({"type": "tool_result", "tool_use_id": tool_id(id)});
                match &msg.content {
                    Some(Content::Text(t)) if !t.is_empty() => block["content"] = json!(t),
                    Some(content @ Content::Parts(_)) => {
                        let parts = blocks(content, Media::Images)?;
                        if !parts.is_empty() {
                            block["content"] = Value::Array(parts);
                        }
                    }
                    _ => {}
                }
                if raw.and_then(|m| m.get("is_error")).and_then(Value::as_bool) == Some(true) {
                    block["is_error"] = json!(true);
                }
                self.push("user", vec![block]);
            }
            other => return Err(bad_request(&format!("unsupported message role `{other}`"))),
        }
        Ok(())
    }
}

/// Tool results first in every user turn (Anthropic wants them before any text), and no
/// trailing whitespace at the end of a last assistant turn (a prefill).
fn finish_turns(turns: &mut Vec<Turn>) {
    for turn in turns.iter_mut().filter(|t| t.role == "user") {
        let (mut results, rest): (Vec<Value>, Vec<Value>) =
            std::mem::take(&mut turn.blocks).into_iter().partition(|b| b["type"] == "tool_result");
        results.extend(rest);
        turn.blocks = results;
    }
    if let Some(last) = turns.last_mut()
        && last.role == "assistant"
    {
        if let Some(block) = last.blocks.last_mut()
            && block["type"] == "text"
            && let Some(text) = block["text"].as_str()
        {
            let trimmed = text.trim_end().to_owned();
            if trimmed.is_empty() {
                last.blocks.pop();
            } else {
                block["text"] = json!(trimmed);
            }
        }
        if last.blocks.is_empty() {
            turns.pop();
        }
    }
}

/// The `system` value: one string, or blocks when some carry `cache_control`.
fn system_value(blocks: Vec<Value>) -> Value {
    if blocks.iter().any(|b| b.get("cache_control").is_some()) {
        return Value::Array(blocks);
    }
    let texts: Vec<&str> = blocks.iter().filter_map(|b| b.get("text").and_then(Value::as_str)).collect();
    json!(texts.join("\n\n"))
}

/// `thinking_blocks` of an assistant message, as Anthropic blocks.
fn replayed_thinking(raw: Option<&Value>) -> Vec<Value> {
    let mut out = Vec::new();
    for b in raw.and_then(|m| m.get("thinking_blocks")).and_then(Value::as_array).into_iter().flatten() {
        match b.get("type").and_then(Value::as_str) {
            Some("thinking") => {
                let thinking = b.get("thinking").and_then(Value::as_str).unwrap_or_default();
                let signature = b.get("signature").and_then(Value::as_str).unwrap_or_default();
                if !signature.is_empty() {
                    out.push(json!({"type": "thinking", "thinking": thinking, "signature": signature}));
                }
            }
            Some("redacted_thinking") => {
                if let Some(data) = b.get("data").and_then(Value::as_str) {
                    out.push(json!({"type": "redacted_thinking", "data": data}));
                }
            }
            _ => {}
        }
    }
    out
}

/// A tool call id in the characters Anthropic allows (`[a-zA-Z0-9_-]`); ids from other
/// providers (`functions.get_weather:0`) are mapped the same way in `tool_use` and `tool_result`.
pub fn tool_id(id: &str) -> String {
    id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect()
}

/// Which media a message may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Media {
    /// text only (system, assistant)
    None,
    /// text and images (tool results)
    Images,
    /// text, images and documents (user)
    All,
}

/// A message's content as Anthropic blocks (empty text is left out: Anthropic refuses it).
fn blocks(content: &Content, media: Media) -> Result<Vec<Value>, ProviderError> {
    match content {
        Content::Text(text) if text.is_empty() => Ok(Vec::new()),
        Content::Text(text) => Ok(vec![json!({"type": "text", "text": text})]),
        Content::Parts(parts) => {
            let mut out = Vec::with_capacity(parts.len());
            for part in parts {
                if let Some(mut block) = block(part, media)? {
                    if let Some(cc) = part.extra.get("cache_control") {
                        block["cache_control"] = cc.clone();
                    }
                    out.push(block);
                }
            }
            Ok(out)
        }
    }
}

fn block(part: &ContentPart, media: Media) -> Result<Option<Value>, ProviderError> {
    match part.kind.as_str() {
        "text" | "refusal" => {
            let text = part.text.as_deref().or_else(|| part.extra.get("refusal").and_then(Value::as_str)).unwrap_or("");
            Ok((!text.is_empty()).then(|| json!({"type": "text", "text": text})))
        }
        "image_url" if media != Media::None => {
            let image = part.image_url.as_ref().ok_or_else(|| bad_request("an image_url part has no `image_url`"))?;
            image_block(&image.url).map(Some)
        }
        "file" if media == Media::All => {
            let data =
                part.extra.get("file").and_then(|f| f.get("file_data")).and_then(Value::as_str).ok_or_else(|| {
                    bad_request("file parts need inline `file_data`; uploaded file ids are not supported")
                })?;
            let (mime, data) = match data.strip_prefix("data:") {
                Some(rest) => split_data_url(rest)?,
                None => ("application/pdf", data),
            };
            if mime != "application/pdf" {
                return Err(bad_request(&format!("Anthropic reads PDF files only, not `{mime}`")));
            }
            Ok(Some(json!({"type": "document", "source": {"type": "base64", "media_type": mime, "data": data}})))
        }
        "input_audio" => Err(bad_request("audio input is not supported by Anthropic")),
        "image_url" | "file" => Err(bad_request(&format!("`{}` parts are not allowed in this message", part.kind))),
        other => Err(bad_request(&format!("content parts of type `{other}` are not supported by Anthropic"))),
    }
}

/// `<mime>;base64,<data>` (after `data:`).
fn split_data_url(rest: &str) -> Result<(&str, &str), ProviderError> {
    let (meta, data) = rest.split_once(',').ok_or_else(|| bad_request("a data: URL has no data"))?;
    let mime = meta
        .strip_suffix(";base64")
        .ok_or_else(|| bad_request("data: URLs must be base64-encoded (`data:<mime>;base64,...`)"))?;
    Ok((mime, data))
}

/// A `data:` URL -> a base64 image source; an http(s) URL -> a URL source.
fn image_block(url: &str) -> Result<Value, ProviderError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (mime, data) = split_data_url(rest)?;
        let mime = if mime == "image/jpg" { "image/jpeg" } else { mime };
        if !IMAGE_TYPES.contains(&mime) {
            return Err(bad_request(&format!(
                "Anthropic takes JPEG, PNG, GIF and WebP images, not `{}`",
                if mime.is_empty() { "(no type)" } else { mime }
            )));
        }
        return Ok(json!({"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}}));
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(json!({"type": "image", "source": {"type": "url", "url": url}}));
    }
    Err(bad_request("image URLs must be data: URLs or http(s) URLs"))
}

/// `tools` -> Anthropic tools (`input_schema` must be an object schema).
fn anthropic_tools(tools: &[&Tool]) -> Result<Vec<Value>, ProviderError> {
    let mut out = Vec::with_capacity(tools.len());
    for tool in tools {
        let f = &tool.function;
        let mut schema = match &f.parameters {
            None | Some(Value::Null) => json!({"type": "object", "properties": {}}),
            Some(Value::Object(o)) => Value::Object(o.clone()),
            Some(_) => {
                return Err(bad_request(&format!("the parameters of `{}` are not a JSON schema object", f.name)));
            }
        };
        match schema.get("type") {
            None => schema["type"] = json!("object"),
            Some(t) if t == "object" => {}
            Some(_) => {
                return Err(bad_request(&format!(
                    "the parameters of `{}` must be an object schema (Anthropic's `input_schema`)",
                    f.name
                )));
            }
        }
        let mut t = json!({"name": f.name});
        if let Some(d) = f.description.as_deref().filter(|d| !d.is_empty()) {
            t["description"] = json!(d);
        }
        t["input_schema"] = schema;
        if let Some(cc) = tool.extra.get("cache_control") {
            t["cache_control"] = cc.clone();
        }
        out.push(t);
    }
    Ok(out)
}

/// Anthropic's tool choice.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Choice {
    Auto,
    None,
    Any,
    Tool(String),
}

impl Choice {
    fn to_json(&self) -> Value {
        match self {
            Choice::Auto => json!({"type": "auto"}),
            Choice::None => json!({"type": "none"}),
            Choice::Any => json!({"type": "any"}),
            Choice::Tool(name) => json!({"type": "tool", "name": name}),
        }
    }

    /// OpenAI's `tool_choice` in Anthropic's terms (an allowed list has cut the tools already).
    fn of(choice: &ToolChoice<'_>) -> Choice {
        match choice {
            ToolChoice::Auto | ToolChoice::Allowed { required: false, .. } => Choice::Auto,
            ToolChoice::None => Choice::None,
            ToolChoice::Required | ToolChoice::Allowed { required: true, .. } => Choice::Any,
            ToolChoice::Function(name) => Choice::Tool((*name).to_owned()),
        }
    }
}

/// Whether JSON mode may force its tool on this model (setting `forced_tool_choice`).
fn forced_tools_allowed(model: &str, config: &ProviderConfig) -> bool {
    match setting(config, "forced_tool_choice").map(str::trim) {
        Some("false") => false,
        Some("true") => true,
        _ => !NO_FORCED_TOOLS.iter().any(|p| model.starts_with(p)),
    }
}

/// JSON mode's tool, and whether its schema had to be wrapped in an object.
fn json_mode_tool(format: Option<&Value>) -> Result<(Value, bool), ProviderError> {
    let format = format.unwrap_or(&Value::Null);
    let kind = format.get("type").and_then(Value::as_str).unwrap_or("json_object");
    let (schema, description) = match kind {
        "json_schema" => {
            let spec = format.get("json_schema").unwrap_or(&Value::Null);
            let schema =
                spec.get("schema").filter(|s| !s.is_null()).cloned().unwrap_or_else(|| json!({"type": "object"}));
            if !schema.is_object() {
                return Err(bad_request("`response_format.json_schema.schema` is not a JSON schema object"));
            }
            let description = spec
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| "Give the answer as JSON matching this schema.".to_owned());
            (schema, description)
        }
        _ => (json!({"type": "object"}), "Give the answer as a JSON object.".to_owned()),
    };
    let is_object = match schema.get("type") {
        Some(t) => t == "object",
        None => schema.get("properties").is_some(),
    };
    let (input_schema, wrapped) = if is_object {
        let mut s = schema;
        s["type"] = json!("object");
        (s, false)
    } else {
        (json!({"type": "object", "properties": {"value": schema}, "required": ["value"]}), true)
    };
    Ok((json!({"name": JSON_TOOL, "description": description, "input_schema": input_schema}), wrapped))
}

/// What `reasoning_effort` turns into.
#[derive(Debug, Clone, PartialEq)]
struct Thinking {
    thinking: Value,
    output_config: Option<Value>,
}

/// Thinking budget per effort (setting `thinking_budget` overrides them all).
fn default_budget(effort: &str) -> Option<u32> {
    Some(match effort {
        "minimal" => 1024,
        "low" => 2048,
        "medium" => 8192,
        "high" => 16_384,
        "xhigh" | "max" => 32_768,
        _ => return None,
    })
}

/// Models from Claude 4.6 on think adaptively (budgets are deprecated there, refused later).
fn adaptive_by_default(model: &str) -> bool {
    model_version(model).is_none_or(|v| v >= (4, 6))
}

/// `reasoning_effort` (or OpenRouter's `reasoning.effort`, or Anthropic's own `thinking`) ->
/// `thinking` (+ `output_config`). A budget must stay under `max_tokens`, which grows when the
/// client's limit leaves no room for it.
fn thinking(
    req: &ChatRequest,
    model: &str,
    config: &ProviderConfig,
    max_tokens: &mut u32,
) -> Result<Option<Thinking>, ProviderError> {
    if let Some(t @ Value::Object(_)) = req.extra.get("thinking") {
        let off = t.get("type").and_then(Value::as_str) == Some("disabled");
        return Ok((!off).then(|| Thinking { thinking: t.clone(), output_config: None }));
    }
    let effort = req
        .extra
        .get("reasoning_effort")
        .and_then(Value::as_str)
        .or_else(|| req.extra.get("reasoning").and_then(|r| r.get("effort")).and_then(Value::as_str));
    let Some(effort) = effort else { return Ok(None) };
    if effort == "none" {
        return Ok(None);
    }
    if default_budget(effort).is_none() {
        return Err(bad_request(&format!("unsupported reasoning_effort `{effort}`")));
    }
    // Claude before 3.7 does not think
    if model_version(model).is_some_and(|v| v < (3, 7)) {
        return Ok(None);
    }
    let adaptive = match setting(config, "thinking").map(str::trim) {
        Some("adaptive") => true,
        Some("budget") => false,
        _ => adaptive_by_default(model),
    };
    if adaptive {
        let level = match effort {
            "minimal" | "low" => "low",
            "medium" => "medium",
            "xhigh" | "max" => "max",
            _ => "high",
        };
        return Ok(Some(Thinking {
            thinking: json!({"type": "adaptive"}),
            output_config: Some(json!({"effort": level})),
        }));
    }
    let budget = setting(config, "thinking_budget")
        .and_then(|b| b.trim().parse::<u32>().ok())
        .or_else(|| default_budget(effort))
        .unwrap_or(1024)
        .max(1024);
    if *max_tokens <= budget {
        // room for the thinking and for the answer the client asked for
        let mut grown = budget.saturating_add(*max_tokens);
        if let Some(cap) = max_output(model) {
            grown = grown.min(cap);
        }
        *max_tokens = grown;
    }
    let budget = budget.min(max_tokens.saturating_sub(1)).max(1024);
    Ok(Some(Thinking { thinking: json!({"type": "enabled", "budget_tokens": budget}), output_config: None }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(settings: &[(&str, &str)]) -> ProviderConfig {
        ProviderConfig {
            provider_id: "anthropic".into(),
            base_url: "https://api.anthropic.com/v1".into(),
            settings: settings.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        }
    }

    const MODEL: &str = "claude-sonnet-4-5";

    fn plan_for(model: &str, body: Value, settings: &[(&str, &str)]) -> Result<Plan, ProviderError> {
        build(&body.to_string(), model, false, &config(settings))
    }

    fn ok(body: Value) -> Value {
        plan_for(MODEL, body, &[]).unwrap().body
    }

    fn user(text: &str) -> Value {
        json!({"role": "user", "content": text})
    }

    #[test]
    fn versions_of_model_ids() {
        assert_eq!(model_version("claude-3-7-sonnet-20250219"), Some((3, 7)));
        assert_eq!(model_version("claude-3-5-haiku-latest"), Some((3, 5)));
        assert_eq!(model_version("claude-3-opus-20240229"), Some((3, 0)));
        assert_eq!(model_version("claude-sonnet-4-20250514"), Some((4, 0)));
        assert_eq!(model_version("claude-opus-4-1"), Some((4, 1)));
        assert_eq!(model_version("claude-haiku-4-5-20251001"), Some((4, 5)));
        assert_eq!(model_version("claude-opus-5-5"), Some((5, 5)));
        assert_eq!(model_version("claude-sonnet-5"), Some((5, 0)));
        assert_eq!(model_version("anthropic/claude-opus-4-6"), Some((4, 6)));
        assert_eq!(model_version("gpt-4o"), None);
        assert_eq!(model_version("claude-instant"), None);
    }

    #[test]
    fn system_max_tokens_and_sampling() {
        let b = ok(json!({"model": "x", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
            user("Hi"),
        ], "temperature": 1.7, "top_p": 0.9, "top_k": 40, "stop": ["END", "  "], "user": "u-1", "seed": 3,
           "presence_penalty": 0.5}));
        assert_eq!(
            b,
            json!({
                "model": MODEL,
                "system": "Be brief.\n\nUse French.",
                "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
                "max_tokens": 4096,
                "stop_sequences": ["END"],
                "temperature": 1.0,
                "top_p": 0.9,
                "top_k": 40,
                "metadata": {"user_id": "u-1"},
            })
        );
        let b = ok(
            json!({"model": "x", "messages": [user("Hi")], "max_tokens": 50, "max_completion_tokens": 20, "stop": "X"}),
        );
        assert_eq!(b["max_tokens"], 20);
        assert_eq!(b["stop_sequences"], json!(["X"]));
        assert!(b.get("system").is_none());
        let b = plan_for(MODEL, json!({"model": "x", "messages": [user("Hi")]}), &[("default_max_tokens", "1000")])
            .unwrap()
            .body;
        assert_eq!(b["max_tokens"], 1000);
        let streamed = build(&json!({"model": "x", "messages": [user("Hi")]}).to_string(), MODEL, true, &config(&[]));
        assert_eq!(streamed.unwrap().body["stream"], true);
    }

    #[test]
    fn turns_are_merged_and_only_instructions_become_the_user_turn() {
        let b = ok(json!({"model": "x", "messages": [
            user("Hi"), user(""), user("Are you there?"),
            {"role": "assistant", "content": "Yes."},
            {"role": "assistant", "content": [{"type": "text", "text": "Really."}]},
            user("Good"),
            {"role": "assistant", "content": "The answer is "},
        ]}));
        assert_eq!(
            b["messages"],
            json!([
                {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "Are you there?"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "Yes."}, {"type": "text", "text": "Really."}]},
                {"role": "user", "content": [{"type": "text", "text": "Good"}]},
                // a prefill loses its trailing whitespace
                {"role": "assistant", "content": [{"type": "text", "text": "The answer is"}]},
            ])
        );
        let b = ok(json!({"model": "x", "messages": [{"role": "system", "content": "Say hi"}]}));
        assert_eq!(b["messages"], json!([{"role": "user", "content": [{"type": "text", "text": "Say hi"}]}]));
        assert!(b.get("system").is_none());
        assert!(plan_for(MODEL, json!({"model": "x", "messages": []}), &[]).is_err());
        let e = plan_for(MODEL, json!({"model": "x", "messages": [{"role": "wizard", "content": "x"}]}), &[]);
        assert!(e.unwrap_err().message.contains("wizard"));
    }

    #[test]
    fn cache_control_keeps_system_blocks() {
        let b = ok(json!({"model": "x", "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Long rules", "cache_control": {"type": "ephemeral"}}]},
            {"role": "user", "content": [{"type": "text", "text": "Q", "cache_control": {"type": "ephemeral"}}]},
        ]}));
        assert_eq!(
            b["system"],
            json!([{"type": "text", "text": "Long rules", "cache_control": {"type": "ephemeral"}}])
        );
        assert_eq!(b["messages"][0]["content"][0]["cache_control"], json!({"type": "ephemeral"}));
    }

    #[test]
    fn images_and_documents() {
        let b = ok(json!({"model": "x", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "data:image/jpg;base64,/9j/"}},
            {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}},
        ]}]}));
        let content = &b["messages"][0]["content"];
        assert_eq!(content[0], json!({"type": "text", "text": "What is this?"}));
        assert_eq!(
            content[1],
            json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}})
        );
        assert_eq!(
            content[2],
            json!({"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}})
        );
        assert_eq!(content[3]["source"]["media_type"], "image/jpeg");
        assert_eq!(
            content[4],
            json!({"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}})
        );
        let bad = |part: Value| {
            plan_for(MODEL, json!({"model": "x", "messages": [{"role": "user", "content": [part]}]}), &[])
                .unwrap_err()
                .message
        };
        assert!(
            bad(json!({"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}})).contains("image/bmp")
        );
        assert!(bad(json!({"type": "image_url", "image_url": {"url": "ftp://x/y.png"}})).contains("http(s)"));
        assert!(bad(json!({"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}})).contains("audio"));
        assert!(bad(json!({"type": "video"})).contains("`video`"));
        let in_assistant = plan_for(
            MODEL,
            json!({"model": "x", "messages": [user("a"), {"role": "assistant", "content": [
                {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}),
            &[],
        );
        assert!(in_assistant.is_err());
    }

    fn weather_tools() -> Value {
        json!([{"type": "function", "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "strict": true,
            "parameters": {"type": "object", "additionalProperties": false,
                "properties": {"city": {"type": "string"}}, "required": ["city"]},
        }}, {"type": "function", "function": {"name": "now"}}])
    }

    #[test]
    fn tools_calls_and_results() {
        let b = ok(json!({"model": "x", "tools": weather_tools(), "messages": [
            user("Weather in Paris and Rome?"),
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "toolu_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "functions.get_weather:1", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
            ]},
            {"role": "tool", "tool_call_id": "toolu_a", "content": "{\"temp_c\": 21}"},
            user("and be quick"),
            {"role": "tool", "tool_call_id": "functions.get_weather:1", "content": [{"type": "text", "text": "sunny"}], "is_error": true},
        ]}));
        assert_eq!(
            b["tools"],
            json!([
                {"name": "get_weather", "description": "Weather for a city", "input_schema": {"type": "object",
                    "additionalProperties": false, "properties": {"city": {"type": "string"}}, "required": ["city"]}},
                {"name": "now", "input_schema": {"type": "object", "properties": {}}},
            ])
        );
        assert!(b.get("tool_choice").is_none());
        let messages = b["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 3);
        assert_eq!(
            messages[1]["content"],
            json!([
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "functions_get_weather_1", "name": "get_weather", "input": {}},
            ])
        );
        // both results in one user turn, before its text
        assert_eq!(
            messages[2]["content"],
            json!([
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": "{\"temp_c\": 21}"},
                {"type": "tool_result", "tool_use_id": "functions_get_weather_1", "content": [{"type": "text", "text": "sunny"}], "is_error": true},
                {"type": "text", "text": "and be quick"},
            ])
        );
        let bad = plan_for(
            MODEL,
            json!({"model": "x", "messages": [user("x"), {"role": "assistant", "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}]}),
            &[],
        );
        assert!(bad.unwrap_err().message.contains("not a JSON object"));
        assert!(plan_for(MODEL, json!({"model": "x", "messages": [{"role": "tool", "content": "1"}]}), &[]).is_err());
        let bad = plan_for(
            MODEL,
            json!({"model": "x", "messages": [user("x")], "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}]}),
            &[],
        );
        assert!(bad.unwrap_err().message.contains("object schema"));
        let bad =
            plan_for(MODEL, json!({"model": "x", "messages": [user("x")], "tools": [{"type": "web_search"}]}), &[]);
        assert!(bad.is_err());
    }

    #[test]
    fn tool_choice_modes() {
        let with = |choice: Value, extra: Value| {
            let mut body =
                json!({"model": "x", "tools": weather_tools(), "tool_choice": choice, "messages": [user("x")]});
            if let Value::Object(e) = extra {
                body.as_object_mut().unwrap().extend(e);
            }
            plan_for(MODEL, body, &[])
        };
        let choice = |c: Value| with(c, json!({})).unwrap().body["tool_choice"].clone();
        assert_eq!(choice(json!("auto")), json!({"type": "auto"}));
        assert_eq!(choice(json!("none")), json!({"type": "none"}));
        assert_eq!(choice(json!("required")), json!({"type": "any"}));
        assert_eq!(
            choice(json!({"type": "function", "function": {"name": "get_weather"}})),
            json!({"type": "tool", "name": "get_weather"})
        );
        let b = with(
            json!({"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [{"type": "function", "function": {"name": "now"}}]}}),
            json!({}),
        )
        .unwrap()
        .body;
        assert_eq!(b["tool_choice"], json!({"type": "any"}));
        assert_eq!(b["tools"].as_array().unwrap().len(), 1);
        assert_eq!(b["tools"][0]["name"], "now");
        let b = with(json!(null), json!({"parallel_tool_calls": false})).unwrap().body;
        assert_eq!(b["tool_choice"], json!({"type": "auto", "disable_parallel_tool_use": true}));
        let b = with(json!("required"), json!({"parallel_tool_calls": false})).unwrap().body;
        assert_eq!(b["tool_choice"], json!({"type": "any", "disable_parallel_tool_use": true}));
        assert!(with(json!({"type": "function", "function": {"name": "nope"}}), json!({})).is_err());
        assert!(with(json!("sometimes"), json!({})).is_err());
        // no tools: no tool choice
        let b = ok(json!({"model": "x", "tool_choice": "auto", "messages": [user("x")]}));
        assert!(b.get("tool_choice").is_none() && b.get("tools").is_none());
    }

    #[test]
    fn json_mode_is_a_forced_tool() {
        let p = plan_for(
            MODEL,
            json!({"model": "x", "messages": [user("JSON please")], "response_format": {"type": "json_object"}}),
            &[],
        )
        .unwrap();
        assert_eq!(p.json_tool, Some(JsonTool { name: JSON_TOOL.into(), wrapped: false }));
        assert_eq!(
            p.body["tools"],
            json!([{"name": "json_response", "description": "Give the answer as a JSON object.", "input_schema": {"type": "object"}}])
        );
        assert_eq!(p.body["tool_choice"], json!({"type": "tool", "name": "json_response"}));

        let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]});
        let p = plan_for(
            MODEL,
            json!({"model": "x", "messages": [user("x")], "response_format": {"type": "json_schema",
                "json_schema": {"name": "r", "description": "The result", "strict": true, "schema": schema}}}),
            &[],
        )
        .unwrap();
        assert_eq!(p.body["tools"][0]["input_schema"], schema);
        assert_eq!(p.body["tools"][0]["description"], "The result");
        // a non-object schema is wrapped
        let p = plan_for(
            MODEL,
            json!({"model": "x", "messages": [user("x")], "response_format": {"type": "json_schema",
                "json_schema": {"name": "r", "schema": {"type": "array", "items": {"type": "string"}}}}}),
            &[],
        )
        .unwrap();
        assert!(p.json_tool.unwrap().wrapped);
        assert_eq!(p.body["tools"][0]["input_schema"]["properties"]["value"]["type"], "array");

        // with the client's own tools, JSON mode asks rather than forces
        let p = plan_for(
            MODEL,
            json!({"model": "x", "tools": weather_tools(), "messages": [{"role": "system", "content": "S"}, user("x")],
                "response_format": {"type": "json_object"}}),
            &[],
        )
        .unwrap();
        assert_eq!(p.body["tools"].as_array().unwrap().len(), 3);
        assert!(p.body.get("tool_choice").is_none());
        assert!(p.body["system"].as_str().unwrap().starts_with("S\n\nGive your final answer by calling"));
        // ... and so it does on a model that refuses forced tools, or when the setting says so
        for (model, settings) in [("claude-sonnet-5-5", &[][..]), (MODEL, &[("forced_tool_choice", "false")][..])] {
            let p = plan_for(
                model,
                json!({"model": "x", "messages": [user("x")], "response_format": {"type": "json_object"}}),
                settings,
            )
            .unwrap();
            assert!(p.body.get("tool_choice").is_none(), "{model}");
            assert!(p.body["system"].as_str().unwrap().contains("json_response"));
        }
        let clash = plan_for(
            MODEL,
            json!({"model": "x", "messages": [user("x")], "response_format": {"type": "json_object"},
                "tools": [{"type": "function", "function": {"name": "json_response"}}]}),
            &[],
        );
        assert!(clash.is_err());
        // text format is no JSON mode
        let p =
            plan_for(MODEL, json!({"model": "x", "messages": [user("x")], "response_format": {"type": "text"}}), &[])
                .unwrap();
        assert!(p.json_tool.is_none() && p.body.get("tools").is_none());
    }

    #[test]
    fn reasoning_effort_becomes_thinking() {
        let ask = |model: &str, extra: Value, settings: &[(&str, &str)]| {
            let mut body = json!({"model": "x", "messages": [user("x")], "temperature": 0.2, "top_p": 0.5});
            body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            plan_for(model, body, settings)
        };
        // budgets before 4.6: max_tokens grows to leave room for the answer
        let b = ask("claude-sonnet-4-5", json!({"reasoning_effort": "low"}), &[]).unwrap().body;
        assert_eq!(b["thinking"], json!({"type": "enabled", "budget_tokens": 2048}));
        assert_eq!(b["max_tokens"], 4096);
        assert!(b.get("temperature").is_none() && b.get("top_p").is_none());
        let b = ask("claude-3-7-sonnet-20250219", json!({"reasoning_effort": "high", "max_tokens": 1000}), &[])
            .unwrap()
            .body;
        assert_eq!(b["thinking"]["budget_tokens"], 16_384);
        assert_eq!(b["max_tokens"], 17_384);
        let b =
            ask("claude-sonnet-4-5", json!({"reasoning_effort": "medium", "max_tokens": 20_000}), &[]).unwrap().body;
        assert_eq!((b["thinking"]["budget_tokens"].as_u64(), b["max_tokens"].as_u64()), (Some(8192), Some(20_000)));
        let b =
            ask("claude-sonnet-4-5", json!({"reasoning_effort": "high"}), &[("thinking_budget", "3000")]).unwrap().body;
        assert_eq!(b["thinking"]["budget_tokens"], 3000);
        // adaptive from 4.6 on, and for unknown ids
        for model in ["claude-opus-4-6", "claude-opus-5-5", "claude-next"] {
            let b = ask(model, json!({"reasoning_effort": "minimal"}), &[]).unwrap().body;
            assert_eq!(b["thinking"], json!({"type": "adaptive"}), "{model}");
            assert_eq!(b["output_config"], json!({"effort": "low"}));
            assert_eq!(b["max_tokens"], 4096);
        }
        let b =
            ask("claude-opus-4-6", json!({"reasoning": {"effort": "high"}}), &[("thinking", "budget")]).unwrap().body;
        assert_eq!(b["thinking"]["type"], "enabled");
        // none, and models that do not think
        let b = ask("claude-sonnet-4-5", json!({"reasoning_effort": "none"}), &[]).unwrap().body;
        assert!(b.get("thinking").is_none());
        assert_eq!(b["temperature"], 0.2);
        let b = ask("claude-3-5-haiku-latest", json!({"reasoning_effort": "high"}), &[]).unwrap().body;
        assert!(b.get("thinking").is_none());
        assert!(ask(MODEL, json!({"reasoning_effort": "extreme"}), &[]).is_err());
        // Anthropic's own parameter passes
        let b = ask(MODEL, json!({"thinking": {"type": "enabled", "budget_tokens": 1500}}), &[]).unwrap().body;
        assert_eq!(b["thinking"]["budget_tokens"], 1500);
        // forced tools and thinking do not mix; JSON mode then asks for its tool
        let e =
            ask(MODEL, json!({"reasoning_effort": "low", "tools": weather_tools(), "tool_choice": "required"}), &[]);
        assert!(e.unwrap_err().message.contains("tool_choice"));
        let p =
            ask(MODEL, json!({"reasoning_effort": "low", "response_format": {"type": "json_object"}}), &[]).unwrap();
        assert!(p.body.get("tool_choice").is_none());
        assert!(p.json_tool.is_some());
    }

    #[test]
    fn thinking_blocks_are_replayed() {
        let b = ok(json!({"model": "x", "messages": [
            user("x"),
            {"role": "assistant", "content": null, "reasoning_content": "hmm",
             "thinking_blocks": [{"type": "thinking", "thinking": "hmm", "signature": "sig"},
                                 {"type": "redacted_thinking", "data": "opaque"},
                                 {"type": "thinking", "thinking": "unsigned"}],
             "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "ok"},
        ]}));
        assert_eq!(
            b["messages"][1]["content"],
            json!([
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
            ])
        );
    }

    #[test]
    fn what_anthropic_cannot_express_is_refused() {
        let with = |k: &str, v: Value| {
            let mut b = json!({"model": "x", "messages": [user("x")]});
            b[k] = v;
            plan_for(MODEL, b, &[])
        };
        assert!(with("logprobs", json!(true)).unwrap_err().message.contains("logprobs"));
        assert!(with("logprobs", json!(false)).is_ok());
        assert!(with("n", json!(2)).is_err());
        assert!(with("n", json!(1)).is_ok());
        assert!(with("logit_bias", json!({"5": 1})).is_err());
        assert!(with("modalities", json!(["text", "audio"])).is_err());
        assert!(with("functions", json!([{"name": "f"}])).is_err());
        assert!(build("not json", MODEL, false, &config(&[])).is_err());
        assert_eq!(with("n", json!(3)).unwrap_err().kind, freeway_sdk::types::ErrorKind::BadRequest);
    }
}
