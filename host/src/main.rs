use clap::Parser;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = freeway::cli::Cli::parse();
    let telemetry = freeway::cli::init_tracing_for(cli.log_json, cli.reports());
    if cli.reports() {
        // a report piped into `head` ends quietly when the reader goes, like any Unix tool
        // (never for `serve`: a client that hangs up must not end the gateway)
        #[cfg(unix)]
        // SAFETY: restoring the default disposition of one signal before any thread starts
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    // one worker per CPU this process may run on (respects taskset/cgroup affinity, unlike the
    // default, so a gateway pinned to one core does not bounce tasks between two threads)
    let workers = std::env::var("FREEWAY_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .or_else(|| std::thread::available_parallelism().ok().map(std::num::NonZeroUsize::get))
        .unwrap_or(1)
        .max(1);
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("freeway: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(freeway::cli::run(cli));
    // open streams past the grace period are abandoned, not awaited
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    telemetry.shutdown();
    std::process::exit(code);
}
