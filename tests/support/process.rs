//! `actiongate serve` as a process of its own (a binary the caller names,
//! typically a release build) on a fresh database, for load tests that must
//! measure the service as it ships rather than the debug test process.
//! Stops the process on drop.

use std::io::BufRead;
use std::path::Path;
use std::sync::{Arc, Mutex};

use actiongate::keys::{hash_api_key, new_api_key};
use actiongate::store::{KeyRole, Store};
use tempfile::TempDir;

use crate::pg::TempDatabase;

/// The URL a started `actiongate serve` prints as its first line on
/// stdout (which the child must have piped).
pub fn listening_url(child: &mut std::process::Child) -> String {
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    line.trim()
        .strip_prefix("actiongate listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string()
}

pub struct ServedBinary {
    child: std::process::Child,
    /// Every line it wrote to stderr (its log), across restarts.
    log: Log,
    /// How it was started, to start it again (`kill_and_restart`).
    launch: Launch,
    pub url: String,
    /// The service's own database, for setup (agents, keys) and checks.
    pub store: Store,
    pub database_url: String,
    _database: Option<TempDatabase>,
    dir: TempDir,
}

/// The store a started binary keeps its state in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryStore {
    /// A fresh database on the test cluster.
    Postgres,
    /// The embedded default: a file in the binary's temporary directory.
    Sqlite,
}

impl ServedBinary {
    /// Starts `bin serve` with the example config (keys and caches in a
    /// temporary directory) followed by `extra` TOML, and waits for its
    /// address. `RUST_LOG` is `log` (its log goes to this test's stderr).
    pub async fn start(bin: &Path, extra: &str, log: &str) -> ServedBinary {
        ServedBinary::start_on(BinaryStore::Postgres, bin, extra, log).await
    }

    /// `start`, on the store named.
    pub async fn start_on(kind: BinaryStore, bin: &Path, extra: &str, log: &str) -> ServedBinary {
        ServedBinary::start_edited(kind, bin, &[], extra, log).await
    }

    /// `start_on`, with each `(from, to)` of `edits` replaced in the
    /// example config first (for options of its own sections).
    pub async fn start_edited(
        kind: BinaryStore,
        bin: &Path,
        edits: &[(&str, &str)],
        extra: &str,
        log: &str,
    ) -> ServedBinary {
        let dir = tempfile::tempdir().unwrap();
        let (database, database_url) = match kind {
            BinaryStore::Postgres => {
                let database = TempDatabase::create("ag_bin").await;
                let url = database.url.clone();
                (Some(database), url)
            }
            BinaryStore::Sqlite => (
                None,
                format!("sqlite://{}/actiongate.db", dir.path().display()),
            ),
        };
        let mut text = actiongate::config::EXAMPLE_CONFIG
            .replace("demo = true", "demo = false")
            .replace("./data/", &format!("{}/", dir.path().display()));
        for (from, to) in edits {
            assert!(text.contains(from), "the example config has no {from:?}");
            text = text.replace(from, to);
        }
        let text = format!("database_url = \"{database_url}\"\n{text}\n{extra}\n");
        let config = dir.path().join("actiongate.toml");
        std::fs::write(&config, text).unwrap();
        let launch = Launch {
            bin: bin.to_path_buf(),
            config,
            log: log.to_string(),
        };
        let log = Log::default();
        let (child, url) = launch.spawn(dir.path(), &log);
        let store = Store::connect(&database_url).await.unwrap();
        ServedBinary {
            child,
            log,
            launch,
            url,
            store,
            database_url,
            _database: database,
            dir,
        }
    }

    /// Creates an agent owned by `owner` and returns its API key.
    pub async fn agent(&self, name: &str, owner: &str) -> String {
        assert!(self
            .store
            .create_agent(name, owner, &Default::default())
            .await
            .unwrap());
        let key = new_api_key().unwrap();
        self.store
            .add_api_key(&hash_api_key(&key), KeyRole::Agent, name)
            .await
            .unwrap();
        key
    }
}

/// A binary, its config file and its log filter.
struct Launch {
    bin: std::path::PathBuf,
    config: std::path::PathBuf,
    log: String,
}

type Log = Arc<Mutex<Vec<String>>>;

impl Launch {
    /// Starts `bin --config config serve` in `dir`; returns it and its URL.
    /// Its stderr goes on to this test's, line by line, and into `log`.
    fn spawn(&self, dir: &Path, log: &Log) -> (std::process::Child, String) {
        let mut child = std::process::Command::new(&self.bin)
            .arg("--config")
            .arg(&self.config)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .current_dir(dir)
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", &self.log)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", self.bin.display()));
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let log = log.clone();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                eprintln!("{line}");
                log.lock().unwrap().push(line);
            }
        });
        let url = listening_url(&mut child);
        (child, url)
    }
}

impl ServedBinary {
    /// Kills the process (SIGKILL: no drain, nothing flushed), then starts
    /// it again on the same config and database; `url` is its new address.
    pub fn kill_and_restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let (child, url) = self.launch.spawn(self.dir.path(), &self.log);
        self.child = child;
        self.url = url;
    }

    /// Asks the process to stop (SIGTERM), as an operator's stop does.
    pub fn terminate(&self) {
        // SAFETY: kill(2) with our own child's pid and a plain signal.
        unsafe { libc_kill(self.child.id() as i32, 15) };
    }

    /// The lines of its log so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// How it exited, if it has.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

impl Drop for ServedBinary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
