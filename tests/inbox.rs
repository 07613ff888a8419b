//! The web inbox in a real browser (the system Chromium through Playwright)
//! against a real OpenID Connect provider (npm `oidc-provider`), over real
//! HTTP on loopback and Postgres: sign-in, the whole context of an action,
//! reviews through the same rules as every channel, and the refusals.

use std::time::Duration;

use actiongate_tests::browser::{
    browse, inbox_service, no_script_errors, screenshot_dir, sign_in, Browser, OidcProvider,
    CLIENT_ID,
};
use actiongate_tests::caller::Caller;
use actiongate_tests::server::TestServer;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The people at the provider. Dana's email is spelled with capitals and
/// spaces: the directory match trims and ignores case.
fn accounts() -> Value {
    json!({
        "dana": {"email": " Dana@Example.COM ", "email_verified": true, "name": "Dana", "groups": ["data-owners"]},
        "erin": {"email": "erin@example.com", "email_verified": true, "name": "Erin", "groups": ["security"]},
        "olly": {"email": "olly@example.com", "email_verified": true, "name": "Olly", "groups": ["data-owners"]},
        "unverified": {"email": "erin@example.com", "email_verified": false, "name": "Not Erin"},
        "mallory": {"email": "mallory@example.com", "email_verified": true, "name": "Mallory"},
    })
}

struct Inbox {
    server: TestServer,
    provider: OidcProvider,
}

impl Inbox {
    /// The service with `[inbox]` pointed at a fresh provider; `extra` is
    /// added to the `[inbox]` section (after an `[oidc]` line, to `[inbox.oidc]`).
    async fn start(extra: &str) -> Inbox {
        let (inbox_extra, oidc_extra) = extra.split_once("[oidc]").unwrap_or((extra, ""));
        let (server, provider) = inbox_service(
            "127.0.0.1",
            accounts(),
            "ag_inbox",
            inbox_extra,
            oidc_extra,
            |_, _| {},
        )
        .await;
        Inbox { server, provider }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url)
    }

    /// An export of `rows` rows of customer data, held for data owners
    /// (one; two when critical, over 100,000 rows). Returns the answer.
    async fn export(&self, agent: &Caller, rows: u64) -> Value {
        let (status, answer) = agent
            .post(
                "/v1/actions",
                json!({
                    "kind": "db.export",
                    "resource": "postgres://prod/crm",
                    "params": {"rows": rows, "tables": ["customers"], "destination": "s3://corp-analytics/q4",
                               "format": "csv", "api_key": "key-secret-123"},
                    "justification": "Quarterly churn model",
                    "context": {"session": "sess-42", "prompt": "export customers for the churn model"},
                    "on_behalf_of": "pat@example.com",
                }),
            )
            .await;
        assert_eq!(status, 202, "{answer}");
        answer
    }

    /// A critical export (customer data, half a million rows): two data
    /// owners must approve. Returns the action id.
    async fn critical_export(&self, agent: &Caller) -> String {
        let answer = self.export(agent, 500_000).await;
        assert_eq!(answer["risk"], "critical");
        answer["action_id"].as_str().unwrap().to_string()
    }

    async fn reviews(&self, id: &str) -> Vec<actiongate::store::ReviewRow> {
        self.server.app.gate.store().reviews(id).await.unwrap()
    }

    /// Evidence events of `kind` (e.g. `sign-in-refused`): their payloads.
    async fn events(&self, kind: &str) -> Vec<Value> {
        let rows = self
            .server
            .app
            .gate
            .store()
            .events_page(0, 100_000)
            .await
            .unwrap();
        rows.into_iter()
            .filter(|r| r.kind == kind)
            .map(|r| serde_json::from_str::<Value>(&r.canonical).unwrap()["payload"].clone())
            .collect()
    }
}

fn steps(parts: &[Vec<Value>]) -> Vec<Value> {
    parts.concat()
}

