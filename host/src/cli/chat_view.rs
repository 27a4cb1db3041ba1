//! What `freeway chat` says about an answer: the line after it (provider, model, account,
//! attempts, time to first token, tokens) and `/route` (the route header and, with the admin key,
//! the gateway's ranking of every candidate).

use std::time::Duration;

use serde_json::Value;

/// How one answer went.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    pub text: String,
    pub route: Option<Route>,
    pub first_token: Option<Duration>,
    pub total: Duration,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    /// stopped by Ctrl-C before the end
    pub stopped: bool,
}

/// `x-freeway-route`: `provider=groq; model=llama-3.3-70b; account=work; attempts=2; policy=smart`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Route {
    pub provider: String,
    pub model: String,
    pub account: String,
    pub attempts: u32,
    pub policy: Option<String>,
    pub raw: String,
}

impl Route {
    pub fn parse(header: &str) -> Route {
        let mut r = Route { raw: header.to_owned(), attempts: 1, ..Route::default() };
        for part in header.split(';') {
            let Some((k, v)) = part.trim().split_once('=') else { continue };
            let v = v.trim().to_owned();
            match k.trim() {
                "provider" => r.provider = v,
                "model" => r.model = v,
                "account" => r.account = v,
                "attempts" => r.attempts = v.parse().unwrap_or(1),
                "policy" => r.policy = Some(v),
                _ => {}
            }
        }
        r
    }
}

fn ms(d: Duration) -> String {
    let ms = d.as_millis();
    if ms >= 10_000 { format!("{:.1} s", d.as_secs_f64()) } else { format!("{ms} ms") }
}

/// `groq · llama-3.3-70b · account work · 1 attempt · first token 230 ms · 12 + 48 tokens · 1.2 s`
pub fn info_line(a: &Answer) -> String {
    let mut parts = Vec::new();
    match &a.route {
        Some(r) => {
            parts.push(r.provider.clone());
            parts.push(r.model.clone());
            if !r.account.is_empty() {
                parts.push(format!("account {}", r.account));
            }
            parts.push(format!("{} attempt{}", r.attempts, if r.attempts == 1 { "" } else { "s" }));
        }
        None => parts.push("route unknown".to_owned()),
    }
    if let Some(t) = a.first_token {
        parts.push(format!("first token {}", ms(t)));
    }
    match (a.prompt_tokens, a.completion_tokens) {
        (Some(p), Some(c)) => parts.push(format!("{p} + {c} tokens")),
        (None, Some(c)) => parts.push(format!("{c} tokens")),
        _ => {}
    }
    parts.push(ms(a.total));
    if a.stopped {
        parts.push("stopped".to_owned());
    }
    parts.join(" · ")
}

/// `/route`: where the last answer went and, when the explanation is at hand, how the gateway
/// ranked the candidates and why it left the others out.
pub fn route_lines(a: &Answer, explained: Option<&Value>) -> Vec<String> {
    let mut out = vec![match &a.route {
        Some(r) => format!(
            "answered by {}/{} (account {}, {} attempt(s)){}",
            r.provider,
            r.model,
            r.account,
            r.attempts,
            r.policy.as_deref().map(|p| format!(", ranked by the {p} policy")).unwrap_or_default()
        ),
        None => "the last answer carried no route header".to_owned(),
    }];
    let Some(e) = explained else { return out };
    let task = e.get("task").and_then(Value::as_str).unwrap_or("?");
    let confidence = e.get("confidence").and_then(Value::as_f64).unwrap_or(0.0);
    out.push(format!("task {task} (confidence {confidence:.2})"));
    if let Some(signals) = e.get("signals").and_then(Value::as_array).filter(|s| !s.is_empty()) {
        let s: Vec<&str> = signals.iter().filter_map(Value::as_str).take(6).collect();
        out.push(format!("evidence: {}", s.join(", ")));
    }
    let candidates = e.get("candidates").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let name = |c: &Value| {
        format!(
            "{}/{}",
            c.get("provider").and_then(Value::as_str).unwrap_or("?"),
            c.get("model").and_then(Value::as_str).unwrap_or("?")
        )
    };
    for c in candidates.iter().filter(|c| c.get("rank").is_some_and(Value::is_u64)).take(5) {
        let rank = c.get("rank").and_then(Value::as_u64).unwrap_or(0);
        let reason = c.get("reason").and_then(Value::as_str).unwrap_or("");
        out.push(format!("  {rank}. {} {reason}", name(c)));
    }
    let dropped: Vec<&Value> = candidates.iter().filter(|c| c.get("dropped").is_some_and(Value::is_string)).collect();
    for c in dropped.iter().take(5) {
        out.push(format!("  left out {}: {}", name(c), c.get("dropped").and_then(Value::as_str).unwrap_or("")));
    }
    if dropped.len() > 5 {
        out.push(format!("  ... and {} more left out", dropped.len() - 5));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_route_header_is_read_field_by_field() {
        let r = Route::parse("provider=groq; model=llama-3.3-70b; account=work; attempts=2; policy=smart");
        assert_eq!(
            (r.provider.as_str(), r.model.as_str(), r.account.as_str(), r.attempts),
            ("groq", "llama-3.3-70b", "work", 2)
        );
        assert_eq!(r.policy.as_deref(), Some("smart"));
        assert_eq!(Route::parse("garbage").attempts, 1);
    }

    #[test]
    fn the_line_after_an_answer_names_where_it_went_and_how_fast() {
        let a = Answer {
            route: Some(Route::parse("provider=groq; model=m; account=work; attempts=1")),
            first_token: Some(Duration::from_millis(230)),
            total: Duration::from_millis(1200),
            prompt_tokens: Some(12),
            completion_tokens: Some(48),
            ..Answer::default()
        };
        assert_eq!(
            info_line(&a),
            "groq · m · account work · 1 attempt · first token 230 ms · 12 + 48 tokens · 1200 ms"
        );
        let stopped = Answer { stopped: true, ..Answer::default() };
        assert!(info_line(&stopped).ends_with("stopped"));
    }

    #[test]
    fn route_lists_the_ranking_and_what_was_left_out() {
        let a = Answer {
            route: Some(Route::parse("provider=p; model=m; account=a; attempts=1; policy=smart")),
            ..Answer::default()
        };
        let e = json!({"task": "code", "confidence": 0.8, "signals": ["code fence"], "candidates": [
            {"provider": "p", "model": "m", "rank": 1, "reason": "best for code"},
            {"provider": "q", "model": "small", "rank": null, "dropped": "context 8,192 < 15,520 needed"}]});
        let lines = route_lines(&a, Some(&e));
        assert_eq!(lines[0], "answered by p/m (account a, 1 attempt(s)), ranked by the smart policy");
        assert!(lines.contains(&"  1. p/m best for code".to_owned()), "{lines:?}");
        assert!(lines.contains(&"  left out q/small: context 8,192 < 15,520 needed".to_owned()), "{lines:?}");
        assert_eq!(route_lines(&a, None).len(), 1);
    }
}
