//! `cloudflare`: Freeway's provider component for Cloudflare Workers AI.
//!
//! Workers AI speaks OpenAI at `/client/v4/accounts/{account_id}/ai/v1`, with gaps this
//! component papers over: the account id goes in the URL (from the account's `account_id`
//! setting, else the provider's), assistant messages with `tool_calls` need `content: ""` rather
//! than null, and text-only content arrays are flattened to a string (some models reject
//! arrays). Errors come in Cloudflare's v4 envelope with its own codes: 3036 is the daily free
//! neuron allowance (quota until 00:00 UTC), 3040 is out of capacity (retry soon), 5035 needs the
//! paid plan, 5007 is an unknown model. Models are listed through `ai/models/search`. Embeddings
//! (`@cf/baai/bge-*`) go to the native `ai/run/{model}` endpoint with `{"text": [...]}`.

use freeway_sdk::errors;
use freeway_sdk::provider::{EmbedRequest, EmbedResponse, join_url, setting, translated_embeddings};
use freeway_sdk::types::*;
use freeway_sdk::{Provider, export_provider};
use serde_json::Value;

pub struct Cloudflare;

/// The account id for a request: the account's own setting, else the provider's.
fn account_id(config: &ProviderConfig, account: Credential) -> Result<String, ProviderError> {
    use freeway_sdk::provider::bindings::freeway::gateway::credentials;
    credentials::setting(account, "account_id")
        .or_else(|| setting(config, "account_id").map(str::to_owned))
        .filter(|id| !id.trim().is_empty())
        .ok_or_else(|| ProviderError {
            kind: ErrorKind::Auth,
            message: "Cloudflare needs the account id: set `account_id` in the account's or the provider's settings"
                .into(),
            status: 0,
            code: Some("missing_account_id".into()),
            retry_after_ms: None,
            window: None,
        })
}

/// A run endpoint's embeddings answer (`{"result": {"shape": [n, d], "data": [[...]]}}`) -> the
/// vectors, in input order.
pub fn embedding_vectors(body: &str) -> Result<EmbedResponse, ProviderError> {
    let v: Value =
        serde_json::from_str(body).map_err(|e| errors::invalid_response(&format!("Workers AI embeddings: {e}")))?;
    let data = v
        .pointer("/result/data")
        .and_then(Value::as_array)
        .ok_or_else(|| errors::invalid_response("Workers AI embeddings: no `result.data`"))?;
    let mut vectors = Vec::with_capacity(data.len());
    for row in data {
        // f32 vectors: the narrowing is the format's own precision
        #[expect(clippy::cast_possible_truncation)]
        let vector: Option<Vec<f32>> =
            row.as_array().and_then(|xs| xs.iter().map(|x| x.as_f64().map(|f| f as f32)).collect());
        vectors.push(
            vector.ok_or_else(|| errors::invalid_response("Workers AI embeddings: a row is not a list of numbers"))?,
        );
    }
    Ok(EmbedResponse { vectors, prompt_tokens: None })
}

fn now_ms() -> u64 {
    freeway_sdk::provider::bindings::freeway::gateway::clock::now_ms()
}

/// `{base}/accounts/{id}/ai/{rest}`
fn account_url(base: &str, id: &str, rest: &str) -> String {
    join_url(base, &format!("accounts/{id}/ai/{rest}"))
}

/// Rewrite what Workers AI rejects; everything else passes unchanged.
pub fn fix_body(body: &str) -> Result<String, ProviderError> {
    let mut v: Value = serde_json::from_str(body).map_err(|e| errors::bad_request(&format!("request body: {e}")))?;
    if let Some(messages) = v.get_mut("messages").and_then(Value::as_array_mut) {
        for m in messages {
            let Some(obj) = m.as_object_mut() else { continue };
            let has_tool_calls = obj.get("tool_calls").is_some_and(|t| t.as_array().is_some_and(|a| !a.is_empty()));
            if has_tool_calls && obj.get("content").is_none_or(Value::is_null) {
                obj.insert("content".into(), Value::String(String::new()));
            }
            let text_only = obj
                .get("content")
                .and_then(Value::as_array)
                .filter(|parts| parts.iter().all(|p| p.get("type").and_then(Value::as_str) == Some("text")));
            if let Some(parts) = text_only {
                let joined: String =
                    parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n");
                obj.insert("content".into(), Value::String(joined));
            }
        }
    }
    serde_json::to_string(&v).map_err(|e| errors::bad_request(&e.to_string()))
}

