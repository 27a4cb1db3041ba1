//! `freeway status` as text: the server line, then per provider its accounts (state, cooldown
//! countdowns), quota bars per pool and the models' latency, then the components. Colour only
//! when asked (a terminal without `NO_COLOR`).

use std::fmt::Write as _;

use crate::config::catalog::group;
use crate::status::view::{Account, Pool, Provider, Status};

/// ANSI styles, or nothing.
struct Paint(bool);

impl Paint {
    fn wrap(&self, code: &str, text: &str) -> String {
        if self.0 { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_owned() }
    }
    fn bold(&self, t: &str) -> String {
        self.wrap("1", t)
    }
    fn dim(&self, t: &str) -> String {
        self.wrap("2", t)
    }
    fn green(&self, t: &str) -> String {
        self.wrap("32", t)
    }
    fn yellow(&self, t: &str) -> String {
        self.wrap("33", t)
    }
    fn red(&self, t: &str) -> String {
        self.wrap("31", t)
    }
}

/// `42 s`, `3 min 5 s`, `2 h 10 min`, `3 d 4 h`.
pub fn span(ms: u64) -> String {
    let s = ms.div_ceil(1000);
    match s {
        0..60 => format!("{s} s"),
        60..3600 if s.is_multiple_of(60) => format!("{} min", s / 60),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86_400 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        _ => format!("{} d {} h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// A quota bar `width` cells wide.
fn bar(used: u64, limit: u64, width: usize) -> (String, f64) {
    #[allow(clippy::cast_precision_loss)]
    let share = if limit == 0 { 1.0 } else { (used as f64 / limit as f64).clamp(0.0, 1.0) };
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let filled = ((share * width as f64).round() as usize).min(width);
    (format!("{}{}", "█".repeat(filled), "░".repeat(width - filled)), share)
}

fn state(a: &Account, now_ms: u64, p: &Paint) -> String {
    let left = a.until_ms.map(|u| span(u.saturating_sub(now_ms)));
    let reason = a.reason.as_deref().unwrap_or("");
    match a.state.as_str() {
        "ok" => p.green("● ok"),
        "cooling" => p.yellow(&format!("◐ cooling down, {} left: {reason}", left.unwrap_or_default())),
        "disabled" => p.red(&format!("✕ disabled (re-check in {}): {reason}", left.unwrap_or_default())),
        "off" => p.dim("○ off (disabled by an operator)"),
        other => other.to_owned(),
    }
}

fn pool_lines(out: &mut String, pool: &Pool, now_ms: u64, p: &Paint) {
    let scope = if pool.scope == "*" { String::new() } else { format!(" ({})", pool.scope) };
    for (i, q) in pool.quota.iter().enumerate() {
        let head = if i == 0 { format!("pool {}{scope}", pool.pool) } else { String::new() };
        let (cells, share) = bar(q.used, q.limit, 20);
        let cells = if share >= 0.9 {
            p.red(&cells)
        } else if share >= 0.7 {
            p.yellow(&cells)
        } else {
            p.green(&cells)
        };
        let reset =
            q.resets_at_ms.map(|r| format!(", resets in {}", span(r.saturating_sub(now_ms)))).unwrap_or_default();
        let source = if q.source == "learned" { " (provider's figure)" } else { "" };
        let _ = writeln!(
            out,
            "    {head:<24} {:<5} {cells} {}/{}{}",
            q.name.to_uppercase(),
            group(q.used),
            group(q.limit),
            p.dim(&format!("{reset}{source}"))
        );
    }
}

fn provider_block(out: &mut String, pr: &Provider, now_ms: u64, p: &Paint) {
    let local = if pr.local { ", local" } else { "" };
    let _ = writeln!(
        out,
        "{} {}",
        p.bold(&pr.id),
        p.dim(&format!("(component {} {}{local}, {} in flight)", pr.component, pr.component_version, pr.in_flight))
    );
    for a in &pr.accounts {
        let label = if a.label == a.id { a.label.clone() } else { format!("{} ({})", a.label, a.id) };
        let _ = writeln!(out, "    {label:<32} {}", state(a, now_ms, p));
    }
    for pool in &pr.pools {
        pool_lines(out, pool, now_ms, p);
    }
    for m in &pr.models {
        let ms = |v: Option<f32>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0} ms"));
        let rate = m.success_rate.map_or_else(|| "-".to_owned(), |r| format!("{:.0} %", r * 100.0));
        let _ = writeln!(
            out,
            "    {} {}",
            m.model,
            p.dim(&format!(
                "latency p50 {} p95 {} · first byte p50 {} p95 {} · success {rate} · {} samples",
                ms(m.latency_p50_ms),
                ms(m.latency_p95_ms),
                ms(m.ttft_p50_ms),
                ms(m.ttft_p95_ms),
                m.samples
            ))
        );
    }
    if let Some(e) = &pr.last_error {
        let _ = writeln!(
            out,
            "    {}",
            p.dim(&format!("last error {} ago on {}: {}", span(now_ms.saturating_sub(e.at_ms)), e.account, e.message))
        );
    }
}

/// The whole status as text.
pub fn render(s: &Status, url: &str, colour: bool) -> String {
    let p = Paint(colour);
    let now = s.server.now_ms;
    let sv = &s.server;
    let mut out = String::new();
    let ready = if sv.ready { p.green("ready") } else { p.red("not ready") };
    let _ = writeln!(
        out,
        "{} at {url}: {ready}, up {}, configuration generation {}, {} request(s) in flight",
        p.bold(&format!("Freeway {}", sv.version)),
        span(sv.uptime_secs * 1000),
        sv.config_generation,
        sv.in_flight
    );
    for problem in &sv.problems {
        let _ = writeln!(out, "  {}", p.red(&format!("! {problem}")));
    }
    let st = &sv.storage;
    let store_state =
        if st.ok { p.green("ok") } else { p.red(&format!("failing: {}", st.error.as_deref().unwrap_or(""))) };
    let _ = writeln!(
        out,
        "  usage store: {} {store_state} {}",
        st.store,
        p.dim(&format!("({} records stored, {} dropped)", group(st.usage_stored), group(st.usage_dropped)))
    );
    match &sv.redis {
        Some(r) if r.up => {
            let _ = writeln!(out, "  redis: {}", p.green("up"));
        }
        Some(r) => {
            let _ =
                writeln!(out, "  redis: {} {}", p.red("down"), p.dim(&format!("({} local fallbacks)", r.fallbacks)));
        }
        None => {
            let _ = writeln!(out, "  redis: {}", p.dim("not configured (this process keeps its own limits)"));
        }
    }
    for pr in &s.providers {
        out.push('\n');
        provider_block(&mut out, pr, now, &p);
    }
    if !s.components.is_empty() {
        let _ = writeln!(out, "\n{}", p.bold("components"));
        for c in &s.components {
            let version = c.version.as_deref().map(|v| format!(" {v}")).unwrap_or_default();
            let loaded = c
                .loaded_at_ms
                .map_or_else(|| p.red("not loaded"), |at| format!("loaded {} ago", span(now.saturating_sub(at))));
            let _ = writeln!(out, "    {} {}{version}: {loaded}, {} load(s)", c.name, c.kind, c.loads);
            if let Some(r) = &c.last_refusal {
                let _ = writeln!(
                    out,
                    "      {}",
                    p.yellow(&format!("refused {} ago: {}", span(now.saturating_sub(r.at_ms)), r.why))
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::view::{Quota, Server, Storage};

    fn status() -> Status {
        let now = 1_800_000_000_000;
        Status {
            server: Server {
                version: "0.1.0".into(),
                now_ms: now,
                started_at_ms: now - 7_200_000,
                uptime_secs: 7200,
                config_generation: 3,
                config_path: None,
                ready: true,
                problems: vec![],
                in_flight: 0,
                storage: Storage {
                    store: "SQLite database data/usage.db".into(),
                    ok: true,
                    error: None,
                    usage_recorded: 5,
                    usage_stored: 5,
                    usage_dropped: 0,
                },
                redis: None,
            },
            providers: vec![Provider {
                id: "groq".into(),
                component: "openai-compat".into(),
                component_version: "0.3.0".into(),
                local: false,
                in_flight: 1,
                accounts: vec![Account {
                    id: "acc_1".into(),
                    label: "main".into(),
                    pool: "acc_1".into(),
                    enabled: true,
                    state: "cooling".into(),
                    reason: Some("429 Too Many Requests".into()),
                    until_ms: Some(now + 23_000),
                    last_error: None,
                }],
                pools: vec![Pool {
                    pool: "acc_1".into(),
                    scope: "*".into(),
                    quota: vec![Quota {
                        name: "rpm".into(),
                        used: 15,
                        limit: 30,
                        resets_at_ms: Some(now + 12_000),
                        source: "learned".into(),
                    }],
                }],
                models: vec![],
                last_error: None,
            }],
            components: vec![],
        }
    }

    #[test]
    fn cooldowns_count_down_and_quota_bars_fill_in_proportion() {
        let text = render(&status(), "http://127.0.0.1:8000", false);
        assert!(text.contains("Freeway 0.1.0 at http://127.0.0.1:8000: ready, up 2 h 0 min"), "{text}");
        assert!(text.contains("cooling down, 23 s left: 429 Too Many Requests"), "{text}");
        assert!(text.contains("RPM   ██████████░░░░░░░░░░ 15/30, resets in 12 s (provider's figure)"), "{text}");
        assert!(!text.contains('\x1b'), "no colour unless asked");
        assert!(render(&status(), "u", true).contains("\x1b[33m"), "cooling is yellow");
    }

    #[test]
    fn spans_read_naturally() {
        assert_eq!(span(0), "0 s");
        assert_eq!(span(58_001), "59 s");
        assert_eq!(span(59_001), "1 min");
        assert_eq!(span(61_000), "1 min 1 s");
        assert_eq!(span(120_000), "2 min");
        assert_eq!(span(3_600_000 * 5 + 60_000), "5 h 1 min");
        assert_eq!(span(86_400_000 * 2), "2 d 0 h");
    }
}
