//! Which agent opened each MCP session (2025-11-25's `Mcp-Session-Id`): a
//! session answers only that agent, as the MCP spec's security practices
//! advise against session hijacking, and an agent keeps at most
//! `[mcp] sessions_per_agent` of them. rmcp's session manager knows
//! sessions, not agents, so the front records the agent when a session is
//! handed out and asks here before every request that names one. Another
//! agent's request in a session is answered as if the session did not
//! exist: it cannot call in it, read its streams, resume them or end it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::SessionManager;

/// What a session id names, for the agent that sent it.
#[derive(Debug, PartialEq, Eq)]
pub enum Named {
    /// A live session this agent opened.
    Own,
    /// A live session another agent opened.
    Other,
    /// No live session.
    Unknown,
}

pub struct SessionOwners {
    manager: Arc<LocalSessionManager>,
    per_agent: usize,
    state: Mutex<Owners>,
}

#[derive(Default)]
struct Owners {
    /// Session id → the id of the agent that opened it.
    agent_of: HashMap<String, String>,
    /// Agent id → its sessions, oldest first.
    sessions_of: HashMap<String, VecDeque<String>>,
    /// Sessions rmcp ended on its own (idle for its keep-alive) are dropped
    /// when `agent_of` reaches this size.
    prune_at: usize,
}

/// The smallest `prune_at`: pruning reads every live session.
const PRUNE_FLOOR: usize = 1024;

impl Owners {
    fn forget(&mut self, session: &str) {
        let Some(agent) = self.agent_of.remove(session) else {
            return;
        };
        if let Some(sessions) = self.sessions_of.get_mut(&agent) {
            sessions.retain(|s| s != session);
            if sessions.is_empty() {
                self.sessions_of.remove(&agent);
            }
        }
    }
}

impl SessionOwners {
    pub fn new(manager: Arc<LocalSessionManager>, per_agent: usize) -> Self {
        SessionOwners {
            manager,
            per_agent,
            state: Mutex::new(Owners {
                prune_at: PRUNE_FLOOR,
                ..Owners::default()
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Owners> {
        self.state.lock().expect("not poisoned")
    }

    /// What `session` names for `agent`.
    pub async fn named(&self, session: &str, agent: &str) -> Named {
        let own = match self.state().agent_of.get(session) {
            Some(owner) => owner == agent,
            None => return Named::Unknown,
        };
        if !self.manager.sessions.read().await.contains_key(session) {
            self.state().forget(session);
            return Named::Unknown;
        }
        if own {
            Named::Own
        } else {
            Named::Other
        }
    }

    /// `agent` was handed `session`. Past `sessions_per_agent`, its oldest
    /// session ends (a client that never ends its sessions cannot pile them
    /// up; others' sessions are untouched).
    pub async fn opened(&self, session: String, agent: String) {
        let (evicted, prune) = {
            let mut state = self.state();
            state.agent_of.insert(session.clone(), agent.clone());
            let sessions = state.sessions_of.entry(agent.clone()).or_default();
            sessions.push_back(session);
            let excess = sessions.len().saturating_sub(self.per_agent);
            let evicted: Vec<String> = sessions.drain(..excess).collect();
            for s in &evicted {
                state.agent_of.remove(s);
            }
            (evicted, state.agent_of.len() >= state.prune_at)
        };
        for s in evicted {
            tracing::info!(agent = %agent, limit = self.per_agent, "an agent opened more MCP sessions than allowed; its oldest was ended");
            if let Err(e) = self.manager.close_session(&s.into()).await {
                tracing::warn!(agent = %agent, error = %e, "could not end an MCP session");
            }
        }
        if prune {
            let live = self.manager.sessions.read().await;
            let mut state = self.state();
            let gone: Vec<String> = state
                .agent_of
                .keys()
                .filter(|id| !live.contains_key(id.as_str()))
                .cloned()
                .collect();
            for s in gone {
                state.forget(&s);
            }
            state.prune_at = (state.agent_of.len() * 2).max(PRUNE_FLOOR);
        }
    }

    /// Its agent ended `session`.
    pub fn closed(&self, session: &str) {
        self.state().forget(session);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        let state = self.state();
        let listed: usize = state.sessions_of.values().map(VecDeque::len).sum();
        assert_eq!(listed, state.agent_of.len(), "both maps agree");
        listed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_session_is_its_openers_and_ended_sessions_are_forgotten() {
        let manager = Arc::new(LocalSessionManager::default());
        let owners = SessionOwners::new(manager.clone(), 8);
        assert_eq!(owners.named("s1", "coder").await, Named::Unknown);
        let (live, _transport) = manager.create_session().await.unwrap();
        owners.opened(live.to_string(), "coder".into()).await;
        assert_eq!(owners.named(&live, "coder").await, Named::Own);
        assert_eq!(owners.named(&live, "intruder").await, Named::Other);
        owners.closed(&live);
        assert_eq!(owners.named(&live, "coder").await, Named::Unknown);
        // Recorded but not live in rmcp (it ended on its own): unknown, and
        // forgotten.
        owners.opened("s1".into(), "coder".into()).await;
        assert_eq!(owners.named("s1", "coder").await, Named::Unknown);
        assert_eq!(owners.len(), 0);
        owners.opened(live.to_string(), "coder".into()).await;
        // Sessions rmcp no longer has are pruned once the map is large.
        for i in 1..PRUNE_FLOOR {
            owners
                .opened(format!("gone-{i}"), format!("agent-{}", i % 200))
                .await;
        }
        assert_eq!(owners.len(), 1, "pruned at the floor: the live one stays");
        assert_eq!(owners.named(&live, "coder").await, Named::Own);
    }

    #[tokio::test]
    async fn an_agent_past_its_session_limit_loses_its_oldest_session_only() {
        let manager = Arc::new(LocalSessionManager::default());
        let owners = SessionOwners::new(manager.clone(), 2);
        let open = |agent: &'static str| {
            let manager = manager.clone();
            let owners = &owners;
            async move {
                let (id, transport) = manager.create_session().await.unwrap();
                owners.opened(id.to_string(), agent.into()).await;
                (id, transport)
            }
        };
        let (other, _t0) = open("other").await;
        let (first, _t1) = open("coder").await;
        let (second, _t2) = open("coder").await;
        let (third, _t3) = open("coder").await;
        assert!(!manager.has_session(&first).await.unwrap(), "ended in rmcp");
        assert_eq!(owners.named(&first, "coder").await, Named::Unknown);
        for id in [&second, &third] {
            assert_eq!(owners.named(id, "coder").await, Named::Own);
        }
        assert_eq!(owners.named(&other, "other").await, Named::Own);
        assert!(manager.has_session(&other).await.unwrap());
        assert_eq!(owners.len(), 3);
    }
}
