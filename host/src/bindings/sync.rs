//! Keeps this replica's evaluator in step with the bindings store: reload
//! on a Postgres NOTIFY from whichever replica made a change, and on a
//! short poll in case a notification was missed. Loads a bound plugin from
//! its stored bytes (checked against its sha256) when this replica has not
//! seen it yet.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::Notify;

use super::Bindings;
use crate::evaluate::Binding;
use crate::store::{Store, StoreError, BINDINGS_CHANNEL};

impl Bindings {
    /// Re-reads the store and replaces the evaluator's bindings if anything
    /// changed since the last reload. A plugin that cannot be loaded leaves
    /// its binding in place, failing closed when used.
    pub async fn reload(&self) -> Result<(), StoreError> {
        let mut loaded = self.loaded.lock().await;
        let version = self.store.bindings_version().await?;
        if version == *loaded {
            return Ok(());
        }
        let rows = self.store.current_bindings().await?;
        let mut missing: Vec<String> = Vec::new();
        for row in &rows {
            for sha in std::iter::once(&row.sha256).chain(row.shadow.as_ref()) {
                if self.evaluator.plugin(sha).is_none() && !missing.contains(sha) {
                    missing.push(sha.clone());
                }
            }
        }
        for sha in &missing {
            self.load_plugin(sha).await?;
        }
        let bindings = rows
            .into_iter()
            .map(|r| Binding {
                pattern: r.pattern,
                sha256: r.sha256,
                shadow: r.shadow,
            })
            .collect();
        if let Err(e) = self.evaluator.replace_bindings(bindings) {
            // INVARIANT: patterns are checked before they are stored.
            return Err(StoreError::Corrupt(format!("stored binding: {e}")));
        }
        tracing::debug!(version, "bindings reloaded");
        *loaded = version;
        Ok(())
    }

    async fn load_plugin(&self, sha: &str) -> Result<(), StoreError> {
        let Some(row) = self.store.plugin(sha).await? else {
            tracing::error!(
                sha256 = sha,
                "bound plugin is not stored; its binding fails closed"
            );
            return Ok(());
        };
        let sandbox = self.evaluator.sandbox().clone();
        let pin = sha.to_string();
        let loaded = tokio::task::spawn_blocking(move || sandbox.load(&row.bytes, Some(&pin)))
            .await
            .expect("loading never panics: failures are values");
        match loaded {
            Ok(plugin) => self.evaluator.insert(plugin),
            Err(e) => {
                tracing::error!(sha256 = sha, failure = %e, "stored plugin does not load; its binding fails closed")
            }
        }
        Ok(())
    }

    /// Reloads on every change notification and at least every `poll`,
    /// until the process ends. Each round also applies four-eyes changes
    /// that were approved but not yet applied (after a crash).
    pub fn spawn_sync(self: Arc<Self>, poll: Duration) -> tokio::task::JoinHandle<()> {
        let wake = Arc::new(Notify::new());
        if let Store::Postgres(pool, ..) = &self.store {
            listen(pool.clone(), wake.clone());
        }
        tokio::spawn(async move {
            loop {
                let _ = tokio::time::timeout(poll, wake.notified()).await;
                if let Err(e) = self.reload().await {
                    tracing::warn!(error = %e, "could not reload bindings; keeping the last ones");
                }
                self.apply_approved().await;
            }
        })
    }
}

/// Relays NOTIFYs on the bindings channel, reconnecting until the process ends.
fn listen(pool: PgPool, wake: Arc<Notify>) {
    tokio::spawn(async move {
        loop {
            let relayed: Result<(), sqlx::Error> = async {
                let mut listener = PgListener::connect_with(&pool).await?;
                listener.listen(BINDINGS_CHANNEL).await?;
                // Anything changed while we were not listening is caught now.
                wake.notify_one();
                loop {
                    listener.recv().await?;
                    wake.notify_one();
                }
            }
            .await;
            if let Err(e) = relayed {
                tracing::warn!(error = %e, "bindings LISTEN lost; polling until it returns");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    });
}
