//! Recorded decisions: `evaluated` and `shadow-evaluated` events read back as
//! typed values, and the time windows auditors select them by. Reads only;
//! never trusts a payload it cannot parse (it reports it instead).

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};

use crate::action::{Action, Classification};
use crate::evaluate::PluginRef;
use crate::evidence::payload::{Evaluated, PayloadError, ShadowEvaluated};
use crate::evidence::{EventKind, StoredEvent};
use crate::sandbox::{Limits, PluginFailure};
use crate::store::{EventRow, Store, StoreError, Window};

/// What a plugin said, as recorded: the part replay and backtests compare.
pub use crate::evidence::payload::Output as RecordedOutput;

/// One recorded evaluation of one action by one plugin.
#[derive(Clone, Debug)]
pub struct RecordedEvaluation {
    pub seq: u64,
    pub occurred_at: DateTime<Utc>,
    /// `evaluated` or `shadow-evaluated`.
    pub kind: EventKind,
    pub action_id: String,
    /// `None` when no plugin decided (nothing bound, or it would not load).
    pub plugin: Option<PluginRef>,
    pub input: Action,
    pub output: RecordedOutput,
    /// The failure kind (`trap`, `out-of-fuel`, …) when the plugin failed
    /// and the host failed closed.
    pub failure: Option<String>,
    /// The limits it ran under, when recorded.
    pub limits: Option<Limits>,
    pub fuel_used: Option<u64>,
    /// For a shadow evaluation: the live plugin it ran beside.
    pub live_sha256: Option<String>,
}

/// An evaluation event whose payload is not what the host writes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("seq {seq}: {kind} event is malformed: {reason}")]
pub struct MalformedEvaluation {
    pub seq: u64,
    pub kind: String,
    pub reason: String,
}

impl RecordedEvaluation {
    /// Parses an `evaluated` or `shadow-evaluated` event.
    pub fn from_event(e: &StoredEvent) -> Result<Self, MalformedEvaluation> {
        let bad = |reason: String| MalformedEvaluation {
            seq: e.seq,
            kind: e.kind.to_string(),
            reason,
        };
        if !matches!(e.kind, EventKind::Evaluated | EventKind::ShadowEvaluated) {
            return Err(bad("not an evaluation event".into()));
        }
        // The writers' own types: a field they rename is renamed here too.
        let shape = |x: PayloadError| match x {
            PayloadError::Shape { source, .. } => bad(source.to_string()),
            other => bad(other.to_string()),
        };
        let (p, failure, live_sha256) = if e.kind == EventKind::ShadowEvaluated {
            let s = e.payload_as::<ShadowEvaluated>().map_err(shape)?;
            (s.evaluated, s.failure, s.live_sha256)
        } else {
            (e.payload_as::<Evaluated>().map_err(shape)?, None, None)
        };
        let action_id = e
            .action_id
            .ok_or_else(|| bad("no action_id".into()))?
            .to_string();
        let input = p.input.into_owned();
        if input.id != action_id {
            return Err(bad(format!(
                "input is action {}, the event is about {action_id}",
                input.id
            )));
        }
        let failure = if p.failed_closed {
            Some(
                failure_kind(failure.as_ref(), &p.output.classification)
                    .ok_or_else(|| bad("failed_closed without a failure kind".into()))?,
            )
        } else {
            None
        };
        Ok(RecordedEvaluation {
            seq: e.seq,
            occurred_at: e.occurred_at,
            kind: e.kind,
            action_id,
            plugin: p.plugin,
            input,
            output: p.output,
            failure,
            limits: p.limits,
            fuel_used: p.fuel_used,
            live_sha256,
        })
    }
}

/// The failure kind: from an explicit `failure` (a shadow's) or else from
/// the fail-closed classification's `plugin-failure:KIND` tag.
fn failure_kind(failure: Option<&PluginFailure>, c: &Classification) -> Option<String> {
    failure.map(|f| f.kind().to_owned()).or_else(|| {
        c.tags
            .iter()
            .find_map(|t| t.strip_prefix("plugin-failure:"))
            .map(str::to_owned)
    })
}

/// Recorded evaluations of `kind` in `window`, in seq order; events that do
/// not parse are returned apart so the caller can report them.
pub async fn evaluations_in(
    store: &Store,
    kind: EventKind,
    window: Window,
) -> Result<(Vec<RecordedEvaluation>, Vec<MalformedEvaluation>), StoreError> {
    let rows = store.events_of_kinds(&[kind.as_str()], window).await?;
    Ok(parse_rows(rows))
}

