//! Bindings and fail-closed evaluation over real components.

use std::sync::Arc;

use actiongate::action::{Risk, Route};
use actiongate::directory::{Directory, DirectoryConfig, PersonConfig};
use actiongate::evaluate::{Binding, BindingError, Evaluator, FailClosed};
use actiongate::examples::example;
use actiongate::sandbox::{Limits, PluginFailure};
use actiongate_tests::{action, component, sandbox};
use serde_json::json;

fn evaluator(fail_closed: FailClosed) -> Evaluator {
    let evaluator = Evaluator::new(Arc::new(sandbox(Limits::default())), fail_closed);
    for name in ["db-export", "baseline"] {
        let plugin = evaluator.register(example(name).unwrap().wasm).unwrap();
        let pattern = if name == "baseline" { "*" } else { "db.*" };
        evaluator
            .bind(Binding {
                pattern: pattern.into(),
                sha256: plugin.sha256.clone(),
                shadow: None,
            })
            .unwrap();
    }
    evaluator
}

#[test]
fn kinds_resolve_to_the_most_specific_binding() {
    let evaluator = evaluator(FailClosed::Deny);
    let export = evaluator
        .evaluate(&action(
            "e-1",
            "db.export",
            json!({"rows": 5, "tables": ["orders"], "destination": "s3://corp-backups/x"}),
        ))
        .expect("a free slot");
    assert_eq!(export.plugin.unwrap().name, "db-export");
    assert_eq!(export.route, Route::Allow);
    let unknown = evaluator
        .evaluate(&action("e-2", "k8s.scale", json!({})))
        .expect("a free slot");
    assert_eq!(
        unknown.plugin.as_ref().unwrap().name,
        "baseline",
        "unbound kinds go to the catch-all"
    );
    assert_eq!(unknown.route.name(), "require-approval");
    assert!(unknown.fuel_used > 0 && unknown.failure.is_none());
}

#[test]
fn a_failing_plugin_fails_closed_to_deny() {
    let evaluator = evaluator(FailClosed::Deny);
    let looping = evaluator
        .register(&component("hostile_infinite_loop"))
        .unwrap();
    evaluator
        .bind(Binding {
            pattern: "db.export".into(),
            sha256: looping.sha256.clone(),
            shadow: None,
        })
        .unwrap();
    let verdict = evaluator
        .evaluate(&action("f-1", "db.export", json!({})))
        .expect("a free slot");
    assert!(
        matches!(verdict.route, Route::Deny { .. }),
        "{:?}",
        verdict.route
    );
    assert_eq!(verdict.classification.risk, Risk::Critical);
    assert_eq!(verdict.failure.unwrap().kind(), "out-of-fuel");
    assert_eq!(
        verdict.plugin.unwrap().sha256,
        looping.sha256,
        "the failing plugin is named"
    );
}

#[test]
fn a_failing_plugin_fails_closed_to_break_glass() {
    let evaluator = evaluator(FailClosed::BreakGlass {
        group: "break-glass".into(),
        quorum: 2,
        ttl_seconds: 900,
        escalate_to: vec![],
    });
    let panicking = evaluator.register(&component("hostile_panic")).unwrap();
    evaluator
        .bind(Binding {
            pattern: "db.*".into(),
            sha256: panicking.sha256.clone(),
            shadow: None,
        })
        .unwrap();
    let verdict = evaluator
        .evaluate(&action("f-2", "db.drop", json!({})))
        .expect("a free slot");
    match verdict.route {
        Route::RequireApproval(a) => {
            assert_eq!(a.groups, ["break-glass"]);
            assert_eq!(a.quorum, 2);
        }
        other => panic!("expected break-glass approval, got {other:?}"),
    }
}

