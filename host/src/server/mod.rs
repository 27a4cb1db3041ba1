//! The HTTP edge: routes, the request id and what is recorded of every request (metrics, the
//! access log), the guards every request passes (`Host`, JSON bodies, CORS), the connection
//! limits, graceful shutdown. Handlers are thin; the work is in [`crate::pipeline`].
//!
//! Connections are served by hyper directly (not `axum::serve`) so that the edge can bound what
//! a client may hold: at most `[server] max_connections` connections (further ones wait in the
//! kernel's backlog), and `header_read_timeout_ms` to send a request's headers (also the most a
//! keep-alive connection idles), so a slow-loris client cannot pin the gateway's sockets.

mod admin;
mod admin_keys;
mod edge;
mod guard;
mod handlers;
mod metrics;
mod observe;
mod ui;

pub use admin::OPENAPI;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::app::App;

pub use edge::error_response;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(handlers::chat_completions))
        .route("/chat/completions", post(handlers::chat_completions))
        .route("/v1/messages", post(handlers::messages))
        .route("/v1/messages/count_tokens", post(handlers::count_tokens))
        .route("/v1/completions", post(handlers::completions))
        .route("/completions", post(handlers::completions))
        .route("/v1/responses", post(handlers::responses))
        .route("/responses", post(handlers::responses))
        .route("/v1/embeddings", post(handlers::embeddings))
        .route("/embeddings", post(handlers::embeddings))
        .route("/v1/models", get(handlers::list_models))
        .route("/models", get(handlers::list_models))
        .route("/v1/models/{*id}", get(handlers::get_model))
        .route("/health", get(handlers::health))
        .route("/ready", get(handlers::ready))
        .route("/metrics", get(metrics::metrics))
        .merge(admin::router(app.clone()))
        .merge(ui::router())
        .fallback(edge::not_found)
        .method_not_allowed_fallback(edge::method_not_allowed)
        .layer(guard::cors(app.registry.clone()))
        .layer(axum::middleware::from_fn_with_state(app.clone(), guard::guard))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(edge::panic_response))
        // outermost: every response, errors and panics included, carries the request id
        .layer(axum::middleware::from_fn_with_state(app.clone(), observe::observe))
        .with_state(app)
}

/// Whether serving `addr` with this configuration is safe: a non-loopback address without any
/// client key is refused unless the operator opted in (`--insecure-no-auth` or
/// `[server] insecure_no_auth`), and then warned about (`Ok(Some(warning))`) at every start.
pub fn exposure(
    addr: &SocketAddr,
    server: &crate::config::ServerConfig,
    opt_in: bool,
    virtual_keys: bool,
) -> Result<Option<String>, String> {
    if addr.ip().is_loopback() || !server.api_keys.is_empty() || virtual_keys {
        return Ok(None);
    }
    if opt_in || server.insecure_no_auth {
        return Ok(Some(format!(
            "serving {addr} with NO client authentication (--insecure-no-auth): anyone who can reach this port can use your providers' quota"
        )));
    }
    Err(format!(
        "refusing to listen on {addr} without client keys: anyone who can reach it could spend your quota. Set FREEWAY_API_KEY (or [server] api_keys) or make a key with `freeway keys create`, listen on 127.0.0.1, or pass --insecure-no-auth if this network is yours alone"
    ))
}

/// Serve until `shutdown` resolves; then stop accepting, let open requests and streams finish,
/// and give up on them after `grace`.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    grace: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let server_cfg = app.registry.snapshot().config.server.clone();
    let router = router(app.clone());
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(server_cfg.header_read_timeout_ms.max(1)))
        .max_headers(128);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20));
    let builder = Arc::new(builder);
    let connections = Arc::new(Semaphore::new(server_cfg.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = connections.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (tcp, remote) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // out of file descriptors and the like: back off instead of spinning
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // small SSE writes must leave at once, not wait for the previous segment's ACK (Nagle)
        let _ = tcp.set_nodelay(true);
        let header_timeout = Duration::from_millis(server_cfg.header_read_timeout_ms.max(1));
        let service = hyper_util::service::TowerToHyperService::new(router.clone().map_request(
            move |mut req: axum::extract::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo::<SocketAddr>(remote));
                req
            },
        ));
        let builder = Arc::clone(&builder);
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            // the first bytes decide HTTP/1 or HTTP/2 before hyper's header timer runs: a client
            // that connects and sends nothing is closed at the same timeout
            let mut probe = [0u8; 1];
            if !matches!(tokio::time::timeout(header_timeout, tcp.peek(&mut probe)).await, Ok(Ok(n)) if n > 0) {
                drop(permit);
                return;
            }
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!("connection from {remote} ended: {e}");
            }
            drop(permit);
        });
    }
    drop(listener);
    app.shutting_down.store(true, Ordering::SeqCst);
    tracing::info!("shutting down: no new connections; open requests have {} s to finish", grace.as_secs());
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("shutdown grace period over; closing the connections still open");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SecretString, ServerConfig};

    #[test]
    fn a_non_loopback_address_without_client_keys_needs_an_explicit_opt_in() {
        let open = ServerConfig::default();
        let any: SocketAddr = "0.0.0.0:8000".parse().unwrap();
        let lan: SocketAddr = "192.168.1.5:8000".parse().unwrap();
        for local in ["127.0.0.1:8000", "[::1]:8000"] {
            assert_eq!(exposure(&local.parse().unwrap(), &open, false, false), Ok(None), "{local}");
        }
        for exposed in [any, lan, "[::]:8000".parse().unwrap()] {
            let err = exposure(&exposed, &open, false, false).unwrap_err();
            assert!(err.contains("--insecure-no-auth") && err.contains("FREEWAY_API_KEY"), "{err}");
            assert!(exposure(&exposed, &open, true, false).unwrap().unwrap().contains("NO client authentication"));
        }
        let opted = ServerConfig { insecure_no_auth: true, ..ServerConfig::default() };
        assert!(exposure(&any, &opted, false, false).unwrap().is_some());
        let keyed = ServerConfig { api_keys: vec![SecretString::new("fw-k")], ..ServerConfig::default() };
        assert_eq!(exposure(&any, &keyed, false, false), Ok(None));
        assert_eq!(exposure(&any, &open, false, true), Ok(None), "a virtual key closes it too");
    }
}
