//! cli: argument parsing and one file per subcommand. Thin: every command
//! calls into the library and maps the outcome to an exit code.

pub mod audit;
pub mod log;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

use crate::evidence::EvidenceConfig;

/// Used when DATABASE_URL is unset: the embedded store.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/actiongate.db";

#[derive(Debug, Parser)]
#[command(
    name = "actiongate",
    version,
    about = "Human approval in front of AI agents' privileged actions"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalOpts {
    /// Configuration file (TOML).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Postgres or SQLite URL; SQLite at ./data/actiongate.db when unset.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The evidence log.
    #[command(subcommand)]
    Log(log::LogCommand),
    /// Checks for auditors.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
}

/// The parts of the config file these commands read; other sections are ignored.
#[derive(Debug, Default, Deserialize)]
struct FileConfig {
    #[serde(default)]
    database_url: Option<String>,
    #[serde(default)]
    evidence: Option<EvidenceConfig>,
}

/// Errors before a command gets to run (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("config file {path}: {message}")]
    Config { path: String, message: String },
}

impl GlobalOpts {
    fn file(&self) -> Result<FileConfig, CliError> {
        let Some(path) = &self.config else {
            return Ok(FileConfig::default());
        };
        let err = |message: String| CliError::Config {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        toml::from_str(&text).map_err(|e| err(e.to_string()))
    }

    /// Flag or env, then the config file, then the embedded default.
    pub fn database_url(&self) -> Result<String, CliError> {
        if let Some(u) = &self.database_url {
            return Ok(u.clone());
        }
        Ok(self
            .file()?
            .database_url
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()))
    }

    /// `[evidence]` from the config file; env `ACTIONGATE_LOG_KEY` overrides the key path.
    pub fn evidence_config(&self) -> Result<EvidenceConfig, CliError> {
        let mut cfg = self.file()?.evidence.unwrap_or_default();
        if let Some(p) = std::env::var_os("ACTIONGATE_LOG_KEY") {
            cfg.key_path = PathBuf::from(p);
        }
        Ok(cfg)
    }
}

/// Runs a parsed command, writing its output to `out`; returns the exit code.
pub async fn run(cli: Cli, out: &mut (dyn std::io::Write + Send)) -> u8 {
    match cli.command {
        Command::Log(c) => log::run(c, &cli.global, out).await,
        Command::Audit(c) => audit::run(c, &cli.global, out).await,
    }
}

/// Entry point for the binary.
pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("actiongate: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let mut stdout = std::io::stdout();
    ExitCode::from(rt.block_on(run(cli, &mut stdout)))
}
