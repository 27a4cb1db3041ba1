//! The provider world: generated bindings, the [`Provider`] trait with defaults, and the
//! [`export_provider!`](crate::export_provider) macro.

pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "embedding-provider",
        pub_export_macro: true,
        export_macro_name: "__export_provider_world",
        default_bindings_module: "freeway_sdk::provider::bindings",
        runtime_path: "freeway_sdk::wit_bindgen::rt",
        additional_derives: [PartialEq],
    });
}

/// The optional embeddings operation's types (`EmbedRequest`, `EmbedResponse`).
pub use bindings::exports::freeway::gateway::embeddings::{EmbedRequest, EmbedResponse};
/// The WIT types (`ChatRequest`, `UpstreamCall`, `ProviderError`, ...).
pub use bindings::freeway::gateway::types;
use types::*;

/// What a provider component implements. Only `manifest` and `chat` are required; the rest
/// default to OpenAI-compatible behaviour.
pub trait Provider {
    /// Who this component is and what it may reach.
    fn manifest() -> ProviderManifest;

    /// Plan the upstream call for one chat request.
    fn chat(req: ChatRequest) -> Result<UpstreamCall, ProviderError>;

    /// Translating providers: upstream body -> OpenAI `chat.completion` JSON.
    fn translate_response(_body: String) -> Result<String, ProviderError> {
        Err(crate::errors::invalid_response("this provider does not translate responses"))
    }

    /// Translating providers: one upstream stream event -> OpenAI chunk JSONs.
    fn translate_event(_event: SseEvent) -> Result<Vec<String>, ProviderError> {
        Err(crate::errors::invalid_response("this provider does not translate streams"))
    }

    /// Translating providers: the stream ended; any last chunks.
    fn finish_stream() -> Result<Vec<String>, ProviderError> {
        Ok(Vec::new())
    }

    /// An upstream error response -> a typed error. Defaults to OpenAI's shapes.
    fn map_error(_config: ProviderConfig, status: u16, headers: Headers, body: String) -> ProviderError {
        crate::errors::from_response(status, &headers, &body)
    }

    /// Rate-limit headers -> quota updates. Defaults to OpenAI's `x-ratelimit-*` (per minute).
    fn parse_limits(
        _config: ProviderConfig,
        _account: Credential,
        _status: u16,
        headers: Headers,
        _body: Option<String>,
    ) -> Vec<QuotaUpdate> {
        crate::limits::openai_headers(&headers, LimitWindow::Minute, LimitWindow::Minute)
    }

    /// Models the upstream serves. Defaults to `GET {base_url}/models`.
    fn list_models(config: ProviderConfig, account: Option<Credential>) -> Result<Vec<ModelInfo>, ProviderError> {
        crate::http::list_openai_models(&config.base_url, account)
    }

    /// Validate a credential with the cheapest call. Defaults to listing models.
    fn check(config: ProviderConfig, account: Credential) -> Result<(), ProviderError> {
        Self::list_models(config, Some(account)).map(|_| ())
    }

    /// The provider this component serves when dropped into the providers folder with no
    /// configuration entry: its key variables, free-tier limits, ... (the manifest gives its id,
    /// name, base URL, auth and models). Defaults to none: only configured providers use it.
    fn declaration() -> Option<ProviderDeclaration> {
        None
    }

    /// Embeddings: plan the upstream call for `req.input` on `req.model`. Defaults to "not
    /// served": the gateway only sends embeddings requests for models configured or catalogued
    /// as embedding models. [`openai_embeddings`] is the plan for OpenAI-compatible upstreams.
    fn embed(req: EmbedRequest) -> Result<UpstreamCall, ProviderError> {
        Err(crate::errors::not_found(&format!("this provider does not serve embeddings (model `{}`)", req.model)))
    }

    /// Embeddings, translating providers: the upstream's body -> one vector per input, in order.
    fn translate_embeddings(_body: String) -> Result<EmbedResponse, ProviderError> {
        Err(crate::errors::invalid_response("this provider does not translate embeddings"))
    }
}

