//! The outcome stage: what an agent sees of its action (now, or after a
//! wait), and the executor's report, which consumes the grant once. Never
//! shows one agent another's action; never records an outcome without a
//! grant that matches the action as approved.

use std::time::Duration;

use chrono::Utc;

use super::{ActionRecord, ActionStatus, Gate, GateError, Outcome};
use crate::action::{ActionId, State};
use crate::evidence::payload::{self, Payload};
use crate::evidence::{Actor, ActorKind};
use crate::grant::GrantClaims;
use crate::store::{ActionMove, AgentRow};

/// Refuses a grant that is not for this action of this agent, as it stands.
pub(super) fn check_grant(
    claims: &GrantClaims,
    record: &ActionRecord,
    agent: &str,
) -> Result<(), GateError> {
    if claims.action_id != record.id.to_string() || claims.sub != agent {
        return Err(GateError::GrantRefused(
            "the grant is for another action or agent".into(),
        ));
    }
    if claims.action_digest != record.digest {
        return Err(GateError::GrantRefused(
            "the grant is for another version of the action".into(),
        ));
    }
    Ok(())
}

impl Gate {
    /// The action as its agent sees it.
    pub async fn status(&self, agent: &AgentRow, id: &ActionId) -> Result<ActionStatus, GateError> {
        Ok(self.owned_action(agent, id).await?.status(true))
    }

    /// Waits up to `wait` for a pending action to reach a final state.
    pub async fn wait(
        &self,
        agent: &AgentRow,
        id: &ActionId,
        wait: Duration,
    ) -> Result<ActionStatus, GateError> {
        let mut wakeups = self.waiters.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        let key = id.to_string();
        loop {
            let status = self.status(agent, id).await?;
            if status.state.is_final() || tokio::time::Instant::now() >= deadline {
                return Ok(status);
            }
            // Re-read on a wakeup for this action, and at least every two
            // seconds in case a notification was missed during a reconnect.
            let until = deadline.min(tokio::time::Instant::now() + Duration::from_secs(2));
            let _ = tokio::time::timeout_at(until, wakeups.changed(&key)).await;
        }
    }

    pub(crate) async fn owned_action(
        &self,
        agent: &AgentRow,
        id: &ActionId,
    ) -> Result<ActionRecord, GateError> {
        match self.record(id).await {
            // Another agent's action does not exist, as far as this one knows.
            Ok(record) if record.agent_id == agent.id => Ok(record),
            Ok(_) => Err(GateError::NotFound(id.to_string())),
            Err(e) => Err(e),
        }
    }

    /// Records what happened when the action ran; consumes its grant once.
    pub async fn report_outcome(
        &self,
        agent: &AgentRow,
        id: &ActionId,
        outcome: Outcome,
    ) -> Result<ActionStatus, GateError> {
        let record = self.owned_action(agent, id).await?;
        let claims = self
            .grants
            .verify(&outcome.grant, Utc::now())
            .map_err(|e| GateError::GrantRefused(e.to_string()))?;
        check_grant(&claims, &record, &agent.id)?;
        let action_uuid = Some(record.id.uuid());
        let actor = Actor {
            kind: ActorKind::Agent,
            id: agent.id.clone(),
        };
        let now = Utc::now();
        if !self.store.consume_grant(&claims.jti, now).await? {
            self.evidence
                .append(
                    payload::GrantReused {
                        jti: claims.jti.clone(),
                    }
                    .event(action_uuid, actor),
                )
                .await?;
            tracing::warn!(action_id = %record.id, agent = %agent.id, jti = %claims.jti, "grant presented twice");
            return Err(GateError::GrantReused { jti: claims.jti });
        }
        let from = record.state;
        if !matches!(from, State::Allowed | State::Approved) {
            self.store.release_grant(&claims.jti).await?;
            return Err(GateError::WrongState {
                state: from.as_str(),
                what: "no outcome can be reported",
            });
        }
        let key = record.id.to_string();
        // The event and the state `executed` in one commit.
        let action_move = ActionMove {
            id: key.clone(),
            from: from.as_str().into(),
            to: State::Executed.as_str().into(),
            at: now,
        };
        let recorded = self
            .evidence
            .append_with_move(
                vec![payload::Executed {
                    digest: claims.action_digest.clone(),
                    status: outcome.status.into(),
                    summary: outcome.summary,
                    by: payload::ExecutedBy::Agent {
                        jti: claims.jti.clone(),
                        logs: outcome.logs,
                    },
                }
                .event(action_uuid, actor)],
                action_move,
            )
            .await;
        if let Err(e) = recorded {
            // Without evidence the report did not happen; let the agent retry.
            self.store.release_grant(&claims.jti).await?;
            return Err(e.into());
        }
        // Other replicas hear of it from the commit's NOTIFY (Postgres).
        self.waiters.wake(&key);
        self.status(agent, id).await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::action::{Action, Classification, Principal, Risk, Route};
    use crate::evaluate::Verdict;
    use crate::sandbox::Limits;

    fn record() -> ActionRecord {
        let id = ActionId::new();
        let action = Action {
            id: id.to_string(),
            kind: "db.export".into(),
            agent: Principal {
                id: "etl".into(),
                attributes: BTreeMap::new(),
            },
            on_behalf_of: None,
            resource: "r".into(),
            params: serde_json::json!({}),
            justification: None,
            context: BTreeMap::new(),
            requested_at: Utc::now(),
        };
        ActionRecord {
            id,
            agent_id: "etl".into(),
            digest: action.digest(),
            action,
            state: State::Allowed,
            verdict: Verdict {
                plugin: None,
                classification: Classification {
                    risk: Risk::Low,
                    reasons: vec![],
                    tags: vec![],
                },
                route: Route::Allow,
                failure: None,
                fuel_used: 0,
                duration_us: 0,
                limits: Limits::default(),
                wit_version: "0.1.0".into(),
                host_version: "0.1.0".into(),
            },
            denied_reason: None,
            grant_token: None,
            request_hash: "h".into(),
            expires_at: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn claims(r: &ActionRecord) -> GrantClaims {
        GrantClaims {
            iss: "i".into(),
            aud: "a".into(),
            sub: "etl".into(),
            jti: "j".into(),
            iat: 0,
            exp: 0,
            action_id: r.id.to_string(),
            action_digest: r.digest.clone(),
            plugin_sha256: None,
            approvers: vec![],
        }
    }

    #[test]
    fn a_grant_fits_one_action_of_one_agent_as_it_stands() {
        let r = record();
        assert!(check_grant(&claims(&r), &r, "etl").is_ok());
        let refused = |c: GrantClaims, agent: &str| match check_grant(&c, &r, agent) {
            Err(GateError::GrantRefused(why)) => why,
            other => panic!("{other:?}"),
        };
        assert!(refused(claims(&r), "other-agent").contains("another action or agent"));
        let mut other = claims(&r);
        other.action_id = ActionId::new().to_string();
        assert!(refused(other, "etl").contains("another action or agent"));
        let mut modified = claims(&r);
        modified.action_digest = "0".repeat(64);
        assert!(refused(modified, "etl").contains("another version"));
    }
}
