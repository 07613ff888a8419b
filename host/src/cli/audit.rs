//! `actiongate audit …`: auditors' checks. Read-only: never migrates or writes.
//! Exit codes: 0 intact, 1 integrity failure found, 2 could not check.

use std::path::PathBuf;

use anyhow::Context;
use chrono::Utc;
use clap::{Subcommand, ValueEnum};
use uuid::Uuid;

use super::GlobalOpts;
use crate::audit::{bundle, recorded, replay, verify};
use crate::evidence::{EventKind, LogKey};
use crate::store::{Store, StoreOptions};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute every leaf and the tree, check every checkpoint's signature and
    /// the consistency between consecutive checkpoints; name the first bad seq.
    Verify {
        /// Trusted verifier key; defaults to the one derived from the log key file.
        #[arg(long, value_name = "VKEY")]
        vkey: Option<String>,
    },
    /// Re-run recorded decisions on the plugin bytes stored by sha256, in the
    /// same deterministic sandbox under the recorded limits, and compare with
    /// the recorded output; exits 1 on any mismatch or missing plugin.
    Replay {
        /// The action whose decisions to replay (every `evaluated` event of it).
        #[arg(required_unless_present = "since", conflicts_with = "since")]
        action_id: Option<Uuid>,
        /// Replay every decision recorded since: a duration (7d, 24h) or an RFC 3339 date.
        #[arg(long)]
        since: Option<String>,
        /// End of the window (exclusive): a duration ago or an RFC 3339 date.
        #[arg(long, requires = "since")]
        until: Option<String>,
    },
    /// Write the evidence of one action, or of every action submitted in a
    /// window: a JSON bundle that verifies offline (events, inclusion proofs,
    /// the signed checkpoint, plugin hashes, the verifier key), or CSV rows
    /// of change approvals (SOC 2 CC8.1).
    Export {
        /// The action to export.
        #[arg(long, required_unless_present = "since", conflicts_with = "since")]
        action: Option<Uuid>,
        /// Every action submitted since: a duration (7d, 24h) or an RFC 3339 date.
        #[arg(long)]
        since: Option<String>,
        /// End of the window (exclusive).
        #[arg(long, requires = "since")]
        until: Option<String>,
        /// Where to write; standard output when absent.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = ExportFormat::Json)]
        format: ExportFormat,
        /// Include the plugins' bytes (base64), so the bundle's decisions can be replayed.
        #[arg(long)]
        with_plugins: bool,
        /// Verifier key the checkpoint must verify against; defaults to the one
        /// derived from the log key file.
        #[arg(long, value_name = "VKEY")]
        vkey: Option<String>,
    },
    /// Verify an evidence bundle offline (no database): the checkpoint's
    /// signature against KEY, every inclusion proof, each leaf, the story
    /// rules of each action and, with plugin bytes in it, a replay of the decisions.
    VerifyBundle {
        file: PathBuf,
        /// The log's verifier key you trust (`actiongate log key` on the host).
        #[arg(long, value_name = "VKEY")]
        key: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// A versioned evidence bundle (see `audit::bundle`).
    Json,
    /// One row per action with the change-approval columns.
    Csv,
}

pub async fn run(
    cmd: AuditCommand,
    global: &GlobalOpts,
    out: &mut (dyn std::io::Write + Send),
) -> u8 {
    match cmd {
        AuditCommand::Verify { vkey } => match verify_cmd(vkey, global).await {
            Ok(report) => {
                let _ = write!(out, "{report}");
                u8::from(!report.is_ok())
            }
            Err(e) => {
                let _ = writeln!(out, "ERROR: {e:#}");
                2
            }
        },
        AuditCommand::Replay {
            action_id,
            since,
            until,
        } => match replay_cmd(action_id, since, until, global).await {
            Ok(report) => {
                let _ = write!(out, "{report}");
                u8::from(!report.is_ok())
            }
            Err(e) => super::fail(e),
        },
        AuditCommand::Export {
            action,
            since,
            until,
            out: path,
            format,
            with_plugins,
            vkey,
        } => {
            let select = match action {
                Some(id) => Ok(bundle::Select::Action(id)),
                None => recorded::window(since.as_deref(), until.as_deref(), Utc::now())
                    .map(bundle::Select::Submitted),
            };
            let done = match select {
                Ok(select) => {
                    export_cmd(select, path, format, with_plugins, vkey, global, out).await
                }
                Err(e) => Err(e.into()),
            };
            match done {
                Ok(()) => 0,
                Err(e) => super::fail(e),
            }
        }
        AuditCommand::VerifyBundle { file, key } => {
            match verify_bundle_cmd(&file, &key, global).await {
                Ok(report) => {
                    let _ = write!(out, "{report}");
                    u8::from(!report.is_ok())
                }
                Err(e) => super::fail(e),
            }
        }
    }
}

