//! Reports what the environment shows it, as reasons. The host must make
//! it the same on every run for the same action: no env, the clock at
//! requested-at, random seeded from the action id.

use actiongate_sdk::*;

struct P;

impl Policy for P {
    fn describe() -> PluginInfo {
        PluginInfo::new("ambient", "0.0.1", &["test.*"])
    }
    fn route(_: &Action, _: &Classification) -> Result<Route, String> {
        Ok(Route::Allow)
    }
    fn classify(action: &Action) -> Result<Classification, String> {
        use std::hash::{BuildHasher, Hasher};
        let env: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
        let args: Vec<String> = std::env::args().collect();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write(action.kind.as_bytes());
        let mut c = Classification::new(Risk::Low);
        c.reasons = vec![
            format!("env={}", env.join(",")),
            format!("args={}", args.join(",")),
            format!("now_ms={now}"),
            format!("random={:016x}", hasher.finish()),
        ];
        Ok(c)
    }
}

export_policy!(P);
