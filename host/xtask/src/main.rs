//! `cargo xtask`: the project's everyday commands, in plain cargo.
//!
//! - `cargo xtask run [-- <freeway serve args>]`: build everything (release) and run the gateway
//! - `cargo xtask test`: build everything and run the whole test suite (lint, unit, integration,
//!   end-to-end with the official OpenAI Python and Node SDKs, dashboard in headless Chromium
//!   when available)
//! - `cargo xtask build [--release]`: build the wasm components and the host
//! - `cargo xtask bench`: the load benchmark (gateway vs direct calls to the simulator)
//! - `cargo xtask soak [--minutes N]`: N minutes (default 10) of mixed traffic with reloads against
//!   the release gateway; fails when its memory or file descriptors grow
//! - `cargo xtask eval-routing`: classifier accuracy and `auto`'s choices on the labelled set

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

mod policies;
mod services;

const GUEST_TARGET: &str = "wasm32-wasip2";

/// Components built by `cargo xtask build`: (crate, file name, destination folder).
const GUESTS: &[(&str, &str, &str)] = &[
    ("openai-compat", "openai_compat.wasm", "providers/openai-compat.wasm"),
    ("gemini", "gemini.wasm", "providers/gemini.wasm"),
    ("cloudflare", "cloudflare.wasm", "providers/cloudflare.wasm"),
    ("cohere", "cohere.wasm", "providers/cohere.wasm"),
    ("anthropic", "anthropic.wasm", "providers/anthropic.wasm"),
    ("misbehave", "misbehave.wasm", "tests/guests/misbehave.wasm"),
    ("future-version", "future_version.wasm", "tests/guests/future-version.wasm"),
];

/// Routing policies in Rust: built on their own (the SDK's `policy` feature must not be unified
/// with the providers' `provider` feature in one build).
const POLICIES: &[(&str, &str, &str)] = &[
    ("smart-policy", "smart_policy.wasm", "policies/smart.wasm"),
    ("bad-policy", "bad_policy.wasm", "tests/guests/bad-policy.wasm"),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap_or_else(|_| PathBuf::from("."))
}

fn cargo() -> Command {
    let mut c = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn run(step: &str, cmd: &mut Command) -> Result<(), String> {
    let started = Instant::now();
    eprintln!("\n==> {step}");
    let status = cmd.status().map_err(|e| format!("{step}: cannot start {:?}: {e}", cmd.get_program()))?;
    eprintln!("    ({step}: {:.1} s)", started.elapsed().as_secs_f64());
    if status.success() { Ok(()) } else { Err(format!("{step} failed ({status})")) }
}

fn have(program: &str, arg: &str) -> bool {
    Command::new(program).arg(arg).output().is_ok_and(|o| o.status.success())
}

/// Make sure the wasm target is installed (rustup reads rust-toolchain.toml).
fn ensure_wasm_target() -> Result<(), String> {
    let out = Command::new("rustc")
        .current_dir(root())
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("rustc: {e}"))?;
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if Path::new(&sysroot).join("lib/rustlib").join(GUEST_TARGET).exists() {
        return Ok(());
    }
    if have("rustup", "--version") {
        run(
            "install the wasm32-wasip2 target",
            Command::new("rustup").current_dir(root()).args(["target", "add", GUEST_TARGET]),
        )
    } else {
        Err(format!("the {GUEST_TARGET} target is missing and rustup is not available to install it"))
    }
}

