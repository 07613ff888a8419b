//! Which agent opened each MCP session (2025-11-25's `Mcp-Session-Id`): a
//! session answers only that agent, as the MCP spec's security practices
//! advise against session hijacking. rmcp's session manager knows sessions,
//! not agents, so the front records the agent when a session is handed out
//! and asks here before every request that names one. Another agent's
//! request in a session is answered as if the session did not exist: it
//! cannot call in it, read its streams, resume them or end it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;

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

/// Session id → the id of the agent that opened it.
pub struct SessionOwners {
    manager: Arc<LocalSessionManager>,
    owners: Mutex<HashMap<String, String>>,
    /// Sessions rmcp ended on its own (idle, or their worker stopped) are
    /// dropped from `owners` when it reaches this size.
    prune_at: Mutex<usize>,
}

/// The smallest `prune_at`: pruning reads every live session.
const PRUNE_FLOOR: usize = 1024;

impl SessionOwners {
    pub fn new(manager: Arc<LocalSessionManager>) -> Self {
        SessionOwners {
            manager,
            owners: Mutex::new(HashMap::new()),
            prune_at: Mutex::new(PRUNE_FLOOR),
        }
    }

    /// What `session` names for `agent`.
    pub async fn named(&self, session: &str, agent: &str) -> Named {
        let own = match self.owners.lock().expect("not poisoned").get(session) {
            Some(owner) => owner == agent,
            None => return Named::Unknown,
        };
        if !self.manager.sessions.read().await.contains_key(session) {
            self.owners.lock().expect("not poisoned").remove(session);
            return Named::Unknown;
        }
        if own {
            Named::Own
        } else {
            Named::Other
        }
    }

    /// `agent` was handed `session`.
    pub async fn opened(&self, session: String, agent: String) {
        let size = {
            let mut owners = self.owners.lock().expect("not poisoned");
            owners.insert(session, agent);
            owners.len()
        };
        if size < *self.prune_at.lock().expect("not poisoned") {
            return;
        }
        let live = self.manager.sessions.read().await;
        let mut owners = self.owners.lock().expect("not poisoned");
        owners.retain(|id, _| live.contains_key(id.as_str()));
        *self.prune_at.lock().expect("not poisoned") = (owners.len() * 2).max(PRUNE_FLOOR);
    }

    /// Its agent ended `session`.
    pub fn closed(&self, session: &str) {
        self.owners.lock().expect("not poisoned").remove(session);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.owners.lock().expect("not poisoned").len()
    }
}

#[cfg(test)]
mod tests {
    use rmcp::transport::streamable_http_server::SessionManager;

    use super::*;

    #[tokio::test]
    async fn a_session_is_its_openers_and_ended_sessions_are_forgotten() {
        let manager = Arc::new(LocalSessionManager::default());
        let owners = SessionOwners::new(manager.clone());
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
            owners.opened(format!("gone-{i}"), "coder".into()).await;
        }
        assert_eq!(owners.len(), 1, "pruned at the floor: the live one stays");
        owners.opened("s2".into(), "coder".into()).await;
        owners.closed("s2");
        assert_eq!(owners.len(), 1);
    }
}
