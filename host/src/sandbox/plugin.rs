//! Loading a plugin: check its sha256, compile it once (or take the
//! precompiled artifact from the disk cache), refuse any import outside the
//! deterministic WASI, and ask it to describe itself.

use std::fs;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};

use super::{interpreter, wasi, Limits, PluginFailure, PolicyPre, Sandbox, WIT_VERSION};
use crate::action::PluginInfo;

/// A loaded, linked policy plugin, ready to be instantiated per evaluation.
pub struct Plugin {
    /// sha256 of the exact component bytes.
    pub sha256: String,
    pub info: PluginInfo,
    /// Version of the `actiongate:policy` contract it was built against.
    pub wit_version: String,
    /// The interpreter it carries (`CPython 3.14`), if any.
    pub interpreter: Option<String>,
    /// What each of its evaluations may use (`Sandbox::limits_for`).
    pub limits: Limits,
    pub(super) pre: PolicyPre<super::GuestState>,
    /// The same component with every import a trap, for evaluations on an
    /// async worker (`Sandbox::evaluate_inline`). None for an interpreter:
    /// its SDK reseeds `random` through WASI in every instance, so the
    /// inline attempt would always fail and only add its cost.
    pub(super) inline: Option<PolicyPre<super::GuestState>>,
    pub(super) exports: super::run::Exports,
}

/// What `actiongate plugin inspect` reports. Produced even for a plugin
/// that fails to load, so a refused import can be seen.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Inspection {
    pub sha256: String,
    pub size_bytes: usize,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    pub wit_version: Option<String>,
    /// The interpreter it carries (`CPython 3.14`), if any.
    pub interpreter: Option<String>,
    /// The limits its evaluations would run under here.
    pub limits: Option<Limits>,
    pub info: Option<PluginInfo>,
    pub failure: Option<PluginFailure>,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Sandbox {
    /// Loads a plugin from its component bytes. With `pin`, the bytes must
    /// hash to exactly that sha256. Loading the same bytes again is free.
    pub fn load(&self, bytes: &[u8], pin: Option<&str>) -> Result<Arc<Plugin>, PluginFailure> {
        let sha256 = sha256_hex(bytes);
        if let Some(expected) = pin {
            if !expected.eq_ignore_ascii_case(&sha256) {
                return Err(PluginFailure::load(format!(
                    "sha256 mismatch: pinned {expected}, bytes are {sha256}"
                )));
            }
        }
        if let Some(plugin) = self.get(&sha256) {
            return Ok(plugin);
        }
        let component = self.compile(&sha256, bytes)?;
        let interpreter = interpreter::embedded_interpreter(bytes);
        let plugin = Arc::new(self.link(sha256.clone(), &component, interpreter)?);
        tracing::info!(
            sha256 = %plugin.sha256,
            name = %plugin.info.name,
            version = %plugin.info.version,
            wit = %plugin.wit_version,
            interpreter = plugin.interpreter.as_deref().unwrap_or("none"),
            "plugin loaded"
        );
        self.loaded.write().unwrap().insert(sha256, plugin.clone());
        self.preparer.loaded(&plugin);
        Ok(plugin)
    }

    /// Everything known about a component without evaluating an action.
    pub fn inspect(&self, bytes: &[u8]) -> Inspection {
        let sha256 = sha256_hex(bytes);
        let mut report = Inspection {
            sha256: sha256.clone(),
            size_bytes: bytes.len(),
            imports: Vec::new(),
            exports: Vec::new(),
            wit_version: None,
            interpreter: interpreter::embedded_interpreter(bytes),
            limits: None,
            info: None,
            failure: None,
        };
        let component = match self.compile(&sha256, bytes) {
            Ok(c) => c,
            Err(failure) => {
                report.failure = Some(failure);
                return report;
            }
        };
        let ty = component.component_type();
        report.imports = ty
            .imports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        report.exports = ty
            .exports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        report.wit_version = contract_version(&report.imports);
        // Linked here, not through `load`: an inspected plugin is neither
        // compiled twice nor kept loaded.
        match self.link(sha256, &component, report.interpreter.clone()) {
            Ok(plugin) => {
                report.info = Some(plugin.info);
                report.wit_version = Some(plugin.wit_version);
                report.limits = Some(plugin.limits);
            }
            Err(failure) => report.failure = Some(failure),
        }
        report
    }

    fn compile(&self, sha256: &str, bytes: &[u8]) -> Result<Component, PluginFailure> {
        let Some(path) = self.cache_path(sha256) else {
            return Component::new(&self.engine, bytes)
                .map_err(|e| PluginFailure::load(format!("{e:#}")));
        };
        if path.exists() {
            // SAFETY: the cache folder is written only by this service (see
            // SandboxConfig::cache_dir) and the file name binds the source
            // sha256 and the engine's compatibility hash. A file that does
            // not deserialize is recompiled below.
            match unsafe { Component::deserialize_file(&self.engine, &path) } {
                Ok(component) => return Ok(component),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "stale precompiled plugin; recompiling")
                }
            }
        }
        let artifact = self
            .engine
            .precompile_component(bytes)
            .map_err(|e| PluginFailure::load(format!("{e:#}")))?;
        if let Err(e) = write_atomically(&path, &artifact) {
            tracing::warn!(path = %path.display(), error = %e, "could not cache precompiled plugin");
        }
        // SAFETY: `artifact` was produced by this engine a moment ago.
        unsafe { Component::deserialize(&self.engine, &artifact) }
            .map_err(|e| PluginFailure::load(format!("{e:#}")))
    }

    fn cache_path(&self, sha256: &str) -> Option<PathBuf> {
        let dir = self.config.cache_dir.as_ref()?;
        let mut hasher = Sha256Hasher(Sha256::new());
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        let compat = hex::encode(&hasher.0.finalize()[..8]);
        Some(dir.join(format!("{sha256}-{compat}.cwasm")))
    }

    fn link(
        &self,
        sha256: String,
        component: &Component,
        interpreter: Option<String>,
    ) -> Result<Plugin, PluginFailure> {
        let imports: Vec<String> = component
            .component_type()
            .imports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let wit_version = match contract_version(&imports) {
            Some(version) => version,
            // componentize-py drops the contract's function-less `types`
            // import; `describe` below type-checks the exports against this
            // host's contract instead.
            None if interpreter.is_some() => WIT_VERSION.to_string(),
            None => {
                return Err(PluginFailure::load(
                    "not an actiongate policy: it does not use the actiongate:policy contract",
                ))
            }
        };
        check_contract_version(&wit_version)?;
        let forbidden: Vec<&str> = imports
            .iter()
            .map(String::as_str)
            .filter(|name| !wasi::is_allowed_wasi_import(name) && !is_contract_import(name))
            .filter(|name| {
                interpreter.is_none() || !interpreter::is_allowed_interpreter_import(name)
            })
            .collect();
        if !forbidden.is_empty() {
            return Err(PluginFailure::load(format!(
                "forbidden import{}: {} (policies get only deterministic WASI: no files, sockets or host calls)",
                if forbidden.len() > 1 { "s" } else { "" },
                forbidden.join(", ")
            )));
        }
        let instance_pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| PluginFailure::load(format!("{e:#}")))?;
        let pre =
            PolicyPre::new(instance_pre).map_err(|e| PluginFailure::load(format!("{e:#}")))?;
        // WASI's sync bindings block on the ambient tokio runtime, which an
        // async worker must not do: there, every import traps instead.
        let inline = if interpreter.is_some() {
            None
        } else {
            let mut stubs = Linker::new(&self.engine);
            let inline = stubs
                .define_unknown_imports_as_traps(component)
                .and_then(|()| stubs.instantiate_pre(component))
                .and_then(PolicyPre::new)
                .map_err(|e| PluginFailure::load(format!("{e:#}")))?;
            Some(inline)
        };
        let describe_limits = self.limits_for(interpreter.is_some(), &sha256, None);
        let (info, exports) = self.describe(&pre, &describe_limits)?;
        let limits = self.limits_for(interpreter.is_some(), &sha256, Some(&info.name));
        Ok(Plugin {
            sha256,
            info,
            wit_version,
            interpreter,
            limits,
            pre,
            inline,
            exports,
        })
    }
}

