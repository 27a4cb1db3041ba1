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
//! - `cargo xtask fuzz [--seconds N] [target...]`: the cargo-fuzz targets in `tests/fuzz`
//! - `cargo xtask promtool`: the path of `promtool` (the `/metrics` test's checker), taken from
//!   Debian's `prometheus` package into `target/tools/` when it is not on `PATH`

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

mod deploy;
mod e2e_python;
mod policies;
mod scaffold;
mod services;

const GUEST_TARGET: &str = "wasm32-wasip2";

/// The components embedded in the binary, built exactly as `host/build.rs` builds them (same
/// packages in one build each, same target folder) so neither build redoes the other's work:
/// (crate, file name, where the tests find a copy).
const EMBEDDED_PROVIDERS: &[(&str, &str, &str)] = &[
    ("openai-compat", "openai_compat.wasm", "providers/openai-compat.wasm"),
    ("gemini", "gemini.wasm", "providers/gemini.wasm"),
    ("cloudflare", "cloudflare.wasm", "providers/cloudflare.wasm"),
    ("cohere", "cohere.wasm", "providers/cohere.wasm"),
    ("anthropic", "anthropic.wasm", "providers/anthropic.wasm"),
];
const EMBEDDED_POLICIES: &[(&str, &str, &str)] = &[("smart-policy", "smart_policy.wasm", "policies/smart.wasm")];

/// Test components: hostile, future-versioned and 0.1.0-built providers, a policy that fails.
const TEST_PROVIDERS: &[(&str, &str, &str)] = &[
    ("misbehave", "misbehave.wasm", "tests/guests/misbehave.wasm"),
    ("future-version", "future_version.wasm", "tests/guests/future-version.wasm"),
    ("v010-provider", "v010_provider.wasm", "tests/guests/v010-provider.wasm"),
];
const TEST_POLICIES: &[(&str, &str, &str)] = &[("bad-policy", "bad_policy.wasm", "tests/guests/bad-policy.wasm")];

/// Where every wasm component is built (`host/build.rs` uses it too).
const GUEST_TARGET_DIR: &str = "target/guests";

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
    let guest_build = |packages: &[(&str, &str, &str)]| {
        let mut cmd = cargo();
        cmd.args(["build", "--profile", "guest", "--target", GUEST_TARGET, "--target-dir", GUEST_TARGET_DIR]);
        for (krate, _, _) in packages {
            cmd.args(["-p", krate]);
        }
        cmd
    };
    // Rust policies are built on their own: the SDK's `policy` feature must not be unified with
    // the providers' `provider` feature in one build
    run("build the built-in provider components", &mut guest_build(EMBEDDED_PROVIDERS))?;
    run("build the built-in routing policy", &mut guest_build(EMBEDDED_POLICIES))?;
    run("build the test components", &mut guest_build(TEST_PROVIDERS))?;
    run("build the test policy", &mut guest_build(TEST_POLICIES))?;
    // the SDK guide's provider, served by an integration test so the guide stays true
    let mut example = guest_build(&[("freeway-sdk", "", "")]);
    example.args(["--example", "example-provider"]);
    run("build the SDK guide's example provider", &mut example)?;
    let out_dir = root().join(GUEST_TARGET_DIR).join(GUEST_TARGET).join("guest");
    install(&out_dir.join("examples/example_provider.wasm"), &root().join("tests/guests/example-provider.wasm"))?;
    for (_, file, dest) in EMBEDDED_PROVIDERS.iter().chain(EMBEDDED_POLICIES).chain(TEST_PROVIDERS).chain(TEST_POLICIES)
    {
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
    // the gateway without its optional parts (the OTLP exporter) builds and stays clean too
    run(
        "clippy (host, --no-default-features)",
        cargo().args(["clippy", "-p", "freeway", "--lib", "--bins", "--no-default-features", "--", "-D", "warnings"]),
    )?;
    // every provider component, and the SDK they build on
    let mut guests = cargo();
    guests.args(["clippy", "--target", GUEST_TARGET, "--profile", "guest", "-p", "freeway-sdk"]);
    for (krate, _, _) in EMBEDDED_PROVIDERS.iter().chain(TEST_PROVIDERS) {
        guests.args(["-p", krate]);
    }
    guests.args(["--", "-D", "warnings"]);
    run("clippy (guests)", &mut guests)?;
    let mut policies = cargo();
    policies.args(["clippy", "--target", GUEST_TARGET, "--profile", "guest"]);
    for (krate, _, _) in EMBEDDED_POLICIES.iter().chain(TEST_POLICIES) {
        policies.args(["-p", krate]);
    }
    policies.args(["--", "-D", "warnings"]);
    run("clippy (Rust policies)", &mut policies)
}

