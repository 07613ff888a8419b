//! Teams approvals against a local fake of Microsoft's side
//! (tests/support/fake_teams.rs): the bot's token cache, the Connector
//! client's retries, and the incoming JWT verifier, which must accept and
//! refuse exactly the tokens Microsoft's own `botframework-connector`
//! (pinned in tests/python/requirements.txt) accepts and refuses.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actiongate::chat::teams::{
    AppSecret, AuthError, BotAuthenticator, Connector, ConnectorError, Conversation,
    ConversationConfig, RetryPolicy, TeamsConfig, TokenClient,
};
use actiongate_tests::fake_teams::{ChannelKey, FakeTeams, TokenSpec, APP_ID, APP_SECRET, CHANNEL};
use actiongate_tests::run_python;
use axum::http::StatusCode;
use serde_json::json;

fn key1() -> ChannelKey {
    ChannelKey::fixture("channel-key-1.pem", "key-1")
}

/// Published, but endorsed for other channels only.
fn webchat_key() -> ChannelKey {
    ChannelKey::fixture("channel-key-2.pem", "key-webchat")
}

fn attacker() -> ChannelKey {
    ChannelKey::fixture("attacker-key.pem", "key-1")
}

async fn fake() -> FakeTeams {
    FakeTeams::start(vec![
        (key1(), vec!["msteams", "webchat"]),
        (webchat_key(), vec!["webchat", "skype"]),
    ])
    .await
}

fn authenticator(config: &TeamsConfig) -> BotAuthenticator {
    BotAuthenticator::new(reqwest::Client::new(), config).unwrap()
}

/// The good token and one token per way of being wrong.
fn cases(fake: &FakeTeams) -> Vec<(&'static str, String, String)> {
    let good = fake.claims("key-1");
    let service_url = fake.service_url();
    let with = |f: &dyn Fn(&mut TokenSpec)| {
        let mut spec = good.clone();
        f(&mut spec);
        spec
    };
    vec![
        ("good", fake.token(&good), service_url.clone()),
        (
            "wrong-audience",
            fake.token(&with(&|s| s.aud = "some-other-bot".into())),
            service_url.clone(),
        ),
        (
            "wrong-issuer",
            fake.token(&with(&|s| s.iss = "https://sts.windows.net/evil/".into())),
            service_url.clone(),
        ),
        (
            "expired",
            fake.token(&with(&|s| {
                s.exp_in = -3600;
                s.nbf_in = -7200
            })),
            service_url.clone(),
        ),
        (
            "unknown-kid",
            fake.sign(
                &with(&|s| s.kid = "key-nobody-published".into()),
                &attacker(),
            ),
            service_url.clone(),
        ),
        (
            "bad-signature",
            fake.sign(&good, &attacker()),
            service_url.clone(),
        ),
        (
            "wrong-service-url",
            fake.token(&good),
            "https://smba.evil.example.com/".into(),
        ),
        (
            "missing-endorsement",
            fake.token(&fake.claims("key-webchat")),
            service_url.clone(),
        ),
    ]
}

#[tokio::test]
async fn verifier_agrees_with_botframework_connector() {
    let fake = fake().await;
    let config = fake.config(&[]);
    let ours = authenticator(&config);
    let cases = cases(&fake);

    let file = tempfile::NamedTempFile::new().unwrap();
    let json_cases: Vec<_> = cases
        .iter()
        .map(|(name, token, service_url)| json!({"name": name, "token": token, "service_url": service_url}))
        .collect();
    std::fs::write(file.path(), serde_json::to_vec(&json_cases).unwrap()).unwrap();
    // The fake answers Python from this runtime, so Python runs off it.
    let args = [
        fake.metadata_url(),
        APP_ID.to_string(),
        APP_SECRET.to_string(),
        CHANNEL.to_string(),
        file.path().to_str().unwrap().to_string(),
    ];
    let theirs = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_python("teams_validate.py", &args)
    })
    .await
    .unwrap()
    .expect("botframework-connector ran");
    let theirs: BTreeMap<String, String> = serde_json::from_str(&theirs).unwrap();
    assert_eq!(theirs.len(), cases.len(), "{theirs:?}");

    for (name, token, service_url) in &cases {
        let verdict = ours
            .verify(Some(&format!("Bearer {token}")), service_url, CHANNEL)
            .await;
        let microsoft = &theirs[*name];
        if *name == "good" {
            assert!(verdict.is_ok(), "{name}: we refused: {verdict:?}");
            assert_eq!(microsoft, "accepted", "{name}: botframework-connector");
        } else {
            assert!(verdict.is_err(), "{name}: we accepted it");
            // Refused, and for the same reason.
            let why = match *name {
                "wrong-audience" => "Invalid AppId",
                "wrong-issuer" => "No valid identity",
                "expired" => "ExpiredSignatureError",
                // The SDK finds no key: its lookup raises on the empty match.
                "unknown-kid" => "IndexError",
                "bad-signature" => "InvalidSignatureError",
                "wrong-service-url" => "service_url claim do not match",
                "missing-endorsement" => "Could not validate endorsement key",
                other => panic!("no expectation for {other}"),
            };
            assert!(
                microsoft.starts_with("refused") && microsoft.contains(why),
                "{name}: botframework-connector {microsoft}"
            );
        }
        eprintln!("{name}: ours {verdict:?}; botframework-connector {microsoft}");
    }
}

