//! The other client APIs over the chat pipeline, against the simulator: Anthropic Messages
//! (answers, streams, tools, errors, token counting, Claude model names renamed onto a route),
//! legacy completions and the Responses API (with `previous_response_id`).

use freeway_integration::{Gateway, Opts, Sim, http, provider, sse_data};
use serde_json::{Value, json};

const KEY: &str = "fw-dialect-client-key";

/// A gateway over one simulated provider serving `m` (and `coder` through `claude-*`).
async fn gateway(sim: &Sim, server: &str) -> Gateway {
    gateway_with(sim, server, "").await
}

/// The same, with `extra` sections (`[cache]`, say) before the routes.
async fn gateway_with(sim: &Sim, server: &str, extra: &str) -> Gateway {
    let providers = format!(
        "{extra}[[routes]]\nmodel = \"claude-*\"\nto = \"m\"\n\n{}",
        provider("local", &sim.base(), &["sk-d1", "sk-d2"], &["m"])
    );
    Gateway::start_opts(&providers, Opts { server: server.into(), ..Opts::default() }).await
}

async fn post(gw: &Gateway, path: &str, body: &Value) -> reqwest::Response {
    http().post(gw.url(path)).header("anthropic-version", "2023-06-01").json(body).send().await.unwrap()
}

/// Named SSE events as (event, data).
async fn named_events(resp: reqwest::Response) -> Vec<(String, Value)> {
    let text = resp.text().await.unwrap();
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = String::new();
            let mut data = Value::Null;
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(d).unwrap_or_else(|_| Value::String(d.to_owned()));
                }
            }
            (name, data)
        })
        .collect()
}

fn hello(model: &str) -> Value {
    json!({ "model": model, "max_tokens": 64, "system": [{"type": "text", "text": "Be brief."}],
            "messages": [{ "role": "user", "content": "Say hello" }] })
}

