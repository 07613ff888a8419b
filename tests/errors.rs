//! Every error is problem+json with one `type` scheme and a title that says
//! what was wrong: a 405, extractor rejections, Slack signature and replay
//! refusals, a Teams token refused before the body is read; and
//! `/openapi.json` lists every route with its errors, validated by
//! openapi-spec-validator (Python, pinned). Real HTTP on loopback, Postgres.

use actiongate::chat::slack::verify;
use actiongate::store::KeyRole;
use actiongate_tests::fake_slack::{self, FakeSlack};
use actiongate_tests::fake_teams::{ChannelKey, FakeTeams};
use actiongate_tests::server::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::Value;

const SCHEME: &str = "urn:actiongate:problem:";

/// The status, the problem, and the response headers, checking it is problem+json.
async fn problem(response: reqwest::Response) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let status = response.status();
    let headers = response.headers().clone();
    assert_eq!(
        headers.get("content-type").map(|v| v.to_str().unwrap()),
        Some("application/problem+json"),
        "{status}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert!(
        body["type"].as_str().unwrap().starts_with(SCHEME),
        "one type scheme: {body}"
    );
    assert!(!body["title"].as_str().unwrap().is_empty(), "{body}");
    assert!(!body["detail"].as_str().unwrap().is_empty(), "{body}");
    (status, body, headers)
}

async fn server() -> (TestServer, FakeSlack, FakeTeams) {
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
        c.slack = Some(slack_config);
        c.teams = Some(teams_config);
    })
    .await;
    (server, slack, teams)
}

