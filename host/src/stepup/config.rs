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

impl StepUpConfig {
    /// Whether the inbox at `public_url` can carry step-ups: browsers sign
    /// the page's origin into every assertion and only offer passkeys of an
    /// rp id the page's host is (or ends in), so an inbox served elsewhere
    /// could never answer one.
    pub fn check_inbox(&self, public_url: &str) -> Result<(), String> {
        let parse = |what: &str, u: &str| {
            webauthn_rs::prelude::Url::parse(u).map_err(|e| format!("{what} {u:?}: {e}"))
        };
        let inbox = parse("[inbox] public_url", public_url)?;
        let origin = parse("[step_up] origin", &self.origin)?;
        if inbox.origin() != origin.origin() {
            return Err(format!(
                "[step_up] origin {:?} is not the origin of [inbox] public_url {public_url:?}: passkey assertions made on the inbox would never verify",
                self.origin
            ));
        }
        let host = inbox.host_str().unwrap_or_default();
        if host != self.rp_id && !host.ends_with(&format!(".{}", self.rp_id)) {
            return Err(format!(
                "[step_up] rp_id {:?} is neither the inbox's host {host:?} nor a domain it is under: browsers would refuse every passkey prompt",
                self.rp_id
            ));
        }
        Ok(())
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
    fn the_inbox_must_be_served_on_the_webauthn_origin_and_rp_id() {
        let c = StepUpConfig {
            rp_id: "example.com".into(),
            origin: "https://approvals.example.com".into(),
            ..Default::default()
        };
        assert_eq!(c.check_inbox("https://approvals.example.com/"), Ok(()));
        let other_origin = c.check_inbox("https://inbox.example.com").unwrap_err();
        assert!(
            other_origin.contains("would never verify"),
            "{other_origin}"
        );
        assert!(c.check_inbox("http://approvals.example.com").is_err());
        let c = StepUpConfig {
            rp_id: "example.org".into(),
            origin: "https://approvals.example.com".into(),
            ..Default::default()
        };
        let wrong_rp = c.check_inbox("https://approvals.example.com").unwrap_err();
        assert!(wrong_rp.contains("rp_id \"example.org\""), "{wrong_rp}");
        // A suffix must be a whole label.
        let c = StepUpConfig {
            rp_id: "ample.com".into(),
            origin: "https://approvals.example.com".into(),
            ..Default::default()
        };
        assert!(c.check_inbox("https://approvals.example.com").is_err());
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
