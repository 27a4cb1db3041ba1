//! The `cohere` component against the simulator's native Cohere API: OpenAI requests in,
//! Cohere v2 chat requests upstream (`/v2/chat`), OpenAI answers out; models listed from
//! `/v1/models`.

use freeway_integration::{Gateway, Opts, Sim, assert_translated_stream, chunks, native_gateway, sse_data};
use serde_json::{Value, json};

const KEY: &str = "co-test-key-7f3a";
const MODEL: &str = "command-a-03-2025";
const VISION: &str = "command-a-vision-07-2025";
/// A 1x1 PNG.
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

/// Chat under `/v2`, the model list under `/v1`, as api.cohere.com serves them.
async fn sim() -> Sim {
    let upstream = |prefix: &str| {
        json!({"prefix": prefix, "profile": "cohere", "keys": [KEY],
            "models": [MODEL, VISION, "command-a-reasoning-08-2025", "embed-v4.0"]})
    };
    Sim::start_json(json!({"upstreams": [upstream("/v2"), upstream("/v1")]})).await
}

/// A gateway serving the `cohere` component for `sim`.
async fn gateway(sim: &Sim, key: &str, models: Option<&[&str]>, opts: Opts) -> Gateway {
    native_gateway(("co", "cohere", &sim.url("/v2"), MODEL), key, models, opts).await
}

async fn start() -> (Sim, Gateway) {
    let sim = sim().await;
    let gw = gateway(&sim, KEY, Some(&[MODEL, VISION]), Opts::default()).await;
    (sim, gw)
}

/// The chat requests the simulator received (model listings left out).
async fn chats(sim: &Sim) -> Vec<Value> {
    sim.requests().await.into_iter().filter(|r| r["path"] == "/v2/chat").collect()
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
async fn a_chat_is_translated_to_cohere_v2_and_back() {
    let (sim, gw) = start().await;
    let resp = gw
        .chat(json!({"model": MODEL, "max_tokens": 5, "temperature": 0.3, "top_p": 0.9, "stop": ["\n\n"],
            "user": "u-1", "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "hello there", "name": "ann"},
        ]}))
        .await;
    assert_eq!(resp.status(), 200);
    let route = resp.headers()["x-freeway-route"].to_str().unwrap().to_owned();
    assert!(route.contains("provider=co"), "{route}");
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

    let reqs = chats(&sim).await;
    assert_eq!(reqs.len(), 1);
    let up = &reqs[0];
    assert_eq!(up["method"], "POST");
    assert_eq!(
        up["body"],
        json!({"model": MODEL, "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "hello there"},
        ], "stream": false, "max_tokens": 5, "temperature": 0.3, "p": 0.9, "stop_sequences": ["\n\n"]})
    );
    // the host attached the key the way the manifest says, and only there
    assert_eq!(up["headers"]["authorization"], format!("Bearer {KEY}"));
    assert_eq!(up["key"], KEY);
    assert!(up["query"].is_null());

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

    let up = &chats(&sim).await[0];
    assert_eq!(up["body"]["stream"], true);
    assert!(up["body"].get("stream_options").is_none());

    let mut with_usage = body;
    with_usage["stream_options"] = json!({"include_usage": true});
    let got = chunks(&sse_data(gw.chat(with_usage).await).await);
    let usage = got.iter().find(|c| c["choices"].as_array().is_some_and(Vec::is_empty)).expect("usage chunk");
    assert_eq!(usage["usage"]["completion_tokens"], 12);
    assert_eq!(usage["usage"]["total_tokens"], usage["usage"]["prompt_tokens"].as_u64().unwrap() + 12, "{usage}");
}

#[tokio::test]
async fn tool_calls_round_trip_with_the_tool_plan() {
    let (sim, gw) = start().await;
    let question = json!({"role": "user", "content": "What's the weather in Paris? Please call a tool."});
    let resp = gw
        .chat(json!({"model": MODEL, "tools": weather_tools(), "tool_choice": "required", "messages": [question]}))
        .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert!(choice["message"]["content"].is_null());
    assert_eq!(choice["message"]["reasoning_content"], "I will call get_weather to answer the request.");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
        json!({"sim": true})
    );
    let call_id = call["id"].as_str().unwrap().to_owned();
    assert!(call_id.starts_with("get_weather_"), "{call_id}");

    // the tools reached Cohere in its terms: no `strict`, no `additionalProperties`
    let first = &chats(&sim).await[0];
    assert_eq!(
        first["body"]["tools"],
        json!([{"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])
    );
    assert_eq!(first["body"]["tool_choice"], "REQUIRED");

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

    let second = &chats(&sim).await[1];
    let messages = second["body"]["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert_eq!(
        messages[1],
        json!({"role": "assistant", "tool_plan": "I will call get_weather to answer the request.", "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": "{\"sim\":true}"}}]})
    );
    assert_eq!(messages[2], json!({"role": "tool", "tool_call_id": call_id, "content": "{\"temp_c\": 21}"}));

    // streamed, the call arrives as a start chunk and argument fragments at one index
    let data = sse_data(
        gw.chat(json!({"model": MODEL, "stream": true, "tools": weather_tools(), "messages": [{"role": "user", "content": "call a tool"}]}))
            .await,
    )
    .await;
    let chunks = chunks(&data);
    let calls: Vec<&Value> = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0)).collect();
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    assert!(calls.iter().all(|c| c["index"] == 0));
    let args: String = calls[1..].iter().map(|c| c["function"]["arguments"].as_str().unwrap().to_owned()).collect();
    assert_eq!(args, "{\"sim\":true}");
    let plan: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["reasoning_content"].as_str()).collect();
    assert_eq!(plan, "I will call get_weather to answer the request.");
    assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));
}

