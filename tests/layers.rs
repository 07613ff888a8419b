//! The host's modules depend one way: no import cycle between the top-level
//! modules of `host/src` (entry points → workflow → evaluate → sandbox;
//! workflow → evidence → store). This test reads every `crate::…` and
//! `super::…` path of the source, builds the graph of top-level modules and
//! fails naming any cycle and the files that make it. It reads source text
//! only; it never compiles or changes anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Edges between top-level modules, each with the files that make it.
type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// The host's source tree.
fn host_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../host/src")
}

#[test]
fn the_host_has_no_import_cycle() {
    let graph = module_graph(&host_src());
    // The graph is real: the modules the flow runs through are in it.
    for (from, to) in [("api", "gate"), ("gate", "evaluate"), ("evidence", "store")] {
        assert!(
            graph.get(from).is_some_and(|t| t.contains_key(to)),
            "{from} → {to} not found; is the parser blind? {graph:?}"
        );
    }
    let cycles = cycles(&graph);
    assert!(
        cycles.is_empty(),
        "import cycles between top-level modules of host/src:\n{}",
        cycles.join("\n")
    );
}

/// Every top-level module of `host/src` by layer, highest first. A module
/// may use modules of its own layer or lower, never higher; a new module
/// must be placed here before the test passes.
const LAYERS: &[(&str, &[&str])] = &[
    // Entry points: HTTP, chat, the MCP gateway, the inbox, the CLI, and
    // the assembly of the service from its config.
    (
        "entry",
        &["api", "chat", "cli", "mcp", "inbox", "service", "config"],
    ),
    // Below the entry points: the one problem+json mapping, and the
    // auditors' readers (used by the CLI).
    ("edge", &["problem", "audit"]),
    // Workflow: an action's way, reviews, bindings, plugin registration,
    // runs by the host, passkey step-up, shadows, case files.
    (
        "workflow",
        &[
            "gate",
            "approvals",
            "bindings",
            "registry",
            "execution",
            "stepup",
            "shadow",
            "cases",
        ],
    ),
    // The evidence log: typed payloads of what the workflow decided.
    ("evidence", &["evidence"]),
    // Evaluation and what announces it (types the evidence names).
    (
        "evaluate",
        &["evaluate", "route_check", "metrics", "notify"],
    ),
    // The sandbox, the store and the small services beside it.
    (
        "below",
        &["sandbox", "store", "waiters", "directory", "grant", "keys"],
    ),
    // Plain data and pure functions.
    ("data", &["action", "canonical", "ijson", "examples"]),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

#[test]
fn dependencies_run_down_the_layers() {
    let src = host_src();
    let mut files = Vec::new();
    collect(&src, &mut files);
    let tops: BTreeSet<String> = files.iter().filter_map(|f| top_module(&src, f)).collect();
    let unplaced: Vec<&String> = tops.iter().filter(|m| layer_of(m).is_none()).collect();
    assert!(
        unplaced.is_empty(),
        "modules of host/src in no layer of tests/layers.rs: {unplaced:?}"
    );
    let graph = module_graph(&src);
    let mut upward = Vec::new();
    for (from, tos) in &graph {
        for (to, files) in tos {
            let (f, t) = (layer_of(from).unwrap(), layer_of(to).unwrap());
            if t < f {
                upward.push(format!(
                    "{from} ({}) → {to} ({}): {files:?}",
                    LAYERS[f].0, LAYERS[t].0
                ));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "dependencies that run up the layers:\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_checker_names_a_cycle_in_a_tiny_tree() {
    let dir = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("lib.rs", "pub mod a;\npub mod b;\npub mod c;\n");
    write("a.rs", "use crate::b::Thing;\n");
    // A grouped import, a comment and a string that name `a` do not count.
    write(
        "b/mod.rs",
        "mod inner;\n// crate::a is only a comment\nconst S: &str = \"crate::a::X\";\nuse crate::{c::{One, Two}};\n",
    );
    write(
        "b/inner.rs",
        "use super::super::c;\nfn f() { let _ = '\"'; }\n",
    );
    write("c.rs", "fn g() -> crate::b::Thing { todo!() }\n");
    let graph = module_graph(dir.path());
    assert_eq!(
        graph
            .get("b")
            .map(|t| t.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["c".to_string()]),
        "{graph:?}"
    );
    let found = cycles(&graph);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("b → c → b"), "{}", found[0]);
    assert!(found[0].contains("b/mod.rs"), "{}", found[0]);
    assert!(found[0].contains("c.rs"), "{}", found[0]);

    // Break it: no cycle left.
    write("c.rs", "fn g() {}\n");
    assert!(cycles(&module_graph(dir.path())).is_empty());
}

/// Reads every `.rs` file under `src` (a crate root with `lib.rs`).
fn module_graph(src: &Path) -> Graph {
    let mut graph = Graph::new();
    let mut files = Vec::new();
    collect(src, &mut files);
    let tops: BTreeSet<String> = files.iter().filter_map(|f| top_module(src, f)).collect();
    for file in &files {
        let Some(from) = top_module(src, file) else {
            continue;
        };
        let rel = file.strip_prefix(src).unwrap();
        // The depth of this file's module below the crate: `a.rs` and
        // `a/mod.rs` are 1, `a/b.rs` is 2.
        let depth = rel.components().count() - usize::from(rel.ends_with("mod.rs"));
        let text = strip_comments_and_strings(&std::fs::read_to_string(file).unwrap());
        for to in referenced_tops(&text, depth) {
            if to != from && tops.contains(&to) {
                graph
                    .entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_default()
                    .insert(rel.display().to_string());
            }
        }
    }
    graph
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
}

/// `a.rs`, `a/mod.rs` and `a/…` belong to `a`; the crate roots to no module.
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_string())
}

/// The top-level modules a file's paths name: `crate::x…`, `crate::{x…, y…}`,
/// and `super::…` chains that climb to the crate root.
fn referenced_tops(text: &str, depth: usize) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let tokens = tokens(text);
    let mut i = 0;
    while i < tokens.len() {
        let climbs_to_root = if tokens[i] == "crate" && tokens.get(i + 1) == Some(&"::") {
            i += 2;
            true
        } else if tokens[i] == "super" {
            let mut supers = 0;
            while tokens.get(i) == Some(&"super") && tokens.get(i + 1) == Some(&"::") {
                supers += 1;
                i += 2;
            }
            supers >= depth && supers > 0
        } else {
            false
        };
        if !climbs_to_root {
            i += 1;
            continue;
        }
        if tokens.get(i) == Some(&"{") {
            // A group: the first segment of each member at depth one.
            let mut level = 0;
            let mut expect_member = true;
            while let Some(t) = tokens.get(i) {
                match *t {
                    "{" => {
                        level += 1;
                        expect_member = level == 1;
                    }
                    "}" => {
                        level -= 1;
                        if level == 0 {
                            break;
                        }
                    }
                    "," if level == 1 => expect_member = true,
                    ident if expect_member && level == 1 && is_ident(ident) => {
                        found.insert(ident.to_string());
                        expect_member = false;
                    }
                    _ => {}
                }
                i += 1;
            }
        } else if let Some(ident) = tokens.get(i).filter(|t| is_ident(t)) {
            found.insert(ident.to_string());
        }
        i += 1;
    }
    found
}

