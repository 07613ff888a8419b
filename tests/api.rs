//! The agent API over real HTTP on loopback, against Postgres: decisions
//! for each example plugin, idempotency, identity, grants verified by
//! PyJWT and single use, bad input, operations endpoints.

use actiongate::evidence::EventKind;
use actiongate::store::KeyRole;
use actiongate_tests::caller::Caller;
use actiongate_tests::run_python;
use actiongate_tests::server::TestServer;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A new agent named `name`, owned by owner-of-NAME@example.com.
async fn new_agent(server: &TestServer, name: &str) -> Caller {
    Caller::agent(server, name, &format!("owner-of-{name}@example.com")).await
}

/// Submitting actions: the status, the headers and the answer.
trait Submit {
    async fn submit(&self, body: Value) -> (StatusCode, reqwest::header::HeaderMap, Value);
    async fn submit_with(
        &self,
        body: Value,
        idempotency_key: Option<&str>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value);
}

impl Submit for Caller {
    async fn submit(&self, body: Value) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        self.submit_with(body, None).await
    }

    async fn submit_with(
        &self,
        body: Value,
        idempotency_key: Option<&str>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let headers: Vec<(&str, &str)> = idempotency_key
            .map(|k| ("Idempotency-Key", k))
            .into_iter()
            .collect();
        self.post_with("/v1/actions", &body, &headers).await
    }
}

fn export(rows: u64, tables: &[&str], destination: &str) -> Value {
    json!({"kind": "db.export", "resource": "postgres://prod-analytics/warehouse",
           "params": {"rows": rows, "tables": tables, "destination": destination},
           "justification": "weekly report"})
}

