//! Virtual client keys: made by `freeway keys` (the binary) or the admin API, stored hashed,
//! enforced by the gateway from its in-memory view: model lists (names, aliases, what `auto`
//! picks), each limit with an honest `Retry-After`, expiry, rotation and revocation (seen by a
//! second gateway on the same database within 5 s), per-key stats and tenant routing.

use std::time::{Duration, Instant};

use freeway_integration::{Gateway, Opts, OwnDatabase, Sim, eventually, http, provider, run_freeway, service_url};
use serde_json::{Value, json};

const ADMIN: &str = "fw-admin-keys-suite";
const STATIC: &str = "fw-static-operator-key";

/// p1 serves `small`, p2 serves `big` (both free chat models `auto` may pick); keys refreshed
/// every 200 ms.
fn fleet(sim: &Sim) -> String {
    let base = sim.base();
    format!(
        "[keys]\nrefresh_ms = 200\n\n{}{}",
        provider("p1", &base, &["sk-keys-p1"], &["small"]),
        provider("p2", &base, &["sk-keys-p2"], &["big"])
    )
}

fn opts() -> Opts {
    Opts { server: format!("admin_key = \"{ADMIN}\"\napi_keys = [\"{STATIC}\"]"), ..Opts::default() }
}

fn body(model: &str) -> Value {
    json!({ "model": model, "messages": [{ "role": "user", "content": "Say hello in five words." }], "max_tokens": 16 })
}

async fn chat_as(gw_url: &str, key: Option<&str>, model: &str) -> reqwest::Response {
    let mut r = http().post(format!("{gw_url}/v1/chat/completions")).json(&body(model));
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    r.send().await.expect("request")
}

/// `freeway keys create ... --json` against the gateway's configuration: the new key's secret.
async fn cli_key(gw: &Gateway, args: &[&str]) -> String {
    let config = gw.config_path().display().to_string();
    let mut all = vec!["keys", "create", "--json", "--config", config.as_str()];
    all.extend_from_slice(args);
    let (code, out, err) = run_freeway(&all, "").await;
    assert_eq!(code, 0, "keys create: {out}{err}");
    let v: Value = serde_json::from_str(out.trim()).expect("json");
    let key = v["key"].as_str().expect("key").to_owned();
    assert!(key.starts_with("fw-") && key.len() >= 40, "{key}");
    key
}

/// An admin API call's JSON answer.
async fn admin_json(req: reqwest::RequestBuilder) -> Value {
    req.bearer_auth(ADMIN).send().await.expect("admin request").json().await.expect("admin json")
}

async fn error_of(r: reqwest::Response) -> (u16, Option<u64>, Value) {
    let status = r.status().as_u16();
    let retry = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let v: Value = r.json().await.unwrap_or(Value::Null);
    (status, retry, v["error"].clone())
}

/// Seconds from now to the next midnight UTC / the first of next month UTC.
fn to_midnight() -> u64 {
    let now = freeway::clock::now_ms();
    (freeway::quota::DailyReset::default().next_after(now) - now) / 1000
}

fn to_month_end() -> u64 {
    let now = freeway::clock::now_ms();
    (freeway::quota::spec::next_month_start(now) - now) / 1000
}

async fn wait_until_served(url: &str, key: &str, model: &str) {
    let ok =
        eventually(Duration::from_secs(5), || async { chat_as(url, Some(key), model).await.status() == 200 }).await;
    assert!(ok, "the gateway did not accept the new key within 5 s");
}