#[tokio::test]
async fn every_error_is_problem_json_with_one_scheme_and_a_title_that_says_what() {
    let (server, _slack, teams) = server().await;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", server.url);
    let agent = server.agent("etl", "owner@example.com").await;
    let auditor = server.key(KeyRole::Auditor, "audit@example.com").await;
    let approver = server.key(KeyRole::Approver, "dana@example.com").await;

    // A known path with another method: 405 with `Allow`, as problem+json.
    for (method, path, allowed) in [
        (Method::DELETE, "/v1/actions", "POST"),
        (Method::PUT, "/v1/approvals", "GET"),
        (Method::GET, "/teams/messages", "POST"),
        (Method::GET, "/slack/interactivity", "POST"),
        (Method::POST, "/v1/log/checkpoint", "GET"),
        (Method::POST, "/openapi.json", "GET"),
    ] {
        // (The log's routes authenticate first: an auditor asks.)
        let r = http
            .request(method.clone(), url(path))
            .bearer_auth(&auditor)
            .send()
            .await
            .unwrap();
        let (status, body, headers) = problem(r).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_eq!(body["type"], format!("{SCHEME}method-not-allowed"));
        assert!(
            headers["allow"].to_str().unwrap().contains(allowed),
            "{method} {path}: {headers:?}"
        );
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains(&format!("{method} is not allowed on {path}")),
            "{body}"
        );
    }

    // Extractor rejections: a query axum cannot read.
    let r = http
        .get(url("/v1/approvals?state=pending&state=other"))
        .bearer_auth(&approver)
        .send()
        .await
        .unwrap();
    let (status, body, _) = problem(r).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("state"), "{body}");
    let r = http
        .get(url("/v1/log/proof/inclusion?index=x&size=1"))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    let (status, body, _) = problem(r).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Errors from every corner share the scheme; one type, one title.
    let mut titles = std::collections::BTreeMap::<String, String>::new();
    let mut seen = |body: &Value| {
        let (t, title) = (
            body["type"].as_str().unwrap(),
            body["title"].as_str().unwrap(),
        );
        if let Some(before) = titles.insert(t.to_string(), title.to_string()) {
            assert_eq!(before, title, "one title per type: {t}");
        }
    };
    for r in [
        http.get(url("/nowhere")).send().await.unwrap(),
        http.get(url("/v1/approvals")).send().await.unwrap(),
        http.get(url("/v1/log/checkpoint"))
            .bearer_auth(&agent)
            .send()
            .await
            .unwrap(),
        http.get(url("/v1/log/entries?start=5&end=1"))
            .bearer_auth(&auditor)
            .send()
            .await
            .unwrap(),
        http.post(url("/v1/actions"))
            .bearer_auth(&agent)
            .json(&serde_json::json!({"kind": "DB.export", "resource": "r", "params": {}}))
            .send()
            .await
            .unwrap(),
        http.post(url("/v1/actions"))
            .bearer_auth(&agent)
            .header("content-type", "text/plain")
            .body("x")
            .send()
            .await
            .unwrap(),
    ] {
        let (_, body, _) = problem(r).await;
        seen(&body);
    }

    // Slack: a bad signature and a replay are refused as what they are.
    let body = "payload=%7B%7D";
    let ts = chrono::Utc::now().timestamp().to_string();
    let r = http
        .post(url("/slack/interactivity"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", &ts)
        .header("x-slack-signature", "v0=00")
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, refused, _) = problem(r).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused["type"], format!("{SCHEME}slack-signature-refused"));
    assert_eq!(
        refused["title"],
        "Slack request signature or timestamp not verified"
    );
    seen(&refused);
    let signature = verify::signature(fake_slack::SIGNING_SECRET.as_bytes(), &ts, body.as_bytes());
    let send = || {
        http.post(url("/slack/interactivity"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", &ts)
            .header("x-slack-signature", &signature)
            .body(body)
            .send()
    };
    assert_eq!(send().await.unwrap().status(), StatusCode::OK);
    let (status, replay, _) = problem(send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(replay["type"], format!("{SCHEME}slack-replay-refused"));
    assert_eq!(
        replay["title"],
        "Slack request already handled (replay refused)"
    );
    seen(&replay);
    for refusal in [&refused, &replay] {
        assert_ne!(refusal["title"], "Missing, unknown or revoked API key");
    }

    // Teams: the token is checked before the body is read. A garbage body
    // (and one beyond the size limit) without a valid token is a 401, never
    // a 400 about the body.
    let garbage = "this is { not an activity";
    let huge = "x".repeat(actiongate::api::BODY_LIMIT + 10);
    for (token, body) in [
        (None, garbage.to_string()),
        (Some("Bearer not-a-jwt"), garbage.to_string()),
        (None, huge.clone()),
        (Some("Bearer not-a-jwt"), huge),
    ] {
        let mut request = http
            .post(url("/teams/messages"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = token {
            request = request.header("authorization", token);
        }
        let (status, body, _) = problem(request.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["type"], format!("{SCHEME}teams-token-refused"));
        seen(&body);
    }
    // With a valid token the same garbage is read, and refused as a body.
    let token = teams.token(&teams.claims("key-1"));
    let r = http
        .post(url("/teams/messages"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(garbage)
        .send()
        .await
        .unwrap();
    let (status, body, _) = problem(r).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("not a Bot Framework activity"));
}

#[tokio::test]
async fn openapi_lists_every_route_with_problem_errors_and_validates() {
    let (server, _slack, _teams) = server().await;
    let doc = reqwest::get(format!("{}/openapi.json", server.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let file = server.path().join("openapi.json");
    std::fs::write(&file, &doc).unwrap();
    let routes = [
        "POST /v1/actions",
        "GET /v1/actions/{id}",
        "GET /v1/actions/{id}/events",
        "POST /v1/actions/{id}/outcome",
        "GET /v1/approvals",
        "GET /v1/approvals/{id}",
        "POST /v1/approvals/{id}/reviews",
        "POST /v1/approvals/{id}/step-up",
        "POST /v1/passkeys/registration",
        "POST /v1/passkeys",
        "GET /v1/passkeys",
        "DELETE /v1/passkeys/{id}",
        "GET /v1/admin/bindings",
        "POST /v1/admin/bindings",
        "GET /v1/admin/plugins",
        "POST /v1/admin/plugins",
        "GET /v1/keys",
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
        "GET /openapi.json",
        "GET /v1/log/checkpoint",
        "GET /v1/log/proof/inclusion",
        "GET /v1/log/proof/consistency",
        "GET /v1/log/entries",
        "POST /slack/interactivity",
        "POST /teams/messages",
    ];
    let mut args = vec![file.to_str().unwrap()];
    args.extend(routes);
    let checked = actiongate_tests::run_python("openapi_validate.py", &args).unwrap_or_else(|e| {
        let kept = std::env::temp_dir().join("actiongate-openapi.json");
        std::fs::write(&kept, &doc).unwrap();
        panic!(
            "the OpenAPI document does not hold ({}): {e}",
            kept.display()
        )
    });
    assert!(
        checked.contains(&format!("{} routes checked", routes.len())),
        "{checked}"
    );
    assert!(!checked.contains("not listed"), "{checked}");
    assert!(!checked.contains("is not problem+json"), "{checked}");

    // The checker can fail: a route that does not exist is reported.
    args.push("GET /v1/nowhere");
    let refused = actiongate_tests::run_python("openapi_validate.py", &args);
    assert!(refused.is_err(), "{refused:?}");
}
