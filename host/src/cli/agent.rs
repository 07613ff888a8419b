//! `actiongate agent create|list|revoke` and `actiongate auditor key`.
//! A key is printed once; only its sha256 is stored.

use std::collections::BTreeMap;
use std::io::Write;

use clap::Subcommand;

use super::{fail, GlobalOpts};
use crate::keys::{hash_api_key, new_api_key};
use crate::store::{KeyRole, Store};

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Create an agent and print its API key (shown once).
    Create {
        name: String,
        /// The human accountable for the agent; they may never approve its actions.
        #[arg(long)]
        owner: String,
        /// Attributes plugins see, e.g. --attr identity=sa-bot@corp.iam
        #[arg(long = "attr", value_parser = parse_attr)]
        attributes: Vec<(String, String)>,
    },
    /// List agents.
    List,
    /// Revoke an agent and all its keys.
    Revoke { name: String },
}

#[derive(Debug, Subcommand)]
pub enum AuditorCommand {
    /// Create an auditor API key (reads /v1/log/*) and print it once.
    Key { name: String },
}

fn parse_attr(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

async fn store(global: &GlobalOpts) -> anyhow::Result<Store> {
    Ok(Store::connect(&global.database_url()?).await?)
}

pub async fn run(cmd: AgentCommand, global: &GlobalOpts, out: &mut (dyn Write + Send)) -> u8 {
    match agent(cmd, global, out).await {
        Ok(code) => code,
        Err(e) => fail(format!("{e:#}")),
    }
}

async fn agent(
    cmd: AgentCommand,
    global: &GlobalOpts,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<u8> {
    let store = store(global).await?;
    match cmd {
        AgentCommand::Create {
            name,
            owner,
            attributes,
        } => {
            anyhow::ensure!(
                !name.is_empty() && name.len() <= 100,
                "the agent name must be 1 to 100 characters"
            );
            anyhow::ensure!(owner.contains('@'), "--owner must be an email address");
            let attributes: BTreeMap<String, String> = attributes.into_iter().collect();
            anyhow::ensure!(
                !attributes.contains_key("owner"),
                "set the owner with --owner, not --attr"
            );
            if !store.create_agent(&name, &owner, &attributes).await? {
                writeln!(out, "agent {name:?} exists already; no key created")?;
                return Ok(1);
            }
            let key = new_api_key()?;
            store
                .add_api_key(&hash_api_key(&key), KeyRole::Agent, &name)
                .await?;
            writeln!(
                out,
                "agent {name} (owner {owner}) created. Its API key, shown once:\n{key}"
            )?;
            Ok(0)
        }
        AgentCommand::List => {
            for a in store.agents().await? {
                let state = match a.revoked_at {
                    Some(t) => format!("revoked {}", t.to_rfc3339()),
                    None => "active".into(),
                };
                writeln!(
                    out,
                    "{}\towner={}\t{}\tcreated {}",
                    a.id,
                    a.owner,
                    state,
                    a.created_at.to_rfc3339()
                )?;
            }
            Ok(0)
        }
        AgentCommand::Revoke { name } => {
            if store.revoke_agent(&name).await? {
                writeln!(out, "agent {name} revoked; its keys no longer work")?;
                Ok(0)
            } else {
                writeln!(out, "no active agent {name:?}")?;
                Ok(1)
            }
        }
    }
}

pub async fn run_auditor(
    cmd: AuditorCommand,
    global: &GlobalOpts,
    out: &mut (dyn Write + Send),
) -> u8 {
    let result = async {
        let AuditorCommand::Key { name } = cmd;
        let store = store(global).await?;
        let key = new_api_key()?;
        store
            .add_api_key(&hash_api_key(&key), KeyRole::Auditor, &name)
            .await?;
        writeln!(out, "auditor key for {name}, shown once:\n{key}")?;
        anyhow::Ok(0)
    }
    .await;
    result.unwrap_or_else(|e| fail(format!("{e:#}")))
}
