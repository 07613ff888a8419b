//! Shadow evaluation: a binding's shadow plugin runs on the same action
//! after the live answer is committed, and its verdict is recorded as
//! `shadow-evaluated`. Never on the response path, never enforced, and
//! never allowed to crowd out live evaluations: a few run at a time, and
//! when too many wait the newest is skipped (and logged).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::action::Action;
use crate::evaluate::Evaluator;
use crate::evidence::payload::{Evaluated, Payload, ShadowEvaluated};
use crate::evidence::{Actor, ActorKind, EvidenceLog};
use crate::sandbox::Plugin;

/// Shadow evaluations waiting or running at most; beyond it they are skipped.
const MAX_QUEUED: usize = 4096;

#[derive(Clone)]
pub struct Shadows {
    evaluator: Arc<Evaluator>,
    evidence: EvidenceLog,
    /// Shadows evaluating at once: a share of the sandbox's instance slots,
    /// so live evaluations always find one.
    running: Arc<Semaphore>,
    queued: Arc<AtomicUsize>,
}

impl Shadows {
    pub fn new(evaluator: Arc<Evaluator>, evidence: EvidenceLog, concurrency: usize) -> Self {
        Shadows {
            evaluator,
            evidence,
            running: Arc::new(Semaphore::new(concurrency.max(1))),
            queued: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Evaluates `action` with `shadow` in the background and records it.
    /// `live_sha256` is the plugin whose answer was enforced.
    pub fn spawn(&self, shadow: Arc<Plugin>, action: Action, live_sha256: String) {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= MAX_QUEUED {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!(action_id = %action.id, shadow = %shadow.sha256, "shadow evaluation skipped: too many waiting");
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let recorded = this.run(shadow, action, live_sha256).await;
            this.queued.fetch_sub(1, Ordering::AcqRel);
            if let Err(e) = recorded {
                tracing::error!(error = %e, "shadow evaluation not recorded");
            }
        });
    }

    async fn run(
        &self,
        shadow: Arc<Plugin>,
        action: Action,
        live_sha256: String,
    ) -> Result<(), crate::evidence::EvidenceError> {
        let _slot = self
            .running
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let evaluator = self.evaluator.clone();
        let (plugin, input) = (shadow.clone(), action.clone());
        let verdict = tokio::task::spawn_blocking(move || evaluator.evaluate_with(&plugin, &input))
            .await
            .expect("evaluation never panics: failures are values");
        let verdict = match verdict {
            Ok(verdict) => verdict,
            Err(busy) => {
                // A shadow is never enforced: when the sandbox is busy it
                // yields to live evaluations and is not recorded.
                tracing::warn!(action_id = %action.id, error = %busy, "shadow evaluation skipped");
                return Ok(());
            }
        };
        // The `evaluated` payload, so a diff compares like with like.
        let event = ShadowEvaluated {
            evaluated: Evaluated::new(&action, &verdict),
            failure: verdict.failure.clone(),
            live_sha256: Some(live_sha256),
        }
        .event(
            Uuid::parse_str(&action.id).ok(),
            Actor {
                kind: ActorKind::Plugin,
                id: shadow.sha256.clone(),
            },
        );
        self.evidence.append(event).await?;
        Ok(())
    }
}
