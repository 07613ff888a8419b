//! Who clicked: a Slack user id to a directory person, by the configured
//! `slack_id`, else by `users.lookupByEmail` (cached). Never trusts a name
//! or an email from the payload itself; never builds an `ApproverId` except
//! through a directory lookup.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::client::SlackClient;
use crate::directory::{ApproverId, Directory};

pub struct Identities {
    client: SlackClient,
    lookup_by_email: bool,
    ttl: Duration,
    /// email -> the Slack user id Slack gave for it (`None`: no such user).
    by_email: Mutex<HashMap<String, (Option<String>, Instant)>>,
}

impl Identities {
    pub fn new(client: SlackClient, lookup_by_email: bool, ttl: Duration) -> Identities {
        Identities {
            client,
            lookup_by_email,
            ttl,
            by_email: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, email: &str) -> Option<Option<String>> {
        let cache = self.by_email.lock().expect("identity cache lock");
        cache
            .get(email)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(id, _)| id.clone())
    }

    /// The person `slack_user` is, if the directory knows them.
    pub async fn resolve(&self, dir: &Directory, slack_user: &str) -> Option<ApproverId> {
        if let Some(person) = dir.person_by_slack_id(slack_user) {
            return Some(person.id().clone());
        }
        if !self.lookup_by_email {
            return None;
        }
        // Only people without a configured id are looked up, so a
        // configured `slack_id` always wins over what Slack says.
        let candidates: Vec<_> = dir.people().filter(|p| p.slack_id().is_none()).collect();
        for person in &candidates {
            if self.cached(person.email()).flatten().as_deref() == Some(slack_user) {
                return Some(person.id().clone());
            }
        }
        for person in candidates {
            if self.cached(person.email()).is_some() {
                continue;
            }
            let found = match self
                .client
                .call_form("users.lookupByEmail", &[("email", person.email())])
                .await
            {
                Ok(answer) => answer["user"]["id"].as_str().map(String::from),
                Err(e) if e.api_error() == Some("users_not_found") => None,
                Err(e) => {
                    // Not cached: the next click tries again.
                    tracing::warn!(error = %e, "users.lookupByEmail failed");
                    continue;
                }
            };
            let hit = found.as_deref() == Some(slack_user);
            self.by_email
                .lock()
                .expect("identity cache lock")
                .insert(person.email().to_string(), (found, Instant::now()));
            if hit {
                return Some(person.id().clone());
            }
        }
        None
    }
}
