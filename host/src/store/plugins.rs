//! Plugin bytes by sha256 (`plugins`): inserted once, never changed, read
//! back to replay or backtest recorded decisions.

use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::{on_pool, Store, StoreError};

/// One stored plugin. `bytes` is empty in listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginRow {
    pub sha256: String,
    pub name: String,
    pub version: String,
    pub wit_version: String,
    pub bytes: Vec<u8>,
    pub registered_at: DateTime<Utc>,
    pub registered_by: String,
    pub signer: Option<String>,
}

impl Store {
    /// Stores a plugin. `Ok(false)` when its sha256 was already stored (the
    /// first registration stays).
    pub async fn insert_plugin(&self, p: &PluginRow) -> Result<bool, StoreError> {
        let inserted = on_pool!(self, pool => sqlx::query(
            "INSERT INTO plugins (sha256, name, version, wit_version, bytes, registered_at, registered_by, signer)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(&p.sha256)
        .bind(&p.name)
        .bind(&p.version)
        .bind(&p.wit_version)
        .bind(&p.bytes)
        .bind(p.registered_at)
        .bind(&p.registered_by)
        .bind(&p.signer)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(inserted == 1)
    }

    /// Whether a plugin is stored under `sha256` (without reading its bytes).
    pub async fn has_plugin(&self, sha256: &str) -> Result<bool, StoreError> {
        Ok(
            on_pool!(self, pool => sqlx::query("SELECT 1 FROM plugins WHERE sha256 = $1")
            .bind(sha256)
            .fetch_optional(pool)
            .await
            .map(|r| r.is_some()))?,
        )
    }

    /// The plugin stored under `sha256`, bytes included.
    pub async fn plugin(&self, sha256: &str) -> Result<Option<PluginRow>, StoreError> {
        let row = on_pool!(self, pool => sqlx::query(
            "SELECT sha256, name, version, wit_version, bytes, registered_at, registered_by, signer
             FROM plugins WHERE sha256 = $1",
        )
        .bind(sha256)
        .fetch_optional(pool)
        .await
        .map(|r| r.map(|r| PluginRow {
            sha256: r.get("sha256"),
            name: r.get("name"),
            version: r.get("version"),
            wit_version: r.get("wit_version"),
            bytes: r.get("bytes"),
            registered_at: r.get("registered_at"),
            registered_by: r.get("registered_by"),
            signer: r.get("signer"),
        })))?;
        Ok(row)
    }

    /// Every stored plugin without its bytes, oldest registration first.
    pub async fn plugins(&self) -> Result<Vec<PluginRow>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query(
            "SELECT sha256, name, version, wit_version, registered_at, registered_by, signer
             FROM plugins ORDER BY registered_at, sha256",
        )
        .fetch_all(pool)
        .await
        .map(|rows| rows
            .into_iter()
            .map(|r| PluginRow {
                sha256: r.get("sha256"),
                name: r.get("name"),
                version: r.get("version"),
                wit_version: r.get("wit_version"),
                bytes: Vec::new(),
                registered_at: r.get("registered_at"),
                registered_by: r.get("registered_by"),
                signer: r.get("signer"),
            })
            .collect::<Vec<_>>()))?)
    }
}
