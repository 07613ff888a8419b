//! The record stage: commits a decided action's evidence, then its row
//! (with its grant), then announces it; and reads stored actions back,
//! decoded once into an `ActionRecord`. Never writes a row or answers
//! before the row's evidence is committed.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{ActionStatus, Gate, GateError, PendingApproval};
use crate::action::{Action, ActionId, Route, State};
use crate::evaluate::Verdict;
use crate::evidence::payload::{self, Payload};
use crate::evidence::{Actor, ActorKind, NewEvent, Recorded};
use crate::grant::{GrantClaims, AUDIENCE, ISSUER};
use crate::store::{ActionRow, AgentRow, NewAction, StoreError};

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

/// Where a fresh verdict puts an action, before anything is written.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Disposition {
    /// Allowed: a grant is issued with it.
    Allow,
    /// Denied by the policy, with its reason.
    Deny { reason: String },
    /// Held for approval until `expires_at`.
    Hold { expires_at: DateTime<Utc> },
}

impl Disposition {
    pub(super) fn of(route: &Route, now: DateTime<Utc>) -> Disposition {
        match route {
            Route::Allow => Disposition::Allow,
            Route::Deny { reason } => Disposition::Deny {
                reason: reason.clone(),
            },
            Route::RequireApproval(approval) => Disposition::Hold {
                expires_at: now + chrono::Duration::seconds(approval.ttl_seconds.into()),
            },
        }
    }

    pub(super) fn state(&self) -> State {
        match self {
            Disposition::Allow => State::Allowed,
            Disposition::Deny { .. } => State::Denied,
            Disposition::Hold { .. } => State::Pending,
        }
    }
}

impl Gate {
    /// Commits a decided action: its evidence (`events`, then the grant or
    /// denial), then its row; then announces it if it waits for approval.
    /// Submissions and four-eyes policy changes both come through here.
    pub(crate) async fn record_decision(
        &self,
        agent: &AgentRow,
        decided: &Decided,
        events: Vec<NewEvent>,
    ) -> Result<ActionStatus, GateError> {
        Ok(self.record_decided(agent, decided, events, false).await?.0)
    }

    /// `record_decision`; with `claim`, an action allowed at once is
    /// recorded with its grant already consumed, in the same commit, for
    /// the host to run itself (`execution`): then the grant's jti comes
    /// back, and nobody else can claim it.
    pub(super) async fn record_decided(
        &self,
        agent: &AgentRow,
        decided: &Decided,
        mut events: Vec<NewEvent>,
        claim: bool,
    ) -> Result<(ActionStatus, Option<String>), GateError> {
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

        let disposition = Disposition::of(&verdict.route, now);
        let state = disposition.state();
        let (grant, expires_at) = match &disposition {
            Disposition::Allow => {
                let (token, claims) = self.issue_grant(action, digest, verdict, Vec::new(), now);
                events.push(grant_event(action_uuid, &claims));
                (Some((token, claims)), None)
            }
            Disposition::Deny { reason } => {
                events.push(
                    payload::Denied {
                        by: None,
                        reason: Some(reason.clone()),
                        risk: Some(verdict.classification.risk),
                        after: None,
                    }
                    .event(Some(action_uuid), Actor::system("policy")),
                );
                (None, None)
            }
            Disposition::Hold { expires_at } => (None, Some(*expires_at)),
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
        let claimed = match (&grant, claim) {
            (Some((jti, _)), true) => Some(jti.clone()),
            _ => None,
        };
        // Evidence first: the action row, and the grant in it, commit only
        // once the events are durable; if they cannot be, nothing is allowed
        // (an error here is a 503 and no grant).
        let new = NewAction {
            row,
            grant,
            key_hash: key_hash.clone(),
            claimed: claimed.is_some(),
        };
        let claimed = match self.evidence.append_with_action(events, new).await?.1 {
            Recorded::Created => claimed,
            Recorded::NoAction => None,
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
                return Ok((self.replay(existing, request_hash, key)?, None));
            }
        };
        self.metrics.decided(state);
        tracing::info!(action_id = %action.id, agent = %agent.id, kind = %action.kind, state = state.as_str(), risk = verdict.classification.risk.as_str(), "action decided");
        if state == State::Pending && !self.notifiers.is_empty() {
            self.announce(
                self.notification_for(
                    &ActionId::from(action_uuid),
                    crate::notify::NotificationKind::Pending,
                )
                .await?,
            );
        }
        Ok((status, claimed))
    }

