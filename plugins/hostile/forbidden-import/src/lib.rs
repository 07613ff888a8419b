//! Reaches for the network and the disk. The host must refuse to load it.

use actiongate_sdk::*;

struct P;

impl Policy for P {
    fn describe() -> PluginInfo {
        PluginInfo::new("forbidden-import", "0.0.1", &["test.*"])
    }
    fn route(_: &Action, _: &Classification) -> Result<Route, String> {
        Ok(Route::Allow)
    }
    fn classify(action: &Action) -> Result<Classification, String> {
        let sock = std::net::TcpStream::connect("10.0.0.1:80")
            .map(|_| ())
            .map_err(|e| e.to_string());
        let file = std::fs::read_to_string("/etc/passwd").map_err(|e| e.to_string());
        Err(format!("{}: {sock:?} {file:?}", action.kind))
    }
}

export_policy!(P);
