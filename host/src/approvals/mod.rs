//! approvals: who may approve a held action and when it is decided.
//! `rules` is pure (snapshots in, verdicts out, unit-tested without I/O);
//! `flow` records a review in steps under the action's lock, evidence
//! first; `view` is what reviewers and cards see; `sweeper` expires,
//! reminds and escalates. Nothing here decides silently.

mod flow;
pub mod rules;
pub mod sweeper;
mod view;

pub use flow::{ReviewError, ReviewOutcome, ReviewRequest};
pub use rules::{
    apply_modify, check, tally, Decision, Refusal, Request, RequestState, Requester, Review, Tally,
};
