//! Provider profiles: which rate-limit headers a provider sends and how its error bodies look.
//!
//! Each profile is a `Spec` (data) read by a few small functions; adding a provider means
//! adding a variant, a header table and an error style. Sources: the `rate_limit_headers` and
//! `error_429` sections of `shared/reference/free-providers.yaml`.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::limits::{Axis, Snapshot, Usage};
use crate::script::Window;

/// Rate-limit header and error body style of one upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Profile {
    #[default]
    #[serde(rename = "openai")]
    OpenAi,
    #[serde(rename = "groq")]
    Groq,
    #[serde(rename = "cerebras")]
    Cerebras,
    #[serde(rename = "openrouter")]
    OpenRouter,
    #[serde(rename = "mistral")]
    Mistral,
    #[serde(rename = "gemini-openai")]
    GeminiOpenAi,
    /// Gemini's native API (`generateContent`), served by `native::gemini`.
    #[serde(rename = "gemini")]
    Gemini,
    /// Cloudflare Workers AI (`/accounts/{id}/ai/v1/chat/completions`, `ai/models/search`, v4
    /// error envelopes), served by `native::cloudflare`.
    #[serde(rename = "cloudflare")]
    Cloudflare,
    /// Cohere's native API (`/v2/chat`, `/v1/models`), served by `native::cohere`.
    #[serde(rename = "cohere")]
    Cohere,
    /// Anthropic's Messages API (`/v1/messages`, `/v1/models`), served by `native::anthropic`.
    #[serde(rename = "anthropic")]
    Anthropic,
}

