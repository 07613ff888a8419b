//! The gate: one action's way from submission to decision to outcome.
//! Evaluates, commits the evidence, then records state, in that order:
//! no answer (and no grant) leaves before its evidence is committed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::action::{Action, Kind, KindError, Principal, Risk, Route};
use crate::evaluate::{Evaluator, Verdict};
use crate::evidence::{
    Actor, ActorKind, EventKind, EvidenceError, EvidenceLog, NewEvent, Recorded,
};
use crate::grant::{GrantClaims, GrantSigner, AUDIENCE, ISSUER};
use crate::metrics::Metrics;
use crate::store::{ActionChange, ActionRow, AgentRow, NewAction, Store, StoreError};
use crate::waiters::Waiters;

/// What an agent asks for. The agent itself comes from its key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Submission {
    /// The action type, e.g. `db.export`: lowercase ASCII segments of
    /// `a-z 0-9 _ -` joined by single dots, at most 200 characters.
    #[schema(
        pattern = r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$",
        max_length = 200,
        example = "db.export"
    )]
    pub kind: String,
    /// What the action touches.
    pub resource: String,
    /// Action parameters: a JSON object.
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    pub justification: Option<String>,
    #[serde(default)]
    pub context: BTreeMap<String, String>,
    /// The human the agent acts for, if any.
    pub on_behalf_of: Option<String>,
}

/// Where an action stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Allowed,
    Denied,
    Pending,
    Approved,
    Expired,
    Executed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Allowed => "allowed",
            State::Denied => "denied",
            State::Pending => "pending",
            State::Approved => "approved",
            State::Expired => "expired",
            State::Executed => "executed",
        }
    }

    pub fn parse(s: &str) -> Result<State, GateError> {
        serde_json::from_value(serde_json::Value::String(s.into())).map_err(|_| {
            GateError::Store(StoreError::Corrupt(format!("unknown action state {s:?}")))
        })
    }

    pub fn is_final(self) -> bool {
        !matches!(self, State::Pending)
    }
}

/// The approval an action waits for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PendingApproval {
    pub groups: Vec<String>,
    pub quorum: u32,
    pub expires_at: DateTime<Utc>,
}

/// What the caller sees of an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActionStatus {
    pub action_id: String,
    pub state: State,
    pub kind: String,
    pub resource: String,
    #[schema(value_type = String)]
    pub risk: Risk,
    pub reasons: Vec<String>,
    /// Why it was denied or expired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<PendingApproval>,
    /// The signed grant, once allowed or approved (only to the agent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
    pub digest: String,
    pub updated_at: DateTime<Utc>,
}

