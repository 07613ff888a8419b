//! Lists the hostile plugin fixtures that host/build.rs built, as a macro
//! that calls back once per fixture. tests/sandbox.rs uses it to make a
//! fixture without a test a compile error (wasmtime's `assert_test_exists`).

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(
        env::var("DEP_ACTIONGATE_PLUGINS_DIR").expect("actiongate's build script sets this"),
    );
    let mut fixtures: Vec<(String, PathBuf)> = fs::read_dir(&dir)
        .expect("plugin folder")
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let stem = path
                .file_stem()?
                .to_str()?
                .strip_prefix("hostile_")?
                .to_string();
            (path.extension()? == "wasm").then_some((stem, path))
        })
        .collect();
    fixtures.sort();
    assert!(
        !fixtures.is_empty(),
        "no hostile fixtures in {}",
        dir.display()
    );

    let mut code = String::from(
        "/// Calls `$mac!(fixture_name, \"path.wasm\")` for every hostile fixture.\n#[macro_export]
macro_rules! foreach_hostile {\n    ($mac:ident) => {\n",
    );
    for (name, path) in &fixtures {
        writeln!(code, "        $mac!({name}, {:?});", path.display()).unwrap();
    }
    code.push_str("    };\n}\n");
    code.push_str(&format!(
        "/// Where the example components are.\npub const PLUGIN_DIR: &str = {:?};\n",
        dir.display()
    ));
    fs::write(
        PathBuf::from(env::var("OUT_DIR").unwrap()).join("hostile.rs"),
        code,
    )
    .unwrap();
    println!("cargo::rerun-if-env-changed=DEP_ACTIONGATE_PLUGINS_DIR");
    println!("cargo::rerun-if-changed={}", dir.display());
}
