//! Passkey step-up in a real browser: the system Chromium through
//! Playwright, with virtual authenticators from the DevTools protocol's
//! WebAuthn domain (ctap2, internal, user verification), signed in to the
//! inbox by a real OpenID Connect provider, over loopback HTTP and Postgres.
//! A person registers passkeys on the inbox's own pages and approves a
//! critical action with one; each way a step-up must be refused is driven
//! through the same pages, as a tampering client would send it.

use actiongate::evidence::EventKind;
use actiongate_tests::browser::{
    browse, inbox_service, no_script_errors, screenshot_dir, sign_in, Browser, OidcProvider,
    Outputs,
};
use actiongate_tests::caller::Caller;
use actiongate_tests::pg::TempDatabase;
use actiongate_tests::server::{config, start_refused, TestServer};
use serde_json::{json, Value};

fn accounts() -> Value {
    json!({
        "dana": {"email": "dana@example.com", "email_verified": true, "name": "Dana"},
        "erin": {"email": "erin@example.com", "email_verified": true, "name": "Erin"},
    })
}

/// The service with `[inbox]` and `[step_up]` at `http://localhost:PORT`:
/// WebAuthn takes a domain for the relying party, never an IP address.
struct Inbox {
    server: TestServer,
    _provider: OidcProvider,
}

impl Inbox {
    async fn start() -> Inbox {
        let (server, provider) = inbox_service(
            "localhost",
            accounts(),
            "ag_stepup_browser",
            "",
            "",
            |config, url| {
                config.step_up = Some(
                    toml::from_str(&format!("rp_id = \"localhost\"\norigin = {url:?}\n")).unwrap(),
                );
            },
        )
        .await;
        Inbox {
            server,
            _provider: provider,
        }
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}{path}",
            self.server.url.replace("127.0.0.1", "localhost")
        )
    }

    fn page(&self, id: &str) -> String {
        self.url(&format!("/inbox/actions/{id}"))
    }

    /// A critical export: step-up applies, two data owners must approve.
    async fn critical_export(&self, agent: &Caller, destination: &str) -> String {
        let (status, answer) = agent
            .post(
                "/v1/actions",
                json!({
                    "kind": "db.export",
                    "resource": "postgres://prod/crm",
                    "params": {"rows": 500000, "tables": ["customers"], "destination": destination, "format": "csv"},
                    "justification": "Quarterly churn model",
                }),
            )
            .await;
        assert_eq!(status, 202, "{answer}");
        assert_eq!(answer["risk"], "critical");
        answer["action_id"].as_str().unwrap().to_string()
    }

    /// The payloads of the action's `reviewed` evidence events.
    async fn reviewed(&self, id: &str) -> Vec<Value> {
        let uuid = uuid::Uuid::parse_str(id).unwrap();
        self.server
            .app
            .gate
            .evidence()
            .events_for_action(uuid)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == EventKind::Reviewed)
            .map(|e| e.payload)
            .collect()
    }
}

/// Steps that register a passkey named `label` on the passkeys page.
fn register(label: &str, as_: &str) -> Vec<Value> {
    vec![
        json!({"fill": "#passkey-label", "value": label}),
        json!({"click": "#register-form button[type=submit]", "as": as_}),
    ]
}

/// The `step_up` field of a captured form post.
fn step_up_field(out: &Outputs, name: &str) -> String {
    let body = out.values[name]["value"].as_str().unwrap();
    let fields: Vec<(String, String)> = serde_urlencoded::from_str(body).unwrap();
    let value = fields
        .into_iter()
        .find(|(k, _)| k == "step_up")
        .map(|(_, v)| v)
        .unwrap_or_default();
    assert!(
        value.contains("\"challenge_id\""),
        "the page's script sent a passkey assertion with the form: {body}"
    );
    value
}

