//! Prepared instances, for plugins whose instantiation is most of an
//! evaluation (an interpreter's: CPython's runtime makes about 40 core
//! instances and fills a table of thousands of functions). A thread of the
//! sandbox's own prepares one instance of each such plugin ahead of its
//! next action, and drops the finished ones, so neither cost sits between
//! an action and its decision. It must keep every instance fresh: a
//! prepared instance serves exactly one evaluation, and has run nothing
//! that saw anything of an action. Its WASI context is built only at the
//! guest's first WASI call, after the action's world is set; an
//! instantiation that made such a call is not kept, and its plugin is not
//! prepared for again.
//!
//! What it costs: the same instantiation per evaluation, made earlier on
//! another core (measured, somewhat more CPU per action, not less: the
//! README's Performance), plus one idle pool slot per prepared plugin,
//! reserved beyond `max_instances` so that evaluations never wait for one.
//! When every slot is taken, an instance that has waited `idle` for its
//! plugin's next action (one unbound since) gives its slot to a plugin
//! that asks for one (just loaded, or its action found none); a fresher
//! one keeps it, so plugins in use do not take turns evicting each other.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use wasmtime::component::Instance;
use wasmtime::{Engine, Store};

use super::{GuestState, Plugin, Slot};

/// An instance made ahead of its action, with the store it lives in.
pub(super) struct Prepared {
    pub store: Store<GuestState>,
    pub instance: Instance,
    /// Since when it has waited for its plugin's next action.
    made_at: Instant,
}

/// The plugins loaded into the sandbox, by sha256 (shared with the thread).
pub(super) type Loaded = Arc<RwLock<HashMap<String, Arc<Plugin>>>>;

/// How a store for `plugin` is made, before the action is known.
pub(super) type NewStore = fn(&Engine, &Plugin) -> Store<GuestState>;

pub(super) struct Preparer {
    jobs: Sender<Job>,
    shared: Arc<Shared>,
}

struct Shared {
    /// Plugins with an instance prepared at once, at most (each holds a
    /// pool slot).
    limit: usize,
    /// How long an instance waits before another plugin may take its slot.
    idle: Duration,
    ready: Mutex<Ready>,
    made: Condvar,
    taken: AtomicU64,
    missed: AtomicU64,
}

#[derive(Default)]
struct Ready {
    by_plugin: HashMap<String, Prepared>,
    /// Plugins whose instantiation cannot be made ahead (it failed, or ran
    /// WASI): they take the usual path.
    cold: HashSet<String>,
}

enum Job {
    /// Make an instance of this plugin if it has none ready.
    Prepare(String),
    /// Drop an evaluation's store, then give its slot back, then prepare.
    Retire {
        store: Store<GuestState>,
        slot: Slot,
        plugin: String,
    },
}

/// How many prepared instances evaluations took, and how many found none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PreparedCounts {
    pub taken: u64,
    pub missed: u64,
}

impl Preparer {
    /// Starts the thread (when `limit` > 0); it ends with the sandbox.
    pub(super) fn new(
        engine: Engine,
        loaded: Loaded,
        new_store: NewStore,
        limit: u32,
        idle: Duration,
    ) -> Self {
        let (jobs, queue) = mpsc::channel();
        let shared = Arc::new(Shared {
            limit: limit as usize,
            idle,
            ready: Mutex::new(Ready::default()),
            made: Condvar::new(),
            taken: AtomicU64::new(0),
            missed: AtomicU64::new(0),
        });
        if limit > 0 {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("sandbox-prepare".into())
                .spawn(move || work(&engine, &loaded, new_store, &shared, queue))
                .expect("spawning the sandbox's prepare thread");
        }
        Preparer { jobs, shared }
    }

    /// Whether evaluations of `plugin` use prepared instances.
    pub(super) fn prepares(&self, plugin: &Plugin) -> bool {
        self.shared.limit > 0 && plugin.interpreter.is_some()
    }

    /// Asks for an instance of a newly loaded plugin.
    pub(super) fn loaded(&self, plugin: &Plugin) {
        if self.prepares(plugin) {
            let _ = self.jobs.send(Job::Prepare(plugin.sha256.clone()));
        }
    }

