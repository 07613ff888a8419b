//! Waits for a second to pass the way an event loop would: polling the
//! monotonic clock with a zero timeout, and a 1 ms timeout beside stdout
//! (always ready). Every poll must return at once; on the frozen clock the
//! second never passes, so fuel or the deadline must end the loop.

use actiongate_sdk::*;
use wasip2::clocks::monotonic_clock;

struct P;

impl Policy for P {
    fn describe() -> PluginInfo {
        PluginInfo::new("poll-loop", "0.0.1", &["test.*"])
    }
    fn route(_: &Action, _: &Classification) -> Result<Route, String> {
        Ok(Route::Allow)
    }
    fn classify(_: &Action) -> Result<Classification, String> {
        let start = monotonic_clock::now();
        let stdout = wasip2::cli::stdout::get_stdout();
        while monotonic_clock::now() - start < 1_000_000_000 {
            let now = monotonic_clock::subscribe_duration(0);
            wasip2::io::poll::poll(&[&now]);
            let later = monotonic_clock::subscribe_duration(1_000_000);
            let writable = stdout.subscribe();
            wasip2::io::poll::poll(&[&later, &writable]);
        }
        Ok(Classification::new(Risk::Low))
    }
}

export_policy!(P);
