//! IAM role changes (`iam.grant`, `iam.revoke`).
//!
//! Grants of admin, owner or wildcard roles are critical and need two people
//! from security. An agent may never grant a role to its own identity.
//! Revocations reduce access and run at once.

#![no_std]

use actiongate_sdk::prelude::*;

struct IamChange;

/// Roles that hand over control of the scope they are granted on.
fn is_privileged(role: &str) -> bool {
    let r = role.to_ascii_lowercase();
    r == "*"
        || r.ends_with("/*")
        || r.ends_with(":*")
        || r.contains("admin")
        || r.contains("owner")
        || r.contains("superuser")
}

/// The identities the acting agent is known by: its id and, when the
/// operator set one, the cloud identity it runs as.
fn is_self(action: &Action, grantee: &str) -> bool {
    let agent = &action.agent;
    grantee.eq_ignore_ascii_case(&agent.id)
        || agent
            .attribute("identity")
            .is_some_and(|id| grantee.eq_ignore_ascii_case(id))
}

impl Policy for IamChange {
    fn describe() -> PluginInfo {
        PluginInfo::new("iam-change", "1.0.0", &["iam.grant", "iam.revoke"])
    }

    fn classify(action: &Action) -> Result<Classification, String> {
        let params = action.params()?;
        let grantee: String = params.require("principal")?;
        let role: String = params.require("role")?;

        if action.kind == "iam.revoke" {
            let mut c = Classification::new(Risk::Low);
            c.tags.push("revoke".into());
            c.reasons
                .push(format!("revoking {role} from {grantee} reduces access"));
            return Ok(c);
        }
        let mut c = Classification::new(Risk::Medium);
        c.reasons.push(format!("grants {role} to {grantee}"));
        if is_privileged(&role) {
            c.raise(
                Risk::Critical,
                "role:privileged",
                format!("{role} is an admin, owner or wildcard role"),
            );
        }
        if is_self(action, &grantee) {
            c.raise(
                Risk::Critical,
                "self-grant",
                "the agent would grant a role to its own identity",
            );
        }
        Ok(c)
    }

    fn route(_action: &Action, c: &Classification) -> Result<Route, String> {
        if c.has_tag("self-grant") {
            return Ok(Route::Deny(
                "an agent may not grant a role to its own identity".into(),
            ));
        }
        Ok(match c.risk {
            Risk::Low => Route::Allow,
            Risk::Critical => Approval::from(&["security"], 2)
                .ttl_seconds(3600)
                .escalate_to(&["security-leads"])
                .into(),
            _ => Approval::from(&["security"], 1)
                .modifiable(&["role"])
                .into(),
        })
    }
}

export_policy!(IamChange, no_std);