/// What an executor reports after running (or failing to run) an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    pub grant: String,
    pub status: OutcomeStatus,
    pub summary: String,
    #[serde(default)]
    pub logs: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutcomeStatus {
    Succeeded,
    Failed,
}

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("evidence could not be committed: {0}")]
    Evidence(#[from] EvidenceError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("idempotency key {0:?} was already used with a different request")]
    IdempotencyConflict(String),
    #[error("no action {0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("kind: {0}")]
    Kind(#[from] KindError),
    #[error("the API key or its agent was revoked")]
    KeyRevoked,
    #[error("grant refused: {0}")]
    GrantRefused(String),
    #[error("grant {jti} was already used")]
    GrantReused { jti: String },
    #[error("action is {state}, so {what}")]
    WrongState {
        state: &'static str,
        what: &'static str,
    },
    /// No sandbox slot came free in time: nothing was decided or recorded.
    #[error(transparent)]
    Busy(#[from] crate::sandbox::Busy),
}

impl GateError {
    /// True when the cause is the database or the log being out of reach:
    /// answer 503. Nothing else is, since retrying cannot fix it.
    pub fn is_unavailable(&self) -> bool {
        match self {
            GateError::Evidence(e) => e.is_unavailable(),
            GateError::Store(e) => e.is_unavailable(),
            _ => false,
        }
    }
}

/// Everything a decision needs. Shared by the API, the sweeper and the CLI.
pub struct Gate {
    pub store: Store,
    /// Who may approve; built from config.
    pub directory: Arc<crate::directory::Directory>,
    /// Everyone told about held actions (webhook, Slack, Teams).
    pub notifiers: Vec<Arc<dyn crate::notify::Notifier>>,
    pub evidence: EvidenceLog,
    pub evaluator: Arc<Evaluator>,
    pub grants: GrantSigner,
    pub grant_ttl: Duration,
    pub waiters: Waiters,
    pub metrics: Metrics,
    /// The bindings store this replica's evaluator follows.
    pub bindings: Arc<crate::bindings::Bindings>,
    /// Shadow plugins, evaluated after the live answer is committed.
    pub shadows: crate::shadow::Shadows,
    /// The web inbox's public base URL: notifications link to each action's page.
    pub inbox_url: Option<String>,
    /// What no channel shows of params and context (`[approvals]`).
    pub redaction: crate::approvals::Redaction,
    /// Passkey step-up, when `[step_up]` is configured.
    pub step_up: Option<Arc<crate::stepup::StepUp>>,
}

/// Action kinds only the host makes (`actiongate.bind`).
pub const HOST_KINDS: &str = "actiongate.";

/// An action and the verdict that decides it, ready to be recorded.
pub(crate) struct Decided {
    pub action: Action,
    /// `action.digest()`, computed once.
    pub digest: String,
    pub verdict: Verdict,
    pub idempotency_key: Option<String>,
    pub request_hash: String,
    /// The sha256 of the agent API key that submitted it (none for policy
    /// changes): confirmed live as the decision commits.
    pub key_hash: Option<String>,
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
        if !submission.params.is_object() {
            return Err(GateError::Invalid("params: must be a JSON object".into()));
        }
        // The grammar first: the reserved-prefix check and the binding
        // lookup only ever see a kind in its one spelling.
        let kind = Kind::parse(&submission.kind)?;
        if kind.is_host_kind() {
            return Err(GateError::Invalid(format!(
                "kind: `{HOST_KINDS}*` kinds are the host's own (policy changes); agents may not submit them"
            )));
        }
        let request_hash = hex::encode(Sha256::digest(crate::evidence::canonical::digest_bytes(
            &submission,
        )));
        if let Some(key) = &idempotency_key {
            if let Some(existing) = self.store.action_by_idempotency_key(&agent.id, key).await? {
                return self.replay(existing, &request_hash, key);
            }
        }

        let action = self.action_for(agent, submission);
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
        let submitted = event(
            EventKind::Submitted,
            action_uuid,
            Actor {
                kind: ActorKind::Agent,
                id: agent.id.clone(),
            },
            serde_json::json!({
                "action": action,
                "digest": digest,
                "idempotency_key": idempotency_key,
                "request_hash": request_hash,
            }),
        );
        let mut events = vec![submitted];
        events.extend(verdict_events(action_uuid, &action, &verdict));
        let decided = Decided {
            action,
            digest,
            verdict,
            idempotency_key,
            request_hash,
            key_hash,
        };
        let status = self.record_decision(agent, &decided, events).await?;
        // Off the response path: the live answer is committed and final.
        // (A replayed idempotent answer was shadowed when it was decided.)
        let recorded = status.action_id == decided.action.id;
        if let (true, Some(shadow), Some(live)) = (recorded, shadow, &decided.verdict.plugin) {
            self.shadows
                .spawn(shadow, decided.action, live.sha256.clone());
        }
        Ok(status)
    }

    /// Commits a decided action: its evidence (`events`, then the grant or
    /// denial), then its row; then announces it if it waits for approval.
    /// Submissions and four-eyes policy changes both come through here.
    pub(crate) async fn record_decision(
        &self,
        agent: &AgentRow,
        decided: &Decided,
        mut events: Vec<NewEvent>,
    ) -> Result<ActionStatus, GateError> {
        let Decided {
            action,
            digest,
            verdict,
            idempotency_key,
            request_hash,
            key_hash,
        } = decided;
        let now = Utc::now();
        let action_uuid = Uuid::parse_str(&action.id).expect("host-made ids are UUIDs");

        let (state, grant, expires_at) = match &verdict.route {
            Route::Allow => {
                let (token, claims) = self.issue_grant(action, digest, verdict, Vec::new(), now);
                events.push(grant_event(action_uuid, &claims));
                (State::Allowed, Some((token, claims)), None)
            }
            Route::Deny { reason } => {
                events.push(event(
                    EventKind::Denied,
                    action_uuid,
                    Actor::system("policy"),
                    serde_json::json!({
                        "reason": reason,
                        "risk": verdict.classification.risk,
                    }),
                ));
                (State::Denied, None, None)
            }
            Route::RequireApproval(approval) => (
                State::Pending,
                None,
                Some(now + chrono::Duration::seconds(approval.ttl_seconds.into())),
            ),
        };

        let row = ActionRow {
            id: action.id.clone(),
            agent_id: agent.id.clone(),
            idempotency_key: idempotency_key.clone(),
            request_hash: request_hash.clone(),
            action: serde_json::to_string(&action).expect("an action serializes"),
            digest: digest.clone(),
            state: state.as_str().into(),
            verdict: serde_json::to_string(&verdict).expect("a verdict serializes"),
            grant_token: grant.as_ref().map(|(token, _)| token.clone()),
            expires_at,
            created_at: now,
            updated_at: now,
        };
        let status = status(
            &row,
            state,
            action,
            &verdict.classification,
            &verdict.route,
            None,
            true,
        );
        // The grant's single-use record is written with the action.
        let grant = grant.map(|(_, claims)| {
            let expires_at = DateTime::from_timestamp(claims.exp, 0).unwrap_or(now);
            (claims.jti, expires_at)
        });
        // Evidence first: the action row, and the grant in it, commit only
        // once the events are durable; if they cannot be, nothing is allowed
        // (an error here is a 503 and no grant).
        let new = NewAction {
            row,
            grant,
            key_hash: key_hash.clone(),
        };
        match self.evidence.append_with_action(events, new).await?.1 {
            Recorded::Created | Recorded::NoAction => {}
            Recorded::KeyRevoked => return Err(GateError::KeyRevoked),
            Recorded::IdempotencyKeyTaken => {
                // Another request with this key won the race; answer as it did.
                let key = idempotency_key.as_deref().unwrap_or_default();
                let existing = self
                    .store
                    .action_by_idempotency_key(&agent.id, key)
                    .await?
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!(
                            "action {} was neither inserted nor found",
                            action.id
                        ))
                    })?;
                return self.replay(existing, request_hash, key);
            }
        }
        self.metrics.decided(state);
        tracing::info!(action_id = %action.id, agent = %agent.id, kind = %action.kind, state = state.as_str(), risk = verdict.classification.risk.as_str(), "action decided");
        if state == State::Pending && !self.notifiers.is_empty() {
            self.announce(
                self.notification_for(&action.id, crate::notify::NotificationKind::Pending)
                    .await?,
            );
        }
        Ok(status)
    }

    fn replay(
        &self,
        existing: ActionRow,
        request_hash: &str,
        key: &str,
    ) -> Result<ActionStatus, GateError> {
        if existing.request_hash != request_hash {
            return Err(GateError::IdempotencyConflict(key.into()));
        }
        status_of(&existing, true)
    }

    fn action_for(&self, agent: &AgentRow, s: Submission) -> Action {
        let mut attributes = agent.attributes.clone();
        attributes.insert("owner".into(), agent.owner.clone());
        // Millisecond precision: what the plugin sees is exactly what is stored.
        let now = DateTime::from_timestamp_millis(Utc::now().timestamp_millis())
            .expect("now is in range");
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

    /// Signs a grant for `action` (whose digest is `digest`) as decided by `verdict`.
    pub fn issue_grant(
        &self,
        action: &Action,
        digest: &str,
        verdict: &Verdict,
        approvers: Vec<String>,
        now: DateTime<Utc>,
    ) -> (String, GrantClaims) {
        let claims = GrantClaims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: action.agent.id.clone(),
            jti: Uuid::now_v7().to_string(),
            iat: now.timestamp(),
            exp: now.timestamp() + self.grant_ttl.as_secs() as i64,
            action_id: action.id.clone(),
            action_digest: digest.to_owned(),
            plugin_sha256: verdict.plugin.as_ref().map(|p| p.sha256.clone()),
            approvers,
        };
        (self.grants.sign(&claims), claims)
    }

    /// The action as its agent sees it.
    pub async fn status(&self, agent: &AgentRow, id: &str) -> Result<ActionStatus, GateError> {
        let row = self.owned_action(agent, id).await?;
        status_of(&row, true)
    }

    /// Waits up to `wait` for a pending action to reach a final state.
    pub async fn wait(
        &self,
        agent: &AgentRow,
        id: &str,
        wait: Duration,
    ) -> Result<ActionStatus, GateError> {
        let mut wakeups = self.waiters.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let status = self.status(agent, id).await?;
            if status.state.is_final() || tokio::time::Instant::now() >= deadline {
                return Ok(status);
            }
            // Re-read on a wakeup for this action, and at least every two
            // seconds in case a notification was missed during a reconnect.
            let until = deadline.min(tokio::time::Instant::now() + Duration::from_secs(2));
            let _ = tokio::time::timeout_at(until, wakeups.changed(id)).await;
        }
    }

    async fn owned_action(&self, agent: &AgentRow, id: &str) -> Result<ActionRow, GateError> {
        match self.store.action(id).await? {
            // Another agent's action does not exist, as far as this one knows.
            Some(row) if row.agent_id == agent.id => Ok(row),
            _ => Err(GateError::NotFound(id.into())),
        }
    }

    /// Records what happened when the action ran; consumes its grant once.
    pub async fn report_outcome(
        &self,
        agent: &AgentRow,
        id: &str,
        outcome: Outcome,
    ) -> Result<ActionStatus, GateError> {
        let row = self.owned_action(agent, id).await?;
        let claims = self
            .grants
            .verify(&outcome.grant, Utc::now())
            .map_err(|e| GateError::GrantRefused(e.to_string()))?;
        if claims.action_id != row.id || claims.sub != agent.id {
            return Err(GateError::GrantRefused(
                "the grant is for another action or agent".into(),
            ));
        }
        if claims.action_digest != row.digest {
            return Err(GateError::GrantRefused(
                "the grant is for another version of the action".into(),
            ));
        }
        let action_uuid = Uuid::parse_str(&row.id)
            .map_err(|e| GateError::Store(StoreError::Corrupt(e.to_string())))?;
        let actor = Actor {
            kind: ActorKind::Agent,
            id: agent.id.clone(),
        };
        let now = Utc::now();
        if !self.store.consume_grant(&claims.jti, now).await? {
            self.evidence
                .append(event(
                    EventKind::GrantReused,
                    action_uuid,
                    actor,
                    serde_json::json!({"jti": claims.jti}),
                ))
                .await?;
            tracing::warn!(action_id = %row.id, agent = %agent.id, jti = %claims.jti, "grant presented twice");
            return Err(GateError::GrantReused { jti: claims.jti });
        }
        let from = State::parse(&row.state)?;
        if !matches!(from, State::Allowed | State::Approved) {
            self.store.release_grant(&claims.jti).await?;
            return Err(GateError::WrongState {
                state: from.as_str(),
                what: "no outcome can be reported",
            });
        }
        let recorded = self
            .evidence
            .append(event(
                EventKind::Executed,
                action_uuid,
                actor,
                serde_json::json!({
                    "jti": claims.jti,
                    "digest": claims.action_digest,
                    "status": outcome.status,
                    "summary": outcome.summary,
                    "logs": outcome.logs,
                }),
            ))
            .await;
        if let Err(e) = recorded {
            // Without evidence the report did not happen; let the agent retry.
            self.store.release_grant(&claims.jti).await?;
            return Err(e.into());
        }
        self.store
            .transition_action(
                &row.id,
                from.as_str(),
                State::Executed.as_str(),
                &ActionChange::default(),
            )
            .await?;
        self.changed(&row.id).await;
        self.status(agent, id).await
    }

    /// Wakes every waiter on this action, on every replica.
    pub async fn changed(&self, id: &str) {
        self.waiters.wake(id);
        if let Err(e) = self.store.notify_action_changed(id).await {
            tracing::warn!(action_id = %id, error = %e, "could not notify other replicas; their waiters re-check within 2 s");
        }
    }
}

