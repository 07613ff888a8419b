//! One kind grammar at every door: submitted kinds, binding patterns (admin
//! API) and the reserved host prefix, over real HTTP against Postgres. No
//! spelling of `db.export` reaches a plugin other than db-export's.

use actiongate::store::KeyRole;
use actiongate_tests::caller::Caller;
use actiongate_tests::server::TestServer;
use reqwest::StatusCode;
use serde_json::{json, Value};

const RULE: &str = "lowercase ASCII segments of a-z, 0-9, `_` and `-`, joined by single dots";

/// A critical export (PII, 250k rows): db-export holds it for two data owners.
fn critical_export(kind: &str) -> Value {
    json!({"kind": kind, "resource": "postgres://prod/warehouse",
           "params": {"rows": 250_000, "tables": ["customers"], "destination": "s3://corp-analytics/x"}})
}

#[tokio::test]
async fn every_other_spelling_of_a_kind_is_a_400_naming_the_rule() {
    let server = TestServer::start().await;
    let agent = Caller::agent(&server, "etl", "owner@example.com").await;
    let log = &server.app.evidence;

    // The kind as it is spelled reaches db-export: two data owners.
    let (status, held) = agent
        .post("/v1/actions", critical_export("db.export"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{held}");
    assert_eq!(held["approval"]["quorum"], 2, "{held}");
    assert_eq!(held["approval"]["groups"], json!(["data-owners"]));

    let before = log.committed_size().await.unwrap();
    let variants = [
        "DB.EXPORT",
        "Db.Export",
        "db.EXPORT",
        "db.export ",
        " db.export",
        "db. export",
        "db.export\n",
        "db.export\t",
        "db\u{200b}.export",
        "db.export\u{200d}",
        "\u{feff}db.export",
        "db.ex\u{0440}ort",
        "db.\u{0435}xport",
        "db.export.",
        ".db.export",
        "db..export",
        "db\u{ff0e}export",
        "db\u{2024}export",
        "db/export",
        "db:export",
        "db export",
        "db.exp\u{f6}rt",
        "db.e\u{301}xport",
        "\u{ff24}\u{ff22}.export",
        "db.export\u{0}",
        "db\u{0}.export",
        "db.export\u{7}",
        "db.export\u{1b}[0m",
        "db.export\u{7f}",
        "db.*",
        "",
    ];
    for kind in variants {
        let (status, problem) = agent.post("/v1/actions", critical_export(kind)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{kind:?}: {problem}");
        assert_eq!(
            problem["type"], "urn:actiongate:problem:invalid-kind",
            "{kind:?}"
        );
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.starts_with("kind: ") && detail.contains(RULE),
            "{kind:?}: {detail}"
        );
        // Control characters are named, never echoed.
        assert!(
            !detail.chars().any(|c| c.is_control()),
            "{kind:?}: {detail}"
        );
    }
    let too_long = format!("db.{}", "x".repeat(200));
    let (status, problem) = agent.post("/v1/actions", critical_export(&too_long)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("203 characters"),
        "{problem}"
    );

    // The reserved prefix is checked on the validated kind: any other
    // spelling of it is not a kind at all, and the kind itself is reserved.
    for kind in [
        "Actiongate.bind",
        " actiongate.bind",
        "ACTIONGATE.BIND",
        "actiongate.bind\u{0}",
    ] {
        let (status, problem) = agent
            .post(
                "/v1/actions",
                json!({"kind": kind, "resource": "y", "params": {}}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{kind:?}");
        assert_eq!(
            problem["type"], "urn:actiongate:problem:invalid-kind",
            "{kind:?}"
        );
    }
    for kind in ["actiongate.bind", "actiongate"] {
        let (status, problem) = agent
            .post(
                "/v1/actions",
                json!({"kind": kind, "resource": "y", "params": {}}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{kind:?}");
        assert!(
            problem["detail"].as_str().unwrap().contains("host's own"),
            "{problem}"
        );
    }

    // Nothing was evaluated or recorded for any of them.
    assert_eq!(log.committed_size().await.unwrap(), before);
    assert_eq!(server.app.gate.store().count_pending().await.unwrap(), 1);

    // `db_export` is a valid kind of its own, so the catch-all decides it,
    // as it does any kind nobody bound.
    let (status, other) = agent
        .post("/v1/actions", critical_export("db_export"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{other}");
    assert_eq!(other["kind"], "db_export");
    assert_eq!(
        other["approval"]["groups"],
        json!(["default-approvers"]),
        "{other}"
    );
}

#[tokio::test]
async fn binding_patterns_follow_the_kind_grammar() {
    let server = TestServer::start().await;
    let admin = Caller::new(
        &server,
        server
            .key(KeyRole::Approver, "demo-owner@example.com")
            .await,
    );
    let db_export = server
        .app
        .gate
        .store()
        .current_bindings()
        .await
        .unwrap()
        .into_iter()
        .find(|b| b.pattern == "db.export")
        .unwrap()
        .sha256;
    let before = server.app.evidence.committed_size().await.unwrap();
    for pattern in [
        "DB.*",
        "db.export ",
        "db.ex*",
        "db.[ab]",
        "db.?",
        "db..*",
        "db\u{200b}.*",
        "",
    ] {
        let (status, problem) = admin
            .post(
                "/v1/admin/bindings",
                json!({"pattern": pattern, "sha256": db_export, "reason": "test"}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{pattern:?}: {problem}");
        assert_eq!(
            problem["type"], "urn:actiongate:problem:invalid-kind",
            "{pattern:?}"
        );
        assert!(
            problem["detail"].as_str().unwrap().contains(RULE),
            "{problem}"
        );
    }
    assert_eq!(server.app.evidence.committed_size().await.unwrap(), before);

    // A whole-segment glob is a pattern.
    let (status, answer) = admin
        .post(
            "/v1/admin/bindings",
            json!({"pattern": "db.*", "sha256": db_export, "reason": "test"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

/// A plugin's declared kinds follow the grammar too: one that declares
/// look-alikes of `db.export` is refused at registration, and nothing of it
/// is stored or recorded.
#[tokio::test]
async fn a_plugin_declaring_kinds_outside_the_grammar_is_not_registered() {
    use base64::Engine as _;
    let server = TestServer::start().await;
    let admin = Caller::new(
        &server,
        server
            .key(KeyRole::Approver, "demo-owner@example.com")
            .await,
    );
    let wasm = actiongate_tests::component("fixture_odd_kinds");
    let sha256 = actiongate::sandbox::sha256_hex(&wasm);
    let before = server.app.evidence.committed_size().await.unwrap();
    let (status, problem) = admin
        .post(
            "/v1/admin/plugins",
            json!({"wasm_base64": base64::engine::general_purpose::STANDARD.encode(&wasm)}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem["type"], "urn:actiongate:problem:invalid-kind");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("declares kind \"DB.Export\"") && detail.contains(RULE),
        "{detail}"
    );
    assert!(!server.app.gate.store().has_plugin(&sha256).await.unwrap());
    assert_eq!(server.app.evidence.committed_size().await.unwrap(), before);
}
