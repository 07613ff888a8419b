//! The MCP gateway: actiongate as an MCP server at `/mcp` in front of
//! configured upstream MCP servers. Every `tools/call` becomes an action
//! through the gate (policy, approval, evidence) and reaches its upstream
//! only once allowed. It never forwards an agent's credentials upstream and
//! never lets an upstream ask the agent's side anything.

pub mod call;
pub mod catalog;
pub mod config;
pub mod front;
pub mod outcomes;
mod sessions;
mod stderr;
pub mod upstream;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::RwLock;

pub use config::{McpConfig, UpstreamConfig};

use crate::evidence::payload::{self, Payload};
use crate::evidence::Actor;
use crate::gate::Gate;
use catalog::Entry;
use upstream::Upstream;

/// The gateway: upstreams, the merged catalog, calls in flight.
pub struct Gateway {
    gate: Arc<Gate>,
    config: McpConfig,
    upstreams: BTreeMap<String, Arc<Upstream>>,
    /// Agent-facing name → entry, as of the latest listing.
    catalog: RwLock<BTreeMap<String, Arc<Entry>>>,
    /// The definition hash last recorded per agent-facing name.
    recorded: tokio::sync::Mutex<HashMap<String, String>>,
    calls: call::Calls,
    /// Outcome records of runs, written after the caller has its result.
    outcomes: outcomes::Outcomes,
    /// Keeps the listing serialized: one refresh at a time.
    refreshing: tokio::sync::Mutex<()>,
    /// Listings started so far (changed only under `refreshing`).
    listings: std::sync::atomic::AtomicU64,
    /// When the latest listing finished.
    listed_at: std::sync::Mutex<Option<Instant>>,
}

/// A call to a name the catalog lacks lists the upstreams again at most
/// this often: a caller trying names cannot turn every call into a listing
/// of every upstream.
const MISS_RELIST: Duration = Duration::from_secs(1);

impl Gateway {
    /// `None` when no upstream is configured.
    pub fn new(
        gate: Arc<Gate>,
        config: &McpConfig,
    ) -> Result<Option<Arc<Gateway>>, config::McpConfigError> {
        config.check()?;
        if config.upstreams.is_empty() {
            return Ok(None);
        }
        let mut upstreams = BTreeMap::new();
        for u in &config.upstreams {
            upstreams.insert(
                u.name.clone(),
                Arc::new(Upstream::new(u.clone(), gate.evidence().clone())?),
            );
        }
        Ok(Some(Arc::new(Gateway {
            gate,
            config: config.clone(),
            upstreams,
            catalog: RwLock::new(BTreeMap::new()),
            recorded: Default::default(),
            calls: Default::default(),
            outcomes: Default::default(),
            refreshing: Default::default(),
            listings: Default::default(),
            listed_at: Default::default(),
        })))
    }

    pub fn config(&self) -> &McpConfig {
        &self.config
    }

    /// The catalog from a listing of every upstream's tools that started
    /// after this call arrived: one that a concurrent caller started
    /// meanwhile, or one started now. Records any definition first seen or
    /// changed since the last listing. An upstream that cannot be listed
    /// offers nothing until it can. However many agents list at once, the
    /// upstreams are listed at most twice (the listing under way when they
    /// came, and one for all of them).
    pub async fn refresh(&self) -> Vec<Arc<Entry>> {
        let arrived = self.listings.load(Ordering::Acquire);
        let _one = self.refreshing.lock().await;
        if self.listings.load(Ordering::Acquire) > arrived {
            return self.catalog.read().await.values().cloned().collect();
        }
        self.list_now().await
    }

