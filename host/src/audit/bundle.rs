//! Evidence bundles: the events of chosen actions with inclusion proofs
//! against one signed checkpoint, the plugin hashes (optionally the bytes),
//! so an auditor can check them offline with only the log's verifier key.
//! Export reads the store; verification touches no database and trusts
//! nothing in the bundle but what the given key signed.
//!
//! # Format (version 1)
//!
//! ```json
//! {
//!   "format": "actiongate-evidence-bundle", "version": 1,
//!   "created_at": "2026-03-10T12:00:00Z",
//!   "log": {"origin": "…", "verifier_key": "origin+keyhash+base64"},
//!   "checkpoint": "<C2SP signed note: origin\nsize\nroot\n\n— sig>",
//!   "selection": {"action": "…"} | {"since": "…", "until": "…"},
//!   "actions": [{"id": "…", "seqs": [3, 4, 9]}],
//!   "events": [{"seq": 3, "leaf": "<canonical JSON, the exact leaf bytes>",
//!               "proof": ["<base64 SHA-256>", …]}],
//!   "plugins": [{"sha256": "…", "name": "…", "version": "…",
//!                "wit_version": "…", "bytes": "<base64, with --with-plugins>"}]
//! }
//! ```
//!
//! Each event is a leaf of the log at index `seq`; `proof` is its RFC 9162
//! inclusion proof in the tree the checkpoint signs. `actions` lists the seqs
//! each action had when the checkpoint was signed, so a removed event is
//! named. A bundle proves that what it holds is in the log; that nothing was
//! left out rests on that list and the story rules (`audit verify` over the
//! whole log proves it).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use base64::prelude::{Engine, BASE64_STANDARD};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::canonical::is_canonical;
use crate::evidence::checkpoint;
use crate::evidence::merkle::{check_inclusion, leaf_hash, InclusionProof};
use crate::evidence::payload;
use crate::evidence::{prove_inclusion_in, EventKind, EvidenceError, StoredEvent};
use crate::sandbox::{sha256_hex, SandboxConfig};
use crate::store::{EventRow, Store, StoreError, Window};

use super::recorded::RecordedEvaluation;
use super::replay::{self, Replayer};
use super::story;

