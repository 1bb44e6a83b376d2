//! Every provider: each bundled sample, signed or tokened as its product does it, is accepted by the
//! running daemon and becomes the expected post at the fake X; forged signatures get 401; schemes with a
//! timestamp refuse stale replays.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;

use crate::support::fake_x::{self, FakeX};
use crate::support::{WAIT, sql_count};

const GITHUB: &str = "gh-secret-of-the-team";
const GITLAB: &str = "gl-token-of-the-team";
const GITEA: &str = "gitea-secret-of-the-team";
const BITBUCKET: &str = "bb-secret-of-the-team";
const JIRA: &str = "jira-secret-of-the-team";
const LINEAR: &str = "lin-secret-of-the-team";
const TRELLO: &str = "trello-app-secret";
const ASANA_URL: &str = "asana-url-token-of-the-team";
const ASANA_HOOK: &str = "asana-hook-secret-from-handshake";
const BASECAMP: &str = "basecamp-url-token";
const SLACK: &str = "slack-signing-secret";
const STANDARD: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

struct App {
    base: String,
    x: FakeX,
    store: std::path::PathBuf,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
    control: chirpd::app::Control,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start() -> App {
    let x = FakeX::start().await;
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");
    let templates = format!("{}/config/templates", env!("CARGO_MANIFEST_DIR"));
    let store = dir.path().join("chirpd.db");
    let sources = "\"gh\", \"gl\", \"gitea\", \"forgejo\", \"bb\", \"jira\", \"linear\", \"trello\", \"asana\", \"basecamp\", \"slack\", \"std\"";
    let mut text = format!(
        r#"
[store]
path = "{store}"
[sources.gh]
provider = "github"
secret = "{GITHUB}"
[sources.gl]
provider = "gitlab"
secret = "{GITLAB}"
[sources.gitea]
provider = "gitea"
secret = "{GITEA}"
# Self-hosted: its host is listed so that event.url stays a link.
link_hosts = ["localhost"]
[sources.forgejo]
provider = "forgejo"
secret = "{GITEA}"
link_hosts = ["localhost"]
[sources.bb]
provider = "bitbucket"
secret = "{BITBUCKET}"
[sources.jira]
provider = "jira"
secret = "{JIRA}"
[sources.linear]
provider = "linear"
secret = "{LINEAR}"
[sources.trello]
provider = "trello"
secret = "{TRELLO}"
callback_url = "{base}/hooks/trello"
[sources.asana]
provider = "asana"
secret = "{ASANA_URL}"
[sources.basecamp]
provider = "basecamp"
secret = "{BASECAMP}"
[sources.slack]
provider = "slack"
secret = "{SLACK}"
[sources.std]
provider = "standard"
secret = "{STANDARD}"
[destinations.team]
kind = "x"
api_base = "{x_url}"
consumer_key = "{ck}"
consumer_secret = "{cs}"
access_token = "{at}"
access_token_secret = "{ats}"
"#,
        store = store.display(),
        x_url = x.url,
        ck = fake_x::CONSUMER_KEY,
        cs = fake_x::CONSUMER_SECRET,
        at = fake_x::ACCESS_TOKEN,
        ats = fake_x::ACCESS_TOKEN_SECRET,
    );
    for (events, file) in [
        (
            "\"task.created\", \"task.updated\", \"task.completed\", \"task.reopened\", \"task.deleted\"",
            "task.j2",
        ),
        ("\"comment.created\"", "comment.j2"),
        (
            "\"change.opened\", \"change.merged\", \"change.closed\"",
            "change.j2",
        ),
        ("\"code.pushed\"", "push.j2"),
        ("\"release.published\", \"tag.created\"", "release.j2"),
        ("\"build.failed\", \"build.succeeded\"", "build.j2"),
        ("\"document.added\", \"image.added\"", "attachment.j2"),
    ] {
        text.push_str(&format!(
            "[[routes]]\nsource = [{sources}]\nevents = [{events}]\nto = [\"team\"]\ntemplate_file = \"{templates}/{file}\"\n"
        ));
    }
    let path = dir.path().join("chirpd.toml");
    std::fs::write(&path, text).unwrap();
    let cfg = chirpd::config::load(Some(&path), &chirpd::config::ProcessEnv).unwrap();
    let control = chirpd::app::Control::default();
    let handle = tokio::spawn(chirpd::app::run(cfg, listener, control.clone()));
    App {
        base,
        x,
        store,
        http: reqwest::Client::new(),
        _dir: dir,
        control,
        handle,
    }
}

impl App {
    async fn post(&self, path: &str, headers: &[(&str, String)], body: &[u8]) -> u16 {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_vec());
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        req.send().await.unwrap().status().as_u16()
    }

