//! `[mcp]` and `[[mcp.upstreams]]`: the gateway's front limits and the MCP
//! servers it stands in front of. Checked once at start; never written.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `[mcp]`: off unless at least one upstream is configured.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct McpConfig {
    /// How long a `tools/call` waiting for approval is held open before it
    /// answers "pending" (below the ~60 s most clients wait).
    pub hold_seconds: u64,
    /// Progress notifications while held, when the client sent a
    /// `progressToken`.
    pub progress_seconds: u64,
    /// An identical call (agent, tool, arguments) within this long after its
    /// held action was denied or expired gets that answer again.
    pub reattach_seconds: u64,
    /// Largest `arguments` (canonical JSON bytes) accepted.
    pub max_argument_bytes: usize,
    /// Largest upstream result (canonical JSON bytes) passed back.
    pub max_result_bytes: usize,
    /// `Host` values the endpoint answers (DNS-rebinding guard); empty
    /// accepts any.
    pub allowed_hosts: Vec<String>,
    /// Sessions (2025-11-25) one agent may hold open at once; opening one
    /// more ends its oldest.
    pub sessions_per_agent: usize,
    pub upstreams: Vec<UpstreamConfig>,
}

impl Default for McpConfig {
    fn default() -> Self {
        McpConfig {
            hold_seconds: 45,
            progress_seconds: 10,
            reattach_seconds: 3600,
            max_argument_bytes: 64 * 1024,
            max_result_bytes: 4 * 1024 * 1024,
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            sessions_per_agent: 64,
            upstreams: Vec::new(),
        }
    }
}

impl std::fmt::Debug for McpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpConfig")
            .field("hold_seconds", &self.hold_seconds)
            .field("upstreams", &self.upstreams)
            .finish_non_exhaustive()
    }
}

/// One upstream MCP server: `url` (Streamable HTTP) or `command` (stdio).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Lowercase letters, digits, `-`, `_` (no `__`): it becomes part of
    /// tool names (`NAME__TOOL`) and action kinds (`mcp.NAME.TOOL`).
    pub name: String,
    pub url: Option<String>,
    /// The gateway's own credential for this upstream, sent as
    /// `Authorization: Bearer …` (never the agent's key).
    pub bearer_token: Option<String>,
    /// Run without a shell: the program, then `args` as given.
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    /// The child's whole environment besides PATH and HOME.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// A call that takes longer fails (and is recorded as failed).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
}

fn default_timeout() -> u64 {
    60
}

impl std::fmt::Debug for UpstreamConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials and env values stay out of logs.
        f.debug_struct("UpstreamConfig")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("command", &self.command)
            .field("args", &self.args)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// How to reach an upstream, once checked.
#[derive(Clone, Debug)]
pub enum Transport {
    Http { url: String },
    Stdio { command: String, args: Vec<String> },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum McpConfigError {
    #[error("[[mcp.upstreams]] name {0:?}: use 1 to 40 of a-z, 0-9, '-', '_' (and no \"__\")")]
    BadName(String),
    #[error("[[mcp.upstreams]] {0:?} is listed twice")]
    Duplicate(String),
    #[error("[[mcp.upstreams]] {0:?}: give either `url` or `command`, not both or neither")]
    Transport(String),
    #[error("[[mcp.upstreams]] {0:?}: `url` must be http:// or https://")]
    Url(String),
    #[error("[mcp] sessions_per_agent must be at least 1")]
    NoSessions,
}

impl UpstreamConfig {
    pub fn transport(&self) -> Result<Transport, McpConfigError> {
        match (&self.url, &self.command) {
            (Some(url), None) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(McpConfigError::Url(self.name.clone()));
                }
                Ok(Transport::Http { url: url.clone() })
            }
            (None, Some(command)) => Ok(Transport::Stdio {
                command: command.clone(),
                args: self.args.clone(),
            }),
            _ => Err(McpConfigError::Transport(self.name.clone())),
        }
    }
}

impl McpConfig {
    /// Every upstream named well, once, with one transport; room for at
    /// least one session per agent.
    pub fn check(&self) -> Result<(), McpConfigError> {
        if self.sessions_per_agent == 0 {
            return Err(McpConfigError::NoSessions);
        }
        let mut seen = std::collections::BTreeSet::new();
        for u in &self.upstreams {
            let ok = !u.name.is_empty()
                && u.name.len() <= 40
                && !u.name.contains("__")
                && u.name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !ok {
                return Err(McpConfigError::BadName(u.name.clone()));
            }
            if !seen.insert(u.name.as_str()) {
                return Err(McpConfigError::Duplicate(u.name.clone()));
            }
            u.transport()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> McpConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn upstreams_need_a_clean_name_and_one_transport() {
        let ok = parse(
            r#"
            [[upstreams]]
            name = "fs"
            command = "npx"
            args = ["-y", "x"]
            [[upstreams]]
            name = "web-2"
            url = "http://127.0.0.1:9/mcp"
            "#,
        );
        ok.check().unwrap();
        assert_eq!(ok.hold_seconds, 45);
        for (text, err) in [
            (
                "[[upstreams]]\nname = \"Fs\"\ncommand = \"x\"",
                McpConfigError::BadName("Fs".into()),
            ),
            (
                "[[upstreams]]\nname = \"a__b\"\ncommand = \"x\"",
                McpConfigError::BadName("a__b".into()),
            ),
            (
                "[[upstreams]]\nname = \"a\"\ncommand = \"x\"\nurl = \"http://h\"",
                McpConfigError::Transport("a".into()),
            ),
            (
                "[[upstreams]]\nname = \"a\"\nurl = \"ftp://h\"",
                McpConfigError::Url("a".into()),
            ),
            (
                "[[upstreams]]\nname = \"a\"\ncommand = \"x\"\n[[upstreams]]\nname = \"a\"\ncommand = \"y\"",
                McpConfigError::Duplicate("a".into()),
            ),
            (
                "sessions_per_agent = 0\n[[upstreams]]\nname = \"a\"\ncommand = \"x\"",
                McpConfigError::NoSessions,
            ),
        ] {
            assert_eq!(parse(text).check(), Err(err), "{text}");
        }
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let c = parse(
            "[[upstreams]]\nname = \"a\"\nurl = \"http://h\"\nbearer_token = \"s3cret\"\nenv = { TOKEN = \"t0ken\" }",
        );
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("t0ken"),
            "{shown}"
        );
    }
}