#[tokio::test]
async fn verifier_names_each_refusal() {
    let fake = fake().await;
    let ours = authenticator(&fake.config(&[]));
    let verdicts: BTreeMap<&str, Result<_, AuthError>> = {
        let mut out = BTreeMap::new();
        for (name, token, service_url) in cases(&fake) {
            out.insert(
                name,
                ours.verify(Some(&format!("Bearer {token}")), &service_url, CHANNEL)
                    .await,
            );
        }
        out
    };
    let err = |name: &str| verdicts[name].clone().unwrap_err();
    assert!(matches!(err("wrong-audience"), AuthError::Invalid(m) if m.contains("Audience")));
    assert!(matches!(err("wrong-issuer"), AuthError::Invalid(m) if m.contains("Issuer")));
    assert!(matches!(err("expired"), AuthError::Invalid(m) if m.contains("Expired")));
    assert!(matches!(err("unknown-kid"), AuthError::UnknownKey { .. }));
    assert!(matches!(err("bad-signature"), AuthError::Invalid(m) if m.contains("Signature")));
    assert_eq!(err("wrong-service-url"), AuthError::ServiceUrlMismatch);
    assert!(matches!(
        err("missing-endorsement"),
        AuthError::NotEndorsed { .. }
    ));

    // No header, another scheme, another channel, another algorithm.
    let good = fake.token(&fake.claims("key-1"));
    let url = fake.service_url();
    assert_eq!(
        ours.verify(None, &url, CHANNEL).await,
        Err(AuthError::MissingToken)
    );
    assert_eq!(
        ours.verify(Some(&format!("Basic {good}")), &url, CHANNEL)
            .await,
        Err(AuthError::NotBearer)
    );
    assert!(matches!(
        ours.verify(Some(&format!("Bearer {good}")), &url, "webchat")
            .await,
        Err(AuthError::WrongChannel { .. })
    ));
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"iss": "https://api.botframework.com", "aud": APP_ID, "exp": 9999999999u64, "serviceurl": url}),
        &jsonwebtoken::EncodingKey::from_secret(b"guess"),
    )
    .unwrap();
    assert!(matches!(
        ours.verify(Some(&format!("Bearer {hs256}")), &url, CHANNEL)
            .await,
        Err(AuthError::Algorithm(_))
    ));
    // Within the clock skew is still fine.
    let mut late = fake.claims("key-1");
    late.exp_in = -60;
    assert!(ours
        .verify(
            Some(&format!("Bearer {}", fake.token(&late))),
            &url,
            CHANNEL
        )
        .await
        .is_ok());
}

