//! The domain of one decision: the action an agent asks for and what a
//! policy says about it. Plain data; no I/O. The sandbox converts these to
//! and from the WIT types, so nothing above it sees generated bindings.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The longest kind (or kind pattern), in bytes: long enough for
/// `mcp.UPSTREAM.TOOL`, short enough to keep keys and logs bounded.
pub const KIND_MAX_LEN: usize = 200;

/// Kinds only the host makes (`actiongate.bind`): the first segment.
pub const HOST_KIND_SEGMENT: &str = "actiongate";

/// The one grammar of action kinds, in words, for every refusal.
pub const KIND_RULE: &str = "a kind is lowercase ASCII segments of a-z, 0-9, `_` and `-`, joined by single dots, at most 200 characters (e.g. `db.export`)";

/// Why a kind (or a kind pattern) was refused. Every message names the
/// rule, so the caller learns what to send instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KindError {
    #[error("kind is empty; {KIND_RULE}")]
    Empty,
    #[error("kind is {len} characters; {KIND_RULE}")]
    TooLong { len: usize },
    #[error("kind {shown} has an empty segment (a leading, trailing or double dot); {KIND_RULE}")]
    EmptySegment { shown: String },
    #[error("kind {shown} has {found} at character {at}; {KIND_RULE}")]
    BadChar {
        shown: String,
        /// The character, with its code point (look-alikes and invisible
        /// characters are the point).
        found: String,
        at: usize,
    },
    #[error("kind pattern {shown} has `*` inside a segment; a pattern's segment is either `*` or a kind's segment; {KIND_RULE}")]
    PartialGlob { shown: String },
}

/// An action kind that follows the grammar (`db.export`, `mcp.github.create_issue`).
/// The only way to build one is [`Kind::parse`] (or [`Kind::mcp_tool`]), so no
/// spelling of a kind (case, whitespace, look-alikes, control characters)
/// reaches a binding other than the one it names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Kind(String);

impl Kind {
    pub fn parse(text: &str) -> Result<Kind, KindError> {
        check_kind(text, false)?;
        Ok(Kind(text.to_owned()))
    }

