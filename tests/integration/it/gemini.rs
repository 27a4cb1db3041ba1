//! The `gemini` component against the simulator's native Gemini API: OpenAI requests in,
//! `generateContent` requests upstream, OpenAI answers out.

use freeway_integration::{Gateway, Opts, Sim, assert_translated_stream, chunks, native_gateway, sse_data};
use serde_json::{Value, json};

const KEY: &str = "AIza-test-key";
const MODEL: &str = "gemini-2.5-flash";
/// A 1x1 PNG.
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

async fn sim() -> Sim {
    Sim::start_json(json!({"upstreams": [{
        "prefix": "/v1beta", "profile": "gemini", "keys": [KEY],
        "models": [MODEL, "gemma-3-27b-it", "text-embedding-004"],
    }]}))
    .await
}

/// A gateway serving the `gemini` component for `sim`.
async fn gateway(sim: &Sim, key: &str, models: Option<&[&str]>, opts: Opts) -> Gateway {
    native_gateway(("gem", "gemini", &sim.url("/v1beta"), MODEL), key, models, opts).await
}

async fn start() -> (Sim, Gateway) {
    let sim = sim().await;
    let gw = gateway(&sim, KEY, Some(&[MODEL]), Opts::default()).await;
    (sim, gw)
}

/// The generate requests the simulator received (model listings left out).
async fn generated(sim: &Sim) -> Vec<Value> {
    sim.requests().await.into_iter().filter(|r| r["path"].as_str().is_some_and(|p| p.contains(':'))).collect()
}

fn weather_tools() -> Value {
    json!([{"type": "function", "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "strict": true,
        "parameters": {"type": "object", "additionalProperties": false,
            "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }}])
}

#[tokio::test]
async fn a_chat_is_translated_to_generate_content_and_back() {
    let (sim, gw) = start().await;
    let resp = gw
        .chat(json!({"model": MODEL, "max_tokens": 5, "temperature": 0.3, "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "hello there"},
        ]}))
        .await;
    assert_eq!(resp.status(), 200);
    let route = resp.headers()["x-freeway-route"].to_str().unwrap().to_owned();
    assert!(route.contains("provider=gem"), "{route}");
    let text = resp.text().await.unwrap();
    assert!(!text.contains(KEY));
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], MODEL);
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["choices"][0]["message"]["content"], "tok0 tok1 tok2 tok3 tok4");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 5);
    assert_eq!(v["usage"]["total_tokens"], v["usage"]["prompt_tokens"].as_u64().unwrap() + 5);

    let reqs = generated(&sim).await;
    assert_eq!(reqs.len(), 1);
    let up = &reqs[0];
    assert_eq!(up["method"], "POST");
    assert_eq!(up["path"], format!("/v1beta/models/{MODEL}:generateContent"));
    assert_eq!(up["body"]["systemInstruction"], json!({"parts": [{"text": "You are terse."}]}));
    assert_eq!(up["body"]["contents"], json!([{"role": "user", "parts": [{"text": "hello there"}]}]));
    assert_eq!(up["body"]["generationConfig"], json!({"temperature": 0.3, "maxOutputTokens": 5}));
    assert!(up["body"].get("messages").is_none() && up["body"].get("model").is_none());
    // the host attached the key the way the manifest says, and only there
    assert_eq!(up["headers"]["x-goog-api-key"], KEY);
    assert_eq!(up["key"], KEY);
    assert!(up["headers"].get("authorization").is_none());
    assert!(up["query"].is_null());
    assert!(!up["body"].to_string().contains(KEY));

    // no max_tokens: a natural stop
    let v: Value =
        gw.chat(json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})).await.json().await.unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["choices"][0]["message"]["content"].as_str().unwrap().ends_with("tok11"));
}

#[tokio::test]
async fn a_stream_is_translated_event_by_event() {
    let (sim, gw) = start().await;
    let body = json!({"model": MODEL, "stream": true, "messages": [{"role": "user", "content": "hello there"}]});
    let resp = gw.chat(body.clone()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let data = sse_data(resp).await;
    assert_translated_stream(&data);

    let up = &generated(&sim).await[0];
    assert_eq!(up["path"], format!("/v1beta/models/{MODEL}:streamGenerateContent"));
    assert_eq!(up["query"], "alt=sse");

    let mut with_usage = body;
    with_usage["stream_options"] = json!({"include_usage": true});
    let got = chunks(&sse_data(gw.chat(with_usage).await).await);
    let usage = got.iter().find(|c| c["choices"].as_array().is_some_and(Vec::is_empty)).expect("usage chunk");
    assert_eq!(usage["usage"]["completion_tokens"], 12);
    assert_eq!(usage["usage"]["total_tokens"], usage["usage"]["prompt_tokens"].as_u64().unwrap() + 12, "{usage}");
}

#[tokio::test]
async fn tool_calls_round_trip_through_function_call_and_function_response() {
    let (sim, gw) = start().await;
    let question = json!({"role": "user", "content": "What's the weather in Paris? Please call a tool."});
    let resp =
        gw.chat(json!({"model": MODEL, "tools": weather_tools(), "tool_choice": "auto", "messages": [question]})).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
        json!({"sim": true})
    );
    let call_id = call["id"].as_str().unwrap().to_owned();
    let signature = call["extra_content"]["google"]["thought_signature"].as_str().unwrap().to_owned();
    assert!(signature.starts_with("sim-signature-"), "{signature}");

    // the tools reached Gemini as function declarations, cut to the schema subset it accepts
    let first = &generated(&sim).await[0];
    assert_eq!(
        first["body"]["tools"],
        json!([{"functionDeclarations": [{"name": "get_weather", "description": "Current weather in a city",
            "parameters": {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}}]}])
    );
    assert_eq!(first["body"]["toolConfig"], json!({"functionCallingConfig": {"mode": "AUTO"}}));

    // the client answers the call; the assistant message goes back as the client got it
    let follow_up = json!({"model": MODEL, "tools": weather_tools(), "messages": [
        question,
        choice["message"],
        {"role": "tool", "tool_call_id": call_id, "content": "{\"temp_c\": 21}"},
    ]});
    let resp = gw.chat(follow_up).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["choices"][0]["message"]["content"].as_str().unwrap().starts_with("tok0"));

    let second = &generated(&sim).await[1];
    let contents = second["body"]["contents"].as_array().unwrap();
    assert_eq!(contents.len(), 3, "{contents:?}");
    assert_eq!(contents[1]["role"], "model");
    assert_eq!(contents[1]["parts"][0]["functionCall"], json!({"name": "get_weather", "args": {"sim": true}}));
    assert_eq!(contents[1]["parts"][0]["thoughtSignature"], signature);
    assert_eq!(contents[2]["role"], "user");
    assert_eq!(contents[2]["parts"][0]["functionResponse"], json!({"name": "get_weather", "response": {"temp_c": 21}}));

    // streamed, the call arrives as a start chunk and its arguments
    let data = sse_data(
        gw.chat(json!({"model": MODEL, "stream": true, "tools": weather_tools(), "messages": [{"role": "user", "content": "call a tool"}]}))
            .await,
    )
    .await;
    let chunks = chunks(&data);
    let calls: Vec<&Value> = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0)).collect();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    assert_eq!(calls[1]["function"]["arguments"], "{\"sim\":true}");
    assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));
}

