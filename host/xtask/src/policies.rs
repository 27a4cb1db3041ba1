//! The example routing policies written in Python and JavaScript (`policies/examples/`), built
//! into components with their languages' own tools:
//!
//! - Python: componentize-py, pip-installed into `target/policy-venv`
//! - JavaScript: componentize-js, from the example's `package-lock.json` (`npm ci`)
//!
//! The provider examples (`providers/examples/{python,js}`, world `declared-provider`) are built
//! the same way, into `tests/guests/python-provider.wasm` and `tests/guests/js-provider.wasm`
//! (the JavaScript one with the policy example's componentize-js: same pinned version).
//!
//! Outputs go to `tests/guests/<name>.wasm`. Each build leaves a stamp in `target/policy-stamps/`
//! (a hash of its inputs: sources, every `wit/*.wit`, the tool version and flags), so a rerun with
//! nothing changed starts no tool at all, and needs neither Python nor Node.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use std::{env, fs};

const COMPONENTIZE_PY: &str = "0.25.1";
/// `-d http -d fetch-event`: without them the component imports wasi:http, which the host lacks.
const COMPONENTIZE_JS_ARGS: &[&str] = &["-n", "policy", "-d", "http", "-d", "fetch-event"];
const COMPONENTIZE_JS_PROVIDER_ARGS: &[&str] = &["-n", "declared-provider", "-d", "http", "-d", "fetch-event"];

const PYTHON_DIR: &str = "policies/examples/python";
const PYTHON_PROVIDER_DIR: &str = "providers/examples/python";
const JS_DIR: &str = "policies/examples/js";
const JS_PROVIDER_DIR: &str = "providers/examples/js";
/// The componentize-js CLI inside the example's node_modules (its `bin` entry).
const COMPONENTIZE_JS_CLI: &str = "node_modules/@bytecodealliance/componentize-js/src/cli.js";

/// Build `tests/guests/python-example.wasm`, `tests/guests/python-provider.wasm`,
/// `tests/guests/js-example.wasm` and `tests/guests/js-provider.wasm`, installing the tools they
/// need on first use.
pub fn build_language_policies(root: &Path) -> Result<(), String> {
    let started = Instant::now();
    build_python_policy(root)?;
    build_python_provider(root)?;
    build_js_policy(root)?;
    build_js_provider(root)?;
    eprintln!("    (Python and JavaScript components: {:.1} s)", started.elapsed().as_secs_f64());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Python

fn ensure_componentize_py(root: &Path) -> Result<PathBuf, String> {
    let venv = root.join("target/policy-venv");
    let bin = venv.join(if cfg!(windows) { "Scripts" } else { "bin" });
    let tool = bin.join(exe("componentize-py"));
    if tool_version(&tool).as_deref() == Some(COMPONENTIZE_PY) {
        return Ok(tool);
    }
    let python = bin.join(exe("python"));
    if !python.exists() {
        let system = ["python3", "python"]
            .into_iter()
            .find(|p| Command::new(p).arg("--version").output().is_ok_and(|o| o.status.success()))
            .ok_or("python3 not found: install Python 3 (3.9 or newer) to build the Python example policy")?;
        run(
            "create the policy tools' Python venv (target/policy-venv)",
            Command::new(system).args(["-m", "venv"]).arg(&venv),
            "Python's venv module is missing? (Debian/Ubuntu: apt install python3-venv)",
        )?;
    }
    run(
        &format!("install componentize-py {COMPONENTIZE_PY}"),
        Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &format!("componentize-py=={COMPONENTIZE_PY}"),
        ]),
        "pip needs to reach PyPI once (or delete target/policy-venv and retry)",
    )?;
    match tool_version(&tool) {
        Some(v) if v == COMPONENTIZE_PY => Ok(tool),
        found => Err(format!(
            "install componentize-py: {} reports {found:?}, wanted {COMPONENTIZE_PY}; delete target/policy-venv and retry",
            tool.display()
        )),
    }
}

/// `componentize-py --version` prints `componentize-py 0.25.1`.
fn tool_version(tool: &Path) -> Option<String> {
    let out = Command::new(tool).arg("--version").output().ok().filter(|o| o.status.success())?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().last().map(str::to_owned)
}

fn build_python_policy(root: &Path) -> Result<(), String> {
    let dir = root.join(PYTHON_DIR);
    let sources = sources(&dir, &["py"])?;
    let key = format!("componentize-py {COMPONENTIZE_PY} -w policy componentize app");
    build_component(root, "python-example", &sources, &key, "see the error above", |built| {
        let mut cmd = Command::new(ensure_componentize_py(root)?);
        cmd.current_dir(&dir)
            .arg("-d")
            .arg(root.join("wit"))
            .args(["-w", "policy", "componentize", "app", "-o"])
            .arg(built);
        Ok(cmd)
    })
}

