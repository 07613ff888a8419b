//! Case files: a plugin's executable specification. Each case is one action
//! in and the expected risk, route or failure out; `actiongate plugin test`
//! and the test suite run them. Reads files and runs the sandbox; writes
//! nothing.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::action::{Action, Principal, Risk, Route};
use crate::directory::Directory;
use crate::sandbox::{PluginFailure, Sandbox};

#[derive(Debug, thiserror::Error)]
pub enum CaseFileError {
    #[error("case file is not valid TOML: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("case file has no [[case]] entries")]
    Empty,
    #[error("case {case:?}: {problem}")]
    Case { case: String, problem: String },
    /// The sandbox had no free slot: no case was decided.
    #[error(transparent)]
    Busy(#[from] crate::sandbox::Busy),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    #[serde(default)]
    defaults: CaseInput,
    #[serde(default, rename = "case")]
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(flatten)]
    input: CaseInput,
    expect: Expect,
}

/// The action fields a case may set; unset ones come from `[defaults]`.
#[derive(Debug, Default, Clone, Deserialize)]
struct CaseInput {
    id: Option<String>,
    kind: Option<String>,
    resource: Option<String>,
    agent: Option<String>,
    agent_attributes: Option<BTreeMap<String, String>>,
    on_behalf_of: Option<String>,
    params: Option<toml::Table>,
    justification: Option<String>,
    context: Option<BTreeMap<String, String>>,
    requested_at: Option<DateTime<Utc>>,
}

/// What must come out. Only the fields given are checked.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub risk: Option<Risk>,
    /// `allow`, `deny` or `require-approval`.
    pub route: Option<String>,
    pub groups: Option<Vec<String>>,
    pub quorum: Option<u32>,
    pub escalate_to: Option<Vec<String>>,
    /// Tags that must be present.
    pub tags: Option<Vec<String>>,
    /// Text the deny reason must contain.
    pub reason_contains: Option<String>,
    /// A failure kind: load, trap, out-of-fuel, deadline, out-of-memory, invalid-output.
    pub failure: Option<String>,
}

/// The result of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub name: String,
    /// One line per mismatch, `field: expected X, got Y`. Empty when it passed.
    pub diffs: Vec<String>,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.diffs.is_empty()
    }
}

/// Runs every case in `cases_toml` against the component `wasm`, as the
/// service would: on a blocking thread, in the same sandbox, with routes
/// checked against `directory` when there is one.
pub fn run(
    sandbox: &Sandbox,
    wasm: &[u8],
    cases_toml: &str,
    directory: Option<&Directory>,
) -> Result<Vec<CaseResult>, CaseFileError> {
    let file: CaseFile = toml::from_str(cases_toml)?;
    if file.cases.is_empty() {
        return Err(CaseFileError::Empty);
    }
    let plugin = sandbox.load(wasm, None);
    let mut results = Vec::with_capacity(file.cases.len());
    for (index, case) in file.cases.iter().enumerate() {
        let action = build_action(index, &case.input, &file.defaults).map_err(|problem| {
            CaseFileError::Case {
                case: case.name.clone(),
                problem,
            }
        })?;
        let outcome = match &plugin {
            Ok(plugin) => sandbox.evaluate(plugin, &action)?.outcome,
            Err(failure) => Err(failure.clone()),
        };
        let outcome = crate::route_check::checked(outcome, directory, &action);
        results.push(CaseResult {
            name: case.name.clone(),
            diffs: compare(&case.expect, &outcome),
        });
    }
    Ok(results)
}

fn build_action(index: usize, case: &CaseInput, defaults: &CaseInput) -> Result<Action, String> {
    macro_rules! pick {
        ($field:ident) => {
            case.$field.clone().or_else(|| defaults.$field.clone())
        };
    }
    let params = pick!(params).unwrap_or_default();
    let mut attributes = defaults.agent_attributes.clone().unwrap_or_default();
    attributes.extend(case.agent_attributes.clone().unwrap_or_default());
    attributes
        .entry("owner".into())
        .or_insert_with(|| "owner@example.com".into());
    Ok(Action {
        id: pick!(id).unwrap_or_else(|| format!("case-{}", index + 1)),
        kind: pick!(kind).ok_or("no kind (set it in the case or in [defaults])")?,
        agent: Principal {
            id: pick!(agent).unwrap_or_else(|| "test-agent".into()),
            attributes,
        },
        on_behalf_of: pick!(on_behalf_of),
        resource: pick!(resource).unwrap_or_default(),
        params: serde_json::to_value(params).map_err(|e| format!("params: {e}"))?,
        justification: pick!(justification),
        context: pick!(context).unwrap_or_default(),
        requested_at: pick!(requested_at)
            .unwrap_or_else(|| "2026-01-05T10:00:00Z".parse().unwrap()),
    })
}

fn check(diffs: &mut Vec<String>, field: &str, want: String, got: String) {
    if want != got {
        diffs.push(format!("{field}: expected {want}, got {got}"));
    }
}

fn compare(
    expect: &Expect,
    outcome: &Result<crate::sandbox::Decision, PluginFailure>,
) -> Vec<String> {
    let mut diffs = Vec::new();
    let decision = match (outcome, &expect.failure) {
        (Err(failure), Some(kind)) => {
            check(&mut diffs, "failure", kind.clone(), failure.kind().into());
            return diffs;
        }
        (Err(failure), None) => {
            diffs.push(format!(
                "failure: expected none, got {} ({failure})",
                failure.kind()
            ));
            return diffs;
        }
        (Ok(decision), Some(kind)) => {
            check(
                &mut diffs,
                "failure",
                kind.clone(),
                format!("none (route {})", decision.route.name()),
            );
            return diffs;
        }
        (Ok(decision), None) => decision,
    };
    let c = &decision.classification;
    if let Some(risk) = expect.risk {
        check(
            &mut diffs,
            "risk",
            risk.as_str().into(),
            c.risk.as_str().into(),
        );
    }
    if let Some(tags) = &expect.tags {
        for tag in tags.iter().filter(|t| !c.tags.contains(t)) {
            diffs.push(format!("tags: expected {tag:?} among {:?}", c.tags));
        }
    }
    if let Some(route) = &expect.route {
        check(
            &mut diffs,
            "route",
            route.clone(),
            decision.route.name().into(),
        );
    }
    match &decision.route {
        Route::RequireApproval(a) => {
            if let Some(groups) = &expect.groups {
                check(
                    &mut diffs,
                    "groups",
                    format!("{groups:?}"),
                    format!("{:?}", a.groups),
                );
            }
            if let Some(quorum) = expect.quorum {
                check(
                    &mut diffs,
                    "quorum",
                    quorum.to_string(),
                    a.quorum.to_string(),
                );
            }
            if let Some(esc) = &expect.escalate_to {
                check(
                    &mut diffs,
                    "escalate_to",
                    format!("{esc:?}"),
                    format!("{:?}", a.escalate_to),
                );
            }
        }
        Route::Deny { reason } => {
            if let Some(text) = &expect.reason_contains {
                if !reason.contains(text.as_str()) {
                    diffs.push(format!(
                        "reason: expected it to contain {text:?}, got {reason:?}"
                    ));
                }
            }
        }
        Route::Allow => {}
    }
    if matches!(decision.route, Route::Allow | Route::Deny { .. })
        && (expect.groups.is_some() || expect.quorum.is_some())
    {
        diffs.push(format!(
            "groups/quorum: expected an approval, got {}",
            decision.route.name()
        ));
    }
    diffs
}
