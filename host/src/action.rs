//! The domain of one decision: the action an agent asks for and what a
//! policy says about it. Plain data; no I/O. The sandbox converts these to
//! and from the WIT types, so nothing above it sees generated bindings.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The authenticated agent. Built by the host from the agent's API key,
/// never from a request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub id: String,
    /// Operator-set attributes; `owner` is always present for agents.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// One privileged action, as a policy plugin sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    pub id: String,
    pub kind: String,
    pub agent: Principal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
    pub resource: String,
    /// Always a JSON object.
    pub params: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    #[serde(default)]
    pub context: BTreeMap<String, String>,
    pub requested_at: DateTime<Utc>,
}

impl Action {
    /// sha256 over the RFC 8785 canonical JSON of the action: what approvals
    /// and grants are bound to. Any change to any field changes it.
    pub fn digest(&self) -> String {
        hex::encode(Sha256::digest(crate::evidence::canonical::digest_bytes(
            self,
        )))
    }

    /// `requested_at` as the plugin sees it: RFC 3339, UTC, milliseconds.
    pub fn requested_at_rfc3339(&self) -> String {
        self.requested_at
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    Low,
    Medium,
    High,
    Critical,
}

impl Risk {
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
            Risk::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classification {
    pub risk: Risk,
    pub reasons: Vec<String>,
    pub tags: Vec<String>,
}

/// What humans must do before a held action may run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRoute {
    pub groups: Vec<String>,
    pub quorum: u32,
    pub ttl_seconds: u32,
    pub modifiable_params: Vec<String>,
    pub escalate_to: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "route", rename_all = "kebab-case")]
pub enum Route {
    Allow,
    Deny { reason: String },
    RequireApproval(ApprovalRoute),
}

impl Route {
    pub fn name(&self) -> &'static str {
        match self {
            Route::Allow => "allow",
            Route::Deny { .. } => "deny",
            Route::RequireApproval(_) => "require-approval",
        }
    }
}

/// What a plugin says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub kinds: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action() -> Action {
        Action {
            id: "a1".into(),
            kind: "db.export".into(),
            agent: Principal {
                id: "etl".into(),
                attributes: BTreeMap::new(),
            },
            on_behalf_of: None,
            resource: "db://x".into(),
            params: serde_json::json!({"rows": 10, "b": [1, 2]}),
            justification: None,
            context: BTreeMap::new(),
            requested_at: "2026-11-25T10:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn digest_changes_with_any_param() {
        let a = action();
        let mut b = action();
        assert_eq!(a.digest(), b.digest());
        b.params["rows"] = serde_json::json!(11);
        assert_ne!(a.digest(), b.digest());
        assert_eq!(a.digest().len(), 64);
    }

    #[test]
    fn requested_at_is_utc_millis() {
        assert_eq!(action().requested_at_rfc3339(), "2026-11-25T10:00:00.000Z");
    }
}
