//! Admission: how many API requests are served at once. A request takes a slot before its body
//! is read and keeps it until its response body (a stream included) is finished or dropped;
//! with every slot taken it waits up to `[server] queue_timeout_ms`, then gets 503 with
//! `Retry-After`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::errors::{ErrorKind, GatewayError};

/// The gateway's in-flight slots (sized at start: `[server] max_in_flight`).
#[derive(Clone)]
pub struct Admission {
    slots: Arc<Semaphore>,
    size: usize,
}

impl Admission {
    pub fn new(size: usize) -> Self {
        let size = size.clamp(1, Semaphore::MAX_PERMITS);
        Self { slots: Arc::new(Semaphore::new(size)), size }
    }

    /// A slot, waiting at most `queue`.
    pub async fn enter(&self, queue: Duration) -> Result<OwnedSemaphorePermit, GatewayError> {
        if let Ok(p) = self.slots.clone().try_acquire_owned() {
            return Ok(p);
        }
        match tokio::time::timeout(queue, self.slots.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(GatewayError::new(
                ErrorKind::Overloaded,
                format!("The gateway is serving its maximum of {} requests at once; try again shortly.", self.size),
            )
            .with_retry_after(Some(Duration::from_secs(1)))),
        }
    }

    /// Slots in use.
    pub fn in_use(&self) -> usize {
        self.size.saturating_sub(self.slots.available_permits())
    }
}

/// `resp` with `permit` released only when its body is done (or dropped).
pub fn hold(resp: Response, permit: OwnedSemaphorePermit) -> Response {
    resp.map(|body| Body::new(Held { body, _permit: permit }))
}

struct Held {
    body: Body,
    _permit: OwnedSemaphorePermit,
}

impl HttpBody for Held {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_full_gateway_queues_then_sheds_with_retry_after() {
        let a = Admission::new(1);
        let first = a.enter(Duration::ZERO).await.unwrap();
        let err = a.enter(Duration::from_millis(100)).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Overloaded);
        assert_eq!(err.status(), 503);
        assert_eq!(err.retry_after, Some(Duration::from_secs(1)));
        // a slot freed while waiting is taken
        let waiter = tokio::spawn({
            let a = a.clone();
            async move { a.enter(Duration::from_secs(5)).await.is_ok() }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(first);
        assert!(waiter.await.unwrap());
    }

    #[tokio::test]
    async fn the_slot_is_held_until_the_body_is_done() {
        let a = Admission::new(1);
        let permit = a.enter(Duration::ZERO).await.unwrap();
        let resp = hold(Response::new(Body::from("hello")), permit);
        assert_eq!(a.in_use(), 1);
        let bytes = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
        assert_eq!(&bytes[..], b"hello");
        assert_eq!(a.in_use(), 0);
    }
}
