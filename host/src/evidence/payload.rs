//! One typed payload per event kind: every writer builds its event from
//! these and every reader (story, recorded, replay, bundle, changes) parses
//! them back. Their field names and their null-or-absent rules ARE the
//! recorded format: never rename a field or change a skip rule, or evidence
//! already written stops reading the same (`tests/compat.rs` holds a log of
//! an earlier release to them, byte for byte). Readers include auditors
//! checking events nobody vouches for, so fields a check can do without
//! read as empty when missing (`#[serde(default)]`); writers always write
//! every field.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Actor, EventKind, NewEvent, StoredEvent};
use crate::action::{Action, ApprovalRoute, Classification, Decision, OutcomeStatus, Risk, Route};
use crate::evaluate::{PluginRef, Verdict};
use crate::notify::NotificationKind;
use crate::sandbox::{Limits, PluginFailure};

/// The payload of one event kind.
pub trait Payload: Serialize {
    const KIND: EventKind;

    /// This payload as an event about `action_id` (if any) by `actor`.
    fn event(&self, action_id: Option<Uuid>, actor: Actor) -> NewEvent {
        NewEvent {
            kind: Self::KIND,
            action_id,
            actor,
            payload: serde_json::to_value(self).expect("payloads are JSON"),
        }
    }
}

/// A stored payload that is not what its kind's type says.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("seq {seq} is a {actual} event, not {expected}")]
    Kind {
        seq: u64,
        actual: EventKind,
        expected: EventKind,
    },
    #[error("seq {seq}: {kind} payload: {source}")]
    Shape {
        seq: u64,
        kind: EventKind,
        source: serde_json::Error,
    },
}

impl StoredEvent {
    /// The payload, typed: refuses an event of another kind or a payload
    /// that does not have the kind's shape.
    pub fn payload_as<P: Payload + DeserializeOwned>(&self) -> Result<P, PayloadError> {
        if self.kind != P::KIND {
            return Err(PayloadError::Kind {
                seq: self.seq,
                actual: self.kind,
                expected: P::KIND,
            });
        }
        P::deserialize(&self.payload).map_err(|source| PayloadError::Shape {
            seq: self.seq,
            kind: self.kind,
            source,
        })
    }
}

macro_rules! payload_kind {
    ($($ty:ident $(<$lt:lifetime>)? = $kind:ident,)*) => {
        $(impl$(<$lt>)? Payload for $ty$(<$lt>)? {
            const KIND: EventKind = EventKind::$kind;
        })*

        /// A stored payload read through its kind's type and written back:
        /// what every reader of the event sees. Equal to the stored payload
        /// for every event the host ever wrote (the compatibility test holds
        /// an earlier release's log to it).
        pub fn reread(e: &StoredEvent) -> Result<serde_json::Value, PayloadError> {
            match e.kind {
                $(EventKind::$kind => Ok(serde_json::to_value(e.payload_as::<$ty>()?)
                    .expect("payloads are JSON")),)*
            }
        }
    };
}

payload_kind! {
    Submitted<'a> = Submitted,
    Evaluated<'a> = Evaluated,
    ShadowEvaluated<'a> = ShadowEvaluated,
    PluginFailed = PluginFailed,
    Notified = Notified,
    NotifyFailed = NotifyFailed,
    Reviewed = Reviewed,
    Approved = Approved,
    Denied = Denied,
    Expired = Expired,
    Reminded = Reminded,
    Escalated = Escalated,
    Granted = Granted,
    GrantReused = GrantReused,
    Executed = Executed,
    BindingChanged = BindingChanged,
    PluginRegistered = PluginRegistered,
    SignedIn = SignedIn,
    SignInRefused = SignInRefused,
    McpToolDefined = McpToolDefined,
    McpRequestRefused = McpRequestRefused,
}

/// `submitted`: the action as the host built it, and its digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submitted<'a> {
    pub action: Cow<'a, Action>,
    #[serde(default)]
    pub digest: String,
    #[serde(flatten)]
    pub by: SubmittedBy,
}

/// Who submitted: an agent through the API, or a person through the host
/// (a four-eyes policy change).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SubmittedBy {
    /// Tried first when reading: only the host's own actions name a person.
    Person { requested_by: String },
    Agent {
        #[serde(default)]
        idempotency_key: Option<String>,
        /// sha256 of the canonical request body.
        #[serde(default)]
        request_hash: String,
    },
}

