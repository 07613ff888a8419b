//! The evidence log's read-only routes: the checkpoint, proofs and entries,
//! for auditors. Never appends; the auditor's key is checked by the layer
//! the API puts around them.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::prelude::{Engine, BASE64_STANDARD};
use serde::{Deserialize, Serialize};

use super::error::Problem;
use crate::evidence::EvidenceLog;

/// A query that does not parse is a problem naming why.
fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, Problem> {
    q.map(|Query(q)| q).map_err(|r| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-query",
            "Bad query parameters",
            r.body_text(),
        )
    })
}

/// Most entries served per request.
pub const MAX_ENTRIES: u64 = 1000;

/// `GET /v1/log/checkpoint`, `/v1/log/proof/inclusion?index=&size=`,
/// `/v1/log/proof/consistency?from=&to=`, `/v1/log/entries?start=&end=`.
pub fn router(log: EvidenceLog) -> Router {
    Router::new()
        .route("/v1/log/checkpoint", get(checkpoint))
        .route("/v1/log/proof/inclusion", get(inclusion))
        .route("/v1/log/proof/consistency", get(consistency))
        .route("/v1/log/entries", get(entries))
        .with_state(log)
}

fn b64(h: &[u8; 32]) -> String {
    BASE64_STANDARD.encode(h)
}

/// The latest signed checkpoint (a C2SP signed note).
#[utoipa::path(get, path = "/v1/log/checkpoint", tag = "auditors",
    responses(
        (status = 200, description = "The latest C2SP tlog checkpoint (signed note)", content_type = "text/plain"),
        (status = 404, description = "No checkpoint signed yet"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn checkpoint(State(log): State<EvidenceLog>) -> Result<Response, Problem> {
    match log.checkpoint().await? {
        Some(c) => Ok((
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            c.note,
        )
            .into_response()),
        None => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "no-checkpoint",
            "No checkpoint yet",
            "the log has not signed a checkpoint yet",
        )),
    }
}

#[derive(Deserialize)]
pub(crate) struct InclusionQuery {
    index: u64,
    size: u64,
}

#[derive(Serialize)]
pub(crate) struct InclusionBody {
    index: u64,
    tree_size: u64,
    leaf_hash: String,
    root_hash: String,
    hashes: Vec<String>,
}

/// An RFC 6962 inclusion proof of leaf `index` in the tree of `size` leaves.
#[utoipa::path(get, path = "/v1/log/proof/inclusion", tag = "auditors",
    params(("index" = u64, Query), ("size" = u64, Query, description = "At most the latest checkpoint's size")),
    responses(
        (status = 200, description = "index, tree_size, leaf_hash, root_hash, hashes (base64)"),
        (status = 400, description = "Out of range or a bad query"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn inclusion(
    State(log): State<EvidenceLog>,
    q: Result<Query<InclusionQuery>, QueryRejection>,
) -> Result<Json<InclusionBody>, Problem> {
    let q = query(q)?;
    let p = log.prove_inclusion(q.index, q.size).await?;
    Ok(Json(InclusionBody {
        index: p.index,
        tree_size: p.tree_size,
        leaf_hash: b64(&p.leaf_hash),
        root_hash: b64(&p.root_hash),
        hashes: p.hashes.iter().map(b64).collect(),
    }))
}

#[derive(Deserialize)]
pub(crate) struct ConsistencyQuery {
    from: u64,
    to: u64,
}

#[derive(Serialize)]
pub(crate) struct ConsistencyBody {
    from: u64,
    to: u64,
    from_root: String,
    to_root: String,
    hashes: Vec<String>,
}

/// An RFC 6962 consistency proof between two tree sizes.
#[utoipa::path(get, path = "/v1/log/proof/consistency", tag = "auditors",
    params(("from" = u64, Query), ("to" = u64, Query, description = "At most the latest checkpoint's size")),
    responses(
        (status = 200, description = "from, to, from_root, to_root, hashes (base64)"),
        (status = 400, description = "Out of range or a bad query"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn consistency(
    State(log): State<EvidenceLog>,
    q: Result<Query<ConsistencyQuery>, QueryRejection>,
) -> Result<Json<ConsistencyBody>, Problem> {
    let q = query(q)?;
    let p = log.prove_consistency(q.from, q.to).await?;
    Ok(Json(ConsistencyBody {
        from: p.from,
        to: p.to,
        from_root: b64(&p.from_root),
        to_root: b64(&p.to_root),
        hashes: p.hashes.iter().map(b64).collect(),
    }))
}

#[derive(Deserialize)]
pub(crate) struct EntriesQuery {
    start: u64,
    end: u64,
}

#[derive(Serialize)]
pub(crate) struct Entry {
    seq: u64,
    leaf_hash: String,
    /// The exact leaf bytes; SHA-256(0x00 ‖ canonical) is `leaf_hash`.
    canonical: String,
}

#[derive(Serialize)]
pub(crate) struct EntriesBody {
    entries: Vec<Entry>,
}

/// Committed entries `start <= seq < end` with their exact leaf bytes.
#[utoipa::path(get, path = "/v1/log/entries", tag = "auditors",
    params(("start" = u64, Query), ("end" = u64, Query, description = "At most start + 1000")),
    responses(
        (status = 200, description = "entries: seq, leaf_hash (base64), canonical (RFC 8785 JSON)"),
        (status = 400, description = "Out of range or a bad query"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn entries(
    State(log): State<EvidenceLog>,
    q: Result<Query<EntriesQuery>, QueryRejection>,
) -> Result<Json<EntriesBody>, Problem> {
    let q = query(q)?;
    if q.end < q.start || q.end - q.start > MAX_ENTRIES {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "out-of-range",
            "Out of range",
            format!("need start <= end <= start + {MAX_ENTRIES}"),
        ));
    }
    let es = log.entries(q.start, q.end).await?;
    Ok(Json(EntriesBody {
        entries: es
            .into_iter()
            .map(|e| Entry {
                seq: e.seq,
                leaf_hash: b64(&e.leaf_hash),
                canonical: e.canonical,
            })
            .collect(),
    }))
}
