//! The HTTP answers of docs/contract.md §5, and the limits that protect the daemon from slow or oversized requests.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{SECRET, TestApp, WAIT, fixture, github_signature};

#[tokio::test]
async fn unknown_source_is_404() {
    let app = TestApp::start().await;
    let res = app
        .http
        .post(app.url("/hooks/nope"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "unknown source \"nope\""
    );
    assert_eq!(
        app.http
            .head(app.url("/hooks/nope"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        app.http
            .head(app.url("/hooks/gh"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.stop().await;
}

#[tokio::test]
async fn a_declared_oversized_body_is_refused_unread() {
    let app = TestApp::start().await;
    // Declare 10 MB but send nothing: the answer comes from the header alone.
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    s.write_all(b"POST /hooks/gh HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n")
        .await
        .unwrap();
    let answer = read_answer(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("body exceeds 65536 bytes"), "{answer}");
    app.stop().await;
}

/// A GitHub signature header of the right form (and the wrong value), as a header line.
const SIGNED: &str = "X-Hub-Signature-256: sha256=0000000000000000000000000000000000000000000000000000000000000000\r\n";

#[tokio::test]
async fn an_oversized_chunked_body_is_cut_at_the_limit() {
    let app = TestApp::start().await;
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    // A well-formed signature header: only the body can show it is wrong, so the body is read.
    s.write_all(
        format!("POST /hooks/gh HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n{SIGNED}\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let chunk = vec![b'a'; 16 * 1024];
    for _ in 0..5 {
        s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .unwrap();
        s.write_all(&chunk).await.unwrap();
        s.write_all(b"\r\n").await.unwrap();
    }
    let answer = read_answer(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(app.sql_count("SELECT count(*) FROM deliveries"), 0);
    app.stop().await;
}

#[tokio::test]
async fn a_valid_signature_over_non_json_is_400() {
    let app = TestApp::start().await;
    let body = b"this is not json";
    let res = app.github("issues", "x", body).await;
    assert_eq!(res.status(), 400);
    let err = res.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(err.starts_with("body is not JSON: expected"), "{err}");
    assert!(!err.contains('\n'));
    let form = b"payload=%7B%7D";
    let res = app
        .http
        .post(app.url("/hooks/gh"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-github-event", "issues")
        .header("x-hub-signature-256", github_signature(SECRET, form))
        .body(form.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("application/json"));
    assert_eq!(app.sql_count("SELECT count(*) FROM deliveries"), 0);
    app.stop().await;
}

#[tokio::test]
async fn github_ping_is_answered_and_kept_only_for_deduplication() {
    let app = TestApp::start().await;
    let res = app.github("ping", "p", &fixture("ping.json")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["ping"], "pong");
    assert_eq!(
        app.sql_count("SELECT count(*) FROM deliveries WHERE state <> 'handshake'"),
        0
    );
    assert_eq!(app.sql_count("SELECT count(*) FROM outbox"), 0);
    app.stop().await;
}

#[tokio::test]
async fn health_endpoints_answer() {
    let app = TestApp::start().await;
    let res = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "ok\n");
    let res = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["ready"], true);
    assert_eq!(body["reasons"], serde_json::json!([]));
    app.stop().await;
}

#[tokio::test]
async fn slow_headers_are_cut_off() {
    let app = TestApp::start().await;
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    s.write_all(b"POST /hooks/gh HTTP/1.1\r\nHost: t\r\n")
        .await
        .unwrap();
    // Never finish the headers: the server must close the connection after header_timeout (300 ms).
    let start = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(WAIT, s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the connection was still open after {WAIT:?}");
    assert!(start.elapsed() < Duration::from_secs(5));
    app.stop().await;
}

#[tokio::test]
async fn slow_bodies_are_cut_off_with_408() {
    let app = TestApp::start().await;
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    s.write_all(
        format!(
            "POST /hooks/gh HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n{SIGNED}\r\n{{\"a\":"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let answer = read_answer(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(app.sql_count("SELECT count(*) FROM deliveries"), 0);
    app.stop().await;
}

#[tokio::test]
async fn thousands_of_forged_requests_store_nothing() {
    let app = TestApp::start().await;
    let body = fixture("issues.opened.json");
    // 2,000 forged deliveries, 100 at a time.
    for batch in 0..20 {
        let mut tasks = Vec::new();
        for i in 0..100 {
            let http = app.http.clone();
            let url = app.url("/hooks/gh");
            let body = body.clone();
            tasks.push(tokio::spawn(async move {
                http.post(url)
                    .header("x-github-event", "issues")
                    .header("x-github-delivery", format!("f{batch}-{i}"))
                    .header(
                        "x-hub-signature-256",
                        format!("sha256={:064x}", batch * 100 + i),
                    )
                    .body(body)
                    .send()
                    .await
                    .unwrap()
                    .status()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 401);
        }
    }
    assert_eq!(app.sql_count("SELECT count(*) FROM deliveries"), 0);
    assert!(app.x.seen().iter().all(|s| s.path != "/2/tweets"));
    // The daemon still serves real deliveries afterwards.
    assert_eq!(
        app.github("issues", "real", &fixture("issues.opened.json"))
            .await
            .status(),
        202
    );
    app.stop().await;
}

/// Reads an HTTP answer until the server closes or a blank line and some body arrived.
pub async fn read_answer(s: &mut TcpStream) -> String {
    let mut buf = vec![0u8; 4096];
    let mut out = Vec::new();
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                out.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&out);
                if let Some(i) = text.find("\r\n\r\n")
                    && text.len() > i + 4
                {
                    break;
                }
            }
            Err(_) if !out.is_empty() => break,
            Err(_) => {}
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A full store (here: the configured size cap, which SQLite enforces as a full disk) answers 503 so the
/// sender retries; what was accepted before stays, and is posted once there is room again.
#[tokio::test]
async fn a_full_store_answers_503_and_keeps_what_it_accepted() {
    let x = crate::support::fake_x::FakeX::start().await;
    let dir = tempfile::tempdir().unwrap();
    let base = crate::support::config_toml(&dir.path().join("chirpd.db"), &x.url, "");
    let capped = base.replace("[store]\n", "[store]\nmax_size_mb = 1\n");
    let app = TestApp::start_text(dir, x, &capped).await;
    let mut accepted = 0;
    let mut refused = None;
    for i in 0..200 {
        // About 40 KB each, distinct.
        let body = crate::support::issue_opened(&format!("big {i} {}", "x".repeat(40_000)));
        let res = app.github("issues", &format!("big-{i}"), &body).await;
        match res.status().as_u16() {
            202 => accepted += 1,
            503 => {
                refused = Some(res.json::<Value>().await.unwrap());
                break;
            }
            other => panic!("delivery {i} answered {other}"),
        }
    }
    let refused = refused.expect("the store never filled up");
    assert_eq!(refused["error"], "store unavailable; retry later");
    assert!(accepted > 0);
    assert_eq!(app.sql_count("SELECT count(*) FROM deliveries"), accepted);
    // The daemon is still up and says so.
    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // With room again (the cap lifted at restart), everything accepted is posted.
    let (dir, x) = app.stop().await;
    let app = TestApp::start_text(dir, x, &base).await;
    let tweets = app.x.wait_for_tweets(accepted as usize, WAIT).await;
    assert_eq!(tweets.len(), accepted as usize);
    app.stop().await;
}