#[tokio::test]
async fn keys_are_cached_and_refreshed_on_an_unknown_kid() {
    let fake = fake().await;
    let mut config = fake.config(&[]);
    let url = fake.service_url();
    let bearer = |spec: &TokenSpec| format!("Bearer {}", fake.token(spec));

    // Cached: many requests, one fetch.
    let ours = authenticator(&config);
    for _ in 0..3 {
        ours.verify(Some(&bearer(&fake.claims("key-1"))), &url, CHANNEL)
            .await
            .unwrap();
    }
    assert_eq!(fake.jwks_fetches(), 1);

    // Rotation: a new key is fetched when a token names it.
    fake.publish(
        ChannelKey::fixture("channel-key-2.pem", "key-2"),
        &["msteams"],
    );
    ours.verify(Some(&bearer(&fake.claims("key-2"))), &url, CHANNEL)
        .await
        .unwrap();
    assert_eq!(fake.jwks_fetches(), 2);

    // Forged kids cannot make us fetch more often than keys_min_refresh.
    config.keys_min_refresh_seconds = 3600;
    let limited = authenticator(&config);
    limited
        .verify(Some(&bearer(&fake.claims("key-1"))), &url, CHANNEL)
        .await
        .unwrap();
    let before = fake.jwks_fetches();
    for _ in 0..3 {
        let forged = fake.sign(
            &TokenSpec {
                kid: "forged".into(),
                ..fake.claims("key-1")
            },
            &attacker(),
        );
        assert!(matches!(
            limited
                .verify(Some(&format!("Bearer {forged}")), &url, CHANNEL)
                .await,
            Err(AuthError::UnknownKey { .. })
        ));
    }
    assert_eq!(fake.jwks_fetches(), before);
}

/// The bot's outgoing side alone: token client and Connector.
fn connector(fake: &FakeTeams, max_attempts: u32) -> (Connector, Conversation) {
    let config = fake.config(&[]);
    let client = reqwest::Client::new();
    let tokens = Arc::new(TokenClient::new(
        client.clone(),
        reqwest::Url::parse(&config.token_url).unwrap(),
        APP_ID.into(),
        AppSecret::new(APP_SECRET),
        config.scope.clone(),
    ));
    let connector = Connector::new(
        client,
        tokens,
        RetryPolicy {
            max_attempts,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(200),
        },
    );
    let to = Conversation::from_config(
        "data-owners",
        &ConversationConfig {
            service_url: fake.service_url(),
            conversation_id: "19:data-owners@thread.tacv2".into(),
        },
    )
    .unwrap();
    (connector, to)
}

#[tokio::test]
async fn bot_token_is_cached_until_shortly_before_expiry() {
    let fake = fake().await;
    let (connector, to) = connector(&fake, 4);
    for _ in 0..3 {
        connector
            .post_activity(&to, &json!({"type": "message", "text": "hi"}))
            .await
            .unwrap();
    }
    assert_eq!(fake.token_requests(), 1, "one token for three posts");
    let sent = fake.sent();
    assert_eq!(sent.len(), 3);
    assert!(sent[0].bearer.is_some());
    assert!(sent.iter().all(|s| s.bearer == sent[0].bearer));
    assert_eq!(sent[0].conversation_id, "19:data-owners@thread.tacv2");

    // A two-second token is replaced after one second (half its life).
    fake.set_token_expires_in(2);
    let (short, _) = self::connector(&fake, 4);
    short
        .post_activity(&to, &json!({"type": "message"}))
        .await
        .unwrap();
    short
        .post_activity(&to, &json!({"type": "message"}))
        .await
        .unwrap();
    assert_eq!(fake.token_requests(), 2);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    short
        .post_activity(&to, &json!({"type": "message"}))
        .await
        .unwrap();
    assert_eq!(fake.token_requests(), 3);
}

#[tokio::test]
async fn connector_retries_429_and_5xx_a_bounded_number_of_times() {
    let fake = fake().await;
    let (connector, to) = connector(&fake, 4);
    let activity = json!({"type": "message"});

    // 429 with Retry-After, then 503, then success.
    fake.script_connector(&[
        (StatusCode::TOO_MANY_REQUESTS, Some("0")),
        (StatusCode::SERVICE_UNAVAILABLE, None),
    ]);
    let id = connector.post_activity(&to, &activity).await.unwrap();
    assert_eq!(fake.connector_requests(), 3);
    assert!(id.starts_with("1:activity-"), "{id}");

    // Always 500: gives up after max_attempts.
    fake.fail_connector(StatusCode::INTERNAL_SERVER_ERROR, 4);
    let before = fake.connector_requests();
    let failed = connector.update_activity(&to, &id, &activity).await;
    assert!(
        matches!(failed, Err(ConnectorError::GaveUp { attempts: 4, .. })),
        "{failed:?}"
    );
    assert_eq!(fake.connector_requests() - before, 4);

    // Other 4xx: not retried.
    fake.script_connector(&[(StatusCode::FORBIDDEN, None)]);
    let before = fake.connector_requests();
    let failed = connector.post_activity(&to, &activity).await;
    assert!(
        matches!(
            failed,
            Err(ConnectorError::Rejected {
                status: 403,
                attempts: 1
            })
        ),
        "{failed:?}"
    );
    assert_eq!(fake.connector_requests() - before, 1);

    // The token endpoint down: retried like the Connector.
    let (fresh, _) = self::connector(&fake, 3);
    fake.script_token(&[StatusCode::SERVICE_UNAVAILABLE]);
    fresh.post_activity(&to, &activity).await.unwrap();
    // The token endpoint refusing us: not retried.
    let (refused, _) = self::connector(&fake, 3);
    fake.script_token(&[StatusCode::BAD_REQUEST]);
    assert!(matches!(
        refused.post_activity(&to, &activity).await,
        Err(ConnectorError::Token(_))
    ));

    // The updated activity carries its id, and its path is the activity's.
    connector
        .update_activity(&to, &id, &activity)
        .await
        .unwrap();
    let last = fake.sent().pop().unwrap();
    assert_eq!(last.method, "PUT");
    assert_eq!(last.activity_id.as_deref(), Some(id.as_str()));
    assert_eq!(last.body["id"], id);
}

