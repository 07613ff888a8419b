//! Runs by the host itself (the MCP gateway executes the tool call it
//! gated): the grant is claimed before the run (in the decision's own
//! commit when it is allowed at once), so an action runs at most once
//! however many requests race for it, and the outcome is recorded with the
//! grant after, its event and the state in one commit. Never runs an action
//! that is not allowed or approved.

use chrono::Utc;

use crate::action::{Action, ActionId};
use crate::evidence::payload::{self, Payload};
use crate::evidence::{Actor, ActorKind};
use crate::gate::{
    stored_action_id, ActionStatus, Evaluated, Gate, GateError, OutcomeStatus, State,
};
use crate::store::{ActionChange, ActionMove, AgentRow, StoreError};

/// What claiming an action's run found.
#[derive(Debug)]
pub enum Claim {
    /// This caller holds the grant and must run the action, then record it.
    Run(Box<ClaimedRun>),
    /// Another request claimed it first (it runs, or ran, there).
    Taken,
    /// Its grant expired before anyone ran it.
    GrantExpired,
    /// Not allowed or approved (yet, or any more).
    NotRunnable(State),
}

/// A claimed run: the action as it must run (after any modification).
#[derive(Debug)]
pub struct ClaimedRun {
    pub id: ActionId,
    pub action: Action,
    pub digest: String,
    jti: String,
    from: State,
}

/// How a host-executed run went.
pub struct RunReport {
    pub status: OutcomeStatus,
    pub summary: String,
    /// Facts about the result (its sha256 and size), not the result itself.
    pub result: serde_json::Value,
}

impl Gate {
    /// Records the decision of an action the host will run itself, as
    /// `Gate::evaluate_new` evaluated it. When it is allowed at once, it
    /// comes back claimed: its grant was consumed in the commit that
    /// recorded the decision, so the run needs no claim of its own.
    /// Otherwise (held, denied) there is no run; once it is approved,
    /// `claim_run` claims it.
    pub async fn record_to_run(
        &self,
        agent: &AgentRow,
        evaluated: Evaluated,
    ) -> Result<(ActionStatus, Option<ClaimedRun>), GateError> {
        let (status, claimed) = self.record_evaluated(agent, evaluated, true).await?;
        let run = match claimed {
            Some(c) => Some(ClaimedRun {
                id: status.action_id.parse()?,
                action: c.action,
                digest: c.digest,
                jti: c.jti,
                from: State::Allowed,
            }),
            None => None,
        };
        Ok((status, run))
    }

    /// Claims the run of `agent`'s action `id` by consuming its grant.
    pub async fn claim_run(&self, agent: &AgentRow, id: &ActionId) -> Result<Claim, GateError> {
        let record = self.owned_action(agent, id).await?;
        let state = record.state;
        if !matches!(state, State::Allowed | State::Approved) {
            return Ok(Claim::NotRunnable(state));
        }
        let token = record.grant_token.as_deref().ok_or_else(|| {
            StoreError::Corrupt(format!("{} action {id} has no grant", state.as_str()))
        })?;
        let claims = match self.grants().verify(token, Utc::now()) {
            Ok(claims) => claims,
            Err(crate::grant::GrantError::Expired(_)) => return Ok(Claim::GrantExpired),
            Err(e) => return Err(GateError::GrantRefused(e.to_string())),
        };
        if !self.store().consume_grant(&claims.jti, Utc::now()).await? {
            return Ok(Claim::Taken);
        }
        Ok(Claim::Run(Box::new(ClaimedRun {
            id: record.id,
            action: record.action,
            digest: record.digest,
            jti: claims.jti,
            from: state,
        })))
    }

    /// Records how a claimed run went: the `executed` event and, in the
    /// commit that waits for its flush, the state `executed`. A report of
    /// what already happened: it shares a commit with other such reports,
    /// never one a caller waits on (`EvidenceLog::append_after_the_fact`).
    pub async fn record_run(
        &self,
        agent: &AgentRow,
        run: &ClaimedRun,
        report: RunReport,
    ) -> Result<(), GateError> {
        let key = run.id.to_string();
        let action_move = ActionMove {
            id: key.clone(),
            from: run.from.as_str().into(),
            to: State::Executed.as_str().into(),
            at: Utc::now(),
        };
        let (_, moved) = self
            .evidence()
            .append_after_the_fact(
                vec![payload::Executed {
                    digest: run.digest.clone(),
                    status: report.status.into(),
                    summary: report.summary,
                    by: payload::ExecutedBy::Gateway {
                        jti: run.jti.clone(),
                        logs: None,
                        executor: "mcp-gateway".into(),
                        result: report.result,
                    },
                }
                .event(
                    Some(run.id.uuid()),
                    Actor {
                        kind: ActorKind::Agent,
                        id: agent.id.clone(),
                    },
                )],
                action_move,
            )
            .await?;
        if !moved {
            // Only this run holds the grant, so nothing else should move it.
            tracing::warn!(action_id = %key, from = run.from.as_str(), "a run was recorded but its action had already left that state");
        }
        // Other replicas hear of it from the commit's NOTIFY (Postgres).
        self.waiters().wake(&key);
        Ok(())
    }

    /// Gives each grant spent at or before `before` whose outcome was never
    /// recorded an `executed` event with status `unknown`, and its action
    /// the state `executed`. Such a grant's run or report happened, or was
    /// about to, when the host stopped or could not write its outcome:
    /// nobody can run it again (the grant is spent), and the log says that
    /// what happened is unknown instead of saying nothing. `before` must lie
    /// further back than any run can take (`[grants] unrecorded_after_seconds`
    /// exceeds every upstream's timeout), so no run still in flight is
    /// declared lost. Under the action's lock, so replicas record it once.
    /// Returns how many it recorded.
    pub async fn record_unrecorded_outcomes(
        &self,
        before: chrono::DateTime<Utc>,
    ) -> Result<usize, GateError> {
        let mut recorded = 0;
        for spent in self.store().unrecorded_spent_grants(before, 100).await? {
            let id = stored_action_id(&spent.action_id)?;
            let mut guard = self.store().lock_action(&spent.action_id).await?;
            // Re-read under the lock: its outcome may have been recorded meanwhile.
            let Some(current) = self.store().action(&spent.action_id).await? else {
                continue;
            };
            if !matches!(current.state.as_str(), "allowed" | "approved") {
                continue;
            }
            self.evidence()
                .append(
                    payload::Executed {
                        digest: current.digest.clone(),
                        status: payload::ExecutedStatus::Unknown,
                        summary: format!(
                            "no outcome was recorded: its grant was spent at {}, and the host stopped or could not write the outcome before recording it; whether and how it ran is unknown",
                            crate::evidence::format_time(&spent.spent_at)
                        ),
                        by: payload::ExecutedBy::Unrecorded {
                            jti: spent.jti.clone(),
                            spent_at: spent.spent_at,
                        },
                    }
                    .event(Some(id.uuid()), Actor::system("sweeper")),
                )
                .await?;
            if guard
                .transition(
                    &current.state,
                    State::Executed.as_str(),
                    &ActionChange::default(),
                )
                .await?
            {
                guard.commit().await?;
                recorded += 1;
                self.metrics().outcome_unrecorded();
                tracing::warn!(action_id = %spent.action_id, jti = %spent.jti, spent_at = %spent.spent_at, "a spent grant had no recorded outcome; recorded as unknown");
                self.changed(&spent.action_id).await;
            }
        }
        Ok(recorded)
    }
}
