//! Never returns: the fuel limit must stop it.

use actiongate_sdk::*;

struct P;

impl Policy for P {
    fn describe() -> PluginInfo {
        PluginInfo::new("infinite-loop", "0.0.1", &["test.*"])
    }
    fn route(_: &Action, _: &Classification) -> Result<Route, String> {
        Ok(Route::Allow)
    }
    fn classify(action: &Action) -> Result<Classification, String> {
        let mut n: u64 = action.id.len() as u64;
        loop {
            n = std::hint::black_box(n.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

export_policy!(P);
