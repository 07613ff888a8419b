//! Allocates until something stops it: the memory cap must.

use actiongate_sdk::*;

struct P;

impl Policy for P {
    fn describe() -> PluginInfo {
        PluginInfo::new("memory-bomb", "0.0.1", &["test.*"])
    }
    fn route(_: &Action, _: &Classification) -> Result<Route, String> {
        Ok(Route::Allow)
    }
    fn classify(action: &Action) -> Result<Classification, String> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![action.id.len() as u8; 1 << 20]);
            std::hint::black_box(&hoard);
        }
    }
}

export_policy!(P);
