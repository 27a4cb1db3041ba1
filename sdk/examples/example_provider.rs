//! The provider from `sdk/README.md` ("a provider in 50 lines"), built by the test command and
//! served in an integration test, so the guide stays true.

use freeway_sdk::provider::{openai_passthrough, setting};
use freeway_sdk::types::*;
use freeway_sdk::{Provider, errors, export_provider, limits};

struct Example;

impl Provider for Example {
    fn manifest() -> ProviderManifest {
        ProviderManifest {
            id: "example".into(),
            name: "Example AI".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            // `$base_url` = the host of the base URL the operator configured
            allowed_hosts: vec!["api.example.ai".into(), "$base_url".into()],
            auth: AuthStyle::Bearer, // or Header("x-api-key"), Query("key"), None
            default_base_url: Some("https://api.example.ai/v1".into()),
            needs_body: false, // plan from parameter names; the body stays in the host
            limit_headers: vec!["x-ratelimit-".into()],
            models: vec![ModelInfo {
                id: "example-large".into(),
                context_window: Some(131_072),
                max_output_tokens: Some(8_192),
                capabilities: Capabilities::TOOLS | Capabilities::STREAMING | Capabilities::JSON_MODE,
                free: Some(true),
                owned_by: Some("example".into()),
            }],
        }
    }

    fn chat(req: ChatRequest) -> Result<UpstreamCall, ProviderError> {
        let mut edits = Vec::new();
        if req.params.iter().any(|p| p == "logprobs") {
            edits.push(BodyEdit::Remove("logprobs".into())); // the upstream rejects it
        }
        let path = setting(&req.config, "chat_path").unwrap_or("chat/completions").to_owned();
        Ok(openai_passthrough(&req, &path, edits))
    }

    // Optional: what to register when the .wasm is dropped into the providers folder with no
    // configuration entry (id, name, base URL, auth and models come from the manifest).
    fn declaration() -> Option<ProviderDeclaration> {
        Some(ProviderDeclaration {
            key_env: vec!["EXAMPLE_API_KEY".into()],
            keys_url: Some("https://example.ai/keys".into()),
            discover_models: false, // the manifest's models are the whole list
            keyless: false,
            free: true,
            limits: DeclaredLimits {
                requests_per_minute: Some(30),
                requests_per_day: Some(1_000),
                tokens_per_minute: None,
                tokens_per_day: None,
            },
            account_settings: Vec::new(),
        })
    }

    fn map_error(_c: ProviderConfig, status: u16, headers: Headers, body: String) -> ProviderError {
        // understands {"error":{...}}, top-level {"message":...}, Google's [{"error":...}], ...
        errors::from_response(status, &headers, &body)
    }

    fn parse_limits(
        _c: ProviderConfig,
        _a: Credential,
        _s: u16,
        headers: Headers,
        _b: Option<String>,
    ) -> Vec<QuotaUpdate> {
        limits::openai_headers(&headers, LimitWindow::Day, LimitWindow::Minute)
    }
}

export_provider!(Example);
