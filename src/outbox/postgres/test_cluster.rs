//! A throwaway PostgreSQL cluster for tests: Debian's `postgresql` binaries, a new data directory in a
//! temporary folder, its own port on 127.0.0.1, trust authentication. No container, no mock.
//!
//! PostgreSQL refuses to run as root, and CI runs as root, so there the cluster runs as the `postgres`
//! user the package creates. The server is started by a small shell that stops it (fast shutdown) and
//! removes its data when its standard input closes, which happens when the test process exits however it
//! exits, so no server outlives the tests. Shared by the library's unit tests and the integration tests
//! (which include this file by path), and used by nothing else.

#![allow(dead_code)]

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A running (or stopped) test cluster.
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    pub port: u16,
    /// The user and group to run as, when the tests run as root.
    user: Option<(u32, u32)>,
    server: Mutex<Option<(Child, ChildStdin)>>,
}

/// The cluster most tests share: each test makes a database of its own in it.
pub fn shared() -> &'static Cluster {
    static SHARED: OnceLock<Cluster> = OnceLock::new();
    SHARED.get_or_init(Cluster::start)
}

impl Cluster {
    /// Creates and starts a cluster; panics with what is missing if PostgreSQL is not installed.
    pub fn start() -> Cluster {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("chirpd-pg-")
            .tempdir()
            .expect("temp dir")
            .keep();
        let user = as_root().then(postgres_user);
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .expect("chown the cluster's folder");
        }
        let data = dir.join("data");
        let out = command(&bin.join("initdb"), user)
            .args(["-D", &data.display().to_string()])
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let cluster = Cluster {
            dir,
            bin,
            port,
            user,
            server: Mutex::new(None),
        };
        cluster.start_server();
        cluster
    }

    /// A URL for database `db` of this cluster.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{db}?sslmode=disable",
            self.port
        )
    }

    /// Creates a new empty database and returns its URL.
    pub fn create_database(&self) -> String {
        let name = format!("t_{}", uuid::Uuid::now_v7().simple());
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// Runs `sql` in database `db` with psql and returns its unaligned output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        psql(&self.bin, &self.url(db), sql)
    }

    /// Stops the server with a fast shutdown (clients are disconnected, committed data stays), keeping
    /// its data for `start_server`.
    pub fn stop_server(&self) {
        std::fs::write(self.dir.join("keep"), b"").expect("mark the data to keep");
        let taken = self.server.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((mut child, stdin)) = taken {
            drop(stdin);
            let _ = child.wait();
        }
    }

    /// Starts the server on its data and port, and waits until it accepts connections.
    pub fn start_server(&self) {
        let data = self.dir.join("data");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .expect("server log");
        // The shell waits for its input to close, then stops the server and, unless told to keep it,
        // removes the cluster.
        let script = r#"
            "$1/postgres" -D "$2/data" -p "$3" -k "$2" -c listen_addresses=127.0.0.1 \
                -c max_connections=400 -c shared_buffers=32MB -c fsync=on &
            pid=$!
            read _ignored
            kill -INT "$pid"
            wait "$pid"
            if [ -e "$2/keep" ]; then rm -f "$2/keep"; else rm -rf "$2"; fi
        "#;
        let mut child = command(Path::new("/bin/sh"), self.user)
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(&self.bin)
            .arg(&self.dir)
            .arg(self.port.to_string())
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start postgres");
        let stdin = child.stdin.take().expect("stdin");
        assert!(data.exists(), "no data directory at {}", data.display());
        *self.server.lock().unwrap_or_else(|p| p.into_inner()) = Some((child, stdin));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start; see {}",
                self.dir.join("server.log").display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let taken = self.server.lock().unwrap_or_else(|p| p.into_inner()).take();
        match taken {
            // The shell stops the server and removes the cluster.
            Some((mut child, mut stdin)) => {
                let _ = stdin.flush();
                drop(stdin);
                let _ = child.wait();
            }
            // Stopped and kept for a restart that never came.
            None => {
                let _ = std::fs::remove_dir_all(&self.dir);
            }
        }
    }
}

/// Runs `sql` against `url` with psql; panics with psql's error if it fails.
pub fn psql(bin: &Path, url: &str, sql: &str) -> String {
    let out = Command::new(bin.join("psql"))
        .args([
            url,
            "-X",
            "-A",
            "-t",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The folder of the newest installed PostgreSQL's server binaries.
pub fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists() && p.join("postgres").exists())
        .collect();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop().expect(
        "PostgreSQL's server is not installed (/usr/lib/postgresql/*/bin/initdb): `apt-get install postgresql`, as .ci/run does",
    )
}

fn as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn postgres_user() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("run id");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("the postgres user the postgresql package creates")
    };
    (id("-u"), id("-g"))
}

fn command(program: &Path, user: Option<(u32, u32)>) -> Command {
    let mut c = Command::new(program);
    if let Some((uid, gid)) = user {
        c.uid(uid).gid(gid);
        c.env("HOME", "/tmp");
    }
    c.current_dir("/tmp");
    c
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
