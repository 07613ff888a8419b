//! The example plugins' case files, run against the components `cargo
//! build` embedded in the host, the way `actiongate plugin test` runs them.

use actiongate::examples::EXAMPLES;
use actiongate::sandbox::Limits;

#[test]
fn every_example_passes_its_case_file() {
    let sandbox = actiongate_tests::sandbox(Limits::default());
    assert_eq!(EXAMPLES.len(), 5);
    for example in EXAMPLES {
        let results = actiongate::cases::run(&sandbox, example.wasm, example.cases).unwrap();
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
    let results = actiongate::cases::run(&sandbox, example.wasm, cases).unwrap();
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
    )
    .unwrap();
    assert_eq!(
        results[0].diffs,
        ["failure: expected deadline, got out-of-fuel"]
    );
}