/// A header and the value it carries.
pub type Header = (&'static str, String);

#[derive(Debug, Clone, Copy)]
enum Field {
    Limit,
    Remaining,
    Reset(ResetFormat),
    /// Tokens charged for this request (Mistral's `x-ratelimit-tokens-query-cost`).
    Cost,
}

#[derive(Debug, Clone, Copy)]
enum ResetFormat {
    /// Go-style duration: "6s", "1m2.5s", "20ms".
    Duration,
    /// Seconds as a float: "7.0", "33011.383".
    Seconds,
}

#[derive(Debug)]
struct HeaderSpec {
    name: &'static str,
    axis: Axis,
    field: Field,
}

const fn h(name: &'static str, axis: Axis, field: Field) -> HeaderSpec {
    HeaderSpec { name, axis, field }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorStyle {
    /// `{"error":{"message","type","param","code"}}`
    OpenAi,
    /// Top-level `{"message","type","param","code"}`.
    Cerebras,
    /// Top-level `{"object":"error","message","type","param","code","raw_status_code"}`.
    Mistral,
    /// `{"error":{"code":<status>,"message",...}}`
    OpenRouter,
    /// `[{"error":{"code","message","status",...}}]` (array-wrapped on the OpenAI endpoint).
    Gemini,
    /// `{"error":{"code","message","status",...}}` (Gemini's native API).
    GeminiNative,
    /// Cloudflare's v4 envelope `{"success":false,"errors":[{"code","message"}],"messages":[],"result":null}`.
    Cloudflare,
    /// `{"id","message"}` (Cohere).
    Cohere,
    /// `{"type":"error","error":{"type","message"}}` (Anthropic).
    Anthropic,
}

#[derive(Debug)]
struct Spec {
    /// Headers sent on every successful response (and on 429s unless `OpenRouter`).
    headers: &'static [HeaderSpec],
    style: ErrorStyle,
    /// A `retry-after` header (seconds) on every 429.
    retry_after: bool,
    /// Axes a scripted `rate_limit` reports as exhausted, per window.
    minute_axis: Axis,
    day_axis: Axis,
}

const D: Field = Field::Reset(ResetFormat::Duration);
const S: Field = Field::Reset(ResetFormat::Seconds);

const OPENAI: Spec = Spec {
    headers: &[
        h("x-ratelimit-limit-requests", Axis::Rpm, Field::Limit),
        h("x-ratelimit-remaining-requests", Axis::Rpm, Field::Remaining),
        h("x-ratelimit-reset-requests", Axis::Rpm, D),
        h("x-ratelimit-limit-tokens", Axis::Tpm, Field::Limit),
        h("x-ratelimit-remaining-tokens", Axis::Tpm, Field::Remaining),
        h("x-ratelimit-reset-tokens", Axis::Tpm, D),
    ],
    style: ErrorStyle::OpenAi,
    retry_after: true,
    minute_axis: Axis::Rpm,
    day_axis: Axis::Rpd,
};

/// Groq: same names as OpenAI, but `-requests` are per DAY and `-tokens` per minute.
const GROQ: Spec = Spec {
    headers: &[
        h("x-ratelimit-limit-requests", Axis::Rpd, Field::Limit),
        h("x-ratelimit-remaining-requests", Axis::Rpd, Field::Remaining),
        h("x-ratelimit-reset-requests", Axis::Rpd, D),
        h("x-ratelimit-limit-tokens", Axis::Tpm, Field::Limit),
        h("x-ratelimit-remaining-tokens", Axis::Tpm, Field::Remaining),
        h("x-ratelimit-reset-tokens", Axis::Tpm, D),
    ],
    style: ErrorStyle::OpenAi,
    retry_after: true,
    minute_axis: Axis::Tpm,
    day_axis: Axis::Rpd,
};

const CEREBRAS: Spec = Spec {
    headers: &[
        h("x-ratelimit-limit-requests-day", Axis::Rpd, Field::Limit),
        h("x-ratelimit-limit-tokens-minute", Axis::Tpm, Field::Limit),
        h("x-ratelimit-remaining-requests-day", Axis::Rpd, Field::Remaining),
        h("x-ratelimit-remaining-tokens-minute", Axis::Tpm, Field::Remaining),
        h("x-ratelimit-reset-requests-day", Axis::Rpd, S),
        h("x-ratelimit-reset-tokens-minute", Axis::Tpm, S),
    ],
    style: ErrorStyle::Cerebras,
    retry_after: false,
    minute_axis: Axis::Tpm,
    day_axis: Axis::Rpd,
};

/// OpenRouter sends no rate-limit headers on success; its 429 headers are built separately.
const OPENROUTER: Spec = Spec {
    headers: &[],
    style: ErrorStyle::OpenRouter,
    retry_after: false,
    minute_axis: Axis::Rpm,
    day_axis: Axis::Rpd,
};

/// Mistral's observed (undocumented) headers; no daily axis.
const MISTRAL: Spec = Spec {
    headers: &[
        h("x-ratelimit-limit-req-minute", Axis::Rpm, Field::Limit),
        h("x-ratelimit-remaining-req-minute", Axis::Rpm, Field::Remaining),
        h("x-ratelimit-limit-tokens-minute", Axis::Tpm, Field::Limit),
        h("x-ratelimit-remaining-tokens-minute", Axis::Tpm, Field::Remaining),
        h("x-ratelimit-tokens-query-cost", Axis::Tpm, Field::Cost),
    ],
    style: ErrorStyle::Mistral,
    retry_after: false,
    minute_axis: Axis::Rpm,
    day_axis: Axis::Rpd,
};

/// Gemini's OpenAI-compatible endpoint: no rate-limit headers at all.
const GEMINI: Spec =
    Spec { headers: &[], style: ErrorStyle::Gemini, retry_after: false, minute_axis: Axis::Rpm, day_axis: Axis::Rpd };

/// Gemini's native API: no rate-limit headers, not even `retry-after` on a scripted 429 (the
/// delay is in the body's `RetryInfo`).
const GEMINI_NATIVE: Spec = Spec {
    headers: &[],
    style: ErrorStyle::GeminiNative,
    retry_after: false,
    minute_axis: Axis::Rpm,
    day_axis: Axis::Rpd,
};

/// Cloudflare Workers AI: no rate-limit headers and no `retry-after`; a day axis (the neuron
/// allowance is counted on tpd) is code 3036, a minute axis code 3040.
const CLOUDFLARE: Spec = Spec {
    headers: &[],
    style: ErrorStyle::Cloudflare,
    retry_after: false,
    minute_axis: Axis::Rpm,
    day_axis: Axis::Tpd,
};

/// Cohere: a trial key's counters on success (the day axis stands in for the monthly cap);
/// 429s carry no header at all.
const COHERE: Spec = Spec {
    headers: &[
        h("x-endpoint-monthly-call-limit", Axis::Rpd, Field::Limit),
        h("x-trial-endpoint-call-limit", Axis::Rpm, Field::Limit),
        h("x-trial-endpoint-call-remaining", Axis::Rpm, Field::Remaining),
    ],
    style: ErrorStyle::Cohere,
    retry_after: false,
    minute_axis: Axis::Rpm,
    day_axis: Axis::Rpd,
};

/// Anthropic: `retry-after` on every 429; its `anthropic-ratelimit-*` headers (RFC 3339 resets)
/// are written by `native::anthropic`, which knows the time.
const ANTHROPIC: Spec =
    Spec { headers: &[], style: ErrorStyle::Anthropic, retry_after: true, minute_axis: Axis::Rpm, day_axis: Axis::Rpd };

/// Everything needed to describe a 429.
#[derive(Debug, Clone)]
pub struct RateLimitHit<'a> {
    /// The exhausted axis; `snapshot` must hold it.
    pub axis: Axis,
    pub snapshot: &'a Snapshot,
    /// 1 for request axes, the request's tokens for token axes.
    pub requested: u64,
    pub model: &'a str,
    pub now_ms: u64,
    /// A scripted retry delay: used as is, and sent as `Retry-After` even where the provider
    /// only sometimes sends it (OpenRouter). Otherwise derived from the axis' reset.
    pub retry_after_s: Option<u64>,
}

/// A non-429 error in provider-neutral terms; each profile renders it in its own shape.
#[derive(Debug, Clone, Copy)]
pub struct ApiError<'a> {
    pub status: u16,
    pub message: &'a str,
    /// OpenAI `type`, e.g. "invalid_request_error".
    pub kind: &'a str,
    pub code: Option<&'a str>,
    pub param: Option<&'a str>,
}

