//! Event types of the evidence log and the canonical envelope that becomes a
//! Merkle leaf. Pure data: never touches the database.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::EvidenceError;
use crate::canonical;
use crate::store::NewRow;

/// Version of the envelope below; bump when its fields change.
pub const ENVELOPE_VERSION: u32 = 1;

/// Largest canonical event accepted, so one payload cannot bloat a batch.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActorKind {
    Agent,
    Human,
    System,
    Plugin,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: String,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Agent => "agent",
            ActorKind::Human => "human",
            ActorKind::System => "system",
            ActorKind::Plugin => "plugin",
        }
    }
}

impl Actor {
    pub fn system(id: impl Into<String>) -> Self {
        Actor {
            kind: ActorKind::System,
            id: id.into(),
        }
    }
}

macro_rules! event_kinds {
    ($($variant:ident = $name:literal,)*) => {
        /// What happened. Serialized kebab-case; add variants freely (never rename).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "kebab-case")]
        pub enum EventKind { $($variant,)* }

        impl EventKind {
            pub const ALL: &'static [EventKind] = &[$(EventKind::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self { $(EventKind::$variant => $name,)* }
            }
        }
    };
}

event_kinds! {
    Submitted = "submitted",
    Evaluated = "evaluated",
    ShadowEvaluated = "shadow-evaluated",
    PluginFailed = "plugin-failed",
    Notified = "notified",
    NotifyFailed = "notify-failed",
    Reviewed = "reviewed",
    Approved = "approved",
    Denied = "denied",
    Expired = "expired",
    Reminded = "reminded",
    Escalated = "escalated",
    Granted = "granted",
    GrantReused = "grant-reused",
    Executed = "executed",
    BindingChanged = "binding-changed",
    PluginRegistered = "plugin-registered",
    SignedIn = "signed-in",
    SignInRefused = "sign-in-refused",
    // MCP gateway: a tool definition first seen or changed; an upstream's
    // request to the client that was refused.
    McpToolDefined = "mcp-tool-defined",
    McpRequestRefused = "mcp-request-refused",
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event as the caller hands it in; it has no seq and no time yet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    pub kind: EventKind,
    pub action_id: Option<Uuid>,
    pub actor: Actor,
    pub payload: Value,
}

/// An event that is durably in the log: its seq is assigned and committed.
/// It is *pending* until a checkpoint covers `seq` (see `EvidenceLog::state`).
/// Only the writer builds one, after COMMIT (the private field enforces it).
#[derive(Clone, Debug, PartialEq)]
pub struct CommittedEvent {
    pub seq: u64,
    pub occurred_at: DateTime<Utc>,
    pub leaf_hash: [u8; 32],
    pub event: NewEvent,
    pub(super) canonical: String,
}

impl CommittedEvent {
    /// The exact leaf bytes (RFC 8785 canonical JSON).
    pub fn canonical(&self) -> &str {
        &self.canonical
    }
}

/// An event read back from the store.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    pub seq: u64,
    pub occurred_at: DateTime<Utc>,
    pub kind: EventKind,
    pub action_id: Option<Uuid>,
    pub actor: Actor,
    pub payload: Value,
    pub leaf_hash: [u8; 32],
    pub canonical: String,
}

/// The leaf, exactly: `{"action_id","actor","occurred_at","payload","seq","type","v"}`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub action_id: Option<Uuid>,
    pub actor: Actor,
    pub occurred_at: String,
    pub payload: Value,
    pub seq: u64,
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub v: u32,
}

/// Timestamps are kept to the microsecond, which both stores represent exactly.
pub fn truncate_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    let micros = t.timestamp_micros();
    DateTime::from_timestamp_micros(micros).unwrap_or(t)
}

pub fn format_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// An event whose canonical parts are computed before it reaches the writer,
/// so a bad payload fails its own caller and never the batch it would join.
#[derive(Debug)]
pub(super) struct PreparedEvent {
    pub event: NewEvent,
    head: String,
    middle: String,
    tail: String,
}

