//! Hostile guests (issue 11): a guest that sleeps, loops over `http.send`, floods stdout or the
//! log, chases a redirect to the cloud metadata address, or brings many linear memories fails
//! its own request cleanly (an OpenAI-shaped error with the right status), leaks no instance
//! slot, and the gateway keeps serving everyone else meanwhile.
//!
//! Every request here is bounded by a timeout, and all traffic goes to 127.0.0.1: link-local
//! and metadata addresses only appear as URLs the host must refuse before connecting.

use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use freeway_integration::{Gateway, Opts, Sim, artifact, chat_body, eventually, freeway_bin, http, provider, root};
use serde_json::{Value, json};

use crate::durability::Server;

/// Where the scripted redirect lives on the simulator, and where it points.
const REDIRECT_PATH: &str = "/hostile/redirect";
const METADATA_URL: &str = "http://169.254.169.254/latest/meta-data/";

/// The limits every test runs under: a short wall-clock deadline so a sleeping guest fails fast,
/// and only 8 instance slots so a leaked one shows.
fn runtime(extra: &str) -> String {
    format!("guest_cpu_ms = 100\nguest_memory_mib = 32\nguest_wall_ms = 1000\nmax_instances = 8\n{extra}")
}

fn opts(extra_runtime: &str) -> Opts {
    Opts { runtime: runtime(extra_runtime), upstream: "max_attempts = 1".into(), ..Default::default() }
}

/// A gateway serving `good` (openai-compat, model `fine`) and `bad` (the misbehave component)
/// from `sim`, whose redirect route is scripted.
async fn hostile_gateway(sim: &Sim, extra_runtime: &str) -> Gateway {
    script_redirect(sim).await;
    let opts = opts(extra_runtime);
    let gw = Gateway::start_opts("", opts.clone()).await;
    std::fs::copy(artifact("tests/guests/misbehave.wasm"), gw.providers_dir().join("misbehave.wasm")).unwrap();
    let providers = provider("good", &sim.base(), &["k"], &["fine"])
        + &misbehave_table(
            "bad",
            &sim.base(),
            &[
                "sleep",
                "http-loop",
                "http-loop-ignoring-errors",
                "stdout-flood",
                "log-control",
                "redirect",
                "loop",
                "alloc",
                "panic",
                "evil-host",
                "ok",
            ],
        );
    gw.rewrite_config(&providers, &opts);
    let ready =
        eventually(Duration::from_secs(15), || async { gw.model_ids().await.contains(&"sleep".to_owned()) }).await;
    assert!(ready, "the misbehave provider did not load: {:?}", gw.get("/ready").await.text().await);
    gw
}

fn misbehave_table(id: &str, base_url: &str, models: &[&str]) -> String {
    let models: Vec<String> = models.iter().map(|m| format!("\"{m}\"")).collect();
    format!(
        "[[providers]]\nid = \"{id}\"\ncomponent = \"misbehave\"\nbase_url = \"{base_url}\"\napi_keys = [\"sk-hostile-secret-1234567890\"]\nmodels = [{}]\n\n",
        models.join(", ")
    )
}

/// `GET {base}/hostile/redirect` answers 302 to the AWS metadata address.
async fn script_redirect(sim: &Sim) {
    sim.script(json!([{
        "match": {"path_suffix": REDIRECT_PATH},
        "action": {"type": "status", "status": 302, "body": "", "headers": {"location": METADATA_URL}}
    }]))
    .await;
}

/// Wait for `fut`, at most `secs` seconds: a hostile guest must never hold a request open.
async fn bounded<T>(secs: u64, what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: still pending after {secs} s"),
    }
}

