//! `freeway eval-routing`: the classifier's accuracy and confusion matrix on a labelled prompt
//! set, and how often `auto` (the configured policy, on the given fleet) put a capable model
//! first. Dry runs only: nothing is sent.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use crate::task::Task;

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The labelled set (JSON lines: id, label, prompt, system?, history?, image?, tools?, json?, long?, language?)
    #[arg(default_value = "tests/eval/routing.jsonl")]
    pub file: PathBuf,
    /// The fleet `auto` routes over
    #[arg(long, short, default_value = "tests/eval/fleet.toml")]
    pub config: PathBuf,
    /// Exit with 1 when accuracy (creative and general as one class) is below this
    #[arg(long, default_value = "0.9")]
    pub min_accuracy: f64,
    /// Print every misclassified prompt
    #[arg(long)]
    pub verbose: bool,
    /// Rank with this policy instead of the configured one (file stem in the policies folder)
    #[arg(long)]
    pub policy: Option<String>,
    /// Load policies from this folder instead of the configured one
    #[arg(long)]
    pub policies_dir: Option<PathBuf>,
    /// Route the whole set this many times (timing figures; accuracy is from the first pass)
    #[arg(long, default_value = "1")]
    pub repeat: u32,
}

use super::labelled::Labelled as Case;

/// A long pasted document for `long` cases (~40,000 tokens of plain prose).
fn long_document() -> String {
    let para = "The quarterly operations review covered staffing, supplier delays, warehouse throughput and the \
                rollout of the new ticketing system across three regional offices. ";
    para.repeat(1_500)
}

