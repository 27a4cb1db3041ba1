//! `smart`: Freeway's default routing policy, built with the SDK like any other policy.
//!
//! For each candidate the host offers (it has already dropped those that cannot serve the
//! request), in this order of importance:
//! 1. **capability fit**: a candidate lacking a needed capability or context is left out (the
//!    host checks too; a policy never widens the set);
//! 2. **quality for the task**: hard tasks (code, math, reasoning, tools, images) weigh quality
//!    fully; easy ones (general, creative, extraction) only up to "good enough", so strong
//!    models are not spent on them. When the classifier is unsure whether a request is hard
//!    (a hard class holds 25-60 % of its probability), it leans to the stronger model as long
//!    as that model's daily quota is not running ahead of the clock;
//! 3. **quota headroom with daily pacing**: the scarcest dimension's remaining share, and for
//!    daily limits whether the pool is spending faster than the day is passing; a strong model
//!    whose daily quota runs ahead of the clock is kept for the requests that need it;
//! 4. **live performance**: time to first token and recent success rate.
//!
//! Rules' preferences (`preference`) come first; a candidate in a cooldown goes last.

use freeway_sdk::policy::{Candidate, Capabilities, Choice, Features, TaskClass, class_probabilities};

pub struct Smart;

const DAY_MS: f32 = 86_400_000.0;

/// Tasks where a stronger model makes a real difference.
fn hard(task: TaskClass) -> bool {
    matches!(task, TaskClass::Code | TaskClass::Math | TaskClass::Reasoning | TaskClass::ToolUse | TaskClass::Vision)
}

/// Above this probability of a hard class, a request is hard.
const SURE_HARD: f32 = 0.6;
/// Above this, the classifier is unsure: hard while the strong model's day allows.
const MAYBE_HARD: f32 = 0.25;

/// How likely the request is a hard task. From the class probabilities when the host sent
/// them (an alias or rule that forced the task says 1.0), else from the task and confidence.
fn p_hard(f: &Features) -> f32 {
    let probabilities = class_probabilities(f);
    if probabilities.is_empty() || f.task_confidence >= 1.0 {
        return if hard(f.task) && f.task_confidence >= 0.4 { 1.0 } else { 0.0 };
    }
    probabilities.iter().filter(|(t, _)| hard(*t)).map(|(_, p)| p).sum()
}

fn fits(f: &Features, c: &Candidate) -> bool {
    let caps = c.capabilities;
    let needs = f.needs;
    (!needs.contains(Capabilities::TOOLS) || caps.contains(Capabilities::TOOLS))
        && (!needs.contains(Capabilities::VISION) || caps.contains(Capabilities::VISION))
        && c.context_window.is_none_or(|w| w >= f.needed_context)
}

/// The scarcest remaining share over every limit (1.0 without limits).
fn headroom(c: &Candidate) -> f32 {
    c.headroom.iter().filter(|h| h.limit > 0).map(|h| h.remaining as f32 / h.limit as f32).fold(1.0, f32::min)
}

/// Daily pacing: remaining share of the day's quota over remaining share of the day. Below 1,
/// the pool is spending faster than the day is passing. `None` without daily limits.
fn pace(c: &Candidate) -> Option<f32> {
    c.headroom
        .iter()
        .filter(|h| h.limit > 0 && (h.dimension.ends_with("pd") || h.dimension == "rpd"))
        .map(|h| {
            let left = h.remaining as f32 / h.limit as f32;
            let day_left = (h.reset_in_ms as f32 / DAY_MS).clamp(0.02, 1.0);
            left / day_left
        })
        .reduce(f32::min)
}

/// Score one candidate; higher is better. With `f.explain`, the reason names the figures that
/// decided (building it costs more than scoring, so the hot path skips it).
pub fn score(f: &Features, c: &Candidate) -> (f32, String) {
    score_with(f, p_hard(f), c)
}