#[tokio::test]
async fn passkeys_registered_in_the_browser_approve_a_critical_action_and_deny_needs_none() {
    let inbox = Inbox::start().await;
    let agent = Caller::agent(&inbox.server, "etl-agent", "sam@example.com").await;
    let approve_me = inbox
        .critical_export(&agent, "s3://corp-analytics/q4")
        .await;
    let deny_me = inbox
        .critical_export(&agent, "s3://corp-analytics/q3")
        .await;
    let shots = screenshot_dir();

    // Without a session, the script's calls are refused as problem+json.
    let r = reqwest::Client::new()
        .post(inbox.url("/inbox/passkeys/registration"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["type"], "urn:actiongate:problem:signed-out");

    let out = browse(
        &[
            vec![json!({"authenticator": {}})],
            sign_in(&inbox.url("/inbox/passkeys"), "dana"),
            vec![
                json!({"text": "main", "as": "none_yet"}),
                json!({"text": "header nav", "as": "menu"}),
                // The script's calls carry the session's CSRF token; a page
                // of another origin could not read it.
                json!({"fetch": "/inbox/passkeys/registration", "as": "no_token",
                       "headers": {"content-type": "application/json"}}),
                json!({"fetch": "/inbox/passkeys/registration", "as": "forged_token",
                       "headers": {"content-type": "application/json", "x-csrf-token": "forged"}}),
                json!({"fetch": format!("/inbox/actions/{approve_me}/step-up"), "as": "forged_challenge",
                       "headers": {"content-type": "application/json", "x-csrf-token": "forged"}}),
            ],
            register("Work laptop", "first"),
            vec![json!({"text": "#passkeys", "as": "one"})],
            // A second device: another authenticator, another passkey.
            vec![
                json!({"remove_authenticator": true}),
                json!({"authenticator": {}}),
            ],
            register("Phone", "second"),
            vec![
                json!({"screenshot": shots.join("passkeys.png").to_str().unwrap()}),
                // The same device again: the server's options exclude it.
                json!({"fill": "#passkey-label", "value": "Phone again"}),
                json!({"click": "#register-form button[type=submit]", "navigates": false}),
                json!({"wait_text": "#register-status", "contains": "Not added"}),
                json!({"text": "#register-status", "as": "twice"}),
                json!({"goto": inbox.url("/inbox/passkeys")}),
                json!({"text": "#passkeys", "as": "two"}),
                // The laptop's passkey goes; the phone's stays.
                json!({"click": "tr:has-text(\"Work laptop\") button", "as": "removed"}),
                json!({"text": "main", "as": "after_removal"}),
                json!({"goto": inbox.page(&approve_me), "as": "action"}),
                json!({"text": "#step-up", "as": "prompt"}),
                json!({"fill": "#approve-reason", "value": "Checked with the analytics team"}),
                json!({"screenshot": shots.join("step-up.png").to_str().unwrap()}),
                json!({"click": "#approve-form button[type=submit]", "as": "approved"}),
                json!({"text": "#notice", "as": "notice"}),
                json!({"text": "#quorum", "as": "quorum"}),
            ],
        ]
        .concat(),
    )
    .await;
    no_script_errors(&out);
    assert!(
        out.text("menu").contains("My passkeys"),
        "{}",
        out.text("menu")
    );
    assert!(
        out.text("none_yet").contains("You have no passkey yet"),
        "{}",
        out.text("none_yet")
    );
    for name in ["no_token", "forged_token", "forged_challenge"] {
        assert_eq!(out.status(name), 403, "{name}");
        let problem: Value = serde_json::from_str(out.text(name)).unwrap();
        assert_eq!(problem["type"], "urn:actiongate:problem:csrf", "{name}");
    }
    assert_eq!(
        out.url("first"),
        inbox.url("/inbox/passkeys?done=registered")
    );
    assert!(out.text("one").contains("Work laptop"));
    assert!(out.text("two").contains("Work laptop") && out.text("two").contains("Phone"));
    assert!(
        !out.text("two").contains("Phone again"),
        "{}",
        out.text("two")
    );
    assert!(
        out.text("twice").contains("already registered"),
        "{}",
        out.text("twice")
    );
    assert_eq!(out.status("removed"), 200);
    let after = out.text("after_removal");
    assert!(
        after.contains("Passkey removed")
            && after.contains("Phone")
            && !after.contains("Work laptop"),
        "{after}"
    );
    assert!(
        out.text("prompt")
            .contains("Your passkey is needed to approve"),
        "{}",
        out.text("prompt")
    );
    assert_eq!(out.status("approved"), 200);
    assert!(
        out.text("notice")
            .contains("approval of this version is recorded"),
        "{}",
        out.text("notice")
    );
    assert!(
        out.text("quorum").starts_with("1 of 2"),
        "{}",
        out.text("quorum")
    );

    // The store keeps one passkey, used once; the evidence names it and the
    // flags the authenticator signed.
    let dana = inbox
        .server
        .app
        .gate
        .directory()
        .person_by_email("dana@example.com")
        .unwrap()
        .id()
        .clone();
    let keys = inbox
        .server
        .app
        .gate
        .step_up()
        .unwrap()
        .list(&dana)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].label, "Phone");
    assert!(keys[0].last_used_at.is_some());
    let reviewed = inbox.reviewed(&approve_me).await;
    assert_eq!(reviewed.len(), 1);
    let r = &reviewed[0];
    assert_eq!(
        (r["decision"].as_str(), r["channel"].as_str()),
        (Some("approve"), Some("inbox"))
    );
    assert_eq!(r["step_up_required"], true);
    assert_eq!(
        r["step_up"]["credential_id"],
        keys[0].credential_id.as_str()
    );
    assert_eq!(r["step_up"]["user_present"], true);
    assert_eq!(r["step_up"]["user_verified"], true);
    let challenge = r["step_up"]["challenge"].as_str().unwrap();
    let nonce = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        r["step_up"]["nonce"].as_str().unwrap(),
    )
    .unwrap();
    let digest = r["digest"].as_str().unwrap();
    assert_eq!(
        challenge,
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            actiongate::stepup::challenge::derive(&approve_me, digest, "dana@example.com", &nonce)
        ),
        "the signed challenge is the one derived from this version and Dana"
    );

    // Erin has no passkey: the page says so, and her deny needs none.
    let out = browse(
        &[
            sign_in(&inbox.page(&deny_me), "erin"),
            vec![
                json!({"text": "#step-up", "as": "prompt"}),
                json!({"fill": "#deny-reason", "value": "Q3 was exported already"}),
                json!({"click": "#deny-form button[type=submit]", "as": "denied"}),
                json!({"text": ".status", "as": "state"}),
            ],
        ]
        .concat(),
    )
    .await;
    no_script_errors(&out);
    assert!(out.text("prompt").contains("You have no passkey yet"));
    assert_eq!(out.status("denied"), 200);
    assert!(
        out.text("state").contains("denied"),
        "{}",
        out.text("state")
    );
    let reviewed = inbox.reviewed(&deny_me).await;
    assert_eq!(reviewed.len(), 1);
    assert!(
        reviewed[0].get("step_up").is_none(),
        "a deny carries no proof"
    );
}