pub const FORMAT: &str = "actiongate-evidence-bundle";
pub const VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    pub format: String,
    pub version: u32,
    pub created_at: DateTime<Utc>,
    pub log: LogInfo,
    /// The C2SP signed note every proof is against.
    pub checkpoint: String,
    pub selection: Selection,
    pub actions: Vec<ActionEntry>,
    pub events: Vec<BundleEvent>,
    pub plugins: Vec<BundlePlugin>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogInfo {
    pub origin: String,
    /// The key the exporter used; a verifier uses the key it trusts instead.
    pub verifier_key: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionEntry {
    pub id: Uuid,
    pub seqs: Vec<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleEvent {
    pub seq: u64,
    /// The exact leaf bytes (RFC 8785 canonical JSON).
    pub leaf: String,
    /// Base64 SHA-256 hashes of the inclusion proof.
    pub proof: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundlePlugin {
    pub sha256: String,
    pub name: String,
    pub version: String,
    pub wit_version: String,
    /// Base64 component bytes (`--with-plugins`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<String>,
}

/// Why a bundle could not be made, or could not be checked at all.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Evidence(#[from] EvidenceError),
    #[error("the latest checkpoint does not verify against the log key: {0}")]
    Checkpoint(String),
    #[error("nothing to export: {0}")]
    Empty(String),
    #[error("nothing to export yet: {events} event(s) {what} are not yet covered by a signed checkpoint (the latest covers the first {checkpoint_size} events of the log); the service signs one every `checkpoint_every_seconds` and when it stops gracefully: export again then")]
    NotYetCovered {
        events: usize,
        what: String,
        checkpoint_size: u64,
    },
    #[error("not an evidence bundle: {0}")]
    Format(String),
    #[error("invalid verifier key: {0}")]
    VerifierKey(String),
}

/// What to export.
#[derive(Clone, Copy, Debug)]
pub enum Select {
    Action(Uuid),
    Submitted(Window),
}

/// A bundle and how many selected events it had to leave out.
#[derive(Debug)]
pub struct Exported {
    pub bundle: Bundle,
    /// Selected events committed after the latest signed checkpoint: they
    /// have no proof yet, so they are not in the bundle.
    pub not_covered: usize,
}

/// Builds a bundle of the selected actions' events as of the latest signed
/// checkpoint (later events are left out, and counted: they have no proof yet).
pub async fn export(
    store: &Store,
    select: Select,
    vkey: &str,
    with_plugins: bool,
) -> Result<Exported, BundleError> {
    let what = match select {
        Select::Action(id) => format!("of action {id}"),
        Select::Submitted(_) => "of the actions submitted in that window".to_string(),
    };
    let (rows, selection) = match select {
        Select::Action(id) => (
            store.events_for_action(id).await?,
            Selection {
                action: Some(id),
                ..Selection::default()
            },
        ),
        Select::Submitted(w) => (
            store.events_of_actions_submitted(w).await?,
            Selection {
                action: None,
                since: w.since,
                until: w.until,
            },
        ),
    };
    if rows.is_empty() {
        return Err(BundleError::Empty(match select {
            Select::Action(id) => format!("action {id} has no events"),
            Select::Submitted(_) => "no action was submitted in that window".into(),
        }));
    }
    let Some(cp) = store.latest_checkpoint().await? else {
        return Err(BundleError::NotYetCovered {
            events: rows.len(),
            what,
            checkpoint_size: 0,
        });
    };
    let signed =
        checkpoint::verify(&cp.note, vkey).map_err(|e| BundleError::Checkpoint(e.to_string()))?;
    let selected = rows.len();
    let rows: Vec<EventRow> = rows.into_iter().filter(|r| r.seq < signed.size).collect();
    let not_covered = selected - rows.len();
    if rows.is_empty() {
        return Err(BundleError::NotYetCovered {
            events: not_covered,
            what,
            checkpoint_size: signed.size,
        });
    }
    let mut actions: BTreeMap<Uuid, Vec<u64>> = BTreeMap::new();
    let mut events = Vec::with_capacity(rows.len());
    let mut shas = BTreeSet::new();
    for row in &rows {
        let proof = prove_inclusion_in(store, row.seq, signed.size).await?;
        if let Some(id) = row.action_id {
            actions.entry(id).or_default().push(row.seq);
        }
        if row.kind == EventKind::Evaluated.as_str()
            || row.kind == EventKind::ShadowEvaluated.as_str()
        {
            let e = StoredEvent::from_canonical(row.canonical.clone(), row.leaf_hash)?;
            // A shadow's payload is an evaluation's with more fields.
            let plugin = match e.kind {
                EventKind::ShadowEvaluated => e
                    .payload_as::<payload::ShadowEvaluated>()
                    .ok()
                    .and_then(|p| p.evaluated.plugin),
                _ => e
                    .payload_as::<payload::Evaluated>()
                    .ok()
                    .and_then(|p| p.plugin),
            };
            if let Some(plugin) = plugin {
                shas.insert(plugin.sha256);
            }
        }
        events.push(BundleEvent {
            seq: row.seq,
            leaf: row.canonical.clone(),
            proof: proof
                .hashes
                .iter()
                .map(|h| BASE64_STANDARD.encode(h))
                .collect(),
        });
    }
    let mut plugins = Vec::new();
    for sha in shas {
        // A plugin that is not kept is still listed by hash, from the record.
        let row = store.plugin(&sha).await?;
        let (name, version, wit_version, bytes) = match row {
            Some(p) => (
                p.name,
                p.version,
                p.wit_version,
                with_plugins.then(|| BASE64_STANDARD.encode(&p.bytes)),
            ),
            None => Default::default(),
        };
        plugins.push(BundlePlugin {
            sha256: sha,
            name,
            version,
            wit_version,
            bytes,
        });
    }
    let bundle = Bundle {
        format: FORMAT.into(),
        version: VERSION,
        created_at: Utc::now(),
        log: LogInfo {
            origin: signed.origin,
            verifier_key: vkey.to_owned(),
        },
        checkpoint: cp.note,
        selection,
        actions: actions
            .into_iter()
            .map(|(id, seqs)| ActionEntry { id, seqs })
            .collect(),
        events,
        plugins,
    };
    Ok(Exported {
        bundle,
        not_covered,
    })
}

/// Parses a bundle file, refusing other formats and versions.
pub fn parse(text: &str) -> Result<Bundle, BundleError> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| BundleError::Format(e.to_string()))?;
    if v["format"] != FORMAT {
        return Err(BundleError::Format(format!(
            "format is {}, want {FORMAT:?}",
            v["format"]
        )));
    }
    if v["version"] != VERSION {
        return Err(BundleError::Format(format!(
            "version {} is not supported (this actiongate reads version {VERSION})",
            v["version"]
        )));
    }
    serde_json::from_value(v).map_err(|e| BundleError::Format(e.to_string()))
}

