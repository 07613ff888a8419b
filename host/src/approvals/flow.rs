//! The approval workflow around the rules: one review, in four steps under
//! the action's lock: `check` (the rules), `revise` (a modify's new action
//! and verdict), `tally` (what the reviews add up to now), `commit` (the
//! evidence, then the review and the state). Every channel (API, CLI,
//! Slack, Teams) comes through `Gate::review`. Never changes a state before
//! its evidence is committed.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::rules::{self, Decision, Refusal, Request, Review, Tally};
use crate::action::{Action, ActionId, ApprovalRoute, Route, State};
use crate::directory::ApproverId;
use crate::evaluate::Verdict;
use crate::evidence::payload::{self, Payload};
use crate::evidence::{Actor, ActorKind, NewEvent};
use crate::gate::{grant_event, verdict_events, ActionRecord, Gate, GateError};
use crate::notify::{Notification, NotificationKind, ReviewEntry};
use crate::sandbox::Plugin;
use crate::stepup::{StepUpAssertion, StepUpError, StepUpProof};
use crate::store::{ActionChange, ActionGuard, ReviewRow, StoreError};

/// Why a review did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// An approval rule refused it; the message speaks to the reviewer.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The action needs a passkey step-up that is missing or refused.
    #[error(transparent)]
    StepUp(#[from] StepUpError),
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

/// One review as a channel hands it in.
#[derive(Debug, Clone)]
pub struct ReviewRequest {
    pub decision: Decision,
    pub reason: Option<String>,
    /// A modify's changes to the modifiable params.
    pub params: Option<serde_json::Value>,
    /// The digest the reviewer was shown: the review is refused if the
    /// action changed since.
    pub seen_digest: Option<String>,
    /// `api`, `slack`, `teams`, …, as recorded.
    pub channel: String,
    /// The passkey assertion a step-up action's approval (or modify) must
    /// carry. Channels that cannot carry one (chat) send `None`, and their
    /// approvals of step-up actions are refused.
    pub step_up: Option<StepUpAssertion>,
}

/// A review the rules accept, with what they looked at.
struct Checked<'a> {
    record: ActionRecord,
    request: Request,
    approver: &'a ApproverId,
    /// The approver's name, as the directory has it.
    name: String,
    decision: Decision,
    reason: Option<String>,
    now: DateTime<Utc>,
    /// Whether approving needs a passkey step-up now.
    step_up_required: bool,
    /// The verified step-up, when one was given.
    proof: Option<StepUpProof>,
}

/// The action the review is about once applied: itself, or a modify's new
/// version with its fresh verdict.
struct Revision {
    action: Action,
    verdict: Verdict,
    digest: String,
    /// The modified action's shadow, run once its answer is committed.
    shadow: Option<std::sync::Arc<Plugin>>,
    change: ActionChange,
    /// The route in force from now on: after a modify, the new route
    /// raised to the bar in force before it (`None`: the policy denies).
    in_force: Option<ApprovalRoute>,
    /// Step-up is in force for this review: before, or for the modified
    /// version (a modify never lowers the bar).
    step_up_required: bool,
}

/// Where the reviews leave the action.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Standing {
    /// The modified action's policy denies it.
    DeniedByPolicy {
        reason: String,
    },
    Pending,
    DeniedBy {
        by: ApproverId,
        reason: Option<String>,
    },
    Approved {
        approvers: Vec<ApproverId>,
    },
}

impl Standing {
    fn state(&self) -> State {
        match self {
            Standing::DeniedByPolicy { .. } | Standing::DeniedBy { .. } => State::Denied,
            Standing::Pending => State::Pending,
            Standing::Approved { .. } => State::Approved,
        }
    }
}

impl Gate {
    /// Applies one review by `approver`. Every approval rule is checked
    /// under the action's lock; the evidence is committed before the state
    /// changes.
    pub async fn review(
        &self,
        approver: &ApproverId,
        action_id: &ActionId,
        review: ReviewRequest,
    ) -> Result<ReviewOutcome, ReviewError> {
        let mut guard = self.store().lock_action(&action_id.to_string()).await?;
        let checked = self.check(&mut guard, approver, action_id, &review).await?;
        let revision = self.revise(&checked, review.params).await?;
        let standing = tally(&checked, &revision);
        self.commit(guard, checked, revision, standing, &review.channel)
            .await
    }