    /// The kind of an MCP `tools/call`: `mcp.UPSTREAM.TOOL`. Both names must
    /// be single segments of the grammar; a tool whose name is not is
    /// refused rather than renamed, so two tools never share a kind.
    pub fn mcp_tool(upstream: &str, tool: &str) -> Result<Kind, KindError> {
        for name in [upstream, tool] {
            if name.contains('.') {
                return Err(KindError::BadChar {
                    shown: shown(name),
                    found: "'.' (U+002E)".into(),
                    at: name.find('.').unwrap_or(0) + 1,
                });
            }
        }
        Kind::parse(&format!("mcp.{upstream}.{tool}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// The host's own kinds (`actiongate.*`), which agents may not submit.
    pub fn is_host_kind(&self) -> bool {
        self.0.split('.').next() == Some(HOST_KIND_SEGMENT)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Kind {
    type Err = KindError;
    fn from_str(s: &str) -> Result<Kind, KindError> {
        Kind::parse(s)
    }
}

/// A binding pattern or a plugin's declared kind: the kind grammar, where a
/// whole segment may be `*` (which also matches across dots: `db.*` matches
/// `db.export.full`). `db.export`, `db.*`, `*`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KindPattern(String);

impl KindPattern {
    pub fn parse(text: &str) -> Result<KindPattern, KindError> {
        check_kind(text, true)?;
        Ok(KindPattern(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_glob(&self) -> bool {
        self.0.contains('*')
    }
}

impl std::fmt::Display for KindPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The input as an error shows it: quoted and escaped, so invisible and
/// control characters are visible, and cut short.
fn shown(text: &str) -> String {
    let cut: String = text.chars().take(64).collect();
    let more = if cut.len() < text.len() { "…" } else { "" };
    format!("{:?}{more}", cut)
}

fn check_kind(text: &str, glob: bool) -> Result<(), KindError> {
    if text.is_empty() {
        return Err(KindError::Empty);
    }
    if text.len() > KIND_MAX_LEN {
        return Err(KindError::TooLong { len: text.len() });
    }
    let mut at = 0;
    for segment in text.split('.') {
        if segment.is_empty() {
            return Err(KindError::EmptySegment { shown: shown(text) });
        }
        if glob && segment == "*" {
            at += 2;
            continue;
        }
        for c in segment.chars() {
            at += 1;
            match c {
                'a'..='z' | '0'..='9' | '_' | '-' => {}
                '*' if glob => return Err(KindError::PartialGlob { shown: shown(text) }),
                other => {
                    return Err(KindError::BadChar {
                        shown: shown(text),
                        found: format!("{:?} (U+{:04X})", other, other as u32),
                        at,
                    })
                }
            }
        }
        at += 1;
    }
    Ok(())
}

/// The authenticated agent. Built by the host from the agent's API key,
/// never from a request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub id: String,
    /// Operator-set attributes; `owner` is always present for agents.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// The id of an action: a UUID the host made. Parsed once, where it comes
/// in (HTTP path, chat payload, CLI argument), so every channel refuses a
/// malformed id the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ActionId(uuid::Uuid);

impl ActionId {
    /// A fresh id (UUIDv7: ordered by time).
    pub fn new() -> ActionId {
        ActionId(uuid::Uuid::now_v7())
    }

    pub fn uuid(self) -> uuid::Uuid {
        self.0
    }
}

impl Default for ActionId {
    fn default() -> Self {
        ActionId::new()
    }
}

impl From<uuid::Uuid> for ActionId {
    fn from(id: uuid::Uuid) -> Self {
        ActionId(id)
    }
}

impl std::str::FromStr for ActionId {
    type Err = BadActionId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s)
            .map(ActionId)
            .map_err(|_| BadActionId(s.to_owned()))
    }
}

impl fmt::Display for ActionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hyphenated lowercase: what every stored row and event holds.
        self.0.fmt(f)
    }
}

/// Text that is not an action id; names what was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an action id (a UUID)")]
pub struct BadActionId(pub String);

/// One privileged action, as a policy plugin sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    pub id: String,
    pub kind: String,
    pub agent: Principal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
    pub resource: String,
    /// Always a JSON object.
    pub params: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    #[serde(default)]
    pub context: BTreeMap<String, String>,
    pub requested_at: DateTime<Utc>,
}

/// Who asked for an action (`Action::requester`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequesterIds<'a> {
    pub agent: &'a str,
    pub owner: Option<&'a str>,
    pub on_behalf_of: Option<&'a str>,
}

impl RequesterIds<'_> {
    /// Each of them, where known.
    pub fn all(&self) -> [Option<&str>; 3] {
        [Some(self.agent), self.owner, self.on_behalf_of]
    }
}

impl Action {
    /// Every identity the action was asked under, none of whom may approve
    /// it: the agent, its `owner` attribute and the human it acts on behalf
    /// of. The approval rules refuse each (`approvals::rules::Requester`),
    /// route checks count none of them (`route_check`) and the audit story
    /// flags each (`audit::story`); all read them here, so none can miss
    /// one another knows. No allocation: every
    /// decision's route check passes through here.
    pub fn requester(&self) -> RequesterIds<'_> {
        RequesterIds {
            agent: &self.agent.id,
            owner: self.agent.attributes.get("owner").map(String::as_str),
            on_behalf_of: self.on_behalf_of.as_deref(),
        }
    }

    /// sha256 over the RFC 8785 canonical JSON of the action: what approvals
    /// and grants are bound to. Any change to any field changes it.
    pub fn digest(&self) -> String {
        hex::encode(Sha256::digest(crate::canonical::digest_bytes(self)))
    }

    /// `requested_at` as the plugin sees it: RFC 3339, UTC, milliseconds.
    pub fn requested_at_rfc3339(&self) -> String {
        self.requested_at
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    }
}

