//! Route checks: whether a plugin's approval route can ever be answered by
//! the people in the directory. Reads the directory; never decides, records
//! or announces (the evaluator turns a problem into a fail-closed verdict).

use std::collections::BTreeSet;

use crate::action::Route;
use crate::directory::Directory;
use crate::sandbox::{Decision, PluginFailure};

/// A plugin's outcome as the host takes it: with a directory, a decision
/// whose route nobody can answer becomes an invalid output (fail closed).
/// The service, replay and `plugin test` all take outcomes through here.
pub fn checked(
    outcome: Result<Decision, PluginFailure>,
    directory: Option<&Directory>,
) -> Result<Decision, PluginFailure> {
    match (outcome, directory) {
        (Ok(decision), Some(directory)) => match check(&decision.route, directory) {
            Ok(()) => Ok(decision),
            Err(reason) => Err(PluginFailure::InvalidOutput { reason }),
        },
        (outcome, _) => outcome,
    }
}

/// Why `route` can never be approved (or escalated) through `directory`:
/// a group it names is not there, its quorum is more than the routed groups'
/// distinct members, or its TTL is zero. `Ok` for allow and deny.
pub fn check(route: &Route, directory: &Directory) -> Result<(), String> {
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
    let members: BTreeSet<&str> = approval
        .groups
        .iter()
        .filter_map(|g| directory.members(g))
        .flatten()
        .map(|person| person.id().as_str())
        .collect();
    if approval.quorum as usize > members.len() {
        return Err(format!(
            "quorum {} is more than the {} distinct member{} of {}",
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
    use crate::action::ApprovalRoute;
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
            check(&route(&["data-owners"], 2, 60, &["security"]), &d),
            Ok(())
        );
        assert_eq!(check(&Route::Allow, &d), Ok(()));
        let err = |r: Route| check(&r, &d).unwrap_err();
        assert!(err(route(&["data-owners"], 3, 60, &[]))
            .contains("quorum 3 is more than the 2 distinct members"));
        // Erin is in both groups and counts once.
        assert!(err(route(&["data-owners", "security"], 3, 60, &[])).contains("2 distinct members"));
        assert!(err(route(&["data-owners", "ghosts"], 1, 60, &[])).contains("\"ghosts\""));
        assert!(err(route(&["data-owners"], 1, 60, &["nowhere"]))
            .contains("escalate-to names group not in the directory: \"nowhere\""));
        assert!(err(route(&["data-owners"], 1, 0, &[])).contains("ttl-seconds is 0"));
    }
}
