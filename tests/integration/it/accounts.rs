//! Accounts: added with the CLI while the gateway runs, spread across (by quota pool), a revoked
//! key disabled within one request with traffic moving on, the vault holding no plaintext, and
//! the admin API.

use std::collections::HashSet;
use std::time::Duration;

use freeway_integration::{Gateway, Opts, Sim, chat_body, eventually, http, run_freeway};
use serde_json::{Value, json};

pub(crate) const GROQ_KEYS: [&str; 3] =
    ["gsk_first_aaaaaaaaaaaaaaaa", "gsk_second_bbbbbbbbbbbbbbb", "gsk_third_ccccccccccccccccc"];
const OR_KEYS: [&str; 2] = ["sk-or-v1-one-dddddddddddddddd", "sk-or-v1-two-eeeeeeeeeeeeeeee"];

/// A simulator with a Groq and an OpenRouter upstream, and a catalog file putting both there.
pub(crate) async fn sims(keys_groq: &[&str]) -> (Sim, String) {
    let sim = Sim::start_json(json!({"upstreams": [
        {"prefix": "/groq/openai/v1", "profile": "groq", "keys": keys_groq, "models": ["llama-3.1-8b-instant"]},
        {"prefix": "/openrouter/api/v1", "profile": "openrouter", "keys": OR_KEYS, "models": ["meta-llama/llama-3.3-70b-instruct:free"]},
    ]}))
    .await;
    let base = format!("http://{}", sim.sim.addr());
    let catalog = format!(
        "[[providers]]\nid = \"groq\"\nname = \"Groq\"\nbase_url = \"{base}/groq/openai/v1\"\ncomponent = \"openai-compat\"\nkey_env = [\"GROQ_API_KEY\"]\n\
         [providers.settings]\nrequests_window = \"day\"\n\
         [[providers.models]]\nid = \"llama-3.1-8b-instant\"\n\n\
         [[providers]]\nid = \"openrouter\"\nname = \"OpenRouter\"\nbase_url = \"{base}/openrouter/api/v1\"\ncomponent = \"openai-compat\"\nkey_env = [\"OPENROUTER_API_KEY\"]\n\
         [providers.terms]\nmultiple_accounts = \"unknown\"\n\
         [[providers.models]]\nid = \"meta-llama/llama-3.3-70b-instruct:free\"\n"
    );
    (sim, catalog)
}

/// A gateway whose catalog puts the providers at the simulator from its first start (so no
/// account is ever resolved against a real provider's URL).
async fn gateway_with_catalog(catalog: &str, opts: Opts) -> Gateway {
    Gateway::start_opts("", Opts { catalog: Some(catalog.to_owned()), ..opts }).await
}

fn config_arg(gw: &Gateway) -> String {
    gw.config_path().display().to_string()
}

async fn add(gw: &Gateway, provider: &str, key: &str, pool: Option<&str>) -> String {
    let config = config_arg(gw);
    let mut args = vec!["accounts", "add", provider, "--key-stdin", "--config", &config];
    if let Some(p) = pool {
        args.extend(["--pool", p]);
    }
    let (code, out, err) = run_freeway(&args, &format!("{key}\n")).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains(key) && !err.contains(key), "the key was printed: {out}{err}");
    out
}

