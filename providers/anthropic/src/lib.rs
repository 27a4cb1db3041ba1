//! `anthropic`: Freeway's provider component for Anthropic's native Messages API
//! (`POST {base}/messages`, `GET {base}/models`; base `https://api.anthropic.com/v1`).
//!
//! The client's OpenAI chat request is translated into a Messages request ([`request`]), and
//! Anthropic's answers back into OpenAI completions and chunks ([`response`]). The host attaches
//! the account's key as `x-api-key`; the component adds `anthropic-version: 2023-06-01`.
//!
//! Where the two APIs differ (see each module for the details):
//! - `max_tokens` is required by Anthropic: the client's `max_completion_tokens` /
//!   `max_tokens`, else the `default_max_tokens` setting (4096);
//! - system and developer messages become the top-level `system`; consecutive turns of one role
//!   are merged; tool results are `tool_result` blocks of a user turn;
//! - `temperature` is clamped to Anthropic's 0..1; `user` becomes `metadata.user_id`;
//!   `seed`, `presence_penalty`, `frequency_penalty`, `store`, `service_tier` and OpenAI's
//!   `metadata` have no counterpart and are ignored; `n` > 1, `logprobs`, `logit_bias`, audio
//!   and the legacy `functions` are refused with a 400 naming the parameter;
//! - JSON mode (`response_format` `json_object` / `json_schema`) has no Anthropic counterpart:
//!   it is a tool (`json_response`, the schema as its input schema) that the request forces,
//!   and whose input comes back as the message's JSON content;
//! - `reasoning_effort` turns on extended thinking (thinking comes back as
//!   `reasoning_content`, and as `thinking_blocks` to replay); thinking excludes sampling
//!   parameters and forced tool choices.
//!
//! Settings (`[providers.settings]`):
//! - `default_max_tokens = "4096"`: `max_tokens` when the client sends none;
//! - `anthropic_version = "2023-06-01"`, `anthropic_beta = "..."` (sent as `anthropic-beta`);
//! - `thinking = "budget" | "adaptive"`: how `reasoning_effort` is expressed (default: budgets
//!   before Claude 4.6, adaptive thinking with `output_config.effort` from 4.6 on);
//! - `thinking_budget = "8192"`: one budget for every effort (defaults: minimal 1024, low 2048,
//!   medium 8192, high 16384, xhigh 32768);
//! - `forced_tool_choice = "false"`: JSON mode asks for its tool instead of forcing it (for
//!   models that refuse a forced `tool_choice`; `claude-sonnet-5-5` is known to).

use freeway_sdk::http::{get_request, request_json};
use freeway_sdk::provider::{join_url, setting};
use freeway_sdk::types::*;
use freeway_sdk::{Provider, errors, export_provider, translate};

pub mod models;
pub mod quota;
pub mod request;
pub mod response;

use freeway_sdk::translate::RequestState;
use response::Translator;

/// The translation state of the request this instance serves (set by `chat`).
static STATE: RequestState<Translator> = RequestState::new();

/// Run `f` on the current request's translator (a fresh one if `chat` did not run).
fn with_translator<T>(f: impl FnOnce(&mut Translator) -> T) -> T {
    STATE.with(|| Translator::new(&translate::new_id("chatcmpl"), "anthropic", translate::now_secs(), None), f)
}

fn now_ms() -> u64 {
    freeway_sdk::provider::bindings::freeway::gateway::clock::now_ms()
}

/// The headers every Anthropic call carries (the host adds `x-api-key`).
pub fn api_headers(config: &ProviderConfig) -> Vec<(String, String)> {
    let version = setting(config, "anthropic_version").map(str::trim).filter(|v| !v.is_empty());
    let mut headers = vec![("anthropic-version".to_owned(), version.unwrap_or(request::API_VERSION).to_owned())];
    if let Some(beta) = setting(config, "anthropic_beta").map(str::trim).filter(|b| !b.is_empty()) {
        headers.push(("anthropic-beta".to_owned(), beta.to_owned()));
    }
    headers
}

/// `GET url` as the account, with the API headers; the body as JSON.
fn get_json(
    config: &ProviderConfig,
    url: String,
    account: Option<Credential>,
) -> Result<serde_json::Value, ProviderError> {
    request_json(
        &get_request(url, api_headers(config)),
        account,
        "the Anthropic model list",
        |status, headers, text| quota::map_error(status, headers, text, now_ms()),
    )
}

