//! Runs by the host itself (the MCP gateway executes the tool call it
//! gated): the grant is claimed before the run, so an action runs at most
//! once however many requests race for it, and the outcome is recorded with
//! the grant after. Never runs an action that is not allowed or approved.

use chrono::Utc;
use uuid::Uuid;

use crate::action::Action;
use crate::evidence::{Actor, ActorKind, EventKind};
use crate::gate::{event, Gate, GateError, OutcomeStatus, State};
use crate::store::{ActionChange, AgentRow, StoreError};

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
    /// Claims the run of `agent`'s action `id` by consuming its grant.
    pub async fn claim_run(&self, agent: &AgentRow, id: &str) -> Result<Claim, GateError> {
        let row = match self.store.action(id).await? {
            Some(row) if row.agent_id == agent.id => row,
            _ => return Err(GateError::NotFound(id.into())),
        };
        let state = State::parse(&row.state)?;
        if !matches!(state, State::Allowed | State::Approved) {
            return Ok(Claim::NotRunnable(state));
        }
        let token = row.grant_token.as_deref().ok_or_else(|| {
            StoreError::Corrupt(format!("{} action {id} has no grant", state.as_str()))
        })?;
        let claims = match self.grants.verify(token, Utc::now()) {
            Ok(claims) => claims,
            Err(crate::grant::GrantError::Expired(_)) => return Ok(Claim::GrantExpired),
            Err(e) => return Err(GateError::GrantRefused(e.to_string())),
        };
        if !self.store.consume_grant(&claims.jti, Utc::now()).await? {
            return Ok(Claim::Taken);
        }
        let action: Action = serde_json::from_str(&row.action)
            .map_err(|e| StoreError::Corrupt(format!("action {id}: {e}")))?;
        Ok(Claim::Run(Box::new(ClaimedRun {
            action,
            digest: row.digest,
            jti: claims.jti,
            from: state,
        })))
    }

    /// Records how a claimed run went: the `executed` event, then the state.
    pub async fn record_run(
        &self,
        agent: &AgentRow,
        run: &ClaimedRun,
        report: RunReport,
    ) -> Result<(), GateError> {
        let action_uuid =
            Uuid::parse_str(&run.action.id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.evidence
            .append(event(
                EventKind::Executed,
                action_uuid,
                Actor {
                    kind: ActorKind::Agent,
                    id: agent.id.clone(),
                },
                serde_json::json!({
                    "jti": run.jti,
                    "digest": run.digest,
                    "status": report.status,
                    "summary": report.summary,
                    "logs": null,
                    "executor": "mcp-gateway",
                    "result": report.result,
                }),
            ))
            .await?;
        self.store
            .transition_action(
                &run.action.id,
                run.from.as_str(),
                State::Executed.as_str(),
                &ActionChange::default(),
            )
            .await?;
        self.changed(&run.action.id).await;
        Ok(())
    }
}