/// A Cloudflare error (v4 envelope, or OpenAI-style from `/ai/v1`) -> typed error. `now_ms`
/// dates the daily reset (00:00 UTC).
pub fn map_cloudflare_error(status: u16, headers: &Headers, body: &str, now_ms: u64) -> ProviderError {
    let mut e = errors::from_response(status, headers, body);
    let code = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("errors").and_then(|e| e.get(0)).and_then(|e| e.get("code")).and_then(Value::as_u64));
    match code {
        Some(3036) => {
            e.kind = ErrorKind::QuotaExhausted;
            e.window = Some(LimitWindow::Day);
            e.retry_after_ms = e.retry_after_ms.or(Some(freeway_sdk::limits::until_utc_midnight(now_ms)));
        }
        Some(3040) => {
            e.kind = ErrorKind::Overloaded;
            e.retry_after_ms = e.retry_after_ms.or(Some(2_000));
        }
        Some(5035) => e.kind = ErrorKind::PaymentRequired,
        Some(5007) => e.kind = ErrorKind::NotFound,
        Some(10000 | 10001) => e.kind = ErrorKind::Auth,
        _ => {}
    }
    if let Some(c) = code {
        e.code = Some(c.to_string());
    }
    e
}

impl Provider for Cloudflare {
    fn manifest() -> ProviderManifest {
        ProviderManifest {
            id: "cloudflare".to_owned(),
            name: "Cloudflare Workers AI".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            allowed_hosts: vec!["api.cloudflare.com".to_owned(), "$base_url".to_owned()],
            auth: AuthStyle::Bearer,
            default_base_url: Some("https://api.cloudflare.com/client/v4".to_owned()),
            needs_body: true,
            limit_headers: Vec::new(),
            models: Vec::new(),
        }
    }

    fn chat(req: ChatRequest) -> Result<UpstreamCall, ProviderError> {
        let id = account_id(&req.config, req.account)?;
        let body = fix_body(req.body.as_deref().unwrap_or("{}"))?;
        let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        if req.streaming {
            headers.push(("accept".to_owned(), "text/event-stream".to_owned()));
        }
        Ok(UpstreamCall {
            method: "POST".to_owned(),
            url: account_url(&req.config.base_url, &id, "v1/chat/completions"),
            headers,
            body: RequestBody::Replace(body),
            response: ResponseFormat::Openai,
            framing: StreamFraming::Sse,
        })
    }

    /// Embeddings through the native run endpoint (`POST {base}/accounts/{id}/ai/run/{model}`
    /// with `{"text": [...]}`), answered in the v4 envelope as `result.data`.
    fn embed(req: EmbedRequest) -> Result<UpstreamCall, ProviderError> {
        let id = account_id(&req.config, req.account)?;
        let body = serde_json::json!({ "text": req.input }).to_string();
        Ok(translated_embeddings(
            account_url(&req.config.base_url, &id, &format!("run/{}", req.model)),
            Vec::new(),
            body,
        ))
    }

    fn translate_embeddings(body: String) -> Result<EmbedResponse, ProviderError> {
        embedding_vectors(&body)
    }

    fn map_error(_config: ProviderConfig, status: u16, headers: Headers, body: String) -> ProviderError {
        map_cloudflare_error(status, &headers, &body, now_ms())
    }

    fn parse_limits(
        _c: ProviderConfig,
        _a: Credential,
        status: u16,
        headers: Headers,
        body: Option<String>,
    ) -> Vec<QuotaUpdate> {
        // no rate-limit headers; the daily neuron allowance shows only as error 3036
        let Some(body) = body.filter(|_| status == 429) else { return Vec::new() };
        let e = map_cloudflare_error(status, &headers, &body, now_ms());
        if e.kind != ErrorKind::QuotaExhausted {
            return Vec::new();
        }
        vec![QuotaUpdate {
            dimension: QuotaDimension::Credits,
            window: LimitWindow::Day,
            limit: None,
            remaining: Some(0),
            reset_after_ms: e.retry_after_ms,
            scope: Some("neurons".to_owned()),
        }]
    }

    fn list_models(config: ProviderConfig, account: Option<Credential>) -> Result<Vec<ModelInfo>, ProviderError> {
        let handle = account.ok_or_else(|| errors::bad_request("listing Workers AI models needs an account"))?;
        let id = account_id(&config, handle)?;
        let url = account_url(&config.base_url, &id, "models/search?task=Text%20Generation&per_page=200");
        let v = freeway_sdk::http::get_json(&url, account)?;
        let items = v
            .get("result")
            .and_then(Value::as_array)
            .ok_or_else(|| errors::invalid_response("models/search has no `result`"))?;
        Ok(items.iter().filter_map(model_info).collect())
    }
}

