//! Approvers see everything they decide on, on every channel alike: one
//! held action, one review so far, and the same facts (and the same
//! redaction) in the API list and detail, the CLI list and show, a signed
//! webhook, the Slack card (fake Slack) and the Teams card (fake Bot
//! Connector). Real service, real HTTP on loopback, Postgres.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actiongate::cli::Cli;
use actiongate::store::KeyRole;
use actiongate_tests::caller::Caller;
use actiongate_tests::fake_slack::{self, FakeSlack};
use actiongate_tests::fake_teams::{ChannelKey, FakeTeams};
use actiongate_tests::server::TestServer;
use clap::Parser;
use serde_json::{json, Value};

const DIRECTORY: &str = r#"
    [[people]]
    email = "dana@example.com"
    name = "Dana Data"
    slack_id = "U0DANA"
    teams_id = "6d1f3a52-0000-4000-8000-00000000da7a"
    [[people]]
    email = "erin@example.com"
    name = "Erin Owner"
    slack_id = "U0ERIN"
    teams_id = "6d1f3a52-0000-4000-8000-0000000e0e17"
    [[people]]
    email = "sam@example.com"
    name = "Sam Sec"
    [groups]
    data-owners = ["dana@example.com", "erin@example.com"]
    security = ["sam@example.com"]
"#;

/// The secrets in the submission; none may reach any channel.
const SECRETS: [&str; 3] = ["hunter2-db-pass", "tok-9f8e7d", "sess-cookie-77"];

/// Critical (PII, 250k rows): two data owners, escalating to security.
fn critical_export() -> Value {
    json!({
        "kind": "db.export",
        "resource": "postgres://prod/warehouse",
        "params": {
            "rows": 250000,
            "tables": ["customers"],
            "destination": "s3://corp-analytics/q4",
            "db_password": SECRETS[0],
            "auth": {"accessToken": SECRETS[1]},
        },
        "justification": "quarterly churn model",
        "context": {"session": "chat-4711", "model": "gpt-x", "cookie": SECRETS[2]},
        "on_behalf_of": "pat@example.com",
    })
}

/// The facts every channel must show, as text that appears in each.
fn facts(sha256: &str) -> Vec<(&'static str, String)> {
    vec![
        ("agent", "etl-agent".into()),
        ("owner", "owen@example.com".into()),
        ("on behalf of", "pat@example.com".into()),
        ("justification", "quarterly churn model".into()),
        ("context", "chat-4711".into()),
        ("params", "corp-analytics/q4".into()),
        ("risk", "critical".into()),
        ("reasons", "tables with personal data: customers".into()),
        ("plugin name", "db-export".into()),
        ("plugin version", "1.0.0".into()),
        ("plugin sha256", sha256.to_string()),
        ("groups", "data-owners".into()),
        ("escalation", "security".into()),
        ("review so far", "dana@example.com".into()),
        ("review reason", "checked the destination".into()),
        ("redaction", "[redacted]".into()),
    ]
}

/// Asserts that `text` (one channel's rendering) shows every fact and no secret.
fn assert_shows_everything(channel: &str, text: &str, sha256: &str) {
    for (fact, value) in facts(sha256) {
        assert!(
            text.contains(&value),
            "{channel} does not show the {fact} ({value:?}):\n{text}"
        );
    }
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "{channel} shows a secret ({secret}):\n{text}"
        );
    }
}

