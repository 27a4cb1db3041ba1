//! `freeway stats` as text: a summary line, the hourly trend as a sparkline, tables per provider,
//! model, account and client key, errors by class and each quota pool's busiest window.

use std::fmt::Write as _;

use super::catalog_views::table;
use super::status_view::span;
use crate::config::catalog::group;
use crate::report::view::{Group, Hour, Report};

const SPARKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// Requests per hour as one character each (blank for none).
pub fn sparkline(hours: &[Hour]) -> String {
    let max = hours.iter().map(|h| h.requests).max().unwrap_or(0);
    hours
        .iter()
        .map(|h| {
            if h.requests == 0 || max == 0 {
                ' '
            } else {
                let i = usize::try_from((h.requests * 7).div_ceil(max)).unwrap_or(7).min(7);
                SPARKS[i]
            }
        })
        .collect()
}

fn rate(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_owned(), |r| format!("{:.1} %", r * 100.0))
}

fn ms(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{} ms", group(v)))
}

fn groups_table(title: &str, groups: &[Group]) -> String {
    let mut t = table(&[title, "REQUESTS", "SUCCESS", "TOKENS IN", "TOKENS OUT", "P50", "P95", "TTFT P50", "TTFT P95"]);
    for g in groups {
        t.add_row(vec![
            match &g.name {
                Some(name) => format!("{name} ({})", g.key),
                None => g.key.clone(),
            },
            group(g.requests),
            rate(g.success_rate),
            group(g.prompt_tokens),
            group(g.completion_tokens),
            ms(g.latency_p50_ms),
            ms(g.latency_p95_ms),
            ms(g.ttft_p50_ms),
            ms(g.ttft_p95_ms),
        ]);
    }
    t.to_string()
}

pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let period = span(r.until_ms.saturating_sub(r.since_ms));
    let t = &r.total;
    let _ = writeln!(
        out,
        "Last {period}: {} requests, {} succeeded, {} prompt + {} completion tokens, latency p50 {} p95 {}",
        group(t.requests),
        rate(t.success_rate),
        group(t.prompt_tokens),
        group(t.completion_tokens),
        ms(t.latency_p50_ms),
        ms(t.latency_p95_ms)
    );
    if let Some(key) = &r.key {
        let _ = writeln!(out, "(only client key {key})");
    }
    if r.truncated {
        let _ = writeln!(out, "(only the newest {} records were read)", group(r.records as u64));
    }
    if t.requests == 0 {
        let _ = writeln!(out, "No usage recorded in this period.");
    }
    let _ = writeln!(out, "requests per hour, oldest first: [{}]", sparkline(&r.hourly));
    for (title, groups) in
        [("PROVIDER", &r.by_provider), ("MODEL", &r.by_model), ("ACCOUNT", &r.by_account), ("CLIENT", &r.by_client)]
    {
        if !groups.is_empty() {
            let _ = writeln!(out, "\n{}", groups_table(title, groups));
        }
    }
    if !r.errors.is_empty() {
        let mut e = table(&["ERROR", "REQUESTS", "LAST"]);
        for c in &r.errors {
            e.add_row(vec![
                c.error.clone(),
                group(c.requests),
                format!("{} ago", span(r.until_ms.saturating_sub(c.last_at_ms))),
            ]);
        }
        let _ = writeln!(out, "\n{e}");
    }
    if !r.quota.is_empty() {
        let mut q = table(&["PROVIDER", "POOL", "LIMIT", "BUSIEST WINDOW", "OF THE LIMIT"]);
        for p in &r.quota {
            let scope = if p.scope == "*" { String::new() } else { format!(" ({})", p.scope) };
            q.add_row(vec![
                p.provider.clone(),
                format!("{}{scope}", p.pool),
                format!("{} {}", p.name.to_uppercase(), group(p.limit)),
                group(p.peak),
                format!("{:.0} %", p.share * 100.0),
            ]);
        }
        let _ = writeln!(out, "\n{q}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hour(requests: u64) -> Hour {
        Hour { start_ms: 0, requests, ok: requests, tokens: 0 }
    }

    #[test]
    fn the_sparkline_scales_to_the_busiest_hour() {
        assert_eq!(sparkline(&[hour(0), hour(1), hour(7), hour(4)]), " ▂█▅");
        assert_eq!(sparkline(&[]), "");
    }
}
