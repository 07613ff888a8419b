//! Every way a plugin can fail, as a value. The sandbox downcasts wasmtime's
//! errors once, here; nothing above the sandbox sees `wasmtime::Error`.

use serde::{Deserialize, Serialize};

/// A plugin failed to load or to produce a usable verdict. Always fails
/// closed: the evaluator turns it into the break-glass route or a deny.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "failure", rename_all = "kebab-case")]
pub enum PluginFailure {
    /// The bytes are not a loadable policy component: bad sha256 pin, not a
    /// component, a forbidden import, missing exports.
    #[error("plugin failed to load: {reason}")]
    Load { reason: String },
    /// The guest trapped; `message` holds the panic message when it printed one.
    #[error("plugin trapped: {message}")]
    Trap { message: String },
    /// The guest used all its fuel (deterministic instruction budget).
    #[error("plugin ran out of fuel ({fuel} units)")]
    OutOfFuel { fuel: u64 },
    /// The guest ran past the wall-clock deadline, or (`waited_in`) called
    /// a WASI function that would have waited for an instant the frozen
    /// clock never reaches, which no deadline outlasts: it is ended at once.
    #[error("{}", deadline_message(*deadline_ms, waited_in.as_deref()))]
    Deadline {
        deadline_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        waited_in: Option<String>,
    },
    /// The guest tried to grow its memory past the cap.
    #[error("plugin exceeded its {limit_bytes}-byte memory cap")]
    OutOfMemory { limit_bytes: usize },
    /// The guest returned something the host will not act on: too large, an
    /// empty approver list, a zero quorum, or an `err` from classify/route.
    #[error("plugin returned invalid output: {reason}")]
    InvalidOutput { reason: String },
}

impl PluginFailure {
    /// The kebab-case name used in case files, evidence and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            PluginFailure::Load { .. } => "load",
            PluginFailure::Trap { .. } => "trap",
            PluginFailure::OutOfFuel { .. } => "out-of-fuel",
            PluginFailure::Deadline { .. } => "deadline",
            PluginFailure::OutOfMemory { .. } => "out-of-memory",
            PluginFailure::InvalidOutput { .. } => "invalid-output",
        }
    }

    /// The real-time deadline passed.
    pub fn deadline(deadline_ms: u64) -> Self {
        PluginFailure::Deadline {
            deadline_ms,
            waited_in: None,
        }
    }

    pub(crate) fn load(reason: impl std::fmt::Display) -> Self {
        PluginFailure::Load {
            reason: reason.to_string(),
        }
    }
}

fn deadline_message(deadline_ms: u64, waited_in: Option<&str>) -> String {
    match waited_in {
        None => format!("plugin passed its {deadline_ms} ms deadline"),
        Some(call) => format!(
            "plugin waited in `{call}` for an instant the sandbox's frozen clock never reaches, so it could not answer within its {deadline_ms} ms deadline"
        ),
    }
}