    /// `refresh`, for a caller that holds `refreshing`.
    async fn list_now(&self) -> Vec<Arc<Entry>> {
        self.listings.fetch_add(1, Ordering::AcqRel);
        let listings =
            futures_util::future::join_all(self.upstreams.values().map(|u| async move {
                u.take_stale();
                (u.name.clone(), u.list_tools().await)
            }))
            .await;
        let mut catalog = BTreeMap::new();
        for (name, listed) in listings {
            match listed {
                Ok(tools) => {
                    let listing = catalog::list(&name, tools);
                    for (tool, why) in &listing.refused {
                        tracing::warn!(upstream = %name, tool = %tool, reason = why, "tool not offered");
                    }
                    for entry in listing.entries {
                        catalog.insert(entry.name(), Arc::new(entry));
                    }
                }
                Err(e) => {
                    tracing::warn!(upstream = %name, error = %e, "upstream could not be listed; its tools are not offered")
                }
            }
        }
        self.record_definitions(&catalog).await;
        let entries: Vec<Arc<Entry>> = catalog.values().cloned().collect();
        *self.catalog.write().await = catalog;
        *self.listed_at.lock().expect("not poisoned") = Some(Instant::now());
        entries
    }

    /// One `mcp-tool-defined` event per definition first seen or changed:
    /// a rug-pulled tool shows in the log with both hashes.
    async fn record_definitions(&self, catalog: &BTreeMap<String, Arc<Entry>>) {
        let mut recorded = self.recorded.lock().await;
        for (name, entry) in catalog {
            let previous = recorded.get(name).cloned();
            if previous.as_deref() == Some(entry.sha256.as_str()) {
                continue;
            }
            if previous.is_some() {
                tracing::warn!(tool = %name, previous = ?previous, sha256 = %entry.sha256, "tool definition changed");
            }
            let event = payload::McpToolDefined {
                tool: name.clone(),
                upstream: entry.upstream.clone(),
                kind: entry.kind.to_string(),
                sha256: entry.sha256.clone(),
                previous_sha256: previous,
                definition: serde_json::to_value(&entry.definition)
                    .expect("a tool definition is JSON"),
            }
            .event(None, Actor::system(format!("mcp:{}", entry.upstream)));
            match self.gate.evidence().append(event).await {
                Ok(_) => {
                    recorded.insert(name.clone(), entry.sha256.clone());
                }
                // Not recorded: tried again at the next listing.
                Err(e) => {
                    tracing::error!(tool = %name, error = %e, "could not record a tool definition")
                }
            }
        }
    }

    /// The entry for an agent-facing name, listing again when its upstream
    /// said its tools changed, or when the catalog does not have it and no
    /// listing finished within `MISS_RELIST` (one that finished while this
    /// call waited for its turn counts). A name no configured upstream could
    /// offer is never listed for.
    pub async fn entry(&self, name: &str) -> Option<Arc<Entry>> {
        let upstream = catalog::split(name).and_then(|(u, _)| self.upstreams.get(u))?;
        if upstream.take_stale() {
            self.refresh().await;
        } else {
            if let Some(e) = self.catalog.read().await.get(name) {
                return Some(e.clone());
            }
            let _one = self.refreshing.lock().await;
            if !self.listed_within(MISS_RELIST) {
                self.list_now().await;
            }
        }
        self.catalog.read().await.get(name).cloned()
    }

    fn listed_within(&self, period: Duration) -> bool {
        self.listed_at
            .lock()
            .expect("not poisoned")
            .is_some_and(|at| at.elapsed() < period)
    }

    fn upstream(&self, name: &str) -> Option<&Arc<Upstream>> {
        self.upstreams.get(name)
    }

    /// Waits, up to `limit`, until the outcome of every run so far is
    /// recorded (graceful shutdown; tests reading the log after a call).
    /// False if some were still in flight then.
    pub async fn settle_outcomes(&self, limit: std::time::Duration) -> bool {
        self.outcomes.settle(limit).await
    }

    /// Outcome records in flight now.
    pub fn outcomes_in_flight(&self) -> usize {
        self.outcomes.in_flight()
    }

    /// Stops every upstream (stdio children end).
    pub async fn close(&self) {
        for u in self.upstreams.values() {
            u.close().await;
        }
    }
}