/// An evidence event about one action.
pub(crate) fn event(
    kind: EventKind,
    action_id: Uuid,
    actor: Actor,
    payload: serde_json::Value,
) -> NewEvent {
    NewEvent {
        kind,
        action_id: Some(action_id),
        actor,
        payload,
    }
}

/// The evaluation evidence: what went in, what came out, who decided, at what cost.
pub fn verdict_events(action_id: Uuid, action: &Action, verdict: &Verdict) -> Vec<NewEvent> {
    let plugin_actor = Actor {
        kind: ActorKind::Plugin,
        id: verdict
            .plugin
            .as_ref()
            .map_or_else(|| "none".to_string(), |p| p.sha256.clone()),
    };
    let mut events = Vec::new();
    if let Some(failure) = &verdict.failure {
        events.push(event(
            EventKind::PluginFailed,
            action_id,
            plugin_actor.clone(),
            serde_json::json!({
                "plugin": verdict.plugin,
                "failure": failure,
            }),
        ));
    }
    events.push(event(
        EventKind::Evaluated,
        action_id,
        plugin_actor,
        evaluation_payload(action, verdict),
    ));
    events
}

/// The payload of an `evaluated` event (and, with more fields, of a
/// `shadow-evaluated` one): what went in, what came out, at what cost.
pub fn evaluation_payload(action: &Action, verdict: &Verdict) -> serde_json::Value {
    serde_json::json!({
        "plugin": verdict.plugin,
        "wit_version": verdict.wit_version,
        "host_version": verdict.host_version,
        "input": action,
        "output": {"classification": verdict.classification, "route": verdict.route},
        "failed_closed": verdict.failure.is_some(),
        "fuel_used": verdict.fuel_used,
        "duration_us": verdict.duration_us,
        "limits": verdict.limits,
    })
}

