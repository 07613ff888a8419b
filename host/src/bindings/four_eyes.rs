//! Four eyes on binding changes. When the directory has a `policy-admins`
//! group, a change is an action of kind `actiongate.bind`, taken by the
//! host's own agent on behalf of the admin who asked. It goes through the
//! one approval flow (`Gate::review`: its groups, quorum, and no
//! self-approval, the requester being its on-behalf-of human) and is made
//! only once approved: the bindings register as the gate's `WhenApproved`
//! hook for the kind, apply the change and record the outcome, on every
//! replica through the store. Never makes a change nobody approved.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::{Applied, BindError, BindingChange, Bindings, Source};
use crate::action::{
    Action, ApprovalRoute, Classification, OutcomeStatus, Principal, Risk, Route, State,
};
use crate::directory::{ApproverId, Directory, Person};
use crate::evaluate::Verdict;
use crate::evidence::payload::{self, Payload};
use crate::evidence::Actor;
use crate::gate::{ActionRecord, ActionStatus, Decided, Gate, GateError, WhenApproved};
use crate::sandbox::WIT_VERSION;
use crate::store::{ActionChange, StoreError};

/// `[plugins.four_eyes]`: the approval a binding change needs.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct FourEyesConfig {
    /// Approvals by policy admins other than the requester.
    pub quorum: u32,
    /// Seconds before an unapproved change expires (and is not made).
    pub ttl_seconds: u32,
}

impl Default for FourEyesConfig {
    fn default() -> Self {
        FourEyesConfig {
            quorum: 1,
            ttl_seconds: 86_400,
        }
    }
}

/// The directory group whose members change policy, under four eyes.
pub const POLICY_ADMINS: &str = "policy-admins";
/// The kind of a binding change held for approval.
pub const BIND_KIND: &str = "actiongate.bind";
/// The host's own agent (created by migration 0007; it has no key).
pub const HOST_AGENT: &str = "actiongate";

/// Whether binding changes need approval: a `policy-admins` group exists.
pub fn enabled(directory: &Directory) -> bool {
    directory.has_group(POLICY_ADMINS)
}

/// Who may register plugins and ask for binding changes: members of
/// `policy-admins` when it exists, directory admins otherwise.
pub fn is_policy_admin(directory: &Directory, person: &Person) -> bool {
    if enabled(directory) {
        directory.is_member(person.id(), POLICY_ADMINS)
    } else {
        person.admin()
    }
}

/// Says who the policy admins are, for a refusal.
pub fn who_is_policy_admin(directory: &Directory) -> &'static str {
    if enabled(directory) {
        "members of the `policy-admins` group are"
    } else {
        "directory people with `admin = true` are"
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error(transparent)]
    Gate(#[from] GateError),
}

impl From<StoreError> for RequestError {
    fn from(e: StoreError) -> Self {
        RequestError::Gate(e.into())
    }
}