#[tokio::test]
async fn every_channel_shows_the_same_facts_and_the_same_redaction() {
    // Webhook receiver.
    let received: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    // Slack and Teams fakes.
    let slack = FakeSlack::start().await;
    let slack_config = toml::from_str(&format!(
        "api_base_url = \"{}\"\nbot_token = \"{}\"\nsigning_secret = \"{}\"\nchannels = {{ data-owners = \"C0DATA\" }}",
        slack.api_url(),
        fake_slack::BOT_TOKEN,
        fake_slack::SIGNING_SECRET
    ))
    .unwrap();
    let teams = FakeTeams::start(vec![(
        ChannelKey::fixture("channel-key-1.pem", "key-1"),
        vec!["msteams"],
    )])
    .await;
    let teams_config = teams.config(&[("data-owners", "19:data@thread.tacv2")]);

    let server = TestServer::start_with(|c| {
        c.directory = toml::from_str(DIRECTORY).unwrap();
        c.slack = Some(slack_config);
        c.teams = Some(teams_config);
        c.notify.webhooks = vec![toml::from_str(&format!(
            "name = \"siem\"\nurl = \"{hook}\"\nsecret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\""
        ))
        .unwrap()];
    })
    .await;
    let agent = Caller::agent(&server, "etl-agent", "owen@example.com").await;
    let dana = Caller::approver(&server, "dana@example.com").await;
    let erin_key = server.key(KeyRole::Approver, "erin@example.com").await;
    let erin = Caller::new(&server, erin_key.clone());

    let (status, held) = agent.post("/v1/actions", critical_export()).await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{held}");
    let id = held["action_id"].as_str().unwrap().to_string();
    let (status, reviewed) = dana
        .post(
            &format!("/v1/approvals/{id}/reviews"),
            json!({"decision": "approve", "reason": "checked the destination"}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{reviewed}");
    assert_eq!(reviewed["state"], "pending");
    let sha256 = server
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

    // The API: list and detail, as erin (who may still review it).
    let list: Value = erin
        .get("/v1/approvals?state=pending")
        .await
        .json()
        .await
        .unwrap();
    let listed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["action"]["action_id"] == id.as_str())
        .expect("listed for erin")
        .clone();
    let detail: Value = erin
        .get(&format!("/v1/approvals/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed, detail, "list and detail are the same summary");
    assert_shows_everything("the API", &detail.to_string(), &sha256);
    assert_eq!(detail["action"]["plugin"]["sha256"], sha256.as_str());
    assert_eq!(detail["approval"]["quorum"], 2);
    assert_eq!(detail["approval"]["reviews"][0]["decision"], "approve");
    assert_eq!(detail["action"]["params"]["db_password"], "[redacted]");
    assert_eq!(
        detail["action"]["params"]["auth"]["accessToken"],
        "[redacted]"
    );
    assert_eq!(detail["action"]["context"]["cookie"], "[redacted]");
    assert_eq!(detail["action"]["params"]["rows"], 250000);
    // Someone who may not review it learns nothing of it.
    let sam = Caller::approver(&server, "sam@example.com").await;
    let hidden = sam.get(&format!("/v1/approvals/{id}")).await;
    assert_eq!(hidden.status(), reqwest::StatusCode::NOT_FOUND);

    // The CLI: list and show, in text.
    for args in [vec!["approvals", "list"], vec!["approvals", "show", &id]] {
        let mut argv = vec!["actiongate"];
        argv.extend(args.iter().copied());
        argv.extend(["--url", &server.url, "--key", &erin_key]);
        let mut out = Vec::new();
        let code = actiongate::cli::run(Cli::try_parse_from(&argv).unwrap(), &mut out).await;
        let text = String::from_utf8(out).unwrap();
        assert_eq!(code, 0, "{text}");
        assert_shows_everything(&format!("`{}`", args.join(" ")), &text, &sha256);
    }

    // The webhook: the `reviewed` announcement carries the summary.
    let webhook = wait_for(|| {
        received
            .lock()
            .unwrap()
            .iter()
            .find(|b| b.contains("approval.reviewed"))
            .cloned()
    })
    .await;
    let data = serde_json::from_str::<Value>(&webhook).unwrap()["data"].clone();
    assert_eq!(
        data["action"], detail["action"],
        "the webhook's action is the summary's"
    );
    assert_eq!(
        data["approval"], detail["approval"],
        "the webhook's approval is the summary's"
    );
    assert_shows_everything("the webhook", &webhook, &sha256);

    // Slack: the card, redrawn after the review.
    let card = wait_for(|| {
        slack
            .calls("chat.update")
            .into_iter()
            .map(|c| c.args["blocks"].to_string())
            .find(|b| b.contains("checked the destination"))
    })
    .await;
    assert_shows_everything("the Slack card", &card, &sha256);

    // Teams: the card, updated after the review.
    let card = wait_for(|| {
        teams
            .sent()
            .into_iter()
            .map(|s| s.body.to_string())
            .find(|b| b.contains(&id) && b.contains("checked the destination"))
    })
    .await;
    // Adaptive Cards text escapes Markdown (`_` as `\_`); compare unescaped.
    let card = card.replace("\\\\", "");
    assert_shows_everything("the Teams card", &card, &sha256);
}

async fn wait_for<T>(find: impl Fn() -> Option<T>) -> T {
    let found = actiongate_tests::settle(
        Duration::from_secs(10),
        || async { find() },
        Option::is_some,
    );
    found.await.expect("not seen within 10 s")
}