impl Profile {
    /// The config name of this profile.
    pub fn name(self) -> &'static str {
        match self {
            Profile::OpenAi => "openai",
            Profile::Groq => "groq",
            Profile::Cerebras => "cerebras",
            Profile::OpenRouter => "openrouter",
            Profile::Mistral => "mistral",
            Profile::GeminiOpenAi => "gemini-openai",
            Profile::Gemini => "gemini",
            Profile::Cloudflare => "cloudflare",
            Profile::Cohere => "cohere",
            Profile::Anthropic => "anthropic",
        }
    }

    fn spec(self) -> &'static Spec {
        match self {
            Profile::OpenAi => &OPENAI,
            Profile::Groq => &GROQ,
            Profile::Cerebras => &CEREBRAS,
            Profile::OpenRouter => &OPENROUTER,
            Profile::Mistral => &MISTRAL,
            Profile::GeminiOpenAi => &GEMINI,
            Profile::Gemini => &GEMINI_NATIVE,
            Profile::Cloudflare => &CLOUDFLARE,
            Profile::Cohere => &COHERE,
            Profile::Anthropic => &ANTHROPIC,
        }
    }

    /// The axis a scripted `rate_limit` with this window reports as exhausted.
    pub fn scripted_axis(self, window: Window) -> Axis {
        match window {
            Window::Minute => self.spec().minute_axis,
            Window::Day => self.spec().day_axis,
        }
    }

    /// Rate-limit headers for a successful response (only configured axes appear).
    pub fn rate_limit_headers(self, snapshot: &Snapshot) -> Vec<Header> {
        let spec = self.spec();
        let mut out = Vec::with_capacity(spec.headers.len());
        for header in spec.headers {
            let Some(usage) = snapshot.get(header.axis) else {
                continue;
            };
            out.push((header.name, field_value(header.field, &usage, snapshot.cost)));
        }
        out
    }

    /// Headers and body of a 429 in this profile's shape.
    pub fn too_many_requests(self, hit: &RateLimitHit<'_>) -> (Vec<Header>, Value) {
        let usage = hit.snapshot.get(hit.axis).unwrap_or(Usage {
            limit: default_limit(hit.axis),
            used: default_limit(hit.axis),
            reset_ms: 1_000,
        });
        let retry_s = hit.retry_after_s.unwrap_or_else(|| retry_seconds(usage.reset_ms));
        let spec = self.spec();
        let mut headers = if spec.style == ErrorStyle::OpenRouter {
            vec![
                ("x-ratelimit-limit", usage.limit.to_string()),
                ("x-ratelimit-remaining", usage.remaining().to_string()),
                ("x-ratelimit-reset", (hit.now_ms + usage.reset_ms).to_string()),
            ]
        } else {
            self.rate_limit_headers(hit.snapshot)
        };
        if (spec.retry_after || hit.retry_after_s.is_some())
            && !matches!(spec.style, ErrorStyle::GeminiNative | ErrorStyle::Cloudflare)
        {
            headers.push(("retry-after", retry_s.to_string()));
        }
        if spec.style == ErrorStyle::Cohere {
            headers.clear();
        }
        let body = match spec.style {
            ErrorStyle::OpenAi => {
                let (who, org) = if self == Profile::Groq {
                    (format!("model `{}`", hit.model), "`org_sim` service tier on_demand")
                } else {
                    (hit.model.to_owned(), "org-sim")
                };
                let message = format!(
                    "Rate limit reached for {who} in organization {org} on {}: Limit {}, Used {}, Requested {}. Please try again in {}.",
                    axis_phrase(hit.axis),
                    usage.limit,
                    usage.used,
                    hit.requested,
                    go_duration(usage.reset_ms),
                );
                let kind = if hit.axis.is_requests() { "requests" } else { "tokens" };
                json!({"error": {"message": message, "type": kind, "param": null, "code": "rate_limit_exceeded"}})
            }
            ErrorStyle::Cerebras => {
                let (message, code) = match hit.axis {
                    Axis::Rpm => {
                        ("Requests per minute limit exceeded - too many requests sent.", "request_quota_exceeded")
                    }
                    Axis::Rpd => {
                        ("Requests per day limit exceeded - too many requests sent.", "request_quota_exceeded")
                    }
                    Axis::Tpm => {
                        ("Tokens per minute limit exceeded - too many tokens processed.", "token_quota_exceeded")
                    }
                    Axis::Tpd => ("Tokens per day limit exceeded - too many tokens processed.", "token_quota_exceeded"),
                };
                json!({"message": message, "type": "too_many_requests_error", "param": "quota", "code": code})
            }
            ErrorStyle::Mistral => {
                let message =
                    if hit.axis.is_requests() { "Requests rate limit exceeded" } else { "Rate limit exceeded" };
                json!({"object": "error", "message": message, "type": "rate_limited", "param": null, "code": "1300", "raw_status_code": 429})
            }
            ErrorStyle::OpenRouter => {
                let limit_type = match hit.axis {
                    Axis::Rpm => "free-models-per-min",
                    Axis::Rpd => "free-models-per-day",
                    Axis::Tpm => "tokens-per-min",
                    Axis::Tpd => "tokens-per-day",
                };
                json!({"error": {"code": 429, "message": "Rate limit exceeded", "metadata": {
                    "error_type": "rate_limit_exceeded",
                    "limit_type": limit_type,
                    "headers": {
                        "X-RateLimit-Limit": usage.limit.to_string(),
                        "X-RateLimit-Remaining": usage.remaining().to_string(),
                        "X-RateLimit-Reset": (hit.now_ms + usage.reset_ms).to_string(),
                    },
                    "provider_name": null,
                }}})
            }
            ErrorStyle::Gemini => json!([gemini_quota_error(hit, &usage, retry_s)]),
            ErrorStyle::GeminiNative => gemini_quota_error(hit, &usage, retry_s),
            ErrorStyle::Cloudflare => cloudflare_quota_error(hit.axis, usage.limit),
            ErrorStyle::Cohere => crate::native::cohere::quota_error(hit, &usage),
            ErrorStyle::Anthropic => crate::native::anthropic::rate_limit_body(hit.axis, usage.limit, hit.model),
        };
        (headers, body)
    }

    /// A non-429 error body in this profile's shape.
    pub fn error_body(self, err: &ApiError<'_>) -> Value {
        match self.spec().style {
            ErrorStyle::OpenAi => json!({"error": {
                "message": err.message, "type": err.kind, "param": err.param, "code": err.code,
            }}),
            ErrorStyle::Cerebras => json!({
                "message": err.message, "type": err.kind, "param": err.param, "code": err.code,
            }),
            ErrorStyle::Mistral => json!({
                "object": "error", "message": err.message, "type": err.kind, "param": err.param,
                "code": err.code, "raw_status_code": err.status,
            }),
            ErrorStyle::OpenRouter => {
                json!({"error": {"code": err.status, "message": err.message}})
            }
            ErrorStyle::Gemini => json!([{"error": {
                "code": err.status, "message": err.message, "status": grpc_status(err.status),
            }}]),
            ErrorStyle::GeminiNative => json!({"error": {
                "code": err.status, "message": err.message, "status": grpc_status(err.status),
            }}),
            ErrorStyle::Cloudflare => cloudflare_envelope(cloudflare_code(err.status, err.code), err.message),
            ErrorStyle::Cohere => crate::native::cohere::error_json(err.message),
            ErrorStyle::Anthropic => crate::native::anthropic::error_body(err.status, err.message),
        }
    }

    /// The 401 body for a missing or unknown key; never echoes the whole key.
    pub fn unauthorized(self, key: Option<&str>) -> Value {
        let masked = key.map(mask_key);
        let openai_message = match &masked {
            Some(masked) => format!(
                "Incorrect API key provided: {masked}. You can find your API key at https://platform.openai.com/account/api-keys."
            ),
            None => "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).".to_owned(),
        };
        let (message, kind, code, param): (&str, &str, Option<&str>, Option<&str>) = match self {
            Profile::OpenAi => {
                (&openai_message, "invalid_request_error", masked.as_ref().map(|_| "invalid_api_key"), None)
            }
            Profile::Groq => ("Invalid API Key", "invalid_request_error", Some("invalid_api_key"), None),
            Profile::Cerebras => ("Wrong API Key", "invalid_request_error", Some("wrong_api_key"), Some("api_key")),
            Profile::OpenRouter => (
                if key.is_some() { "User not found." } else { "No auth credentials found" },
                "authentication_error",
                None,
                None,
            ),
            Profile::Mistral => ("Unauthorized", "invalid_request_error", None, None),
            Profile::GeminiOpenAi => {
                ("API key not valid. Please pass a valid API key.", "invalid_request_error", None, None)
            }
            Profile::Gemini => return gemini_auth_error(key).1,
            Profile::Cloudflare => {
                return match key {
                    Some(_) => cloudflare_envelope(10000, "Authentication error"),
                    None => cloudflare_envelope(10001, "Unable to authenticate request"),
                };
            }
            Profile::Cohere => return crate::native::cohere::auth_error(key).1,
            Profile::Anthropic => return crate::native::anthropic::auth_error(key),
        };
        self.error_body(&ApiError { status: 401, message, kind, code, param })
    }

    /// Default body of a scripted `status` action: an error naming the status.
    pub fn status_error(self, status: u16) -> Value {
        let message = format!("Simulated upstream error: HTTP {status}");
        let (kind, code) = match status {
            400 => ("invalid_request_error", "bad_request"),
            401 => ("invalid_request_error", "invalid_api_key"),
            402 => ("insufficient_quota", "insufficient_quota"),
            403 => ("permission_error", "permission_denied"),
            404 => ("invalid_request_error", "not_found"),
            408 => ("timeout_error", "timeout"),
            413 => ("invalid_request_error", "request_too_large"),
            429 => ("requests", "rate_limit_exceeded"),
            500 => ("server_error", "internal_error"),
            502 => ("server_error", "bad_gateway"),
            503 => ("server_error", "service_unavailable"),
            504 => ("server_error", "gateway_timeout"),
            s if s >= 500 => ("server_error", "server_error"),
            _ => ("invalid_request_error", "simulated_error"),
        };
        self.error_body(&ApiError { status, message: &message, kind, code: Some(code), param: None })
    }
}