// ---- End to end: the real service, a fresh Postgres, the fake Teams. ----

const DANA: &str = "6d1f3a52-0000-4000-8000-00000000da7a";
const ERIN: &str = "6d1f3a52-0000-4000-8000-0000000e0e17";
const SAM: &str = "6d1f3a52-0000-4000-8000-000000005a70";
const OWNER: &str = "6d1f3a52-0000-4000-8000-0000000000e1";
const STRANGER: &str = "6d1f3a52-0000-4000-8000-00000000dead";
const DATA_OWNERS: &str = "19:data-owners@thread.tacv2";

const DIRECTORY: &str = r#"
    [[people]]
    email = "dana@example.com"
    name = "Dana"
    teams_id = "6d1f3a52-0000-4000-8000-00000000da7a"
    [[people]]
    email = "erin@example.com"
    name = "Erin"
    teams_id = "6d1f3a52-0000-4000-8000-0000000e0e17"
    [[people]]
    email = "sam@example.com"
    name = "Sam"
    teams_id = "6d1f3a52-0000-4000-8000-000000005a70"
    [[people]]
    email = "owner@example.com"
    name = "Owen Owner"
    teams_id = "6d1f3a52-0000-4000-8000-0000000000e1"
    [groups]
    data-owners = ["dana@example.com", "erin@example.com", "owner@example.com"]
    security = ["sam@example.com"]
"#;

/// Held for two data owners (critical: PII, many rows).
fn critical_export() -> serde_json::Value {
    json!({
        "kind": "db.export",
        "resource": "pg://prod/warehouse",
        "params": {"rows": 250000, "tables": ["customers"], "destination": "s3://corp-analytics/q3"},
        "justification": "quarterly report",
    })
}

struct Bench {
    fake: FakeTeams,
    server: actiongate_tests::server::TestServer,
    agent: String,
    client: reqwest::Client,
}

impl Bench {
    async fn start() -> Bench {
        let fake = fake().await;
        let teams = fake.config(&[
            ("data-owners", DATA_OWNERS),
            ("security", "19:security@thread.tacv2"),
        ]);
        let server = actiongate_tests::server::TestServer::start_with(|c| {
            c.directory = toml::from_str(DIRECTORY).unwrap();
            c.teams = Some(teams);
        })
        .await;
        let agent = server.agent("etl", "owner@example.com").await;
        Bench {
            fake,
            server,
            agent,
            client: reqwest::Client::new(),
        }
    }

    async fn submit(&self, body: serde_json::Value) -> serde_json::Value {
        let r = self
            .client
            .post(format!("{}/v1/actions", self.server.url))
            .bearer_auth(&self.agent)
            .json(&body)
            .send()
            .await
            .unwrap();
        r.json().await.unwrap()
    }

    /// The card posted for `action_id` and the id of its activity.
    async fn posted_card(&self, action_id: &str) -> (String, serde_json::Value) {
        let sent = self
            .fake
            .wait_for("the card to be posted", |sent| {
                sent.iter()
                    .any(|s| s.method == "POST" && s.body.to_string().contains(action_id))
            })
            .await;
        let post = sent
            .iter()
            .find(|s| s.method == "POST" && s.body.to_string().contains(action_id))
            .unwrap();
        assert_eq!(post.conversation_id, DATA_OWNERS);
        (
            post.activity_id.clone().unwrap(),
            post.body["attachments"][0]["content"].clone(),
        )
    }

