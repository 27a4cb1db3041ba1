//! `[body_log]`: off by default; when on, an API request's bodies are kept (redacted, keys
//! scrubbed, capped) in the usage store and read by request id through the admin API.

use std::time::Duration;

use freeway_integration::{Gateway, Opts, Sim, chat_body, eventually, http, provider};
use serde_json::{Value, json};

use crate::admin_api::assert_matches;

const ADMIN: &str = "fw-admin-body-log-1";
const KEY: &str = "sk-body-secret-0001";

async fn gateway(sim: &Sim, body_log: &str) -> Gateway {
    let providers = format!("{body_log}\n{}", provider("p", &sim.base(), &[KEY], &["sim-model"]));
    Gateway::start_opts(&providers, Opts { server: format!("admin_key = \"{ADMIN}\""), ..Default::default() }).await
}

async fn bodies(gw: &Gateway, id: &str) -> (u16, Value) {
    let r = http().get(gw.url(&format!("/admin/requests/{id}/bodies"))).bearer_auth(ADMIN).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn chat_with_id(gw: &Gateway, id: &str, body: &Value) -> reqwest::Response {
    http().post(gw.url("/v1/chat/completions")).header("x-request-id", id).json(body).send().await.unwrap()
}

#[tokio::test]
async fn bodies_are_kept_redacted_and_scrubbed_when_the_body_log_is_on() {
    // the client's message quotes an account key: the body log must still never hold it
    let sim = Sim::start().await;
    let gw = gateway(&sim, "[body_log]\nenabled = true\nmax_bytes = 4096\nredact_fields = [\"password\"]\n").await;
    let mut body = chat_body("sim-model");
    body["messages"] = json!([{"role": "user", "content": format!("hello there, my key is {KEY}")}]);
    body["metadata"] = json!({"password": "hunter2"});
    assert_eq!(chat_with_id(&gw, "body-json-1", &body).await.status(), 200);
    body["stream"] = json!(true);
    let streamed = chat_with_id(&gw, "body-stream-1", &body).await;
    assert_eq!(streamed.status(), 200);
    let _ = streamed.text().await.unwrap();

    let kept = eventually(Duration::from_secs(5), || async {
        bodies(&gw, "body-json-1").await.0 == 200 && bodies(&gw, "body-stream-1").await.0 == 200
    })
    .await;
    assert!(kept, "{:?}", bodies(&gw, "body-json-1").await);
    let (_, json_bodies) = bodies(&gw, "body-json-1").await;
    assert_matches("Bodies", &json_bodies);
    let request: Value = serde_json::from_str(json_bodies["request"].as_str().unwrap()).unwrap();
    assert_eq!(request["metadata"]["password"], "[redacted]");
    assert!(request["messages"][0]["content"].as_str().unwrap().starts_with("hello there"));
    assert!(json_bodies["response"].as_str().unwrap().contains("\"choices\""));
    assert_eq!(json_bodies["truncated"], false);
    let (_, stream_bodies) = bodies(&gw, "body-stream-1").await;
    let events = stream_bodies["response"].as_str().unwrap();
    assert!(events.contains("data: ") && events.contains("[DONE]"), "{events}");
    for kept in [&json_bodies, &stream_bodies] {
        assert!(!kept.to_string().contains(KEY), "an account key reached the body log: {kept}");
        assert!(!kept.to_string().contains("hunter2"));
    }
}

#[tokio::test]
async fn the_body_log_is_off_by_default_and_says_so() {
    let sim = Sim::start().await;
    let gw = gateway(&sim, "").await;
    assert_eq!(chat_with_id(&gw, "body-off-1", &chat_body("sim-model")).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, err) = bodies(&gw, "body-off-1").await;
    assert_eq!(status, 404);
    assert_eq!(err["error"]["code"], "not_found");
    assert!(err["error"]["message"].as_str().unwrap().contains("[body_log] is off"), "{err}");
    assert_matches("Error", &err);
}
