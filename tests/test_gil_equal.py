"""The GIL chapter's three worker programs do the same work.

Builds go/gilwork and rust/gil-work, runs them and snippets/python/gil/work.py
on the same small input, and checks that the digests of their results agree;
then checks that the Python and Go `serve` modes answer the same requests the
same way. A missing toolchain skips its part with the reason.
"""

import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
INPUT = REPO / "data" / "twitter.json"
WORK_PY = REPO / "snippets" / "python" / "gil" / "work.py"

BUILD_TIMEOUT_S = 600  # a cold Rust build of the workspace's dependencies
RUN_TIMEOUT_S = 120
START_TIMEOUT_S = 10
BATCHES = 103  # past the 100 statuses, so batch i wraps to batch i % 100
BATCH_SIZE = 40
WORKERS = 2


@pytest.fixture(scope="module")
def go_bin(tmp_path_factory):
    if shutil.which("go") is None:
        pytest.skip("go not found: install Go 1.22 or later to run this part")
    out = tmp_path_factory.mktemp("gilwork") / "gilwork"
    subprocess.run(
        ["go", "build", "-o", str(out), "./gilwork"],
        cwd=REPO / "go",
        check=True,
        timeout=BUILD_TIMEOUT_S,
    )
    return out


@pytest.fixture(scope="module")
def rust_bin():
    if shutil.which("cargo") is None:
        pytest.skip("cargo not found: install Rust (rustup.rs) to run this part")
    rust = REPO / "rust"
    # A debug build: equality does not need the release profile's fat LTO.
    subprocess.run(
        ["cargo", "build", "--quiet", "-p", "gil-work"],
        cwd=rust,
        check=True,
        timeout=BUILD_TIMEOUT_S,
    )
    meta = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=rust,
        check=True,
        capture_output=True,
        timeout=RUN_TIMEOUT_S,
    )
    return Path(json.loads(meta.stdout)["target_directory"]) / "debug" / "gil-work"


def run_line(cmd):
    """Run one worker program and return its single JSON line."""
    done = subprocess.run(
        cmd, check=True, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )
    lines = done.stdout.splitlines()
    assert len(lines) == 1, f"{cmd[0]} printed {lines!r}"
    return json.loads(lines[0])


def common_flags(task):
    return [
        "--task",
        task,
        "--workers",
        str(WORKERS),
        "--batches",
        str(BATCHES),
        "--batch-size",
        str(BATCH_SIZE),
        "--input",
        str(INPUT),
    ]


@pytest.mark.parametrize("task", ["summarise", "compress"])
def test_digests_equal(task, go_bin, rust_bin):
    lines = {
        "python threads": run_line(
            [sys.executable, str(WORK_PY), *common_flags(task), "--pool", "threads"]
        ),
        "python processes": run_line(
            [sys.executable, str(WORK_PY), *common_flags(task), "--pool", "processes"]
        ),
        "go": run_line([str(go_bin), *common_flags(task)]),
        "rust": run_line([str(rust_bin), *common_flags(task)]),
    }
    for name, line in lines.items():
        assert line["task"] == task, name
        assert line["workers"] == WORKERS, name
        assert line["batches"] == BATCHES, name
        assert line["batch_size"] == BATCH_SIZE, name
        assert line["elapsed_s"] > 0 and line["tasks_per_s"] > 0, name
    digests = {name: line["digest"] for name, line in lines.items()}
    assert len(set(digests.values())) == 1, digests

    if task == "compress":
        # The digest covers [{"input_bytes": n, "ok": true}, ...]: equal
        # digests mean equal input sizes and a round trip that held. Check
        # it against one computed here, too.
        sys.path.insert(0, str(WORK_PY.parent))
        try:
            import work
        finally:
            sys.path.pop(0)
        batches = work.build_batches(INPUT, BATCHES, BATCH_SIZE)
        expected = [
            {"input_bytes": len(work.batch(batches, i)), "ok": True}
            for i in range(BATCHES)
        ]
        want = work.hashlib.sha256(work.canonical(expected)).hexdigest()
        assert digests["go"] == want
        for name, line in lines.items():
            assert line["compressed_bytes"] > 0, name


# --- serve mode --------------------------------------------------------------

