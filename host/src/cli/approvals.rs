//! `actiongate approver key` (issue an approver's API key) and
//! `actiongate approvals list|show|approve|deny|modify`, which act through
//! the HTTP API with the approver's own key: identity comes from the key,
//! and every rule is the server's.

use std::io::Write;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::{fail, GlobalOpts};
use crate::action::ActionId;
use crate::directory::Directory;
use crate::keys::{hash_api_key, new_api_key};
use crate::store::{KeyRole, Store};

#[derive(Debug, Subcommand)]
pub enum ApproverCommand {
    /// Issue an API key for a person in the directory (printed once).
    Key { email: String },
}

#[derive(Debug, Args)]
pub struct Remote {
    /// The actiongate API.
    #[arg(long, env = "ACTIONGATE_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Your approver key.
    #[arg(long, env = "ACTIONGATE_KEY", hide_env_values = true)]
    pub key: String,
}

#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// Pending actions you may review.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// One pending action in full.
    Show {
        /// The action id (a UUID).
        id: ActionId,
        #[command(flatten)]
        remote: Remote,
    },
    /// Approve (a reason is required at high and critical risk).
    Approve {
        /// The action id (a UUID).
        id: ActionId,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Deny, with a reason.
    Deny {
        /// The action id (a UUID).
        id: ActionId,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Change modifiable params (a JSON object), with a reason.
    Modify {
        /// The action id (a UUID).
        id: ActionId,
        #[arg(long)]
        params: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        remote: Remote,
    },
}

pub async fn run_approver(
    cmd: ApproverCommand,
    global: &GlobalOpts,
    out: &mut (dyn Write + Send),
) -> u8 {
    let result = async {
        let ApproverCommand::Key { email } = cmd;
        let config = global.config()?;
        let directory = Directory::from_config(&config.directory)?;
        let person = directory
            .person_by_email(&email)
            .ok_or_else(|| anyhow::anyhow!("{email} is not in the [directory] of the config"))?;
        let store = Store::connect(config.database_url()).await?;
        let key = new_api_key()?;
        store
            .add_api_key(&hash_api_key(&key), KeyRole::Approver, person.email())
            .await?;
        writeln!(
            out,
            "approver key for {} <{}>, shown once:\n{key}",
            person.name(),
            person.email()
        )?;
        anyhow::Ok(0)
    }
    .await;
    result.unwrap_or_else(|e| fail(format!("{e:#}")))
}

pub async fn run(cmd: ApprovalsCommand, out: &mut (dyn Write + Send)) -> u8 {
    match remote(cmd, out).await {
        Ok(code) => code,
        Err(e) => fail(format!("{e:#}")),
    }
}

async fn remote(cmd: ApprovalsCommand, out: &mut (dyn Write + Send)) -> anyhow::Result<u8> {
    let client = reqwest::Client::new();
    let (remote, request) = match &cmd {
        ApprovalsCommand::List { remote } => (remote, None),
        ApprovalsCommand::Show { remote, .. } => (remote, None),
        ApprovalsCommand::Approve { id, reason, remote } => (
            remote,
            Some((id, json!({"decision": "approve", "reason": reason}))),
        ),
        ApprovalsCommand::Deny { id, reason, remote } => (
            remote,
            Some((id, json!({"decision": "deny", "reason": reason}))),
        ),
        ApprovalsCommand::Modify {
            id,
            params,
            reason,
            remote,
        } => {
            // Refused here, with the same rules and words as the server's.
            let params = crate::ijson::value(params).map_err(|e| {
                if e.is_syntax() {
                    anyhow::anyhow!("--params is not JSON: {}", e.violation)
                } else {
                    anyhow::anyhow!("--params was not sent: {}", e.within("params"))
                }
            })?;
            (
                remote,
                Some((
                    id,
                    json!({"decision": "modify", "reason": reason, "params": params}),
                )),
            )
        }
    };
    let base = remote.url.trim_end_matches('/');
    let response = match (&cmd, request) {
        (_, Some((id, body))) => {
            client
                .post(format!("{base}/v1/approvals/{id}/reviews"))
                .bearer_auth(&remote.key)
                .json(&body)
                .send()
                .await?
        }
        _ => {
            client
                .get(format!("{base}/v1/approvals?state=pending"))
                .bearer_auth(&remote.key)
                .send()
                .await?
        }
    };
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        writeln!(
            out,
            "refused ({status}): {}",
            body["detail"].as_str().unwrap_or("no detail")
        )?;
        return Ok(1);
    }
    match cmd {
        ApprovalsCommand::List { .. } => {
            for a in body.as_array().into_iter().flatten() {
                writeln!(
                    out,
                    "{}  {:<8} {:<16} {}  (quorum {}, expires {})",
                    a["action_id"].as_str().unwrap_or(""),
                    a["risk"].as_str().unwrap_or(""),
                    a["kind"].as_str().unwrap_or(""),
                    a["resource"].as_str().unwrap_or(""),
                    a["approval"]["quorum"],
                    a["approval"]["expires_at"].as_str().unwrap_or(""),
                )?;
            }
        }
        ApprovalsCommand::Show { id, .. } => {
            let found = body
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["action_id"] == id.to_string().as_str());
            match found {
                Some(a) => writeln!(out, "{}", serde_json::to_string_pretty(a)?)?,
                None => {
                    writeln!(out, "{id} is not pending for you")?;
                    return Ok(1);
                }
            }
        }
        _ => writeln!(
            out,
            "{} is now {} ({} of {} approvals)",
            body["action_id"].as_str().unwrap_or(""),
            body["state"].as_str().unwrap_or(""),
            body["approvals"],
            body["quorum"]
        )?,
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::Cli;

    #[test]
    fn an_action_id_argument_is_parsed_before_anything_is_sent() {
        for verb in ["show", "approve", "deny", "modify"] {
            let mut argv = vec!["actiongate", "approvals", verb, "42; DROP", "--key", "k"];
            argv.extend(match verb {
                "deny" => vec!["--reason", "r"],
                "modify" => vec!["--params", "{}", "--reason", "r"],
                _ => vec![],
            });
            let e = Cli::try_parse_from(&argv).unwrap_err().to_string();
            assert!(
                e.contains("\"42; DROP\" is not an action id (a UUID)"),
                "{verb}: {e}"
            );
            argv[3] = "0190c6c2-0000-7000-8000-000000000001";
            let parsed = Cli::try_parse_from(&argv);
            assert!(parsed.is_ok(), "{verb}: {:?}", parsed.err());
        }
    }
}
