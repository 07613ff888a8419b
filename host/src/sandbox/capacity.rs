//! Capacity: who holds the sandbox's instance slots, in all and per plugin.
//! Owns the slot counts; a full pool is the host's state, never a plugin's
//! verdict, so it must only ever surface as `Busy`, not as a failure.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// No slot came free in time: the host is busy. Nothing was decided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the sandbox is busy: no instance slot came free for plugin {plugin} within {waited_ms} ms (one plugin may hold {share} of the {total} slots)")]
pub struct Busy {
    pub plugin: String,
    pub waited_ms: u64,
    pub share: u32,
    pub total: u32,
}

/// The right to run one instance of one plugin; given back when dropped.
pub struct Slot {
    capacity: Arc<Capacity>,
    /// The plugin whose share it counts against (none for a quick slot).
    plugin: Option<String>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.capacity.release(self.plugin.as_deref());
    }
}

pub(super) struct Capacity {
    total: u32,
    share: u32,
    wait: Duration,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    total: u32,
    by_plugin: HashMap<String, PluginHeld>,
}

/// One plugin's slots and the callers waiting for one. Each plugin has its
/// own condvar: a freed slot wakes one of that plugin's waiters, not the
/// whole crowd of a flood (50 threads woken per slot, all taking the lock
/// the async workers' quick evaluations take too).
#[derive(Default)]
struct PluginHeld {
    held: u32,
    waiting: u32,
    freed: Arc<Condvar>,
}

impl Capacity {
    /// `total` slots, at most `share` of them for one plugin; a caller
    /// waits at most `wait` for one.
    pub(super) fn new(total: u32, share: u32, wait: Duration) -> Arc<Self> {
        let total = total.max(1);
        Arc::new(Capacity {
            total,
            share: share.clamp(1, total),
            wait,
            held: Mutex::new(Held::default()),
        })
    }

    /// A slot for `plugin` if one is free now.
    pub(super) fn try_acquire(self: &Arc<Self>, plugin: &str) -> Option<Slot> {
        let mut held = self.held.lock().unwrap();
        self.take(&mut held, plugin)
    }

    /// A slot for a quick evaluation of `plugin` on an async worker, if the
    /// pool has one free now. It does not count against the plugin's share
    /// (quick ones are bounded by the workers' count and a small fuel and
    /// memory slice), but a plugin whose share is full of slow evaluations
    /// (a flooded one) gets none: its quick tries would only take the
    /// workers' time before waiting for the share anyway.
    pub(super) fn try_acquire_quick(self: &Arc<Self>, plugin: &str) -> Option<Slot> {
        let held = &mut *self.held.lock().unwrap();
        if held.total >= self.total || held.of(plugin) >= self.share {
            return None;
        }
        held.total += 1;
        Some(Slot {
            capacity: self.clone(),
            plugin: None,
        })
    }

    /// A slot for `plugin`, waiting up to the configured time for one.
    pub(super) fn acquire(self: &Arc<Self>, plugin: &str) -> Result<Slot, Busy> {
        let started = Instant::now();
        let deadline = started + self.wait;
        let mut held = self.held.lock().unwrap();
        loop {
            if let Some(slot) = self.take(&mut held, plugin) {
                return Ok(slot);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(self.busy(plugin, now - started));
            }
            let entry = held.by_plugin.entry(plugin.to_string()).or_default();
            entry.waiting += 1;
            let freed = entry.freed.clone();
            held = freed.wait_timeout(held, deadline - now).unwrap().0;
            let entry = held
                .by_plugin
                .get_mut(plugin)
                .expect("kept while waited for");
            entry.waiting -= 1;
            if entry.held == 0 && entry.waiting == 0 {
                held.by_plugin.remove(plugin);
            }
        }
    }

    pub(super) fn busy(&self, plugin: &str, waited: Duration) -> Busy {
        Busy {
            plugin: plugin.to_string(),
            waited_ms: waited.as_millis() as u64,
            share: self.share,
            total: self.total,
        }
    }

    fn take(self: &Arc<Self>, held: &mut Held, plugin: &str) -> Option<Slot> {
        if held.total >= self.total || held.of(plugin) >= self.share {
            return None;
        }
        held.total += 1;
        held.by_plugin.entry(plugin.to_string()).or_default().held += 1;
        Some(Slot {
            capacity: self.clone(),
            plugin: Some(plugin.to_string()),
        })
    }

    fn release(&self, plugin: Option<&str>) {
        let mut held = self.held.lock().unwrap();
        let pool_was_full = held.total == self.total;
        held.total -= 1;
        if let Some(plugin) = plugin {
            if let Some(entry) = held.by_plugin.get_mut(plugin) {
                entry.held -= 1;
                if entry.waiting > 0 {
                    entry.freed.notify_one();
                } else if entry.held == 0 {
                    held.by_plugin.remove(plugin);
                }
            }
        }
        if pool_was_full {
            // Others may have waited for the pool rather than their share.
            for entry in held.by_plugin.values().filter(|e| e.waiting > 0) {
                entry.freed.notify_one();
            }
        }
    }
}

impl Held {
    fn of(&self, plugin: &str) -> u32 {
        self.by_plugin.get(plugin).map_or(0, |e| e.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_plugin_holds_at_most_its_share_and_others_still_get_slots() {
        let capacity = Capacity::new(3, 2, Duration::from_millis(20));
        let a1 = capacity.try_acquire("a").unwrap();
        let _a2 = capacity.try_acquire("a").unwrap();
        assert!(capacity.try_acquire("a").is_none(), "a holds its share");
        let started = Instant::now();
        let busy = capacity.acquire("a").err().expect("a waits, then is busy");
        assert!(started.elapsed() >= Duration::from_millis(20));
        assert_eq!((busy.plugin.as_str(), busy.share, busy.total), ("a", 2, 3));
        let _b = capacity.try_acquire("b").expect("b has its own share");
        assert!(capacity.try_acquire("c").is_none(), "the pool is full");
        assert!(
            capacity.try_acquire_quick("d").is_none(),
            "full for quick ones too"
        );
        drop(a1);
        assert!(
            capacity.acquire("c").is_ok(),
            "a freed slot goes to the next"
        );
    }

    #[test]
    fn quick_slots_count_against_the_pool_not_a_share() {
        let capacity = Capacity::new(4, 2, Duration::from_millis(1));
        let _a = capacity.try_acquire("a").unwrap();
        let quick = capacity.try_acquire_quick("a").expect("outside a's share");
        let _a2 = capacity.try_acquire("a").expect("a's share is still two");
        assert!(
            capacity.try_acquire_quick("a").is_none(),
            "a's share is full"
        );
        drop(quick);
        let _b = capacity.try_acquire("b").unwrap();
        let _q = capacity.try_acquire_quick("b").unwrap();
        assert!(
            capacity.try_acquire_quick("c").is_none(),
            "the pool is full"
        );
    }

    #[test]
    fn a_waiter_gets_the_slot_freed_while_it_waits() {
        let capacity = Capacity::new(1, 1, Duration::from_secs(5));
        let held = capacity.try_acquire("a").unwrap();
        let waiter = {
            let capacity = capacity.clone();
            std::thread::spawn(move || capacity.acquire("a").map(|_| ()))
        };
        std::thread::sleep(Duration::from_millis(20));
        drop(held);
        assert_eq!(waiter.join().unwrap(), Ok(()));
    }
}