    /// The prepared instance of `plugin`, if one is ready; it is this caller's
    /// alone from now on.
    pub(super) fn take(&self, plugin: &Plugin) -> Option<Prepared> {
        if !self.prepares(plugin) {
            return None;
        }
        let prepared = self
            .shared
            .ready
            .lock()
            .unwrap()
            .by_plugin
            .remove(&plugin.sha256);
        let counter = match prepared {
            Some(_) => &self.shared.taken,
            None => &self.shared.missed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        prepared
    }

    /// Ends an evaluation of `plugin`: its store is dropped (and its pool
    /// slot reset) on the thread when `plugin` is prepared for, here otherwise,
    /// and only then is `slot` given back.
    pub(super) fn retire(&self, store: Store<GuestState>, slot: Slot, plugin: &Plugin) {
        if !self.prepares(plugin) {
            drop(store);
            return drop(slot);
        }
        let job = Job::Retire {
            store,
            slot,
            plugin: plugin.sha256.clone(),
        };
        // Should the thread be gone, the job comes back and drops here.
        let _ = self.jobs.send(job);
    }

    /// Waits up to `within` for a prepared instance of `plugin`.
    pub(super) fn wait(&self, plugin: &Plugin, within: Duration) -> bool {
        if !self.prepares(plugin) {
            return false;
        }
        let ready = self.shared.ready.lock().unwrap();
        let (ready, _) = self
            .shared
            .made
            .wait_timeout_while(ready, within, |r| {
                !r.by_plugin.contains_key(&plugin.sha256) && !r.cold.contains(&plugin.sha256)
            })
            .unwrap();
        ready.by_plugin.contains_key(&plugin.sha256)
    }

    pub(super) fn counts(&self) -> PreparedCounts {
        PreparedCounts {
            taken: self.shared.taken.load(Ordering::Relaxed),
            missed: self.shared.missed.load(Ordering::Relaxed),
        }
    }
}

/// The thread: retire every finished store first (their slots are what
/// waiting evaluations need), then prepare for the plugins asked for.
fn work(
    engine: &Engine,
    loaded: &Loaded,
    new_store: NewStore,
    shared: &Shared,
    queue: Receiver<Job>,
) {
    let mut wanted = BTreeSet::new();
    while let Ok(first) = queue.recv() {
        for job in std::iter::once(first).chain(queue.try_iter()) {
            match job {
                Job::Prepare(plugin) => wanted.insert(plugin),
                Job::Retire {
                    store,
                    slot,
                    plugin,
                } => {
                    drop(store);
                    drop(slot);
                    wanted.insert(plugin)
                }
            };
        }
        for sha256 in std::mem::take(&mut wanted) {
            let plugin = loaded.read().unwrap().get(&sha256).cloned();
            if let Some(plugin) = plugin {
                prepare(engine, new_store, shared, &plugin);
            }
        }
    }
}

fn prepare(engine: &Engine, new_store: NewStore, shared: &Shared, plugin: &Plugin) {
    let evicted = {
        let mut ready = shared.ready.lock().unwrap();
        if ready.by_plugin.contains_key(&plugin.sha256) || ready.cold.contains(&plugin.sha256) {
            return;
        }
        if ready.by_plugin.len() < shared.limit {
            None
        } else {
            // Full: the instance that has waited longest gives way, if it
            // has waited at least `idle`.
            let Some(stale) = ready
                .by_plugin
                .iter()
                .filter(|(_, p)| p.made_at.elapsed() >= shared.idle)
                .min_by_key(|(_, p)| p.made_at)
                .map(|(sha256, _)| sha256.clone())
            else {
                return;
            };
            ready.by_plugin.remove_entry(&stale)
        }
    };
    if let Some((stale, prepared)) = evicted {
        tracing::info!(
            stale = %stale,
            waited_s = prepared.made_at.elapsed().as_secs(),
            plugin = %plugin.sha256,
            "a prepared instance unused for long gives its pool slot to a plugin in use"
        );
        drop(prepared);
    }
    let mut store = new_store(engine, plugin);
    let made = plugin.pre.instance_pre().instantiate(&mut store);
    let mut ready = shared.ready.lock().unwrap();
    match made {
        Ok(instance) if store.data().wasi.is_none() => {
            ready.by_plugin.insert(
                plugin.sha256.clone(),
                Prepared {
                    store,
                    instance,
                    made_at: Instant::now(),
                },
            );
        }
        made => {
            tracing::warn!(
                sha256 = %plugin.sha256,
                error = made.err().map(|e| format!("{e:#}")),
                "no instance prepared ahead for this plugin: its instantiation failed or called WASI; its evaluations instantiate their own"
            );
            ready.cold.insert(plugin.sha256.clone());
        }
    }
    shared.made.notify_all();
}
