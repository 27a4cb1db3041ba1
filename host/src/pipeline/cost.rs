//! The one estimate of what a request may cost: one request, the prompt's tokens (counted once
//! per request with a real tokenizer, and only when something limits tokens), and the output
//! it may produce (`max_tokens`, else the model's maximum capped by `[quota]
//! default_output_tokens`). Admission, routing decisions and quota reservations all use it.

use serde_json::Value;
use serde_json::value::RawValue;

use super::context::RequestCtx;
use crate::quota::{Cost, Dim};
use crate::registry::ProviderEntry;
use crate::wire::types::Usage;

/// The output tokens to reserve: what the client asked for, else the model's maximum capped by
/// the default.
pub fn output_tokens(ctx: &RequestCtx<'_>, model_max: Option<u32>) -> u32 {
    let default_out = ctx.budget.default_output_tokens;
    ctx.needs.max_tokens.unwrap_or_else(|| model_max.map_or(default_out, |m| m.min(default_out)))
}

/// What the request may cost on `model` of `provider`, in the dimensions its limits count.
pub fn estimate(ctx: &RequestCtx<'_>, provider: &ProviderEntry, model: &str) -> Cost {
    let limits = provider.quota_plan.for_model(model);
    if limits.specs.is_empty() {
        return Cost::default();
    }
    if !limits.specs.iter().any(|s| s.dim != Dim::Requests) {
        return Cost { requests: 1, ..Cost::default() };
    }
    let model_max = provider.models.iter().find(|m| m.info.id == model).and_then(|m| m.info.max_output_tokens);
    Cost { requests: 1, input_tokens: ctx.prompt_tokens(), output_tokens: u64::from(output_tokens(ctx, model_max)) }
}

/// The tokens an admission limit counts: the whole prompt and the output it may produce.
pub fn admission_tokens(ctx: &RequestCtx<'_>) -> u32 {
    let total = ctx.prompt_tokens().saturating_add(u64::from(output_tokens(ctx, None)));
    u32::try_from(total).unwrap_or(u32::MAX).max(1)
}

/// What a response really cost.
pub fn actual(usage: Option<&Usage>, estimate: Cost) -> Cost {
    match usage {
        Some(u) => Cost { requests: 1, input_tokens: u.prompt_tokens, output_tokens: u.completion_tokens },
        None => estimate,
    }
}

/// Tokens an image is assumed to cost (the provider's real count settles it).
const IMAGE_TOKENS: u64 = 765;

/// Text counted exactly with the tokenizer per request; beyond it, the rest is estimated at the
/// rate measured on what was counted. Bounds the work on any prompt, however long.
const EXACT_BYTES: usize = 32 * 1024;
/// Longest piece handed to the tokenizer at once: byte-pair merging is quadratic in the length
/// of one "word", and a prompt may be one endless word.
const PIECE_BYTES: usize = 256;

/// Counts tokens exactly up to [`EXACT_BYTES`] of text, then extrapolates.
struct Counter {
    bpe: &'static tiktoken_rs::CoreBPE,
    exact_bytes: usize,
    exact_tokens: u64,
    rest_bytes: usize,
}

impl Counter {
    fn text(&mut self, s: &str) {
        let mut rest = s;
        while !rest.is_empty() {
            if self.exact_bytes >= EXACT_BYTES {
                self.rest_bytes += rest.len();
                return;
            }
            let mut cut = rest.len().min(PIECE_BYTES);
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            if cut == 0 {
                cut = rest.chars().next().map_or(rest.len(), char::len_utf8);
            }
            let (piece, tail) = rest.split_at(cut);
            self.exact_tokens += self.bpe.encode_ordinary(piece).len() as u64;
            self.exact_bytes += piece.len();
            rest = tail;
        }
    }

    fn total(&self) -> u64 {
        if self.rest_bytes == 0 || self.exact_bytes == 0 {
            return self.exact_tokens;
        }
        let rate = self.exact_tokens as f64 / self.exact_bytes as f64;
        // an estimate: rounding up, and a count of bytes is far below 2^52
        #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
        let rest = (rate * self.rest_bytes as f64).ceil() as u64;
        self.exact_tokens + rest
    }
}

/// Tokens of the messages as an OpenAI tokenizer (o200k) counts them: every string in every
/// message (content, names, tool calls and their arguments) plus the per-message framing;
/// images at a flat rate instead of their base64 text. The first [`EXACT_BYTES`] of text are
/// counted exactly, the rest estimated at the same rate.
pub fn count_prompt_tokens(messages: &RawValue) -> u64 {
    let Ok(list) = serde_json::from_str::<Vec<Value>>(messages.get()) else {
        return (messages.get().len() / 3) as u64;
    };
    let mut counter =
        Counter { bpe: tiktoken_rs::o200k_base_singleton(), exact_bytes: 0, exact_tokens: 0, rest_bytes: 0 };
    let mut total = 3;
    let mut stack: Vec<&Value> = Vec::new();
    for m in &list {
        total += 4;
        stack.push(m);
        while let Some(v) = stack.pop() {
            match v {
                Value::String(s) => counter.text(s),
                Value::Array(items) => stack.extend(items),
                Value::Object(map) => {
                    for (k, v) in map {
                        match k.as_str() {
                            "image_url" | "input_image" | "image" => total += IMAGE_TOKENS,
                            "input_audio" | "file" => total += IMAGE_TOKENS,
                            "type" | "role" => total += 1,
                            _ => stack.push(v),
                        }
                    }
                }
                Value::Number(_) | Value::Bool(_) => total += 1,
                Value::Null => {}
            }
        }
    }
    total + counter.total()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_are_counted_with_the_tokenizer_and_images_at_a_flat_rate() {
        let raw =
            RawValue::from_string(r#"[{"role":"user","content":"Hello, world! How are you today?"}]"#.into()).unwrap();
        let n = count_prompt_tokens(&raw);
        assert!((10..=20).contains(&n), "{n}");
        let big = "x".repeat(100_000);
        let with_image = format!(
            r#"[{{"role":"user","content":[{{"type":"text","text":"hi"}},{{"type":"image_url","image_url":{{"url":"data:image/png;base64,{big}"}}}}]}}]"#
        );
        let raw = RawValue::from_string(with_image).unwrap();
        let n = count_prompt_tokens(&raw);
        assert!(n < 1000, "the base64 text is not counted as tokens: {n}");
    }

    #[test]
    fn a_long_prompt_is_counted_with_bounded_work_and_a_close_estimate() {
        // ordinary text: the extrapolated count stays close to the exact one
        let text = "The quick brown fox jumps over the lazy dog, again and again. ".repeat(4000);
        let raw = RawValue::from_string(serde_json::json!([{"role": "user", "content": text}]).to_string()).unwrap();
        let estimated = count_prompt_tokens(&raw);
        let exact = tiktoken_rs::o200k_base_singleton().encode_ordinary(&text).len() as u64;
        let ratio = estimated as f64 / exact as f64;
        assert!((0.9..1.1).contains(&ratio), "estimated {estimated}, exact {exact}");
        // one endless word of 4 MiB: no quadratic merge, bounded time
        let word = "a".repeat(4 << 20);
        let raw = RawValue::from_string(serde_json::json!([{"role": "user", "content": word}]).to_string()).unwrap();
        let started = std::time::Instant::now();
        let n = count_prompt_tokens(&raw);
        assert!(n > 1000, "{n}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
    }
}
