//! Backtest: runs a candidate plugin on the inputs of recorded decisions and
//! counts how risk and route would change, with example actions. The
//! candidate's verdicts are what the host would enforce (a failure fails
//! closed as configured). Reads only; never records or enforces anything.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::evaluate::{Evaluator, PluginRef};
use crate::sandbox::Plugin;

use super::recorded::{MalformedEvaluation, RecordedEvaluation};

/// Examples kept per transition.
const EXAMPLES: usize = 3;

/// How many decisions went from one value to another, with examples.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Transition {
    pub from: String,
    pub to: String,
    pub count: usize,
    /// Up to three action ids.
    pub examples: Vec<String>,
}

/// Counts of `from -> to` pairs, in a stable order.
#[derive(Clone, Debug, Default)]
pub struct Transitions(BTreeMap<(String, String), Transition>);

impl Transitions {
    pub fn add(&mut self, from: &str, to: &str, action_id: &str) {
        let t = self
            .0
            .entry((from.to_owned(), to.to_owned()))
            .or_insert_with(|| Transition {
                from: from.to_owned(),
                to: to.to_owned(),
                ..Transition::default()
            });
        t.count += 1;
        if t.examples.len() < EXAMPLES && !t.examples.iter().any(|e| e == action_id) {
            t.examples.push(action_id.to_owned());
        }
    }

    pub fn get(&self, from: &str, to: &str) -> usize {
        self.0
            .get(&(from.to_owned(), to.to_owned()))
            .map_or(0, |t| t.count)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Transition> {
        self.0.values()
    }
}

impl Serialize for Transitions {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.values())
    }
}

impl fmt::Display for Transitions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for t in self.iter() {
            let mark = if t.from == t.to { " " } else { "*" };
            writeln!(
                f,
                " {mark} {} -> {}: {} (e.g. {})",
                t.from,
                t.to,
                t.count,
                t.examples.join(", ")
            )?;
        }
        Ok(())
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub candidate: PluginRef,
    /// Recorded decisions re-run.
    pub decisions: usize,
    /// Decisions whose risk or route would change.
    pub changed: usize,
    /// Decisions on which the candidate failed (and would fail closed).
    pub candidate_failures: usize,
    pub risk: Transitions,
    pub route: Transitions,
    #[serde(skip)]
    pub malformed: Vec<MalformedEvaluation>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.candidate;
        writeln!(
            f,
            "backtest of {} {} (sha256:{}) on {} recorded decisions",
            c.name, c.version, c.sha256, self.decisions
        )?;
        writeln!(
            f,
            "changed: {}, unchanged: {}, candidate failed: {}",
            self.changed,
            self.decisions - self.changed,
            self.candidate_failures
        )?;
        writeln!(f, "route (recorded -> candidate; * marks a change):")?;
        write!(f, "{}", self.route)?;
        writeln!(f, "risk (recorded -> candidate):")?;
        write!(f, "{}", self.risk)?;
        for m in &self.malformed {
            writeln!(f, "skipped {m}")?;
        }
        Ok(())
    }
}

/// Runs `candidate` on each recorded input and tallies the transitions.
/// The host's own kinds (`actiongate.bind`) are decided by the host, never
/// by a plugin, so they are left out.
pub fn backtest(
    evaluator: &Evaluator,
    candidate: &Plugin,
    recorded: &[RecordedEvaluation],
    malformed: Vec<MalformedEvaluation>,
) -> Result<Report, crate::sandbox::Busy> {
    let recorded: Vec<&RecordedEvaluation> = recorded
        .iter()
        .filter(|r| !r.input.kind.starts_with(crate::gate::HOST_KINDS))
        .collect();
    let mut report = Report {
        candidate: PluginRef {
            sha256: candidate.sha256.clone(),
            name: candidate.info.name.clone(),
            version: candidate.info.version.clone(),
            wit_version: candidate.wit_version.clone(),
        },
        decisions: recorded.len(),
        changed: 0,
        candidate_failures: 0,
        risk: Transitions::default(),
        route: Transitions::default(),
        malformed,
    };
    for r in recorded {
        let v = evaluator.evaluate_with(candidate, &r.input)?;
        let (risk_from, risk_to) = (
            r.output.classification.risk.as_str(),
            v.classification.risk.as_str(),
        );
        let (route_from, route_to) = (r.output.route.name(), v.route.name());
        report.risk.add(risk_from, risk_to, &r.action_id);
        report.route.add(route_from, route_to, &r.action_id);
        if risk_from != risk_to || route_from != route_to {
            report.changed += 1;
        }
        if v.failure.is_some() {
            report.candidate_failures += 1;
        }
    }
    Ok(report)
}