fn build_python_provider(root: &Path) -> Result<(), String> {
    let dir = root.join(PYTHON_PROVIDER_DIR);
    let sources = sources(&dir, &["py"])?;
    let key = format!("componentize-py {COMPONENTIZE_PY} -w declared-provider componentize app");
    build_component(root, "python-provider", &sources, &key, "see the error above", |built| {
        let mut cmd = Command::new(ensure_componentize_py(root)?);
        cmd.current_dir(&dir)
            .arg("-d")
            .arg(root.join("wit"))
            .args(["-w", "declared-provider", "componentize", "app", "-o"])
            .arg(built);
        Ok(cmd)
    })
}

// ---------------------------------------------------------------------------------------------
// JavaScript

fn ensure_node_modules(root: &Path) -> Result<(), String> {
    let dir = root.join(JS_DIR);
    let stamp = root.join("target/policy-stamps/js-node-modules.hash");
    let manifests = |dir: &Path| -> Vec<PathBuf> {
        ["package.json", "package-lock.json"].iter().map(|f| dir.join(f)).filter(|p| p.exists()).collect()
    };
    let key = hash_files(root, &manifests(&dir), "npm")?;
    if dir.join(COMPONENTIZE_JS_CLI).exists() && read_stamp(&stamp).as_deref() == Some(key.as_str()) {
        eprintln!("\n==> install the JavaScript policy tools (npm): up to date");
        return Ok(());
    }
    let verb = if dir.join("package-lock.json").exists() { "ci" } else { "install" };
    run(
        &format!("install the JavaScript policy tools (npm {verb} in {JS_DIR})"),
        Command::new(exe_script("npm")).current_dir(&dir).args([verb, "--no-audit", "--no-fund"]),
        "install Node.js 18+ with npm; npm needs to reach the registry once",
    )?;
    // `npm install` may have just written the lock file
    write_stamp(&stamp, &hash_files(root, &manifests(&dir), "npm")?)
}

fn build_js_policy(root: &Path) -> Result<(), String> {
    let dir = root.join(JS_DIR);
    let mut inputs = sources(&dir, &["js", "mjs"])?;
    // the exact tool version: the lock pins it
    inputs.push(dir.join("package-lock.json"));
    let key = format!("componentize-js {}", COMPONENTIZE_JS_ARGS.join(" "));
    build_component(root, "js-example", &inputs, &key, "install Node.js 18+ if node is missing", |built| {
        ensure_node_modules(root)?;
        let mut cmd = Command::new(exe("node"));
        cmd.current_dir(&dir)
            .args([COMPONENTIZE_JS_CLI, "policy.js", "--wit"])
            .arg(root.join("wit"))
            .args(COMPONENTIZE_JS_ARGS)
            .arg("-o")
            .arg(built);
        Ok(cmd)
    })
}

fn build_js_provider(root: &Path) -> Result<(), String> {
    let dir = root.join(JS_PROVIDER_DIR);
    let mut inputs = sources(&dir, &["js"])?;
    // the tool is the policy example's: its lock pins the exact version
    inputs.push(root.join(JS_DIR).join("package-lock.json"));
    let key = format!("componentize-js {}", COMPONENTIZE_JS_PROVIDER_ARGS.join(" "));
    build_component(root, "js-provider", &inputs, &key, "install Node.js 18+ if node is missing", |built| {
        ensure_node_modules(root)?;
        let mut cmd = Command::new(exe("node"));
        cmd.current_dir(&dir)
            .arg(root.join(JS_DIR).join(COMPONENTIZE_JS_CLI))
            .arg("provider.js")
            .arg("--wit")
            .arg(root.join("wit"))
            .args(COMPONENTIZE_JS_PROVIDER_ARGS)
            .arg("-o")
            .arg(built);
        Ok(cmd)
    })
}

// ---------------------------------------------------------------------------------------------
// Shared

