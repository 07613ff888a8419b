//! The approval rules (DESIGN.md, "Approval rules") as pure functions over a
//! `Request` snapshot. They decide; they never record, notify or read a clock.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::action::{Action, ApprovalRoute, Risk, Route};
use crate::directory::{ApproverId, Directory, Person};

pub use crate::action::Decision;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestState {
    Pending,
    Approved,
    Denied,
    Expired,
}

impl RequestState {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Pending => "pending",
            RequestState::Approved => "approved",
            RequestState::Denied => "denied",
            RequestState::Expired => "expired",
        }
    }
}

impl fmt::Display for RequestState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who asked, in every identity that must not approve the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Requester {
    pub agent_id: String,
    /// The agent's owner (an email).
    pub owner: String,
    /// The human the agent acts for: an email or a name.
    pub on_behalf_of: Option<String>,
}

impl Requester {
    /// From the authenticated action. `None` when the agent has no `owner`
    /// attribute: without it, owner self-approval cannot be ruled out, so
    /// the caller must not hold the action for approval (fail closed).
    pub fn from_action(action: &Action) -> Option<Requester> {
        // Every field by name: one more identity there fails to compile
        // here until the rules refuse it too (`not_self`).
        let crate::action::RequesterIds {
            agent,
            owner,
            on_behalf_of,
        } = action.requester();
        let owner = owner?.trim();
        (!owner.is_empty()).then(|| Requester {
            agent_id: agent.to_string(),
            owner: owner.to_string(),
            on_behalf_of: on_behalf_of.map(str::to_string),
        })
    }
}

/// One recorded review. A modify is recorded with the digest of the
/// modified action, as the modifier's approval of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Review {
    pub approver: ApproverId,
    pub decision: Decision,
    pub reason: Option<String>,
    pub digest: String,
    pub at: DateTime<Utc>,
}

/// A held action as the rules see it: loaded (under a row lock) by the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Request {
    pub action_id: String,
    /// The digest of the action as it stands now (after any modify).
    pub digest: String,
    pub route: ApprovalRoute,
    pub risk: Risk,
    pub requester: Requester,
    pub state: RequestState,
    pub expires_at: DateTime<Utc>,
    /// After an explicit, recorded escalation, members of the route's
    /// `escalate_to` groups may review too.
    pub escalated: bool,
    /// In the order they were recorded. Reviews by people since removed
    /// from the directory are left out by the caller, which can only lose
    /// approvals (a deny has already ended the request).
    pub reviews: Vec<Review>,
}

impl Request {
    /// The groups whose members may review now.
    pub fn eligible_groups(&self) -> impl Iterator<Item = &str> {
        let escalated: &[String] = if self.escalated {
            &self.route.escalate_to
        } else {
            &[]
        };
        self.route
            .groups
            .iter()
            .chain(escalated)
            .map(String::as_str)
    }

    /// Quorum as enforced: a route asking for zero approvals still needs one.
    pub fn quorum(&self) -> u32 {
        self.route.quorum.max(1)
    }
}

/// Why a review is refused. Messages speak to the person who tried it
/// (shown e.g. ephemerally in Slack).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this request is already {state}; it can no longer be reviewed")]
    NotPending { state: RequestState },
    #[error("this request expired at {expires_at}; it can no longer be reviewed")]
    Expired { expires_at: DateTime<Utc> },
    #[error("{approver} is no longer in the approver directory")]
    UnknownApprover { approver: ApproverId },
    #[error("{approver} is not in any group this request is routed to ({groups})")]
    NotInGroup {
        approver: ApproverId,
        groups: String,
    },
    #[error("{approver} is the requesting agent `{agent_id}` and cannot review its own action")]
    RequestingAgent {
        approver: ApproverId,
        agent_id: String,
    },
    #[error("{approver} owns agent `{agent_id}` and cannot review its actions (admins included)")]
    Owner {
        approver: ApproverId,
        agent_id: String,
    },
    #[error("{approver} cannot review an action taken on their own behalf")]
    OnBehalfOf { approver: ApproverId },
    #[error("a reason is required to {decision} a {} risk action", risk.as_str())]
    ReasonRequired { decision: Decision, risk: Risk },
    #[error("{approver} has already approved this version of the action")]
    Duplicate { approver: ApproverId },
    #[error("this action has no parameters that reviewers may modify")]
    NothingModifiable,
    #[error("parameter `{key}` may not be modified (modifiable: {modifiable})")]
    ParamNotModifiable { key: String, modifiable: String },
    #[error("the modification changes nothing")]
    NoChange,
    #[error("the action changed since you saw it (you reviewed version {seen}, it is now {current}); review the current version")]
    Stale { seen: String, current: String },
    #[error("{what} must be a JSON object")]
    NotAnObject { what: &'static str },
}