/// The store, opened read-only: no migrations.
pub(super) async fn read_only_store(global: &GlobalOpts) -> anyhow::Result<Store> {
    let url = global.database_url()?;
    let opts = StoreOptions {
        migrate: false,
        ..StoreOptions::default()
    };
    Ok(Store::connect_with(&url, &opts).await?)
}

/// The verifier key given, or the one derived from the configured log key.
fn log_vkey(vkey: Option<String>, global: &GlobalOpts) -> anyhow::Result<String> {
    Ok(match vkey {
        Some(v) => v,
        None => {
            let cfg = global.evidence_config()?;
            LogKey::load(&cfg.key_path, &cfg.origin)?
                .verifier_key()
                .to_owned()
        }
    })
}

async fn verify_cmd(vkey: Option<String>, global: &GlobalOpts) -> anyhow::Result<verify::Report> {
    let vkey = log_vkey(vkey, global)?;
    let store = read_only_store(global).await?;
    Ok(verify::verify(&store, &vkey).await?)
}

async fn replay_cmd(
    action_id: Option<Uuid>,
    since: Option<String>,
    until: Option<String>,
    global: &GlobalOpts,
) -> anyhow::Result<replay::Report> {
    let config = global.config()?;
    let store = read_only_store(global).await?;
    let (recorded, malformed) = match action_id {
        Some(id) => {
            let found = recorded::evaluations_of_action(&store, id).await?;
            if found.0.is_empty() && found.1.is_empty() {
                anyhow::bail!("no recorded evaluation of action {id}");
            }
            found
        }
        None => {
            let window = recorded::window(since.as_deref(), until.as_deref(), Utc::now())?;
            recorded::evaluations_in(&store, EventKind::Evaluated, window).await?
        }
    };
    // Routes are checked against the config's directory, as the service
    // does; a config without one (no groups) leaves them unchecked.
    let directory = crate::directory::Directory::from_config(&config.directory)
        .context("checking [directory]")?;
    let directory = (!config.directory.groups.is_empty()).then(|| std::sync::Arc::new(directory));
    Ok(replay::replay_from_store(&store, config.sandbox, directory, recorded, malformed).await?)
}

async fn export_cmd(
    select: bundle::Select,
    path: Option<PathBuf>,
    format: ExportFormat,
    with_plugins: bool,
    vkey: Option<String>,
    global: &GlobalOpts,
    out: &mut (dyn std::io::Write + Send),
) -> anyhow::Result<()> {
    let store = read_only_store(global).await?;
    let (bytes, summary) = match format {
        ExportFormat::Json => {
            let vkey = log_vkey(vkey, global)?;
            let bundle::Exported {
                bundle: b,
                not_covered,
            } = bundle::export(&store, select, &vkey, with_plugins).await?;
            let mut summary = format!(
                "{} events of {} actions, proved against the checkpoint of {} events{}",
                b.events.len(),
                b.actions.len(),
                b.checkpoint.lines().nth(1).unwrap_or("?"),
                if with_plugins {
                    ", with plugin bytes"
                } else {
                    ""
                }
            );
            if not_covered > 0 {
                // Said on stderr too: with no --out the bundle is stdout.
                let note = format!("{not_covered} later event(s) of the selection are not yet covered by a signed checkpoint and were left out; export again after the next checkpoint");
                eprintln!("actiongate: {note}");
                summary.push_str(&format!("; {note}"));
            }
            (serde_json::to_vec_pretty(&b)?, summary)
        }
        ExportFormat::Csv => {
            let rows = crate::audit::changes::export(&store, select).await?;
            let summary = format!("{} actions", rows.len());
            (crate::audit::changes::to_bytes(&rows)?, summary)
        }
    };
    match path {
        Some(p) => {
            std::fs::write(&p, &bytes).with_context(|| format!("writing {}", p.display()))?;
            writeln!(out, "wrote {}: {summary}", p.display())?;
        }
        None => out.write_all(&bytes)?,
    }
    Ok(())
}

async fn verify_bundle_cmd(
    file: &std::path::Path,
    key: &str,
    global: &GlobalOpts,
) -> anyhow::Result<bundle::Report> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let b = bundle::parse(&text).with_context(|| file.display().to_string())?;
    // Only the sandbox settings (compile cache, default limits) come from the config.
    let sandbox = global.config()?.sandbox;
    let key = key.to_owned();
    // Replaying the decisions compiles and runs plugins: CPU work.
    let report = tokio::task::spawn_blocking(move || bundle::verify(&b, &key, sandbox))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
    Ok(report)
}
