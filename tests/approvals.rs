//! The approval workflow over real HTTP on loopback against Postgres: the
//! lifecycle for each example plugin, self-approval, duplicates, modify,
//! expiry across a restart, two replicas, and races.

use std::time::Duration;

use actiongate::evidence::EventKind;
use actiongate_tests::caller::Caller;
use actiongate_tests::server::{start_refused, TestServer};
use actiongate_tests::settle;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The calls of the approval workflow.
trait Workflow {
    async fn submit(&self, body: Value) -> Value;
    async fn review(&self, id: &str, body: Value) -> (StatusCode, Value);
    async fn approve(&self, id: &str, reason: &str) -> (StatusCode, Value);
    async fn wait(&self, id: &str, seconds: u64) -> Value;
    async fn pending(&self) -> Vec<Value>;
}

impl Workflow for Caller {
    async fn submit(&self, body: Value) -> Value {
        self.post("/v1/actions", body).await.1
    }

    async fn review(&self, id: &str, body: Value) -> (StatusCode, Value) {
        self.post(&format!("/v1/approvals/{id}/reviews"), body)
            .await
    }

    async fn approve(&self, id: &str, reason: &str) -> (StatusCode, Value) {
        self.review(id, json!({"decision": "approve", "reason": reason}))
            .await
    }

    async fn wait(&self, id: &str, seconds: u64) -> Value {
        let wait = format!("wait={seconds}");
        let r = self
            .get_with(&format!("/v1/actions/{id}"), &[("Prefer", &wait)])
            .await;
        r.json().await.unwrap()
    }

    async fn pending(&self) -> Vec<Value> {
        let r = self.get("/v1/approvals?state=pending").await;
        r.json::<Value>().await.unwrap().as_array().unwrap().clone()
    }
}

fn id(answer: &Value) -> String {
    answer["action_id"].as_str().unwrap().to_string()
}

async fn kinds(server: &TestServer, action_id: &str) -> Vec<EventKind> {
    let events = server
        .app
        .evidence
        .events_for_action(uuid::Uuid::parse_str(action_id).unwrap())
        .await
        .unwrap();
    events.iter().map(|e| e.kind).collect()
}

#[tokio::test]
async fn full_lifecycle_for_each_example_plugin() {
    let server = TestServer::start().await;
    let agent = Caller::agent(&server, "ops-agent", "owner@example.com").await;
    let [dana, erin, sam, olly] =
        ["dana", "erin", "sam", "olly"].map(|n| format!("{n}@example.com"));
    let (dana, erin, sam, olly) = (
        Caller::approver(&server, &dana).await,
        Caller::approver(&server, &erin).await,
        Caller::approver(&server, &sam).await,
        Caller::approver(&server, &olly).await,
    );
    // (action, approvers in order, quorum)
    let cases: Vec<(Value, Vec<&Caller>)> = vec![
        (
            json!({"kind": "db.export", "resource": "pg://prod/w", "params": {"rows": 250000, "tables": ["customers"], "destination": "s3://corp-analytics/x"}}),
            vec![&dana, &erin],
        ),
        (
            json!({"kind": "iam.grant", "resource": "gcp://p", "params": {"principal": "x@example.com", "role": "roles/owner"}}),
            vec![&sam, &erin],
        ),
        (
            json!({"kind": "ops.deploy", "resource": "k8s://prod-eu/web", "params": {"version": "2"}}),
            vec![&olly],
        ),
        (
            json!({"kind": "crm.merge", "resource": "crm://acme", "params": {}}),
            vec![&dana],
        ),
    ];
    for (body, approvers) in cases {
        let answer = agent.submit(body.clone()).await;
        assert_eq!(answer["state"], "pending", "{answer}");
        let action = id(&answer);
        let quorum = answer["approval"]["quorum"].as_u64().unwrap() as usize;
        // prod-ops may need 2 outside the change window; give it a second approver then.
        let mut approvers = approvers;
        if approvers.len() < quorum {
            approvers.push(&sam);
        }
        for (i, approver) in approvers.iter().enumerate() {
            assert!(
                approver
                    .pending()
                    .await
                    .iter()
                    .any(|p| p["action"]["action_id"] == action.as_str()),
                "listed for the approver"
            );
            let (status, result) = approver.approve(&action, "checked the ticket").await;
            assert_eq!(status, StatusCode::OK, "{body}: {result}");
            let want = if i + 1 == quorum {
                "approved"
            } else {
                "pending"
            };
            assert_eq!(result["state"], want, "{result}");
        }
        let done = agent.wait(&action, 5).await;
        assert_eq!(done["state"], "approved", "{done}");
        let grant = done["grant"]
            .as_str()
            .expect("the approved action carries a grant");
        let outcome = agent
            .client
            .post(format!("{}/v1/actions/{action}/outcome", server.url))
            .bearer_auth(&agent.key)
            .json(&json!({"grant": grant, "status": "succeeded", "summary": "done"}))
            .send()
            .await
            .unwrap();
        assert_eq!(outcome.status(), StatusCode::OK);
        let k = kinds(&server, &action).await;
        assert_eq!(
            k.iter().filter(|k| **k == EventKind::Reviewed).count(),
            quorum
        );
        let tail = &k[k.len() - 3..];
        assert_eq!(
            tail,
            [EventKind::Approved, EventKind::Granted, EventKind::Executed],
            "{k:?}"
        );
    }
}

