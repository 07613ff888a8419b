//! Node programs for the inbox tests: a real OIDC provider (npm
//! `oidc-provider`) and a real browser (the system Chromium through
//! `playwright-core`), both pinned in tests/package.json and installed by
//! tests/run with `npm ci`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("node")
        .join(name)
}

fn node() -> Command {
    let modules = Path::new(env!("CARGO_MANIFEST_DIR")).join("node_modules");
    assert!(
        modules.join("oidc-provider").exists() && modules.join("playwright-core").exists(),
        "tests/node_modules is missing: run the suite with tests/run, which runs `npm ci` in tests/"
    );
    let mut command = Command::new("node");
    command.kill_on_drop(true);
    command
}

/// A running OIDC provider with one client, `actiongate` / `s3cret`.
pub struct OidcProvider {
    pub issuer: String,
    _child: Child,
    _config: tempfile::NamedTempFile,
}

pub const CLIENT_ID: &str = "actiongate";
pub const CLIENT_SECRET: &str = "s3cret";

impl OidcProvider {
    /// Starts the provider for `redirect_uri` with `accounts`
    /// (login -> claims: email, email_verified, name, groups).
    pub async fn start(redirect_uri: &str, accounts: Value) -> OidcProvider {
        let config = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            config.path(),
            serde_json::json!({
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uri": redirect_uri,
                "accounts": accounts,
            })
            .to_string(),
        )
        .unwrap();
        let mut child = node()
            .arg(script("oidc_provider.mjs"))
            .arg(config.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
            .await
            .expect("the provider starts within 20 s")
            .unwrap()
            .expect("the provider prints its issuer");
        let issuer = serde_json::from_str::<Value>(&first).unwrap()["issuer"]
            .as_str()
            .unwrap()
            .to_string();
        // Keep the pipe open: the provider dies of EPIPE on a later write.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        OidcProvider {
            issuer,
            _child: child,
            _config: config,
        }
    }

    /// The next ID token the provider issues has `change` merged into its
    /// claims, re-signed with the provider's own key.
    pub async fn tamper_next_id_token(&self, change: Value) {
        let status = reqwest::Client::new()
            .post(format!("{}/__test/tamper", self.issuer))
            .body(change.to_string())
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 204);
    }
}

/// What a browser run reported: outputs by their `as` name.
#[derive(Debug, Default)]
pub struct Outputs {
    pub values: BTreeMap<String, Value>,
    pub console_errors: Vec<String>,
}

impl Outputs {
    /// The text a `text` step read.
    pub fn text(&self, name: &str) -> &str {
        self.values
            .get(name)
            .and_then(|v| v["value"].as_str())
            .unwrap_or_else(|| panic!("no text output {name:?} in {:#?}", self.values))
    }

    /// The HTTP status of the page a step named `name` loaded.
    pub fn status(&self, name: &str) -> u16 {
        self.values
            .get(name)
            .and_then(|v| v["status"].as_u64())
            .unwrap_or_else(|| panic!("no page output {name:?} in {:#?}", self.values))
            as u16
    }

    /// The URL the browser was at after step `name`.
    pub fn url(&self, name: &str) -> &str {
        self.values
            .get(name)
            .and_then(|v| v["url"].as_str().or(v["value"].as_str()))
            .unwrap_or_else(|| panic!("no url output {name:?} in {:#?}", self.values))
    }
}

/// One browser (one person) running a list of steps (see tests/node/browser.mjs).
pub struct Browser {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    outputs: Outputs,
    _steps: tempfile::NamedTempFile,
}