    async fn stop(self) {
        self.control.shutdown.cancel();
        self.handle.await.unwrap().unwrap();
    }
}

fn sample(provider: &str, file: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/samples/{provider}/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn hmac_hex(secret: &str, parts: &[&[u8]]) -> String {
    hex::encode(hmac256(secret.as_bytes(), parts))
}

fn hmac256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).unwrap();
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

fn trello_signature(body: &[u8], callback: &str) -> String {
    let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(TRELLO.as_bytes()).unwrap();
    mac.update(body);
    mac.update(callback.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn now_secs() -> i64 {
    chirpd::clock::now_ms() / 1000
}

/// Linear signs a body that carries its own send time; a fresh delivery has a fresh one.
fn linear_body(file: &str, at_ms: i64) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&sample("linear", file)).unwrap();
    v["webhookTimestamp"] = at_ms.into();
    serde_json::to_vec(&v).unwrap()
}

/// Sends every fixture as its product would.
async fn send_all(app: &App) -> usize {
    let mut sent = 0;
    let mut ok = |status: u16, what: &str| {
        assert_eq!(status, 202, "{what}");
        sent += 1;
    };
    for (event, file) in [
        ("issues", "issues.opened.json"),
        ("issue_comment", "issue_comment.created.json"),
        ("pull_request", "pull_request.closed.json"),
        ("release", "release.published.json"),
    ] {
        let body = sample("github", file);
        let h = [
            ("x-github-event", event.to_string()),
            ("x-github-delivery", format!("gh-{file}")),
            (
                "x-hub-signature-256",
                format!("sha256={}", hmac_hex(GITHUB, &[&body])),
            ),
        ];
        ok(app.post("/hooks/gh", &h, &body).await, file);
    }
    for (event, file) in [
        ("Issue Hook", "issue-open.json"),
        ("Note Hook", "note-issue.json"),
        ("Merge Request Hook", "merge_request-merge.json"),
        ("Push Hook", "push.json"),
        ("Release Hook", "release-create.json"),
    ] {
        let body = sample("gitlab", file);
        let h = [
            ("x-gitlab-event", event.to_string()),
            ("x-gitlab-token", GITLAB.to_string()),
            ("idempotency-key", format!("gl-{file}")),
        ];
        ok(app.post("/hooks/gl", &h, &body).await, file);
    }
    for (event, file) in [
        ("issues", "issues-opened.json"),
        ("pull_request", "pull_request-opened.json"),
        ("push", "push.json"),
        ("release", "release-published.json"),
    ] {
        let body = sample("gitea", file);
        let sig = hmac_hex(GITEA, &[&body]);
        // Gitea sends GitHub-style headers too; the Gitea ones must win.
        let h = [
            ("x-gitea-event", event.to_string()),
            ("x-gitea-delivery", format!("gitea-{file}")),
            ("x-gitea-signature", sig.clone()),
            ("x-github-event", event.to_string()),
            ("x-hub-signature-256", format!("sha256={sig}")),
        ];
        ok(app.post("/hooks/gitea", &h, &body).await, file);
    }
    {
        // A distinct title: the same text twice would be refused by X as duplicate content.
        let mut v: Value = serde_json::from_slice(&sample("gitea", "issues-opened.json")).unwrap();
        v["issue"]["title"] = "example from Forgejo".into();
        let body = serde_json::to_vec(&v).unwrap();
        let h = [
            ("x-forgejo-event", "issues".to_string()),
            ("x-forgejo-delivery", "fj-1".to_string()),
            ("x-forgejo-signature", hmac_hex(GITEA, &[&body])),
        ];
        ok(app.post("/hooks/forgejo", &h, &body).await, "forgejo");
    }
    for (event, file) in [
        ("pullrequest:created", "pullrequest-created.json"),
        ("pullrequest:fulfilled", "pullrequest-fulfilled.json"),
        ("repo:push", "repo-push.json"),
    ] {
        let body = sample("bitbucket", file);
        let h = [
            ("x-event-key", event.to_string()),
            ("x-request-uuid", format!("bb-{file}")),
            (
                "x-hub-signature",
                format!("sha256={}", hmac_hex(BITBUCKET, &[&body])),
            ),
        ];
        ok(app.post("/hooks/bb", &h, &body).await, file);
    }
    for file in [
        "jira-issue_created.json",
        "jira-issue_updated-resolved.json",
        "comment_created.json",
    ] {
        let body = sample("jira", file);
        let h = [
            ("x-atlassian-webhook-identifier", format!("jira-{file}")),
            (
                "x-hub-signature",
                format!("sha256={}", hmac_hex(JIRA, &[&body])),
            ),
        ];
        ok(app.post("/hooks/jira", &h, &body).await, file);
    }
    for (event, file) in [
        ("Issue", "Issue-create.json"),
        ("Comment", "Comment-create.json"),
    ] {
        let body = linear_body(file, chirpd::clock::now_ms());
        let h = [
            ("linear-event", event.to_string()),
            ("linear-delivery", format!("lin-{file}")),
            ("linear-signature", hmac_hex(LINEAR, &[&body])),
        ];
        ok(app.post("/hooks/linear", &h, &body).await, file);
    }
    for file in ["createCard.json", "commentCard.json"] {
        let body = sample("trello", file);
        let h = [(
            "x-trello-webhook",
            trello_signature(&body, &format!("{}/hooks/trello", app.base)),
        )];
        ok(app.post("/hooks/trello", &h, &body).await, file);
    }
    {
        // Asana: the handshake first, then the signed event.
        let res = app
            .http
            .post(format!("{}/hooks/asana?token={ASANA_URL}", app.base))
            .header("x-hook-secret", ASANA_HOOK)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["x-hook-secret"], ASANA_HOOK);
        let body = sample("asana", "events-task-changed-completed.json");
        let h = [("x-hook-signature", hmac_hex(ASANA_HOOK, &[&body]))];
        ok(
            app.post(&format!("/hooks/asana?token={ASANA_URL}"), &h, &body)
                .await,
            "asana",
        );
    }
    for file in ["todo_created.json", "comment_created.json"] {
        let body = sample("basecamp", file);
        ok(
            app.post(&format!("/hooks/basecamp?token={BASECAMP}"), &[], &body)
                .await,
            file,
        );
    }
    sent
}

