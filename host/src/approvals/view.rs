//! What reviewers and cards see of a held action: the rules' view of a
//! stored action, the notification a card shows, the list an approver may
//! act on; and announcing, which never decides and never blocks a decision.

use std::sync::Arc;

use chrono::Utc;
use uuid::Uuid;

use super::rules::{self, Decision, Request, RequestState, Requester, Review, Tally};
use crate::action::{ActionId, ApprovalRoute, Route, State};
use crate::directory::ApproverId;
use crate::evidence::payload::{self, Payload};
use crate::evidence::Actor;
use crate::gate::{ActionRecord, ActionStatus, Gate, GateError};
use crate::notify::{ActionSummary, ApprovalEntry, ApprovalState, Notification, NotificationKind};
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

    /// The action as a card shows it now.
    pub async fn notification_for(
        &self,
        action_id: &ActionId,
        kind: NotificationKind,
    ) -> Result<Notification, GateError> {
        let record = self.record(action_id).await?;
        let request = self.request_of(&record).await?;
        let approvers = match rules::tally(&request) {
            Tally::Pending { approvers, .. } | Tally::Approved { approvers } => approvers,
            Tally::Denied { .. } => Vec::new(),
        };
        let approvals = approvers
            .iter()
            .filter_map(|id| {
                let person = self.directory().person(id)?;
                let at = request
                    .reviews
                    .iter()
                    .find(|r| &r.approver == id && r.digest == request.digest)?
                    .at;
                Some(ApprovalEntry {
                    approver: id.to_string(),
                    name: person.name().to_string(),
                    at,
                })
            })
            .collect();
        Ok(Notification {
            id: Uuid::now_v7().to_string(),
            kind,
            action: ActionSummary::from_action(&record.action, &record.verdict.classification),
            approval: ApprovalState {
                groups: request.route.groups.clone(),
                quorum: request.quorum(),
                approvals,
                expires_at: request.expires_at,
                escalate_to: request.route.escalate_to.clone(),
            },
            review: None,
            occurred_at: Utc::now(),
        })
    }

    /// Pending actions `approver` may review now.
    pub async fn pending_for(&self, approver: &ApproverId) -> Result<Vec<ActionStatus>, GateError> {
        let now = Utc::now();
        let mut out = Vec::new();
        for row in self.store().pending_actions(500).await? {
            let record = ActionRecord::decode(row)?;
            let request = self.request_of(&record).await?;
            // Deny with a reason passes every gate an approve does except
            // the duplicate check: the list shows what this person may act on.
            if rules::check(
                self.directory(),
                &request,
                approver,
                Decision::Deny,
                Some("-"),
                now,
            )
            .is_ok()
            {
                out.push(record.status(false));
            }
        }
        Ok(out)
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
