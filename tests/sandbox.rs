//! The sandbox against real compiled components, hostile ones included.
//! Every hostile fixture must yield its typed failure, and the sandbox must
//! keep working afterwards.

use std::time::{Duration, Instant};

use actiongate::action::Risk;
use actiongate::sandbox::{Limits, PluginFailure, Sandbox, SandboxConfig};
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
    let evaluation = sandbox.evaluate(&plugin, &action).expect("a free slot");
    evaluation.outcome.expect_err("a hostile plugin must fail")
}

/// `failure_of` with the time it took, which must be within the deadline
/// (plus the epoch tick and some slack for a busy machine).
fn timed_failure_of(sandbox: &Sandbox, fixture: &str) -> (PluginFailure, Duration) {
    let plugin = sandbox
        .load(&component(fixture), None)
        .expect("fixture loads");
    let action = action("a-1", "test.hostile", json!({}));
    let started = Instant::now();
    let evaluation = sandbox.evaluate(&plugin, &action).expect("a free slot");
    let took = started.elapsed();
    let bound = Duration::from_millis(sandbox.limits().deadline_ms) + TICK_AND_SLACK;
    assert!(took <= bound, "{fixture} took {took:?}, over {bound:?}");
    (
        evaluation.outcome.expect_err("a hostile plugin must fail"),
        took,
    )
}

/// The epoch tick (10 ms) and room for a loaded two-core machine (the
/// failure this guards against is a thread held for the guest's 10 s).
const TICK_AND_SLACK: Duration = Duration::from_millis(10 + 790);

