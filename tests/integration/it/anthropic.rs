//! The `anthropic` component against the simulator's Messages API: OpenAI requests in,
//! `POST /v1/messages` upstream, OpenAI answers out.

use std::time::Duration;

use freeway::runtime::bindings::wit::QuotaDimension;
use freeway_integration::{Gateway, Opts, Sim, assert_translated_stream, chunks, eventually, native_gateway, sse_data};
use serde_json::{Value, json};

const KEY: &str = "sk-ant-test-key-0123456789";
const MODEL: &str = "claude-sonnet-4-5";
/// A 1x1 PNG.
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

async fn sim_with(limits: Value) -> Sim {
    Sim::start_json(json!({"upstreams": [{
        "prefix": "/v1", "profile": "anthropic", "keys": [KEY],
        "models": [MODEL, "claude-haiku-4-5", "claude-3-5-haiku-20241022"],
        "limits": limits,
    }]}))
    .await
}

/// A gateway serving the `anthropic` component for `sim`.
async fn gateway(sim: &Sim, key: &str, models: Option<&[&str]>, opts: Opts) -> Gateway {
    native_gateway(("ant", "anthropic", &sim.url("/v1"), MODEL), key, models, opts).await
}

async fn start() -> (Sim, Gateway) {
    let sim = sim_with(Value::Null).await;
    let gw = gateway(&sim, KEY, Some(&[MODEL]), Opts::default()).await;
    (sim, gw)
}

/// The `/messages` requests the simulator received (model listings left out).
async fn messages(sim: &Sim) -> Vec<Value> {
    sim.requests().await.into_iter().filter(|r| r["path"] == "/v1/messages").collect()
}

fn content_of(chunks: &[Value]) -> String {
    chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect()
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
async fn a_chat_is_translated_to_the_messages_api_and_back() {
    let (sim, gw) = start().await;
    let resp = gw
        .chat(json!({"model": MODEL, "max_tokens": 5, "temperature": 1.5, "user": "user-7", "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "hello there"},
            {"role": "user", "content": "are you there?"},
        ]}))
        .await;
    assert_eq!(resp.status(), 200);
    let route = resp.headers()["x-freeway-route"].to_str().unwrap().to_owned();
    assert!(route.contains("provider=ant"), "{route}");
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

    let reqs = messages(&sim).await;
    assert_eq!(reqs.len(), 1);
    let up = &reqs[0];
    assert_eq!(up["method"], "POST");
    assert_eq!(
        up["body"],
        json!({
            "model": MODEL,
            "system": "You are terse.",
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "hello there"}, {"type": "text", "text": "are you there?"}]}],
            "max_tokens": 5,
            "temperature": 1.0,
            "metadata": {"user_id": "user-7"},
        })
    );
    // the host attached the key the way the manifest says, and only there
    assert_eq!(up["headers"]["x-api-key"], KEY);
    assert_eq!(up["headers"]["anthropic-version"], "2023-06-01");
    assert_eq!(up["key"], KEY);
    assert!(up["headers"].get("authorization").is_none());
    assert!(!up["body"].to_string().contains(KEY));

    // no max_tokens: the component's default, and a natural stop
    let v: Value =
        gw.chat(json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})).await.json().await.unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["choices"][0]["message"]["content"].as_str().unwrap().ends_with("tok11"));
    assert_eq!(messages(&sim).await[1]["body"]["max_tokens"], 4096);
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

    let up = &messages(&sim).await[0];
    assert_eq!(up["body"]["stream"], true);
    assert_eq!(up["headers"]["accept"], "text/event-stream");

    let mut with_usage = body;
    with_usage["stream_options"] = json!({"include_usage": true});
    let got = chunks(&sse_data(gw.chat(with_usage).await).await);
    let usage = got.iter().find(|c| c["choices"].as_array().is_some_and(Vec::is_empty)).expect("usage chunk");
    assert_eq!(usage["usage"]["completion_tokens"], 12);
    assert_eq!(usage["usage"]["total_tokens"], usage["usage"]["prompt_tokens"].as_u64().unwrap() + 12, "{usage}");
    // the upstream body carried no OpenAI leftovers (the simulator refuses unknown fields)
    assert!(messages(&sim).await[1]["body"].get("stream_options").is_none());
}