#[tokio::test]
async fn self_approval_is_refused_for_owner_and_admin() {
    let server = TestServer::start().await;
    // Erin owns this agent and is a data owner; the demo owner is an admin.
    let erins_agent = Caller::agent(&server, "erins-agent", "erin@example.com").await;
    let erin = Caller::approver(&server, "erin@example.com").await;
    let answer = erins_agent.submit(json!({"kind": "db.export", "resource": "r", "params": {"rows": 50000, "tables": ["orders"], "destination": "s3://corp-analytics/x"}})).await;
    assert!(
        erin.pending()
            .await
            .iter()
            .all(|p| p["action"]["action_id"] != answer["action_id"]),
        "not listed for the owner"
    );
    let (status, problem) = erin.approve(&id(&answer), "mine, looks fine").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        problem["type"], "urn:actiongate:problem:self-approval-owner",
        "{problem}"
    );

    let admins_agent = Caller::agent(&server, "demo-agent", "demo-owner@example.com").await;
    let admin = Caller::approver(&server, "demo-owner@example.com").await;
    let answer = admins_agent
        .submit(json!({"kind": "crm.merge", "resource": "crm://x", "params": {}}))
        .await;
    let (status, problem) = admin.approve(&id(&answer), "I am an admin").await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "admins are not exempt: {problem}"
    );
    assert_eq!(
        problem["type"],
        "urn:actiongate:problem:self-approval-owner"
    );

    // On behalf of Dana: Dana may not approve it either.
    let answer = erins_agent.submit(json!({"kind": "crm.merge", "resource": "crm://x", "params": {}, "on_behalf_of": "dana@example.com"})).await;
    let dana = Caller::approver(&server, "dana@example.com").await;
    let (status, problem) = dana.approve(&id(&answer), "ok").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        problem["type"],
        "urn:actiongate:problem:self-approval-on-behalf-of"
    );

    // Not in the routed group (on-call is not data-owners).
    let answer = erins_agent.submit(json!({"kind": "db.export", "resource": "r", "params": {"rows": 50000, "tables": ["orders"], "destination": "s3://corp-analytics/x"}})).await;
    let olly = Caller::approver(&server, "olly@example.com").await;
    let (status, problem) = olly.approve(&id(&answer), "sure").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(problem["type"], "urn:actiongate:problem:not-in-group");

    // An agent key cannot review at all.
    let (status, _) = erins_agent.approve(&id(&answer), "self").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Nothing was recorded by any of the refusals.
    assert_eq!(
        kinds(&server, &id(&answer)).await,
        [EventKind::Submitted, EventKind::Evaluated]
    );
}

