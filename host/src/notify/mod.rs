//! notify: tells people that something happened to a held action (webhook,
//! later Slack and Teams). Notifiers announce; they never decide or record.

pub mod webhook;

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::action::{Action, Classification, Risk};

/// What happened, in the words a receiver routes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationKind {
    Pending,
    Reviewed,
    Approved,
    Denied,
    Expired,
    Reminder,
    Escalated,
}

impl NotificationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::Pending => "pending",
            NotificationKind::Reviewed => "reviewed",
            NotificationKind::Approved => "approved",
            NotificationKind::Denied => "denied",
            NotificationKind::Expired => "expired",
            NotificationKind::Reminder => "reminder",
            NotificationKind::Escalated => "escalated",
        }
    }
}

/// The held action, as people need to see it to judge it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionSummary {
    pub action_id: String,
    /// The digest reviews bind to; it changes when the action is modified,
    /// so a receiver can tell a stale message from a current one.
    pub digest: String,
    pub kind: String,
    pub resource: String,
    pub agent_id: String,
    pub owner: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
    pub risk: Risk,
    pub reasons: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    pub params: serde_json::Value,
}

impl ActionSummary {
    /// The summary of `action` as classified. `owner` is the agent's
    /// `owner` attribute (empty when absent).
    pub fn from_action(action: &Action, classification: &Classification) -> ActionSummary {
        ActionSummary {
            action_id: action.id.clone(),
            digest: action.digest(),
            kind: action.kind.clone(),
            resource: action.resource.clone(),
            agent_id: action.agent.id.clone(),
            owner: action
                .agent
                .attributes
                .get("owner")
                .cloned()
                .unwrap_or_default(),
            on_behalf_of: action.on_behalf_of.clone(),
            risk: classification.risk,
            reasons: classification.reasons.clone(),
            justification: action.justification.clone(),
            params: action.params.clone(),
        }
    }
}

/// One approval counted so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalEntry {
    /// The approver's email.
    pub approver: String,
    pub name: String,
    pub at: DateTime<Utc>,
}

/// The review this notification announces (kinds `reviewed`, `approved`, `denied`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewEntry {
    pub approver: String,
    pub name: String,
    /// `approve`, `deny` or `modify`.
    pub decision: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

/// Where the approval stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalState {
    pub groups: Vec<String>,
    pub quorum: u32,
    /// Distinct approvals of the current digest.
    pub approvals: Vec<ApprovalEntry>,
    pub expires_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalate_to: Vec<String>,
}

/// One announcement. `id` is unique per notification and stays the same
/// across delivery retries (it is the webhook's `webhook-id`), so receivers
/// can drop duplicates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub id: String,
    pub kind: NotificationKind,
    pub action: ActionSummary,
    pub approval: ApprovalState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<ReviewEntry>,
    pub occurred_at: DateTime<Utc>,
}

/// A notification that reached its receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub attempts: u32,
}

/// Why a notification did not arrive. The caller records it as a
/// `notify-failed` evidence event; the approval goes on regardless.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("{notifier}: notification {id} cannot be sent: {reason}")]
    Invalid {
        notifier: String,
        id: String,
        reason: String,
    },
    #[error("{notifier}: receiver refused notification {id} with HTTP {status} after {attempts} attempt(s); not retried")]
    Rejected {
        notifier: String,
        id: String,
        status: u16,
        attempts: u32,
    },
    #[error("{notifier}: gave up on notification {id} after {attempts} attempt(s); last failure: {last}")]
    GaveUp {
        notifier: String,
        id: String,
        attempts: u32,
        last: String,
    },
}

pub type NotifyFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Delivered, NotifyError>> + Send + 'a>>;

/// `[notify]`: outgoing announcements.
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// Standard Webhooks receivers.
    pub webhooks: Vec<webhook::WebhookConfig>,
}

impl std::fmt::Debug for NotifyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets stay out of logs: names only.
        let names: Vec<&str> = self.webhooks.iter().map(|w| w.name.as_str()).collect();
        f.debug_struct("NotifyConfig")
            .field("webhooks", &names)
            .finish()
    }
}

/// One way of announcing. Object safe, so the host keeps a
/// `Vec<Arc<dyn Notifier>>` and sends each notification to all of them.
pub trait Notifier: Send + Sync {
    /// A short name for logs and evidence, e.g. `webhook:ops`.
    fn name(&self) -> &str;

    /// Delivers `notification`, retrying as the notifier sees fit. Never
    /// decides anything about the action.
    fn notify<'a>(&'a self, notification: &'a Notification) -> NotifyFuture<'a>;
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::action::Principal;

    #[test]
    fn summary_from_action_binds_the_digest() {
        let action = Action {
            id: "a1".into(),
            kind: "db.export".into(),
            agent: Principal {
                id: "etl".into(),
                attributes: BTreeMap::from([("owner".into(), "sam@example.com".into())]),
            },
            on_behalf_of: Some("pat@example.com".into()),
            resource: "db://x".into(),
            params: serde_json::json!({"rows": 10}),
            justification: Some("report".into()),
            context: BTreeMap::new(),
            requested_at: "2026-11-25T10:00:00Z".parse().unwrap(),
        };
        let classification = Classification {
            risk: Risk::High,
            reasons: vec!["pii".into()],
            tags: vec![],
        };
        let summary = ActionSummary::from_action(&action, &classification);
        assert_eq!(summary.digest, action.digest());
        assert_eq!(summary.owner, "sam@example.com");
        assert_eq!(summary.risk, Risk::High);
        assert_eq!(summary.reasons, vec!["pii".to_string()]);
    }

    /// The host holds notifiers as trait objects.
    #[test]
    fn notifier_is_object_safe() {
        fn _takes(_: Vec<std::sync::Arc<dyn Notifier>>) {}
    }
}
