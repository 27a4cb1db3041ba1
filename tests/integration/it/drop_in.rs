//! Drop-in providers: a component that declares the provider it serves registers it when its file
//! lands in the watched providers folder (no configuration edit) and unregisters it when the file
//! goes; a folder file replaces the embedded component of its name, and the embedded one takes
//! over again when the file is removed.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use freeway_integration::{Gateway, Served, Sim, artifact, chat_body, eventually, freeway_bin_path, http, provider};
use serde_json::json;

/// Copy a component into a watched folder the way an installer should: write beside it, rename.
fn drop_into(dir: &Path, name: &str, from: &Path) {
    let tmp = dir.join(format!(".{name}.part"));
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

async fn models(served: &Served) -> String {
    match http().get(served.url("/v1/models")).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

#[tokio::test]
async fn a_declaring_component_dropped_into_the_folder_is_a_live_provider_until_it_is_removed() {
    let sim = Sim::start_json(json!({"upstreams": [{"prefix": "/v1", "models": ["example-large"]}]})).await;
    // another provider keeps the gateway serving once the dropped-in one is gone
    let other = Sim::start_json(json!({"upstreams": [{"prefix": "/v1", "models": ["sim-model"]}]})).await;
    let tmp = tempfile::tempdir().unwrap();
    let (home, work) = (tmp.path().join("home"), tmp.path().join("work"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let mut cmd = Command::new(freeway_bin_path());
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(&work)
        .env_clear()
        .env("HOME", &home)
        .env("PATH", "/usr/bin:/bin")
        // the provider's key and where it is, from the variables the component declares
        .env("EXAMPLE_API_KEY", "sk-dropped-in")
        .env("EXAMPLE_BASE_URL", sim.base())
        .env("GROQ_API_KEY", "gsk-other")
        .env("GROQ_BASE_URL", other.base())
        // compiled components shared with the other tests: this test times the registration,
        // not Cranelift
        .env("FREEWAY_CACHE_DIR", freeway_integration::root().join("target/test-component-cache"));
    let served = Served::spawn(cmd).await;
    assert!(!models(&served).await.contains("example-large"));

    let providers = home.join(".local/share/freeway/providers");
    assert!(providers.is_dir(), "the gateway creates the folder it watches");
    drop_into(&providers, "example.wasm", &artifact("tests/guests/example-provider.wasm"));
    let started = std::time::Instant::now();
    let live = eventually(Duration::from_secs(5), || async { models(&served).await.contains("example-large") }).await;
    assert!(live, "not registered within 5 s: {}", served.log());
    eprintln!("drop-in provider registered {:?} after the file landed", started.elapsed());

    let resp = http().post(served.url("/v1/chat/completions")).json(&chat_body("example-large")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{}", served.log());
    let chat = sim.requests().await.into_iter().find(|r| r["path"] == "/v1/chat/completions").unwrap();
    assert_eq!(chat["headers"]["authorization"], "Bearer sk-dropped-in");

    std::fs::remove_file(providers.join("example.wasm")).unwrap();
    let gone = eventually(Duration::from_secs(5), || async { !models(&served).await.contains("example-large") }).await;
    assert!(gone, "still registered 5 s after the file was removed: {}", served.log());
    let resp = http().post(served.url("/v1/chat/completions")).json(&chat_body("example-large")).send().await.unwrap();
    let status = resp.status();
    let body = resp.text().await.unwrap();
    assert_eq!(status, 404, "an unregistered provider's model is unknown: {body}");
}

#[tokio::test]
async fn without_a_key_a_declared_provider_stays_unregistered() {
    let sim = Sim::start_json(json!({"upstreams": [{"prefix": "/v1", "models": ["example-large"]}]})).await;
    let gw = Gateway::start(&provider("p", &sim.base(), &["sk-p"], &["sim-model"])).await;
    drop_into(&gw.providers_dir(), "example.wasm", &artifact("tests/guests/example-provider.wasm"));
    let loaded = eventually(Duration::from_secs(5), || async {
        gw.app.reloader.components.list().iter().any(|c| c.declares.as_deref() == Some("example"))
    })
    .await;
    assert!(loaded, "{:?}", gw.app.reloader.components.list());
    // EXAMPLE_API_KEY is not set in this process, and the vault has no account for it
    assert!(!gw.model_ids().await.contains(&"example-large".to_owned()));
    let c = gw.app.reloader.components.list().into_iter().find(|c| c.name == "example").unwrap();
    assert_eq!(c.source, "folder");
    assert_eq!(c.wit.as_deref(), Some("0.1.1"));
}

#[tokio::test]
async fn a_folder_file_replaces_the_embedded_component_and_removing_it_brings_the_embedded_back() {
    let sim = Sim::start().await;
    // the harness puts a copy of openai-compat.wasm into the providers folder
    let gw = Gateway::start(&provider("p", &sim.base(), &["sk-p"], &["sim-model"])).await;
    let serving = |source: &'static str| {
        let list = gw.app.reloader.components.list();
        list.iter().any(|c| c.name == "openai-compat" && c.source == source && c.sha256.is_some())
    };
    assert!(serving("folder"), "{:?}", gw.app.reloader.components.list());
    assert!(!serving("embedded"), "the folder file takes the embedded component's place");
    assert_eq!(gw.chat(chat_body("sim-model")).await.status(), 200);

    std::fs::remove_file(gw.providers_dir().join("openai-compat.wasm")).unwrap();
    let back = eventually(Duration::from_secs(5), || async { serving("embedded") }).await;
    assert!(back, "{:?}", gw.app.reloader.components.list());
    assert!(!serving("folder"));
    assert_eq!(gw.chat(chat_body("sim-model")).await.status(), 200, "the embedded component serves on");
}
