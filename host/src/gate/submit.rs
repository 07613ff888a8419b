//! The submit stage: checks a submission, builds the action from the
//! agent's key (never from the body), evaluates it and hands it to the
//! record stage. Never records anything itself.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::record::{submitted_event, verdict_events, Decided};
use super::{ActionStatus, Gate, GateError, Submission, HOST_KINDS};
use crate::action::{Action, Kind, Principal};
use crate::evidence::NewEvent;
use crate::sandbox::Plugin;
use crate::store::AgentRow;

/// Refuses what no plugin should see: params that are not an object, a
/// kind out of bounds, the host's own kinds.
pub(super) fn check(submission: &Submission) -> Result<(), GateError> {
    if !submission.params.is_object() {
        return Err(GateError::Invalid("params: must be a JSON object".into()));
    }
    // The grammar first: the reserved-prefix check and the binding lookup
    // only ever see a kind in its one spelling.
    let kind = Kind::parse(&submission.kind)?;
    if kind.is_host_kind() {
        return Err(GateError::Invalid(format!(
            "kind: `{HOST_KINDS}*` kinds are the host's own (policy changes); agents may not submit them"
        )));
    }
    Ok(())
}

/// The sha256 of a submission's canonical JSON: an idempotency key's
/// retry must carry the same.
pub(super) fn request_hash(submission: &Submission) -> String {
    hex::encode(Sha256::digest(crate::canonical::digest_bytes(submission)))
}

/// The action an agent's submission asks for: the agent and its owner from
/// its key, a fresh id, the time at millisecond precision (what the plugin
/// sees is exactly what is stored).
pub(super) fn action_for(agent: &AgentRow, s: Submission, now: DateTime<Utc>) -> Action {
    let mut attributes = agent.attributes.clone();
    attributes.insert("owner".into(), agent.owner.clone());
    let now = DateTime::from_timestamp_millis(now.timestamp_millis()).expect("now is in range");
    Action {
        id: Uuid::now_v7().to_string(),
        kind: s.kind,
        agent: Principal {
            id: agent.id.clone(),
            attributes,
        },
        on_behalf_of: s.on_behalf_of,
        resource: s.resource,
        params: s.params,
        justification: s.justification,
        context: s.context,
        requested_at: now,
    }
}

impl Gate {
    /// Decides a new action. Same idempotency key and body: the same answer.
    /// `key_hash`: the key the agent authenticated with (possibly from a
    /// cache), which must still be live, with its agent, when the decision
    /// commits.
    pub async fn submit(
        &self,
        agent: &AgentRow,
        key_hash: Option<String>,
        submission: Submission,
        idempotency_key: Option<String>,
    ) -> Result<ActionStatus, GateError> {
        Ok(self
            .decide(agent, key_hash, submission, idempotency_key, false)
            .await?
            .0)
    }

    /// `submit`; with `claim` (the host runs the action itself, once), an
    /// action allowed at once comes back claimed: its grant was consumed in
    /// the decision's own commit, and the action to run, its digest and
    /// the grant's jti come with the status.
    pub(crate) async fn decide(
        &self,
        agent: &AgentRow,
        key_hash: Option<String>,
        submission: Submission,
        idempotency_key: Option<String>,
        claim: bool,
    ) -> Result<(ActionStatus, Option<ClaimedAtDecision>), GateError> {
        check(&submission)?;
        let request_hash = request_hash(&submission);
        if let Some(key) = &idempotency_key {
            if let Some(existing) = self.store.action_by_idempotency_key(&agent.id, key).await? {
                return Ok((self.replay(existing, &request_hash, key)?, None));
            }
        }
        let evaluated = self
            .evaluate(agent, key_hash, submission, idempotency_key, request_hash)
            .await?;
        self.record_evaluated(agent, evaluated, claim).await
    }

    /// Checks and evaluates a submission that carries no idempotency key,
    /// as a new action, for `record_evaluated`. Writes nothing: dropping
    /// what it returns decides nothing.
    pub async fn evaluate_new(
        &self,
        agent: &AgentRow,
        key_hash: Option<String>,
        submission: Submission,
    ) -> Result<Evaluated, GateError> {
        check(&submission)?;
        let request_hash = request_hash(&submission);
        self.evaluate(agent, key_hash, submission, None, request_hash)
            .await
    }

