//! The story rules of one action, checked from its events alone (DESIGN.md,
//! "Approval rules"): it was submitted as recorded, no approver was the
//! requester, the quorum of distinct people was met, approval came before
//! the grant and the grant before execution, every digest agrees, and once
//! step-up is in force every approval carries a passkey proof whose
//! challenge derives from the version approved and the approver. Pure:
//! no database, no clock, so bundles can be checked offline.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::Value;

use crate::action::{Decision, Route};
use crate::evidence::payload::{self, PayloadError};
use crate::evidence::{EventKind, StoredEvent};

/// One broken rule: where (seq, field) and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub seq: u64,
    /// The payload field at fault, when one is.
    pub field: Option<&'static str>,
    pub rule: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field {
            Some(field) => write!(f, "seq {} field {field}: {}", self.seq, self.rule),
            None => write!(f, "seq {}: {}", self.seq, self.rule),
        }
    }
}

/// Who may not approve: the agent, its owner, the human it acts for.
struct Requester {
    agent: String,
    owner: Option<String>,
    on_behalf_of: Option<String>,
}

impl Requester {
    /// Which requester identity `who` is, if any.
    fn is(&self, who: &str) -> Option<&'static str> {
        let same = |x: &str| x.trim().eq_ignore_ascii_case(who.trim());
        if same(&self.agent) {
            Some("the requesting agent")
        } else if self.owner.as_deref().is_some_and(same) {
            Some("the requesting agent's owner")
        } else if self.on_behalf_of.as_deref().is_some_and(same) {
            Some("the human the agent acts for")
        } else {
            None
        }
    }
}

#[derive(Default)]
struct Story {
    violations: Vec<Violation>,
    requester: Option<Requester>,
    /// The digest of the action as it stands (after any modify).
    digest: Option<String>,
    /// (input digest, route) of each evaluation, in order.
    routes: Vec<(String, Route)>,
    /// (seq, approver, digest) of each approve or modify review.
    approvals: Vec<(u64, String, String)>,
    /// (seq, approvers, digest) of the approval, once reached.
    approved: Option<(u64, BTreeSet<String>, String)>,
    denied: Option<u64>,
    /// (seq, jti, action digest) of each grant.
    grants: Vec<(u64, String, String)>,
    /// Set by the first review that records step-up in force; from then on
    /// every approval must carry a proof.
    step_up: bool,
    /// (approver, digest) of each approval that carried a valid proof.
    proven: Vec<(String, String)>,
}

/// Checks the story of one action from its events, in seq order.
pub fn check(events: &[&StoredEvent]) -> Vec<Violation> {
    let mut s = Story::default();
    let Some(first) = events.first() else {
        return Vec::new();
    };
    if first.kind != EventKind::Submitted {
        s.flag(
            first.seq,
            None,
            format!("the story starts with {}, not submitted", first.kind),
        );
    }
    for e in events {
        s.event(e);
    }
    s.violations
}

