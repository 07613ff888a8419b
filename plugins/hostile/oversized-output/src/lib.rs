//! Returns 1 MiB of reasons: the output cap must refuse it.

use actiongate_sdk::*;

struct P;

impl Policy for P {
    fn describe() -> PluginInfo {
        PluginInfo::new("oversized-output", "0.0.1", &["test.*"])
    }
    fn route(_: &Action, _: &Classification) -> Result<Route, String> {
        Ok(Route::Allow)
    }
    fn classify(action: &Action) -> Result<Classification, String> {
        let mut c = Classification::new(Risk::Low);
        for _ in 0..4 {
            c.reasons.push("x".repeat(256 << 10) + &action.kind);
        }
        Ok(c)
    }
}

export_policy!(P);
