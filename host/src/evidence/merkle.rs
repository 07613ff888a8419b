//! RFC 6962 Merkle tree over the evidence leaves, using tlog_tiles (a port of
//! Go's sumdb/tlog). Computes roots and proofs; never writes to the store.

use std::cell::RefCell;
use std::collections::HashMap;

use tlog_tiles::tlog::{self, Hash, HashReader};

use super::EvidenceError;
use crate::store::Store;

/// Proof that leaf `index` is in the tree of `tree_size` leaves (RFC 9162 2.1.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionProof {
    pub index: u64,
    pub tree_size: u64,
    pub leaf_hash: [u8; 32],
    pub root_hash: [u8; 32],
    pub hashes: Vec<[u8; 32]>,
}

/// Proof that the tree of `from` leaves is a prefix of the tree of `to` (RFC 9162 2.1.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsistencyProof {
    pub from: u64,
    pub to: u64,
    pub from_root: [u8; 32],
    pub to_root: [u8; 32],
    pub hashes: Vec<[u8; 32]>,
}

pub fn leaf_hash(canonical: &str) -> [u8; 32] {
    tlog::record_hash(canonical.as_bytes()).0
}

/// A reader that first records which stored hashes a tlog function wants,
/// then serves them once they are fetched. tlog's provers ask for one fixed
/// index set per call, which depends only on the sizes, never on hash values.
enum StoreReader {
    Record(RefCell<Vec<u64>>),
    Serve(HashMap<u64, Hash>),
}

impl HashReader for StoreReader {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog::Error> {
        match self {
            StoreReader::Record(seen) => {
                seen.borrow_mut().extend_from_slice(indexes);
                Ok(vec![Hash::default(); indexes.len()])
            }
            StoreReader::Serve(known) => indexes
                .iter()
                .map(|i| known.get(i).copied().ok_or(tlog::Error::IndexesNotInTree))
                .collect(),
        }
    }
}

/// Runs `f` against the stored tree hashes with two passes (sync tlog, async store).
pub(super) async fn over_store<T>(
    store: &Store,
    f: impl Fn(&ReadFn<'_>) -> Result<T, tlog::Error>,
) -> Result<T, EvidenceError> {
    let rec = StoreReader::Record(RefCell::new(Vec::new()));
    let _ = f(&|i| rec.read_hashes(i));
    let StoreReader::Record(seen) = rec else {
        unreachable!()
    };
    let mut indexes = seen.into_inner();
    indexes.sort_unstable();
    indexes.dedup();
    let hashes = store.tree_hashes(&indexes).await?;
    let serve = StoreReader::Serve(
        indexes
            .into_iter()
            .zip(hashes.into_iter().map(Hash))
            .collect(),
    );
    f(&|i| serve.read_hashes(i)).map_err(|e| EvidenceError::Proof(e.to_string()))
}

/// Adapts a closure to tlog's `HashReader`.
pub(super) struct FnReader<'a>(pub &'a ReadFn<'a>);

/// A `HashReader` as a closure.
pub(super) type ReadFn<'a> = dyn Fn(&[u64]) -> Result<Vec<Hash>, tlog::Error> + 'a;

impl HashReader for FnReader<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog::Error> {
        (self.0)(indexes)
    }
}

/// Appends leaves to a tree known by its frontier (the complete subtrees of
/// its current size), producing the stored hashes the new leaves add.
pub struct TreeBuilder {
    frontier: HashMap<u64, Hash>,
    start_idx: u64,
    appended: Vec<Hash>,
    size: u64,
}

impl TreeBuilder {
    /// An empty tree.
    pub fn new() -> Self {
        Self::resume(0, Vec::new()).expect("empty frontier")
    }

    /// Stored indexes of the frontier of a tree of `size` leaves.
    pub fn frontier_indexes(size: u64) -> Vec<u64> {
        tlog::sub_tree_index(0, size, Vec::new())
    }

