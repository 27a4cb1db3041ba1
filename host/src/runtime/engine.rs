//! The wasmtime engine every component runs in: Cranelift, the pooling instance allocator sized
//! from configuration, and epoch interruption driven by a ticker thread.

use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

use crate::config::RuntimeConfig;

/// How often the epoch advances: the granularity of guest CPU accounting and of cooperative
/// yields from long-running guests.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

pub fn build(cfg: &RuntimeConfig) -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.cranelift_opt_level(OptLevel::Speed);
    config.parallel_compilation(true);
    // guests get a small stack; deep recursion traps instead of eating host memory
    config.max_wasm_stack(512 * 1024);
    config.async_stack_size(1024 * 1024);

    let instances = cfg.max_instances;
    let memory = usize::try_from(cfg.guest_memory_mib.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(instances)
        // Rust guests have ~3 core instances, componentize-py ones ~14
        .total_core_instances(instances.saturating_mul(4))
        .max_core_instances_per_component(32)
        .total_memories(instances.saturating_mul(2))
        .max_memories_per_component(16)
        .total_tables(instances.saturating_mul(4))
        .max_tables_per_component(64)
        .table_elements(100_000)
        .total_stacks(instances)
        .max_memory_size(memory)
        .max_component_instance_size(1 << 20)
        .max_core_instance_size(1 << 20)
        // keep a few warm slots' pages; decommit the rest so idle memory stays low
        .max_unused_warm_slots(16)
        .linear_memory_keep_resident(64 * 1024);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config)
}

/// Advance the engine's epoch every [`EPOCH_TICK`] until the engine is dropped.
pub fn start_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new().name("freeway-epoch".into()).spawn(move || {
        loop {
            std::thread::sleep(EPOCH_TICK);
            match weak.upgrade() {
                Some(e) => e.increment_epoch(),
                None => break,
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!("cannot start the epoch ticker, guest CPU limits will not apply: {e}");
    }
}
