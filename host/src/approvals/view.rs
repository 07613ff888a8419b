//! What reviewers and cards see of a held action: the rules' view of a
//! stored action, the notification a card shows, the list an approver may
//! act on; and announcing, which never decides and never blocks a decision.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::rules::{self, Decision, Request, RequestState, Requester, Review};
use super::summary::ApprovalSummary;
use crate::action::{ActionId, ApprovalRoute, Route, State};
use crate::directory::ApproverId;
use crate::evidence::payload::{self, Payload};
use crate::evidence::Actor;
use crate::gate::{ActionRecord, Gate, GateError};
use crate::notify::{Notification, NotificationKind};
use crate::store::StoreError;

impl Gate {
    /// The rules' view of a stored action and its reviews.
    pub(crate) async fn request_of(&self, record: &ActionRecord) -> Result<Request, GateError> {
        let id = record.id.to_string();
        let route = match &record.verdict.route {
            Route::RequireApproval(a) => a.clone(),
            _ => ApprovalRoute {
                groups: vec![],
                quorum: 1,
                ttl_seconds: 1,
                modifiable_params: vec![],
                escalate_to: vec![],
            },
        };
        let requester = Requester::from_action(&record.action).ok_or_else(|| {
            GateError::Store(StoreError::Corrupt(format!("action {id} has no owner")))
        })?;
        let state = match record.state {
            State::Pending => RequestState::Pending,
            State::Approved | State::Allowed | State::Executed => RequestState::Approved,
            State::Denied => RequestState::Denied,
            State::Expired => RequestState::Expired,
        };
        let reviews = self
            .store()
            .reviews(&id)
            .await?
            .into_iter()
            .filter_map(|r| {
                // People removed from the directory lose their approvals.
                let approver = self.directory().person_by_email(&r.approver)?.id().clone();
                let decision = match r.decision.as_str() {
                    "approve" => Decision::Approve,
                    "deny" => Decision::Deny,
                    _ => Decision::Modify,
                };
                Some(Review {
                    approver,
                    decision,
                    reason: r.reason,
                    digest: r.digest,
                    at: r.at,
                })
            })
            .collect();
        Ok(Request {
            action_id: id.clone(),
            digest: record.digest.clone(),
            route,
            risk: record.verdict.classification.risk,
            requester,
            state,
            expires_at: record.expires_at.unwrap_or(record.created_at),
            escalated: self.store().is_escalated(&id).await?,
            reviews,
        })
    }

    /// The action as every channel shows it now: the one approval summary.
    pub async fn summary(&self, action_id: &ActionId) -> Result<ApprovalSummary, GateError> {
        let record = self.record(action_id).await?;
        let request = self.request_of(&record).await?;
        self.summary_of(&record, &request).await
    }

    /// The one approval summary, with where to give a step-up approval
    /// when the step-up rule applies.
    async fn summary_of(
        &self,
        record: &ActionRecord,
        request: &Request,
    ) -> Result<ApprovalSummary, GateError> {
        let mut summary = ApprovalSummary::build(
            &record.action,
            &record.verdict,
            request,
            self.directory(),
            self.redaction(),
        );
        if let Some(su) = self.step_up() {
            if self
                .step_up_in_force(&record.action, &record.verdict)
                .await?
            {
                summary.approval.step_up = Some(su.config.inbox_link(&record.id.to_string()));
            }
        }
        Ok(summary)
    }

    /// The action as a card shows it now.
    pub async fn notification_for(
        &self,
        action_id: &ActionId,
        kind: NotificationKind,
    ) -> Result<Notification, GateError> {
        let mut notification = Notification::new(kind, self.summary(action_id).await?);
        notification.inbox_url = self
            .inbox_url()
            .map(|base| crate::notify::inbox_action_url(base, &action_id.to_string()));
        Ok(notification)
    }

    /// Pending actions `approver` may review now, as every channel shows them.
    pub async fn pending_for(
        &self,
        approver: &ApproverId,
    ) -> Result<Vec<ApprovalSummary>, GateError> {
        let now = Utc::now();
        let mut out = Vec::new();
        for row in self.store().pending_actions(500).await? {
            let record = ActionRecord::decode(row)?;
            let request = self.request_of(&record).await?;
            if may_review(self.directory(), &request, approver, now) {
                out.push(self.summary_of(&record, &request).await?);
            }
        }
        Ok(out)
    }

    /// One pending action `approver` may review now; `NotFound` otherwise,
    /// so an approver learns nothing of actions that are not theirs to judge.
    pub async fn pending_one_for(
        &self,
        approver: &ApproverId,
        action_id: &ActionId,
    ) -> Result<ApprovalSummary, GateError> {
        let record = self.record(action_id).await?;
        let request = self.request_of(&record).await?;
        if !may_review(self.directory(), &request, approver, Utc::now()) {
            return Err(GateError::NotFound(format!(
                "{action_id} (or it is not pending for you)"
            )));
        }
        self.summary_of(&record, &request).await
    }

    /// Sends `notification` to every notifier, off the request path. A
    /// failure is evidence (`notify-failed`); it never blocks a decision.
    pub fn announce(&self, notification: Notification) {
        let notification = Arc::new(notification);
        for notifier in self.notifiers() {
            let (notifier, notification, evidence) = (
                notifier.clone(),
                notification.clone(),
                self.evidence().clone(),
            );
            tokio::spawn(async move {
                let action_id = Uuid::parse_str(&notification.action.action_id).ok();
                let actor = Actor::system(notifier.name().to_string());
                let event = match notifier.notify(&notification).await {
                    Ok(delivered) => payload::Notified {
                        notifier: notifier.name().to_string(),
                        notification: notification.id.clone(),
                        kind: notification.kind,
                        attempts: delivered.attempts,
                    }
                    .event(action_id, actor),
                    Err(e) => {
                        tracing::warn!(notifier = notifier.name(), action_id = %notification.action.action_id, error = %e, "notification failed");
                        payload::NotifyFailed {
                            notifier: notifier.name().to_string(),
                            notification: notification.id.clone(),
                            kind: notification.kind,
                            error: e.to_string(),
                        }
                        .event(action_id, actor)
                    }
                };
                if let Err(e) = evidence.append(event).await {
                    tracing::error!(error = %e, "could not record a notification outcome");
                }
            });
        }
    }
}

/// Deny with a reason passes every gate an approve does except the
/// duplicate check: what this person may act on now.
fn may_review(
    directory: &crate::directory::Directory,
    request: &Request,
    approver: &ApproverId,
    now: DateTime<Utc>,
) -> bool {
    rules::check(directory, request, approver, Decision::Deny, Some("-"), now).is_ok()
}
