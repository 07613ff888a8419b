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
use actiongate_tests::run_python;
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
    fake.wait_until("the SDK reconnects", |f| f.connections() >= 2)
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
            params: json!({"rows": 500, "destination": "s3://elsewhere", "token": "very-secret"}),
        },
        approval: ApprovalState {
            groups: vec!["data-owners".into()],
            quorum: 2,
            approvals,
            expires_at: t0 + chrono::Duration::hours(4),
            escalate_to: vec!["security".into()],
        },
        review: (kind != NotificationKind::Pending).then(|| ReviewEntry {
            approver: "dana@example.com".into(),
            name: "Dana".into(),
            decision: "approve".into(),
            reason: Some("looks fine".into()),
            at,
        }),
        occurred_at: at,
    }
}

fn has_buttons(message: &Value) -> bool {
    message["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["type"] == "actions")
}

#[tokio::test]
async fn notifier_posts_redraws_threads_and_escalates() {
    let fake = FakeSlack::start().await;
    let store = Store::connect(&actiongate_tests::server::fresh_database().await)
        .await
        .unwrap();
    let settings = std::sync::Arc::new(settings(&fake, ""));
    let notifier = SlackNotifier::new(
        SlackClient::new(&settings).unwrap(),
        store.clone(),
        settings,
    );

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
    let fake = FakeSlack::start().await;
    let store = Store::connect(&actiongate_tests::server::fresh_database().await)
        .await
        .unwrap();
    let settings = std::sync::Arc::new(settings(&fake, ""));
    let notifier = SlackNotifier::new(
        SlackClient::new(&settings).unwrap(),
        store.clone(),
        settings,
    );
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
