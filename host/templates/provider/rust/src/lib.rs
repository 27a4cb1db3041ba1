//! {{Name}}: a Freeway provider component for an OpenAI-compatible upstream.
//!
//! A passthrough adapter: the gateway sends the client's body on (model rewritten, usage
//! reporting injected for streams, the edits `chat` asks for applied) and pipes the JSON or SSE
//! answer back natively, so `chat` only plans the call. The gateway attaches the account's key
//! (manifest `auth`); the component never sees it.
//!
//! It also declares the provider it serves (`declaration`), so dropping `{{name}}.wasm` into the
//! gateway's providers folder with `{{ENV}}_API_KEY` set is the whole installation.
//!
//! The contract is the WIT in `wit/` (package `freeway:gateway@0.1.1`, world `declared-provider`).

wit_bindgen::generate!({ path: "wit", world: "declared-provider" });

use exports::freeway::gateway::declare::Guest as Declare;
use exports::freeway::gateway::provider_api::Guest;
use freeway::gateway::http;
use freeway::gateway::types::*;
use serde_json::Value;

/// The provider id: the gateway's name for it (`{{id}}/<model>`), and the `{{ENV}}_*` variables.
const ID: &str = "{{id}}";
/// TODO: your upstream's OpenAI-compatible base URL (`{{ENV}}_BASE_URL` overrides it).
const DEFAULT_BASE_URL: &str = "https://api.{{id}}.invalid/v1";

/// Parameters the upstream rejects, e.g. `&["logprobs", "logit_bias"]`: removed from the body.
const DROP_PARAMS: &[&str] = &[];

struct Provider;

impl Guest for Provider {
    fn manifest() -> ProviderManifest {
        ProviderManifest {
            id: ID.to_owned(),
            name: "{{Name}}".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            // `$base_url`: the host of the base URL the gateway uses for this provider
            allowed_hosts: vec!["$base_url".to_owned()],
            auth: AuthStyle::Bearer, // or Header("x-api-key"), Query("key"), None
            default_base_url: Some(DEFAULT_BASE_URL.to_owned()),
            needs_body: false, // plan from the parameter names; the body stays in the gateway
            limit_headers: vec!["x-ratelimit-".to_owned()],
            // models known without asking upstream (the rest come from `list_models`)
            models: Vec::new(),
        }
    }

    fn chat(req: ChatRequest) -> Result<UpstreamCall, ProviderError> {
        let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        if req.streaming {
            headers.push(("accept".to_owned(), "text/event-stream".to_owned()));
        }
        // parameters the upstream rejects (see DROP_PARAMS), removed when the client sent them
        let edits = DROP_PARAMS
            .iter()
            .filter(|p| req.params.iter().any(|q| q == *p))
            .map(|p| BodyEdit::Remove((*p).to_owned()))
            .collect();
        Ok(UpstreamCall {
            method: "POST".to_owned(),
            url: join_url(&req.config.base_url, "chat/completions"),
            headers,
            body: RequestBody::Passthrough(edits),
            response: ResponseFormat::Openai,
            framing: StreamFraming::Sse,
        })
    }

    // Never called with `ResponseFormat::Openai`: the gateway pipes the answers itself.
    fn translate_response(_body: String) -> Result<String, ProviderError> {
        Err(error(ErrorKind::InvalidResponse, "this provider does not translate responses", 0))
    }

    fn translate_event(_event: SseEvent) -> Result<Vec<String>, ProviderError> {
        Err(error(ErrorKind::InvalidResponse, "this provider does not translate streams", 0))
    }

    fn finish_stream() -> Result<Vec<String>, ProviderError> {
        Err(error(ErrorKind::InvalidResponse, "this provider does not translate streams", 0))
    }

    fn map_error(_config: ProviderConfig, status: u16, headers: Headers, body: String) -> ProviderError {
        error_from_response(status, &headers, &body)
    }

    fn parse_limits(
        _config: ProviderConfig,
        _account: Credential,
        _status: u16,
        headers: Headers,
        _body: Option<String>,
    ) -> Vec<QuotaUpdate> {
        limits_from_headers(&headers)
    }

    fn list_models(config: ProviderConfig, account: Option<Credential>) -> Result<Vec<ModelInfo>, ProviderError> {
        let req = HttpRequest {
            method: "GET".to_owned(),
            url: join_url(&config.base_url, "models"),
            headers: vec![("accept".to_owned(), "application/json".to_owned())],
            body: Vec::new(),
            timeout_ms: Some(20_000),
        };
        let resp = http::send(&req, account).map_err(|e| http_error(&e))?;
        let text = String::from_utf8_lossy(&resp.body);
        if !(200..300).contains(&resp.status) {
            return Err(error_from_response(resp.status, &resp.headers, &text));
        }
        models_from_json(&text)
    }