#[tokio::test]
async fn each_example_plugin_allows_denies_and_holds() {
    let server = TestServer::start().await;
    let agent = new_agent(&server, "etl-agent").await;
    let cases = [
        (
            export(500, &["orders"], "s3://corp-analytics/x"),
            200,
            "allowed",
        ),
        (
            export(10, &["users"], "https://paste.example.net"),
            403,
            "denied",
        ),
        (
            export(250_000, &["customers"], "s3://corp-analytics/x"),
            202,
            "pending",
        ),
        (
            json!({"kind": "iam.revoke", "resource": "gcp://p", "params": {"principal": "a@x", "role": "roles/owner"}}),
            200,
            "allowed",
        ),
        (
            json!({"kind": "iam.grant", "resource": "gcp://p", "params": {"principal": "etl-agent", "role": "roles/viewer"}}),
            403,
            "denied",
        ),
        (
            json!({"kind": "iam.grant", "resource": "gcp://p", "params": {"principal": "a@x", "role": "roles/owner"}}),
            202,
            "pending",
        ),
        (
            json!({"kind": "ops.restart", "resource": "k8s://staging/web", "params": {}}),
            200,
            "allowed",
        ),
        (
            json!({"kind": "ops.deploy", "resource": "k8s://prod-eu/web", "params": {"version": "2"}}),
            202,
            "pending",
        ),
        (
            json!({"kind": "crm.merge-accounts", "resource": "crm://acme", "params": {}}),
            202,
            "pending",
        ),
    ];
    for (body, code, state) in cases {
        let (status, headers, answer) = agent.submit(body.clone()).await;
        assert_eq!(status.as_u16(), code, "{body} -> {answer}");
        assert_eq!(answer["state"], state, "{answer}");
        match state {
            "allowed" => assert!(
                answer["grant"].as_str().unwrap().split('.').count() == 3,
                "a compact JWS"
            ),
            "denied" => assert!(!answer["reason"].as_str().unwrap().is_empty()),
            _ => {
                assert!(answer["grant"].is_null(), "no grant before approval");
                assert!(answer["approval"]["quorum"].as_u64().unwrap() >= 1);
                let location = headers["location"].to_str().unwrap();
                assert_eq!(
                    location,
                    format!("/v1/actions/{}", answer["action_id"].as_str().unwrap())
                );
            }
        }
    }
    // The unbound kind was decided by the catch-all, and that is on record.
    let unbound = agent
        .submit(json!({"kind": "crm.delete", "resource": "crm://x", "params": {}}))
        .await
        .2;
    let id = uuid::Uuid::parse_str(unbound["action_id"].as_str().unwrap()).unwrap();
    let events = server.app.evidence.events_for_action(id).await.unwrap();
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EventKind::Submitted, EventKind::Evaluated]);
    assert_eq!(events[1].payload["plugin"]["name"], "baseline");
    assert_eq!(
        events[1].payload["plugin"]["sha256"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    assert!(events[1].payload["fuel_used"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn idempotency_key_replays_or_conflicts() {
    let server = TestServer::start().await;
    let agent = new_agent(&server, "etl-agent").await;
    let body = export(500, &["orders"], "s3://corp-analytics/x");
    let first = agent.submit_with(body.clone(), Some("k-1")).await;
    let again = agent.submit_with(body.clone(), Some("k-1")).await;
    assert_eq!(first.0, StatusCode::OK);
    assert_eq!(again.0, StatusCode::OK);
    assert_eq!(
        first.2["action_id"], again.2["action_id"],
        "the same action"
    );
    assert_eq!(first.2["grant"], again.2["grant"], "the same answer");

    let other = agent
        .submit_with(
            export(501, &["orders"], "s3://corp-analytics/x"),
            Some("k-1"),
        )
        .await;
    assert_eq!(other.0, StatusCode::CONFLICT);
    assert_eq!(other.1["content-type"], "application/problem+json");
    assert_eq!(other.2["status"], 409);

    // Keys are per agent: another agent may use the same key.
    let second = new_agent(&server, "other-agent").await;
    let theirs = second.submit_with(body, Some("k-1")).await;
    assert_eq!(theirs.0, StatusCode::OK);
    assert_ne!(theirs.2["action_id"], first.2["action_id"]);
}

/// Retries racing with one key: each request is decided and its evidence
/// committed, but only one action (and one grant) is recorded, and every
/// request gets its answer. The losers find the key taken inside the
/// evidence batch (the same INSERT, or a concurrent one) and replay.
#[tokio::test]
async fn racing_requests_with_one_key_record_one_action() {
    let server = TestServer::start().await;
    let agent = new_agent(&server, "etl-agent").await;
    let body = export(500, &["orders"], "s3://corp-analytics/race");
    let race = |key: Option<&'static str>| {
        let mut racers = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let (agent, body) = (agent.clone(), body.clone());
            racers.spawn(async move { agent.submit_with(body, key).await });
        }
        racers.join_all()
    };
    // Warm-up without a key: the plugin loaded and the server's database
    // connections open (a debug build's SCRAM handshakes are slow), so the
    // racers overlap.
    for (status, _, answer) in race(None).await {
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let answers = race(Some("race-1")).await;
    let (status, _, first) = &answers[0];
    assert_eq!(*status, StatusCode::OK, "{first}");
    for (status, _, answer) in &answers {
        assert_eq!(*status, StatusCode::OK, "{answer}");
        assert_eq!(answer["action_id"], first["action_id"]);
        assert_eq!(answer["grant"], first["grant"]);
    }
    let db = sqlx::PgPool::connect(&server.database_url).await.unwrap();
    let count = |sql: &'static str| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        count("SELECT count(*) FROM actions WHERE idempotency_key = 'race-1'").await,
        1
    );
    assert_eq!(
        count("SELECT count(*) FROM grants g JOIN actions a ON a.id = g.action_id WHERE a.idempotency_key = 'race-1'").await,
        1
    );
    // Every attempt is in the evidence, the recorded one included.
    let submitted =
        count("SELECT count(*) - 16 FROM evidence_events WHERE kind = 'submitted'").await;
    assert!((1..=16).contains(&submitted), "{submitted}");
    let id = uuid::Uuid::parse_str(first["action_id"].as_str().unwrap()).unwrap();
    let events = server.app.evidence.events_for_action(id).await.unwrap();
    assert_eq!(events[0].kind, EventKind::Submitted);
    assert_eq!(events.last().unwrap().kind, EventKind::Granted);
}

/// Evidence first, down to the WAL: every decision answered 200 survives a
/// crash of Postgres the moment the answers are in: its action, its grant's
/// single-use row and its three events. This Postgres writes asynchronous
/// commits out only every 10 s, so an answer sent before the WAL of its
/// evidence was written would be lost by the crash (tried: with the flushing
/// transaction made asynchronous, this test fails).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_decisions_survive_a_postgres_crash() {
    let pg = actiongate_tests::pg::PrivatePostgres::start_with(&["wal_writer_delay=10s"]);
    let dir = tempfile::tempdir().unwrap();
    let mut config = actiongate_tests::server::config(&pg.url(), dir.path());
    // No checkpoint during the test: its synchronous commit would flush the
    // WAL for every decision before it.
    config.evidence.checkpoint_every_seconds = 3600.0;
    config.evidence.checkpoint_every_events = 1_000_000;
    let server = TestServer::start_config(config, dir, None).await;
    let agent = new_agent(&server, "etl-agent").await;

    let mut racers = tokio::task::JoinSet::new();
    for i in 0..24 {
        let agent = agent.clone();
        let body = export(500, &["orders"], &format!("s3://corp-analytics/crash-{i}"));
        racers.spawn(async move { agent.submit(body).await });
    }
    let mut answered = Vec::new();
    for (status, _, answer) in racers.join_all().await {
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert!(answer["grant"].is_string(), "{answer}");
        answered.push(answer["action_id"].as_str().unwrap().to_string());
    }
    // One more, alone, so that the last answer is the last thing written.
    let (status, _, last) = agent
        .submit(export(500, &["orders"], "s3://corp-analytics/crash-last"))
        .await;
    assert_eq!(status, StatusCode::OK, "{last}");
    answered.push(last["action_id"].as_str().unwrap().to_string());

    tokio::task::block_in_place(|| {
        pg.crash();
        pg.start_server();
    });
    let db = sqlx::PgPool::connect(&pg.url()).await.unwrap();
    for id in &answered {
        let state: Option<String> = sqlx::query_scalar("SELECT state FROM actions WHERE id = $1")
            .bind(id)
            .fetch_optional(&db)
            .await
            .unwrap();
        assert_eq!(
            state.as_deref(),
            Some("allowed"),
            "action {id} after the crash"
        );
        let grants: i64 = sqlx::query_scalar("SELECT count(*) FROM grants WHERE action_id = $1")
            .bind(id)
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(grants, 1, "grant of {id} after the crash");
        let kinds: Vec<String> = sqlx::query_scalar(
            "SELECT kind FROM evidence_events WHERE action_id = $1::uuid ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&db)
        .await
        .unwrap();
        assert_eq!(
            kinds,
            ["submitted", "evaluated", "granted"],
            "events of {id}"
        );
    }
    let (count, last_seq): (i64, Option<i64>) =
        sqlx::query_as("SELECT count(*), max(seq) FROM evidence_events")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(last_seq, Some(count - 1), "seqs are dense after recovery");
}

/// An evaluation decides on the async worker only within a small fuel slice
/// and without calling an import; otherwise it runs again, from scratch, on
/// the blocking pool with the full budget: the same decision and the same
/// fuel as one run, never an out-of-fuel.
#[tokio::test]
async fn evaluations_beyond_the_inline_slice_run_again_with_the_full_budget() {
    async fn decide(inline_fuel: u64) -> (u64, bool) {
        let server = TestServer::start_with(|c| c.sandbox.inline_fuel = inline_fuel).await;
        let agent = new_agent(&server, "etl-agent").await;
        let body = export(500, &["orders"], "s3://corp-analytics/x");
        let (status, _, answer) = agent.submit(body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let id = uuid::Uuid::parse_str(answer["action_id"].as_str().unwrap()).unwrap();
        let events = server.app.evidence.events_for_action(id).await.unwrap();
        let action = serde_json::from_value(events[0].payload["action"].clone()).unwrap();
        let inline = server.app.gate.evaluator().evaluate_bound_inline(&action);
        (
            events[1].payload["fuel_used"].as_u64().unwrap(),
            inline.is_some(),
        )
    }
    let (fuel, inline) = decide(actiongate::sandbox::SandboxConfig::default().inline_fuel).await;
    assert!(inline, "db-export fits the default slice");
    let (sliced_fuel, inline) = decide(fuel / 2).await;
    assert!(!inline, "half its fuel does not suffice");
    assert_eq!(sliced_fuel, fuel);
}

#[tokio::test]
async fn identity_comes_from_the_key_only() {
    let server = TestServer::start().await;
    let agent = new_agent(&server, "provisioner").await;
    // Claiming another identity in the body is refused, naming the field.
    let mut body = json!({"kind": "iam.grant", "resource": "gcp://p", "params": {"principal": "x@y", "role": "roles/viewer"}});
    body["agent"] = json!("security-admin-bot");
    let (status, _, problem) = agent.submit(body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("unknown field `agent`"),
        "{problem}"
    );

    // Identity claims smuggled into context change nothing: the plugin sees
    // the key's agent, so granting a role to itself is still caught.
    let body = json!({"kind": "iam.grant", "resource": "gcp://p",
                      "params": {"principal": "provisioner", "role": "roles/viewer"},
                      "context": {"agent": "security-admin-bot", "agent_id": "security-admin-bot"},
                      "on_behalf_of": "ciso@example.com"});
    let (status, _, answer) = agent.submit(body).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let id = uuid::Uuid::parse_str(answer["action_id"].as_str().unwrap()).unwrap();
    let events = server.app.evidence.events_for_action(id).await.unwrap();
    assert_eq!(events[0].actor.id, "provisioner");
    assert_eq!(events[1].payload["input"]["agent"]["id"], "provisioner");
    assert_eq!(
        events[1].payload["input"]["agent"]["attributes"]["owner"],
        "owner-of-provisioner@example.com"
    );

    // Only a live agent's own key submits: an unknown key, a person's key
    // and the key of a revoked agent are refused, each saying why.
    let body = export(5, &["orders"], "s3://corp-analytics/x");
    let approver = server.key(KeyRole::Approver, "dana@example.com").await;
    for (key, status, says) in [
        (
            "ag_not-a-key".to_string(),
            StatusCode::UNAUTHORIZED,
            "unknown or revoked API key",
        ),
        (
            approver,
            StatusCode::FORBIDDEN,
            "is for agents; the key is an approver key",
        ),
    ] {
        let r = agent
            .client
            .post(format!("{}/v1/actions", agent.base))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status);
        let problem: Value = r.json().await.unwrap();
        assert!(
            problem["detail"].as_str().unwrap().contains(says),
            "{problem}"
        );
    }
    // The key was just used, so the service knows it: revoking it in the
    // database (as `actiongate agent revoke` does, from another process)
    // still stops the very next submission, and no evidence of a decision
    // is written for it.
    assert_eq!(agent.submit(body.clone()).await.0, StatusCode::OK);
    let events = server.app.evidence.committed_size().await.unwrap();
    assert!(server
        .app
        .gate
        .store()
        .revoke_agent("provisioner")
        .await
        .unwrap());
    let (status, _, problem) = agent.submit(body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
    assert_eq!(problem["detail"], "unknown or revoked API key");
    assert_eq!(server.app.evidence.committed_size().await.unwrap(), events);
    // Refused keys are forgotten: the next attempt is refused as it comes
    // in (with the key still known, this body would be a 400 from the gate).
    let host_kind = json!({"kind": "actiongate.bind", "resource": "y", "params": {}});
    let (status, _, problem) = agent.submit(host_kind).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
}

#[tokio::test]
async fn grants_verify_with_pyjwt_and_are_single_use() {
    let server = TestServer::start().await;
    let agent = new_agent(&server, "etl-agent").await;
    let (status, _, answer) = agent
        .submit(export(500, &["orders"], "s3://corp-analytics/x"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let grant = answer["grant"].as_str().unwrap().to_string();
    let action_id = answer["action_id"].as_str().unwrap().to_string();

    let jwks: Value = agent.get("/v1/keys").await.json().await.unwrap();
    let claims: Value = serde_json::from_str(
        &run_python("verify_grant.py", &[&jwks.to_string(), &grant])
            .expect("PyJWT accepts the grant"),
    )
    .unwrap();
    assert_eq!(claims["action_id"], action_id.as_str());
    assert_eq!(claims["sub"], "etl-agent");
    assert_eq!(claims["action_digest"], answer["digest"]);
    assert_eq!(claims["plugin_sha256"].as_str().unwrap().len(), 64);
    assert!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap() <= 300,
        "short-lived"
    );

    // PyJWT refuses a grant whose claims were changed.
    let mut parts: Vec<&str> = grant.split('.').collect();
    use base64::Engine as _;
    let forged_claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&json!({"sub": "etl-agent", "action_id": "other"})).unwrap());
    parts[1] = &forged_claims;
    let refused =
        run_python("verify_grant.py", &[&jwks.to_string(), &parts.join(".")]).unwrap_err();
    assert!(refused.contains("InvalidSignatureError"), "{refused}");

    let outcome = json!({"grant": grant, "status": "succeeded", "summary": "exported 500 rows", "logs": "ok"});
    let url = format!("{}/v1/actions/{action_id}/outcome", server.url);
    let first = agent
        .client
        .post(&url)
        .bearer_auth(&agent.key)
        .json(&outcome)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.json::<Value>().await.unwrap()["state"], "executed");
    let replay = agent
        .client
        .post(&url)
        .bearer_auth(&agent.key)
        .json(&outcome)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::CONFLICT);
    assert_eq!(
        replay.json::<Value>().await.unwrap()["type"],
        "urn:actiongate:problem:grant-reused"
    );

    let events = server
        .app
        .evidence
        .events_for_action(uuid::Uuid::parse_str(&action_id).unwrap())
        .await
        .unwrap();
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::Submitted,
            EventKind::Evaluated,
            EventKind::Granted,
            EventKind::Executed,
            EventKind::GrantReused
        ]
    );
    assert_eq!(events[3].payload["status"], "succeeded");

    // A grant is bound to its action: presenting it for another is refused.
    let (_, _, other) = agent
        .submit(export(501, &["orders"], "s3://corp-analytics/y"))
        .await;
    let url = format!(
        "{}/v1/actions/{}/outcome",
        server.url,
        other["action_id"].as_str().unwrap()
    );
    let wrong = agent
        .client
        .post(&url)
        .bearer_auth(&agent.key)
        .json(&outcome)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn bad_input_gets_problem_json_and_changes_nothing() {
    let server = TestServer::start().await;
    let agent = new_agent(&server, "etl-agent").await;
    let post = |body: String, content_type: &'static str| {
        agent
            .client
            .post(format!("{}/v1/actions", server.url))
            .bearer_auth(&agent.key)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let cases = [
        (
            post("{\"kind\": \"db.export\",".into(), "application/json")
                .await
                .unwrap(),
            400,
            "EOF",
        ),
        (
            post(
                "{\"kind\": \"db.export\", \"resource\": \"r\"}".into(),
                "application/json",
            )
            .await
            .unwrap(),
            400,
            "missing field `params`",
        ),
        (
            post(
                "{\"kind\": \"db.export\", \"resource\": \"r\", \"params\": []}".into(),
                "application/json",
            )
            .await
            .unwrap(),
            400,
            "params: must be a JSON object",
        ),
        (
            post(
                "{\"kind\": \"db.export\", \"resource\": 5, \"params\": {}}".into(),
                "application/json",
            )
            .await
            .unwrap(),
            400,
            "resource: invalid type",
        ),
        (
            post(
                format!(
                    "{{\"kind\": \"x\", \"resource\": \"{}\", \"params\": {{}}}}",
                    "a".repeat(300 * 1024)
                ),
                "application/json",
            )
            .await
            .unwrap(),
            413,
            "limit",
        ),
        (
            post("kind=x".into(), "application/x-www-form-urlencoded")
                .await
                .unwrap(),
            415,
            "application/json",
        ),
    ];
    for (response, code, detail) in cases {
        assert_eq!(response.status().as_u16(), code);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["status"], code);
        assert!(
            problem["detail"].as_str().unwrap().contains(detail),
            "{problem}"
        );
    }
    assert_eq!(server.app.gate.store().count_pending().await.unwrap(), 0);

    let body = export(5, &["orders"], "s3://corp-analytics/x");
    let no_key = agent
        .client
        .post(format!("{}/v1/actions", server.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(no_key.headers()["www-authenticate"], "Bearer");
    let bad_key = agent
        .client
        .post(format!("{}/v1/actions", server.url))
        .bearer_auth("ag_nope")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(bad_key.status(), StatusCode::UNAUTHORIZED);
    // A key was sent and refused: the challenge says so (RFC 6750 3.1).
    assert_eq!(
        bad_key.headers()["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
    // The scheme's name is case-insensitive; another scheme is refused.
    // (An unknown action is 404 to its agent, 401 to no one's key.)
    for (authorization, status) in [
        (format!("bearer {}", agent.key), StatusCode::NOT_FOUND),
        (format!("BEARER  {}", agent.key), StatusCode::NOT_FOUND),
        (format!("Basic {}", agent.key), StatusCode::UNAUTHORIZED),
        (format!("Bearer{}", agent.key), StatusCode::UNAUTHORIZED),
    ] {
        let response = agent
            .client
            .get(format!("{}/v1/actions/{}", server.url, uuid::Uuid::nil()))
            .header("authorization", &authorization)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{authorization:?}");
    }

    assert!(server
        .app
        .gate
        .store()
        .revoke_agent("etl-agent")
        .await
        .unwrap());
    let (status, _, problem) = agent.submit(body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
}

#[tokio::test]
async fn actions_are_private_to_their_agent_and_long_polls_time_out_pending() {
    let server = TestServer::start().await;
    let agent = new_agent(&server, "etl-agent").await;
    let other = new_agent(&server, "nosy-agent").await;
    let (_, _, pending) = agent
        .submit(export(250_000, &["customers"], "s3://corp-analytics/x"))
        .await;
    let path = format!("/v1/actions/{}", pending["action_id"].as_str().unwrap());

    assert_eq!(other.get(&path).await.status(), StatusCode::NOT_FOUND);

    let started = std::time::Instant::now();
    let response = agent
        .client
        .get(format!("{}{path}", server.url))
        .bearer_auth(&agent.key)
        .header("Prefer", "wait=1")
        .send()
        .await
        .unwrap();
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(900),
        "it waited"
    );
    assert_eq!(response.headers()["preference-applied"], "wait=1");
    assert_eq!(response.json::<Value>().await.unwrap()["state"], "pending");
}

#[tokio::test]
async fn operations_endpoints() {
    let server = TestServer::start().await;
    let agent = new_agent(&server, "etl-agent").await;
    agent
        .submit(export(500, &["orders"], "s3://corp-analytics/x"))
        .await;
    agent
        .submit(export(250_000, &["customers"], "s3://corp-analytics/x"))
        .await;

    assert_eq!(agent.get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(agent.get("/readyz").await.status(), StatusCode::OK);
    let metrics = agent.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("actiongate_decisions_total{outcome=\"allowed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("actiongate_pending_approvals 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("actiongate_evaluation_seconds_count 2"),
        "{metrics}"
    );
    // Only interpreter plugins are prepared for: these were Rust ones.
    for found in ["ready", "none"] {
        assert!(
            metrics.contains(&format!(
                "actiongate_prepared_instances_total{{found=\"{found}\"}} 0"
            )),
            "{metrics}"
        );
    }

    let openapi: Value = agent.get("/openapi.json").await.json().await.unwrap();
    for path in [
        "/v1/actions",
        "/v1/actions/{id}",
        "/v1/actions/{id}/outcome",
        "/v1/keys",
    ] {
        assert!(openapi["paths"][path].is_object(), "{path} documented");
    }
    let jwks: Value = agent.get("/v1/keys").await.json().await.unwrap();
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");

    let missing = agent.get("/v1/nope").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
}

#[tokio::test]
async fn with_postgres_down_the_answer_is_503_and_nothing_is_allowed() {
    let pg = actiongate_tests::pg::PrivatePostgres::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = actiongate_tests::server::config(&pg.url(), dir.path());
    config.evidence.checkpoint_every_seconds = 0.2;
    let server = TestServer::start_config(config, dir, None).await;
    let agent = new_agent(&server, "etl-agent").await;
    let allowed = export(500, &["orders"], "s3://corp-analytics/x");
    assert_eq!(agent.submit(allowed.clone()).await.0, StatusCode::OK);
    // Startup records plugins and bindings; the outage must not skip past these.
    let before_outage = server.app.evidence.committed_size().await.unwrap();

    pg.stop();
    for _ in 0..3 {
        let response = agent
            .client
            .post(format!("{}/v1/actions", server.url))
            .bearer_auth(&agent.key)
            .json(&allowed)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let body = response.text().await.unwrap();
        assert!(
            !body.contains("grant"),
            "no grant while evidence cannot be written: {body}"
        );
    }
    assert_eq!(
        agent.get("/readyz").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        agent.get("/healthz").await.status(),
        StatusCode::OK,
        "the host keeps running"
    );

    pg.start_server();
    let mut recovered = None;
    for _ in 0..50 {
        let (status, _, answer) = agent.submit(allowed.clone()).await;
        if status == StatusCode::OK {
            recovered = Some(answer);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let answer = recovered.expect("decisions resume when Postgres is back");
    assert_eq!(answer["state"], "allowed");
    // Exactly two actions were decided: before and after the outage.
    let store = &server.app.gate.store();
    assert_eq!(store.count_pending().await.unwrap(), 0);
    let log = server
        .app
        .evidence
        .events_for_action(uuid::Uuid::parse_str(answer["action_id"].as_str().unwrap()).unwrap())
        .await
        .unwrap();
    assert_eq!(log.len(), 3, "submitted, evaluated, granted");
    assert_eq!(
        log[0].seq, before_outage,
        "no gap and no duplicate in seq across the outage"
    );
}

#[tokio::test]
async fn a_malformed_action_id_is_named_and_found_nowhere() {
    let server = TestServer::start().await;
    let agent = new_agent(&server, "id-agent").await;
    let dana = Caller::approver(&server, "dana@example.com").await;
    let unknown = uuid::Uuid::now_v7().to_string();
    for id in ["not-an-id", "42%3B%20DROP", unknown.as_str()] {
        // The same answer for a malformed id as for one that names nothing,
        // on every route that takes one, and it names what was given.
        let shown = id.replace("%3B%20", "; ");
        for path in [
            format!("/v1/actions/{id}"),
            format!("/v1/actions/{id}/events"),
        ] {
            let answer = agent.get(&path).await;
            assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{path}");
            let problem: Value = answer.json().await.unwrap();
            assert_eq!(
                problem["type"], "urn:actiongate:problem:not-found",
                "{problem}"
            );
            assert_eq!(problem["detail"], format!("no action {shown}"), "{problem}");
        }
        let (status, problem) = agent
            .post(
                &format!("/v1/actions/{id}/outcome"),
                json!({"grant": "x", "status": "succeeded", "summary": "s"}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
        assert_eq!(problem["detail"], format!("no action {shown}"), "{problem}");
        let (status, problem) = dana
            .post(
                &format!("/v1/approvals/{id}/reviews"),
                json!({"decision": "approve", "reason": "ok"}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
        assert_eq!(problem["detail"], format!("no action {shown}"), "{problem}");
    }
    // Nothing was recorded for any of them.
    assert_eq!(server.app.gate.store().count_pending().await.unwrap(), 0);
}
