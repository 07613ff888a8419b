//! Replay: re-runs recorded decisions on the plugin bytes kept by sha256, in
//! the same deterministic sandbox under the recorded limits, and compares
//! with the recorded output. Reads only; never records or changes anything.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::directory::Directory;

use crate::evaluate::PluginRef;
use crate::sandbox::{sha256_hex, Decision, Limits, PluginFailure, Sandbox, SandboxConfig};
use crate::store::{Store, StoreError};

use super::recorded::{MalformedEvaluation, RecordedEvaluation, RecordedOutput};

/// Replay sandboxes run one evaluation at a time.
const REPLAY_INSTANCES: u32 = 4;

/// One field where the replay disagrees with the record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    /// `classification.risk`, `classification.reasons`, `classification.tags`, `route`, `failure`.
    pub field: &'static str,
    pub recorded: String,
    pub replayed: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: recorded {}, replayed {}",
            self.field, self.recorded, self.replayed
        )
    }
}

/// How one replay went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Same classification and route, or the same failure kind.
    Match,
    Mismatch(Vec<Difference>),
    /// No bytes are kept under the recorded sha256.
    MissingPlugin,
    /// The bytes kept under the recorded sha256 hash to something else.
    HashMismatch {
        actual: String,
    },
    /// No plugin decided (nothing was bound): there is nothing to re-run.
    NoPlugin,
    /// The sandbox would not start under the recorded limits.
    Sandbox(String),
}

/// One recorded evaluation and its replay.
#[derive(Clone, Debug)]
pub struct Replayed {
    pub seq: u64,
    pub action_id: String,
    pub plugin: Option<PluginRef>,
    pub outcome: Outcome,
    /// Fuel (recorded, replayed) when both are known and they differ: not a
    /// mismatch, since another wasmtime may count differently, but worth a look.
    pub fuel_drift: Option<(u64, u64)>,
}

impl Replayed {
    /// Whether this replay confirms the record (or had nothing to re-run).
    pub fn is_ok(&self) -> bool {
        matches!(self.outcome, Outcome::Match | Outcome::NoPlugin)
    }
}

impl fmt::Display for Replayed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plugin = self.plugin.as_ref().map_or_else(
            || "no plugin".to_owned(),
            |p| format!("{} {} sha256:{}", p.name, p.version, p.sha256),
        );
        let head = format!("seq {} action {} ({plugin})", self.seq, self.action_id);
        match &self.outcome {
            Outcome::Match => write!(f, "MATCH    {head}")?,
            Outcome::NoPlugin => {
                write!(f, "SKIPPED  {head}: no plugin decided, nothing to re-run")?
            }
            Outcome::MissingPlugin => write!(
                f,
                "MISSING  {head}: no plugin bytes are stored under this sha256"
            )?,
            Outcome::HashMismatch { actual } => write!(
                f,
                "MISMATCH {head}: the bytes stored under this sha256 hash to {actual}"
            )?,
            Outcome::Sandbox(e) => write!(f, "ERROR    {head}: {e}")?,
            Outcome::Mismatch(diffs) => {
                write!(f, "MISMATCH {head}")?;
                for d in diffs {
                    write!(f, "\n           {d}")?;
                }
            }
        }
        if let Some((recorded, replayed)) = self.fuel_drift {
            write!(
                f,
                "\n           note: fuel used: recorded {recorded}, replayed {replayed}"
            )?;
        }
        Ok(())
    }
}

/// Every replay of one run, with the evaluation events that did not parse.
#[derive(Debug, Default)]
pub struct Report {
    pub replayed: Vec<Replayed>,
    pub malformed: Vec<MalformedEvaluation>,
}

impl Report {
    pub fn is_ok(&self) -> bool {
        self.malformed.is_empty() && self.replayed.iter().all(Replayed::is_ok)
    }

    fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.replayed.iter().filter(|r| f(&r.outcome)).count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", if self.is_ok() { "OK" } else { "FAIL" })?;
        for r in &self.replayed {
            writeln!(f, "{r}")?;
        }
        for m in &self.malformed {
            writeln!(f, "MALFORMED {m}")?;
        }
        writeln!(
            f,
            "replayed: {}, match: {}, mismatch: {}, missing plugin: {}, skipped: {}, malformed: {}",
            self.replayed.len(),
            self.count(|o| *o == Outcome::Match),
            self.count(|o| matches!(
                o,
                Outcome::Mismatch(_) | Outcome::HashMismatch { .. } | Outcome::Sandbox(_)
            )),
            self.count(|o| *o == Outcome::MissingPlugin),
            self.count(|o| *o == Outcome::NoPlugin),
            self.malformed.len(),
        )
    }
}

