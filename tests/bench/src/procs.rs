//! The simulator and gateway processes: started from the release builds, pinned with `taskset`,
//! their CPU time and resident memory read from `/proc`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap_or_else(|_| PathBuf::from("."))
}

/// The gateway binary measured: the release build, or `FREEWAY_BENCH_GATEWAY` (to compare two
/// builds with one load client).
pub fn gateway_bin() -> PathBuf {
    std::env::var_os("FREEWAY_BENCH_GATEWAY").map_or_else(|| root().join("target/release/freeway"), PathBuf::from)
}

fn have_taskset() -> bool {
    Command::new("taskset").arg("-V").output().is_ok_and(|o| o.status.success())
}

/// Re-run this process pinned to `cores`; true when the pinned child ran (and this one should
/// exit).
pub fn pin_self(cores: &str) -> bool {
    if std::env::var_os("FREEWAY_BENCH_PINNED").is_some() || !have_taskset() {
        return false;
    }
    let Ok(me) = std::env::current_exe() else { return false };
    let status = Command::new("taskset")
        .arg("-c")
        .arg(cores)
        .arg(me)
        .args(std::env::args().skip(1))
        .env("FREEWAY_BENCH_PINNED", "1")
        .status();
    match status {
        Ok(s) => std::process::exit(s.code().unwrap_or(1)),
        Err(_) => false,
    }
}

pub struct Proc {
    child: Child,
    pub port: u16,
}

impl Proc {
    pub fn spawn(cores: &str, program: &Path, args: &[&str], marker: &str) -> Result<Proc, String> {
        if !program.exists() {
            return Err(format!("{} is missing: run `cargo xtask build --release`", program.display()));
        }
        let mut cmd = if have_taskset() {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cores).arg(program);
            c
        } else {
            Command::new(program)
        };
        cmd.args(args).env("RUST_LOG", "warn").stdout(Stdio::piped()).stderr(Stdio::inherit()).current_dir(root());
        let mut child = cmd.spawn().map_err(|e| format!("start {}: {e}", program.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel::<u16>();
        let marker = marker.to_owned();
        // read the ready line, then keep draining stdout so the child never blocks on a full pipe
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split(marker.as_str()).nth(1) {
                    let digits: String =
                        rest.rsplit(':').next().unwrap_or_default().chars().take_while(char::is_ascii_digit).collect();
                    if let Ok(port) = digits.parse() {
                        let _ = tx.send(port);
                    }
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(port) => Ok(Proc { child, port }),
            Err(_) => {
                let _ = child.kill();
                Err(format!("{} did not print that it was ready within 60 s", program.display()))
            }
        }
    }

    /// A release simulator started with `sim_config` and a release gateway with the
    /// configuration `gateway(simulator port)`, both files written into `dir`.
    pub fn sim_and_gateway(
        cores: &str,
        dir: &Path,
        sim_config: &serde_json::Value,
        gateway: impl FnOnce(u16) -> String,
    ) -> Result<(Proc, Proc), String> {
        let sim_cfg = dir.join("sim.json");
        std::fs::write(&sim_cfg, sim_config.to_string()).map_err(|e| e.to_string())?;
        let sim_cfg = sim_cfg.display().to_string();
        let sim = Proc::spawn(
            cores,
            &root().join("target/release/freeway-sim"),
            &["--listen", "127.0.0.1:0", "--no-record", "--config", &sim_cfg],
            "listening on http://",
        )?;
        let gw_cfg = dir.join("freeway.toml");
        std::fs::write(&gw_cfg, gateway(sim.port)).map_err(|e| e.to_string())?;
        let gw_cfg = gw_cfg.display().to_string();
        let gw = Proc::spawn(
            cores,
            &gateway_bin(),
            &["serve", "--listen", "127.0.0.1:0", "--config", &gw_cfg],
            "freeway listening on http://",
        )?;
        Ok((sim, gw))
    }

    pub fn sim(cores: &str) -> Result<Proc, String> {
        let dir = root().join("target/bench");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let cfg = dir.join("sim.json");
        let text = r#"{"record": false, "upstreams": [
            {"prefix": "/v1", "reply_tokens": 12},
            {"prefix": "/slow/v1", "latency_ms": 400, "reply_tokens": 12}
        ]}"#;
        std::fs::write(&cfg, text).map_err(|e| e.to_string())?;
        let bin = root().join("target/release/freeway-sim");
        let cfg_s = cfg.display().to_string();
        Self::spawn(
            cores,
            &bin,
            &["--listen", "127.0.0.1:0", "--no-record", "--config", &cfg_s],
            "listening on http://",
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// user + system CPU time so far.
    pub fn cpu_time(&self) -> Duration {
        cpu_time_of(self.pid())
    }

    /// Resident set size in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib_of(self.pid())
    }
}