/// The approval form's post, as the tests catch and rewrite it.
const REVIEW_POST: &str = "**/inbox/actions/*/review";

/// Steps that fill in an approval on `page`.
fn approving(page: &str) -> Vec<Value> {
    vec![
        json!({"goto": page}),
        json!({"fill": "#approve-reason", "value": "fine"}),
    ]
}

/// Steps that make the page's assertion for an approval on `page`, catch
/// its post before it is sent, and pause as `caught_NAME` (the captured
/// post is output `NAME`).
fn caught(page: &str, name: &str) -> Vec<Value> {
    [
        approving(page),
        vec![
            json!({"capture_post": REVIEW_POST, "as": name, "abort": true}),
            json!({"click": "#approve-form button[type=submit]", "navigates": false}),
            json!({"captured": name}),
            json!({"pause": format!("caught_{name}")}),
        ],
    ]
    .concat()
}

/// Steps that approve on `page` with the post's `step_up` field replaced
/// by `value`; the page is output `NAME`, its notice `NAME_notice`.
fn sent_with(page: &str, value: &str, name: &str) -> Vec<Value> {
    [
        approving(page),
        vec![
            json!({"rewrite_post": REVIEW_POST, "field": "step_up", "value": value}),
            json!({"click": "#approve-form button[type=submit]", "as": name}),
            json!({"text": "#notice", "as": format!("{name}_notice")}),
        ],
    ]
    .concat()
}

