//! Test harness: a simulator and a gateway (the real library, real components, a real socket)
//! per test, each on its own port and folder.

#![expect(clippy::expect_used, reason = "test harness: a failed set-up step must fail the test loudly")]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use freeway::app::App;
use freeway_sim::{SimConfig, Simulator};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A built component (by `cargo xtask build`).
pub fn artifact(rel: &str) -> PathBuf {
    let p = root().join(rel);
    assert!(p.exists(), "{} is missing: run `cargo xtask build` first", p.display());
    p
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().expect("client")
}

/// A running simulator.
pub struct Sim {
    pub sim: Simulator,
}

impl Sim {
    pub async fn start() -> Sim {
        Self::start_with(SimConfig::default()).await
    }

    pub async fn start_with(config: SimConfig) -> Sim {
        let sim = Simulator::start(SocketAddr::from(([127, 0, 0, 1], 0)), config).await.expect("simulator");
        Sim { sim }
    }

    /// Start from a JSON configuration (the same shape as `POST /_sim/config`).
    pub async fn start_json(config: Value) -> Sim {
        let cfg = SimConfig::from_json(&config.to_string()).expect("sim config");
        Self::start_with(cfg).await
    }

    pub fn base(&self) -> String {
        self.sim.base_url()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.sim.addr())
    }

    /// Add scripted rules (`POST /_sim/script`).
    pub async fn script(&self, rules: Value) {
        let r = http().post(self.url("/_sim/script")).json(&json!({ "rules": rules })).send().await.expect("script");
        assert!(r.status().is_success(), "script rejected: {}", r.text().await.unwrap_or_default());
    }

    /// Replace the simulator's configuration (`POST /_sim/config`).
    pub async fn configure(&self, config: Value) {
        let r = http().post(self.url("/_sim/config")).json(&config).send().await.expect("config");
        assert!(r.status().is_success(), "config rejected: {}", r.text().await.unwrap_or_default());
    }

    /// Requests the simulator received.
    pub async fn requests(&self) -> Vec<Value> {
        http().get(self.url("/_sim/requests")).send().await.expect("requests").json().await.expect("json")
    }
}

/// A running gateway with its own folder, configuration and providers directory.
pub struct Gateway {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// Sections a test adds around its providers.
#[derive(Default, Clone)]
pub struct Opts {
    /// lines for `[server]`
    pub server: String,
    /// lines for `[upstream]`
    pub upstream: String,
    /// lines for `[runtime]`
    pub runtime: String,
    /// lines for `[discovery]`
    pub discovery: String,
    /// lines for `[vault]`
    pub vault: String,
    /// lines for `[quota]`
    pub quota: String,
    /// lines for `[routing]`
    pub routing: String,
    /// policy components copied into the policies folder before start: (built artifact
    /// relative to the repository, file name)
    pub policies: Vec<(String, String)>,
    /// a catalog file (TOML) the gateway loads from its first start
    pub catalog: Option<String>,
    pub grace_secs: u64,
    /// `[storage] url`; empty: `sqlite://DIR/data/freeway.db`
    pub storage_url: String,
}

impl Gateway {
    /// Start with `providers` (TOML `[[providers]]` tables) and default options.
    pub async fn start(providers: &str) -> Gateway {
        Self::start_opts(providers, Opts::default()).await
    }

    pub async fn start_opts(providers: &str, opts: Opts) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let pdir = dir.path().join("providers");
        std::fs::create_dir_all(&pdir).expect("providers dir");
        std::fs::create_dir_all(dir.path().join("policies")).expect("policies dir");
        std::fs::copy(artifact("providers/openai-compat.wasm"), pdir.join("openai-compat.wasm"))
            .expect("copy component");
        for (artifact_path, name) in &opts.policies {
            std::fs::copy(artifact(artifact_path), dir.path().join("policies").join(name)).expect("copy policy");
        }
        if let Some(catalog) = &opts.catalog {
            std::fs::write(dir.path().join("catalog.toml"), catalog).expect("write catalog");
        }
        let config_path = dir.path().join("freeway.toml");
        std::fs::write(&config_path, Self::render(dir.path(), providers, &opts)).expect("write config");
        let loaded = freeway::config::load(&config_path).expect("config");
        let grace = Duration::from_secs(loaded.config.server.shutdown_grace_secs);
        let app = App::start(loaded).await.expect("app");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(freeway::server::serve(app.clone(), listener, grace, async move {
            let _ = rx.await;
        }));
        Gateway { addr, app, dir, stop: Some(tx), server: Some(server) }
    }

