//! The sandbox against real compiled components, hostile ones included.
//! Every hostile fixture must yield its typed failure, and the sandbox must
//! keep working afterwards.

use actiongate::action::Risk;
use actiongate::sandbox::{Limits, PluginFailure, Sandbox};
use actiongate_tests::{action, component, foreach_hostile, sandbox};
use serde_json::json;

// A fixture in plugins/hostile without a test of the same name here does
// not compile.
macro_rules! assert_test_exists {
    ($name:ident, $path:expr) => {
        #[allow(unused_imports)]
        use self::$name as _;
    };
}
foreach_hostile!(assert_test_exists);

fn failure_of(sandbox: &Sandbox, fixture: &str) -> PluginFailure {
    let plugin = sandbox
        .load(&component(fixture), None)
        .expect("fixture loads");
    let action = action("a-1", "test.hostile", json!({}));
    assert!(
        sandbox.evaluate_inline(&plugin, &action).is_none(),
        "only a decision is taken from an async worker"
    );
    let evaluation = sandbox.evaluate(&plugin, &action);
    evaluation.outcome.expect_err("a hostile plugin must fail")
}

/// After a hostile plugin, an honest one still evaluates on the same engine.
fn still_works(sandbox: &Sandbox) {
    let plugin = sandbox.load(&component("db_export"), None).unwrap();
    let params = json!({"rows": 10, "tables": ["orders"], "destination": "s3://corp-analytics/x"});
    let action = action("a-2", "db.export", params);
    let full = sandbox.evaluate(&plugin, &action);
    let inline = sandbox
        .evaluate_inline(&plugin, &action)
        .expect("db-export decides without imports, within the slice");
    assert_eq!(inline.fuel_used, full.fuel_used);
    let decision = full.outcome.unwrap();
    assert_eq!(inline.outcome.unwrap(), decision);
    assert_eq!(decision.classification.risk, Risk::Low);
    assert_eq!(decision.route.name(), "allow");
}

#[test]
fn infinite_loop() {
    let sandbox = sandbox(Limits::default());
    assert_eq!(
        failure_of(&sandbox, "hostile_infinite_loop"),
        PluginFailure::OutOfFuel {
            fuel: Limits::default().fuel
        }
    );
    still_works(&sandbox);
}

#[test]
fn infinite_loop_with_unbounded_fuel_hits_the_deadline() {
    let limits = Limits {
        fuel: u64::MAX / 4,
        deadline_ms: 50,
        ..Limits::default()
    };
    let sandbox = sandbox(limits);
    assert_eq!(
        failure_of(&sandbox, "hostile_infinite_loop"),
        PluginFailure::Deadline { deadline_ms: 50 }
    );
    still_works(&sandbox);
}

#[test]
fn memory_bomb() {
    let sandbox = sandbox(Limits::default());
    assert_eq!(
        failure_of(&sandbox, "hostile_memory_bomb"),
        PluginFailure::OutOfMemory {
            limit_bytes: Limits::default().memory_bytes
        }
    );
    still_works(&sandbox);
}

#[test]
fn deep_recursion() {
    let sandbox = sandbox(Limits::default());
    let failure = failure_of(&sandbox, "hostile_deep_recursion");
    assert!(matches!(failure, PluginFailure::Trap { .. }), "{failure:?}");
    still_works(&sandbox);
}