/// Limit shown for an axis a scripted 429 reports when the upstream configures none.
pub fn default_limit(axis: Axis) -> u64 {
    match axis {
        Axis::Rpm => 20,
        Axis::Rpd => 50,
        Axis::Tpm => 6_000,
        Axis::Tpd => 100_000,
    }
}

/// Whole seconds to wait, rounded up, at least 1.
pub fn retry_seconds(reset_ms: u64) -> u64 {
    reset_ms.div_ceil(1000).max(1)
}

/// "sk-x***": at most 4 characters and never more than half of the key.
pub fn mask_key(key: &str) -> String {
    let shown = (key.chars().count() / 2).min(4);
    let prefix: String = key.chars().take(shown).collect();
    format!("{prefix}***")
}

/// Go-style duration as OpenAI and Groq send it: "0s", "20ms", "6s", "7.66s", "1m2.5s", "1h0m0s".
pub fn go_duration(ms: u64) -> String {
    if ms == 0 {
        return "0s".to_owned();
    }
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let hours = ms / 3_600_000;
    let minutes = ms / 60_000 % 60;
    let seconds = decimal_seconds(ms % 60_000, false);
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// Seconds as a float string, as Cerebras sends resets: "7.0", "0.25", "33011.383".
pub fn float_seconds(ms: u64) -> String {
    decimal_seconds(ms, true)
}

fn decimal_seconds(ms: u64, keep_point: bool) -> String {
    let whole = ms / 1_000;
    let frac = ms % 1_000;
    if frac == 0 {
        return if keep_point { format!("{whole}.0") } else { whole.to_string() };
    }
    let mut text = format!("{whole}.{frac:03}");
    while text.ends_with('0') {
        text.pop();
    }
    text
}

fn field_value(field: Field, usage: &Usage, cost: u64) -> String {
    match field {
        Field::Limit => usage.limit.to_string(),
        Field::Remaining => usage.remaining().to_string(),
        Field::Reset(ResetFormat::Duration) => go_duration(usage.reset_ms),
        Field::Reset(ResetFormat::Seconds) => float_seconds(usage.reset_ms),
        Field::Cost => cost.to_string(),
    }
}

fn axis_phrase(axis: Axis) -> &'static str {
    match axis {
        Axis::Rpm => "requests per minute (RPM)",
        Axis::Rpd => "requests per day (RPD)",
        Axis::Tpm => "tokens per minute (TPM)",
        Axis::Tpd => "tokens per day (TPD)",
    }
}