fn score_with(f: &Features, p_hard: f32, c: &Candidate) -> (f32, String) {
    let fast = f.requested_model == "auto:fast";
    let long = f.requested_model == "auto:long";
    let mut why: Vec<String> = Vec::new();
    let mut note = |s: &dyn Fn() -> String| {
        if f.explain {
            why.push(s());
        }
    };
    let q = f32::from(c.quality) / 100.0;
    let day = pace(c);
    // unsure: lean to the stronger model while its daily quota keeps up with the clock
    let unsure = (MAYBE_HARD..SURE_HARD).contains(&p_hard);
    let is_hard = p_hard >= SURE_HARD || (unsure && day.is_none_or(|p| p >= 1.0));
    if unsure {
        note(&|| format!("maybe hard ({:.0} %)", p_hard * 100.0));
    }
    // easy requests: anything from "good" up counts the same
    let q_eff = if is_hard { q } else { q.min(0.7) };
    // hard tasks: quality first, quota only as it runs out; easy ones: quota counts more
    let (w_quality, w_headroom, w_pace) = if fast {
        (0.2, 0.2, 0.25)
    } else if is_hard {
        (0.8, 0.1, 0.1)
    } else {
        (0.4, 0.2, 0.25)
    };
    let mut s = w_quality * q_eff;
    note(&|| format!("{} q{}", task_name(f.task), c.quality));

    let h = headroom(c);
    s += w_headroom * h;
    if h < 0.05 {
        s -= 0.3;
    }
    if h < 1.0 {
        note(&|| format!("headroom {:.0}%", h * 100.0));
    }
    if let Some(p) = day {
        if p < 1.0 {
            s -= w_pace * (1.0 - p);
        }
        // keep strong models' scarce daily quota for requests that need them: small talk
        // goes elsewhere from the start, and more so as the day's quota runs ahead of the clock
        if !is_hard && c.quality >= 75 {
            s -= 0.15 + 0.15 * (1.5 - p).max(0.0);
            note(&|| format!("day pace {p:.2}, kept for harder requests"));
        } else {
            note(&|| format!("day pace {p:.2}"));
        }
    }

    let w_latency = if fast { 0.5 } else { 0.1 };
    match c.ttft_p50_ms {
        Some(ms) => {
            s += w_latency / (1.0 + ms / 1000.0);
            note(&|| format!("ttft {ms:.0} ms"));
        }
        None => s += w_latency * 0.5,
    }
    let ok = c.success_rate.unwrap_or(0.95);
    s += 0.15 * ok;
    if ok < 0.5 {
        s -= 0.3;
    }
    if c.success_rate.is_some() {
        note(&|| format!("ok {:.0}%", ok * 100.0));
    }
    if long {
        let window = c.context_window.unwrap_or(8_192) as f32;
        s += 0.1 * (window / 8_192.0).log2().max(0.0);
        note(&|| format!("context {}", c.context_window.unwrap_or(0)));
    }
    if let Some(p) = c.preference {
        s += 1.0 / (1.0 + p as f32);
        note(&|| "rule preference".to_owned());
    }
    if c.cooldown_ms > 0 {
        s -= 2.0;
        note(&|| format!("cooldown {} ms", c.cooldown_ms));
    }
    (s, why.join(", "))
}

fn task_name(t: TaskClass) -> &'static str {
    match t {
        TaskClass::General => "general",
        TaskClass::Code => "code",
        TaskClass::Math => "math",
        TaskClass::Reasoning => "reasoning",
        TaskClass::Creative => "creative",
        TaskClass::Extraction => "extraction",
        TaskClass::Vision => "vision",
        TaskClass::ToolUse => "tool-use",
    }
}

impl freeway_sdk::Policy for Smart {
    fn rank(request: Features, candidates: Vec<Candidate>) -> Vec<Choice> {
        let p_hard = p_hard(&request);
        let mut scored: Vec<(u32, f32, String)> = candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| fits(&request, c))
            .filter_map(|(i, c)| {
                let (s, why) = score_with(&request, p_hard, c);
                Some((u32::try_from(i).ok()?, s, why))
            })
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        scored.into_iter().map(|(index, score, reason)| Choice { index, score, reason }).collect()
    }
}

freeway_sdk::export_policy!(Smart);

#[cfg(test)]
mod tests {
    use freeway_sdk::Policy;
    use freeway_sdk::policy::Headroom;

    use super::*;

    fn features(task: TaskClass, model: &str) -> Features {
        Features {
            task,
            task_confidence: 0.9,
            estimated_prompt_tokens: 100,
            max_tokens: None,
            needed_context: 100,
            needs: Capabilities::empty(),
            streaming: false,
            requested_model: model.to_owned(),
            client_key_id: None,
            client_tags: Vec::new(),
            time_of_day_s: 43_200,
            language: None,
            signals: Vec::new(),
            rules: Vec::new(),
            explain: true,
        }
    }

