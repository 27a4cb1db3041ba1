//! `openai-compat`: Freeway's provider component for any OpenAI-compatible upstream.
//!
//! The host passes the client's body through (model rewritten, usage reporting injected for
//! streams) and pipes JSON and SSE responses natively: this component plans each call from the
//! parameter names alone and never sees a request or response body on the success path.
//!
//! Provider quirks are data, read from the provider's `settings`:
//! - `drop_params = "logprobs,logit_bias"`: parameters the upstream rejects, removed when present
//! - `rename_params = "max_tokens:max_completion_tokens"`: parameters it names differently
//! - `requests_window` / `tokens_window` (`minute`, `day`, ...): what its `x-ratelimit-*-requests`
//!   and `-tokens` headers count (Groq: requests per day, tokens per minute)
//! - `chat_path` (default `chat/completions`)
//! - `embeddings_path` (default `embeddings`): where embeddings requests go (`POST /v1/embeddings`
//!   for models marked `embeddings = true`); the body is the OpenAI one, answered natively
//! - `key_info_path` (OpenRouter: `key`): the upstream reports quota only through this endpoint;
//!   with the provider's `poll_limits`, it is read (at most twice a minute per account) after
//!   responses, off the request path

use freeway_sdk::errors;
use freeway_sdk::provider::{EmbedRequest, openai_embeddings, openai_passthrough, setting};
use freeway_sdk::types::*;
use freeway_sdk::{Provider, export_provider, limits};

pub struct OpenAiCompat;

/// Comma-separated list setting.
fn list<'a>(config: &'a ProviderConfig, key: &str) -> impl Iterator<Item = &'a str> {
    setting(config, key).unwrap_or_default().split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// The body edits this provider's quirks call for, given the parameters present.
pub fn quirk_edits(config: &ProviderConfig, params: &[String]) -> Vec<BodyEdit> {
    let present = |p: &str| params.iter().any(|q| q == p);
    let mut edits: Vec<BodyEdit> =
        list(config, "drop_params").filter(|p| present(p)).map(|p| BodyEdit::Remove(p.to_owned())).collect();
    for pair in list(config, "rename_params") {
        if let Some((from, to)) = pair.split_once(':')
            && present(from.trim())
        {
            edits.push(BodyEdit::Rename((from.trim().to_owned(), to.trim().to_owned())));
        }
    }
    edits
}

/// Read the upstream's key-info endpoint (OpenRouter's `GET /key`), paced per account.
fn poll_key_info(config: &ProviderConfig, account: Credential, path: &str) -> Vec<QuotaUpdate> {
    use freeway_sdk::provider::bindings::freeway::gateway::{clock, credentials, rate_limit};
    let bucket = format!("key-info:{}:{}", config.provider_id, credentials::label(account));
    if rate_limit::acquire(&bucket, 2, 1).is_err() {
        return Vec::new();
    }
    let url = freeway_sdk::provider::join_url(&config.base_url, path);
    match freeway_sdk::http::get_json(&url, Some(account)) {
        Ok(body) => limits::openrouter_key_info(&body, clock::now_ms()),
        Err(e) => {
            freeway_sdk::provider::log(LogLevel::Warn, &format!("reading {path} failed: {}", e.message));
            Vec::new()
        }
    }
}

fn window(config: &ProviderConfig, key: &str) -> LimitWindow {
    setting(config, key).and_then(limits::window_from_name).unwrap_or(LimitWindow::Minute)
}

impl Provider for OpenAiCompat {
    fn manifest() -> ProviderManifest {
        ProviderManifest {
            id: "openai-compat".to_owned(),
            name: "OpenAI-compatible upstream".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            allowed_hosts: vec!["$base_url".to_owned()],
            auth: AuthStyle::Bearer,
            default_base_url: None,
            needs_body: false,
            limit_headers: vec!["x-ratelimit-".to_owned()],
            models: Vec::new(),
        }
    }

    fn embed(req: EmbedRequest) -> Result<UpstreamCall, ProviderError> {
        let path = setting(&req.config, "embeddings_path").unwrap_or("embeddings").to_owned();
        let mut params = vec!["model".to_owned(), "input".to_owned(), "encoding_format".to_owned()];
        if req.dimensions.is_some() {
            params.push("dimensions".to_owned());
        }
        Ok(openai_embeddings(&req, &path, quirk_edits(&req.config, &params)))
    }

    fn chat(req: ChatRequest) -> Result<UpstreamCall, ProviderError> {
        let edits = quirk_edits(&req.config, &req.params);
        let path = setting(&req.config, "chat_path").unwrap_or("chat/completions").to_owned();
        Ok(openai_passthrough(&req, &path, edits))
    }

    fn map_error(_config: ProviderConfig, status: u16, headers: Headers, body: String) -> ProviderError {
        errors::from_response(status, &headers, &body)
    }

    fn parse_limits(
        config: ProviderConfig,
        account: Credential,
        _status: u16,
        headers: Headers,
        _body: Option<String>,
    ) -> Vec<QuotaUpdate> {
        let mut updates =
            limits::ratelimit_headers(&headers, window(&config, "requests_window"), window(&config, "tokens_window"));
        if let Some(path) = setting(&config, "key_info_path") {
            updates.extend(poll_key_info(&config, account, path));
        }
        updates
    }
}

export_provider!(OpenAiCompat);

#[cfg(test)]
mod tests {
    use super::*;

    fn config(settings: &[(&str, &str)]) -> ProviderConfig {
        ProviderConfig {
            provider_id: "p".into(),
            base_url: "http://127.0.0.1:9000/v1/".into(),
            settings: settings.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        }
    }

    #[test]
    fn quirks_apply_only_to_present_params() {
        let c =
            config(&[("drop_params", "logprobs, logit_bias"), ("rename_params", "max_tokens:max_completion_tokens")]);
        let params: Vec<String> =
            ["model", "messages", "logprobs", "max_tokens"].iter().map(|s| (*s).to_owned()).collect();
        let edits = quirk_edits(&c, &params);
        assert_eq!(
            edits,
            vec![
                BodyEdit::Remove("logprobs".into()),
                BodyEdit::Rename(("max_tokens".into(), "max_completion_tokens".into()))
            ]
        );
    }

    #[test]
    fn plan_posts_to_chat_completions() {
        let req = ChatRequest {
            config: config(&[]),
            account: 0,
            model: "m".into(),
            streaming: true,
            params: vec!["model".into(), "messages".into()],
            body: None,
        };
        let call = OpenAiCompat::chat(req).unwrap();
        assert_eq!(call.url, "http://127.0.0.1:9000/v1/chat/completions");
        assert_eq!(call.response, ResponseFormat::Openai);
        assert!(call.headers.iter().any(|(k, v)| k == "accept" && v == "text/event-stream"));
        assert_eq!(call.body, RequestBody::Passthrough(Vec::new()));
    }

    #[test]
    fn groq_windows_come_from_settings() {
        let h: Headers = vec![
            ("x-ratelimit-limit-requests".into(), "1000".into()),
            ("x-ratelimit-remaining-requests".into(), "999".into()),
        ];
        let u = OpenAiCompat::parse_limits(config(&[("requests_window", "day")]), 0, 200, h, None);
        assert_eq!(u[0].window, LimitWindow::Day);
    }
}