/// Where an action stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Allowed,
    Denied,
    Pending,
    Approved,
    Expired,
    Executed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Allowed => "allowed",
            State::Denied => "denied",
            State::Pending => "pending",
            State::Approved => "approved",
            State::Expired => "expired",
            State::Executed => "executed",
        }
    }

    /// The state a stored row names.
    pub fn parse(s: &str) -> Result<State, UnknownState> {
        Ok(match s {
            "allowed" => State::Allowed,
            "denied" => State::Denied,
            "pending" => State::Pending,
            "approved" => State::Approved,
            "expired" => State::Expired,
            "executed" => State::Executed,
            _ => return Err(UnknownState(s.to_owned())),
        })
    }

    pub fn is_final(self) -> bool {
        !matches!(self, State::Pending)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
/// What a reviewer decides about a held action.
pub enum Decision {
    Approve,
    Deny,
    /// Change modifiable params; counts as the modifier's approval of the new digest.
    Modify,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Deny => "deny",
            Decision::Modify => "modify",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
/// How running an action went, as its executor reports it.
pub enum OutcomeStatus {
    Succeeded,
    Failed,
}

impl OutcomeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeStatus::Succeeded => "succeeded",
            OutcomeStatus::Failed => "failed",
        }
    }
}

/// A stored state this release does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown action state {0:?}")]
pub struct UnknownState(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    Low,
    Medium,
    High,
    Critical,
}

impl Risk {
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
            Risk::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classification {
    pub risk: Risk,
    pub reasons: Vec<String>,
    pub tags: Vec<String>,
}

/// What humans must do before a held action may run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRoute {
    pub groups: Vec<String>,
    pub quorum: u32,
    pub ttl_seconds: u32,
    pub modifiable_params: Vec<String>,
    pub escalate_to: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "route", rename_all = "kebab-case")]
pub enum Route {
    Allow,
    Deny { reason: String },
    RequireApproval(ApprovalRoute),
}

impl Route {
    pub fn name(&self) -> &'static str {
        match self {
            Route::Allow => "allow",
            Route::Deny { .. } => "deny",
            Route::RequireApproval(_) => "require-approval",
        }
    }
}