/// What the plugin answered, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    pub classification: Classification,
    pub route: Route,
}

/// `evaluated`: what went in, what came out, who decided, at what cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluated<'a> {
    pub plugin: Option<PluginRef>,
    #[serde(default)]
    pub wit_version: String,
    #[serde(default)]
    pub host_version: String,
    pub input: Cow<'a, Action>,
    pub output: Output,
    #[serde(default)]
    pub failed_closed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel_used: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
}

impl<'a> Evaluated<'a> {
    pub fn new(action: &'a Action, verdict: &Verdict) -> Self {
        Evaluated {
            plugin: verdict.plugin.clone(),
            wit_version: verdict.wit_version.clone(),
            host_version: verdict.host_version.clone(),
            input: Cow::Borrowed(action),
            output: Output {
                classification: verdict.classification.clone(),
                route: verdict.route.clone(),
            },
            failed_closed: verdict.failure.is_some(),
            fuel_used: Some(verdict.fuel_used),
            duration_us: Some(verdict.duration_us),
            limits: Some(verdict.limits.clone()),
        }
    }
}

/// `shadow-evaluated`: the `evaluated` fields, for a plugin that is
/// recorded and never enforced, beside the live one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShadowEvaluated<'a> {
    #[serde(flatten)]
    pub evaluated: Evaluated<'a>,
    /// Only when the shadow failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<PluginFailure>,
    #[serde(default)]
    pub live_sha256: Option<String>,
}

/// `plugin-failed`: the plugin and how it failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginFailed {
    pub plugin: Option<PluginRef>,
    pub failure: PluginFailure,
}

/// `notified`: a notifier delivered a notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notified {
    pub notifier: String,
    pub notification: String,
    pub kind: NotificationKind,
    pub attempts: u32,
}

/// `notify-failed`: a notifier gave up; the approval can be given elsewhere.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifyFailed {
    pub notifier: String,
    pub notification: String,
    pub kind: NotificationKind,
    pub error: String,
}

/// `reviewed`: one approver's decision on one digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reviewed {
    /// The approver's email.
    #[serde(default)]
    pub approver: String,
    #[serde(default)]
    pub name: String,
    pub decision: Decision,
    pub reason: Option<String>,
    #[serde(default)]
    pub channel: String,
    /// The digest reviewed: after a modify, the new one.
    #[serde(default)]
    pub digest: String,
    /// A modify's digest before it.
    #[serde(default)]
    pub previous_digest: Option<String>,
    /// A modify's params, as modified.
    #[serde(default)]
    pub changes: Option<serde_json::Value>,
    /// After a modify, the route in force: the new route raised to the bar
    /// in force before (written since the modify rule of issue 19).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_in_force: Option<ApprovalRoute>,
    /// Step-up was in force for this review (written only then, since
    /// passkey step-up landed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub step_up_required: bool,
    /// The verified passkey step-up the approval carried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_up: Option<StepUpProof>,
}

/// A verified passkey assertion, as a review's evidence records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepUpProof {
    /// base64url credential id.
    #[serde(default)]
    pub credential_id: String,
    /// The authenticator's flags as it signed them.
    #[serde(default)]
    pub user_present: bool,
    #[serde(default)]
    pub user_verified: bool,
    #[serde(default)]
    pub sign_count: u32,
    /// base64url: the challenge id (the nonce) and the derived challenge,
    /// so an auditor can recompute `challenge::derive`.
    #[serde(default)]
    pub nonce: String,
    #[serde(default)]
    pub challenge: String,
}

/// `approved`: the quorum of distinct people met, on `digest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approved {
    #[serde(default)]
    pub approvers: Vec<String>,
    #[serde(default)]
    pub digest: String,
}

/// `denied`: by the policy (with its risk), by the policy after a modify,
/// or by a reviewer (`by`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Denied {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<Risk>,
    /// `modify` when a modified action's new route denied it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// `expired`: nobody decided before the approval's expiry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Expired {
    pub expires_at: Option<DateTime<Utc>>,
    pub digest: String,
}

