//! Integration: one leader (advisory lock) extends the stored Merkle tree over
//! committed events and signs a checkpoint every N events or T seconds.
//! Never signs a tree it has not recomputed from the leaves and frontier.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{watch, Notify};

use super::checkpoint::LogKey;
use super::merkle::{leaf_hash, TreeBuilder};
use super::EvidenceError;
use crate::store::{CheckpointRow, Leader, Store};

/// Most leaves integrated under one checkpoint, bounding memory per step.
const MAX_STEP: u64 = 1 << 16;

pub(super) struct Integrator {
    pub store: Store,
    pub key: Arc<LogKey>,
    pub every_events: u64,
    pub every: Duration,
    pub retry: Duration,
    pub wake: Arc<Notify>,
    pub integrated: watch::Sender<u64>,
    pub is_leader: Arc<AtomicBool>,
    /// Set on shutdown: sign what is pending now, whatever the timer says.
    pub sign_now: Arc<AtomicBool>,
}

impl Integrator {
    pub async fn run(self) {
        let mut contender = self.store.contender();
        loop {
            match contender.try_lead().await {
                Ok(Some(leader)) => {
                    tracing::info!(pid = std::process::id(), "became the evidence integrator");
                    self.is_leader.store(true, Ordering::SeqCst);
                    let e = self.lead(leader).await;
                    self.is_leader.store(false, Ordering::SeqCst);
                    tracing::warn!(error = %e, "stepped down as evidence integrator");
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "cannot contend for integrator"),
            }
            tokio::time::sleep(self.retry).await;
        }
    }

    /// Integrates until an error; the leadership ends with it.
    async fn lead(&self, mut leader: Leader) -> EvidenceError {
        let poll = self.every.min(Duration::from_secs(1));
        let mut last_signed: Option<Instant> = None;
        loop {
            match self.step(&mut leader, &mut last_signed).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => return e,
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// One round; true if more is pending right now.
    async fn step(
        &self,
        leader: &mut Leader,
        last_signed: &mut Option<Instant>,
    ) -> Result<bool, EvidenceError> {
        let latest = leader.latest_checkpoint().await?;
        let size = latest.as_ref().map_or(0, |c| c.size);
        let _ = self.integrated.send_if_modified(|v| {
            let changed = *v != size;
            *v = size;
            changed
        });
        let count = leader.event_count().await?;
        let pending = count.saturating_sub(size);
        let forced = self.sign_now.swap(false, Ordering::SeqCst);
        let time_due = forced || last_signed.is_none_or(|t| t.elapsed() >= self.every);
        let due = latest.is_none() || pending >= self.every_events || (pending > 0 && time_due);
        if !due {
            return Ok(false);
        }
        let to = count.min(size + MAX_STEP);
        self.integrate(leader, latest.as_ref(), to).await?;
        *last_signed = Some(Instant::now());
        self.integrated.send_replace(to);
        Ok(to < count)
    }

    async fn integrate(
        &self,
        leader: &mut Leader,
        latest: Option<&CheckpointRow>,
        to: u64,
    ) -> Result<(), EvidenceError> {
        let from = latest.map_or(0, |c| c.size);
        let frontier = leader
            .tree_hashes(&TreeBuilder::frontier_indexes(from))
            .await?;
        let mut tree = TreeBuilder::resume(from, frontier)?;
        if let Some(cp) = latest {
            if tree.root()? != cp.root_hash {
                return Err(EvidenceError::Corrupt(format!(
                    "stored tree hashes do not match the checkpoint at size {from}"
                )));
            }
        }
        let rows = leader.leaves(from, to).await?;
        for (want, row) in (from..to).zip(rows.iter()) {
            if row.seq != want {
                return Err(EvidenceError::Corrupt(format!("seq {want} is missing")));
            }
            if leaf_hash(&row.canonical) != row.leaf_hash {
                return Err(EvidenceError::Corrupt(format!(
                    "leaf {want} does not match its hash"
                )));
            }
            tree.push(row.leaf_hash)?;
        }
        if tree.size() != to {
            return Err(EvidenceError::Corrupt(format!(
                "seq {} is missing",
                tree.size()
            )));
        }
        let root = tree.root()?;
        let note = self
            .key
            .sign(to, root)
            .map_err(|e| EvidenceError::Key(e.to_string()))?;
        let (first_idx, hashes) = tree.appended();
        let cp = CheckpointRow {
            size: to,
            root_hash: root,
            note,
            signed_at: Utc::now(),
        };
        leader.integrate(first_idx, &hashes, &cp).await?;
        tracing::info!(size = to, added = to - from, "signed evidence checkpoint");
        Ok(())
    }
}