/// Compares a recorded output with what the plugin does now. A recorded
/// fail-closed evaluation matches a replay that fails the same way.
pub fn compare(
    recorded: &RecordedEvaluation,
    replayed: &Result<Decision, PluginFailure>,
) -> Vec<Difference> {
    let mut diffs = Vec::new();
    match (&recorded.failure, replayed) {
        (Some(kind), Err(failure)) if kind == failure.kind() => {}
        (Some(kind), Err(failure)) => diffs.push(Difference {
            field: "failure",
            recorded: kind.clone(),
            replayed: format!("{} ({failure})", failure.kind()),
        }),
        (Some(kind), Ok(d)) => diffs.push(Difference {
            field: "failure",
            recorded: kind.clone(),
            replayed: format!(
                "none (decided {} / {})",
                d.classification.risk.as_str(),
                d.route.name()
            ),
        }),
        (None, Err(failure)) => diffs.push(Difference {
            field: "failure",
            recorded: "none".into(),
            replayed: format!("{} ({failure})", failure.kind()),
        }),
        (None, Ok(d)) => diffs = compare_outputs(&recorded.output, d),
    }
    diffs
}

/// Field-by-field differences between two decisions.
pub fn compare_outputs(recorded: &RecordedOutput, replayed: &Decision) -> Vec<Difference> {
    let (a, b) = (&recorded.classification, &replayed.classification);
    let mut diffs = Vec::new();
    let mut check = |field, x: String, y: String| {
        if x != y {
            diffs.push(Difference {
                field,
                recorded: x,
                replayed: y,
            });
        }
    };
    check(
        "classification.risk",
        a.risk.as_str().into(),
        b.risk.as_str().into(),
    );
    check("classification.reasons", json(&a.reasons), json(&b.reasons));
    check("classification.tags", json(&a.tags), json(&b.tags));
    check("route", json(&recorded.route), json(&replayed.route));
    diffs
}

/// Compact JSON, for messages.
fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| format!("<{e}>"))
}

/// Re-runs recorded evaluations on given plugin bytes. Holds one sandbox per
/// distinct set of recorded limits.
pub struct Replayer {
    base: SandboxConfig,
    /// Routes are checked against it as the service checks them.
    directory: Option<Arc<Directory>>,
    sandboxes: Vec<(Limits, Sandbox)>,
    /// Bytes by the sha256 they are kept under; `None`: none are kept.
    plugins: HashMap<String, Option<Vec<u8>>>,
}

impl Replayer {
    /// `base` gives the compile cache and the limits for evaluations that
    /// recorded none.
    pub fn new(base: SandboxConfig) -> Self {
        Replayer {
            base,
            directory: None,
            sandboxes: Vec::new(),
            plugins: HashMap::new(),
        }
    }

    /// Checks replayed routes against `directory`, as the service does; a
    /// replay without one takes routes as the plugin gave them.
    pub fn with_directory(mut self, directory: Option<Arc<Directory>>) -> Self {
        self.directory = directory;
        self
    }

    /// Makes the bytes kept under `sha256` available (or records that none are).
    pub fn insert_plugin(&mut self, sha256: &str, bytes: Option<Vec<u8>>) {
        self.plugins.insert(sha256.to_owned(), bytes);
    }

