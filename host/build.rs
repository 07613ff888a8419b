//! Builds every policy plugin in `plugins/` (examples and hostile test
//! fixtures) as WebAssembly components, the way wasmtime's test-programs
//! crate builds its guests, so that `cargo build` needs no extra step.
//!
//! The example components are embedded in the binary (`serve` binds them
//! with no setup); dependents' build scripts learn the component folder as
//! `DEP_ACTIONGATE_PLUGINS_DIR`.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "build/wasm_target.rs"]
mod wasm_target;

const EXAMPLES: &[&str] = &[
    "db-export",
    "iam-change",
    "prod-ops",
    "baseline",
    "mcp-tools",
];

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap();
    let plugins = root.join("plugins");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());

    for watched in [
        "Cargo.toml",
        "Cargo.lock",
        ".cargo",
        "sdk",
        "examples",
        "fixtures",
        "hostile",
    ] {
        println!(
            "cargo::rerun-if-changed={}",
            plugins.join(watched).display()
        );
    }
    println!("cargo::rerun-if-changed={}", root.join("wit").display());
    // sqlx::migrate! embeds the SQL at compile time.
    println!(
        "cargo::rerun-if-changed={}",
        manifest.join("migrations").display()
    );

    println!("cargo::rerun-if-changed=build/wasm_target.rs");
    ensure_wasm_target();

    // One shared folder for all host profiles, so debug, release and clippy
    // builds of the host do not each rebuild the guests.
    let target_dir = target_root(&out).join("plugins");
    let mut cargo = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .current_dir(&plugins)
        .args([
            "build",
            "--release",
            "--workspace",
            "--target",
            "wasm32-wasip2",
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    // The outer build's flags and wrappers are for the host, not the guests;
    // the guests take theirs from plugins/.cargo/config.toml.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
    ] {
        cargo.env_remove(var);
    }
    for (var, _) in env::vars() {
        if var.starts_with("CARGO_PROFILE_") || var.starts_with("CARGO_CFG_") {
            cargo.env_remove(var);
        }
    }
    let status = cargo.status().expect("failed to run cargo for plugins/");
    assert!(
        status.success(),
        "building plugins/ for wasm32-wasip2 failed (if the error above is \"can't find crate for `std`\", run `rustup target add wasm32-wasip2`: rustup adds rust-toolchain.toml's targets only when it installs the toolchain)"
    );

    let wasm_dir = target_dir.join("wasm32-wasip2").join("release");
    println!("cargo::metadata=DIR={}", wasm_dir.display());

    let mut code = String::from("/// The example policy plugins, built from plugins/examples.\npub const EXAMPLES: &[Example] = &[\n");
    for name in EXAMPLES {
        let wasm = wasm_dir.join(format!("{}.wasm", name.replace('-', "_")));
        let cases = plugins.join("examples").join(name).join("cases.toml");
        assert!(wasm.exists(), "missing {}", wasm.display());
        writeln!(
            code,
            "    Example {{ name: {name:?}, wasm: include_bytes!({:?}), cases: include_str!({:?}) }},",
            wasm.display(),
            cases.display()
        )
        .unwrap();
    }
    code.push_str("];\n");
    fs::write(out.join("examples.rs"), code).unwrap();
}

/// A new user's first `cargo run` works on a toolchain installed without
/// wasm32-wasip2: the build adds the target (as `tests/run` used to).
fn ensure_wasm_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let Some(sysroot) = sysroot else {
        // Let the plugin build itself say what is wrong.
        return;
    };
    if wasm_target::has_target(&sysroot) {
        return;
    }
    let runs = |r: &PathBuf| Command::new(r).arg("--version").output().is_ok();
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let rustup = std::iter::once(PathBuf::from("rustup"))
        .chain(cargo_home.map(|h| h.join("bin").join("rustup")))
        .find(runs);
    let toolchain = env::var("RUSTUP_TOOLCHAIN").ok();
    match wasm_target::plan(&sysroot, toolchain.as_deref(), rustup.is_some()) {
        wasm_target::Step::Ready => {}
        wasm_target::Step::Stop(why) => panic!("{why}"),
        wasm_target::Step::Rustup(args) => {
            let rustup = rustup.expect("plan asks for rustup only when found");
            println!(
                "cargo::warning=installing the {} target for the plugins: {} {}",
                wasm_target::TARGET,
                rustup.display(),
                args.join(" ")
            );
            let status = Command::new(&rustup)
                .args(&args)
                .status()
                .expect("failed to run rustup");
            assert!(
                status.success() && wasm_target::has_target(&sysroot),
                "`rustup {}` did not install the {} standard library; install it yourself and build again",
                args.join(" "),
                wasm_target::TARGET
            );
        }
    }
}

/// `OUT_DIR` is `<target>/<profile>/build/<pkg>-<hash>/out`, possibly with a
/// target triple between; the target root is the parent of the folder
/// holding `build`.
fn target_root(out: &Path) -> PathBuf {
    out.ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "build"))
        .and_then(|build| build.parent()?.parent())
        .expect("OUT_DIR is not inside a cargo target folder")
        .to_path_buf()
}
