//! `freeway-bench --fleet`, part two: does `auto` spread scarce daily quota sensibly?
//!
//! Two providers: `strong` serves a 70B model with only `STRONG_RPD` requests a day, `small`
//! an 8B model with plenty. `TOTAL` requests go to `auto` at `RATE` per second, one in four
//! a coding request (where the strong model matters), the rest small talk. The same traffic
//! runs twice: ranked by the `smart` policy (quality for the task, daily pacing), and by the
//! host's fallback order (quality first, no pacing). The report says, for each, how many of
//! the strong model's daily requests went to coding vs small talk, whether the strong model
//! ran dry, and which model the last coding requests got.

use std::time::Duration;

use serde_json::{Value, json};

use crate::procs::{Proc, root};

const STRONG_RPD: u64 = 60;
const TOTAL: usize = 200;
const RATE: f64 = 10.0;
const EASY: &str =
    r#"{"model":"auto","messages":[{"role":"user","content":"Say one short thing about the sea."}],"max_tokens":20}"#;
const CODE: &str = r#"{"model":"auto","messages":[{"role":"user","content":"Write a Python function that merges two sorted lists, with unit tests."}],"max_tokens":20}"#;

fn sim_config() -> Value {
    json!({ "record": false, "upstreams": [
        { "prefix": "/strong/v1", "keys": ["sk-strong"], "models": ["strong-70b"], "latency_ms": 20, "reply_tokens": 20,
          "limits": { "rpd": STRONG_RPD } },
        { "prefix": "/small/v1", "keys": ["sk-small"], "models": ["small-8b"], "latency_ms": 20, "reply_tokens": 20,
          "limits": { "rpd": 100_000 } },
    ] })
}

fn gateway_config(dir: &std::path::Path, sim_port: u16, policy: &str) -> String {
    format!(
        "[runtime]\nproviders_dir = \"{root}/providers\"\npolicies_dir = \"{dir}/policies\"\ncache_dir = \"{dir}/component-cache\"\nwatch = false\n\n\
         [discovery]\ninterval_secs = 0\nstate_file = \"{dir}/models.json\"\n\n\
         [storage]\nurl = \"sqlite://{dir}/freeway.db\"\n\n[quota]\nstate_file = \"{dir}/quota.json\"\n\n\
         [routing]\npolicy = \"{policy}\"\nstats_file = \"{dir}/route-stats.json\"\n\n\
         [upstream]\negress_hosts = [\"127.0.0.1\"]\n\n\
         [vault]\npath = \"{dir}/vault.json\"\nkey_file = \"{dir}/master.key\"\naudit_log = \"{dir}/audit.log\"\nhealth_file = \"{dir}/health.json\"\n\n\
         [[providers]]\nid = \"strong\"\ncomponent = \"openai-compat\"\nbase_url = \"http://127.0.0.1:{sim_port}/strong/v1\"\n\
         api_keys = [\"sk-strong\"]\nmodels = [{{ id = \"strong-70b\", context_window = 131072 }}]\nlimits = {{ rpd = {STRONG_RPD} }}\n\n\
         [[providers]]\nid = \"small\"\ncomponent = \"openai-compat\"\nbase_url = \"http://127.0.0.1:{sim_port}/small/v1\"\n\
         api_keys = [\"sk-small\"]\nmodels = [{{ id = \"small-8b\", context_window = 131072 }}]\n",
        root = root().display(),
        dir = dir.display(),
    )
}

/// One run: `policy` ranks `auto` (a name with no component = the host's fallback order).
async fn run_with(policy: &str, label: &str, cores: &str) -> Result<Value, String> {
    let dir = root().join("target/bench/spread");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("policies")).map_err(|e| e.to_string())?;
    std::fs::copy(root().join("policies/smart.wasm"), dir.join("policies/smart.wasm"))
        .map_err(|e| format!("policies/smart.wasm: {e} (run `cargo xtask build`)"))?;
    let (sim, gw) = Proc::sim_and_gateway(cores, &dir, &sim_config(), |port| gateway_config(&dir, port, policy))?;
    let client = reqwest::Client::builder().no_proxy().build().map_err(|e| e.to_string())?;
    let url = format!("http://127.0.0.1:{}/v1/chat/completions", gw.port);
    let interval = Duration::from_secs_f64(1.0 / RATE);
    let mut served = Vec::with_capacity(TOTAL);
    let mut refused = 0usize;
    for i in 0..TOTAL {
        let code = i % 4 == 3;
        let r = client
            .post(&url)
            .header("content-type", "application/json")
            .body(if code { CODE } else { EASY })
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        match r {
            Ok(r) if r.status().is_success() => {
                let route = r.headers().get("x-freeway-route").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                let _ = r.bytes().await;
                served.push((code, route.contains("model=strong-70b")));
            }
            _ => refused += 1,
        }
        tokio::time::sleep(interval).await;
    }
    let strong_code = served.iter().filter(|(c, s)| *c && *s).count();
    let strong_easy = served.iter().filter(|(c, s)| !*c && *s).count();
    let codes = served.iter().filter(|(c, _)| *c).count();
    let last_codes: Vec<bool> = served.iter().filter(|(c, _)| *c).rev().take(10).map(|(_, s)| *s).collect();
    let last_code_on_strong = last_codes.iter().filter(|s| **s).count();
    println!(
        "  {label:<38} strong model: {strong_code:>3} coding + {strong_easy:>3} small-talk requests of its {STRONG_RPD}/day; \
         coding on strong {strong_code}/{codes}; last 10 coding requests on strong: {last_code_on_strong}/10; refused {refused}"
    );
    drop(gw);
    drop(sim);
    Ok(json!({
        "policy": label,
        "strong_rpd": STRONG_RPD,
        "strong_used_for_code": strong_code,
        "strong_used_for_small_talk": strong_easy,
        "coding_requests": codes,
        "last_10_coding_on_strong": last_code_on_strong,
        "refused": refused,
    }))
}

pub async fn run(cores: &str) -> Result<Value, String> {
    println!(
        "\nDaily quota spread: `auto` over strong-70b ({STRONG_RPD} requests/day) and small-8b (plenty); \
         {TOTAL} requests at {RATE}/s, one in four a coding request"
    );
    let smart = run_with("smart", "smart policy (quality + daily pacing)", cores).await?;
    let naive = run_with("no-such-policy", "host order (quality first, no pacing)", cores).await?;
    Ok(json!({ "smart": smart, "host_order": naive }))
}
