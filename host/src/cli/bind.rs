//! `actiongate bind KIND_PATTERN SHA256 [--shadow SHA256]` and
//! `actiongate bindings list`, through the admin API with your own key.
//! Under four eyes `bind` only asks; other policy admins approve with
//! `actiongate approvals approve ID --reason …`.

use std::io::Write;

use clap::{Args, Subcommand};
use serde_json::json;

use super::approvals::Remote;
use super::fail;
use super::remote::{call, cell};

#[derive(Debug, Args)]
pub struct BindArgs {
    /// An action kind (`db.export`) or a glob (`db.*`, `*`); the most specific wins.
    pub pattern: String,
    /// The registered plugin that decides these kinds.
    pub sha256: String,
    /// A registered plugin evaluated beside it and recorded, never enforced.
    #[arg(long, value_name = "SHA256")]
    pub shadow: Option<String>,
    /// Why (shown to approvers and recorded; required under four eyes).
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(Debug, Subcommand)]
pub enum BindingsCommand {
    /// The bindings in force, one per pattern.
    List {
        /// Every change, oldest first, instead.
        #[arg(long)]
        history: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
}

pub async fn run(args: BindArgs, out: &mut (dyn Write + Send)) -> u8 {
    bind(args, out)
        .await
        .unwrap_or_else(|e| fail(format!("{e:#}")))
}

async fn bind(args: BindArgs, out: &mut (dyn Write + Send)) -> anyhow::Result<u8> {
    let body = json!({
        "pattern": args.pattern,
        "sha256": args.sha256,
        "shadow": args.shadow,
        "reason": args.reason,
    });
    let Some((_, answer)) = call(&args.remote, "/v1/admin/bindings", Some(&body), out).await?
    else {
        return Ok(1);
    };
    match answer["state"].as_str() {
        Some("pending") => writeln!(
            out,
            "binding change {} held for approval: needs {} approval(s) from {} before {}\n  approve: actiongate approvals approve {} --reason …",
            answer["action_id"].as_str().unwrap_or(""),
            answer["quorum"],
            answer["groups"].as_array().into_iter().flatten().filter_map(|g| g.as_str()).collect::<Vec<_>>().join(", "),
            cell(&answer["expires_at"]),
            answer["action_id"].as_str().unwrap_or(""),
        )?,
        _ if answer["unchanged"] == true => writeln!(
            out,
            "{} is already bound so; nothing changed",
            args.pattern
        )?,
        _ => {
            let b = &answer["binding"];
            writeln!(
                out,
                "bound {} -> {}{} (change {}, evidence seq {})",
                cell(&b["pattern"]),
                cell(&b["sha256"]),
                b["shadow"]
                    .as_str()
                    .map(|s| format!(", shadow {s}"))
                    .unwrap_or_default(),
                b["id"],
                b["evidence_seq"],
            )?
        }
    }
    Ok(0)
}

pub async fn run_list(cmd: BindingsCommand, out: &mut (dyn Write + Send)) -> u8 {
    let BindingsCommand::List {
        history,
        json,
        remote,
    } = cmd;
    let listed = async {
        let path = format!("/v1/admin/bindings?history={history}");
        let Some((_, rows)) = call(&remote, &path, None, out).await? else {
            return Ok(1);
        };
        if json {
            writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
            return Ok(0);
        }
        for b in rows.as_array().into_iter().flatten() {
            writeln!(
                out,
                "{:<24} {}  shadow={}  {} by {}  {}",
                cell(&b["pattern"]),
                cell(&b["sha256"]),
                cell(&b["shadow"]),
                cell(&b["source"]),
                cell(&b["changed_by"]),
                cell(&b["changed_at"]),
            )?;
        }
        anyhow::Ok(0)
    };
    listed.await.unwrap_or_else(|e| fail(format!("{e:#}")))
}
