//! approvals: who may approve a held action and when it is decided.
//! `rules` is pure (snapshots in, verdicts out, unit-tested without I/O);
//! `flow` records reviews under the action's lock, evidence first;
//! `summary` is what every channel shows an approver (one builder, one
//! redaction); `sweeper` expires, reminds and escalates. Nothing here decides silently.

mod flow;
pub mod rules;
pub mod summary;
pub mod sweeper;

pub(crate) use flow::{parse_row, uuid_of};
pub use flow::{ReviewError, ReviewOutcome};
pub use rules::{
    apply_modify, check, route_after_modify, tally, Decision, Refusal, Request, RequestState,
    Requester, Review, Tally,
};
pub use summary::{ApprovalSummary, ApprovalsConfig, Redaction};