#[tokio::test]
async fn messages_are_answered_as_anthropic_messages_by_the_renamed_route() {
    let sim = Sim::start().await;
    let gw = gateway(&sim, "").await;
    let r = post(&gw, "/v1/messages", &hello("claude-sonnet-4-5-20250929")).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["x-freeway-route"].to_str().unwrap().contains("model=m"));
    let m: Value = r.json().await.unwrap();
    assert_eq!(m["type"], "message");
    assert_eq!(m["role"], "assistant");
    assert!(m["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(m["content"][0]["type"], "text");
    assert!(m["content"][0]["text"].as_str().unwrap().starts_with("tok0"), "{m}");
    assert_eq!(m["stop_reason"], "end_turn");
    assert!(m["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(m["usage"]["output_tokens"], 12);
    // upstream saw a chat request: the system blocks as a system message, max_tokens kept
    let up = &sim.requests().await[0]["body"];
    assert_eq!(up["model"], "m");
    assert_eq!(up["messages"][0], json!({"role": "system", "content": "Be brief."}));
    assert_eq!(up["max_tokens"], 64);
}

#[tokio::test]
async fn a_streamed_message_follows_anthropics_event_grammar() {
    let sim = Sim::start().await;
    let gw = gateway(&sim, "").await;
    let mut body = hello("claude-haiku-4-5");
    body["stream"] = json!(true);
    let r = post(&gw, "/v1/messages", &body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let ev = named_events(r).await;
    let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(&names[..3], ["message_start", "ping", "content_block_start"]);
    assert_eq!(&names[names.len() - 3..], ["content_block_stop", "message_delta", "message_stop"]);
    assert!(names[3..names.len() - 3].iter().all(|n| *n == "content_block_delta"), "{names:?}");
    let text: String = ev.iter().filter_map(|(_, d)| d["delta"]["text"].as_str()).collect();
    assert!(text.starts_with("tok0 tok1"), "{text}");
    let delta = &ev[ev.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], 12);
    for (name, data) in &ev {
        assert_eq!(data["type"], name.as_str());
    }
}

#[tokio::test]
async fn a_tool_use_round_trip_works_streamed_and_not() {
    let sim = Sim::start().await;
    let gw = gateway(&sim, "").await;
    let tools = json!([{ "name": "get_weather", "description": "Weather for a city",
                         "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}} }]);
    let ask = json!({ "model": "claude-sonnet-4-5", "max_tokens": 100, "tools": tools,
                      "messages": [{"role": "user", "content": "Please call a tool for Paris"}] });
    let m: Value = post(&gw, "/v1/messages", &ask).await.json().await.unwrap();
    assert_eq!(m["stop_reason"], "tool_use");
    let call = m["content"].as_array().unwrap().iter().find(|b| b["type"] == "tool_use").unwrap().clone();
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["input"], json!({"sim": true}));
    // streamed: the tool call's arguments arrive as input_json_delta
    let mut streamed = ask.clone();
    streamed["stream"] = json!(true);
    let ev = named_events(post(&gw, "/v1/messages", &streamed).await).await;
    let start =
        ev.iter().find(|(n, d)| n == "content_block_start" && d["content_block"]["type"] == "tool_use").unwrap();
    assert_eq!(start.1["content_block"]["name"], "get_weather");
    let json_text: String = ev.iter().filter_map(|(_, d)| d["delta"]["partial_json"].as_str()).collect();
    assert_eq!(serde_json::from_str::<Value>(&json_text).unwrap(), json!({"sim": true}));
    assert_eq!(ev.iter().find(|(n, _)| n == "message_delta").unwrap().1["delta"]["stop_reason"], "tool_use");
    // the result goes back: upstream sees the assistant's tool call then the tool message
    let follow = json!({ "model": "claude-sonnet-4-5", "max_tokens": 100, "tools": tools, "messages": [
        {"role": "user", "content": "Please call a tool for Paris"},
        {"role": "assistant", "content": [call.clone()]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "18C and sunny"}]}
    ]});
    let done = post(&gw, "/v1/messages", &follow).await;
    assert_eq!(done.status(), 200);
    assert_eq!(done.json::<Value>().await.unwrap()["type"], "message");
    let requests = sim.requests().await;
    let up = &requests.last().unwrap()["body"]["messages"];
    assert_eq!(up[1]["tool_calls"][0]["id"], call["id"]);
    assert_eq!(up[2], json!({"role": "tool", "tool_call_id": call["id"], "content": "18C and sunny"}));
}

#[tokio::test]
async fn messages_errors_are_shaped_as_anthropics() {
    let sim = Sim::start().await;
    let gw = gateway(&sim, &format!("api_keys = [\"{KEY}\"]")).await;
    // no key: authentication_error
    let r = post(&gw, "/v1/messages", &hello("m")).await;
    assert_eq!(r.status(), 401);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["type"], "authentication_error");
    let with_key = |body: Value, path: &'static str| {
        let url = gw.url(path);
        async move { http().post(url).header("x-api-key", KEY).json(&body).send().await.unwrap() }
    };
    // a client mistake: invalid_request_error naming the field
    let r = with_key(json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}), "/v1/messages").await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert!(e["error"]["message"].as_str().unwrap().contains("max_tokens"), "{e}");
    // unknown model: not_found_error
    let r = with_key(hello("nope"), "/v1/messages").await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["type"], "not_found_error");
    // every account rate limited: rate_limit_error with retry-after
    sim.script(json!([{"action": {"type": "rate_limit", "retry_after_s": 30}}])).await;
    let r = with_key(hello("m"), "/v1/messages").await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["type"], "rate_limit_error");
}