/// `reminded`: the approvers were reminded before expiry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reminded {
    pub expires_at: Option<DateTime<Utc>>,
}

/// `escalated`: the route's `escalate_to` groups were told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Escalated {
    pub to: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// `granted`: a signed grant's claims that matter to an auditor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Granted {
    #[serde(default)]
    pub jti: String,
    #[serde(default)]
    pub exp: i64,
    #[serde(default)]
    pub action_digest: String,
    pub plugin_sha256: Option<String>,
    #[serde(default)]
    pub approvers: Vec<String>,
}

/// `grant-reused`: a grant presented a second time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrantReused {
    pub jti: String,
}

/// `executed`: the outcome, reported by the agent with its grant, or by
/// the host for the actions it executes itself (binding changes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Executed {
    #[serde(default)]
    pub digest: String,
    pub status: ExecutedStatus,
    #[serde(default)]
    pub summary: String,
    #[serde(flatten)]
    pub by: ExecutedBy,
}

/// How a run went: what its executor reported, or `unknown` when nobody
/// recorded it (`ExecutedBy::Unrecorded`). Agents report only the first two
/// (`OutcomeStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutedStatus {
    Succeeded,
    Failed,
    Unknown,
}

impl ExecutedStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutedStatus::Succeeded => "succeeded",
            ExecutedStatus::Failed => "failed",
            ExecutedStatus::Unknown => "unknown",
        }
    }
}

impl From<OutcomeStatus> for ExecutedStatus {
    fn from(s: OutcomeStatus) -> Self {
        match s {
            OutcomeStatus::Succeeded => ExecutedStatus::Succeeded,
            OutcomeStatus::Failed => ExecutedStatus::Failed,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ExecutedBy {
    /// The host, running a tool call it gated (the MCP gateway), with the
    /// grant it claimed. First: an agent's report has no `executor`.
    Gateway {
        jti: String,
        /// Always null: the host keeps no run logs.
        logs: Option<String>,
        /// `mcp-gateway`.
        executor: String,
        /// Facts about the result (its sha256 and size), not the result.
        result: serde_json::Value,
    },
    /// Nobody: the grant was spent (a run claimed it, or an agent's report
    /// consumed it) and no outcome was recorded by `unrecorded_after`,
    /// because the host stopped, or could not write, in between. Recorded
    /// by the sweeper with status `unknown`. Before `Agent`, which has no
    /// `spent_at` and would otherwise read this too.
    Unrecorded {
        jti: String,
        spent_at: DateTime<Utc>,
    },
    /// The agent, consuming its grant.
    Agent { jti: String, logs: Option<String> },
    /// The host: the binding change it made.
    Host {
        binding_id: Option<i64>,
        binding_evidence_seq: Option<u64>,
    },
}

/// `binding-changed`: a pattern now goes to another plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BindingChanged {
    pub pattern: String,
    pub sha256: String,
    pub shadow: Option<String>,
    pub previous: Option<PreviousBinding>,
    /// `config`, `admin` or `approval`.
    pub source: String,
    /// The approved `actiongate.bind` action, for a four-eyes change.
    pub approval: Option<String>,
    pub approvers: Option<Vec<String>>,
}

/// The binding a change replaced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviousBinding {
    pub sha256: String,
    pub shadow: Option<String>,
    pub source: String,
    pub changed_by: String,
    pub evidence_seq: u64,
}

/// `plugin-registered`: bytes stored by sha256, with who and what vouched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginRegistered {
    pub sha256: String,
    pub name: String,
    pub version: String,
    pub kinds: Vec<String>,
    pub wit_version: String,
    pub size_bytes: u64,
    pub signer: Option<String>,
    pub source: String,
    pub cases: Option<CasesPassed>,
}

/// `signed-in`: an approver signed in to the web inbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedIn {
    /// The directory email the verified `email` claim matched.
    #[serde(default)]
    pub approver: String,
    #[serde(default)]
    pub issuer: String,
    #[serde(default)]
    pub subject: String,
    /// The provider's group claim, when one is configured.
    #[serde(default)]
    pub groups: Option<Vec<String>>,
    /// A prefix of the session id's hash: names the session without being
    /// able to act as it.
    #[serde(default)]
    pub session: String,
    pub expires_at: DateTime<Utc>,
}

