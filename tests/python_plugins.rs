//! Python policy plugins (plugins/python) under the same contract, sandbox
//! and case files as Rust ones: built here with the pinned componentize-py,
//! run by the real `actiongate plugin test`, hostile ones failing closed,
//! and the deterministic WASI seen from Python.

use std::process::Command;
use std::time::{Duration, Instant};

use actiongate::action::Risk;
use actiongate::sandbox::{Limits, LimitsOverride, PluginFailure, Sandbox, SandboxConfig};
use actiongate_tests::{action, python, sandbox};
use serde_json::json;

const DB_EXPORT_PY: &str = "plugins/examples/db-export-py";
const HOSTILE_PY: &str = "plugins/python/fixtures/hostile";

/// `actiongate ARGS…` as a process (the binary `tests/run` builds): exit
/// code, stdout, stderr.
fn actiongate(args: &[&str]) -> (i32, String, String) {
    let bin = std::env::var("ACTIONGATE_BIN")
        .unwrap_or_else(|_| format!("{}/../target/debug/actiongate", env!("CARGO_MANIFEST_DIR")));
    // A config of its own: the tests' shared compile cache.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("actiongate.toml");
    std::fs::write(
        &config,
        format!(
            "[sandbox]\ncache_dir = {:?}\n",
            actiongate_tests::cache_dir()
        ),
    )
    .unwrap();
    let out = Command::new(&bin)
        .arg("--config")
        .arg(&config)
        .args(args)
        .env_remove("ACTIONGATE_CONFIG")
        .output()
        .unwrap_or_else(|e| panic!("running {bin}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn db_export_py_passes_the_rust_plugins_case_file() {
    let wasm = python::build(DB_EXPORT_PY);
    let cases = python::root().join("plugins/examples/db-export/cases.toml");
    let (code, out, err) = actiongate(&[
        "plugin",
        "test",
        wasm.to_str().unwrap(),
        cases.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("cases: 10 passed, 0 failed"), "{out}");

    // One case file, two languages: the same decisions, case by case (the
    // same risk, reasons, tags and route; for a failure, the same kind).
    let sandbox = sandbox(Limits::default());
    let rust = sandbox
        .load(
            actiongate::examples::example("db-export").unwrap().wasm,
            None,
        )
        .unwrap();
    let python = sandbox.load(&std::fs::read(&wasm).unwrap(), None).unwrap();
    let file: toml::Table = toml::from_str(&std::fs::read_to_string(&cases).unwrap()).unwrap();
    let cases = file["case"].as_array().unwrap();
    for (i, case) in cases.iter().enumerate() {
        let params = serde_json::to_value(&case["params"]).unwrap();
        let mut action = action(&format!("case-{i}"), "db.export", params);
        action.requested_at = "2026-11-25T10:00:00Z".parse().unwrap();
        let outcome = |plugin| match sandbox.evaluate(plugin, &action).unwrap().outcome {
            Ok(decision) => serde_json::to_value(decision).unwrap(),
            Err(failure) => json!({"failure": failure.kind()}),
        };
        assert_eq!(outcome(&rust), outcome(&python), "{}", case["name"]);
    }
}

#[test]
fn the_sdk_passes_its_own_tests_natively() {
    let root = python::root();
    let out = actiongate_tests::python()
        .arg(root.join("plugins/python/tests/test_sdk.py"))
        .env("PYTHONPATH", root.join("plugins/python"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("Ran 14 tests") && err.trim_end().ends_with("OK"),
        "{err}"
    );
}

#[test]
fn inspect_names_the_interpreter_contract_and_limits() {
    let wasm = python::build(DB_EXPORT_PY);
    let (code, out, err) = actiongate(&["plugin", "inspect", wasm.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["interpreter"], "CPython 3.14", "{out}");
    assert_eq!(report["wit_version"], "0.1.0", "{out}");
    assert_eq!(report["info"]["name"], "db-export-py");
    let imports = report["imports"].to_string();
    assert!(imports.contains("wasi:filesystem/types"), "{imports}");
    assert!(imports.contains("wasi:sockets/tcp"), "{imports}");
    assert_eq!(
        report["limits"],
        serde_json::to_value(interpreter_limits()).unwrap(),
        "interpreter limits by default"
    );
}

fn hostile(sandbox: &Sandbox, kind: &str) -> PluginFailure {
    timed_hostile(sandbox, kind).0
}

/// `hostile`, and how long the evaluation held its thread (loading excluded).
fn timed_hostile(sandbox: &Sandbox, kind: &str) -> (PluginFailure, Duration) {
    let plugin = sandbox
        .load(&python::component(HOSTILE_PY), None)
        .expect("the hostile plugin loads");
    assert!(
        sandbox
            .evaluate_inline(&plugin, &action("h-0", kind, json!({})))
            .is_none(),
        "an interpreter never decides on an async worker"
    );
    let started = Instant::now();
    let failure = sandbox
        .evaluate(&plugin, &action("h-1", kind, json!({})))
        .unwrap()
        .outcome
        .expect_err("a hostile plugin must fail");
    (failure, started.elapsed())
}

/// After a hostile plugin, the Python db-export still decides on the same engine.
fn still_works(sandbox: &Sandbox) {
    let plugin = sandbox
        .load(&python::component(DB_EXPORT_PY), None)
        .unwrap();
    let params = json!({"rows": 10, "tables": ["orders"], "destination": "s3://corp-analytics/x"});
    let decision = sandbox
        .evaluate(&plugin, &action("a-2", "db.export", params))
        .unwrap()
        .outcome
        .unwrap();
    assert_eq!(decision.classification.risk, Risk::Low);
    assert_eq!(decision.route.name(), "allow");
}

#[test]
fn an_infinite_loop_runs_out_of_fuel() {
    let sandbox = sandbox(Limits::default());
    let fuel = interpreter_limits().fuel;
    assert_eq!(
        hostile(&sandbox, "test.loop"),
        PluginFailure::OutOfFuel { fuel }
    );
    still_works(&sandbox);
}

#[test]
fn memory_growth_hits_the_cap() {
    let sandbox = sandbox(Limits::default());
    let limit_bytes = interpreter_limits().memory_bytes;
    assert_eq!(
        hostile(&sandbox, "test.memory"),
        PluginFailure::OutOfMemory { limit_bytes }
    );
    still_works(&sandbox);
}

#[test]
fn an_exception_in_route_traps_with_the_exception() {
    let sandbox = sandbox(Limits::default());
    match hostile(&sandbox, "test.raise") {
        PluginFailure::Trap { message } => {
            assert!(message.contains("KeyError"), "{message}")
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    still_works(&sandbox);
}

#[test]
fn reading_a_file_finds_none() {
    let sandbox = sandbox(Limits::default());
    match hostile(&sandbox, "test.file") {
        PluginFailure::Trap { message } => {
            assert!(message.contains("/etc/passwd"), "{message}");
            assert!(!message.contains("root:"), "{message}");
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    still_works(&sandbox);
}

#[test]
fn opening_a_socket_is_refused() {
    let sandbox = sandbox(Limits::default());
    match hostile(&sandbox, "test.socket") {
        PluginFailure::Trap { message } => {
            assert!(message.contains("Error"), "{message}")
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    still_works(&sandbox);
}

/// `time.sleep` waits on the frozen clock, which never reaches the end: the
/// wait is refused at once (main's non-blocking WASI), not slept, and the
/// evaluation fails closed as the deadline it could not beat.
#[test]
fn a_sleep_is_refused_at_once() {
    let sandbox = sandbox(Limits::default());
    let (failure, took) = timed_hostile(&sandbox, "test.sleep");
    match &failure {
        PluginFailure::Deadline {
            deadline_ms,
            waited_in: Some(call),
        } => {
            assert_eq!(*deadline_ms, interpreter_limits().deadline_ms);
            assert!(call.starts_with("wasi:io/poll."), "{call}");
        }
        other => panic!("expected a refused wait, got {other:?}"),
    }
    // A fresh interpreter and the refusal: far below the 1 s deadline, let
    // alone the 10 s asked for.
    assert!(
        took < Duration::from_millis(interpreter_limits().deadline_ms),
        "refused at once, not at the deadline: {took:?}"
    );
    still_works(&sandbox);
}

/// Polling the clock until it moves: it never does, so fuel or the deadline
/// ends the loop (whichever comes first: each read is a host call, slow in a
/// debug build), and nothing waits past the deadline's tick.
#[test]
fn polling_the_frozen_clock_ends_by_fuel_or_deadline() {
    let sandbox = sandbox(Limits::default());
    let limits = interpreter_limits();
    let (failure, took) = timed_hostile(&sandbox, "test.poll");
    assert!(
        failure == PluginFailure::OutOfFuel { fuel: limits.fuel }
            || failure == PluginFailure::deadline(limits.deadline_ms),
        "{failure:?}"
    );
    // The deadline plus the epoch tick, and room for a loaded machine.
    assert!(
        took < Duration::from_millis(limits.deadline_ms * 2),
        "{took:?}"
    );
    still_works(&sandbox);
}

#[test]
fn python_sees_the_deterministic_world() {
    let sandbox = sandbox(Limits::default());
    let plugin = sandbox.load(&python::component(HOSTILE_PY), None).unwrap();
    let seen = |id: &str| {
        sandbox
            .evaluate(&plugin, &action(id, "test.ambient", json!({})))
            .unwrap()
            .outcome
            .unwrap()
            .classification
            .reasons
    };
    let first = seen("action-1");
    assert_eq!(
        first,
        seen("action-1"),
        "same action, same world: {first:?}"
    );
    assert_eq!(first[0], "env=", "no environment");
    let requested_ms = "2026-11-25T10:00:00Z"
        .parse::<chrono::DateTime<chrono::Utc>>()
        .unwrap()
        .timestamp_millis();
    assert_eq!(
        first[1],
        format!("now_ms={requested_ms}"),
        "the clock reads requested-at"
    );
    let second = seen("action-2");
    assert_ne!(first[2], second[2], "random is seeded from the action id");
    assert_ne!(first[3], second[3], "so is os.urandom");
    assert_eq!(
        first[4], "cwd_files=FileNotFoundError",
        "no directory at all: {first:?}"
    );
    // `random` is seeded at its first draw (the SDK's lazy seeding), also
    // through a name the plugin imported while the snapshot was taken.
    assert_ne!(first[5], second[5], "randint bound at import: {first:?}");
}

#[test]
fn every_evaluation_is_a_fresh_interpreter() {
    let sandbox = sandbox(Limits::default());
    let plugin = sandbox.load(&python::component(HOSTILE_PY), None).unwrap();
    for id in ["s-1", "s-2", "s-3"] {
        let decision = sandbox
            .evaluate(&plugin, &action(id, "test.state", json!({})))
            .unwrap()
            .outcome
            .unwrap();
        assert_eq!(
            decision.classification.reasons,
            ["calls=1"],
            "a module global starts over"
        );
    }
}

/// An instance prepared ahead of its action (`prepared.rs`) decides as one
/// made for it would: same world (clock, random, no files), same fuel, a fresh
/// interpreter every time, failures alike; and evaluations do take them.
#[test]
fn a_prepared_instance_decides_as_a_new_one_would() {
    let ahead = sandbox(Limits::default());
    let cold = Sandbox::new(SandboxConfig {
        cache_dir: Some(actiongate_tests::cache_dir()),
        prepared_plugins: 0,
        ..SandboxConfig::default()
    })
    .unwrap();
    let bytes = python::component(HOSTILE_PY);
    let (on_ahead, on_cold) = (
        ahead.load(&bytes, None).unwrap(),
        cold.load(&bytes, None).unwrap(),
    );
    let kinds = [
        "test.ambient",
        "test.ambient",
        "test.state",
        "test.state",
        "test.loop",
        "test.file",
    ];
    for (i, kind) in kinds.into_iter().enumerate() {
        assert!(
            ahead.wait_prepared(&on_ahead, Duration::from_secs(30)),
            "an instance is prepared"
        );
        let action = action(&format!("ahead-{i}"), kind, json!({}));
        let (w, c) = (
            ahead.evaluate(&on_ahead, &action).unwrap(),
            cold.evaluate(&on_cold, &action).unwrap(),
        );
        assert_eq!(w.outcome, c.outcome, "{kind}");
        assert_eq!(w.fuel_used, c.fuel_used, "{kind}: the same work");
        if kind == "test.state" {
            assert_eq!(w.outcome.unwrap().classification.reasons, ["calls=1"]);
        }
    }
    let counts = ahead.prepared_counts();
    assert_eq!((counts.taken, counts.missed), (kinds.len() as u64, 0));
    assert!(
        !cold.wait_prepared(&on_cold, Duration::ZERO),
        "none prepared"
    );
    assert_eq!(cold.prepared_counts().taken, 0);
}

/// Each prepared instance holds a pool slot, so only `prepared_plugins`
/// plugins have one at a time; the others' actions make their own.
#[test]
fn instances_are_prepared_for_at_most_prepared_plugins() {
    let sandbox = Sandbox::new(SandboxConfig {
        cache_dir: Some(actiongate_tests::cache_dir()),
        prepared_plugins: 1,
        ..SandboxConfig::default()
    })
    .unwrap();
    let first = sandbox.load(&python::component(HOSTILE_PY), None).unwrap();
    assert!(sandbox.wait_prepared(&first, Duration::from_secs(30)));
    let second = sandbox
        .load(&python::component(DB_EXPORT_PY), None)
        .unwrap();
    assert!(
        !sandbox.wait_prepared(&second, Duration::from_millis(1500)),
        "the one prepared instance is the first plugin's"
    );
    // It still decides, on an instance made for its action.
    still_works(&sandbox);
    let counts = sandbox.prepared_counts();
    assert_eq!((counts.taken, counts.missed), (0, 1));
}

/// With every prepared slot taken, an instance that has waited
/// `prepared_idle_seconds` for its plugin's next action (one unbound since,
/// say) gives its slot to a plugin whose action found none; a fresher one
/// keeps it.
#[test]
fn an_instance_left_waiting_gives_its_slot_to_a_plugin_in_use() {
    let sandbox = Sandbox::new(SandboxConfig {
        cache_dir: Some(actiongate_tests::cache_dir()),
        prepared_plugins: 1,
        prepared_idle_seconds: 2,
        ..SandboxConfig::default()
    })
    .unwrap();
    let idle = sandbox.load(&python::component(HOSTILE_PY), None).unwrap();
    assert!(sandbox.wait_prepared(&idle, Duration::from_secs(30)));
    let used = sandbox
        .load(&python::component(DB_EXPORT_PY), None)
        .unwrap();
    // At once: the first plugin's instance is fresh and keeps its slot.
    still_works(&sandbox);
    assert!(
        !sandbox.wait_prepared(&used, Duration::from_millis(500)),
        "a fresh instance is not evicted"
    );
    assert!(sandbox.wait_prepared(&idle, Duration::ZERO));
    // Once it has waited longer than prepared_idle_seconds, the next action
    // of the plugin in use takes the slot.
    std::thread::sleep(Duration::from_millis(2100));
    still_works(&sandbox);
    assert!(
        sandbox.wait_prepared(&used, Duration::from_secs(30)),
        "the plugin in use gets the slot"
    );
    assert!(
        !sandbox.wait_prepared(&idle, Duration::ZERO),
        "the instance left waiting was dropped"
    );
    let counts = sandbox.prepared_counts();
    assert_eq!((counts.taken, counts.missed), (0, 2));
    // And the plugin in use now decides on it.
    still_works(&sandbox);
    assert_eq!(sandbox.prepared_counts().taken, 1);
}

#[test]
fn limits_are_set_per_plugin_by_name_or_sha256() {
    let bytes = python::component(HOSTILE_PY);
    let small = |key: String| {
        Sandbox::new(SandboxConfig {
            cache_dir: Some(actiongate_tests::cache_dir()),
            plugin_limits: [(
                key,
                LimitsOverride {
                    fuel: Some(30_000_000),
                    ..LimitsOverride::default()
                },
            )]
            .into(),
            ..SandboxConfig::default()
        })
        .unwrap()
    };
    for key in [
        "hostile-py".to_string(),
        actiongate::sandbox::sha256_hex(&bytes),
    ] {
        let sandbox = small(key.clone());
        let plugin = sandbox.load(&bytes, None).unwrap();
        assert_eq!(plugin.limits.fuel, 30_000_000, "{key}");
        assert_eq!(
            plugin.limits.memory_bytes,
            interpreter_limits().memory_bytes,
            "{key}: what it does not set stays the interpreter's"
        );
        let failure = sandbox
            .evaluate(&plugin, &action("l-1", "test.loop", json!({})))
            .unwrap()
            .outcome
            .unwrap_err();
        assert_eq!(failure, PluginFailure::OutOfFuel { fuel: 30_000_000 });
    }
}

// ---------------------------------------------------------------------------
// Through the service: registered signed, bound, shadowed, replayed.

mod service {
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::time::Duration;

    use actiongate::evidence::EventKind;
    use actiongate::examples::example;
    use actiongate::sandbox::sha256_hex;
    use actiongate::store::KeyRole;
    use actiongate_tests::caller::Caller;
    use actiongate_tests::python;
    use actiongate_tests::server::TestServer;
    use reqwest::StatusCode;
    use serde_json::{json, Value};

    /// Runs `actiongate ARGS…` in-process; returns its exit code and output.
    async fn cli(args: &[&str]) -> (u8, String) {
        let cli = <actiongate::cli::Cli as clap::Parser>::try_parse_from(
            std::iter::once("actiongate").chain(args.iter().copied()),
        )
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let mut out = Vec::new();
        let code = actiongate::cli::run(cli, &mut out).await;
        (code, String::from_utf8(out).unwrap())
    }

    fn ssh_keygen(args: &[&str]) {
        let out = Command::new("ssh-keygen").args(args).output().unwrap();
        assert!(out.status.success(), "ssh-keygen {args:?}: {out:?}");
    }

    /// A new ed25519 key `dir/name`; signs `file` with it into `file.sig`.
    fn signed(dir: &Path, file: &Path) -> (PathBuf, String) {
        let key = dir.join("alice");
        let key_str = key.to_str().unwrap();
        ssh_keygen(&[
            "-q", "-t", "ed25519", "-N", "", "-C", "alice", "-f", key_str,
        ]);
        ssh_keygen(&[
            "-Y",
            "sign",
            "-n",
            "actiongate-plugin",
            "-f",
            key_str,
            file.to_str().unwrap(),
        ]);
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        (
            file.with_extension("wasm.sig"),
            format!("alice@example.com {public}"),
        )
    }

    async fn events(server: &TestServer, kind: EventKind, action: &str) -> Vec<Value> {
        let log = &server.app.evidence;
        log.events_for_action(action.parse().unwrap())
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.payload)
            .collect()
    }

    #[tokio::test]
    async fn a_python_plugin_is_registered_signed_bound_shadowed_and_replayed() {
        let keys = tempfile::tempdir().unwrap();
        let wasm = keys.path().join("db_export_py.wasm");
        std::fs::copy(python::build(super::DB_EXPORT_PY), &wasm).unwrap();
        let python_sha = sha256_hex(&std::fs::read(&wasm).unwrap());
        let rust_sha = sha256_hex(example("db-export").unwrap().wasm);
        let (signature, signers) = signed(keys.path(), &wasm);
        let signers_file = keys.path().join("allowed_signers");
        std::fs::write(&signers_file, signers).unwrap();
        let server = TestServer::start_with(|c| {
            c.plugins.require_signature = true;
            c.plugins.allowed_signers = Some(signers_file.clone());
        })
        .await;
        let admin = server
            .key(KeyRole::Approver, "demo-owner@example.com")
            .await;
        let as_admin = |args: &[&str]| {
            let mut all = args.to_vec();
            all.extend(["--url", &server.url, "--key", &admin]);
            all.iter().map(|s| s.to_string()).collect::<Vec<_>>()
        };

        // Registered: signature checked, then the Rust plugin's case file run
        // by the server, then stored by sha256.
        let cases = python::root().join("plugins/examples/db-export/cases.toml");
        let args = as_admin(&[
            "plugin",
            "register",
            wasm.to_str().unwrap(),
            "--signature",
            signature.to_str().unwrap(),
            "--cases",
            cases.to_str().unwrap(),
        ]);
        let (code, out) = cli(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
        assert_eq!(code, 0, "{out}");
        assert!(
            out.contains(&python_sha) && out.contains("signed by alice@example.com"),
            "{out}"
        );

        // Bound live, with the Rust db-export as its shadow.
        let args = as_admin(&["bind", "db.export", &python_sha, "--shadow", &rust_sha]);
        let (code, out) = cli(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
        assert_eq!(code, 0, "{out}");

        let agent = Caller::agent(&server, "etl-agent", "owner@example.com").await;
        let submit = |rows: u64, table: &str, destination: &str| {
            let body = json!({"kind": "db.export", "resource": "postgres://prod/warehouse",
                "params": {"rows": rows, "tables": [table], "destination": destination}});
            let agent = &agent;
            async move { agent.post("/v1/actions", body).await }
        };
        let (status, allowed) = submit(500, "orders", "s3://corp-analytics/q").await;
        assert_eq!(status, StatusCode::OK, "{allowed}");
        let (status, pending) = submit(250_000, "customers", "s3://corp-analytics/q").await;
        assert_eq!(status, StatusCode::ACCEPTED, "{pending}");
        assert_eq!(pending["approval"]["quorum"], 2, "{pending}");
        let (status, denied) = submit(10, "users", "https://paste.example.net").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{denied}");
        // /metrics counts the Python plugin's evaluations by whether an
        // instance prepared ahead was ready: at least these three.
        let metrics = agent.get("/metrics").await.text().await.unwrap();
        let total = |found: &str| -> u64 {
            let line = format!("actiongate_prepared_instances_total{{found=\"{found}\"}} ");
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(line.as_str()))
                .unwrap_or_else(|| panic!("{line} in {metrics}"))
                .parse()
                .unwrap()
        };
        assert!(total("ready") + total("none") >= 3, "{metrics}");

        let ids: Vec<String> = [&allowed, &pending, &denied]
            .iter()
            .map(|a| a["action_id"].as_str().unwrap().to_owned())
            .collect();
        for id in &ids {
            let evaluated = events(&server, EventKind::Evaluated, id).await;
            let live = &evaluated[0];
            assert_eq!(live["plugin"]["sha256"], python_sha.as_str());
            assert_eq!(live["plugin"]["name"], "db-export-py");
            assert_eq!(
                live["limits"]["memory_bytes"],
                super::interpreter_limits().memory_bytes,
                "the interpreter's limits are the ones recorded"
            );
            let mut shadow = Vec::new();
            for _ in 0..100 {
                shadow = events(&server, EventKind::ShadowEvaluated, id).await;
                if !shadow.is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let shadow = shadow.first().expect("the shadow is recorded");
            assert_eq!(shadow["plugin"]["sha256"], rust_sha.as_str());
            assert_eq!(
                shadow["output"], live["output"],
                "the Rust shadow agrees with the live Python plugin"
            );
        }

        // Replayed on the stored bytes, under the recorded limits.
        let config = server.path().join("audit.toml");
        let c = &server.config;
        std::fs::write(
            &config,
            format!(
                "[evidence]\norigin = {:?}\nkey_path = {:?}\n\n[sandbox]\ncache_dir = {:?}\n",
                c.evidence.origin,
                c.evidence.key_path,
                actiongate_tests::cache_dir(),
            ),
        )
        .unwrap();
        let audit = |id: &str| {
            let (config, url, id) = (
                config.to_str().unwrap().to_owned(),
                server.database_url.clone(),
                id.to_owned(),
            );
            async move {
                cli(&[
                    "--config",
                    &config,
                    "--database-url",
                    &url,
                    "audit",
                    "replay",
                    &id,
                ])
                .await
            }
        };
        for id in &ids {
            let (code, out) = audit(id).await;
            assert_eq!(code, 0, "{out}");
            assert!(out.contains("replayed: 1, match: 1"), "{out}");
            assert!(
                out.contains("MATCH    seq")
                    && out.contains(&format!("(db-export-py 1.0.0 sha256:{python_sha})")),
                "{out}"
            );
        }
    }
}

fn interpreter_limits() -> Limits {
    LimitsOverride::interpreter_default().over(&Limits::default())
}
