"""CPU-bound work under CPython's GIL: threads against processes.

Two modes:

    work.py --task summarise|compress --workers N --pool threads|processes \
            --batches B --batch-size S --input data/twitter.json
    work.py serve --port 0

The batch mode prints one JSON line with the throughput and a digest of the
results; the Go (go/gilwork) and Rust (rust/gil-work) programs print the same
line for the same input, so the digests prove all three did the same work.
The serve mode is the same summary behind the stdlib ThreadingHTTPServer, the
way a legacy Python service would offer it.
"""

import argparse
import collections
import concurrent.futures
import hashlib
import http.server
import json
import multiprocessing
import signal
import sys
import threading
import time
import zlib

# --- types -------------------------------------------------------------------


class BadInput(Exception):
    """A request the service refuses, with the HTTP status it maps to."""

    def __init__(self, status, kind, detail):
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail


# --- limits ------------------------------------------------------------------

BODY_LIMIT_BYTES = 2 * 1024 * 1024  # 2 MiB, the same cap as fastjson-api
TOP_HASHTAGS = 10
ZLIB_LEVEL = 6
# Counts are u32 in fastjson-api (rust/fastjson-api), whose schema this one
# follows so that the three services accept and refuse the same bodies.
COUNT_MAX = 2**32 - 1
SHUTDOWN_GRACE_S = 5.0


# --- the summary -------------------------------------------------------------

_JSON_NAMES = {dict: "an object", list: "an array", str: "a string"}


def _wrong_type(detail):
    return BadInput(422, "wrong_type", detail)


def _field(obj, key, kind, where):
    """obj[key], which must be present and of kind (not null)."""
    try:
        value = obj[key]
    except KeyError:
        raise _wrong_type(f'{where}: missing field "{key}"') from None
    if not isinstance(value, kind):
        raise _wrong_type(f'{where}: "{key}" must be {_JSON_NAMES[kind]}')
    return value


def _count(obj, key, where):
    """obj[key], which must be an integer in 0..2^32-1."""
    try:
        value = obj[key]
    except KeyError:
        raise _wrong_type(f'{where}: missing field "{key}"') from None
    # bool is a subclass of int in Python: `true` is not a count.
    if type(value) is not int or not 0 <= value <= COUNT_MAX:
        raise _wrong_type(f'{where}: "{key}" must be an integer in 0..2^32-1')
    return value


def summarise_doc(doc):
    """The summary of a parsed {"statuses": [...]} document, as a dict.

    Every field read is required, as in fastjson-api; only retweeted_status
    may be absent or null.
    """
    if not isinstance(doc, dict):
        raise _wrong_type("the body must be a JSON object")
    statuses = _field(doc, "statuses", list, "the body")

    retweets = 0
    user_ids = set()
    total_followers = 0
    total_retweet_count = 0
    text_chars = 0
    languages = collections.Counter()
    hashtags = collections.Counter()

    for status in statuses:
        if not isinstance(status, dict):
            raise _wrong_type("each status must be an object")
        _field(status, "id_str", str, "status")

        retweeted = status.get("retweeted_status")
        if isinstance(retweeted, dict):
            retweets += 1
        elif retweeted is not None:
            raise _wrong_type('"retweeted_status" must be an object or null')

        user = _field(status, "user", dict, "status")
        user_ids.add(_field(user, "id_str", str, "user"))
        total_followers += _count(user, "followers_count", "user")
        total_retweet_count += _count(status, "retweet_count", "status")
        # len() of a str counts code points, which is what is wanted.
        text_chars += len(_field(status, "text", str, "status"))
        languages[_field(status, "lang", str, "status")] += 1

        entities = _field(status, "entities", dict, "status")
        for tag in _field(entities, "hashtags", list, "entities"):
            if not isinstance(tag, dict):
                raise _wrong_type("each hashtag must be an object")
            hashtags[_field(tag, "text", str, "hashtag")] += 1

    # Python compares str by code point, which is UTF-8 byte order.
    top = sorted(hashtags.items(), key=lambda item: (-item[1], item[0]))
    return {
        "statuses": len(statuses),
        "retweets": retweets,
        "users": len(user_ids),
        "total_followers": total_followers,
        "total_retweet_count": total_retweet_count,
        "text_chars": text_chars,
        "languages": dict(sorted(languages.items())),
        "top_hashtags": [
            {"tag": tag, "count": count} for tag, count in top[:TOP_HASHTAGS]
        ],
    }