/// The Python suites, each in its venv (installed only when its requirements changed).
fn python_e2e() -> Result<(), String> {
    e2e_python::run_suites()
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

/// The dashboard in headless Chromium (Debian's `chromium`, driven by `playwright-core` from
/// `host/ui/tests`): every page, against `freeway demo`; screenshots in `target/ui-screenshots/`.
fn dashboard_e2e() -> Result<(), String> {
    let dir = root().join("host/ui/tests");
    run(
        "install the dashboard test packages",
        Command::new("npm").current_dir(&dir).args(["ci", "--no-audit", "--no-fund"]),
    )?;
    let mut cmd = Command::new("node");
    cmd.current_dir(&dir).arg("dashboard.test.mjs");
    e2e_env(&mut cmd);
    run("dashboard in headless Chromium", &mut cmd)
}

/// Whether a browser for the dashboard test is installed.
fn chromium_found() -> bool {
    ["chromium", "chromium-browser"]
        .iter()
        .any(|b| Command::new("sh").args(["-c", &format!("command -v {b}")]).output().is_ok_and(|o| o.status.success()))
}

fn e2e_env(cmd: &mut Command) {
    let bin = root().join("target/debug");
    cmd.env("FREEWAY_BIN", bin.join("freeway"))
        .env("FREEWAY_SIM_BIN", bin.join("freeway-sim"))
        .env("FREEWAY_ROOT", root());
}

fn test() -> Result<(), String> {
    let started = Instant::now();
    eprintln!("\n==> shared services (Redis, PostgreSQL) and promtool");
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
    scaffold::build_scaffolded_provider()?;
    // the example policies' own logic, without wasm
    let python = if have("python3", "--version") { "python3" } else { "python" };
    run(
        "Python example policy's tests",
        Command::new(python).current_dir(root().join("policies/examples/python")).arg("test_app.py"),
    )?;
    run(
        "Python example provider's tests",
        Command::new(python).current_dir(root().join("providers/examples/python")).arg("test_app.py"),
    )?;
    run(
        "JavaScript example policy's tests",
        Command::new("node").current_dir(root().join("policies/examples/js")).arg("test_policy.mjs"),
    )?;
    run(
        "JavaScript example provider's tests",
        Command::new("node").current_dir(root().join("providers/examples/js")).arg("test_provider.mjs"),
    )?;
    lint()?;
    deploy::checks()?;
    run(
        "unit and integration tests",
        cargo().args([
            "test",
            "--workspace",
            "--exclude",
            "misbehave",
            "--exclude",
            "future-version",
            "--exclude",
            "v010-provider",
        ]),
    )?;
    let fuzzed = fuzz(FUZZ_TEST_SECONDS, FUZZ_TARGETS)?;
    let fuzz_skipped = fuzzed.starts_with("fuzzing SKIPPED").then(|| "fuzzing".to_owned());
    python_e2e()?;
    node_e2e()?;
    let mut skipped: Vec<String> = services.skipped.clone();
    if chromium_found() {
        dashboard_e2e()?;
    } else if services::ci() {
        return Err("CI=true and the dashboard test cannot run: no chromium on PATH (apt-get install chromium)".into());
    } else {
        skipped.push("the dashboard test (no chromium on PATH: apt-get install chromium)".to_owned());
    }
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    if let Some(why) = fuzz_skipped {
        skipped.push(why);
    }
    eprintln!("\n==> summary\n    {fuzzed}");
    if skipped.is_empty() {
        eprintln!("\nxtask test: everything passed in {minutes:.1} min");
    } else {
        eprintln!(
            "\nxtask test: passed in {minutes:.1} min, but SKIPPED {} (CI=true would fail)",
            skipped.join(" and ")
        );
    }
    Ok(())
}

/// The cargo-fuzz targets in `tests/fuzz` (its own workspace, built with nightly).
const FUZZ_TARGETS: &[&str] = &["request_parser", "upstream_body", "sse", "scrub", "egress", "vault_open"];
const FUZZ_DIR: &str = "tests/fuzz";
/// `cargo xtask fuzz` without `--seconds`: per target.
const FUZZ_DEFAULT_SECONDS: u64 = 60;
/// The bounded fuzz step of `cargo xtask test`: per target.
const FUZZ_TEST_SECONDS: u64 = 15;
/// The same flags for every build and run, so the target dir stays warm: no AddressSanitizer
/// (the code under test is safe Rust; panics and overflow checks are what we look for, at twice
/// the speed) and 16 codegen units (cargo-fuzz's default of 1 makes a cold build of wasmtime
/// take far longer on two cores).
const FUZZ_FLAGS: &[&str] = &["--sanitizer", "none", "--codegen-units", "16"];

/// `cargo +nightly ...` through rustup, whatever toolchain runs the xtask.
fn nightly_cargo() -> Command {
    let mut c = Command::new("cargo");
    c.current_dir(root()).arg("+nightly").env("RUSTUP_TOOLCHAIN", "nightly");
    c
}

fn fuzz_target_dir() -> PathBuf {
    env::var_os("FREEWAY_FUZZ_TARGET_DIR").map_or_else(|| root().join(FUZZ_DIR).join("target"), PathBuf::from)
}

/// Make sure nightly and cargo-fuzz are there (installing cargo-fuzz into ~/.cargo/bin when
/// missing); `Err` says why fuzzing cannot run.
fn fuzz_tools() -> Result<(), String> {
    if !nightly_cargo().arg("--version").output().is_ok_and(|o| o.status.success()) {
        let installed = have("rustup", "--version")
            && run(
                "install the nightly toolchain (for cargo-fuzz)",
                Command::new("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal"]),
            )
            .is_ok();
        if !installed {
            return Err(
                "the nightly toolchain is not installed and could not be (rustup toolchain install nightly)".into()
            );
        }
    }
    if !nightly_cargo().args(["fuzz", "--version"]).output().is_ok_and(|o| o.status.success()) {
        let mut install = Command::new("cargo");
        install.current_dir(root()).args(["install", "cargo-fuzz", "--locked"]);
        run("install cargo-fuzz (once, into ~/.cargo/bin)", &mut install)
            .map_err(|e| format!("cargo-fuzz is not installed and could not be: {e}"))?;
    }
    Ok(())
}

