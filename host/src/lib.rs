//! actiongate: human judgment in front of AI agents' privileged actions.
//!
//! An action flows `api` → `gate` → `evaluate` (bindings → `sandbox`) →
//! `evidence` → response; pending actions go through `approvals`. Every
//! module owns one step of that flow and says at its top what it must
//! never do. `store` is the only code that writes SQL.

/// glibc's malloc spent a third of the evidence writer's CPU in arena
/// contention and consolidation under concurrent requests; mimalloc's
/// per-thread heaps do not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod action;
pub mod api;
pub mod approvals;
pub mod audit;
pub mod bindings;
pub mod canonical;
pub mod cases;
pub mod chat;
pub mod cli;
pub mod config;
pub mod directory;
pub mod evaluate;
pub mod evidence;
pub mod examples;
pub mod execution;
pub mod gate;
pub mod grant;
pub mod ijson;
pub mod inbox;
pub mod keys;
pub mod mcp;
pub mod metrics;
pub mod notify;
pub mod problem;
pub mod registry;
pub mod route_check;
pub mod sandbox;
pub mod service;
pub mod shadow;
pub mod stepup;
pub mod store;
pub mod waiters;

/// The build script's wasm-target check, unit-tested here (build scripts
/// have no tests of their own).
#[cfg(test)]
#[path = "../build/wasm_target.rs"]
mod wasm_target;