/// What a plugin says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub kinds: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action() -> Action {
        Action {
            id: "a1".into(),
            kind: "db.export".into(),
            agent: Principal {
                id: "etl".into(),
                attributes: BTreeMap::new(),
            },
            on_behalf_of: None,
            resource: "db://x".into(),
            params: serde_json::json!({"rows": 10, "b": [1, 2]}),
            justification: None,
            context: BTreeMap::new(),
            requested_at: "2026-11-25T10:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn digest_changes_with_any_param() {
        let a = action();
        let mut b = action();
        assert_eq!(a.digest(), b.digest());
        b.params["rows"] = serde_json::json!(11);
        assert_ne!(a.digest(), b.digest());
        assert_eq!(a.digest().len(), 64);
    }

    /// Every spelling that once reached the catch-all instead of
    /// db-export's binding, and the host-prefix spellings that passed.
    #[test]
    fn kind_grammar_refuses_every_other_spelling() {
        let refused = [
            "DB.EXPORT",
            "Db.export",
            "db.Export",
            "db.export ",
            " db.export",
            "db .export",
            "db.export\n",
            "\tdb.export",
            "db\u{200b}.export",
            "db.export\u{200b}",
            "\u{feff}db.export",
            "db.ex\u{0440}ort",
            "db.\u{0435}xport",
            "d\u{0431}.export",
            "db.export.",
            ".db.export",
            "db..export",
            "db\u{2024}export",
            "db\u{ff0e}export",
            "db\u{3002}export",
            "db/export",
            "db:export",
            "db export",
            "db.exp\u{00f6}rt",
            "ＤＢ.export",
            "db.export\u{0}",
            "db\u{0}.export",
            "db.export\u{7}",
            "db.export\u{1b}[31m",
            "db.e\u{301}xport",
            "db.*",
            "",
            ".",
            "Actiongate.bind",
            " actiongate.bind",
            "ACTIONGATE.bind",
        ];
        for kind in refused {
            let err = Kind::parse(kind).expect_err(kind);
            assert!(err.to_string().contains(KIND_RULE), "{kind:?}: {err}");
        }
        assert!(matches!(
            Kind::parse(&"a".repeat(KIND_MAX_LEN + 1)),
            Err(KindError::TooLong { .. })
        ));
        let at_most = format!("{}.b", "a".repeat(KIND_MAX_LEN - 2));
        assert!(Kind::parse(&at_most).is_ok());
        // The look-alike is named, with its code point.
        let err = Kind::parse("db.ex\u{0440}ort").unwrap_err().to_string();
        assert!(
            err.contains("U+0440") && err.contains("character 6"),
            "{err}"
        );
        let err = Kind::parse("db.export\u{0}").unwrap_err().to_string();
        assert!(err.contains("U+0000") && !err.contains('\u{0}'), "{err}");
    }

    #[test]
    fn kind_grammar_accepts_kinds() {
        for kind in [
            "db.export",
            "db_export",
            "iam.grant",
            "crm.merge-accounts",
            "ops",
            "a.b.c.d",
            "v2.x_1-y",
        ] {
            assert_eq!(Kind::parse(kind).unwrap().as_str(), kind);
        }
        // `db_export` is a kind of its own, and so is not db.export's.
        assert_ne!(Kind::parse("db_export"), Kind::parse("db.export"));
    }

    #[test]
    fn host_kinds_are_recognized_after_validation() {
        assert!(Kind::parse("actiongate.bind").unwrap().is_host_kind());
        assert!(Kind::parse("actiongate").unwrap().is_host_kind());
        assert!(!Kind::parse("actiongates.bind").unwrap().is_host_kind());
        assert!(!Kind::parse("x.actiongate").unwrap().is_host_kind());
    }

    #[test]
    fn patterns_allow_whole_segment_globs_only() {
        for p in ["*", "db.*", "db.export", "*.export", "mcp.github.*"] {
            assert_eq!(KindPattern::parse(p).unwrap().as_str(), p);
        }
        for p in [
            "db.ex*",
            "db.?",
            "db.[ab]",
            "{db,iam}.*",
            "DB.*",
            "db.*.",
            "**",
            " *",
            "",
        ] {
            assert!(KindPattern::parse(p).is_err(), "{p:?}");
        }
    }

    #[test]
    fn mcp_tool_kinds() {
        assert_eq!(
            Kind::mcp_tool("github", "create_issue").unwrap().as_str(),
            "mcp.github.create_issue"
        );
        for (upstream, tool) in [
            ("github", "createIssue"),
            ("git.hub", "x"),
            ("github", "a.b"),
            ("github", ""),
            ("", "x"),
            ("github", "read file"),
        ] {
            assert!(
                Kind::mcp_tool(upstream, tool).is_err(),
                "{upstream:?} {tool:?}"
            );
        }
    }

    #[test]
    fn requested_at_is_utc_millis() {
        assert_eq!(action().requested_at_rfc3339(), "2026-11-25T10:00:00.000Z");
    }

    #[test]
    fn an_action_id_is_a_uuid_parsed_once_and_named_when_bad() {
        let id: ActionId = "0190C6C2-0000-7000-8000-000000000001".parse().unwrap();
        // Written as every row and event holds it: lowercase, hyphenated.
        assert_eq!(id.to_string(), "0190c6c2-0000-7000-8000-000000000001");
        assert_eq!(
            serde_json::to_value(id).unwrap(),
            serde_json::json!("0190c6c2-0000-7000-8000-000000000001")
        );
        let bad = "42; DROP".parse::<ActionId>().unwrap_err();
        assert_eq!(bad.to_string(), "\"42; DROP\" is not an action id (a UUID)");
        assert!("".parse::<ActionId>().is_err());
    }

    #[test]
    fn stored_states_parse_and_unknown_ones_are_named() {
        for s in [
            State::Allowed,
            State::Denied,
            State::Pending,
            State::Approved,
            State::Expired,
            State::Executed,
        ] {
            assert_eq!(State::parse(s.as_str()), Ok(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::json!(s.as_str())
            );
        }
        assert_eq!(
            State::parse("Allowed").unwrap_err().to_string(),
            "unknown action state \"Allowed\""
        );
    }
}
