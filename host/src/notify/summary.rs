//! The one approval summary's types: everything an approver judges by, as
//! every channel shows it (API, CLI, Slack, Teams, webhooks), and the one
//! redaction rule set. Plain data, below the workflow that builds it
//! (`approvals::summary`); never reads the store or decides.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::action::Risk;

/// What a redacted value is replaced with.
pub const REDACTED: &str = "[redacted]";

/// `[approvals]`: how approvers are shown held actions.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApprovalsConfig {
    /// Param and context keys whose values no channel shows: a key is
    /// redacted when, lowercased with `-` read as `_`, it contains one of
    /// these (so `db_password`, `X-Api-Key` and `accessToken` are caught).
    pub redact_params: Vec<String>,
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        ApprovalsConfig {
            redact_params: [
                "password",
                "passwd",
                "secret",
                "token",
                "api_key",
                "apikey",
                "authorization",
                "credential",
                "private_key",
                "cookie",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// The one redaction rule set, applied to every summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redaction {
    /// Normalized (lowercase, `-` as `_`), non-empty.
    needles: Vec<String>,
}

impl Default for Redaction {
    fn default() -> Self {
        Redaction::new(&ApprovalsConfig::default().redact_params)
    }
}

fn normalize(key: &str) -> String {
    key.trim().to_lowercase().replace('-', "_")
}

impl Redaction {
    pub fn new(names: &[String]) -> Redaction {
        let mut needles: Vec<String> = names
            .iter()
            .map(|n| normalize(n))
            .filter(|n| !n.is_empty())
            .collect();
        needles.sort();
        needles.dedup();
        Redaction { needles }
    }

    /// The rule set of `[approvals]`, plus any names still given in the
    /// older per-channel setting (`[slack] redact_params`).
    pub fn from_config(config: &ApprovalsConfig, extra: &[String]) -> Redaction {
        let mut names = config.redact_params.clone();
        names.extend(extra.iter().cloned());
        Redaction::new(&names)
    }

    pub fn is_secret(&self, key: &str) -> bool {
        let key = normalize(key);
        self.needles.iter().any(|n| key.contains(n.as_str()))
    }

    /// `value` with every secret key's value (at any depth) replaced by
    /// `[redacted]`; the paths replaced (`a.b`, `list.0.token`) are pushed
    /// to `paths`.
    pub fn redact(&self, value: &Value, prefix: &str, paths: &mut Vec<String>) -> Value {
        let path = |key: &str| {
            if prefix.is_empty() {
                key.to_string()
            } else {
                format!("{prefix}.{key}")
            }
        };
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        if self.is_secret(k) {
                            paths.push(path(k));
                            (k.clone(), Value::String(REDACTED.into()))
                        } else {
                            (k.clone(), self.redact(v, &path(k), paths))
                        }
                    })
                    .collect(),
            ),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| self.redact(v, &path(&i.to_string()), paths))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// The plugin that classified and routed the action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PluginSummary {
    pub name: String,
    pub version: String,
    pub sha256: String,
}

/// The held action, as people need to see it to judge it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActionSummary {
    pub action_id: String,
    /// The digest reviews bind to; it changes when the action is modified,
    /// so a receiver can tell a stale message from a current one.
    pub digest: String,
    pub kind: String,
    pub resource: String,
    pub agent_id: String,
    /// The agent's owner (who may not approve it).
    pub owner: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
    #[schema(value_type = String, example = "high")]
    pub risk: Risk,
    pub reasons: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    /// Secrets redacted (see `redacted`).
    #[schema(value_type = Object)]
    pub params: Value,
    /// The agent's context (prompt excerpt, session, model), secrets redacted.
    #[serde(default)]
    pub context: BTreeMap<String, String>,
    /// `None` when no plugin decided (none bound, or it failed to load).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<PluginSummary>,
    /// Paths in `params` (and `context.KEY`) whose values were redacted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redacted: Vec<String>,
}

/// One approval counted so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApprovalEntry {
    /// The approver's email.
    pub approver: String,
    pub name: String,
    pub at: DateTime<Utc>,
}

/// One review: who, when, which decision (and why).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReviewEntry {
    pub approver: String,
    pub name: String,
    /// `approve`, `deny` or `modify`.
    pub decision: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

/// Where the approval stands: the route in force and the reviews so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApprovalState {
    pub groups: Vec<String>,
    pub quorum: u32,
    /// Distinct approvals of the current digest.
    pub approvals: Vec<ApprovalEntry>,
    pub expires_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalate_to: Vec<String>,
    /// True once the request was escalated: `escalate_to` may review too.
    #[serde(default)]
    pub escalated: bool,
    /// Params a reviewer may change with a modify.
    #[serde(default)]
    pub modifiable_params: Vec<String>,
    /// Every review so far, oldest first, those of earlier versions included.
    #[serde(default)]
    pub reviews: Vec<ReviewEntry>,
    /// When approving needs a passkey step-up: the inbox page where it is
    /// given. Chat cards link there instead of offering an approve button.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_up: Option<String>,
}

/// Everything an approver sees of a held action, on every channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApprovalSummary {
    pub action: ActionSummary,
    pub approval: ApprovalState,
}