    fn cand(model: &str, quality: u8) -> Candidate {
        Candidate {
            provider: "p".to_owned(),
            model: model.to_owned(),
            pool: "default".to_owned(),
            accounts: 1,
            capabilities: Capabilities::STREAMING,
            context_window: Some(32_768),
            quality,
            preference: None,
            headroom: Vec::new(),
            latency_ewma_ms: None,
            ttft_p50_ms: None,
            tokens_per_second: None,
            success_rate: None,
            cooldown_ms: 0,
            free: true,
            local: false,
        }
    }

    fn daily(remaining: u64, limit: u64, reset_in_ms: u64) -> Headroom {
        Headroom { dimension: "rpd".to_owned(), remaining, limit, reset_in_ms }
    }

    fn order(f: &Features, c: Vec<Candidate>) -> Vec<String> {
        let models: Vec<String> = c.iter().map(|c| c.model.clone()).collect();
        Smart::rank(f.clone(), c).iter().map(|ch| models[ch.index as usize].clone()).collect()
    }

    #[test]
    fn hard_tasks_go_to_the_strongest_model() {
        let f = features(TaskClass::Code, "auto");
        assert_eq!(order(&f, vec![cand("small", 45), cand("coder", 90)])[0], "coder");
    }

    #[test]
    fn a_strong_model_spending_its_day_too_fast_is_kept_for_hard_requests() {
        // half the day left, a fifth of the daily quota left
        let mut strong = cand("strong", 90);
        strong.headroom = vec![daily(20, 100, 43_200_000)];
        let good = cand("good", 70);
        let easy = features(TaskClass::General, "auto");
        assert_eq!(order(&easy, vec![strong.clone(), good.clone()])[0], "good");
        let hard = features(TaskClass::Math, "auto");
        assert_eq!(order(&hard, vec![strong, good])[0], "strong");
    }

    #[test]
    fn an_unsure_request_leans_to_the_strong_model_while_its_day_allows() {
        let mut f = features(TaskClass::General, "auto");
        f.task_confidence = 0.55;
        f.signals = vec!["classes: general 0.55, reasoning 0.40, creative 0.05".to_owned()];
        // on pace: three quarters of the quota left, half the day
        let mut strong = cand("strong", 90);
        strong.headroom = vec![daily(75, 100, 43_200_000)];
        let good = cand("good", 70);
        assert_eq!(order(&f, vec![strong.clone(), good.clone()])[0], "strong");
        // running ahead of the clock: kept for requests that are surely hard
        strong.headroom = vec![daily(20, 100, 43_200_000)];
        assert_eq!(order(&f, vec![strong.clone(), good.clone()])[0], "good");
        // a sure easy request leaves the strong model alone even on pace
        f.signals = vec!["classes: general 0.95, creative 0.05".to_owned()];
        strong.headroom = vec![daily(75, 100, 43_200_000)];
        assert_eq!(order(&f, vec![strong, good])[0], "good");
    }

    #[test]
    fn capability_and_context_misfits_are_left_out() {
        let mut f = features(TaskClass::ToolUse, "auto");
        f.needs = Capabilities::TOOLS;
        f.needed_context = 50_000;
        let mut tools_small = cand("tools-small", 80);
        tools_small.capabilities = Capabilities::TOOLS;
        let mut tools_big = cand("tools-big", 60);
        tools_big.capabilities = Capabilities::TOOLS;
        tools_big.context_window = Some(128_000);
        let no_tools = cand("no-tools", 95);
        assert_eq!(order(&f, vec![tools_small, tools_big, no_tools]), vec!["tools-big"]);
    }

    #[test]
    fn cooldowns_go_last_and_fast_prefers_low_latency() {
        let mut cooling = cand("cooling", 95);
        cooling.cooldown_ms = 5_000;
        let f = features(TaskClass::Code, "auto");
        assert_eq!(order(&f, vec![cooling, cand("other", 50)])[0], "other");
        let mut quick = cand("quick", 60);
        quick.ttft_p50_ms = Some(80.0);
        let mut slow = cand("slow", 85);
        slow.ttft_p50_ms = Some(3_000.0);
        assert_eq!(order(&features(TaskClass::General, "auto:fast"), vec![slow, quick])[0], "quick");
    }

    #[test]
    fn rule_preferences_lead() {
        let mut preferred = cand("preferred", 40);
        preferred.preference = Some(0);
        let f = features(TaskClass::Code, "auto");
        assert_eq!(order(&f, vec![cand("best", 95), preferred])[0], "preferred");
    }
}
