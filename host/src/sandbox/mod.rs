//! The sandbox: loads policy components and runs one evaluation in a fresh
//! instance with hard limits. It owns the wasmtime `Engine`; it must never
//! let a plugin failure escape as anything but a `PluginFailure` value, and
//! never reuse an instance between two actions.
//!
//! Cost model (see DESIGN.md, Sandbox): one engine with the pooling
//! allocator, one compile per sha256 (cached on disk, keyed by sha256 and
//! the engine's compatibility hash), one `InstancePre` per plugin, and a
//! fresh `Store` + instance per evaluation (an interpreter plugin's made
//! ahead of its action: `prepared`). A second `InstancePre`, with
//! every import a trap, serves `evaluate_inline` on the service's async
//! workers, where WASI's sync bindings must not run (they block on the
//! ambient tokio runtime); only a decision is taken from it.
//!
//! Most of an evaluation is that fresh instance, whatever the plugin does:
//! a guest that returns at once still costs about 8 us (db-export, all of
//! it, about 11 us). Instantiating takes three core instances (the main
//! module plus the shim and fixup that wasm-component-ld adds as soon as a
//! guest imports a WASI function taking a list, as the panic handler's
//! stderr write does), lowering the action twice calls the guest's
//! allocator once per string, and dropping the store resets the two pages
//! of initial memory. The guest SDK keeps its side small: a bump allocator
//! and `#![no_std]` plugins, whose components import 3 WASI interfaces
//! instead of std's 14 (plugins/sdk/src/lib.rs).
//!
//! No WASI call a guest makes waits in real time (`nonblocking`), and an
//! evaluation runs only in an instance slot it holds (`capacity`): a full
//! pool is `Busy`, the host's state, never the plugin's failure.

mod capacity;
mod failure;
mod interpreter;
mod nonblocking;
mod plugin;
mod prepared;
mod run;
mod wasi;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, StoreLimits,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

pub use capacity::{Busy, Slot};
pub use failure::PluginFailure;
pub use interpreter::LimitsOverride;
pub use plugin::{sha256_hex, Inspection, Plugin};
pub use prepared::PreparedCounts;
pub use run::{Decision, Evaluation};

wasmtime::component::bindgen!({
    path: "../wit/policy@0.1.0",
    world: "policy",
});

/// The WIT package version this host was built against. Plugins built
/// against this or an older 0.1.x contract load.
pub const WIT_VERSION: &str = "0.1.0";

/// How often the epoch advances; the wall-clock deadline is counted in these,
/// so an evaluation is stopped between `deadline_ms` and one tick later. The
/// deadline is a backstop behind fuel; a 1 ms tick woke the ticker thread a
/// thousand times a second, which on two busy cores preempted evaluations
/// (2 threads' throughput over 1 thread: medians 1.35x–1.87x in six bench
/// runs, against 1.49x–1.91x and most runs near 1.85x at 10 ms).
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Per-evaluation limits. Every evaluation gets all of them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Deterministic instruction budget for describe + classify + route.
    pub fuel: u64,
    /// Linear memory cap per instance, in bytes.
    pub memory_bytes: usize,
    /// Wall-clock backstop, in milliseconds (epoch interruption).
    pub deadline_ms: u64,
    /// Cap on the total size of the strings a plugin returns.
    pub output_bytes: usize,
    /// Core instances one plugin instance may make (a Rust plugin makes 3,
    /// CPython's runtime about 40). Left out of the recorded limits at its
    /// default: `evaluated` events written before this field existed ran
    /// under the same 16 and must reread to their exact bytes.
    #[serde(skip_serializing_if = "is_default_core_instances")]
    pub core_instances: u32,
}

const DEFAULT_CORE_INSTANCES: u32 = 16;

