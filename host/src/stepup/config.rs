//! `[step_up]`: which actions need a passkey on every approval, and the
//! WebAuthn relying party. Pure: read once, never written.

use serde::Deserialize;

use crate::action::Risk;

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct StepUpConfig {
    /// Actions classified at or above this risk need step-up.
    pub risk: Risk,
    /// Action kinds that need step-up whatever their risk (exact kinds).
    pub kinds: Vec<String>,
    /// The WebAuthn relying party id: the host name the inbox is served on.
    pub rp_id: String,
    /// The inbox's origin (`https://host[:port]`); assertions made for any
    /// other origin are refused. Chat cards link to `{origin}/inbox/actions/{id}`.
    pub origin: String,
    /// Shown by authenticators when registering.
    pub rp_name: String,
    /// Seconds a step-up challenge or registration stays usable.
    pub challenge_ttl_seconds: u64,
}

impl Default for StepUpConfig {
    fn default() -> Self {
        StepUpConfig {
            risk: Risk::Critical,
            kinds: Vec::new(),
            rp_id: "localhost".into(),
            origin: "http://localhost:8080".into(),
            rp_name: "actiongate".into(),
            challenge_ttl_seconds: 300,
        }
    }
}

impl StepUpConfig {
    /// Whether an approval of an action of `kind` classified `risk` must
    /// carry a passkey assertion.
    pub fn applies(&self, kind: &str, risk: Risk) -> bool {
        risk >= self.risk || self.kinds.iter().any(|k| k == kind)
    }

    /// Where an approver completes a step-up for `action_id` (the inbox page).
    pub fn inbox_link(&self, action_id: &str) -> String {
        format!(
            "{}/inbox/actions/{}",
            self.origin.trim_end_matches('/'),
            action_id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn risk_at_or_above_the_level_or_a_listed_kind_applies() {
        let c = StepUpConfig {
            risk: Risk::High,
            kinds: vec!["iam.role.grant".into()],
            ..Default::default()
        };
        assert!(c.applies("db.export", Risk::High));
        assert!(c.applies("db.export", Risk::Critical));
        assert!(!c.applies("db.export", Risk::Medium));
        assert!(c.applies("iam.role.grant", Risk::Low));
        assert!(!c.applies("iam.role.grants", Risk::Low));
    }

    #[test]
    fn the_default_is_critical_only() {
        let c: StepUpConfig = toml::from_str("").unwrap();
        assert!(c.applies("x", Risk::Critical));
        assert!(!c.applies("x", Risk::High));
        assert_eq!(
            c.inbox_link("abc"),
            "http://localhost:8080/inbox/actions/abc"
        );
    }
}
