//! The example policy plugins, built by host/build.rs from plugins/examples
//! and embedded, so `actiongate serve` binds them with no setup.

/// One built example plugin.
pub struct Example {
    pub name: &'static str,
    /// The component bytes.
    pub wasm: &'static [u8],
    /// Its case file (plugins/examples/NAME/cases.toml).
    pub cases: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/examples.rs"));

/// The example plugin called `name`.
pub fn example(name: &str) -> Option<&'static Example> {
    EXAMPLES.iter().find(|e| e.name == name)
}
