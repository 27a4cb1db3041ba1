//! Limits: before a candidate is tried, its quota pool must have room for the request. The
//! estimated cost (one request, the prompt's tokens counted with a real tokenizer, plus
//! `max_tokens` or a default) is reserved in the ledger; a candidate that would break any of
//! its provider's limits is skipped before anything is sent. After the response the reservation
//! is settled with the true usage. When no candidate has room, the client gets a 429 whose
//! `Retry-After` is the earliest moment one will.

use std::time::Duration;

use serde_json::Value;
use serde_json::value::RawValue;

use super::classify::Needs;
use super::route::Candidate;
use crate::app::App;
use crate::errors::{ErrorKind, GatewayError};
use crate::quota::{Blocked, Cost, Dim, Observed, Reservation, Window, now_ms};
use crate::runtime::bindings::wit;
use crate::wire::chat::ChatBody;
use crate::wire::types::Usage;

/// Tokens an image is assumed to cost (the provider's real count settles it).
const IMAGE_TOKENS: u64 = 765;

/// The request's prompt, counted once and only if some candidate limits tokens.
#[derive(Default)]
pub struct PromptTokens(Option<u64>);

impl PromptTokens {
    fn get(&mut self, messages: &RawValue) -> u64 {
        *self.0.get_or_insert_with(|| crate::cpu::run(messages.get().len(), || count_prompt_tokens(messages)))
    }
}

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

/// What the request may cost on `cand`.
pub fn estimate(app: &App, req: &ChatBody<'_>, needs: &Needs, cand: &Candidate, prompt: &mut PromptTokens) -> Cost {
    let plan = &cand.route.provider.quota_plan;
    let limits = plan.for_model(&cand.route.model);
    if limits.specs.is_empty() {
        return Cost::default();
    }
    let counts_tokens = limits.specs.iter().any(|s| s.dim != Dim::Requests);
    if !counts_tokens {
        return Cost { requests: 1, ..Cost::default() };
    }
    let model_max = cand
        .route
        .provider
        .models
        .iter()
        .find(|m| m.info.id == cand.route.model)
        .and_then(|m| m.info.max_output_tokens);
    let default_out = app.registry.snapshot().config.quota.default_output_tokens;
    let output = needs.max_tokens.unwrap_or_else(|| model_max.map_or(default_out, |m| m.min(default_out)));
    Cost { requests: 1, input_tokens: prompt.get(req.messages), output_tokens: u64::from(output) }
}

/// Reserve the request's cost in the candidate's pool.
pub async fn reserve(app: &App, cand: &Candidate, cost: Cost) -> Result<Option<Reservation>, Blocked> {
    // nothing to count: only a shared Redis may still hold a rest for the pool
    if cost == Cost::default() && app.ledger.remote().is_none_or(|r| !r.is_up()) {
        return Ok(None);
    }
    let p = &cand.route.provider;
    app.ledger.reserve(&cand.account.quota_pool, &p.quota_plan, &cand.route.model, cost).await
}

/// What a response really cost.
pub fn actual(usage: Option<&Usage>, estimate: Cost) -> Cost {
    match usage {
        Some(u) => Cost { requests: 1, input_tokens: u.prompt_tokens, output_tokens: u.completion_tokens },
        None => estimate,
    }
}

/// Settle after an attempt that failed: a request the provider never received, or failed on its
/// own side (5xx), costs nothing; one it refused or that timed out counts as a request (its
/// tokens were not spent).
pub fn settle_failed(app: &App, r: Option<Reservation>, e: &GatewayError) {
    let Some(r) = r else { return };
    let not_counted = matches!(
        e.kind,
        ErrorKind::UpstreamUnreachable
            | ErrorKind::ComponentFailed
            | ErrorKind::ComponentDenied
            | ErrorKind::UpstreamServerError
            | ErrorKind::UpstreamOverloaded
    );
    if not_counted {
        app.ledger.release(r);
    } else {
        app.ledger.settle(r, Cost { requests: 1, ..Cost::default() });
    }
}

fn dim(d: wit::QuotaDimension) -> Option<Dim> {
    match d {
        wit::QuotaDimension::Requests => Some(Dim::Requests),
        wit::QuotaDimension::Tokens => Some(Dim::Tokens),
        wit::QuotaDimension::InputTokens => Some(Dim::InputTokens),
        wit::QuotaDimension::OutputTokens => Some(Dim::OutputTokens),
        wit::QuotaDimension::Credits => None,
    }
}

fn window(w: wit::LimitWindow) -> Option<Window> {
    match w {
        wit::LimitWindow::Minute => Some(Window::Minute),
        wit::LimitWindow::Hour => Some(Window::Hour),
        wit::LimitWindow::Day => Some(Window::Day),
        wit::LimitWindow::Month => Some(Window::Month),
        wit::LimitWindow::Second | wit::LimitWindow::Unknown => None,
    }
}

/// Hand what a component read from the provider's headers or error body to the ledger.
pub fn observe(ledger: &crate::quota::Ledger, cand: &Candidate, updates: &[wit::QuotaUpdate]) {
    let p = &cand.route.provider;
    let mut pool_wide = Vec::new();
    for u in updates {
        let (Some(dim), Some(window)) = (dim(u.dimension), window(u.window)) else { continue };
        let o = Observed { dim, window, limit: u.limit, remaining: u.remaining, reset_after_ms: u.reset_after_ms };
        match &u.scope {
            Some(model) => ledger.observe(&cand.account.quota_pool, &p.quota_plan, model, &[o]),
            None => pool_wide.push(o),
        }
    }
    ledger.observe(&cand.account.quota_pool, &p.quota_plan, &cand.route.model, &pool_wide);
}

/// Every candidate was skipped for lack of quota: a 429 with the earliest time one has room, or
/// a 400 when the request is larger than every candidate's limit.
pub fn exhausted(model: &str, blocked: &[(String, Blocked)]) -> GatewayError {
    let now = now_ms();
    let soonest = blocked.iter().filter_map(|(_, b)| b.until_ms).min();
    let reasons: Vec<String> = blocked.iter().take(4).map(|(who, b)| format!("{who}: {}", b.reason)).collect();
    let more = if blocked.len() > 4 { format!(" (and {} more)", blocked.len() - 4) } else { String::new() };
    match soonest {
        Some(at) => {
            let wait = Duration::from_millis(at.saturating_sub(now).max(1));
            GatewayError::new(
                ErrorKind::UpstreamRateLimited,
                format!(
                    "Every account that serves `{model}` has used its free quota for now; the first frees up in {:.1} s. {}{more}",
                    wait.as_secs_f64(),
                    reasons.join("; ")
                ),
            )
            .with_retry_after(Some(wait))
        }
        None => GatewayError::new(
            ErrorKind::InvalidValue,
            format!(
                "This request is larger than any limit of the accounts that serve `{model}`: {}{more}",
                reasons.join("; ")
            ),
        )
        .with_param("max_tokens"),
    }
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
