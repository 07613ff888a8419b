//! MCP tool calls (`mcp.*`) as the gateway submits them: params are the
//! tool's arguments; context carries the tool's annotations and the sha256
//! of its definition.
//!
//! Read-only tools run at once; other tools need one approver from
//! `mcp-approvers`, destructive ones two. Any path argument outside the
//! agent's `mcp_root` attribute (an operator-set root) is denied; an agent
//! without a root may not name paths at all. The annotations are the MCP
//! spec's hints with its defaults: a tool that says nothing is neither
//! read-only nor safe from being destructive.

#![no_std]

use actiongate_sdk::prelude::*;

struct McpTools;

/// Arguments that name files: a string, or a list of strings.
const PATH_KEYS: &[&str] = &[
    "path",
    "paths",
    "source",
    "destination",
    "file",
    "directory",
];

fn hint(action: &Action, name: &str, default: bool) -> bool {
    match action.context(name) {
        Some("true") => true,
        Some("false") => false,
        _ => default,
    }
}

/// Every path named in the arguments.
fn paths(params: &Params) -> Result<Vec<String>, String> {
    let mut found = Vec::new();
    for key in PATH_KEYS {
        match params.raw(key) {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::String(p)) => found.push(p.clone()),
            Some(serde_json::Value::Array(items)) => {
                for item in items {
                    match item {
                        serde_json::Value::String(p) => found.push(p.clone()),
                        _ => return Err(format!("params.{key}: every item must be a path string")),
                    }
                }
            }
            Some(_) => return Err(format!("params.{key}: must be a path string")),
        }
    }
    Ok(found)
}

/// Whether `path` is `root` or inside it, judged on path segments after
/// dropping `.`; any `..` is refused rather than resolved, since the
/// upstream would resolve it against a filesystem this plugin cannot see.
fn under(root: &str, path: &str) -> bool {
    if !path.starts_with('/') || !root.starts_with('/') {
        return false;
    }
    let segments = |p: &str| -> Option<Vec<String>> {
        let mut out = Vec::new();
        for s in p.split('/') {
            match s {
                "" | "." => {}
                ".." => return None,
                s => out.push(String::from(s)),
            }
        }
        Some(out)
    };
    match (segments(root), segments(path)) {
        (Some(r), Some(p)) => p.len() >= r.len() && p[..r.len()] == r[..],
        _ => false,
    }
}

impl Policy for McpTools {
    fn describe() -> PluginInfo {
        PluginInfo::new("mcp-tools", "1.0.0", &["mcp.*"])
    }

    fn classify(action: &Action) -> Result<Classification, String> {
        let params = action.params()?;
        let read_only = hint(action, "mcp.read_only_hint", false);
        let destructive = !read_only && hint(action, "mcp.destructive_hint", true);
        let mut c = Classification::new(Risk::Low);
        if read_only {
            c.tags.push("read-only".into());
            c.reasons
                .push(format!("{} says it only reads", action.resource));
        } else if destructive {
            c.raise(
                Risk::High,
                "destructive",
                format!(
                    "{} may destroy data (or does not say it won't)",
                    action.resource
                ),
            );
        } else {
            c.raise(
                Risk::Medium,
                "writes",
                format!("{} changes things", action.resource),
            );
        }
        let found = paths(&params)?;
        if !found.is_empty() {
            match action.agent.attribute("mcp_root") {
                None => c.raise(
                    Risk::Critical,
                    "path-outside-root",
                    "the agent has no mcp_root attribute, so it may name no paths",
                ),
                Some(root) => {
                    for p in found.iter().filter(|p| !under(root, p)) {
                        c.raise(
                            Risk::Critical,
                            "path-outside-root",
                            format!("{p} is outside {root}"),
                        );
                    }
                }
            }
        }
        Ok(c)
    }

    fn route(action: &Action, c: &Classification) -> Result<Route, String> {
        if c.has_tag("path-outside-root") {
            return Ok(Route::Deny(format!(
                "{} names a path outside the agent's root",
                action.resource
            )));
        }
        if c.has_tag("read-only") {
            return Ok(Route::Allow);
        }
        // An operator may shorten the wait for this agent (tests, demos).
        let ttl = action
            .agent
            .attribute("mcp_approval_ttl")
            .and_then(|t| t.parse::<u32>().ok())
            .unwrap_or(1800);
        // Approvers may change any argument; the change is evaluated again,
        // so a modified path outside the root is still denied.
        let args: Vec<String> = match serde_json::from_str::<serde_json::Value>(&action.params) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        };
        let modifiable: Vec<&str> = args.iter().map(String::as_str).collect();
        let quorum = if c.has_tag("destructive") { 2 } else { 1 };
        Ok(Approval::from(&["mcp-approvers"], quorum)
            .ttl_seconds(ttl)
            .modifiable(&modifiable)
            .into())
    }
}

export_policy!(McpTools, no_std);
