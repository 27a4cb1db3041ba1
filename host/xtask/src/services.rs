//! The shared services the test suite needs: Redis and PostgreSQL on their usual local ports.
//! Found when already running, started when installed but stopped; otherwise the tests that
//! need them are skipped and the summary line says so. Under `CI=true` a missing service fails
//! the run instead (a test must never pass by skipping there).
//!
//! Also a tool: `promtool` (from Debian's `prometheus` package), which checks `/metrics`. Found
//! on `PATH` or in `target/tools/`; otherwise only the binary is taken out of the package
//! (`apt-get download` + `dpkg-deb`) into `target/tools/`, no service installed or started.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What the test run gets: variables to set, and what could not be had.
#[derive(Default)]
pub struct Services {
    pub env: Vec<(&'static str, String)>,
    pub skipped: Vec<String>,
}

fn listening(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
}

fn wait_for(port: u16, within: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < within {
        if listening(port) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn quietly(program: &str, args: &[&str]) -> bool {
    Command::new(program).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

fn redis() -> Result<String, String> {
    let url = "redis://127.0.0.1:6379".to_owned();
    if listening(6379) {
        return Ok(url);
    }
    if !quietly("redis-server", &["--version"]) {
        return Err("no Redis on 127.0.0.1:6379 and redis-server is not installed".into());
    }
    let started = quietly(
        "redis-server",
        &["--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379", "--save", "", "--appendonly", "no"],
    );
    if started && wait_for(6379, Duration::from_secs(10)) {
        eprintln!("    started redis-server on 127.0.0.1:6379");
        Ok(url)
    } else {
        Err("redis-server is installed but did not start on 127.0.0.1:6379".into())
    }
}

fn postgres() -> Result<String, String> {
    let url = "postgres://postgres@127.0.0.1:5432/test".to_owned();
    if listening(5432) {
        return Ok(url);
    }
    let versions = std::fs::read_dir("/etc/postgresql")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect::<Vec<_>>())
        .unwrap_or_default();
    let Some(version) = versions.first() else {
        return Err("no PostgreSQL on 127.0.0.1:5432 and no cluster in /etc/postgresql".into());
    };
    let started = quietly("pg_ctlcluster", &["--skip-systemctl-redirect", version, "main", "start"]);
    if started && wait_for(5432, Duration::from_secs(20)) {
        eprintln!("    started PostgreSQL {version} on 127.0.0.1:5432");
        Ok(url)
    } else {
        Err(format!("PostgreSQL {version} is installed but did not start on 127.0.0.1:5432"))
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap_or_else(|_| PathBuf::from("."))
}

/// `promtool`: on `PATH`, or in `target/tools/`, or taken from Debian's `prometheus` package
/// into `target/tools/` (the package is downloaded, not installed).
pub fn promtool() -> Result<String, String> {
    let on_path = Command::new("sh").args(["-c", "command -v promtool"]).output();
    if let Ok(out) = on_path
        && out.status.success()
    {
        let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !path.is_empty() {
            return Ok(path);
        }
    }
    let tools = root().join("target/tools");
    let dest = tools.join("promtool");
    if quietly(&dest.display().to_string(), &["--version"]) {
        return Ok(dest.display().to_string());
    }
    let work = tools.join("prometheus-deb");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let download = || {
        Command::new("apt-get")
            .current_dir(&work)
            .args(["download", "-q", "prometheus"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    // a machine whose package lists were never read knows no `prometheus` yet
    let downloaded = download() || (quietly("apt-get", &["update", "-qq"]) && download());
    if !downloaded {
        return Err("promtool is not on PATH and `apt-get download prometheus` failed".into());
    }
    let deb = std::fs::read_dir(&work)
        .ok()
        .and_then(|d| d.filter_map(Result::ok).map(|e| e.path()).find(|p| p.extension().is_some_and(|x| x == "deb")))
        .ok_or("apt-get download prometheus left no .deb")?;
    let extract =
        format!("dpkg-deb --fsys-tarfile '{}' | tar -x -C '{}' ./usr/bin/promtool", deb.display(), work.display());
    if !quietly("sh", &["-c", &extract]) {
        return Err(format!("could not take promtool out of {}", deb.display()));
    }
    std::fs::rename(work.join("usr/bin/promtool"), &dest).map_err(|e| format!("installing promtool: {e}"))?;
    let _ = std::fs::remove_dir_all(&work);
    if !quietly(&dest.display().to_string(), &["--version"]) {
        return Err(format!("{} does not run", dest.display()));
    }
    eprintln!("    promtool taken from Debian's prometheus package into {}", dest.display());
    Ok(dest.display().to_string())
}

/// How a service is found or started: its URL, or why it cannot be had.
type Find = fn() -> Result<String, String>;

/// Find or start the services; variables already set are used as they are.
pub fn prepare() -> Services {
    let mut out = Services::default();
    let wanted: [(&'static str, &str, Find); 3] = [
        ("FREEWAY_TEST_REDIS_URL", "Redis", redis),
        ("FREEWAY_TEST_DATABASE_URL", "PostgreSQL", postgres),
        ("FREEWAY_PROMTOOL", "promtool (/metrics)", promtool),
    ];
    for (var, what, find) in wanted {
        if std::env::var(var).is_ok_and(|v| !v.trim().is_empty()) {
            continue;
        }
        match find() {
            Ok(url) => out.env.push((var, url)),
            Err(why) => out.skipped.push(format!("the {what} tests ({why})")),
        }
    }
    out
}

pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}