    fn render(dir: &Path, providers: &str, opts: &Opts) -> String {
        let cache = root().join("target/test-component-cache");
        format!(
            "[server]\nshutdown_grace_secs = {grace}\n{server}\n\n[runtime]\nproviders_dir = \"{pdir}\"\npolicies_dir = \"{poldir}\"\ncache_dir = \"{cache}\"\n{instances}{runtime}\n\n[upstream]\negress_hosts = [\"127.0.0.1\", \"::1\", \"localhost\"]\nproxy_from_env = false\n{upstream}\n\n[discovery]\n{interval}state_file = \"{state}\"\n{discovery}\n\n[vault]\npath = \"{data}/vault.json\"\nkey_file = \"{data}/master.key\"\naudit_log = \"{data}/audit.log\"\nhealth_file = \"{data}/health.json\"\n{vault}\n\n[storage]\nurl = \"{storage}\"\n\n[quota]\n{quota_state}{quota}\n\n[routing]\nstats_file = \"{data}/route-stats.json\"\n{routing}\n\n{catalog}{providers}\n",
            grace = if opts.grace_secs == 0 { 5 } else { opts.grace_secs },
            server = opts.server,
            pdir = dir.join("providers").display(),
            poldir = dir.join("policies").display(),
            cache = cache.display(),
            // 64 slots unless a test sizes the pool itself
            instances = if opts.runtime.contains("max_instances") { "" } else { "max_instances = 64\n" },
            runtime = opts.runtime,
            upstream = opts.upstream,
            state = dir.join("data/models.json").display(),
            data = dir.join("data").display(),
            catalog = if opts.catalog.is_some() {
                format!("[catalog]\nfiles = [\"{}\"]\n\n", dir.join("catalog.toml").display())
            } else {
                String::new()
            },
            vault = opts.vault,
            storage = if opts.storage_url.is_empty() {
                format!("sqlite://{}", dir.join("data/freeway.db").display())
            } else {
                opts.storage_url.clone()
            },
            quota = opts.quota,
            routing = opts.routing,
            quota_state = if opts.quota.contains("state_file") {
                String::new()
            } else {
                format!("state_file = \"{}\"\n", dir.join("data/quota.json").display())
            },
            discovery = opts.discovery,
            // background sync stays off in tests unless a test asks for it
            interval = if opts.discovery.contains("interval_secs") { "" } else { "interval_secs = 0\n" },
        )
    }

    pub fn providers_dir(&self) -> PathBuf {
        self.dir.path().join("providers")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("freeway.toml")
    }

