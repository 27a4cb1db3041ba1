use clap::Parser;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = freeway::cli::Cli::parse();
    freeway::cli::init_tracing(cli.log_json);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("freeway: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(freeway::cli::run(cli));
    // open streams past the grace period are abandoned, not awaited
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    std::process::exit(code);
}
