//! The command line: one subcommand per file, each thin over the library.
//! Exit codes: 0 success, 1 a check failed (a case, a verification), 2 an
//! error that stopped the command.

mod plugin;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "actiongate",
    version,
    about = "Human approval in front of AI agents' privileged actions"
)]
pub struct Cli {
    /// TOML config file (see examples/actiongate.toml). Environment
    /// variables (ACTIONGATE_*, DATABASE_URL) override it.
    #[arg(long, global = true, env = "ACTIONGATE_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work with policy plugins: inspect, test.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = crate::config::Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Plugin(cmd) => plugin::run(cmd, &config),
    }
}

/// Logs go to stderr as text, filtered by RUST_LOG (default `info`).
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