/// `actiongate:policy/types@…`: the contract's own (function-less)
/// interface, at any version (`check_contract_version` judges the version).
fn is_contract_import(name: &str) -> bool {
    name.starts_with("actiongate:policy/types@")
}

/// A plugin loads if its contract is the host's or an older release the
/// host still answers: same major (for 0.x, same minor, as semver has it),
/// not newer. A newer one may expect what this host does not give.
fn check_contract_version(plugin: &str) -> Result<(), PluginFailure> {
    let refuse = |why: &str| {
        PluginFailure::load(format!(
            "contract version mismatch: built against actiongate:policy@{plugin}, {why}; this host supports actiongate:policy@{WIT_VERSION} and older {} releases",
            compat_line(WIT_VERSION)
        ))
    };
    let (Some(theirs), Some(ours)) = (semver(plugin), semver(WIT_VERSION)) else {
        return Err(refuse("which is not a version this host can read"));
    };
    if compat(theirs) != compat(ours) {
        return Err(refuse("another major version"));
    }
    if theirs > ours {
        return Err(refuse("which is newer than the host's"));
    }
    Ok(())
}

fn semver(version: &str) -> Option<(u64, u64, u64)> {
    let mut parts = version.split('.').map(|p| p.parse::<u64>().ok());
    let v = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(v)
}

/// The part of a version that must match: major, or minor under 0.x.
fn compat((major, minor, _): (u64, u64, u64)) -> (u64, Option<u64>) {
    (major, (major == 0).then_some(minor))
}

fn compat_line(version: &str) -> String {
    match semver(version) {
        Some((0, minor, _)) => format!("0.{minor}.x"),
        Some((major, _, _)) => format!("{major}.x"),
        None => version.to_string(),
    }
}

fn contract_version(imports: &[String]) -> Option<String> {
    imports
        .iter()
        .find_map(|name| name.strip_prefix("actiongate:policy/types@"))
        .map(str::to_string)
}

fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, path)
}

/// Feeds `Hash` output into sha256 so the cache key is stable across runs
/// (std's `DefaultHasher` is not).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        unreachable!("only the sha256 state is read")
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_versions_the_host_cannot_answer_are_refused_naming_both() {
        assert_eq!(check_contract_version(WIT_VERSION), Ok(()));
        for (plugin, why) in [
            ("0.1.1", "newer than the host's"),
            ("0.2.0", "another major version"),
            ("1.0.0", "another major version"),
            ("0.1", "not a version"),
        ] {
            let Err(PluginFailure::Load { reason }) = check_contract_version(plugin) else {
                panic!("{plugin} must be refused");
            };
            assert!(
                reason.contains(&format!("actiongate:policy@{plugin}")),
                "{reason}"
            );
            assert!(reason.contains("actiongate:policy@0.1.0"), "{reason}");
            assert!(reason.contains(why), "{reason}");
        }
    }
}
