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