/// Where in the bundle something is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    Checkpoint,
    /// An event, by its position in `events` and the seq it claims.
    Event {
        position: usize,
        seq: u64,
        action: Option<Uuid>,
    },
    Action(Uuid),
    Plugin(String),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Checkpoint => write!(f, "checkpoint"),
            Place::Event {
                position,
                seq,
                action,
            } => {
                write!(f, "event seq {seq} (events[{position}]")?;
                if let Some(a) = action {
                    write!(f, ", action {a}")?;
                }
                write!(f, ")")
            }
            Place::Action(a) => write!(f, "action {a}"),
            Place::Plugin(sha) => write!(f, "plugin {sha}"),
        }
    }
}

/// One thing wrong with a bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub place: Place,
    pub what: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.place, self.what)
    }
}

/// The result of checking a bundle.
#[derive(Debug, Default)]
pub struct Report {
    pub events: usize,
    pub actions: usize,
    pub checkpoint_size: Option<u64>,
    pub findings: Vec<Finding>,
    /// With plugin bytes in the bundle: the decisions replayed.
    pub replay: Option<replay::Report>,
}

impl Report {
    pub fn is_ok(&self) -> bool {
        self.findings.is_empty() && self.replay.as_ref().is_none_or(replay::Report::is_ok)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", if self.is_ok() { "OK" } else { "FAIL" })?;
        writeln!(
            f,
            "events: {}, actions: {}, checkpoint: {}",
            self.events,
            self.actions,
            self.checkpoint_size
                .map_or_else(|| "not verified".to_owned(), |s| s.to_string())
        )?;
        for x in &self.findings {
            writeln!(f, "  {x}")?;
        }
        match &self.replay {
            Some(r) => write!(f, "replay of the decisions on the bundled plugins:\n{r}"),
            None => writeln!(
                f,
                "decisions not replayed (export with --with-plugins to include the plugin bytes)"
            ),
        }
    }
}