/// `cargo xtask fuzz [--seconds N] [target...]`
fn fuzz_command(args: &[String]) -> Result<String, String> {
    let mut seconds = FUZZ_DEFAULT_SECONDS;
    let mut targets: Vec<&str> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--seconds" {
            let v = it.next().ok_or("--seconds needs a number")?;
            seconds = v.parse().map_err(|_| format!("--seconds {v}: not a number of seconds"))?;
        } else if let Some(v) = a.strip_prefix("--seconds=") {
            seconds = v.parse().map_err(|_| format!("--seconds={v}: not a number of seconds"))?;
        } else if let Some(t) = FUZZ_TARGETS.iter().find(|t| **t == a.as_str()) {
            targets.push(t);
        } else {
            return Err(format!("unknown fuzz target {a:?}; the targets are {}", FUZZ_TARGETS.join(", ")));
        }
    }
    if targets.is_empty() {
        targets.extend(FUZZ_TARGETS);
    }
    fuzz(seconds, &targets)
}

/// Build the fuzz targets and run each for `seconds`, its committed seeds and regression inputs
/// first. Crashes are an error naming the inputs saved (after every target ran); missing tools
/// are an error under
/// `CI=true` and a loud `fuzzing SKIPPED` line otherwise. Returns the summary line.
fn fuzz(seconds: u64, targets: &[&str]) -> Result<String, String> {
    if let Err(why) = fuzz_tools() {
        if env::var("CI").is_ok_and(|v| v == "true") {
            return Err(format!("fuzzing cannot run under CI: {why}"));
        }
        let line = format!("fuzzing SKIPPED: {why}");
        eprintln!("\n!!! {line}");
        return Ok(line);
    }
    let target_dir = fuzz_target_dir();
    let common = |c: &mut Command| {
        c.args(["--fuzz-dir", FUZZ_DIR, "--target-dir"]).arg(&target_dir).args(FUZZ_FLAGS);
        // the vault target seals with its own key file
        c.env_remove("FREEWAY_MASTER_KEY").env_remove("FREEWAY_MASTER_PASSPHRASE");
    };
    let mut build = nightly_cargo();
    build.args(["fuzz", "build"]);
    common(&mut build);
    run("build the fuzz targets (nightly; the first build takes a while)", &mut build)?;
    let started = Instant::now();
    let mut lines = Vec::new();
    let mut crashes = Vec::new();
    for target in targets {
        let dir = root().join(FUZZ_DIR);
        // the fuzzer's own corpus grows under target/, the committed seeds stay small
        let work = target_dir.join("corpus").join(target);
        let artifacts = dir.join("artifacts").join(target);
        for d in [&work, &artifacts] {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        let before = list_files(&artifacts);
        let log = target_dir.join(format!("fuzz-{target}.log"));
        let log_file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut cmd = nightly_cargo();
        cmd.args(["fuzz", "run", target]);
        common(&mut cmd);
        cmd.arg(&work);
        for extra in ["corpus", "regressions"] {
            let d = dir.join(extra).join(target);
            if d.is_dir() {
                cmd.arg(d);
            }
        }
        cmd.arg("--").arg(format!("-max_total_time={seconds}")).args(["-timeout=10", "-print_final_stats=1"]);
        let err_file = log_file.try_clone().map_err(|e| e.to_string())?;
        cmd.stdout(log_file).stderr(err_file);
        let step = format!("fuzz {target} for {seconds} s");
        let result = run(&step, &mut cmd);
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let runs = text
            .lines()
            .filter_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
            .map(|v| v.trim().to_owned())
            .next_back()
            .unwrap_or_else(|| "?".into());
        if let Err(e) = result {
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            eprintln!("    last lines of {}:", log.display());
            for l in tail.iter().rev() {
                eprintln!("    | {l}");
            }
            let new: Vec<String> = list_files(&artifacts)
                .into_iter()
                .filter(|f| !before.contains(f))
                .map(|f| f.display().to_string())
                .collect();
            let saved = if new.is_empty() { "no input saved".to_owned() } else { new.join(", ") };
            eprintln!("    {target}: CRASH, input {saved}");
            crashes.push(format!(
                "{e}: the fuzzer found a crash in {target} (input: {saved}; replay with `cargo +nightly fuzz run {target} \
                 --fuzz-dir {FUZZ_DIR} {} <input>`; log {})",
                FUZZ_FLAGS.join(" "),
                log.display()
            ));
            continue;
        }
        eprintln!("    {target}: {runs} inputs, no crash");
        lines.push(format!("{target} {runs}"));
    }
    if !crashes.is_empty() {
        return Err(crashes.join("\nxtask: "));
    }
    Ok(format!(
        "fuzzing: {} target(s) x {seconds} s in {:.0} s, no crash ({} inputs run)",
        targets.len(),
        started.elapsed().as_secs_f64(),
        lines.join(", ")
    ))
}

fn list_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir).map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default()
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

