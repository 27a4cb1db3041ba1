//! The Rust project `freeway plugins new provider` scaffolds, built the way its README says (plain
//! cargo, in its own folder, outside this workspace), so the template cannot stop building
//! unnoticed. The component goes to `tests/guests/scaffold-rust.wasm`, which an integration test
//! serves; the build's target folder (`target/scaffold-target`) is kept, so reruns are quick.

use std::process::Command;

use super::{GUEST_TARGET, install, root, run};

const NAME: &str = "acme-rust";

pub fn build_scaffolded_provider() -> Result<(), String> {
    let root = root();
    let parent = root.join("target/scaffold-check");
    let project = parent.join(NAME);
    if project.exists() {
        std::fs::remove_dir_all(&project).map_err(|e| format!("{}: {e}", project.display()))?;
    }
    std::fs::create_dir_all(&parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    run(
        "scaffold a Rust provider (freeway plugins new provider)",
        Command::new(root.join("target/debug/freeway"))
            .args(["plugins", "new", "provider", NAME, "--lang", "rust", "--dir"])
            .arg(&parent),
    )?;
    run(
        "build the scaffolded provider with plain cargo",
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(&project)
            .args(["build", "--quiet", "--release", "--target", GUEST_TARGET])
            .env("CARGO_TARGET_DIR", root.join("target/scaffold-target"))
            // the project has no rust-toolchain.toml: build with this repository's toolchain,
            // which has the wasm target
            .env("RUSTUP_TOOLCHAIN", toolchain()?),
    )?;
    let built = root.join("target/scaffold-target").join(GUEST_TARGET).join("release").join("acme_rust.wasm");
    install(&built, &root.join("tests/guests/scaffold-rust.wasm"))
}

/// The `channel` `rust-toolchain.toml` pins.
fn toolchain() -> Result<String, String> {
    let text =
        std::fs::read_to_string(root().join("rust-toolchain.toml")).map_err(|e| format!("rust-toolchain.toml: {e}"))?;
    text.lines()
        .find_map(|l| {
            l.trim().strip_prefix("channel")?.trim().strip_prefix('=').map(|v| v.trim().trim_matches('"').to_owned())
        })
        .ok_or_else(|| "rust-toolchain.toml names no channel".to_owned())
}
