//! The command line and configuration files, through the real binary.

use std::process::Command;

fn freeway() -> Command {
    freeway_integration::freeway_bin()
}

#[test]
fn a_config_error_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[server]\nlisten = \"127.0.0.1:1\"\n\n[[providers]]\nid = \"x\"\nbase_url = \"http://127.0.0.1:9/v1\"\napi_keys = [\"${FREEWAY_IT_UNSET_VARIABLE}\"]\n").unwrap();
    let out = freeway()
        .args(["check-config", "--config"])
        .arg(&path)
        .env_remove("FREEWAY_IT_UNSET_VARIABLE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:7:", path.display())), "{err}");
    assert!(err.contains("providers[0].api_keys[0]"), "{err}");
    assert!(err.contains("FREEWAY_IT_UNSET_VARIABLE"), "{err}");
}

#[test]
fn serve_refuses_a_broken_config_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[[providers]]\nid = \"x\"\nmodels = [\"a\", \"a\"]\n").unwrap();
    let out = freeway().args(["serve", "--listen", "127.0.0.1:0", "--config"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listed twice"), "{err}");
}

#[test]
fn check_config_loads_the_components() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.toml");
    std::fs::write(
        &path,
        format!(
            "[runtime]\ncache_dir = \"{d}/cache\"\nmax_instances = 8\n\n[storage]\nurl = \"sqlite://{d}/freeway.db\"\n\n[quota]\nstate_file = \"{d}/quota.json\"\n\n\
             [vault]\npath = \"{d}/vault.json\"\nkey_file = \"{d}/master.key\"\naudit_log = \"{d}/audit.log\"\nhealth_file = \"{d}/health.json\"\n\n\
             [discovery]\ninterval_secs = 0\nstate_file = \"{d}/models.json\"\n\n\
             [[providers]]\nid = \"local\"\ncomponent = \"openai-compat\"\nbase_url = \"http://127.0.0.1:9000/v1\"\napi_keys = [\"sk-local-1\"]\nmodels = [\"local-model\"]\n",
            d = dir.path().display(),
        ),
    )
    .unwrap();
    let out = freeway().args(["check-config", "--config"]).arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("provider local") && text.contains("openai-compat"), "{text}");
    assert!(!text.contains("sk-local-1"));
}

#[tokio::test]
async fn models_sync_then_models_shows_what_each_provider_serves() {
    let sim = freeway_integration::Sim::start_json(
        serde_json::json!({"upstreams": [{"prefix": "/v1", "models": ["m-one", "m-two"]}]}),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("freeway.toml");
    std::fs::write(
        &path,
        format!(
            "[runtime]\ncache_dir = \"{cache}\"\nmax_instances = 8\nwatch = false\n\n[storage]\nurl = \"sqlite://{cache}/freeway.db\"\n\n[quota]\nstate_file = \"{cache}/quota.json\"\n\n[upstream]\negress_hosts = [\"127.0.0.1\"]\n\n[discovery]\ninterval_secs = 0\nstate_file = \"{state}\"\n\n\
             [vault]\npath = \"{cache}/vault.json\"\nkey_file = \"{cache}/master.key\"\naudit_log = \"{cache}/audit.log\"\nhealth_file = \"{cache}/health.json\"\n\n\
             [[providers]]\nid = \"simmed\"\nbase_url = \"{base}\"\napi_keys = [\"sk-simmed-secret-99\"]\n",
            cache = dir.path().join("cache").display(),
            state = dir.path().join("models.json").display(),
            base = sim.base()
        ),
    )
    .unwrap();
    let sync = tokio::task::spawn_blocking({
        let path = path.clone();
        move || freeway().args(["models", "sync", "--config"]).arg(&path).output().unwrap()
    })
    .await
    .unwrap();
    let out = String::from_utf8_lossy(&sync.stdout);
    assert_eq!(sync.status.code(), Some(0), "{out}{}", String::from_utf8_lossy(&sync.stderr));
    assert!(out.contains("simmed") && out.contains("2 models"), "{out}");
    let list = freeway().args(["models", "--config"]).arg(&path).output().unwrap();
    let out = String::from_utf8_lossy(&list.stdout);
    assert!(out.contains("m-one") && out.contains("m-two") && out.contains("available"), "{out}");
    let filtered = freeway().args(["models", "--provider", "nobody", "--config"]).arg(&path).output().unwrap();
    assert!(!String::from_utf8_lossy(&filtered.stdout).contains("m-one"));
    for o in [&sync, &list] {
        assert!(!String::from_utf8_lossy(&o.stdout).contains("sk-simmed-secret-99"));
        assert!(!String::from_utf8_lossy(&o.stderr).contains("sk-simmed-secret-99"));
    }
}

#[test]
fn providers_lists_the_catalog_with_limits_and_terms() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.toml");
    std::fs::write(&path, "").unwrap();
    let out = freeway().args(["providers", "--config"]).arg(&path).env_remove("GROQ_API_KEY").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    for id in ["openrouter", "groq", "cerebras", "gemini", "mistral"] {
        assert!(text.contains(id), "{id} missing:\n{text}");
    }
}