/// `freeway demo`: the release build over a simulated fleet (no keys needed).
fn demo(args: &[String]) -> Result<(), String> {
    build(true)?;
    let mut cmd = Command::new(root().join("target/release/freeway"));
    cmd.current_dir(root()).arg("demo").args(args);
    run("freeway demo", &mut cmd)
}

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let rest = |from: usize| -> Vec<String> { args.iter().skip(from).filter(|a| *a != "--").cloned().collect() };
    let result = match args.first().map(String::as_str) {
        Some("build") => build(args.iter().any(|a| a == "--release")),
        Some("run") => serve(&rest(1)),
        Some("demo") => demo(&rest(1)),
        Some("test") => test(),
        Some("lint") => lint(),
        Some("bench") => bench(&rest(1)),
        Some("soak") => soak(&rest(1)),
        Some("e2e") => python_e2e().and_then(|()| node_e2e()),
        Some("eval-routing") => eval_routing(&rest(1)),
        Some("policies") => build_guests().and_then(|()| policies::build_language_policies(&root())),
        Some("fuzz") => fuzz_command(&rest(1)).map(|summary| eprintln!("\n==> summary\n    {summary}")),
        Some("promtool") => services::promtool().map(|path| println!("{path}")),
        _ => {
            eprintln!(
                "usage: cargo xtask <run|demo|test|build [--release]|lint|bench|soak [--minutes N]|e2e|eval-routing|policies|fuzz [--seconds N] [target...]|promtool>"
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
