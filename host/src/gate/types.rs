//! What goes in and out of the gate: a submission, an executor's outcome,
//! and the status a caller sees. Plain data; no I/O.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::action::{OutcomeStatus, Risk, State};

/// What an agent asks for. The agent itself comes from its key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Submission {
    /// The action type, e.g. `db.export`: lowercase ASCII segments of
    /// `a-z 0-9 _ -` joined by single dots, at most 200 characters.
    #[schema(
        pattern = r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$",
        max_length = 200,
        example = "db.export"
    )]
    pub kind: String,
    /// What the action touches.
    pub resource: String,
    /// Action parameters: a JSON object.
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    pub justification: Option<String>,
    #[serde(default)]
    pub context: BTreeMap<String, String>,
    /// The human the agent acts for, if any.
    pub on_behalf_of: Option<String>,
}

/// The approval an action waits for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PendingApproval {
    pub groups: Vec<String>,
    pub quorum: u32,
    pub expires_at: DateTime<Utc>,
}

/// What the caller sees of an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActionStatus {
    pub action_id: String,
    pub state: State,
    pub kind: String,
    pub resource: String,
    #[schema(value_type = String)]
    pub risk: Risk,
    pub reasons: Vec<String>,
    /// Why it was denied or expired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<PendingApproval>,
    /// The signed grant, once allowed or approved (only to the agent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
    pub digest: String,
    pub updated_at: DateTime<Utc>,
}

/// What an executor reports after running (or failing to run) an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    pub grant: String,
    pub status: OutcomeStatus,
    pub summary: String,
    #[serde(default)]
    pub logs: Option<String>,
}