#[tokio::test]
async fn image_parts_and_json_mode_reach_gemini_in_its_terms() {
    let (sim, gw) = start().await;
    let resp = gw
        .chat(json!({"model": MODEL, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is in this image?"},
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG}")}},
        ]}]}))
        .await;
    assert_eq!(resp.status(), 200);
    let resp = gw
        .chat(json!({"model": MODEL, "response_format": {"type": "json_object"},
            "messages": [{"role": "user", "content": "Answer in JSON."}]}))
        .await;
    assert_eq!(resp.status(), 200);
    let resp = gw
        .chat(json!({"model": MODEL, "messages": [{"role": "user", "content": "Answer in JSON."}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "strict": true, "schema": {
                "type": "object", "additionalProperties": false,
                "properties": {"answer": {"type": "string"}}, "required": ["answer"]}}}}))
        .await;
    assert_eq!(resp.status(), 200);

    let reqs = generated(&sim).await;
    assert_eq!(
        reqs[0]["body"]["contents"][0]["parts"],
        json!([{"text": "What is in this image?"}, {"inlineData": {"mimeType": "image/png", "data": PNG}}])
    );
    assert_eq!(reqs[1]["body"]["generationConfig"], json!({"responseMimeType": "application/json"}));
    assert_eq!(
        reqs[2]["body"]["generationConfig"],
        json!({"responseMimeType": "application/json", "responseSchema": {
            "type": "object", "required": ["answer"], "properties": {"answer": {"type": "string"}}}})
    );
}

#[tokio::test]
async fn a_daily_quota_is_a_429_with_retry_after_from_the_body() {
    let sim = sim().await;
    let opts = Opts { upstream: "max_attempts = 1".into(), ..Default::default() };
    let gw = gateway(&sim, KEY, Some(&[MODEL]), opts).await;
    sim.script(json!([{"action": {"type": "rate_limit", "window": "day", "retry_after_s": 37}}])).await;
    let resp = gw.chat(json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(resp.status(), 429);
    // Gemini sends no header: the delay came from the body's RetryInfo
    assert_eq!(resp.headers()["retry-after"], "37");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_quota_exhausted", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("exceeded your current quota"), "{v}");
}

#[tokio::test]
async fn a_bad_key_is_a_502_that_never_shows_the_key() {
    let sim = sim().await;
    let wrong = "AIza-wrong-key-0123456789abcdef";
    let opts = Opts { upstream: "max_attempts = 1".into(), ..Default::default() };
    let gw = gateway(&sim, wrong, Some(&[MODEL]), opts).await;
    let resp = gw.chat(json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(resp.status(), 502);
    let text = resp.text().await.unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["code"], "upstream_auth_failed", "{v}");
    assert!(text.contains("API key not valid"), "{text}");
    assert!(!text.contains(wrong) && !text.contains("0123456789abcdef"), "key leaked: {text}");
}

#[tokio::test]
async fn models_are_listed_through_the_component() {
    let sim = sim().await;
    // no `models`: the gateway asks the component, which pages through Gemini's list
    let gw = gateway(&sim, KEY, None, Opts::default()).await;
    let ids = gw.model_ids().await;
    assert!(ids.iter().any(|m| m == "gemma-3-27b-it"), "{ids:?}");
    assert!(!ids.iter().any(|m| m.contains("embedding")), "embedding models are not chat models: {ids:?}");
    let listing = sim.requests().await.into_iter().find(|r| r["path"] == "/v1beta/models").expect("a model listing");
    assert_eq!(listing["headers"]["x-goog-api-key"], KEY);
    let v: Value = gw
        .chat(json!({"model": "gemma-3-27b-it", "messages": [{"role": "user", "content": "hi"}]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["model"], "gemma-3-27b-it");
}
