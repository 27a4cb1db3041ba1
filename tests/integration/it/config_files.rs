//! The command line and configuration files, through the real binary.

use std::process::Command;

use freeway_integration::root;

fn freeway() -> Command {
    let bin =
        std::env::var("FREEWAY_BIN").map_or_else(|_| root().join("target/debug/freeway"), std::path::PathBuf::from);
    assert!(bin.exists(), "{} is missing: run `cargo xtask build`", bin.display());
    let mut c = Command::new(bin);
    c.current_dir(root());
    c
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
            "[runtime]\ncache_dir = \"{}\"\nmax_instances = 8\n\n[[providers]]\nid = \"local\"\ncomponent = \"openai-compat\"\nbase_url = \"http://127.0.0.1:9000/v1\"\napi_keys = [\"sk-local-1\"]\nmodels = [\"local-model\"]\n",
            dir.path().join("cache").display()
        ),
    )
    .unwrap();
    let out = freeway().args(["check-config", "--config"]).arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("provider local") && text.contains("openai-compat"), "{text}");
    assert!(!text.contains("sk-local-1"));
}
