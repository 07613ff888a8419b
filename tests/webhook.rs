//! The Standard Webhooks notifier against a loopback receiver: retries on
//! 5xx/429/network errors, stops on other 4xx, and signs so that the
//! reference Python `standardwebhooks` library (pinned in
//! tests/python/requirements.txt) verifies the delivery.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use actiongate::action::Risk;
use actiongate::notify::webhook::{Webhook, WebhookConfig, WebhookSecret};
use actiongate::notify::{
    ActionSummary, ApprovalEntry, ApprovalState, Delivered, Notification, NotificationKind,
    Notifier, NotifyError,
};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OTHER_SECRET: &str = "whsec_b3RoZXItc2VjcmV0LW9mLWVub3VnaC1ieXRlcw==";

#[derive(Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
    at: Instant,
}

/// A scripted reply: status and optional `Retry-After`.
type Reply = (StatusCode, Option<&'static str>);

/// Answers each delivery with the next scripted reply, then 200.
#[derive(Clone, Default)]
struct Receiver {
    script: Arc<Mutex<VecDeque<Reply>>>,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    /// Serves on 127.0.0.1:0; returns the URL to post to.
    async fn start(script: &[Reply]) -> (Receiver, String) {
        let receiver = Receiver::default();
        receiver
            .script
            .lock()
            .unwrap()
            .extend(script.iter().copied());
        let app = Router::new()
            .route("/hooks/secret-token-path", post(receive))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/hooks/secret-token-path",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, url)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
    receiver.received.lock().unwrap().push(Received {
        headers,
        body,
        at: Instant::now(),
    });
    let next = receiver.script.lock().unwrap().pop_front();
    match next {
        Some((status, retry_after)) => {
            let mut response = status.into_response();
            if let Some(value) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", HeaderValue::from_static(value));
            }
            response
        }
        None => StatusCode::OK.into_response(),
    }
}

fn webhook(url: &str, max_attempts: u32) -> Webhook {
    let mut config = WebhookConfig::new(url, WebhookSecret::parse(SECRET).unwrap());
    config.name = "test".into();
    config.max_attempts = max_attempts;
    config.initial_backoff_ms = 20;
    config.max_backoff_ms = 5_000;
    config.timeout_ms = 5_000;
    Webhook::new(config).unwrap()
}

fn notification(id: &str) -> Notification {
    let at = chrono::Utc::now();
    Notification {
        id: id.into(),
        kind: NotificationKind::Pending,
        action: ActionSummary {
            action_id: "act-1".into(),
            digest: "0f".repeat(32),
            kind: "db.export".into(),
            resource: "db://warehouse/customers".into(),
            agent_id: "etl".into(),
            owner: "sam@example.com".into(),
            on_behalf_of: Some("Pat Person".into()),
            risk: Risk::High,
            reasons: vec!["exports personal data".into()],
            justification: Some("quarterly report — «ünïcode» too".into()),
            params: serde_json::json!({"rows": 1000, "columns": ["email", "name"]}),
            context: Default::default(),
            plugin: None,
            redacted: vec![],
        },
        approval: ApprovalState {
            groups: vec!["data-owners".into(), "security".into()],
            quorum: 2,
            approvals: vec![ApprovalEntry {
                approver: "erin@example.com".into(),
                name: "Erin".into(),
                at,
            }],
            expires_at: at + chrono::Duration::hours(1),
            escalate_to: vec!["oncall".into()],
            escalated: false,
            modifiable_params: vec![],
            reviews: vec![],
            step_up: None,
        },
        review: None,
        occurred_at: at,
        inbox_url: None,
    }
}

fn header<'a>(r: &'a Received, name: &str) -> &'a str {
    r.headers
        .get(name)
        .unwrap_or_else(|| panic!("delivery lacks {name}"))
        .to_str()
        .unwrap()
}

// ---- the reference verifier -------------------------------------------------

/// Exit code of VERIFY for a signature the library rejects; anything else
/// (an import error, a crash) is a broken harness, not a failed signature.
const REJECTED: i32 = 3;

const VERIFY: &str = r#"
import json, sys
from standardwebhooks import Webhook, WebhookVerificationError
secret, headers_path, body_path = sys.argv[1:4]
with open(headers_path) as f:
    headers = json.load(f)
with open(body_path, "rb") as f:
    body = f.read().decode("utf-8")
try:
    Webhook(secret).verify(body, headers)
except WebhookVerificationError as e:
    print(f"rejected: {e}")
    sys.exit(3)
print("verified")
"#;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn can_import(python: &Path) -> Result<(), String> {
    let out = Command::new(python)
        .args([
            "-c",
            "import standardwebhooks; print(standardwebhooks.__version__)",
        ])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} cannot import standardwebhooks: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The Python with the pinned reference library: `ACTIONGATE_TEST_PYTHON`
/// (tests/run sets it), else a venv at target/py made here for local runs.
/// Never skips: without the library the tests fail, saying why.
fn reference_python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        if let Some(python) = std::env::var_os("ACTIONGATE_TEST_PYTHON") {
            let python = PathBuf::from(python);
            if let Err(e) = can_import(&python) {
                panic!(
                    "ACTIONGATE_TEST_PYTHON: {e}\n\
                     install tests/python/requirements.txt into it, or run tests/run"
                );
            }
            return python;
        }
        let root = workspace_root();
        let venv = root.join("target/py");
        let python = venv.join("bin/python");
        let requirements = root.join("tests/python/requirements.txt");
        let setup = (|| {
            if !python.exists() {
                run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
            }
            run(Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "-r",
                ])
                .arg(&requirements))?;
            can_import(&python)
        })();
        if let Err(e) = setup {
            panic!(
                "the reference standardwebhooks library is required and could not be set up \
                 (ACTIONGATE_TEST_PYTHON is unset, so a venv at {} was tried): {e}",
                venv.display()
            );
        }
        python
    })
}