    /// Evaluates a checked submission as a new action.
    async fn evaluate(
        &self,
        agent: &AgentRow,
        key_hash: Option<String>,
        submission: Submission,
        idempotency_key: Option<String>,
        request_hash: String,
    ) -> Result<Evaluated, GateError> {
        let action = action_for(agent, submission, Utc::now());
        // Most evaluations take microseconds and call no import: decide them
        // here. Any other runs again, from scratch, on the blocking pool.
        let (verdict, shadow) = match self.evaluator.evaluate_bound_inline(&action) {
            Some(decided) => decided,
            None => {
                let evaluator = self.evaluator.clone();
                let evaluated = action.clone();
                tokio::task::spawn_blocking(move || evaluator.evaluate_bound(&evaluated))
                    .await
                    .expect("evaluation never panics: failures are values")?
            }
        };
        self.metrics.evaluated(&verdict);

        let action_uuid = Uuid::parse_str(&action.id).expect("host-made ids are UUIDs");
        let digest = action.digest();
        let mut events = vec![submitted_event(
            &action,
            &digest,
            agent,
            idempotency_key.clone(),
            &request_hash,
        )];
        events.extend(verdict_events(action_uuid, &action, &verdict));
        Ok(Evaluated {
            decided: Decided {
                action,
                digest,
                verdict,
                idempotency_key,
                request_hash,
                key_hash,
            },
            events,
            shadow,
        })
    }

    /// The record stage of `decide`: commits the evaluated action's
    /// decision (and, with `claim`, consumes the grant of one allowed at
    /// once in that commit).
    pub(crate) async fn record_evaluated(
        &self,
        agent: &AgentRow,
        evaluated: Evaluated,
        claim: bool,
    ) -> Result<(ActionStatus, Option<ClaimedAtDecision>), GateError> {
        let Evaluated {
            decided,
            events,
            shadow,
        } = evaluated;
        let (status, claimed) = self.record_decided(agent, &decided, events, claim).await?;
        let claimed = claimed.map(|jti| ClaimedAtDecision {
            action: decided.action.clone(),
            digest: decided.digest.clone(),
            jti,
        });
        // Off the response path: the live answer is committed and final.
        // (A replayed idempotent answer was shadowed when it was decided.)
        let recorded = status.action_id == decided.action.id;
        if let (true, Some(shadow), Some(live)) = (recorded, shadow, &decided.verdict.plugin) {
            self.shadows
                .spawn(shadow, decided.action, live.sha256.clone());
        }
        Ok((status, claimed))
    }
}

/// A new action evaluated and not yet recorded.
pub struct Evaluated {
    decided: Decided,
    events: Vec<NewEvent>,
    shadow: Option<Arc<Plugin>>,
}

/// An action allowed at once whose grant was consumed as it was recorded.
pub(crate) struct ClaimedAtDecision {
    pub action: Action,
    pub digest: String,
    pub jti: String,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    fn submission(kind: &str, params: serde_json::Value) -> Submission {
        Submission {
            kind: kind.into(),
            resource: "postgres://prod".into(),
            params,
            justification: None,
            context: BTreeMap::new(),
            on_behalf_of: Some("pat@example.com".into()),
        }
    }

    #[test]
    fn only_object_params_and_bounded_agent_kinds_pass() {
        assert!(check(&submission("db.export", json!({"rows": 1}))).is_ok());
        let refused = |s: Submission| match check(&s) {
            Err(GateError::Invalid(why)) => why,
            other => panic!("{other:?}"),
        };
        assert!(refused(submission("db.export", json!([1]))).starts_with("params:"));
        let bad_kind = |s: Submission| matches!(check(&s), Err(GateError::Kind(_)));
        assert!(bad_kind(submission("", json!({}))));
        assert!(bad_kind(submission(&"a".repeat(201), json!({}))));
        assert!(bad_kind(submission("DB.Export", json!({}))));
        assert!(check(&submission(&"a".repeat(200), json!({}))).is_ok());
        assert!(refused(submission("actiongate.bind", json!({}))).contains("host's own"));
    }

    #[test]
    fn the_action_comes_from_the_key_not_the_body() {
        let agent = AgentRow {
            id: "etl".into(),
            owner: "owner@example.com".into(),
            attributes: BTreeMap::from([("team".to_string(), "data".to_string())]),
            created_at: Utc::now(),
            revoked_at: None,
        };
        let now: DateTime<Utc> = "2026-12-06T07:00:00.123456Z".parse().unwrap();
        let a = action_for(&agent, submission("db.export", json!({"rows": 1})), now);
        assert_eq!(a.agent.id, "etl");
        assert_eq!(a.agent.attributes["owner"], "owner@example.com");
        assert_eq!(a.agent.attributes["team"], "data");
        assert_eq!(a.on_behalf_of.as_deref(), Some("pat@example.com"));
        // Milliseconds: what the plugin sees is what is stored.
        assert_eq!(a.requested_at_rfc3339(), "2026-12-06T07:00:00.123Z");
        assert!(a.id.parse::<crate::action::ActionId>().is_ok());
        assert_ne!(
            a.id,
            action_for(&agent, submission("db.export", json!({})), now).id
        );
    }
}
