//! bindings: which plugin decides which action kinds. The `bindings` table
//! is the one source of truth: config-file entries (seeded at start),
//! admin changes and approved four-eyes changes are all changes to it, each
//! recorded as a `binding-changed` event before its row is written, and
//! every replica's evaluator follows it (`sync`). Never binds a plugin
//! whose bytes are not stored.

pub mod four_eyes;
mod sync;

use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use four_eyes::FourEyesConfig;

use crate::evaluate::{compile_pattern, BindingError, Evaluator};
use crate::evidence::payload::{self, Payload};
use crate::evidence::{Actor, EvidenceError, EvidenceLog};
use crate::store::{BindingRow, NewBinding, Store, StoreError};

/// One `[[bindings]]` entry of the config file: kinds matching `kind` go
/// to a plugin, named by example name (`plugin`) or by file and pinned
/// sha256 (`path` + `sha256`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BindingConfig {
    pub kind: String,
    pub plugin: Option<String>,
    pub path: Option<PathBuf>,
    pub sha256: Option<String>,
    /// A shadow plugin (example name), evaluated and recorded, never enforced.
    pub shadow: Option<String>,
}

/// What a change asks for: kinds matching `pattern` go to `sha256`, with
/// an optional shadow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BindingChange {
    /// An exact kind (`db.export`) or a glob (`db.*`, `*`).
    pub pattern: String,
    /// The live plugin (a registered sha256).
    pub sha256: String,
    /// A registered plugin evaluated beside the live one and recorded, never enforced.
    #[serde(default)]
    pub shadow: Option<String>,
}

/// Why a change was made, as recorded.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// A `[[bindings]]` entry of the config file, at start.
    Config,
    /// A policy admin, directly (no four-eyes group configured).
    Admin,
    /// An approved `actiongate.bind` action.
    Approval {
        action_id: &'a str,
        approvers: &'a [String],
    },
}

impl Source<'_> {
    fn as_str(&self) -> &'static str {
        match self {
            Source::Config => "config",
            Source::Admin => "admin",
            Source::Approval { .. } => "approval",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error(transparent)]
    Pattern(#[from] BindingError),
    #[error("{0:?} is not a sha256 (64 lowercase hex digits)")]
    NotASha256(String),
    #[error("plugin {0} is not registered; register it first (actiongate plugin register)")]
    UnknownPlugin(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("recording the binding change: {0}")]
    Evidence(#[from] EvidenceError),
}

impl BindError {
    /// True when the change itself is wrong (as opposed to the database).
    pub fn is_invalid(&self) -> bool {
        matches!(
            self,
            BindError::Pattern(_) | BindError::NotASha256(_) | BindError::UnknownPlugin(_)
        )
    }
}

/// What `apply` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// A new row, now in effect.
    Changed(BindingRow),
    /// Nothing to do: the binding already was so (or, for the config file,
    /// the entry has not changed since it was last applied).
    Unchanged(Option<BindingRow>),
}

/// The bindings store and this replica's evaluator, kept in step.
pub struct Bindings {
    store: Store,
    evidence: EvidenceLog,
    evaluator: Arc<Evaluator>,
    /// The approval a change needs under four eyes.
    pub(crate) four_eyes: FourEyesConfig,
    /// The newest change this replica has loaded; serializes reloads.
    loaded: tokio::sync::Mutex<i64>,
}

impl Bindings {
    pub fn new(
        store: Store,
        evidence: EvidenceLog,
        evaluator: Arc<Evaluator>,
        four_eyes: FourEyesConfig,
    ) -> Self {
        Bindings {
            store,
            evidence,
            evaluator,
            four_eyes,
            loaded: tokio::sync::Mutex::new(-1),
        }
    }

