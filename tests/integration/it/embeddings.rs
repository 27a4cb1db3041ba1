//! `POST /v1/embeddings` end to end: OpenAI-compatible upstreams (float and base64, batches in
//! order), the native Gemini, Cohere and Cloudflare components against the simulator's native
//! embeddings APIs, rotation and fallback across accounts on a 429 but never to another model,
//! quota recorded, OpenAI-shaped 400s for bad input, and a component built against WIT 0.1.0
//! (no embeddings export) that still loads and serves chat.

use std::time::Duration;

use base64::Engine as _;
use freeway_integration::{Gateway, Opts, Sim, artifact, chat_body, eventually, http, native_gateway};
use serde_json::{Value, json};

const EMBED: &str = "text-embedding-sim";

/// One provider `id` on the simulator with `keys`, serving `sim-model` (chat) and [`EMBED`]
/// (an embedding model), plus `extra` models.
fn embedding_provider(id: &str, base: &str, keys: &[&str], extra: &str) -> String {
    let keys: Vec<String> = keys.iter().map(|k| format!("\"{k}\"")).collect();
    format!(
        "[[providers]]\nid = \"{id}\"\ncomponent = \"openai-compat\"\nbase_url = \"{base}\"\napi_keys = [{}]\n\
         models = [\"sim-model\", {{ id = \"{EMBED}\", embeddings = true, dimensions = 8 }}{extra}]\n\n",
        keys.join(", ")
    )
}

async fn embed(gw: &Gateway, body: Value) -> reqwest::Response {
    http().post(gw.url("/v1/embeddings")).json(&body).send().await.unwrap()
}

fn route_of(r: &reqwest::Response) -> String {
    r.headers().get("x-freeway-route").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn decode(b64: &Value) -> Vec<f32> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64.as_str().unwrap()).unwrap();
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// The embeddings requests the simulator received.
async fn embed_requests(sim: &Sim, suffix: &str) -> Vec<Value> {
    sim.requests().await.into_iter().filter(|r| r["path"].as_str().is_some_and(|p| p.ends_with(suffix))).collect()
}

#[tokio::test]
async fn a_batch_is_embedded_in_order_and_base64_decodes_to_the_same_floats() {
    let sim = Sim::start().await;
    let gw = Gateway::start(&embedding_provider("oa", &sim.base(), &["sk-e1"], "")).await;
    let input = json!(["the first text", "a second one", "third"]);
    let r = embed(&gw, json!({"model": EMBED, "input": input})).await;
    assert_eq!(r.status(), 200);
    assert!(route_of(&r).contains("provider=oa; model=text-embedding-sim"), "{}", route_of(&r));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], EMBED);
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    for (i, d) in data.iter().enumerate() {
        assert_eq!((d["object"].as_str(), d["index"].as_u64()), (Some("embedding"), Some(i as u64)));
        assert_eq!(d["embedding"].as_array().unwrap().len(), 8);
    }
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    // the same text embeds the same whatever its place in the batch: the order is the input's
    let alone: Value = embed(&gw, json!({"model": EMBED, "input": "third"})).await.json().await.unwrap();
    assert_eq!(floats(&alone["data"][0]["embedding"]), floats(&data[2]["embedding"]));
    assert_ne!(floats(&data[0]["embedding"]), floats(&data[2]["embedding"]));

    let b64: Value =
        embed(&gw, json!({"model": EMBED, "input": input, "encoding_format": "base64"})).await.json().await.unwrap();
    for i in 0..3 {
        assert_eq!(decode(&b64["data"][i]["embedding"]), floats(&data[i]["embedding"]), "input {i}");
    }
    // upstream, the gateway always asked for floats (it encodes base64 itself)
    let ups = embed_requests(&sim, "/embeddings").await;
    assert_eq!(ups.len(), 3);
    assert!(ups.iter().all(|u| u["body"]["encoding_format"] == "float"), "{ups:?}");
    assert_eq!(ups[0]["body"]["input"], input);
    // `/v1/models` says which models embed, and their dimensions
    let models: Value = gw.get("/v1/models").await.json().await.unwrap();
    let entry = |id: &str| models["data"].as_array().unwrap().iter().find(|m| m["id"] == id).cloned().unwrap();
    assert_eq!(entry(EMBED)["embeddings"]["dimensions"], 8);
    assert!(entry("sim-model").get("embeddings").is_none());
}

