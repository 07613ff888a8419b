//! The approval workflow around the rules: record a review under the
//! action's lock, commit its evidence, then change state and announce.
//! Every channel (API, CLI, Slack, Teams) comes through `Gate::review`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::rules::{self, Decision, Refusal, Request, RequestState, Requester, Review, Tally};
use super::summary::ApprovalSummary;
use crate::action::{Action, Route};
use crate::directory::ApproverId;
use crate::evaluate::Verdict;
use crate::evidence::{Actor, ActorKind, EventKind, NewEvent};
use crate::gate::{event, grant_event, verdict_events, Gate, GateError, State};
use crate::notify::{Notification, NotificationKind, ReviewEntry};
use crate::store::{ActionChange, ActionRow, ReviewRow, StoreError};

/// Why a review did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// An approval rule refused it; the message speaks to the reviewer.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The action needs a passkey step-up that is missing or refused.
    #[error(transparent)]
    StepUp(#[from] crate::stepup::StepUpError),
    #[error(transparent)]
    Gate(#[from] GateError),
}

impl From<StoreError> for ReviewError {
    fn from(e: StoreError) -> Self {
        ReviewError::Gate(e.into())
    }
}

/// What a review led to.
#[derive(Debug, Clone, Serialize)]
pub struct ReviewOutcome {
    pub state: State,
    /// The action as it stands now, for cards and API answers.
    pub notification: Notification,
}

impl Gate {
    /// Applies one review by `approver` through `channel`. Every approval
    /// rule is checked under the action's lock; the evidence is committed
    /// before the state changes. With `seen_digest`, the review is refused
    /// if the action is no longer the version the reviewer was shown.
    #[allow(clippy::too_many_arguments)] // one argument per field of a review, as every channel has them
    pub async fn review(
        &self,
        approver: &ApproverId,
        action_id: &str,
        decision: Decision,
        reason: Option<String>,
        params: Option<serde_json::Value>,
        seen_digest: Option<&str>,
        channel: &str,
    ) -> Result<ReviewOutcome, ReviewError> {
        self.review_with_step_up(
            approver,
            action_id,
            decision,
            reason,
            params,
            seen_digest,
            channel,
            None,
        )
        .await
    }

    /// `review`, with the passkey assertion a step-up action's approval
    /// (or modify) must carry. Channels that cannot carry one (chat) call
    /// `review`, and their approvals of step-up actions are refused here.
    #[allow(clippy::too_many_arguments)]
    pub async fn review_with_step_up(
        &self,
        approver: &ApproverId,
        action_id: &str,
        decision: Decision,
        reason: Option<String>,
        params: Option<serde_json::Value>,
        seen_digest: Option<&str>,
        channel: &str,
        step_up: Option<&crate::stepup::StepUpAssertion>,
    ) -> Result<ReviewOutcome, ReviewError> {
        let reason = reason
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty());
        let mut guard = self.store.lock_action(action_id).await?;
        let (row, action, verdict, request) = self.snapshot(action_id).await?;
        // A review counts only for the version the reviewer saw: checked
        // under the lock, so a modify cannot slip in between.
        if let Some(seen) = seen_digest {
            if seen != row.digest {
                return Err(Refusal::Stale {
                    seen: seen.to_string(),
                    current: row.digest.clone(),
                }
                .into());
            }
        }
        let now = Utc::now();
        rules::check(
            &self.directory,
            &request,
            approver,
            decision,
            reason.as_deref(),
            now,
        )?;
        let person = self
            .directory
            .person(approver)
            .expect("check() found the approver");
        // After the rules, so a review they refuse spends no challenge.
        let mut step_up_required = self.step_up_in_force(&action, &verdict).await?;
        let proof = self
            .step_up_proof(approver, &row, decision, step_up_required, step_up)
            .await?;
        let action_uuid = uuid_of(&row.id)?;
        let human = Actor {
            kind: ActorKind::Human,
            id: approver.to_string(),
        };

        let mut events = Vec::new();
        let mut change = ActionChange::default();
        let mut reviews = request.reviews.clone();
        // The modified action's shadow, run once its answer is committed.
        let mut shadow = None;
        let (final_action, mut final_verdict, review_digest) = match decision {
            Decision::Approve | Decision::Deny => {
                (action.clone(), verdict.clone(), row.digest.clone())
            }
            Decision::Modify => {
                let changes = params.ok_or_else(|| {
                    GateError::Invalid("params: a modify must say which params change".into())
                })?;
                let new_params = rules::apply_modify(
                    &action.params,
                    &changes,
                    &request.route.modifiable_params,
                )?;
                let modified = Action {
                    params: new_params,
                    ..action.clone()
                };
                let evaluator = self.evaluator.clone();
                let input = modified.clone();
                let (new_verdict, new_shadow) =
                    tokio::task::spawn_blocking(move || evaluator.evaluate_bound(&input))
                        .await
                        .expect("evaluation never panics")
                        .map_err(GateError::from)?;
                shadow = new_shadow;
                self.metrics.evaluated(&new_verdict);
                let digest = modified.digest();
                change.action =
                    Some(serde_json::to_string(&modified).expect("an action serializes"));
                change.digest = Some(digest.clone());
                // A modify never lowers the bar: if the new version needs
                // step-up, the modifier's approval of it needs a proof too.
                if let Some(su) = &self.step_up {
                    if su
                        .config
                        .applies(&modified.kind, new_verdict.classification.risk)
                    {
                        step_up_required = true;
                        if proof.is_none() {
                            return Err(crate::stepup::StepUpError::Required {
                                action_id: row.id.clone(),
                                link: su.config.inbox_link(&row.id),
                            }
                            .into());
                        }
                    }
                }
                (modified, new_verdict, digest)
            }
        };
        // A modify never lowers the bar: the route in force is the new
        // route raised to the one in force before (`None`: policy denies).
        let in_force = match decision {
            Decision::Modify => rules::route_after_modify(&request.route, &final_verdict.route),
            Decision::Approve | Decision::Deny => Some(request.route.clone()),
        };
        let mut reviewed = serde_json::json!({
            "approver": approver,
            "name": person.name(),
            "decision": decision,
            "reason": reason,
            "channel": channel,
            "digest": review_digest,
            "previous_digest": (decision == Decision::Modify).then_some(&row.digest),
            "changes": (decision == Decision::Modify).then_some(&change.action).map(|_| &final_action.params),
        });
        if let (Decision::Modify, Some(route)) = (decision, &in_force) {
            // Why the quorum is what it is after the modify, on record.
            reviewed["route_in_force"] = serde_json::json!(route);
        }
        // Written only where step-up is in force, so other stories read
        // as before; the story rules check the proof against the digest.
        if step_up_required {
            reviewed["step_up_required"] = serde_json::Value::Bool(true);
        }
        if let Some(proof) = &proof {
            reviewed["step_up"] = serde_json::to_value(proof).expect("a proof serializes");
        }
        events.push(event(
            EventKind::Reviewed,
            action_uuid,
            human.clone(),
            reviewed,
        ));
        if decision == Decision::Modify {
            events.extend(verdict_events(action_uuid, &final_action, &final_verdict));
            // The evaluation event above keeps the plugin's own route; the
            // stored verdict carries the one in force, which the next
            // review (and the next modify) starts from.
            if let Some(route) = &in_force {
                final_verdict.route = Route::RequireApproval(route.clone());
            }
        }
        reviews.push(Review {
            approver: approver.clone(),
            decision,
            reason: reason.clone(),
            digest: review_digest.clone(),
            at: now,
        });

        let state = match in_force {
            None => {
                let why = match &final_verdict.route {
                    Route::Deny { reason } => reason.clone(),
                    other => format!("policy answered {}", other.name()),
                };
                events.push(event(
                    EventKind::Denied,
                    action_uuid,
                    Actor::system("policy"),
                    serde_json::json!({
                        "reason": why, "after": "modify",
                    }),
                ));
                State::Denied
            }
            Some(route) => {
                let governing = Request {
                    digest: review_digest.clone(),
                    reviews,
                    route,
                    ..request.clone()
                };
                match rules::tally(&governing) {
                    Tally::Pending { .. } => State::Pending,
                    Tally::Denied { by, reason } => {
                        events.push(event(
                            EventKind::Denied,
                            action_uuid,
                            Actor {
                                kind: ActorKind::Human,
                                id: by.to_string(),
                            },
                            serde_json::json!({
                                "by": by, "reason": reason,
                            }),
                        ));
                        let mut v =
                            serde_json::to_value(&final_verdict).expect("a verdict serializes");
                        v["denied_reason"] = serde_json::json!(format!(
                            "denied by {by}{}",
                            reason.map(|r| format!(": {r}")).unwrap_or_default()
                        ));
                        change.verdict = Some(v.to_string());
                        State::Denied
                    }
                    Tally::Approved { approvers } => {
                        let emails: Vec<String> =
                            approvers.iter().map(ToString::to_string).collect();
                        events.push(event(
                            EventKind::Approved,
                            action_uuid,
                            Actor::system("approvals"),
                            serde_json::json!({
                                "approvers": emails, "digest": review_digest,
                            }),
                        ));
                        let (token, claims) = self.issue_grant(
                            &final_action,
                            &final_action.digest(),
                            &final_verdict,
                            emails,
                            now,
                        );
                        events.push(grant_event(action_uuid, &claims));
                        self.store
                            .insert_grant(
                                &claims.jti,
                                &row.id,
                                DateTime::from_timestamp(claims.exp, 0).unwrap_or(now),
                            )
                            .await?;
                        change.grant_token = Some(token);
                        State::Approved
                    }
                }
            }
        };
        if decision == Decision::Modify && change.verdict.is_none() {
            change.verdict =
                Some(serde_json::to_string(&final_verdict).expect("a verdict serializes"));
            if let Route::RequireApproval(a) = &final_verdict.route {
                change.expires_at = Some(now + chrono::Duration::seconds(a.ttl_seconds.into()));
            }
        }

        // Evidence first; then the review and the state, under the lock.
        self.evidence
            .append_all(events)
            .await
            .map_err(GateError::from)?;
        self.store
            .insert_review(&ReviewRow {
                action_id: row.id.clone(),
                approver: approver.to_string(),
                decision: decision.as_str().into(),
                reason: reason.clone(),
                digest: review_digest,
                channel: channel.into(),
                at: now,
            })
            .await?;
        if !guard.transition("pending", state.as_str(), &change).await? {
            return Err(GateError::WrongState {
                state: "no longer pending",
                what: "the review was not applied",
            }
            .into());
        }
        guard.commit().await?;
        if let (Some(shadow), Some(live)) = (shadow, &final_verdict.plugin) {
            self.shadows
                .spawn(shadow, final_action.clone(), live.sha256.clone());
        }
        self.metrics.decided(state);
        tracing::info!(action_id = %row.id, approver = %approver, decision = decision.as_str(), channel, state = state.as_str(), "review recorded");
        self.changed(&row.id).await;
        if state == State::Approved && row.agent_id == crate::bindings::four_eyes::HOST_AGENT {
            // An approved policy change: the host is its executor. If this
            // fails, every replica's sync loop retries it.
            if let Err(e) = self.bindings.apply_approval(&row.id).await {
                tracing::error!(action_id = %row.id, error = %e, "approved binding change not applied yet");
            }
        }

        let review = ReviewEntry {
            approver: approver.to_string(),
            name: person.name().to_string(),
            decision: decision.as_str().into(),
            reason,
            at: now,
        };
        let kind = match state {
            State::Approved => NotificationKind::Approved,
            State::Denied => NotificationKind::Denied,
            _ => NotificationKind::Reviewed,
        };
        let mut notification = self.notification_for(&row.id, kind).await?;
        notification.review = Some(review);
        self.announce(notification.clone());
        Ok(ReviewOutcome {
            state,
            notification,
        })
    }

    /// The stored action, parsed, with the rules' view of it.
    /// The verified step-up proof an approval or modify of this action
    /// needs, or `None` when it needs none (a deny never does).
    async fn step_up_proof(
        &self,
        approver: &ApproverId,
        row: &ActionRow,
        decision: Decision,
        in_force: bool,
        assertion: Option<&crate::stepup::StepUpAssertion>,
    ) -> Result<Option<crate::stepup::StepUpProof>, ReviewError> {
        let Some(su) = &self.step_up else {
            return Ok(None);
        };
        if decision == Decision::Deny {
            return Ok(None);
        }
        match assertion {
            Some(a) => Ok(Some(su.verify(approver, &row.id, &row.digest, a).await?)),
            None if in_force => Err(crate::stepup::StepUpError::Required {
                action_id: row.id.clone(),
                link: su.config.inbox_link(&row.id),
            }
            .into()),
            None => Ok(None),
        }
    }

    /// A step-up challenge for `approver` bound to the current version of
    /// the pending action `action_id`.
    pub async fn step_up_challenge(
        &self,
        approver: &ApproverId,
        action_id: &str,
    ) -> Result<crate::stepup::StepUpChallenge, ReviewError> {
        let su = self
            .step_up
            .as_ref()
            .ok_or(crate::stepup::StepUpError::NotConfigured)?;
        let (row, _, _, request) = self.snapshot(action_id).await?;
        if request.state != RequestState::Pending {
            return Err(GateError::WrongState {
                state: request.state.as_str(),
                what: "no step-up challenge is issued",
            }
            .into());
        }
        Ok(su.challenge(approver, &row.id, &row.digest).await?)
    }

    /// Whether approving needs a passkey step-up: the rule applies to the
    /// version as it stands, or applied to an earlier one (a modify never
    /// lowers the bar; the evidence says whether step-up was in force).
    pub(crate) async fn step_up_in_force(
        &self,
        action: &Action,
        verdict: &Verdict,
    ) -> Result<bool, GateError> {
        let Some(su) = &self.step_up else {
            return Ok(false);
        };
        if su.config.applies(&action.kind, verdict.classification.risk) {
            return Ok(true);
        }
        let Ok(id) = uuid_of(&action.id) else {
            return Ok(false);
        };
        Ok(self.evidence.events_for_action(id).await?.iter().any(|e| {
            e.kind == EventKind::Reviewed
                && e.payload.get("step_up_required") == Some(&serde_json::Value::Bool(true))
        }))
    }

    async fn snapshot(
        &self,
        action_id: &str,
    ) -> Result<(ActionRow, Action, Verdict, Request), GateError> {
        let row = self
            .store
            .action(action_id)
            .await?
            .ok_or_else(|| GateError::NotFound(action_id.into()))?;
        let (action, verdict) = parse_row(&row)?;
        let request = self.request_of(&row, &action, &verdict).await?;
        Ok((row, action, verdict, request))
    }

    /// The rules' view of a stored action and its reviews.
    pub(crate) async fn request_of(
        &self,
        row: &ActionRow,
        action: &Action,
        verdict: &Verdict,
    ) -> Result<Request, GateError> {
        let route = match &verdict.route {
            Route::RequireApproval(a) => a.clone(),
            _ => crate::action::ApprovalRoute {
                groups: vec![],
                quorum: 1,
                ttl_seconds: 1,
                modifiable_params: vec![],
                escalate_to: vec![],
            },
        };
        let requester = Requester::from_action(action).ok_or_else(|| {
            GateError::Store(StoreError::Corrupt(format!(
                "action {} has no owner",
                row.id
            )))
        })?;
        let state = match State::parse(&row.state)? {
            State::Pending => RequestState::Pending,
            State::Approved | State::Allowed | State::Executed => RequestState::Approved,
            State::Denied => RequestState::Denied,
            State::Expired => RequestState::Expired,
        };
        let reviews = self
            .store
            .reviews(&row.id)
            .await?
            .into_iter()
            .filter_map(|r| {
                // People removed from the directory lose their approvals.
                let approver = self.directory.person_by_email(&r.approver)?.id().clone();
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
            action_id: row.id.clone(),
            digest: row.digest.clone(),
            route,
            risk: verdict.classification.risk,
            requester,
            state,
            expires_at: row.expires_at.unwrap_or(row.created_at),
            escalated: self.store.is_escalated(&row.id).await?,
            reviews,
        })
    }

    /// The one approval summary, with where to give a step-up approval
    /// when the step-up rule applies.
    async fn summarize(
        &self,
        action: &Action,
        verdict: &Verdict,
        request: &Request,
    ) -> Result<ApprovalSummary, GateError> {
        let mut summary =
            ApprovalSummary::build(action, verdict, request, &self.directory, &self.redaction);
        if let Some(su) = &self.step_up {
            if self.step_up_in_force(action, verdict).await? {
                summary.approval.step_up = Some(su.config.inbox_link(&action.id));
            }
        }
        Ok(summary)
    }

    /// The action as every channel shows it now: the one approval summary.
    pub async fn summary(&self, action_id: &str) -> Result<ApprovalSummary, GateError> {
        let (_, action, verdict, request) = self.snapshot(action_id).await?;
        self.summarize(&action, &verdict, &request).await
    }

    /// The action as a card shows it now.
    pub async fn notification_for(
        &self,
        action_id: &str,
        kind: NotificationKind,
    ) -> Result<Notification, GateError> {
        let mut notification = Notification::new(kind, self.summary(action_id).await?);
        notification.inbox_url = self
            .inbox_url
            .as_deref()
            .map(|base| crate::inbox::action_url(base, action_id));
        Ok(notification)
    }

    /// Pending actions `approver` may review now, as every channel shows them.
    pub async fn pending_for(
        &self,
        approver: &ApproverId,
    ) -> Result<Vec<ApprovalSummary>, GateError> {
        let now = Utc::now();
        let mut out = Vec::new();
        for row in self.store.pending_actions(500).await? {
            let (action, verdict) = parse_row(&row)?;
            let request = self.request_of(&row, &action, &verdict).await?;
            if may_review(&self.directory, &request, approver, now) {
                out.push(self.summarize(&action, &verdict, &request).await?);
            }
        }
        Ok(out)
    }

    /// One pending action `approver` may review now; `NotFound` otherwise,
    /// so an approver learns nothing of actions that are not theirs to judge.
    pub async fn pending_one_for(
        &self,
        approver: &ApproverId,
        action_id: &str,
    ) -> Result<ApprovalSummary, GateError> {
        let (_, action, verdict, request) = self.snapshot(action_id).await?;
        if !may_review(&self.directory, &request, approver, Utc::now()) {
            return Err(GateError::NotFound(format!(
                "{action_id} (or it is not pending for you)"
            )));
        }
        self.summarize(&action, &verdict, &request).await
    }

    /// Sends `notification` to every notifier, off the request path. A
    /// failure is evidence (`notify-failed`); it never blocks a decision.
    pub fn announce(&self, notification: Notification) {
        let notification = Arc::new(notification);
        for notifier in &self.notifiers {
            let (notifier, notification, evidence) = (
                notifier.clone(),
                notification.clone(),
                self.evidence.clone(),
            );
            tokio::spawn(async move {
                let action_id = Uuid::parse_str(&notification.action.action_id).ok();
                let (kind, payload) = match notifier.notify(&notification).await {
                    Ok(delivered) => (
                        EventKind::Notified,
                        serde_json::json!({
                            "notifier": notifier.name(), "notification": notification.id,
                            "kind": notification.kind, "attempts": delivered.attempts,
                        }),
                    ),
                    Err(e) => {
                        tracing::warn!(notifier = notifier.name(), action_id = %notification.action.action_id, error = %e, "notification failed");
                        (
                            EventKind::NotifyFailed,
                            serde_json::json!({
                                "notifier": notifier.name(), "notification": notification.id,
                                "kind": notification.kind, "error": e.to_string(),
                            }),
                        )
                    }
                };
                let recorded = evidence
                    .append(NewEvent {
                        kind,
                        action_id,
                        actor: Actor::system(notifier.name().to_string()),
                        payload,
                    })
                    .await;
                if let Err(e) = recorded {
                    tracing::error!(error = %e, "could not record a notification outcome");
                }
            });
        }
    }
}

pub(crate) fn parse_row(row: &ActionRow) -> Result<(Action, Verdict), GateError> {
    let corrupt = |what: &str, e: serde_json::Error| {
        GateError::Store(StoreError::Corrupt(format!(
            "action {} {what}: {e}",
            row.id
        )))
    };
    let action: Action = serde_json::from_str(&row.action).map_err(|e| corrupt("action", e))?;
    let verdict: Verdict = serde_json::from_str(&row.verdict).map_err(|e| corrupt("verdict", e))?;
    Ok((action, verdict))
}

pub(crate) fn uuid_of(id: &str) -> Result<Uuid, GateError> {
    Uuid::parse_str(id)
        .map_err(|e| GateError::Store(StoreError::Corrupt(format!("action id {id}: {e}"))))
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
