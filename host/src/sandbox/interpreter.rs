//! Plugins that carry an interpreter (Python, built by componentize-py): how
//! the sandbox recognises one, the filesystem and socket interfaces its
//! runtime imports, and the limits sized for it. Must never give such a
//! plugin a capability a compiled plugin is refused: those interfaces are
//! linked deny-all (no preopened directory, every socket refused), so they
//! answer with errors only.
//!
//! Why they are linked at all: CPython's runtime (wasi-libc, its socket and
//! os modules) imports `wasi:filesystem/*` and `wasi:sockets/*` whatever the
//! policy uses. The other answer, componentize-py's `--stub-wasi`, traps on
//! every WASI call, which also takes away the clock at requested-at and the
//! random seeded from the action id (the seed would be fixed at build time).

use serde::{Deserialize, Serialize};
use wasmparser::{ComponentName, KnownCustom, Parser, Payload};

use super::Limits;

/// The interface families an interpreter plugin may import on top of the
/// deterministic WASI. `WasiCtx` gives them nothing: no preopens, TCP, UDP
/// and name lookups disabled, every socket address refused.
const INTERPRETER_IMPORTS: &[&str] = &[
    "wasi:filesystem/types@0.2",
    "wasi:filesystem/preopens@0.2",
    "wasi:sockets/network@0.2",
    "wasi:sockets/instance-network@0.2",
    "wasi:sockets/tcp@0.2",
    "wasi:sockets/tcp-create-socket@0.2",
    "wasi:sockets/udp@0.2",
    "wasi:sockets/udp-create-socket@0.2",
    "wasi:sockets/ip-name-lookup@0.2",
];

/// Whether an interpreter plugin may import `name` (a full import name such
/// as `wasi:filesystem/types@0.2.0`) beyond what every plugin may.
pub fn is_allowed_interpreter_import(name: &str) -> bool {
    INTERPRETER_IMPORTS.iter().any(|prefix| {
        name.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
    })
}

/// The interpreter a component embeds, e.g. `CPython 3.14`, read from the
/// component's name section: componentize-py links CPython as a core
/// module named `libpython3.N.so`. The name is the plugin author's to set,
/// so it only selects the limits and the deny-all interfaces above, which
/// a compiled plugin would gain nothing from.
pub fn embedded_interpreter(bytes: &[u8]) -> Option<String> {
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.ok()? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::CustomSection(section) if depth == 0 => {
                let KnownCustom::ComponentName(names) = section.as_known() else {
                    continue;
                };
                for subsection in names {
                    let (ComponentName::CoreModules(map) | ComponentName::CoreInstances(map)) =
                        subsection.ok()?
                    else {
                        continue;
                    };
                    for naming in map {
                        if let Some(version) = cpython_version(naming.ok()?.name) {
                            return Some(format!("CPython {version}"));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    None
}

/// `libpython3.14.so` -> `3.14`.
fn cpython_version(name: &str) -> Option<&str> {
    let version = name.strip_prefix("libpython")?.strip_suffix(".so")?;
    let (major, minor) = version.split_once('.')?;
    (major == "3" && minor.parse::<u32>().is_ok()).then_some(version)
}

/// Some or all of the per-evaluation limits; unset fields keep the limits
/// they are laid over.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsOverride {
    pub fuel: Option<u64>,
    pub memory_bytes: Option<usize>,
    pub deadline_ms: Option<u64>,
    pub output_bytes: Option<usize>,
    pub core_instances: Option<u32>,
}

impl LimitsOverride {
    pub fn over(&self, base: &Limits) -> Limits {
        Limits {
            fuel: self.fuel.unwrap_or(base.fuel),
            memory_bytes: self.memory_bytes.unwrap_or(base.memory_bytes),
            deadline_ms: self.deadline_ms.unwrap_or(base.deadline_ms),
            output_bytes: self.output_bytes.unwrap_or(base.output_bytes),
            core_instances: self.core_instances.unwrap_or(base.core_instances),
        }
    }

    /// What an interpreter plugin gets unless configured otherwise,
    /// measured with CPython 3.14 from componentize-py 0.25.1: the Python
    /// db-export uses about 0.7 million units of fuel (its Rust twin
    /// 15 thousand) and CPython burns about 600 million a second here, so
    /// 100 million leaves 140 times the headroom and ends a loop in about
    /// 160 ms, well before the 1 s wall-clock backstop. Its runtime makes
    /// about 40 core instances, and its heap snapshot plus a policy's work
    /// fits 64 MiB.
    pub fn interpreter_default() -> Self {
        LimitsOverride {
            fuel: Some(100_000_000),
            memory_bytes: Some(64 << 20),
            deadline_ms: Some(1000),
            output_bytes: None,
            core_instances: Some(64),
        }
    }
}

/// The field-wise maximum: what the shared instance pool must hold.
pub fn widest<'a>(all: impl IntoIterator<Item = &'a Limits>) -> Limits {
    all.into_iter().fold(
        Limits {
            fuel: 0,
            memory_bytes: 0,
            deadline_ms: 0,
            output_bytes: 0,
            core_instances: 0,
        },
        |a, b| Limits {
            fuel: a.fuel.max(b.fuel),
            memory_bytes: a.memory_bytes.max(b.memory_bytes),
            deadline_ms: a.deadline_ms.max(b.deadline_ms),
            output_bytes: a.output_bytes.max(b.output_bytes),
            core_instances: a.core_instances.max(b.core_instances),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpreter_imports_are_filesystem_and_sockets_only() {
        assert!(is_allowed_interpreter_import("wasi:filesystem/types@0.2.0"));
        assert!(is_allowed_interpreter_import("wasi:sockets/tcp@0.2.9"));
        assert!(!is_allowed_interpreter_import("wasi:sockets/tcp@0.3.0"));
        assert!(!is_allowed_interpreter_import(
            "wasi:http/outgoing-handler@0.2.0"
        ));
        assert!(!is_allowed_interpreter_import(
            "wasi:filesystem/types-extra@0.2.0"
        ));
    }

    #[test]
    fn cpython_is_named_by_its_shared_library() {
        assert_eq!(cpython_version("libpython3.14.so"), Some("3.14"));
        assert_eq!(cpython_version("libpython3.so"), None);
        assert_eq!(cpython_version("libc.so"), None);
    }

    #[test]
    fn an_override_keeps_what_it_does_not_set() {
        let base = Limits::default();
        let over = LimitsOverride {
            memory_bytes: Some(1 << 30),
            ..LimitsOverride::default()
        }
        .over(&base);
        assert_eq!(over.memory_bytes, 1 << 30);
        assert_eq!(over.fuel, base.fuel);
        assert_eq!(widest([&base, &over]).memory_bytes, 1 << 30);
    }
}