#[tokio::test]
async fn every_fixture_becomes_its_post() {
    let app = start().await;
    let sent = send_all(&app).await;
    let mut tweets = app.x.wait_for_tweets(sent, WAIT).await;
    tweets.sort();
    let mut expected: Vec<&str> = EXPECTED.to_vec();
    expected.sort();
    assert_eq!(
        tweets, expected,
        "the posts, read by eye and kept here as a snapshot"
    );
    for t in &tweets {
        let len = chirpd::render::fit::weighted_length(t);
        assert!((1..=280).contains(&len), "{t}");
    }
    app.stop().await;
}

/// The post each fixture becomes, in the order sent (checked sorted).
const EXPECTED: &[&str] = &[
    "Codertocat/Hello-World: Codertocat opened #1 Spelling error in the README file [bug] https://github.com/Codertocat/Hello-World/issues/1",
    "Codertocat/Hello-World: Codertocat commented on #1 Spelling error in the README file: “You are totally right! I'll get this fixed right away.” https://github.com/Codertocat/Hello-World/issues/1#issuecomment-492700400",
    "Codertocat/Hello-World: Codertocat closed PR #2 Update the README with new information. https://github.com/Codertocat/Hello-World/pull/2",
    "Codertocat/Hello-World 0.0.1 released https://github.com/Codertocat/Hello-World/releases/tag/0.0.1",
    "gitlab-org/hello-world: sytses opened #1 found a bug https://gitlab.com/gitlab-org/hello-world/issues/1",
    "gitlab-org/hello-world: sytses commented on #1 found a bug: “bump” https://gitlab.com/gitlab-org/hello-world/issues/1#note_50771783",
    "anbraten/woodpecker-test: anbraten merged MR #4 Add new file https://gitlab.com/anbraten/woodpecker-test/-/merge_requests/4",
    "gitlab-org/hello-world: 1 new commit on master by sytses — added readme https://gitlab.com/gitlab-org/hello-world/-/compare/9217710ce8c7e1eae7a5d1c45f6e43e1c769f866...2adc9465c4edfc33834e173fe89436a7cb899a1d",
    "anbratens-test/ci Awesome version 0.0.2 released: new version desc https://gitlab.com/anbratens-test/ci/-/releases/0.0.2",
    "example/example: example opened #1 example http://localhost:3000/example/example/issues/1",
    "example/example: example opened #1 example from Forgejo http://localhost:3000/example/example/issues/1",
    "example/example: example2 opened PR #2 update http://localhost:3000/example/example/pulls/2",
    "example/example: 1 new commit on master by example — example http://localhost:3000/example/example/compare/0000000000000000000000000000000000000000...67b56589a45103f891bdee7c0546e5d40bc02001",
    "example/example 0.0.0 released http://localhost:3000/example/example/releases/tag/example",
    "brydzewski/foo: brydzewski opened PR #1 Awesome new feature https://bitbucket.org/brydzewski/foo/pull-requests/1",
    "brydzewski/foo: brydzewski merged PR #1 Awesome new feature https://bitbucket.org/brydzewski/foo/pull-requests/1",
    "brydzewski/foo: 1 new commit on master by brydzewski — Update README https://bitbucket.org/brydzewski/foo/branches/compare/141977fedf5cf35aa290ac87d4b5177ac4cd9de1..40e7580cf11311d84a6e5e97e2cbba6df1675750",
    "test1: Test User opened TES-41 Unit test summary [test-label] https://some-instance-test.atlassian.net/browse/TES-41",
    "test1: Test User completed TES-41 Unit test summary 1 [test-label] https://some-instance-test.atlassian.net/browse/TES-41",
    "test1: Test User commented on TES-41 Unit test summary 1: “Added a comment” https://some-instance-test.atlassian.net/browse/TES-41",
    "Webhooks: someone opened #43 Very small font in tooltip https://linear.app/webhooks/issue/WEB-43/very-small-font-in-tooltip",
    "linear: Satyam Bansal commented on Thorough Impact Analysis and Cost Realization: “Performing a thorough impact analysis and cost realization is a crucial step in responding to any system outage or incident. By examining…” https://linear.app/webhooks/issue/WEB-46#comment-c7cafc52",
    "ideas: Owen Young opened #2 test item https://trello.com/c/Iy3XGStt",
    "Welcome Board: TomaszKolek commented on #3 New card: “New comment” https://trello.com/c/xPKXoSTQ",
    "asana: someone completed a task https://app.asana.com/0/0/1199170056173519",
    "Zulip HQ: Tomasz opened New task https://3.basecamp.com/3688623/buckets/2957043/todos/427055624",
    "Zulip HQ: Tomasz commented on New task: “Comment” https://3.basecamp.com/3688623/buckets/2957043/todos/427055624#__recording_427058780",
];

