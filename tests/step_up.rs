//! Passkey step-up over the real HTTP API and Postgres, with a software
//! authenticator (webauthn-authenticator-rs's SoftPasskey) standing in for
//! the approver's device: registration, list and removal; a critical action
//! approved with assertions; and each way an assertion must be refused.

use actiongate::action::ActionId;
use actiongate::approvals::{Decision, ReviewError, ReviewRequest};
use actiongate::directory::ApproverId;
use actiongate::evidence::{EventKind, StoredEvent};
use actiongate::notify::NotificationKind;
use actiongate_tests::caller::Caller;
use actiongate_tests::server::TestServer;
use reqwest::StatusCode;
use serde_json::{json, Value};
use webauthn_authenticator_rs::prelude::{RequestChallengeResponse, Url, WebauthnAuthenticator};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

const ORIGIN: &str = "http://localhost:8080";

async fn start() -> TestServer {
    TestServer::start_with(|c| {
        c.step_up = Some(actiongate::stepup::StepUpConfig {
            rp_id: "localhost".into(),
            origin: ORIGIN.into(),
            ..Default::default()
        })
    })
    .await
}

/// An approver with their key and their authenticator.
struct Approver {
    api: Caller,
    device: SoftPasskey,
}

impl Approver {
    async fn new(server: &TestServer, email: &str) -> Approver {
        Approver {
            api: Caller::approver(server, email).await,
            // `true`: the soft token reports user verification when asked.
            device: SoftPasskey::new(true),
        }
    }

