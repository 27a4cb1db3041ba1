//! The HTTP edge: routes, body limits, graceful shutdown. Handlers are thin; the work is in
//! [`crate::pipeline`].

mod admin;
mod edge;
mod handlers;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::App;

pub use edge::error_response;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(handlers::chat_completions))
        .route("/chat/completions", post(handlers::chat_completions))
        .route("/v1/models", get(handlers::list_models))
        .route("/models", get(handlers::list_models))
        .route("/v1/models/{*id}", get(handlers::get_model))
        .route("/health", get(handlers::health))
        .route("/ready", get(handlers::ready))
        .route("/metrics", get(handlers::metrics))
        .merge(admin::router(app.clone()))
        .fallback(edge::not_found)
        .method_not_allowed_fallback(edge::method_not_allowed)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(edge::panic_response))
        .with_state(app)
}

/// Serve until `shutdown` resolves; then stop accepting, let open requests and streams finish,
/// and give up on them after `grace`.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    grace: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let flag = app.clone();
    let graceful = async move {
        shutdown.await;
        flag.shutting_down.store(true, Ordering::SeqCst);
        tracing::info!("shutting down: no new connections; open requests have {} s to finish", grace.as_secs());
        let _ = stop_tx.send(true);
    };
    // small SSE writes must leave at once, not wait for the previous segment's ACK (Nagle)
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let service = router(app).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = axum::serve(listener, service).with_graceful_shutdown(graceful);
    let deadline = async move {
        let _ = stop_rx.wait_for(|stopped| *stopped).await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        r = server.into_future() => r,
        () = deadline => {
            tracing::warn!("shutdown grace period over; closing the connections still open");
            Ok(())
        }
    }
}
