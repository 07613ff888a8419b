//! Shared pieces for the integration tests: built plugin components, a
//! sandbox with a shared compile cache, and action builders.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use actiongate::action::{Action, Principal};
use actiongate::sandbox::{Limits, Sandbox, SandboxConfig};

include!(concat!(env!("OUT_DIR"), "/hostile.rs"));

/// A sandbox with `limits`, sharing one precompiled-plugin cache across tests
/// so each component is compiled once per build.
pub fn sandbox(limits: Limits) -> Sandbox {
    Sandbox::new(SandboxConfig {
        limits,
        cache_dir: Some(cache_dir()),
        ..SandboxConfig::default()
    })
    .expect("sandbox starts")
}

pub fn cache_dir() -> PathBuf {
    Path::new(PLUGIN_DIR).join("../../cwasm-cache")
}

/// Where a built component lies in the plugin folder, e.g. `hostile_panic`.
pub fn component_path(file_stem: &str) -> PathBuf {
    Path::new(PLUGIN_DIR).join(format!("{file_stem}.wasm"))
}

/// The bytes of a built component in the plugin folder, e.g. `hostile_panic`.
pub fn component(file_stem: &str) -> Vec<u8> {
    let path = component_path(file_stem);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Binds `kind` in `config` to the built component `file_stem`, by its file
/// in the plugin folder and its pinned sha256.
pub fn bind_component(config: &mut actiongate::config::Config, kind: &str, file_stem: &str) {
    config.bindings.push(actiongate::config::BindingConfig {
        kind: kind.into(),
        plugin: None,
        path: Some(component_path(file_stem)),
        sha256: Some(actiongate::sandbox::sha256_hex(&component(file_stem))),
        shadow: None,
    });
}

/// `probe`'s value once `settled` holds of it, or its last value after
/// `within` (for the caller's assertion to name). Probes every 100 ms.
pub async fn settle<T, F, Fut>(
    within: std::time::Duration,
    mut probe: F,
    settled: impl Fn(&T) -> bool,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let deadline = std::time::Instant::now() + within;
    loop {
        let value = probe().await;
        if settled(&value) || std::time::Instant::now() > deadline {
            return value;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// An action of `kind` with `params`, as the API would build it.
pub fn action(id: &str, kind: &str, params: serde_json::Value) -> Action {
    Action {
        id: id.into(),
        kind: kind.into(),
        agent: Principal {
            id: "test-agent".into(),
            attributes: BTreeMap::from([("owner".to_string(), "owner@example.com".to_string())]),
        },
        on_behalf_of: None,
        resource: "test://resource".into(),
        params,
        justification: None,
        context: BTreeMap::new(),
        requested_at: "2026-11-25T10:00:00Z".parse().unwrap(),
    }
}

pub mod browser;
pub mod caller;
pub mod fake_slack;
pub mod fake_teams;
pub mod pg;
pub mod process;
pub mod python;
pub mod server;

/// The Python the tests drive official client libraries with: the venv
/// tests/run builds from tests/python/requirements.txt.
pub fn python() -> std::process::Command {
    let python = std::env::var("ACTIONGATE_TEST_PYTHON").expect(
        "ACTIONGATE_TEST_PYTHON is not set: run the suite with tests/run, which installs tests/python/requirements.txt",
    );
    std::process::Command::new(python)
}

/// Runs `tests/python/SCRIPT args…`; returns stdout, or panics with stderr.
pub fn run_python(script: &str, args: &[&str]) -> Result<String, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(script);
    let output = python()
        .arg(&path)
        .args(args)
        .output()
        .expect("running python");
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}
