//! Rate-limit headers -> [`QuotaUpdate`]s.

use crate::types::{Headers, LimitWindow, QuotaDimension, QuotaUpdate};

/// Durations as providers write them: `"6s"`, `"1m2.5s"`, `"2h0m3s"`, `"250ms"`, `"37s"`, or bare
/// seconds (`"59.5"`). Returns milliseconds.
pub fn parse_duration_ms(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(secs) = s.parse::<f64>() {
        return ms(secs * 1000.0);
    }
    let mut total = 0.0;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let value: f64 = num.parse().ok()?;
        num.clear();
        let unit_ms = match c {
            'h' => 3_600_000.0,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                1.0
            }
            'm' => 60_000.0,
            's' => 1000.0,
            _ => return None,
        };
        total += value * unit_ms;
        any = true;
    }
    if !num.is_empty() || !any {
        return None;
    }
    ms(total)
}

fn ms(v: f64) -> Option<u64> {
    // a non-negative finite duration in ms, rounded up
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    (v.is_finite() && v >= 0.0).then(|| v.ceil() as u64)
}

fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
}

fn number(headers: &Headers, name: &str) -> Option<u64> {
    header(headers, name).and_then(|v| v.parse::<f64>().ok()).and_then(ms)
}

/// One dimension read from `x-ratelimit-{limit,remaining,reset}-{suffix}` headers.
pub fn read_triplet(
    headers: &Headers,
    suffix: &str,
    dimension: QuotaDimension,
    window: LimitWindow,
) -> Option<QuotaUpdate> {
    let limit = number(headers, &format!("x-ratelimit-limit-{suffix}"));
    let remaining = number(headers, &format!("x-ratelimit-remaining-{suffix}"));
    let reset_after_ms = header(headers, &format!("x-ratelimit-reset-{suffix}")).and_then(parse_duration_ms);
    (limit.is_some() || remaining.is_some()).then_some(QuotaUpdate {
        dimension,
        window,
        limit,
        remaining,
        reset_after_ms,
        scope: None,
    })
}

/// OpenAI's `x-ratelimit-*-requests` / `-tokens` headers, with the windows this provider uses
/// for them (OpenAI: both per minute; Groq: requests per day, tokens per minute).
pub fn openai_headers(headers: &Headers, requests: LimitWindow, tokens: LimitWindow) -> Vec<QuotaUpdate> {
    let mut out = Vec::new();
    out.extend(read_triplet(headers, "requests", QuotaDimension::Requests, requests));
    out.extend(read_triplet(headers, "tokens", QuotaDimension::Tokens, tokens));
    out
}

/// Every `x-ratelimit-{limit,remaining,reset}-{requests,tokens}[-{minute,hour,day}]` header.
/// A window suffix (Cerebras: `-requests-day`, `-tokens-minute`) wins; otherwise the provider's
/// meaning is given (OpenAI: both per minute; Groq: requests per day, tokens per minute).
pub fn ratelimit_headers(headers: &Headers, requests: LimitWindow, tokens: LimitWindow) -> Vec<QuotaUpdate> {
    let mut out: Vec<QuotaUpdate> = Vec::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        let Some(rest) = name.strip_prefix("x-ratelimit-") else { continue };
        let Some((field, tail)) = rest.split_once('-') else { continue };
        let (dim, window) = match tail.split_once('-') {
            Some((d, w)) => (d, window_from_name(w)),
            None => (tail, None),
        };
        let (dimension, default) = match dim {
            "requests" => (QuotaDimension::Requests, requests),
            "tokens" => (QuotaDimension::Tokens, tokens),
            _ => continue,
        };
        let window = window.unwrap_or(default);
        let idx = match out.iter().position(|u| u.dimension == dimension && u.window == window) {
            Some(i) => i,
            None => {
                out.push(QuotaUpdate {
                    dimension,
                    window,
                    limit: None,
                    remaining: None,
                    reset_after_ms: None,
                    scope: None,
                });
                out.len() - 1
            }
        };
        let u = &mut out[idx];
        match field {
            "limit" => u.limit = value.trim().parse::<f64>().ok().and_then(ms),
            "remaining" => u.remaining = value.trim().parse::<f64>().ok().and_then(ms),
            "reset" => u.reset_after_ms = parse_duration_ms(value),
            _ => {}
        }
    }
    out.retain(|u| u.limit.is_some() || u.remaining.is_some());
    out
}

/// Milliseconds from `now_ms` (Unix ms) to the next UTC midnight.
pub fn until_utc_midnight(now_ms: u64) -> u64 {
    const DAY: u64 = 86_400_000;
    DAY - now_ms % DAY
}

/// OpenRouter's `GET /key` answer -> quota updates: the free-model daily request allowance
/// (resets at UTC midnight) and the credit balance when the key has a limit.
pub fn openrouter_key_info(body: &serde_json::Value, now_ms: u64) -> Vec<QuotaUpdate> {
    let data = body.get("data").unwrap_or(body);
    let mut out = Vec::new();
    if let Some(free) = data.get("free_model_daily_requests") {
        let num = |k: &str| free.get(k).and_then(serde_json::Value::as_u64);
        out.push(QuotaUpdate {
            dimension: QuotaDimension::Requests,
            window: LimitWindow::Day,
            limit: num("limit"),
            remaining: num("remaining").or_else(|| Some(num("limit")?.saturating_sub(num("used")?))),
            reset_after_ms: Some(until_utc_midnight(now_ms)),
            scope: Some("free-models".to_owned()),
        });
    }
    if let Some(remaining) = data.get("limit_remaining").and_then(serde_json::Value::as_f64) {
        out.push(QuotaUpdate {
            dimension: QuotaDimension::Credits,
            window: LimitWindow::Unknown,
            limit: data.get("limit").and_then(serde_json::Value::as_f64).and_then(ms),
            remaining: ms(remaining.max(0.0)),
            reset_after_ms: None,
            scope: None,
        });
    }
    out
}