fn is_default_core_instances(n: &u32) -> bool {
    *n == DEFAULT_CORE_INSTANCES
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 20_000_000,
            memory_bytes: 16 << 20,
            deadline_ms: 200,
            output_bytes: 64 << 10,
            core_instances: DEFAULT_CORE_INSTANCES,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    pub limits: Limits,
    /// Instances that may be alive at once (the pooling allocator's slots).
    pub max_instances: u32,
    /// Where precompiled plugins are cached. Must be writable only by the
    /// service: cached artifacts are loaded as trusted native code.
    pub cache_dir: Option<PathBuf>,
    /// Bytes of each linear memory reset by copying its initial image back
    /// (or zeroes) instead of unmapping them when an instance ends; at or
    /// above a plugin's memory this removes page faults from its next
    /// instances. 16 MiB covers CPython's 12.6 MiB snapshot.
    pub keep_resident_bytes: usize,
    /// Where the kernel can say which pages an instance wrote (Linux 6.7+,
    /// `PAGEMAP_SCAN`): up to this many written bytes of a linear memory are
    /// copied back from its initial image when the instance ends, and every
    /// page it only read stays mapped, instead of resetting the first
    /// `keep_resident_bytes` and unmapping the rest. A Python plugin's next
    /// instance then re-faults fewer of its snapshot's pages, but past the
    /// scan's 32 regions it still faults (db-export: 220 per evaluation),
    /// and on a virtual machine those faults cost more than the copy they
    /// save (see `memory_reset`). 0, the default, turns the scan off.
    pub pagemap_keep_resident_bytes: usize,
    /// Fuel an evaluation may use on one of the service's async workers
    /// (`Sandbox::evaluate_inline`), which must not be held long: about a
    /// millisecond per million units. One that needs more, or calls an
    /// import, or fails, is run again on the blocking pool.
    pub inline_fuel: u64,
    /// Laid over `limits` for plugins that carry an interpreter (Python);
    /// see `interpreter.rs`.
    pub interpreter_limits: LimitsOverride,
    /// Laid over the above for one plugin, keyed by the name it describes
    /// itself with or by its sha256 (which wins).
    pub plugin_limits: BTreeMap<String, LimitsOverride>,
    /// Instances one plugin may hold at once, so that a flood of one kind
    /// cannot take the slots (and cores) every other kind needs. Default:
    /// half the machine's CPUs, at least one (evaluations are CPU-bound: a
    /// flooded plugin keeps at most half the cores busy).
    pub plugin_share: Option<u32>,
    /// How long an evaluation waits for a free slot before the submission
    /// is refused as busy (503, nothing decided).
    pub slot_wait_ms: u64,
    /// Plugins with an interpreter get one instance prepared ahead of their
    /// next action, this many plugins at most (`prepared.rs`); each holds a
    /// pool slot beyond `max_instances`. 0: none.
    pub prepared_plugins: u32,
    /// When all `prepared_plugins` are taken, a prepared instance that has
    /// waited this long for its plugin's next action (an unbound plugin's
    /// waits forever) gives its slot to a plugin that asks for one (just
    /// loaded, or its action found none).
    pub prepared_idle_seconds: u64,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            limits: Limits::default(),
            max_instances: 128,
            cache_dir: None,
            keep_resident_bytes: 16 << 20,
            pagemap_keep_resident_bytes: 0,
            inline_fuel: 1_000_000,
            interpreter_limits: LimitsOverride::interpreter_default(),
            plugin_limits: BTreeMap::new(),
            plugin_share: None,
            slot_wait_ms: 1000,
            prepared_plugins: 8,
            prepared_idle_seconds: 60,
        }
    }
}

/// Why the sandbox itself could not start (not a plugin's fault).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("configuring the wasmtime engine: {0}")]
    Engine(String),
    #[error("linking the deterministic WASI: {0}")]
    Link(String),
}

/// The per-`Store` state of one evaluation.
pub(crate) struct GuestState {
    /// Built on the guest's first WASI call, from `world`: most evaluations
    /// make none, and building it was a measurable share of an evaluation.
    wasi: Option<WasiCtx>,
    world: wasi::World,
    table: ResourceTable,
    limiter: MemoryLimiter,
    /// What the guest printed to stderr (its panic message), capped.
    stderr: wasi::Capture,
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let ctx = self
            .wasi
            .get_or_insert_with(|| self.world.ctx(self.stderr.clone()));
        WasiCtxView {
            ctx,
            table: &mut self.table,
        }
    }
}