#[tokio::test]
async fn two_data_owners_approve_in_the_browser_and_the_agent_gets_its_grant() {
    let inbox = Inbox::start("").await;
    let agent = Caller::agent(&inbox.server, "etl-agent", "sam@example.com").await;
    let shots = screenshot_dir();

    // Dana signs in and waits on an empty list; the action arrives live.
    let mut dana = Browser::start(&steps(&[
        sign_in(&inbox.url("/inbox"), "dana"),
        vec![
            json!({"url": true, "as": "landed"}),
            json!({"text": "main", "as": "empty"}),
            json!({"text": "header nav", "as": "menu"}),
            json!({"pause": "listening"}),
            json!({"wait_for": "a[href=\"/inbox/actions/${id}\"]", "timeout_ms": 15000}),
            json!({"text": "#pending", "as": "list"}),
            json!({"screenshot": shots.join("inbox.png").to_str().unwrap()}),
            json!({"click": "a[href=\"/inbox/actions/${id}\"]", "as": "page"}),
            json!({"text": "main", "as": "action"}),
            json!({"screenshot": shots.join("action.png").to_str().unwrap()}),
            json!({"fill": "#approve-reason", "value": "Checked with the analytics team"}),
            json!({"click": "#approve-form button[type=submit]", "as": "approved"}),
            json!({"text": "#notice", "as": "notice"}),
            json!({"text": "#quorum", "as": "quorum"}),
            json!({"goto": inbox.url("/inbox/history"), "as": "history_page"}),
            json!({"text": "main", "as": "history"}),
        ],
    ]));
    let out = dana.until("listening").await;
    assert_eq!(out.url("landed"), inbox.url("/inbox"), "{:#?}", out.values);
    assert!(
        out.text("empty").contains("Nothing is waiting for you"),
        "{}",
        out.text("empty")
    );
    // No `[step_up]` here: the menu offers no passkeys.
    let menu = out.text("menu");
    assert!(
        menu.contains("My decisions") && !menu.contains("passkeys"),
        "{menu}"
    );
    let id = inbox.critical_export(&agent).await;
    dana.resume(json!({"id": id})).await;
    let out = dana.finish().await;
    no_script_errors(&out);

    assert!(
        out.text("list").contains("db.export"),
        "{}",
        out.text("list")
    );
    // Chat cards and webhooks get a link to this page.
    let notification = inbox
        .server
        .app
        .gate
        .notification_for(
            &id.parse().unwrap(),
            actiongate::notify::NotificationKind::Pending,
        )
        .await
        .unwrap();
    assert_eq!(
        notification.inbox_url,
        Some(inbox.url(&format!("/inbox/actions/{id}")))
    );
    let page = out.text("action");
    let sha = hex::encode(Sha256::digest(
        actiongate::examples::example("db-export").unwrap().wasm,
    ));
    for shown in [
        "etl-agent",
        "sam@example.com",
        "pat@example.com",
        "Quarterly churn model",
        "sess-42",
        "export customers for the churn model",
        "\"rows\": 500000",
        "\"api_key\": \"[redacted]\"",
        "critical",
        "tables with personal data: customers",
        "db-export 1.0.0",
        sha.as_str(),
        "data-owners",
        "0 of 2 approvals",
        "security",
        "No reviews yet",
    ] {
        assert!(
            page.contains(shown),
            "the action page shows {shown:?}:\n{page}"
        );
    }
    assert!(!page.contains("key-secret-123"), "secrets are redacted");
    assert_eq!(out.status("approved"), 200);
    assert!(out
        .text("notice")
        .contains("approval of this version is recorded"));
    assert!(
        out.text("quorum").starts_with("1 of 2"),
        "{}",
        out.text("quorum")
    );
    assert!(
        out.text("history").contains("approve")
            && out
                .text("history")
                .contains("Checked with the analytics team")
    );

    // The agent waits; Erin completes the quorum from a link to the page.
    let waiting = {
        let agent = agent.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let response = agent
                .get_with(&format!("/v1/actions/{id}"), &[("Prefer", "wait=60")])
                .await;
            response.json::<Value>().await.unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = browse(&steps(&[
        sign_in(&inbox.url(&format!("/inbox/actions/{id}")), "erin"),
        vec![
            json!({"url": true, "as": "landed"}),
            json!({"fill": "#approve-reason", "value": "Second pair of eyes"}),
            json!({"click": "#approve-form button[type=submit]", "as": "approved"}),
            json!({"text": ".status", "as": "state"}),
        ],
    ]))
    .await;
    no_script_errors(&out);
    assert_eq!(
        out.url("landed"),
        inbox.url(&format!("/inbox/actions/{id}"))
    );
    assert!(
        out.text("state").contains("approved"),
        "{}",
        out.text("state")
    );
    let answer = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer["state"], "approved", "{answer}");
    assert!(answer["grant"]
        .as_str()
        .is_some_and(|g| g.split('.').count() == 3));

    let reviews = inbox.reviews(&id).await;
    assert_eq!(
        reviews
            .iter()
            .map(|r| (r.approver.as_str(), r.channel.as_str()))
            .collect::<Vec<_>>(),
        vec![("dana@example.com", "inbox"), ("erin@example.com", "inbox")]
    );
    let signed_in = inbox.events("signed-in").await;
    assert_eq!(signed_in.len(), 2);
    assert_eq!(signed_in[0]["approver"], "dana@example.com");
}

