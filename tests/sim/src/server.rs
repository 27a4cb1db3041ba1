//! The accept loop: hyper connections (HTTP/1.1 and h2c) over the axum router, with a shutdown
//! that stops accepting, lets idle connections go and cuts the rest after a short grace.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// How long an in-flight connection may finish after shutdown starts.
const CONNECTION_GRACE: Duration = Duration::from_millis(500);
/// How long `serve` waits for all connections after it stops accepting.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// Resolves once shutdown is requested (true sent, or the sender dropped).
pub async fn shutdown_requested(rx: &mut watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Serves `app` on `listener` until `shutdown` fires, then drains connections.
pub async fn serve(listener: TcpListener, app: Router, mut shutdown: watch::Receiver<bool>) {
    let builder = Arc::new(Builder::new(TokioExecutor::new()));
    // Every connection task holds a sender; `recv` returns None once all have finished.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    tokio::spawn(connection(
                        stream,
                        app.clone(),
                        Arc::clone(&builder),
                        shutdown.clone(),
                        alive_tx.clone(),
                    ));
                }
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            () = shutdown_requested(&mut shutdown) => break,
        }
    }
    drop(listener);
    drop(alive_tx);
    let _ = tokio::time::timeout(DRAIN_LIMIT, alive_rx.recv()).await;
}

async fn connection(
    stream: TcpStream,
    app: Router,
    builder: Arc<Builder<TokioExecutor>>,
    mut shutdown: watch::Receiver<bool>,
    _alive: mpsc::Sender<()>,
) {
    // Stream chunks must leave as soon as they are written.
    let _ = stream.set_nodelay(true);
    let service = TowerToHyperService::new(app);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, "connection ended with an error");
            }
        }
        () = shutdown_requested(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(CONNECTION_GRACE, conn).await;
        }
    }
}