/// `sign-in-refused`: a web inbox sign-in that got no session, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignInRefused {
    /// The refusal's slug.
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub detail: String,
    #[serde(default)]
    pub issuer: String,
    /// What the provider said of the person, when it got that far.
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub email_verified: Option<bool>,
}

/// `mcp-tool-defined`: an upstream tool's definition, first seen or
/// changed (a rug pull shows with both hashes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McpToolDefined {
    /// The name agents call it by.
    #[serde(default)]
    pub tool: String,
    #[serde(default)]
    pub upstream: String,
    /// `mcp.UPSTREAM.TOOL`.
    #[serde(default)]
    pub kind: String,
    /// sha256 of the definition's RFC 8785 form.
    #[serde(default)]
    pub sha256: String,
    #[serde(default)]
    pub previous_sha256: Option<String>,
    /// The upstream's definition, as listed.
    #[serde(default)]
    pub definition: serde_json::Value,
}

/// `mcp-request-refused`: an upstream asked the client for sampling,
/// elicitation or roots, and was refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McpRequestRefused {
    #[serde(default)]
    pub upstream: String,
    /// What it asked for.
    #[serde(default)]
    pub request: String,
}

/// A case file a plugin passed at registration, for the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CasesPassed {
    pub count: usize,
    /// sha256 of the case file's text.
    pub sha256: String,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::action::{ApprovalRoute, Principal};
    use crate::canonical;

    fn action() -> Action {
        Action {
            id: "0190c6c2-0000-7000-8000-000000000001".into(),
            kind: "db.export".into(),
            agent: Principal {
                id: "etl".into(),
                attributes: BTreeMap::from([("owner".into(), "o@example.com".into())]),
            },
            on_behalf_of: None,
            resource: "postgres://prod".into(),
            params: json!({"rows": 5}),
            justification: Some("report".into()),
            context: BTreeMap::new(),
            requested_at: "2026-12-06T07:00:00.123Z".parse().unwrap(),
        }
    }

    fn verdict(failure: Option<PluginFailure>) -> Verdict {
        Verdict {
            plugin: Some(PluginRef {
                sha256: "ab".repeat(32),
                name: "db-export".into(),
                version: "0.1.0".into(),
                wit_version: "0.1.0".into(),
            }),
            classification: Classification {
                risk: Risk::High,
                reasons: vec!["many rows".into()],
                tags: vec![],
            },
            route: Route::RequireApproval(ApprovalRoute {
                groups: vec!["data-owners".into()],
                quorum: 2,
                ttl_seconds: 60,
                modifiable_params: vec!["rows".into()],
                escalate_to: vec![],
            }),
            failure,
            fuel_used: 15_342,
            duration_us: 11,
            limits: Limits::default(),
            wit_version: "0.1.0".into(),
            host_version: "0.1.0".into(),
        }
    }

    /// The typed payload writes the canonical bytes the `json!` literal of
    /// the release before it wrote, and reads them back to itself.
    fn same<P: Payload + DeserializeOwned + PartialEq + std::fmt::Debug>(
        typed: P,
        literal: serde_json::Value,
    ) {
        let written = typed.event(None, Actor::system("t"));
        assert_eq!(
            canonical::value_to_string(&written.payload).unwrap(),
            canonical::value_to_string(&literal).unwrap(),
            "{}",
            P::KIND
        );
        let stored = StoredEvent {
            seq: 7,
            occurred_at: Utc::now(),
            kind: P::KIND,
            action_id: None,
            actor: Actor::system("t"),
            payload: literal,
            leaf_hash: [0; 32],
            canonical: String::new(),
        };
        assert_eq!(stored.payload_as::<P>().unwrap(), typed, "{}", P::KIND);
    }

    #[test]
    fn evaluation_payloads_keep_their_bytes() {
        let (a, v) = (action(), verdict(None));
        let literal = json!({
            "plugin": v.plugin,
            "wit_version": v.wit_version,
            "host_version": v.host_version,
            "input": a,
            "output": {"classification": v.classification, "route": v.route},
            "failed_closed": v.failure.is_some(),
            "fuel_used": v.fuel_used,
            "duration_us": v.duration_us,
            "limits": v.limits,
        });
        same(Evaluated::new(&a, &v), literal.clone());

        let failure = PluginFailure::Trap {
            message: "boom".into(),
        };
        let failed = verdict(Some(failure.clone()));
        let mut shadow = json!({
            "plugin": failed.plugin,
            "wit_version": failed.wit_version,
            "host_version": failed.host_version,
            "input": a,
            "output": {"classification": failed.classification, "route": failed.route},
            "failed_closed": true,
            "fuel_used": failed.fuel_used,
            "duration_us": failed.duration_us,
            "limits": failed.limits,
        });
        shadow["failure"] = json!(failure);
        shadow["live_sha256"] = json!("cd".repeat(32));
        same(
            ShadowEvaluated {
                evaluated: Evaluated::new(&a, &failed),
                failure: Some(failure.clone()),
                live_sha256: Some("cd".repeat(32)),
            },
            shadow,
        );
        same(
            PluginFailed {
                plugin: failed.plugin.clone(),
                failure: failure.clone(),
            },
            json!({"plugin": failed.plugin, "failure": failure}),
        );
    }

    #[test]
    fn submissions_by_agents_and_people_keep_their_bytes() {
        let a = action();
        same(
            Submitted {
                action: Cow::Borrowed(&a),
                digest: a.digest(),
                by: SubmittedBy::Agent {
                    idempotency_key: None,
                    request_hash: "ef".repeat(32),
                },
            },
            json!({"action": a, "digest": a.digest(), "idempotency_key": null, "request_hash": "ef".repeat(32)}),
        );
        same(
            Submitted {
                action: Cow::Borrowed(&a),
                digest: a.digest(),
                by: SubmittedBy::Person {
                    requested_by: "sam@example.com".into(),
                },
            },
            json!({"action": a, "digest": a.digest(), "requested_by": "sam@example.com"}),
        );
    }

    #[test]
    fn review_and_decision_payloads_keep_their_bytes() {
        same(
            Reviewed {
                approver: "dana@example.com".into(),
                name: "Dana".into(),
                decision: Decision::Approve,
                reason: None,
                channel: "api".into(),
                digest: "d1".into(),
                previous_digest: None,
                changes: None,
                route_in_force: None,
                step_up_required: false,
                step_up: None,
            },
            json!({"approver": "dana@example.com", "name": "Dana", "decision": "approve",
                   "reason": null, "channel": "api", "digest": "d1",
                   "previous_digest": null, "changes": null}),
        );
        // Under step-up (since passkey step-up landed): the flag and the proof.
        let proof = StepUpProof {
            credential_id: "cred".into(),
            user_present: true,
            user_verified: true,
            sign_count: 4,
            nonce: "bm9uY2U".into(),
            challenge: "Y2g".into(),
        };
        same(
            Reviewed {
                approver: "dana@example.com".into(),
                name: "Dana".into(),
                decision: Decision::Approve,
                reason: Some("ok".into()),
                channel: "inbox".into(),
                digest: "d1".into(),
                previous_digest: None,
                changes: None,
                route_in_force: None,
                step_up_required: true,
                step_up: Some(proof.clone()),
            },
            json!({"approver": "dana@example.com", "name": "Dana", "decision": "approve",
                   "reason": "ok", "channel": "inbox", "digest": "d1",
                   "previous_digest": null, "changes": null, "step_up_required": true,
                   "step_up": serde_json::to_value(&proof).unwrap()}),
        );
        assert_eq!(
            serde_json::to_value(&proof).unwrap(),
            json!({"credential_id": "cred", "user_present": true, "user_verified": true,
                   "sign_count": 4, "nonce": "bm9uY2U", "challenge": "Y2g"})
        );
        same(
            Reviewed {
                approver: "dana@example.com".into(),
                name: "Dana".into(),
                decision: Decision::Modify,
                reason: Some("fewer".into()),
                channel: "slack".into(),
                digest: "d2".into(),
                previous_digest: Some("d1".into()),
                changes: Some(json!({"rows": 1})),
                route_in_force: None,
                step_up_required: false,
                step_up: None,
            },
            json!({"approver": "dana@example.com", "name": "Dana", "decision": "modify",
                   "reason": "fewer", "channel": "slack", "digest": "d2",
                   "previous_digest": "d1", "changes": {"rows": 1}}),
        );
        same(
            Denied {
                by: None,
                reason: Some("no".into()),
                risk: Some(Risk::Critical),
                after: None,
            },
            json!({"reason": "no", "risk": "critical"}),
        );
        same(
            Denied {
                by: None,
                reason: Some("no".into()),
                risk: None,
                after: Some("modify".into()),
            },
            json!({"reason": "no", "after": "modify"}),
        );
        same(
            Denied {
                by: Some("erin@example.com".into()),
                reason: None,
                risk: None,
                after: None,
            },
            json!({"by": "erin@example.com", "reason": null}),
        );
        same(
            Approved {
                approvers: vec!["a@x".into(), "b@x".into()],
                digest: "d".into(),
            },
            json!({"approvers": ["a@x", "b@x"], "digest": "d"}),
        );
        let at: DateTime<Utc> = "2026-12-06T07:00:00Z".parse().unwrap();
        same(
            Expired {
                expires_at: Some(at),
                digest: "d".into(),
            },
            json!({"expires_at": at, "digest": "d"}),
        );
        same(Reminded { expires_at: None }, json!({"expires_at": null}));
        same(
            Escalated {
                to: vec!["leads".into()],
                expires_at: Some(at),
            },
            json!({"to": ["leads"], "expires_at": at}),
        );
    }

    #[test]
    fn grant_outcome_and_notice_payloads_keep_their_bytes() {
        same(
            Granted {
                jti: "j".into(),
                exp: 1_700_000_000,
                action_digest: "d".into(),
                plugin_sha256: None,
                approvers: vec![],
            },
            json!({"jti": "j", "exp": 1_700_000_000, "action_digest": "d",
                   "plugin_sha256": null, "approvers": []}),
        );
        same(GrantReused { jti: "j".into() }, json!({"jti": "j"}));
        same(
            Executed {
                digest: "d".into(),
                status: ExecutedStatus::Failed,
                summary: "s".into(),
                by: ExecutedBy::Agent {
                    jti: "j".into(),
                    logs: None,
                },
            },
            json!({"jti": "j", "digest": "d", "status": "failed", "summary": "s", "logs": null}),
        );
        same(
            Executed {
                digest: "d".into(),
                status: ExecutedStatus::Succeeded,
                summary: "binding x changed".into(),
                by: ExecutedBy::Host {
                    binding_id: Some(3),
                    binding_evidence_seq: Some(40),
                },
            },
            json!({"digest": "d", "status": "succeeded", "summary": "binding x changed",
                   "binding_id": 3, "binding_evidence_seq": 40}),
        );
        same(
            Executed {
                digest: "d".into(),
                status: ExecutedStatus::Unknown,
                summary: "s".into(),
                by: ExecutedBy::Unrecorded {
                    jti: "j".into(),
                    spent_at: "2026-12-07T10:00:00Z".parse().unwrap(),
                },
            },
            json!({"jti": "j", "digest": "d", "status": "unknown", "summary": "s",
                   "spent_at": "2026-12-07T10:00:00Z"}),
        );
        same(
            Notified {
                notifier: "webhook:ops".into(),
                notification: "n".into(),
                kind: NotificationKind::Pending,
                attempts: 2,
            },
            json!({"notifier": "webhook:ops", "notification": "n", "kind": NotificationKind::Pending, "attempts": 2}),
        );
        same(
            NotifyFailed {
                notifier: "webhook:ops".into(),
                notification: "n".into(),
                kind: NotificationKind::Approved,
                error: "refused".into(),
            },
            json!({"notifier": "webhook:ops", "notification": "n", "kind": NotificationKind::Approved, "error": "refused"}),
        );
    }

    #[test]
    fn policy_lifecycle_payloads_keep_their_bytes() {
        same(
            BindingChanged {
                pattern: "db.*".into(),
                sha256: "ab".into(),
                shadow: None,
                previous: Some(PreviousBinding {
                    sha256: "cd".into(),
                    shadow: Some("ef".into()),
                    source: "config".into(),
                    changed_by: "config".into(),
                    evidence_seq: 4,
                }),
                source: "approval".into(),
                approval: Some("act".into()),
                approvers: Some(vec!["olly@example.com".into()]),
            },
            json!({"pattern": "db.*", "sha256": "ab", "shadow": null,
                   "previous": {"sha256": "cd", "shadow": "ef", "source": "config",
                                "changed_by": "config", "evidence_seq": 4},
                   "source": "approval", "approval": "act", "approvers": ["olly@example.com"]}),
        );
        same(
            PluginRegistered {
                sha256: "ab".into(),
                name: "p".into(),
                version: "1".into(),
                kinds: vec!["db.export".into()],
                wit_version: "0.1.0".into(),
                size_bytes: 1234,
                signer: None,
                source: "example:p".into(),
                cases: Some(CasesPassed {
                    count: 3,
                    sha256: "cs".into(),
                }),
            },
            json!({"sha256": "ab", "name": "p", "version": "1", "kinds": ["db.export"],
                   "wit_version": "0.1.0", "size_bytes": 1234, "signer": null,
                   "source": "example:p", "cases": {"count": 3, "sha256": "cs"}}),
        );
    }

    #[test]
    fn inbox_and_mcp_payloads_keep_their_bytes() {
        let at: DateTime<Utc> = "2026-12-06T07:00:00.5Z".parse().unwrap();
        same(
            SignedIn {
                approver: "dana@example.com".into(),
                issuer: "https://idp.example".into(),
                subject: "s1".into(),
                groups: Some(vec!["data-owners".into()]),
                session: "0123456789abcdef".into(),
                expires_at: at,
            },
            json!({"approver": "dana@example.com", "issuer": "https://idp.example",
                   "subject": "s1", "groups": ["data-owners"],
                   "session": "0123456789abcdef", "expires_at": at}),
        );
        same(
            SignInRefused {
                reason: "unknown-person".into(),
                detail: "no such person".into(),
                issuer: "https://idp.example".into(),
                subject: Some("s1".into()),
                email: None,
                email_verified: Some(false),
            },
            json!({"reason": "unknown-person", "detail": "no such person",
                   "issuer": "https://idp.example", "subject": "s1", "email": null,
                   "email_verified": false}),
        );
        same(
            McpToolDefined {
                tool: "fs__read".into(),
                upstream: "fs".into(),
                kind: "mcp.fs.read".into(),
                sha256: "ab".into(),
                previous_sha256: None,
                definition: json!({"name": "read", "inputSchema": {"type": "object"}}),
            },
            json!({"tool": "fs__read", "upstream": "fs", "kind": "mcp.fs.read",
                   "sha256": "ab", "previous_sha256": null,
                   "definition": {"name": "read", "inputSchema": {"type": "object"}}}),
        );
        same(
            McpRequestRefused {
                upstream: "fs".into(),
                request: "sampling".into(),
            },
            json!({"upstream": "fs", "request": "sampling"}),
        );
        // The gateway's own run, beside an agent's report.
        same(
            Executed {
                digest: "d1".into(),
                status: ExecutedStatus::Succeeded,
                summary: "ok".into(),
                by: ExecutedBy::Gateway {
                    jti: "j1".into(),
                    logs: None,
                    executor: "mcp-gateway".into(),
                    result: json!({"sha256": "cd", "bytes": 12}),
                },
            },
            json!({"jti": "j1", "digest": "d1", "status": "succeeded", "summary": "ok",
                   "logs": null, "executor": "mcp-gateway",
                   "result": {"sha256": "cd", "bytes": 12}}),
        );
    }

    #[test]
    fn a_payload_of_another_kind_or_shape_is_refused() {
        let stored = StoredEvent {
            seq: 9,
            occurred_at: Utc::now(),
            kind: EventKind::Approved,
            action_id: None,
            actor: Actor::system("t"),
            payload: json!({"approvers": "not a list", "digest": "d"}),
            leaf_hash: [0; 32],
            canonical: String::new(),
        };
        let e = stored.payload_as::<Granted>().unwrap_err();
        assert!(e.to_string().contains("not granted"), "{e}");
        let e = stored.payload_as::<Approved>().unwrap_err();
        assert!(e.to_string().starts_with("seq 9: approved payload"), "{e}");
    }
}