    /// Sends `activity` to the bot as the Bot Connector would, with `token`.
    async fn send(
        &self,
        token: &str,
        activity: &serde_json::Value,
    ) -> (StatusCode, serde_json::Value) {
        let r = self
            .client
            .post(format!("{}/teams/messages", self.server.url))
            .bearer_auth(token)
            .json(activity)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        )
    }

    /// A click on `card`'s button `verb` by `aad`, with `inputs` filled in.
    async fn click(
        &self,
        activity_id: &str,
        card: &serde_json::Value,
        aad: &str,
        verb: &str,
        inputs: serde_json::Value,
    ) -> serde_json::Value {
        let button = card["actions"]
            .as_array()
            .expect("the card has buttons")
            .iter()
            .find(|a| a["verb"] == verb)
            .unwrap_or_else(|| panic!("no {verb} button"));
        let mut data = button["data"].clone();
        for (k, v) in inputs.as_object().unwrap() {
            data[k] = v.clone();
        }
        let activity = self.fake.invoke(DATA_OWNERS, activity_id, aad, verb, data);
        let token = self.fake.token(&self.fake.claims("key-1"));
        let (status, answer) = self.send(&token, &activity).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["statusCode"], 200, "{answer}");
        assert_eq!(answer["type"], "application/vnd.microsoft.card.adaptive");
        answer["value"].clone()
    }

    async fn events(&self, action_id: &str) -> Vec<actiongate::evidence::StoredEvent> {
        self.server
            .app
            .evidence
            .events_for_action(uuid::Uuid::parse_str(action_id).unwrap())
            .await
            .unwrap()
    }
}

fn has_buttons(card: &serde_json::Value) -> bool {
    card.get("actions")
        .is_some_and(|a| !a.as_array().unwrap().is_empty())
}

