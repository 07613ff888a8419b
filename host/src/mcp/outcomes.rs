//! Outcome records of the runs the gateway performs, written after the
//! caller has its result. Never holds back a decision or a claim: both
//! commit before the run; only the after-the-fact `executed` evidence is
//! recorded here, and none is dropped silently.
//!
//! Why off the response path: a run's outcome is a report of something that
//! already happened, like the outcome an API agent reports after the fact;
//! waiting for its durable commit (about a millisecond, an fsync) before
//! answering protects nothing. The run cannot repeat meanwhile: its grant
//! was claimed durably before it ran, and identical retries get its result
//! from `call::Calls` until it is recorded and after. Graceful shutdown
//! drains every record in flight (`settle`); one that fails is logged with
//! the action and counted (`actiongate_outcome_record_failures_total`), and
//! the action stays in its allowed or approved state with its grant spent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::execution::{ClaimedRun, RunReport};
use crate::gate::Gate;
use crate::store::AgentRow;

/// Records in flight, counted.
pub struct Outcomes {
    in_flight: watch::Sender<usize>,
}

impl Default for Outcomes {
    fn default() -> Self {
        Outcomes {
            in_flight: watch::channel(0).0,
        }
    }
}

impl Outcomes {
    /// Records `run`'s outcome in the background.
    pub fn record(
        &self,
        gate: Arc<Gate>,
        agent: Arc<AgentRow>,
        run: ClaimedRun,
        report: RunReport,
    ) {
        self.in_flight.send_modify(|n| *n += 1);
        let in_flight = InFlight(self.in_flight.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            match gate.record_run(&agent, &run, report).await {
                Ok(()) => {
                    tracing::debug!(action_id = %run.id, record_ms = started.elapsed().as_secs_f64() * 1e3, "run recorded")
                }
                Err(e) => {
                    gate.metrics().outcome_record_failed();
                    tracing::error!(action_id = %run.id, agent = %agent.id, error = %e, "a run's outcome could not be recorded; it ran once, its grant is spent, and its action stays unfinished");
                }
            }
            drop(in_flight);
        });
    }

    /// Waits until no record is in flight, up to `limit`; false if some
    /// still were then.
    pub async fn settle(&self, limit: Duration) -> bool {
        let mut rx = self.in_flight.subscribe();
        let settled = tokio::time::timeout(limit, rx.wait_for(|n| *n == 0)).await;
        settled.is_ok()
    }

    /// Records in flight now.
    pub fn in_flight(&self) -> usize {
        *self.in_flight.borrow()
    }
}

/// One record in flight; counted out when its task ends, however it ends.
struct InFlight(watch::Sender<usize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}
