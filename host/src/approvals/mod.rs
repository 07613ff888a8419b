//! approvals: who may approve a held action, and when it is decided. Pure
//! rules over snapshots; never does I/O, never records or sends anything.

pub mod rules;

pub use rules::{
    apply_modify, check, tally, Decision, Refusal, Request, RequestState, Requester, Review, Tally,
};