/// Runs the reference verifier on a delivery; Ok when it verifies, Err with
/// its message when it rejects the signature. Panics on a broken harness.
fn python_verify(secret: &str, delivery: &Received, body: &[u8]) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let headers: serde_json::Map<String, serde_json::Value> =
        ["webhook-id", "webhook-timestamp", "webhook-signature"]
            .into_iter()
            .map(|name| (name.to_string(), header(delivery, name).into()))
            .collect();
    let headers_path = dir.path().join("headers.json");
    let body_path = dir.path().join("body");
    std::fs::write(&headers_path, serde_json::to_vec(&headers).unwrap()).unwrap();
    std::fs::write(&body_path, body).unwrap();
    let out = Command::new(reference_python())
        .args(["-c", VERIFY, secret])
        .arg(&headers_path)
        .arg(&body_path)
        .output()
        .expect("running the reference verifier");
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    match out.status.code() {
        Some(0) => Ok(()),
        Some(REJECTED) => Err(stdout),
        _ => panic!(
            "reference verifier broke ({}): {stdout} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

// ---- tests ------------------------------------------------------------------

#[tokio::test]
async fn retries_503_then_delivers_what_the_reference_library_verifies() {
    let (receiver, url) = Receiver::start(&[
        (StatusCode::SERVICE_UNAVAILABLE, None),
        (StatusCode::SERVICE_UNAVAILABLE, None),
    ])
    .await;
    let hook = webhook(&url, 5);
    let n = notification("ntf_01retry");

    let delivered = hook.notify(&n).await.expect("third attempt succeeds");
    assert_eq!(delivered, Delivered { attempts: 3 });

    let got = receiver.received();
    assert_eq!(got.len(), 3, "two 503s, then one success");
    for r in &got {
        assert_eq!(
            header(r, "webhook-id"),
            "ntf_01retry",
            "same id on every retry"
        );
        assert_eq!(header(r, "content-type"), "application/json");
        assert_eq!(r.body, got[0].body, "same body on every retry");
    }
    // Exponential: the second wait is about twice the first (20 ms, 40 ms).
    assert!(got[1].at - got[0].at >= Duration::from_millis(20));
    assert!(got[2].at - got[1].at >= Duration::from_millis(40));

    let last = &got[2];
    let body: serde_json::Value = serde_json::from_slice(&last.body).unwrap();
    assert_eq!(body["type"], "approval.pending");
    assert_eq!(body["data"]["id"], "ntf_01retry");
    assert_eq!(body["data"]["action"]["params"]["rows"], 1000);

    python_verify(SECRET, last, &last.body).expect("reference library verifies the delivery");
    let wrong = python_verify(OTHER_SECRET, last, &last.body)
        .expect_err("a wrong secret must fail verification");
    assert!(wrong.contains("No matching signature"), "{wrong}");
    let mut tampered = last.body.to_vec();
    let at = tampered.iter().position(|&b| b == b'1').unwrap();
    tampered[at] = b'9';
    python_verify(SECRET, last, &tampered).expect_err("a changed body must fail verification");
}

#[tokio::test]
async fn client_error_is_not_retried() {
    let (receiver, url) = Receiver::start(&[(StatusCode::BAD_REQUEST, None)]).await;
    let err = webhook(&url, 5)
        .notify(&notification("ntf_02bad"))
        .await
        .expect_err("400 fails");
    assert!(
        matches!(
            err,
            NotifyError::Rejected {
                status: 400,
                attempts: 1,
                ..
            }
        ),
        "{err}"
    );
    // Longer than every backoff would have taken.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 1);
    let text = err.to_string();
    assert!(!text.contains("secret-token-path"), "URL leaked: {text}");
}

#[tokio::test]
async fn gives_up_after_max_attempts() {
    let (receiver, url) = Receiver::start(&[(StatusCode::INTERNAL_SERVER_ERROR, None); 10]).await;
    let err = webhook(&url, 3)
        .notify(&notification("ntf_03down"))
        .await
        .expect_err("always 500");
    match &err {
        NotifyError::GaveUp { attempts, last, .. } => {
            assert_eq!(*attempts, 3);
            assert_eq!(last, "HTTP 500");
        }
        other => panic!("expected GaveUp, got {other}"),
    }
    assert_eq!(receiver.received().len(), 3);
}

#[tokio::test]
async fn honours_retry_after_on_429() {
    let (receiver, url) = Receiver::start(&[(StatusCode::TOO_MANY_REQUESTS, Some("1"))]).await;
    let delivered = webhook(&url, 3)
        .notify(&notification("ntf_04slow"))
        .await
        .unwrap();
    assert_eq!(delivered.attempts, 2);
    let got = receiver.received();
    assert!(
        got[1].at - got[0].at >= Duration::from_secs(1),
        "waited {:?}, Retry-After said 1 s",
        got[1].at - got[0].at
    );
}

#[tokio::test]
async fn network_errors_are_retried_and_hide_the_url() {
    // A port that was free a moment ago: connections are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/hooks/secret-token-path");
    let err = webhook(&url, 2)
        .notify(&notification("ntf_05gone"))
        .await
        .expect_err("nothing listens");
    match &err {
        NotifyError::GaveUp { attempts, last, .. } => {
            assert_eq!(*attempts, 2);
            assert!(!last.contains("secret-token-path"), "URL leaked: {last}");
        }
        other => panic!("expected GaveUp, got {other}"),
    }
}