/// user + system CPU time of process `pid` so far.
pub fn cpu_time_of(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // fields after the command name (which may contain spaces) start after the last ')'
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    let hz = clock_ticks();
    Duration::from_secs_f64(ticks as f64 / hz as f64)
}

/// Resident set size of process `pid` in KiB.
pub fn rss_kib_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A release gateway's configuration in `dir` with the simulator at `sim_port` as provider `sim`
/// (`bench-model`): `server` lines for `[server]`, `extra` appended (more providers).
pub fn config(dir: &Path, sim_port: u16, server: &str, extra: &str) -> String {
    format!(
        r#"[server]
{server}

[runtime]
providers_dir = "{root}/providers"
policies_dir = "{dir}/policies"
cache_dir = "{dir}/component-cache"
watch = false

[discovery]
interval_secs = 0
state_file = "{dir}/models.json"

[storage]
url = "sqlite://{dir}/freeway.db"

[quota]
state_file = "{dir}/quota.json"

[upstream]
egress_hosts = ["127.0.0.1"]

[vault]
path = "{dir}/vault.json"
key_file = "{dir}/master.key"
audit_log = "{dir}/audit.log"
health_file = "{dir}/health.json"

[[providers]]
id = "sim"
component = "openai-compat"
base_url = "http://127.0.0.1:{sim_port}/v1"
api_keys = ["sk-bench-1", "sk-bench-2"]
models = ["bench-model"]

{extra}"#,
        root = root().display(),
        dir = dir.display(),
    )
}

pub struct Gateway {
    pub proc: Proc,
    pub port: u16,
}

impl Gateway {
    pub fn start(cores: &str, sim: &Proc) -> Result<Gateway, String> {
        let dir = root().join("target/bench");
        let cfg = dir.join("freeway.toml");
        // every run starts from an empty usage table, so rounds are comparable across runs
        for f in ["freeway.db", "freeway.db-wal", "freeway.db-shm"] {
            let _ = std::fs::remove_file(dir.join(f));
        }
        let slow = format!(
            "[[providers]]\nid = \"slow\"\ncomponent = \"openai-compat\"\nbase_url = \"http://127.0.0.1:{}/slow/v1\"\napi_keys = [\"sk-bench-3\"]\nmodels = [\"slow-model\"]\n",
            sim.port
        );
        let text = config(&dir, sim.port, "", &slow);
        std::fs::write(&cfg, text).map_err(|e| e.to_string())?;
        let bin = gateway_bin();
        let cfg_s = cfg.display().to_string();
        let proc = Proc::spawn(
            cores,
            &bin,
            &["serve", "--listen", "127.0.0.1:0", "--config", &cfg_s],
            "freeway listening on http://",
        )?;
        let port = proc.port;
        Ok(Gateway { proc, port })
    }

    /// Send `n` concurrent requests to the slow upstream; peak RSS while they are in flight.
    pub async fn burst_rss(&self, n: usize) -> u64 {
        let body: &'static str = r#"{"model":"slow-model","messages":[{"role":"user","content":"hello there, how are you today?"}],"max_tokens":12}"#;
        let port = self.port;
        let mut tasks = Vec::new();
        for _ in 0..n {
            tasks.push(tokio::spawn(async move {
                let mut c = super::client::Conn::open(port).await;
                c.request(body, super::client::Kind::Full).await
            }));
        }
        let mut peak = 0;
        for _ in 0..8 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            peak = peak.max(self.proc.rss_kib());
        }
        for t in tasks {
            let _ = t.await;
        }
        peak.max(self.proc.rss_kib())
    }
}