#[tokio::test]
async fn the_owner_is_refused_by_the_self_approval_rule_and_outsiders_see_nothing() {
    let inbox = Inbox::start("").await;
    let agent = Caller::agent(&inbox.server, "dana-bot", "dana@example.com").await;
    // One data owner's approval (a critical export would need both, and
    // with Dana excluded it is refused at once: tests/approvals.rs).
    let answer = inbox.export(&agent, 50_000).await;
    assert_eq!(answer["approval"]["quorum"], 1, "{answer}");
    let id = answer["action_id"].as_str().unwrap().to_string();
    let page = inbox.url(&format!("/inbox/actions/{id}"));

    let out = browse(&steps(&[
        sign_in(&page, "dana"),
        vec![
            json!({"fill": "#approve-reason", "value": "my own export"}),
            json!({"click": "#approve-form button[type=submit]", "as": "refused"}),
            json!({"text": "#notice", "as": "notice"}),
            json!({"goto": inbox.url("/inbox"), "as": "list_page"}),
            json!({"text": "main", "as": "list"}),
        ],
    ]))
    .await;
    assert_eq!(out.status("refused"), 403);
    let notice = out.text("notice");
    assert!(
        notice.contains("dana@example.com owns agent `dana-bot` and cannot review its actions (admins included)")
            && notice.contains("self-approval-owner"),
        "{notice}"
    );
    assert!(
        !out.text("list").contains(&id),
        "the owner's list leaves the action out"
    );

    // Olly is in the directory but not in data-owners (whatever the
    // provider's groups say): no row, no page.
    let out = browse(&steps(&[
        sign_in(&inbox.url("/inbox"), "olly"),
        vec![
            json!({"text": "main", "as": "list"}),
            json!({"goto": page, "as": "direct"}),
            json!({"text": "main", "as": "refused"}),
        ],
    ]))
    .await;
    assert!(
        out.text("list").contains("Nothing is waiting for you"),
        "{}",
        out.text("list")
    );
    assert_eq!(out.status("direct"), 404);
    assert!(!out.text("refused").contains("db.export"));
    assert!(inbox.reviews(&id).await.is_empty(), "nothing was recorded");
}