pub fn grant_event(action_id: Uuid, claims: &GrantClaims) -> NewEvent {
    event(
        EventKind::Granted,
        action_id,
        Actor::system("grants"),
        serde_json::json!({
            "jti": claims.jti,
            "exp": claims.exp,
            "action_digest": claims.action_digest,
            "plugin_sha256": claims.plugin_sha256,
            "approvers": claims.approvers,
        }),
    )
}

/// The caller's view of a stored action. `with_grant`: only the agent sees it.
pub fn status_of(row: &ActionRow, with_grant: bool) -> Result<ActionStatus, GateError> {
    let corrupt = |what: &str, e: serde_json::Error| {
        GateError::Store(StoreError::Corrupt(format!(
            "action {} {what}: {e}",
            row.id
        )))
    };
    let action: Action = serde_json::from_str(&row.action).map_err(|e| corrupt("action", e))?;
    let verdict: serde_json::Value =
        serde_json::from_str(&row.verdict).map_err(|e| corrupt("verdict", e))?;
    let classification: crate::action::Classification =
        serde_json::from_value(verdict["classification"].clone())
            .map_err(|e| corrupt("classification", e))?;
    let route: Route =
        serde_json::from_value(verdict["route"].clone()).map_err(|e| corrupt("route", e))?;
    let state = State::parse(&row.state)?;
    let denied_reason = verdict["denied_reason"].as_str();
    Ok(status(
        row,
        state,
        &action,
        &classification,
        &route,
        denied_reason,
        with_grant,
    ))
}

