//! Whether the toolchain building the host can build the plugins, and what
//! to run when it cannot: rustup installs `rust-toolchain.toml`'s targets
//! only with the toolchain, so a toolchain installed before lacks
//! wasm32-wasip2. Shared by build.rs and the host's unit tests; it reads the
//! sysroot folder and never runs anything itself.

use std::path::Path;

pub const TARGET: &str = "wasm32-wasip2";

/// What the build does before building the plugins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The target's standard library is installed.
    Ready,
    /// Install it: run `rustup` with these arguments.
    Rustup(Vec<String>),
    /// It is missing and there is no rustup to add it: stop, saying how.
    Stop(String),
}

/// Decides from the host compiler's `sysroot`, the toolchain rustup runs
/// (`RUSTUP_TOOLCHAIN`, set by rustup's proxies), and whether a rustup was
/// found.
pub fn plan(sysroot: &Path, toolchain: Option<&str>, have_rustup: bool) -> Step {
    if has_target(sysroot) {
        return Step::Ready;
    }
    if !have_rustup {
        return Step::Stop(format!(
            "the Rust standard library for {TARGET} is not installed in {} and rustup was not found; install it for this toolchain (with rustup: `rustup target add {TARGET}`)",
            sysroot.display()
        ));
    }
    let mut args = vec!["target".to_string(), "add".to_string(), TARGET.to_string()];
    if let Some(toolchain) = toolchain.filter(|t| !t.trim().is_empty()) {
        args.extend(["--toolchain".to_string(), toolchain.trim().to_string()]);
    }
    Step::Rustup(args)
}

/// The target's `std` is in the sysroot: `lib/rustlib/<target>/lib/libstd-*.rlib`.
pub fn has_target(sysroot: &Path) -> bool {
    let lib = sysroot.join("lib").join("rustlib").join(TARGET).join("lib");
    std::fs::read_dir(lib).is_ok_and(|entries| {
        entries.filter_map(Result::ok).any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("libstd-") && name.ends_with(".rlib")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sysroot(with_std: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("lib/rustlib").join(TARGET).join("lib");
        std::fs::create_dir_all(&lib).unwrap();
        if with_std {
            std::fs::write(lib.join("libstd-0123abcd.rlib"), b"").unwrap();
        }
        dir
    }

    #[test]
    fn installed_target_needs_nothing() {
        let root = sysroot(true);
        assert_eq!(plan(root.path(), Some("1.95.0"), true), Step::Ready);
        assert_eq!(plan(root.path(), None, false), Step::Ready);
    }

    #[test]
    fn missing_target_is_added_to_the_toolchain_in_use() {
        // An empty target folder (a half-removed component) is missing too.
        for root in [sysroot(false), tempfile::tempdir().unwrap()] {
            assert_eq!(
                plan(root.path(), Some("1.95.0-x86_64-unknown-linux-gnu"), true),
                Step::Rustup(
                    [
                        "target",
                        "add",
                        "wasm32-wasip2",
                        "--toolchain",
                        "1.95.0-x86_64-unknown-linux-gnu"
                    ]
                    .map(String::from)
                    .to_vec()
                )
            );
            assert_eq!(
                plan(root.path(), None, true),
                Step::Rustup(
                    ["target", "add", "wasm32-wasip2"]
                        .map(String::from)
                        .to_vec()
                )
            );
        }
    }

    #[test]
    fn without_rustup_the_build_says_how() {
        let root = sysroot(false);
        match plan(root.path(), None, false) {
            Step::Stop(why) => assert!(why.contains("rustup target add wasm32-wasip2"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    /// The toolchain building this test has the target (the plugins it
    /// tests were built with it).
    #[test]
    fn this_toolchain_has_it() {
        let out = std::process::Command::new(std::env::var("RUSTC").unwrap_or("rustc".into()))
            .args(["--print", "sysroot"])
            .output()
            .unwrap();
        let root = String::from_utf8(out.stdout).unwrap();
        assert!(has_target(Path::new(root.trim())), "{root}");
    }
}