#[tokio::test]
async fn two_teams_users_approve_and_the_agent_gets_its_grant() {
    let bench = Bench::start().await;
    let answer = bench.submit(critical_export()).await;
    assert_eq!(answer["state"], "pending", "{answer}");
    assert_eq!(answer["approval"]["quorum"], 2, "{answer}");
    let action_id = answer["action_id"].as_str().unwrap().to_string();

    // The agent long-polls meanwhile.
    let poll = {
        let (client, url, key) = (
            bench.client.clone(),
            format!("{}/v1/actions/{action_id}", bench.server.url),
            bench.agent.clone(),
        );
        tokio::spawn(async move {
            let r = client
                .get(url)
                .bearer_auth(key)
                .header("Prefer", "wait=60")
                .send()
                .await
                .unwrap();
            r.json::<serde_json::Value>().await.unwrap()
        })
    };

    let (activity_id, card) = bench.posted_card(&action_id).await;
    assert_eq!(card["version"], "1.5");
    assert!(has_buttons(&card));
    let text = card.to_string();
    assert!(text.contains("Approvals: 0 of 2"), "{text}");
    assert!(text.contains("\"id\":\"param.rows\""), "{text}");
    assert!(bench.fake.sent().iter().all(|s| s.bearer.is_some()));

    // A request the verifier refuses changes nothing.
    let mut bad = bench.fake.claims("key-1");
    bad.aud = "another-bot".into();
    let data = card["actions"][0]["data"].clone();
    let forged = bench
        .fake
        .invoke(DATA_OWNERS, &activity_id, DANA, "approve", {
            let mut d = data.clone();
            d["reason"] = "forged".into();
            d
        });
    let (status, _) = bench.send(&bench.fake.token(&bad), &forged).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = bench
        .send(&bench.fake.token(&bench.fake.claims("key-1")), &{
            let mut a = forged.clone();
            a["serviceUrl"] = "https://smba.evil.example.com/".into();
            a
        })
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let r = bench
        .client
        .post(format!("{}/teams/messages", bench.server.url))
        .json(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert!(!bench
        .events(&action_id)
        .await
        .iter()
        .any(|e| e.kind == actiongate::evidence::EventKind::Reviewed));

    // Refused clicks answer with a card that says why.
    let reason = json!({"reason": "numbers check out"});
    let refused = bench
        .click(&activity_id, &card, OWNER, "approve", reason.clone())
        .await;
    assert!(refused.to_string().contains("owns agent"), "{refused}");
    assert!(has_buttons(&refused));
    let refused = bench
        .click(&activity_id, &card, SAM, "approve", reason.clone())
        .await;
    assert!(
        refused.to_string().contains("is not in any group"),
        "{refused}"
    );
    let refused = bench
        .click(&activity_id, &card, STRANGER, "approve", reason.clone())
        .await;
    assert!(
        refused
            .to_string()
            .contains("not in actiongate's approver directory"),
        "{refused}"
    );
    let refused = bench
        .click(&activity_id, &card, DANA, "approve", json!({}))
        .await;
    assert!(
        refused.to_string().contains("a reason is required"),
        "{refused}"
    );

    // Dana approves: one of two.
    let after_dana = bench
        .click(&activity_id, &card, DANA, "approve", reason.clone())
        .await;
    let text = after_dana.to_string();
    assert!(
        text.contains("Approvals: 1 of 2: Dana (dana@example.com)"),
        "{text}"
    );
    assert!(text.contains("Still needed: 1 more"), "{text}");
    assert!(text.contains("more approvals are needed"), "{text}");
    assert!(has_buttons(&after_dana));
    // Dana again: a duplicate.
    let again = bench
        .click(&activity_id, &after_dana, DANA, "approve", reason.clone())
        .await;
    assert!(again.to_string().contains("already approved"), "{again}");

    // Erin approves: done.
    let after_erin = bench
        .click(&activity_id, &after_dana, ERIN, "approve", reason.clone())
        .await;
    let text = after_erin.to_string();
    assert!(text.contains("Approved: db.export"), "{text}");
    assert!(text.contains("Approvals: 2 of 2"), "{text}");
    assert!(!has_buttons(&after_erin), "{text}");
    assert!(!text.contains("Input.Text"), "{text}");

    // The agent's long-poll returns approved, with a grant.
    let polled = tokio::time::timeout(Duration::from_secs(30), poll)
        .await
        .expect("the long-poll returned")
        .unwrap();
    assert_eq!(polled["state"], "approved", "{polled}");
    assert!(
        polled["grant"]
            .as_str()
            .is_some_and(|g| g.split('.').count() == 3),
        "{polled}"
    );

    // Everyone else sees the card updated in place, ending without buttons.
    bench
        .fake
        .wait_for("the final card", |sent| {
            sent.iter().any(|s| {
                s.method == "PUT"
                    && s.activity_id.as_deref() == Some(activity_id.as_str())
                    && s.body["attachments"][0]["content"]
                        .to_string()
                        .contains("Approved: db.export")
                    && !has_buttons(&s.body["attachments"][0]["content"])
            })
        })
        .await;

    // The evidence names the channel and the notifier.
    let events = bench.events(&action_id).await;
    let reviews: Vec<_> = events
        .iter()
        .filter(|e| e.kind == actiongate::evidence::EventKind::Reviewed)
        .collect();
    assert_eq!(reviews.len(), 2);
    assert!(reviews.iter().all(|e| e.payload["channel"] == "teams"));
    assert!(events
        .iter()
        .any(|e| e.kind == actiongate::evidence::EventKind::Notified
            && e.payload["notifier"] == "teams"));
}

#[tokio::test]
async fn modify_from_teams_and_stale_cards_do_not_count() {
    let bench = Bench::start().await;
    let answer = bench.submit(critical_export()).await;
    let action_id = answer["action_id"].as_str().unwrap().to_string();
    let (activity_id, card) = bench.posted_card(&action_id).await;

    // Params that parsers would read differently are refused on the card,
    // naming the field and what to send; no review is recorded.
    for (rows, want) in [
        (
            "9007199254740993",
            "9007199254740993 is beyond ±9007199254740991",
        ),
        (
            "200000.00000000000001",
            "send 200000, or the number as a string",
        ),
    ] {
        let refused = bench
            .click(
                &activity_id,
                &card,
                DANA,
                "modify",
                json!({"reason": "fewer rows", "param.rows": rows}),
            )
            .await
            .to_string();
        assert!(refused.contains("rows: the number"), "{refused}");
        assert!(refused.contains(want), "{refused}");
    }
    assert!(!bench
        .events(&action_id)
        .await
        .iter()
        .any(|e| e.kind == actiongate::evidence::EventKind::Reviewed));

    // Dana lowers the rows; still critical, so the new version needs two.
    let modified = bench
        .click(
            &activity_id,
            &card,
            DANA,
            "modify",
            json!({"reason": "fewer rows", "param.rows": "200000"}),
        )
        .await;
    let text = modified.to_string();
    assert!(text.contains("200000"), "{text}");
    assert!(text.contains("Approvals: 1 of 2"), "{text}");
    assert!(text.contains("the new version needs approval"), "{text}");

    // Erin clicks the card as first posted: refused, shown the new version.
    let stale = bench
        .click(
            &activity_id,
            &card,
            ERIN,
            "approve",
            json!({"reason": "ok"}),
        )
        .await;
    assert!(stale.to_string().contains("out of date"), "{stale}");
    assert!(stale.to_string().contains("200000"), "{stale}");
    let reviews = bench
        .events(&action_id)
        .await
        .iter()
        .filter(|e| e.kind == actiongate::evidence::EventKind::Reviewed)
        .count();
    assert_eq!(reviews, 1);

    let approved = bench
        .click(
            &activity_id,
            &stale,
            ERIN,
            "approve",
            json!({"reason": "ok"}),
        )
        .await;
    assert!(
        approved.to_string().contains("Approved: db.export"),
        "{approved}"
    );
}

#[tokio::test]
async fn a_failing_connector_is_evidence_and_blocks_nothing() {
    let bench = Bench::start().await;
    // Every Connector call fails for a while: more than all retries.
    bench
        .fake
        .fail_connector(StatusCode::SERVICE_UNAVAILABLE, 1000);
    let answer = bench.submit(critical_export()).await;
    assert_eq!(answer["state"], "pending", "{answer}");
    let action_id = answer["action_id"].as_str().unwrap().to_string();

    let mut failed = None;
    for _ in 0..200 {
        failed = bench
            .events(&action_id)
            .await
            .into_iter()
            .find(|e| e.kind == actiongate::evidence::EventKind::NotifyFailed);
        if failed.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let failed = failed.expect("a notify-failed event");
    assert_eq!(failed.payload["notifier"], "teams");
    assert!(
        failed.payload["error"]
            .as_str()
            .unwrap()
            .contains("HTTP 503"),
        "{}",
        failed.payload
    );

    // Approvals still work, through the API.
    for email in ["dana@example.com", "erin@example.com"] {
        let key = bench
            .server
            .key(actiongate::store::KeyRole::Approver, email)
            .await;
        let r = bench
            .client
            .post(format!(
                "{}/v1/approvals/{action_id}/reviews",
                bench.server.url
            ))
            .bearer_auth(key)
            .json(&json!({"decision": "approve", "reason": "ok"}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }
    let r = bench
        .client
        .get(format!("{}/v1/actions/{action_id}", bench.server.url))
        .bearer_auth(&bench.agent)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["state"],
        "approved"
    );
}

/// Cards are remembered once per action and conversation, in both stores.
#[tokio::test]
async fn posted_cards_are_remembered_in_postgres_and_sqlite() {
    use actiongate::store::{Store, TeamsActivity};
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("teams.db").display());
    let postgres = actiongate_tests::pg::TempDatabase::create("ag_teams_cards").await;
    for url in [sqlite, postgres.url.clone()] {
        let store = Store::connect(&url).await.unwrap();
        let card = |conversation: &str, activity: &str| TeamsActivity {
            action_id: "0190c0de-0000-7000-8000-000000000001".into(),
            conversation_id: conversation.into(),
            service_url: "https://smba.trafficmanager.net/emea/".into(),
            activity_id: activity.into(),
        };
        assert!(store
            .insert_teams_activity(&card("19:a", "1:one"))
            .await
            .unwrap());
        assert!(!store
            .insert_teams_activity(&card("19:a", "1:again"))
            .await
            .unwrap());
        assert!(store
            .insert_teams_activity(&card("19:b", "1:two"))
            .await
            .unwrap());
        let remembered = store
            .teams_activities("0190c0de-0000-7000-8000-000000000001")
            .await
            .unwrap();
        assert_eq!(
            remembered,
            vec![card("19:a", "1:one"), card("19:b", "1:two")],
            "{url}"
        );
        assert!(store.teams_activities("other").await.unwrap().is_empty());
    }
}