impl Bindings {
    /// Asks for a binding change under four eyes: records, through `gate`,
    /// an `actiongate.bind` action held for `policy-admins`, on behalf of
    /// `requester`. Nothing changes until it is approved.
    pub async fn request_change(
        &self,
        gate: &Gate,
        requester: &ApproverId,
        change: &BindingChange,
        reason: Option<String>,
    ) -> Result<ActionStatus, RequestError> {
        let reason = reason
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty())
            .ok_or_else(|| {
                GateError::Invalid("reason: say why, for the approvers and the record".into())
            })?;
        self.validate(change).await?;
        let agent = self.store.agent(HOST_AGENT).await?.ok_or_else(|| {
            GateError::Store(StoreError::Corrupt(format!(
                "the host agent `{HOST_AGENT}` is missing (migration 0007)"
            )))
        })?;
        let previous = self
            .store
            .current_bindings()
            .await?
            .into_iter()
            .find(|b| b.pattern == change.pattern);
        let now = DateTime::from_timestamp_millis(Utc::now().timestamp_millis())
            .expect("now is in range");
        let action = Action {
            id: Uuid::now_v7().to_string(),
            kind: BIND_KIND.into(),
            agent: Principal {
                id: agent.id.clone(),
                attributes: BTreeMap::from([("owner".to_string(), agent.owner.clone())]),
            },
            on_behalf_of: Some(requester.to_string()),
            resource: format!("binding:{}", change.pattern),
            params: serde_json::json!({
                "pattern": change.pattern,
                "sha256": change.sha256,
                "shadow": change.shadow,
                "previous": previous.map(|p| serde_json::json!({"sha256": p.sha256, "shadow": p.shadow})),
            }),
            justification: Some(reason),
            context: BTreeMap::new(),
            requested_at: now,
        };
        let verdict = self.four_eyes_verdict();
        let action_uuid = Uuid::parse_str(&action.id).ok();
        let digest = action.digest();
        let events = vec![
            payload::Submitted {
                action: Cow::Borrowed(&action),
                digest: digest.clone(),
                by: payload::SubmittedBy::Person {
                    requested_by: requester.to_string(),
                },
            }
            .event(
                action_uuid,
                Actor {
                    kind: crate::evidence::ActorKind::Human,
                    id: requester.to_string(),
                },
            ),
            // The route is the host's four-eyes rule, not a plugin's.
            payload::Evaluated::new(&action, &verdict)
                .event(action_uuid, Actor::system("four-eyes")),
        ];
        let decided = Decided {
            request_hash: digest.clone(),
            digest,
            action,
            verdict,
            idempotency_key: None,
            key_hash: None,
        };
        let status = gate.record_decision(&agent, &decided, events).await?;
        tracing::info!(action_id = %status.action_id, requester = %requester, pattern = %change.pattern, "binding change held for policy admins");
        Ok(status)
    }

    fn four_eyes_verdict(&self) -> Verdict {
        let config = &self.four_eyes;
        Verdict {
            plugin: None,
            classification: Classification {
                risk: Risk::High,
                reasons: vec![
                    "a binding change decides every action of the kinds it matches".into(),
                ],
                tags: vec!["policy-change".into()],
            },
            route: Route::RequireApproval(ApprovalRoute {
                groups: vec![POLICY_ADMINS.into()],
                quorum: config.quorum.max(1),
                ttl_seconds: config.ttl_seconds,
                modifiable_params: Vec::new(),
                escalate_to: Vec::new(),
            }),
            failure: None,
            fuel_used: 0,
            duration_us: 0,
            limits: self.evaluator.sandbox().limits().clone(),
            wit_version: WIT_VERSION.into(),
            host_version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

impl Bindings {
    /// Applies every approved binding change not applied yet: normally the
    /// one just approved; after a crash, whatever was left.
    pub async fn apply_approved(&self) {
        let ids = match self
            .store
            .action_ids_of(HOST_AGENT, State::Approved.as_str())
            .await
        {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "could not look for approved binding changes");
                return;
            }
        };
        for id in ids {
            if let Err(e) = self.apply_approval(&id).await {
                tracing::error!(action_id = %id, error = %e, "approved binding change not applied yet; retrying");
            }
        }
    }

    /// Executes one approved `actiongate.bind` action: makes the change
    /// (at most once per action), then records it executed.
    pub async fn apply_approval(&self, action_id: &str) -> Result<(), RequestError> {
        let Some(row) = self.store.action(action_id).await? else {
            return Ok(());
        };
        if row.agent_id != HOST_AGENT || row.state != State::Approved.as_str() {
            return Ok(());
        }
        let row_digest = row.digest.clone();
        let action = ActionRecord::decode(row)?.action;
        if action.kind != BIND_KIND {
            return Ok(());
        }
        let change: BindingChange = serde_json::from_value(serde_json::json!({
            "pattern": action.params["pattern"],
            "sha256": action.params["sha256"],
            "shadow": action.params["shadow"],
        }))
        .map_err(|e| {
            GateError::Store(StoreError::Corrupt(format!(
                "binding change {action_id}: {e}"
            )))
        })?;
        let mut approvers: Vec<String> = Vec::new();
        for review in self.store.reviews(action_id).await? {
            if review.decision == "approve"
                && review.digest == row_digest
                && !approvers.contains(&review.approver)
            {
                approvers.push(review.approver);
            }
        }
        let requester = Actor {
            kind: crate::evidence::ActorKind::Human,
            id: action.on_behalf_of.clone().unwrap_or_default(),
        };
        let applied = self
            .apply(
                &change,
                &requester,
                Source::Approval {
                    action_id,
                    approvers: &approvers,
                },
            )
            .await?;
        let binding = match &applied {
            Applied::Changed(b) => Some(b),
            Applied::Unchanged(b) => b.as_ref(),
        };
        // The host is this action's executor: record the outcome, once.
        let mut guard = self.store.lock_action(action_id).await?;
        let still_approved = self
            .store
            .action(action_id)
            .await?
            .is_some_and(|r| r.state == State::Approved.as_str());
        if !still_approved {
            // Another replica finished it; nothing was written here.
            guard.commit().await?;
            return Ok(());
        }
        let summary = match &applied {
            Applied::Changed(_) => format!("binding {} changed", change.pattern),
            Applied::Unchanged(_) => {
                format!("binding {} already so; nothing changed", change.pattern)
            }
        };
        self.evidence
            .append(
                payload::Executed {
                    digest: row_digest,
                    status: OutcomeStatus::Succeeded.into(),
                    summary,
                    by: payload::ExecutedBy::Host {
                        binding_id: binding.map(|b| b.id),
                        binding_evidence_seq: binding.map(|b| b.evidence_seq),
                    },
                }
                .event(Uuid::parse_str(action_id).ok(), Actor::system("bindings")),
            )
            .await
            .map_err(GateError::from)?;
        guard
            .transition(
                State::Approved.as_str(),
                State::Executed.as_str(),
                &ActionChange::default(),
            )
            .await?;
        guard.commit().await?;
        tracing::info!(action_id, pattern = %change.pattern, approvers = ?approvers, "approved binding change applied");
        Ok(())
    }
}

/// An approved `actiongate.bind` action is the bindings' to execute.
impl WhenApproved for Bindings {
    fn kind(&self) -> &'static str {
        BIND_KIND
    }

    fn execute<'a>(&'a self, action_id: &'a str) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            // If this fails, every replica's sync loop retries it.
            if let Err(e) = self.apply_approval(action_id).await {
                tracing::error!(action_id, error = %e, "approved binding change not applied yet");
            }
        })
    }
}
