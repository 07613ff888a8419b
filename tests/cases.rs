//! The example plugins' case files, run against the components `cargo
//! build` embedded in the host, the way `actiongate plugin test` runs them.

use actiongate::examples::EXAMPLES;
use actiongate::sandbox::Limits;

#[test]
fn every_example_passes_its_case_file() {
    let sandbox = actiongate_tests::sandbox(Limits::default());
    assert_eq!(EXAMPLES.len(), 5);
    for example in EXAMPLES {
        let results = actiongate::cases::run(&sandbox, example.wasm, example.cases, None).unwrap();
        assert!(results.len() >= 2, "{} has too few cases", example.name);
        let failed: Vec<_> = results.iter().filter(|r| !r.passed()).collect();
        assert!(failed.is_empty(), "{}: {failed:#?}", example.name);
    }
}

#[test]
fn a_wrong_expectation_fails_with_a_diff() {
    let sandbox = actiongate_tests::sandbox(Limits::default());
    let example = actiongate::examples::example("db-export").unwrap();
    let cases = r#"
        [[case]]
        name = "claims a PII export is low risk"
        kind = "db.export"
        params = { rows = 100, tables = ["customers"], destination = "s3://corp-analytics/x" }
        expect = { risk = "low", route = "allow", quorum = 3 }
    "#;
    let results = actiongate::cases::run(&sandbox, example.wasm, cases, None).unwrap();
    assert_eq!(
        results[0].diffs,
        [
            "risk: expected low, got high",
            "route: expected allow, got require-approval",
            "quorum: expected 3, got 1",
        ]
    );
}

#[test]
fn an_expected_failure_kind_is_checked() {
    let sandbox = actiongate_tests::sandbox(Limits::default());
    let cases = r#"
        [[case]]
        name = "loop"
        kind = "test.x"
        expect = { failure = "deadline" }
    "#;
    let results = actiongate::cases::run(
        &sandbox,
        &actiongate_tests::component("hostile_infinite_loop"),
        cases,
        None,
    )
    .unwrap();
    assert_eq!(
        results[0].diffs,
        ["failure: expected deadline, got out-of-fuel"]
    );
}

/// Runs `actiongate plugin test WASM CASES` in-process, on the async
/// runtime as the binary does, with a config holding `config_toml`.
async fn plugin_test(fixture: &str, cases: &str, config_toml: &str) -> (u8, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("actiongate.toml");
    let cache = dir.path().join("cache");
    std::fs::write(
        &config,
        format!(
            "[sandbox]\ncache_dir = {:?}\n{config_toml}",
            cache.display().to_string()
        ),
    )
    .unwrap();
    let wasm = dir.path().join("plugin.wasm");
    std::fs::write(&wasm, actiongate_tests::component(fixture)).unwrap();
    let case_file = dir.path().join("cases.toml");
    std::fs::write(&case_file, cases).unwrap();
    let cli = <actiongate::cli::Cli as clap::Parser>::try_parse_from([
        "actiongate",
        "--config",
        config.to_str().unwrap(),
        "plugin",
        "test",
        wasm.to_str().unwrap(),
        case_file.to_str().unwrap(),
    ])
    .unwrap();
    let mut out = Vec::new();
    let code = actiongate::cli::run(cli, &mut out).await;
    (code, String::from_utf8(out).unwrap())
}

const HOSTILE_CASE: &str = r#"
    [[case]]
    name = "fails as expected"
    kind = "test.x"
    expect = { failure = "FAILURE" }
"#;

/// `plugin test` used to panic ("Cannot start a runtime from within a
/// runtime") on any plugin making a blocking WASI call, the project's own
/// panic fixtures included (their panic handler writes to stderr). It now
/// runs them as the service does, and a sleep is refused at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_test_runs_hostile_plugins_as_the_service_does() {
    for (fixture, failure) in [
        ("hostile_panic", "trap"),
        ("hostile_panic_no_std", "trap"),
        ("hostile_sleep", "deadline"),
    ] {
        let started = std::time::Instant::now();
        let (code, out) = plugin_test(fixture, &HOSTILE_CASE.replace("FAILURE", failure), "").await;
        assert_eq!(code, 0, "{fixture}: {out}");
        assert!(out.contains("PASS fails as expected"), "{fixture}: {out}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{fixture} took {:?}",
            started.elapsed()
        );
    }
}

/// With the config's directory, `plugin test` judges routes as the service
/// does: db-export's critical route needs two data owners, and this
/// directory has one, so the case fails with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_test_checks_routes_against_the_configs_directory() {
    let example = actiongate::examples::example("db-export").unwrap();
    let one_owner = r#"
        [[directory.people]]
        email = "dana@example.com"
        name = "Dana"
        [directory.groups]
        data-owners = ["dana@example.com"]
        security = ["dana@example.com"]
    "#;
    let (code, out) = plugin_test("db_export", example.cases, one_owner).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("routes checked against the config's [directory]"),
        "{out}"
    );
    assert!(
        out.contains("FAIL many personal rows are critical and need two data owners"),
        "{out}"
    );
    assert!(
        out.contains("invalid-output")
            && out.contains("quorum 2 is more than the 1 distinct member of data-owners"),
        "{out}"
    );
    assert!(
        out.contains("PASS a large export needs one data owner"),
        "{out}"
    );

    let (code, out) = plugin_test("db_export", example.cases, "").await;
    assert!(out.contains("routes NOT checked"), "{out}");
    assert_eq!(
        code, 0,
        "without a directory the cases pass as written: {out}"
    );
}

/// `plugin inspect` looks without installing: it used to compile into the
/// config's cache (`./data/plugin-cache` of the current directory by
/// default), even for a plugin it then refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_inspect_writes_no_compile_cache() {
    for (fixture, code) in [("db_export", 0), ("hostile_forbidden_import", 1)] {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let config = dir.path().join("actiongate.toml");
        std::fs::write(
            &config,
            format!("[sandbox]\ncache_dir = {:?}\n", cache.display().to_string()),
        )
        .unwrap();
        let wasm = dir.path().join("plugin.wasm");
        std::fs::write(&wasm, actiongate_tests::component(fixture)).unwrap();
        let cli = <actiongate::cli::Cli as clap::Parser>::try_parse_from([
            "actiongate",
            "--config",
            config.to_str().unwrap(),
            "plugin",
            "inspect",
            wasm.to_str().unwrap(),
        ])
        .unwrap();
        let mut out = Vec::new();
        assert_eq!(actiongate::cli::run(cli, &mut out).await, code);
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("wit:     actiongate:policy@0.1.0"), "{out}");
        assert!(
            !cache.exists(),
            "{fixture}: inspect wrote {}",
            cache.display()
        );
    }
}
