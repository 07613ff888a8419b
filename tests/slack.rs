//! Slack over loopback: the fake Slack checked with the official
//! `slack_sdk`; request signatures against `slack_sdk`'s verifier; the Web
//! API client and the notifier against the fake.

use std::time::{Duration, Instant};

use actiongate::action::Risk;
use actiongate::chat::slack::{verify, Settings, SlackClient, SlackConfig, SlackNotifier};
use actiongate::notify::{
    ActionSummary, ApprovalEntry, ApprovalState, Notification, NotificationKind, Notifier,
    NotifyError, ReviewEntry,
};
use actiongate::store::Store;
use actiongate_tests::fake_slack::{self, FakeSlack, Scripted};
use actiongate_tests::{run_python, settle};
use serde_json::{json, Value};

fn slack_config(fake: &FakeSlack, extra: &str) -> SlackConfig {
    toml::from_str(&format!(
        r#"
        api_base_url = "{}"
        bot_token = "{}"
        signing_secret = "{}"
        channels = {{ data-owners = "C0DATA", security = "C0SEC" }}
        max_retry_wait_ms = 3000
        {extra}
        "#,
        fake.api_url(),
        fake_slack::BOT_TOKEN,
        fake_slack::SIGNING_SECRET,
    ))
    .unwrap()
}

fn settings(fake: &FakeSlack, extra: &str) -> Settings {
    slack_config(fake, extra).settings(|_| None).unwrap()
}