/// google.rpc status names for HTTP statuses.
pub fn grpc_status(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        s if s >= 500 => "INTERNAL",
        _ => "FAILED_PRECONDITION",
    }
}

/// Status and body of Gemini's answer to an unknown key (400 `INVALID_ARGUMENT`, `ErrorInfo`
/// reason `API_KEY_INVALID`) or a missing one (403 `PERMISSION_DENIED`).
pub fn gemini_auth_error(key: Option<&str>) -> (u16, Value) {
    if key.is_none() {
        let message = "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.";
        return (403, json!({"error": {"code": 403, "message": message, "status": "PERMISSION_DENIED"}}));
    }
    let message = "API key not valid. Please pass a valid API key.";
    let body = json!({"error": {
        "code": 400,
        "message": message,
        "status": "INVALID_ARGUMENT",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            },
            {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": message},
        ],
    }});
    (400, body)
}

/// Cloudflare's v4 error envelope with one error.
pub fn cloudflare_envelope(code: u32, message: &str) -> Value {
    json!({"success": false, "errors": [{"code": code, "message": message}], "messages": [], "result": null})
}

/// Workers AI's error code for an error: `model_not_found` is 5007 and a bad key 10000, others
/// follow the status (codes of developers.cloudflare.com/workers-ai/platform/errors; 7000/7001
/// are the v4 API's "no route" / "method not allowed").
pub fn cloudflare_code(status: u16, code: Option<&str>) -> u32 {
    match (code, status) {
        (Some("model_not_found"), _) => 5007,
        (Some("invalid_api_key"), _) | (_, 401) => 10000,
        (_, 403) => 5018,
        (_, 404) => 7000,
        (_, 405) => 7001,
        (_, 408) => 3007,
        (_, 413) => 3006,
        (_, 429) => 3040,
        (_, s) if s >= 500 => 3043,
        _ => 3003,
    }
}

/// A Workers AI 429: the day's free neurons are used up (3036, a day axis; `limit` is the
/// allowance) or out of capacity (3040, a minute axis).
fn cloudflare_quota_error(axis: Axis, limit: u64) -> Value {
    if axis.is_minute() {
        return cloudflare_envelope(3040, "Capacity temporarily exceeded, please try again.");
    }
    let message = format!(
        "You have used up your daily free allocation of {} neurons. Please upgrade to Cloudflare's Workers Paid plan if you would like to continue usage.",
        group_digits(limit)
    );
    cloudflare_envelope(3036, &message)
}