#[tokio::test]
async fn forged_requests_are_refused_for_every_provider() {
    let app = start().await;
    let body = sample("gitea", "issues-opened.json");
    let wrong = hmac_hex("wrong", &[&body]);
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        (
            "/hooks/gh",
            vec![
                ("x-github-event", "issues".into()),
                ("x-hub-signature-256", format!("sha256={wrong}")),
            ],
        ),
        (
            "/hooks/gl",
            vec![
                ("x-gitlab-event", "Issue Hook".into()),
                ("x-gitlab-token", "not-the-token".into()),
            ],
        ),
        (
            "/hooks/gitea",
            vec![
                ("x-gitea-event", "issues".into()),
                ("x-gitea-signature", wrong.clone()),
            ],
        ),
        // Gitea without a secret sends empty signatures: never accepted.
        (
            "/hooks/gitea",
            vec![
                ("x-gitea-event", "issues".into()),
                ("x-gitea-signature", String::new()),
                ("x-hub-signature-256", "sha256=".into()),
            ],
        ),
        (
            "/hooks/forgejo",
            vec![("x-forgejo-signature", wrong.clone())],
        ),
        (
            "/hooks/bb",
            vec![
                ("x-event-key", "repo:push".into()),
                ("x-hub-signature", format!("sha256={wrong}")),
            ],
        ),
        (
            "/hooks/jira",
            vec![("x-hub-signature", format!("sha256={wrong}"))],
        ),
        ("/hooks/linear", vec![("linear-signature", wrong.clone())]),
        (
            "/hooks/trello",
            vec![(
                "x-trello-webhook",
                trello_signature(&body, "https://elsewhere.example/hooks/trello"),
            )],
        ),
        (
            "/hooks/asana?token=wrong",
            vec![("x-hook-signature", wrong.clone())],
        ),
        ("/hooks/basecamp?token=wrong", vec![]),
        ("/hooks/basecamp", vec![]),
        (
            "/hooks/slack",
            vec![
                ("x-slack-request-timestamp", now_secs().to_string()),
                ("x-slack-signature", format!("v0={wrong}")),
            ],
        ),
        (
            "/hooks/std",
            vec![
                ("webhook-id", "m1".into()),
                ("webhook-timestamp", now_secs().to_string()),
                ("webhook-signature", "v1,AAAA".into()),
            ],
        ),
    ];
    for (path, headers) in &cases {
        assert_eq!(
            app.post(path, headers, &body).await,
            401,
            "{path} {headers:?}"
        );
    }
    // An Asana handshake without the URL token cannot plant a secret.
    let res = app
        .http
        .post(format!("{}/hooks/asana", app.base))
        .header("x-hook-secret", "attacker")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(sql_count(&app.store, "SELECT count(*) FROM deliveries"), 0);
    assert_eq!(
        sql_count(&app.store, "SELECT count(*) FROM learned_secrets"),
        0
    );
    app.stop().await;
}