impl Refusal {
    /// A stable kebab-case name, e.g. for a problem+json `type`.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::NotPending { .. } => "not-pending",
            Refusal::Expired { .. } => "expired",
            Refusal::UnknownApprover { .. } => "unknown-approver",
            Refusal::NotInGroup { .. } => "not-in-group",
            Refusal::RequestingAgent { .. } => "self-approval-agent",
            Refusal::Owner { .. } => "self-approval-owner",
            Refusal::OnBehalfOf { .. } => "self-approval-on-behalf-of",
            Refusal::ReasonRequired { .. } => "reason-required",
            Refusal::Duplicate { .. } => "duplicate",
            Refusal::NothingModifiable => "nothing-modifiable",
            Refusal::ParamNotModifiable { .. } => "param-not-modifiable",
            Refusal::NoChange => "no-change",
            Refusal::Stale { .. } => "stale",
            Refusal::NotAnObject { .. } => "not-an-object",
        }
    }
}

/// Whether `approver` may record `decision` on `request` now. Ok means the
/// caller may record the review; it changes nothing by itself.
pub fn check(
    dir: &Directory,
    request: &Request,
    approver: &ApproverId,
    decision: Decision,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    if request.state != RequestState::Pending {
        return Err(Refusal::NotPending {
            state: request.state,
        });
    }
    if now >= request.expires_at {
        return Err(Refusal::Expired {
            expires_at: request.expires_at,
        });
    }
    let Some(person) = dir.person(approver) else {
        return Err(Refusal::UnknownApprover {
            approver: approver.clone(),
        });
    };
    if !request
        .eligible_groups()
        .any(|group| dir.is_member(approver, group))
    {
        return Err(Refusal::NotInGroup {
            approver: approver.clone(),
            groups: request.eligible_groups().collect::<Vec<_>>().join(", "),
        });
    }
    not_self(person, &request.requester)?;

    let reason_given = reason.is_some_and(|r| !r.trim().is_empty());
    let reason_needed = match decision {
        Decision::Deny | Decision::Modify => true,
        Decision::Approve => request.risk >= Risk::High,
    };
    if reason_needed && !reason_given {
        return Err(Refusal::ReasonRequired {
            decision,
            risk: request.risk,
        });
    }

    match decision {
        Decision::Approve => {
            if approvals_of_current(request).any(|r| &r.approver == approver) {
                return Err(Refusal::Duplicate {
                    approver: approver.clone(),
                });
            }
        }
        Decision::Modify if request.route.modifiable_params.is_empty() => {
            return Err(Refusal::NothingModifiable);
        }
        Decision::Modify | Decision::Deny => {}
    }
    Ok(())
}

/// No self-approval: the approver is not the requesting agent, its owner or
/// the human it acts for, by any identity the directory knows. Admins are
/// not exempt: `Person::admin` is deliberately not consulted.
fn not_self(person: &Person, requester: &Requester) -> Result<(), Refusal> {
    if person.is_known_as(&requester.agent_id) {
        return Err(Refusal::RequestingAgent {
            approver: person.id().clone(),
            agent_id: requester.agent_id.clone(),
        });
    }
    if person.is_known_as(&requester.owner) {
        return Err(Refusal::Owner {
            approver: person.id().clone(),
            agent_id: requester.agent_id.clone(),
        });
    }
    if let Some(on_behalf_of) = &requester.on_behalf_of {
        if person.is_known_as(on_behalf_of) {
            return Err(Refusal::OnBehalfOf {
                approver: person.id().clone(),
            });
        }
    }
    Ok(())
}

