//! The web console in a real headless Chromium (Debian's `chromium`, driven through `chromedriver` over
//! WebDriver), against the real daemon and the fake X.
//!
//! With `CHIRPD_SCREENSHOTS=DIR` set, the test also saves a screenshot of each page (and two at a phone's
//! size) into DIR: `docs/console/` holds the ones the README shows.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::support::fake_x::{FakeX, Script};
use crate::support::{
    TestApp, WAIT, config_with, expected_issue_tweet, fixture, free_port, oauth1_lines, sql_count,
};

const PASSWORD: &str = "correct horse battery staple";

/// A headless Chromium behind its chromedriver, both ended with the test.
struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    screenshots: Option<PathBuf>,
}

impl Browser {
    async fn start() -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver, which .ci/run installs)");
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < WAIT, "chromedriver did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        let profile = tempfile::tempdir().unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-quic", "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }),
        );
        let client = ClientBuilder::rustls()
            .unwrap()
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session");
        Browser {
            client,
            driver,
            _profile: profile,
            screenshots: std::env::var_os("CHIRPD_SCREENSHOTS").map(PathBuf::from),
        }
    }

    /// Saves a screenshot of the page as `name`.png, when screenshots are asked for.
    async fn shot(&self, name: &str) {
        if let Some(dir) = &self.screenshots {
            std::fs::create_dir_all(dir).unwrap();
            let png = self.client.screenshot().await.unwrap();
            std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
        }
    }

    /// The same page at a phone's size, then back.
    async fn phone_shot(&self, name: &str) {
        if self.screenshots.is_some() {
            self.client.set_window_size(390, 844).await.unwrap();
            self.client.refresh().await.unwrap();
            self.shot(name).await;
            self.client.set_window_size(1280, 1000).await.unwrap();
        }
    }

    async fn text(&self, css: &str) -> String {
        match self
            .client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(e) => e.text().await.unwrap(),
            Err(e) => panic!(
                "{css}: {e}; the page at {}:\n{}",
                self.client
                    .current_url()
                    .await
                    .map(|u| u.to_string())
                    .unwrap_or_default(),
                self.client.source().await.unwrap_or_default()
            ),
        }
    }

    async fn click(&self, css: &str) {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    async fn sign_in(&self, base: &str, password: &str) {
        self.client.goto(&format!("{base}/login")).await.unwrap();
        let form = self.client.form(Locator::Css("form")).await.unwrap();
        form.set_by_name("user", "admin").await.unwrap();
        form.set_by_name("password", password).await.unwrap();
        form.submit().await.unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Polls `f` until it is true, failing with `what` after `WAIT`.
async fn until(what: &str, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < WAIT, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_signs_in_sees_a_hold_decides_on_posts_retries_a_dead_one_and_previews() {
    let x = FakeX::start().await;
    let console_port = free_port();
    let hash = chirpd::console::hash_password(PASSWORD).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // "team" posts only what a person approves; "held" allows two requests an hour.
    let destinations = format!(
        "[destinations.team]\nkind = \"x\"\napi_base = \"{url}\"\nreview = true\n{oauth}\n\
         [destinations.held]\nkind = \"x\"\napi_base = \"{url}\"\nlimits = [\"2/1h\"]\n{oauth}\n\
         [admin]\nlisten = \"127.0.0.1:{console_port}\"\npassword_hash = \"{hash}\"\n",
        url = x.url,
        oauth = oauth1_lines()
    );
    let text = config_with(
        &dir.path().join("chirpd.db"),
        &destinations,
        "\"team\", \"held\"",
    );
    let app = TestApp::start_text(dir, x, &text).await;
    let base = format!("http://127.0.0.1:{console_port}");
    let store = app.store_path.clone();

    // X refuses the first post of "held" for good: a dead item.
    app.x.script(Script::Answer {
        status: 400,
        headers: vec![],
        body: r#"{"title":"Invalid Request","detail":"temporarily broken","type":"about:blank"}"#
            .into(),
    });
    app.accept_issue("c1", "First issue").await;
    until("a dead item and one under review", || {
        sql_count(&store, "SELECT count(*) FROM outbox WHERE state = 'dead'") == 1
            && sql_count(&store, "SELECT count(*) FROM outbox WHERE state = 'review'") == 1
    })
    .await;

    let browser = Browser::start().await;
    // A wrong password is refused, and says so.
    browser.sign_in(&base, "not the password").await;
    assert_eq!(browser.text("#error").await, "Wrong user name or password.");
    browser.shot("login").await;
    browser.sign_in(&base, PASSWORD).await;
    assert_eq!(browser.text("#readiness h1").await, "Ready");

    // The dead item shows its reason; Retry sends it (the window has room for it).
    browser
        .client
        .goto(&format!("{base}/items?state=dead"))
        .await
        .unwrap();
    let reason = browser.text("tr[data-state=dead] .reason").await;
    assert_eq!(reason, "X answered 400: temporarily broken");
    browser.shot("posts").await;
    browser.click("tr[data-state=dead] button.retry").await;
    assert_eq!(
        app.x.wait_for_tweets(1, WAIT).await,
        vec![expected_issue_tweet("First issue")]
    );

    // A second event fills the window of "held": the overview shows the hold and why.
    app.accept_issue("c2", "Second issue").await;
    until("the second item under review", || {
        sql_count(&store, "SELECT count(*) FROM outbox WHERE state = 'review'") == 2
    })
    .await;
    let start = Instant::now();
    let hold = loop {
        browser.client.goto(&format!("{base}/")).await.unwrap();
        let hold = browser.text("#destination-held .hold").await;
        if hold.starts_with("Held") {
            break hold;
        }
        assert!(start.elapsed() < WAIT, "no hold shown: {hold}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(hold.contains("own limit 2/3600s reached"), "{hold}");
    assert!(
        browser
            .text("#destination-team h3")
            .await
            .contains("reviewed")
    );
    browser.shot("overview").await;
    browser.phone_shot("overview-phone").await;

    // Review: the first post is edited (its length follows the typing) and approved; it reaches X.
    browser
        .client
        .goto(&format!("{base}/review"))
        .await
        .unwrap();
    assert!(browser.text("#waiting").await == "2");
    browser.shot("review").await;
    browser.phone_shot("review-phone").await;
    let first = browser
        .client
        .find(Locator::Css("article.review textarea"))
        .await
        .unwrap();
    first.clear().await.unwrap();
    first.send_keys("Edited in the console").await.unwrap();
    let start = Instant::now();
    while browser.text("article.review output").await != "21" {
        assert!(start.elapsed() < WAIT, "the length did not follow the text");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    browser.click("article.review button.approve").await;
    let posted = app.x.wait_for_tweets(2, WAIT).await;
    assert_eq!(posted[1], "Edited in the console");
    // The other one is rejected: it is never sent.
    browser.click("article.review button.reject").await;
    until("the rejection recorded", || {
        sql_count(
            &store,
            "SELECT count(*) FROM outbox WHERE state = 'rejected' AND decided_by = 'admin'",
        ) == 1
    })
    .await;
    assert_eq!(
        sql_count(
            &store,
            "SELECT count(*) FROM outbox WHERE decision = 'edited' AND decided_by = 'admin'"
        ),
        1
    );
    assert_eq!(
        browser.text("#review-count").await.split(' ').next(),
        Some("0")
    );
    assert!(
        !app.x.tweets().iter().any(|t| t.contains("Second issue")),
        "a rejected or held post was sent"
    );

    // A forged token is refused, and nothing changes.
    let held_item: String = crate::support::sql_text(
        &store,
        "SELECT id FROM outbox WHERE destination = 'held' AND state = 'pending'",
    );
    let status = browser
        .client
        .execute(
            "return fetch('/items/' + arguments[0] + '/drop', {method: 'POST', body: new URLSearchParams({csrf: 'forged'})}).then(r => r.status)",
            vec![Value::String(held_item.clone())],
        )
        .await
        .unwrap();
    assert_eq!(status, json!(403));
    assert_eq!(
        crate::support::sql_text(
            &store,
            &format!("SELECT state FROM outbox WHERE id = '{held_item}'")
        ),
        "pending"
    );

    // Deliveries, and one of them with the event its templates saw.
    browser
        .client
        .goto(&format!("{base}/deliveries"))
        .await
        .unwrap();
    assert!(browser.text("table").await.contains("issues.opened"));
    browser.shot("deliveries").await;
    browser.click("tbody tr:last-child a").await;
    assert!(
        browser
            .text("pre.json")
            .await
            .contains("\"title\": \"First issue\"")
    );
    browser.shot("delivery").await;

    // Preview a fixture: the posts it would make, for both destinations.
    browser
        .client
        .goto(&format!("{base}/preview"))
        .await
        .unwrap();
    let body = String::from_utf8(fixture("issues.opened.json")).unwrap();
    let title = serde_json::from_str::<Value>(&body).unwrap()["issue"]["title"]
        .as_str()
        .unwrap()
        .to_string();
    let form = browser
        .client
        .form(Locator::Css("main form"))
        .await
        .unwrap();
    form.set_by_name("event", "issues").await.unwrap();
    form.set_by_name("payload", &body).await.unwrap();
    form.submit().await.unwrap();
    let result = browser.text("#preview-result").await;
    assert_eq!(
        result.matches(&expected_issue_tweet(&title)).count(),
        2,
        "{result}"
    );
    assert!(result.contains("reviewed before it goes out"), "{result}");
    browser
        .client
        .execute(
            "document.getElementById('preview-result').scrollIntoView()",
            vec![],
        )
        .await
        .unwrap();
    browser.shot("preview").await;

    browser.client.clone().close().await.unwrap();
    app.stop().await;
}
