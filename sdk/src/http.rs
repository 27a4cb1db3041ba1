//! The host's `http` import, with helpers. The host attaches the account's secret when a
//! request names a credential; the component never sees it.

use serde_json::Value;

use crate::provider::bindings::freeway::gateway::http as host_http;
use crate::types::{
    Capabilities, Credential, ErrorKind, Headers, HttpError, HttpRequest, HttpResponse, ModelInfo, ProviderError,
};

/// Send a request through the host.
pub fn send(req: &HttpRequest, auth: Option<Credential>) -> Result<HttpResponse, HttpError> {
    host_http::send(req, auth)
}

/// A `GET url` asking for JSON, with `headers` added.
pub fn get_request(url: String, mut headers: Headers) -> HttpRequest {
    headers.push(("accept".to_owned(), "application/json".to_owned()));
    HttpRequest { method: "GET".to_owned(), url, headers, body: Vec::new(), timeout_ms: Some(20_000) }
}

/// Send `req` as the given account; the body parsed as JSON (`what` names it in errors). Error
/// statuses are typed by `map_error`, the provider's own reading of its error responses.
pub fn request_json(
    req: &HttpRequest,
    auth: Option<Credential>,
    what: &str,
    map_error: impl FnOnce(u16, &Headers, &str) -> ProviderError,
) -> Result<Value, ProviderError> {
    let resp = send(req, auth).map_err(|e| http_error(&e))?;
    let text = String::from_utf8_lossy(&resp.body);
    if !(200..300).contains(&resp.status) {
        return Err(map_error(resp.status, &resp.headers, &text));
    }
    serde_json::from_str(&text).map_err(|e| crate::errors::invalid_response(&format!("{what} is not JSON: {e}")))
}

/// `GET url` as the given account; the body parsed as JSON. Error statuses become typed errors.
pub fn get_json(url: &str, auth: Option<Credential>) -> Result<Value, ProviderError> {
    request_json(&get_request(url.to_owned(), Vec::new()), auth, url, crate::errors::from_response)
}

/// A transport failure as a typed error.
pub fn http_error(e: &HttpError) -> ProviderError {
    let (kind, message) = match e {
        HttpError::Denied(m) => (ErrorKind::Permission, m.clone()),
        HttpError::InvalidUrl(m) => (ErrorKind::BadRequest, format!("invalid URL: {m}")),
        HttpError::Connect(m) => (ErrorKind::Upstream, format!("cannot connect: {m}")),
        HttpError::Timeout => (ErrorKind::Timeout, "the upstream did not answer in time".to_owned()),
        HttpError::TooLarge => (ErrorKind::InvalidResponse, "the upstream response was too large".to_owned()),
        HttpError::Other(m) => (ErrorKind::Upstream, m.clone()),
    };
    ProviderError { kind, message, status: 0, code: None, retry_after_ms: None, window: None }
}

/// `GET {base_url}/models` in OpenAI's list shape -> model infos. Reads the extra fields some
/// providers add: `context_window` (Groq), `context_length` and zero `pricing` (OpenRouter).
pub fn list_openai_models(base_url: &str, auth: Option<Credential>) -> Result<Vec<ModelInfo>, ProviderError> {
    let url = crate::provider::join_url(base_url, "models");
    let v = get_json(&url, auth)?;
    let data = v
        .get("data")
        .and_then(Value::as_array)
        .or_else(|| v.as_array())
        .ok_or_else(|| crate::errors::invalid_response("the model list has no `data` array"))?;
    Ok(data.iter().filter_map(model_from_json).collect())
}

fn as_u32(v: Option<&Value>) -> Option<u32> {
    v.and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok())
}

/// One entry of an OpenAI-style model list.
pub fn model_from_json(m: &Value) -> Option<ModelInfo> {
    let id = m.get("id").and_then(Value::as_str)?.to_owned();
    let price_zero = |k: &str| {
        m.get("pricing")
            .and_then(|p| p.get(k))
            .and_then(|v| v.as_str().map(str::to_owned).or_else(|| Some(v.to_string())))
            .map(|s| s.trim_matches('"').parse::<f64>().ok() == Some(0.0))
    };
    let free = match (price_zero("prompt"), price_zero("completion")) {
        (Some(a), Some(b)) => Some(a && b),
        _ => id.ends_with(":free").then_some(true),
    };
    let params: Vec<&str> = m
        .get("supported_parameters")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let modalities: Vec<&str> = m
        .get("architecture")
        .and_then(|a| a.get("input_modalities"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut caps = Capabilities::STREAMING;
    if params.contains(&"tools") {
        caps |= Capabilities::TOOLS;
    }
    if params.contains(&"response_format") || params.contains(&"structured_outputs") {
        caps |= Capabilities::JSON_MODE;
    }
    if params.contains(&"reasoning") || params.contains(&"include_reasoning") {
        caps |= Capabilities::REASONING;
    }
    if modalities.contains(&"image") {
        caps |= Capabilities::VISION;
    }
    Some(ModelInfo {
        id,
        context_window: as_u32(m.get("context_window")).or_else(|| as_u32(m.get("context_length"))),
        max_output_tokens: as_u32(m.get("max_completion_tokens"))
            .or_else(|| as_u32(m.get("top_provider").and_then(|t| t.get("max_completion_tokens")))),
        capabilities: caps,
        free,
        owned_by: m.get("owned_by").and_then(Value::as_str).map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openrouter_entries_are_read() {
        let m: Value = serde_json::from_str(r#"{"id":"meta-llama/llama-3.3-70b-instruct:free","context_length":131072,"pricing":{"prompt":"0","completion":"0"},"supported_parameters":["tools","response_format"],"architecture":{"input_modalities":["text","image"]}}"#).unwrap();
        let info = model_from_json(&m).unwrap();
        assert_eq!(info.context_window, Some(131_072));
        assert_eq!(info.free, Some(true));
        assert!(info.capabilities.contains(Capabilities::TOOLS | Capabilities::VISION | Capabilities::JSON_MODE));
        let m: Value = serde_json::from_str(r#"{"id":"x","pricing":{"prompt":"0.000001","completion":"0"}}"#).unwrap();
        assert_eq!(model_from_json(&m).unwrap().free, Some(false));
        let m: Value =
            serde_json::from_str(r#"{"id":"llama-3.1-8b-instant","owned_by":"Meta","context_window":131072}"#).unwrap();
        let info = model_from_json(&m).unwrap();
        assert_eq!(info.free, None);
        assert_eq!(info.context_window, Some(131_072));
    }
}
