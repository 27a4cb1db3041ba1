//! CPU-heavy work on a request path (parsing a large body, counting a long prompt's tokens)
//! without stalling the async workers: above a size, the work runs with the worker handed over
//! to the runtime's other tasks meanwhile, so `/health` and other requests keep being served.

/// Bytes of input from which work counts as heavy.
pub const HEAVY_BYTES: usize = 256 * 1024;

/// Run `f`, whose cost grows with `input_bytes`. Heavy work on a multi-threaded runtime runs
/// under `block_in_place` (the other tasks of this worker move to another one); everything else
/// runs inline.
pub fn run<R>(input_bytes: usize, f: impl FnOnce() -> R) -> R {
    if input_bytes >= HEAVY_BYTES
        && let Ok(handle) = tokio::runtime::Handle::try_current()
        && handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
    {
        return tokio::task::block_in_place(f);
    }
    f()
}

#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn heavy_work_runs_on_a_multi_threaded_runtime() {
        assert_eq!(super::run(super::HEAVY_BYTES, || 7), 7);
    }

    #[tokio::test]
    async fn heavy_work_runs_inline_on_a_current_thread_runtime() {
        assert_eq!(super::run(super::HEAVY_BYTES, || 8), 8);
    }
}