impl Browser {
    pub fn start(steps: &[Value]) -> Browser {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), Value::Array(steps.to_vec()).to_string()).unwrap();
        let mut child = node()
            .arg(script("browser.mjs"))
            .arg(file.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs");
        Browser {
            stdin: child.stdin.take().unwrap(),
            lines: BufReader::new(child.stdout.take().unwrap()).lines(),
            child,
            outputs: Outputs::default(),
            _steps: file,
        }
    }

    /// Reads outputs until a pause (its label) or the end (`None`).
    async fn read(&mut self) -> Option<String> {
        loop {
            let line =
                tokio::time::timeout(std::time::Duration::from_secs(90), self.lines.next_line())
                    .await
                    .expect("the browser answers within 90 s")
                    .unwrap()?;
            let value: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("browser output {line:?}: {e}"));
            if let Some(label) = value["paused"].as_str() {
                return Some(label.to_string());
            }
            if value["done"] == Value::Bool(true) {
                if let Some(failed) = value["failed"].as_str() {
                    panic!(
                        "the browser run failed: {failed}\noutputs so far: {:#?}",
                        self.outputs.values
                    );
                }
                self.outputs.console_errors = value["console_errors"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|e| e.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                return None;
            }
            if let Some(name) = value["as"].as_str() {
                self.outputs.values.insert(name.to_string(), value.clone());
            }
        }
    }

    /// Runs up to the pause `label`.
    pub async fn until(&mut self, label: &str) -> &Outputs {
        assert_eq!(self.read().await.as_deref(), Some(label), "browser paused");
        &self.outputs
    }

    /// Resumes a paused run with `vars` for `${NAME}` in later steps.
    pub async fn resume(&mut self, vars: Value) {
        self.stdin
            .write_all(format!("{vars}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// Runs to the end.
    pub async fn finish(mut self) -> Outputs {
        assert_eq!(self.read().await, None, "no pause left");
        let status = self.child.wait().await.unwrap();
        assert!(status.success(), "browser exited with {status}");
        self.outputs
    }
}

/// Runs `steps` in a fresh browser to the end.
pub async fn browse(steps: &[Value]) -> Outputs {
    Browser::start(steps).finish().await
}

/// Steps that sign `login` in at the provider's login form, starting from
/// `url` (an inbox page), and end back on that page.
pub fn sign_in(url: &str, login: &str) -> Vec<Value> {
    vec![
        serde_json::json!({"goto": url}),
        serde_json::json!({"fill": "input[name=login]", "value": login}),
        serde_json::json!({"fill": "input[name=password]", "value": "any password"}),
        serde_json::json!({"click": "button[type=submit]", "as": "signed_in"}),
        serde_json::json!({"text": "body", "as": "after_sign_in"}),
    ]
}

/// The service with `[inbox]` signed in through a fresh provider that knows
/// `accounts`, on its own database (`database` names it), served at
/// `http://HOST:PORT` (`localhost` where WebAuthn needs a domain).
/// `inbox_extra` is added to `[inbox]`, `oidc_extra` to `[inbox.oidc]`;
/// `more` may set other sections from the public URL.
pub async fn inbox_service(
    host: &str,
    accounts: Value,
    database: &str,
    inbox_extra: &str,
    oidc_extra: &str,
    more: impl FnOnce(&mut actiongate::config::Config, &str),
) -> (crate::server::TestServer, OidcProvider) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let public_url = format!("http://{host}:{port}");
    let provider = OidcProvider::start(&format!("{public_url}/inbox/callback"), accounts).await;
    let dir = tempfile::tempdir().unwrap();
    let database = std::sync::Arc::new(crate::pg::TempDatabase::create(database).await);
    let mut config = crate::server::config(&database.url, dir.path());
    config.inbox = Some(
        toml::from_str(&format!(
            "public_url = {public_url:?}\n{inbox_extra}\n[oidc]\nissuer = {:?}\nclient_id = {CLIENT_ID:?}\nclient_secret = {CLIENT_SECRET:?}\n{oidc_extra}",
            provider.issuer
        ))
        .unwrap(),
    );
    more(&mut config, &public_url);
    let server =
        crate::server::TestServer::start_config_on(listener, config, dir, Some(database)).await;
    (server, provider)
}

/// Where the browser tests leave their screenshots (target/inbox-screenshots).
pub fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/inbox-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// No script error and no CSP violation (a failed load, such as the
/// favicon's 404 or a refused form's status, is not one).
pub fn no_script_errors(out: &Outputs) {
    let errors: Vec<&String> = out
        .console_errors
        .iter()
        .filter(|e| !e.starts_with("Failed to load resource"))
        .collect();
    assert!(
        errors.is_empty(),
        "the pages run under their CSP without errors: {errors:?}"
    );
}