    /// The answer already given for an idempotency key, if the request is the same.
    pub(super) fn replay(
        &self,
        existing: ActionRow,
        request_hash: &str,
        key: &str,
    ) -> Result<ActionStatus, GateError> {
        if existing.request_hash != request_hash {
            return Err(GateError::IdempotencyConflict(key.into()));
        }
        Ok(ActionRecord::decode(existing)?.status(true))
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

    /// The stored action `id`, decoded; `NotFound` when there is none.
    pub async fn record(&self, id: &ActionId) -> Result<ActionRecord, GateError> {
        let row = self
            .store
            .action(&id.to_string())
            .await?
            .ok_or_else(|| GateError::NotFound(id.to_string()))?;
        Ok(ActionRecord::decode(row)?)
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
        events.push(
            payload::PluginFailed {
                plugin: verdict.plugin.clone(),
                failure: failure.clone(),
            }
            .event(Some(action_id), plugin_actor.clone()),
        );
    }
    events.push(payload::Evaluated::new(action, verdict).event(Some(action_id), plugin_actor));
    events
}

pub(crate) fn grant_event(action_id: Uuid, claims: &GrantClaims) -> NewEvent {
    payload::Granted {
        jti: claims.jti.clone(),
        exp: claims.exp,
        action_digest: claims.action_digest.clone(),
        plugin_sha256: claims.plugin_sha256.clone(),
        approvers: claims.approvers.clone(),
    }
    .event(Some(action_id), Actor::system("grants"))
}

/// The `submitted` evidence of an agent's action.
pub(super) fn submitted_event(
    action: &Action,
    digest: &str,
    agent: &AgentRow,
    idempotency_key: Option<String>,
    request_hash: &str,
) -> NewEvent {
    payload::Submitted {
        action: Cow::Borrowed(action),
        digest: digest.to_owned(),
        by: payload::SubmittedBy::Agent {
            idempotency_key,
            request_hash: request_hash.to_owned(),
        },
    }
    .event(
        Uuid::parse_str(&action.id).ok(),
        Actor {
            kind: ActorKind::Agent,
            id: agent.id.clone(),
        },
    )
}

/// A stored action, decoded once: the row's JSON parsed into the action
/// and the verdict that governs it now.
#[derive(Debug, Clone)]
pub struct ActionRecord {
    pub id: ActionId,
    pub agent_id: String,
    pub action: Action,
    /// The current digest (a modify changes it).
    pub digest: String,
    pub state: State,
    pub verdict: Verdict,
    /// Why a reviewer denied it, stored beside the verdict.
    pub denied_reason: Option<String>,
    pub grant_token: Option<String>,
    pub request_hash: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The verdict column: the governing verdict, plus the reviewer's reason
/// after a deny.
#[derive(serde::Deserialize)]
struct StoredVerdict {
    #[serde(flatten)]
    verdict: Verdict,
    #[serde(default)]
    denied_reason: Option<String>,
}

impl ActionRecord {
    /// Decodes a row; a row this release cannot read is corrupt, named.
    pub fn decode(row: ActionRow) -> Result<ActionRecord, StoreError> {
        let corrupt = |what: &str, e: &dyn std::fmt::Display| {
            StoreError::Corrupt(format!("action {} {what}: {e}", row.id))
        };
        let id: ActionId = row.id.parse().map_err(|e| corrupt("id", &e))?;
        let action: Action =
            serde_json::from_str(&row.action).map_err(|e| corrupt("action", &e))?;
        let stored: StoredVerdict =
            serde_json::from_str(&row.verdict).map_err(|e| corrupt("verdict", &e))?;
        let state = State::parse(&row.state).map_err(|e| corrupt("state", &e))?;
        Ok(ActionRecord {
            id,
            agent_id: row.agent_id,
            action,
            digest: row.digest,
            state,
            verdict: stored.verdict,
            denied_reason: stored.denied_reason,
            grant_token: row.grant_token,
            request_hash: row.request_hash,
            expires_at: row.expires_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }

    /// The caller's view. `with_grant`: only the agent sees its grant.
    pub fn status(&self, with_grant: bool) -> ActionStatus {
        view(
            &self.id.to_string(),
            self.state,
            &self.action,
            &self.verdict.classification,
            &self.verdict.route,
            self.denied_reason.as_deref(),
            self.expires_at,
            self.grant_token.as_deref(),
            &self.digest,
            self.updated_at,
            with_grant,
        )
    }

    /// The params reviewers may change now (none unless it is held).
    pub fn modifiable_params(&self) -> &[String] {
        match &self.verdict.route {
            Route::RequireApproval(route) => &route.modifiable_params,
            _ => &[],
        }
    }
}

/// The status of a row just written, from the values in hand (no parsing:
/// the submit path is hot).
fn status(
    row: &ActionRow,
    state: State,
    action: &Action,
    classification: &crate::action::Classification,
    route: &Route,
    denied_reason: Option<&str>,
    with_grant: bool,
) -> ActionStatus {
    view(
        &row.id,
        state,
        action,
        classification,
        route,
        denied_reason,
        row.expires_at,
        row.grant_token.as_deref(),
        &row.digest,
        row.updated_at,
        with_grant,
    )
}

/// What a caller sees: the reason for a final "no", the approval awaited,
/// and the grant only for its agent and only once it is good.
#[allow(clippy::too_many_arguments)] // one per field of the view; both callers hold them apart
fn view(
    id: &str,
    state: State,
    action: &Action,
    classification: &crate::action::Classification,
    route: &Route,
    denied_reason: Option<&str>,
    expires_at: Option<DateTime<Utc>>,
    grant_token: Option<&str>,
    digest: &str,
    updated_at: DateTime<Utc>,
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
    let approval = match (route, expires_at) {
        (Route::RequireApproval(a), Some(expires_at)) => Some(PendingApproval {
            groups: a.groups.clone(),
            quorum: a.quorum,
            expires_at,
        }),
        _ => None,
    };
    ActionStatus {
        action_id: id.to_owned(),
        state,
        kind: action.kind.clone(),
        resource: action.resource.clone(),
        risk: classification.risk,
        reasons: classification.reasons.clone(),
        reason,
        approval,
        grant: if with_grant && matches!(state, State::Allowed | State::Approved) {
            grant_token.map(String::from)
        } else {
            None
        },
        digest: digest.to_owned(),
        updated_at,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::action::{ApprovalRoute, Classification, Principal, Risk};
    use crate::sandbox::Limits;

    fn route_hold(ttl_seconds: u32) -> Route {
        Route::RequireApproval(ApprovalRoute {
            groups: vec!["data-owners".into()],
            quorum: 2,
            ttl_seconds,
            modifiable_params: vec!["rows".into()],
            escalate_to: vec![],
        })
    }

    fn row(state: State, route: Route, extra: Option<(&str, &str)>) -> ActionRow {
        let action = Action {
            id: "0190c6c2-0000-7000-8000-000000000001".into(),
            kind: "db.export".into(),
            agent: Principal {
                id: "etl".into(),
                attributes: BTreeMap::from([("owner".into(), "o@example.com".into())]),
            },
            on_behalf_of: None,
            resource: "postgres://prod".into(),
            params: json!({"rows": 5}),
            justification: None,
            context: BTreeMap::new(),
            requested_at: "2026-12-06T07:00:00.123Z".parse().unwrap(),
        };
        let verdict = Verdict {
            plugin: None,
            classification: Classification {
                risk: Risk::High,
                reasons: vec!["many rows".into()],
                tags: vec![],
            },
            route,
            failure: None,
            fuel_used: 1,
            duration_us: 1,
            limits: Limits::default(),
            wit_version: "0.1.0".into(),
            host_version: "0.1.0".into(),
        };
        let mut v = serde_json::to_value(&verdict).unwrap();
        if let Some((k, text)) = extra {
            v[k] = json!(text);
        }
        let at: DateTime<Utc> = "2026-12-06T07:00:01Z".parse().unwrap();
        ActionRow {
            id: action.id.clone(),
            agent_id: "etl".into(),
            idempotency_key: None,
            request_hash: "h".into(),
            action: serde_json::to_string(&action).unwrap(),
            digest: action.digest(),
            state: state.as_str().into(),
            verdict: v.to_string(),
            grant_token: Some("grant.jws".into()),
            expires_at: Some(at + chrono::Duration::seconds(60)),
            created_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn a_route_decides_the_first_state() {
        let now: DateTime<Utc> = "2026-12-06T07:00:00Z".parse().unwrap();
        assert_eq!(Disposition::of(&Route::Allow, now).state(), State::Allowed);
        let deny = Disposition::of(
            &Route::Deny {
                reason: "no".into(),
            },
            now,
        );
        assert_eq!(
            deny,
            Disposition::Deny {
                reason: "no".into()
            }
        );
        assert_eq!(deny.state(), State::Denied);
        let hold = Disposition::of(&route_hold(90), now);
        assert_eq!(
            hold,
            Disposition::Hold {
                expires_at: now + chrono::Duration::seconds(90)
            }
        );
        assert_eq!(hold.state(), State::Pending);
    }

    #[test]
    fn a_record_is_decoded_once_with_its_reviewers_reason() {
        let r = ActionRecord::decode(row(
            State::Denied,
            route_hold(60),
            Some(("denied_reason", "denied by erin@example.com: not now")),
        ))
        .unwrap();
        assert_eq!(r.state, State::Denied);
        assert_eq!(r.modifiable_params(), ["rows"]);
        let status = r.status(true);
        assert_eq!(
            status.reason.as_deref(),
            Some("denied by erin@example.com: not now")
        );
        // A denied action shows no grant, even to its agent.
        assert_eq!(status.grant, None);
        assert_eq!(status.approval.unwrap().quorum, 2);
        assert_eq!(status.action_id, r.id.to_string());
    }

    #[test]
    fn the_grant_shows_only_to_the_agent_once_good() {
        let allowed = ActionRecord::decode(row(State::Allowed, Route::Allow, None)).unwrap();
        assert_eq!(allowed.status(true).grant.as_deref(), Some("grant.jws"));
        assert_eq!(allowed.status(false).grant, None);
        assert!(allowed.modifiable_params().is_empty());
        let expired = ActionRecord::decode(row(State::Expired, route_hold(60), None)).unwrap();
        assert_eq!(expired.status(true).grant, None);
        assert!(expired
            .status(true)
            .reason
            .unwrap()
            .contains("failing closed"));
    }

    #[test]
    fn an_unreadable_row_is_corrupt_and_named() {
        let mut bad = row(State::Pending, route_hold(60), None);
        bad.state = "limbo".into();
        let e = ActionRecord::decode(bad).unwrap_err().to_string();
        assert!(
            e.contains("0190c6c2-0000-7000-8000-000000000001 state"),
            "{e}"
        );
        let mut bad = row(State::Pending, route_hold(60), None);
        bad.verdict = "{}".into();
        let e = ActionRecord::decode(bad).unwrap_err().to_string();
        assert!(e.contains("verdict"), "{e}");
    }
}