#[tokio::test]
async fn stale_replays_are_refused_where_the_scheme_has_a_timestamp() {
    let app = start().await;
    // Linear: a correctly signed body sent two minutes ago.
    let body = linear_body("Issue-create.json", chirpd::clock::now_ms() - 120_000);
    let h = [("linear-signature", hmac_hex(LINEAR, &[&body]))];
    assert_eq!(app.post("/hooks/linear", &h, &body).await, 401);

    // Slack: correctly signed, timestamp ten minutes old.
    let slack = br#"{"type":"event_callback","event":{"type":"app_mention","text":"hi"}}"#;
    let old = (now_secs() - 600).to_string();
    let sig = format!(
        "v0={}",
        hmac_hex(SLACK, &[b"v0:", old.as_bytes(), b":", slack])
    );
    let h = [
        ("x-slack-request-timestamp", old.clone()),
        ("x-slack-signature", sig),
    ];
    assert_eq!(app.post("/hooks/slack", &h, slack).await, 401);
    // The same, fresh, is accepted.
    let fresh = now_secs().to_string();
    let sig = format!(
        "v0={}",
        hmac_hex(SLACK, &[b"v0:", fresh.as_bytes(), b":", slack])
    );
    let h = [
        ("x-slack-request-timestamp", fresh),
        ("x-slack-signature", sig),
    ];
    assert_eq!(app.post("/hooks/slack", &h, slack).await, 202);

    // Standard Webhooks: signed ten minutes ago.
    let key = base64::engine::general_purpose::STANDARD
        .decode(STANDARD.trim_start_matches("whsec_"))
        .unwrap();
    let std_body = br#"{"type":"task.created","data":{"title":"x"}}"#;
    let sign = |ts: &str| {
        format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD
                .encode(hmac256(&key, &[b"msg_1.", ts.as_bytes(), b".", std_body]))
        )
    };
    let h = [
        ("webhook-id", "msg_1".to_string()),
        ("webhook-timestamp", old.clone()),
        ("webhook-signature", sign(&old)),
    ];
    assert_eq!(app.post("/hooks/std", &h, std_body).await, 401);
    let fresh = now_secs().to_string();
    let h = [
        ("webhook-id", "msg_1".to_string()),
        ("webhook-timestamp", fresh.clone()),
        ("webhook-signature", sign(&fresh)),
    ];
    assert_eq!(app.post("/hooks/std", &h, std_body).await, 202);
    app.stop().await;
}

