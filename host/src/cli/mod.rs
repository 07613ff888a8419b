//! cli: argument parsing and one file per subcommand. Thin: every command
//! calls into the library and maps the outcome to an exit code: 0 success,
//! 1 a check failed (a case, a verification), 2 an error stopped the command.

pub mod agent;
pub mod approvals;
pub mod audit;
pub mod bind;
pub mod history;
pub mod log;
pub mod plugin;
pub mod register;
pub mod remote;
pub mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, ConfigError};
use crate::evidence::EvidenceConfig;

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
    /// Configuration file (TOML); the built-in default is examples/actiongate.toml.
    #[arg(long, global = true, value_name = "FILE", env = "ACTIONGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Postgres or SQLite URL; SQLite at ./data/actiongate.db when unset.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Log lines on stderr: `text` (coloured only on a terminal) or `json`
    /// (one object a line, for log shippers).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "ACTIONGATE_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service.
    Serve(serve::ServeArgs),
    /// Policy plugins: inspect a component, run its case file, register, list.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Bind action kinds to a registered plugin (through the API, as you).
    Bind(bind::BindArgs),
    /// The bindings in force.
    #[command(subcommand)]
    Bindings(bind::BindingsCommand),
    /// Agents and their API keys.
    #[command(subcommand)]
    Agent(agent::AgentCommand),
    /// An API key for a person in the directory, to review through the API or CLI.
    #[command(subcommand)]
    Approver(approvals::ApproverCommand),
    /// Review pending actions through the API with your approver key.
    #[command(subcommand)]
    Approvals(approvals::ApprovalsCommand),
    /// An API key for an auditor (reads the evidence log over HTTP).
    #[command(subcommand)]
    Auditor(agent::AuditorCommand),
    /// The evidence log.
    #[command(subcommand)]
    Log(log::LogCommand),
    /// Checks for auditors.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
}

impl GlobalOpts {
    /// The config file (or the built-in default), then env, then flags.
    pub fn config(&self) -> Result<Config, ConfigError> {
        let mut config = Config::load(self.config.as_deref())?;
        if let Some(url) = &self.database_url {
            config.database_url = Some(url.clone());
        }
        Ok(config)
    }

    pub fn database_url(&self) -> Result<String, ConfigError> {
        Ok(self.config()?.database_url().to_owned())
    }

    pub fn evidence_config(&self) -> Result<EvidenceConfig, ConfigError> {
        Ok(self.config()?.evidence)
    }
}

/// Runs a parsed command, writing its output to `out`; returns the exit code.
pub async fn run(cli: Cli, out: &mut (dyn std::io::Write + Send)) -> u8 {
    match cli.command {
        Command::Serve(args) => serve::run(args, &cli.global, out).await,
        Command::Plugin(c) => plugin::run(c, &cli.global, out).await,
        Command::Bind(args) => bind::run(args, out).await,
        Command::Bindings(c) => bind::run_list(c, out).await,
        Command::Agent(c) => agent::run(c, &cli.global, out).await,
        Command::Auditor(c) => agent::run_auditor(c, &cli.global, out).await,
        Command::Approver(c) => approvals::run_approver(c, &cli.global, out).await,
        Command::Approvals(c) => approvals::run(c, out).await,
        Command::Log(c) => log::run(c, &cli.global, out).await,
        Command::Audit(c) => audit::run(c, &cli.global, out).await,
    }
}

/// Prints an error that stopped a command; returns exit code 2.
pub fn fail(error: impl std::fmt::Display) -> u8 {
    eprintln!("actiongate: {error:#}");
    2
}

/// Logs go to stderr. Colour codes only when stderr is a terminal: in a
/// file, a pipe or a journal they are noise a reader has to strip.
fn init_logs(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().with_ansi(false).init(),
    }
}

/// Entry point for the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.global.log_format);
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
