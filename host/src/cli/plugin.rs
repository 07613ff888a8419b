//! `actiongate plugin inspect|test|register|list|backtest|diff`.

use std::fs;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use super::{fail, GlobalOpts};
use crate::directory::Directory;
use crate::sandbox::{Sandbox, SandboxConfig};

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
        PluginCommand::Inspect { wasm, json } => inspect(wasm, json, global, out).await,
        PluginCommand::Test { wasm, cases } => test(wasm, cases, global, out).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => fail(e),
    }
}

/// Runs `f` with a sandbox on the blocking pool, where the service runs
/// plugins too, so nothing here can behave otherwise than `serve` would.
async fn on_blocking_pool<R: Send + 'static>(
    config: SandboxConfig,
    f: impl FnOnce(&Sandbox) -> anyhow::Result<R> + Send + 'static,
) -> anyhow::Result<R> {
    tokio::task::spawn_blocking(move || {
        let sandbox = Sandbox::new(config).context("starting the sandbox")?;
        f(&sandbox)
    })
    .await
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

async fn inspect(
    wasm: PathBuf,
    json: bool,
    global: &GlobalOpts,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<u8> {
    let bytes = fs::read(&wasm).with_context(|| format!("reading {}", wasm.display()))?;
    // Inspecting is looking, not installing: nothing is written to the
    // service's compile cache (or to a cache under the current directory).
    let config = SandboxConfig {
        cache_dir: None,
        ..global.config()?.sandbox
    };
    let report = on_blocking_pool(config, move |sandbox| Ok(sandbox.inspect(&bytes))).await?;
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

async fn test(
    wasm: PathBuf,
    cases: PathBuf,
    global: &GlobalOpts,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<u8> {
    let config = global.config()?;
    let bytes = fs::read(&wasm).with_context(|| format!("reading {}", wasm.display()))?;
    let text =
        fs::read_to_string(&cases).with_context(|| format!("reading {}", cases.display()))?;
    // Routes are checked against the config's directory, as `serve` checks them.
    let directory = Directory::from_config(&config.directory).context("checking [directory]")?;
    let checked = !config.directory.groups.is_empty();
    let results = on_blocking_pool(config.sandbox, move |sandbox| {
        let directory = checked.then_some(&directory);
        Ok(crate::cases::run(sandbox, &bytes, &text, directory)?)
    })
    .await?;
    if checked {
        writeln!(out, "routes checked against the config's [directory]")?;
    } else {
        writeln!(
            out,
            "routes NOT checked: the config's [directory] has no groups, so whether each route's groups, quorum and escalation can be answered is unknown"
        )?;
    }
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