#[tokio::test]
async fn slack_url_verification_is_answered_with_the_challenge() {
    let app = start().await;
    let body = br#"{"token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let ts = now_secs().to_string();
    let sig = format!(
        "v0={}",
        hmac_hex(SLACK, &[b"v0:", ts.as_bytes(), b":", body])
    );
    let res = app
        .http
        .post(format!("{}/hooks/slack", app.base))
        .header("x-slack-request-timestamp", ts)
        .header("x-slack-signature", sig)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(
        v["challenge"],
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );
    assert_eq!(
        sql_count(
            &app.store,
            "SELECT count(*) FROM deliveries WHERE state <> 'handshake'"
        ),
        0
    );
    app.stop().await;
}

/// Sends an Asana handshake offering `secret`, with the URL token, and optionally a signature header.
async fn asana_handshake(app: &App, secret: &str, signature: Option<&str>) -> u16 {
    let mut req = app
        .http
        .post(format!("{}/hooks/asana?token={ASANA_URL}", app.base))
        .header("x-hook-secret", secret);
    if let Some(sig) = signature {
        req = req.header("x-hook-signature", sig);
    }
    req.send().await.unwrap().status().as_u16()
}

fn learned_secret(app: &App) -> String {
    rusqlite::Connection::open(&app.store)
        .unwrap()
        .query_row(
            "SELECT secret FROM learned_secrets WHERE source = 'asana'",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

#[tokio::test]
async fn a_handshake_cannot_take_a_source_that_has_a_secret_unless_the_admin_opens_a_window() {
    let app = start().await;
    // Too short to be Asana's: refused even for a fresh source.
    assert_eq!(asana_handshake(&app, "short", None).await, 401);
    assert_eq!(asana_handshake(&app, ASANA_HOOK, None).await, 200);
    // A second handshake with the right URL token, as an attacker who saw the URL would send it.
    let attacker = "attacker-secret-of-at-least-32-bytes!";
    assert_eq!(asana_handshake(&app, attacker, None).await, 401);
    assert_eq!(asana_handshake(&app, "", None).await, 401);
    // A request with a signature is an event, never a handshake: its X-Hook-Secret is ignored.
    let forged = hmac_hex(attacker, &[b""]);
    assert_eq!(asana_handshake(&app, attacker, Some(&forged)).await, 401);
    assert_eq!(learned_secret(&app), ASANA_HOOK);
    // Asana's real events still verify.
    let body = sample("asana", "events-task-changed-completed.json");
    let h = [("x-hook-signature", hmac_hex(ASANA_HOOK, &[&body]))];
    assert_eq!(
        app.post(&format!("/hooks/asana?token={ASANA_URL}"), &h, &body)
            .await,
        202
    );

    // The admin opens a window: the next handshake replaces the secret, once.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chirpd"))
        .args(["handshake", "--config"])
        .arg(app._dir.path().join("chirpd.toml"))
        .args(["open", "--source", "asana", "--for", "5m"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let renewed = "asana-hook-secret-after-recreation";
    assert_eq!(asana_handshake(&app, renewed, None).await, 200);
    assert_eq!(learned_secret(&app), renewed);
    assert_eq!(asana_handshake(&app, attacker, None).await, 401);
    assert_eq!(learned_secret(&app), renewed);
    app.stop().await;
}

#[tokio::test]
async fn a_signed_ping_replayed_under_another_event_name_posts_nothing() {
    let app = start().await;
    let body =
        br#"{"zen":"Design for failure.","hook_id":1,"repository":{"full_name":"acme/widgets"}}"#;
    let sig = format!("sha256={}", hmac_hex(GITHUB, &[body]));
    let ping = [
        ("x-github-event", "ping".to_string()),
        ("x-github-delivery", "p-1".to_string()),
        ("x-hub-signature-256", sig.clone()),
    ];
    assert_eq!(app.post("/hooks/gh", &ping, body).await, 200);
    let replay = [
        ("x-github-event", "issues".to_string()),
        ("x-github-delivery", "p-2".to_string()),
        ("x-hub-signature-256", sig),
    ];
    assert_eq!(app.post("/hooks/gh", &replay, body).await, 200);
    assert_eq!(
        sql_count(
            &app.store,
            "SELECT count(*) FROM deliveries WHERE state = 'received'"
        ),
        0
    );
    assert_eq!(sql_count(&app.store, "SELECT count(*) FROM outbox"), 0);
    app.stop().await;
}
