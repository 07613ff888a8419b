//! Evaluation: find the plugin bound to an action's kind, run it in the
//! sandbox, and turn any failure into the fail-closed route. Decides, but
//! never records or announces: the caller commits the evidence first.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::action::{Action, ApprovalRoute, Classification, KindError, KindPattern, Risk, Route};
use crate::directory::Directory;
use crate::sandbox::{
    Busy, Decision, Evaluation, Limits, Plugin, PluginFailure, Sandbox, WIT_VERSION,
};

/// One binding: action kinds matching `pattern` go to the plugin `sha256`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// An exact kind (`db.export`) or a glob (`db.*`, `*`).
    pub pattern: String,
    pub sha256: String,
    /// Evaluated and recorded beside the live plugin, never enforced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<String>,
}

/// What happens when a plugin fails or no plugin is bound.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case", deny_unknown_fields)]
pub enum FailClosed {
    /// Refuse the action.
    #[default]
    Deny,
    /// Hold it for the break-glass group.
    BreakGlass {
        group: String,
        quorum: u32,
        ttl_seconds: u32,
        /// Groups told (and allowed to review) if nobody decides by half the TTL.
        #[serde(default)]
        escalate_to: Vec<String>,
    },
}

impl FailClosed {
    /// The break-glass hold a failure takes, if it is not simply denied.
    pub fn hold(&self) -> Option<ApprovalRoute> {
        match self {
            FailClosed::Deny => None,
            FailClosed::BreakGlass {
                group,
                quorum,
                ttl_seconds,
                escalate_to,
            } => Some(ApprovalRoute {
                groups: vec![group.clone()],
                quorum: *quorum,
                ttl_seconds: *ttl_seconds,
                modifiable_params: Vec::new(),
                escalate_to: escalate_to.clone(),
            }),
        }
    }
}

/// Which plugin decided, as recorded in evidence and carried in grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginRef {
    pub sha256: String,
    pub name: String,
    pub version: String,
    pub wit_version: String,
}

