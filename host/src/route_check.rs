//! Route checks: whether a plugin's approval route can ever be answered by
//! the people in the directory. Reads the directory; never decides, records
//! or announces (the evaluator turns a problem into a fail-closed verdict).

use std::collections::BTreeSet;

use crate::action::{Action, Route};
use crate::directory::Directory;
use crate::sandbox::{Decision, PluginFailure};

/// A plugin's outcome for `action` as the host takes it: with a directory,
/// a decision whose route nobody can answer becomes an invalid output (fail
/// closed). Nobody includes the people who may not approve this action
/// because it is their own (no self-approval: the requesting agent, its
/// owner, the human it acts for). The service, replay and `plugin test` all
/// take outcomes through here.
pub fn checked(
    outcome: Result<Decision, PluginFailure>,
    directory: Option<&Directory>,
    action: &Action,
) -> Result<Decision, PluginFailure> {
    match (outcome, directory) {
        (Ok(decision), Some(directory)) => {
            match check(&decision.route, directory, &action.requester().all()) {
                Ok(()) => Ok(decision),
                Err(reason) => Err(PluginFailure::InvalidOutput { reason }),
            }
        }
        (outcome, _) => outcome,
    }
}

/// Why `route` can never be approved (or escalated) through `directory`
/// for a request by `requester` (its identities; none for a route checked
/// before any request): a group it names is not there, its quorum is more
/// than the routed groups' distinct members who are not the requester, or
/// its TTL is zero. `Ok` for allow and deny.
pub fn check(
    route: &Route,
    directory: &Directory,
    requester: &[Option<&str>],
) -> Result<(), String> {
    let Route::RequireApproval(approval) = route else {
        return Ok(());
    };
    if approval.ttl_seconds == 0 {
        return Err("ttl-seconds is 0: the request would expire before anyone saw it".into());
    }
    let unknown = |groups: &[String]| -> Vec<String> {
        groups
            .iter()
            .filter(|g| !directory.has_group(g))
            .map(|g| format!("{g:?}"))
            .collect()
    };
    let missing = unknown(&approval.groups);
    if !missing.is_empty() {
        return Err(format!(
            "the route names approver group{} not in the directory: {}",
            plural(missing.len()),
            missing.join(", ")
        ));
    }
    let missing = unknown(&approval.escalate_to);
    if !missing.is_empty() {
        return Err(format!(
            "escalate-to names group{} not in the directory: {}",
            plural(missing.len()),
            missing.join(", ")
        ));
    }
    // Distinct people who may approve it, and those who may not because
    // it is their own.
    let (mut members, mut own) = (BTreeSet::new(), BTreeSet::new());
    for person in approval
        .groups
        .iter()
        .filter_map(|g| directory.members(g))
        .flatten()
    {
        let id = person.id().as_str();
        if requester.iter().flatten().any(|r| person.is_known_as(r)) {
            own.insert(id);
        } else {
            members.insert(id);
        }
    }
    if approval.quorum as usize > members.len() {
        let excluded = if own.is_empty() {
            String::new()
        } else {
            format!(
                " who may approve this action ({} may not: it is their own)",
                Vec::from_iter(own).join(", ")
            )
        };
        return Err(format!(
            "quorum {} is more than the {} distinct member{} of {}{excluded}",
            approval.quorum,
            members.len(),
            plural(members.len()),
            approval.groups.join(", ")
        ));
    }
    Ok(())
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::{ApprovalRoute, Classification, Principal, Risk};
    use crate::directory::{DirectoryConfig, PersonConfig};

    fn directory() -> Directory {
        let person = |email: &str| PersonConfig {
            email: email.into(),
            name: email.into(),
            slack_id: None,
            teams_id: None,
            admin: false,
        };
        Directory::from_config(&DirectoryConfig {
            people: vec![person("dana@x.test"), person("erin@x.test")],
            groups: [
                (
                    "data-owners".to_string(),
                    vec!["dana@x.test".into(), "erin@x.test".into()],
                ),
                ("security".to_string(), vec!["erin@x.test".into()]),
            ]
            .into(),
        })
        .unwrap()
    }

    fn route(groups: &[&str], quorum: u32, ttl: u32, escalate: &[&str]) -> Route {
        Route::RequireApproval(ApprovalRoute {
            groups: groups.iter().map(|g| g.to_string()).collect(),
            quorum,
            ttl_seconds: ttl,
            modifiable_params: Vec::new(),
            escalate_to: escalate.iter().map(|g| g.to_string()).collect(),
        })
    }

    #[test]
    fn routes_nobody_can_answer_are_named() {
        let d = directory();
        assert_eq!(
            check(&route(&["data-owners"], 2, 60, &["security"]), &d, &[]),
            Ok(())
        );
        assert_eq!(check(&Route::Allow, &d, &[]), Ok(()));
        let err = |r: Route| check(&r, &d, &[]).unwrap_err();
        assert!(err(route(&["data-owners"], 3, 60, &[]))
            .contains("quorum 3 is more than the 2 distinct members"));
        // Erin is in both groups and counts once.
        assert!(err(route(&["data-owners", "security"], 3, 60, &[])).contains("2 distinct members"));
        assert!(err(route(&["data-owners", "ghosts"], 1, 60, &[])).contains("\"ghosts\""));
        assert!(err(route(&["data-owners"], 1, 60, &["nowhere"]))
            .contains("escalate-to names group not in the directory: \"nowhere\""));
        assert!(err(route(&["data-owners"], 1, 0, &[])).contains("ttl-seconds is 0"));
    }

    fn action(agent: &str, owner: &str, on_behalf_of: Option<&str>) -> Action {
        Action {
            id: "a1".into(),
            kind: "db.export".into(),
            agent: Principal {
                id: agent.into(),
                attributes: [("owner".to_string(), owner.to_string())].into(),
            },
            on_behalf_of: on_behalf_of.map(Into::into),
            resource: "db://x".into(),
            params: serde_json::json!({}),
            justification: None,
            context: Default::default(),
            requested_at: "2026-11-25T10:00:00Z".parse().unwrap(),
        }
    }

    fn decision(route: Route) -> Result<Decision, PluginFailure> {
        Ok(Decision {
            classification: Classification {
                risk: Risk::High,
                reasons: Vec::new(),
                tags: Vec::new(),
            },
            route,
        })
    }

    #[test]
    fn people_who_may_not_approve_their_own_action_do_not_count() {
        let d = directory();
        let two = || decision(route(&["data-owners"], 2, 60, &[]));
        let reason = |outcome: Result<Decision, PluginFailure>| match outcome {
            Err(PluginFailure::InvalidOutput { reason }) => reason,
            other => panic!("expected an invalid output, got {other:?}"),
        };
        // Someone else's agent: both data owners can approve.
        assert!(checked(two(), Some(&d), &action("etl", "sam@x.test", None)).is_ok());
        // Dana owns the agent (matched as the directory matches: any case,
        // surrounding space), so one data owner is left for a quorum of two.
        let r = reason(checked(
            two(),
            Some(&d),
            &action("etl", " DANA@x.test ", None),
        ));
        assert_eq!(
            r,
            "quorum 2 is more than the 1 distinct member of data-owners who may approve this action (dana@x.test may not: it is their own)"
        );
        // The human it acts for, and an agent that is itself a person in
        // the group, are excluded the same way.
        let r = reason(checked(
            two(),
            Some(&d),
            &action("etl", "sam@x.test", Some("erin@x.test")),
        ));
        assert!(r.contains("(erin@x.test may not: it is their own)"), "{r}");
        let r = reason(checked(
            decision(route(&["security"], 1, 60, &[])),
            Some(&d),
            &action("erin@x.test", "sam@x.test", None),
        ));
        assert!(r.contains("the 0 distinct members of security"), "{r}");
        // A quorum the others can still meet stands.
        assert!(checked(
            decision(route(&["data-owners"], 1, 60, &[])),
            Some(&d),
            &action("etl", "dana@x.test", None)
        )
        .is_ok());
        // Without a directory nothing is checked.
        assert!(checked(two(), None, &action("etl", "dana@x.test", None)).is_ok());
    }
}
