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
    let args = vec![
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
