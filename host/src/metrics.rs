//! Prometheus metrics: decisions by outcome, evaluation latency, plugin
//! failures, prepared sandbox instances. Counts only; never labels with
//! ids, keys or params.

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::action::State;
use crate::evaluate::Verdict;
use crate::sandbox::PreparedCounts;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Failure {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Found {
    found: &'static str,
}

#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    decisions: Family<Outcome, Counter>,
    failures: Family<Failure, Counter>,
    evaluation_seconds: Histogram,
    pending: Gauge,
    outcome_record_failures: Counter,
    outcomes_unrecorded: Counter,
    prepared: Family<Found, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let decisions = Family::<Outcome, Counter>::default();
        let failures = Family::<Failure, Counter>::default();
        // 10 us to ~80 ms.
        let evaluation_seconds = Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(1e-5, 2.0, 14),
        );
        let pending = Gauge::default();
        let outcome_record_failures = Counter::default();
        let outcomes_unrecorded = Counter::default();
        let prepared = Family::<Found, Counter>::default();
        let mut registry = Registry::with_prefix("actiongate");
        registry.register(
            "decisions",
            "Actions decided, by outcome",
            decisions.clone(),
        );
        registry.register(
            "plugin_failures",
            "Plugin evaluations that failed closed, by failure kind",
            failures.clone(),
        );
        registry.register(
            "evaluation_seconds",
            "Time to evaluate one action in the sandbox",
            evaluation_seconds.clone(),
        );
        registry.register(
            "pending_approvals",
            "Actions waiting for approval",
            pending.clone(),
        );
        registry.register(
            "outcome_record_failures",
            "Runs by the host (MCP gateway) whose outcome could not be recorded",
            outcome_record_failures.clone(),
        );
        registry.register(
            "outcomes_unrecorded",
            "Spent grants with no outcome recorded after [grants] unrecorded_after_seconds, recorded as executed with status unknown",
            outcomes_unrecorded.clone(),
        );
        registry.register(
            "prepared_instances",
            "Evaluations of interpreter (Python) plugins, by whether an instance prepared ahead was ready (found=\"ready\") or one was made for the action (found=\"none\")",
            prepared.clone(),
        );
        Metrics {
            registry: Arc::new(Mutex::new(registry)),
            decisions,
            failures,
            evaluation_seconds,
            pending,
            outcome_record_failures,
            outcomes_unrecorded,
            prepared,
        }
    }
}

impl Metrics {
    pub fn evaluated(&self, verdict: &Verdict) {
        self.evaluation_seconds
            .observe(verdict.duration_us as f64 / 1e6);
        if let Some(failure) = &verdict.failure {
            self.failures
                .get_or_create(&Failure {
                    kind: failure.kind().into(),
                })
                .inc();
        }
    }

    pub fn decided(&self, state: State) {
        self.decisions
            .get_or_create(&Outcome {
                outcome: state.as_str().into(),
            })
            .inc();
    }

    /// A run's outcome that was recorded off the response path failed.
    pub fn outcome_record_failed(&self) {
        self.outcome_record_failures.inc();
    }

    /// A spent grant's outcome was recorded as unknown.
    pub fn outcome_unrecorded(&self) {
        self.outcomes_unrecorded.inc();
    }

    /// The text exposition, with the pending count and the sandbox's
    /// prepared-instance counts read just now.
    pub fn render(&self, pending: i64, prepared: PreparedCounts) -> String {
        self.pending.set(pending);
        for (found, total) in [("ready", prepared.taken), ("none", prepared.missed)] {
            self.prepared
                .get_or_create(&Found { found })
                .inner()
                .store(total, std::sync::atomic::Ordering::Relaxed);
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry.lock().unwrap())
            .expect("writing to a String");
        text
    }
}