/// `StoreLimits` (with `trap_on_grow_failure`) that remembers it refused a
/// grow, so a trap caused by the cap is reported as `OutOfMemory`.
pub(crate) struct MemoryLimiter {
    limits: StoreLimits,
    exceeded: bool,
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let answer = self.limits.memory_growing(current, desired, maximum);
        if !matches!(answer, Ok(true)) {
            self.exceeded = true;
        }
        answer
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }
}

/// The plugin runtime. Cheap to share behind an `Arc`; `evaluate` may run
/// on many threads at once.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<GuestState>,
    config: SandboxConfig,
    loaded: prepared::Loaded,
    capacity: Arc<capacity::Capacity>,
    preparer: prepared::Preparer,
}

impl Sandbox {
    pub fn new(config: SandboxConfig) -> Result<Self, SandboxError> {
        let engine = Engine::new(&engine_config(&config))
            .map_err(|e| SandboxError::Engine(format!("{e:#}")))?;
        spawn_epoch_ticker(&engine);

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .and_then(|()| nonblocking::link(&mut linker))
            .map_err(|e| SandboxError::Link(format!("{e:#}")))?;
        // The contract's `types` interface has no functions; components still
        // import it by name, so it must exist in the linker.
        linker
            .instance(&format!("actiongate:policy/types@{WIT_VERSION}"))
            .map_err(|e| SandboxError::Link(format!("{e:#}")))?;

        let share = config.plugin_share.unwrap_or_else(|| {
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
            (cpus / 2).max(1)
        });
        let capacity = capacity::Capacity::new(
            config.max_instances,
            share,
            Duration::from_millis(config.slot_wait_ms),
        );
        let loaded = prepared::Loaded::default();
        let preparer = prepared::Preparer::new(
            engine.clone(),
            loaded.clone(),
            run::prepared_store,
            config.prepared_plugins,
            Duration::from_secs(config.prepared_idle_seconds),
        );
        Ok(Sandbox {
            engine,
            linker,
            config,
            loaded,
            capacity,
            preparer,
        })
    }

    /// The limits of a plugin without an interpreter or limits of its own.
    pub fn limits(&self) -> &Limits {
        &self.config.limits
    }

    /// The limits one plugin runs under: the defaults, the interpreter's
    /// over them if it carries one, then its own by sha256 or else by name.
    pub(crate) fn limits_for(&self, interpreter: bool, sha256: &str, name: Option<&str>) -> Limits {
        let config = &self.config;
        let mut limits = config.limits.clone();
        if interpreter {
            limits = config.interpreter_limits.over(&limits);
        }
        let own = config
            .plugin_limits
            .get(sha256)
            .or_else(|| name.and_then(|n| config.plugin_limits.get(n)));
        match own {
            Some(own) => own.over(&limits),
            None => limits,
        }
    }

    /// A plugin already loaded under this sha256, if any.
    pub fn get(&self, sha256: &str) -> Option<Arc<Plugin>> {
        self.loaded.read().unwrap().get(sha256).cloned()
    }

    /// Waits up to `within` for an instance of `plugin` made ahead (only
    /// an interpreter's is: `prepared.rs`); whether one is ready.
    pub fn wait_prepared(&self, plugin: &Plugin, within: Duration) -> bool {
        self.preparer.wait(plugin, within)
    }

    /// How often evaluations found an instance made ahead, and not.
    pub fn prepared_counts(&self) -> PreparedCounts {
        self.preparer.counts()
    }
}

/// Pool slots beyond `max_instances`, for loading plugins (`describe`):
/// evaluations hold at most `max_instances` (see `capacity`) and prepared
/// instances at most `prepared_plugins`, so a load never finds the pool full
/// of them.
const LOAD_SLOTS: u32 = 4;

