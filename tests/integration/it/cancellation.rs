//! Cancellation: a request dropped at any await point (a client that goes away, a timeout
//! around the handler) leaves no quota reservation behind. Each request is polled N times and
//! dropped, for N = 1, 2, ... until one completes; after every drop the pool's counters may
//! hold at most one request with its prompt per request sent, never the output reservation.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use freeway::principal::Principal;
use freeway::quota::Dim;
use freeway_integration::{Gateway, Sim, provider};
use http_body_util::BodyExt;

/// The output tokens each request reserves: far more than any prompt here.
const MAX_TOKENS: u64 = 20_000;

/// Poll `fut` until it is ready or has returned `Pending` `n` times (each `Pending` is one await
/// point reached); its output, if it got there.
async fn poll_times<F: Future>(mut fut: Pin<&mut F>, n: usize) -> Option<F::Output> {
    let mut pending = 0;
    std::future::poll_fn(|cx| match fut.as_mut().poll(cx) {
        Poll::Ready(v) => Poll::Ready(Some(v)),
        Poll::Pending => {
            pending += 1;
            if pending >= n { Poll::Ready(None) } else { Poll::Pending }
        }
    })
    .await
}

/// (requests, tokens) the pool holds for `m` now.
fn used(gw: &Gateway) -> (u64, u64) {
    let snap = gw.app.registry.snapshot();
    let p = &snap.providers[0];
    let now = freeway::clock::now_ms();
    let h = p.accounts[0].quota_pool.headroom(&p.quota_plan, "m", now);
    let of = |d: Dim| h.iter().filter(|x| x.dim == d).map(|x| x.used).max().unwrap_or(0);
    (of(Dim::Requests), of(Dim::Tokens))
}

async fn cancel_everywhere(stream: bool) {
    let sim =
        Sim::start_json(serde_json::json!({"upstreams": [{"prefix": "/v1", "latency_ms": 30, "token_delay_ms": 5}]}))
            .await;
    let providers =
        format!("{}limits = {{ rpm = 100000, tpm = 100000000 }}\n\n", provider("local", &sim.base(), &["k"], &["m"]));
    let gw = Gateway::start(&providers).await;
    let body = Bytes::from(
        serde_json::json!({
            "model": "m", "stream": stream, "max_tokens": MAX_TOKENS,
            "messages": [{"role": "user", "content": "Say something short about cancellation."}]
        })
        .to_string(),
    );
    let mut sent_at_most = 0u64;
    let mut completed = false;
    for n in 1..200 {
        let snapshot = gw.app.registry.snapshot();
        // made by the edge, outside the request's own future
        let exchange = freeway::pipeline::Exchange::detached();
        let fut = freeway::pipeline::chat_completions(
            gw.app.services(),
            &snapshot,
            Principal::Anyone,
            body.clone(),
            &exchange,
        );
        let mut fut = Box::pin(fut);
        sent_at_most += 1;
        match poll_times(fut.as_mut(), n).await {
            None => {}
            Some(Ok(resp)) if stream => {
                // the stream is relayed: cut it after its first chunk, and once let it finish
                let mut body = resp.into_body();
                let first = body.frame().await;
                assert!(first.is_some_and(|f| f.is_ok()), "the stream started");
                if n % 2 == 0 {
                    while body.frame().await.is_some() {}
                    completed = true;
                }
            }
            Some(Ok(resp)) => {
                let bytes = resp.into_body().collect().await.expect("body").to_bytes();
                assert!(!bytes.is_empty());
                completed = true;
            }
            Some(Err(e)) => panic!("the request failed after {n} polls: {}", e.message),
        }
        drop(fut);
        // settlement is synchronous; give spawned bookkeeping a moment anyway
        tokio::time::sleep(Duration::from_millis(5)).await;
        let (requests, tokens) = used(&gw);
        assert!(requests <= sent_at_most, "after {n} polls: {requests} requests counted, {sent_at_most} started");
        // each request costs at most its prompt (well under 100 tokens) plus what the simulator
        // really produced for completed ones; a leaked output reservation adds 20,000
        assert!(
            tokens < sent_at_most * 100 + 2_000,
            "after {n} polls: {tokens} tokens still counted for {sent_at_most} requests: a reservation leaked"
        );
        if completed {
            return;
        }
    }
    panic!("no request completed in 200 polls");
}

#[tokio::test]
async fn a_json_request_dropped_at_any_await_point_leaves_no_reservation_behind() {
    cancel_everywhere(false).await;
}

#[tokio::test]
async fn a_stream_dropped_at_any_await_point_leaves_no_reservation_behind() {
    cancel_everywhere(true).await;
}
