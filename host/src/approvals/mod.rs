//! approvals: who may approve a held action and when it is decided.
//! `rules` is pure (snapshots in, verdicts out, unit-tested without I/O);
//! `flow` records a review in steps under the action's lock, evidence
//! first; `view` is what reviewers and cards see; `summary` builds what
//! every channel shows an approver (one builder, one redaction); `step_up`
//! says which reviews need a passkey proof; `sweeper` expires, reminds and
//! escalates. Nothing here decides silently.

mod flow;
pub mod rules;
mod step_up;
pub mod summary;
pub mod sweeper;
mod view;

pub use flow::{ReviewError, ReviewOutcome, ReviewRequest};
pub use rules::{
    apply_modify, check, route_after_modify, tally, Decision, Refusal, Request, RequestState,
    Requester, Review, Tally,
};
pub use summary::{ApprovalSummary, ApprovalsConfig, Redaction};
