//! chat: review channels (Teams, Slack) on top of the approval workflow.
//! They announce and relay clicks to `gate.review`; they never decide.

pub mod slack;
pub mod teams;
