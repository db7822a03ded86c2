"""Checks that a leak service answers the shared API, the same way for all.

Starts the command given after ``--`` (it must print ``listening on
127.0.0.1:PORT``), runs a fixed table of requests against it on loopback,
then stops it with SIGTERM and checks it exits within 5 s. Exit status 0
means every check passed.

    python check_api.py -- java -Xmx64m -cp OUT LeakService --port 0
    python check_api.py -- rust/target/release/leak-service --port 0 \
        --mode bounded
"""

import http.client
import json
import signal
import subprocess
import sys

STOP_LIMIT_S = 5
REQUEST_TIMEOUT_S = 5
BODY_LIMIT_BYTES = 64 * 1024
GOOD_BODY = '{"user":"u123","items":["a1","b2","c3"]}'

# (name, method, path, body, wanted status, wanted error kind or None)
CASES = [
    ("create", "POST", "/sessions", GOOD_BODY, 200, None),
    ("show", "GET", "/sessions/1", None, 200, None),
    ("stats", "GET", "/stats", None, 200, None),
    ("empty", "POST", "/sessions", "", 400, "malformed_json"),
    ("not json", "POST", "/sessions", "user=u1", 400, "malformed_json"),
    ("cut short", "POST", "/sessions", '{"user":"u1",', 400, "malformed_json"),
    ("trailing", "POST", "/sessions", GOOD_BODY + " x", 400, "malformed_json"),
    ("deep", "POST", "/sessions", "[" * 10_000, 422, "wrong_type"),
    ("user number", "POST", "/sessions", '{"user":1,"items":[]}', 422, "wrong_type"),
    ("item number", "POST", "/sessions", '{"user":"u","items":[1]}', 422, "wrong_type"),
    ("missing items", "POST", "/sessions", '{"user":"u"}', 422, "wrong_type"),
    (
        "unknown",
        "POST",
        "/sessions",
        '{"user":"u","items":[],"x":1}',
        422,
        "wrong_type",
    ),
    ("array", "POST", "/sessions", '["u",[]]', 422, "wrong_type"),
    (
        "too large",
        "POST",
        "/sessions",
        '{"user":"u","items":["' + "x" * BODY_LIMIT_BYTES + '"]}',
        413,
        "body_too_large",
    ),
    ("no route", "GET", "/nowhere", None, 404, "not_found"),
    ("bad method", "GET", "/sessions", None, 405, "method_not_allowed"),
    ("bad id", "GET", "/sessions/abc", None, 400, "bad_id"),
    ("unknown id", "GET", "/sessions/999999", None, 404, "not_found"),
]


def ask(port, method, path, body):
    """One request on a fresh connection; returns (status, headers, JSON)."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=REQUEST_TIMEOUT_S
    )
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.headers, json.loads(response.read())
    finally:
        connection.close()


def check(port):
    """Runs CASES; returns the list of failures as sentences."""
    failures = []
    for name, method, path, body, want_status, want_kind in CASES:
        try:
            status, headers, answer = ask(port, method, path, body)
        except (OSError, ValueError) as err:
            failures.append(f"{name}: request failed: {err}")
            continue
        if status != want_status:
            failures.append(f"{name}: status {status}, wanted {want_status}: {answer}")
        if "application/json" not in headers.get("Content-Type", ""):
            failures.append(f"{name}: Content-Type {headers.get('Content-Type')}")
        if want_kind and (answer.get("error") != want_kind or "detail" not in answer):
            failures.append(f"{name}: body {answer}, wanted error {want_kind}")

    _, _, stats = ask(port, "GET", "/stats", None)
    if set(stats) != {"sessions", "heap_used_bytes", "gc_time_ms", "gc_count"}:
        failures.append(f"stats: keys {sorted(stats)}")
    if stats.get("sessions") != 1:
        failures.append(f"stats: {stats}, wanted 1 session (bad bodies store none)")
    return failures


def main(command):
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline().strip()
        prefix = "listening on 127.0.0.1:"
        if not line.startswith(prefix):
            print(f"ERROR: first line {line!r}, wanted {prefix}PORT")
            return 1
        failures = check(int(line[len(prefix) :]))

        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=STOP_LIMIT_S)
        except subprocess.TimeoutExpired:
            failures.append(f"still running {STOP_LIMIT_S} s after SIGTERM")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()

    for failure in failures:
        print(f"FAIL {failure}")
    print(f"{len(CASES) + 1} requests checked, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    if "--" not in sys.argv:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[sys.argv.index("--") + 1 :]))