#[tokio::test]
async fn dimensions_are_passed_upstream_and_the_vectors_have_that_length() {
    let sim = Sim::start().await;
    let gw = Gateway::start(&embedding_provider("oa", &sim.base(), &["sk-e1"], "")).await;
    let v: Value = embed(&gw, json!({"model": EMBED, "input": "x", "dimensions": 5})).await.json().await.unwrap();
    assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 5);
    assert_eq!(embed_requests(&sim, "/embeddings").await[0]["body"]["dimensions"], 5);
}

#[tokio::test]
async fn bad_input_is_an_openai_shaped_400_naming_the_parameter_and_reaches_no_upstream() {
    let sim = Sim::start().await;
    let gw = Gateway::start(&embedding_provider("oa", &sim.base(), &["sk-e1"], "")).await;
    for (body, param) in [
        (json!({"model": EMBED, "input": []}), "input"),
        (json!({"model": EMBED, "input": ""}), "input"),
        (json!({"model": EMBED, "input": [[1, 2, 3]]}), "input"),
        (json!({"model": EMBED, "input": {"text": "x"}}), "input"),
        (json!({"model": EMBED}), "input"),
        (json!({"input": "x"}), "model"),
        (json!({"model": EMBED, "input": "x", "encoding_format": "int8"}), "encoding_format"),
        // a chat model is not an embedding model, and an embedding model does not chat
        (json!({"model": "sim-model", "input": "x"}), "model"),
    ] {
        let r = embed(&gw, body.clone()).await;
        assert_eq!(r.status(), 400, "{body}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["param"], param, "{body}: {v}");
        assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(v["error"]["type"].is_string());
    }
    let many: Vec<String> = (0..2049).map(|i| format!("t{i}")).collect();
    assert_eq!(embed(&gw, json!({"model": EMBED, "input": many})).await.status(), 400);
    let r = embed(&gw, json!({"model": "no-such-model", "input": "x"})).await;
    assert_eq!(r.status(), 404);
    let chat = gw.chat(chat_body(EMBED)).await;
    assert_eq!(chat.status(), 400, "an embedding model refuses chat");
    assert!(embed_requests(&sim, "/embeddings").await.is_empty());
    assert!(embed_requests(&sim, "/chat/completions").await.is_empty());
}

#[tokio::test]
async fn a_429_moves_to_the_next_account_of_the_same_model_and_never_to_another_model() {
    let sim = Sim::start().await;
    // the alias chain offers another provider's embedding model, on an account that is never
    // rate-limited: embeddings must never fall back to it
    let p2 = format!(
        "[[providers]]\nid = \"p2\"\ncomponent = \"openai-compat\"\nbase_url = \"{}\"\napi_keys = [\"sk-c\"]\n\
         models = [{{ id = \"other-embedding\", embeddings = true }}]\n\n",
        sim.base()
    );
    let providers = format!(
        "[[routes]]\nmodel = \"{EMBED}\"\nfallback_chain = [\"p2/other-embedding\"]\n\n{}{p2}",
        embedding_provider("oa", &sim.base(), &["sk-a", "sk-b"], "")
    );
    let gw = Gateway::start(&providers).await;
    sim.script(json!([{ "match": { "key": "sk-a" }, "action": { "type": "rate_limit", "retry_after_s": 30 } }])).await;
    let mut accounts = Vec::new();
    for _ in 0..2 {
        let r = embed(&gw, json!({"model": EMBED, "input": "hello"})).await;
        assert_eq!(r.status(), 200);
        let route = route_of(&r);
        assert!(route.contains("model=text-embedding-sim"), "{route}");
        accounts.push(route);
    }
    let keys: Vec<String> = embed_requests(&sim, "/embeddings")
        .await
        .iter()
        .map(|r| format!("{}:{}", r["key"].as_str().unwrap_or(""), r["body"]["model"].as_str().unwrap_or("")))
        .collect();
    assert!(keys.iter().all(|k| k.ends_with(":text-embedding-sim")), "never another model: {keys:?}");
    assert!(keys.contains(&"sk-b:text-embedding-sim".to_owned()), "{keys:?}");
    // once sk-a is resting after its 429, requests go to sk-b directly
    assert_eq!(keys.iter().filter(|k| k.starts_with("sk-a")).count(), 1, "{keys:?}");

    // every account rate-limited: a 429, not another model's vectors
    sim.script(json!([{ "match": { "key": "sk-b" }, "action": { "type": "rate_limit", "retry_after_s": 30 } }])).await;
    let r = embed(&gw, json!({"model": EMBED, "input": "hello"})).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let asked: Vec<Value> = embed_requests(&sim, "/embeddings").await;
    assert!(asked.iter().all(|r| r["body"]["model"] == EMBED), "{asked:?}");
}

#[tokio::test]
async fn rotation_spreads_embeddings_over_accounts_and_usage_is_recorded() {
    let sim = Sim::start().await;
    let gw = Gateway::start(&embedding_provider("oa", &sim.base(), &["sk-a", "sk-b"], "")).await;
    for _ in 0..4 {
        assert_eq!(embed(&gw, json!({"model": EMBED, "input": ["one two", "three"]})).await.status(), 200);
    }
    let keys: Vec<String> =
        embed_requests(&sim, "/embeddings").await.iter().map(|r| r["key"].as_str().unwrap().to_owned()).collect();
    assert_eq!(keys.iter().filter(|k| *k == "sk-a").count(), 2, "{keys:?}");
    assert_eq!(keys.iter().filter(|k| *k == "sk-b").count(), 2, "{keys:?}");
    let recorded = eventually(Duration::from_secs(5), || async {
        gw.app.usage.totals().iter().filter(|((_, model, _), _)| model == EMBED).map(|(_, t)| t.requests).sum::<u64>()
            == 4
    })
    .await;
    assert!(recorded, "four usage records for the embedding model: {:?}", gw.app.usage.totals().len());
}

#[tokio::test]
async fn the_quota_ledger_refuses_embeddings_beyond_the_pools_limit() {
    let sim = Sim::start().await;
    let providers = format!(
        "{}\nlimits = {{ rpm = 2, scope = \"account\" }}\n\n",
        embedding_provider("oa", &sim.base(), &["sk-a"], "").trim_end()
    );
    let gw = Gateway::start(&providers).await;
    for _ in 0..2 {
        assert_eq!(embed(&gw, json!({"model": EMBED, "input": "x"})).await.status(), 200);
    }
    let r = embed(&gw, json!({"model": EMBED, "input": "x"})).await;
    assert_eq!(r.status(), 429, "the third request in a minute is over rpm = 2");
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(embed_requests(&sim, "/embeddings").await.len(), 2, "refused before sending");
}

#[tokio::test]
async fn gemini_embeds_the_catalogs_embedding_model_through_batch_embed_contents() {
    let sim = Sim::start_json(json!({"upstreams": [{
        "prefix": "/v1beta", "profile": "gemini", "keys": ["AIza-e"], "embedding_dimensions": 6,
        "models": ["gemini-2.5-flash", "gemini-embedding-001"],
    }]}))
    .await;
    let gw = native_gateway(
        // the catalog's id: its entry marks gemini-embedding-001 as an embedding model
        ("gemini", "gemini", &sim.url("/v1beta"), "gemini-2.5-flash"),
        "AIza-e",
        Some(&["gemini-2.5-flash", "gemini-embedding-001"]),
        Opts::default(),
    )
    .await;
    let r =
        embed(&gw, json!({"model": "gemini-embedding-001", "input": ["a", "b"], "encoding_format": "base64"})).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(decode(&v["data"][0]["embedding"]).len(), 6);
    let ups = embed_requests(&sim, ":batchEmbedContents").await;
    assert_eq!(ups.len(), 1);
    assert!(ups[0]["path"].as_str().unwrap().ends_with("/models/gemini-embedding-001:batchEmbedContents"));
    assert_eq!(ups[0]["body"]["requests"][1]["content"]["parts"][0]["text"], "b");
    assert_eq!(ups[0]["key"], "AIza-e");
}

#[tokio::test]
async fn cohere_embeds_the_catalogs_embedding_model_through_v2_embed_with_billed_tokens() {
    let sim = Sim::start_json(json!({"upstreams": [
        {"prefix": "/v2", "profile": "cohere", "keys": ["co-e"], "models": ["command-a-03-2025", "embed-v4.0"]},
        {"prefix": "/v1", "profile": "cohere", "keys": ["co-e"], "models": ["command-a-03-2025", "embed-v4.0"]},
    ]}))
    .await;
    let gw = native_gateway(
        // the catalog's id: its entry marks embed-v4.0 as an embedding model
        ("cohere", "cohere", &sim.url("/v2"), "command-a-03-2025"),
        "co-e",
        Some(&["command-a-03-2025", "embed-v4.0"]),
        Opts::default(),
    )
    .await;
    let r = embed(&gw, json!({"model": "embed-v4.0", "input": ["one two three", "four"], "dimensions": 4})).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"][1]["embedding"].as_array().unwrap().len(), 4);
    assert_eq!(v["usage"]["prompt_tokens"], 4, "the billed input tokens Cohere reported");
    let ups = embed_requests(&sim, "/v2/embed").await;
    assert_eq!(ups.len(), 1);
    assert_eq!(ups[0]["body"]["texts"], json!(["one two three", "four"]));
    assert_eq!(ups[0]["body"]["embedding_types"], json!(["float"]));
    assert_eq!(ups[0]["body"]["output_dimension"], 4);
}

#[tokio::test]
async fn cloudflare_embeds_through_the_run_endpoint() {
    let sim = Sim::start_json(json!({"upstreams": [{
        "prefix": "/client/v4", "profile": "cloudflare", "keys": ["cf-e"], "embedding_dimensions": 3,
        "models": ["@cf/baai/bge-base-en-v1.5"],
    }]}))
    .await;
    let gw = Gateway::start_opts("", Opts::default()).await;
    std::fs::copy(artifact("providers/cloudflare.wasm"), gw.providers_dir().join("cloudflare.wasm")).unwrap();
    let table = format!(
        "[[providers]]\nid = \"cf\"\ncomponent = \"cloudflare\"\nbase_url = \"{}\"\n\
         api_keys = [{{ key = \"cf-e\", settings = {{ account_id = \"acct-1\" }} }}]\n\
         models = [{{ id = \"@cf/baai/bge-base-en-v1.5\", embeddings = true }}]\n",
        sim.url("/client/v4")
    );
    gw.rewrite_config(&table, &Opts::default());
    let ready = eventually(Duration::from_secs(15), || async {
        gw.model_ids().await.iter().any(|m| m == "@cf/baai/bge-base-en-v1.5")
    })
    .await;
    assert!(ready);
    let r = embed(&gw, json!({"model": "@cf/baai/bge-base-en-v1.5", "input": ["x", "y"]})).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 3);
    let ups = embed_requests(&sim, "/ai/run/@cf/baai/bge-base-en-v1.5").await;
    assert_eq!(ups.len(), 1);
    assert!(ups[0]["path"].as_str().unwrap().contains("/accounts/acct-1/"));
    assert_eq!(ups[0]["body"], json!({"text": ["x", "y"]}));
}

