//! The Python end-to-end suites (`tests/e2e/python`): two venvs, because LlamaIndex's OpenAI
//! integration pins `openai<3` while the main suite runs on `openai==3.x`.
//!
//! - `target/e2e-venv` from `tests/e2e/python/requirements.txt` (openai, anthropic, langchain)
//!   runs every test module except `llamaindex/`;
//! - `target/e2e-venv-llamaindex` from `tests/e2e/python/llamaindex/requirements.txt` runs
//!   `llamaindex/` (sharing the suite's conftest.py and freeway_e2e.py).
//!
//! Each venv keeps a copy of the requirements file it was installed from
//! (`.freeway-requirements.txt`); when the file is unchanged, pip is not run at all.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{e2e_env, have, root, run};

/// The stamp inside a venv: the requirements text it was last installed from.
const STAMP: &str = ".freeway-requirements.txt";

struct Suite {
    what: &'static str,
    venv: &'static str,
    requirements: &'static str,
    /// pytest arguments (paths relative to the repository root).
    args: &'static [&'static str],
}

const SUITES: &[Suite] = &[
    Suite {
        what: "end-to-end: official openai and anthropic Python SDKs, LangChain",
        venv: "target/e2e-venv",
        requirements: "tests/e2e/python/requirements.txt",
        args: &["tests/e2e/python", "--ignore=tests/e2e/python/llamaindex"],
    },
    Suite {
        what: "end-to-end: LlamaIndex (its own venv: openai<3)",
        venv: "target/e2e-venv-llamaindex",
        requirements: "tests/e2e/python/llamaindex/requirements.txt",
        args: &["tests/e2e/python/llamaindex"],
    },
];

/// Runs every suite (each after the others failed too), then fails naming the suites that did.
pub fn run_suites() -> Result<(), String> {
    let mut failed = Vec::new();
    for suite in SUITES {
        let ran = prepare(&root().join(suite.venv), &root().join(suite.requirements)).and_then(|py| {
            let mut cmd = Command::new(&py);
            cmd.current_dir(root()).args(["-m", "pytest", "-q"]).args(suite.args);
            e2e_env(&mut cmd);
            run(suite.what, &mut cmd)
        });
        if let Err(e) = ran {
            failed.push(e);
        }
    }
    if failed.is_empty() { Ok(()) } else { Err(failed.join("; ")) }
}

/// Creates the venv if needed and installs `requirements` unless the venv's stamp says it
/// already holds exactly them. Returns the venv's python.
fn prepare(venv: &Path, requirements: &Path) -> Result<PathBuf, String> {
    let py = venv.join("bin/python");
    let wanted = fs::read_to_string(requirements).map_err(|e| format!("{}: {e}", requirements.display()))?;
    let stamp = venv.join(STAMP);
    if py.exists() && fs::read_to_string(&stamp).is_ok_and(|had| had == wanted) {
        eprintln!("\n==> {}: up to date ({} unchanged)", venv.display(), requirements.display());
        return Ok(py);
    }
    if !py.exists() {
        let python = if have("python3", "--version") { "python3" } else { "python" };
        run("create the Python venv", Command::new(python).args(["-m", "venv"]).arg(venv))?;
    }
    // a failed install leaves no stamp, so the next run tries again
    let _ = fs::remove_file(&stamp);
    run(
        "install the Python test requirements",
        Command::new(&py)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(requirements),
    )?;
    fs::write(&stamp, wanted).map_err(|e| format!("{}: {e}", stamp.display()))?;
    Ok(py)
}
