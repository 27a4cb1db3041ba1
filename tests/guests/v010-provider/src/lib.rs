//! Built against `freeway:gateway@0.1.0` (the copy in `wit/`, as every component built before
//! 0.1.1 was): an OpenAI-compatible passthrough without the `embeddings` export. A 0.1.1 host
//! must still load it and serve chat through it, and refuse embeddings to it with a clear error.

wit_bindgen::generate!({ path: "wit", world: "provider" });

use exports::freeway::gateway::provider_api::Guest;
use freeway::gateway::types::*;

struct V010;

fn unsupported(what: &str) -> ProviderError {
    ProviderError {
        kind: ErrorKind::InvalidResponse,
        message: format!("{what} is not supported"),
        status: 0,
        code: None,
        retry_after_ms: None,
        window: None,
    }
}

impl Guest for V010 {
    fn manifest() -> ProviderManifest {
        ProviderManifest {
            id: "v010".into(),
            name: "built against freeway:gateway@0.1.0".into(),
            version: "0.1.0".into(),
            allowed_hosts: vec!["$base_url".into()],
            auth: AuthStyle::Bearer,
            default_base_url: None,
            needs_body: false,
            limit_headers: Vec::new(),
            models: Vec::new(),
        }
    }

    fn chat(req: ChatRequest) -> Result<UpstreamCall, ProviderError> {
        Ok(UpstreamCall {
            method: "POST".into(),
            url: format!("{}/chat/completions", req.config.base_url.trim_end_matches('/')),
            headers: vec![("content-type".into(), "application/json".into())],
            body: RequestBody::Passthrough(Vec::new()),
            response: ResponseFormat::Openai,
            framing: StreamFraming::Sse,
        })
    }

    fn translate_response(_body: String) -> Result<String, ProviderError> {
        Err(unsupported("translate-response"))
    }

    fn translate_event(_event: SseEvent) -> Result<Vec<String>, ProviderError> {
        Err(unsupported("translate-event"))
    }

    fn finish_stream() -> Result<Vec<String>, ProviderError> {
        Ok(Vec::new())
    }

    fn map_error(_config: ProviderConfig, status: u16, _headers: Headers, body: String) -> ProviderError {
        let kind = match status {
            401 => ErrorKind::Auth,
            404 => ErrorKind::NotFound,
            429 => ErrorKind::RateLimited,
            400..=499 => ErrorKind::BadRequest,
            _ => ErrorKind::Upstream,
        };
        ProviderError { kind, message: body, status, code: None, retry_after_ms: None, window: None }
    }

    fn parse_limits(
        _config: ProviderConfig,
        _account: Credential,
        _status: u16,
        _headers: Headers,
        _body: Option<String>,
    ) -> Vec<QuotaUpdate> {
        Vec::new()
    }

    fn list_models(_config: ProviderConfig, _account: Option<Credential>) -> Result<Vec<ModelInfo>, ProviderError> {
        Ok(Vec::new())
    }

    fn check(_config: ProviderConfig, _account: Credential) -> Result<(), ProviderError> {
        Ok(())
    }
}

export!(V010);