/// Export a [`Provider`] implementation as the component's `provider-api`.
#[macro_export]
macro_rules! export_provider {
    ($t:ty) => {
        #[doc(hidden)]
        pub struct __FreewayProviderExport;
        impl $crate::provider::bindings::exports::freeway::gateway::provider_api::Guest for __FreewayProviderExport {
            fn manifest() -> $crate::types::ProviderManifest {
                <$t as $crate::Provider>::manifest()
            }
            fn chat(req: $crate::types::ChatRequest) -> Result<$crate::types::UpstreamCall, $crate::types::ProviderError> {
                <$t as $crate::Provider>::chat(req)
            }
            fn translate_response(body: String) -> Result<String, $crate::types::ProviderError> {
                <$t as $crate::Provider>::translate_response(body)
            }
            fn translate_event(event: $crate::types::SseEvent) -> Result<Vec<String>, $crate::types::ProviderError> {
                <$t as $crate::Provider>::translate_event(event)
            }
            fn finish_stream() -> Result<Vec<String>, $crate::types::ProviderError> {
                <$t as $crate::Provider>::finish_stream()
            }
            fn map_error(
                config: $crate::types::ProviderConfig,
                status: u16,
                headers: $crate::types::Headers,
                body: String,
            ) -> $crate::types::ProviderError {
                <$t as $crate::Provider>::map_error(config, status, headers, body)
            }
            fn parse_limits(
                config: $crate::types::ProviderConfig,
                account: $crate::types::Credential,
                status: u16,
                headers: $crate::types::Headers,
                body: Option<String>,
            ) -> Vec<$crate::types::QuotaUpdate> {
                <$t as $crate::Provider>::parse_limits(config, account, status, headers, body)
            }
            fn list_models(
                config: $crate::types::ProviderConfig,
                account: Option<$crate::types::Credential>,
            ) -> Result<Vec<$crate::types::ModelInfo>, $crate::types::ProviderError> {
                <$t as $crate::Provider>::list_models(config, account)
            }
            fn check(config: $crate::types::ProviderConfig, account: $crate::types::Credential) -> Result<(), $crate::types::ProviderError> {
                <$t as $crate::Provider>::check(config, account)
            }
        }
        impl $crate::provider::bindings::exports::freeway::gateway::declare::Guest for __FreewayProviderExport {
            fn declaration() -> Option<$crate::types::ProviderDeclaration> {
                <$t as $crate::Provider>::declaration()
            }
        }
        impl $crate::provider::bindings::exports::freeway::gateway::embeddings::Guest for __FreewayProviderExport {
            fn embed(req: $crate::provider::EmbedRequest) -> Result<$crate::types::UpstreamCall, $crate::types::ProviderError> {
                <$t as $crate::Provider>::embed(req)
            }
            fn translate_embeddings(body: String) -> Result<$crate::provider::EmbedResponse, $crate::types::ProviderError> {
                <$t as $crate::Provider>::translate_embeddings(body)
            }
        }
        // Only wasm builds export symbols; native builds (unit tests) just type-check the impl.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            $crate::provider::bindings::__export_provider_world!(__FreewayProviderExport with_types_in $crate::provider::bindings);
        };
    };
}

/// A passthrough plan: `POST {base_url}{path}` with the client's body, answered in OpenAI's
/// format. The usual plan for OpenAI-compatible upstreams.
pub fn openai_passthrough(req: &ChatRequest, path: &str, edits: Vec<BodyEdit>) -> UpstreamCall {
    let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
    if req.streaming {
        headers.push(("accept".to_owned(), "text/event-stream".to_owned()));
    }
    UpstreamCall {
        method: "POST".to_owned(),
        url: join_url(&req.config.base_url, path),
        headers,
        body: RequestBody::Passthrough(edits),
        response: ResponseFormat::Openai,
        framing: StreamFraming::Sse,
    }
}

/// An embeddings plan for OpenAI-compatible upstreams: `POST {base_url}{path}` with the OpenAI
/// embeddings body the host builds (`model`, `input`, `encoding_format: "float"`, `dimensions`
/// when asked), answered in OpenAI's format.
pub fn openai_embeddings(req: &EmbedRequest, path: &str, edits: Vec<BodyEdit>) -> UpstreamCall {
    UpstreamCall {
        method: "POST".to_owned(),
        url: join_url(&req.config.base_url, path),
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        body: RequestBody::Passthrough(edits),
        response: ResponseFormat::Openai,
        framing: StreamFraming::Sse,
    }
}

/// A JSON plan whose body the component built and whose answer it translates
/// (`translate-embeddings`): native embeddings APIs.
pub fn translated_embeddings(url: String, headers: Headers, body: String) -> UpstreamCall {
    let mut headers = headers;
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
        headers.push(("content-type".to_owned(), "application/json".to_owned()));
    }
    UpstreamCall {
        method: "POST".to_owned(),
        url,
        headers,
        body: RequestBody::Replace(body),
        response: ResponseFormat::Translate,
        framing: StreamFraming::Sse,
    }
}

/// `base` + `path` with exactly one `/` between them.
pub fn join_url(base: &str, path: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), path.trim_start_matches('/'))
}

/// `s` percent-encoded for a URL query value or path segment: RFC 3986's unreserved characters
/// (`A-Z a-z 0-9 - _ . ~`) are kept, every other byte becomes `%XX` (a page token, a model id).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

/// Every item of a paged listing (models, usually): `page(cursor)` fetches one page — the first
/// with `None` — and returns its items and the next page's cursor (`None` on the last page). At
/// most `max_pages` pages are fetched, so an upstream that always says "more" cannot loop.
pub fn all_pages<T>(
    max_pages: usize,
    mut page: impl FnMut(Option<&str>) -> Result<(Vec<T>, Option<String>), ProviderError>,
) -> Result<Vec<T>, ProviderError> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..max_pages {
        let (items, next) = page(cursor.as_deref())?;
        out.extend(items);
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(out)
}

/// A setting from the provider's configuration.
pub fn setting<'a>(config: &'a ProviderConfig, key: &str) -> Option<&'a str> {
    config.settings.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Log through the host.
pub fn log(level: LogLevel, message: &str) {
    bindings::freeway::gateway::log::log(level, message);
}
