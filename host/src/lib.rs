//! actiongate: human judgment in front of AI agents' privileged actions.
//!
//! An action flows `api` → `evaluate` (bindings → `sandbox`) → `evidence`
//! → response; pending actions go through `approvals`. Every module owns
//! one step of that flow and says at its top what it must never do.

pub mod action;
pub mod approvals;
pub mod cases;
pub mod cli;
pub mod config;
pub mod directory;
pub mod evaluate;
pub mod examples;
pub mod notify;
pub mod sandbox;
