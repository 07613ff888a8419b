//! The one approval summary, built by one function from the action record
//! for every channel alike (API list and detail, CLI, Slack, Teams,
//! webhooks). Secrets in params and context are redacted by the one rule
//! set (`notify::Redaction`), so no channel can show more than another.
//! Pure: never reads the store or decides.

use super::rules::{self, Request, Tally};
use crate::action::Action;
use crate::directory::Directory;
use crate::evaluate::Verdict;
pub use crate::notify::summary::*;

impl ApprovalSummary {
    /// The one way to build a summary: from the stored action, its verdict
    /// and the rules' view of it (route in force, reviews), with names from
    /// the directory and secrets redacted by `redaction`.
    pub fn build(
        action: &Action,
        verdict: &Verdict,
        request: &Request,
        directory: &Directory,
        redaction: &Redaction,
    ) -> ApprovalSummary {
        let mut redacted = Vec::new();
        let params = redaction.redact(&action.params, "", &mut redacted);
        let context = action
            .context
            .iter()
            .map(|(k, v)| {
                if redaction.is_secret(k) {
                    redacted.push(format!("context.{k}"));
                    (k.clone(), REDACTED.to_string())
                } else {
                    (k.clone(), v.clone())
                }
            })
            .collect();
        let name_of = |email: &str| {
            directory
                .person_by_email(email)
                .map(|p| p.name().to_string())
                .unwrap_or_default()
        };
        let approvers = match rules::tally(request) {
            Tally::Pending { approvers, .. } | Tally::Approved { approvers } => approvers,
            Tally::Denied { .. } => Vec::new(),
        };
        let approvals = approvers
            .iter()
            .filter_map(|id| {
                let at = request
                    .reviews
                    .iter()
                    .find(|r| &r.approver == id && r.digest == request.digest)?
                    .at;
                Some(ApprovalEntry {
                    approver: id.to_string(),
                    name: name_of(id.as_str()),
                    at,
                })
            })
            .collect();
        let reviews = request
            .reviews
            .iter()
            .map(|r| ReviewEntry {
                approver: r.approver.to_string(),
                name: name_of(r.approver.as_str()),
                decision: r.decision.as_str().into(),
                reason: r.reason.clone(),
                at: r.at,
            })
            .collect();
        ApprovalSummary {
            action: ActionSummary {
                action_id: action.id.clone(),
                digest: action.digest(),
                kind: action.kind.clone(),
                resource: action.resource.clone(),
                agent_id: action.agent.id.clone(),
                owner: request.requester.owner.clone(),
                on_behalf_of: action.on_behalf_of.clone(),
                risk: verdict.classification.risk,
                reasons: verdict.classification.reasons.clone(),
                justification: action.justification.clone(),
                params,
                context,
                plugin: verdict.plugin.as_ref().map(|p| PluginSummary {
                    name: p.name.clone(),
                    version: p.version.clone(),
                    sha256: p.sha256.clone(),
                }),
                redacted,
            },
            approval: ApprovalState {
                groups: request.route.groups.clone(),
                quorum: request.quorum(),
                approvals,
                expires_at: request.expires_at,
                escalate_to: request.route.escalate_to.clone(),
                escalated: request.escalated,
                modifiable_params: request.route.modifiable_params.clone(),
                reviews,
                // Set by the gate, which knows the step-up rule.
                step_up: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{DateTime, Duration, Utc};
    use serde_json::json;

    use super::*;
    use crate::action::{ApprovalRoute, Classification, Principal, Risk, Route};
    use crate::approvals::rules::{Decision, RequestState, Requester, Review};
    use crate::directory::two_data_owners as directory;

    #[test]
    fn redaction_catches_secret_keys_at_any_depth_and_spelling() {
        let r = Redaction::default();
        let mut paths = Vec::new();
        let out = r.redact(
            &json!({
                "rows": 10,
                "db_password": "hunter2",
                "X-Api-Key": "k",
                "nested": {"accessToken": "t", "list": [{"client_secret": "s", "ok": 1}]},
                "tables": ["users"],
            }),
            "",
            &mut paths,
        );
        assert_eq!(
            out,
            json!({
                "rows": 10,
                "db_password": REDACTED,
                "X-Api-Key": REDACTED,
                "nested": {"accessToken": REDACTED, "list": [{"client_secret": REDACTED, "ok": 1}]},
                "tables": ["users"],
            })
        );
        paths.sort();
        assert_eq!(
            paths,
            vec![
                "X-Api-Key",
                "db_password",
                "nested.accessToken",
                "nested.list.0.client_secret"
            ]
        );
        // Configurable: another rule set redacts other keys, and only those.
        let custom = Redaction::new(&["ssn".to_string()]);
        assert!(custom.is_secret("customer_SSN"));
        assert!(!custom.is_secret("password"));
    }

    #[test]
    fn build_carries_every_fact_an_approver_judges_by() {
        let d = directory();
        let dana = d.person_by_email("dana@example.com").unwrap().id().clone();
        let t0: DateTime<Utc> = "2026-11-25T10:00:00Z".parse().unwrap();
        let action = Action {
            id: "a1".into(),
            kind: "db.export".into(),
            agent: Principal {
                id: "etl".into(),
                attributes: BTreeMap::from([("owner".into(), "sam@example.com".into())]),
            },
            on_behalf_of: Some("pat@example.com".into()),
            resource: "db://x".into(),
            params: json!({"rows": 10, "password": "hunter2"}),
            justification: Some("weekly report".into()),
            context: BTreeMap::from([
                ("session".into(), "s-1".into()),
                ("auth_token".into(), "abc".into()),
            ]),
            requested_at: t0,
        };
        let route = ApprovalRoute {
            groups: vec!["data-owners".into()],
            quorum: 2,
            ttl_seconds: 600,
            modifiable_params: vec!["rows".into()],
            escalate_to: vec!["security".into()],
        };
        let verdict: Verdict = serde_json::from_value(json!({
            "plugin": {"sha256": "ab".repeat(32), "name": "db-export", "version": "1.0.0", "wit_version": "0.1.0"},
            "classification": Classification { risk: Risk::Critical, reasons: vec!["pii".into()], tags: vec![] },
            "route": Route::RequireApproval(route.clone()),
            "fuel_used": 1, "duration_us": 1,
            "limits": crate::sandbox::Limits::default(),
            "wit_version": "0.1.0", "host_version": "0.1.0",
        }))
        .unwrap();
        let request = Request {
            action_id: "a1".into(),
            digest: action.digest(),
            route,
            risk: Risk::Critical,
            requester: Requester::from_action(&action).unwrap(),
            state: RequestState::Pending,
            expires_at: t0 + Duration::minutes(10),
            escalated: false,
            reviews: vec![Review {
                approver: dana.clone(),
                decision: Decision::Approve,
                reason: Some("fine".into()),
                digest: action.digest(),
                at: t0 + Duration::minutes(1),
            }],
        };
        let s = ApprovalSummary::build(&action, &verdict, &request, &d, &Redaction::default());
        let a = &s.action;
        assert_eq!(
            (
                a.agent_id.as_str(),
                a.owner.as_str(),
                a.on_behalf_of.as_deref()
            ),
            ("etl", "sam@example.com", Some("pat@example.com"))
        );
        assert_eq!(a.justification.as_deref(), Some("weekly report"));
        assert_eq!(a.params, json!({"rows": 10, "password": REDACTED}));
        assert_eq!(a.context["session"], "s-1");
        assert_eq!(a.context["auth_token"], REDACTED);
        assert_eq!(a.redacted, vec!["password", "context.auth_token"]);
        assert_eq!(a.risk, Risk::Critical);
        assert_eq!(a.reasons, vec!["pii".to_string()]);
        let plugin = a.plugin.as_ref().unwrap();
        assert_eq!(
            (plugin.name.as_str(), plugin.version.as_str()),
            ("db-export", "1.0.0")
        );
        assert_eq!(plugin.sha256, "ab".repeat(32));
        assert_eq!(a.digest, action.digest(), "bound to the unredacted action");
        let r = &s.approval;
        assert_eq!(
            (r.quorum, r.groups.clone()),
            (2, vec!["data-owners".to_string()])
        );
        assert_eq!(r.escalate_to, vec!["security".to_string()]);
        assert_eq!(r.expires_at, t0 + Duration::minutes(10));
        assert_eq!(r.approvals.len(), 1);
        assert_eq!(r.reviews.len(), 1);
        assert_eq!(
            (r.reviews[0].name.as_str(), r.reviews[0].decision.as_str()),
            ("Dana", "approve")
        );
        assert_eq!(r.reviews[0].reason.as_deref(), Some("fine"));
        let text = serde_json::to_string(&s).unwrap();
        assert!(!text.contains("hunter2") && !text.contains("abc"), "{text}");
    }
}
