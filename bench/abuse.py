#!/usr/bin/env python3
"""Abuse measurements against the release binary, all on 127.0.0.1 (see bench/abuse.sh).

1. Peak RSS while 200 clients each send a 1 MiB body at once: unsigned, then with a well-formed but
   wrong signature (the worst case, since such bodies must be read before the MAC can be checked).
2. While 256 slow clients hold every connection (a header byte every second): how long /healthz and a
   correctly signed webhook take to be answered, and with what.
Every loop is bounded in count and time; the daemon is stopped at the end.
"""
import hashlib, hmac, os, socket, subprocess, sys, threading, time

BIN, WORK = sys.argv[1], sys.argv[2]
SECRET = b"bench-secret-0123456789"
PORT = 18797
MIB = 1024 * 1024

def start(max_connections):
    cfg = os.path.join(WORK, "chirpd.toml")
    with open(cfg, "w") as f:
        f.write(f"""[server]
listen = "127.0.0.1:{PORT}"
max_connections = {max_connections}
header_timeout = "60s"
body_timeout = "60s"
[store]
path = "{WORK}/chirpd.db"
[sources.gh]
provider = "github"
secret = "{SECRET.decode()}"
[destinations.team]
kind = "x"
dry_run = true
require_protected = false
[[routes]]
source = "gh"
events = ["task.created"]
to = ["team"]
template = "{{{{ event.title }}}}"
""")
    p = subprocess.Popen([BIN, "run", "--config", cfg], stderr=open(os.path.join(WORK, "log"), "ab"),
                         env={**os.environ, "RUST_LOG": "error"})
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", PORT), timeout=1).close()
            return p
        except OSError:
            time.sleep(0.05)
    p.kill()
    sys.exit("chirpd did not start")

def rss_kb(pid, field):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field):
            return int(line.split()[1])
    return 0

def send_big(headers, results):
    try:
        s = socket.create_connection(("127.0.0.1", PORT), timeout=30)
        s.sendall(("POST /hooks/gh HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\n"
                   f"X-GitHub-Event: issues\r\nContent-Length: {MIB}\r\n{headers}\r\n").encode())
        chunk = b"x" * 65536
        try:
            for _ in range(MIB // len(chunk)):
                s.sendall(chunk)
        except OSError:
            pass  # answered and closed before the whole body was sent: that is the point
        answer = s.recv(64).decode(errors="replace")
        results.append(answer.split("\r\n")[0])
        s.close()
    except OSError as e:
        results.append(f"error {e}")

def flood(headers):
    results, threads = [], []
    for _ in range(200):
        t = threading.Thread(target=send_big, args=(headers, results))
        t.start()
        threads.append(t)
    for t in threads:
        t.join(60)
    counts = {}
    for r in results:
        counts[r] = counts.get(r, 0) + 1
    return counts

def timed_request(raw):
    start = time.time()
    try:
        s = socket.create_connection(("127.0.0.1", PORT), timeout=60)
        s.sendall(raw)
        answer = s.recv(128).decode(errors="replace").split("\r\n")[0]
        s.close()
    except OSError as e:
        answer = f"error {e}"
    return answer, (time.time() - start) * 1000

def main():
    p = start(256)
    base = rss_kb(p.pid, "VmRSS")
    unsigned = flood("")
    after_unsigned = rss_kb(p.pid, "VmHWM")
    wrong = flood("X-Hub-Signature-256: sha256=" + "0" * 64 + "\r\n")
    after_wrong = rss_kb(p.pid, "VmHWM")
    print(f"idle RSS: {base / 1024:.1f} MB")
    print(f"200 unsigned 1 MiB bodies: answers {unsigned}; peak RSS {after_unsigned / 1024:.1f} MB")
    print(f"200 wrongly signed 1 MiB bodies: answers {wrong}; peak RSS {after_wrong / 1024:.1f} MB")

    # 256 slow clients hold every connection.
    slow = []
    for _ in range(256):
        s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
        s.sendall(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
        slow.append(s)
    time.sleep(1)
    healthz = timed_request(b"GET /healthz HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
    body = b'{"action":"opened","issue":{"title":"hello","number":1},"repository":{"full_name":"a/b"}}'
    sig = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    hook = timed_request(("POST /hooks/gh HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\n"
                          "X-GitHub-Event: issues\r\nX-GitHub-Delivery: slow-1\r\n"
                          f"X-Hub-Signature-256: sha256={sig}\r\nContent-Length: {len(body)}\r\n"
                          "Connection: close\r\n\r\n").encode() + body)
    for i in range(3):  # the slow clients trickle a byte a second, for three seconds
        for s in slow:
            try:
                s.sendall(b"a")
            except OSError:
                pass
        time.sleep(1)
    print(f"with 256 slow clients holding every connection: /healthz answered '{healthz[0]}' in {healthz[1]:.1f} ms;"
          f" a signed webhook answered '{hook[0]}' in {hook[1]:.1f} ms")
    for s in slow:
        s.close()
    time.sleep(0.5)
    hook = timed_request(("POST /hooks/gh HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\n"
                          "X-GitHub-Event: issues\r\nX-GitHub-Delivery: slow-2\r\n"
                          f"X-Hub-Signature-256: sha256={sig}\r\nContent-Length: {len(body)}\r\n"
                          "Connection: close\r\n\r\n").encode() + body)
    print(f"once they leave, a signed webhook answered '{hook[0]}' in {hook[1]:.1f} ms")
    p.terminate()
    p.wait(30)

main()
