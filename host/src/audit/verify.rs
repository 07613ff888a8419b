//! `audit verify`: recomputes every leaf and the whole tree from the stored
//! events, checks every checkpoint's signature and the consistency between
//! consecutive checkpoints, and names the first altered or missing seq.
//! Reads only; trusts nothing stored except the verifier key it is given.

use std::fmt;

use tlog_tiles::tlog;

use crate::canonical::is_canonical;
use crate::evidence::checkpoint;
use crate::evidence::merkle::{check_consistency, leaf_hash, ConsistencyProof, TreeBuilder};
use crate::evidence::StoredEvent;
use crate::store::{EventRow, Store, StoreError};

const PAGE: u64 = 10_000;
/// Findings beyond this many are counted, not listed.
const MAX_FINDINGS: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("invalid verifier key: {0}")]
    VerifierKey(String),
}

/// One integrity failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// No row holds this seq although later rows or a checkpoint need it.
    Missing { seq: u64 },
    /// The row at `seq` is not what was committed.
    Altered { seq: u64, reason: String },
    /// A stored interior tree node differs from the recomputed one.
    TreeHash { index: u64, level: u8, n: u64 },
    /// A checkpoint is unsigned, forged, or commits to other events.
    Checkpoint {
        size: u64,
        reason: String,
        first_seq: Option<u64>,
    },
    /// Two consecutive checkpoints are not consistent.
    Inconsistent { from: u64, to: u64 },
}

impl Finding {
    /// The seq this finding names exactly, if it does.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Finding::Missing { seq } | Finding::Altered { seq, .. } => Some(*seq),
            _ => None,
        }
    }

    /// The earliest seq this finding could implicate.
    fn earliest(&self) -> Option<u64> {
        match self {
            Finding::TreeHash { level, n, .. } => Some(n << level),
            Finding::Checkpoint { first_seq, .. } => *first_seq,
            other => other.seq(),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::Missing { seq } => write!(f, "seq {seq}: missing"),
            Finding::Altered { seq, reason } => write!(f, "seq {seq}: altered ({reason})"),
            Finding::TreeHash { index, level, n } => {
                write!(
                    f,
                    "tree node {index} (level {level}, #{n}): differs from the recomputed tree"
                )
            }
            Finding::Checkpoint { size, reason, .. } => write!(f, "checkpoint {size}: {reason}"),
            Finding::Inconsistent { from, to } => {
                write!(f, "checkpoints {from} -> {to}: not consistent")
            }
        }
    }
}

#[derive(Debug, Default)]
pub struct Report {
    /// Rows read.
    pub events: u64,
    /// Length of the gap-free prefix whose tree was recomputed.
    pub verified_prefix: u64,
    pub checkpoints: usize,
    /// Size of the latest valid checkpoint.
    pub integrated: u64,
    pub findings: Vec<Finding>,
    pub more_findings: usize,
}

impl Report {
    pub fn is_ok(&self) -> bool {
        self.findings.is_empty()
    }

    /// The first altered or missing seq: exact when a row is named, else the
    /// start of the first range a checkpoint or tree node says changed.
    pub fn first_bad_seq(&self) -> Option<u64> {
        let exact = self.findings.iter().filter_map(Finding::seq).min();
        exact.or_else(|| self.findings.iter().filter_map(Finding::earliest).min())
    }