    fn check(config: ProviderConfig, account: Credential) -> Result<(), ProviderError> {
        Self::list_models(config, Some(account)).map(|_| ())
    }
}

impl Declare for Provider {
    fn declaration() -> Option<ProviderDeclaration> {
        Some(ProviderDeclaration {
            key_env: vec!["{{ENV}}_API_KEY".to_owned()],
            keys_url: None,
            discover_models: true, // list the upstream's models (`list_models`)
            keyless: false,
            free: true, // false: enabled from the environment only with FREEWAY_PAID_PROVIDERS
            limits: DeclaredLimits {
                requests_per_minute: None,
                requests_per_day: None,
                tokens_per_minute: None,
                tokens_per_day: None,
            },
            account_settings: Vec::new(),
        })
    }
}

export!(Provider);

/// `base` + `path` with exactly one `/` between them.
fn join_url(base: &str, path: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), path.trim_start_matches('/'))
}

fn error(kind: ErrorKind, message: &str, status: u16) -> ProviderError {
    ProviderError { kind, message: message.to_owned(), status, code: None, retry_after_ms: None, window: None }
}

fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
}

/// A non-negative count or duration, rounded up.
fn whole(v: f64) -> Option<u64> {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    (v.is_finite() && v >= 0.0).then(|| v.ceil() as u64)
}

/// `"6s"`, `"1m2.5s"`, `"250ms"` or bare seconds (`"59.5"`) -> milliseconds.
fn parse_duration_ms(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return whole(secs * 1000.0);
    }
    let (mut total, mut num, mut any) = (0.0, String::new(), false);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let value: f64 = num.parse().ok()?;
        num.clear();
        total += value
            * match c {
                'h' => 3_600_000.0,
                'm' if chars.peek() == Some(&'s') => {
                    chars.next();
                    1.0
                }
                'm' => 60_000.0,
                's' => 1000.0,
                _ => return None,
            };
        any = true;
    }
    if !num.is_empty() || !any {
        return None;
    }
    whole(total)
}

/// OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` headers, both per minute.
fn limits_from_headers(headers: &Headers) -> Vec<QuotaUpdate> {
    let number = |name: String| header(headers, &name).and_then(|v| v.parse::<f64>().ok()).and_then(whole);
    [("requests", QuotaDimension::Requests), ("tokens", QuotaDimension::Tokens)]
        .into_iter()
        .filter_map(|(suffix, dimension)| {
            let limit = number(format!("x-ratelimit-limit-{suffix}"));
            let remaining = number(format!("x-ratelimit-remaining-{suffix}"));
            (limit.is_some() || remaining.is_some()).then(|| QuotaUpdate {
                dimension,
                window: LimitWindow::Minute,
                limit,
                remaining,
                reset_after_ms: header(headers, &format!("x-ratelimit-reset-{suffix}")).and_then(parse_duration_ms),
                scope: None,
            })
        })
        .collect()
}

/// An upstream error response -> a typed error: the kind from the status, refined by the body
/// (`{"error": {"message", "code", "type"}}`, `{"error": "text"}` or top-level fields).
fn error_from_response(status: u16, headers: &Headers, body: &str) -> ProviderError {
    let json: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let obj = match json.get("error") {
        Some(e @ Value::Object(_)) => e,
        _ => &json,
    };
    let text = |v: Option<&Value>| match v {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let message = text(json.get("error"))
        .or_else(|| text(obj.get("message")))
        .or_else(|| (json.is_null() && !body.trim().is_empty()).then(|| body.trim().chars().take(500).collect()));
    let code = text(obj.get("code")).or_else(|| text(obj.get("type")));
    let mut kind = match status {
        400 | 413 | 415 | 422 => ErrorKind::BadRequest,
        401 => ErrorKind::Auth,
        402 => ErrorKind::PaymentRequired,
        403 => ErrorKind::Permission,
        404 => ErrorKind::NotFound,
        408 | 504 | 524 => ErrorKind::Timeout,
        429 => ErrorKind::RateLimited,
        503 | 529 => ErrorKind::Overloaded,
        _ => ErrorKind::Upstream,
    };
    let said = format!("{} {}", code.as_deref().unwrap_or_default(), message.as_deref().unwrap_or_default())
        .to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| said.contains(n));
    if kind == ErrorKind::RateLimited {
        if has(&["per day", "daily", "quota exceeded", "insufficient_quota"]) {
            kind = ErrorKind::QuotaExhausted;
        }
    } else if has(&["context_length", "context length", "maximum context", "too many tokens", "context window"]) {
        kind = ErrorKind::ContextLength;
    } else if has(&["content_policy", "content policy", "content_filter"]) {
        kind = ErrorKind::ContentPolicy;
    } else if has(&["insufficient_quota", "insufficient credits"]) {
        kind = ErrorKind::PaymentRequired;
    }
    let seconds =
        |name: &str, scale: f64| header(headers, name)?.parse::<f64>().ok().map(|v| whole(v * scale).unwrap_or(0));
    ProviderError {
        message: message.unwrap_or_else(|| format!("upstream answered HTTP {status}")),
        status,
        code,
        retry_after_ms: seconds("retry-after-ms", 1.0).or_else(|| seconds("retry-after", 1000.0)),
        window: match kind {
            ErrorKind::QuotaExhausted => Some(LimitWindow::Day),
            ErrorKind::RateLimited => Some(LimitWindow::Unknown),
            _ => None,
        },
        kind,
    }
}