#[tokio::test]
async fn tool_calls_round_trip_through_tool_use_and_tool_result() {
    let (sim, gw) = start().await;
    let question = json!({"role": "user", "content": "What's the weather in Paris? Please call a tool."});
    let resp = gw
        .chat(json!({"model": MODEL, "tools": weather_tools(), "tool_choice": "auto", "parallel_tool_calls": false,
            "messages": [question]}))
        .await;
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
    assert!(call_id.starts_with("toolu_sim_"), "{call_id}");

    let first = &messages(&sim).await[0];
    assert_eq!(
        first["body"]["tools"],
        json!([{"name": "get_weather", "description": "Current weather in a city", "input_schema": {
            "type": "object", "additionalProperties": false,
            "properties": {"city": {"type": "string"}}, "required": ["city"]}}])
    );
    assert_eq!(first["body"]["tool_choice"], json!({"type": "auto", "disable_parallel_tool_use": true}));

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

    let second = &messages(&sim).await[1];
    let turns = second["body"]["messages"].as_array().unwrap();
    assert_eq!(turns.len(), 3, "{turns:?}");
    assert_eq!(turns[1]["role"], "assistant");
    assert_eq!(
        turns[1]["content"],
        json!([{"type": "tool_use", "id": call_id, "name": "get_weather", "input": {"sim": true}}])
    );
    assert_eq!(turns[2]["role"], "user");
    assert_eq!(
        turns[2]["content"],
        json!([{"type": "tool_result", "tool_use_id": call_id, "content": "{\"temp_c\": 21}"}])
    );

    // streamed, the call arrives as a start chunk and its arguments
    let data = sse_data(
        gw.chat(json!({"model": MODEL, "stream": true, "tools": weather_tools(),
            "messages": [{"role": "user", "content": "call a tool"}]}))
            .await,
    )
    .await;
    let chunks = chunks(&data);
    let calls: Vec<&Value> = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0)).collect();
    assert!(calls.len() >= 2, "{calls:?}");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    assert!(calls.iter().all(|c| c["index"] == 0));
    let args: String = calls.iter().filter_map(|c| c["function"]["arguments"].as_str()).collect();
    assert_eq!(args, "{\"sim\":true}");
    assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));
}

