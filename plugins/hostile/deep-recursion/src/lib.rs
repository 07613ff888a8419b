#![allow(unconditional_recursion)]
//! Recurses without bound: the guest stack must overflow into a trap.

use actiongate_sdk::*;

struct P;

impl Policy for P {
    fn describe() -> PluginInfo {
        PluginInfo::new("deep-recursion", "0.0.1", &["test.*"])
    }
    fn route(_: &Action, _: &Classification) -> Result<Route, String> {
        Ok(Route::Allow)
    }
    fn classify(action: &Action) -> Result<Classification, String> {
        let depth = descend(action.id.len() as u64, 0);
        Err(format!("unreachable: {depth}"))
    }
}

export_policy!(P);

#[inline(never)]
fn descend(seed: u64, depth: u64) -> u64 {
    let frame = std::hint::black_box([seed; 32]);
    descend(frame[(depth % 32) as usize].wrapping_add(1), depth + 1) + frame[0]
}