fn http_error(e: &HttpError) -> ProviderError {
    match e {
        HttpError::Denied(m) => error(ErrorKind::Permission, m, 0),
        HttpError::InvalidUrl(m) => error(ErrorKind::BadRequest, &format!("invalid URL: {m}"), 0),
        HttpError::Connect(m) => error(ErrorKind::Upstream, &format!("cannot connect: {m}"), 0),
        HttpError::Timeout => error(ErrorKind::Timeout, "the upstream did not answer in time", 0),
        HttpError::TooLarge => error(ErrorKind::InvalidResponse, "the upstream response was too large", 0),
        HttpError::Other(m) => error(ErrorKind::Upstream, m, 0),
    }
}

/// An OpenAI-style model list (`{"data": [{"id": ...}, ...]}`) -> model infos.
fn models_from_json(text: &str) -> Result<Vec<ModelInfo>, ProviderError> {
    let bad = |m: &str| error(ErrorKind::InvalidResponse, m, 0);
    let v: Value = serde_json::from_str(text).map_err(|e| bad(&format!("the model list is not JSON: {e}")))?;
    let data = v.get("data").unwrap_or(&v).as_array().ok_or_else(|| bad("the model list has no `data` array"))?;
    Ok(data
        .iter()
        .filter_map(|m| {
            let number = |k: &str| m.get(k).and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok());
            Some(ModelInfo {
                id: m.get("id")?.as_str()?.to_owned(),
                context_window: number("context_window").or_else(|| number("context_length")),
                max_output_tokens: None,
                capabilities: Capabilities::STREAMING,
                free: None,
                owned_by: m.get("owned_by").and_then(Value::as_str).map(str::to_owned),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn urls_join_with_one_slash() {
        assert_eq!(join_url("http://h/v1/", "/models"), "http://h/v1/models");
        assert_eq!(join_url("http://h/v1", "chat/completions"), "http://h/v1/chat/completions");
    }

    #[test]
    fn rate_limit_headers() {
        let u = limits_from_headers(&h(&[
            ("x-ratelimit-limit-requests", "30"),
            ("x-ratelimit-remaining-requests", "29"),
            ("x-ratelimit-reset-requests", "1m2.5s"),
            ("x-ratelimit-remaining-tokens", "5997"),
        ]));
        assert_eq!(u.len(), 2);
        assert_eq!((u[0].limit, u[0].remaining, u[0].reset_after_ms), (Some(30), Some(29), Some(62_500)));
        assert_eq!((u[1].dimension, u[1].remaining), (QuotaDimension::Tokens, Some(5997)));
    }

    #[test]
    fn errors_are_typed() {
        let e = error_from_response(429, &h(&[("retry-after", "7")]), r#"{"error":{"message":"slow down"}}"#);
        assert_eq!((e.kind, e.retry_after_ms, e.message.as_str()), (ErrorKind::RateLimited, Some(7000), "slow down"));
        let e = error_from_response(400, &h(&[]), r#"{"error":{"message":"x","code":"context_length_exceeded"}}"#);
        assert_eq!(e.kind, ErrorKind::ContextLength);
        assert_eq!(error_from_response(401, &h(&[]), "").kind, ErrorKind::Auth);
        assert_eq!(error_from_response(502, &h(&[]), "bad gateway").message, "bad gateway");
    }

    #[test]
    fn model_lists() {
        let m = models_from_json(r#"{"data":[{"id":"a","owned_by":"o"},{"x":1}]}"#).unwrap_or_default();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].owned_by.as_deref(), Some("o"));
    }
}