/// `10000` -> `10,000`.
fn group_digits(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The `{"error": {...}}` of a Gemini 429 (the OpenAI endpoint wraps it in an array).
fn gemini_quota_error(hit: &RateLimitHit<'_>, usage: &Usage, retry_s: u64) -> Value {
    let (metric, quota_id) = match hit.axis {
        Axis::Rpm => ("generate_content_free_tier_requests", "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"),
        Axis::Rpd => ("generate_content_free_tier_requests", "GenerateRequestsPerDayPerProjectPerModel-FreeTier"),
        Axis::Tpm => {
            ("generate_content_free_tier_input_token_count", "GenerateContentInputTokensPerModelPerMinute-FreeTier")
        }
        Axis::Tpd => {
            ("generate_content_free_tier_input_token_count", "GenerateContentInputTokensPerModelPerDay-FreeTier")
        }
    };
    let metric = format!("generativelanguage.googleapis.com/{metric}");
    let message = format!(
        "You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.\n* Quota exceeded for metric: {metric}, limit: {}, model: {}\nPlease retry in {retry_s}s.",
        usage.limit, hit.model
    );
    json!({"error": {
        "code": 429,
        "message": message,
        "status": "RESOURCE_EXHAUSTED",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{
                    "quotaMetric": metric,
                    "quotaId": quota_id,
                    "quotaDimensions": {"model": hit.model, "location": "global"},
                    "quotaValue": usage.limit.to_string(),
                }],
            },
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [{"description": "Learn more about Gemini API quotas", "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": format!("{retry_s}s")},
        ],
    }})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(axes: &[(Axis, u64, u64, u64)], cost: u64) -> Snapshot {
        let mut snap = Snapshot::default();
        for &(axis, limit, used, reset_ms) in axes {
            snap.set(axis, Usage { limit, used, reset_ms });
        }
        snap.cost = cost;
        snap
    }

    fn header<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
        headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    fn hit<'a>(axis: Axis, snap: &'a Snapshot) -> RateLimitHit<'a> {
        RateLimitHit { axis, snapshot: snap, requested: 1, model: "m", now_ms: 1_000_000, retry_after_s: None }
    }

    #[test]
    fn durations_format_like_go() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(20), "20ms");
        assert_eq!(go_duration(6_000), "6s");
        assert_eq!(go_duration(7_660), "7.66s");
        assert_eq!(go_duration(62_500), "1m2.5s");
        assert_eq!(go_duration(179_560), "2m59.56s");
        assert_eq!(go_duration(360_000), "6m0s");
        assert_eq!(go_duration(3_600_000), "1h0m0s");
        assert_eq!(float_seconds(7_000), "7.0");
        assert_eq!(float_seconds(250), "0.25");
        assert_eq!(float_seconds(33_011_383), "33011.383");
    }

    #[test]
    fn keys_are_masked() {
        assert_eq!(mask_key("sk-xyz123456"), "sk-x***");
        assert_eq!(mask_key("ab"), "a***");
        assert_eq!(mask_key(""), "***");
    }

    #[test]
    fn openai_headers_report_rpm_and_tpm() {
        let snap = snapshot(&[(Axis::Rpm, 20, 3, 6_000), (Axis::Rpd, 50, 3, 1), (Axis::Tpm, 6000, 100, 62_500)], 30);
        let headers = Profile::OpenAi.rate_limit_headers(&snap);
        assert_eq!(header(&headers, "x-ratelimit-limit-requests"), Some("20"));
        assert_eq!(header(&headers, "x-ratelimit-remaining-requests"), Some("17"));
        assert_eq!(header(&headers, "x-ratelimit-reset-requests"), Some("6s"));
        assert_eq!(header(&headers, "x-ratelimit-limit-tokens"), Some("6000"));
        assert_eq!(header(&headers, "x-ratelimit-remaining-tokens"), Some("5900"));
        assert_eq!(header(&headers, "x-ratelimit-reset-tokens"), Some("1m2.5s"));
        assert_eq!(headers.len(), 6);
    }

    #[test]
    fn unconfigured_axes_are_left_out() {
        let snap = snapshot(&[(Axis::Rpm, 20, 1, 1_000)], 0);
        let headers = Profile::OpenAi.rate_limit_headers(&snap);
        assert_eq!(headers.len(), 3);
        assert!(Profile::OpenAi.rate_limit_headers(&Snapshot::default()).is_empty());
    }

    #[test]
    fn groq_requests_headers_are_per_day() {
        let snap = snapshot(&[(Axis::Rpm, 30, 1, 1), (Axis::Rpd, 1000, 10, 179_560), (Axis::Tpm, 6000, 10, 7_660)], 10);
        let headers = Profile::Groq.rate_limit_headers(&snap);
        assert_eq!(header(&headers, "x-ratelimit-limit-requests"), Some("1000"));
        assert_eq!(header(&headers, "x-ratelimit-remaining-requests"), Some("990"));
        assert_eq!(header(&headers, "x-ratelimit-reset-requests"), Some("2m59.56s"));
        assert_eq!(header(&headers, "x-ratelimit-reset-tokens"), Some("7.66s"));
    }

    #[test]
    fn cerebras_headers_use_float_seconds() {
        let snap = snapshot(&[(Axis::Rpd, 14400, 1, 33_011_383), (Axis::Tpm, 60000, 50, 59_000)], 50);
        let headers = Profile::Cerebras.rate_limit_headers(&snap);
        assert_eq!(header(&headers, "x-ratelimit-limit-requests-day"), Some("14400"));
        assert_eq!(header(&headers, "x-ratelimit-remaining-requests-day"), Some("14399"));
        assert_eq!(header(&headers, "x-ratelimit-reset-requests-day"), Some("33011.383"));
        assert_eq!(header(&headers, "x-ratelimit-limit-tokens-minute"), Some("60000"));
        assert_eq!(header(&headers, "x-ratelimit-remaining-tokens-minute"), Some("59950"));
        assert_eq!(header(&headers, "x-ratelimit-reset-tokens-minute"), Some("59.0"));
    }

    #[test]
    fn mistral_headers_include_query_cost() {
        let snap = snapshot(&[(Axis::Rpm, 60, 2, 1), (Axis::Tpm, 500_000, 40, 1)], 20);
        let headers = Profile::Mistral.rate_limit_headers(&snap);
        assert_eq!(header(&headers, "x-ratelimit-limit-req-minute"), Some("60"));
        assert_eq!(header(&headers, "x-ratelimit-remaining-req-minute"), Some("58"));
        assert_eq!(header(&headers, "x-ratelimit-remaining-tokens-minute"), Some("499960"));
        assert_eq!(header(&headers, "x-ratelimit-tokens-query-cost"), Some("20"));
    }

    #[test]
    fn openrouter_and_gemini_send_no_success_headers() {
        let snap = snapshot(&[(Axis::Rpm, 20, 1, 1), (Axis::Rpd, 50, 1, 1)], 1);
        assert!(Profile::OpenRouter.rate_limit_headers(&snap).is_empty());
        assert!(Profile::GeminiOpenAi.rate_limit_headers(&snap).is_empty());
    }

    #[test]
    fn openai_429_has_retry_after_and_openai_body() {
        let snap = snapshot(&[(Axis::Rpm, 20, 20, 6_200)], 5);
        let (headers, body) = Profile::OpenAi.too_many_requests(&hit(Axis::Rpm, &snap));
        assert_eq!(header(&headers, "retry-after"), Some("7"));
        assert_eq!(header(&headers, "x-ratelimit-remaining-requests"), Some("0"));
        assert_eq!(body["error"]["code"], "rate_limit_exceeded");
        assert_eq!(body["error"]["type"], "requests");
        assert!(body["error"]["param"].is_null());
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("requests per minute (RPM): Limit 20, Used 20, Requested 1"), "{message}");
        assert!(message.contains("Please try again in 6.2s"), "{message}");
    }

    #[test]
    fn groq_429_names_model_and_tpm() {
        let snap = snapshot(&[(Axis::Tpm, 15000, 11972, 5_289)], 4351);
        let mut h = hit(Axis::Tpm, &snap);
        h.requested = 4351;
        let (headers, body) = Profile::Groq.too_many_requests(&h);
        assert_eq!(header(&headers, "retry-after"), Some("6"));
        assert_eq!(body["error"]["type"], "tokens");
        assert_eq!(body["error"]["code"], "rate_limit_exceeded");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("Rate limit reached for model `m` in organization `org_sim`"), "{message}");
        assert!(
            message.contains(
                "tokens per minute (TPM): Limit 15000, Used 11972, Requested 4351. Please try again in 5.289s."
            )
        );
    }

    #[test]
    fn cerebras_429_is_top_level_without_retry_after() {
        let snap = snapshot(&[(Axis::Tpm, 60000, 60000, 2_000)], 10);
        let (headers, body) = Profile::Cerebras.too_many_requests(&hit(Axis::Tpm, &snap));
        assert!(header(&headers, "retry-after").is_none());
        assert_eq!(header(&headers, "x-ratelimit-reset-tokens-minute"), Some("2.0"));
        assert!(body.get("error").is_none());
        assert_eq!(body["type"], "too_many_requests_error");
        assert_eq!(body["param"], "quota");
        assert_eq!(body["code"], "token_quota_exceeded");
        let snap = snapshot(&[(Axis::Rpm, 5, 5, 2_000)], 10);
        let (_, body) = Profile::Cerebras.too_many_requests(&hit(Axis::Rpm, &snap));
        assert_eq!(body["message"], "Requests per minute limit exceeded - too many requests sent.");
        assert_eq!(body["code"], "request_quota_exceeded");
    }

    #[test]
    fn mistral_429_is_top_level_code_1300() {
        let snap = snapshot(&[(Axis::Rpm, 1, 1, 500)], 10);
        let (_, body) = Profile::Mistral.too_many_requests(&hit(Axis::Rpm, &snap));
        assert_eq!(body["object"], "error");
        assert_eq!(body["type"], "rate_limited");
        assert_eq!(body["code"], "1300");
        assert_eq!(body["raw_status_code"], 429);
    }

    #[test]
    fn openrouter_429_headers_use_unix_ms() {
        let snap = snapshot(&[(Axis::Rpd, 50, 50, 3_600_000)], 1);
        let (headers, body) = Profile::OpenRouter.too_many_requests(&hit(Axis::Rpd, &snap));
        assert_eq!(header(&headers, "x-ratelimit-limit"), Some("50"));
        assert_eq!(header(&headers, "x-ratelimit-remaining"), Some("0"));
        assert_eq!(header(&headers, "x-ratelimit-reset"), Some("4600000"));
        assert!(header(&headers, "retry-after").is_none());
        assert_eq!(body["error"]["code"], 429);
        assert_eq!(body["error"]["message"], "Rate limit exceeded");
        assert_eq!(body["error"]["metadata"]["error_type"], "rate_limit_exceeded");
        assert_eq!(body["error"]["metadata"]["limit_type"], "free-models-per-day");
        let mut forced = hit(Axis::Rpd, &snap);
        forced.retry_after_s = Some(3600);
        let (headers, _) = Profile::OpenRouter.too_many_requests(&forced);
        assert_eq!(header(&headers, "retry-after"), Some("3600"));
    }

    #[test]
    fn gemini_429_is_array_wrapped_with_retry_info_and_quota_id() {
        let snap = snapshot(&[(Axis::Rpm, 5, 5, 36_100)], 1);
        let (headers, body) = Profile::GeminiOpenAi.too_many_requests(&hit(Axis::Rpm, &snap));
        assert!(headers.is_empty());
        let error = &body[0]["error"];
        assert_eq!(error["code"], 429);
        assert_eq!(error["status"], "RESOURCE_EXHAUSTED");
        let details = error["details"].as_array().unwrap();
        let retry = details.iter().find(|d| d["@type"] == "type.googleapis.com/google.rpc.RetryInfo").unwrap();
        assert_eq!(retry["retryDelay"], "37s");
        let quota = details.iter().find(|d| d["@type"] == "type.googleapis.com/google.rpc.QuotaFailure").unwrap();
        assert!(quota["violations"][0]["quotaId"].as_str().unwrap().contains("PerMinute"));
        let snap = snapshot(&[(Axis::Rpd, 20, 20, 1_000)], 1);
        let (_, body) = Profile::GeminiOpenAi.too_many_requests(&hit(Axis::Rpd, &snap));
        let quota = &body[0]["error"]["details"][0]["violations"][0]["quotaId"];
        assert!(quota.as_str().unwrap().contains("PerDay"));
    }

    #[test]
    fn gemini_native_errors_are_not_wrapped_and_429s_have_no_retry_after() {
        let snap = snapshot(&[(Axis::Rpd, 20, 20, 1_000)], 1);
        let mut scripted = hit(Axis::Rpd, &snap);
        scripted.retry_after_s = Some(37);
        let (headers, body) = Profile::Gemini.too_many_requests(&scripted);
        assert!(headers.is_empty(), "{headers:?}");
        assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
        let details = body["error"]["details"].as_array().unwrap();
        assert!(details[0]["violations"][0]["quotaId"].as_str().unwrap().contains("PerDay"));
        assert_eq!(details[2]["retryDelay"], "37s");
        assert_eq!(Profile::Gemini.status_error(500)["error"]["status"], "INTERNAL");
        let (status, bad_key) = gemini_auth_error(Some("AIza-wrong"));
        assert_eq!(status, 400);
        assert_eq!(bad_key["error"]["details"][0]["reason"], "API_KEY_INVALID");
        assert!(!bad_key.to_string().contains("AIza-wrong"));
        assert_eq!(gemini_auth_error(None).0, 403);
        assert_eq!(Profile::Gemini.unauthorized(Some("k")), bad_key);
    }

    #[test]
    fn cloudflare_errors_use_the_v4_envelope_and_its_codes() {
        let snap = snapshot(&[(Axis::Tpd, 10_000, 9_990, 3_600_000)], 20);
        let mut scripted = hit(Axis::Tpd, &snap);
        scripted.retry_after_s = Some(3600);
        let (headers, body) = Profile::Cloudflare.too_many_requests(&scripted);
        assert!(headers.is_empty(), "no rate-limit headers, no retry-after: {headers:?}");
        assert_eq!(body["success"], false);
        assert_eq!(body["errors"][0]["code"], 3036);
        assert!(body["errors"][0]["message"].as_str().unwrap().contains("daily free allocation of 10,000 neurons"));
        assert_eq!(body["messages"], json!([]));
        assert!(body["result"].is_null());
        let snap = snapshot(&[(Axis::Rpm, 300, 300, 1_000)], 1);
        let (_, body) = Profile::Cloudflare.too_many_requests(&hit(Axis::Rpm, &snap));
        assert_eq!(body["errors"][0]["code"], 3040);
        assert_eq!(Profile::Cloudflare.scripted_axis(Window::Day), Axis::Tpd);
        assert_eq!(Profile::Cloudflare.unauthorized(Some("t"))["errors"][0]["code"], 10000);
        assert_eq!(Profile::Cloudflare.unauthorized(None)["errors"][0]["code"], 10001);
        assert_eq!(Profile::Cloudflare.status_error(500)["errors"][0]["code"], 3043);
        assert_eq!(Profile::Cloudflare.status_error(400)["errors"][0]["code"], 3003);
        let missing = ApiError {
            status: 400,
            message: "No such model @cf/x or task",
            kind: "invalid_request_error",
            code: Some("model_not_found"),
            param: None,
        };
        assert_eq!(Profile::Cloudflare.error_body(&missing)["errors"][0]["code"], 5007);
        assert_eq!(group_digits(1_234_567), "1,234,567");
        assert_eq!(group_digits(999), "999");
    }

    #[test]
    fn unauthorized_bodies_follow_profile_shapes() {
        let body = Profile::OpenAi.unauthorized(Some("sk-xyz123456"));
        assert_eq!(body["error"]["code"], "invalid_api_key");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("Incorrect API key provided: sk-x***"));
        assert!(!message.contains("sk-xyz123456"));
        assert!(Profile::OpenAi.unauthorized(None)["error"]["code"].is_null());
        assert_eq!(Profile::Cerebras.unauthorized(Some("k"))["code"], "wrong_api_key");
        assert_eq!(Profile::Mistral.unauthorized(None)["object"], "error");
        assert_eq!(Profile::OpenRouter.unauthorized(None)["error"]["code"], 401);
        assert_eq!(Profile::GeminiOpenAi.unauthorized(None)[0]["error"]["status"], "UNAUTHENTICATED");
    }

    #[test]
    fn status_errors_name_the_status() {
        let body = Profile::OpenAi.status_error(503);
        assert!(body["error"]["message"].as_str().unwrap().contains("503"));
        assert_eq!(body["error"]["type"], "server_error");
        assert_eq!(Profile::GeminiOpenAi.status_error(503)[0]["error"]["status"], "UNAVAILABLE");
    }

    #[test]
    fn scripted_axes_follow_the_headers_each_profile_sends() {
        assert_eq!(Profile::OpenAi.scripted_axis(Window::Minute), Axis::Rpm);
        assert_eq!(Profile::Groq.scripted_axis(Window::Minute), Axis::Tpm);
        assert_eq!(Profile::Cerebras.scripted_axis(Window::Minute), Axis::Tpm);
        assert_eq!(Profile::Groq.scripted_axis(Window::Day), Axis::Rpd);
    }

    #[test]
    fn profile_names_round_trip_through_serde() {
        for profile in [
            Profile::OpenAi,
            Profile::Groq,
            Profile::Cerebras,
            Profile::OpenRouter,
            Profile::Mistral,
            Profile::GeminiOpenAi,
            Profile::Gemini,
            Profile::Cloudflare,
            Profile::Anthropic,
        ] {
            let text = serde_json::to_string(&profile).unwrap();
            assert_eq!(text, format!("\"{}\"", profile.name()));
            assert_eq!(serde_json::from_str::<Profile>(&text).unwrap(), profile);
        }
    }
}