fn build_guests() -> Result<(), String> {
    ensure_wasm_target()?;
    let mut cmd = cargo();
    cmd.args(["build", "--profile", "guest", "--target", GUEST_TARGET]);
    for (krate, _, _) in GUESTS {
        cmd.args(["-p", krate]);
    }
    run("build the wasm components", &mut cmd)?;
    let mut cmd = cargo();
    cmd.args(["build", "--profile", "guest", "--target", GUEST_TARGET]);
    for (krate, _, _) in POLICIES {
        cmd.args(["-p", krate]);
    }
    run("build the Rust routing policies", &mut cmd)?;
    // the SDK guide's provider, served by an integration test so the guide stays true
    run(
        "build the SDK guide's example provider",
        cargo().args([
            "build",
            "--profile",
            "guest",
            "--target",
            GUEST_TARGET,
            "-p",
            "freeway-sdk",
            "--example",
            "example-provider",
        ]),
    )?;
    let out_dir = root().join("target").join(GUEST_TARGET).join("guest");
    install(&out_dir.join("examples/example_provider.wasm"), &root().join("tests/guests/example-provider.wasm"))?;
    for (_, file, dest) in GUESTS.iter().chain(POLICIES) {
        install(&out_dir.join(file), &root().join(dest))?;
    }
    Ok(())
}

/// Copy a built component into place by rename, so a running gateway's watcher sees one
/// complete file (and nothing when it did not change).
fn install(from: &Path, dest: &Path) -> Result<(), String> {
    if std::fs::read(from).ok() == std::fs::read(dest).ok() {
        return Ok(());
    }
    let tmp = dest.with_extension("wasm.tmp");
    std::fs::copy(from, &tmp).map_err(|e| format!("copy {}: {e}", from.display()))?;
    std::fs::rename(&tmp, dest).map_err(|e| format!("install {}: {e}", dest.display()))
}

fn build(release: bool) -> Result<(), String> {
    build_guests()?;
    let mut cmd = cargo();
    cmd.args(["build", "-p", "freeway", "-p", "freeway-sim", "-p", "freeway-bench"]);
    if release {
        cmd.arg("--release");
    }
    run("build the gateway, simulator and load client", &mut cmd)
}

fn lint() -> Result<(), String> {
    run("rustfmt", cargo().args(["fmt", "--all", "--check"]))?;
    run("clippy (host)", cargo().args(["clippy", "--all-targets", "--", "-D", "warnings"]))?;
    // every component in GUESTS, and the SDK they build on
    let mut guests = cargo();
    guests.args(["clippy", "--target", GUEST_TARGET, "--profile", "guest", "-p", "freeway-sdk"]);
    for (krate, _, _) in GUESTS {
        guests.args(["-p", krate]);
    }
    guests.args(["--", "-D", "warnings"]);
    run("clippy (guests)", &mut guests)?;
    let mut policies = cargo();
    policies.args(["clippy", "--target", GUEST_TARGET, "--profile", "guest"]);
    for (krate, _, _) in POLICIES {
        policies.args(["-p", krate]);
    }
    policies.args(["--", "-D", "warnings"]);
    run("clippy (Rust policies)", &mut policies)
}

fn venv_python() -> PathBuf {
    root().join("target/e2e-venv/bin/python")
}

fn python_e2e() -> Result<(), String> {
    let py = venv_python();
    if !py.exists() {
        let python = if have("python3", "--version") { "python3" } else { "python" };
        run("create the Python venv", Command::new(python).args(["-m", "venv"]).arg(root().join("target/e2e-venv")))?;
    }
    run(
        "install the Python test requirements",
        Command::new(&py)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(root().join("tests/e2e/python/requirements.txt")),
    )?;
    let mut cmd = Command::new(&py);
    cmd.current_dir(root()).args(["-m", "pytest", "-q", "tests/e2e/python"]);
    e2e_env(&mut cmd);
    run("end-to-end: official openai Python SDK", &mut cmd)
}

fn node_e2e() -> Result<(), String> {
    let dir = root().join("tests/e2e/node");
    let npm = if dir.join("package-lock.json").exists() {
        vec!["ci", "--no-audit", "--no-fund"]
    } else {
        vec!["install", "--no-audit", "--no-fund"]
    };
    run("install the Node test packages", Command::new("npm").current_dir(&dir).args(&npm))?;
    let mut cmd = Command::new("node");
    cmd.current_dir(&dir).args(["--test", "--test-concurrency=1"]);
    e2e_env(&mut cmd);
    run("end-to-end: official openai Node SDK", &mut cmd)
}

