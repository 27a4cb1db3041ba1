//! Per-request cost of policy routing: classification, and the policy's `rank` call, for the
//! Rust (`smart`), Python and JavaScript policies, measured by `freeway eval-routing --repeat`
//! on the labelled prompt set over the catalog fleet (`tests/eval/fleet.toml`, ~95 models).

use serde_json::{Value, json};

use crate::procs::root;

/// (policy name, built component relative to the repository)
const POLICIES: &[(&str, &str)] = &[
    ("smart", "policies/smart.wasm"),
    ("python-example", "tests/guests/python-example.wasm"),
    ("js-example", "tests/guests/js-example.wasm"),
];

/// "  classify (...)   p50    3.1 µs   p99    9.0 µs" -> (3.1, 9.0)
fn figures(line: &str) -> Option<(f64, f64)> {
    let mut nums = line.split_whitespace().filter_map(|w| w.parse::<f64>().ok());
    Some((nums.next()?, nums.next()?))
}

pub fn measure(repeat: u32) -> Result<Value, String> {
    let dir = root().join("target/bench/routing-policies");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut out = serde_json::Map::new();
    for (name, file) in POLICIES {
        let src = root().join(file);
        if !src.exists() {
            println!("  {name}: {} is missing (built by `cargo xtask test`), skipped", src.display());
            continue;
        }
        std::fs::copy(&src, dir.join(format!("{name}.wasm"))).map_err(|e| e.to_string())?;
    }
    for (name, _) in POLICIES {
        if !dir.join(format!("{name}.wasm")).exists() {
            continue;
        }
        let output = std::process::Command::new(root().join("target/release/freeway"))
            .current_dir(root())
            .args(["eval-routing", "--min-accuracy", "0", "--policy", name, "--repeat", &repeat.to_string()])
            .arg("--policies-dir")
            .arg(&dir)
            .output()
            .map_err(|e| format!("freeway eval-routing: {e}"))?;
        let text = String::from_utf8_lossy(&output.stdout);
        let find = |prefix: &str| text.lines().find(|l| l.trim_start().starts_with(prefix)).and_then(figures);
        let (Some(c), Some(p), Some(b), Some(w)) =
            (find("classify ("), find("policy rank call"), find("classify + rank"), find("whole decision"))
        else {
            return Err(format!("freeway eval-routing --policy {name} printed no timings:\n{text}"));
        };
        println!(
            "  {name:<15} classify p50/p99 {:>5.1}/{:>5.1} µs   rank {:>6.1}/{:>6.1} µs   classify+rank {:>6.1}/{:>6.1} µs   whole decision {:>6.1}/{:>6.1} µs",
            c.0, c.1, p.0, p.1, b.0, b.1, w.0, w.1
        );
        out.insert(
            (*name).to_owned(),
            json!({ "classify_p50_us": c.0, "classify_p99_us": c.1, "rank_p50_us": p.0, "rank_p99_us": p.1,
                    "classify_and_rank_p50_us": b.0, "classify_and_rank_p99_us": b.1,
                    "decision_p50_us": w.0, "decision_p99_us": w.1 }),
        );
    }
    Ok(Value::Object(out))
}