def summarise(body):
    """Parse body (bytes) and summarise it; BadInput on anything malformed."""
    try:
        # Decode first: json.loads(bytes) would also guess UTF-16 and UTF-32,
        # which the Go and Rust versions do not accept.
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadInput(400, "malformed_json", f"the body is not JSON: {err}") from err
    except RecursionError as err:
        raise BadInput(400, "malformed_json", "the JSON is nested too deep") from err
    return summarise_doc(doc)


def canonical(obj):
    """Canonical JSON bytes: sorted keys, no spaces, UTF-8 as is."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as err:
        # A lone surrogate escape (\ud800) in the input survives json.loads
        # but has no UTF-8 form.
        raise BadInput(400, "malformed_json", "the JSON has a lone surrogate") from err


def compress(body):
    """zlib at level 6; returns the compressed bytes."""
    return zlib.compress(body, ZLIB_LEVEL)


# --- batches -----------------------------------------------------------------


def _raw_statuses(text):
    """The exact source text of each element of the top-level "statuses".

    Slicing the source, instead of parsing and re-serialising, gives batches
    that are byte for byte the same in Python, Go and Rust: number formats,
    key order and escapes never get a chance to differ.
    """
    decoder = json.JSONDecoder()
    ws = " \t\n\r"

    def skip(pos):
        while pos < len(text) and text[pos] in ws:
            pos += 1
        return pos

    pos = skip(0)
    if text[pos : pos + 1] != "{":
        raise ValueError("the input must be a JSON object")
    pos = skip(pos + 1)
    found = None
    while text[pos : pos + 1] != "}":
        key, pos = decoder.raw_decode(text, pos)
        pos = skip(pos)
        if text[pos : pos + 1] != ":":
            raise ValueError(f"expected ':' at character {pos}")
        pos = skip(pos + 1)
        if key == "statuses" and text[pos : pos + 1] == "[":
            found = []
            pos = skip(pos + 1)
            while text[pos : pos + 1] != "]":
                _, end = decoder.raw_decode(text, pos)
                found.append(text[pos:end].encode("utf-8"))
                pos = skip(end)
                if text[pos : pos + 1] == ",":
                    pos = skip(pos + 1)
            pos += 1
        else:
            _, pos = decoder.raw_decode(text, pos)
        pos = skip(pos)
        if text[pos : pos + 1] == ",":
            pos = skip(pos + 1)
    if found is None:
        raise ValueError('the input has no "statuses" array')
    return found


def build_batches(input_path, batches, batch_size):
    """The distinct batches: batch i is the statuses rotated left by i, cut to
    batch_size.

    Batch i and batch i + n (n statuses in the input) are the same bytes, so
    only the first min(batches, n) are built and batch i is out[i % len(out)]:
    memory then shows the workers, not B copies of one file.
    """
    with open(input_path, encoding="utf-8") as f:
        raw = _raw_statuses(f.read())
    if not 1 <= batch_size <= len(raw):
        raise ValueError(f"--batch-size must be between 1 and {len(raw)}")
    out = []
    for start in range(min(batches, len(raw))):
        rotated = raw[start:] + raw[:start]
        out.append(b'{"statuses":[' + b",".join(rotated[:batch_size]) + b"]}")
    return out


def batch(batches, index):
    """Batch number index, out of the distinct batches build_batches made."""
    return batches[index % len(batches)]


# --- workers -----------------------------------------------------------------

# Each worker process holds its own copy of the batches (that copy is part of
# the memory cost of the process workaround); threads share the parent's.
_BATCHES = []
# A multiprocessing barrier can only reach a process when it starts, so it is
# handed over by the initializer and kept here, not sent with a task.
_BARRIER = [None]


def _init_worker(input_path, batches, batch_size, barrier):
    _BATCHES[:] = build_batches(input_path, batches, batch_size)
    _BARRIER[0] = barrier


def _wait_at_barrier(_):
    # A worker blocked here cannot take a second task, so N of these land on
    # N distinct workers: the pool is fully started before timing.
    _BARRIER[0].wait()


def _run_task(task, index):
    body = batch(_BATCHES, index)
    if task == "summarise":
        return summarise(body)
    return compress(body)


def run_batches(task, pool_kind, workers, batches, batch_size, input_path):
    """Time the task over every batch; returns the result line as a dict."""
    _BATCHES[:] = build_batches(input_path, batches, batch_size)

    if pool_kind == "threads":
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers)
        _BARRIER[0] = threading.Barrier(workers)
    else:
        # spawn: each worker is a fresh interpreter, the same on every OS, and
        # no fork happens while the parent holds threads.
        ctx = multiprocessing.get_context("spawn")
        barrier = ctx.Barrier(workers)
        pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(input_path, batches, batch_size, barrier),
        )

    with pool:
        # Warm-up, untimed: start every worker, then one task on each.
        list(pool.map(_wait_at_barrier, range(workers)))
        list(pool.map(_run_task, [task] * workers, range(min(workers, batches))))

        # Processes get tasks in chunks, as anyone tuning the workaround would
        # do, so the round trip through the pool's pipes is paid per chunk and
        # not per batch; threads ignore chunksize.
        chunksize = max(1, batches // (workers * 4))
        start_s = time.perf_counter()
        results = list(
            pool.map(_run_task, [task] * batches, range(batches), chunksize=chunksize)
        )
        elapsed_s = time.perf_counter() - start_s

    line = {
        "lang": "python",
        "pool": pool_kind,
        "task": task,
        "workers": workers,
        "batches": batches,
        "batch_size": batch_size,
        "elapsed_s": elapsed_s,
        "tasks_per_s": batches / elapsed_s,
    }
    if task == "compress":
        # The round trip is checked after timing: it is not the work measured.
        line["compressed_bytes"] = sum(len(c) for c in results)
        results = [
            {
                "input_bytes": len(batch(_BATCHES, i)),
                "ok": zlib.decompress(c) == batch(_BATCHES, i),
            }
            for i, c in enumerate(results)
        ]
    line["digest"] = hashlib.sha256(canonical(results)).hexdigest()
    return line


# --- handlers ----------------------------------------------------------------


class Handler(http.server.BaseHTTPRequestHandler):
    """POST /summarise: one batch in, its summary out."""

    # Keep-alive, so a load generator measures requests, not TCP handshakes.
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY, as Go's net/http and Actix set it: the headers and the
    # body go out in two writes, and with Nagle's algorithm the body would
    # wait for the client's delayed ACK of the headers (40 ms on Linux).
    disable_nagle_algorithm = True

    def log_message(self, format, *args):
        # No per-request log: writing to stderr on every request would be
        # part of what is measured.
        pass

    def _send(self, status, payload):
        body = canonical(payload)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _error(self, err):
        self._send(err.status, {"error": err.kind, "detail": err.detail})

    def do_POST(self):
        try:
            self._error_or_summary()
        except BadInput as err:
            self._error(err)

    def _error_or_summary(self):
        if self.path != "/summarise":
            raise BadInput(404, "not_found", f"no route for POST {self.path}")
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            # Without a length the body cannot be read safely on HTTP/1.1.
            self.close_connection = True
            raise BadInput(411, "length_required", "send a Content-Length header")
        length_bytes = int(length)
        if length_bytes > BODY_LIMIT_BYTES:
            # The body stays unread, so this connection cannot be reused.
            self.close_connection = True
            raise BadInput(
                413,
                "body_too_large",
                f"the body is {length_bytes} bytes; the limit is "
                f"{BODY_LIMIT_BYTES} bytes",
            )
        body = self.rfile.read(length_bytes)
        self._send(200, summarise(body))

    def _not_allowed(self):
        self.close_connection = True
        self._error(
            BadInput(405, "method_not_allowed", "use POST /summarise with a JSON body")
        )

    do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = _not_allowed


# --- start and graceful shutdown ---------------------------------------------


def serve(port):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    # serve_forever runs in a thread because shutdown() waits for it to
    # return and so cannot be called from the thread that runs it.
    loop = threading.Thread(target=server.serve_forever, daemon=True)
    loop.start()
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)

    stop.wait()
    print("shutting down", file=sys.stderr)
    server.shutdown()
    loop.join(SHUTDOWN_GRACE_S)
    server.server_close()


def main(argv):
    if argv[:1] == ["serve"]:
        parser = argparse.ArgumentParser(prog="work.py serve")
        parser.add_argument("--port", type=int, default=0)
        serve(parser.parse_args(argv[1:]).port)
        return 0

    parser = argparse.ArgumentParser(prog="work.py")
    parser.add_argument("--task", choices=("summarise", "compress"), required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--pool", choices=("threads", "processes"), required=True)
    parser.add_argument("--batches", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--input", required=True)
    args = parser.parse_args(argv)
    if args.workers < 1 or args.batches < 1:
        parser.error("--workers and --batches must be at least 1")
    try:
        line = run_batches(
            args.task,
            args.pool,
            args.workers,
            args.batches,
            args.batch_size,
            args.input,
        )
    except (OSError, ValueError) as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
