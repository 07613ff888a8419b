//! Change-approval rows for auditors (SOC 2 CC8.1): one row per action with
//! who asked, who approved and when, what the policy decided, what ran and
//! where each fact sits in the evidence log. Derived from the log only, never
//! from the mutable `actions` table. Reads only.

use std::collections::BTreeMap;

use serde::Serialize;
use uuid::Uuid;

use crate::action::{Decision, Route};
use crate::evidence::payload;
use crate::evidence::{format_time, EventKind, StoredEvent};
use crate::store::{EventRow, Store, StoreError};

use super::bundle::Select;

/// Values within one cell are joined with this.
const JOIN: &str = "; ";

/// One action as an auditor samples it. Field names are the CSV header.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ChangeRow {
    pub action_id: String,
    pub kind: String,
    pub resource: String,
    /// The requesting agent.
    pub requested_by_agent: String,
    /// The agent's owner (a person).
    pub requested_by_owner: String,
    pub on_behalf_of: String,
    pub requested_at: String,
    pub risk: String,
    /// allow, deny or require-approval, as the governing evaluation routed it.
    pub route: String,
    pub quorum: String,
    /// The approvers the approval counted, in review order.
    pub approvers: String,
    /// When each of them approved, in the same order.
    pub approved_at: String,
    /// Who denied, when a person did.
    pub denied_by: String,
    /// allowed, approved, denied, expired, executed or pending.
    pub final_state: String,
    pub executed_at: String,
    /// succeeded or failed, with the executor's summary.
    pub outcome: String,
    pub plugin_sha256: String,
    pub plugin_name: String,
    pub plugin_version: String,
    /// Seq of the `submitted` event: the leaf to ask an inclusion proof for.
    pub log_index: String,
    /// Seqs of every event of the action.
    pub log_seqs: String,
}

/// The change rows of the selected actions, in submission order.
pub async fn export(store: &Store, select: Select) -> Result<Vec<ChangeRow>, StoreError> {
    let rows = match select {
        Select::Action(id) => store.events_for_action(id).await?,
        Select::Submitted(w) => store.events_of_actions_submitted(w).await?,
    };
    rows_of(rows)
}

/// Groups events by action and builds one row each.
pub fn rows_of(rows: Vec<EventRow>) -> Result<Vec<ChangeRow>, StoreError> {
    let mut by_action: BTreeMap<Uuid, Vec<StoredEvent>> = BTreeMap::new();
    let mut order: Vec<Uuid> = Vec::new();
    for row in rows {
        let Some(id) = row.action_id else { continue };
        let e = StoredEvent::from_canonical(row.canonical, row.leaf_hash)
            .map_err(|e| StoreError::Corrupt(format!("seq {}: {e}", row.seq)))?;
        let events = by_action.entry(id).or_default();
        if events.is_empty() {
            order.push(id);
        }
        events.push(e);
    }
    Ok(order
        .into_iter()
        .map(|id| row_of(id, &by_action[&id]))
        .collect())
}

/// One action's row from its events, in seq order.
fn row_of(id: Uuid, events: &[StoredEvent]) -> ChangeRow {
    let mut row = ChangeRow {
        action_id: id.to_string(),
        log_seqs: events
            .iter()
            .map(|e| e.seq.to_string())
            .collect::<Vec<_>>()
            .join(" "),
        final_state: "pending".into(),
        ..ChangeRow::default()
    };
    // (approver, time) of each approving review, to time the counted approvals.
    let mut approving: Vec<(String, String)> = Vec::new();
    let mut state = "pending";
    for e in events {
        // The writers' own payload types; an event that does not read as
        // its kind adds nothing to the row.
        match e.kind {
            EventKind::Submitted => {
                if let Ok(p) = e.payload_as::<payload::Submitted>() {
                    let a = p.action;
                    row.kind = a.kind.clone();
                    row.resource = a.resource.clone();
                    row.requested_by_agent = a.agent.id.clone();
                    row.requested_by_owner =
                        a.agent.attributes.get("owner").cloned().unwrap_or_default();
                    row.on_behalf_of = a.on_behalf_of.clone().unwrap_or_default();
                    // As the event holds it (RFC 3339, as serde writes it).
                    row.requested_at = serde_json::to_value(a.requested_at)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default();
                }
                row.log_index = e.seq.to_string();
            }
            EventKind::Evaluated => {
                if let Ok(p) = e.payload_as::<payload::Evaluated>() {
                    row.risk = p.output.classification.risk.as_str().into();
                    row.route = p.output.route.name().into();
                    row.quorum = match &p.output.route {
                        Route::RequireApproval(a) => a.quorum.to_string(),
                        _ => String::new(),
                    };
                    let plugin = p.plugin.as_ref();
                    row.plugin_sha256 = plugin.map(|p| p.sha256.clone()).unwrap_or_default();
                    row.plugin_name = plugin.map(|p| p.name.clone()).unwrap_or_default();
                    row.plugin_version = plugin.map(|p| p.version.clone()).unwrap_or_default();
                }
            }
            EventKind::Reviewed => {
                if let Ok(p) = e.payload_as::<payload::Reviewed>() {
                    if matches!(p.decision, Decision::Approve | Decision::Modify) {
                        approving.push((p.approver, format_time(&e.occurred_at)));
                    }
                }
            }
            EventKind::Approved => {
                let approvers = e
                    .payload_as::<payload::Approved>()
                    .map(|p| p.approvers)
                    .unwrap_or_default();
                let times: Vec<String> = approvers
                    .iter()
                    .map(|a| {
                        approving
                            .iter()
                            .rev()
                            .find(|(who, _)| who.eq_ignore_ascii_case(a))
                            .map_or_else(String::new, |(_, at)| at.clone())
                    })
                    .collect();
                row.approvers = approvers.join(JOIN);
                row.approved_at = times.join(JOIN);
                state = "approved";
            }
            EventKind::Granted if state == "pending" => state = "allowed",
            EventKind::Denied => {
                row.denied_by = e
                    .payload_as::<payload::Denied>()
                    .ok()
                    .and_then(|p| p.by)
                    .unwrap_or_default();
                state = "denied";
            }
            EventKind::Expired => state = "expired",
            EventKind::Executed => {
                row.executed_at = format_time(&e.occurred_at);
                if let Ok(p) = e.payload_as::<payload::Executed>() {
                    row.outcome = match p.summary.as_str() {
                        "" => p.status.as_str().into(),
                        summary => format!("{}: {summary}", p.status.as_str()),
                    };
                }
                state = "executed";
            }
            _ => {}
        }
    }
    row.final_state = state.into();
    row
}

/// The rows as CSV with a header line (RFC 4180 quoting).
pub fn to_bytes(rows: &[ChangeRow]) -> Result<Vec<u8>, ::csv::Error> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    if rows.is_empty() {
        // The header alone, so an empty window is still a well-formed file.
        w.serialize(ChangeRow::default())?;
        let bytes = w.into_inner().map_err(|e| e.into_error())?;
        let header_end = bytes
            .iter()
            .position(|b| *b == b'\n')
            .map_or(bytes.len(), |i| i + 1);
        return Ok(bytes[..header_end].to_vec());
    }
    for r in rows {
        w.serialize(r)?;
    }
    w.into_inner()
        .map_err(|e| ::csv::Error::from(e.into_error()))
}