/// A route that only the requester's own people could complete is refused
/// at once (fail closed, with the reason in its evidence) instead of waiting
/// for approvals no one may give: Erin owns the agent and is one of the two
/// data owners a critical export needs.
#[tokio::test]
async fn a_quorum_only_the_requesters_own_people_could_meet_fails_closed_at_once() {
    let server = TestServer::start().await;
    let critical = json!({"kind": "db.export", "resource": "r", "params": {"rows": 500000, "tables": ["customers"], "destination": "s3://corp-analytics/x"}});
    let erins_agent = Caller::agent(&server, "erins-agent", "erin@example.com").await;
    let answer = erins_agent.submit(critical.clone()).await;
    assert_eq!(answer["state"], "denied", "{answer}");
    assert!(answer["reason"]
        .as_str()
        .unwrap()
        .contains("policy could not decide (invalid-output); failing closed"));
    assert!(
        answer["reasons"][0].as_str().unwrap().contains("quorum 2 is more than the 1 distinct member of data-owners who may approve this action (erin@example.com may not: it is their own)"),
        "{answer}"
    );
    assert_eq!(
        kinds(&server, &id(&answer)).await,
        [
            EventKind::Submitted,
            EventKind::PluginFailed,
            EventKind::Evaluated,
            EventKind::Denied
        ]
    );
    // The same export by an agent of someone outside the group waits for
    // both data owners.
    let sams_agent = Caller::agent(&server, "sams-agent", "sam@example.com").await;
    let answer = sams_agent.submit(critical).await;
    assert_eq!(answer["state"], "pending", "{answer}");
    assert_eq!(answer["approval"]["quorum"], 2, "{answer}");
}

#[tokio::test]
async fn a_second_approval_by_the_same_person_changes_nothing_and_reasons_are_required() {
    let server = TestServer::start().await;
    let agent = Caller::agent(&server, "iam-bot", "owner@example.com").await;
    let erin = Caller::approver(&server, "erin@example.com").await;
    // Erin is in security and data-owners; the grant needs two from security.
    let answer = agent.submit(json!({"kind": "iam.grant", "resource": "gcp://p", "params": {"principal": "x@y", "role": "roles/owner"}})).await;
    let action = id(&answer);
    let (status, problem) = erin.review(&action, json!({"decision": "approve"})).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "critical risk needs a reason: {problem}"
    );
    assert_eq!(
        erin.approve(&action, "ticket SEC-1").await.0,
        StatusCode::OK
    );
    let (status, problem) = erin.approve(&action, "again").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(problem["type"], "urn:actiongate:problem:duplicate");
    assert_eq!(
        agent.wait(&action, 0).await["state"],
        "pending",
        "one person counts once"
    );
    let (status, problem) = erin.review(&action, json!({"decision": "deny"})).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a deny needs a reason: {problem}"
    );
}

