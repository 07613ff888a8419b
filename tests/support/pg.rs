//! Postgres for tests: the shared cluster from `tests/pg-up` (a database per
//! test) and private throwaway servers that a test may stop and start.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// DATABASE_URL of the shared test cluster (start it with `tests/pg-up`).
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .expect("DATABASE_URL is unset: run `export DATABASE_URL=$(tests/pg-up)` first")
}

fn with_database(url: &str, db: &str) -> String {
    let (url, query) = match url.split_once('?') {
        Some((url, query)) => (url, format!("?{query}")),
        None => (url, String::new()),
    };
    let (base, _) = url
        .rsplit_once('/')
        .expect("DATABASE_URL has a database name");
    format!("{base}/{db}{query}")
}

/// A fresh database on the shared cluster, for tests that hand a URL to other
/// processes (sqlx::test pools cannot be shared with them). Dropped at the end.
pub struct TempDatabase {
    pub url: String,
    name: String,
}

impl TempDatabase {
    pub async fn create(prefix: &str) -> TempDatabase {
        use sqlx::Connection;
        let admin = database_url();
        let name = format!("{prefix}_{}_{}", std::process::id(), rand_suffix());
        let mut c = sqlx::PgConnection::connect(&admin)
            .await
            .expect("connect DATABASE_URL");
        static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
        SWEPT.get_or_init(|| drop_orphans(&admin)).await;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut c)
            .await
            .expect("create db");
        TempDatabase {
            url: with_database(&admin, &name),
            name,
        }
    }
}

impl Drop for TempDatabase {
    /// Drops the database from a thread of its own, without waiting: the
    /// test's runtime must keep running meanwhile, or a connection it was
    /// opening stalls in authentication and holds DROP DATABASE for
    /// `authentication_timeout` (a minute). A drop cut short by the process
    /// exiting is finished by the next test process (`drop_orphans`).
    fn drop(&mut self) {
        let admin = database_url();
        let name = self.name.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(drop_database(&admin, &name))
        });
    }
}

async fn drop_database(admin: &str, name: &str) -> Option<()> {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(admin).await.ok()?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut c)
        .await
        .ok()
        .map(|_| ())
}

/// Drops the temporary databases of test processes that have exited
/// (names are `PREFIX_PID_SUFFIX`).
async fn drop_orphans(admin: &str) {
    use sqlx::Connection;
    let Ok(mut c) = sqlx::PgConnection::connect(admin).await else {
        return;
    };
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database WHERE datname ~ '^[a-z_]+_[0-9]+_[0-9]+$'",
    )
    .fetch_all(&mut c)
    .await
    .unwrap_or_default();
    for name in names {
        let pid = name.rsplit('_').nth(1).and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            drop_database(admin, &name).await;
        }
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish() % 1_000_000_000
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A private Postgres server in a temp dir on a free port, run as the
/// `postgres` user (it refuses root). Trust auth, superuser `postgres`.
/// Stop and start it at will; it is shut down and deleted on drop.
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    pub port: u16,
    /// Extra `-c name=value` server settings, at every start.
    settings: Vec<String>,
}

impl PrivatePostgres {
    pub fn start() -> PrivatePostgres {
        PrivatePostgres::start_with(&[])
    }

    /// `start` with server settings, e.g. `"wal_writer_delay=10s"`.
    pub fn start_with(settings: &[&str]) -> PrivatePostgres {
        let dir = tempfile::Builder::new()
            .prefix("ag-pg-")
            .tempdir()
            .expect("tempdir");
        chown_postgres(dir.path());
        let data = dir.path().join("data");
        run_as_postgres(&[
            &format!("{PG_BIN}/initdb"),
            "-D",
            data.to_str().unwrap(),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ]);
        let port = free_port();
        let pg = PrivatePostgres {
            dir,
            port,
            settings: settings.iter().map(|s| s.to_string()).collect(),
        };
        pg.start_server();
        pg
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the stopped server on the same port and data.
    pub fn start_server(&self) {
        let mut opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        for setting in &self.settings {
            opts.push_str(&format!(" -c {setting}"));
        }
        let log = self.dir.path().join("server.log");
        run_as_postgres(&[
            &format!("{PG_BIN}/pg_ctl"),
            "-D",
            self.data().to_str().unwrap(),
            "-l",
            log.to_str().unwrap(),
            "-o",
            &opts,
            "-w",
            "start",
        ]);
    }

    /// Stops the server (fast shutdown: open transactions roll back).
    pub fn stop(&self) {
        self.stop_mode("fast");
    }

    /// Kills the server as a crash would (immediate shutdown): WAL it has
    /// not written out yet is lost, and the next start recovers from the
    /// rest. (With fsync off, what it wrote survives: this is a crash of
    /// Postgres, not of the machine.)
    pub fn crash(&self) {
        self.stop_mode("immediate");
    }

    fn stop_mode(&self, mode: &str) {
        run_as_postgres(&[
            &format!("{PG_BIN}/pg_ctl"),
            "-D",
            self.data().to_str().unwrap(),
            "-m",
            mode,
            "-w",
            "stop",
        ]);
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--", &format!("{PG_BIN}/pg_ctl"), "-D"])
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

fn run_as_postgres(args: &[&str]) {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .args(args)
        .output()
        .expect("runuser (tests run as root)");
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn chown_postgres(path: &Path) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("id");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("postgres user exists")
    };
    std::os::unix::fs::chown(path, Some(id("-u")), Some(id("-g"))).expect("chown to postgres");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[cfg(test)]
mod tests {
    #[test]
    fn another_database_keeps_the_urls_options() {
        assert_eq!(
            super::with_database("postgres://u:p@h:5432/main?sslmode=require", "t1"),
            "postgres://u:p@h:5432/t1?sslmode=require"
        );
        assert_eq!(
            super::with_database("postgres://u:p@h/main", "t2"),
            "postgres://u:p@h/t2"
        );
    }
}