impl PreparedEvent {
    pub fn new(event: NewEvent) -> Result<Self, EvidenceError> {
        let action = canonical::to_string(&event.action_id)?;
        let actor = canonical::to_string(&event.actor)?;
        let payload = canonical::value_to_string(&event.payload)?;
        let kind = canonical::to_string(&event.kind)?;
        // Keys in RFC 8785 order (all ASCII, so UTF-16 order is byte order);
        // the unit test `envelope_matches_full_canonicalization` pins this.
        let head = format!("{{\"action_id\":{action},\"actor\":{actor},\"occurred_at\":\"");
        let middle = format!("\",\"payload\":{payload},\"seq\":");
        let tail = format!(",\"type\":{kind},\"v\":{ENVELOPE_VERSION}}}");
        let size = head.len() + middle.len() + tail.len() + 64;
        if size > MAX_EVENT_BYTES {
            return Err(EvidenceError::TooLarge {
                bytes: size,
                max: MAX_EVENT_BYTES,
            });
        }
        Ok(PreparedEvent {
            event,
            head,
            middle,
            tail,
        })
    }

    /// The canonical leaf for this event at `seq` and `occurred_at`.
    #[cfg(test)]
    pub fn canonical(&self, seq: u64, occurred_at: &DateTime<Utc>) -> String {
        self.row().canonical(&format_time(occurred_at), seq)
    }

    /// The row to store: the leaf split around the two values the store fills
    /// in, `head ‖ occurred_at ‖ middle ‖ seq ‖ tail`.
    pub fn row(&self) -> NewRow<'_> {
        NewRow {
            head: &self.head,
            middle: &self.middle,
            tail: &self.tail,
            kind: self.event.kind.as_str(),
            action_id: self.event.action_id,
            actor_kind: self.event.actor.kind.as_str(),
            actor_id: &self.event.actor.id,
            owner: None,
        }
    }
}

impl StoredEvent {
    pub fn from_canonical(canonical: String, leaf_hash: [u8; 32]) -> Result<Self, EvidenceError> {
        let env: Envelope = serde_json::from_str(&canonical)
            .map_err(|e| EvidenceError::Corrupt(format!("event is not a valid envelope: {e}")))?;
        let occurred_at = DateTime::parse_from_rfc3339(&env.occurred_at)
            .map_err(|e| EvidenceError::Corrupt(format!("occurred_at: {e}")))?
            .with_timezone(&Utc);
        Ok(StoredEvent {
            seq: env.seq,
            occurred_at,
            kind: env.kind,
            action_id: env.action_id,
            actor: env.actor,
            payload: env.payload,
            leaf_hash,
            canonical,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> NewEvent {
        NewEvent {
            kind: EventKind::ShadowEvaluated,
            action_id: Some(Uuid::from_u128(0x1234)),
            actor: Actor {
                kind: ActorKind::Plugin,
                id: "ünïcode\"quote".into(),
            },
            payload: json!({"z": 1, "a": [1.5, "x", null], "€": {"b": true, "a": 1e21}}),
        }
    }

    #[test]
    fn envelope_matches_full_canonicalization() {
        let at = truncate_micros(Utc::now());
        for action_id in [None, Some(Uuid::from_u128(7))] {
            let mut e = sample();
            e.action_id = action_id;
            let p = PreparedEvent::new(e.clone()).unwrap();
            let env = Envelope {
                action_id: e.action_id,
                actor: e.actor.clone(),
                occurred_at: format_time(&at),
                payload: e.payload.clone(),
                seq: 42,
                kind: e.kind,
                v: ENVELOPE_VERSION,
            };
            assert_eq!(p.canonical(42, &at), canonical::to_string(&env).unwrap());
        }
    }

    #[test]
    fn stored_event_round_trips() {
        let at = truncate_micros(Utc::now());
        let p = PreparedEvent::new(sample()).unwrap();
        let s = StoredEvent::from_canonical(p.canonical(9, &at), [0; 32]).unwrap();
        assert_eq!(
            (s.seq, s.occurred_at, s.kind),
            (9, at, EventKind::ShadowEvaluated)
        );
        assert_eq!(s.payload, sample().payload);
        assert_eq!(s.actor, sample().actor);
    }

    #[test]
    fn kinds_serialize_kebab_case() {
        for k in EventKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), json!(k.as_str()));
        }
        assert_eq!(EventKind::GrantReused.as_str(), "grant-reused");
        for a in [
            ActorKind::Agent,
            ActorKind::Human,
            ActorKind::System,
            ActorKind::Plugin,
        ] {
            assert_eq!(serde_json::to_value(a).unwrap(), json!(a.as_str()));
        }
    }

    #[test]
    fn oversized_payload_is_refused() {
        let mut e = sample();
        e.payload = json!("x".repeat(MAX_EVENT_BYTES));
        assert!(matches!(
            PreparedEvent::new(e),
            Err(EvidenceError::TooLarge { .. })
        ));
    }
}