#[tokio::test]
async fn image_parts_reach_anthropic_as_image_blocks() {
    let (sim, gw) = start().await;
    let resp = gw
        .chat(json!({"model": MODEL, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is in these images?"},
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG}")}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}},
        ]}]}))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        messages(&sim).await[0]["body"]["messages"][0]["content"],
        json!([
            {"type": "text", "text": "What is in these images?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        ])
    );
    // what Anthropic cannot take is a 400 naming it, before any upstream call
    let resp = gw
        .chat(json!({"model": MODEL, "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}}]}]}))
        .await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("image/bmp"));
    assert_eq!(messages(&sim).await.len(), 1);
}

#[tokio::test]
async fn json_mode_is_a_forced_tool_whose_input_is_the_content() {
    let (sim, gw) = start().await;
    let resp = gw
        .chat(json!({"model": MODEL, "response_format": {"type": "json_object"},
            "messages": [{"role": "user", "content": "Answer in JSON."}]}))
        .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    let message = &v["choices"][0]["message"];
    assert_eq!(message["content"], "{\"sim\":true}");
    assert!(message.get("tool_calls").is_none());
    assert_eq!(v["choices"][0]["finish_reason"], "stop");

    let schema = json!({"type": "object", "additionalProperties": false,
        "properties": {"answer": {"type": "string"}}, "required": ["answer"]});
    let format = json!({"type": "json_schema", "json_schema": {"name": "answer", "strict": true, "schema": schema}});
    let data = sse_data(
        gw.chat(json!({"model": MODEL, "stream": true, "response_format": format,
            "messages": [{"role": "user", "content": "Answer in JSON."}]}))
            .await,
    )
    .await;
    let got = chunks(&data);
    assert_eq!(content_of(&got), "{\"sim\":true}");
    assert!(!got.iter().any(|c| c["choices"][0]["delta"].get("tool_calls").is_some()));
    assert!(got.iter().any(|c| c["choices"][0]["finish_reason"] == "stop"));

    let reqs = messages(&sim).await;
    assert_eq!(reqs[0]["body"]["tool_choice"], json!({"type": "tool", "name": "json_response"}));
    assert_eq!(reqs[0]["body"]["tools"][0]["input_schema"], json!({"type": "object"}));
    assert_eq!(reqs[1]["body"]["tools"][0]["input_schema"], schema);
    assert!(reqs[0]["body"].get("response_format").is_none());
}

#[tokio::test]
async fn reasoning_effort_turns_on_thinking_and_comes_back_as_reasoning_content() {
    let (sim, gw) = start().await;
    let v: Value = gw
        .chat(json!({"model": MODEL, "reasoning_effort": "low", "temperature": 0.2,
            "messages": [{"role": "user", "content": "Think first."}]}))
        .await
        .json()
        .await
        .unwrap();
    let message = &v["choices"][0]["message"];
    assert!(message["reasoning_content"].as_str().is_some_and(|r| !r.is_empty()), "{v}");
    assert!(message["thinking_blocks"][0]["signature"].as_str().unwrap().starts_with("sim-thinking-signature-"));
    assert!(message["content"].as_str().unwrap().starts_with("tok0"));
    let up = &messages(&sim).await[0]["body"];
    assert_eq!(up["thinking"], json!({"type": "enabled", "budget_tokens": 2048}));
    assert!(up.get("temperature").is_none(), "thinking refuses temperature changes");

    // streamed: reasoning deltas, then the signed block to replay, then the answer
    let got = chunks(
        &sse_data(
            gw.chat(json!({"model": MODEL, "stream": true, "reasoning_effort": "high",
                "messages": [{"role": "user", "content": "Think first."}]}))
                .await,
        )
        .await,
    );
    let reasoning: String = got.iter().filter_map(|c| c["choices"][0]["delta"]["reasoning_content"].as_str()).collect();
    assert_eq!(reasoning, message["reasoning_content"].as_str().unwrap());
    let block = got.iter().find_map(|c| c["choices"][0]["delta"]["thinking_blocks"].get(0)).expect("a thinking block");
    assert_eq!(block["thinking"], reasoning.as_str());
    assert!(content_of(&got).starts_with("tok0"));
    assert_eq!(messages(&sim).await[1]["body"]["thinking"]["budget_tokens"], 16_384);
}

#[tokio::test]
async fn a_rate_limit_is_a_429_with_retry_after() {
    let sim = sim_with(Value::Null).await;
    let opts = Opts { upstream: "max_attempts = 1".into(), ..Default::default() };
    let gw = gateway(&sim, KEY, Some(&[MODEL]), opts).await;
    sim.script(json!([{"times": 1, "action": {"type": "rate_limit", "retry_after_s": 37}}])).await;
    let resp = gw.chat(json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "37");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_rate_limited", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("rate limit"), "{v}");
}

#[tokio::test]
async fn a_bad_key_is_a_502_that_never_shows_the_key() {
    let sim = sim_with(Value::Null).await;
    let wrong = "sk-ant-wrong-key-0123456789abcdef";
    let opts = Opts { upstream: "max_attempts = 1".into(), ..Default::default() };
    let gw = gateway(&sim, wrong, Some(&[MODEL]), opts).await;
    let resp = gw.chat(json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(resp.status(), 502);
    let text = resp.text().await.unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["code"], "upstream_auth_failed", "{v}");
    assert!(text.contains("invalid x-api-key"), "{text}");
    assert!(!text.contains(wrong) && !text.contains("0123456789abcdef"), "key leaked: {text}");
}

#[tokio::test]
async fn rate_limit_headers_reach_the_accounts_quota() {
    let sim = sim_with(json!({"rpm": 50, "tpm": 100000})).await;
    let gw = gateway(&sim, KEY, Some(&[MODEL]), Opts::default()).await;
    for _ in 0..2 {
        let resp = gw.chat(json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})).await;
        assert_eq!(resp.status(), 200);
    }
    let read = eventually(Duration::from_secs(5), || async {
        let snap = gw.app.registry.snapshot();
        let q = snap.providers[0].accounts[0].quota.lock().clone();
        let requests = q.iter().any(|u| {
            u.dimension == QuotaDimension::Requests
                && u.limit == Some(50)
                && u.remaining.is_some_and(|r| (48..=49).contains(&r))
                && u.reset_after_ms.is_some_and(|ms| ms <= 61_000)
        });
        let tokens = q.iter().any(|u| u.dimension == QuotaDimension::Tokens && u.limit == Some(100_000));
        requests && tokens
    })
    .await;
    assert!(read, "{:?}", gw.app.registry.snapshot().providers[0].accounts[0].quota.lock());
}

#[tokio::test]
async fn models_are_listed_through_the_component() {
    let sim = sim_with(Value::Null).await;
    // no `models`: the gateway asks the component, which reads Anthropic's model list
    let gw = gateway(&sim, KEY, None, Opts::default()).await;
    let ids = gw.model_ids().await;
    for id in [MODEL, "claude-haiku-4-5", "claude-3-5-haiku-20241022"] {
        assert!(ids.iter().any(|m| m == id), "{id} missing: {ids:?}");
    }
    let listing = sim.requests().await.into_iter().find(|r| r["path"] == "/v1/models").expect("a model listing");
    assert_eq!(listing["headers"]["x-api-key"], KEY);
    assert_eq!(listing["headers"]["anthropic-version"], "2023-06-01");
    assert_eq!(listing["query"], "limit=1000");
    let v: Value = gw
        .chat(json!({"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "hi"}]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["model"], "claude-haiku-4-5");
}

#[tokio::test]
async fn overloaded_and_mid_stream_errors_keep_anthropics_meaning() {
    let sim = sim_with(Value::Null).await;
    let opts = Opts { upstream: "max_attempts = 1".into(), ..Default::default() };
    let gw = gateway(&sim, KEY, Some(&[MODEL]), opts).await;
    sim.script(json!([
        {"times": 1, "action": {"type": "status", "status": 529}},
        {"times": 1, "action": {"type": "mid_stream_error", "chunks": 5}},
    ]))
    .await;
    let resp = gw.chat(json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(resp.status(), 503);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_overloaded", "{v}");

    // after the first bytes, Anthropic's `error` event ends the stream with an error
    let data = sse_data(
        gw.chat(json!({"model": MODEL, "stream": true, "messages": [{"role": "user", "content": "hi"}]})).await,
    )
    .await;
    assert_ne!(data.last().unwrap(), "[DONE]", "{data:?}");
    let got = chunks(&data);
    assert!(content_of(&got).starts_with("tok0"), "{got:?}");
    assert!(got.iter().any(|c| c["choices"][0]["finish_reason"] == "error"), "{got:?}");
    assert!(got.last().unwrap()["error"]["message"].as_str().unwrap().contains("Overloaded"), "{got:?}");
}
