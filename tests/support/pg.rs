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
    let (base, _) = url
        .rsplit_once('/')
        .expect("DATABASE_URL has a database name");
    format!("{base}/{db}")
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
    fn drop(&mut self) {
        let admin = database_url();
        let name = self.name.clone();
        // Drop runs outside any runtime; use a small one of our own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&admin).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut c)
                    .await
                    .ok()
            })
        })
        .join();
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
}

impl PrivatePostgres {
    pub fn start() -> PrivatePostgres {
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
        let pg = PrivatePostgres { dir, port };
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
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
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
        run_as_postgres(&[
            &format!("{PG_BIN}/pg_ctl"),
            "-D",
            self.data().to_str().unwrap(),
            "-m",
            "fast",
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