    /// Step 1: the stored action, still the version the reviewer saw, and
    /// every approval rule.
    async fn check<'a>(
        &self,
        _guard: &mut ActionGuard,
        approver: &'a ApproverId,
        action_id: &ActionId,
        review: &ReviewRequest,
    ) -> Result<Checked<'a>, ReviewError> {
        let reason = review
            .reason
            .as_ref()
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty());
        let record = self.record(action_id).await?;
        let request = self.request_of(&record).await?;
        // A review counts only for the version the reviewer saw: checked
        // under the lock, so a modify cannot slip in between.
        if let Some(seen) = &review.seen_digest {
            if *seen != record.digest {
                return Err(Refusal::Stale {
                    seen: seen.clone(),
                    current: record.digest.clone(),
                }
                .into());
            }
        }
        let now = Utc::now();
        rules::check(
            self.directory(),
            &request,
            approver,
            review.decision,
            reason.as_deref(),
            now,
        )?;
        let name = self
            .directory()
            .person(approver)
            .expect("check() found the approver")
            .name()
            .to_string();
        // After the rules, so a review they refuse spends no challenge.
        let step_up_required = self
            .step_up_in_force(&record.action, &record.verdict)
            .await?;
        let proof = self
            .step_up_proof(
                approver,
                &record,
                review.decision,
                step_up_required,
                review.step_up.as_ref(),
            )
            .await?;
        Ok(Checked {
            record,
            request,
            approver,
            name,
            decision: review.decision,
            reason,
            now,
            step_up_required,
            proof,
        })
    }

    /// Step 2: a modify changes only the modifiable params, and the new
    /// action is evaluated again, from scratch.
    async fn revise(
        &self,
        checked: &Checked<'_>,
        params: Option<serde_json::Value>,
    ) -> Result<Revision, ReviewError> {
        let record = &checked.record;
        if checked.decision != Decision::Modify {
            return Ok(Revision {
                action: record.action.clone(),
                verdict: record.verdict.clone(),
                digest: record.digest.clone(),
                shadow: None,
                change: ActionChange::default(),
                in_force: Some(checked.request.route.clone()),
                step_up_required: checked.step_up_required,
            });
        }
        let changes = params.ok_or_else(|| {
            GateError::Invalid("params: a modify must say which params change".into())
        })?;
        let new_params = rules::apply_modify(
            &record.action.params,
            &changes,
            &checked.request.route.modifiable_params,
        )?;
        let modified = Action {
            params: new_params,
            ..record.action.clone()
        };
        let evaluator = self.evaluator().clone();
        let input = modified.clone();
        let (verdict, shadow) =
            tokio::task::spawn_blocking(move || evaluator.evaluate_bound(&input))
                .await
                .expect("evaluation never panics")
                .map_err(GateError::from)?;
        self.metrics().evaluated(&verdict);
        // A modify never lowers the bar: if the new version needs step-up,
        // the modifier's approval of it needs a proof too.
        let mut step_up_required = checked.step_up_required;
        if let Some(su) = self.step_up() {
            if su
                .config
                .applies(&modified.kind, verdict.classification.risk)
            {
                step_up_required = true;
                if checked.proof.is_none() {
                    return Err(StepUpError::Required {
                        action_id: record.id.to_string(),
                        link: su.config.inbox_link(&record.id.to_string()),
                    }
                    .into());
                }
            }
        }
        let digest = modified.digest();
        let change = ActionChange {
            action: Some(serde_json::to_string(&modified).expect("an action serializes")),
            digest: Some(digest.clone()),
            ..ActionChange::default()
        };
        // A modify never lowers the bar.
        let in_force = rules::route_after_modify(&checked.request.route, &verdict.route);
        Ok(Revision {
            action: modified,
            verdict,
            digest,
            shadow,
            change,
            in_force,
            step_up_required,
        })
    }

    /// Step 4: the evidence, then (under the lock) the review and the new
    /// state; then what follows a committed review: the shadow, waiters,
    /// an approval's hook, the cards.
    async fn commit(
        &self,
        mut guard: ActionGuard,
        checked: Checked<'_>,
        revision: Revision,
        standing: Standing,
        channel: &str,
    ) -> Result<ReviewOutcome, ReviewError> {
        let Checked {
            record,
            approver,
            name,
            decision,
            reason,
            now,
            proof,
            ..
        } = checked;
        let Revision {
            action: final_action,
            verdict: mut final_verdict,
            digest: review_digest,
            shadow,
            mut change,
            in_force,
            step_up_required,
        } = revision;
        let action_uuid = Some(record.id.uuid());
        let modify = decision == Decision::Modify;
        let mut events: Vec<NewEvent> = vec![payload::Reviewed {
            approver: approver.to_string(),
            name: name.clone(),
            decision,
            reason: reason.clone(),
            channel: channel.to_string(),
            digest: review_digest.clone(),
            previous_digest: modify.then(|| record.digest.clone()),
            changes: modify.then(|| final_action.params.clone()),
            // Why the quorum is what it is after the modify, on record.
            route_in_force: in_force.clone().filter(|_| modify),
            // Written only where step-up is in force, so other stories read
            // as before; the story rules check the proof against the digest.
            step_up_required,
            step_up: proof,
        }
        .event(
            action_uuid,
            Actor {
                kind: ActorKind::Human,
                id: approver.to_string(),
            },
        )];
        if modify {
            events.extend(verdict_events(
                record.id.uuid(),
                &final_action,
                &final_verdict,
            ));
            // The evaluation event keeps the plugin's own route; the stored
            // verdict carries the one in force, which the next review (and
            // the next modify) starts from.
            if let Some(route) = &in_force {
                final_verdict.route = Route::RequireApproval(route.clone());
            }
        }
        let state = standing.state();
        match standing {
            Standing::DeniedByPolicy { reason: why } => events.push(
                payload::Denied {
                    by: None,
                    reason: Some(why),
                    risk: None,
                    after: Some("modify".into()),
                }
                .event(action_uuid, Actor::system("policy")),
            ),
            Standing::Pending => {}
            Standing::DeniedBy { by, reason } => {
                events.push(
                    payload::Denied {
                        by: Some(by.to_string()),
                        reason: reason.clone(),
                        risk: None,
                        after: None,
                    }
                    .event(
                        action_uuid,
                        Actor {
                            kind: ActorKind::Human,
                            id: by.to_string(),
                        },
                    ),
                );
                let mut v = serde_json::to_value(&final_verdict).expect("a verdict serializes");
                v["denied_reason"] = serde_json::json!(format!(
                    "denied by {by}{}",
                    reason.map(|r| format!(": {r}")).unwrap_or_default()
                ));
                change.verdict = Some(v.to_string());
            }
            Standing::Approved { approvers } => {
                let emails: Vec<String> = approvers.iter().map(ToString::to_string).collect();
                events.push(
                    payload::Approved {
                        approvers: emails.clone(),
                        digest: review_digest.clone(),
                    }
                    .event(action_uuid, Actor::system("approvals")),
                );
                let (token, claims) = self.issue_grant(
                    &final_action,
                    &final_action.digest(),
                    &final_verdict,
                    emails,
                    now,
                );
                events.push(grant_event(record.id.uuid(), &claims));
                self.store()
                    .insert_grant(
                        &claims.jti,
                        &record.id.to_string(),
                        DateTime::from_timestamp(claims.exp, 0).unwrap_or(now),
                    )
                    .await?;
                change.grant_token = Some(token);
            }
        }
        if modify && change.verdict.is_none() {
            change.verdict =
                Some(serde_json::to_string(&final_verdict).expect("a verdict serializes"));
            if let Route::RequireApproval(a) = &final_verdict.route {
                change.expires_at = Some(now + chrono::Duration::seconds(a.ttl_seconds.into()));
            }
        }

        // Evidence first; then the review and the state, under the lock.
        self.evidence()
            .append_all(events)
            .await
            .map_err(GateError::from)?;
        let id = record.id.to_string();
        self.store()
            .insert_review(&ReviewRow {
                action_id: id.clone(),
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
            self.shadows()
                .spawn(shadow, final_action.clone(), live.sha256.clone());
        }
        self.metrics().decided(state);
        tracing::info!(action_id = %id, approver = %approver, decision = decision.as_str(), channel, state = state.as_str(), "review recorded");
        self.changed(&id).await;
        if state == State::Approved {
            // What the host executes itself (a binding change) runs now; if
            // it fails, its own retry picks it up.
            self.approved(&id, &final_action.kind).await;
        }

        let review = ReviewEntry {
            approver: approver.to_string(),
            name,
            decision: decision.as_str().into(),
            reason,
            at: now,
        };
        let kind = match state {
            State::Approved => NotificationKind::Approved,
            State::Denied => NotificationKind::Denied,
            _ => NotificationKind::Reviewed,
        };
        let mut notification = self.notification_for(&record.id, kind).await?;
        notification.review = Some(review);
        self.announce(notification.clone());
        Ok(ReviewOutcome {
            state,
            notification,
        })
    }
}

