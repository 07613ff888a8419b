//! `actiongate plugin inspect|test|register|list|backtest|diff`.

use std::fs;
use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;

use super::{fail, GlobalOpts};
use crate::sandbox::Sandbox;

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Print a component's sha256, name, version, kinds, WIT version and imports.
    Inspect {
        wasm: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run a case file against a component; exits 1 if any case fails.
    Test { wasm: PathBuf, cases: PathBuf },
    /// Store a plugin by sha256 (through the API, as you): signature and cases checked first.
    Register(super::register::RegisterArgs),
    /// Registered plugins: sha256, name, version, WIT version, who registered it, signer.
    List(super::register::ListArgs),
    /// Re-run a candidate on the inputs of recorded decisions; count how
    /// risk and route would change, with example actions.
    Backtest(super::history::BacktestArgs),
    /// List actions where a shadow plugin's recorded decision disagrees with the live one.
    Diff(super::history::DiffArgs),
}

pub async fn run(cmd: PluginCommand, global: &GlobalOpts, out: &mut (dyn Write + Send)) -> u8 {
    let result = match cmd {
        PluginCommand::Backtest(args) => return super::history::backtest(args, global, out).await,
        PluginCommand::Diff(args) => return super::history::diff(args, global, out).await,
        PluginCommand::Register(args) => super::register::register(args, out).await,
        PluginCommand::List(args) => super::register::list(args, out).await,
        cmd => inner(cmd, global, out),
    };
    match result {
        Ok(code) => code,
        Err(e) => fail(e),
    }
}

fn inner(
    cmd: PluginCommand,
    global: &GlobalOpts,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<u8> {
    use anyhow::Context;
    let config = global.config()?;
    let sandbox = Sandbox::new(config.sandbox.clone()).context("starting the sandbox")?;
    match cmd {
        PluginCommand::Inspect { wasm, json } => {
            let bytes = fs::read(&wasm).with_context(|| format!("reading {}", wasm.display()))?;
            let report = sandbox.inspect(&bytes);
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
            } else {
                writeln!(out, "sha256:  {}", report.sha256)?;
                writeln!(out, "size:    {} bytes", report.size_bytes)?;
                if let Some(info) = &report.info {
                    writeln!(out, "name:    {}", info.name)?;
                    writeln!(out, "version: {}", info.version)?;
                    writeln!(out, "kinds:   {}", info.kinds.join(", "))?;
                }
                writeln!(
                    out,
                    "wit:     actiongate:policy@{}",
                    report.wit_version.as_deref().unwrap_or("(none)")
                )?;
                if let Some(interpreter) = &report.interpreter {
                    writeln!(out, "runs in: {interpreter} (interpreter WASI and limits)")?;
                }
                if let Some(l) = &report.limits {
                    writeln!(
                        out,
                        "limits:  fuel {}, memory {} bytes, deadline {} ms, output {} bytes, {} core instances",
                        l.fuel, l.memory_bytes, l.deadline_ms, l.output_bytes, l.core_instances
                    )?;
                }
                writeln!(out, "imports:")?;
                for import in &report.imports {
                    writeln!(out, "  {import}")?;
                }
                if let Some(failure) = &report.failure {
                    writeln!(out, "refused: {failure}")?;
                }
            }
            Ok(u8::from(report.failure.is_some()))
        }
        PluginCommand::Test { wasm, cases } => {
            let bytes = fs::read(&wasm).with_context(|| format!("reading {}", wasm.display()))?;
            let text = fs::read_to_string(&cases)
                .with_context(|| format!("reading {}", cases.display()))?;
            let results = crate::cases::run(&sandbox, &bytes, &text)?;
            let failed = results.iter().filter(|r| !r.passed()).count();
            for result in &results {
                writeln!(
                    out,
                    "{} {}",
                    if result.passed() { "PASS" } else { "FAIL" },
                    result.name
                )?;
                for diff in &result.diffs {
                    writeln!(out, "     {diff}")?;
                }
            }
            writeln!(
                out,
                "cases: {} passed, {} failed",
                results.len() - failed,
                failed
            )?;
            Ok(u8::from(failed > 0))
        }
        PluginCommand::Register(_)
        | PluginCommand::List(_)
        | PluginCommand::Backtest(_)
        | PluginCommand::Diff(_) => unreachable!("run() handles these"),
    }
}