#[tokio::test]
async fn keys_added_with_the_cli_are_used_spread_and_a_revoked_one_is_retired() {
    let (sim, catalog) = sims(&GROQ_KEYS).await;
    let gw = gateway_with_catalog(&catalog, Opts::default()).await;
    // three Groq keys and two keys of one OpenRouter account, added while the gateway runs
    for key in GROQ_KEYS {
        add(&gw, "groq", key, None).await;
    }
    for key in OR_KEYS {
        let out = add(&gw, "openrouter", key, Some("my-openrouter-account")).await;
        assert!(out.contains("pool my-openrouter-account"), "{out}");
    }
    let picked_up = eventually(Duration::from_secs(5), || async {
        let snap = gw.app.registry.snapshot();
        let n = |id: &str| snap.providers.iter().find(|p| p.id == id).map_or(0, |p| p.accounts.len());
        n("groq") == 3 && n("openrouter") == 2
    })
    .await;
    assert!(picked_up, "the running gateway saw the new accounts within 5 s");

    // the vault holds no plaintext
    let vault = std::fs::read_to_string(gw.dir.path().join("data/vault.json")).unwrap();
    for key in GROQ_KEYS.iter().chain(&OR_KEYS) {
        assert!(!vault.contains(&key[6..]), "plaintext key in the vault");
    }

    // requests spread across the Groq keys
    for _ in 0..6 {
        assert_eq!(gw.chat(chat_body("groq/llama-3.1-8b-instant")).await.status(), 200);
    }
    let used: HashSet<String> = sim
        .requests()
        .await
        .iter()
        .filter(|r| r["path"] == "/groq/openai/v1/chat/completions")
        .map(|r| r["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(used.len(), 3, "{used:?}");

    // the two OpenRouter keys are one quota pool
    let snap = gw.app.registry.snapshot();
    let or = snap.providers.iter().find(|p| p.id == "openrouter").unwrap();
    assert!(or.accounts.iter().all(|a| a.pool == "my-openrouter-account"));

    // Groq revokes the second key: the simulator answers it 401 from now on
    let before = sim.requests().await.iter().filter_map(|r| r["seq"].as_u64()).max().unwrap_or(0);
    sim.configure(json!({"upstreams": [
        {"prefix": "/groq/openai/v1", "profile": "groq", "keys": [GROQ_KEYS[0], GROQ_KEYS[2]], "models": ["llama-3.1-8b-instant"]},
        {"prefix": "/openrouter/api/v1", "profile": "openrouter", "keys": OR_KEYS, "models": ["meta-llama/llama-3.3-70b-instruct:free"]},
    ]}))
    .await;
    for _ in 0..6 {
        let r = gw.chat(chat_body("groq/llama-3.1-8b-instant")).await;
        assert_eq!(r.status(), 200, "the client never sees the revoked key: {}", r.text().await.unwrap());
    }
    let snap = gw.app.registry.snapshot();
    let groq = snap.providers.iter().find(|p| p.id == "groq").unwrap();
    let revoked = groq.accounts.iter().find(|a| a.secret.as_ref().unwrap().expose() == GROQ_KEYS[1]).unwrap();
    match revoked.health.get() {
        freeway::accounts::Health::Disabled { reason, .. } => assert!(reason.contains("401"), "{reason}"),
        other => panic!("the revoked key is {other:?}"),
    }
    // it was tried once, then never again
    let revoked_tries =
        sim.requests().await.iter().filter(|r| r["seq"].as_u64() > Some(before) && r["key"] == GROQ_KEYS[1]).count();
    assert_eq!(revoked_tries, 1, "disabled within one request");

    // `accounts list` shows why
    let listed = eventually(Duration::from_secs(8), || async {
        let (_, out, _) = run_freeway(&["accounts", "list", "--config", &config_arg(&gw)], "").await;
        out.contains("disabled by the gateway")
    })
    .await;
    let (_, out, _) = run_freeway(&["accounts", "list", "--config", &config_arg(&gw)], "").await;
    assert!(listed, "{out}");
    assert!(out.contains("gsk_…aaaa") && out.contains("401"), "{out}");
    for key in GROQ_KEYS.iter().chain(&OR_KEYS) {
        assert!(!out.contains(key), "a key in `accounts list`");
    }
}

#[tokio::test]
async fn a_key_that_recovers_comes_back_by_itself() {
    let (sim, catalog) = sims(&[GROQ_KEYS[0]]).await;
    let gw = gateway_with_catalog(&catalog, Opts::default()).await;
    add(&gw, "groq", GROQ_KEYS[1], None).await;
    assert!(eventually(Duration::from_secs(5), || async { !gw.app.registry.snapshot().providers.is_empty() }).await);
    // the only key is refused
    let r = gw.chat(chat_body("groq/llama-3.1-8b-instant")).await;
    assert_eq!(r.status(), 502);
    let snap = gw.app.registry.snapshot();
    let account = snap.providers[0].accounts[0].clone();
    assert!(matches!(account.health.get(), freeway::accounts::Health::Disabled { .. }));
    let r = gw.chat(chat_body("groq/llama-3.1-8b-instant")).await;
    assert_eq!(r.status(), 503, "every account disabled: {}", r.text().await.unwrap());
    // the provider accepts it again; the gateway's re-check (due after a minute) puts it back
    sim.configure(json!({"upstreams": [
        {"prefix": "/groq/openai/v1", "profile": "groq", "keys": [GROQ_KEYS[1]], "models": ["llama-3.1-8b-instant"]},
    ]}))
    .await;
    let verdict = freeway::registry::recheck::check(&snap.providers[0], &account).await;
    assert_eq!(verdict, freeway::registry::recheck::Verdict::Valid);
    account.health.checked(true, None, std::time::Instant::now());
    assert_eq!(gw.chat(chat_body("groq/llama-3.1-8b-instant")).await.status(), 200);
}

#[tokio::test]
async fn the_admin_api_manages_accounts_behind_its_key() {
    let (sim, catalog) = sims(&GROQ_KEYS).await;
    let opts = Opts { server: "admin_key = \"fw-admin-secret-123\"".into(), ..Default::default() };
    let gw = gateway_with_catalog(&catalog, opts).await;
    let admin = |path: &str| gw.url(path);
    let admin_json = |url: String| async move {
        http().get(url).bearer_auth("fw-admin-secret-123").send().await.unwrap().json::<Value>().await.unwrap()
    };
    // no key, wrong key: 401 with an OpenAI-shaped body
    let r = http().get(admin("/admin/accounts")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "invalid_api_key");
    let r = http().get(admin("/admin/accounts")).bearer_auth("nope").send().await.unwrap();
    assert_eq!(r.status(), 401);
    // add: the key goes in and never comes out
    let r = http()
        .post(admin("/admin/accounts"))
        .bearer_auth("fw-admin-secret-123")
        .json(&json!({"provider": "groq", "key": GROQ_KEYS[0], "label": "work"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let text = r.text().await.unwrap();
    assert!(!text.contains(GROQ_KEYS[0]), "{text}");
    let added: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(added["key"], "gsk_…aaaa");
    let id = added["id"].as_str().unwrap().to_owned();
    let served = eventually(Duration::from_secs(5), || async {
        gw.chat(chat_body("groq/llama-3.1-8b-instant")).await.status() == 200
    })
    .await;
    assert!(served, "{}", gw.chat(chat_body("groq/llama-3.1-8b-instant")).await.text().await.unwrap());
    // list, disable, enable, check, delete
    let list: Value = admin_json(admin("/admin/accounts")).await;
    assert_eq!(list["data"][0]["label"], "work");
    assert!(!list.to_string().contains(GROQ_KEYS[0]));
    let r = http()
        .post(admin(&format!("/admin/accounts/{id}/disable")))
        .bearer_auth("fw-admin-secret-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["enabled"], false);
    assert!(
        eventually(Duration::from_secs(5), || async {
            gw.chat(chat_body("groq/llama-3.1-8b-instant")).await.status() != 200
        })
        .await
    );
    let r = http()
        .post(admin(&format!("/admin/accounts/{id}/enable")))
        .bearer_auth("fw-admin-secret-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["enabled"], true);
    assert!(
        eventually(Duration::from_secs(5), || async {
            gw.chat(chat_body("groq/llama-3.1-8b-instant")).await.status() == 200
        })
        .await
    );
    let r: Value = http()
        .post(admin(&format!("/admin/accounts/{id}/check")))
        .bearer_auth("fw-admin-secret-123")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["result"], "valid");
    let r =
        http().delete(admin(&format!("/admin/accounts/{id}"))).bearer_auth("fw-admin-secret-123").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r =
        http().delete(admin(&format!("/admin/accounts/{id}"))).bearer_auth("fw-admin-secret-123").send().await.unwrap();
    assert_eq!(r.status(), 404);
    // the audit log has every change, with who did it
    let audit: Value = admin_json(admin("/admin/audit")).await;
    let actions: Vec<&str> = audit["data"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["account.add", "account.disable", "account.enable", "account.check", "account.remove"]);
    assert!(audit["data"][0]["actor"].as_str().unwrap().starts_with("admin-api:127.0.0.1"));
    assert!(audit["data"][0]["origin"].as_str().unwrap().starts_with("127.0.0.1:"), "from where");
    assert_eq!(audit["data"][3]["detail"], "valid");
    // kept in the usage store, and filtered there
    let adds: Value = admin_json(admin("/admin/audit?action=account.add&limit=5")).await;
    assert_eq!(adds["data"].as_array().unwrap().len(), 1);
    assert_eq!(gw.app.store.audit_recent(100, 0, None).await.unwrap().len(), 5);
    assert!(!audit.to_string().contains(GROQ_KEYS[0]));
    drop(sim);
}

#[tokio::test]
async fn the_admin_api_is_off_without_a_key() {
    let gw = Gateway::start("").await;
    let r = http().get(gw.url("/admin/accounts")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "admin_api_disabled");
}

#[tokio::test]
async fn import_export_and_key_rotation_through_the_cli() {
    let (sim, catalog) = sims(&GROQ_KEYS).await;
    let gw = gateway_with_catalog(&catalog, Opts::default()).await;
    let config = config_arg(&gw);
    // a .env file and a TOML file
    let dotenv = gw.dir.path().join("keys.env");
    std::fs::write(
        &dotenv,
        format!("# mine\nGROQ_API_KEY={}\nexport OPENROUTER_API_KEY=\"{}\"\nUNRELATED=1\n", GROQ_KEYS[0], OR_KEYS[0]),
    )
    .unwrap();
    let (code, out, err) =
        run_freeway(&["accounts", "import", dotenv.to_str().unwrap(), "--config", &config], "").await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("2 added"), "{out}");
    let toml_file = gw.dir.path().join("keys.toml");
    std::fs::write(&toml_file, format!("[[accounts]]\nprovider = \"groq\"\nkey = \"{}\"\nlabel = \"team\"\n\n[[accounts]]\nprovider = \"groq\"\nkey = \"{}\"\n", GROQ_KEYS[1], GROQ_KEYS[0])).unwrap();
    let (code, out, _) =
        run_freeway(&["accounts", "import", toml_file.to_str().unwrap(), "--config", &config], "").await;
    assert_eq!(code, 0);
    assert!(out.contains("1 added, 1 already there"), "{out}");
    for text in [&out, &err] {
        assert!(!GROQ_KEYS.iter().chain(&OR_KEYS).any(|k| text.contains(k)));
    }
    assert!(
        eventually(Duration::from_secs(5), || async {
            gw.chat(chat_body("groq/llama-3.1-8b-instant")).await.status() == 200
        })
        .await
    );

    // an encrypted backup
    let backup = gw.dir.path().join("backup.json");
    let (code, out, err) = run_freeway(
        &["accounts", "export", backup.to_str().unwrap(), "--passphrase-stdin", "--config", &config],
        "a good long passphrase\n",
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let text = std::fs::read_to_string(&backup).unwrap();
    assert!(!GROQ_KEYS.iter().any(|k| text.contains(&k[4..])));
    let back = freeway::vault::Vault::read_backup(&text, "a good long passphrase").unwrap();
    assert_eq!(back.len(), 3);

    // rotate the vault key while the gateway runs: it keeps serving with the new key
    let key_before = std::fs::read_to_string(gw.dir.path().join("data/master.key")).unwrap();
    let vault_before = std::fs::read_to_string(gw.dir.path().join("data/vault.json")).unwrap();
    let (code, out, err) = run_freeway(&["vault", "rotate-key", "--config", &config], "").await;
    assert_eq!(code, 0, "{out}{err}");
    assert_ne!(key_before, std::fs::read_to_string(gw.dir.path().join("data/master.key")).unwrap());
    assert_ne!(vault_before, std::fs::read_to_string(gw.dir.path().join("data/vault.json")).unwrap());
    tokio::time::sleep(Duration::from_millis(600)).await;
    let ready: Value = gw.get("/ready").await.json().await.unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(gw.chat(chat_body("groq/llama-3.1-8b-instant")).await.status(), 200);
    let audit = std::fs::read_to_string(gw.dir.path().join("data/audit.log")).unwrap();
    assert!(audit.contains("vault.rotate-key"));
    // the CLI's changes reach the usage store too (the gateway copies the journal every few seconds)
    let stored = eventually(Duration::from_secs(10), || async {
        let rows = gw.app.store.audit_recent(100, 0, None).await.unwrap();
        rows.iter().any(|r| {
            r.action == "vault.rotate-key" && r.actor.starts_with("cli:") && r.origin.as_deref() == Some("local")
        }) && rows.iter().filter(|r| r.action == "account.add").count() == 3
    })
    .await;
    assert!(stored, "{:?}", gw.app.store.audit_recent(100, 0, None).await);
    // a wrong key is a clear error, not garbage
    std::fs::write(gw.dir.path().join("data/master.key"), key_before).unwrap();
    let (code, _, err) = run_freeway(&["accounts", "list", "--config", &config], "").await;
    assert_ne!(code, 0);
    assert!(err.contains("does not open this vault"), "{err}");
    drop(sim);
}