    /// A tree of `size` leaves given the hashes at `frontier_indexes(size)`.
    pub fn resume(size: u64, frontier: Vec<[u8; 32]>) -> Result<Self, EvidenceError> {
        let idx = Self::frontier_indexes(size);
        if idx.len() != frontier.len() {
            return Err(EvidenceError::Corrupt(
                "frontier has the wrong length".into(),
            ));
        }
        Ok(TreeBuilder {
            frontier: idx
                .into_iter()
                .zip(frontier.into_iter().map(Hash))
                .collect(),
            start_idx: if size == 0 {
                0
            } else {
                tlog::stored_hash_index(0, size)
            },
            appended: Vec::new(),
            size,
        })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn push(&mut self, leaf_hash: [u8; 32]) -> Result<(), EvidenceError> {
        let hashes = tlog::stored_hashes_for_record_hash(self.size, Hash(leaf_hash), &*self)
            .map_err(|e| EvidenceError::Proof(e.to_string()))?;
        // INVARIANT: record n's hashes start at stored_hash_index(0, n), right
        // after record n-1's, so `appended` stays dense.
        debug_assert_eq!(
            tlog::stored_hash_index(0, self.size),
            self.start_idx + self.appended.len() as u64
        );
        self.appended.extend(hashes);
        self.size += 1;
        Ok(())
    }

    /// Root of the first `n` leaves (any `n` whose subtrees this builder holds).
    pub fn root_at(&self, n: u64) -> Result<[u8; 32], EvidenceError> {
        tlog::tree_hash(n, self)
            .map(|h| h.0)
            .map_err(|e| EvidenceError::Proof(e.to_string()))
    }

    pub fn root(&self) -> Result<[u8; 32], EvidenceError> {
        self.root_at(self.size)
    }

    /// The hashes added since `resume`, and the stored index of the first.
    pub fn appended(&self) -> (u64, Vec<[u8; 32]>) {
        (self.start_idx, self.appended.iter().map(|h| h.0).collect())
    }

    /// Consistency proof between two sizes this builder holds (from >= 1).
    pub fn prove_consistency(&self, from: u64, to: u64) -> Result<Vec<[u8; 32]>, EvidenceError> {
        tlog::prove_tree(to, from, self)
            .map(|p| p.into_iter().map(|h| h.0).collect())
            .map_err(|e| EvidenceError::Proof(e.to_string()))
    }
}

impl Default for TreeBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl HashReader for TreeBuilder {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog::Error> {
        indexes
            .iter()
            .map(|&i| {
                if i >= self.start_idx {
                    self.appended.get((i - self.start_idx) as usize).copied()
                } else {
                    self.frontier.get(&i).copied()
                }
                .ok_or(tlog::Error::IndexesNotInTree)
            })
            .collect()
    }
}

/// Checks an inclusion proof with tlog's verifier.
pub fn check_inclusion(p: &InclusionProof) -> bool {
    let proof: Vec<Hash> = p.hashes.iter().map(|h| Hash(*h)).collect();
    tlog::check_record(
        &proof,
        p.tree_size,
        Hash(p.root_hash),
        p.index,
        Hash(p.leaf_hash),
    )
    .is_ok()
}

/// Checks a consistency proof with tlog's verifier.
pub fn check_consistency(p: &ConsistencyProof) -> bool {
    let proof: Vec<Hash> = p.hashes.iter().map(|h| Hash(*h)).collect();
    tlog::check_tree(&proof, p.to, Hash(p.to_root), p.from, Hash(p.from_root)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    /// RFC 6962 2.1 MTH, straight from the definition.
    fn mth(leaves: &[[u8; 32]]) -> [u8; 32] {
        match leaves.len() {
            0 => Sha256::digest([]).into(),
            1 => leaves[0],
            n => {
                let mut k = 1;
                while k * 2 < n {
                    k *= 2;
                }
                let mut h = Sha256::new();
                h.update([1]);
                h.update(mth(&leaves[..k]));
                h.update(mth(&leaves[k..]));
                h.finalize().into()
            }
        }
    }

    fn leaves(n: usize) -> Vec<[u8; 32]> {
        (0..n)
            .map(|i| leaf_hash(&format!("{{\"i\":{i}}}")))
            .collect()
    }

    #[test]
    fn roots_match_rfc6962_definition_at_every_size() {
        let l = leaves(70);
        let mut t = TreeBuilder::new();
        assert_eq!(t.root().unwrap(), mth(&[]));
        for (i, h) in l.iter().enumerate() {
            t.push(*h).unwrap();
            assert_eq!(t.root().unwrap(), mth(&l[..=i]), "size {}", i + 1);
        }
        for n in 0..=70 {
            assert_eq!(t.root_at(n).unwrap(), mth(&l[..n as usize]));
        }
    }

    #[test]
    fn resumed_builder_adds_the_same_hashes() {
        let l = leaves(45);
        let mut full = TreeBuilder::new();
        l.iter().for_each(|h| full.push(*h).unwrap());
        for cut in [0u64, 1, 2, 3, 7, 8, 13, 32, 44] {
            let idx = TreeBuilder::frontier_indexes(cut);
            let frontier: Vec<[u8; 32]> = full
                .read_hashes(&idx)
                .unwrap()
                .into_iter()
                .map(|h| h.0)
                .collect();
            let mut part = TreeBuilder::resume(cut, frontier).unwrap();
            l[cut as usize..]
                .iter()
                .for_each(|h| part.push(*h).unwrap());
            assert_eq!(part.root().unwrap(), full.root().unwrap(), "cut {cut}");
            let (start, added) = part.appended();
            let want: Vec<[u8; 32]> = (start..start + added.len() as u64)
                .map(|i| full.read_hashes(&[i]).unwrap()[0].0)
                .collect();
            assert_eq!(added, want, "cut {cut}");
        }
    }

    #[test]
    fn proofs_check_and_tampered_proofs_fail() {
        let l = leaves(21);
        let mut t = TreeBuilder::new();
        l.iter().for_each(|h| t.push(*h).unwrap());
        for to in 1..=21u64 {
            for from in 1..=to {
                let p = ConsistencyProof {
                    from,
                    to,
                    from_root: t.root_at(from).unwrap(),
                    to_root: t.root_at(to).unwrap(),
                    hashes: t.prove_consistency(from, to).unwrap(),
                };
                assert!(check_consistency(&p), "{from}->{to}");
                if let Some(h) = p.hashes.first() {
                    let mut bad = p.clone();
                    bad.hashes[0] = [h[0] ^ 1; 32];
                    assert!(!check_consistency(&bad), "tampered {from}->{to}");
                }
            }
            for index in 0..to {
                let hashes = tlog::prove_record(to, index, &t).unwrap();
                let mut p = InclusionProof {
                    index,
                    tree_size: to,
                    leaf_hash: l[index as usize],
                    root_hash: t.root_at(to).unwrap(),
                    hashes: hashes.into_iter().map(|h| h.0).collect(),
                };
                assert!(check_inclusion(&p));
                p.leaf_hash[0] ^= 1;
                assert!(!check_inclusion(&p));
            }
        }
    }
}