/// Writes `body` to a file in `dir` for the Python helpers.
fn body_file(dir: &tempfile::TempDir, body: &str) -> String {
    let path = dir.path().join(format!("body-{}", uuid::Uuid::now_v7()));
    std::fs::write(&path, body).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn fake_web_api_passes_the_official_slack_sdk() {
    let fake = FakeSlack::start().await;
    fake.add_user("dana@example.com", "U0DANA");
    fake.script("auth.test", Scripted::RateLimited { retry_after: 1 });
    fake.script("auth.test", Scripted::RateLimited { retry_after: 1 });
    let trigger = fake.trigger();
    let (api, token) = (fake.api_url(), fake_slack::BOT_TOKEN);
    let out = tokio::task::spawn_blocking(move || {
        run_python("slack_fake_check.py", &[&api, token, &trigger])
    })
    .await
    .unwrap()
    .unwrap_or_else(|stderr| panic!("slack_sdk against the fake failed:\n{stderr}"));
    let summary: Value = serde_json::from_str(out.trim()).unwrap();
    let ts = summary["ts"].as_str().unwrap();
    let message = fake.message("C0CHECK", ts).unwrap();
    assert_eq!(message["text"], "Approved");
    assert_eq!(message["blocks"][0]["text"]["text"], "done");
    let posts = fake.calls("chat.postMessage");
    assert_eq!(
        posts[0].args["blocks"][2]["elements"][0]["confirm"]["title"]["text"],
        "Sure?"
    );
    assert_eq!(posts[1].args["thread_ts"], ts);
    assert_eq!(fake.calls("users.lookupByEmail").len(), 2);
}

#[tokio::test]
async fn fake_socket_mode_passes_the_official_slack_sdk() {
    let fake = FakeSlack::start().await;
    let child = actiongate_tests::python()
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/python/slack_socket_check.py"
        ))
        .args([
            &fake.api_url(),
            fake_slack::APP_TOKEN,
            fake_slack::BOT_TOKEN,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    fake.wait_for_socket(Duration::from_secs(20)).await;

    let view = json!({"id": "V1", "type": "modal", "callback_id": "actiongate_review", "private_metadata": "{}"});
    let ack = fake
        .push_interactive(fake_slack::view_submission(
            "U0DANA",
            &view,
            &[("reason", "no")],
        ))
        .await;
    assert_eq!(ack["payload"]["response_action"], "errors");
    assert_eq!(ack["payload"]["errors"]["reason"], "checked by slack_sdk");

    // Slack recycles connections with `disconnect`; the SDK reconnects.
    fake.disconnect_all("refresh_requested");
    fake.wait_until_within("the SDK reconnects", Duration::from_secs(30), |f| {
        f.connections() >= 2
    })
    .await;
    let click =
        fake_slack::block_actions("U0DANA", "C0DATA", "1.0", "actiongate_approve", "a|d", "t");
    let ack = fake.push_interactive(click).await;
    assert!(ack["envelope_id"].is_string());
    assert!(ack.get("payload").is_none(), "{ack}");

    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(seen, json!(["view_submission", "block_actions"]));
}

#[tokio::test]
async fn signatures_agree_with_slack_sdk() {
    let dir = tempfile::tempdir().unwrap();
    // Slack's published example, through slack_sdk.
    let published = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    let sdk = run_python(
        "slack_sign.py",
        &[
            "sign",
            "8f742231b10e8888abcd99yyyzzz85a5",
            "1531420618",
            &body_file(&dir, published),
        ],
    )
    .unwrap();
    assert_eq!(
        sdk.trim(),
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    );

    // slack_sdk signs, we verify; we sign, slack_sdk verifies.
    let now = chrono::Utc::now().timestamp();
    let body = format!(
        "payload={}",
        urlencode(&json!({"type": "block_actions", "text": "ünïcode & <stuff>"}).to_string())
    );
    let path = body_file(&dir, &body);
    let secret = fake_slack::SIGNING_SECRET;
    let signed = run_python("slack_sign.py", &["sign", secret, &now.to_string(), &path]).unwrap();
    assert_eq!(
        verify::verify(
            secret.as_bytes(),
            Some(&now.to_string()),
            Some(signed.trim()),
            body.as_bytes(),
            now
        ),
        Ok(now)
    );
    let ours = verify::signature(secret.as_bytes(), &now.to_string(), body.as_bytes());
    run_python(
        "slack_sign.py",
        &["check", secret, &now.to_string(), &path, &ours],
    )
    .unwrap_or_else(|e| panic!("slack_sdk refused our signature: {e}"));
}

fn urlencode(text: &str) -> String {
    serde_urlencoded::to_string([("x", text)]).unwrap()[2..].to_string()
}

#[tokio::test]
async fn client_retries_within_bounds_and_types_errors() {
    let fake = FakeSlack::start().await;
    let client = SlackClient::new(&settings(&fake, "")).unwrap();

    // 429 then success: waits out Retry-After.
    fake.script("auth.test", Scripted::RateLimited { retry_after: 1 });
    let started = Instant::now();
    let answer = client.call("auth.test", &json!({})).await.unwrap();
    assert_eq!(answer["team_id"], fake_slack::TEAM_ID);
    assert!(started.elapsed() >= Duration::from_millis(950));
    assert_eq!(fake.calls("auth.test").len(), 2);

    // A 5xx is retried; `ok:false` is a typed error and is not.
    fake.script("auth.test", Scripted::Status(503));
    client.call("auth.test", &json!({})).await.unwrap();
    assert_eq!(fake.calls("auth.test").len(), 4);
    let error = client
        .call(
            "chat.update",
            &json!({"channel": "C1", "ts": "9.9", "text": "x"}),
        )
        .await
        .unwrap_err();
    assert_eq!(error.api_error(), Some("message_not_found"));
    assert_eq!(fake.calls("chat.update").len(), 1);

    // Bounded: three 429s exhaust max_attempts = 3.
    for _ in 0..3 {
        fake.script("auth.test", Scripted::RateLimited { retry_after: 0 });
    }
    let error = client.call("auth.test", &json!({})).await.unwrap_err();
    assert!(error.to_string().contains("rate limited"), "{error}");
    assert_eq!(error.attempts(), 3);
    // A Retry-After beyond max_retry_wait is not waited for.
    fake.script("auth.test", Scripted::RateLimited { retry_after: 120 });
    let started = Instant::now();
    assert!(client.call("auth.test", &json!({})).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(2));

    // The token is the bot's, as a bearer; a wrong one is refused by Slack.
    let mut wrong = slack_config(&fake, "");
    wrong.bot_token = Some(actiongate::chat::slack::SlackSecret::new("xoxb-wrong"));
    let wrong = SlackClient::new(&wrong.settings(|_| None).unwrap()).unwrap();
    let error = wrong.call("auth.test", &json!({})).await.unwrap_err();
    assert_eq!(error.api_error(), Some("invalid_auth"));
    assert!(!format!("{client:?}").contains(fake_slack::BOT_TOKEN));
}

fn notification(kind: NotificationKind, at_secs: i64) -> Notification {
    let t0: chrono::DateTime<chrono::Utc> = "2026-11-25T10:00:00Z".parse().unwrap();
    let at = t0 + chrono::Duration::seconds(at_secs);
    let approvals = match kind {
        NotificationKind::Pending => vec![],
        _ => vec![ApprovalEntry {
            approver: "dana@example.com".into(),
            name: "Dana".into(),
            at,
        }],
    };
    Notification {
        id: format!("n-{}-{at_secs}", kind.as_str()),
        kind,
        action: ActionSummary {
            action_id: "0190a000-0000-7000-8000-000000000001".into(),
            digest: "ab".repeat(32),
            kind: "db.export".into(),
            resource: "postgres://prod-analytics/warehouse".into(),
            agent_id: "etl-agent".into(),
            owner: "sam@example.com".into(),
            on_behalf_of: None,
            risk: Risk::Critical,
            reasons: vec!["destination is not on the allow-list".into()],
            justification: Some("weekly report".into()),
            // As the approval summary gives it: redacted by the one rule set.
            params: actiongate::approvals::Redaction::default().redact(
                &json!({"rows": 500, "destination": "s3://elsewhere", "token": "very-secret"}),
                "",
                &mut vec![],
            ),
            context: Default::default(),
            plugin: None,
            redacted: vec!["token".into()],
        },
        approval: ApprovalState {
            groups: vec!["data-owners".into()],
            quorum: 2,
            approvals,
            expires_at: t0 + chrono::Duration::hours(4),
            escalate_to: vec!["security".into()],
            escalated: false,
            modifiable_params: vec![],
            reviews: vec![],
            step_up: None,
        },
        review: (kind != NotificationKind::Pending).then(|| ReviewEntry {
            approver: "dana@example.com".into(),
            name: "Dana".into(),
            decision: "approve".into(),
            reason: Some("looks fine".into()),
            at,
        }),
        occurred_at: at,
        inbox_url: None,
    }
}

fn has_buttons(message: &Value) -> bool {
    message["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["type"] == "actions")
}

/// The fake Slack and a notifier posting to it, with its own database.
async fn notifier() -> (
    FakeSlack,
    actiongate_tests::pg::TempDatabase,
    Store,
    SlackNotifier,
) {
    let fake = FakeSlack::start().await;
    let database = actiongate_tests::pg::TempDatabase::create("ag_slack_notifier").await;
    let store = Store::connect(&database.url).await.unwrap();
    let settings = std::sync::Arc::new(settings(&fake, ""));
    let notifier = SlackNotifier::new(
        SlackClient::new(&settings).unwrap(),
        store.clone(),
        settings,
    );
    (fake, database, store, notifier)
}

#[tokio::test]
async fn notifier_posts_redraws_threads_and_escalates() {
    let (fake, _database, store, notifier) = notifier().await;

    notifier
        .notify(&notification(NotificationKind::Pending, 0))
        .await
        .unwrap();
    let post = &fake.calls("chat.postMessage")[0];
    assert_eq!(post.args["channel"], "C0DATA");
    let text = post.args["blocks"].to_string();
    assert!(
        !text.contains("very-secret") && text.contains("[redacted]"),
        "{text}"
    );
    assert!(text.contains("0 of 2"));
    let ts = fake.calls("chat.postMessage")[0].args.clone();
    let cards = store
        .slack_messages("0190a000-0000-7000-8000-000000000001")
        .await
        .unwrap();
    assert_eq!(cards.len(), 1);
    let ts_card = cards[0].ts.clone();
    assert!(
        has_buttons(&fake.message("C0DATA", &ts_card).unwrap()),
        "{ts}"
    );

    // A review redraws the card; a final state removes the buttons; a late,
    // older notification does not bring them back.
    notifier
        .notify(&notification(NotificationKind::Reviewed, 10))
        .await
        .unwrap();
    let card = fake.message("C0DATA", &ts_card).unwrap();
    assert!(card["blocks"].to_string().contains("1 of 2"));
    assert!(has_buttons(&card));
    notifier
        .notify(&notification(NotificationKind::Approved, 30))
        .await
        .unwrap();
    notifier
        .notify(&notification(NotificationKind::Reviewed, 20))
        .await
        .unwrap();
    let card = fake.message("C0DATA", &ts_card).unwrap();
    assert!(!has_buttons(&card), "{card}");
    assert!(card["text"].as_str().unwrap().starts_with("Approved"));
    assert_eq!(fake.calls("chat.update").len(), 2);

    // Reminder in the thread; escalation broadcast and posted to the
    // escalation group's channel.
    notifier
        .notify(&notification(NotificationKind::Reminder, 40))
        .await
        .unwrap();
    notifier
        .notify(&notification(NotificationKind::Escalated, 50))
        .await
        .unwrap();
    let posts = fake.calls("chat.postMessage");
    let reminder = &posts[1].args;
    assert_eq!(reminder["thread_ts"], ts_card.as_str());
    assert_eq!(reminder["reply_broadcast"], false);
    assert!(reminder["text"].as_str().unwrap().contains("Reminder"));
    let escalation = &posts[2].args;
    assert_eq!(escalation["thread_ts"], ts_card.as_str());
    assert_eq!(escalation["reply_broadcast"], true);
    assert_eq!(posts[3].args["channel"], "C0SEC");
}

#[tokio::test]
async fn notifier_failures_are_errors_not_panics() {
    let (fake, _database, _, notifier) = notifier().await;
    fake.script("chat.postMessage", Scripted::Error("channel_not_found"));
    let error = notifier
        .notify(&notification(NotificationKind::Pending, 0))
        .await
        .unwrap_err();
    assert!(matches!(error, NotifyError::GaveUp { .. }), "{error}");
    assert!(error.to_string().contains("channel_not_found"), "{error}");

    // No channel for the routed group at all.
    let mut n = notification(NotificationKind::Pending, 0);
    n.approval.groups = vec!["nobody".into()];
    n.action.action_id = "0190a000-0000-7000-8000-000000000002".into();
    assert!(matches!(
        notifier.notify(&n).await,
        Err(NotifyError::Invalid { .. })
    ));

    // The next notification posts the card that never made it.
    notifier
        .notify(&notification(NotificationKind::Reviewed, 5))
        .await
        .unwrap();
    assert_eq!(fake.calls("chat.postMessage").len(), 2);
}

// ---------------------------------------------------------------------------
// End to end: the real service, the fake Slack, signed interactivity.

use actiongate::evidence::EventKind;
use actiongate::store::KeyRole;
use actiongate_tests::server::TestServer;

/// dana and erin have configured Slack ids; fay is found by
/// `users.lookupByEmail`; owen owns the agent and is a data owner too.
const DIRECTORY: &str = r#"
    [[people]]
    email = "dana@example.com"
    name = "Dana"
    slack_id = "U0DANA"
    [[people]]
    email = "erin@example.com"
    name = "Erin"
    slack_id = "U0ERIN"
    [[people]]
    email = "fay@example.com"
    name = "Fay"
    [[people]]
    email = "owen@example.com"
    name = "Owen"
    slack_id = "U0OWEN"
    [[people]]
    email = "sam@example.com"
    name = "Sam"
    slack_id = "U0SAM"
    [groups]
    data-owners = ["dana@example.com", "erin@example.com", "fay@example.com", "owen@example.com"]
    security = ["sam@example.com"]
    default-approvers = ["dana@example.com"]
"#;

struct Rig {
    server: TestServer,
    fake: FakeSlack,
    http: reqwest::Client,
    agent_key: String,
    files: tempfile::TempDir,
}

/// Critical (unlisted destination): quorum 2 of data-owners.
fn critical_export() -> Value {
    json!({"kind": "db.export", "resource": "postgres://prod-analytics/warehouse",
           "params": {"rows": 500, "tables": ["orders"], "destination": "https://paste.example.net/x"},
           "justification": "share with the vendor"})
}

/// Medium (many rows): quorum 1 of data-owners.
fn medium_export() -> Value {
    json!({"kind": "db.export", "resource": "postgres://prod-analytics/warehouse",
           "params": {"rows": 20000, "tables": ["orders"], "destination": "s3://corp-analytics/weekly"},
           "justification": "weekly report"})
}

impl Rig {
    async fn start(extra: &str) -> Rig {
        let fake = FakeSlack::start().await;
        fake.add_user("fay@example.com", "U0FAY");
        let config = slack_config(&fake, extra);
        let server = TestServer::start_with(|c| {
            c.slack = Some(config);
            c.directory = toml::from_str(DIRECTORY).unwrap();
        })
        .await;
        let agent_key = server.agent("etl-agent", "owen@example.com").await;
        Rig {
            server,
            fake,
            http: reqwest::Client::new(),
            agent_key,
            files: tempfile::tempdir().unwrap(),
        }
    }

    async fn submit(&self, body: Value) -> String {
        let answer: Value = self
            .http
            .post(format!("{}/v1/actions", self.server.url))
            .bearer_auth(&self.agent_key)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answer["state"], "pending", "{answer}");
        answer["action_id"].as_str().unwrap().to_string()
    }

    async fn status(&self, id: &str) -> Value {
        self.http
            .get(format!("{}/v1/actions/{id}", self.server.url))
            .bearer_auth(&self.agent_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The card's (channel, ts) once it is posted.
    async fn card(&self, id: &str) -> (String, String) {
        let store = &self.server.app.gate.store();
        let posted = || async { store.slack_messages(id).await.unwrap().into_iter().next() };
        let card = settle(Duration::from_secs(10), posted, Option::is_some)
            .await
            .unwrap_or_else(|| panic!("no card posted for {id}"));
        (card.channel, card.ts)
    }

    fn message(&self, card: &(String, String)) -> Value {
        self.fake.message(&card.0, &card.1).unwrap()
    }

    /// The value the card's buttons carry now.
    fn button_value(&self, card: &(String, String)) -> String {
        let message = self.message(card);
        let actions = message["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["type"] == "actions")
            .unwrap_or_else(|| panic!("no buttons on {message}"))
            .clone();
        actions["elements"][0]["value"]
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn reviewed_events(&self, id: &str) -> usize {
        self.server
            .app
            .evidence
            .events_for_action(uuid::Uuid::parse_str(id).unwrap())
            .await
            .unwrap()
            .iter()
            .filter(|e| e.kind == EventKind::Reviewed)
            .count()
    }

    /// POSTs `payload` as Slack does, signed by slack_sdk for `timestamp`
    /// with `secret`. Returns status, body and how long the answer took.
    async fn post_signed_with(
        &self,
        payload: &Value,
        secret: &str,
        timestamp: i64,
    ) -> (u16, String, Duration) {
        let body = format!("payload={}", urlencode(&payload.to_string()));
        let signature = run_python(
            "slack_sign.py",
            &[
                "sign",
                secret,
                &timestamp.to_string(),
                &body_file(&self.files, &body),
            ],
        )
        .unwrap();
        self.post_raw(&body, &timestamp.to_string(), signature.trim())
            .await
    }

    async fn post_raw(
        &self,
        body: &str,
        timestamp: &str,
        signature: &str,
    ) -> (u16, String, Duration) {
        let started = Instant::now();
        let response = self
            .http
            .post(format!("{}/slack/interactivity", self.server.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", timestamp)
            .header("x-slack-signature", signature)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, text, started.elapsed())
    }

    async fn post_signed(&self, payload: &Value) -> (u16, String) {
        let (status, body, took) = self
            .post_signed_with(
                payload,
                fake_slack::SIGNING_SECRET,
                chrono::Utc::now().timestamp(),
            )
            .await;
        assert!(
            took < Duration::from_secs(3),
            "Slack wants an answer within 3 s; took {took:?}"
        );
        (status, body)
    }

    /// A click on `button` of the card by Slack user `user`.
    async fn click(
        &self,
        user: &str,
        card: &(String, String),
        button: &str,
        value: &str,
    ) -> String {
        let trigger = self.fake.trigger();
        let payload = fake_slack::block_actions(user, &card.0, &card.1, button, value, &trigger);
        let (status, body) = self.post_signed(&payload).await;
        assert_eq!(status, 200, "{body}");
        assert!(
            body.is_empty(),
            "a click is acked with an empty 200: {body}"
        );
        trigger
    }

    /// The modal `views.open` opened for `trigger`.
    async fn modal(&self, trigger: &str) -> Value {
        let trigger = trigger.to_string();
        self.fake
            .wait_until("views.open", |f| {
                f.calls("views.open")
                    .iter()
                    .any(|c| c.args["trigger_id"] == trigger.as_str())
            })
            .await;
        self.fake
            .calls("views.open")
            .into_iter()
            .find(|c| c.args["trigger_id"] == trigger.as_str())
            .unwrap()
            .args["view"]
            .clone()
    }

    /// Submits `view` as `user` with `values`; returns the JSON Slack gets back.
    async fn submit_modal(&self, user: &str, view: &Value, values: &[(&str, &str)]) -> Value {
        let payload = fake_slack::view_submission(user, view, values);
        let (status, body) = self.post_signed(&payload).await;
        assert_eq!(status, 200, "{body}");
        if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&body).unwrap()
        }
    }

    async fn ephemeral_to(&self, user: &str, containing: &str) -> String {
        let (user, containing) = (user.to_string(), containing.to_string());
        let find = |f: &FakeSlack| {
            f.calls("chat.postEphemeral")
                .into_iter()
                .find(|c| {
                    c.args["user"] == user.as_str()
                        && c.args["text"].as_str().unwrap_or("").contains(&containing)
                })
                .map(|c| c.args["text"].as_str().unwrap().to_string())
        };
        self.fake
            .wait_until(
                &format!("an ephemeral to {user} with {containing:?}"),
                |f| find(f).is_some(),
            )
            .await;
        find(&self.fake).unwrap()
    }

    /// A (pending or final) card has been redrawn `n` times in total.
    async fn updates(&self, n: usize) {
        self.fake
            .wait_until(&format!("{n} chat.update calls"), |f| {
                f.calls("chat.update").len() >= n
            })
            .await;
    }
}

fn has_text(message: &Value, text: &str) -> bool {
    message["blocks"].to_string().contains(text)
}

#[tokio::test]
async fn two_slack_users_approve_and_the_agent_gets_its_grant() {
    let rig = Rig::start("").await;
    let id = rig.submit(critical_export()).await;

    // The agent long-polls while people click.
    let waiter = {
        let (http, url, key, id) = (
            rig.http.clone(),
            rig.server.url.clone(),
            rig.agent_key.clone(),
            id.clone(),
        );
        tokio::spawn(async move {
            http.get(format!("{url}/v1/actions/{id}"))
                .bearer_auth(key)
                .header("Prefer", "wait=30")
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };

    let card = rig.card(&id).await;
    assert_eq!(card.0, "C0DATA");
    let message = rig.message(&card);
    for shown in [
        "etl-agent",
        "owen@example.com",
        "db.export",
        "postgres://prod-analytics/warehouse",
        "critical",
        "share with the vendor",
        "paste.example.net",
        "0 of 2",
    ] {
        assert!(has_text(&message, shown), "{shown} missing from {message}");
    }
    let value = rig.button_value(&card);
    let approve = &message["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "actions")
        .unwrap()["elements"][0];
    assert_eq!(approve["style"], "primary");
    assert!(
        approve["confirm"].is_object(),
        "critical: Approve asks to confirm"
    );

    // Dana (configured slack_id): Approve -> reason modal -> approved 1 of 2.
    let trigger = rig
        .click("U0DANA", &card, "actiongate_approve", &value)
        .await;
    let view = rig.modal(&trigger).await;
    let answer = rig
        .submit_modal("U0DANA", &view, &[("reason", "vendor contract covers it")])
        .await;
    assert_eq!(answer, json!({"response_action": "clear"}));
    rig.updates(1).await;
    let message = rig.message(&card);
    assert!(
        has_text(&message, "1 of 2") && has_text(&message, "Dana"),
        "{message}"
    );
    assert!(message["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["type"] == "actions"));

    // Fay (no slack_id: found by users.lookupByEmail) approves second.
    let trigger = rig
        .click("U0FAY", &card, "actiongate_approve", &value)
        .await;
    let view = rig.modal(&trigger).await;
    let answer = rig
        .submit_modal("U0FAY", &view, &[("reason", "agreed")])
        .await;
    assert_eq!(answer, json!({"response_action": "clear"}));
    assert!(rig
        .fake
        .calls("users.lookupByEmail")
        .iter()
        .any(|c| c.args["email"] == "fay@example.com"));

    let status = tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status["state"], "approved", "{status}");
    assert!(
        status["grant"].as_str().is_some_and(|g| !g.is_empty()),
        "{status}"
    );

    // The card ends final: who approved, no buttons.
    rig.fake
        .wait_until("the card shows approved", |f| {
            f.message(&card.0, &card.1)
                .is_some_and(|m| m["text"].as_str().unwrap_or("").starts_with("Approved"))
        })
        .await;
    let message = rig.message(&card);
    assert!(
        has_text(&message, "2 of 2") && has_text(&message, "Dana") && has_text(&message, "Fay"),
        "{message}"
    );
    assert!(
        message["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["type"] != "actions"),
        "{message}"
    );
    assert_eq!(rig.reviewed_events(&id).await, 2);
    let events = rig
        .server
        .app
        .evidence
        .events_for_action(uuid::Uuid::parse_str(&id).unwrap())
        .await
        .unwrap();
    assert!(events
        .iter()
        .filter(|e| e.kind == EventKind::Reviewed)
        .all(|e| e.canonical.contains("\"channel\":\"slack\"")));
}

#[tokio::test]
async fn forged_stale_replayed_unknown_self_and_double_clicks_change_nothing() {
    let rig = Rig::start("").await;
    let id = rig.submit(critical_export()).await;
    let card = rig.card(&id).await;
    let value = rig.button_value(&card);
    let click = |user: &str| {
        fake_slack::block_actions(
            user,
            &card.0,
            &card.1,
            "actiongate_approve",
            &value,
            "t-unused",
        )
    };
    let now = chrono::Utc::now().timestamp();

    // Bad signature (another secret), stale timestamp, replay: 401, nothing opened.
    let (status, body, _) = rig
        .post_signed_with(&click("U0DANA"), "not-the-signing-secret", now)
        .await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("signature"), "{body}");
    let (status, body, _) = rig
        .post_signed_with(&click("U0DANA"), fake_slack::SIGNING_SECRET, now - 6 * 60)
        .await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("away from now"), "{body}");
    let (status, _, _) = rig
        .post_raw("payload=%7B%7D", &now.to_string(), "v0=00")
        .await;
    assert_eq!(status, 401);
    let payload = fake_slack::block_actions(
        "U0DANA",
        &card.0,
        &card.1,
        "actiongate_deny",
        &value,
        &rig.fake.trigger(),
    );
    let body = format!("payload={}", urlencode(&payload.to_string()));
    let signature = verify::signature(
        fake_slack::SIGNING_SECRET.as_bytes(),
        &now.to_string(),
        body.as_bytes(),
    );
    let (first, _, _) = rig.post_raw(&body, &now.to_string(), &signature).await;
    assert_eq!(first, 200);
    let (again, replay, _) = rig.post_raw(&body, &now.to_string(), &signature).await;
    assert_eq!(again, 401, "{replay}");
    assert!(replay.contains("replay"), "{replay}");
    // The first (genuine) Deny click only opened a modal, once.
    rig.fake
        .wait_until("one views.open", |f| f.calls("views.open").len() == 1)
        .await;

    // An unknown Slack user: refused with an ephemeral explanation.
    rig.click("U0NOBODY", &card, "actiongate_approve", &value)
        .await;
    let text = rig.ephemeral_to("U0NOBODY", "not linked").await;
    assert!(text.contains("not recorded"), "{text}");

    // The agent's owner: the modal opens (the rules are the gate's), and
    // the submission is refused on the form.
    let trigger = rig
        .click("U0OWEN", &card, "actiongate_approve", &value)
        .await;
    let view = rig.modal(&trigger).await;
    let answer = rig
        .submit_modal("U0OWEN", &view, &[("reason", "my own agent, trust me")])
        .await;
    assert_eq!(answer["response_action"], "errors", "{answer}");
    assert!(
        answer["errors"]["reason"]
            .as_str()
            .unwrap()
            .contains("owns agent"),
        "{answer}"
    );

    assert_eq!(rig.reviewed_events(&id).await, 0);
    assert_eq!(rig.status(&id).await["state"], "pending");
    assert!(rig.fake.calls("chat.update").is_empty());

    // Dana approves once; her second click is a duplicate and changes nothing.
    let trigger = rig
        .click("U0DANA", &card, "actiongate_approve", &value)
        .await;
    let view = rig.modal(&trigger).await;
    assert_eq!(
        rig.submit_modal("U0DANA", &view, &[("reason", "fine")])
            .await,
        json!({"response_action": "clear"})
    );
    rig.updates(1).await;
    let trigger = rig
        .click("U0DANA", &card, "actiongate_approve", &value)
        .await;
    let view = rig.modal(&trigger).await;
    let answer = rig
        .submit_modal("U0DANA", &view, &[("reason", "fine, again")])
        .await;
    assert!(
        answer["errors"]["reason"]
            .as_str()
            .unwrap()
            .contains("already approved"),
        "{answer}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rig.reviewed_events(&id).await, 1);
    assert_eq!(rig.fake.calls("chat.update").len(), 1);
    assert_eq!(rig.status(&id).await["state"], "pending");
}

#[tokio::test]
async fn direct_clicks_owner_refusal_and_double_click_on_a_medium_action() {
    let rig = Rig::start("").await;
    let id = rig.submit(medium_export()).await;
    let card = rig.card(&id).await;
    let value = rig.button_value(&card);
    let message = rig.message(&card);
    let approve = &message["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "actions")
        .unwrap()["elements"][0];
    assert!(
        approve.get("confirm").is_none(),
        "medium: no confirm dialog"
    );

    // The owner's click: an ephemeral refusal, nothing recorded.
    rig.click("U0OWEN", &card, "actiongate_approve", &value)
        .await;
    let text = rig.ephemeral_to("U0OWEN", "owns agent").await;
    assert!(text.starts_with("Not recorded"), "{text}");
    assert_eq!(rig.reviewed_events(&id).await, 0);

    // Erin approves with one click (no modal for medium); quorum 1 -> approved.
    rig.click("U0ERIN", &card, "actiongate_approve", &value)
        .await;
    rig.ephemeral_to("U0ERIN", "Recorded").await;
    assert_eq!(rig.status(&id).await["state"], "approved");
    rig.fake
        .wait_until("final card", |f| {
            f.message(&card.0, &card.1)
                .is_some_and(|m| m["text"].as_str().unwrap_or("").starts_with("Approved"))
        })
        .await;
    // A second click (from a stale client) is refused: the request is decided.
    rig.click("U0ERIN", &card, "actiongate_approve", &value)
        .await;
    let text = rig.ephemeral_to("U0ERIN", "already approved").await;
    assert!(text.contains("no longer be reviewed"), "{text}");
    assert_eq!(rig.reviewed_events(&id).await, 1);
    assert!(rig.fake.calls("views.open").is_empty());
}

#[tokio::test]
async fn deny_and_modify_modals_validate_fields_and_stale_cards_are_refused() {
    let rig = Rig::start("").await;

    // Deny needs a reason; the card ends denied, with it.
    let id = rig.submit(medium_export()).await;
    let card = rig.card(&id).await;
    let value = rig.button_value(&card);
    let trigger = rig.click("U0DANA", &card, "actiongate_deny", &value).await;
    let view = rig.modal(&trigger).await;
    assert_eq!(view["submit"]["text"], "Deny");
    let answer = rig
        .submit_modal("U0DANA", &view, &[("reason", "   ")])
        .await;
    assert_eq!(answer["response_action"], "errors");
    assert_eq!(answer["errors"]["reason"], "Give a reason.");
    assert_eq!(rig.reviewed_events(&id).await, 0);
    let answer = rig
        .submit_modal("U0DANA", &view, &[("reason", "not this week")])
        .await;
    assert_eq!(answer, json!({"response_action": "clear"}));
    assert_eq!(rig.status(&id).await["state"], "denied");
    rig.fake
        .wait_until("denied card", |f| {
            f.message(&card.0, &card.1)
                .is_some_and(|m| m["text"].as_str().unwrap_or("").starts_with("Denied"))
        })
        .await;
    assert!(has_text(&rig.message(&card), "not this week"));

    // Modify: fields prefilled; bad values come back per field; a good one
    // re-evaluates, counts as Erin's approval of the new version.
    let id = rig.submit(critical_export()).await;
    let card = rig.card(&id).await;
    let old_value = rig.button_value(&card);
    let trigger = rig
        .click("U0ERIN", &card, "actiongate_modify", &old_value)
        .await;
    let view = rig.modal(&trigger).await;
    let rows = view["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["block_id"] == "param:rows")
        .unwrap();
    assert_eq!(rows["element"]["initial_value"], "500");
    let answer = rig
        .submit_modal(
            "U0ERIN",
            &view,
            &[
                ("param:rows", "lots"),
                ("param:tables", "orders"),
                ("param:destination", "https://paste.example.net/x"),
                ("reason", "r"),
            ],
        )
        .await;
    assert_eq!(answer["errors"]["param:rows"], "Enter a number.");
    assert_eq!(
        answer["errors"]["param:tables"],
        "Enter a JSON array, e.g. [\"a\", \"b\"]."
    );
    let answer = rig
        .submit_modal(
            "U0ERIN",
            &view,
            &[
                ("param:rows", "100"),
                ("param:tables", "[\"orders\"]"),
                ("param:destination", "https://paste.example.net/x"),
                ("reason", "fewer rows"),
            ],
        )
        .await;
    assert_eq!(answer, json!({"response_action": "clear"}), "{answer}");
    rig.fake
        .wait_until("card redrawn for the new version", |f| {
            f.message(&card.0, &card.1).is_some_and(|m| {
                m["blocks"].to_string().contains("\\\"rows\\\": 100")
                    || m["blocks"].to_string().contains("\"rows\": 100")
            })
        })
        .await;
    let new_value = rig.button_value(&card);
    assert_ne!(new_value, old_value, "buttons bind the new digest");

    // A click from the old card (old digest) is refused: the approver has
    // not seen the modified action.
    rig.click("U0DANA", &card, "actiongate_deny", &old_value)
        .await;
    let text = rig.ephemeral_to("U0DANA", "out of date").await;
    assert!(text.contains("nothing was recorded"), "{text}");
    assert_eq!(rig.status(&id).await["state"], "pending");
}

#[tokio::test]
async fn socket_mode_takes_reviews_and_reconnects() {
    let rig = Rig::start(&format!(
        "mode = \"socket\"\napp_token = \"{}\"",
        fake_slack::APP_TOKEN
    ))
    .await;
    rig.fake.wait_for_socket(Duration::from_secs(10)).await;
    // No public endpoint in Socket Mode.
    let (status, _, _) = rig.post_raw("payload=%7B%7D", "0", "v0=00").await;
    assert_eq!(status, 404);

    let id = rig.submit(medium_export()).await;
    let card = rig.card(&id).await;
    let value = rig.button_value(&card);
    let click = fake_slack::block_actions(
        "U0DANA",
        &card.0,
        &card.1,
        "actiongate_approve",
        &value,
        &rig.fake.trigger(),
    );
    let ack = rig.fake.push_interactive(click).await;
    assert!(ack.get("payload").is_none(), "{ack}");
    rig.fake
        .wait_until("approved over socket mode", |f| {
            f.message(&card.0, &card.1)
                .is_some_and(|m| m["text"].as_str().unwrap_or("").starts_with("Approved"))
        })
        .await;
    assert_eq!(rig.status(&id).await["state"], "approved");

    // Slack recycles the connection; the host reconnects and keeps working.
    rig.fake.disconnect_all("refresh_requested");
    rig.fake
        .wait_until("reconnected", |f| f.connections() >= 2)
        .await;
    let id = rig.submit(medium_export()).await;
    let card = rig.card(&id).await;
    let value = rig.button_value(&card);
    let trigger = rig.fake.trigger();
    let ack = rig
        .fake
        .push_interactive(fake_slack::block_actions(
            "U0ERIN",
            &card.0,
            &card.1,
            "actiongate_deny",
            &value,
            &trigger,
        ))
        .await;
    assert!(ack.get("payload").is_none());
    let view = rig.modal(&trigger).await;
    let ack = rig
        .fake
        .push_interactive(fake_slack::view_submission(
            "U0ERIN",
            &view,
            &[("reason", "")],
        ))
        .await;
    assert_eq!(ack["payload"]["response_action"], "errors", "{ack}");
    let ack = rig
        .fake
        .push_interactive(fake_slack::view_submission(
            "U0ERIN",
            &view,
            &[("reason", "no")],
        ))
        .await;
    assert_eq!(ack["payload"], json!({"response_action": "clear"}));
    assert_eq!(rig.status(&id).await["state"], "denied");
}

#[tokio::test]
async fn a_slack_outage_is_evidence_and_the_api_still_approves() {
    let rig = Rig::start("max_attempts = 1").await;
    rig.fake.script("chat.postMessage", Scripted::Status(503));
    let id = rig.submit(medium_export()).await;
    let uuid = uuid::Uuid::parse_str(&id).unwrap();
    let failed = || async {
        let events = rig.server.app.evidence.events_for_action(uuid).await;
        events
            .unwrap()
            .into_iter()
            .find(|e| e.kind == EventKind::NotifyFailed)
    };
    let failed = settle(Duration::from_secs(10), failed, Option::is_some)
        .await
        .expect("no notify-failed event");
    assert!(failed.canonical.contains("slack"), "{}", failed.canonical);
    let dana = rig.server.key(KeyRole::Approver, "dana@example.com").await;
    let response = rig
        .http
        .post(format!("{}/v1/approvals/{id}/reviews", rig.server.url))
        .bearer_auth(dana)
        .json(&json!({"decision": "approve"}))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );
    assert_eq!(rig.status(&id).await["state"], "approved");
}