/// The recorded evaluations (live ones) of one action, in seq order.
pub async fn evaluations_of_action(
    store: &Store,
    action_id: uuid::Uuid,
) -> Result<(Vec<RecordedEvaluation>, Vec<MalformedEvaluation>), StoreError> {
    let rows = store
        .events_for_action(action_id)
        .await?
        .into_iter()
        .filter(|r| r.kind == EventKind::Evaluated.as_str())
        .collect();
    Ok(parse_rows(rows))
}

fn parse_rows(rows: Vec<EventRow>) -> (Vec<RecordedEvaluation>, Vec<MalformedEvaluation>) {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for row in rows {
        let (seq, kind) = (row.seq, row.kind.clone());
        match StoredEvent::from_canonical(row.canonical, row.leaf_hash) {
            Ok(e) => match RecordedEvaluation::from_event(&e) {
                Ok(r) => good.push(r),
                Err(m) => bad.push(m),
            },
            Err(e) => bad.push(MalformedEvaluation {
                seq,
                kind,
                reason: e.to_string(),
            }),
        }
    }
    (good, bad)
}

/// A `--since`/`--until` value that is neither a duration nor a date.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a duration (30m, 24h, 7d, 2w) or an RFC 3339 date (2026-01-31, 2026-01-31T12:00:00Z)")]
pub struct WhenError(pub String);

/// `7d`, `24h`, `30m`, `90s`, `2w` (that long before `now`), an RFC 3339
/// timestamp, or a date (midnight UTC).
pub fn parse_when(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, WhenError> {
    let s = s.trim();
    let err = || WhenError(s.to_owned());
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).ok_or_else(err)?.and_utc());
    }
    let unit = s.chars().last().ok_or_else(err)?;
    let n: i64 = s[..s.len() - unit.len_utf8()].parse().map_err(|_| err())?;
    if n < 0 {
        return Err(err());
    }
    let seconds = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return Err(err()),
    };
    let span = n
        .checked_mul(seconds)
        .and_then(chrono::TimeDelta::try_seconds)
        .ok_or_else(err)?;
    now.checked_sub_signed(span).ok_or_else(err)
}

/// The window `[since, until)` from command-line values.
pub fn window(
    since: Option<&str>,
    until: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Window, WhenError> {
    Ok(Window {
        since: since.map(|s| parse_when(s, now)).transpose()?,
        until: until.map(|s| parse_when(s, now)).transpose()?,
    })
}

/// A window as people read it.
pub struct ShowWindow<'a>(pub &'a Window);

impl fmt::Display for ShowWindow<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |t: Option<DateTime<Utc>>| {
            t.map_or_else(
                || "…".to_owned(),
                |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            )
        };
        write!(f, "[{}, {})", show(self.0.since), show(self.0.until))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_dates_are_accepted() {
        let now: DateTime<Utc> = "2026-03-10T12:00:00Z".parse().unwrap();
        let at = |s| parse_when(s, now).unwrap().to_rfc3339();
        assert_eq!(at("7d"), "2026-03-03T12:00:00+00:00");
        assert_eq!(at("24h"), "2026-03-09T12:00:00+00:00");
        assert_eq!(at("30m"), "2026-03-10T11:30:00+00:00");
        assert_eq!(at("2w"), "2026-02-24T12:00:00+00:00");
        assert_eq!(at("2026-01-31"), "2026-01-31T00:00:00+00:00");
        assert_eq!(at("2026-01-31T08:00:00+02:00"), "2026-01-31T06:00:00+00:00");
        for bad in [
            "",
            "7",
            "d",
            "7y",
            "-",
            "-7d",
            "yesterday",
            "99999999999999d",
        ] {
            assert!(parse_when(bad, now).is_err(), "{bad}");
        }
    }

    #[test]
    fn failure_kind_prefers_the_failure_object() {
        let c = Classification {
            risk: crate::action::Risk::Critical,
            reasons: vec![],
            tags: vec!["plugin-failure:trap".into()],
        };
        assert_eq!(failure_kind(None, &c).as_deref(), Some("trap"));
        let f = PluginFailure::OutOfFuel { fuel: 10 };
        assert_eq!(failure_kind(Some(&f), &c).as_deref(), Some("out-of-fuel"));
    }
}
