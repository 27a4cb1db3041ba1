//! `freeway usage`: what each provider, model and account served, from the usage store.

use std::path::Path;

use super::catalog_views::table;
use crate::config;
use crate::store::Store;

pub async fn run(config_path: Option<&Path>, hours: u64) -> i32 {
    let loaded = match config::load_or_auto(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("freeway: {e}");
            return 2;
        }
    };
    let store = match Store::open(&loaded.config.storage.effective_url()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("freeway: {e}");
            return 1;
        }
    };
    let since = i64::try_from(crate::clock::now_ms()).unwrap_or(i64::MAX)
        - i64::try_from(hours.saturating_mul(3_600_000)).unwrap_or(i64::MAX);
    let rows = match store.usage_summary(since).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("freeway: reading usage: {e}");
            return 1;
        }
    };
    let mut t = table(&["PROVIDER", "MODEL", "ACCOUNT", "OUTCOME", "REQUESTS", "PROMPT TOKENS", "COMPLETION TOKENS"]);
    let (mut requests, mut prompt, mut completion) = (0, 0, 0);
    for r in &rows {
        requests += r.requests;
        prompt += r.prompt_tokens;
        completion += r.completion_tokens;
        t.add_row(vec![
            r.provider.clone(),
            r.model.clone(),
            r.account.clone(),
            r.outcome.clone(),
            r.requests.to_string(),
            r.prompt_tokens.to_string(),
            r.completion_tokens.to_string(),
        ]);
    }
    println!("{t}");
    println!("last {hours} h: {requests} requests, {prompt} prompt and {completion} completion tokens");
    0
}