/// After a hostile plugin, an honest one still evaluates on the same engine.
fn still_works(sandbox: &Sandbox) {
    let plugin = sandbox.load(&component("db_export"), None).unwrap();
    let params = json!({"rows": 10, "tables": ["orders"], "destination": "s3://corp-analytics/x"});
    let action = action("a-2", "db.export", params);
    let full = sandbox.evaluate(&plugin, &action).expect("a free slot");
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
        PluginFailure::deadline(50)
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
            .expect("a free slot")
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
            .expect("a free slot")
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
                    let d = sandbox.evaluate(&plugin, &a).unwrap().outcome.unwrap();
                    assert_eq!(d.classification.risk, Risk::Critical);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// A sleep on the frozen clock could never end: it is refused at once, as
/// the deadline it could not beat, and names the call; it does not hold the
/// thread for the 10 s the guest asked for.
#[test]
fn sleep() {
    let sandbox = sandbox(Limits::default());
    let (failure, took) = timed_failure_of(&sandbox, "hostile_sleep");
    match &failure {
        PluginFailure::Deadline {
            deadline_ms: 200,
            waited_in: Some(call),
        } => assert!(call.starts_with("wasi:io/poll."), "{call}"),
        other => panic!("expected a refused wait, got {other:?}"),
    }
    assert!(
        took < Duration::from_millis(200),
        "refused at once, not at the deadline: {took:?}"
    );
    assert!(failure.to_string().contains("frozen clock"), "{failure}");
    still_works(&sandbox);
}

/// A guest that never ends by itself: with the default limits fuel or the
/// deadline ends it, in time (never a wait refused: it waits on nothing);
/// with fuel out of the way, the deadline does.
fn ends_by_fuel_or_deadline(fixture: &str) {
    let bounded = sandbox(Limits::default());
    let (failure, _) = timed_failure_of(&bounded, fixture);
    assert!(
        matches!(
            failure,
            PluginFailure::OutOfFuel { .. }
                | PluginFailure::Deadline {
                    waited_in: None,
                    ..
                }
        ),
        "{failure:?}"
    );
    still_works(&bounded);

    let unbounded_fuel = sandbox(Limits {
        fuel: u64::MAX / 4,
        deadline_ms: 50,
        ..Limits::default()
    });
    let (failure, _) = timed_failure_of(&unbounded_fuel, fixture);
    assert_eq!(failure, PluginFailure::deadline(50));
    still_works(&unbounded_fuel);
}

/// Polling in a loop returns at once every time (a zero timeout is due, a
/// later one never is, stdout is always writable); on the frozen clock the
/// loop never ends by itself.
#[test]
fn poll_loop() {
    ends_by_fuel_or_deadline("hostile_poll_loop");
}

/// Writing 64 KiB chunks to stdout and stderr without end: the streams are
/// sinks that never block or fill.
#[test]
fn output_flood() {
    ends_by_fuel_or_deadline("hostile_output_flood");
}

fn refused_contract(fixture: &str, version: &str, why: &str) {
    let sandbox = sandbox(Limits::default());
    match sandbox.load(&component(fixture), None) {
        Err(PluginFailure::Load { reason }) => {
            assert!(reason.contains("contract version mismatch"), "{reason}");
            assert!(
                reason.contains(&format!("actiongate:policy@{version}")),
                "names the plugin's version: {reason}"
            );
            assert!(
                reason.contains("actiongate:policy@0.1.0"),
                "names the host's version: {reason}"
            );
            assert!(reason.contains(why), "{reason}");
            assert!(!reason.contains("forbidden import"), "{reason}");
        }
        Err(other) => panic!("expected a load failure, got {other:?}"),
        Ok(_) => panic!("a plugin built against {version} must not load"),
    }
    let inspection = sandbox.inspect(&component(fixture));
    assert_eq!(inspection.wit_version.as_deref(), Some(version));
    assert!(inspection.failure.is_some());
    still_works(&sandbox);
}

#[test]
fn contract_newer_minor() {
    refused_contract(
        "hostile_contract_newer_minor",
        "0.1.1",
        "newer than the host's",
    );
}

#[test]
fn contract_next_major() {
    refused_contract(
        "hostile_contract_next_major",
        "0.2.0",
        "another major version",
    );
}

fn sandbox_with(max_instances: u32, plugin_share: u32, slot_wait_ms: u64) -> Sandbox {
    Sandbox::new(SandboxConfig {
        max_instances,
        plugin_share: Some(plugin_share),
        slot_wait_ms,
        cache_dir: Some(actiongate_tests::cache_dir()),
        ..SandboxConfig::default()
    })
    .expect("sandbox starts")
}

/// A plugin holding its whole share makes its next evaluation wait, then
/// answer `Busy` (the host's state, with nothing decided), never a failure
/// of the plugin; another plugin meanwhile decides at once.
#[test]
fn a_plugin_at_its_share_waits_then_is_busy_while_others_decide() {
    let sandbox = sandbox_with(8, 2, 100);
    let flooded = sandbox.load(&component("iam_change"), None).unwrap();
    let held = [
        sandbox.try_slot(&flooded).unwrap(),
        sandbox.try_slot(&flooded).unwrap(),
    ];
    assert!(sandbox.try_slot(&flooded).is_none(), "two is its share");
    let a = action(
        "c-1",
        "iam.grant",
        json!({"principal": "x@y", "role": "roles/owner"}),
    );
    assert!(
        sandbox.evaluate_inline(&flooded, &a).is_none(),
        "a plugin with its share full of slow evaluations gets no quick one"
    );
    let started = Instant::now();
    let busy = sandbox
        .evaluate(&flooded, &a)
        .expect_err("no slot came free");
    assert!(started.elapsed() >= Duration::from_millis(100), "it waited");
    assert_eq!(
        (busy.plugin.as_str(), busy.share, busy.total),
        (flooded.sha256.as_str(), 2, 8)
    );
    assert!(busy.to_string().contains("busy"), "{busy}");
    still_works(&sandbox);
    drop(held);
    assert!(
        sandbox.evaluate(&flooded, &a).unwrap().outcome.is_ok(),
        "slots come back"
    );
}

/// A slot freed while an evaluation waits is taken by it: the wait is
/// bounded, not a refusal at first sight.
#[test]
fn a_waiting_evaluation_takes_a_slot_freed_in_time() {
    let sandbox = std::sync::Arc::new(sandbox_with(4, 1, 5_000));
    let plugin = sandbox.load(&component("iam_change"), None).unwrap();
    let held = sandbox.try_slot(&plugin).unwrap();
    let waiter = {
        let (sandbox, plugin) = (sandbox.clone(), plugin.clone());
        std::thread::spawn(move || {
            let a = action(
                "w-1",
                "iam.grant",
                json!({"principal": "x@y", "role": "roles/owner"}),
            );
            sandbox.evaluate(&plugin, &a).map(|e| e.outcome.is_ok())
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    drop(held);
    assert_eq!(waiter.join().unwrap(), Ok(true));
}