#[tokio::test]
async fn image_parts_and_json_mode_reach_cohere_in_its_terms() {
    let (sim, gw) = start().await;
    let image = format!("data:image/png;base64,{PNG}");
    let resp = gw
        .chat(json!({"model": VISION, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is in this image?"},
            {"type": "image_url", "image_url": {"url": image, "detail": "high"}},
        ]}]}))
        .await;
    assert_eq!(resp.status(), 200);
    let resp = gw
        .chat(json!({"model": MODEL, "response_format": {"type": "json_object"},
            "messages": [{"role": "user", "content": "Answer in JSON."}]}))
        .await;
    assert_eq!(resp.status(), 200);
    let schema = json!({"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]});
    let resp = gw
        .chat(json!({"model": MODEL, "messages": [{"role": "user", "content": "Answer in JSON."}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "strict": true, "schema": schema}}}))
        .await;
    assert_eq!(resp.status(), 200);

    let reqs = chats(&sim).await;
    assert_eq!(reqs[0]["body"]["model"], VISION);
    assert_eq!(
        reqs[0]["body"]["messages"][0]["content"],
        json!([{"type": "text", "text": "What is in this image?"},
               {"type": "image_url", "image_url": {"url": image, "detail": "high"}}])
    );
    assert_eq!(reqs[1]["body"]["response_format"], json!({"type": "json_object"}));
    assert_eq!(reqs[2]["body"]["response_format"], json!({"type": "json_object", "json_schema": schema}));
}

#[tokio::test]
async fn trial_limits_are_429s_with_retry_after_for_the_minute() {
    let sim = sim().await;
    let opts = Opts { upstream: "max_attempts = 1".into(), ..Default::default() };
    let gw = gateway(&sim, KEY, Some(&[MODEL]), opts).await;
    sim.script(json!([{"times": 1, "action": {"type": "rate_limit", "window": "minute"}}])).await;
    let resp = gw.chat(json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(resp.status(), 429);
    // Cohere sends no header: a per-minute limit is waited out for a minute
    assert_eq!(resp.headers()["retry-after"], "60");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_rate_limited", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("API calls / minute"), "{v}");

    // the trial key's monthly cap (the simulator's day window stands in for it)
    let monthly_sim = self::sim().await;
    let opts = Opts { upstream: "max_attempts = 1".into(), ..Default::default() };
    let gw = gateway(&monthly_sim, KEY, Some(&[MODEL]), opts).await;
    monthly_sim.script(json!([{"times": 1, "action": {"type": "rate_limit", "window": "day"}}])).await;
    let resp = gw.chat(json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(resp.status(), 429);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_quota_exhausted", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("API calls / month"), "{v}");
}

#[tokio::test]
async fn a_failed_generation_mid_stream_ends_the_stream_with_an_error() {
    let (sim, gw) = start().await;
    sim.script(json!([{"times": 1, "action": {"type": "mid_stream_error", "chunks": 4, "error": {"message": "model crashed"}}}]))
        .await;
    let data = sse_data(
        gw.chat(json!({"model": MODEL, "stream": true, "messages": [{"role": "user", "content": "hi"}]})).await,
    )
    .await;
    assert_ne!(data.last().unwrap(), "[DONE]", "{data:?}");
    let got = chunks(&data);
    let text: String = got.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "tok0 tok1");
    assert!(got.iter().any(|c| c["choices"][0]["finish_reason"] == "error"), "{got:?}");
    assert!(got.last().unwrap()["error"]["message"].as_str().unwrap().contains("model crashed"), "{got:?}");
}

#[tokio::test]
async fn a_bad_key_is_a_502_that_never_shows_the_key() {
    let sim = sim().await;
    let wrong = "co-wrong-key-0123456789abcdef";
    let opts = Opts { upstream: "max_attempts = 1".into(), ..Default::default() };
    let gw = gateway(&sim, wrong, Some(&[MODEL]), opts).await;
    let resp = gw.chat(json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(resp.status(), 502);
    let text = resp.text().await.unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["code"], "upstream_auth_failed", "{v}");
    assert!(text.contains("invalid api token"), "{text}");
    assert!(!text.contains(wrong) && !text.contains("0123456789abcdef"), "key leaked: {text}");
}

#[tokio::test]
async fn models_are_listed_through_the_component_from_v1() {
    let sim = sim().await;
    // no `models`: the gateway asks the component, which reads Cohere's v1 list
    let gw = gateway(&sim, KEY, None, Opts::default()).await;
    let ids = gw.model_ids().await;
    assert!(ids.iter().any(|m| m == VISION), "{ids:?}");
    assert!(!ids.iter().any(|m| m.contains("embed")), "embedding models are not chat models: {ids:?}");
    let listing = sim.requests().await.into_iter().find(|r| r["path"] == "/v1/models").expect("a model listing");
    assert_eq!(listing["headers"]["authorization"], format!("Bearer {KEY}"));
    assert!(listing["query"].as_str().unwrap().contains("endpoint=chat"), "{listing}");
    let list: Value = gw.get("/v1/models").await.json().await.unwrap();
    let model = list["data"].as_array().unwrap().iter().find(|m| m["id"] == VISION).unwrap();
    assert!(model["capabilities"].as_array().unwrap().contains(&json!("vision")), "{model}");
    assert_eq!(model["context_window"], 128_000, "{model}");
    let command_a = list["data"].as_array().unwrap().iter().find(|m| m["id"] == MODEL).unwrap();
    assert!(command_a["capabilities"].as_array().unwrap().contains(&json!("tools")), "{command_a}");
    let v: Value = gw
        .chat(json!({"model": "command-a-reasoning-08-2025", "messages": [{"role": "user", "content": "hi"}]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["model"], "command-a-reasoning-08-2025");
}