#[tokio::test]
async fn count_tokens_counts_without_asking_a_provider() {
    let sim = Sim::start().await;
    let gw = gateway(&sim, "").await;
    let short: Value = post(
        &gw,
        "/v1/messages/count_tokens",
        &json!({"model": "claude-x", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    let long = json!({"model": "claude-x", "system": "You are a careful assistant.",
        "tools": [{"name": "t", "description": "a tool with a long description of what it does", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": "hi ".repeat(200)}]});
    let long: Value = post(&gw, "/v1/messages/count_tokens", &long).await.json().await.unwrap();
    let (s, l) = (short["input_tokens"].as_u64().unwrap(), long["input_tokens"].as_u64().unwrap());
    assert!(s > 0 && l > s + 200, "{s} {l}");
    assert!(sim.requests().await.is_empty());
}

#[tokio::test]
async fn legacy_completions_are_answered_whole_and_streamed() {
    let sim = Sim::start().await;
    let gw = gateway(&sim, "").await;
    let r = post(&gw, "/v1/completions", &json!({"model": "m", "prompt": "Once upon a time", "max_tokens": 5})).await;
    assert_eq!(r.status(), 200);
    let c: Value = r.json().await.unwrap();
    assert_eq!(c["object"], "text_completion");
    assert_eq!(c["choices"][0]["text"], "tok0 tok1 tok2 tok3 tok4");
    assert_eq!(c["choices"][0]["finish_reason"], "length");
    assert_eq!(c["usage"]["completion_tokens"], 5);
    let up = &sim.requests().await[0]["body"];
    assert_eq!(up["messages"], json!([{"role": "user", "content": "Once upon a time"}]));
    let r = post(&gw, "/v1/completions", &json!({"model": "m", "prompt": "x", "max_tokens": 3, "stream": true})).await;
    let data = sse_data(r).await;
    assert_eq!(data.last().unwrap(), "[DONE]");
    let text: String = data
        .iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .inspect(|c| assert_eq!(c["object"], "text_completion"))
        .filter_map(|c| c["choices"][0]["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, "tok0 tok1 tok2");
    let r = post(&gw, "/v1/completions", &json!({"model": "m", "prompt": "x", "echo": true})).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["param"], "echo");
}

#[tokio::test]
async fn responses_answer_stream_and_continue_a_conversation() {
    let sim = Sim::start().await;
    let gw = gateway(&sim, "").await;
    let r = post(&gw, "/v1/responses", &json!({"model": "m", "input": "Hello", "instructions": "Be brief."})).await;
    assert_eq!(r.status(), 200);
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["object"], "response");
    assert_eq!(first["status"], "completed");
    assert!(first["output"][0]["content"][0]["text"].as_str().unwrap().starts_with("tok0"));
    // the next turn carries the first's conversation, but not its instructions
    let r =
        post(&gw, "/v1/responses", &json!({"model": "m", "input": "And again", "previous_response_id": first["id"]}))
            .await;
    assert_eq!(r.status(), 200);
    let up = &sim.requests().await[1]["body"]["messages"];
    assert_eq!(up[0], json!({"role": "user", "content": "Hello"}));
    assert_eq!(up[1]["role"], "assistant");
    assert_eq!(up[2], json!({"role": "user", "content": "And again"}));
    // streamed with a function tool
    let body = json!({"model": "m", "stream": true, "input": "Please call a tool",
                      "tools": [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}]});
    let ev = named_events(post(&gw, "/v1/responses", &body).await).await;
    assert_eq!(ev[0].0, "response.created");
    assert_eq!(ev.last().unwrap().0, "response.completed");
    let done = &ev.last().unwrap().1["response"];
    let call = done["output"].as_array().unwrap().iter().find(|i| i["type"] == "function_call").unwrap();
    assert_eq!(call["name"], "lookup");
    assert_eq!(serde_json::from_str::<Value>(call["arguments"].as_str().unwrap()).unwrap(), json!({"sim": true}));
    for (i, (_, d)) in ev.iter().enumerate() {
        assert_eq!(d["sequence_number"], i as u64);
    }
    // unknown previous response; a hosted tool
    let r = post(&gw, "/v1/responses", &json!({"model": "m", "input": "x", "previous_response_id": "resp_nope"})).await;
    assert_eq!(r.status(), 400);
    let r = post(&gw, "/v1/responses", &json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}]})).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "unsupported_parameter");
}

#[tokio::test]
async fn a_previous_response_is_not_visible_to_another_client() {
    let sim = Sim::start().await;
    let gw = gateway(&sim, "api_keys = [\"fw-one\", \"fw-two\"]").await;
    let ask = |key: &'static str, body: Value| {
        let url = gw.url("/v1/responses");
        async move { http().post(url).bearer_auth(key).json(&body).send().await.unwrap() }
    };
    let first: Value = ask("fw-one", json!({"model": "m", "input": "secret plans"})).await.json().await.unwrap();
    let id = first["id"].clone();
    assert_eq!(ask("fw-one", json!({"model": "m", "input": "more", "previous_response_id": id})).await.status(), 200);
    assert_eq!(ask("fw-two", json!({"model": "m", "input": "more", "previous_response_id": id})).await.status(), 400);
}

#[tokio::test]
async fn upstream_reasoning_becomes_thinking_blocks_whole_and_streamed() {
    let sim = Sim::start().await;
    let gw = gateway(&sim, "").await;
    let script = json!([{"action": {"type": "reply", "reasoning": "First, greet.", "content": "Hello there"}}]);
    sim.script(script).await;
    let m: Value = post(&gw, "/v1/messages", &hello("claude-opus-4-1")).await.json().await.unwrap();
    assert_eq!(m["content"][0], json!({"type": "thinking", "thinking": "First, greet.", "signature": ""}));
    assert_eq!(m["content"][1], json!({"type": "text", "text": "Hello there"}));
    let mut body = hello("claude-opus-4-1");
    body["stream"] = json!(true);
    let ev = named_events(post(&gw, "/v1/messages", &body).await).await;
    let starts: Vec<&Value> = ev.iter().filter(|(n, _)| n == "content_block_start").map(|(_, d)| d).collect();
    assert_eq!(starts[0]["content_block"]["type"], "thinking");
    assert_eq!(starts[1]["content_block"]["type"], "text");
    assert_eq!(starts[1]["index"], 1);
    let thinking: String = ev.iter().filter_map(|(_, d)| d["delta"]["thinking"].as_str()).collect();
    assert_eq!(thinking, "First, greet.");
}

