//! I-JSON (RFC 7493) at the edge, over real HTTP on loopback against
//! Postgres: duplicate keys, numbers that do not round-trip through an IEEE
//! double and invalid Unicode are refused with 400 naming the field before
//! anything is evaluated or recorded, on submissions, reviews, outcomes, the
//! admin API and the CLI's `approvals modify --params`; what is accepted reads
//! the same in Python (`json` + the `rfc8785` package) as in the host, down to
//! the canonical form and the digest; and a refusal that retrying cannot fix
//! is never a 503.

use std::collections::BTreeMap;

use actiongate::api::Problem;
use actiongate::gate::Submission;
use actiongate::store::KeyRole;
use actiongate_tests::caller::Caller;
use actiongate_tests::run_python;
use actiongate_tests::server::TestServer;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// POSTs `body` exactly as given (duplicate keys cannot be built as a `Value`).
async fn post_raw(caller: &Caller, path: &str, body: &str) -> (StatusCode, String, Value) {
    let response = caller
        .client
        .post(format!("{}{path}", caller.base))
        .bearer_auth(&caller.key)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    (status, content_type, response.json().await.unwrap())
}

/// Asserts a 400 problem+json whose detail starts with `field: ` and
/// contains `advice`.
async fn assert_refused(caller: &Caller, path: &str, body: &str, field: &str, advice: &str) {
    let (status, content_type, problem) = post_raw(caller, path, body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {problem}");
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(problem["status"], 400);
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(&format!("{field}: ")),
        "{body}: want the field {field:?} named first: {detail}"
    );
    assert!(
        detail.contains(advice),
        "{body}: want {advice:?} in: {detail}"
    );
}

/// The evidence log's size and the number of evaluations so far: what a
/// refusal at the edge must leave as it was. Read until it holds still, so
/// that nothing still being appended for an earlier request counts.
async fn footprint(server: &TestServer) -> (u64, u64) {
    let mut last = read_footprint(server).await;
    for _ in 0..25 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let now = read_footprint(server).await;
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("the log kept growing: {last:?}")
}

async fn read_footprint(server: &TestServer) -> (u64, u64) {
    let size = server.app.evidence.committed_size().await.unwrap();
    let evaluations = server.metric("actiongate_evaluation_seconds_count").await;
    (size, evaluations)
}

/// A `db.export` submission with `params` spliced in as raw text.
fn export_with(params: &str) -> String {
    format!(
        r#"{{"kind":"db.export","resource":"postgres://prod/warehouse","params":{params},"justification":"churn model"}}"#
    )
}

const HELD_PARAMS: &str =
    r#"{"rows":250000,"tables":["customers"],"destination":"s3://corp-analytics/churn"}"#;

