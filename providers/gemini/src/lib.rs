//! `gemini`: Freeway's provider component for Google's native Gemini API
//! (`generativelanguage.googleapis.com/v1beta`, `models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse`).
//!
//! The client's OpenAI chat request is translated into a `generateContent` request
//! ([`request`]), and Gemini's answers back into OpenAI completions and chunks ([`response`]).
//! The host attaches the account's key as `x-goog-api-key`; the component never sees it.
//!
//! Where the two APIs differ (see each module for the details):
//! - system and developer messages, wherever they appear, are joined into one
//!   `systemInstruction`; consecutive turns of one role are merged (Gemini wants user and model
//!   turns to alternate); tool results are `functionResponse` parts of a user turn, named after
//!   the call they answer;
//! - tool and response schemas are cut down to the OpenAPI subset Gemini accepts ([`schema`]);
//! - `n` > 1 works without streaming only; `logprobs`, `logit_bias`, audio output and the legacy
//!   `functions` are refused with a 400 naming the parameter; `parallel_tool_calls`, `user`,
//!   `store`, `metadata`, `service_tier` and similar have no Gemini counterpart and are ignored;
//! - `reasoning_effort` sets `thinkingBudget` (Gemini 2.x) or `thinkingLevel` (later) and asks
//!   for thought summaries, which come back as `reasoning_content`;
//! - Gemini 3 requires the thought signatures of earlier function calls: they are returned on
//!   tool calls as `extra_content.google.thought_signature` (as Google's OpenAI endpoint does) and
//!   read back from there; when a client dropped them, Gemini's documented placeholder is sent.
//!
//! Embeddings go to `models/{model}:batchEmbedContents` ([`embed`]).
//!
//! Settings (`[providers.settings]`):
//! - `safety_threshold = "BLOCK_NONE"` (or `OFF`, `BLOCK_ONLY_HIGH`, ...): one threshold for the
//!   harassment, hate speech, sexually explicit and dangerous content categories;
//! - `include_thoughts = "true"`: always ask for thought summaries (`reasoning_content`).

use freeway_sdk::http::{get_request, request_json};
use freeway_sdk::types::*;
use freeway_sdk::{Provider, errors, export_provider, translate};

pub mod embed;
pub mod models;
pub mod quota;
pub mod request;
pub mod response;
pub mod schema;

use freeway_sdk::translate::RequestState;
use response::Translator;

/// The translation state of the request this instance serves (set by `chat`).
static STATE: RequestState<Translator> = RequestState::new();

/// Run `f` on the current request's translator (a fresh one if `chat` did not run).
fn with_translator<T>(f: impl FnOnce(&mut Translator) -> T) -> T {
    STATE.with(|| Translator::new(&translate::new_id("chatcmpl"), "gemini", translate::now_secs()), f)
}

pub struct Gemini;

impl Provider for Gemini {
    fn manifest() -> ProviderManifest {
        ProviderManifest {
            id: "gemini".to_owned(),
            name: "Google Gemini (native API)".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            allowed_hosts: vec!["generativelanguage.googleapis.com".to_owned(), "$base_url".to_owned()],
            auth: AuthStyle::Header("x-goog-api-key".to_owned()),
            default_base_url: Some("https://generativelanguage.googleapis.com/v1beta".to_owned()),
            needs_body: true,
            limit_headers: Vec::new(),
            models: Vec::new(),
        }
    }

    fn chat(req: ChatRequest) -> Result<UpstreamCall, ProviderError> {
        STATE.clear();
        let body = req.body.as_deref().ok_or_else(|| errors::bad_request("the request body is missing"))?;
        let gemini_body = request::build(body, &req.model, req.streaming, &req.config)?;
        STATE.begin(Translator::new(&translate::new_id("chatcmpl"), &req.model, translate::now_secs()));
        Ok(UpstreamCall {
            method: "POST".to_owned(),
            url: request::url(&req.config.base_url, &req.model, req.streaming),
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            body: RequestBody::Replace(gemini_body.to_string()),
            response: ResponseFormat::Translate,
            framing: StreamFraming::Sse,
        })
    }

    fn embed(req: freeway_sdk::provider::EmbedRequest) -> Result<UpstreamCall, ProviderError> {
        Ok(embed::plan(&req))
    }

    fn translate_embeddings(body: String) -> Result<freeway_sdk::provider::EmbedResponse, ProviderError> {
        embed::translate(&body)
    }

    fn translate_response(body: String) -> Result<String, ProviderError> {
        with_translator(|t| t.response(&body))
    }

    fn translate_event(event: SseEvent) -> Result<Vec<String>, ProviderError> {
        with_translator(|t| t.event(&event.data))
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
        _headers: Headers,
        body: Option<String>,
    ) -> Vec<QuotaUpdate> {
        body.map(|b| quota::quota_updates(status, &b)).unwrap_or_default()
    }

    fn list_models(config: ProviderConfig, account: Option<Credential>) -> Result<Vec<ModelInfo>, ProviderError> {
        freeway_sdk::provider::all_pages(models::MAX_PAGES, |token| {
            let req = get_request(models::page_url(&config.base_url, token), Vec::new());
            let page = request_json(&req, account, "the Gemini model list", quota::map_error)?;
            Ok((models::from_page(&page), models::next_token(&page).map(str::to_owned)))
        })
    }

    fn check(config: ProviderConfig, account: Credential) -> Result<(), ProviderError> {
        Self::list_models(config, Some(account)).map(|_| ())
    }
}

export_provider!(Gemini);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_names_the_native_api() {
        let m = Gemini::manifest();
        assert_eq!(m.id, "gemini");
        assert_eq!(m.auth, AuthStyle::Header("x-goog-api-key".into()));
        assert!(m.needs_body);
        assert!(m.limit_headers.is_empty());
        assert!(m.models.is_empty());
        assert_eq!(m.default_base_url.as_deref(), Some("https://generativelanguage.googleapis.com/v1beta"));
        assert!(m.allowed_hosts.contains(&"$base_url".to_owned()));
    }

    #[test]
    fn parse_limits_reads_error_bodies_only() {
        let config = ProviderConfig { provider_id: "g".into(), base_url: "http://x".into(), settings: Vec::new() };
        assert!(Gemini::parse_limits(config.clone(), 0, 200, Vec::new(), None).is_empty());
        let body = r#"{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaId":"GenerateRequestsPerMinutePerProjectPerModel-FreeTier","quotaValue":"10"}]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"8s"}]}}"#;
        let u = Gemini::parse_limits(config, 0, 429, Vec::new(), Some(body.into()));
        assert_eq!(u.len(), 1);
        assert_eq!((u[0].window, u[0].remaining, u[0].reset_after_ms), (LimitWindow::Minute, Some(0), Some(8000)));
    }
}