#[tokio::test]
async fn modify_changes_only_a_modifiable_parameter() {
    let inbox = Inbox::start("").await;
    let agent = Caller::agent(&inbox.server, "etl-agent", "sam@example.com").await;
    let id = inbox.critical_export(&agent).await;
    let before = inbox
        .server
        .app
        .gate
        .store()
        .action(&id)
        .await
        .unwrap()
        .unwrap();
    let page = inbox.url(&format!("/inbox/actions/{id}"));

    let out = browse(&steps(&[
        sign_in(&page, "erin"),
        vec![
            // A forged field for a parameter nobody may modify.
            json!({"fill": "#param-rows", "value": "50000"}),
            json!({"add_field": "#modify-form", "name": "param.format", "value": "parquet"}),
            json!({"fill": "#modify-reason", "value": "smaller and columnar"}),
            json!({"click": "#modify-form button[type=submit]", "as": "forged"}),
            json!({"text": "#notice", "as": "forged_notice"}),
            // The form as served: only rows changes.
            json!({"goto": page}),
            json!({"fill": "#param-rows", "value": "50000"}),
            json!({"fill": "#modify-reason", "value": "fewer rows are enough"}),
            json!({"click": "#modify-form button[type=submit]", "as": "modified"}),
            json!({"text": "#notice", "as": "notice"}),
            json!({"text": "#params", "as": "params"}),
        ],
    ]))
    .await;
    no_script_errors(&out);
    assert_eq!(out.status("forged"), 422);
    assert!(
        out.text("forged_notice").contains(
            "parameter `format` may not be modified (modifiable: rows, tables, destination)"
        ),
        "{}",
        out.text("forged_notice")
    );
    assert_eq!(out.status("modified"), 200);
    assert!(out.text("notice").contains("modification is recorded"));
    assert!(out.text("params").contains("\"rows\": 50000"));

    let after = inbox
        .server
        .app
        .gate
        .store()
        .action(&id)
        .await
        .unwrap()
        .unwrap();
    let params = |row: &actiongate::store::ActionRow| {
        serde_json::from_str::<Value>(&row.action).unwrap()["params"].clone()
    };
    let mut expected = params(&before);
    expected["rows"] = json!(50000);
    assert_eq!(params(&after), expected, "rows changed, nothing else");
    assert_ne!(after.digest, before.digest);
    // Whether the new version still waits is the modify quorum rule's call
    // (approvals::rules); the inbox only recorded Erin's modify.
    let reviews = inbox.reviews(&id).await;
    assert_eq!(reviews.len(), 1);
    assert_eq!(
        (reviews[0].decision.as_str(), reviews[0].channel.as_str()),
        ("modify", "inbox")
    );
}

#[tokio::test]
async fn forged_csrf_and_expired_sessions_are_refused() {
    let inbox = Inbox::start("session_ttl_seconds = 8").await;
    let agent = Caller::agent(&inbox.server, "etl-agent", "sam@example.com").await;
    let id = inbox.critical_export(&agent).await;
    let page = inbox.url(&format!("/inbox/actions/{id}"));

    let out = browse(&steps(&[
        sign_in(&page, "dana"),
        vec![
            json!({"set_value": "#approve-form input[name=csrf]", "value": "forged-token"}),
            json!({"fill": "#approve-reason", "value": "looks fine"}),
            json!({"click": "#approve-form button[type=submit]", "as": "forged"}),
            json!({"text": "main", "as": "forged_page"}),
            // The real form, once the session is past its server-side expiry.
            json!({"goto": page, "as": "fresh"}),
            json!({"wait_ms": 8500}),
            json!({"fill": "#approve-reason", "value": "looks fine"}),
            json!({"click": "#approve-form button[type=submit]", "as": "expired"}),
            json!({"text": "main", "as": "expired_page"}),
        ],
    ]))
    .await;
    assert_eq!(out.status("forged"), 403);
    assert!(
        out.text("forged_page").contains("CSRF"),
        "{}",
        out.text("forged_page")
    );
    assert_eq!(out.status("expired"), 401);
    assert!(
        out.text("expired_page")
            .contains("Your session has expired"),
        "{}",
        out.text("expired_page")
    );
    assert!(
        inbox.reviews(&id).await.is_empty(),
        "neither post was recorded"
    );
}