#[tokio::test]
async fn submissions_that_parsers_read_differently_are_refused_before_evaluation() {
    let server = TestServer::start().await;
    let agent = Caller::agent(&server, "etl-agent", "owner@example.com").await;
    let before = footprint(&server).await;
    let dest = r#""tables":["customers"],"destination":"s3://corp-analytics/churn""#;
    let cases = [
        // The issue's two reports: a 64-bit number, and a duplicate key that
        // a first-key-wins parser reads as 250,000 rows.
        (
            export_with(&format!(r#"{{"rows":9007199254740993,{dest}}}"#)),
            "params.rows",
            r#"send it as a string ("9007199254740993")"#,
        ),
        (
            export_with(&format!(r#"{{"rows":250000,"rows":1,{dest}}}"#)),
            "params.rows",
            "send each key once",
        ),
        (
            export_with(&format!(
                r#"{{"rows":5,"filter":{{"ids":[1,18446744073709551615]}},{dest}}}"#
            )),
            "params.filter.ids[1]",
            r#"send it as a string ("18446744073709551615")"#,
        ),
        (
            export_with(&format!(r#"{{"rows":1e19,{dest}}}"#)),
            "params.rows",
            r#"send it as a string ("1e19")"#,
        ),
        (
            export_with(&format!(
                r#"{{"rows":5,"ratio":3.141592653589793238462643383279,{dest}}}"#
            )),
            "params.ratio",
            "send 3.141592653589793, or the number as a string",
        ),
        (
            export_with(&format!(r#"{{"rows":5,"ratio":1e-400,{dest}}}"#)),
            "params.ratio",
            "more precision than an IEEE double",
        ),
        // Already refused before, and still, now by the same check.
        (
            export_with(&format!(r#"{{"rows":1e400,{dest}}}"#)),
            "params.rows",
            "send it as a string",
        ),
        (
            export_with(r#"{"rows":5,"tables":["customers"],"destination":"s3://x\ud800"}"#),
            "params.destination",
            "send valid UTF-8",
        ),
        (
            export_with(&format!(r#"{{"rows":5,"note":"\ufdd0",{dest}}}"#)),
            "params.note",
            "noncharacter U+FDD0",
        ),
        // Outside params too: every field of the body.
        (
            format!(
                r#"{{"kind":"ops.restart","kind":"db.export","resource":"r","params":{HELD_PARAMS}}}"#
            ),
            "kind",
            "send each key once",
        ),
        (
            format!(
                r#"{{"kind":"db.export","resource":"r","params":{HELD_PARAMS},"context":{{"session":"a","session":"b"}}}}"#
            ),
            "context.session",
            "send each key once",
        ),
    ];
    for (body, field, advice) in &cases {
        assert_refused(&agent, "/v1/actions", body, field, advice).await;
    }
    assert_eq!(
        footprint(&server).await,
        before,
        "nothing evaluated, nothing recorded"
    );
    assert_eq!(server.app.gate.store().count_pending().await.unwrap(), 0);

    // The same submission with numbers every parser reads alike is decided
    // and recorded (so the counts above could have moved).
    let (status, _, answer) = post_raw(&agent, "/v1/actions", &export_with(HELD_PARAMS)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let after = footprint(&server).await;
    assert!(
        after.0 > before.0 && after.1 > before.1,
        "{before:?} -> {after:?}"
    );
}

#[tokio::test]
async fn reviews_with_such_params_are_refused_and_change_nothing() {
    let server = TestServer::start().await;
    let agent = Caller::agent(&server, "etl-agent", "owner@example.com").await;
    let dana = Caller::approver(&server, "dana@example.com").await;
    let (status, _, held) = post_raw(&agent, "/v1/actions", &export_with(HELD_PARAMS)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{held}");
    let id = held["action_id"].as_str().unwrap();
    let reviews = format!("/v1/approvals/{id}/reviews");
    let before = footprint(&server).await;
    let cases = [
        (
            r#"{"decision":"modify","reason":"fewer","params":{"rows":9007199254740993}}"#,
            "params.rows",
            r#"send it as a string ("9007199254740993")"#,
        ),
        (
            r#"{"decision":"modify","reason":"fewer","params":{"rows":10,"rows":250000}}"#,
            "params.rows",
            "send each key once",
        ),
        (
            r#"{"decision":"modify","reason":"fewer","params":{"rows":10.000000000000000001}}"#,
            "params.rows",
            "send 10, or the number as a string",
        ),
        (
            r#"{"decision":"deny","decision":"approve","reason":"ok"}"#,
            "decision",
            "send each key once",
        ),
        (
            r#"{"decision":"approve","reason":"ok \udfff"}"#,
            "reason",
            "send valid UTF-8",
        ),
    ];
    for (body, field, advice) in cases {
        assert_refused(&dana, &reviews, body, field, advice).await;
    }
    assert_eq!(
        footprint(&server).await,
        before,
        "nothing evaluated or recorded"
    );
    let status: Value = agent
        .get(&format!("/v1/actions/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["state"], "pending");
    assert_eq!(status["digest"], held["digest"], "the action is unchanged");

    // The modify with a number every parser reads alike goes through.
    let (status, _, answer) = post_raw(
        &dana,
        &reviews,
        r#"{"decision":"modify","reason":"fewer","params":{"rows":10}}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_ne!(answer["digest"], held["digest"]);
}

#[tokio::test]
async fn outcomes_and_admin_calls_are_checked_too() {
    let server = TestServer::start_with(|c| {
        c.directory.groups.insert(
            "policy-admins".into(),
            vec!["dana@example.com".into(), "sam@example.com".into()],
        );
    })
    .await;
    let agent = Caller::agent(&server, "etl-agent", "owner@example.com").await;
    let (status, _, allowed) = post_raw(
        &agent,
        "/v1/actions",
        &export_with(r#"{"rows":500,"tables":["orders"],"destination":"s3://corp-analytics/x"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{allowed}");
    let id = allowed["action_id"].as_str().unwrap();
    let grant = allowed["grant"].as_str().unwrap();
    let outcome = format!("/v1/actions/{id}/outcome");
    let before = footprint(&server).await;
    assert_refused(
        &agent,
        &outcome,
        &format!(
            r#"{{"grant":"{grant}","status":"failed","status":"succeeded","summary":"done"}}"#
        ),
        "status",
        "send each key once",
    )
    .await;
    assert_refused(
        &agent,
        &outcome,
        &format!(r#"{{"grant":"{grant}","status":"succeeded","summary":"done","logs":"\ud83d"}}"#),
        "logs",
        "send valid UTF-8",
    )
    .await;

    let dana = Caller::new(
        &server,
        server.key(KeyRole::Approver, "dana@example.com").await,
    );
    let a = "a".repeat(64);
    let b = "b".repeat(64);
    assert_refused(
        &dana,
        "/v1/admin/bindings",
        &format!(r#"{{"pattern":"db.export","sha256":"{a}","sha256":"{b}","reason":"x"}}"#),
        "sha256",
        "send each key once",
    )
    .await;
    assert_eq!(footprint(&server).await, before, "nothing recorded");

    // The outcome, sent once per key, is recorded and consumes the grant.
    let (status, _, done) = post_raw(
        &agent,
        &outcome,
        &format!(r#"{{"grant":"{grant}","status":"succeeded","summary":"done"}}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["state"], "executed");
}

/// `actiongate approvals modify --params` refuses locally, naming the field
/// and what to send, and sends nothing; a good `--params` goes through.
#[tokio::test]
async fn cli_modify_refuses_params_locally() {
    let server = TestServer::start().await;
    let agent = Caller::agent(&server, "etl-agent", "owner@example.com").await;
    let dana = server.key(KeyRole::Approver, "dana@example.com").await;
    let (status, _, held) = post_raw(&agent, "/v1/actions", &export_with(HELD_PARAMS)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{held}");
    let id = held["action_id"].as_str().unwrap().to_string();
    let bin = std::env::var("ACTIONGATE_BIN")
        .expect("ACTIONGATE_BIN names the built actiongate binary (tests/run sets it)");
    let modify = |params: &str| {
        tokio::process::Command::new(&bin)
            .args(["approvals", "modify", &id, "--params", params])
            .args([
                "--reason",
                "fewer rows",
                "--url",
                &server.url,
                "--key",
                &dana,
            ])
            .output()
    };
    let before = footprint(&server).await;
    for (params, want) in [
        (
            r#"{"rows": 9007199254740993}"#,
            "--params was not sent: params.rows: the number 9007199254740993 is beyond ±9007199254740991 (2^53−1)",
        ),
        (
            r#"{"rows": 10, "rows": 250000}"#,
            "--params was not sent: params.rows: the key appears more than once",
        ),
        (r#"{"rows": 10"#, "--params is not JSON: EOF while parsing"),
    ] {
        let out = modify(params).await.unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{params}: {stderr}");
        assert!(stderr.contains(want), "{params}: want {want:?} in {stderr}");
    }
    assert_eq!(
        footprint(&server).await,
        before,
        "nothing reached the server"
    );

    let out = modify(r#"{"rows": 10}"#).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&id), "{stdout}");
}

/// Bodies the host accepts, fed to the host over HTTP and to Python's `json`
/// with the `rfc8785` package: the canonical params and the action digest
/// come out the same. Floats, exponents, negative zero, the safe-integer
/// limits, escapes, astral characters and keys that sort differently by
/// UTF-16 than by code point are all in it.
#[tokio::test]
async fn python_reads_accepted_bodies_to_the_same_canonical_form_and_digest() {
    let server = TestServer::start().await;
    let agent = Caller::agent(&server, "etl-agent", "owner@example.com").await;
    let mut params = vec![
        r#"{"rows":9007199254740991,"min":-9007199254740991,"zero":0,"negzero":-0,"f":-0.0}"#.to_string(),
        r#"{"f":[0.1,4.50,2e-3,1E-7,1e-6,5e-324,2.2250738585072014e-308,1E2,1e+15,123456789.125,0.30000000000000004,9007199254740991.0,-1.5]}"#.to_string(),
        r#"{"numbers":[333333333.3333333,1E-27,4.5,0.002],"string":"\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/","literals":[null,true,false]}"#.to_string(),
        r#"{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}"#.to_string(),
        "{\"raw\":\"é😀\u{2028}\u{2029}</script>\",\"ctl\":\"\\u0000\\u001f\\u007f\",\"e\":\"\",\"nest\":[[[{}]],{\"a\":[]}]}".to_string(),
    ];
    // Doubles and integers from all over the accepted range, written the
    // way JavaScript and Python print them.
    let mut x: u64 = 0x853c_49e6_748f_ea9b;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut spread = Vec::new();
    while spread.len() < 300 {
        let f = f64::from_bits(next());
        if f.is_finite() && f.abs() <= 9007199254740991.0 {
            spread.push(serde_json::to_string(&f).unwrap());
        }
        let i = (next() >> 11) as i64 - (1 << 52);
        spread.push(i.to_string());
        spread.push(format!("{:e}", f64::from_bits(next() >> 2).min(1e15)));
    }
    params.push(format!(r#"{{"spread":[{}]}}"#, spread.join(",")));
    let bodies: Vec<String> = params
        .iter()
        .map(|p| {
            format!(
                r#"{{"kind":"crm.note","resource":"crm://acme/\u00e9","params":{p},"justification":"caf\u00e9 \ud83d\ude00","context":{{"session":"s-1","prompt":"\u2028"}}}}"#
            )
        })
        .collect();

    let mut lines = String::new();
    let mut host = Vec::new();
    for body in &bodies {
        let (status, _, answer) = post_raw(&agent, "/v1/actions", body).await;
        assert!(
            matches!(status.as_u16(), 200 | 202 | 403),
            "{body} -> {status} {answer}"
        );
        let id = uuid::Uuid::parse_str(answer["action_id"].as_str().unwrap()).unwrap();
        let events = server.app.evidence.events_for_action(id).await.unwrap();
        let recorded = events[0].payload["action"].clone();
        assert_eq!(recorded["id"], answer["action_id"]);
        let canonical_params =
            actiongate::evidence::canonical::value_to_string(&recorded["params"]).unwrap();
        lines.push_str(&json!({"body": body, "recorded": recorded}).to_string());
        lines.push('\n');
        host.push((
            canonical_params,
            answer["digest"].as_str().unwrap().to_string(),
        ));
    }
    let cases = server.path().join("cases.jsonl");
    std::fs::write(&cases, lines).unwrap();
    let out = run_python("canonical_digest.py", &[cases.to_str().unwrap()])
        .unwrap_or_else(|e| panic!("canonical_digest.py: {e}"));
    let python: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(python.len(), bodies.len());
    for ((body, (params, digest)), theirs) in bodies.iter().zip(&host).zip(&python) {
        assert_eq!(
            theirs["params"],
            params.as_str(),
            "canonical params of {body}"
        );
        assert_eq!(theirs["digest"], digest.as_str(), "action digest of {body}");
    }
}

/// Evidence refused for a reason retrying cannot fix (here an integer the
/// canonical form cannot hold, handed to the gate past the edge's check,
/// which is the only way left to make one) is a 500, not a 503, and
/// nothing of it is recorded.
#[tokio::test]
async fn an_error_retrying_cannot_fix_is_not_a_503() {
    let server = TestServer::start().await;
    server
        .app
        .gate
        .store()
        .create_agent("etl-agent", "owner@example.com", &Default::default())
        .await
        .unwrap();
    let agent = server
        .app
        .gate
        .store()
        .agent("etl-agent")
        .await
        .unwrap()
        .unwrap();
    let before = server.app.evidence.committed_size().await.unwrap();
    let submission = Submission {
        kind: "db.export".into(),
        resource: "postgres://prod/warehouse".into(),
        params: json!({"rows": 9007199254740993u64, "tables": ["orders"], "destination": "s3://corp-analytics/x"}),
        justification: None,
        context: BTreeMap::new(),
        on_behalf_of: None,
    };
    let e = server
        .app
        .gate
        .submit(&agent, None, submission, None)
        .await
        .expect_err("the evidence writer refuses the number");
    assert!(!e.is_unavailable(), "{e}");
    let problem = Problem::from(e);
    assert_eq!(problem.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(server.app.evidence.committed_size().await.unwrap(), before);
    assert_eq!(server.app.gate.store().count_pending().await.unwrap(), 0);
}