fn e2e_env(cmd: &mut Command) {
    let bin = root().join("target/debug");
    cmd.env("FREEWAY_BIN", bin.join("freeway"))
        .env("FREEWAY_SIM_BIN", bin.join("freeway-sim"))
        .env("FREEWAY_ROOT", root());
}

fn test() -> Result<(), String> {
    let started = Instant::now();
    eprintln!("\n==> shared services (Redis, PostgreSQL)");
    let services = services::prepare();
    if services::ci() && !services.skipped.is_empty() {
        return Err(format!("CI=true and these cannot run: {}", services.skipped.join("; ")));
    }
    for (var, url) in &services.env {
        // SAFETY: xtask has one thread and nothing reads the environment concurrently; the
        // variables reach every test process started after this
        unsafe { env::set_var(var, url) };
        eprintln!("    {var}={url}");
    }
    build(false)?;
    policies::build_language_policies(&root())?;
    // the example policies' own logic, without wasm
    let python = if have("python3", "--version") { "python3" } else { "python" };
    run(
        "Python example policy's tests",
        Command::new(python).current_dir(root().join("policies/examples/python")).arg("test_app.py"),
    )?;
    run(
        "JavaScript example policy's tests",
        Command::new("node").current_dir(root().join("policies/examples/js")).arg("test_policy.mjs"),
    )?;
    lint()?;
    run(
        "unit and integration tests",
        cargo().args(["test", "--workspace", "--exclude", "misbehave", "--exclude", "future-version"]),
    )?;
    python_e2e()?;
    node_e2e()?;
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    if services.skipped.is_empty() {
        eprintln!("\nxtask test: everything passed in {minutes:.1} min");
    } else {
        eprintln!(
            "\nxtask test: passed in {minutes:.1} min, but SKIPPED {} (CI=true would fail)",
            services.skipped.join(" and ")
        );
    }
    Ok(())
}

fn bench(args: &[String]) -> Result<(), String> {
    build(true)?;
    let mut cmd = Command::new(root().join("target/release/freeway-bench"));
    cmd.current_dir(root()).args(args);
    run("load benchmark", &mut cmd)
}

fn soak(args: &[String]) -> Result<(), String> {
    build(true)?;
    let mut cmd = Command::new(root().join("target/release/freeway-bench"));
    cmd.current_dir(root()).arg("--soak").args(args);
    run("soak", &mut cmd)
}

fn eval_routing(args: &[String]) -> Result<(), String> {
    build(false)?;
    let mut cmd = Command::new(root().join("target/debug/freeway"));
    cmd.current_dir(root()).arg("eval-routing").args(args);
    run("routing evaluation", &mut cmd)
}

fn serve(args: &[String]) -> Result<(), String> {
    build(true)?;
    let mut cmd = Command::new(root().join("target/release/freeway"));
    cmd.current_dir(root()).arg("serve").args(args);
    run("freeway serve", &mut cmd)
}

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let rest = |from: usize| -> Vec<String> { args.iter().skip(from).filter(|a| *a != "--").cloned().collect() };
    let result = match args.first().map(String::as_str) {
        Some("build") => build(args.iter().any(|a| a == "--release")),
        Some("run") => serve(&rest(1)),
        Some("test") => test(),
        Some("lint") => lint(),
        Some("bench") => bench(&rest(1)),
        Some("soak") => soak(&rest(1)),
        Some("e2e") => python_e2e().and_then(|()| node_e2e()),
        Some("eval-routing") => eval_routing(&rest(1)),
        Some("policies") => build_guests().and_then(|()| policies::build_language_policies(&root())),
        _ => {
            eprintln!(
                "usage: cargo xtask <run|test|build [--release]|lint|bench|soak [--minutes N]|e2e|eval-routing|policies>"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nxtask: {e}");
            ExitCode::FAILURE
        }
    }
}
