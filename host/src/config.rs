//! Configuration: one TOML file (examples/actiongate.toml shows every
//! option), then environment overrides. Read once at start; never written.

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

use crate::sandbox::SandboxConfig;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Plugin sandbox limits and cache.
    pub sandbox: SandboxConfig,
}

impl Config {
    /// Reads `path` (or the defaults when `None`), then applies environment overrides.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config {}", path.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("parsing config {}", path.display()))?
            }
            None => Config::default(),
        };
        Ok(config)
    }
}