#[tokio::test]
async fn modify_re_evaluates_voids_old_approvals_and_can_raise_the_quorum() {
    let server = TestServer::start().await;
    let agent = Caller::agent(&server, "etl", "owner@example.com").await;
    let dana = Caller::approver(&server, "dana@example.com").await;
    let erin = Caller::approver(&server, "erin@example.com").await;
    let answer = agent.submit(json!({"kind": "db.export", "resource": "r", "params": {"rows": 50000, "tables": ["orders"], "destination": "s3://corp-analytics/x"}})).await;
    let action = id(&answer);
    assert_eq!(answer["approval"]["quorum"], 1);
    let old_digest = answer["digest"].as_str().unwrap().to_string();

    // Only modifiable params may change.
    let (status, problem) = dana
        .review(
            &action,
            json!({"decision": "modify", "reason": "r", "params": {"format": "csv"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");

    // Adding a PII table makes it critical: two data owners now.
    let (status, result) = dana
        .review(&action, json!({"decision": "modify", "reason": "they need customers too", "params": {"rows": 250000, "tables": ["orders", "customers"]}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["state"], "pending");
    assert_eq!(result["quorum"], 2, "the new route applies");
    assert_eq!(
        result["approvals"], 1,
        "the modify is Dana's approval of the new version"
    );
    assert_ne!(result["digest"], old_digest.as_str());
    let (status, problem) = dana.approve(&action, "again").await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");

    let (status, result) = erin.approve(&action, "ok with customers").await;
    assert_eq!(
        (status, result["state"].as_str()),
        (StatusCode::OK, Some("approved"))
    );
    let done = agent.wait(&action, 5).await;
    assert_eq!(
        done["digest"], result["digest"],
        "the grant is for the modified action"
    );
    let k = kinds(&server, &action).await;
    assert_eq!(
        k.iter().filter(|k| **k == EventKind::Evaluated).count(),
        2,
        "re-evaluated: {k:?}"
    );

    // A modify the policy then allows is approved by the modifier alone.
    let answer = agent.submit(json!({"kind": "db.export", "resource": "r", "params": {"rows": 50000, "tables": ["orders"], "destination": "s3://corp-analytics/x"}})).await;
    let (_, result) = dana
        .review(
            &id(&answer),
            json!({"decision": "modify", "reason": "500 rows is plenty", "params": {"rows": 500}}),
        )
        .await;
    assert_eq!(result["state"], "approved", "{result}");
}

/// The issue's case: a critical export needs two data owners. Dana cuts
/// 250000 rows to 5000, which the policy alone would let one data owner
/// approve; her modify counts once and the quorum stays two.
#[tokio::test]
async fn a_modify_never_lowers_the_quorum() {
    let server = TestServer::start().await;
    let agent = Caller::agent(&server, "etl", "owner@example.com").await;
    let dana = Caller::approver(&server, "dana@example.com").await;
    let erin = Caller::approver(&server, "erin@example.com").await;
    let answer = agent.submit(json!({"kind": "db.export", "resource": "r", "params": {"rows": 250000, "tables": ["customers"], "destination": "s3://corp-analytics/x"}})).await;
    let action = id(&answer);
    assert_eq!(answer["risk"], "critical");
    assert_eq!(answer["approval"]["quorum"], 2);

    let (status, result) = dana
        .review(
            &action,
            json!({"decision": "modify", "reason": "5000 rows is enough", "params": {"rows": 5000}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["state"], "pending", "{result}");
    assert_eq!(
        result["quorum"], 2,
        "the quorum in force before the modify stays"
    );
    assert_eq!(result["approvals"], 1, "the modifier counts once");
    let (status, problem) = dana.approve(&action, "and I approve it too").await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    let status_now = agent.wait(&action, 0).await;
    assert_eq!(status_now["state"], "pending", "{status_now}");
    assert_eq!(status_now["risk"], "high", "re-evaluated: {status_now}");
    assert_eq!(status_now["approval"]["quorum"], 2, "{status_now}");
    assert_eq!(status_now["approval"]["groups"], json!(["data-owners"]));

    // On record: the plugin's own route (quorum 1) and the one in force (2).
    let events = server
        .app
        .evidence
        .events_for_action(uuid::Uuid::parse_str(&action).unwrap())
        .await
        .unwrap();
    let evaluated = events
        .iter()
        .rfind(|e| e.kind == EventKind::Evaluated)
        .unwrap();
    assert_eq!(evaluated.payload["output"]["route"]["quorum"], 1);
    let modify = events
        .iter()
        .rfind(|e| e.kind == EventKind::Reviewed)
        .unwrap();
    assert_eq!(
        modify.payload["route_in_force"]["quorum"], 2,
        "{}",
        modify.payload
    );

    let (status, result) = erin.approve(&action, "5000 rows of customers, fine").await;
    assert_eq!(
        (status, result["state"].as_str()),
        (StatusCode::OK, Some("approved")),
        "{result}"
    );
    let done = agent.wait(&action, 5).await;
    let grant = done["grant"].as_str().unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            grant.split('.').nth(1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims["approvers"],
        json!(["dana@example.com", "erin@example.com"])
    );
}

#[tokio::test]
async fn any_deny_ends_it() {
    let server = TestServer::start().await;
    let agent = Caller::agent(&server, "etl", "owner@example.com").await;
    let dana = Caller::approver(&server, "dana@example.com").await;
    let erin = Caller::approver(&server, "erin@example.com").await;
    let answer = agent.submit(json!({"kind": "db.export", "resource": "r", "params": {"rows": 250000, "tables": ["customers"], "destination": "s3://corp-analytics/x"}})).await;
    let action = id(&answer);
    assert_eq!(dana.approve(&action, "fine").await.0, StatusCode::OK);
    let (status, result) = erin
        .review(
            &action,
            json!({"decision": "deny", "reason": "no legal basis"}),
        )
        .await;
    assert_eq!(
        (status, result["state"].as_str()),
        (StatusCode::OK, Some("denied"))
    );
    let done = agent.wait(&action, 1).await;
    assert_eq!(done["state"], "denied");
    assert!(
        done["reason"].as_str().unwrap().contains("no legal basis"),
        "{done}"
    );
    assert!(done["grant"].is_null());
}

/// A panicking plugin fails closed to a break-glass group with a 2 s TTL.
fn break_glass(config: &mut actiongate::config::Config) {
    break_glass_with(config, 1, 2, vec![]);
}

fn break_glass_with(
    config: &mut actiongate::config::Config,
    quorum: u32,
    ttl_seconds: u32,
    escalate_to: Vec<String>,
) {
    actiongate_tests::bind_component(config, "danger.*", "hostile_panic");
    config.fail_closed = actiongate::evaluate::FailClosed::BreakGlass {
        group: "on-call".into(),
        quorum,
        ttl_seconds,
        escalate_to,
    };
    config.sweep_interval_ms = 100;
}

/// A break-glass hold nobody in the directory can answer is refused at
/// start, naming the reason, instead of leaving failures pending.
#[tokio::test]
async fn an_unanswerable_break_glass_hold_is_refused_at_start() {
    let database = actiongate_tests::pg::TempDatabase::create("ag_break_glass").await;
    let dir = tempfile::tempdir().unwrap();
    for (group, quorum, why) in [
        (
            "nobody",
            1,
            "the route names approver group not in the directory: \"nobody\"",
        ),
        (
            "on-call",
            3,
            "quorum 3 is more than the 2 distinct members of on-call",
        ),
    ] {
        let mut config = actiongate_tests::server::config(&database.url, dir.path());
        config.fail_closed = actiongate::evaluate::FailClosed::BreakGlass {
            group: group.into(),
            quorum,
            ttl_seconds: 60,
            escalate_to: vec![],
        };
        let text = start_refused(&config, "an unanswerable break-glass hold is refused").await;
        assert!(
            text.contains("checking [fail_closed] against [directory]") && text.contains(why),
            "{text}"
        );
    }
}

#[tokio::test]
async fn expiry_survives_a_restart_and_fails_closed() {
    let first = TestServer::start_with(break_glass).await;
    let agent = Caller::agent(&first, "bot", "owner@example.com").await;
    let answer = agent
        .submit(json!({"kind": "danger.drop", "resource": "db://prod", "params": {}}))
        .await;
    assert_eq!(answer["state"], "pending", "{answer}");
    let action = id(&answer);
    let (database_url, config, database) = (
        first.database_url.clone(),
        first.config.clone(),
        first.database.clone(),
    );
    drop(first); // the host goes away before the TTL
    tokio::time::sleep(Duration::from_secs(3)).await;

    let second = TestServer::start_config(config, tempfile::tempdir().unwrap(), database).await;
    assert_eq!(second.database_url, database_url);
    let agent = Caller::new(&second, agent.key);
    let done = agent.wait(&action, 5).await;
    assert_eq!(done["state"], "expired", "{done}");
    assert!(done["grant"].is_null());
    let k = kinds(&second, &action).await;
    assert_eq!(
        k.iter().filter(|k| **k == EventKind::Expired).count(),
        1,
        "{k:?}"
    );
    let olly = Caller::approver(&second, "olly@example.com").await;
    let (status, problem) = olly.approve(&action, "too late").await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
}

#[tokio::test]
async fn an_approval_through_one_replica_wakes_a_long_poll_on_another() {
    let a = TestServer::start().await;
    let b = a.replica().await;
    // Replicas share the grant key in production; here B has its own, which
    // only matters for verifying the grant, not for waking.
    let agent_a = Caller::agent(&a, "etl", "owner@example.com").await;
    let dana_b = Caller::approver(&b, "dana@example.com").await;
    let answer = agent_a.submit(json!({"kind": "db.export", "resource": "r", "params": {"rows": 50000, "tables": ["orders"], "destination": "s3://corp-analytics/x"}})).await;
    let action = id(&answer);

    let waiter = tokio::spawn({
        let action = action.clone();
        async move {
            let started = std::time::Instant::now();
            let status = agent_a.wait(&action, 30).await;
            (status, started.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(dana_b.approve(&action, "fine").await.0, StatusCode::OK);
    let (status, waited) = waiter.await.unwrap();
    assert_eq!(status["state"], "approved");
    assert!(
        waited < Duration::from_secs(10),
        "woken by NOTIFY, not by the 30 s timeout: {waited:?}"
    );
}

#[tokio::test]
async fn racing_reviews_decide_once() {
    let server = TestServer::start().await;
    let agent = Caller::agent(&server, "bot", "owner@example.com").await;
    let dana = Caller::approver(&server, "dana@example.com").await;
    let olly = Caller::approver(&server, "olly@example.com").await;
    for round in 0..15 {
        // Quorum 1 from default-approvers: both approvals would complete it.
        let answer = agent
            .submit(
                json!({"kind": "crm.merge", "resource": format!("crm://{round}"), "params": {}}),
            )
            .await;
        let action = id(&answer);
        let deny = round % 3 == 0;
        let second = if deny {
            json!({"decision": "deny", "reason": "no"})
        } else {
            json!({"decision": "approve"})
        };
        let (first, other) = tokio::join!(
            dana.review(&action, json!({"decision": "approve"})),
            olly.review(&action, second)
        );
        let oks = [first.0, other.0]
            .iter()
            .filter(|s| **s == StatusCode::OK)
            .count();
        assert_eq!(oks, 1, "exactly one review decides: {first:?} {other:?}");
        let k = kinds(&server, &action).await;
        let finals = k
            .iter()
            .filter(|k| matches!(k, EventKind::Approved | EventKind::Denied))
            .count();
        assert_eq!(finals, 1, "one final state: {k:?}");
        assert!(k.iter().filter(|k| **k == EventKind::Granted).count() <= 1);
    }
}

#[tokio::test]
async fn the_event_stream_follows_the_action_to_its_final_state() {
    let server = TestServer::start().await;
    let agent = Caller::agent(&server, "etl", "owner@example.com").await;
    let dana = Caller::approver(&server, "dana@example.com").await;
    let answer = agent.submit(json!({"kind": "db.export", "resource": "r", "params": {"rows": 50000, "tables": ["orders"], "destination": "s3://corp-analytics/x"}})).await;
    let action = id(&answer);
    let mut stream = agent
        .client
        .get(format!("{}/v1/actions/{action}/events", server.url))
        .bearer_auth(&agent.key)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let reviewer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        dana.approve(&action, "fine").await
    });
    let mut text = String::new();
    // The stream ends by itself after the final state.
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(20), stream.chunk())
        .await
        .expect("stream ends")
        .unwrap()
    {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert_eq!(reviewer.await.unwrap().0, StatusCode::OK);
    let states: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| {
            serde_json::from_str::<Value>(d).unwrap()["state"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(states, ["pending", "approved"], "{text}");
}

#[tokio::test]
async fn held_actions_are_announced_by_signed_webhook_and_recorded() {
    use std::sync::{Arc, Mutex};
    // A receiver on loopback that keeps what it gets.
    let received: Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>> = Arc::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push((headers, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let server = TestServer::start_with(|c| {
        c.notify.webhooks = vec![toml::from_str(&format!(
            "name = \"siem\"\nurl = \"{url}\"\nsecret = \"{secret}\""
        ))
        .unwrap()];
    })
    .await;
    let agent = Caller::agent(&server, "etl", "owner@example.com").await;
    let dana = Caller::approver(&server, "dana@example.com").await;
    let answer = agent.submit(json!({"kind": "db.export", "resource": "r", "params": {"rows": 50000, "tables": ["orders"], "destination": "s3://corp-analytics/x"}})).await;
    let action = id(&answer);
    dana.approve(&action, "fine").await;
    let received = || async { received.lock().unwrap().clone() };
    let got = settle(Duration::from_secs(5), received, |got| got.len() >= 2).await;
    let types: Vec<String> = got
        .iter()
        .map(|(_, b)| {
            serde_json::from_str::<Value>(b).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(types, ["approval.pending", "approval.approved"]);
    for (headers, body) in &got {
        // The reference implementation checks the signature.
        let verified = actiongate_tests::run_python(
            "verify_webhook.py",
            &[
                secret,
                headers["webhook-id"].to_str().unwrap(),
                headers["webhook-timestamp"].to_str().unwrap(),
                headers["webhook-signature"].to_str().unwrap(),
                body,
            ],
        );
        assert!(verified.is_ok(), "{verified:?}");
    }
    // The delivery is recorded right after the receiver answers.
    let notified = |k: &Vec<EventKind>| k.iter().filter(|k| **k == EventKind::Notified).count();
    let k = settle(
        Duration::from_secs(5),
        || kinds(&server, &action),
        |k| notified(k) == 2,
    )
    .await;
    assert_eq!(notified(&k), 2, "each delivery is evidence: {k:?}");
}

#[tokio::test]
async fn half_way_reminds_and_escalates_visibly_and_people_count_once() {
    // On-call (olly, sam) must decide in 4 s; at 2 s it escalates to
    // security-leads (sam), so sam is then in two eligible groups.
    let server =
        TestServer::start_with(|c| break_glass_with(c, 2, 4, vec!["security-leads".into()])).await;
    let agent = Caller::agent(&server, "bot", "owner@example.com").await;
    let answer = agent
        .submit(json!({"kind": "danger.drop", "resource": "db://prod", "params": {}}))
        .await;
    let action = id(&answer);
    let sam = Caller::approver(&server, "sam@example.com").await;
    assert_eq!(
        sam.approve(&action, "break glass: incident 7").await.0,
        StatusCode::OK
    );

    let k = settle(
        Duration::from_secs(4),
        || kinds(&server, &action),
        |k| k.contains(&EventKind::Escalated),
    )
    .await;
    let reminded = k
        .iter()
        .position(|e| *e == EventKind::Reminded)
        .expect("reminded at half the TTL");
    let escalated = k
        .iter()
        .position(|e| *e == EventKind::Escalated)
        .expect("escalated, recorded");
    assert!(reminded < escalated);
    let events = server
        .app
        .evidence
        .events_for_action(uuid::Uuid::parse_str(&action).unwrap())
        .await
        .unwrap();
    assert_eq!(events[escalated].payload["to"], json!(["security-leads"]));

    // Sam is now eligible through two groups and still counts once.
    let (status, problem) = sam.approve(&action, "again").await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(agent.wait(&action, 0).await["state"], "pending");
    let olly = Caller::approver(&server, "olly@example.com").await;
    let (status, result) = olly.approve(&action, "agreed: incident 7").await;
    assert_eq!(
        (status, result["state"].as_str()),
        (StatusCode::OK, Some("approved")),
        "{result}"
    );
    assert_eq!(
        kinds(&server, &action)
            .await
            .iter()
            .filter(|e| **e == EventKind::Reminded)
            .count(),
        1,
        "once"
    );
}
