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
    plugin: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.capacity.release(&self.plugin);
    }
}

pub(super) struct Capacity {
    total: u32,
    share: u32,
    wait: Duration,
    held: Mutex<Held>,
    freed: Condvar,
}

#[derive(Default)]
struct Held {
    total: u32,
    by_plugin: HashMap<String, u32>,
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
            freed: Condvar::new(),
        })
    }

    /// A slot for `plugin` if one is free now.
    pub(super) fn try_acquire(self: &Arc<Self>, plugin: &str) -> Option<Slot> {
        let mut held = self.held.lock().unwrap();
        self.take(&mut held, plugin)
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
            held = self.freed.wait_timeout(held, deadline - now).unwrap().0;
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
        let mine = held.by_plugin.get(plugin).copied().unwrap_or(0);
        if held.total >= self.total || mine >= self.share {
            return None;
        }
        held.total += 1;
        *held.by_plugin.entry(plugin.to_string()).or_insert(0) += 1;
        Some(Slot {
            capacity: self.clone(),
            plugin: plugin.to_string(),
        })
    }

    fn release(&self, plugin: &str) {
        let mut held = self.held.lock().unwrap();
        held.total -= 1;
        if let Some(mine) = held.by_plugin.get_mut(plugin) {
            *mine -= 1;
            if *mine == 0 {
                held.by_plugin.remove(plugin);
            }
        }
        drop(held);
        // Waiters wait for different plugins' shares: wake them all to look.
        self.freed.notify_all();
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
        drop(a1);
        assert!(
            capacity.acquire("c").is_ok(),
            "a freed slot goes to the next"
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
