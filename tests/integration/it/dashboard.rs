//! The dashboard's files are served by the gateway itself (offline, under a strict content
//! security policy, with no secret in them), and the request log it shows matches the OpenAPI
//! document. The pages themselves are tested in headless Chromium by `host/ui/tests`.

use freeway_integration::{Gateway, Opts, Sim, chat_body, http, provider};
use serde_json::Value;

use crate::admin_api::assert_matches;

const ADMIN: &str = "fw-dashboard-admin-key";

#[tokio::test]
async fn the_dashboard_is_served_offline_under_a_strict_policy_and_lists_requests() {
    let sim = Sim::start().await;
    let gw = Gateway::start_opts(
        &provider("local", &sim.base(), &["sk-dash-1"], &["m"]),
        Opts { server: format!("admin_key = \"{ADMIN}\""), ..Default::default() },
    )
    .await;
    for (path, kind) in
        [("/ui", "text/html"), ("/ui/", "text/html"), ("/ui/app.js", "text/javascript"), ("/ui/app.css", "text/css")]
    {
        let r = http().get(gw.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with(kind), "{path}");
        let csp = r.headers()["content-security-policy"].to_str().unwrap().to_owned();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
        let body = r.text().await.unwrap();
        assert!(!body.contains(ADMIN) && !body.contains("sk-dash-1"), "{path} carries no secret");
        assert!(!body.contains("https://") || path != "/ui", "no CDN");
    }

    assert_eq!(gw.chat(chat_body("m")).await.status(), 200);
    let log = freeway_integration::eventually(std::time::Duration::from_secs(10), || async {
        let v: Value = http()
            .get(gw.url("/admin/requests?limit=5"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["data"].as_array().is_some_and(|d| !d.is_empty())
    })
    .await;
    assert!(log, "the request shows in the log");
    let v: Value = http().get(gw.url("/admin/requests")).bearer_auth(ADMIN).send().await.unwrap().json().await.unwrap();
    assert_matches("RequestLog", &v);
    let first = &v["data"][0];
    assert_eq!(
        (first["provider"].as_str(), first["model"].as_str(), first["outcome"].as_str()),
        (Some("local"), Some("m"), Some("ok"))
    );
    assert_eq!(first["attempts"], 1);
    let bad = http().get(gw.url("/admin/requests?limit=lots")).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.json::<Value>().await.unwrap()["error"]["param"], "limit");
    assert_eq!(http().get(gw.url("/admin/requests")).send().await.unwrap().status(), 401);
}
