//! The plugin registry: every plugin the service binds is stored by the
//! sha256 of its exact bytes, once, with a `plugin-registered` event.

use actiongate::evidence::EventKind;
use actiongate::examples::example;
use actiongate::sandbox::sha256_hex;
use actiongate_tests::server::TestServer;

#[tokio::test]
async fn bound_plugins_are_stored_by_sha256_once() {
    let server = TestServer::start().await;
    let store = &server.app.gate.store();
    let stored = store.plugins().await.unwrap();
    for name in [
        "db-export",
        "iam-change",
        "prod-ops",
        "baseline",
        "mcp-tools",
    ] {
        let wasm = example(name).unwrap().wasm;
        let sha = sha256_hex(wasm);
        let row = store.plugin(&sha).await.unwrap().expect("stored");
        assert_eq!(row.bytes, wasm, "{name}: the exact bytes");
        assert_eq!(row.name, name);
        assert_eq!(row.registered_by, "config");
        assert!(stored.iter().any(|p| p.sha256 == sha && p.bytes.is_empty()));
    }
    assert_eq!(stored.len(), 5);

    let registrations = || async {
        let log = &server.app.evidence;
        let size = log.committed_size().await.unwrap();
        log.entries(0, size)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == EventKind::PluginRegistered)
            .map(|e| e.payload["sha256"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(registrations().await.len(), 5);
    // A second replica binds the same plugins: nothing new is stored or recorded.
    let _replica = server.replica().await;
    assert_eq!(registrations().await.len(), 5);
    assert_eq!(store.plugins().await.unwrap().len(), 5);
}

#[tokio::test]
async fn postgres_refuses_a_row_whose_key_is_not_the_hash_of_its_bytes() {
    let server = TestServer::start().await;
    let pool = sqlx::PgPool::connect(&server.database_url).await.unwrap();
    let err = sqlx::query(
        "INSERT INTO plugins (sha256, name, version, wit_version, bytes, registered_at, registered_by)
         VALUES ($1, 'x', '1', '0.1.0', '\\x00', now(), 'mallory')",
    )
    .bind("0".repeat(64))
    .execute(&pool)
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("plugins_sha256_is_hash_of_bytes"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// The registry CLI, signatures, the bindings store, four eyes and shadows.
// The CLI runs in-process (`cli::run`) against a real server on loopback.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use actiongate::cli::Cli;
use actiongate::evidence::StoredEvent;
use actiongate::store::KeyRole;
use actiongate_tests::component;
use clap::Parser as _;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Runs `actiongate ARGS…`; returns its exit code and output.
async fn cli(args: &[&str]) -> (u8, String) {
    let cli = Cli::try_parse_from(std::iter::once("actiongate").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let mut out = Vec::new();
    let code = actiongate::cli::run(cli, &mut out).await;
    (code, String::from_utf8(out).unwrap())
}

/// `cli` as the person holding `key`, against `server`.
async fn cli_as(server: &TestServer, key: &str, args: &[&str]) -> (u8, String) {
    let mut all = args.to_vec();
    all.extend(["--url", &server.url, "--key", key]);
    cli(&all).await
}

/// `plugin register WASM EXTRA…` as the person holding `key`.
async fn register(server: &TestServer, key: &str, wasm: &Path, extra: &[&str]) -> (u8, String) {
    let mut args = vec!["plugin", "register", wasm.to_str().unwrap()];
    args.extend(extra);
    cli_as(server, key, &args).await
}

async fn events(server: &TestServer, kind: EventKind) -> Vec<StoredEvent> {
    let log = &server.app.evidence;
    let size = log.committed_size().await.unwrap();
    log.entries(0, size)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == kind)
        .collect()
}

/// Writes the deny-all fixture to `dir` and returns its path and sha256.
fn deny_all_file(dir: &Path) -> (PathBuf, String) {
    let wasm = component("fixture_deny_all");
    let path = dir.join("deny_all.wasm");
    std::fs::write(&path, &wasm).unwrap();
    (path, sha256_hex(&wasm))
}

fn ssh_keygen(args: &[&str]) -> String {
    let out = Command::new("ssh-keygen")
        .args(args)
        .output()
        .expect("ssh-keygen is installed");
    assert!(
        out.status.success(),
        "ssh-keygen {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A new ed25519 key `dir/name` (and `.pub`).
fn new_key(dir: &Path, name: &str) -> PathBuf {
    let key = dir.join(name);
    ssh_keygen(&[
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-C",
        name,
        "-f",
        key.to_str().unwrap(),
    ]);
    key
}

/// Signs `file` with `key` in `namespace`; returns the signature's path.
fn sign(key: &Path, namespace: &str, file: &Path, sig: &Path) -> PathBuf {
    let copy = sig.with_extension("signed");
    std::fs::copy(file, &copy).unwrap();
    ssh_keygen(&[
        "-Y",
        "sign",
        "-n",
        namespace,
        "-f",
        key.to_str().unwrap(),
        copy.to_str().unwrap(),
    ]);
    std::fs::rename(copy.with_extension("signed.sig"), sig).unwrap();
    sig.to_path_buf()
}

#[tokio::test]
async fn register_refuses_unsigned_and_wrongly_signed_plugins() {
    let keys = tempfile::tempdir().unwrap();
    let alice = new_key(keys.path(), "alice");
    let mallory = new_key(keys.path(), "mallory");
    let alice_pub = std::fs::read_to_string(alice.with_extension("pub")).unwrap();
    let signers = keys.path().join("allowed_signers");
    std::fs::write(&signers, format!("alice@example.com {alice_pub}")).unwrap();
    let server = TestServer::start_with(|c| {
        c.plugins.require_signature = true;
        c.plugins.allowed_signers = Some(signers.clone());
    })
    .await;
    // demo-owner is a directory admin, and no policy-admins group exists.
    let admin = server
        .key(KeyRole::Approver, "demo-owner@example.com")
        .await;
    let (wasm, sha) = deny_all_file(keys.path());
    let other = keys.path().join("other.wasm");
    std::fs::write(&other, example("baseline").unwrap().wasm).unwrap();
    let sig = |name: &str| keys.path().join(format!("{name}.sig"));

    let refusals = [
        (None, "a signature is required"),
        (
            Some(sign(&mallory, "actiongate-plugin", &wasm, &sig("mallory"))),
            "is not in the allowed signers",
        ),
        (
            Some(sign(
                &alice,
                "actiongate-plugin",
                &other,
                &sig("other-bytes"),
            )),
            "does not verify over these bytes",
        ),
        (
            Some(sign(&alice, "file", &wasm, &sig("wrong-namespace"))),
            "namespace \"file\"",
        ),
    ];
    for (signature, why) in &refusals {
        let extra = match signature {
            Some(s) => vec!["--signature", s.to_str().unwrap()],
            None => vec![],
        };
        let (code, out) = register(&server, &admin, &wasm, &extra).await;
        assert_eq!(code, 1, "{why}: {out}");
        assert!(
            out.contains("refused (422") && out.contains(why),
            "{why}: {out}"
        );
    }
    let store = &server.app.gate.store();
    assert!(
        !store.has_plugin(&sha).await.unwrap(),
        "nothing refused is stored"
    );
    assert!(!events(&server, EventKind::PluginRegistered)
        .await
        .iter()
        .any(|e| e.payload["sha256"] == sha.as_str()));

    let good = sign(&alice, "actiongate-plugin", &wasm, &sig("alice"));
    let (code, out) = register(
        &server,
        &admin,
        &wasm,
        &["--signature", good.to_str().unwrap()],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let fingerprint = ssh_keygen(&[
        "-l",
        "-E",
        "sha256",
        "-f",
        alice.with_extension("pub").to_str().unwrap(),
    ])
    .split_whitespace()
    .nth(1)
    .unwrap()
    .to_string();
    let signer = format!("alice@example.com {fingerprint}");
    assert!(out.contains(&format!("signed by {signer}")), "{out}");
    let row = store.plugin(&sha).await.unwrap().expect("stored");
    assert_eq!(row.bytes, component("fixture_deny_all"));
    assert_eq!(row.signer.as_deref(), Some(signer.as_str()));
    assert_eq!(row.registered_by, "demo-owner@example.com");
    let registered = events(&server, EventKind::PluginRegistered).await;
    let event = registered
        .iter()
        .find(|e| e.payload["sha256"] == sha.as_str())
        .expect("a plugin-registered event");
    assert_eq!(event.payload["signer"], signer.as_str());
    assert_eq!(event.actor.id, "demo-owner@example.com");

    let (code, out) = cli_as(&server, &admin, &["plugin", "list"]).await;
    assert_eq!(code, 0, "{out}");
    let line = out.lines().find(|l| l.starts_with(&sha)).expect("listed");
    assert!(
        line.contains("deny-all") && line.contains(&format!("signed by {signer}")),
        "{line}"
    );
    assert_eq!(
        out.lines().filter(|l| l.contains(" unsigned ")).count(),
        5,
        "{out}"
    );
}

#[tokio::test]
async fn register_runs_the_case_file_and_refuses_a_failing_plugin() {
    let server = TestServer::start().await;
    let admin = server
        .key(KeyRole::Approver, "demo-owner@example.com")
        .await;
    let dir = server.path();
    let (wasm, sha) = deny_all_file(&dir);
    let cases = |expect: &str| {
        let path = dir.join(format!("{}.toml", sha256_hex(expect.as_bytes())));
        std::fs::write(
            &path,
            format!(
                "[defaults]\nkind = \"db.export\"\n\n[[case]]\nname = \"a small export\"\nparams = {{ rows = 5 }}\nexpect = {expect}\n\n[[case]]\nname = \"a big export\"\nparams = {{ rows = 5000000 }}\nexpect = {{ risk = \"critical\" }}\n"
            ),
        )
        .unwrap();
        path
    };
    let failing = cases("{ risk = \"low\", route = \"allow\" }");
    let (code, out) = register(
        &server,
        &admin,
        &wasm,
        &["--cases", failing.to_str().unwrap()],
    )
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("1 of 2 cases failed") && out.contains("a small export"),
        "{out}"
    );
    assert!(!server.app.gate.store().has_plugin(&sha).await.unwrap());

    let passing = cases("{ risk = \"critical\", route = \"deny\" }");
    let (code, out) = register(
        &server,
        &admin,
        &wasm,
        &["--cases", passing.to_str().unwrap()],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("registered deny-all") && out.contains("2 cases passed"),
        "{out}"
    );
    let registered = events(&server, EventKind::PluginRegistered).await;
    let event = registered
        .iter()
        .find(|e| e.payload["sha256"] == sha.as_str())
        .unwrap();
    assert_eq!(event.payload["cases"]["count"], 2);
    assert_eq!(event.payload["source"], "deny_all.wasm");

    // The same bytes again: nothing new is stored or recorded.
    let (code, out) = register(&server, &admin, &wasm, &[]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("already registered"), "{out}");
    assert_eq!(
        events(&server, EventKind::PluginRegistered).await.len(),
        registered.len()
    );

    // Only policy admins register: erin is no directory admin.
    let erin = server.key(KeyRole::Approver, "erin@example.com").await;
    let (code, out) = register(&server, &erin, &wasm, &[]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("403") && out.contains("not a policy admin"),
        "{out}"
    );
}

/// Submits as `agent_key`; returns the HTTP status and body.
async fn submit(
    server: &TestServer,
    agent_key: &str,
    kind: &str,
    params: Value,
) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/actions", server.url))
        .bearer_auth(agent_key)
        .json(&json!({"kind": kind, "resource": "postgres://prod/warehouse", "params": params}))
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

fn small_export() -> Value {
    json!({"rows": 500, "tables": ["orders"], "destination": "bq://corp-warehouse/daily"})
}

/// Waits until `check` holds, up to 10 s.
async fn eventually<F: std::future::Future<Output = bool>>(what: &str, check: impl FnMut() -> F) {
    let held = actiongate_tests::settle(Duration::from_secs(10), check, |held| *held).await;
    assert!(held, "timed out waiting until {what}");
}

#[tokio::test]
async fn config_and_cli_bindings_land_in_one_store() {
    let server = TestServer::start().await;
    let store = &server.app.gate.store();
    let admin = server
        .key(KeyRole::Approver, "demo-owner@example.com")
        .await;
    let agent = server.agent("etl", "dana@example.com").await;
    let (wasm, deny) = deny_all_file(&server.path());
    let db_export = sha256_hex(example("db-export").unwrap().wasm);

    // The config file's bindings were seeded into the store.
    let seeded = store.current_bindings().await.unwrap();
    assert_eq!(seeded.len(), 5);
    assert!(seeded
        .iter()
        .all(|b| b.source == "config" && b.changed_by == "config"));
    assert_eq!(events(&server, EventKind::BindingChanged).await.len(), 5);

    // A binding naming an unregistered plugin, or a bad pattern, is refused.
    let (code, out) = cli_as(&server, &admin, &["bind", "db.export", &deny]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("422") && out.contains("not registered"),
        "{out}"
    );
    let (code, out) = cli_as(&server, &admin, &["bind", "db.[", &db_export]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("400") && out.contains("a kind is lowercase ASCII segments"),
        "{out}"
    );

    let (code, out) = register(&server, &admin, &wasm, &[]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        submit(&server, &agent, "db.export", small_export()).await.0,
        StatusCode::OK
    );
    let (code, out) = cli_as(
        &server,
        &admin,
        &["bind", "db.export", &deny, "--reason", "freeze exports"],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("bound db.export -> {deny}")), "{out}");
    let (status, body) = submit(&server, &agent, "db.export", small_export()).await;
    assert_eq!(
        (status, body["risk"].as_str()),
        (StatusCode::FORBIDDEN, Some("critical")),
        "{body}"
    );
    // Binding the same again changes nothing and records nothing.
    let (code, out) = cli_as(&server, &admin, &["bind", "db.export", &deny]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("nothing changed"), "{out}");
    assert_eq!(events(&server, EventKind::BindingChanged).await.len(), 6);

    let changed = events(&server, EventKind::BindingChanged).await;
    let last = changed.last().unwrap();
    assert_eq!(last.actor.id, "demo-owner@example.com");
    assert_eq!(last.payload["previous"]["sha256"], db_export.as_str());
    assert_eq!(last.payload["source"], "admin");

    let (code, out) = cli_as(&server, &admin, &["bindings", "list"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.lines().count(), 5, "{out}");
    let line = out.lines().find(|l| l.starts_with("db.export ")).unwrap();
    assert!(
        line.contains(&deny) && line.contains("admin by demo-owner@example.com"),
        "{line}"
    );
    assert!(
        out.lines()
            .filter(|l| l.contains("config by config"))
            .count()
            == 4,
        "{out}"
    );
    let (_, history) = cli_as(&server, &admin, &["bindings", "list", "--history"]).await;
    assert_eq!(history.lines().count(), 6, "{history}");

    // A replica starting with the same (unedited) config file does not
    // revert the change; it follows the store.
    let replica = server.replica().await;
    assert_eq!(events(&server, EventKind::BindingChanged).await.len(), 6);
    let (status, _) = submit(&replica, &agent, "db.export", small_export()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Editing the config entry is a change, applied as `config` at start.
    let mut edited = server.config.clone();
    edited
        .bindings
        .iter_mut()
        .find(|b| b.kind == "db.export")
        .unwrap()
        .plugin = Some("baseline".into());
    let restarted = TestServer::start_config(
        edited,
        tempfile::tempdir().unwrap(),
        server.database.clone(),
    )
    .await;
    let now = store.current_bindings().await.unwrap();
    let db = now.iter().find(|b| b.pattern == "db.export").unwrap();
    assert_eq!(
        (db.sha256.as_str(), db.source.as_str()),
        (
            sha256_hex(example("baseline").unwrap().wasm).as_str(),
            "config"
        )
    );
    // Running replicas follow the store (NOTIFY, or the poll).
    eventually("the first replica follows the config change", || async {
        submit(&server, &agent, "db.export", small_export()).await.0 != StatusCode::FORBIDDEN
    })
    .await;
    drop((replica, restarted));
}

#[tokio::test]
async fn a_binding_change_by_one_policy_admin_waits_for_a_second() {
    let server = TestServer::start_with(|c| {
        c.directory.groups.insert(
            "policy-admins".into(),
            vec!["dana@example.com".into(), "sam@example.com".into()],
        );
    })
    .await;
    let replica = server.replica().await;
    let store = &server.app.gate.store();
    let dana = server.key(KeyRole::Approver, "dana@example.com").await;
    let sam = server.key(KeyRole::Approver, "sam@example.com").await;
    let erin = server.key(KeyRole::Approver, "erin@example.com").await;
    let agent = server.agent("etl", "olly@example.com").await;
    let (wasm, deny) = deny_all_file(&server.path());
    let (code, out) = register(&server, &dana, &wasm, &[]).await;
    assert_eq!(code, 0, "{out}");

    // Not a policy admin (and a directory admin is not one either now).
    let demo_owner = server
        .key(KeyRole::Approver, "demo-owner@example.com")
        .await;
    for key in [&erin, &demo_owner] {
        let (code, out) =
            cli_as(&server, key, &["bind", "db.export", &deny, "--reason", "x"]).await;
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("not a policy admin"), "{out}");
    }
    // Agents may not make the host's own kinds.
    let (status, body) = submit(
        &server,
        &agent,
        "actiongate.bind",
        json!({"pattern": "*", "sha256": deny}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // A reason is required.
    let (code, out) = cli_as(&server, &dana, &["bind", "db.export", &deny]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("reason"), "{out}");

    let before = store.current_bindings().await.unwrap();
    let (code, out) = cli_as(
        &server,
        &dana,
        &["bind", "db.export", &deny, "--reason", "freeze exports"],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("held for approval"), "{out}");
    let action_id = out.split_whitespace().nth(2).unwrap().to_string();
    assert!(
        out.contains(&format!("actiongate approvals approve {action_id}")),
        "{out}"
    );

    // Not in effect: the store, both replicas.
    assert_eq!(store.current_bindings().await.unwrap(), before);
    for s in [&server, &replica] {
        assert_eq!(
            submit(s, &agent, "db.export", small_export()).await.0,
            StatusCode::OK
        );
    }
    // The requester cannot approve their own change; a non-admin cannot either.
    let (code, out) = cli_as(
        &server,
        &dana,
        &["approvals", "approve", &action_id, "--reason", "mine"],
    )
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("403") && out.contains("on their own behalf"),
        "{out}"
    );
    let (code, out) = cli_as(
        &server,
        &erin,
        &["approvals", "approve", &action_id, "--reason", "ok"],
    )
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not in any group"), "{out}");
    assert_eq!(store.current_bindings().await.unwrap(), before);
    assert_eq!(
        submit(&replica, &agent, "db.export", small_export())
            .await
            .0,
        StatusCode::OK
    );

    // The second policy admin sees it and approves: now it is in force everywhere.
    let (code, out) = cli_as(&server, &sam, &["approvals", "list"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&action_id) && out.contains("actiongate.bind"),
        "{out}"
    );
    let (code, out) = cli_as(
        &replica,
        &sam,
        &[
            "approvals",
            "approve",
            &action_id,
            "--reason",
            "reviewed the diff",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let binding = store
        .current_bindings()
        .await
        .unwrap()
        .into_iter()
        .find(|b| b.pattern == "db.export")
        .unwrap();
    assert_eq!(binding.sha256, deny);
    assert_eq!(binding.source, "approval");
    assert_eq!(binding.changed_by, "dana@example.com");
    assert_eq!(binding.approval.as_deref(), Some(action_id.as_str()));
    let changed = events(&server, EventKind::BindingChanged).await;
    let event = changed.last().unwrap();
    assert_eq!(event.payload["approvers"], json!(["sam@example.com"]));
    assert_eq!(
        event.action_id.map(|id| id.to_string()),
        Some(action_id.clone())
    );
    assert_eq!(
        store.action(&action_id).await.unwrap().unwrap().state,
        "executed"
    );
    for s in [&server, &replica] {
        eventually("every replica enforces the approved binding", || async {
            submit(s, &agent, "db.export", small_export()).await.0 == StatusCode::FORBIDDEN
        })
        .await;
    }
}

/// Status, state, risk, reasons, quorum and action id of one answer.
type Answer = (StatusCode, Value, Value, Value, Value, Value);

async fn answers(server: &TestServer, agent: &str, cases: &[Value]) -> Vec<Answer> {
    let mut out = Vec::new();
    for params in cases {
        let (status, body) = submit(server, agent, "db.export", params.clone()).await;
        out.push((
            status,
            body["state"].clone(),
            body["risk"].clone(),
            body["reasons"].clone(),
            body["approval"]["quorum"].clone(),
            body["action_id"].clone(),
        ));
    }
    out
}

#[tokio::test]
async fn a_shadow_that_denies_everything_changes_no_live_answer() {
    let server = TestServer::start().await;
    let admin = server
        .key(KeyRole::Approver, "demo-owner@example.com")
        .await;
    let agent = server.agent("etl", "dana@example.com").await;
    let (wasm, deny) = deny_all_file(&server.path());
    let db_export = sha256_hex(example("db-export").unwrap().wasm);
    let cases = [
        small_export(),
        json!({"rows": 50000, "tables": ["orders"], "destination": "s3://corp-analytics/q4"}),
        json!({"rows": 10, "tables": ["users"], "destination": "https://paste.example.net/"}),
        json!({"tables": ["orders"]}),
    ];
    let without = answers(&server, &agent, &cases).await;
    assert_eq!(without[0].0, StatusCode::OK);

    register(&server, &admin, &wasm, &[]).await;
    let (code, out) = cli_as(
        &server,
        &admin,
        &["bind", "db.export", &db_export, "--shadow", &deny],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("shadow {deny}")), "{out}");
    let with = answers(&server, &agent, &cases).await;
    let strip = |a: &Vec<Answer>| {
        a.iter()
            .map(|(s, st, r, why, q, _)| (*s, st.clone(), r.clone(), why.clone(), q.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        strip(&with),
        strip(&without),
        "the live answers are unchanged"
    );

    // Each shadowed action gets a shadow-evaluated event shaped like its evaluated one.
    let ids: Vec<String> = with
        .iter()
        .map(|a| a.5.as_str().unwrap().to_string())
        .collect();
    eventually("every shadow is recorded", || async {
        let shadows = events(&server, EventKind::ShadowEvaluated).await;
        ids.iter().all(|id| {
            shadows
                .iter()
                .any(|e| e.action_id.map(|a| a.to_string()).as_deref() == Some(id))
        })
    })
    .await;
    let shadows = events(&server, EventKind::ShadowEvaluated).await;
    assert_eq!(shadows.len(), ids.len(), "only shadowed actions, once each");
    let evaluated = events(&server, EventKind::Evaluated).await;
    for shadow in &shadows {
        let live = evaluated
            .iter()
            .find(|e| e.action_id == shadow.action_id)
            .unwrap();
        assert_eq!(shadow.actor.id, deny);
        assert_eq!(shadow.payload["live_sha256"], db_export.as_str());
        assert_eq!(shadow.payload["plugin"]["sha256"], deny.as_str());
        assert_eq!(shadow.payload["input"], live.payload["input"]);
        assert_eq!(shadow.payload["output"]["route"]["route"], "deny");
        assert_eq!(
            shadow.payload["output"]["classification"]["risk"],
            "critical"
        );
        let keys = |v: &Value| {
            v.as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect::<std::collections::BTreeSet<_>>()
        };
        let mut expected = keys(&live.payload);
        expected.insert("live_sha256".into());
        assert_eq!(keys(&shadow.payload), expected);
    }
    // Kinds whose binding has no shadow are not shadowed.
    submit(&server, &agent, "iam.role.grant", json!({})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        events(&server, EventKind::ShadowEvaluated).await.len(),
        ids.len()
    );
}

#[tokio::test]
async fn the_bindings_store_and_four_eyes_work_on_sqlite() {
    let db = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/actiongate.db", db.path().display());
    let server = TestServer::start_with(|c| {
        c.database_url = Some(url.clone());
        c.directory.groups.insert(
            "policy-admins".into(),
            vec!["dana@example.com".into(), "sam@example.com".into()],
        );
    })
    .await;
    let store = &server.app.gate.store();
    assert_eq!(store.kind(), actiongate::store::StoreKind::Sqlite);
    assert_eq!(store.current_bindings().await.unwrap().len(), 5);
    let dana = server.key(KeyRole::Approver, "dana@example.com").await;
    let sam = server.key(KeyRole::Approver, "sam@example.com").await;
    let agent = server.agent("etl", "olly@example.com").await;
    let (wasm, deny) = deny_all_file(&server.path());
    let (code, out) = register(&server, &dana, &wasm, &[]).await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = cli_as(
        &server,
        &dana,
        &[
            "bind", "db.*", &deny, "--shadow", &deny, "--reason", "freeze",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let action_id = out.split_whitespace().nth(2).unwrap().to_string();
    assert_eq!(
        submit(&server, &agent, "db.drop", json!({})).await.0,
        StatusCode::ACCEPTED,
        "baseline holds it until the change is approved"
    );
    let (code, out) = cli_as(
        &server,
        &sam,
        &["approvals", "approve", &action_id, "--reason", "ok"],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let (status, body) = submit(&server, &agent, "db.drop", json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (_, list) = cli_as(&server, &dana, &["bindings", "list"]).await;
    let line = list
        .lines()
        .find(|l| l.starts_with("db.* "))
        .expect("listed");
    assert!(
        line.contains(&format!("shadow={deny}")) && line.contains("approval by dana@example.com"),
        "{line}"
    );
    assert_eq!(
        store.action(&action_id).await.unwrap().unwrap().state,
        "executed"
    );
}