#[tokio::test]
async fn approvals_without_a_fresh_verified_own_assertion_for_this_version_are_refused() {
    let inbox = Inbox::start().await;
    let agent = Caller::agent(&inbox.server, "etl-agent", "sam@example.com").await;
    let a = inbox
        .critical_export(&agent, "s3://corp-analytics/q4")
        .await;
    let b = inbox
        .critical_export(&agent, "s3://corp-analytics/q3")
        .await;
    // High, not critical: step-up applies only once a modify raises it.
    let (status, answer) = agent
        .post(
            "/v1/actions",
            json!({"kind": "db.export", "resource": "postgres://prod/crm",
                   "params": {"rows": 500, "tables": ["customers"], "destination": "s3://corp-analytics/q2", "format": "csv"}}),
        )
        .await;
    assert_eq!(
        (status.as_u16(), answer["risk"].as_str()),
        (202, Some("high")),
        "{answer}"
    );
    let c = answer["action_id"].as_str().unwrap().to_string();

    // Through the API, an approval without an assertion names the rule.
    let dana_api = Caller::approver(&inbox.server, "dana@example.com").await;
    let (status, problem) = dana_api
        .post(
            &format!("/v1/approvals/{a}/reviews"),
            json!({"decision": "approve", "reason": "looks fine"}),
        )
        .await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(problem["type"], "urn:actiongate:problem:step-up-required");
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains(&format!("/inbox/actions/{a}")));

    let mut dana = Browser::start(
        &[
            vec![json!({"authenticator": {}})],
            sign_in(&inbox.url("/inbox/passkeys"), "dana"),
            register("Work laptop", "registered"),
            // An assertion made on A's page for A, caught before it is sent;
            // replayed on B's page in place of B's own.
            caught(&inbox.page(&a), "for_a"),
            sent_with(&inbox.page(&b), "${for_a}", "replayed"),
            // Another assertion for A's current version, caught again; then
            // Erin modifies A, and the new version's page gets the old
            // version's assertion.
            caught(&inbox.page(&a), "before_modify"),
            sent_with(&inbox.page(&a), "${before_modify}", "stale"),
            // A step_up field that is no assertion at all.
            sent_with(&inbox.page(&b), "{\"challenge_id\": 1}", "garbled"),
            // The form posted without the assertion the script made.
            sent_with(&inbox.page(&b), "", "without"),
            vec![
                // An authenticator that does not verify the user: the
                // browser refuses to answer a challenge that requires it...
                json!({"user_verified": false}),
                json!({"goto": inbox.page(&b)}),
                json!({"fill": "#approve-reason", "value": "fine"}),
                json!({"click": "#approve-form button[type=submit]", "navigates": false}),
                json!({"wait_text": "#step-up-status", "contains": "did not confirm"}),
                json!({"text": "#step-up-status", "as": "unverified_prompt"}),
                // ...and a client that asks it not to is refused by the server.
                json!({"rewrite_json": "**/inbox/actions/*/step-up",
                       "set": {"options.publicKey.userVerification": "discouraged"}}),
                json!({"click": "#approve-form button[type=submit]", "as": "unverified"}),
                json!({"text": "#notice", "as": "unverified_notice"}),
                // Erin's credential in Dana's authenticator, offered for
                // Dana's challenge.
                json!({"user_verified": true}),
                json!({"add_credential": "${erin_credential}"}),
                json!({"goto": inbox.page(&b)}),
                json!({"fill": "#approve-reason", "value": "fine"}),
                json!({"rewrite_json": "**/inbox/actions/*/step-up",
                       "set": {"options.publicKey.allowCredentials": [{"type": "public-key", "id": "${erin_credential_id}"}]}}),
                json!({"click": "#approve-form button[type=submit]", "as": "foreign"}),
                json!({"text": "#notice", "as": "foreign_notice"}),
            ],
        ]
        .concat(),
    );
    let out = dana.until("caught_for_a").await;
    let for_a = step_up_field(out, "for_a");
    dana.resume(json!({"for_a": for_a})).await;
    let out = dana.until("caught_before_modify").await;
    let before_modify = step_up_field(out, "before_modify");
    let digest_before = inbox
        .server
        .app
        .gate
        .store()
        .action(&a)
        .await
        .unwrap()
        .unwrap()
        .digest;

    // Erin registers her own passkey and modifies A with it.
    let erin = browse(
        &[
            vec![json!({"authenticator": {}})],
            sign_in(&inbox.url("/inbox/passkeys"), "erin"),
            register("Erin's key", "registered"),
            vec![
                json!({"credentials": true, "as": "credentials"}),
                json!({"goto": inbox.page(&a)}),
                json!({"fill": "#param-rows", "value": "50000"}),
                json!({"fill": "#modify-reason", "value": "fewer rows are enough"}),
                json!({"click": "#modify-form button[type=submit]", "as": "modified"}),
                json!({"text": "#notice", "as": "notice"}),
                // A plain action whose modify raises it to critical: the
                // first try is refused, and the page then asks for the passkey.
                json!({"goto": inbox.page(&c)}),
                json!({"text": "#decide", "as": "plain"}),
                json!({"fill": "#param-rows", "value": "500000"}),
                json!({"fill": "#modify-reason", "value": "the whole table after all"}),
                json!({"click": "#modify-form button[type=submit]", "as": "raised"}),
                json!({"text": "#notice", "as": "raised_notice"}),
                json!({"fill": "#param-rows", "value": "500000"}),
                json!({"fill": "#modify-reason", "value": "the whole table after all"}),
                json!({"click": "#modify-form button[type=submit]", "as": "raised_with_passkey"}),
                json!({"text": "#notice", "as": "raised_with_passkey_notice"}),
            ],
        ]
        .concat(),
    )
    .await;
    no_script_errors(&erin);
    assert!(
        !erin.text("plain").contains("Your passkey is needed"),
        "{}",
        erin.text("plain")
    );
    assert_eq!(erin.status("raised"), 403);
    assert!(erin.text("raised_notice").contains("step-up-required"));
    assert_eq!(erin.status("raised_with_passkey"), 200);
    assert!(
        erin.text("raised_with_passkey_notice")
            .contains("modification is recorded"),
        "{}",
        erin.text("raised_with_passkey_notice")
    );
    let on_c = inbox.reviewed(&c).await;
    assert_eq!(on_c.len(), 1, "the refused try left nothing");
    assert_eq!(on_c[0]["step_up_required"], true);
    assert_eq!(on_c[0]["step_up"]["user_verified"], true);
    assert_eq!(erin.status("modified"), 200);
    assert!(
        erin.text("notice").contains("modification is recorded"),
        "{}",
        erin.text("notice")
    );
    let digest_after = inbox
        .server
        .app
        .gate
        .store()
        .action(&a)
        .await
        .unwrap()
        .unwrap()
        .digest;
    assert_ne!(digest_before, digest_after);
    let credentials = erin.values["credentials"]["value"].as_array().unwrap();
    assert_eq!(credentials.len(), 1);
    let erin_credential = credentials[0].clone();

    dana.resume(json!({
        "before_modify": before_modify,
        "erin_credential": erin_credential.to_string(),
        "erin_credential_id": erin_credential["credentialId"],
    }))
    .await;
    let out = dana.finish().await;
    no_script_errors(&out);

    let refused = |name: &str, code: &str, words: &str| {
        assert_eq!(out.status(name), 403, "{name}");
        let notice = out.text(&format!("{name}_notice"));
        assert!(
            notice.contains("Your review was refused")
                && notice.contains(code)
                && notice.contains(words),
            "{name}: {notice}"
        );
    };
    refused(
        "replayed",
        "step-up-wrong-action",
        &format!("another action ({a})"),
    );
    assert_eq!(out.status("garbled"), 400);
    assert!(
        out.text("garbled_notice").contains("step-up-invalid")
            && out.text("garbled_notice").contains("is not readable"),
        "{}",
        out.text("garbled_notice")
    );
    refused(
        "without",
        "step-up-required",
        "approving this action needs your passkey",
    );
    refused(
        "stale",
        "step-up-wrong-action",
        "an earlier version of this action",
    );
    assert!(
        out.text("unverified_prompt")
            .contains("did not confirm it is you"),
        "{}",
        out.text("unverified_prompt")
    );
    refused(
        "unverified",
        "step-up-user-not-verified",
        "did not verify the user",
    );
    refused(
        "foreign",
        "step-up-invalid",
        "the passkey assertion was refused: The credential requested could not be found",
    );

    // Nothing Dana tried was recorded: A holds Erin's modify only, B nothing.
    let on_a = inbox.reviewed(&a).await;
    assert_eq!(on_a.len(), 1);
    assert_eq!(on_a[0]["approver"], "erin@example.com");
    assert_eq!(on_a[0]["decision"], "modify");
    assert_eq!(on_a[0]["step_up"]["user_verified"], true);
    assert!(inbox.reviewed(&b).await.is_empty());
}

#[tokio::test]
async fn the_service_refuses_a_step_up_origin_the_inbox_is_not_served_on() {
    let dir = tempfile::tempdir().unwrap();
    let database = TempDatabase::create("ag_stepup_origin").await;
    let mut config = config(&database.url, dir.path());
    config.inbox = Some(
        toml::from_str(
            "public_url = \"https://inbox.example.com\"\n[oidc]\nissuer = \"https://login.example.com\"\nclient_id = \"actiongate\"\nclient_secret = \"s\"\n",
        )
        .unwrap(),
    );
    config.step_up = Some(
        toml::from_str("rp_id = \"example.com\"\norigin = \"https://approvals.example.com\"\n")
            .unwrap(),
    );
    let text = start_refused(
        &config,
        "a step-up origin other than the inbox's is refused at start",
    )
    .await;
    assert!(
        text.contains("checking [step_up] against [inbox]")
            && text.contains("\"https://approvals.example.com\" is not the origin of [inbox] public_url \"https://inbox.example.com\""),
        "{text}"
    );
}
