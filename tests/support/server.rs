//! A real `actiongate` service on 127.0.0.1:0 over a fresh Postgres
//! database of its own, so tests run in parallel without sharing state.

use std::net::SocketAddr;
use std::path::PathBuf;

use actiongate::api::App;
use actiongate::config::Config;
use actiongate::keys::{hash_api_key, new_api_key};
use actiongate::store::KeyRole;
use std::sync::Arc;

use tempfile::TempDir;

use crate::pg::TempDatabase;

/// Why the service refuses to start on `config` (the whole error chain),
/// panicking with `expect` if it starts.
pub async fn start_refused(config: &Config, expect: &str) -> String {
    let e = actiongate::service::build(config)
        .await
        .err()
        .expect(expect);
    format!("{e:#}")
}

pub struct TestServer {
    pub url: String,
    pub addr: SocketAddr,
    pub app: App,
    pub database_url: String,
    pub config: Config,
    /// Keys and the plugin cache live here for the life of the test.
    pub dir: TempDir,
    /// Shared by replicas; dropped (with its database) after the last one.
    pub database: Option<Arc<TempDatabase>>,
    server: tokio::task::JoinHandle<()>,
}

/// The example config (bindings, limits) pointed at `database_url`, with
/// keys in `dir` and the shared compile cache.
pub fn config(database_url: &str, dir: &std::path::Path) -> Config {
    let mut config: Config = toml::from_str(actiongate::config::EXAMPLE_CONFIG).unwrap();
    config.database_url = Some(database_url.into());
    config.demo = false;
    config.grants.key_path = dir.join("grant.key");
    config.evidence.key_path = dir.join("log.key");
    config.evidence.checkpoint_every_seconds = 0.2;
    config.sandbox.cache_dir = Some(crate::cache_dir());
    config
}

impl TestServer {
    /// Starts the service on a fresh database with the example config.
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(customize: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let database = Arc::new(TempDatabase::create("ag_api").await);
        let mut config = config(&database.url, dir.path());
        customize(&mut config);
        Self::start_config(config, dir, Some(database)).await
    }

    /// Another replica on the same database, with the same config.
    pub async fn replica(&self) -> TestServer {
        Self::start_config(
            self.config.clone(),
            tempfile::tempdir().unwrap(),
            self.database.clone(),
        )
        .await
    }

    pub async fn start_config(
        config: Config,
        dir: TempDir,
        database: Option<Arc<TempDatabase>>,
    ) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_config_on(listener, config, dir, database).await
    }

    /// Serves on `listener`, bound by the caller, for a config that must
    /// know its own address (the inbox's public URL).
    pub async fn start_config_on(
        listener: tokio::net::TcpListener,
        config: Config,
        dir: TempDir,
        database: Option<Arc<TempDatabase>>,
    ) -> TestServer {
        let app = actiongate::service::build(&config)
            .await
            .expect("service starts");
        let addr = listener.local_addr().unwrap();
        let router = actiongate::api::router(app.clone());
        // As `serve` does: no Nagle delay on streamed answers.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        TestServer {
            url: format!("http://{addr}"),
            addr,
            app,
            database_url: config.database_url.clone().unwrap_or_default(),
            config,
            dir,
            database,
            server,
        }
    }

    /// The value of the integral metric `name` (a counter, a count) on
    /// `/metrics`; panics, showing them all, when there is none.
    pub async fn metric(&self, name: &str) -> u64 {
        let metrics = reqwest::get(format!("{}/metrics", self.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name} in:\n{metrics}"))
            .trim()
            .parse()
            .unwrap()
    }

    /// Creates an agent owned by `owner` and returns its API key.
    pub async fn agent(&self, name: &str, owner: &str) -> String {
        let store = &self.app.gate.store();
        assert!(store
            .create_agent(name, owner, &Default::default())
            .await
            .unwrap());
        self.key(KeyRole::Agent, name).await
    }

    pub async fn key(&self, role: KeyRole, subject: &str) -> String {
        let key = new_api_key().unwrap();
        self.app
            .gate
            .store()
            .add_api_key(&hash_api_key(&key), role, subject)
            .await
            .unwrap();
        key
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}
