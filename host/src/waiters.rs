//! Wakes long-polls and event streams when an action changes, on this
//! replica directly and on every replica through Postgres LISTEN/NOTIFY.
//! A wakeup only says "look again": waiters always re-read the database.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::broadcast;

use crate::store::ACTION_CHANNEL;

#[derive(Clone)]
pub struct Waiters {
    tx: broadcast::Sender<Arc<str>>,
}

impl Default for Waiters {
    fn default() -> Self {
        Waiters {
            tx: broadcast::channel(1024).0,
        }
    }
}

impl Waiters {
    pub fn subscribe(&self) -> Subscription {
        Subscription {
            rx: self.tx.subscribe(),
        }
    }

    pub fn wake(&self, action_id: &str) {
        let _ = self.tx.send(action_id.into());
    }

    /// Relays NOTIFYs from other replicas, reconnecting until the process ends.
    pub fn listen_postgres(&self, pool: PgPool) -> tokio::task::JoinHandle<()> {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            loop {
                match relay(&pool, &tx).await {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "LISTEN connection lost; waiters fall back to polling until it returns");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        })
    }
}

async fn relay(pool: &PgPool, tx: &broadcast::Sender<Arc<str>>) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(ACTION_CHANNEL).await?;
    loop {
        let notification = listener.recv().await?;
        let _ = tx.send(notification.payload().into());
    }
}

pub struct Subscription {
    rx: broadcast::Receiver<Arc<str>>,
}

impl Subscription {
    /// Resolves when `action_id` may have changed (or wakeups were lost).
    pub async fn changed(&mut self, action_id: &str) {
        loop {
            match self.rx.recv().await {
                Ok(id) if &*id == action_id => return,
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(_)) => return,
                Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
            }
        }
    }

    /// Resolves when any action may have changed (or wakeups were lost).
    pub async fn any(&mut self) {
        if let Err(broadcast::error::RecvError::Closed) = self.rx.recv().await {
            std::future::pending::<()>().await
        }
    }
}