/// Checks a bundle against the verifier key the auditor trusts: the
/// checkpoint's signature, every leaf and inclusion proof, the action lists,
/// the story rules, and (when the bytes are there) a replay of the decisions.
pub fn verify(bundle: &Bundle, vkey: &str, sandbox: SandboxConfig) -> Result<Report, BundleError> {
    signed_note::StandardVerifier::new(vkey)
        .map_err(|e| BundleError::VerifierKey(e.to_string()))?;
    let mut report = Report {
        events: bundle.events.len(),
        actions: bundle.actions.len(),
        ..Report::default()
    };
    let mut flag = |place: Place, what: String| report.findings.push(Finding { place, what });

    let signed = match checkpoint::verify(&bundle.checkpoint, vkey) {
        Ok(c) => Some(c),
        Err(e) => {
            let named = if bundle.log.verifier_key == vkey {
                String::new()
            } else {
                format!("; the bundle names the key {}", bundle.log.verifier_key)
            };
            flag(
                Place::Checkpoint,
                format!("signature does not verify against the given key ({e}){named}; no proof can be trusted"),
            );
            None
        }
    };

    // Leaves and proofs.
    let mut parsed: Vec<StoredEvent> = Vec::new();
    let mut previous: Option<u64> = None;
    for (position, be) in bundle.events.iter().enumerate() {
        let event = StoredEvent::from_canonical(be.leaf.clone(), leaf_hash(&be.leaf));
        let action = event.as_ref().ok().and_then(|e| e.action_id);
        let place = Place::Event {
            position,
            seq: be.seq,
            action,
        };
        if let Some(p) = previous.filter(|p| be.seq <= *p) {
            flag(
                place.clone(),
                format!("out of order: it follows seq {p} (events are listed by ascending seq)"),
            );
        }
        previous = Some(previous.map_or(be.seq, |p| p.max(be.seq)));
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                flag(place, format!("leaf does not parse: {e}"));
                continue;
            }
        };
        if !is_canonical(&be.leaf) {
            flag(place.clone(), "leaf is not RFC 8785 canonical JSON".into());
        }
        if event.seq != be.seq {
            flag(place.clone(), format!("the leaf says seq {}", event.seq));
        }
        if let Some(cp) = &signed {
            let hashes: Result<Vec<[u8; 32]>, String> = be
                .proof
                .iter()
                .map(|h| {
                    BASE64_STANDARD
                        .decode(h)
                        .map_err(|e| e.to_string())
                        .and_then(|v| v.try_into().map_err(|_| "not 32 bytes".to_owned()))
                })
                .collect();
            match hashes {
                Err(e) => flag(
                    place.clone(),
                    format!("proof hash is not base64 SHA-256: {e}"),
                ),
                Ok(_) if be.seq >= cp.size => flag(
                    place.clone(),
                    format!("beyond the checkpoint, which covers seq 0..{}", cp.size),
                ),
                Ok(hashes) => {
                    let proof = InclusionProof {
                        index: be.seq,
                        tree_size: cp.size,
                        leaf_hash: leaf_hash(&be.leaf),
                        root_hash: cp.root,
                        hashes,
                    };
                    if !check_inclusion(&proof) {
                        flag(
                            place.clone(),
                            format!(
                                "inclusion proof does not verify against checkpoint {}: the event's bytes or its proof were altered",
                                cp.size
                            ),
                        );
                    }
                }
            }
        }
        parsed.push(event);
    }

    // Every listed event is present, and every present event is listed.
    let present: BTreeMap<u64, Option<Uuid>> =
        parsed.iter().map(|e| (e.seq, e.action_id)).collect();
    let mut listed: BTreeSet<u64> = BTreeSet::new();
    for entry in &bundle.actions {
        for seq in &entry.seqs {
            listed.insert(*seq);
            match present.get(seq) {
                None => flag(
                    Place::Action(entry.id),
                    format!(
                        "event seq {seq} is listed for this action but missing from the bundle"
                    ),
                ),
                Some(a) if *a != Some(entry.id) => flag(
                    Place::Action(entry.id),
                    format!(
                        "event seq {seq} is listed for this action but is about {}",
                        a.map_or("no action".into(), |a| a.to_string())
                    ),
                ),
                Some(_) => {}
            }
        }
    }
    for (position, e) in parsed.iter().enumerate() {
        if !listed.contains(&e.seq) {
            flag(
                Place::Event {
                    position,
                    seq: e.seq,
                    action: e.action_id,
                },
                "not listed under any action".into(),
            );
        }
    }

    // The story of each action, in seq order (the seq is what the proof binds).
    let mut by_action: BTreeMap<Uuid, Vec<&StoredEvent>> = BTreeMap::new();
    for e in &parsed {
        if let Some(id) = e.action_id {
            by_action.entry(id).or_default().push(e);
        }
    }
    for (id, events) in by_action.iter_mut() {
        events.sort_by_key(|e| e.seq);
        for v in story::check(events) {
            flag(Place::Action(*id), v.to_string());
        }
    }

    // Plugins: each decision's plugin is listed; bytes, when given, are that hash.
    let mut replayer = Replayer::new(sandbox);
    let mut all_bytes = !bundle.plugins.is_empty();
    for p in &bundle.plugins {
        let bytes = match p.bytes.as_deref().map(|b| BASE64_STANDARD.decode(b)) {
            None => {
                all_bytes = false;
                None
            }
            Some(Err(e)) => {
                flag(
                    Place::Plugin(p.sha256.clone()),
                    format!("bytes are not base64: {e}"),
                );
                None
            }
            Some(Ok(b)) => {
                let actual = sha256_hex(&b);
                if actual != p.sha256 {
                    flag(
                        Place::Plugin(p.sha256.clone()),
                        format!("the bundled bytes hash to {actual}"),
                    );
                }
                Some(b)
            }
        };
        replayer.insert_plugin(&p.sha256, bytes);
    }
    let mut recorded = Vec::new();
    for (position, e) in parsed.iter().enumerate() {
        if !matches!(e.kind, EventKind::Evaluated | EventKind::ShadowEvaluated) {
            continue;
        }
        match RecordedEvaluation::from_event(e) {
            Ok(r) => {
                if let Some(p) = &r.plugin {
                    if !bundle.plugins.iter().any(|b| b.sha256 == p.sha256) {
                        flag(
                            Place::Event {
                                position,
                                seq: e.seq,
                                action: e.action_id,
                            },
                            format!(
                                "field plugin.sha256: plugin {} is not listed in plugins",
                                p.sha256
                            ),
                        );
                    }
                }
                recorded.push(r);
            }
            Err(m) => flag(
                Place::Event {
                    position,
                    seq: e.seq,
                    action: e.action_id,
                },
                m.reason,
            ),
        }
    }
    report.checkpoint_size = signed.as_ref().map(|c| c.size);
    if all_bytes {
        report.replay = Some(replay::Report {
            replayed: replayer.replay_all(&recorded),
            malformed: Vec::new(),
        });
    }
    Ok(report)
}
