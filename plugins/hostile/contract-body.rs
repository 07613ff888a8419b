// The body both contract-version fixtures share; each crate includes it
// with its own `wit/` (the only difference between them).
wit_bindgen::generate!({ path: "wit", world: "policy" });

use actiongate::policy::types::Risk;

struct P;

impl Guest for P {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: env!("CARGO_PKG_NAME").into(),
            version: "0.0.1".into(),
            kinds: vec!["test.*".into()],
        }
    }
    fn classify(_: Action) -> Result<Classification, String> {
        Ok(Classification {
            risk: Risk::Low,
            reasons: Vec::new(),
            tags: Vec::new(),
        })
    }
    fn route(_: Action, _: Classification) -> Result<Route, String> {
        Ok(Route::Allow)
    }
}

export!(P);
