#!/usr/bin/env python3
"""Writes N distinct GitHub `issues` deliveries of about 3 KB, each HMAC-SHA256 signed, for wrk to replay.

Output: one line per request, `<delivery id>\t<signature>\t<body>` (the body is compact JSON, no tabs).
Distinct bodies matter: a repeated body is a duplicate, which chirpd answers without writing anything.
"""
import hashlib
import hmac
import json
import sys

secret = sys.argv[1].encode()
count = int(sys.argv[2])
out = sys.argv[3]
# The filler pads the body: 90 repetitions make about 3 KB; fewer make smaller bodies.
repeat = int(sys.argv[4]) if len(sys.argv) > 4 else 90
filler = "lorem ipsum dolor sit amet " * repeat
with open(out, "w") as f:
    for i in range(count):
        body = json.dumps(
            {
                "action": "opened",
                "issue": {
                    "number": i,
                    "title": f"Benchmark issue {i}",
                    "html_url": f"https://github.com/acme/widgets/issues/{i}",
                    "body": filler,
                    "labels": [{"name": "bench"}],
                },
                "repository": {"full_name": "acme/widgets", "html_url": "https://github.com/acme/widgets"},
                "sender": {"login": "bench"},
            },
            separators=(",", ":"),
        )
        sig = hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()
        f.write(f"bench-{i}\tsha256={sig}\t{body}\n")
