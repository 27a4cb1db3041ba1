//! Allocations per request on the pass-through path (an OpenAI-format upstream, JSON reply):
//! counted by this test binary's allocator while the request's own future is polled, on the
//! thread that polls it. Work the request hands to other tasks (the connection to the
//! upstream, the usage writer) is not counted; a guest's allocations live in its own linear
//! memory and are not either. The budget is the count measured when it was set, plus a margin:
//! allocations cannot creep back unnoticed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use freeway::principal::Principal;
use freeway_integration::{Gateway, Sim, provider};

/// Measured when this test was written: 99 per request once warm (debug build). The budget
/// leaves 15 % for harmless variation; lower it when the path gets cheaper.
const BUDGET: u64 = 115;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

/// The system allocator, counting allocations made on a thread while it counts.
pub struct Counting;

// SAFETY: every call is passed to the system allocator unchanged; the thread-local cells are
// plain `Cell`s without destructors, read with `try_with` so a thread being torn down is fine
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: the caller's contract, passed on
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: the caller's contract, passed on
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: the caller's contract, passed on
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on
        unsafe { System.dealloc(ptr, layout) }
    }
}

fn note() {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        let _ = COUNT.try_with(|c| c.set(c.get() + 1));
    }
}

/// A future whose polls are counted.
struct Counted<F>(Pin<Box<F>>);

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        COUNTING.with(|c| c.set(true));
        let r = self.0.as_mut().poll(cx);
        COUNTING.with(|c| c.set(false));
        r
    }
}

#[tokio::test]
async fn a_pass_through_request_allocates_within_its_budget() {
    let sim = Sim::start().await;
    let gw = Gateway::start(&provider("local", &sim.base(), &["k"], &["m"])).await;
    let body = Bytes::from_static(
        br#"{"model":"m","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Write one sentence about the sea."}],"max_tokens":12}"#,
    );
    let mut counts = Vec::new();
    for _ in 0..20 {
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
        COUNT.with(|c| c.set(0));
        let resp = Counted(Box::pin(fut)).await.expect("the request is served");
        counts.push(COUNT.with(Cell::get));
        assert_eq!(resp.status(), 200);
    }
    // the first requests warm pools and caches
    let settled = counts[10..].iter().copied().min().unwrap_or(u64::MAX);
    println!("allocations per request: {counts:?}");
    assert!(settled > 20, "the counter counts ({counts:?})");
    assert!(settled <= BUDGET, "{settled} allocations per request, budget {BUDGET}: {counts:?}");
}