#[test]
fn no_binding_at_all_fails_closed() {
    let evaluator = Evaluator::new(Arc::new(sandbox(Limits::default())), FailClosed::Deny);
    let verdict = evaluator
        .evaluate(&action("n-1", "db.export", json!({})))
        .expect("a free slot");
    assert!(matches!(verdict.route, Route::Deny { .. }));
    assert!(verdict.plugin.is_none());
    assert_eq!(verdict.failure.unwrap().kind(), "load");
}

#[test]
fn binding_an_unregistered_plugin_is_refused() {
    let evaluator = evaluator(FailClosed::Deny);
    let err = evaluator
        .bind(Binding {
            pattern: "x.*".into(),
            sha256: "ab".repeat(32),
            shadow: None,
        })
        .unwrap_err();
    assert!(matches!(err, BindingError::UnknownPlugin { .. }), "{err}");
}

/// A directory where `data-owners` has one member, and only the groups named.
fn small_directory(groups: &[&str]) -> Arc<Directory> {
    let person = |email: &str| PersonConfig {
        email: email.into(),
        name: email.into(),
        slack_id: None,
        teams_id: None,
        admin: false,
    };
    let config = DirectoryConfig {
        people: vec![person("dana@example.com"), person("sam@example.com")],
        groups: groups
            .iter()
            .map(|g| match *g {
                "data-owners" => (g.to_string(), vec!["dana@example.com".to_string()]),
                _ => (g.to_string(), vec!["sam@example.com".to_string()]),
            })
            .collect(),
    };
    Arc::new(Directory::from_config(&config).unwrap())
}

fn export(id: &str, rows: u64, tables: &[&str]) -> actiongate::action::Action {
    action(
        id,
        "db.export",
        json!({"rows": rows, "tables": tables, "destination": "s3://corp-analytics/q4"}),
    )
}

fn invalid_reason(verdict: &actiongate::evaluate::Verdict) -> String {
    match &verdict.failure {
        Some(PluginFailure::InvalidOutput { reason }) => reason.clone(),
        other => panic!("expected an invalid output, got {other:?}"),
    }
}

/// db-export routes to `data-owners` (quorum 1, or 2 for critical exports)
/// and escalates to `security`: checked against the directory, a route
/// nobody can answer is an invalid output that fails closed, with the
/// reason in the verdict (and so in the evidence).
#[test]
fn routes_nobody_in_the_directory_can_answer_fail_closed_with_the_reason() {
    let evaluator =
        evaluator(FailClosed::Deny).with_directory(small_directory(&["data-owners", "security"]));
    let medium = evaluator
        .evaluate(&export("r-1", 50_000, &["orders"]))
        .unwrap();
    assert_eq!(
        (medium.failure.as_ref(), medium.route.name()),
        (None, "require-approval")
    );

    let critical = evaluator
        .evaluate(&export("r-2", 250_000, &["orders", "customers"]))
        .unwrap();
    assert!(
        invalid_reason(&critical)
            .contains("quorum 2 is more than the 1 distinct member of data-owners"),
        "{critical:?}"
    );
    assert_eq!(critical.route.name(), "deny", "fails closed");
    assert!(
        critical.classification.reasons[0].contains("quorum 2"),
        "the reason is recorded: {:?}",
        critical.classification.reasons
    );

    let evaluator = evaluator_without_security();
    let high = evaluator
        .evaluate(&export("r-3", 2_000_000, &["events"]))
        .unwrap();
    assert!(
        invalid_reason(&high)
            .contains("escalate-to names group not in the directory: \"security\""),
        "{high:?}"
    );
    let evaluator =
        self::evaluator(FailClosed::Deny).with_directory(small_directory(&["security"]));
    let medium = evaluator
        .evaluate(&export("r-4", 50_000, &["orders"]))
        .unwrap();
    assert!(
        invalid_reason(&medium).contains("approver group not in the directory: \"data-owners\""),
        "{medium:?}"
    );
}

fn evaluator_without_security() -> Evaluator {
    evaluator(FailClosed::Deny).with_directory(small_directory(&["data-owners"]))
}