/// A window named in configuration (`"minute"`, `"day"`, ...).
pub fn window_from_name(name: &str) -> Option<LimitWindow> {
    Some(match name.trim().to_ascii_lowercase().as_str() {
        "second" | "s" => LimitWindow::Second,
        "minute" | "min" | "m" => LimitWindow::Minute,
        "hour" | "h" => LimitWindow::Hour,
        "day" | "d" => LimitWindow::Day,
        "month" => LimitWindow::Month,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("6s"), Some(6000));
        assert_eq!(parse_duration_ms("1m2.5s"), Some(62_500));
        assert_eq!(parse_duration_ms("2m59.56s"), Some(179_560));
        assert_eq!(parse_duration_ms("250ms"), Some(250));
        assert_eq!(parse_duration_ms("1h0m1s"), Some(3_601_000));
        assert_eq!(parse_duration_ms("59.5"), Some(59_500));
        assert_eq!(parse_duration_ms("7.66s"), Some(7660));
        assert_eq!(parse_duration_ms("soon"), None);
        assert_eq!(parse_duration_ms("5"), Some(5000));
        assert_eq!(parse_duration_ms("5x"), None);
    }

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn cerebras_day_and_minute_pairs() {
        let h = headers(&[
            ("x-ratelimit-limit-requests-day", "14400"),
            ("x-ratelimit-remaining-requests-day", "14399"),
            ("x-ratelimit-reset-requests-day", "33011.38"),
            ("x-ratelimit-limit-tokens-minute", "60000"),
            ("x-ratelimit-remaining-tokens-minute", "59800"),
            ("x-ratelimit-reset-tokens-minute", "11.38"),
        ]);
        let u = ratelimit_headers(&h, LimitWindow::Minute, LimitWindow::Minute);
        let day = u.iter().find(|u| u.window == LimitWindow::Day).unwrap();
        assert_eq!(
            (day.dimension, day.limit, day.remaining, day.reset_after_ms),
            (QuotaDimension::Requests, Some(14400), Some(14399), Some(33_011_380))
        );
        let min = u.iter().find(|u| u.window == LimitWindow::Minute).unwrap();
        assert_eq!(
            (min.dimension, min.remaining, min.reset_after_ms),
            (QuotaDimension::Tokens, Some(59800), Some(11_380))
        );
    }

    #[test]
    fn groq_meanings_apply_without_suffixes() {
        let h = headers(&[
            ("x-ratelimit-limit-requests", "1000"),
            ("x-ratelimit-remaining-requests", "990"),
            ("x-ratelimit-limit-tokens", "6000"),
        ]);
        let u = ratelimit_headers(&h, LimitWindow::Day, LimitWindow::Minute);
        assert_eq!(u.len(), 2);
        assert!(u.iter().any(|u| u.dimension == QuotaDimension::Requests
            && u.window == LimitWindow::Day
            && u.remaining == Some(990)));
    }

    #[test]
    fn openrouter_key_info_reads_free_daily_requests() {
        let body: serde_json::Value = serde_json::from_str(r#"{"data":{"label":"x","limit":null,"limit_remaining":null,"usage_daily":0.0,"is_free_tier":true,"free_model_daily_requests":{"limit":50,"remaining":47,"used":3}}}"#).unwrap();
        let u = openrouter_key_info(&body, 86_400_000 * 3 + 3_600_000);
        assert_eq!(u.len(), 1);
        assert_eq!((u[0].limit, u[0].remaining, u[0].window), (Some(50), Some(47), LimitWindow::Day));
        assert_eq!(u[0].reset_after_ms, Some(23 * 3_600_000));
    }

    #[test]
    fn openai_style_headers() {
        let h: Headers = [
            ("x-ratelimit-limit-requests", "14400"),
            ("x-ratelimit-remaining-requests", "14370"),
            ("x-ratelimit-reset-requests", "2m59.56s"),
            ("x-ratelimit-limit-tokens", "6000"),
            ("x-ratelimit-remaining-tokens", "5997"),
            ("x-ratelimit-reset-tokens", "30ms"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let u = openai_headers(&h, LimitWindow::Day, LimitWindow::Minute);
        assert_eq!(u.len(), 2);
        assert_eq!(u[0].dimension, QuotaDimension::Requests);
        assert_eq!(u[0].window, LimitWindow::Day);
        assert_eq!(u[0].remaining, Some(14370));
        assert_eq!(u[0].reset_after_ms, Some(179_560));
        assert_eq!(u[1].limit, Some(6000));
        assert_eq!(u[1].reset_after_ms, Some(30));
        assert!(openai_headers(&Vec::new(), LimitWindow::Minute, LimitWindow::Minute).is_empty());
    }
}
