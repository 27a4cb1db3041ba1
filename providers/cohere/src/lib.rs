//! `cohere`: Freeway's provider component for Cohere's native Chat API v2
//! (`POST https://api.cohere.com/v2/chat`, JSON or SSE events) and its model list
//! (`GET https://api.cohere.com/v1/models`).
//!
//! The client's OpenAI chat request is translated into a Cohere v2 chat request ([`request`]),
//! and Cohere's answers and stream events back into OpenAI completions and chunks
//! ([`response`]). The host attaches the account's key as `Authorization: Bearer`; the
//! component never sees it. Errors and trial-key limits are read in [`quota`], models in
//! [`models`]; embeddings go to the v2 `/embed` ([`embed`]).
//!
//! Where the two APIs differ (see each module for the details):
//! - Cohere calls `top_p` `p` and `top_k` `k`, accepts at most 5 stop sequences, `p` between
//!   0.01 and 0.99 and penalties between 0 and 1 (values outside are clamped);
//! - `tool_choice` is only `REQUIRED` or `NONE`: a named function is expressed by sending only
//!   that tool with `REQUIRED`;
//! - Cohere writes a `tool_plan` before calling tools, and reasoning models `thinking` content:
//!   both come back as `reasoning_content`, and an assistant message's `reasoning_content` goes
//!   back to Cohere as its `tool_plan`;
//! - JSON mode and JSON schemas are `response_format: {"type": "json_object", "json_schema"}`;
//! - a generation that ends with `ERROR` or `TIMEOUT` is an error (mid-stream: the stream ends
//!   with an error), not a finish reason; citations are dropped;
//! - `n` > 1, `logprobs`, `logit_bias`, audio and the legacy `functions` are refused with a 400;
//! - limits: Cohere documents no rate-limit headers, but a trial key's answers carry
//!   `x-trial-endpoint-call-limit` / `-remaining` (calls per minute) and
//!   `x-endpoint-monthly-call-limit`, which are read as quota; its 429s carry none, and their
//!   message tells the monthly trial cap (quota exhausted) from per-minute limits (rate limited,
//!   retried after a minute).
//!
//! Settings (`[providers.settings]`):
//! - `safety_mode = "CONTEXTUAL" | "STRICT" | "OFF"`: Cohere's safety instruction for requests
//!   without tools (Cohere does not combine the two).

use freeway_sdk::http::{get_request, request_json};
use freeway_sdk::types::*;
use freeway_sdk::{Provider, errors, export_provider, translate};

pub mod embed;
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
    STATE.with(|| Translator::new(&translate::new_id("chatcmpl"), "cohere", translate::now_secs()), f)
}

/// Rate-limit headers a trial key's answers carry.
pub const LIMIT_HEADERS: &[&str] = &["x-trial-endpoint-call-", "x-endpoint-monthly-call-"];

pub struct Cohere;

impl Provider for Cohere {
    fn manifest() -> ProviderManifest {
        ProviderManifest {
            id: "cohere".to_owned(),
            name: "Cohere (native Chat API v2)".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            allowed_hosts: vec!["api.cohere.com".to_owned(), "api.cohere.ai".to_owned(), "$base_url".to_owned()],
            auth: AuthStyle::Bearer,
            default_base_url: Some("https://api.cohere.com/v2".to_owned()),
            needs_body: true,
            limit_headers: LIMIT_HEADERS.iter().map(|h| (*h).to_owned()).collect(),
            models: Vec::new(),
        }
    }

    fn chat(req: ChatRequest) -> Result<UpstreamCall, ProviderError> {
        STATE.clear();
        let body = req.body.as_deref().ok_or_else(|| errors::bad_request("the request body is missing"))?;
        let cohere_body = request::build(body, &req.model, req.streaming, &req.config)?;
        STATE.begin(Translator::new(&translate::new_id("chatcmpl"), &req.model, translate::now_secs()));
        let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        headers.push((
            "accept".to_owned(),
            if req.streaming { "text/event-stream" } else { "application/json" }.to_owned(),
        ));
        Ok(UpstreamCall {
            method: "POST".to_owned(),
            url: freeway_sdk::provider::join_url(&req.config.base_url, "chat"),
            headers,
            body: RequestBody::Replace(cohere_body.to_string()),
            response: ResponseFormat::Translate,
            framing: StreamFraming::Sse,
        })
    }

    fn embed(req: freeway_sdk::provider::EmbedRequest) -> Result<UpstreamCall, ProviderError> {
        embed::plan(&req)
    }

    fn translate_embeddings(body: String) -> Result<freeway_sdk::provider::EmbedResponse, ProviderError> {
        embed::translate(&body)
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
        quota::map_error(status, &headers, &body)
    }

    fn parse_limits(
        _config: ProviderConfig,
        _account: Credential,
        status: u16,
        headers: Headers,
        body: Option<String>,
    ) -> Vec<QuotaUpdate> {
        quota::quota_updates(status, &headers, body.as_deref())
    }

    fn list_models(config: ProviderConfig, account: Option<Credential>) -> Result<Vec<ModelInfo>, ProviderError> {
        freeway_sdk::provider::all_pages(models::MAX_PAGES, |token| {
            let req = get_request(models::page_url(&config.base_url, token), Vec::new());
            let page = request_json(&req, account, "the Cohere model list", quota::map_error)?;
            Ok((models::from_page(&page), models::next_token(&page).map(str::to_owned)))
        })
    }

    fn check(config: ProviderConfig, account: Credential) -> Result<(), ProviderError> {
        Self::list_models(config, Some(account)).map(|_| ())
    }
}

export_provider!(Cohere);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_names_the_native_api() {
        let m = Cohere::manifest();
        assert_eq!(m.id, "cohere");
        assert_eq!(m.auth, AuthStyle::Bearer);
        assert!(m.needs_body);
        assert!(m.models.is_empty());
        assert_eq!(m.default_base_url.as_deref(), Some("https://api.cohere.com/v2"));
        for host in ["api.cohere.com", "api.cohere.ai", "$base_url"] {
            assert!(m.allowed_hosts.contains(&host.to_owned()), "{host}");
        }
        assert_eq!(m.limit_headers, ["x-trial-endpoint-call-", "x-endpoint-monthly-call-"]);
    }

    #[test]
    fn parse_limits_reads_trial_headers_and_429_bodies() {
        let config = ProviderConfig { provider_id: "c".into(), base_url: "http://x/v2".into(), settings: Vec::new() };
        assert!(Cohere::parse_limits(config.clone(), 0, 200, Vec::new(), None).is_empty());
        let headers = vec![("x-trial-endpoint-call-remaining".to_owned(), "3".to_owned())];
        let u = Cohere::parse_limits(config.clone(), 0, 200, headers, None);
        assert_eq!((u[0].window, u[0].remaining), (LimitWindow::Minute, Some(3)));
        let body = r#"{"id":"x","message":"You are using a Trial key, which is limited to 1000 API calls / month."}"#;
        let u = Cohere::parse_limits(config, 0, 429, Vec::new(), Some(body.into()));
        assert_eq!((u[0].window, u[0].remaining, u[0].limit), (LimitWindow::Month, Some(0), Some(1000)));
    }
}
