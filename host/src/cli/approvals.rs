//! `actiongate approver key` (issue an approver's API key) and
//! `actiongate approvals list|show|approve|deny|modify`, which act through
//! the HTTP API with the approver's own key: identity comes from the key,
//! and every rule is the server's.

use std::io::Write;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::{fail, GlobalOpts};
use crate::action::ActionId;
use crate::approvals::ApprovalSummary;
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
    /// Pending actions you may review, each with everything you judge by.
    List {
        /// The approval summaries as JSON, as the API gives them.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// One pending action in full.
    Show {
        /// The action id (a UUID).
        id: ActionId,
        /// The approval summary as JSON, as the API gives it.
        #[arg(long)]
        json: bool,
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
        ApprovalsCommand::List { remote, .. } => (remote, None),
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
        (ApprovalsCommand::Show { id, .. }, None) => {
            client
                .get(format!("{base}/v1/approvals/{id}"))
                .bearer_auth(&remote.key)
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
        ApprovalsCommand::List { json: true, .. } | ApprovalsCommand::Show { json: true, .. } => {
            writeln!(out, "{}", serde_json::to_string_pretty(&body)?)?
        }
        ApprovalsCommand::List { .. } => {
            let summaries: Vec<ApprovalSummary> = serde_json::from_value(body).map_err(|e| {
                anyhow::anyhow!("the server's answer is not a list of approval summaries: {e}")
            })?;
            if summaries.is_empty() {
                writeln!(out, "nothing is pending for you")?;
            }
            for summary in &summaries {
                write!(out, "{}", render(summary))?;
            }
        }
        ApprovalsCommand::Show { .. } => {
            let summary: ApprovalSummary = serde_json::from_value(body).map_err(|e| {
                anyhow::anyhow!("the server's answer is not an approval summary: {e}")
            })?;
            write!(out, "{}", render(&summary))?;
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

/// The approval summary as the terminal shows it: every fact the API,
/// chat and webhooks carry, in the same words.
pub fn render(s: &ApprovalSummary) -> String {
    let (a, r) = (&s.action, &s.approval);
    let mut text = format!(
        "{}  {} risk  {} on {}\n",
        a.action_id,
        a.risk.as_str(),
        a.kind,
        a.resource
    );
    let mut line = |label: &str, value: String| {
        text.push_str(&format!("  {label:<14}{value}\n"));
    };
    line("agent", format!("{} (owner {})", a.agent_id, a.owner));
    if let Some(on_behalf_of) = &a.on_behalf_of {
        line("on behalf of", on_behalf_of.clone());
    }
    if let Some(justification) = &a.justification {
        line("justification", justification.clone());
    }
    for (key, value) in &a.context {
        line("context", format!("{key}: {value}"));
    }
    line("params", a.params.to_string());
    if !a.redacted.is_empty() {
        line("redacted", a.redacted.join(", "));
    }
    line("why", a.reasons.join("; "));
    line(
        "plugin",
        match &a.plugin {
            Some(p) => format!("{} {} sha256 {}", p.name, p.version, p.sha256),
            None => "none (failed closed)".into(),
        },
    );
    line(
        "route",
        format!(
            "{} of {} approvals from {}; expires {}",
            r.approvals.len(),
            r.quorum,
            r.groups.join(", "),
            r.expires_at.to_rfc3339()
        ),
    );
    if !r.escalate_to.is_empty() {
        let state = if r.escalated { " (escalated)" } else { "" };
        line(
            "escalates to",
            format!("{}{state}", r.escalate_to.join(", ")),
        );
    }
    if !r.modifiable_params.is_empty() {
        line("modifiable", r.modifiable_params.join(", "));
    }
    for review in &r.reviews {
        line(
            "review",
            format!(
                "{} <{}> {} at {}{}",
                review.name,
                review.approver,
                review.decision,
                review.at.to_rfc3339(),
                review
                    .reason
                    .as_deref()
                    .map(|t| format!(": {t}"))
                    .unwrap_or_default()
            ),
        );
    }
    line("digest", a.digest.clone());
    text
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