/// What a payload lacked, in serde's words.
fn cause(e: PayloadError) -> String {
    match e {
        PayloadError::Shape { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

impl Story {
    fn flag(&mut self, seq: u64, field: Option<&'static str>, rule: impl Into<String>) {
        self.violations.push(Violation {
            seq,
            field,
            rule: rule.into(),
        });
    }

    /// The route the policy gave the action at `digest` (the latest evaluation of it).
    fn route_for(&self, digest: &str) -> Option<&Route> {
        self.routes
            .iter()
            .rev()
            .find(|(d, _)| d == digest)
            .map(|(_, r)| r)
    }

    fn not_requester(&mut self, seq: u64, field: &'static str, who: &str) {
        if let Some(role) = self.requester.as_ref().and_then(|r| r.is(who)) {
            self.flag(
                seq,
                Some(field),
                format!("{who} is {role}: no self-approval"),
            );
        }
    }

    fn event(&mut self, e: &StoredEvent) {
        match e.kind {
            EventKind::Submitted => self.submitted(e),
            EventKind::Evaluated => match e.payload_as::<payload::Evaluated>() {
                Ok(p) => {
                    let digest = p.input.digest();
                    if self.digest.as_deref() != Some(digest.as_str()) {
                        self.flag(
                            e.seq,
                            Some("input"),
                            "the evaluated input is not the action as submitted or modified",
                        );
                    }
                    self.routes.push((digest, p.output.route));
                }
                Err(_) => self.flag(
                    e.seq,
                    Some("output"),
                    "not an evaluation with an input and a route",
                ),
            },
            EventKind::Reviewed => match e.payload_as::<payload::Reviewed>() {
                Ok(p) => {
                    self.not_requester(e.seq, "approver", &p.approver);
                    self.step_up_review(e, &p);
                    match p.decision {
                        Decision::Approve => {
                            if self.digest.as_deref() != Some(p.digest.as_str()) {
                                self.flag(
                                    e.seq,
                                    Some("digest"),
                                    "the approval is for another version of the action",
                                );
                            }
                            self.approvals.push((e.seq, p.approver, p.digest));
                        }
                        Decision::Modify => {
                            // The modify is the modifier's approval of the new digest.
                            self.digest = Some(p.digest.clone());
                            self.approvals.push((e.seq, p.approver, p.digest));
                        }
                        Decision::Deny => {}
                    }
                }
                Err(_) => {
                    if let Some(approver) = e.payload.get("approver").and_then(Value::as_str) {
                        self.not_requester(e.seq, "approver", approver);
                    }
                    let decision = e.payload.get("decision").and_then(Value::as_str);
                    self.flag(
                        e.seq,
                        Some("decision"),
                        format!("unknown decision {decision:?}"),
                    );
                }
            },
            EventKind::Approved => self.approved(e),
            EventKind::Denied => self.denied = Some(e.seq),
            EventKind::Granted => self.granted(e),
            EventKind::Executed => self.executed(e),
            _ => {}
        }
    }

    fn submitted(&mut self, e: &StoredEvent) {
        if self.requester.is_some() {
            self.flag(e.seq, None, "submitted twice");
            return;
        }
        let (action, recorded) = match e.payload_as::<payload::Submitted>() {
            Ok(p) => (p.action.into_owned(), p.digest),
            Err(x) => {
                self.flag(
                    e.seq,
                    Some("action"),
                    format!("not an action: {}", cause(x)),
                );
                return;
            }
        };
        if e.action_id.map(|u| u.to_string()).as_deref() != Some(action.id.as_str()) {
            self.flag(
                e.seq,
                Some("action.id"),
                format!(
                    "the submitted action is {}, the event is about another",
                    action.id
                ),
            );
        }
        let digest = action.digest();
        if recorded != digest {
            self.flag(
                e.seq,
                Some("digest"),
                format!(
                    "recorded {}, the submitted action's digest is {digest}",
                    if recorded.is_empty() {
                        "none"
                    } else {
                        &recorded
                    }
                ),
            );
        }
        if e.actor.id != action.agent.id {
            self.flag(
                e.seq,
                Some("actor"),
                format!(
                    "submitted by {}, the action is {}'s",
                    e.actor.id, action.agent.id
                ),
            );
        }
        // Every field by name, as the approval rules read them.
        let crate::action::RequesterIds {
            agent,
            owner,
            on_behalf_of,
        } = action.requester();
        self.requester = Some(Requester {
            agent: agent.to_string(),
            owner: owner.map(str::to_string),
            on_behalf_of: on_behalf_of.map(str::to_string),
        });
        self.digest = Some(digest);
    }

    /// A review under step-up: an approve or modify must carry a proof with
    /// user presence and verification, whose challenge recomputes from this
    /// action, the version reviewed (before a modify) and the approver.
    fn step_up_review(&mut self, e: &StoredEvent, p: &payload::Reviewed) {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
        use base64::Engine as _;
        if p.step_up_required {
            self.step_up = true;
        }
        if !self.step_up || p.decision == Decision::Deny {
            return;
        }
        let Some(proof) = &p.step_up else {
            self.flag(
                e.seq,
                Some("step_up"),
                "step-up is in force: the approval carries no passkey assertion",
            );
            return;
        };
        let reviewed = match p.decision {
            Decision::Modify => p.previous_digest.as_deref().unwrap_or_default(),
            _ => p.digest.as_str(),
        };
        for (flag, set) in [
            ("user_present", proof.user_present),
            ("user_verified", proof.user_verified),
        ] {
            if !set {
                self.flag(
                    e.seq,
                    Some("step_up"),
                    format!("the passkey assertion lacks {flag}"),
                );
            }
        }
        let action_id = e.action_id.map(|u| u.to_string()).unwrap_or_default();
        let expected = B64
            .decode(&proof.nonce)
            .ok()
            .map(|n| crate::stepup::challenge::derive(&action_id, reviewed, &p.approver, &n))
            .map(|c| B64.encode(c));
        if expected.as_deref() != Some(proof.challenge.as_str()) {
            self.flag(
                e.seq,
                Some("step_up"),
                "the assertion's challenge is not derived from this version and this approver",
            );
            return;
        }
        self.proven
            .push((p.approver.to_lowercase(), p.digest.clone()));
    }

    fn approved(&mut self, e: &StoredEvent) {
        let payload::Approved { approvers, digest } =
            e.payload_as().unwrap_or_else(|_| payload::Approved {
                approvers: Vec::new(),
                digest: String::new(),
            });
        if self.digest.as_deref() != Some(digest.as_str()) {
            self.flag(
                e.seq,
                Some("digest"),
                "approved a version of the action that is not the current one",
            );
        }
        if let Some(d) = self.denied {
            self.flag(
                e.seq,
                None,
                format!("approved after it was denied at seq {d}"),
            );
        }
        let distinct: BTreeSet<String> =
            approvers.iter().map(|a| a.trim().to_lowercase()).collect();
        for a in &approvers {
            self.not_requester(e.seq, "approvers", a);
            if self.step_up
                && !self
                    .proven
                    .iter()
                    .any(|(who, d)| who.eq_ignore_ascii_case(a) && *d == digest)
            {
                self.flag(
                    e.seq,
                    Some("approvers"),
                    format!("{a} approved a step-up action without a passkey assertion"),
                );
            }
            let reviewed = self
                .approvals
                .iter()
                .any(|(_, who, d)| who.eq_ignore_ascii_case(a) && *d == digest);
            if !reviewed {
                self.flag(
                    e.seq,
                    Some("approvers"),
                    format!("{a} has no earlier approving review of this version"),
                );
            }
        }
        let quorum = match self.route_for(&digest) {
            Some(Route::RequireApproval(r)) => r.quorum as usize,
            // A modify the policy then allowed: the modifier alone approves.
            Some(Route::Allow) => 1,
            Some(Route::Deny { .. }) => {
                self.flag(
                    e.seq,
                    None,
                    "approved although the policy denied this version",
                );
                1
            }
            None => {
                self.flag(
                    e.seq,
                    Some("digest"),
                    "no evaluation of this version precedes the approval",
                );
                1
            }
        };
        if distinct.len() < quorum {
            self.flag(
                e.seq,
                Some("approvers"),
                format!(
                    "quorum not met: {} distinct approver(s), the route needs {quorum}",
                    distinct.len()
                ),
            );
        }
        self.approved = Some((e.seq, distinct, digest));
    }

    fn granted(&mut self, e: &StoredEvent) {
        let grant = e.payload_as::<payload::Granted>().ok();
        let (jti, digest, approvers) = grant
            .map(|g| (g.jti, g.action_digest, g.approvers))
            .unwrap_or_default();
        if self.digest.as_deref() != Some(digest.as_str()) {
            self.flag(
                e.seq,
                Some("action_digest"),
                format!(
                    "the grant is for {digest}, the action's digest is {}",
                    self.digest.as_deref().unwrap_or("unknown")
                ),
            );
        }
        if let Some(d) = self.denied {
            self.flag(
                e.seq,
                None,
                format!("granted after it was denied at seq {d}"),
            );
        }
        let approvers: BTreeSet<String> =
            approvers.iter().map(|a| a.trim().to_lowercase()).collect();
        match self.route_for(&digest).cloned() {
            Some(Route::Allow) if self.approved.is_none() => {}
            Some(Route::Deny { .. }) => self.flag(
                e.seq,
                None,
                "granted although the policy denied this version",
            ),
            None => self.flag(
                e.seq,
                None,
                "no evaluation of this version precedes the grant",
            ),
            _ => match self.approved.clone() {
                None => self.flag(e.seq, None, "granted before any approval"),
                Some((_, by, d)) => {
                    if d != digest {
                        self.flag(
                            e.seq,
                            Some("action_digest"),
                            "the grant is for another version than the approval",
                        );
                    }
                    if by != approvers {
                        self.flag(
                            e.seq,
                            Some("approvers"),
                            "the grant names other approvers than the approval",
                        );
                    }
                }
            },
        }
        for a in approvers.clone() {
            self.not_requester(e.seq, "approvers", &a);
        }
        self.grants.push((e.seq, jti, digest));
    }

    fn executed(&mut self, e: &StoredEvent) {
        let (digest, jti) = match e.payload_as::<payload::Executed>() {
            Ok(p) => (
                p.digest,
                match p.by {
                    payload::ExecutedBy::Agent { jti, .. }
                    | payload::ExecutedBy::Gateway { jti, .. }
                    | payload::ExecutedBy::Unrecorded { jti, .. } => jti,
                    payload::ExecutedBy::Host { .. } => String::new(),
                },
            ),
            Err(_) => Default::default(),
        };
        let (digest, jti) = (digest.as_str(), jti.as_str());
        match self.grants.iter().find(|(_, j, _)| j == jti) {
            None => self.flag(e.seq, Some("jti"), "executed without an earlier grant"),
            Some((_, _, granted)) if granted != digest => self.flag(
                e.seq,
                Some("digest"),
                format!("executed {digest}, the grant was for {granted}"),
            ),
            Some(_) => {}
        }
        if self.digest.as_deref() != Some(digest) {
            self.flag(
                e.seq,
                Some("digest"),
                "the executed action is not the approved version",
            );
        }
        if let Some(d) = self.denied {
            self.flag(
                e.seq,
                None,
                format!("executed after it was denied at seq {d}"),
            );
        }
    }
}