/// Status, `error.code` and `error.message` of an error response, which must be OpenAI-shaped.
async fn error_of(resp: reqwest::Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    let error = &v["error"];
    assert!(
        error["message"].is_string() && error["type"].is_string() && error.get("param").is_some(),
        "not an OpenAI-shaped error: {text}"
    );
    (
        status,
        error["code"].as_str().unwrap_or_default().to_owned(),
        error["message"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Requests the simulator has answered so far (its counter, not its bounded request log).
fn upstream_requests(sim: &Sim) -> u64 {
    sim.sim.stats().requests
}

/// Requests the simulator saw whose path ends with `suffix`.
async fn seen(sim: &Sim, suffix: &str) -> usize {
    sim.requests().await.iter().filter(|r| r["path"].as_str().is_some_and(|p| p.ends_with(suffix))).count()
}

#[tokio::test]
async fn a_sleeping_guest_hits_its_wall_clock_deadline_while_others_are_served() {
    let sim = Sim::start().await;
    let gw = hostile_gateway(&sim, "").await;
    let started = Instant::now();
    let sleeping = async {
        let resp = bounded(15, "the sleeping guest's request", gw.chat(chat_body("sleep"))).await;
        (resp, started.elapsed())
    };
    let others = async {
        let mut ok = 0;
        for _ in 0..10 {
            if bounded(5, "a request to the good provider", gw.chat(chat_body("fine"))).await.status() == 200 {
                ok += 1;
            }
        }
        (ok, started.elapsed())
    };
    let ((resp, took), (ok, others_took)) = tokio::join!(sleeping, others);
    let (status, code, message) = error_of(resp).await;
    assert_eq!((status, code.as_str()), (504, "provider_component_timeout"), "{message}");
    assert!(message.contains("wall-clock"), "{message}");
    assert!(took < Duration::from_secs(5), "the 1 s deadline took {took:?}");
    assert_eq!(ok, 10, "other requests were served meanwhile");
    assert!(others_took < took, "the others ({others_took:?}) were served while the guest slept ({took:?})");
    assert_eq!(bounded(5, "ok", gw.chat(chat_body("ok"))).await.status(), 200, "the component still serves");
}

#[tokio::test]
async fn an_endless_http_loop_is_cut_off_at_the_http_call_cap() {
    let sim = Sim::start().await;
    let gw = hostile_gateway(&sim, "guest_http_calls = 5").await;
    let (status, code, message) =
        error_of(bounded(15, "the http-loop request", gw.chat(chat_body("http-loop"))).await).await;
    let calls = upstream_requests(&sim);
    assert_eq!((status, code.as_str()), (502, "provider_component_denied"), "after {calls} calls: {message}");
    assert!(message.contains("http calls"), "the message names the cap: {message}");
    assert!(!message.contains("sk-hostile-secret"), "{message}");
    assert!(calls <= 5, "{calls} calls reached the upstream past a cap of 5");

    // a guest that ignores the refusals and keeps calling gets nothing more out
    let (status, code, message) =
        error_of(bounded(15, "the stubborn http-loop request", gw.chat(chat_body("http-loop-ignoring-errors"))).await)
            .await;
    assert!(
        [(502, "provider_component_denied"), (504, "provider_component_timeout")].contains(&(status, code.as_str())),
        "{status} {code} after {} more calls: {message}",
        upstream_requests(&sim) - calls
    );
    let more = upstream_requests(&sim) - calls;
    assert!(more <= 5, "{more} calls reached the upstream past a cap of 5");
    assert_eq!(bounded(5, "ok", gw.chat(chat_body("ok"))).await.status(), 200);
}

#[tokio::test]
async fn an_http_loop_is_cut_off_at_the_http_byte_cap() {
    let sim = Sim::start().await;
    let cap: u64 = 4096;
    let gw = hostile_gateway(&sim, &format!("guest_http_calls = 1000\nguest_http_bytes = {cap}")).await;
    let list = http().get(format!("{}/models", sim.base())).send().await.unwrap().bytes().await.unwrap().len();
    let list = u64::try_from(list).unwrap();
    let before = upstream_requests(&sim);
    let (status, code, message) =
        error_of(bounded(15, "the http-loop request", gw.chat(chat_body("http-loop"))).await).await;
    let calls = upstream_requests(&sim) - before;
    assert_eq!((status, code.as_str()), (502, "provider_component_denied"), "after {calls} calls: {message}");
    assert!(message.contains("bytes"), "the message names the cap: {message}");
    // the call that crosses the cap may have been answered; none after it
    assert!(calls <= cap / list + 1, "{calls} calls of {list} bytes reached the upstream past a cap of {cap} bytes");
    assert_eq!(bounded(5, "ok", gw.chat(chat_body("ok"))).await.status(), 200);
}

#[tokio::test]
async fn a_guest_redirected_to_the_metadata_address_gets_the_3xx_and_is_refused_following_it() {
    let sim = Sim::start().await;
    let gw = hostile_gateway(&sim, "").await;
    let started = Instant::now();
    let (status, code, message) =
        error_of(bounded(10, "the redirect request", gw.chat(chat_body("redirect"))).await).await;
    let names_it = ["169.254.169.254", "link-local", "metadata"].iter().any(|w| message.contains(w));
    if message.contains("redirect: ") {
        // the guest's own report came back: the host handed it the 302 (had the host followed
        // it, the first call would have failed against the metadata address), and its attempt to
        // follow it was refused by the host, not merely unreachable
        assert!(message.contains(&format!("answered 302 to {METADATA_URL}")), "{message}");
        assert!(message.contains("was refused: HttpError::Denied") && names_it, "{status} {code}: {message}");
    } else {
        assert_eq!((status, code.as_str()), (502, "provider_component_denied"), "{message}");
        assert!(names_it, "the refusal names the address: {message}");
    }
    assert_eq!(seen(&sim, REDIRECT_PATH).await, 1, "the guest's first call reached the simulator once");
    assert!(started.elapsed() < Duration::from_secs(5), "refused before any connection: {:?}", started.elapsed());
    assert_eq!(bounded(5, "ok", gw.chat(chat_body("ok"))).await.status(), 200);
}

#[tokio::test]
async fn the_gateway_does_not_follow_a_redirect_from_an_upstream() {
    let sim = Sim::start().await;
    let gw = hostile_gateway(&sim, "").await;
    let landing = "/v1/hostile/landing";
    sim.script(json!([{
        "match": {"path_suffix": "/chat/completions", "model": "fine"},
        "times": 1,
        "action": {"type": "status", "status": 307, "body": "", "headers": {"location": sim.url(landing)}}
    }]))
    .await;
    let resp = bounded(10, "the redirected request", gw.chat(chat_body("fine"))).await;
    assert_ne!(resp.status(), 200);
    let (status, code, message) = error_of(resp).await;
    assert!(status >= 400, "{status} {code}: {message}");
    assert_eq!(seen(&sim, landing).await, 0, "the gateway followed the redirect");
    assert_eq!(bounded(5, "fine", gw.chat(chat_body("fine"))).await.status(), 200);
}

#[tokio::test]
async fn link_local_and_metadata_addresses_are_refused_even_when_the_manifest_allows_them() {
    // `$base_url` in the misbehave manifest allows whatever host its base URL names
    let targets = [
        ("aws-metadata", "http://169.254.169.254/latest"),
        ("aws-metadata-v6", "http://[fd00:ec2::254]/latest"),
        ("alibaba-metadata", "http://100.100.100.200/latest"),
        ("link-local", "http://169.254.10.10/v1"),
        ("link-local-v6", "http://[fe80::1]/v1"),
    ];
    let sim = Sim::start().await;
    let opts = opts("");
    let gw = Gateway::start_opts("", opts.clone()).await;
    std::fs::copy(artifact("tests/guests/misbehave.wasm"), gw.providers_dir().join("misbehave.wasm")).unwrap();
    let mut providers = provider("good", &sim.base(), &["k"], &["fine"]);
    for (id, base) in targets {
        providers += &misbehave_table(id, base, &["probe"]);
    }
    gw.rewrite_config(&providers, &opts);
    let loaded =
        eventually(Duration::from_secs(15), || async { gw.model_ids().await.contains(&"fine".to_owned()) }).await;
    assert!(loaded, "the configuration was not taken: {:?}", gw.get("/ready").await.text().await);
    for (id, base) in targets {
        let started = Instant::now();
        let resp = bounded(10, id, gw.chat(chat_body(&format!("{id}/probe")))).await;
        let (status, code, message) = error_of(resp).await;
        if status == 404 {
            // refused when the configuration was loaded: then `/ready` must say why
            let ready = gw.get("/ready").await.text().await.unwrap();
            assert!(
                ready.contains(id) && (ready.contains("link-local") || ready.contains("metadata")),
                "{id}: {ready}"
            );
            continue;
        }
        // refused by the host (the call fails as denied, or the guest reports the refusal),
        // for what the address is
        let refused = code == "provider_component_denied" || message.contains("HttpError::Denied");
        let why = message.contains("link-local") || message.contains("metadata");
        assert!(refused && why, "{id} ({base}): {status} {code}: {message}");
        assert!(started.elapsed() < Duration::from_secs(2), "{id}: refused before connecting, not after a timeout");
    }
    assert_eq!(bounded(5, "fine", gw.chat(chat_body("fine"))).await.status(), 200);
}

#[tokio::test]
async fn no_instance_slot_leaks_after_every_hostile_guest_ran_more_than_max_instances_times() {
    let sim = Sim::start().await;
    let gw = hostile_gateway(&sim, "").await;
    let behaviours = [
        "sleep",
        "http-loop",
        "http-loop-ignoring-errors",
        "stdout-flood",
        "log-control",
        "redirect",
        "loop",
        "alloc",
        "panic",
        "evil-host",
    ];
    for model in behaviours {
        // 9 at once on 8 slots: some may be refused as busy, but each cleanly
        let batch = (0..9).map(|_| async {
            let resp = bounded(30, model, gw.chat(chat_body(model))).await;
            if resp.status() == 200 {
                return;
            }
            let (status, code, message) = error_of(resp).await;
            assert!(code.starts_with("provider_component_"), "{model}: {status} {code}: {message}");
        });
        futures_util::future::join_all(batch).await;
        let resp = bounded(10, "ok after a hostile batch", gw.chat(chat_body("ok"))).await;
        assert_eq!(resp.status(), 200, "after 9 × {model}: {}", resp.text().await.unwrap());
    }
    // every slot is free again: 8 at once all get one
    let all = futures_util::future::join_all((0..8).map(|_| gw.chat(chat_body("ok"))));
    for resp in bounded(15, "8 concurrent ok", all).await {
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    }
}

/// A component that is `component` plus, at its end, one core module holding a single memory of
/// `pages` 64 KiB pages, instantiated `count` times.
fn with_extra_memories(component: &[u8], count: u32, pages: u64) -> Vec<u8> {
    use wasm_encoder::ComponentSection;
    let index = top_level_core_modules(component);
    let mut memories = wasm_encoder::MemorySection::new();
    memories.memory(wasm_encoder::MemoryType {
        minimum: pages,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    let mut module = wasm_encoder::Module::new();
    module.section(&memories);
    let mut instances = wasm_encoder::InstanceSection::new();
    for _ in 0..count {
        instances.instantiate(index, std::iter::empty::<(&str, wasm_encoder::ModuleArg)>());
    }
    let mut out = component.to_vec();
    wasm_encoder::ModuleSection(&module).append_to_component(&mut out);
    instances.append_to_component(&mut out);
    wasmparser::Validator::new().validate_all(&out).expect("the generated component is valid");
    out
}

/// How many core modules a component's top level defines (or aliases): the index the next
/// one gets. Nested modules and components have index spaces of their own.
fn top_level_core_modules(component: &[u8]) -> u32 {
    use wasmparser::{ComponentAlias, ComponentExternalKind, ComponentOuterAliasKind, Payload};
    let mut depth = 0u32;
    let mut count = 0;
    for payload in wasmparser::Parser::new(0).parse_all(component) {
        match payload.expect("a valid component") {
            Payload::ModuleSection { .. } => {
                if depth == 0 {
                    count += 1;
                }
                depth += 1;
            }
            Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentAliasSection(aliases) if depth == 0 => {
                for alias in aliases {
                    if matches!(
                        alias.expect("an alias"),
                        ComponentAlias::InstanceExport { kind: ComponentExternalKind::Module, .. }
                            | ComponentAlias::Outer { kind: ComponentOuterAliasKind::CoreModule, .. }
                    ) {
                        count += 1;
                    }
                }
            }
            _ => {}
        }
    }
    count
}

/// Serve `component` (misbehave with `count` extra memories of 4 MiB) as provider `hoard` next to
/// a good provider, under `guest_memory_mib = 32`: the instance's memories together exceed it, so
/// the host refuses it, at load (`/ready` names it) or per request (out of memory), and keeps
/// serving the good provider.
async fn many_memories_are_refused(count: u32) {
    let sim = Sim::start().await;
    // default slots: with 8, a single 17-memory instance would exhaust the pool's memories
    let opts = Opts {
        runtime: "guest_cpu_ms = 100\nguest_memory_mib = 32\nguest_wall_ms = 1000".into(),
        upstream: "max_attempts = 1".into(),
        ..Default::default()
    };
    let gw = Gateway::start_opts(&provider("good", &sim.base(), &["k"], &["fine"]), opts.clone()).await;
    let base = std::fs::read(artifact("tests/guests/misbehave.wasm")).unwrap();
    let name = format!("many-memories-{count}");
    std::fs::write(gw.providers_dir().join(format!("{name}.wasm")), with_extra_memories(&base, count, 64)).unwrap();
    let providers = provider("good", &sim.base(), &["k"], &["fine"])
        + &format!(
            "[[providers]]\nid = \"hoard\"\ncomponent = \"{name}\"\nbase_url = \"{}\"\napi_keys = [\"k\"]\nmodels = [\"hoard-ok\"]\n",
            sim.base()
        );
    gw.rewrite_config(&providers, &opts);
    let settled = eventually(Duration::from_secs(20), || async {
        gw.model_ids().await.contains(&"hoard-ok".to_owned())
            || gw.get("/ready").await.text().await.unwrap_or_default().contains("hoard")
    })
    .await;
    let ready = gw.get("/ready").await.text().await.unwrap();
    assert!(settled, "the hoarding component was neither served nor refused: {ready}");
    if gw.model_ids().await.contains(&"hoard-ok".to_owned()) {
        let resp = bounded(10, "hoard-ok", gw.chat(chat_body("hoard-ok"))).await;
        assert_ne!(resp.status(), 200, "{count} extra memories of 4 MiB were served under a 32 MiB limit");
        let (status, code, message) = error_of(resp).await;
        assert_eq!((status, code.as_str()), (502, "provider_component_out_of_memory"), "{message}");
    } else {
        assert!(ready.contains("memor"), "refused at load, for its memory: {ready}");
    }
    assert_eq!(bounded(5, "fine", gw.chat(chat_body("fine"))).await.status(), 200, "the good provider still serves");
}

#[tokio::test]
async fn sixteen_extra_memories_of_4_mib_over_a_32_mib_limit_are_refused() {
    many_memories_are_refused(16).await;
}

#[tokio::test]
async fn nine_memories_each_under_the_limit_but_over_it_together_are_refused() {
    // 9 × 4 MiB (plus the guest's own memory): each one fits under 32 MiB, the sum does not
    many_memories_are_refused(9).await;
}

/// A configuration file for `freeway serve`: `good` and `bad` (misbehave) over `sim`, with
/// `runtime` lines for `[runtime]`.
fn binary_config(dir: &Path, sim: &Sim, runtime: &str) -> String {
    std::fs::create_dir_all(dir.join("providers")).unwrap();
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::copy(artifact("providers/openai-compat.wasm"), dir.join("providers/openai-compat.wasm")).unwrap();
    std::fs::copy(artifact("tests/guests/misbehave.wasm"), dir.join("providers/misbehave.wasm")).unwrap();
    let config = dir.join("freeway.toml");
    std::fs::write(
        &config,
        format!(
            "[runtime]\nproviders_dir = \"{p}\"\npolicies_dir = \"{pol}\"\ncache_dir = \"{cache}\"\n{runtime}\n\n\
             [discovery]\ninterval_secs = 0\nstate_file = \"{data}/models.json\"\n\n\
             [vault]\npath = \"{data}/vault.json\"\nkey_file = \"{data}/master.key\"\naudit_log = \"{data}/audit.log\"\nhealth_file = \"{data}/health.json\"\n\n\
             [storage]\nurl = \"sqlite://{data}/freeway.db\"\n\n[quota]\nstate_file = \"{data}/quota.json\"\n\n\
             [upstream]\negress_hosts = [\"127.0.0.1\"]\nmax_attempts = 1\n\n{good}{bad}",
            p = dir.join("providers").display(),
            pol = dir.join("policies").display(),
            cache = root().join("target/test-component-cache").display(),
            data = dir.join("data").display(),
            good = provider("good", &sim.base(), &["k"], &["fine"]),
            bad = misbehave_table("bad", &sim.base(), &["stdout-flood", "log-control", "ok"]),
        ),
    )
    .unwrap();
    config.display().to_string()
}

/// Start `freeway serve` with its stdout and stderr (the log) going to `log`; wait for its port
/// and until it serves `ok`.
async fn serve_logged(config: &str, log: &Path) -> Server {
    let file = std::fs::File::create(log).unwrap();
    let mut child = freeway_bin()
        .args(["serve", "--listen", "127.0.0.1:0", "--config", config])
        .stdout(Stdio::piped())
        .stderr(file.try_clone().unwrap())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let port = tokio::task::spawn_blocking(move || {
        let mut file = file;
        let mut seen = String::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = stdout.read(&mut buf).unwrap_or(0);
            if n == 0 {
                return None;
            }
            std::io::Write::write_all(&mut file, &buf[..n]).unwrap();
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            if let Some(rest) = seen.split("listening on http://127.0.0.1:").nth(1) {
                let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
                if rest.len() > port.len() {
                    // keep copying the rest of the log
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut stdout, &mut file);
                    });
                    return port.parse::<u16>().ok();
                }
            }
        }
    })
    .await
    .unwrap();
    let Some(port) = port else {
        let _ = child.wait();
        panic!("the gateway did not start:\n{}", std::fs::read_to_string(log).unwrap_or_default());
    };
    let server = Server { child, port };
    let ready = eventually(Duration::from_secs(15), || async {
        http().post(chat_url(port)).json(&chat_body("ok")).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(ready, "the gateway never served `ok`:\n{}", std::fs::read_to_string(log).unwrap_or_default());
    server
}

fn chat_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/v1/chat/completions")
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

#[tokio::test]
async fn a_guest_flooding_stdout_with_a_gibibyte_does_not_grow_the_gateway() {
    let sim = Sim::start().await;
    let dir = tempfile::tempdir().unwrap();
    // budgets wide enough for the whole gibibyte to go through the host
    let runtime = "guest_cpu_ms = 20000\nguest_memory_mib = 32\nguest_wall_ms = 30000\nmax_instances = 8";
    let config = binary_config(dir.path(), &sim, runtime);
    let server = serve_logged(&config, &dir.path().join("gateway.log")).await;
    let before = rss_kib(server.child.id());
    let started = Instant::now();
    let resp = bounded(
        60,
        "the stdout-flood request",
        http().post(chat_url(server.port)).json(&chat_body("stdout-flood")).send(),
    )
    .await
    .unwrap();
    let took = started.elapsed();
    if resp.status() != 200 {
        let (status, code, message) = error_of(resp).await;
        assert_eq!((status, code.as_str()), (504, "provider_component_timeout"), "{message}");
    }
    let after = rss_kib(server.child.id());
    assert!(
        after.saturating_sub(before) <= 64 * 1024,
        "RSS grew from {before} KiB to {after} KiB over a 1 GiB stdout flood ({took:?})"
    );
    let ok = bounded(10, "ok", http().post(chat_url(server.port)).json(&chat_body("ok")).send()).await.unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn a_stdout_flood_under_a_100_ms_cpu_budget_fails_cleanly_without_growing_the_gateway() {
    let sim = Sim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = binary_config(dir.path(), &sim, &runtime(""));
    let server = serve_logged(&config, &dir.path().join("gateway.log")).await;
    let before = rss_kib(server.child.id());
    let resp = bounded(
        30,
        "the stdout-flood request",
        http().post(chat_url(server.port)).json(&chat_body("stdout-flood")).send(),
    )
    .await
    .unwrap();
    if resp.status() != 200 {
        let (status, code, message) = error_of(resp).await;
        assert_eq!((status, code.as_str()), (504, "provider_component_timeout"), "{message}");
    }
    let after = rss_kib(server.child.id());
    assert!(after.saturating_sub(before) <= 64 * 1024, "RSS grew from {before} KiB to {after} KiB");
}

#[tokio::test]
async fn guest_log_lines_are_escaped_and_capped_per_call() {
    let sim = Sim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = binary_config(dir.path(), &sim, &runtime(""));
    let log = dir.path().join("gateway.log");
    let server = serve_logged(&config, &log).await;
    let resp = bounded(
        15,
        "the log-control request",
        http().post(chat_url(server.port)).json(&chat_body("log-control")).send(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    // everything the guest logged is written before its call returns; give the copier a moment
    let flushed = eventually(Duration::from_secs(5), || async {
        std::fs::read(&log).is_ok_and(|b| String::from_utf8_lossy(&b).contains("forged line injected by a guest"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = String::from_utf8_lossy(&std::fs::read(&log).unwrap()).into_owned();
    assert!(flushed, "the guest's lines never reached the log (last 2 KB): {:?}", tail(&text, 2048));
    let mut problems = Vec::new();
    for (raw, name) in [('\u{1b}', "ESC"), ('\r', "CR"), ('\0', "NUL"), ('\u{7}', "BEL")] {
        let lines: Vec<&str> = text.lines().filter(|l| l.contains(raw)).collect();
        if !lines.is_empty() {
            problems.push(format!(
                "a raw {name} from the guest reached the log in {} line(s), e.g. {:?}",
                lines.len(),
                lines[0]
            ));
        }
    }
    let forged = text.lines().filter(|l| l.starts_with("2026-01-01T00:00:00Z ERROR freeway: forged")).count();
    if forged > 0 {
        problems.push(format!("{forged} forged log line(s) start a line of their own"));
    }
    if !text.contains("red alert: screen cleared") {
        problems.push("the escaped line was dropped instead of escaped".into());
    }
    let flood = text.lines().filter(|l| l.contains("misbehave log flood line")).count();
    if !(1..=64).contains(&flood) {
        problems.push(format!("{flood} of the guest's 10,000 flood lines were written (at most 64 per call)"));
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The last `n` bytes of `text` (on a character boundary).
fn tail(text: &str, n: usize) -> &str {
    let start = text.len().saturating_sub(n);
    let start = (start..text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
    &text[start..]
}