    /// The plugin sha256s `recorded` needs that this replayer has not been given.
    pub fn wanted<'a>(&self, recorded: &'a [RecordedEvaluation]) -> Vec<&'a str> {
        let mut want: Vec<&str> = recorded
            .iter()
            .filter_map(|r| r.plugin.as_ref().map(|p| p.sha256.as_str()))
            .filter(|s| !self.plugins.contains_key(*s))
            .collect();
        want.sort_unstable();
        want.dedup();
        want
    }

    /// Replays one recorded evaluation.
    pub fn replay(&mut self, recorded: &RecordedEvaluation) -> Replayed {
        let mut replayed = Replayed {
            seq: recorded.seq,
            action_id: recorded.action_id.clone(),
            plugin: recorded.plugin.clone(),
            outcome: Outcome::NoPlugin,
            fuel_drift: None,
        };
        let Some(plugin) = &recorded.plugin else {
            return replayed;
        };
        let Some(Some(bytes)) = self.plugins.get(&plugin.sha256) else {
            replayed.outcome = Outcome::MissingPlugin;
            return replayed;
        };
        let actual = sha256_hex(bytes);
        if !actual.eq_ignore_ascii_case(&plugin.sha256) {
            replayed.outcome = Outcome::HashMismatch { actual };
            return replayed;
        }
        let bytes = bytes.clone();
        let limits = recorded
            .limits
            .clone()
            .unwrap_or_else(|| self.base.limits.clone());
        let sandbox = match self.sandbox(limits) {
            Ok(s) => s,
            Err(e) => {
                replayed.outcome = Outcome::Sandbox(e);
                return replayed;
            }
        };
        let (result, fuel) = match sandbox.load(&bytes, Some(&plugin.sha256)) {
            Ok(p) => match sandbox.evaluate(&p, &recorded.input) {
                Ok(evaluation) => (evaluation.outcome, Some(evaluation.fuel_used)),
                Err(busy) => {
                    replayed.outcome = Outcome::Sandbox(busy.to_string());
                    return replayed;
                }
            },
            Err(failure) => (Err(failure), None),
        };
        let result =
            crate::route_check::checked(result, self.directory.as_deref(), &recorded.input);
        let diffs = compare(recorded, &result);
        replayed.outcome = if diffs.is_empty() {
            Outcome::Match
        } else {
            Outcome::Mismatch(diffs)
        };
        if let (Some(a), Some(b)) = (recorded.fuel_used, fuel) {
            if a != b {
                replayed.fuel_drift = Some((a, b));
            }
        }
        replayed
    }

    /// Replays every evaluation in order.
    pub fn replay_all(&mut self, recorded: &[RecordedEvaluation]) -> Vec<Replayed> {
        recorded.iter().map(|r| self.replay(r)).collect()
    }

    fn sandbox(&mut self, limits: Limits) -> Result<&Sandbox, String> {
        let i = match self.sandboxes.iter().position(|(l, _)| *l == limits) {
            Some(i) => i,
            None => {
                // The recorded limits are what the plugin ran under, its
                // interpreter's and its own included: nothing is laid over them.
                let config = SandboxConfig {
                    limits: limits.clone(),
                    max_instances: REPLAY_INSTANCES,
                    interpreter_limits: Default::default(),
                    plugin_limits: Default::default(),
                    ..self.base.clone()
                };
                let sandbox = Sandbox::new(config)
                    .map_err(|e| format!("cannot start a sandbox with the recorded limits: {e}"))?;
                self.sandboxes.push((limits, sandbox));
                self.sandboxes.len() - 1
            }
        };
        Ok(&self.sandboxes[i].1)
    }
}

/// Fetches the plugin bytes `recorded` needs from `store` into `replayer`.
pub async fn fetch_plugins(
    store: &Store,
    replayer: &mut Replayer,
    recorded: &[RecordedEvaluation],
) -> Result<(), StoreError> {
    let wanted: Vec<String> = replayer
        .wanted(recorded)
        .into_iter()
        .map(str::to_owned)
        .collect();
    for sha in wanted {
        let bytes = store.plugin(&sha).await?.map(|p| p.bytes);
        replayer.insert_plugin(&sha, bytes);
    }
    Ok(())
}

/// Replays `recorded` against the plugin bytes kept in `store`.
pub async fn replay_from_store(
    store: &Store,
    base: SandboxConfig,
    directory: Option<Arc<Directory>>,
    recorded: Vec<RecordedEvaluation>,
    malformed: Vec<MalformedEvaluation>,
) -> Result<Report, StoreError> {
    let mut replayer = Replayer::new(base).with_directory(directory);
    fetch_plugins(store, &mut replayer, &recorded).await?;
    // Compiling and running plugins is CPU work: keep it off the async workers.
    let replayed = tokio::task::spawn_blocking(move || replayer.replay_all(&recorded))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    Ok(Report {
        replayed,
        malformed,
    })
}