    /// Replace the provider tables in the configuration file (the watcher picks it up).
    pub fn rewrite_config(&self, providers: &str, opts: &Opts) {
        let tmp = self.dir.path().join("freeway.toml.tmp");
        std::fs::write(&tmp, Self::render(self.dir.path(), providers, opts)).expect("write");
        std::fs::rename(&tmp, self.config_path()).expect("rename");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn chat(&self, body: Value) -> reqwest::Response {
        http().post(self.url("/v1/chat/completions")).json(&body).send().await.expect("request")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        http().get(self.url(path)).send().await.expect("request")
    }

    /// Model ids from `/v1/models`, without the built-in `auto` aliases.
    pub async fn model_ids(&self) -> Vec<String> {
        self.all_model_ids().await.into_iter().filter(|id| id != "auto" && !id.starts_with("auto:")).collect()
    }

    /// Every id `/v1/models` lists.
    pub async fn all_model_ids(&self) -> Vec<String> {
        let v: Value = self.get("/v1/models").await.json().await.expect("json");
        v["data"]
            .as_array()
            .map(|a| a.iter().filter_map(|m| m["id"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }

    /// Begin a graceful shutdown; the server task's result once it has stopped.
    pub async fn shutdown(&mut self) -> std::io::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.server.take() {
            Some(h) => h.await.expect("server task"),
            None => Ok(()),
        }
    }

    pub fn begin_shutdown(&mut self) -> Option<tokio::task::JoinHandle<std::io::Result<()>>> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.server.take()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            h.abort();
        }
    }
}

/// A provider table for the simulator.
pub fn provider(id: &str, base: &str, keys: &[&str], models: &[&str]) -> String {
    let keys: Vec<String> = keys.iter().map(|k| format!("\"{k}\"")).collect();
    let models: Vec<String> = models.iter().map(|m| format!("\"{m}\"")).collect();
    format!(
        "[[providers]]\nid = \"{id}\"\ncomponent = \"openai-compat\"\nbase_url = \"{base}\"\napi_keys = [{}]\nmodels = [{}]\n\n",
        keys.join(", "),
        models.join(", ")
    )
}

/// The `freeway` binary's path (built by `cargo xtask build`; `FREEWAY_BIN` names another).
pub fn freeway_bin_path() -> PathBuf {
    let bin = std::env::var("FREEWAY_BIN").map_or_else(|_| root().join("target/debug/freeway"), PathBuf::from);
    assert!(bin.exists(), "{} is missing: run `cargo xtask build`", bin.display());
    bin
}

/// The `freeway` binary (built by `cargo xtask build`).
pub fn freeway_bin() -> std::process::Command {
    let mut c = std::process::Command::new(freeway_bin_path());
    c.current_dir(root());
    c
}

/// Run the `freeway` binary with `stdin` as input; (exit code, stdout, stderr). Async, so an
/// in-process simulator on the test's runtime keeps answering meanwhile.
pub async fn run_freeway(args: &[&str], stdin: &str) -> (i32, String, String) {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::from(freeway_bin())
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn freeway");
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes()).await;
    }
    let out = child.wait_with_output().await.expect("freeway output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The URL of a shared service (Redis, PostgreSQL) from `var`. Without it a test skips loudly,
/// except under `CI=true`, where a test that needs the service must never pass by skipping: it
/// fails. (The README's test command finds or starts the services and sets the variables.)
pub fn service_url(var: &str, what: &str) -> Option<String> {
    if let Some(url) = std::env::var(var).ok().filter(|u| !u.trim().is_empty()) {
        return Some(url);
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(!ci, "{var} is not set and CI=true: this test needs {what} and must not pass by skipping");
    eprintln!("\n*** SKIPPED: {var} is not set, so a test that needs {what} did not run ***\n");
    None
}

/// Tests that load the machine (hostile input, hot swap under load, crashes) take this, so they do
/// not run at the same time and their timing bounds measure the gateway, not each other.
pub static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A minimal valid chat body.
pub fn chat_body(model: &str) -> Value {
    json!({ "model": model, "messages": [{ "role": "user", "content": "hello there" }] })
}

/// A gateway serving the native component `component` (copied into its providers folder) as
/// provider `id` at `base_url` with `key`; returns once it serves the first of `models` (or
/// `default_model` when the component lists them itself).
pub async fn native_gateway(
    (id, component, base_url, default_model): (&str, &str, &str, &str),
    key: &str,
    models: Option<&[&str]>,
    opts: Opts,
) -> Gateway {
    let gw = Gateway::start_opts("", opts.clone()).await;
    let file = format!("{component}.wasm");
    std::fs::copy(artifact(&format!("providers/{file}")), gw.providers_dir().join(&file)).expect("copy component");
    let listed = models
        .map(|m| format!("models = [{}]\n", m.iter().map(|m| format!("\"{m}\"")).collect::<Vec<_>>().join(", ")))
        .unwrap_or_default();
    let table = format!(
        "[[providers]]\nid = \"{id}\"\ncomponent = \"{component}\"\nbase_url = \"{base_url}\"\napi_keys = [\"{key}\"]\n{listed}\n"
    );
    gw.rewrite_config(&table, &opts);
    let want = models.and_then(|m| m.first()).copied().unwrap_or(default_model);
    let ready = eventually(Duration::from_secs(15), || async { gw.model_ids().await.iter().any(|m| m == want) }).await;
    assert!(ready, "the {component} provider never served {want}: {:?}", gw.model_ids().await);
    gw
}

/// The JSON chunks of a stream's `data:` payloads, `[DONE]` left out.
pub fn chunks(data: &[String]) -> Vec<Value> {
    data.iter().filter(|d| *d != "[DONE]").map(|d| serde_json::from_str(d).expect("a JSON chunk")).collect()
}

/// A stream translated from a native provider answering with the simulator's 12-token reply:
/// `[DONE]` last, the role first, the whole text, one `stop`, one id and object throughout, no
/// usage chunk.
pub fn assert_translated_stream(data: &[String]) {
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let got = chunks(data);
    assert_eq!(got[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = got.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, (0..12).map(|i| format!("tok{i}")).collect::<Vec<_>>().join(" "));
    let finishes: Vec<&Value> =
        got.iter().filter_map(|c| c["choices"][0].get("finish_reason")).filter(|f| !f.is_null()).collect();
    assert_eq!(finishes, [&json!("stop")]);
    assert!(got.iter().all(|c| c["object"] == "chat.completion.chunk" && c["id"] == got[0]["id"]));
    assert!(!got.iter().any(|c| c["choices"].as_array().is_some_and(Vec::is_empty)), "usage chunk leaked");
}

/// Read a whole SSE response into its `data:` payloads.
pub async fn sse_data(resp: reqwest::Response) -> Vec<String> {
    let text = resp.text().await.unwrap_or_default();
    text.split("\n\n").filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")).map(str::to_owned)).collect()
}

/// Poll `f` until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while start.elapsed() < timeout {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// A machine with nothing on it: the binary in its own folder, an empty HOME, an empty working
/// folder, and no inherited environment.
pub struct Bare {
    _tmp: tempfile::TempDir,
    pub bin: PathBuf,
    pub home: PathBuf,
    pub work: PathBuf,
}

impl Default for Bare {
    fn default() -> Self {
        Self::new()
    }
}

impl Bare {
    pub fn new() -> Bare {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (home, work, bin_dir) = (tmp.path().join("home"), tmp.path().join("work"), tmp.path().join("bin"));
        for d in [&home, &work, &bin_dir] {
            std::fs::create_dir_all(d).expect("folder");
        }
        let bin = bin_dir.join("freeway");
        std::fs::copy(freeway_bin_path(), &bin).expect("copy the binary");
        Bare { _tmp: tmp, bin, home, work }
    }

    pub fn command(&self, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new(&self.bin);
        c.args(args).current_dir(&self.work).env_clear().env("HOME", &self.home).env("PATH", "/usr/bin:/bin");
        c
    }
}

/// A `freeway serve` process (the binary), its log (stdout) captured line by line.
pub struct Served {
    child: std::process::Child,
    pub port: u16,
    log: Arc<std::sync::Mutex<String>>,
}

impl Served {
    /// Start `freeway serve` on a free port with `config` and wait until it listens.
    pub async fn start(config: &str) -> Served {
        let mut cmd = freeway_bin();
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--config", config]);
        Self::spawn(cmd).await
    }

    /// Start `cmd` (a `freeway serve` listening on port 0) and wait until it listens.
    pub async fn spawn(mut cmd: std::process::Command) -> Served {
        use std::io::BufRead;
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn freeway serve");
        let log = Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = oneshot::channel::<u16>();
        let stdout = child.stdout.take().expect("stdout");
        let out_log = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on http://127.0.0.1:").nth(1) {
                    let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    if let (Some(tx), Ok(port)) = (tx.take(), port.parse()) {
                        let _ = tx.send(port);
                    }
                }
                let mut log = out_log.lock().expect("log");
                log.push_str(&line);
                log.push('\n');
            }
        });
        let stderr = child.stderr.take().expect("stderr");
        let err_log = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut log = err_log.lock().expect("log");
                log.push_str(&line);
                log.push('\n');
            }
        });
        let port = tokio::time::timeout(Duration::from_secs(60), rx).await;
        let Ok(Ok(port)) = port else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("freeway serve did not start: {}", log.lock().expect("log"));
        };
        Served { child, port, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Everything the process logged so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log").clone()
    }

    /// SIGKILL (`kill -9`): no chance to flush anything. Returns once the process is gone.
    pub fn kill9(&mut self) {
        signal(self.pid(), "-KILL");
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait (at most 30 s) for a graceful exit; whether it exited with 0.
    pub async fn terminate(&mut self) -> bool {
        signal(self.pid(), "-TERM");
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("freeway serve did not stop within 30 s of SIGTERM");
    }

    /// A value from `/metrics` (the first sample named exactly `name`, without labels).
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = http().get(self.url("/metrics")).send().await.ok()?.text().await.ok()?;
        metric_value(&text, name)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the unlabelled sample `name` in Prometheus text.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Send `sig` (e.g. `-TERM`, `-KILL`) to `pid` with `kill`.
pub fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill").args([sig, &pid.to_string()]).status().expect("kill");
    assert!(status.success(), "kill {sig} {pid} failed");
}