/// One `models/search` result -> model info.
pub fn model_info(m: &Value) -> Option<ModelInfo> {
    let id = m.get("name").and_then(Value::as_str)?.to_owned();
    let props: Vec<(&str, &Value)> = m
        .get("properties")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|p| Some((p.get("property_id")?.as_str()?, p.get("value")?))).collect())
        .unwrap_or_default();
    let prop = |k: &str| props.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
    let num = |v: &Value| v.as_u64().or_else(|| v.as_str()?.parse().ok()).and_then(|n| u32::try_from(n).ok());
    let mut caps = Capabilities::STREAMING;
    if prop("function_calling").is_some_and(|v| v.as_bool() == Some(true) || v.as_str() == Some("true")) {
        caps |= Capabilities::TOOLS;
    }
    if id.contains("vision") || id.contains("llama-4-scout") {
        caps |= Capabilities::VISION;
    }
    if id.contains("gpt-oss") || id.contains("deepseek-r1") || id.contains("qwq") {
        caps |= Capabilities::REASONING;
    }
    let beta_or_paid = prop("planned_deprecation_date").is_some();
    Some(ModelInfo {
        id,
        context_window: prop("context_window").and_then(num),
        max_output_tokens: None,
        capabilities: caps,
        free: if beta_or_paid { None } else { Some(true) },
        owned_by: Some("cloudflare".to_owned()),
    })
}

export_provider!(Cloudflare);

#[cfg(test)]
mod tests {

    #[test]
    fn embeddings_are_read_from_the_run_envelope_in_order() {
        let r = embedding_vectors(
            r#"{"result":{"shape":[2,2],"data":[[1,2],[3,4]],"pooling":"mean"},"success":true,"errors":[]}"#,
        )
        .unwrap();
        assert_eq!(r.vectors, vec![vec![1.0, 2.0], vec![3.0, 4.0]]);
        assert!(embedding_vectors(r#"{"success":false,"errors":[{"code":5007}]}"#).is_err());
    }

    use super::*;

    #[test]
    fn null_content_with_tool_calls_becomes_empty_and_text_arrays_flatten() {
        let body = r#"{"model":"@cf/x","messages":[
            {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
            {"role":"user","content":[{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AA"}}]}
        ],"x_extra":1}"#;
        let v: Value = serde_json::from_str(&fix_body(body).unwrap()).unwrap();
        assert_eq!(v["messages"][0]["content"], "a\nb");
        assert_eq!(v["messages"][1]["content"], "");
        assert!(v["messages"][2]["content"].is_array(), "images keep the array form");
        assert_eq!(v["x_extra"], 1, "unknown fields are kept");
    }

    #[test]
    fn v4_error_codes_are_typed() {
        let quota = map_cloudflare_error(
            429,
            &Vec::new(),
            r#"{"success":false,"errors":[{"code":3036,"message":"you have used up your daily free allocation of 10,000 neurons"}]}"#,
            86_400_000 + 1000,
        );
        assert_eq!(
            (quota.kind, quota.window, quota.code.as_deref()),
            (ErrorKind::QuotaExhausted, Some(LimitWindow::Day), Some("3036"))
        );
        assert!(quota.message.contains("10,000 neurons"));
        assert_eq!(quota.retry_after_ms, Some(86_400_000 - 1000), "until 00:00 UTC");
        let busy = map_cloudflare_error(
            429,
            &Vec::new(),
            r#"{"success":false,"errors":[{"code":3040,"message":"Capacity temporarily exceeded"}]}"#,
            0,
        );
        assert_eq!((busy.kind, busy.retry_after_ms), (ErrorKind::Overloaded, Some(2000)));
        let paid = map_cloudflare_error(
            403,
            &Vec::new(),
            r#"{"success":false,"errors":[{"code":5035,"message":"requires Workers Paid"}]}"#,
            0,
        );
        assert_eq!(paid.kind, ErrorKind::PaymentRequired);
        let unknown = map_cloudflare_error(
            400,
            &Vec::new(),
            r#"{"success":false,"errors":[{"code":5007,"message":"No such model"}]}"#,
            0,
        );
        assert_eq!(unknown.kind, ErrorKind::NotFound);
    }

    #[test]
    fn model_search_results_become_model_infos() {
        let m: Value = serde_json::from_str(r#"{"name":"@cf/meta/llama-3.1-8b-instruct-fp8","properties":[{"property_id":"context_window","value":"32000"},{"property_id":"function_calling","value":"true"}]}"#).unwrap();
        let info = model_info(&m).unwrap();
        assert_eq!(info.context_window, Some(32000));
        assert!(info.capabilities.contains(Capabilities::TOOLS));
    }
}