/// The host's answer for one action, with everything evidence needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verdict {
    /// The plugin that decided; `None` when no plugin is bound or it would not load.
    pub plugin: Option<PluginRef>,
    pub classification: Classification,
    /// The route the host enforces (the fail-closed one after a failure).
    pub route: Route,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<PluginFailure>,
    pub fuel_used: u64,
    pub duration_us: u64,
    pub limits: Limits,
    pub wit_version: String,
    pub host_version: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BindingError {
    #[error("invalid kind pattern {pattern:?}: {reason}")]
    Pattern { pattern: String, reason: String },
    #[error("invalid kind pattern: {0}")]
    Kind(#[from] KindError),
    #[error("binding {pattern:?} names plugin {sha256}, which is not registered")]
    UnknownPlugin { pattern: String, sha256: String },
    #[error(transparent)]
    Plugin(#[from] PluginFailure),
}

/// Bindings plus the loaded plugins they name.
pub struct Evaluator {
    sandbox: Arc<Sandbox>,
    fail_closed: FailClosed,
    /// Routes are checked against it (`route_check`); without one they are
    /// taken as the plugin gave them (offline tools with no config).
    directory: Option<Arc<Directory>>,
    plugins: RwLock<HashMap<String, Arc<Plugin>>>,
    bindings: RwLock<Vec<(Binding, globset::GlobMatcher)>>,
}

impl Evaluator {
    pub fn new(sandbox: Arc<Sandbox>, fail_closed: FailClosed) -> Self {
        Evaluator {
            sandbox,
            fail_closed,
            directory: None,
            plugins: RwLock::new(HashMap::new()),
            bindings: RwLock::new(Vec::new()),
        }
    }

    /// Checks every route against `directory`: one nobody in it can answer
    /// is an invalid output, and fails closed.
    pub fn with_directory(mut self, directory: Arc<Directory>) -> Self {
        self.directory = Some(directory);
        self
    }

    pub fn directory(&self) -> Option<&Arc<Directory>> {
        self.directory.as_ref()
    }

    pub fn sandbox(&self) -> &Arc<Sandbox> {
        &self.sandbox
    }

    /// Loads a plugin so bindings may name it; returns it (with its sha256).
    /// (The service admits plugins through `registry::register`, which also
    /// stores their bytes; this is for tests and offline tools.)
    pub fn register(&self, wasm: &[u8]) -> Result<Arc<Plugin>, PluginFailure> {
        let plugin = self.sandbox.load(wasm, None)?;
        self.insert(plugin.clone());
        Ok(plugin)
    }

    /// Makes a loaded plugin available to bindings.
    pub fn insert(&self, plugin: Arc<Plugin>) {
        self.plugins
            .write()
            .unwrap()
            .insert(plugin.sha256.clone(), plugin);
    }

    pub fn plugin(&self, sha256: &str) -> Option<Arc<Plugin>> {
        self.plugins.read().unwrap().get(sha256).cloned()
    }

    /// Adds or replaces the binding for `binding.pattern`.
    pub fn bind(&self, binding: Binding) -> Result<(), BindingError> {
        for sha in std::iter::once(&binding.sha256).chain(binding.shadow.as_ref()) {
            if self.plugin(sha).is_none() {
                return Err(BindingError::UnknownPlugin {
                    pattern: binding.pattern.clone(),
                    sha256: sha.clone(),
                });
            }
        }
        let matcher = compile_pattern(&binding.pattern)?;
        let mut bindings = self.bindings.write().unwrap();
        bindings.retain(|(b, _)| b.pattern != binding.pattern);
        bindings.push((binding, matcher));
        Ok(())
    }

    /// Replaces every binding at once (the bindings store's view). A
    /// binding whose plugin is not loaded stays: it fails closed when used.
    pub fn replace_bindings(&self, bindings: Vec<Binding>) -> Result<(), BindingError> {
        let compiled = bindings
            .into_iter()
            .map(|b| compile_pattern(&b.pattern).map(|m| (b, m)))
            .collect::<Result<Vec<_>, _>>()?;
        *self.bindings.write().unwrap() = compiled;
        Ok(())
    }

    pub fn bindings(&self) -> Vec<Binding> {
        self.bindings
            .read()
            .unwrap()
            .iter()
            .map(|(b, _)| b.clone())
            .collect()
    }

    /// The binding that governs `kind`: an exact pattern first, then the
    /// glob with the most literal characters.
    pub fn binding_for(&self, kind: &str) -> Option<Binding> {
        let bindings = self.bindings.read().unwrap();
        bindings
            .iter()
            .filter(|(_, m)| m.is_match(kind))
            .max_by_key(|(b, _)| specificity(&b.pattern))
            .map(|(b, _)| b.clone())
    }

    /// Decides `action`. A missing or failing plugin yields the fail-closed
    /// route with the failure attached; only a busy host (no instance slot
    /// came free in time) decides nothing.
    pub fn evaluate(&self, action: &Action) -> Result<Verdict, Busy> {
        Ok(self.evaluate_bound(action)?.0)
    }

    /// Decides `action` like `evaluate`, and also returns the shadow plugin
    /// of the binding that decided, if it has one (loaded).
    pub fn evaluate_bound(&self, action: &Action) -> Result<(Verdict, Option<Arc<Plugin>>), Busy> {
        let (plugin, shadow) = self.bound(action);
        let verdict = match plugin {
            Ok(plugin) => self.evaluate_with(&plugin, action)?,
            Err(failure) => self.fail_closed(None, failure, 0, Duration::ZERO),
        };
        Ok((verdict, shadow))
    }

    /// `evaluate_bound` for an async worker (`Sandbox::evaluate_inline`):
    /// `None` when the plugin must run where blocking is fine.
    pub fn evaluate_bound_inline(&self, action: &Action) -> Option<(Verdict, Option<Arc<Plugin>>)> {
        let (plugin, shadow) = self.bound(action);
        let verdict = match plugin {
            Ok(plugin) => {
                let evaluation = self.sandbox.evaluate_inline(&plugin, action)?;
                self.verdict(&plugin, action, evaluation)
            }
            Err(failure) => self.fail_closed(None, failure, 0, Duration::ZERO),
        };
        Some((verdict, shadow))
    }

    /// The plugin bound to `action`'s kind (or why there is none to run),
    /// and the binding's shadow.
    fn bound(&self, action: &Action) -> (Result<Arc<Plugin>, PluginFailure>, Option<Arc<Plugin>>) {
        let Some(binding) = self.binding_for(&action.kind) else {
            let failure = PluginFailure::Load {
                reason: format!("no plugin is bound to kind {}", action.kind),
            };
            return (Err(failure), None);
        };
        let shadow = binding.shadow.as_deref().and_then(|sha| self.plugin(sha));
        let plugin = self
            .plugin(&binding.sha256)
            .ok_or_else(|| PluginFailure::Load {
                reason: format!("bound plugin {} is not registered", binding.sha256),
            });
        (plugin, shadow)
    }

    /// Decides `action` with a given plugin (shadows, replay, backtests).
    pub fn evaluate_with(&self, plugin: &Plugin, action: &Action) -> Result<Verdict, Busy> {
        let evaluation = self.sandbox.evaluate(plugin, action)?;
        Ok(self.verdict(plugin, action, evaluation))
    }

    fn verdict(&self, plugin: &Plugin, action: &Action, mut evaluation: Evaluation) -> Verdict {
        evaluation.outcome =
            crate::route_check::checked(evaluation.outcome, self.directory.as_deref(), action);
        let plugin_ref = PluginRef {
            sha256: plugin.sha256.clone(),
            name: plugin.info.name.clone(),
            version: plugin.info.version.clone(),
            wit_version: plugin.wit_version.clone(),
        };
        match evaluation.outcome {
            Ok(Decision {
                classification,
                route,
            }) => Verdict {
                plugin: Some(plugin_ref),
                classification,
                route,
                failure: None,
                fuel_used: evaluation.fuel_used,
                duration_us: evaluation.duration.as_micros() as u64,
                limits: plugin.limits.clone(),
                wit_version: WIT_VERSION.into(),
                host_version: env!("CARGO_PKG_VERSION").into(),
            },
            Err(failure) => {
                tracing::warn!(action_id = %action.id, plugin = %plugin_ref.sha256, failure = %failure, "plugin failed; failing closed");
                let mut verdict = self.fail_closed(
                    Some(plugin_ref),
                    failure,
                    evaluation.fuel_used,
                    evaluation.duration,
                );
                // Replay must run it under what it ran under.
                verdict.limits = plugin.limits.clone();
                verdict
            }
        }
    }

    fn fail_closed(
        &self,
        plugin: Option<PluginRef>,
        failure: PluginFailure,
        fuel_used: u64,
        duration: Duration,
    ) -> Verdict {
        let route = match self.fail_closed.hold() {
            Some(hold) => Route::RequireApproval(hold),
            None => Route::Deny {
                reason: format!(
                    "policy could not decide ({}); failing closed",
                    failure.kind()
                ),
            },
        };
        Verdict {
            plugin,
            classification: Classification {
                risk: Risk::Critical,
                reasons: vec![failure.to_string()],
                tags: vec![format!("plugin-failure:{}", failure.kind())],
            },
            route,
            failure: Some(failure),
            fuel_used,
            duration_us: duration.as_micros() as u64,
            limits: self.sandbox.limits().clone(),
            wit_version: WIT_VERSION.into(),
            host_version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// Compiles a kind pattern (`db.export`, `db.*`, `*`) of the kind grammar;
/// `*` is a whole segment and also crosses dots.
pub fn compile_pattern(pattern: &str) -> Result<globset::GlobMatcher, BindingError> {
    let pattern = KindPattern::parse(pattern)?;
    globset::GlobBuilder::new(pattern.as_str())
        .literal_separator(false)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| BindingError::Pattern {
            pattern: pattern.to_string(),
            reason: e.to_string(),
        })
}

/// Exact patterns beat any glob; among globs, more literal characters win,
/// so `db.export.*` beats `db.*` beats `*`.
fn specificity(pattern: &str) -> (bool, usize, usize) {
    let is_glob = pattern.contains(['*', '?', '[', '{']);
    let literal = pattern
        .chars()
        .filter(|c| !matches!(c, '*' | '?' | '[' | ']' | '{' | '}'))
        .count();
    (!is_glob, literal, pattern.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_specific_pattern_wins() {
        let mut patterns = ["*", "db.*", "db.export", "db.export.*"];
        patterns.sort_by_key(|p| std::cmp::Reverse(specificity(p)));
        assert_eq!(patterns, ["db.export", "db.export.*", "db.*", "*"]);
    }
}