/// Write a configuration for the `freeway` binary into `dir`: one provider `p` at `sim_base`
/// serving model `m` (plus `provider_extra` lines in its table) with accounts from the vault,
/// usage in the SQLite file `db`; returns its path. Add the account with [`add_account`].
pub fn binary_config(dir: &Path, sim_base: &str, provider_extra: &str, db: &Path) -> String {
    std::fs::create_dir_all(dir.join("providers")).expect("providers dir");
    std::fs::create_dir_all(dir.join("policies")).expect("policies dir");
    std::fs::copy(artifact("providers/openai-compat.wasm"), dir.join("providers/openai-compat.wasm"))
        .expect("copy component");
    let config = dir.join("freeway.toml");
    let data = dir.join("data");
    std::fs::write(
        &config,
        format!(
            "[runtime]\nproviders_dir = \"{p}\"\npolicies_dir = \"{pol}\"\ncache_dir = \"{cache}\"\nmax_instances = 32\n\n\
             [discovery]\ninterval_secs = 0\nstate_file = \"{data}/models.json\"\n\n\
             [vault]\npath = \"{data}/vault.json\"\nkey_file = \"{data}/master.key\"\naudit_log = \"{data}/audit.log\"\nhealth_file = \"{data}/health.json\"\n\n\
             [storage]\nurl = \"sqlite://{db}\"\n\n[quota]\nstate_file = \"{data}/quota.json\"\n\n\
             [routing]\nstats_file = \"{data}/route-stats.json\"\n\n[upstream]\negress_hosts = [\"127.0.0.1\"]\nproxy_from_env = false\n\n\
             [[providers]]\nid = \"p\"\nbase_url = \"{sim_base}\"\nmodels = [\"m\"]\n{provider_extra}\n",
            p = dir.join("providers").display(),
            pol = dir.join("policies").display(),
            cache = root().join("target/test-component-cache").display(),
            data = data.display(),
            db = db.display(),
        ),
    )
    .expect("write config");
    config.display().to_string()
}

