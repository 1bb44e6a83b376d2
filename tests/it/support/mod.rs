//! Test support: a running daemon on 127.0.0.1:0 with a temporary store, request signing, fixtures.

pub mod fake_mastodon;
pub mod fake_x;
/// The throwaway PostgreSQL cluster, shared with the library's own tests.
#[path = "../../../src/outbox/postgres/test_cluster.rs"]
pub mod pg;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use chirpd::app::Control;
use chirpd::config::{self, ProcessEnv};
use hmac::{Hmac, KeyInit, Mac};

use crate::support::fake_x::FakeX;

pub const SECRET: &str = "It's a Secret to Everybody";

/// The route set most tests use: every GitHub kind of the example templates, to one tweet destination.
pub fn config_toml(store: &Path, x_url: &str, extra_destination: &str) -> String {
    let templates = format!("{}/config/templates", env!("CARGO_MANIFEST_DIR"));
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
max_body_bytes = 65536
header_timeout = "300ms"
body_timeout = "300ms"

{common}
[destinations.team]
kind = "x"
api_base = "{x_url}"
{oauth}{extra_destination}

[[routes]]
source = "gh"
events = ["task.created", "task.updated", "task.completed", "task.reopened"]
to = ["team"]
template_file = "{templates}/task.j2"

[[routes]]
source = "gh"
events = ["comment.created"]
to = ["team"]
template_file = "{templates}/comment.j2"

[[routes]]
source = "gh"
events = ["change.opened", "change.merged", "change.closed"]
to = ["team"]
template_file = "{templates}/change.j2"

[[routes]]
source = "gh"
events = ["code.pushed"]
to = ["team"]
template_file = "{templates}/push.j2"

[[routes]]
source = "gh"
events = ["release.published"]
to = ["team"]
template_file = "{templates}/release.j2"
"#,
        common = common_toml(store),
        oauth = oauth1_lines(),
    )
}

/// The store a test runs on. Tests name their store by a file path, as on SQLite; on PostgreSQL each path
/// stands for a database of its own in the shared test cluster, so that a test restarting its daemon on
/// the same path finds the same data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

tokio::task_local! {
    static BACKEND: Backend;
}

/// The backend of the running test: SQLite unless it runs inside `on_postgres`.
pub fn backend() -> Backend {
    BACKEND.try_with(|b| *b).unwrap_or(Backend::Sqlite)
}

/// Runs a test on PostgreSQL: every store it names is a database in the test cluster.
pub async fn on_postgres<F: std::future::Future>(test: F) -> F::Output {
    BACKEND.scope(Backend::Postgres, test).await
}

/// Runs each named test (an `async fn` of no arguments) once on SQLite and once on PostgreSQL, as
/// `NAME::sqlite` and `NAME::postgres`.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name().await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    $crate::support::on_postgres(super::$name()).await
                }
            }
        )*
    };
}

/// The PostgreSQL database standing for each store path.
static DATABASES: Mutex<BTreeMap<PathBuf, String>> = Mutex::new(BTreeMap::new());

/// The database URL for the store at `path`, made on first use.
pub fn database_for(path: &Path) -> String {
    let mut dbs = DATABASES.lock().unwrap_or_else(|p| p.into_inner());
    dbs.entry(path.to_path_buf())
        .or_insert_with(|| pg::shared().create_database())
        .clone()
}

/// Makes the store named `path` the PostgreSQL database at `url` (several daemons sharing one database,
/// or a database in a cluster of the test's own).
pub fn use_database(path: &Path, url: &str) {
    DATABASES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(path.to_path_buf(), url.to_string());
}

/// The `[store]` keys for the store named `path` on the running test's backend. On PostgreSQL the lease
/// is short, so that a test that kills a daemon sees the next one take over within its wait.
pub fn store_keys(path: &Path) -> String {
    match backend() {
        Backend::Sqlite => format!("path = \"{}\"\n", path.display()),
        Backend::Postgres => format!(
            "url = \"{}\"\ninstance = \"test\"\nlease = \"2s\"\n",
            database_for(path)
        ),
    }
}

/// The store, dispatch timings and `gh` GitHub source every test config shares.
fn common_toml(store: &Path) -> String {
    format!(
        r#"[store]
{store}[dispatch]
retry_base = "50ms"
retry_max = "200ms"
request_timeout = "2s"
protected_check_every = "200ms"
[sources.gh]
provider = "github"
secret = "{SECRET}"
"#,
        store = store_keys(store)
    )
}

/// A config with the `gh` GitHub source, the given `[destinations.…]` blocks, and one route sending new
/// and updated tasks to the destinations in `to`.
pub fn config_with(store: &Path, destinations: &str, to: &str) -> String {
    let templates = format!("{}/config/templates", env!("CARGO_MANIFEST_DIR"));
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
{common}{destinations}
[[routes]]
source = "gh"
events = ["task.created", "task.updated"]
to = [{to}]
template_file = "{templates}/task.j2"
"#,
        common = common_toml(store),
    )
}

/// A `[destinations.team]` tweeting to the fake X at `x_url` with OAuth 1.0a, plus `extra` lines.
pub fn x_team(x_url: &str, extra: &str) -> String {
    format!(
        "[destinations.team]\nkind = \"x\"\napi_base = \"{x_url}\"\n{}{extra}",
        oauth1_lines()
    )
}

/// OAuth 1.0a credentials the fake X accepts, as config lines.
pub fn oauth1_lines() -> String {
    format!(
        "consumer_key = \"{}\"\nconsumer_secret = \"{}\"\naccess_token = \"{}\"\naccess_token_secret = \"{}\"\n",
        fake_x::CONSUMER_KEY,
        fake_x::CONSUMER_SECRET,
        fake_x::ACCESS_TOKEN,
        fake_x::ACCESS_TOKEN_SECRET
    )
}

