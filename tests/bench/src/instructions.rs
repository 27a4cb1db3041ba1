//! Instructions per request, counted by callgrind: repeatable for the same binary and inputs
//! whatever else the machine is doing, so a change to the hot path shows through the noise of
//! timings. The gateway runs under `valgrind --tool=callgrind` with instrumentation off while it
//! starts and warms up; it is switched on for exactly `n` requests (`callgrind_control`), then
//! the total is divided by `n`. Background work those requests cause (the usage writer, quota
//! bookkeeping) is counted too; instructions of the simulator and the client are not.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::client::{Conn, Kind};
use super::procs::{Proc, root};

fn have(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok_and(|o| o.status.success())
}

fn control(pid: u32, arg: &str) -> Result<(), String> {
    let out = Command::new("callgrind_control").arg(arg).arg(pid.to_string()).output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("callgrind_control {arg}: {}", String::from_utf8_lossy(&out.stderr)))
    }
}

/// The `summary:`/`totals:` event count of the callgrind dumps under `dir` named `prefix*`.
fn total_ir(dir: &Path, prefix: &str) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut total = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        // the first dump (`--dump`); the one written at exit holds only what came after it
        if !(name.starts_with(prefix) && name.ends_with(".1")) {
            continue;
        }
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        // one dump has one `summary:` (or `totals:`) line
        if let Some(n) = text
            .lines()
            .find_map(|l| l.strip_prefix("summary:").or_else(|| l.strip_prefix("totals:")))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
        {
            total += n;
        }
    }
    total
}

/// Instructions per request of the release gateway with the configuration file
/// `gateway_config`, over `n` requests of `body` at concurrency 1; `Err` says why it could not
/// run.
pub async fn per_request(cores: &str, gateway_config: &Path, body: &'static str, n: usize) -> Result<f64, String> {
    if !have("valgrind") || !have("callgrind_control") {
        return Err("valgrind (with callgrind_control) is not installed".into());
    }
    let dir = root().join("target/bench/callgrind");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let out = dir.join("callgrind.out.%p");
    let out_arg = format!("--callgrind-out-file={}", out.display());
    let bin = super::procs::gateway_bin();
    let bin_s = bin.display().to_string();
    // valgrind cannot reserve the instance pool's terabytes of address space: a small pool
    let text = std::fs::read_to_string(gateway_config).map_err(|e| e.to_string())?;
    let small = dir.join("freeway.toml");
    std::fs::write(&small, text.replacen("[runtime]\n", "[runtime]\nmax_instances = 4\n", 1))
        .map_err(|e| e.to_string())?;
    let cfg = small.display().to_string();
    let valgrind = Path::new("/usr/bin/valgrind");
    let program = if valgrind.exists() { valgrind.to_path_buf() } else { "valgrind".into() };
    let gw = Proc::spawn(
        cores,
        &program,
        &[
            "--tool=callgrind",
            "--instr-atstart=no",
            "--dump-instr=no",
            "--error-limit=no",
            &out_arg,
            &bin_s,
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--config",
            &cfg,
        ],
        "freeway listening on http://",
    )?;
    let mut conn = Conn::open(gw.port).await;
    for _ in 0..50 {
        conn.request(body, Kind::Full).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    control(gw.pid(), "--instr=on")?;
    for _ in 0..n {
        conn.request(body, Kind::Full).await;
    }
    // the usage writer's batch for these requests
    tokio::time::sleep(Duration::from_millis(600)).await;
    control(gw.pid(), "--dump")?;
    control(gw.pid(), "--instr=off")?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(gw);
    let ir = total_ir(&dir, "callgrind.out");
    if ir == 0 {
        return Err(format!("no callgrind totals in {}", dir.display()));
    }
    Ok(ir as f64 / n as f64)
}