#[test]
fn panic() {
    let sandbox = sandbox(Limits::default());
    match failure_of(&sandbox, "hostile_panic") {
        PluginFailure::Trap { message } => {
            assert!(
                message.contains("policy bug: cannot classify test.hostile"),
                "{message}"
            );
            assert!(
                message.contains("unreachable"),
                "the trap itself is named too: {message}"
            );
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    still_works(&sandbox);
}

/// The SDK's own panic handler (a `#![no_std]` plugin, as the examples
/// are) reports the message as std's hook does.
#[test]
fn panic_no_std() {
    let sandbox = sandbox(Limits::default());
    match failure_of(&sandbox, "hostile_panic_no_std") {
        PluginFailure::Trap { message } => {
            assert!(
                message.contains("panicked at")
                    && message.contains("policy bug: cannot classify test.hostile"),
                "{message}"
            );
            assert!(message.contains("unreachable"), "{message}");
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    still_works(&sandbox);
}

#[test]
fn oversized_output() {
    let sandbox = sandbox(Limits::default());
    match failure_of(&sandbox, "hostile_oversized_output") {
        PluginFailure::InvalidOutput { reason } => {
            assert!(reason.contains("over the 65536-byte cap"), "{reason}")
        }
        other => panic!("expected invalid output, got {other:?}"),
    }
    still_works(&sandbox);
}

#[test]
fn forbidden_import() {
    let sandbox = sandbox(Limits::default());
    match sandbox.load(&component("hostile_forbidden_import"), None) {
        Err(PluginFailure::Load { reason }) => {
            assert!(
                reason.contains("wasi:sockets/tcp"),
                "names the socket import: {reason}"
            );
            assert!(
                reason.contains("wasi:filesystem/preopens"),
                "names the filesystem import: {reason}"
            );
        }
        Err(other) => panic!("expected a load failure, got {other:?}"),
        Ok(_) => panic!("a plugin importing sockets and files must not load"),
    }
    still_works(&sandbox);
}

#[test]
fn ambient() {
    let sandbox = sandbox(Limits::default());
    let plugin = sandbox.load(&component("hostile_ambient"), None).unwrap();
    let seen = |id: &str| {
        let decision = sandbox
            .evaluate(&plugin, &action(id, "test.ambient", json!({})))
            .outcome
            .unwrap();
        decision.classification.reasons
    };
    let first = seen("action-1");
    assert!(
        sandbox
            .evaluate_inline(&plugin, &action("action-1", "test.ambient", json!({})))
            .is_none(),
        "WASI calls trap on an async worker; the full run answers"
    );
    assert_eq!(first, seen("action-1"), "same action, same world");
    assert_eq!(first[0], "env=", "no environment");
    assert_eq!(first[1], "args=", "no arguments");
    let requested_ms = "2026-11-25T10:00:00Z"
        .parse::<chrono::DateTime<chrono::Utc>>()
        .unwrap()
        .timestamp_millis();
    assert_eq!(
        first[2],
        format!("now_ms={requested_ms}"),
        "the clock reads requested-at"
    );
    assert_ne!(
        first[3],
        seen("action-2")[3],
        "random is seeded from the action id"
    );
}

#[test]
fn stateful() {
    let sandbox = sandbox(Limits::default());
    let plugin = sandbox.load(&component("hostile_stateful"), None).unwrap();
    for id in ["s-1", "s-2", "s-3"] {
        let decision = sandbox
            .evaluate(&plugin, &action(id, "test.state", json!({})))
            .outcome
            .unwrap();
        assert_eq!(
            decision.classification.reasons,
            ["calls=1"],
            "a fresh instance every time"
        );
    }
}

#[test]
fn sha256_pin_is_enforced() {
    let sandbox = sandbox(Limits::default());
    let bytes = component("baseline");
    let sha = actiongate::sandbox::sha256_hex(&bytes);
    assert_eq!(sandbox.load(&bytes, Some(&sha)).unwrap().sha256, sha);
    let wrong = "0".repeat(64);
    match sandbox.load(&bytes, Some(&wrong)) {
        Err(PluginFailure::Load { reason }) => {
            assert!(reason.contains("sha256 mismatch"), "{reason}")
        }
        _ => panic!("a wrong pin must be refused"),
    }
}

#[test]
fn garbage_is_a_load_failure() {
    let sandbox = sandbox(Limits::default());
    assert!(matches!(
        sandbox.load(b"\0asm not really", None),
        Err(PluginFailure::Load { .. })
    ));
    // A core module is not a component.
    assert!(matches!(
        sandbox.load(b"\0asm\x01\0\0\0", None),
        Err(PluginFailure::Load { .. })
    ));
}

#[test]
fn precompiled_artifact_is_cached_on_disk() {
    let sandbox = sandbox(Limits::default());
    let bytes = component("prod_ops");
    let plugin = sandbox.load(&bytes, None).unwrap();
    let cached: Vec<_> = std::fs::read_dir(actiongate_tests::cache_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&plugin.sha256))
        .collect();
    assert_eq!(cached.len(), 1, "one artifact for this sha256 and engine");
    // A second sandbox (another process, in production) loads from the cache.
    let again = actiongate_tests::sandbox(Limits::default())
        .load(&bytes, None)
        .unwrap();
    assert_eq!(again.info, plugin.info);
}

#[test]
fn evaluations_run_in_parallel() {
    let sandbox = std::sync::Arc::new(sandbox(Limits::default()));
    let plugin = sandbox.load(&component("iam_change"), None).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (sandbox, plugin) = (sandbox.clone(), plugin.clone());
            std::thread::spawn(move || {
                for i in 0..50 {
                    let a = action(
                        &format!("p-{t}-{i}"),
                        "iam.grant",
                        json!({"principal": "x@y", "role": "roles/owner"}),
                    );
                    let d = sandbox.evaluate(&plugin, &a).outcome.unwrap();
                    assert_eq!(d.classification.risk, Risk::Critical);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
