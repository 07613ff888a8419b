//! Change-approval rows for auditors (SOC 2 CC8.1): one row per action with
//! who asked, who approved and when, what the policy decided, what ran and
//! where each fact sits in the evidence log. Derived from the log only, never
//! from the mutable `actions` table. Reads only.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

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

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
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
        let p = &e.payload;
        match e.kind {
            EventKind::Submitted => {
                let a = &p["action"];
                row.kind = text(&a["kind"]);
                row.resource = text(&a["resource"]);
                row.requested_by_agent = text(&a["agent"]["id"]);
                row.requested_by_owner = text(&a["agent"]["attributes"]["owner"]);
                row.on_behalf_of = text(&a["on_behalf_of"]);
                row.requested_at = text(&a["requested_at"]);
                row.log_index = e.seq.to_string();
            }
            EventKind::Evaluated => {
                let out = &p["output"];
                row.risk = text(&out["classification"]["risk"]);
                row.route = text(&out["route"]["route"]);
                row.quorum = text(&out["route"]["quorum"]);
                row.plugin_sha256 = text(&p["plugin"]["sha256"]);
                row.plugin_name = text(&p["plugin"]["name"]);
                row.plugin_version = text(&p["plugin"]["version"]);
            }
            EventKind::Reviewed => {
                if matches!(p["decision"].as_str(), Some("approve" | "modify")) {
                    approving.push((text(&p["approver"]), format_time(&e.occurred_at)));
                }
            }
            EventKind::Approved => {
                let approvers: Vec<String> = p["approvers"]
                    .as_array()
                    .map(|a| a.iter().map(text).collect())
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
                row.denied_by = text(&p["by"]);
                state = "denied";
            }
            EventKind::Expired => state = "expired",
            EventKind::Executed => {
                row.executed_at = format_time(&e.occurred_at);
                row.outcome = match text(&p["summary"]) {
                    s if s.is_empty() => text(&p["status"]),
                    s => format!("{}: {s}", text(&p["status"])),
                };
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
