//! notify: tells people that something happened to a held action (webhook,
//! later Slack and Teams). Notifiers announce; they never decide or record.

pub mod webhook;

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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

// What a notification shows of the action is the one approval summary
// every channel shows (built by approvals::summary).
pub mod summary;
pub use summary::{
    ActionSummary, ApprovalEntry, ApprovalState, ApprovalSummary, ApprovalsConfig, PluginSummary,
    Redaction, ReviewEntry,
};

/// One announcement. `id` is unique per notification and stays the same
/// across delivery retries (it is the webhook's `webhook-id`), so receivers
/// can drop duplicates. `action` and `approval` are the approval summary's
/// two halves, as every other channel shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub id: String,
    pub kind: NotificationKind,
    pub action: ActionSummary,
    pub approval: ApprovalState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<ReviewEntry>,
    pub occurred_at: DateTime<Utc>,
    /// The action's page in the web inbox, when the inbox is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbox_url: Option<String>,
}

impl Notification {
    /// A new notification (fresh id, now) of `kind` showing `summary`.
    pub fn new(kind: NotificationKind, summary: ApprovalSummary) -> Notification {
        Notification {
            id: uuid::Uuid::now_v7().to_string(),
            kind,
            action: summary.action,
            approval: summary.approval,
            review: None,
            occurred_at: Utc::now(),
            inbox_url: None,
        }
    }

    /// The approval summary it shows.
    pub fn summary(&self) -> ApprovalSummary {
        ApprovalSummary {
            action: self.action.clone(),
            approval: self.approval.clone(),
        }
    }
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

/// `BASE/inbox/actions/ID`: the web inbox's page of one action, which
/// notifications link to.
pub fn inbox_action_url(public_url: &str, action_id: &str) -> String {
    format!(
        "{}/inbox/actions/{action_id}",
        public_url.trim_end_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The host holds notifiers as trait objects.
    #[test]
    fn notifier_is_object_safe() {
        fn _takes(_: Vec<std::sync::Arc<dyn Notifier>>) {}
    }
}