    /// Checks a change without making it: the pattern compiles and every
    /// plugin it names is stored.
    pub async fn validate(&self, change: &BindingChange) -> Result<(), BindError> {
        compile_pattern(&change.pattern)?;
        for sha in std::iter::once(&change.sha256).chain(change.shadow.as_ref()) {
            if sha.len() != 64 || !sha.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                return Err(BindError::NotASha256(sha.clone()));
            }
            if !self.store.has_plugin(sha).await? {
                return Err(BindError::UnknownPlugin(sha.clone()));
            }
        }
        Ok(())
    }

    /// Makes one change: under the bindings lock, records `binding-changed`
    /// (evidence first), writes the row, then tells every replica. This
    /// replica's evaluator follows before it returns.
    pub async fn apply(
        &self,
        change: &BindingChange,
        by: &Actor,
        source: Source<'_>,
    ) -> Result<Applied, BindError> {
        self.validate(change).await?;
        let mut guard = self.store.lock_bindings().await?;
        if let Source::Approval { action_id, .. } = source {
            if let Some(done) = guard.by_approval(action_id).await? {
                guard.release().await?;
                return Ok(Applied::Unchanged(Some(done)));
            }
        }
        let (current, last_config) = guard.latest(&change.pattern).await?;
        let same = |row: &Option<BindingRow>| {
            row.as_ref().is_some_and(|r| {
                r.sha256 == change.sha256 && r.shadow.as_deref() == change.shadow.as_deref()
            })
        };
        // The config file changes a binding only when its entry was edited
        // since it was last applied; a later admin change otherwise stands.
        let unchanged = match source {
            Source::Config => same(&last_config),
            _ => same(&current),
        };
        if unchanged {
            guard.release().await?;
            return Ok(Applied::Unchanged(current));
        }
        let (approval, approvers) = match source {
            Source::Approval {
                action_id,
                approvers,
            } => (Some(action_id), Some(approvers)),
            _ => (None, None),
        };
        let event = payload::BindingChanged {
            pattern: change.pattern.clone(),
            sha256: change.sha256.clone(),
            shadow: change.shadow.clone(),
            previous: current.as_ref().map(|p| payload::PreviousBinding {
                sha256: p.sha256.clone(),
                shadow: p.shadow.clone(),
                source: p.source.clone(),
                changed_by: p.changed_by.clone(),
                evidence_seq: p.evidence_seq,
            }),
            source: source.as_str().into(),
            approval: approval.map(String::from),
            approvers: approvers.map(<[String]>::to_vec),
        }
        .event(approval.and_then(|id| Uuid::parse_str(id).ok()), by.clone());
        let recorded = self.evidence.append(event).await?;
        let changed_at = Utc::now();
        let new = NewBinding {
            pattern: &change.pattern,
            sha256: &change.sha256,
            shadow: change.shadow.as_deref(),
            source: source.as_str(),
            changed_by: &by.id,
            approval,
            evidence_seq: recorded.seq,
            changed_at,
        };
        let id = guard.insert(&new).await?;
        guard.commit().await?;
        tracing::info!(pattern = %change.pattern, sha256 = %change.sha256, shadow = ?change.shadow, source = source.as_str(), by = %by.id, "binding changed");
        if let Err(e) = self.store.notify_bindings_changed().await {
            tracing::warn!(error = %e, "could not notify other replicas; they reload on their next poll");
        }
        if let Err(e) = self.reload().await {
            tracing::error!(error = %e, "binding stored but not reloaded here; retrying on the next poll");
        }
        Ok(Applied::Changed(BindingRow {
            id,
            pattern: change.pattern.clone(),
            sha256: change.sha256.clone(),
            shadow: change.shadow.clone(),
            source: source.as_str().into(),
            changed_by: by.id.clone(),
            approval: approval.map(String::from),
            evidence_seq: recorded.seq,
            changed_at,
        }))
    }

    /// The config file's `[[bindings]]`, applied as `config` changes (only
    /// the entries edited since they were last applied change anything).
    pub async fn seed(&self, changes: &[BindingChange]) -> Result<(), BindError> {
        for change in changes {
            self.apply(change, &Actor::system("config"), Source::Config)
                .await?;
        }
        Ok(())
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}