GOOD_STATUS = (
    '"id_str":"1","text":"hé😀","lang":"ja","retweet_count":2,'
    '"user":{"id_str":"9","followers_count":10},'
    '"entities":{"hashtags":[{"text":"b"},{"text":"a"},{"text":"b"}]}'
)


def one_status(extra=""):
    """A body of one valid status, with extra fields overriding its own."""
    return '{"statuses":[{' + GOOD_STATUS + extra + "}]}"


# (name, method, path, body): both services must give the same status, and the
# same body for a 200 or the same "error" kind otherwise.
REQUESTS = [
    ("ok", "POST", "/summarise", one_status()),
    ("empty", "POST", "/summarise", '{"statuses":[]}'),
    ("malformed", "POST", "/summarise", '{"statuses":['),
    ("nested too deep", "POST", "/summarise", "[" * 20_000),
    ("not utf-8", "POST", "/summarise", b'{"statuses":["\xff"]}'),
    ("top level array", "POST", "/summarise", "[]"),
    ("statuses missing", "POST", "/summarise", "{}"),
    ("status missing text", "POST", "/summarise", '{"statuses":[{"id_str":"1"}]}'),
    ("count float", "POST", "/summarise", one_status(',"retweet_count":1.0')),
    ("count bool", "POST", "/summarise", one_status(',"retweet_count":true')),
    ("count negative", "POST", "/summarise", one_status(',"retweet_count":-1')),
    ("retweet string", "POST", "/summarise", one_status(',"retweeted_status":"x"')),
    ("retweet object", "POST", "/summarise", one_status(',"retweeted_status":{}')),
    (
        "hashtag null",
        "POST",
        "/summarise",
        one_status(',"entities":{"hashtags":[null]}'),
    ),
    ("get", "GET", "/summarise", ""),
    ("unknown path", "POST", "/nowhere", "{}"),
]


class Service:
    """A `serve --port 0` child, stopped by SIGTERM on the way out."""

    def __init__(self, cmd):
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        line = []
        reader = threading.Thread(
            target=lambda: line.append(self.proc.stdout.readline())
        )
        reader.start()
        reader.join(START_TIMEOUT_S)
        if not line or not line[0].startswith("listening on 127.0.0.1:"):
            self.proc.kill()
            self.proc.wait(START_TIMEOUT_S)
            pytest.fail(f"{cmd[0]} did not print its listening line: {line!r}")
        self.port = int(line[0].rsplit(":", 1)[1])

    def request(self, method, path, body):
        """Send one request on a fresh connection; (status, body bytes)."""
        body = body.encode() if isinstance(body, str) else body
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        return self.raw(head + body)

    def raw(self, data):
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(data)
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        return status, body

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(START_TIMEOUT_S)
            pytest.fail("the service did not stop within 5 s of SIGTERM")


@pytest.fixture
def services(go_bin):
    started = []
    try:
        for cmd in (
            [sys.executable, str(WORK_PY), "serve", "--port", "0"],
            [str(go_bin), "serve", "--port", "0"],
        ):
            started.append(Service(cmd))
        yield started
    finally:
        for service in started:
            if service.proc.poll() is None:
                service.proc.kill()
                service.proc.wait(START_TIMEOUT_S)


def test_serve_modes_agree(services):
    python, go = services
    for name, method, path, body in REQUESTS:
        answers = [s.request(method, path, body) for s in services]
        (py_status, py_body), (go_status, go_body) = answers
        assert py_status == go_status, (name, answers)
        if py_status == 200:
            assert py_body == go_body, name
        else:
            assert 400 <= py_status < 500, name
            assert json.loads(py_body)["error"] == json.loads(go_body)["error"], name
            assert set(json.loads(py_body)) == {"error", "detail"}, name

    ok = json.loads(python.request(*REQUESTS[0][1:])[1])
    assert ok["top_hashtags"] == [{"count": 2, "tag": "b"}, {"count": 1, "tag": "a"}]
    assert ok["text_chars"] == 3

    # Over 2 MiB, told by the Content-Length: refused before the body is read.
    too_large = (
        b"POST /summarise HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Length: 3000000\r\n\r\n"
    )
    for service in services:
        status, body = service.raw(too_large)
        assert status == 413
        assert json.loads(body)["error"] == "body_too_large"

    for service in services:
        assert service.stop() == 0