/// Approvals (and modifies) that bind the action as it stands now.
fn approvals_of_current(request: &Request) -> impl Iterator<Item = &Review> {
    request.reviews.iter().filter(|r| {
        matches!(r.decision, Decision::Approve | Decision::Modify) && r.digest == request.digest
    })
}

/// Where a request stands given its reviews. Expiry is the caller's: it
/// knows the clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "tally", rename_all = "lowercase")]
pub enum Tally {
    Pending {
        have: u32,
        need: u32,
        approvers: Vec<ApproverId>,
    },
    Approved {
        approvers: Vec<ApproverId>,
    },
    Denied {
        by: ApproverId,
        reason: Option<String>,
    },
}

/// Counts distinct humans approving the current digest. Any deny, for any
/// digest, ends the request as denied.
pub fn tally(request: &Request) -> Tally {
    if let Some(deny) = request
        .reviews
        .iter()
        .find(|r| r.decision == Decision::Deny)
    {
        return Tally::Denied {
            by: deny.approver.clone(),
            reason: deny.reason.clone(),
        };
    }
    let mut seen = BTreeSet::new();
    let approvers: Vec<ApproverId> = approvals_of_current(request)
        // Defence in depth: `check` already refused these, but a review that
        // names the requester's email must never count toward quorum.
        .filter(|r| !names_requester(&r.approver, &request.requester))
        .filter(|r| seen.insert(r.approver.clone()))
        .map(|r| r.approver.clone())
        .collect();
    let have = u32::try_from(approvers.len()).unwrap_or(u32::MAX);
    let need = request.quorum();
    if have >= need {
        Tally::Approved { approvers }
    } else {
        Tally::Pending {
            have,
            need,
            approvers,
        }
    }
}

fn names_requester(approver: &ApproverId, requester: &Requester) -> bool {
    let id = approver.as_str();
    [
        Some(requester.agent_id.as_str()),
        Some(requester.owner.as_str()),
        requester.on_behalf_of.as_deref(),
    ]
    .into_iter()
    .flatten()
    .any(|name| name.trim().eq_ignore_ascii_case(id))
}

/// The route in force after a modify: the modified action's route, except
/// that a modify never lowers the bar (DESIGN.md, "Approval rules"). The
/// quorum is at least the one in force before it; the groups in force
/// before still count (the new route's are added, never swapped in); so do
/// their escalation groups. A new route that allows the action outright
/// leaves the bar in force as it was: one person can never approve alone,
/// by modifying, what needed two. `None` when the new route denies it.
pub fn route_after_modify(before: &ApprovalRoute, after: &Route) -> Option<ApprovalRoute> {
    let union = |a: &[String], b: &[String]| {
        let mut out = a.to_vec();
        out.extend(b.iter().filter(|g| !a.contains(g)).cloned());
        out
    };
    match after {
        Route::Deny { .. } => None,
        Route::Allow => Some(ApprovalRoute {
            quorum: before.quorum.max(1),
            ..before.clone()
        }),
        Route::RequireApproval(new) => Some(ApprovalRoute {
            groups: union(&before.groups, &new.groups),
            quorum: before.quorum.max(new.quorum).max(1),
            ttl_seconds: new.ttl_seconds,
            modifiable_params: new.modifiable_params.clone(),
            escalate_to: union(&before.escalate_to, &new.escalate_to),
        }),
    }
}