/// `freeway accounts add PROVIDER --key-stdin` on `config`.
pub async fn add_account(config: &str, provider: &str, key: &str) {
    let (code, out, err) =
        run_freeway(&["accounts", "add", provider, "--key-stdin", "--config", config], &format!("{key}\n")).await;
    assert_eq!(code, 0, "accounts add: {out}{err}");
}

/// `promtool` (Prometheus' checker): `FREEWAY_PROMTOOL`, else on `PATH`, else
/// `target/tools/promtool` (where `cargo xtask test` puts it, from Debian's `prometheus`
/// package). Without it a test skips loudly, except under `CI=true`, where it fails.
pub fn promtool() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let candidates = std::env::var_os("FREEWAY_PROMTOOL")
        .map(PathBuf::from)
        .into_iter()
        .chain(std::env::split_paths(&path).map(|d| d.join("promtool")))
        .chain(std::iter::once(root().join("target/tools/promtool")));
    for p in candidates {
        let runs = std::process::Command::new(&p).arg("--version").output().is_ok_and(|o| o.status.success());
        if runs {
            return Some(p);
        }
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(
        !ci,
        "promtool was not found (FREEWAY_PROMTOOL, PATH, target/tools/promtool) and CI=true: `cargo xtask test` installs it"
    );
    eprintln!(
        "\n*** SKIPPED: promtool not found (run `cargo xtask test` once to install it), /metrics not checked ***\n"
    );
    None
}

