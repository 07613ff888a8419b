//! gate: one action's way from submission to decision to outcome, by stage:
//! `submit` (checks, evaluates), `record` (commits the evidence, then the
//! row; issues grants), `outcome` (status, waits, the executor's report),
//! `record::ActionRecord` (a stored action, decoded once). No answer and no
//! grant leaves before its evidence is committed. Never knows which
//! workflows sit on top of it: what an approval unlocks runs through
//! `WhenApproved` hooks registered at start.

mod outcome;
mod record;
mod submit;
mod types;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::directory::Directory;
use crate::evaluate::Evaluator;
use crate::evidence::{EvidenceError, EvidenceLog};
use crate::grant::GrantSigner;
use crate::metrics::Metrics;
use crate::notify::{Notifier, Redaction};
use crate::shadow::Shadows;
use crate::stepup::StepUp;
use crate::store::{Store, StoreError};
use crate::waiters::Waiters;

pub use crate::action::{ActionId, OutcomeStatus, State};
pub(crate) use record::{grant_event, Decided};
pub use record::{verdict_events, ActionRecord};
pub use submit::Evaluated;
pub use types::{ActionStatus, Outcome, PendingApproval, Submission};

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("evidence could not be committed: {0}")]
    Evidence(#[from] EvidenceError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("idempotency key {0:?} was already used with a different request")]
    IdempotencyConflict(String),
    #[error("no action {0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("kind: {0}")]
    Kind(#[from] crate::action::KindError),
    #[error("the API key or its agent was revoked")]
    KeyRevoked,
    #[error("grant refused: {0}")]
    GrantRefused(String),
    #[error("grant {jti} was already used")]
    GrantReused { jti: String },
    #[error("action is {state}, so {what}")]
    WrongState {
        state: &'static str,
        what: &'static str,
    },
    /// No sandbox slot came free in time: nothing was decided or recorded.
    #[error(transparent)]
    Busy(#[from] crate::sandbox::Busy),
}

impl From<crate::action::UnknownState> for GateError {
    fn from(e: crate::action::UnknownState) -> Self {
        GateError::Store(StoreError::Corrupt(e.to_string()))
    }
}

impl From<crate::action::BadActionId> for GateError {
    /// A malformed id names no action: the same answer as an unknown one.
    fn from(e: crate::action::BadActionId) -> Self {
        GateError::NotFound(e.0)
    }
}

/// An action id read from the store, which the host wrote: one that is not
/// an id is corruption (unlike a caller's malformed id, which is not found).
pub fn stored_action_id(id: &str) -> Result<ActionId, GateError> {
    id.parse()
        .map_err(|e: crate::action::BadActionId| StoreError::Corrupt(e.to_string()).into())
}

impl GateError {
    /// True when the cause is the database or the log being out of reach:
    /// answer 503. Nothing else is, since retrying cannot fix it.
    pub fn is_unavailable(&self) -> bool {
        match self {
            GateError::Evidence(e) => e.is_unavailable(),
            GateError::Store(e) => e.is_unavailable(),
            _ => false,
        }
    }
}

/// Action kinds only the host makes (`actiongate.bind`).
pub const HOST_KINDS: &str = "actiongate.";

/// What the host runs once an action of its own kind is approved (the
/// four-eyes binding change applies itself). Registered at start; the
/// approval flow calls the one for the approved action's kind after the
/// approval is committed. Must be idempotent: a replica that crashes in
/// between retries it.
pub trait WhenApproved: Send + Sync {
    /// The action kind it executes (one of `HOST_KINDS`).
    fn kind(&self) -> &'static str;

    /// Executes the approved action; failures are its own to log and retry.
    fn execute<'a>(&'a self, action_id: &'a str) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
}

/// What the gate is built from (see `service::build`).
pub struct GateParts {
    pub store: Store,
    /// Who may approve; built from config.
    pub directory: Arc<Directory>,
    /// Everyone told about held actions (webhook, Slack, Teams).
    pub notifiers: Vec<Arc<dyn Notifier>>,
    pub evidence: EvidenceLog,
    pub evaluator: Arc<Evaluator>,
    pub grants: GrantSigner,
    pub grant_ttl: Duration,
    pub waiters: Waiters,
    pub metrics: Metrics,
    /// Shadow plugins, evaluated after the live answer is committed.
    pub shadows: Shadows,
    /// What approvals of the host's own kinds execute.
    pub when_approved: Vec<Arc<dyn WhenApproved>>,
    /// What no channel shows of params and context (`[approvals]`).
    pub redaction: Redaction,
    /// The web inbox's public base URL: notifications link to each action's page.
    pub inbox_url: Option<String>,
    /// Passkey step-up, when `[step_up]` is configured.
    pub step_up: Option<Arc<StepUp>>,
}

/// Everything a decision needs. Shared by the API, chat, the sweeper and the CLI.
pub struct Gate {
    store: Store,
    directory: Arc<Directory>,
    notifiers: Vec<Arc<dyn Notifier>>,
    evidence: EvidenceLog,
    evaluator: Arc<Evaluator>,
    grants: GrantSigner,
    grant_ttl: Duration,
    waiters: Waiters,
    metrics: Metrics,
    shadows: Shadows,
    when_approved: Vec<Arc<dyn WhenApproved>>,
    redaction: Redaction,
    inbox_url: Option<String>,
    step_up: Option<Arc<StepUp>>,
}

impl Gate {
    pub fn new(parts: GateParts) -> Gate {
        let GateParts {
            store,
            directory,
            notifiers,
            evidence,
            evaluator,
            grants,
            grant_ttl,
            waiters,
            metrics,
            shadows,
            when_approved,
            redaction,
            inbox_url,
            step_up,
        } = parts;
        Gate {
            store,
            directory,
            notifiers,
            evidence,
            evaluator,
            grants,
            grant_ttl,
            waiters,
            metrics,
            shadows,
            when_approved,
            redaction,
            inbox_url,
            step_up,
        }
    }

    /// The web inbox's public base URL, when the inbox is served.
    pub fn inbox_url(&self) -> Option<&str> {
        self.inbox_url.as_deref()
    }

    /// Passkey step-up, when `[step_up]` is configured.
    pub fn step_up(&self) -> Option<&Arc<StepUp>> {
        self.step_up.as_ref()
    }

    /// The one redaction rule set every channel's summary applies.
    pub(crate) fn redaction(&self) -> &Redaction {
        &self.redaction
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn directory(&self) -> &Arc<Directory> {
        &self.directory
    }

    pub fn evidence(&self) -> &EvidenceLog {
        &self.evidence
    }

    pub fn evaluator(&self) -> &Arc<Evaluator> {
        &self.evaluator
    }

    pub fn grants(&self) -> &GrantSigner {
        &self.grants
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Wakeups on any action's change, for live views.
    pub(crate) fn waiters(&self) -> &Waiters {
        &self.waiters
    }

    pub(crate) fn notifiers(&self) -> &[Arc<dyn Notifier>] {
        &self.notifiers
    }

    pub(crate) fn shadows(&self) -> &Shadows {
        &self.shadows
    }

    /// Runs what approving `action_id` (of `kind`) unlocks, if the host
    /// executes that kind itself.
    pub(crate) async fn approved(&self, action_id: &str, kind: &str) {
        for hook in self.when_approved.iter().filter(|h| h.kind() == kind) {
            hook.execute(action_id).await;
        }
    }

    /// Wakes every waiter on this action, on every replica.
    pub async fn changed(&self, id: &str) {
        self.waiters.wake(id);
        if let Err(e) = self.store.notify_action_changed(id).await {
            tracing::warn!(action_id = %id, error = %e, "could not notify other replicas; their waiters re-check within 2 s");
        }
    }
}
