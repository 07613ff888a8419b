//! Postgres connections for the request path, reused without a round trip.
//!
//! sqlx's pool pings every connection it takes back (`return_to_pool`), to
//! catch one left mid-query by a cancelled future. On the decision path that
//! ping was a third of all round trips. A lane is returned to the idle list
//! only when its query ran to completion (success or an error the server
//! reported), so a cancelled or broken connection is dropped instead, which
//! is exactly what the ping protected against. A lane idle for longer than
//! [`CHECK_AFTER_IDLE`] is pinged before use, so a database restart during a
//! quiet spell does not fail the next requests on dead connections.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::StoreError;

/// Under load lanes are reused within milliseconds and never pinged.
pub const CHECK_AFTER_IDLE: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Lanes {
    options: PgConnectOptions,
    /// Connections and when each went idle.
    idle: Mutex<Vec<(PgConnection, Instant)>>,
    slots: Arc<Semaphore>,
    acquire_timeout: Duration,
}

/// One connection, held for one query or statement sequence.
pub struct Lane<'a> {
    lanes: &'a Lanes,
    conn: PgConnection,
    slot: OwnedSemaphorePermit,
}

impl Lanes {
    pub fn new(options: PgConnectOptions, max: usize, acquire_timeout: Duration) -> Self {
        Lanes {
            options,
            idle: Mutex::new(Vec::with_capacity(max)),
            slots: Arc::new(Semaphore::new(max)),
            acquire_timeout,
        }
    }

    pub async fn get(&self) -> Result<Lane<'_>, StoreError> {
        let slot = tokio::time::timeout(self.acquire_timeout, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| StoreError::Unavailable(sqlx::Error::PoolTimedOut))?
            .map_err(|_| StoreError::Unavailable(sqlx::Error::PoolClosed))?;
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let idle = match idle {
            Some((mut c, since)) if since.elapsed() >= CHECK_AFTER_IDLE => {
                c.ping().await.ok().map(|()| c)
            }
            other => other.map(|(c, _)| c),
        };
        let conn = match idle {
            Some(c) => c,
            None => tokio::time::timeout(
                self.acquire_timeout,
                PgConnection::connect_with(&self.options),
            )
            .await
            .map_err(|_| StoreError::Unavailable(sqlx::Error::PoolTimedOut))??,
        };
        Ok(Lane {
            lanes: self,
            conn,
            slot,
        })
    }
}

impl Lanes {
    /// [`Lanes::get`], then [`Lane::run`].
    pub async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
    {
        self.get().await?.run(f).await
    }
}

impl Lane<'_> {
    /// Runs `f` on the connection. The connection goes back to the idle list
    /// only if `f` completes with a result the server produced.
    pub async fn run<T, F>(self, f: F) -> Result<T, StoreError>
    where
        F: AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
    {
        let Lane {
            lanes,
            mut conn,
            slot,
        } = self;
        let result = f(&mut conn).await;
        let reusable = match &result {
            Ok(_) => true,
            // The server answered (a constraint, a bad value): the session is fine.
            Err(sqlx::Error::Database(_)) | Err(sqlx::Error::RowNotFound) => true,
            Err(_) => false,
        };
        if reusable {
            lanes
                .idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((conn, Instant::now()));
        }
        drop(slot);
        result.map_err(StoreError::from)
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    async fn backend_pid(lanes: &Lanes) -> i32 {
        let lane = lanes.get().await.unwrap();
        lane.run(async |c| {
            sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(c)
                .await
        })
        .await
        .unwrap()
    }

    /// A lane's connection is reused after a completed query, also one the
    /// server refused, and dropped when its query is cancelled midway.
    #[tokio::test]
    async fn only_connections_whose_query_completed_are_reused() {
        let url = std::env::var("DATABASE_URL")
            .expect("DATABASE_URL: a Postgres to connect to (tests/run sets it)");
        let options = PgConnectOptions::from_str(&url).unwrap();
        let lanes = Lanes::new(options, 1, Duration::from_secs(10));

        let first = backend_pid(&lanes).await;
        assert_eq!(backend_pid(&lanes).await, first, "reused after success");

        let lane = lanes.get().await.unwrap();
        let refused = lane
            .run(async |c| sqlx::query("SELECT 1 / 0").execute(c).await)
            .await;
        assert!(refused.is_err());
        assert_eq!(
            backend_pid(&lanes).await,
            first,
            "reused after a server error"
        );

        let lane = lanes.get().await.unwrap();
        let sleeping = lane.run(async |c| sqlx::query("SELECT pg_sleep(5)").execute(c).await);
        assert!(tokio::time::timeout(Duration::from_millis(200), sleeping)
            .await
            .is_err());
        let after = backend_pid(&lanes).await;
        assert_ne!(after, first, "a cancelled query's connection is not reused");
    }

    /// A lane idle past `CHECK_AFTER_IDLE` whose connection died meanwhile
    /// (a database restart) is replaced before use, not failed on.
    #[tokio::test]
    async fn an_idle_lane_that_died_is_replaced_before_use() {
        let url = std::env::var("DATABASE_URL")
            .expect("DATABASE_URL: a Postgres to connect to (tests/run sets it)");
        let options = PgConnectOptions::from_str(&url).unwrap();
        let lanes = Lanes::new(options.clone(), 1, Duration::from_secs(10));
        let first = backend_pid(&lanes).await;

        let mut admin = PgConnection::connect_with(&options).await.unwrap();
        let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
            .bind(first)
            .fetch_one(&mut admin)
            .await
            .unwrap();
        assert!(killed);
        tokio::time::sleep(CHECK_AFTER_IDLE + Duration::from_millis(100)).await;

        let after = backend_pid(&lanes).await;
        assert_ne!(after, first);
    }
}
