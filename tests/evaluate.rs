//! Bindings and fail-closed evaluation over real components.

use std::sync::Arc;

use actiongate::action::{Risk, Route};
use actiongate::evaluate::{Binding, BindingError, Evaluator, FailClosed};
use actiongate::examples::example;
use actiongate::sandbox::Limits;
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
    let export = evaluator.evaluate(&action(
        "e-1",
        "db.export",
        json!({"rows": 5, "tables": ["orders"], "destination": "s3://corp-backups/x"}),
    ));
    assert_eq!(export.plugin.unwrap().name, "db-export");
    assert_eq!(export.route, Route::Allow);
    let unknown = evaluator.evaluate(&action("e-2", "k8s.scale", json!({})));
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
    let verdict = evaluator.evaluate(&action("f-1", "db.export", json!({})));
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
    let verdict = evaluator.evaluate(&action("f-2", "db.drop", json!({})));
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
    let verdict = evaluator.evaluate(&action("n-1", "db.export", json!({})));
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
