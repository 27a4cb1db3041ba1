//! The binary alone, anywhere: copied into an empty folder and run with an empty HOME, it serves
//! through the components embedded in it, keeps its files in the platform's folders and writes
//! nothing into the folder it runs in.

use std::path::{Path, PathBuf};
use std::time::Duration;

use freeway_integration::{Bare, Served, Sim, chat_body, eventually, http};

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn the_binary_alone_in_an_empty_folder_serves_through_its_embedded_components() {
    let sim = Sim::start().await;
    let bare = Bare::new();
    let mut cmd = bare.command(&["serve", "--listen", "127.0.0.1:0"]);
    cmd.env("GROQ_API_KEY", "gsk-bare-test").env("GROQ_BASE_URL", sim.base()).env("FREEWAY_ADMIN_KEY", "adm-bare");
    let served = Served::spawn(cmd).await;

    let listed = eventually(Duration::from_secs(30), || async {
        let Ok(r) = http().get(served.url("/v1/models")).send().await else { return false };
        r.text().await.unwrap_or_default().contains("sim-model")
    })
    .await;
    assert!(listed, "groq's models were never listed: {}", served.log());
    let resp = http().post(served.url("/v1/chat/completions")).json(&chat_body("sim-model")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{}", served.log());
    let chat = sim.requests().await.into_iter().find(|r| r["path"] == "/v1/chat/completions").unwrap();
    assert_eq!(chat["headers"]["authorization"], "Bearer gsk-bare-test");

    // the openai-compat component that served is the embedded one
    let log = served.log();
    assert!(log.contains("embedded:openai-compat"), "{log}");

    // nothing in the working folder; data and the compiled-component cache in the XDG folders
    assert!(files_under(&bare.work).is_empty(), "wrote into the current folder: {:?}", files_under(&bare.work));
    let data = bare.home.join(".local/share/freeway");
    assert!(data.join("freeway.db").exists(), "{:?}", files_under(&bare.home));
    let cache = bare.home.join(".cache/freeway");
    assert!(
        files_under(&cache).iter().any(|f| f.extension().is_some_and(|e| e == "cwasm")),
        "no compiled component cached in {}: {:?}",
        cache.display(),
        files_under(&bare.home)
    );

    // `freeway plugins` lists what the running gateway loaded, and where each came from
    let url = served.url("");
    let out =
        bare.command(&["plugins", "--json", "--url", &url]).env("FREEWAY_ADMIN_KEY", "adm-bare").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let plugins: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let find = |name: &str| plugins.iter().find(|p| p["name"] == name).cloned().unwrap_or_default();
    assert_eq!(find("openai-compat")["source"], "embedded", "{plugins:?}");
    assert_eq!(find("openai-compat")["wit"], "0.1.1");
    assert_eq!(find("smart")["kind"], "policy");
    assert_eq!(find("smart")["source"], "embedded");
    assert_eq!(find("openai-compat")["sha256"].as_str().map(str::len), Some(64));
    // and with no gateway answering, what it would find
    let out = bare.command(&["plugins", "--json", "--url", "http://127.0.0.1:1"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let offline: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = offline.iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["openai-compat", "gemini", "cloudflare", "cohere", "anthropic", "smart"]);
    assert_eq!(offline[0]["sha256"], find("openai-compat")["sha256"], "the same bytes the gateway loaded");

    // `freeway paths` says where everything is
    let out = bare.command(&["paths", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let paths: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(paths["data"], data.display().to_string());
    assert_eq!(paths["cache"], cache.display().to_string());
    assert_eq!(paths["vault"], data.join("vault.json").display().to_string());
    assert_eq!(paths["providers"], data.join("providers").display().to_string());
    assert!(paths["config"].as_str().unwrap().contains(".config/freeway/freeway.toml"), "{paths}");
}

#[tokio::test]
async fn data_and_cache_folders_follow_their_flags_and_variables() {
    let bare = Bare::new();
    let elsewhere = bare.home.join("elsewhere");
    let out = bare
        .command(&["paths", "--json", "--data-dir"])
        .arg(elsewhere.join("data"))
        .env("FREEWAY_CACHE_DIR", elsewhere.join("cache"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let paths: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(paths["data"], elsewhere.join("data").display().to_string());
    assert_eq!(paths["vault"], elsewhere.join("data/vault.json").display().to_string());
    assert_eq!(paths["cache"], elsewhere.join("cache").display().to_string());

    // a project folder keeps its own relative layout
    std::fs::create_dir_all(bare.work.join("config")).unwrap();
    std::fs::write(bare.work.join("config/freeway.toml"), "").unwrap();
    let out = bare.command(&["paths", "--json"]).output().unwrap();
    let paths: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(paths["data"], bare.work.join("data").display().to_string(), "{paths}");
    assert_eq!(paths["config"], bare.work.join("config/freeway.toml").display().to_string());
}