#[tokio::test]
async fn three_users_are_held_to_their_own_budgets_and_model_lists() {
    let sim = Sim::start().await;
    let gw = Gateway::start_opts(&fleet(&sim), opts()).await;
    let url = format!("http://{}", gw.addr);
    let alice = cli_key(&gw, &["--name", "alice", "--models", "auto,small", "--rpd", "3"]).await;
    let bob = cli_key(&gw, &["--name", "bob", "--models", "big", "--monthly-tokens", "120"]).await;
    let carol = cli_key(&gw, &["--name", "carol", "--rpm", "2", "--tags", "team-c"]).await;
    wait_until_served(&url, &carol, "small").await;

    // no key, an unknown key: 401; the static key still works
    assert_eq!(error_of(chat_as(&url, None, "small").await).await.0, 401);
    let (s, _, e) = error_of(chat_as(&url, Some("fw-not-a-real-key-0000000000000000000000000"), "small").await).await;
    assert_eq!((s, e["code"].as_str()), (401, Some("invalid_api_key")));
    assert_eq!(chat_as(&url, Some(STATIC), "big").await.status(), 200);

    // alice: `big` is not hers (403), `auto` may only pick `small`; three a day
    let (s, _, e) = error_of(chat_as(&url, Some(&alice), "big").await).await;
    assert_eq!((s, e["code"].as_str(), e["type"].as_str()), (403, Some("model_not_allowed"), Some("permission_error")));
    for _ in 0..2 {
        let r = chat_as(&url, Some(&alice), "auto").await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["model"], "small", "auto picked outside alice's list: {v}");
    }
    // the 403 above spent nothing: this is her third
    assert_eq!(chat_as(&url, Some(&alice), "small").await.status(), 200);
    let (s, retry, e) = error_of(chat_as(&url, Some(&alice), "small").await).await;
    assert_eq!((s, e["code"].as_str()), (429, Some("insufficient_quota")), "{e}");
    let retry = retry.expect("retry-after");
    assert!(retry.abs_diff(to_midnight()) <= 2, "retry-after {retry} s, midnight in {} s", to_midnight());
    assert!(e["message"].as_str().unwrap().contains("RPD 3/3"), "{e}");

    // bob: `big` only, 120 tokens a month; every answer spends some until none is left
    assert_eq!(error_of(chat_as(&url, Some(&bob), "small").await).await.0, 403);
    let mut served = 0;
    let refusal = loop {
        let r = chat_as(&url, Some(&bob), "big").await;
        if r.status() != 200 {
            break error_of(r).await;
        }
        served += 1;
        assert!(served < 50, "bob's monthly budget never ran out");
    };
    assert!(served >= 1, "bob was refused before spending anything");
    let (s, retry, e) = refusal;
    assert_eq!(s, 429, "{e}");
    // refused either because the month is spent or because this request could not fit in it
    if e["code"] == "insufficient_quota" {
        assert!(retry.expect("retry-after").abs_diff(to_month_end()) <= 2);
    } else {
        assert_eq!(e["code"], "rate_limit_exceeded", "{e}");
    }

    // carol: any model, two a minute
    assert_eq!(chat_as(&url, Some(&carol), "big").await.status(), 200);
    let (s, retry, e) = error_of(chat_as(&url, Some(&carol), "small").await).await;
    assert_eq!((s, e["code"].as_str()), (429, Some("rate_limit_exceeded")), "{e}");
    let retry = retry.expect("retry-after");
    assert!(
        (50..=62).contains(&retry),
        "the minute frees in about 60 s (the ledger keeps a margin on rolling windows): {retry}"
    );

    // who used what (the usage writer commits within its linger)
    assert!(gw.app.usage.flush(Duration::from_secs(5)).await);
    let stats: Value =
        http().get(gw.url("/admin/stats?since=1h")).bearer_auth(ADMIN).send().await.unwrap().json().await.unwrap();
    let by_client = stats["by_client"].as_array().unwrap();
    let of = |name: &str| by_client.iter().find(|g| g["name"] == name).cloned().unwrap_or(Value::Null);
    assert_eq!(of("alice")["requests"], 3, "{by_client:?}");
    assert_eq!(of("carol")["requests"], 2, "{by_client:?}");
    assert!(of("alice")["key"].as_str().unwrap().starts_with("vk_"));
    assert!(of("bob")["prompt_tokens"].as_u64().unwrap() > 0);
    let only: Value = admin_json(http().get(gw.url("/admin/stats?since=1h&key=alice"))).await;
    assert_eq!(only["total"]["requests"], 3);
    assert_eq!(only["by_client"].as_array().unwrap().len(), 1);

    // `freeway stats --key` and `freeway keys list` say the same
    let config = gw.config_path().display().to_string();
    let (code, out, err) =
        run_freeway(&["stats", "--key", "alice", "--since", "1h", "--url", &url, "--config", &config], "").await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("alice (vk_") && out.contains("only client key vk_"), "{out}");
    let (code, out, err) = run_freeway(&["keys", "list", "--config", &config], "").await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("alice") && out.contains("3/3") && out.contains("fw-"), "{out}");
    for secret in [&alice, &bob, &carol] {
        assert!(!out.contains(secret.as_str()), "keys list shows a secret");
    }
}