pub struct Anthropic;

impl Provider for Anthropic {
    fn manifest() -> ProviderManifest {
        ProviderManifest {
            id: "anthropic".to_owned(),
            name: "Anthropic (Messages API)".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            allowed_hosts: vec!["api.anthropic.com".to_owned(), "$base_url".to_owned()],
            auth: AuthStyle::Header("x-api-key".to_owned()),
            default_base_url: Some("https://api.anthropic.com/v1".to_owned()),
            needs_body: true,
            limit_headers: vec!["anthropic-ratelimit-".to_owned()],
            models: Vec::new(),
        }
    }

    fn chat(req: ChatRequest) -> Result<UpstreamCall, ProviderError> {
        STATE.clear();
        let body = req.body.as_deref().ok_or_else(|| errors::bad_request("the request body is missing"))?;
        let plan = request::build(body, &req.model, req.streaming, &req.config)?;
        STATE.begin(Translator::new(
            &translate::new_id("chatcmpl"),
            &req.model,
            translate::now_secs(),
            plan.json_tool.clone(),
        ));
        let mut headers = api_headers(&req.config);
        headers.push(("content-type".to_owned(), "application/json".to_owned()));
        if req.streaming {
            headers.push(("accept".to_owned(), "text/event-stream".to_owned()));
        }
        Ok(UpstreamCall {
            method: "POST".to_owned(),
            url: join_url(&req.config.base_url, "messages"),
            headers,
            body: RequestBody::Replace(plan.body.to_string()),
            response: ResponseFormat::Translate,
            framing: StreamFraming::Sse,
        })
    }

    fn translate_response(body: String) -> Result<String, ProviderError> {
        with_translator(|t| t.response(&body))
    }

    fn translate_event(event: SseEvent) -> Result<Vec<String>, ProviderError> {
        with_translator(|t| t.event(event.event.as_deref(), &event.data))
    }

    fn finish_stream() -> Result<Vec<String>, ProviderError> {
        Ok(with_translator(Translator::finish))
    }

    fn map_error(_config: ProviderConfig, status: u16, headers: Headers, body: String) -> ProviderError {
        quota::map_error(status, &headers, &body, now_ms())
    }

    fn parse_limits(
        _config: ProviderConfig,
        _account: Credential,
        _status: u16,
        headers: Headers,
        _body: Option<String>,
    ) -> Vec<QuotaUpdate> {
        quota::quota_updates(&headers, now_ms())
    }

    fn list_models(config: ProviderConfig, account: Option<Credential>) -> Result<Vec<ModelInfo>, ProviderError> {
        freeway_sdk::provider::all_pages(models::MAX_PAGES, |after| {
            let page = get_json(&config, models::page_url(&config.base_url, after, 1000), account)?;
            Ok((models::from_page(&page), models::next_after(&page).map(str::to_owned)))
        })
    }

    fn check(config: ProviderConfig, account: Credential) -> Result<(), ProviderError> {
        get_json(&config, models::page_url(&config.base_url, None, 1), Some(account)).map(|_| ())
    }
}

export_provider!(Anthropic);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_names_the_messages_api() {
        let m = Anthropic::manifest();
        assert_eq!(m.id, "anthropic");
        assert_eq!(m.auth, AuthStyle::Header("x-api-key".into()));
        assert!(m.needs_body);
        assert_eq!(m.limit_headers, ["anthropic-ratelimit-"]);
        assert!(m.models.is_empty());
        assert_eq!(m.default_base_url.as_deref(), Some("https://api.anthropic.com/v1"));
        assert_eq!(m.allowed_hosts, ["api.anthropic.com", "$base_url"]);
    }

    #[test]
    fn api_headers_follow_the_settings() {
        let mut config = ProviderConfig {
            provider_id: "a".into(),
            base_url: "https://api.anthropic.com/v1".into(),
            settings: Vec::new(),
        };
        assert_eq!(api_headers(&config), [("anthropic-version".to_owned(), "2023-06-01".to_owned())]);
        config.settings = vec![
            ("anthropic_version".into(), "2024-01-01".into()),
            ("anthropic_beta".into(), "files-api-2025-04-14".into()),
        ];
        assert_eq!(
            api_headers(&config),
            [
                ("anthropic-version".to_owned(), "2024-01-01".to_owned()),
                ("anthropic-beta".to_owned(), "files-api-2025-04-14".to_owned()),
            ]
        );
    }
}
