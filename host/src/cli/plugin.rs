//! `actiongate plugin inspect|test`.

use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::config::Config;
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
}

pub fn run(cmd: PluginCommand, config: &Config) -> anyhow::Result<ExitCode> {
    let sandbox = Sandbox::new(config.sandbox.clone()).context("starting the sandbox")?;
    match cmd {
        PluginCommand::Inspect { wasm, json } => {
            let bytes = fs::read(&wasm).with_context(|| format!("reading {}", wasm.display()))?;
            let report = sandbox.inspect(&bytes);
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("sha256:  {}", report.sha256);
                println!("size:    {} bytes", report.size_bytes);
                if let Some(info) = &report.info {
                    println!("name:    {}", info.name);
                    println!("version: {}", info.version);
                    println!("kinds:   {}", info.kinds.join(", "));
                }
                println!(
                    "wit:     actiongate:policy@{}",
                    report.wit_version.as_deref().unwrap_or("(none)")
                );
                println!("imports:");
                for import in &report.imports {
                    println!("  {import}");
                }
                if let Some(failure) = &report.failure {
                    println!("refused: {failure}");
                }
            }
            Ok(if report.failure.is_some() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        PluginCommand::Test { wasm, cases } => {
            let bytes = fs::read(&wasm).with_context(|| format!("reading {}", wasm.display()))?;
            let text = fs::read_to_string(&cases)
                .with_context(|| format!("reading {}", cases.display()))?;
            let results = crate::cases::run(&sandbox, &bytes, &text)?;
            let failed = results.iter().filter(|r| !r.passed()).count();
            for result in &results {
                println!(
                    "{} {}",
                    if result.passed() { "PASS" } else { "FAIL" },
                    result.name
                );
                for diff in &result.diffs {
                    println!("     {diff}");
                }
            }
            println!("{} passed, {} failed", results.len() - failed, failed);
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