fn is_ident(t: &str) -> bool {
    t.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// Identifiers, `::` and single punctuation characters.
fn tokens(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_alphanumeric() || c == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            out.push(&text[start..i]);
        } else if c == b':' && bytes.get(i + 1) == Some(&b':') {
            out.push("::");
            i += 2;
        } else {
            if !c.is_ascii_whitespace() && c.is_ascii() {
                out.push(&text[i..i + 1]);
            }
            i += 1;
        }
    }
    out
}

/// The source with comments, string and char literals blanked, so that only
/// code names modules.
fn strip_comments_and_strings(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut level = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    level += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    level -= 1;
                    i += 2;
                    if level == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(b' ');
        } else if b[i] == b'r'
            && (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#'))
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
        {
            // A raw string: r"…", r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push(b[i]);
                i += 1;
                continue;
            }
            let mut close = vec![b'"'];
            close.extend(std::iter::repeat_n(b'#', hashes));
            j += 1;
            while j < b.len() && !b[j..].starts_with(&close) {
                j += 1;
            }
            i = j + close.len();
            out.extend_from_slice(b"\"\"");
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.extend_from_slice(b"\"\"");
        } else if b[i] == b'\'' {
            // A char literal ('x', '\n', '"'), or a lifetime ('a).
            if b.get(i + 1) == Some(&b'\\') {
                i += 2;
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
                i += 1;
            } else if b.get(i + 2) == Some(&b'\'') {
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Each strongly connected group of modules, as one cycle through it with
/// the files behind each step.
fn cycles(graph: &Graph) -> Vec<String> {
    let nodes: BTreeSet<&String> = graph
        .iter()
        .flat_map(|(from, to)| std::iter::once(from).chain(to.keys()))
        .collect();
    let reaches = |from: &String| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.clone()];
        while let Some(n) = stack.pop() {
            for next in graph.get(&n).into_iter().flat_map(|t| t.keys()) {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    };
    let reach: BTreeMap<&String, BTreeSet<String>> =
        nodes.iter().map(|n| (*n, reaches(n))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for n in &nodes {
        if done.contains(*n) || !reach[n].contains(*n) {
            continue;
        }
        let group: BTreeSet<String> = reach[n]
            .iter()
            .filter(|m| reach[m].contains(*n))
            .cloned()
            .collect();
        done.extend(group.iter().cloned());
        // The shortest way back to `n` (breadth first), within its group.
        let mut back: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([(*n).clone()]);
        'search: while let Some(m) = queue.pop_front() {
            for next in graph[&m].keys().filter(|k| group.contains(*k)) {
                if next == *n {
                    back.insert(format!("{n}#end"), m.clone());
                    break 'search;
                }
                if !back.contains_key(next) {
                    back.insert(next.clone(), m.clone());
                    queue.push_back(next.clone());
                }
            }
        }
        let mut path = vec![(*n).clone()];
        let mut at = back[&format!("{n}#end")].clone();
        while at != **n {
            path.push(at.clone());
            at = back[&at].clone();
        }
        path[1..].reverse();
        path.push((*n).clone());
        let steps: Vec<String> = path
            .windows(2)
            .map(|w| {
                let files: Vec<&String> = graph[&w[0]][&w[1]].iter().collect();
                format!("  {} → {}: {files:?}", w[0], w[1])
            })
            .collect();
        out.push(format!(
            "{} (modules in this cycle's group: {group:?})\n{}",
            path.join(" → "),
            steps.join("\n")
        ));
    }
    out
}
