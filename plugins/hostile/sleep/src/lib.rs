//! Sleeps 10 s, then allows. The sandbox's clock is frozen, so the sleep
//! can never end: it must be refused at once, not wait in real time.

use actiongate_sdk::*;

struct P;

impl Policy for P {
    fn describe() -> PluginInfo {
        PluginInfo::new("sleep", "0.0.1", &["test.*"])
    }
    fn route(_: &Action, _: &Classification) -> Result<Route, String> {
        Ok(Route::Allow)
    }
    fn classify(_: &Action) -> Result<Classification, String> {
        std::thread::sleep(std::time::Duration::from_secs(10));
        Ok(Classification::new(Risk::Low))
    }
}

export_policy!(P);