/// Applies a reviewer's `changes` to `params`: a top-level merge patch where
/// each key's value replaces the old one whole and `null` removes the key.
/// Every key touched must be in `modifiable`, so adding or removing any other
/// key is refused. Returns the new params; the caller re-evaluates them.
pub fn apply_modify(
    params: &serde_json::Value,
    changes: &serde_json::Value,
    modifiable: &[String],
) -> Result<serde_json::Value, Refusal> {
    let Some(current) = params.as_object() else {
        return Err(Refusal::NotAnObject { what: "params" });
    };
    let Some(changes) = changes.as_object() else {
        return Err(Refusal::NotAnObject { what: "changes" });
    };
    if modifiable.is_empty() {
        return Err(Refusal::NothingModifiable);
    }
    let mut next = current.clone();
    for (key, value) in changes {
        if !modifiable.iter().any(|m| m == key) {
            return Err(Refusal::ParamNotModifiable {
                key: key.clone(),
                modifiable: modifiable.join(", "),
            });
        }
        if value.is_null() {
            next.remove(key);
        } else {
            next.insert(key.clone(), value.clone());
        }
    }
    if &next == current {
        return Err(Refusal::NoChange);
    }
    Ok(serde_json::Value::Object(next))
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use serde_json::json;

    use super::*;
    use crate::directory::{Directory, DirectoryConfig};

    /// dana and erin own data; erin and sam are security; sam is an admin
    /// and owns the `etl` agent; olga is in no group; `etl-bot@example.com`
    /// is a person who shares the agent's id; pat asks through the agent.
    const DIRECTORY: &str = r#"
        [[people]]
        email = "dana@example.com"
        name = "Dana Owner"
        slack_id = "U0DANA"
        [[people]]
        email = "erin@example.com"
        name = "Erin"
        [[people]]
        email = "sam@example.com"
        name = "Sam Admin"
        admin = true
        [[people]]
        email = "olga@example.com"
        name = "Olga"
        [[people]]
        email = "etl-bot@example.com"
        name = "ETL Bot"
        [[people]]
        email = "pat@example.com"
        name = "Pat Person"
        [[people]]
        email = "esc@example.com"
        name = "Escalation"
        [groups]
        data-owners = ["dana@example.com", "erin@example.com", "etl-bot@example.com", "pat@example.com"]
        security = ["sam@example.com", "erin@example.com"]
        oncall = ["esc@example.com"]
    "#;

    fn dir() -> Directory {
        let cfg: DirectoryConfig = toml::from_str(DIRECTORY).unwrap();
        Directory::from_config(&cfg).unwrap()
    }

    fn id(dir: &Directory, email: &str) -> ApproverId {
        dir.person_by_email(email).unwrap().id().clone()
    }

    fn t0() -> DateTime<Utc> {
        "2026-11-25T10:00:00Z".parse().unwrap()
    }

    fn request(risk: Risk, quorum: u32) -> Request {
        Request {
            action_id: "act-1".into(),
            digest: "d1".into(),
            route: ApprovalRoute {
                groups: vec!["data-owners".into(), "security".into()],
                quorum,
                ttl_seconds: 3600,
                modifiable_params: vec!["rows".into(), "columns".into()],
                escalate_to: vec!["oncall".into()],
            },
            risk,
            requester: Requester {
                agent_id: "etl-bot@example.com".into(),
                owner: "SAM@example.com".into(),
                on_behalf_of: Some("Pat Person".into()),
            },
            state: RequestState::Pending,
            expires_at: t0() + Duration::hours(1),
            escalated: false,
            reviews: vec![],
        }
    }

    fn review(dir: &Directory, email: &str, decision: Decision, digest: &str) -> Review {
        Review {
            approver: id(dir, email),
            decision,
            reason: Some("looked at it".into()),
            digest: digest.into(),
            at: t0(),
        }
    }

    fn now() -> DateTime<Utc> {
        t0() + Duration::minutes(5)
    }

    #[test]
    fn group_member_may_approve() {
        let d = dir();
        let r = request(Risk::Medium, 1);
        assert_eq!(
            check(
                &d,
                &r,
                &id(&d, "dana@example.com"),
                Decision::Approve,
                None,
                now()
            ),
            Ok(())
        );
    }

    #[test]
    fn not_in_group_refused() {
        let d = dir();
        let r = request(Risk::Low, 1);
        let err = check(
            &d,
            &r,
            &id(&d, "olga@example.com"),
            Decision::Approve,
            None,
            now(),
        )
        .unwrap_err();
        assert!(matches!(err, Refusal::NotInGroup { .. }), "{err:?}");
        assert!(err.to_string().contains("data-owners, security"), "{err}");
    }

    #[test]
    fn escalate_to_group_only_after_escalation() {
        let d = dir();
        let mut r = request(Risk::Low, 1);
        let esc = id(&d, "esc@example.com");
        assert!(matches!(
            check(&d, &r, &esc, Decision::Approve, None, now()),
            Err(Refusal::NotInGroup { .. })
        ));
        r.escalated = true;
        assert_eq!(check(&d, &r, &esc, Decision::Approve, None, now()), Ok(()));
    }

    #[test]
    fn owner_refused_even_as_admin() {
        let d = dir();
        let sam = d.person_by_email("sam@example.com").unwrap();
        assert!(sam.admin());
        let r = request(Risk::Low, 1);
        for decision in [Decision::Approve, Decision::Deny, Decision::Modify] {
            let err = check(&d, &r, sam.id(), decision, Some("ok"), now()).unwrap_err();
            assert!(matches!(err, Refusal::Owner { .. }), "{decision}: {err:?}");
            assert!(err.to_string().contains("admins included"));
        }
    }

    #[test]
    fn owner_refused_by_any_identity() {
        let d = dir();
        let mut r = request(Risk::Low, 1);
        r.requester.owner = "U0DANA".into();
        assert!(matches!(
            check(
                &d,
                &r,
                &id(&d, "dana@example.com"),
                Decision::Approve,
                None,
                now()
            ),
            Err(Refusal::Owner { .. })
        ));
    }

    #[test]
    fn requesting_agent_refused() {
        let d = dir();
        let r = request(Risk::Low, 1);
        assert!(matches!(
            check(
                &d,
                &r,
                &id(&d, "etl-bot@example.com"),
                Decision::Approve,
                None,
                now()
            ),
            Err(Refusal::RequestingAgent { .. })
        ));
    }

    #[test]
    fn on_behalf_of_refused_by_name_or_email() {
        let d = dir();
        let pat = id(&d, "pat@example.com");
        let mut r = request(Risk::Low, 1);
        assert!(matches!(
            check(&d, &r, &pat, Decision::Approve, None, now()),
            Err(Refusal::OnBehalfOf { .. })
        ));
        r.requester.on_behalf_of = Some("Pat@Example.com".into());
        assert!(matches!(
            check(&d, &r, &pat, Decision::Approve, None, now()),
            Err(Refusal::OnBehalfOf { .. })
        ));
        r.requester.on_behalf_of = None;
        assert_eq!(check(&d, &r, &pat, Decision::Approve, None, now()), Ok(()));
    }

    #[test]
    fn reason_rules_per_risk() {
        let d = dir();
        let dana = id(&d, "dana@example.com");
        for risk in [Risk::Low, Risk::Medium, Risk::High, Risk::Critical] {
            let r = request(risk, 1);
            let approve_needs_reason = risk >= Risk::High;
            for (decision, needs) in [
                (Decision::Approve, approve_needs_reason),
                (Decision::Deny, true),
                (Decision::Modify, true),
            ] {
                for missing in [None, Some(""), Some("  \n")] {
                    let got = check(&d, &r, &dana, decision, missing, now());
                    if needs {
                        assert_eq!(
                            got,
                            Err(Refusal::ReasonRequired { decision, risk }),
                            "{risk:?} {decision}"
                        );
                    } else {
                        assert_eq!(got, Ok(()), "{risk:?} {decision}");
                    }
                }
                assert_eq!(
                    check(&d, &r, &dana, decision, Some("checked the rows"), now()),
                    Ok(()),
                    "{risk:?} {decision} with reason"
                );
            }
        }
        let err = check(
            &d,
            &request(Risk::Critical, 1),
            &dana,
            Decision::Approve,
            None,
            now(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "a reason is required to approve a critical risk action"
        );
    }

    #[test]
    fn expired_refused() {
        let d = dir();
        let r = request(Risk::Low, 1);
        let dana = id(&d, "dana@example.com");
        for at in [r.expires_at, r.expires_at + Duration::seconds(1)] {
            assert_eq!(
                check(&d, &r, &dana, Decision::Approve, None, at),
                Err(Refusal::Expired {
                    expires_at: r.expires_at
                })
            );
        }
        assert_eq!(
            check(
                &d,
                &r,
                &dana,
                Decision::Approve,
                None,
                r.expires_at - Duration::milliseconds(1)
            ),
            Ok(())
        );
    }

    #[test]
    fn not_pending_refused() {
        let d = dir();
        let dana = id(&d, "dana@example.com");
        for state in [
            RequestState::Approved,
            RequestState::Denied,
            RequestState::Expired,
        ] {
            let mut r = request(Risk::Low, 1);
            r.state = state;
            assert_eq!(
                check(&d, &r, &dana, Decision::Deny, Some("no"), now()),
                Err(Refusal::NotPending { state })
            );
        }
    }

    #[test]
    fn approver_removed_from_directory_refused() {
        let old = dir();
        let dana = id(&old, "dana@example.com");
        let new = Directory::from_config(
            &toml::from_str(
                r#"
                [[people]]
                email = "erin@example.com"
                name = "Erin"
                [groups]
                data-owners = ["erin@example.com"]
            "#,
            )
            .unwrap(),
        )
        .unwrap();
        assert!(matches!(
            check(
                &new,
                &request(Risk::Low, 1),
                &dana,
                Decision::Approve,
                None,
                now()
            ),
            Err(Refusal::UnknownApprover { .. })
        ));
    }

    #[test]
    fn duplicate_approval_refused_and_counted_once() {
        let d = dir();
        let mut r = request(Risk::Low, 2);
        let dana = id(&d, "dana@example.com");
        r.reviews
            .push(review(&d, "dana@example.com", Decision::Approve, "d1"));
        assert_eq!(
            check(&d, &r, &dana, Decision::Approve, None, now()),
            Err(Refusal::Duplicate {
                approver: dana.clone()
            })
        );
        // Had the caller recorded it anyway, it would still count once.
        r.reviews
            .push(review(&d, "dana@example.com", Decision::Approve, "d1"));
        assert_eq!(
            tally(&r),
            Tally::Pending {
                have: 1,
                need: 2,
                approvers: vec![dana.clone()]
            }
        );
        // The same person may still deny.
        assert_eq!(
            check(
                &d,
                &r,
                &dana,
                Decision::Deny,
                Some("changed my mind"),
                now()
            ),
            Ok(())
        );
    }

    #[test]
    fn person_in_two_groups_counted_once() {
        let d = dir();
        assert_eq!(
            d.groups_of("erin@example.com"),
            vec!["data-owners", "security"]
        );
        let mut r = request(Risk::Low, 2);
        r.reviews
            .push(review(&d, "erin@example.com", Decision::Approve, "d1"));
        r.reviews
            .push(review(&d, "erin@example.com", Decision::Approve, "d1"));
        assert_eq!(
            tally(&r),
            Tally::Pending {
                have: 1,
                need: 2,
                approvers: vec![id(&d, "erin@example.com")]
            }
        );
        r.reviews
            .push(review(&d, "dana@example.com", Decision::Approve, "d1"));
        assert_eq!(
            tally(&r),
            Tally::Approved {
                approvers: vec![id(&d, "erin@example.com"), id(&d, "dana@example.com")]
            }
        );
    }

    #[test]
    fn deny_ends_it() {
        let d = dir();
        let mut r = request(Risk::Low, 1);
        r.reviews
            .push(review(&d, "dana@example.com", Decision::Approve, "d1"));
        assert!(matches!(tally(&r), Tally::Approved { .. }));
        r.reviews.push(Review {
            reason: Some("too many rows".into()),
            ..review(&d, "erin@example.com", Decision::Deny, "d1")
        });
        assert_eq!(
            tally(&r),
            Tally::Denied {
                by: id(&d, "erin@example.com"),
                reason: Some("too many rows".into())
            }
        );
        // A deny recorded against an older digest still ends it.
        r.digest = "d2".into();
        assert!(matches!(tally(&r), Tally::Denied { .. }));
    }

    #[test]
    fn approvals_for_old_digest_void_after_modify() {
        let d = dir();
        let mut r = request(Risk::Low, 2);
        r.reviews
            .push(review(&d, "dana@example.com", Decision::Approve, "d1"));
        // erin modifies: the action now has digest d2, and her modify is her
        // approval of d2.
        r.reviews
            .push(review(&d, "erin@example.com", Decision::Modify, "d2"));
        r.digest = "d2".into();
        assert_eq!(
            tally(&r),
            Tally::Pending {
                have: 1,
                need: 2,
                approvers: vec![id(&d, "erin@example.com")]
            }
        );
        // dana must approve again, and may: her old approval is void.
        let dana = id(&d, "dana@example.com");
        assert_eq!(check(&d, &r, &dana, Decision::Approve, None, now()), Ok(()));
        // erin's modify already approves d2.
        assert!(matches!(
            check(
                &d,
                &r,
                &id(&d, "erin@example.com"),
                Decision::Approve,
                None,
                now()
            ),
            Err(Refusal::Duplicate { .. })
        ));
        r.reviews
            .push(review(&d, "dana@example.com", Decision::Approve, "d2"));
        assert!(matches!(tally(&r), Tally::Approved { .. }));
    }

    fn route(groups: &[&str], quorum: u32, escalate_to: &[&str]) -> ApprovalRoute {
        ApprovalRoute {
            groups: groups.iter().map(|g| g.to_string()).collect(),
            quorum,
            ttl_seconds: 600,
            modifiable_params: vec!["rows".into()],
            escalate_to: escalate_to.iter().map(|g| g.to_string()).collect(),
        }
    }

    /// The issue's case: a critical export needs two data owners; dana
    /// modifies 250000 rows to 5000, which the policy alone would let one
    /// data owner approve. Her modify counts once, and a second data owner
    /// is still needed.
    #[test]
    fn a_modify_that_lowers_the_risk_keeps_the_quorum() {
        let d = dir();
        let critical = route(&["data-owners"], 2, &["security"]);
        let high = Route::RequireApproval(route(&["data-owners"], 1, &["security"]));
        let in_force = route_after_modify(&critical, &high).unwrap();
        assert_eq!(in_force.quorum, 2);
        assert_eq!(in_force.groups, vec!["data-owners".to_string()]);

        let mut r = request(Risk::High, 2);
        r.route = in_force;
        r.reviews
            .push(review(&d, "dana@example.com", Decision::Modify, "d2"));
        r.digest = "d2".into();
        assert_eq!(
            tally(&r),
            Tally::Pending {
                have: 1,
                need: 2,
                approvers: vec![id(&d, "dana@example.com")]
            }
        );
        // Her own approval on top of her modify is a duplicate.
        assert!(matches!(
            check(
                &d,
                &r,
                &id(&d, "dana@example.com"),
                Decision::Approve,
                Some("ok"),
                now()
            ),
            Err(Refusal::Duplicate { .. })
        ));
        r.reviews
            .push(review(&d, "erin@example.com", Decision::Approve, "d2"));
        assert!(matches!(tally(&r), Tally::Approved { .. }));

        // A modify to an action the policy would allow outright changes
        // nothing about the bar either.
        assert_eq!(
            route_after_modify(&critical, &Route::Allow).unwrap(),
            critical
        );
        // A modify the policy denies is denied.
        assert_eq!(
            route_after_modify(
                &critical,
                &Route::Deny {
                    reason: "no".into()
                }
            ),
            None
        );
    }

    /// A modify that raises the risk: the new, higher bar applies, the
    /// groups in force before still count, and so do both escalations.
    #[test]
    fn a_modify_that_raises_the_risk_raises_the_bar() {
        let d = dir();
        let medium = route(&["data-owners"], 1, &[]);
        let critical = Route::RequireApproval(route(&["security", "data-owners"], 3, &["oncall"]));
        let in_force = route_after_modify(&medium, &critical).unwrap();
        assert_eq!(in_force.quorum, 3);
        assert_eq!(
            in_force.groups,
            vec!["data-owners".to_string(), "security".to_string()]
        );
        assert_eq!(in_force.escalate_to, vec!["oncall".to_string()]);
        assert_eq!(in_force.ttl_seconds, 600);

        let mut r = request(Risk::Critical, 3);
        r.route = in_force;
        r.digest = "d2".into();
        r.reviews
            .push(review(&d, "dana@example.com", Decision::Modify, "d2"));
        r.reviews
            .push(review(&d, "erin@example.com", Decision::Approve, "d2"));
        assert!(matches!(
            tally(&r),
            Tally::Pending {
                have: 2,
                need: 3,
                ..
            }
        ));
        // sam (security) may approve now: the new route named his group.
        let sam_free = Request {
            requester: Requester {
                owner: "someone-else@example.com".into(),
                ..r.requester.clone()
            },
            ..r.clone()
        };
        assert_eq!(
            check(
                &d,
                &sam_free,
                &id(&d, "sam@example.com"),
                Decision::Approve,
                Some("ok"),
                now()
            ),
            Ok(())
        );
        // Quorum zero before a modify still means one.
        let zero = route(&["data-owners"], 0, &[]);
        assert_eq!(route_after_modify(&zero, &Route::Allow).unwrap().quorum, 1);
    }

    #[test]
    fn quorum_zero_still_needs_one() {
        let r = request(Risk::Low, 0);
        assert_eq!(
            tally(&r),
            Tally::Pending {
                have: 0,
                need: 1,
                approvers: vec![]
            }
        );
    }

    #[test]
    fn tally_never_counts_requester() {
        let d = dir();
        let mut r = request(Risk::Low, 1);
        // Recorded despite `check` (a bug elsewhere): the owner's approval.
        r.reviews
            .push(review(&d, "sam@example.com", Decision::Approve, "d1"));
        assert!(matches!(tally(&r), Tally::Pending { have: 0, .. }));
    }

    #[test]
    fn modify_needs_modifiable_params() {
        let d = dir();
        let mut r = request(Risk::Low, 1);
        r.route.modifiable_params.clear();
        assert_eq!(
            check(
                &d,
                &r,
                &id(&d, "dana@example.com"),
                Decision::Modify,
                Some("fewer rows"),
                now()
            ),
            Err(Refusal::NothingModifiable)
        );
    }

    #[test]
    fn apply_modify_only_modifiable_keys() {
        let modifiable = vec!["rows".to_string(), "columns".to_string()];
        let params = json!({"rows": 1000, "table": "users", "columns": ["a", "b"]});

        assert_eq!(
            apply_modify(&params, &json!({"rows": 10}), &modifiable),
            Ok(json!({"rows": 10, "table": "users", "columns": ["a", "b"]}))
        );
        assert_eq!(
            apply_modify(&params, &json!({"columns": null}), &modifiable),
            Ok(json!({"rows": 1000, "table": "users"}))
        );
        // Changing, removing or adding a key that is not modifiable.
        for changes in [
            json!({"table": "admins"}),
            json!({"table": null}),
            json!({"where": "1=1"}),
            json!({"rows": 10, "table": "admins"}),
        ] {
            assert!(
                matches!(
                    apply_modify(&params, &changes, &modifiable),
                    Err(Refusal::ParamNotModifiable { .. })
                ),
                "{changes}"
            );
        }
        // Adding a key that is modifiable but absent is a change like any other.
        assert_eq!(
            apply_modify(&json!({"table": "t"}), &json!({"rows": 5}), &modifiable),
            Ok(json!({"table": "t", "rows": 5}))
        );
    }

    #[test]
    fn apply_modify_refuses_no_ops_and_non_objects() {
        let modifiable = vec!["rows".to_string()];
        let params = json!({"rows": 10});
        assert_eq!(
            apply_modify(&params, &json!({"rows": 10}), &modifiable),
            Err(Refusal::NoChange)
        );
        assert_eq!(
            apply_modify(&params, &json!({}), &modifiable),
            Err(Refusal::NoChange)
        );
        assert_eq!(
            apply_modify(&params, &json!({"absent": null}), &[]),
            Err(Refusal::NothingModifiable)
        );
        assert_eq!(
            apply_modify(&params, &json!([1]), &modifiable),
            Err(Refusal::NotAnObject { what: "changes" })
        );
        assert_eq!(
            apply_modify(&json!("x"), &json!({}), &modifiable),
            Err(Refusal::NotAnObject { what: "params" })
        );
    }

    #[test]
    fn requester_from_action_needs_owner() {
        let mut action = Action {
            id: "a".into(),
            kind: "db.export".into(),
            agent: crate::action::Principal {
                id: "etl".into(),
                attributes: Default::default(),
            },
            on_behalf_of: Some("pat@example.com".into()),
            resource: "db://x".into(),
            params: json!({}),
            justification: None,
            context: Default::default(),
            requested_at: t0(),
        };
        assert_eq!(Requester::from_action(&action), None);
        action
            .agent
            .attributes
            .insert("owner".into(), "sam@example.com".into());
        assert_eq!(
            Requester::from_action(&action),
            Some(Requester {
                agent_id: "etl".into(),
                owner: "sam@example.com".into(),
                on_behalf_of: Some("pat@example.com".into()),
            })
        );
    }
}