/// Step 3: what the reviews add up to, under the route in force now.
fn tally(checked: &Checked<'_>, revision: &Revision) -> Standing {
    let mut reviews = checked.request.reviews.clone();
    reviews.push(Review {
        approver: checked.approver.clone(),
        decision: checked.decision,
        reason: checked.reason.clone(),
        digest: revision.digest.clone(),
        at: checked.now,
    });
    standing(
        &checked.request,
        revision.in_force.clone(),
        &revision.verdict.route,
        revision.digest.clone(),
        reviews,
    )
}

/// `tally`'s rule, pure: the request as it was, the route in force (`None`
/// when the policy denies the action as it now stands, answering `route`),
/// the digest reviewed and every review including this one.
pub(super) fn standing(
    request: &Request,
    in_force: Option<ApprovalRoute>,
    route: &Route,
    digest: String,
    reviews: Vec<Review>,
) -> Standing {
    let Some(in_force) = in_force else {
        return Standing::DeniedByPolicy {
            reason: match route {
                Route::Deny { reason } => reason.clone(),
                other => format!("policy answered {}", other.name()),
            },
        };
    };
    let governing = Request {
        digest,
        reviews,
        route: in_force,
        ..request.clone()
    };
    match rules::tally(&governing) {
        Tally::Pending { .. } => Standing::Pending,
        Tally::Denied { by, reason } => Standing::DeniedBy { by, reason },
        Tally::Approved { approvers } => Standing::Approved { approvers },
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::action::{ApprovalRoute, Risk};
    use crate::approvals::rules::{RequestState, Requester};
    use crate::directory::{two_data_owners as dir, Directory};

    fn held(quorum: u32) -> ApprovalRoute {
        ApprovalRoute {
            groups: vec!["data-owners".into()],
            quorum,
            ttl_seconds: 3600,
            modifiable_params: vec!["rows".into()],
            escalate_to: vec![],
        }
    }

    fn request(quorum: u32) -> Request {
        let at: DateTime<Utc> = "2026-12-06T07:00:00Z".parse().unwrap();
        Request {
            action_id: "a".into(),
            digest: "d1".into(),
            route: held(quorum),
            risk: Risk::High,
            requester: Requester {
                agent_id: "etl".into(),
                owner: "owner@example.com".into(),
                on_behalf_of: None,
            },
            state: RequestState::Pending,
            expires_at: at + Duration::hours(1),
            escalated: false,
            reviews: vec![],
        }
    }

    fn approve(d: &Directory, email: &str, digest: &str) -> Review {
        Review {
            approver: d.person_by_email(email).unwrap().id().clone(),
            decision: Decision::Approve,
            reason: None,
            digest: digest.into(),
            at: "2026-12-06T07:01:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn the_route_in_force_decides_what_the_reviews_add_up_to() {
        let d = dir();
        let one = vec![approve(&d, "dana@example.com", "d1")];
        let held2 = Route::RequireApproval(held(2));
        // Held for two: one approval leaves it pending; a second approves.
        assert_eq!(
            standing(&request(2), Some(held(2)), &held2, "d1".into(), one.clone()),
            Standing::Pending
        );
        let two = vec![
            approve(&d, "dana@example.com", "d1"),
            approve(&d, "erin@example.com", "d1"),
        ];
        match standing(&request(2), Some(held(2)), &held2, "d1".into(), two) {
            Standing::Approved { approvers } => assert_eq!(approvers.len(), 2),
            other => panic!("{other:?}"),
        }
        // After a modify the policy allows, the bar in force before stays:
        // one approval of the new version is still not two.
        let after = rules::route_after_modify(&held(2), &Route::Allow);
        assert_eq!(
            standing(&request(2), after, &Route::Allow, "d2".into(), one.clone()),
            Standing::Pending
        );
        // One the policy denies is denied, whatever the reviews.
        let deny = Route::Deny {
            reason: "no".into(),
        };
        assert_eq!(
            standing(
                &request(2),
                rules::route_after_modify(&held(2), &deny),
                &deny,
                "d2".into(),
                one
            ),
            Standing::DeniedByPolicy {
                reason: "no".into()
            }
        );
        assert_eq!(Standing::Pending.state(), State::Pending);
    }
}