fn request(c: &Case) -> serde_json::Value {
    let mut text = c.prompt.clone();
    if c.long {
        text = format!("{text}\n\n---\n{}", long_document());
    }
    let content = if c.image {
        json!([{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}])
    } else {
        json!(text)
    };
    let mut messages = Vec::new();
    if let Some(s) = &c.system {
        messages.push(json!({"role": "system", "content": s}));
    }
    messages.extend(c.history.iter().map(|t| json!(t)));
    messages.push(json!({"role": "user", "content": content}));
    let mut body = json!({"model": "auto", "messages": messages});
    if c.tools {
        body["tools"] = json!([{"type": "function", "function": {"name": "lookup", "description": "look something up",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}]);
    }
    if c.json {
        body["response_format"] = json!({"type": "json_object"});
    }
    body
}

fn percentile(list: &mut [f64], p: usize) -> f64 {
    list.sort_by(f64::total_cmp);
    list.get((list.len() * p).div_ceil(100).saturating_sub(1)).copied().unwrap_or(0.0)
}

/// creative and general are one class in the accuracy target ("creative/general")
fn merged(t: Task) -> Task {
    if t == Task::Creative { Task::General } else { t }
}

pub async fn run(args: EvalArgs) -> i32 {
    let text = match std::fs::read_to_string(&args.file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("freeway eval-routing: {}: {e}", args.file.display());
            return 2;
        }
    };
    let mut cases = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        match serde_json::from_str::<Case>(line) {
            Ok(c) if Task::parse(&c.label).is_some() => cases.push(c),
            Ok(c) => {
                eprintln!("freeway eval-routing: line {}: unknown label {}", i + 1, c.label);
                return 2;
            }
            Err(e) => {
                eprintln!("freeway eval-routing: line {}: {e}", i + 1);
                return 2;
            }
        }
    }
    let mut loaded = match crate::config::load(&args.config) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("freeway eval-routing: {e}");
            return 2;
        }
    };
    if let Some(p) = &args.policy {
        loaded.config.routing.policy.clone_from(p);
    }
    if let Some(d) = &args.policies_dir {
        loaded.config.runtime.policies_dir.clone_from(d);
    }
    let app = match super::route::start_loaded(loaded).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("freeway eval-routing: {e}");
            return 1;
        }
    };
    let n = Task::ALL.len();
    let mut matrix = vec![vec![0u32; n]; n];
    let (mut strict, mut loose, mut lang_ok, mut lang_n) = (0u32, 0u32, 0u32, 0u32);
    let (mut capable, mut strong, mut hard_n, mut routed) = (0u32, 0u32, 0u32, 0u32);
    let (mut times, mut classify_times, mut policy_times, mut both) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut policy_errors = 0u32;
    // (probability of the chosen class, right?) per prompt, for calibration
    let mut calibration: Vec<(f32, bool)> = Vec::new();
    let mut log_loss = 0f64;
    for c in &cases {
        let want = Task::parse(&c.label).unwrap_or(Task::General);
        let body = serde_json::to_vec(&request(c)).unwrap_or_default();
        let decision = match crate::pipeline::explain::dry_run(
            app.services(),
            &app.registry.snapshot(),
            &body,
            crate::principal::Principal::Anyone,
            false,
        )
        .await
        {
            Ok(d) => d,
            Err(e) => {
                eprintln!("freeway eval-routing: {}: {}", c.id, e.message);
                return 1;
            }
        };
        times.push(decision.cost.as_secs_f64() * 1e6);
        classify_times.push(decision.classify_cost.as_secs_f64() * 1e6);
        policy_times.push(decision.policy_cost.as_secs_f64() * 1e6);
        both.push((decision.classify_cost + decision.policy_cost).as_secs_f64() * 1e6);
        let got = decision.classification.task;
        calibration.push((decision.classification.confidence, got == want));
        log_loss -= f64::from(decision.classification.probabilities[want.index()].max(1e-6)).ln();
        matrix[Task::ALL.iter().position(|x| *x == want).unwrap_or(0)]
            [Task::ALL.iter().position(|x| *x == got).unwrap_or(0)] += 1;
        strict += u32::from(got == want);
        loose += u32::from(merged(got) == merged(want));
        if got != want && args.verbose {
            println!(
                "  {:<16} {:>10} -> {:<10} {}",
                c.id,
                want.as_str(),
                got.as_str(),
                decision.classification.signals.join(", ")
            );
        }
        let expected_lang = c.language.as_deref().unwrap_or("en");
        if !c.prompt.trim().is_empty() {
            lang_n += 1;
            let ok = decision.language == Some(expected_lang);
            lang_ok += u32::from(ok);
            if !ok && args.verbose {
                println!("  {:<16} language {expected_lang} -> {}", c.id, decision.language.unwrap_or("?"));
            }
        }
        policy_errors += u32::from(decision.policy_error.is_some());
        // the first candidate the walk would try
        let first = decision.entries.iter().filter(|e| e.rank.is_some()).min_by_key(|e| e.rank);
        if let Some(e) = first {
            routed += 1;
            let snapshot = app.registry.snapshot();
            let info = snapshot
                .providers
                .iter()
                .find(|p| p.id == e.provider)
                .and_then(|p| p.models.iter().find(|m| m.info.id == e.model))
                .map(|m| m.info.clone());
            let caps = info.as_ref().map(|i| i.capabilities).unwrap_or_default();
            use crate::bindings::wit::Capabilities as C;
            let ok = (!c.tools || caps.contains(C::TOOLS))
                && (!c.image || caps.contains(C::VISION))
                && info.as_ref().and_then(|i| i.context_window).is_none_or(|w| w >= decision.needed_context);
            capable += u32::from(ok);
            if matches!(want, Task::Code | Task::Math | Task::Reasoning) {
                hard_n += 1;
                strong += u32::from(e.quality >= 75);
            }
        }
    }
    let total = u32::try_from(cases.len()).unwrap_or(u32::MAX).max(1);
    let pct = |a: u32, b: u32| f64::from(a) * 100.0 / f64::from(b.max(1));
    println!("labelled prompts: {} ({})", cases.len(), args.file.display());
    println!("\nconfusion matrix (rows: label, columns: classifier)\n");
    print!("{:>11}", "");
    for t in Task::ALL {
        print!("{:>11}", t.as_str());
    }
    println!();
    for (i, row) in matrix.iter().enumerate() {
        print!("{:>11}", Task::ALL[i].as_str());
        for v in row {
            print!("{v:>11}");
        }
        println!();
    }
    let accuracy = f64::from(loose) / f64::from(total);
    println!("\nper class (precision = right / classified as, recall = right / labelled as)\n");
    for (i, t) in Task::ALL.iter().enumerate() {
        let labelled: u32 = matrix[i].iter().sum();
        let called: u32 = matrix.iter().map(|row| row[i]).sum();
        if labelled + called == 0 {
            continue;
        }
        let right = matrix[i][i];
        println!(
            "{:>11}  precision {:>5.1} %  recall {:>5.1} %  ({right}/{called} classified, {right}/{labelled} labelled)",
            t.as_str(),
            pct(right, called),
            pct(right, labelled)
        );
    }
    println!("\ncalibration (how often a label given with this confidence was right)\n");
    let mut ece = 0f64;
    for (lo, hi) in [(0.0, 0.5), (0.5, 0.6), (0.6, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 1.01)] {
        let bin: Vec<&(f32, bool)> = calibration.iter().filter(|(p, _)| (lo..hi).contains(&f64::from(*p))).collect();
        if bin.is_empty() {
            continue;
        }
        let n = bin.len() as f64;
        let mean = bin.iter().map(|(p, _)| f64::from(*p)).sum::<f64>() / n;
        let right = bin.iter().filter(|(_, ok)| *ok).count() as f64 / n;
        ece += n / f64::from(total) * (right - mean).abs();
        println!(
            "  confidence {lo:.1}-{:.1}: {:>4} prompts, mean confidence {:.2}, right {:.2}",
            hi.min(1.0),
            bin.len(),
            mean,
            right
        );
    }
    println!("  expected calibration error {ece:.3}, log loss {:.3}", log_loss / f64::from(total));
    println!();
    println!("classifier accuracy (creative/general as one class): {loose}/{total} = {:.1} %", pct(loose, total));
    println!("classifier accuracy (all eight classes):            {strict}/{total} = {:.1} %", pct(strict, total));
    println!("language detected:                                   {lang_ok}/{lang_n} = {:.1} %", pct(lang_ok, lang_n));
    println!(
        "auto put a capable model first (tools, images, context): {capable}/{routed} = {:.1} %",
        pct(capable, routed)
    );
    println!(
        "auto put a strong model (quality >= 75) first for code/math/reasoning: {strong}/{hard_n} = {:.1} %",
        pct(strong, hard_n)
    );
    if policy_errors > 0 {
        println!("the policy failed on {policy_errors} request(s); the host's order was used");
    }
    // more passes, for timing only; with them, the figures are of warm passes (the first pass,
    // each text seen for the first time, is reported on its own line)
    let bodies: Vec<Vec<u8>> = cases.iter().map(|c| serde_json::to_vec(&request(c)).unwrap_or_default()).collect();
    let first_sight = (
        percentile(&mut classify_times.clone(), 99),
        percentile(&mut times.clone(), 99),
        percentile(&mut both.clone(), 99),
    );
    if args.repeat > 1 {
        times.clear();
        classify_times.clear();
        policy_times.clear();
        both.clear();
    }
    for _ in 1..args.repeat.max(1) {
        for body in &bodies {
            if let Ok(d) = crate::pipeline::explain::dry_run(
                app.services(),
                &app.registry.snapshot(),
                body,
                crate::principal::Principal::Anyone,
                false,
            )
            .await
            {
                times.push(d.cost.as_secs_f64() * 1e6);
                classify_times.push(d.classify_cost.as_secs_f64() * 1e6);
                policy_times.push(d.policy_cost.as_secs_f64() * 1e6);
                both.push((d.classify_cost + d.policy_cost).as_secs_f64() * 1e6);
            }
        }
    }
    let policy = app.registry.snapshot().config.routing.policy.clone();
    let passes = if args.repeat > 1 { format!("{} warm passes", args.repeat - 1) } else { "one pass".to_owned() };
    println!("per request, {} decisions ({passes}), policy `{policy}` (this build):", times.len());
    for (what, list) in [
        ("classify (text, classifier, language, rules)", &mut classify_times),
        ("policy rank call", &mut policy_times),
        ("classify + rank (per request)", &mut both),
        ("whole decision (+ candidates, quota, stats)", &mut times),
    ] {
        let p50 = percentile(list, 50);
        println!("  {what:<46} p50 {p50:>7.1} µs   p99 {:>7.1} µs", percentile(list, 99));
    }
    if args.repeat > 1 {
        println!(
            "  first sight of each text: classify p99 {:.1} µs, classify + rank p99 {:.1} µs, whole decision p99 {:.1} µs",
            first_sight.0, first_sight.2, first_sight.1
        );
    }
    if accuracy < args.min_accuracy || capable < routed || routed < total {
        eprintln!(
            "freeway eval-routing: below target (accuracy {:.1} % < {:.0} %, or a request without a capable first choice)",
            accuracy * 100.0,
            args.min_accuracy * 100.0
        );
        return 1;
    }
    0
}
