//! `actiongate plugin register WASM [--signature FILE] [--cases FILE]` and
//! `actiongate plugin list`, through the admin API with your own key: the
//! server checks the signature against its allowed signers, runs the case
//! file, and records you as the one who registered it.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use base64::Engine as _;
use clap::Args;
use serde_json::json;

use super::approvals::Remote;
use super::remote::{call, cell};

#[derive(Debug, Args)]
pub struct RegisterArgs {
    pub wasm: PathBuf,
    /// The SSH signature (`ssh-keygen -Y sign -n actiongate-plugin -f KEY WASM` writes WASM.sig).
    #[arg(long, value_name = "FILE")]
    pub signature: Option<PathBuf>,
    /// A case file the plugin must pass before it is stored.
    #[arg(long, value_name = "CASES.toml")]
    pub cases: Option<PathBuf>,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub remote: Remote,
}

pub async fn register(args: RegisterArgs, out: &mut (dyn Write + Send)) -> anyhow::Result<u8> {
    let read =
        |path: &PathBuf| std::fs::read(path).with_context(|| format!("reading {}", path.display()));
    let wasm = read(&args.wasm)?;
    let text = |path: &Option<PathBuf>| {
        path.as_ref()
            .map(|p| {
                read(p).and_then(|b| {
                    String::from_utf8(b).with_context(|| format!("{} is not text", p.display()))
                })
            })
            .transpose()
    };
    let body = json!({
        "wasm_base64": base64::engine::general_purpose::STANDARD.encode(&wasm),
        "signature": text(&args.signature)?,
        "cases": text(&args.cases)?,
        "source": args.wasm.file_name().map(|n| n.to_string_lossy().into_owned()),
    });
    let Some((_, answer)) = call(&args.remote, "/v1/admin/plugins", Some(&body), out).await? else {
        return Ok(1);
    };
    let p = &answer["plugin"];
    writeln!(
        out,
        "{} {} {} (WIT {}) sha256 {}",
        if answer["new"] == true {
            "registered"
        } else {
            "already registered:"
        },
        cell(&p["name"]),
        cell(&p["version"]),
        cell(&p["wit_version"]),
        cell(&p["sha256"]),
    )?;
    if let Some(signer) = answer["signer"].as_str() {
        writeln!(out, "  signed by {signer}")?;
    }
    if let Some(n) = answer["cases_passed"].as_u64() {
        writeln!(out, "  {n} cases passed")?;
    }
    if answer["new"] != true {
        writeln!(
            out,
            "  (first registered by {} at {})",
            cell(&p["registered_by"]),
            cell(&p["registered_at"])
        )?;
    }
    Ok(0)
}

pub async fn list(args: ListArgs, out: &mut (dyn Write + Send)) -> anyhow::Result<u8> {
    let Some((_, rows)) = call(&args.remote, "/v1/admin/plugins", None, out).await? else {
        return Ok(1);
    };
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(0);
    }
    for p in rows.as_array().into_iter().flatten() {
        writeln!(
            out,
            "{}  {:<16} {:<8} WIT {}  by {}  {}  {}",
            cell(&p["sha256"]),
            cell(&p["name"]),
            cell(&p["version"]),
            cell(&p["wit_version"]),
            cell(&p["registered_by"]),
            p["signer"]
                .as_str()
                .map_or_else(|| "unsigned".to_string(), |s| format!("signed by {s}")),
            cell(&p["registered_at"]),
        )?;
    }
    Ok(0)
}
