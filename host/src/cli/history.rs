//! `actiongate plugin backtest|diff`: policy changes judged against recorded
//! history. Read-only on the database (no migrations); exit 0 with a report,
//! 2 when it could not run.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use chrono::Utc;
use clap::Args;

use super::audit::read_only_store;
use super::GlobalOpts;
use crate::audit::{backtest, diff, recorded};
use crate::evaluate::Evaluator;
use crate::evidence::EventKind;
use crate::sandbox::Sandbox;
use crate::store::Window;

#[derive(Debug, Args)]
pub struct BacktestArgs {
    /// The candidate component.
    pub candidate: PathBuf,
    #[command(flatten)]
    pub window: WindowArgs,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub window: WindowArgs,
}

/// Which recorded decisions, and how to print the report.
#[derive(Debug, Args)]
pub struct WindowArgs {
    /// Decisions recorded since: a duration (7d, 24h) or an RFC 3339 date.
    #[arg(long)]
    pub since: String,
    /// End of the window (exclusive).
    #[arg(long)]
    pub until: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

impl WindowArgs {
    fn window(&self) -> anyhow::Result<Window> {
        Ok(recorded::window(
            Some(&self.since),
            self.until.as_deref(),
            Utc::now(),
        )?)
    }

    fn print<R: std::fmt::Display + serde::Serialize>(
        &self,
        report: &R,
        out: &mut (dyn Write + Send),
    ) -> anyhow::Result<()> {
        if self.json {
            writeln!(out, "{}", serde_json::to_string_pretty(report)?)?;
        } else {
            write!(out, "{report}")?;
        }
        Ok(())
    }
}

pub async fn backtest(args: BacktestArgs, global: &GlobalOpts, out: &mut (dyn Write + Send)) -> u8 {
    match run_backtest(args, global, out).await {
        Ok(()) => 0,
        Err(e) => super::fail(e),
    }
}

pub async fn diff(args: DiffArgs, global: &GlobalOpts, out: &mut (dyn Write + Send)) -> u8 {
    match run_diff(args, global, out).await {
        Ok(()) => 0,
        Err(e) => super::fail(e),
    }
}

async fn run_backtest(
    args: BacktestArgs,
    global: &GlobalOpts,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let config = global.config()?;
    let bytes = std::fs::read(&args.candidate)
        .with_context(|| format!("reading {}", args.candidate.display()))?;
    let window = args.window.window()?;
    let store = read_only_store(global).await?;
    let (recorded, malformed) =
        recorded::evaluations_in(&store, EventKind::Evaluated, window).await?;
    let sandbox = Arc::new(Sandbox::new(config.sandbox.clone()).context("starting the sandbox")?);
    // The candidate's failures fail closed exactly as the host would, and
    // its routes are checked against the config's directory as the host
    // does (unless the config has none: no groups).
    let directory = crate::directory::Directory::from_config(&config.directory)
        .context("checking [directory]")?;
    let mut evaluator = Evaluator::new(sandbox.clone(), config.fail_closed.clone());
    if !config.directory.groups.is_empty() {
        evaluator = evaluator.with_directory(Arc::new(directory));
    }
    let report = tokio::task::spawn_blocking(move || -> anyhow::Result<backtest::Report> {
        let candidate = sandbox
            .load(&bytes, None)
            .context("loading the candidate")?;
        Ok(backtest::backtest(
            &evaluator, &candidate, &recorded, malformed,
        )?)
    })
    .await
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
    args.window.print(&report, out)
}

async fn run_diff(
    args: DiffArgs,
    global: &GlobalOpts,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let window = args.window.window()?;
    let store = read_only_store(global).await?;
    let (shadows, mut malformed) =
        recorded::evaluations_in(&store, EventKind::ShadowEvaluated, window).await?;
    // The live decisions of those actions, wherever they fall in time.
    let mut ids: Vec<&str> = shadows.iter().map(|s| s.action_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut live = Vec::new();
    for id in ids {
        let (l, m) = recorded::evaluations_of_action(&store, id.parse()?).await?;
        live.extend(l);
        malformed.extend(m);
    }
    let mut report = diff::diff(&live, &shadows);
    report.malformed = malformed;
    args.window.print(&report, out)
}
