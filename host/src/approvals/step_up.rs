//! Which reviews need a passkey step-up, and the proof they carry: asks
//! `stepup` to issue challenges and verify assertions; never verifies a
//! passkey itself and never records anything (the review's evidence does).

use super::flow::ReviewError;
use super::rules::{Decision, RequestState};
use crate::action::{Action, ActionId};
use crate::directory::ApproverId;
use crate::evaluate::Verdict;
use crate::evidence::payload::Reviewed;
use crate::evidence::EventKind;
use crate::gate::{ActionRecord, Gate, GateError};
use crate::stepup::{StepUpAssertion, StepUpChallenge, StepUpError, StepUpProof};

impl Gate {
    /// The verified step-up proof an approval or modify of this action
    /// needs, or `None` when it needs none (a deny never does).
    pub(super) async fn step_up_proof(
        &self,
        approver: &ApproverId,
        record: &ActionRecord,
        decision: Decision,
        in_force: bool,
        assertion: Option<&StepUpAssertion>,
    ) -> Result<Option<StepUpProof>, ReviewError> {
        let Some(su) = self.step_up() else {
            return Ok(None);
        };
        if decision == Decision::Deny {
            return Ok(None);
        }
        let id = record.id.to_string();
        match assertion {
            Some(a) => Ok(Some(su.verify(approver, &id, &record.digest, a).await?)),
            None if in_force => Err(StepUpError::Required {
                link: su.config.inbox_link(&id),
                action_id: id,
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
        action_id: &ActionId,
    ) -> Result<StepUpChallenge, ReviewError> {
        let su = self.step_up().ok_or(StepUpError::NotConfigured)?;
        let record = self.record(action_id).await?;
        let request = self.request_of(&record).await?;
        if request.state != RequestState::Pending {
            return Err(GateError::WrongState {
                state: request.state.as_str(),
                what: "no step-up challenge is issued",
            }
            .into());
        }
        Ok(su
            .challenge(approver, &record.id.to_string(), &record.digest)
            .await?)
    }

    /// Whether approving needs a passkey step-up: the rule applies to the
    /// version as it stands, or applied to an earlier one (a modify never
    /// lowers the bar; the evidence says whether step-up was in force).
    pub(crate) async fn step_up_in_force(
        &self,
        action: &Action,
        verdict: &Verdict,
    ) -> Result<bool, GateError> {
        let Some(su) = self.step_up() else {
            return Ok(false);
        };
        if su.config.applies(&action.kind, verdict.classification.risk) {
            return Ok(true);
        }
        let Ok(id) = action.id.parse::<ActionId>() else {
            return Ok(false);
        };
        Ok(self
            .evidence()
            .events_for_action(id.uuid())
            .await?
            .iter()
            .filter(|e| e.kind == EventKind::Reviewed)
            .any(|e| e.payload_as::<Reviewed>().is_ok_and(|r| r.step_up_required)))
    }
}
