//! The systemd integration, with systemd's own protocols: sd_notify datagrams (READY, WATCHDOG,
//! RELOADING, STOPPING) on a socket the test owns, and socket activation through systemd-socket-activate.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::fake_x::FakeX;
use crate::support::{WAIT, config_toml};

/// Reads notifications until one contains `want`, failing after `WAIT`.
fn expect_notify(sock: &UnixDatagram, want: &str) -> String {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        assert!(
            start.elapsed() < WAIT,
            "no {want} notification within {WAIT:?}"
        );
        match sock.recv(&mut buf) {
            Ok(n) => {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                if msg.contains(want) {
                    return msg;
                }
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("notify socket: {e}"),
        }
    }
}

fn signal(pid: u32, name: &str) {
    let ok = Command::new("sh")
        .args(["-c", &format!("kill -{name} {pid}")])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Starts the binary with a notify socket the test owns and the watchdog at 400 ms, on a free port and a
/// config that `adjust` may change; returns the socket, the process and the port once READY=1 arrived.
fn start_notified(
    dir: &tempfile::TempDir,
    x: &FakeX,
    adjust: impl Fn(String) -> String,
) -> (UnixDatagram, std::process::Child, u16) {
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("chirpd.toml");
    let text = config_toml(&dir.path().join("chirpd.db"), &x.url, "").replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    std::fs::write(&config, adjust(text)).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_chirpd"))
        .args(["run", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "400000")
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    expect_notify(&sock, "READY=1");
    (sock, child, port)
}

#[tokio::test]
async fn notify_ready_watchdog_reload_and_stop() {
    let x = FakeX::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (sock, mut child, _) = start_notified(&dir, &x, |text| text);
    // Fed only when the store, the HTTP server and the workers all make progress; twice to be sure.
    expect_notify(&sock, "WATCHDOG=1");
    expect_notify(&sock, "WATCHDOG=1");
    signal(child.id(), "HUP");
    let reloading = expect_notify(&sock, "RELOADING=1");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    expect_notify(&sock, "READY=1");
    signal(child.id(), "TERM");
    expect_notify(&sock, "STOPPING=1");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < WAIT, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn socket_activation_uses_the_passed_socket() {
    let x = FakeX::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("chirpd.toml");
    // The config names a port nobody listens on: only the passed socket can answer.
    let text = config_toml(&dir.path().join("chirpd.db"), &x.url, "")
        .replace("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:9\"");
    std::fs::write(&config, text).unwrap();
    let mut child = Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(format!("127.0.0.1:{port}"))
        .arg(env!("CARGO_BIN_EXE_chirpd"))
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("systemd-socket-activate (Debian package systemd) must be installed");
    let http = reqwest::Client::new();
    let start = Instant::now();
    loop {
        if let Ok(r) = http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            && r.status() == 200
        {
            break;
        }
        assert!(start.elapsed() < WAIT, "no answer on the activated socket");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn slow_clients_holding_every_connection_do_not_starve_the_watchdog() {
    let x = FakeX::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (sock, mut child, port) = start_notified(&dir, &x, |text| {
        text.replace("max_body_bytes", "max_connections = 1\nmax_body_bytes")
            .replace("header_timeout = \"300ms\"", "header_timeout = \"60s\"")
    });
    // A client that sends a header a byte at a time holds the only connection.
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::io::Write::write_all(&mut slow, b"GET /healthz HTTP/1.1\r\nX: ").unwrap();
    // Once it holds the connection, others are turned away.
    let start = Instant::now();
    loop {
        let mut probe = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        probe
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        std::io::Write::write_all(&mut probe, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let mut buf = [0u8; 64];
        let n = std::io::Read::read(&mut probe, &mut buf).unwrap_or(0);
        if String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 503") {
            break;
        }
        assert!(
            start.elapsed() < WAIT,
            "the slow client never held the connection"
        );
    }
    // Forget what came before (reading for a bounded time: the feed never pauses), then the watchdog
    // must still be fed.
    let mut buf = [0u8; 4096];
    let drained = Instant::now();
    while drained.elapsed() < Duration::from_millis(300) && sock.recv(&mut buf).is_ok() {}
    expect_notify(&sock, "WATCHDOG=1");
    expect_notify(&sock, "WATCHDOG=1");
    drop(slow);
    let _ = child.kill();
    let _ = child.wait();
}