/// A daemon running in this process.
pub struct TestApp {
    pub addr: SocketAddr,
    pub x: FakeX,
    pub dir: tempfile::TempDir,
    pub store_path: PathBuf,
    pub control: Control,
    pub config_path: PathBuf,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub http: reqwest::Client,
}

impl TestApp {
    /// Starts a fake X and a daemon pointed at it.
    pub async fn start() -> TestApp {
        TestApp::start_with("").await
    }

    /// Starts with extra keys in the `team` destination, e.g. `limits = ["1/1h"]`.
    pub async fn start_with(extra_destination: &str) -> TestApp {
        let x = FakeX::start().await;
        let dir = tempfile::tempdir().unwrap();
        TestApp::start_in(dir, x, extra_destination).await
    }

    pub async fn start_in(dir: tempfile::TempDir, x: FakeX, extra_destination: &str) -> TestApp {
        let text = config_toml(&dir.path().join("chirpd.db"), &x.url, extra_destination);
        TestApp::start_text(dir, x, &text).await
    }

    /// Starts a daemon on `config_with` for the given destinations, in a new temporary directory.
    pub async fn with_destinations(x: FakeX, destinations: &str, to: &str) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let text = config_with(&dir.path().join("chirpd.db"), destinations, to);
        TestApp::start_text(dir, x, &text).await
    }

    /// Starts a daemon on a config text written into `dir` (the store is `dir/chirpd.db`).
    pub async fn start_text(dir: tempfile::TempDir, x: FakeX, text: &str) -> TestApp {
        let store_path = dir.path().join("chirpd.db");
        let path = dir.path().join("chirpd.toml");
        std::fs::write(&path, text).unwrap();
        let cfg = config::load(Some(&path), &ProcessEnv).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let control = Control::default();
        let handle = tokio::spawn(chirpd::app::run(cfg, listener, control.clone()));
        TestApp {
            addr,
            x,
            dir,
            store_path,
            control,
            config_path: path,
            handle,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends a GitHub delivery signed with the source's secret.
    pub async fn github(&self, event: &str, delivery: &str, body: &[u8]) -> reqwest::Response {
        self.http
            .post(self.url("/hooks/gh"))
            .header("content-type", "application/json")
            .header("x-github-event", event)
            .header("x-github-delivery", delivery)
            .header("x-hub-signature-256", github_signature(SECRET, body))
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
    }

    /// Sends a signed GitHub `issues.opened` delivery with `title` and expects it accepted (202).
    pub async fn accept_issue(&self, delivery: impl AsRef<str>, title: impl AsRef<str>) {
        let status = self
            .github("issues", delivery.as_ref(), &issue_opened(title.as_ref()))
            .await
            .status();
        assert_eq!(status, 202, "delivery {}", delivery.as_ref());
    }

    /// Polls the store until `sql` counts `n`, failing after `WAIT`.
    pub async fn wait_sql(&self, sql: &str, n: i64) {
        let start = std::time::Instant::now();
        loop {
            let have = self.sql_count(sql);
            if have == n {
                return;
            }
            assert!(start.elapsed() < WAIT, "{sql}: expected {n}, have {have}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the daemon and waits for it to finish, returning the store's directory for reuse.
    pub async fn stop(self) -> (tempfile::TempDir, FakeX) {
        self.control.shutdown.cancel();
        self.handle.await.unwrap().unwrap();
        (self.dir, self.x)
    }

    /// A direct read of the store, the way an admin would inspect it with sqlite3.
    pub fn sql_count(&self, sql: &str) -> i64 {
        sql_count(&self.store_path, sql)
    }
}

/// A count from the store named `store`, read directly as an admin would (sqlite3 or psql).
pub fn sql_count(store: &Path, sql: &str) -> i64 {
    let text = sql_text(store, sql);
    text.parse()
        .unwrap_or_else(|_| panic!("{sql}: not a count: {text:?}"))
}

/// The first column of the first row `sql` returns from the store named `store`, as text.
pub fn sql_text(store: &Path, sql: &str) -> String {
    let url = DATABASES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(store)
        .cloned();
    match url {
        Some(url) => pg::psql(&pg::bin_dir(), &url, sql),
        None => {
            let conn = rusqlite::Connection::open(store).unwrap();
            conn.query_row(sql, [], |r| {
                Ok(match r.get::<_, rusqlite::types::Value>(0)? {
                    rusqlite::types::Value::Integer(i) => i.to_string(),
                    rusqlite::types::Value::Text(t) => t,
                    rusqlite::types::Value::Null => String::new(),
                    other => format!("{other:?}"),
                })
            })
            .unwrap()
        }
    }
}

/// A port free on 127.0.0.1 right now, for a server the test starts by address (a daemon binary, the
/// console's listener, chromedriver).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn github_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A GitHub payload from `samples/` (real bodies as GitHub sent them; samples/SOURCES.md says where
/// each came from).
pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/samples/github/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The fixture with its issue title replaced, to make distinct deliveries.
pub fn issue_opened(title: &str) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(&fixture("issues.opened.json")).unwrap();
    v["issue"]["title"] = serde_json::Value::String(title.to_string());
    serde_json::to_vec(&v).unwrap()
}

pub const WAIT: Duration = Duration::from_secs(10);

pub fn expected_issue_tweet(title: &str) -> String {
    format!(
        "Codertocat/Hello-World: Codertocat opened #1 {title} [bug] https://github.com/Codertocat/Hello-World/issues/1"
    )
}