#[tokio::test]
async fn a_component_built_against_wit_0_1_0_still_loads_serves_chat_and_is_refused_embeddings() {
    let sim = Sim::start().await;
    let gw = Gateway::start_opts("", Opts::default()).await;
    std::fs::copy(artifact("tests/guests/v010-provider.wasm"), gw.providers_dir().join("v010.wasm")).unwrap();
    let table = format!(
        "[[providers]]\nid = \"old\"\ncomponent = \"v010\"\nbase_url = \"{}\"\napi_keys = [\"sk-old\"]\n\
         models = [\"sim-model\", {{ id = \"{EMBED}\", embeddings = true }}]\n",
        sim.base()
    );
    gw.rewrite_config(&table, &Opts::default());
    let ready =
        eventually(Duration::from_secs(15), || async { gw.model_ids().await.iter().any(|m| m == "sim-model") }).await;
    assert!(ready, "the 0.1.0 component loaded: {:?}", gw.get("/ready").await.text().await);
    let c = gw.app.reloader.components.list().into_iter().find(|c| c.name == "v010").unwrap();
    assert_eq!(c.wit.as_deref(), Some("0.1.0"));
    let chat = gw.chat(chat_body("sim-model")).await;
    assert_eq!(chat.status(), 200);
    let r = embed(&gw, json!({"model": EMBED, "input": "x"})).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("does not serve embeddings"), "{message}");
    assert!(embed_requests(&sim, "/embeddings").await.is_empty());
}
