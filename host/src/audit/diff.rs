//! Shadow diff: pairs each recorded `shadow-evaluated` decision with the
//! live `evaluated` decision on the same input and lists where they disagree
//! (risk or route). Reads only.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::recorded::{MalformedEvaluation, RecordedEvaluation};

/// One decision as the diff shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Side {
    pub seq: u64,
    pub plugin: String,
    pub risk: String,
    pub route: String,
}

impl Side {
    fn of(r: &RecordedEvaluation) -> Side {
        Side {
            seq: r.seq,
            plugin: r.plugin.as_ref().map_or_else(
                || "none".to_owned(),
                |p| format!("{} {}", p.name, p.version),
            ),
            risk: r.output.classification.risk.as_str().to_owned(),
            route: r.output.route.name().to_owned(),
        }
    }
}

/// An action on which the shadow plugin decided otherwise than the live one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Disagreement {
    pub action_id: String,
    pub kind: String,
    pub live: Side,
    pub shadow: Side,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// Shadow decisions paired with a live one.
    pub compared: usize,
    pub disagreements: Vec<Disagreement>,
    /// Shadow decisions with no live decision on the same input: (seq, action id).
    pub unpaired: Vec<(u64, String)>,
    #[serde(skip)]
    pub malformed: Vec<MalformedEvaluation>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "compared: {}, disagree: {}, unpaired: {}",
            self.compared,
            self.disagreements.len(),
            self.unpaired.len()
        )?;
        for d in &self.disagreements {
            writeln!(
                f,
                "{} {}: live {} / {} (seq {}, {}), shadow {} / {} (seq {}, {})",
                d.action_id,
                d.kind,
                d.live.risk,
                d.live.route,
                d.live.seq,
                d.live.plugin,
                d.shadow.risk,
                d.shadow.route,
                d.shadow.seq,
                d.shadow.plugin
            )?;
        }
        for (seq, action) in &self.unpaired {
            writeln!(f, "unpaired: shadow seq {seq} (action {action}) has no live decision on the same input")?;
        }
        for m in &self.malformed {
            writeln!(f, "skipped {m}")?;
        }
        Ok(())
    }
}

/// Pairs shadows with the live decisions on the same action and input
/// digest (the latest such live decision) and lists the disagreements.
pub fn diff(live: &[RecordedEvaluation], shadows: &[RecordedEvaluation]) -> Report {
    let mut by_input: BTreeMap<(&str, String), &RecordedEvaluation> = BTreeMap::new();
    for l in live {
        // Later live evaluations of the same input replace earlier ones.
        by_input.insert((l.action_id.as_str(), l.input.digest()), l);
    }
    let mut report = Report::default();
    for s in shadows {
        let Some(l) = by_input.get(&(s.action_id.as_str(), s.input.digest())) else {
            report.unpaired.push((s.seq, s.action_id.clone()));
            continue;
        };
        report.compared += 1;
        let (live, shadow) = (Side::of(l), Side::of(s));
        if live.risk != shadow.risk || live.route != shadow.route {
            report.disagreements.push(Disagreement {
                action_id: s.action_id.clone(),
                kind: s.input.kind.clone(),
                live,
                shadow,
            });
        }
    }
    report
}
