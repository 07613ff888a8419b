//! Writes 64 KiB to stdout and to stderr, again and again. The sandbox's
//! output streams are sinks that never block or fill: fuel or the deadline
//! must end the loop.

use actiongate_sdk::*;

struct P;

impl Policy for P {
    fn describe() -> PluginInfo {
        PluginInfo::new("output-flood", "0.0.1", &["test.*"])
    }
    fn route(_: &Action, _: &Classification) -> Result<Route, String> {
        Ok(Route::Allow)
    }
    fn classify(action: &Action) -> Result<Classification, String> {
        let chunk = action.kind.repeat((64 << 10) / action.kind.len().max(1));
        loop {
            print!("{chunk}");
            eprint!("{chunk}");
        }
    }
}

export_policy!(P);