/// Unless the stamp says `tests/guests/<name>.wasm` is already built from these inputs: get the
/// tools ready and the command that writes the component to the path it is given (`prepare`),
/// run it, install the output and record the stamp.
fn build_component(
    root: &Path,
    name: &str,
    inputs: &[PathBuf],
    tool_key: &str,
    hint: &str,
    prepare: impl FnOnce(&Path) -> Result<Command, String>,
) -> Result<(), String> {
    let dest = root.join("tests/guests").join(format!("{name}.wasm"));
    let stamp = root.join("target/policy-stamps").join(format!("{name}.hash"));
    let mut all = inputs.to_vec();
    all.extend(wit_files(root)?);
    let key = hash_files(root, &all, tool_key)?;
    if dest.exists() && read_stamp(&stamp).as_deref() == Some(key.as_str()) {
        eprintln!("\n==> build the {name} component: up to date");
        return Ok(());
    }
    let out_dir = root.join("target/policy-build");
    let built = out_dir.join(format!("{name}.wasm"));
    fs::create_dir_all(&out_dir).map_err(|e| format!("create {}: {e}", out_dir.display()))?;
    // a tool that fails without saying so must not leave an old build to install
    let _ = fs::remove_file(&built);
    let mut cmd = prepare(&built)?;
    run(&format!("build the {name} component"), &mut cmd, hint)?;
    if !built.exists() {
        return Err(format!("build the {name} component: the tool wrote no {}", built.display()));
    }
    install(&built, &dest)?;
    let size = fs::metadata(&dest).map(|m| m.len()).unwrap_or(0);
    eprintln!("    {} ({:.1} MB)", dest.strip_prefix(root).unwrap_or(&dest).display(), size as f64 / 1e6);
    write_stamp(&stamp, &key)
}

fn run(step: &str, cmd: &mut Command, hint: &str) -> Result<(), String> {
    let started = Instant::now();
    eprintln!("\n==> {step}");
    let status = cmd.status().map_err(|e| {
        let program = cmd.get_program().to_string_lossy();
        if e.kind() == ErrorKind::NotFound {
            format!("{step}: {program} not found; {hint}")
        } else {
            format!("{step}: cannot start {program}: {e}")
        }
    })?;
    eprintln!("    ({step}: {:.1} s)", started.elapsed().as_secs_f64());
    if status.success() { Ok(()) } else { Err(format!("{step} failed ({status}); {hint}")) }
}

/// Copy to a temporary file beside `dest`, then rename: a running gateway's watcher sees one
/// complete file.
fn install(from: &Path, dest: &Path) -> Result<(), String> {
    if let Some(dir) = dest.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    let tmp = dest.with_extension("wasm.tmp");
    fs::copy(from, &tmp).map_err(|e| format!("copy {} to {}: {e}", from.display(), tmp.display()))?;
    fs::rename(&tmp, dest).map_err(|e| format!("install {}: {e}", dest.display()))
}

/// The source files of a policy folder with these extensions, tests (`test_*`) left out.
fn sources(dir: &Path, extensions: &[&str]) -> Result<Vec<PathBuf>, String> {
    let files = list(dir, |p| {
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        extensions.contains(&ext) && !name.starts_with("test_")
    })?;
    if files.is_empty() {
        return Err(format!("no {extensions:?} sources in {}", dir.display()));
    }
    Ok(files)
}

fn wit_files(root: &Path) -> Result<Vec<PathBuf>, String> {
    list(&root.join("wit"), |p| p.extension().is_some_and(|e| e == "wit"))
}

/// Files directly in `dir` that `keep` accepts, sorted.
fn list(dir: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>, String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("read {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> =
        entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file() && keep(p)).collect();
    files.sort();
    Ok(files)
}

/// A cache key, not a security measure: FNV-1a (64 bit) over the tool key and each file's
/// path, length and bytes. Stable across Rust releases, unlike `DefaultHasher`.
fn hash_files(root: &Path, files: &[PathBuf], tool_key: &str) -> Result<String, String> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    feed(tool_key.as_bytes());
    for file in files {
        let bytes = fs::read(file).map_err(|e| format!("read {}: {e}", file.display()))?;
        feed(file.strip_prefix(root).unwrap_or(file).to_string_lossy().as_bytes());
        feed(&(bytes.len() as u64).to_le_bytes());
        feed(&bytes);
    }
    Ok(format!("{h:016x} {} files", files.len()))
}

fn read_stamp(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

fn write_stamp(path: &Path, key: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    fs::write(path, format!("{key}\n")).map_err(|e| format!("write {}: {e}", path.display()))
}

fn exe(name: &str) -> String {
    format!("{name}{}", env::consts::EXE_SUFFIX)
}

/// npm is a batch script on Windows.
fn exe_script(name: &str) -> String {
    if cfg!(windows) { format!("{name}.cmd") } else { name.to_owned() }
}
