//! Configuration: one TOML file (examples/actiongate.toml shows and explains
//! every option; it is also the built-in default), then environment
//! overrides. Read once at start; never written. Only composes: each
//! section's type belongs to the module that uses it.

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

pub use crate::bindings::{BindingConfig, FourEyesConfig};
use crate::chat::slack::SlackConfig;
use crate::chat::teams::TeamsConfig;
pub use crate::directory::DirectoryConfig;
use crate::evaluate::FailClosed;
use crate::evidence::EvidenceConfig;
pub use crate::grant::GrantConfig;
pub use crate::notify::NotifyConfig;
pub use crate::registry::PluginsConfig;
use crate::sandbox::SandboxConfig;

/// The default configuration: the example file, embedded.
pub const EXAMPLE_CONFIG: &str = include_str!("../../examples/actiongate.toml");

/// Used when no database is configured: the embedded store.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/actiongate.db";

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address `serve` listens on. Env: ACTIONGATE_LISTEN.
    pub listen: SocketAddr,
    /// `postgres://…` or `sqlite://…`. Env: DATABASE_URL.
    pub database_url: Option<String>,
    /// Mint a demo agent key at start and print it (the embedded default does).
    pub demo: bool,
    pub grants: GrantConfig,
    pub evidence: EvidenceConfig,
    pub sandbox: SandboxConfig,
    /// What a failing or missing plugin turns into.
    pub fail_closed: FailClosed,
    /// Which plugin decides which action kinds (seeded into the bindings store).
    pub bindings: Vec<BindingConfig>,
    /// Plugin registration and binding changes.
    pub plugins: PluginsConfig,
    /// The people who may approve, and their groups.
    pub directory: DirectoryConfig,
    /// Where held actions are announced.
    pub notify: NotifyConfig,
    /// How often expiries, reminders and escalations are checked.
    pub sweep_interval_ms: u64,
    /// Approvals in Microsoft Teams (a Bot Framework bot); off when absent.
    pub teams: Option<TeamsConfig>,
    /// Approvals in Slack (`[slack]`); off when absent.
    pub slack: Option<SlackConfig>,
    /// The approver web inbox with OIDC sign-in (`[inbox]`); off when absent.
    pub inbox: Option<crate::inbox::InboxConfig>,
    /// What approvers are shown: the one redaction rule set (`[approvals]`).
    pub approvals: crate::approvals::ApprovalsConfig,
    /// Passkey step-up for the riskiest approvals (`[step_up]`); off when absent.
    pub step_up: Option<crate::stepup::StepUpConfig>,
    /// The MCP gateway (`[mcp]`, `[[mcp.upstreams]]`); off without upstreams.
    pub mcp: crate::mcp::McpConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: ([127, 0, 0, 1], 8080).into(),
            database_url: None,
            demo: false,
            grants: GrantConfig::default(),
            evidence: EvidenceConfig::default(),
            sandbox: SandboxConfig::default(),
            fail_closed: FailClosed::default(),
            bindings: Vec::new(),
            plugins: PluginsConfig::default(),
            directory: DirectoryConfig::default(),
            notify: NotifyConfig::default(),
            sweep_interval_ms: 1000,
            teams: None,
            slack: None,
            inbox: None,
            approvals: crate::approvals::ApprovalsConfig::default(),
            step_up: None,
            mcp: Default::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {message}")]
    File { path: String, message: String },
    #[error("environment variable {name}: {message}")]
    Env { name: &'static str, message: String },
}

impl Config {
    /// Reads `path` (the embedded example when `None`), then applies
    /// environment overrides.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config: Config = match path {
            Some(path) => {
                let err = |message: String| ConfigError::File {
                    path: path.display().to_string(),
                    message,
                };
                let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
                toml::from_str(&text).map_err(|e| err(e.to_string()))?
            }
            None => toml::from_str(EXAMPLE_CONFIG).map_err(|e| ConfigError::File {
                path: "examples/actiongate.toml (built in)".into(),
                message: e.to_string(),
            })?,
        };
        if let Ok(listen) = std::env::var("ACTIONGATE_LISTEN") {
            config.listen =
                listen
                    .parse()
                    .map_err(|e: std::net::AddrParseError| ConfigError::Env {
                        name: "ACTIONGATE_LISTEN",
                        message: e.to_string(),
                    })?;
        }
        if let Ok(url) = std::env::var("DATABASE_URL") {
            config.database_url = Some(url);
        }
        if let Some(key) = std::env::var_os("ACTIONGATE_GRANT_KEY") {
            config.grants.key_path = key.into();
        }
        if let Some(key) = std::env::var_os("ACTIONGATE_LOG_KEY") {
            config.evidence.key_path = key.into();
        }
        Ok(config)
    }

    pub fn database_url(&self) -> &str {
        self.database_url.as_deref().unwrap_or(DEFAULT_DATABASE_URL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_parses_and_binds_every_example() {
        let config: Config = toml::from_str(EXAMPLE_CONFIG).unwrap();
        for name in ["db-export", "iam-change", "prod-ops", "baseline"] {
            assert!(
                config
                    .bindings
                    .iter()
                    .any(|b| b.plugin.as_deref() == Some(name)),
                "{name} is bound"
            );
        }
        assert!(
            config.bindings.iter().any(|b| b.kind == "*"),
            "a catch-all exists"
        );
    }

    #[test]
    fn unknown_options_are_refused() {
        assert!(toml::from_str::<Config>("lisen = \"127.0.0.1:1\"").is_err());
    }
}