#[tokio::test]
async fn repeated_deterministic_messages_and_responses_are_answered_from_the_cache() {
    let sim = Sim::start().await;
    let gw = gateway_with(&sim, "", "[cache]\nenabled = true\n\n").await;
    let mut body = hello("claude-sonnet-4-5");
    body["temperature"] = json!(0);
    let first = post(&gw, "/v1/messages", &body).await;
    assert_eq!(first.headers()["x-freeway-cache"], "miss");
    let first: Value = first.json().await.unwrap();
    // another Claude name renamed onto the same route is the same request upstream
    body["model"] = json!("claude-haiku-4-5");
    let again = post(&gw, "/v1/messages", &body).await;
    assert_eq!(again.headers()["x-freeway-cache"], "hit");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["content"], first["content"]);
    // a stream replayed from the cache is translated like the original
    body["stream"] = json!(true);
    let live = named_events(post(&gw, "/v1/messages", &body).await).await;
    let replay = post(&gw, "/v1/messages", &body).await;
    assert_eq!(replay.headers()["x-freeway-cache"], "hit");
    let replay = named_events(replay).await;
    let text = |ev: &[(String, Value)]| ev.iter().filter_map(|(_, d)| d["delta"]["text"].as_str()).collect::<String>();
    let names = |ev: &[(String, Value)]| ev.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(text(&replay), text(&live));
    assert_eq!(names(&replay), names(&live));
    let resp = json!({"model": "m", "input": "Hello", "temperature": 0});
    assert_eq!(post(&gw, "/v1/responses", &resp).await.headers()["x-freeway-cache"], "miss");
    assert_eq!(post(&gw, "/v1/responses", &resp).await.headers()["x-freeway-cache"], "hit");
    assert_eq!(sim.requests().await.len(), 3, "one upstream call per distinct request");
}

#[tokio::test]
async fn legacy_completions_pass_through_to_a_provider_that_serves_them_and_fall_back_to_chat() {
    let sim = Sim::start().await;
    // `old` still serves /completions; `chat` does not (its requests are translated)
    let providers = format!(
        "{}\nlegacy_completions = true\n\n{}",
        provider("old", &sim.base(), &["sk-old"], &["m"]).trim_end(),
        provider("chat", &sim.base(), &["sk-chat"], &["m"])
    );
    let gw = Gateway::start_opts(&providers, Opts::default()).await;
    let body = json!({"model": "old/m", "prompt": "Once upon a time", "max_tokens": 4, "logit_bias": {"50256": -100}});
    let r = post(&gw, "/v1/completions", &body).await;
    assert_eq!(r.status(), 200);
    let c: Value = r.json().await.unwrap();
    // the upstream's own answer, untouched
    assert_eq!(c["id"], "cmpl-sim-1");
    assert_eq!(c["object"], "text_completion");
    assert_eq!(c["choices"][0]["text"], "tok0 tok1 tok2 tok3");
    let requests = sim.requests().await;
    assert!(requests[0]["path"].as_str().unwrap().ends_with("/v1/completions"), "{}", requests[0]);
    assert_eq!(requests[0]["body"]["prompt"], "Once upon a time");
    assert_eq!(requests[0]["body"]["logit_bias"], json!({"50256": -100}));
    // streamed: passed through, usage only when asked
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let data = sse_data(post(&gw, "/v1/completions", &streamed).await).await;
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data.iter().filter(|d| *d != "[DONE]").map(|d| serde_json::from_str(d).unwrap()).collect();
    assert!(chunks.iter().all(|c| c["id"].as_str().unwrap().starts_with("cmpl-sim-")), "{chunks:?}");
    assert!(chunks.iter().all(|c| c["choices"].as_array().is_some_and(|a| !a.is_empty())), "usage chunk leaked");
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["text"].as_str()).collect();
    assert_eq!(text, "tok0 tok1 tok2 tok3");
    assert_eq!(sim.requests().await[1]["body"]["stream_options"]["include_usage"], true);
    // a provider without it gets a chat request
    let r = post(&gw, "/v1/completions", &json!({"model": "chat/m", "prompt": "x", "max_tokens": 2})).await;
    let c: Value = r.json().await.unwrap();
    assert_eq!(c["choices"][0]["text"], "tok0 tok1");
    assert!(sim.requests().await[2]["path"].as_str().unwrap().ends_with("/chat/completions"));
}
