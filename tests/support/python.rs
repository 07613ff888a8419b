//! Python policy plugins for the tests, built by plugins/python/build with
//! the pinned componentize-py, once per content of their sources (plugin,
//! SDK, contract, pin): a build takes seconds and is not byte-reproducible,
//! so tests share the cached component instead of each building their own.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use actiongate::sandbox::sha256_hex;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Builds (or takes from the cache) the plugin in `dir`, relative to the
/// repository root, e.g. `plugins/examples/db-export-py`; returns the path
/// of the component.
pub fn build(dir: &str) -> PathBuf {
    // The components this process has built or found, and compiled.
    static READY: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    let mut ready = READY.lock().unwrap_or_else(|e| e.into_inner());
    let root = root();
    let mut sources = Vec::new();
    for source in [
        root.join(dir).join("plugin.py"),
        root.join("plugins/python/actiongate_policy/__init__.py"),
        root.join("plugins/python/actiongate_policy/_wit.py"),
        root.join("plugins/python/actiongate_policy/_lazy_random.py"),
        root.join("plugins/python/requirements.txt"),
        root.join("plugins/python/build"),
        root.join("wit/policy@0.1.0/policy.wit"),
    ] {
        let text =
            std::fs::read(&source).unwrap_or_else(|e| panic!("reading {}: {e}", source.display()));
        sources.extend_from_slice(source.to_string_lossy().as_bytes());
        sources.extend_from_slice(&(text.len() as u64).to_le_bytes());
        sources.extend_from_slice(&text);
    }
    let key = &sha256_hex(&sources)[..16];
    let name = Path::new(dir).file_name().unwrap().to_string_lossy();
    let out = Path::new(crate::PLUGIN_DIR)
        .join("../../../python-plugins")
        .join(format!("{name}-{key}.wasm"));
    if ready.contains(&out) {
        return out;
    }
    if !out.exists() {
        build_into(&root, dir, &out);
    }
    // Compiling 18 MB of CPython takes minutes in a debug build: do it once,
    // here under the lock, into the shared cache, instead of in every test
    // that loads it at the same time.
    crate::sandbox(actiongate::sandbox::Limits::default())
        .load(&std::fs::read(&out).unwrap(), None)
        .expect("the built Python plugin loads");
    ready.push(out.clone());
    out
}

fn build_into(root: &Path, dir: &str, out: &Path) {
    let python = std::env::var("ACTIONGATE_TEST_PYTHON").expect(
        "ACTIONGATE_TEST_PYTHON is not set: run the suite with tests/run, which installs tests/python/requirements.txt (componentize-py among them)",
    );
    // …/venv/bin/python -> …/venv
    let venv = Path::new(&python).parent().unwrap().parent().unwrap();
    let output = Command::new(root.join("plugins/python/build"))
        .arg(root.join(dir))
        .arg(out)
        .env("ACTIONGATE_PY_VENV", venv)
        .output()
        .expect("running plugins/python/build");
    assert!(
        output.status.success() && out.exists(),
        "plugins/python/build {dir} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The bytes of the built plugin in `dir` (see `build`).
pub fn component(dir: &str) -> Vec<u8> {
    std::fs::read(build(dir)).unwrap()
}