    async fn register(&mut self, label: &str) -> Value {
        let (status, start) = self.api.post("/v1/passkeys/registration", json!({})).await;
        assert_eq!(status, StatusCode::OK, "{start}");
        let options = serde_json::from_value(start["options"].clone()).unwrap();
        let credential = self
            .device
            .do_registration(Url::parse(ORIGIN).unwrap(), options)
            .unwrap();
        let (status, info) = self
            .api
            .post(
                "/v1/passkeys",
                json!({"registration_id": start["registration_id"], "credential": credential, "label": label}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{info}");
        info
    }

    async fn passkeys(&self) -> Vec<Value> {
        let r = self.api.get("/v1/passkeys").await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json::<Value>().await.unwrap().as_array().unwrap().clone()
    }

    /// A step-up challenge for `action` (the whole answer).
    async fn challenge(&self, action: &str) -> (StatusCode, Value) {
        self.api
            .post(&format!("/v1/approvals/{action}/step-up"), json!({}))
            .await
    }

    /// Signs `options` (request options, possibly altered) with this device.
    fn sign(&mut self, options: &Value) -> Value {
        let options: RequestChallengeResponse = serde_json::from_value(options.clone()).unwrap();
        let credential = self
            .device
            .do_authentication(Url::parse(ORIGIN).unwrap(), options)
            .unwrap();
        serde_json::to_value(credential).unwrap()
    }

    /// A fresh assertion for `action`: `{challenge_id, credential}`.
    async fn assert_for(&mut self, action: &str) -> Value {
        let (status, c) = self.challenge(action).await;
        assert_eq!(status, StatusCode::OK, "{c}");
        let credential = self.sign(&c["options"]);
        json!({"challenge_id": c["challenge_id"], "credential": credential})
    }

    async fn review(&self, action: &str, body: Value) -> (StatusCode, Value) {
        self.api
            .post(&format!("/v1/approvals/{action}/reviews"), body)
            .await
    }

    async fn approve_with(&self, action: &str, step_up: Value) -> (StatusCode, Value) {
        self.review(
            action,
            json!({"decision": "approve", "reason": "checked", "step_up": step_up}),
        )
        .await
    }
}

/// The service, an agent, and Dana and Erin, each with a passkey
/// registered: the two data owners a critical export needs.
async fn two_approvers_with_passkeys() -> (TestServer, Caller, Approver, Approver) {
    let server = start().await;
    let agent = Caller::agent(&server, "etl", "owner@example.com").await;
    let mut dana = Approver::new(&server, "dana@example.com").await;
    let mut erin = Approver::new(&server, "erin@example.com").await;
    dana.register("laptop").await;
    erin.register("key").await;
    (server, agent, dana, erin)
}

fn id(answer: &Value) -> String {
    answer["action_id"].as_str().unwrap().to_string()
}

fn critical_export() -> Value {
    json!({"kind": "db.export", "resource": "pg://prod/w", "params": {"rows": 250000, "tables": ["customers"], "destination": "s3://corp-analytics/x"}})
}

async fn events(server: &TestServer, action: &str) -> Vec<StoredEvent> {
    server
        .app
        .evidence
        .events_for_action(uuid::Uuid::parse_str(action).unwrap())
        .await
        .unwrap()
}

async fn reviews(server: &TestServer, action: &str) -> usize {
    events(server, action)
        .await
        .iter()
        .filter(|e| e.kind == EventKind::Reviewed)
        .count()
}

fn assert_problem(status: StatusCode, problem: &Value, want: StatusCode, kind: &str) {
    assert_eq!(status, want, "{problem}");
    assert_eq!(
        problem["type"],
        format!("urn:actiongate:problem:{kind}"),
        "{problem}"
    );
}

#[tokio::test]
async fn passkeys_are_registered_listed_and_removed_per_person() {
    let server = start().await;
    let mut dana = Approver::new(&server, "dana@example.com").await;
    let mut erin = Approver::new(&server, "erin@example.com").await;
    let first = dana.register("laptop").await;
    assert_eq!(first["label"], "laptop");
    assert_eq!(first["sign_count"], 0);
    // A second authenticator for the same person.
    dana.device = SoftPasskey::new(true);
    dana.register("phone").await;
    erin.register("erin's key").await;

    let mine = dana.passkeys().await;
    assert_eq!(
        mine.iter()
            .map(|p| p["label"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["laptop", "phone"]
    );
    assert_eq!(erin.passkeys().await.len(), 1, "each person sees their own");

    // Erin cannot remove Dana's passkey; Dana can, once.
    let r = erin
        .api
        .client
        .delete(format!(
            "{}/v1/passkeys/{}",
            server.url,
            first["id"].as_str().unwrap()
        ))
        .bearer_auth(&erin.api.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let delete = |key: String, id: String| {
        let client = dana.api.client.clone();
        let url = format!("{}/v1/passkeys/{id}", server.url);
        async move { client.delete(url).bearer_auth(key).send().await.unwrap() }
    };
    let r = delete(dana.api.key.clone(), first["id"].as_str().unwrap().into()).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = delete(dana.api.key.clone(), first["id"].as_str().unwrap().into()).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert_eq!(dana.passkeys().await.len(), 1);

    // A registration is single use and bound to its person.
    let (_, start) = dana.api.post("/v1/passkeys/registration", json!({})).await;
    let options = serde_json::from_value(start["options"].clone()).unwrap();
    let credential = SoftPasskey::new(true)
        .do_registration(Url::parse(ORIGIN).unwrap(), options)
        .unwrap();
    let body = json!({"registration_id": start["registration_id"], "credential": credential});
    let (status, problem) = erin.api.post("/v1/passkeys", body.clone()).await;
    assert_problem(
        status,
        &problem,
        StatusCode::BAD_REQUEST,
        "passkey-registration-invalid",
    );
    let (status, info) = dana.api.post("/v1/passkeys", body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{info}");
    let (status, problem) = dana.api.post("/v1/passkeys", body).await;
    assert_problem(
        status,
        &problem,
        StatusCode::BAD_REQUEST,
        "passkey-registration-invalid",
    );
    assert_eq!(dana.passkeys().await.len(), 2);
    assert_eq!(erin.passkeys().await.len(), 1);

    // An authenticator that cannot verify the user cannot register.
    let (_, start) = dana.api.post("/v1/passkeys/registration", json!({})).await;
    let options = serde_json::from_value(start["options"].clone()).unwrap();
    assert!(SoftPasskey::new(false)
        .do_registration(Url::parse(ORIGIN).unwrap(), options)
        .is_err());
}

#[tokio::test]
async fn a_critical_action_is_approved_with_assertions_and_the_evidence_says_so() {
    let (server, agent, mut dana, mut erin) = two_approvers_with_passkeys().await;
    let (_, answer) = agent.post("/v1/actions", critical_export()).await;
    let action = id(&answer);
    assert_eq!(answer["approval"]["quorum"], 2, "{answer}");

    // Without an assertion: refused by name, nothing recorded.
    let (status, problem) = dana
        .review(&action, json!({"decision": "approve", "reason": "ok"}))
        .await;
    assert_problem(status, &problem, StatusCode::FORBIDDEN, "step-up-required");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("{ORIGIN}/inbox/actions/{action}")),
        "{problem}"
    );
    assert_eq!(reviews(&server, &action).await, 0);

    let proof = dana.assert_for(&action).await;
    let (status, result) = dana.approve_with(&action, proof).await;
    assert_eq!(
        (status, result["state"].as_str()),
        (StatusCode::OK, Some("pending")),
        "{result}"
    );
    let proof = erin.assert_for(&action).await;
    let (status, result) = erin.approve_with(&action, proof).await;
    assert_eq!(
        (status, result["state"].as_str()),
        (StatusCode::OK, Some("approved")),
        "{result}"
    );

    let all = events(&server, &action).await;
    let reviewed: Vec<&StoredEvent> = all
        .iter()
        .filter(|e| e.kind == EventKind::Reviewed)
        .collect();
    assert_eq!(reviewed.len(), 2);
    let dana_keys = dana.passkeys().await;
    for (e, who) in reviewed
        .iter()
        .zip(["dana@example.com", "erin@example.com"])
    {
        let p = &e.payload;
        assert_eq!(p["approver"], who);
        assert_eq!(p["step_up_required"], true);
        assert_eq!(p["step_up"]["user_present"], true);
        assert_eq!(p["step_up"]["user_verified"], true);
        assert!(p["step_up"]["sign_count"].as_u64().unwrap() >= 1, "{p}");
        assert!(p["step_up"]["credential_id"]
            .as_str()
            .is_some_and(|c| !c.is_empty()));
    }
    assert_eq!(
        reviewed[0].payload["step_up"]["credential_id"],
        dana_keys[0]["credential_id"]
    );
    assert_eq!(
        dana_keys[0]["sign_count"], reviewed[0].payload["step_up"]["sign_count"],
        "the stored counter advanced"
    );

    // The story rules hold for this action, and catch a proof that is
    // missing or bound to another version.
    let refs: Vec<&StoredEvent> = all.iter().collect();
    assert_eq!(actiongate::audit::story::check(&refs), vec![]);
    let mut stripped = all.clone();
    let r = stripped
        .iter()
        .position(|e| e.kind == EventKind::Reviewed)
        .unwrap();
    stripped[r]
        .payload
        .as_object_mut()
        .unwrap()
        .remove("step_up");
    let refs: Vec<&StoredEvent> = stripped.iter().collect();
    let v = actiongate::audit::story::check(&refs);
    assert!(
        v.iter()
            .any(|v| v.rule.contains("carries no passkey assertion")),
        "{v:?}"
    );
    assert!(
        v.iter()
            .any(|v| v.rule.contains("without a passkey assertion")),
        "the approval names her too: {v:?}"
    );
    let mut moved = all.clone();
    moved[r].payload["step_up"]["challenge"] = json!("AAAA");
    let refs: Vec<&StoredEvent> = moved.iter().collect();
    assert!(actiongate::audit::story::check(&refs)
        .iter()
        .any(|v| v.rule.contains("not derived from this version")));

    // A deny needs no step-up.
    let (_, answer) = agent.post("/v1/actions", critical_export()).await;
    let (status, result) = erin
        .review(&id(&answer), json!({"decision": "deny", "reason": "no"}))
        .await;
    assert_eq!(
        (status, result["state"].as_str()),
        (StatusCode::OK, Some("denied")),
        "{result}"
    );
}

#[tokio::test]
async fn assertions_for_another_action_version_person_or_without_verification_are_refused() {
    let (server, agent, mut dana, mut erin) = two_approvers_with_passkeys().await;
    let (_, a) = agent.post("/v1/actions", critical_export()).await;
    let (_, b) = agent.post("/v1/actions", critical_export()).await;
    let (a, b) = (id(&a), id(&b));

    // Made for A, sent for B.
    let for_a = dana.assert_for(&a).await;
    let (status, problem) = dana.approve_with(&b, for_a.clone()).await;
    assert_problem(
        status,
        &problem,
        StatusCode::FORBIDDEN,
        "step-up-wrong-action",
    );
    // Its challenge is spent: not even A takes it now.
    let (status, problem) = dana.approve_with(&a, for_a).await;
    assert_problem(status, &problem, StatusCode::FORBIDDEN, "step-up-challenge");

    // A valid assertion is single use.
    let proof = dana.assert_for(&a).await;
    assert_eq!(dana.approve_with(&a, proof.clone()).await.0, StatusCode::OK);
    let (status, problem) = erin.approve_with(&a, proof).await;
    assert_problem(status, &problem, StatusCode::FORBIDDEN, "step-up-challenge");

    // Made before a modify, used after it.
    let before = dana.assert_for(&b).await;
    let modify = erin.assert_for(&b).await;
    let (status, result) = erin
        .review(&b, json!({"decision": "modify", "reason": "fewer rows", "params": {"rows": 5000}, "step_up": modify}))
        .await;
    assert_eq!(
        (status, result["state"].as_str()),
        (StatusCode::OK, Some("pending")),
        "{result}"
    );
    let (status, problem) = dana.approve_with(&b, before).await;
    assert_problem(
        status,
        &problem,
        StatusCode::FORBIDDEN,
        "step-up-wrong-action",
    );
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("earlier version"),
        "{problem}"
    );
    // Cutting the rows lowered the risk, not the bar: step-up stays in force.
    let (status, problem) = dana
        .review(&b, json!({"decision": "approve", "reason": "ok"}))
        .await;
    assert_problem(status, &problem, StatusCode::FORBIDDEN, "step-up-required");
    let now = dana.assert_for(&b).await;
    let (status, result) = dana.approve_with(&b, now).await;
    assert_eq!(
        (status, result["state"].as_str()),
        (StatusCode::OK, Some("approved")),
        "{result}"
    );
    let refs = events(&server, &b).await;
    let refs: Vec<&StoredEvent> = refs.iter().collect();
    assert_eq!(
        actiongate::audit::story::check(&refs),
        vec![],
        "the modify's proof binds the version it modified"
    );

    // A modify of a step-up action needs an assertion too.
    let (_, c) = agent.post("/v1/actions", critical_export()).await;
    let c = id(&c);
    let (status, problem) = erin
        .review(
            &c,
            json!({"decision": "modify", "reason": "r", "params": {"rows": 200000}}),
        )
        .await;
    assert_problem(status, &problem, StatusCode::FORBIDDEN, "step-up-required");

    // An authenticator that does not verify the user: the client asks for
    // no verification, the device signs with user presence only.
    let (_, ch) = dana.challenge(&c).await;
    let mut options = ch["options"].clone();
    options["publicKey"]["userVerification"] = json!("discouraged");
    let credential = dana.sign(&options);
    let (status, problem) = dana
        .approve_with(
            &c,
            json!({"challenge_id": ch["challenge_id"], "credential": credential}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert!(
        [
            "urn:actiongate:problem:step-up-user-not-verified",
            "urn:actiongate:problem:step-up-invalid"
        ]
        .contains(&problem["type"].as_str().unwrap()),
        "{problem}"
    );

    // Another person's credential on Dana's challenge.
    let erins = erin.passkeys().await[0]["credential_id"].clone();
    let (_, ch) = dana.challenge(&c).await;
    let mut options = ch["options"].clone();
    options["publicKey"]["allowCredentials"] = json!([{"type": "public-key", "id": erins}]);
    let credential = erin.sign(&options);
    let (status, problem) = dana
        .approve_with(
            &c,
            json!({"challenge_id": ch["challenge_id"], "credential": credential}),
        )
        .await;
    assert_problem(status, &problem, StatusCode::FORBIDDEN, "step-up-invalid");
    // And Dana's challenge is not Erin's to answer.
    let (_, ch) = dana.challenge(&c).await;
    let proof =
        json!({"challenge_id": ch["challenge_id"], "credential": dana.sign(&ch["options"])});
    let (status, problem) = erin.approve_with(&c, proof).await;
    assert_problem(status, &problem, StatusCode::FORBIDDEN, "step-up-challenge");

    // None of the refusals recorded a review of C.
    assert_eq!(reviews(&server, &c).await, 0);

    // No passkey, no challenge.
    let sam = Approver::new(&server, "sam@example.com").await;
    let (status, problem) = sam.challenge(&c).await;
    assert_problem(
        status,
        &problem,
        StatusCode::FORBIDDEN,
        "step-up-no-passkey",
    );
}

#[tokio::test]
async fn chat_cards_link_to_the_inbox_and_chat_approvals_are_refused() {
    let server = start().await;
    let agent = Caller::agent(&server, "etl", "owner@example.com").await;
    let (_, answer) = agent.post("/v1/actions", critical_export()).await;
    let action = id(&answer);
    let action_id: ActionId = action.parse().unwrap();
    let gate = &server.app.gate;
    let n = gate
        .notification_for(&action_id, NotificationKind::Pending)
        .await
        .unwrap();
    let link = format!("{ORIGIN}/inbox/actions/{action}");
    assert_eq!(n.approval.step_up.as_deref(), Some(link.as_str()));
    let blocks = actiongate::chat::slack::blocks::card(&n);
    let text = blocks.to_string();
    assert!(
        text.contains(&link) && !text.contains("actiongate_approve"),
        "{text}"
    );

    // A click from chat carries no assertion: refused in the rule's words.
    let dana: ApproverId = gate
        .directory()
        .person_by_email("dana@example.com")
        .unwrap()
        .id()
        .clone();
    let from_chat = |decision, reason: &str| ReviewRequest {
        decision,
        reason: Some(reason.into()),
        params: None,
        seen_digest: None,
        channel: "slack".into(),
        step_up: None,
    };
    let err = gate
        .review(&dana, &action_id, from_chat(Decision::Approve, "ok"))
        .await
        .unwrap_err();
    match err {
        ReviewError::StepUp(e) => {
            assert_eq!(e.code(), "step-up-required");
            assert!(e.to_string().contains(&link));
        }
        other => panic!("{other:?}"),
    }
    // A deny from chat is recorded.
    gate.review(&dana, &action_id, from_chat(Decision::Deny, "no"))
        .await
        .unwrap();

    // A high (not critical) action keeps its approve button.
    let (_, answer) = agent.post("/v1/actions", json!({"kind": "db.export", "resource": "r", "params": {"rows": 50000, "tables": ["orders"], "destination": "s3://corp-analytics/x"}})).await;
    let n = gate
        .notification_for(&id(&answer).parse().unwrap(), NotificationKind::Pending)
        .await
        .unwrap();
    assert_eq!(n.approval.step_up, None);
    assert!(actiongate::chat::slack::blocks::card(&n)
        .to_string()
        .contains("actiongate_approve"));
}
