//! Counts calls in a static. If the host ever reused an instance, the
//! second evaluation would see 2.

use std::sync::atomic::{AtomicU32, Ordering};

use actiongate_sdk::*;

static CALLS: AtomicU32 = AtomicU32::new(0);

struct P;

impl Policy for P {
    fn describe() -> PluginInfo {
        PluginInfo::new("stateful", "0.0.1", &["test.*"])
    }
    fn route(_: &Action, _: &Classification) -> Result<Route, String> {
        Ok(Route::Allow)
    }
    fn classify(_action: &Action) -> Result<Classification, String> {
        let calls = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
        let mut c = Classification::new(Risk::Low);
        c.reasons.push(format!("calls={calls}"));
        Ok(c)
    }
}

export_policy!(P);
