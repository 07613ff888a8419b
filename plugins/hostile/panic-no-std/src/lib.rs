//! Panics in a `#![no_std]` plugin: the SDK's panic handler must get the
//! message to the host as std's hook does for the `panic` fixture.

#![no_std]

use actiongate_sdk::prelude::*;

struct P;

impl Policy for P {
    fn describe() -> PluginInfo {
        PluginInfo::new("panic-no-std", "0.0.1", &["test.*"])
    }
    fn route(_: &Action, _: &Classification) -> Result<Route, String> {
        Ok(Route::Allow)
    }
    fn classify(action: &Action) -> Result<Classification, String> {
        panic!("policy bug: cannot classify {}", action.kind)
    }
}

export_policy!(P, no_std);