fn engine_config(config: &SandboxConfig) -> Config {
    let instances = config.max_instances.max(1) + LOAD_SLOTS + config.prepared_plugins;
    // The pool is shared by every plugin, so its slots must fit the widest
    // limits any plugin may get; each store then holds its own plugin to
    // its own limits (`MemoryLimiter`).
    let base = &config.limits;
    let interpreter = config.interpreter_limits.over(base);
    let own = config
        .plugin_limits
        .values()
        .flat_map(|o| [o.over(base), o.over(&interpreter)]);
    let widest = interpreter::widest(
        &[base.clone(), interpreter.clone()]
            .into_iter()
            .chain(own)
            .collect::<Vec<_>>(),
    );
    let mut pool = PoolingAllocationConfig::default();
    // A Rust component is one main module plus a few small shim modules, so
    // reserve several core instances and tables per component instance.
    pool.total_component_instances(instances)
        .total_core_instances(instances * widest.core_instances.max(8))
        .total_memories(instances * 2)
        .total_tables(instances * 8)
        .max_memories_per_component(4)
        .max_tables_per_component(8)
        .max_memory_size(widest.memory_bytes)
        .max_core_instances_per_component(widest.core_instances)
        .table_keep_resident(64 << 10);
    let (pagemap, keep_resident) =
        memory_reset(config, PoolingAllocationConfig::is_pagemap_scan_available());
    // Keeping the initial pages of a slot resident between instances is
    // what removes the page faults from a fresh instance (DESIGN.md).
    pool.pagemap_scan(pagemap)
        .linear_memory_keep_resident(keep_resident);

    let mut cfg = Config::new();
    cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        // wasmtime's default, stated because Python plugins depend on it: a
        // module whose data segments all sit at constant offsets in a memory
        // it defines (componentize-py's interpreter snapshot, 11 MB in 12.6
        // MiB) gets its initial memory mapped copy-on-write into each pool
        // slot instead of copied in at every instantiation.
        .memory_init_cow(true)
        .consume_fuel(true)
        .epoch_interruption(true)
        .max_wasm_stack(512 << 10);
    cfg
}

/// How a linear-memory slot is reset when its instance ends: by copying
/// the first `keep_resident_bytes` of it back from its initial image and
/// unmapping the rest, or, where configured and the kernel has it, with
/// its page scan (only written pages are copied back, up to
/// `pagemap_keep_resident_bytes`, and only-read pages stay mapped).
///
/// The copy is the default: it resets a Python plugin's whole 12.6 MiB
/// snapshot at every evaluation, but then its next instance takes no page
/// fault at all, where the scan leaves 220 (it stops after 32 disjoint
/// written regions and unmaps everything past them). On these virtual
/// machines such a fault costs 2 to 4 us, more than copying its page back.
/// Measured with prepared instances (release, six alternating pairs of
/// runs of one bench binary): the Python db-export's evaluation p50 0.24
/// to 0.36 ms with the copy against 0.88 to 1.16 ms with the scan, CPU per
/// action 17% lower to 20% higher, the Rust db-export's p50 alike.
/// (The scan had replaced a 2 MiB copy: 2.76 against 3.33 ms then.)
fn memory_reset(config: &SandboxConfig, scan_available: bool) -> (Enabled, usize) {
    if scan_available && config.pagemap_keep_resident_bytes > 0 {
        let keep = config
            .pagemap_keep_resident_bytes
            .max(config.keep_resident_bytes);
        (Enabled::Yes, keep)
    } else {
        (Enabled::No, config.keep_resident_bytes)
    }
}

/// Advances the engine's epoch every tick until the engine is dropped.
fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("sandbox-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch ticker");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_reset_by_copy_unless_the_scan_is_asked_for() {
        let config = SandboxConfig::default();
        assert_eq!(
            memory_reset(&config, true),
            (Enabled::No, 16 << 20),
            "by default 16 MiB, a Python snapshot, are copied back"
        );
        assert_eq!(memory_reset(&config, false), (Enabled::No, 16 << 20));
        let scan = SandboxConfig {
            keep_resident_bytes: 2 << 20,
            pagemap_keep_resident_bytes: 16 << 20,
            ..SandboxConfig::default()
        };
        assert_eq!(
            memory_reset(&scan, true),
            (Enabled::Yes, 16 << 20),
            "with the scan, written pages up to 16 MiB are copied back"
        );
        assert_eq!(
            memory_reset(&scan, false),
            (Enabled::No, 2 << 20),
            "without the kernel's scan, the plain copy"
        );
    }
}
