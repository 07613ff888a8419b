//! The domain of one decision: the action an agent asks for and what a
//! policy says about it. Plain data; no I/O. The sandbox converts these to
//! and from the WIT types, so nothing above it sees generated bindings.

use std::collections::BTreeMap;
use std::fmt;

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

/// The id of an action: a UUID the host made. Parsed once, where it comes
/// in (HTTP path, chat payload, CLI argument), so every channel refuses a
/// malformed id the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ActionId(uuid::Uuid);

impl ActionId {
    /// A fresh id (UUIDv7: ordered by time).
    pub fn new() -> ActionId {
        ActionId(uuid::Uuid::now_v7())
    }

    pub fn uuid(self) -> uuid::Uuid {
        self.0
    }
}

impl Default for ActionId {
    fn default() -> Self {
        ActionId::new()
    }
}

impl From<uuid::Uuid> for ActionId {
    fn from(id: uuid::Uuid) -> Self {
        ActionId(id)
    }
}

impl std::str::FromStr for ActionId {
    type Err = BadActionId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s)
            .map(ActionId)
            .map_err(|_| BadActionId(s.to_owned()))
    }
}

impl fmt::Display for ActionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hyphenated lowercase: what every stored row and event holds.
        self.0.fmt(f)
    }
}

/// Text that is not an action id; names what was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an action id (a UUID)")]
pub struct BadActionId(pub String);

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
        hex::encode(Sha256::digest(crate::canonical::digest_bytes(self)))
    }

    /// `requested_at` as the plugin sees it: RFC 3339, UTC, milliseconds.
    pub fn requested_at_rfc3339(&self) -> String {
        self.requested_at
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    }
}

/// Where an action stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Allowed,
    Denied,
    Pending,
    Approved,
    Expired,
    Executed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Allowed => "allowed",
            State::Denied => "denied",
            State::Pending => "pending",
            State::Approved => "approved",
            State::Expired => "expired",
            State::Executed => "executed",
        }
    }

    /// The state a stored row names.
    pub fn parse(s: &str) -> Result<State, UnknownState> {
        Ok(match s {
            "allowed" => State::Allowed,
            "denied" => State::Denied,
            "pending" => State::Pending,
            "approved" => State::Approved,
            "expired" => State::Expired,
            "executed" => State::Executed,
            _ => return Err(UnknownState(s.to_owned())),
        })
    }

    pub fn is_final(self) -> bool {
        !matches!(self, State::Pending)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
/// What a reviewer decides about a held action.
pub enum Decision {
    Approve,
    Deny,
    /// Change modifiable params; counts as the modifier's approval of the new digest.
    Modify,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Deny => "deny",
            Decision::Modify => "modify",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
/// How running an action went, as its executor reports it.
pub enum OutcomeStatus {
    Succeeded,
    Failed,
}

impl OutcomeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeStatus::Succeeded => "succeeded",
            OutcomeStatus::Failed => "failed",
        }
    }
}

/// A stored state this release does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown action state {0:?}")]
pub struct UnknownState(pub String);

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

    #[test]
    fn an_action_id_is_a_uuid_parsed_once_and_named_when_bad() {
        let id: ActionId = "0190C6C2-0000-7000-8000-000000000001".parse().unwrap();
        // Written as every row and event holds it: lowercase, hyphenated.
        assert_eq!(id.to_string(), "0190c6c2-0000-7000-8000-000000000001");
        assert_eq!(
            serde_json::to_value(id).unwrap(),
            serde_json::json!("0190c6c2-0000-7000-8000-000000000001")
        );
        let bad = "42; DROP".parse::<ActionId>().unwrap_err();
        assert_eq!(bad.to_string(), "\"42; DROP\" is not an action id (a UUID)");
        assert!("".parse::<ActionId>().is_err());
    }

    #[test]
    fn stored_states_parse_and_unknown_ones_are_named() {
        for s in [
            State::Allowed,
            State::Denied,
            State::Pending,
            State::Approved,
            State::Expired,
            State::Executed,
        ] {
            assert_eq!(State::parse(s.as_str()), Ok(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::json!(s.as_str())
            );
        }
        assert_eq!(
            State::parse("Allowed").unwrap_err().to_string(),
            "unknown action state \"Allowed\""
        );
    }
}