/// One sample of a Prometheus text scrape: name, labels in order, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Whether every `(key, value)` of `want` is among the labels.
    pub fn has(&self, want: &[(&str, &str)]) -> bool {
        want.iter().all(|(k, v)| self.label(k) == Some(*v))
    }
}

/// The samples of a Prometheus text scrape (comments left out). Panics on a line it cannot
/// read: the format is the gateway's to get right.
pub fn parse_samples(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_owned(), Vec::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels: {line}"));
                (name.to_owned(), parse_labels(body, line))
            }
        };
        out.push(Sample { name, labels, value });
    }
    out
}

fn parse_labels(body: &str, line: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").unwrap_or_else(|| panic!("bad label: {line}"));
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => break,
                },
                '"' => {
                    end = Some(i);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = end.unwrap_or_else(|| panic!("unterminated label value: {line}"));
        labels.push((key.trim_start_matches(',').to_owned(), value));
        rest = after[end + 1..].trim_start_matches(',');
    }
    labels
}

/// A PostgreSQL database of a test's own on the server `url` names (made empty, dropped when
/// the guard goes), so that what one test stores (client keys) never reaches another.
pub struct OwnDatabase {
    pub url: String,
    admin: String,
    name: String,
}

impl OwnDatabase {
    pub async fn create(url: &str, tag: &str) -> OwnDatabase {
        use sqlx::Connection;
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("fw_it_{tag}_{}_{n}", std::process::id());
        let mut conn = sqlx::PgConnection::connect(url).await.expect("connect to PostgreSQL");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}")))
            .execute(&mut conn)
            .await
            .expect("drop");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create database");
        let base = url.rsplit_once('/').map_or(url, |(b, _)| b);
        OwnDatabase { url: format!("{base}/{name}"), admin: url.to_owned(), name }
    }
}

impl Drop for OwnDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // best effort, on a thread of its own (the test's runtime may be ending)
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                use sqlx::Connection;
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                        .execute(&mut c)
                        .await;
                }
            });
        })
        .join();
    }
}

/// A virtual key made through the admin API (`admin` is the gateway's admin key) from `body`
/// (`{"name": ..., "rpd": ..., "tags": [...]}`): its secret.
pub async fn make_virtual_key(gw: &Gateway, admin: &str, body: &serde_json::Value) -> String {
    let made: serde_json::Value = http()
        .post(gw.url("/admin/keys"))
        .bearer_auth(admin)
        .json(body)
        .send()
        .await
        .expect("admin request")
        .json()
        .await
        .expect("admin json");
    made["key"].as_str().unwrap_or_else(|| panic!("no key made: {made}")).to_owned()
}