#[tokio::test]
async fn expired_rotated_and_revoked_keys_are_refused_with_the_reason() {
    let sim = Sim::start().await;
    let gw = Gateway::start_opts(&fleet(&sim), opts()).await;
    let url = format!("http://{}", gw.addr);
    let admin = |path: &str| gw.url(path);
    let made: Value =
        admin_json(http().post(admin("/admin/keys")).json(&json!({ "name": "dave", "models": ["small"] }))).await;
    let first = made["key"].as_str().unwrap().to_owned();
    assert_eq!(made["name"], "dave");
    // the admin API's own change is in force at once
    assert_eq!(chat_as(&url, Some(&first), "small").await.status(), 200);

    // rotated with a grace period: both work, then only the new one
    let rotated: Value =
        admin_json(http().post(admin("/admin/keys/dave/rotate")).json(&json!({ "grace_seconds": 2 }))).await;
    let second = rotated["key"].as_str().unwrap().to_owned();
    assert_eq!(rotated["id"], made["id"], "same identity");
    assert_ne!(second, first);
    assert_eq!(chat_as(&url, Some(&second), "small").await.status(), 200);
    assert_eq!(chat_as(&url, Some(&first), "small").await.status(), 200, "within the grace period");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (s, _, e) = error_of(chat_as(&url, Some(&first), "small").await).await;
    assert_eq!(s, 401);
    assert!(e["message"].as_str().unwrap().contains("replaced"), "{e}");

    // an expiry
    let soon = freeway::clock::now_ms() + 1000;
    let r = http()
        .patch(admin("/admin/keys/dave"))
        .bearer_auth(ADMIN)
        .json(&json!({ "expires_at_ms": soon }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (s, _, e) = error_of(chat_as(&url, Some(&second), "small").await).await;
    assert_eq!(s, 401);
    assert!(e["message"].as_str().unwrap().contains("expired"), "{e}");
    // lifted, then revoked
    let r =
        http().patch(admin("/admin/keys/dave")).bearer_auth(ADMIN).json(&json!({ "expires_at_ms": null })).send().await;
    assert_eq!(r.unwrap().status(), 200);
    assert_eq!(chat_as(&url, Some(&second), "small").await.status(), 200);
    let r = http().delete(admin("/admin/keys/dave")).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (s, _, e) = error_of(chat_as(&url, Some(&second), "small").await).await;
    assert_eq!(s, 401);
    assert!(e["message"].as_str().unwrap().contains("revoked"), "{e}");

    // the list masks; every change is in the audit log
    let list: Value =
        http().get(admin("/admin/keys?all=true")).bearer_auth(ADMIN).send().await.unwrap().json().await.unwrap();
    let text = list.to_string();
    assert!(!text.contains(&first) && !text.contains(&second));
    assert_eq!(list["data"][0]["status"], "revoked");
    let audit: Value = http().get(admin("/admin/audit")).bearer_auth(ADMIN).send().await.unwrap().json().await.unwrap();
    let actions: Vec<&str> = audit["data"].as_array().unwrap().iter().filter_map(|a| a["action"].as_str()).collect();
    for want in ["key.create", "key.rotate", "key.update", "key.revoke"] {
        assert!(actions.contains(&want), "{want} not audited: {actions:?}");
    }
    // bad input is a clear 400, an unknown key a 404
    let r = http().post(admin("/admin/keys")).bearer_auth(ADMIN).json(&json!({ "name": "x y" })).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = http()
        .post(admin("/admin/keys"))
        .bearer_auth(ADMIN)
        .json(&json!({ "name": "e", "rpm": 0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = http().patch(admin("/admin/keys/nobody")).bearer_auth(ADMIN).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn a_stolen_database_dump_holds_no_usable_key() {
    let sim = Sim::start().await;
    let gw = Gateway::start_opts(&fleet(&sim), opts()).await;
    let url = format!("http://{}", gw.addr);
    let secret = cli_key(&gw, &["--name", "erin"]).await;
    wait_until_served(&url, &secret, "small").await;
    let db = gw.dir.path().join("data/freeway.db");
    let mut dump = std::fs::read(&db).unwrap();
    dump.extend(std::fs::read(db.with_extension("db-wal")).unwrap_or_default());
    assert!(!dump.windows(secret.len()).any(|w| w == secret.as_bytes()), "the secret is in the database");
    let body = &secret[3..];
    assert!(!dump.windows(body.len()).any(|w| w == body.as_bytes()));
    // what is there (the hash, the hint) does not open the gateway
    let text = String::from_utf8_lossy(&dump).into_owned();
    let hashes: Vec<&str> = text.split(|c: char| !c.is_ascii_hexdigit()).filter(|w| w.len() == 64).collect();
    assert!(!hashes.is_empty(), "the hash should be stored");
    for h in hashes {
        for candidate in [h.to_owned(), format!("fw-{h}")] {
            assert_eq!(chat_as(&url, Some(&candidate), "small").await.status(), 401);
        }
    }
}

#[tokio::test]
async fn tags_prefer_and_a_pinned_route_follow_the_key() {
    let sim = Sim::start().await;
    let base = sim.base();
    // both providers serve `shared`; a rule sends clients tagged `cheap` to p1 only
    let providers = format!(
        "[keys]\nrefresh_ms = 200\n\n[[routing_rules]]\nname = \"cheap clients\"\nclient_tags = [\"cheap\"]\nfallback_chain = [\"p1/shared\"]\n\n{}{}",
        provider("p1", &base, &["sk-tags-p1"], &["shared"]),
        provider("p2", &base, &["sk-tags-p2"], &["shared"])
    );
    let gw = Gateway::start_opts(&providers, opts()).await;
    let url = format!("http://{}", gw.addr);
    let fan = cli_key(&gw, &["--name", "fan", "--prefer", "p2"]).await;
    let cheap = cli_key(&gw, &["--name", "cheapo", "--tags", "cheap"]).await;
    wait_until_served(&url, &fan, "shared").await;
    let before = sim.requests().await.len();
    for _ in 0..4 {
        assert_eq!(chat_as(&url, Some(&fan), "shared").await.status(), 200);
    }
    let keys: Vec<String> =
        sim.requests().await[before..].iter().filter_map(|r| r["key"].as_str().map(str::to_owned)).collect();
    assert!(keys.iter().all(|k| k == "sk-tags-p2"), "prefer p2: {keys:?}");
    // the tag reaches the routing rule for `auto`
    let before = sim.requests().await.len();
    for _ in 0..3 {
        assert_eq!(chat_as(&url, Some(&cheap), "auto").await.status(), 200);
    }
    let keys: Vec<String> =
        sim.requests().await[before..].iter().filter_map(|r| r["key"].as_str().map(str::to_owned)).collect();
    assert!(!keys.is_empty() && keys.iter().all(|k| k == "sk-tags-p1"), "the rule's chain: {keys:?}");
}

#[tokio::test]
async fn revocation_reaches_a_second_gateway_on_the_same_database_within_5_s() {
    let Some(pg) = service_url("FREEWAY_TEST_DATABASE_URL", "PostgreSQL") else { return };
    let Some(redis) = service_url("FREEWAY_TEST_REDIS_URL", "Redis") else { return };
    let db = OwnDatabase::create(&pg, "keys").await;
    let sim = Sim::start().await;
    let opts = Opts {
        storage_url: db.url.clone(),
        quota: format!("redis_url = \"{redis}\""),
        // the default refresh: what operators get
        ..opts()
    };
    let providers = fleet(&sim).replace("refresh_ms = 200", "refresh_ms = 1000");
    let one = Gateway::start_opts(&providers, opts.clone()).await;
    let two = Gateway::start_opts(&providers, opts).await;
    let (u1, u2) = (format!("http://{}", one.addr), format!("http://{}", two.addr));
    // a unique name: the limit's counters in Redis are the key's own
    let made: Value = admin_json(
        http()
            .post(one.url("/admin/keys"))
            .json(&json!({ "name": format!("shared-{}", std::process::id()), "rpm": 3 })),
    )
    .await;
    let key = made["key"].as_str().unwrap().to_owned();
    wait_until_served(&u2, &key, "small").await;
    // the key's limit is shared through Redis: one on the second gateway, two here, then none
    assert_eq!(chat_as(&u1, Some(&key), "small").await.status(), 200);
    assert_eq!(chat_as(&u1, Some(&key), "small").await.status(), 200);
    let (s, retry, _) = error_of(chat_as(&u2, Some(&key), "small").await).await;
    assert_eq!(s, 429, "the second gateway counts what the first took");
    assert!(retry.is_some());
    // revoked on the first: the second refuses within 5 s
    let r = http()
        .delete(one.url(&format!("/admin/keys/{}", made["id"].as_str().unwrap())))
        .bearer_auth(ADMIN)
        .send()
        .await;
    assert_eq!(r.unwrap().status(), 200);
    let t = Instant::now();
    let refused =
        eventually(Duration::from_secs(5), || async { chat_as(&u2, Some(&key), "small").await.status() == 401 }).await;
    let took = t.elapsed();
    assert!(refused, "the second gateway still accepts a revoked key after 5 s");
    eprintln!("revocation seen by the second gateway after {} ms", took.as_millis());
    assert_eq!(chat_as(&u1, Some(&key), "small").await.status(), 401);
}