    fn push(&mut self, f: Finding) {
        if self.findings.len() < MAX_FINDINGS {
            self.findings.push(f);
        } else {
            self.more_findings += 1;
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(seq) = self.first_bad_seq() {
            writeln!(f, "FAIL: first altered or missing seq: {seq}")?;
        } else if !self.is_ok() {
            writeln!(f, "FAIL")?;
        } else {
            writeln!(f, "OK")?;
        }
        writeln!(
            f,
            "events: {}, checkpoints: {}, integrated: {}",
            self.events, self.checkpoints, self.integrated
        )?;
        for x in &self.findings {
            writeln!(f, "  {x}")?;
        }
        if self.more_findings > 0 {
            writeln!(f, "  … and {} more", self.more_findings)?;
        }
        Ok(())
    }
}

/// Verifies the whole log in `store` against the log's verifier key.
pub async fn verify(store: &Store, vkey: &str) -> Result<Report, AuditError> {
    signed_note::StandardVerifier::new(vkey).map_err(|e| AuditError::VerifierKey(e.to_string()))?;
    let mut report = Report::default();
    let mut tree = TreeBuilder::new();
    let mut next = 0u64;
    let mut gap = false;
    loop {
        let rows = store.events_page(next, PAGE).await?;
        let Some(last) = rows.last().map(|r| r.seq) else {
            break;
        };
        for row in rows {
            report.events += 1;
            if row.seq != next {
                for seq in next..row.seq.min(next + MAX_FINDINGS as u64) {
                    report.push(Finding::Missing { seq });
                }
                gap = true;
            }
            let recomputed = leaf_hash(&row.canonical);
            if let Some(reason) = check_row(&row, &recomputed) {
                report.push(Finding::Altered {
                    seq: row.seq,
                    reason,
                });
            }
            if !gap {
                tree.push(recomputed)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            }
            next = row.seq + 1;
        }
        next = last + 1;
    }
    report.verified_prefix = tree.size();

    let checkpoints = store.checkpoints().await?;
    report.checkpoints = checkpoints.len();
    let covered = checkpoints.iter().map(|c| c.size).max().unwrap_or(0);
    if covered > tree.size() && !gap {
        report.push(Finding::Missing { seq: tree.size() });
    }
    compare_tree_hashes(store, &tree, covered.min(tree.size()), &mut report).await?;

    // (size, signed root, whether that root matched the recomputed tree)
    let mut prev: Option<(u64, [u8; 32], bool)> = None;
    for cp in &checkpoints {
        let first_seq = prev.map_or(0, |p| p.0);
        let bad = |reason: String| Finding::Checkpoint {
            size: cp.size,
            reason,
            first_seq: None,
        };
        let v = match checkpoint::verify(&cp.note, vkey) {
            Ok(v) => v,
            Err(e) => {
                report.push(bad(format!("signature does not verify: {e}")));
                continue;
            }
        };
        if v.size != cp.size || v.root != cp.root_hash {
            report.push(bad("signed note disagrees with its row".into()));
        }
        let mut matched = false;
        if v.size <= tree.size() {
            let root = tree
                .root_at(v.size)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            matched = root == v.root;
            if !matched {
                report.push(Finding::Checkpoint {
                    size: v.size,
                    reason: format!(
                        "root does not match the stored events (an event in seq {first_seq}..{} changed)",
                        v.size
                    ),
                    first_seq: Some(first_seq),
                });
            }
            // Proved from the recomputed tree, checked against the two signed
            // roots; a root already reported above cannot be proved consistent.
            if let Some((from, from_root, _)) = prev.filter(|p| p.0 > 0 && p.2 && matched) {
                let proof = ConsistencyProof {
                    from,
                    to: v.size,
                    from_root,
                    to_root: v.root,
                    hashes: tree
                        .prove_consistency(from, v.size)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                };
                if !check_consistency(&proof) {
                    report.push(Finding::Inconsistent { from, to: v.size });
                }
            }
            if matched {
                report.integrated = v.size;
            }
        }
        prev = Some((v.size, v.root, matched));
    }
    report
        .findings
        .sort_by_key(|f| f.earliest().unwrap_or(u64::MAX));
    Ok(report)
}

/// Why the row is not a committed event, if it is not.
fn check_row(row: &EventRow, recomputed: &[u8; 32]) -> Option<String> {
    if *recomputed != row.leaf_hash {
        return Some("event does not match its leaf hash".into());
    }
    if !is_canonical(&row.canonical) {
        return Some("event is not RFC 8785 canonical JSON".into());
    }
    let e = match StoredEvent::from_canonical(row.canonical.clone(), row.leaf_hash) {
        Ok(e) => e,
        Err(e) => return Some(e.to_string()),
    };
    if e.seq != row.seq {
        return Some(format!("event says seq {}", e.seq));
    }
    if e.kind.as_str() != row.kind || e.action_id != row.action_id || e.actor.id != row.actor_id {
        return Some("columns disagree with the event".into());
    }
    if e.occurred_at != row.occurred_at {
        return Some("occurred_at column disagrees with the event".into());
    }
    None
}

/// Compares the stored tree nodes for the first `size` leaves with the recomputed ones.
async fn compare_tree_hashes(
    store: &Store,
    tree: &TreeBuilder,
    size: u64,
    report: &mut Report,
) -> Result<(), AuditError> {
    use tlog::HashReader;
    let end = tlog::stored_hash_count(size);
    let mut bad_leaves: Vec<u64> = Vec::new();
    let mut start = 0;
    while start < end {
        let stop = (start + PAGE * 2).min(end);
        let stored = store.tree_hash_range(start, stop).await?;
        let mut stored = stored.into_iter().peekable();
        for index in start..stop {
            let want = tree
                .read_hashes(&[index])
                .map_err(|e| StoreError::Corrupt(e.to_string()))?[0]
                .0;
            let got = match stored.peek() {
                Some((i, h)) if *i == index => {
                    let h = *h;
                    stored.next();
                    Some(h)
                }
                _ => None,
            };
            if got != Some(want) {
                let (level, n) = tlog::split_stored_hash_index(index);
                let (lo, hi) = (n << level, (n + 1) << level);
                if level == 0 {
                    bad_leaves.push(n);
                    report.push(Finding::Altered {
                        seq: n,
                        reason: "differs from the leaf hash integrated into the tree".into(),
                    });
                } else if !bad_leaves.iter().any(|&l| lo <= l && l < hi) {
                    // A node over an altered leaf differs as a consequence; only
                    // report nodes that are wrong on their own.
                    report.push(Finding::TreeHash { index, level, n });
                }
            }
        }
        start = stop;
    }
    Ok(())
}
