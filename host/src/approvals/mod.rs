//! approvals: who may approve a held action and when it is decided.
//! `rules` is pure (snapshots in, verdicts out, unit-tested without I/O);
//! `flow` records reviews under the action's lock, evidence first;
//! `sweeper` expires, reminds and escalates. Nothing here decides silently.

mod flow;
pub mod rules;
pub mod sweeper;

pub(crate) use flow::{parse_row, uuid_of};
pub use flow::{ReviewError, ReviewOutcome};
pub use rules::{
    apply_modify, check, tally, Decision, Refusal, Request, RequestState, Requester, Review, Tally,
};