/// `status_of` from the parts it parses out of `row`; the submit path, which
/// holds them already, starts here.
fn status(
    row: &ActionRow,
    state: State,
    action: &Action,
    classification: &crate::action::Classification,
    route: &Route,
    denied_reason: Option<&str>,
    with_grant: bool,
) -> ActionStatus {
    let reason = match (route, state) {
        (Route::Deny { reason }, State::Denied) => Some(reason.clone()),
        (_, State::Denied) => denied_reason.map(String::from),
        (_, State::Expired) => {
            Some("no decision before the approval expired; failing closed".into())
        }
        _ => None,
    };
    let approval = match (route, row.expires_at) {
        (Route::RequireApproval(a), Some(expires_at)) => Some(PendingApproval {
            groups: a.groups.clone(),
            quorum: a.quorum,
            expires_at,
        }),
        _ => None,
    };
    ActionStatus {
        action_id: row.id.clone(),
        state,
        kind: action.kind.clone(),
        resource: action.resource.clone(),
        risk: classification.risk,
        reasons: classification.reasons.clone(),
        reason,
        approval,
        grant: if with_grant && matches!(state, State::Allowed | State::Approved) {
            row.grant_token.clone()
        } else {
            None
        },
        digest: row.digest.clone(),
        updated_at: row.updated_at,
    }
}