#[tokio::test]
async fn tampered_id_tokens_unverified_and_unknown_emails_are_refused() {
    let inbox = Inbox::start("").await;
    let attempt = |login: &'static str| {
        let url = inbox.url("/inbox");
        async move {
            browse(&steps(&[
                sign_in(&url, login),
                vec![json!({"text": "main", "as": "page"})],
            ]))
            .await
        }
    };
    inbox
        .provider
        .tamper_next_id_token(json!({"aud": "another-app"}))
        .await;
    let wrong_audience = attempt("dana").await;
    inbox
        .provider
        .tamper_next_id_token(json!({"nonce": "not-this-sign-in"}))
        .await;
    let wrong_nonce = attempt("dana").await;
    let unverified = attempt("unverified").await;
    let unknown = attempt("mallory").await;

    for (out, code, words) in [
        (&wrong_audience, "wrong-audience", "another application"),
        (&wrong_nonce, "wrong-nonce", "does not answer this sign-in"),
        (
            &unverified,
            "email-unverified",
            "has not verified the email erin@example.com",
        ),
        (
            &unknown,
            "unknown-person",
            "mallory@example.com is not in actiongate's approver directory",
        ),
    ] {
        assert_eq!(out.status("signed_in"), 403, "{code}");
        let page = out.text("page");
        assert!(
            page.contains("Sign-in refused") && page.contains(code) && page.contains(words),
            "{code}: {page}"
        );
    }
    let refused: Vec<String> = inbox
        .events("sign-in-refused")
        .await
        .iter()
        .map(|p| p["reason"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        refused,
        [
            "wrong-audience",
            "wrong-nonce",
            "email-unverified",
            "unknown-person"
        ]
    );
    assert!(
        inbox.events("signed-in").await.is_empty(),
        "no session was made"
    );
}

#[tokio::test]
async fn the_provider_group_claim_narrows_the_directory_never_widens_it() {
    let inbox = Inbox::start(
        "[oidc]\nscopes = [\"email\", \"profile\", \"groups\"]\ngroups_claim = \"groups\"",
    )
    .await;
    let agent = Caller::agent(&inbox.server, "etl-agent", "sam@example.com").await;
    let id = inbox.critical_export(&agent).await;
    let row = format!("tr[data-action=\"{id}\"]");
    // Dana: data-owners in the directory and at the provider.
    let dana = browse(&steps(&[
        sign_in(&inbox.url("/inbox"), "dana"),
        vec![
            json!({"wait_for": row}),
            json!({"text": "#pending", "as": "list"}),
        ],
    ]))
    .await;
    assert!(dana.text("list").contains("db.export"));
    // Erin: data-owners in the directory, only `security` at the provider.
    let erin = browse(&steps(&[
        sign_in(&inbox.url("/inbox"), "erin"),
        vec![
            json!({"text": "main", "as": "list"}),
            json!({"goto": inbox.url(&format!("/inbox/actions/{id}")), "as": "direct"}),
        ],
    ]))
    .await;
    assert!(erin.text("list").contains("Nothing is waiting for you"));
    assert_eq!(erin.status("direct"), 404);
    // Olly: data-owners at the provider, not in the directory's group.
    let olly = browse(&steps(&[
        sign_in(&inbox.url("/inbox"), "olly"),
        vec![json!({"text": "main", "as": "list"})],
    ]))
    .await;
    assert!(olly.text("list").contains("Nothing is waiting for you"));
}

#[tokio::test]
async fn pages_carry_a_strict_csp_and_the_session_cookie_is_http_only() {
    let inbox = Inbox::start("").await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // No session: to the sign-in, which goes to the provider with PKCE and a nonce.
    let r = client
        .get(inbox.url("/inbox/history"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/inbox/login?next=%2Finbox%2Fhistory"
    );
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'")
            && csp.contains("script-src 'self'")
            && csp.contains("frame-ancestors 'none'")
    );
    let r = client.get(inbox.url("/inbox/login")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let to = reqwest::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert!(to.as_str().starts_with(&inbox.provider.issuer));
    let query: std::collections::HashMap<_, _> = to.query_pairs().into_owned().collect();
    assert_eq!(query["code_challenge_method"], "S256");
    assert!(query.contains_key("nonce") && query.contains_key("state"));
    assert_eq!(query["client_id"], CLIENT_ID);
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain http: no Secure flag");
    // A callback from another browser (no sign-in cookie) is refused.
    let r = client
        .get(inbox.url(&format!("/inbox/callback?code=x&state={}", query["state"])))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("state-mismatch"));
}
