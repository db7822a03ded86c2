"""The consistency chapter's bench: Raft in Go and in Rust, gossip in Go.

Three replicated key-value services, each a cluster of separate processes
on loopback (one port per node): raftkv on hashicorp/raft (Go), raftkv on
openraft (Rust), and gossipcache on hashicorp/memberlist (Go, leaderless,
last write wins). The bench drives all three with the same client: an
open-loop writer that gives every write a unique key, follows the Raft
leader when a follower refuses it (421), and remembers which writes were
acknowledged. While it writes, one node fails: the Raft leader is killed
(SIGKILL), or a gossip node is paused (SIGSTOP) and resumed (SIGCONT).
Afterwards every acknowledged Raft write is read back from the new leader.

The GC test runs each Raft cluster while every node also allocates on the
side, and compares the gaps between heartbeats that followers saw, and the
elections that happened, with and without that pressure.
"""

import contextlib
import http.client
import json
import os
import random
import signal
import threading
import time
from dataclasses import asdict, dataclass, field

from book import (
    claims,
    gclog,
    load,
    machine,
    modes,
    paths,
    plots,
    results,
    tables,
    toolchain,
)
from book.servers import Server, free_port

CHAPTER = "consistency"
SYSTEMS = {
    "go-raft": "Raft in Go (hashicorp/raft)",
    "rust-raft": "Raft in Rust (openraft)",
    "gossip": "gossip cache in Go (memberlist)",
}
RAFT_SYSTEMS = ("go-raft", "rust-raft")
COLOURS = {
    "go-raft": plots.GO_COLOUR,
    "rust-raft": plots.RUST_COLOUR,
    "gossip": "#e7298a",
}
ELECTION_TIMEOUT_MS = 300  # both Raft engines: a follower waits 300 to 600 ms
PUSH_PULL_MS = 1000  # gossip anti-entropy: a whole-state swap every second
GOSSIP_MS = 100  # memberlist's gossip round on loopback
REQUEST_TIMEOUT_S = 1.0  # one HTTP attempt; a paused node answers nothing
WRITE_DEADLINE_S = 5.0  # a write not acknowledged by then counts as refused
LEADER_TIMEOUT_S = 15.0
CONVERGE_TIMEOUT_S = 10.0  # after the writer stops, how long gossip may take
WRITER_THREADS = 8
THROUGHPUT_CONNECTIONS = 16
HEARTBEAT_MARGIN_MS = 10.0  # a fifth of a heartbeat interval: "within noise"
ALLOC_LIVE_MB = 64  # heap each node keeps alive under allocation pressure

# The article's claims for this chapter. It gives no figures for them, so
# each verdict is qualitative, computed from what was measured.
RAFT_GC_CLAIM = claims.claim("raft_gc")
GOSSIP_CLAIM = claims.claim("gossip_eventual")


# --- how long each phase runs ------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    heartbeat_s: float  # heartbeat-gap phase, with and without pressure
    throughput_s: float  # closed-loop oha run per system
    run_s: float  # the writer's run with a failure in it
    fail_at_s: float  # when the node fails, from the writer's start
    pause_s: float  # how long the gossip node stays paused

    @classmethod
    def for_mode(cls, mode: modes.Mode) -> "Schedule":
        run_s = 2 * mode.duration_s + 2
        return cls(
            heartbeat_s=mode.duration_s,
            throughput_s=mode.duration_s,
            run_s=run_s,
            fail_at_s=round(0.4 * run_s, 1),
            pause_s=max(1.5, mode.duration_s / 2),
        )


# --- the clusters ------------------------------------------------------------


def build_all() -> list[toolchain.Built]:
    """The three services."""
    return [
        toolchain.build_go("raftkv"),
        toolchain.build_go("gossipcache"),
        toolchain.build_cargo("raftkv"),
    ]


def _binary(system: str) -> str:
    if system == "go-raft":
        return str(toolchain.build_go("raftkv").path)
    if system == "rust-raft":
        return str(toolchain.build_cargo("raftkv").path)
    if system == "gossip":
        return str(toolchain.build_go("gossipcache").path)
    raise ValueError(f"unknown system {system!r}; known: {', '.join(SYSTEMS)}")


@dataclass
class Cluster:
    system: str
    servers: list[Server]
    ids: list[str]  # node ids as the services name them: "1", "2", ...
    dead: set[int] = field(default_factory=set)  # indexes of killed nodes
    paused: set[int] = field(default_factory=set)  # indexes of stopped nodes

    def port(self, index: int) -> int:
        return self.servers[index].port

    def live(self) -> list[int]:
        return [
            i
            for i in range(len(self.servers))
            if i not in self.dead and i not in self.paused
        ]


@contextlib.contextmanager
def cluster(
    system: str,
    size: int,
    cpus: tuple[int, ...],
    alloc_mb_per_s: float = 0.0,
    gctrace: bool = False,
):
    """Start `size` nodes of `system`, each its own process group and port."""
    binary = _binary(system)
    ids = [str(i + 1) for i in range(size)]
    side_ports = [free_port() for _ in ids]  # raft transport or gossip port
    commands = []
    for index, node_id in enumerate(ids):
        if system == "gossip":
            joined = [f"127.0.0.1:{p}" for p in side_ports[:index]]
            argv = [
                binary,
                "--port", "0",
                "--id", node_id,
                "--gossip-addr", f"127.0.0.1:{side_ports[index]}",
                "--push-pull-ms", str(PUSH_PULL_MS),
                "--gossip-ms", str(GOSSIP_MS),
            ]  # fmt: skip
            if joined:
                argv += ["--join", ",".join(joined)]
        else:
            peers = ",".join(
                f"{i}=127.0.0.1:{p}" for i, p in zip(ids, side_ports, strict=True)
            )
            argv = [
                binary,
                "--port", "0",
                "--id", node_id,
                "--peers", peers,
                "--election-timeout-ms", str(ELECTION_TIMEOUT_MS),
                "--alloc-mb-per-s", str(alloc_mb_per_s),
                "--alloc-live-mb", str(ALLOC_LIVE_MB),
            ]  # fmt: skip
        commands.append(argv)
    env = {"GODEBUG": "gctrace=1"} if gctrace and system != "rust-raft" else None
    with contextlib.ExitStack() as stack:
        servers = [
            stack.enter_context(
                Server(
                    f"{system}-{node_id}",
                    [argv],
                    cpus=cpus,
                    env=env,
                    ready_path="/status",
                )
            )
            for node_id, argv in zip(ids, commands, strict=True)
        ]
        the_cluster = Cluster(system, servers, ids)
        try:
            yield the_cluster
        finally:
            # A stopped process cannot act on SIGTERM: wake it first.
            for index in list(the_cluster.paused):
                resume(the_cluster, index)
            # Ask every node to stop at once, so their graceful shutdowns
            # overlap; the stack then waits for each (and kills stragglers).
            for index, server in enumerate(servers):
                if index not in the_cluster.dead and not server.exited():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(server.pid, signal.SIGTERM)


def kill(the_cluster: Cluster, index: int) -> None:
    """SIGKILL one node: no goodbye to its peers, as when a machine dies."""
    os.kill(the_cluster.servers[index].pid, signal.SIGKILL)
    the_cluster.dead.add(index)


def pause(the_cluster: Cluster, index: int) -> None:
    os.kill(the_cluster.servers[index].pid, signal.SIGSTOP)
    the_cluster.paused.add(index)


def resume(the_cluster: Cluster, index: int) -> None:
    os.kill(the_cluster.servers[index].pid, signal.SIGCONT)
    the_cluster.paused.discard(index)


# --- an HTTP client per thread -------------------------------------------------


class Client:
    """Keep-alive connections to each node, for one thread."""

    def __init__(self, timeout_s: float = REQUEST_TIMEOUT_S):
        self.timeout_s = timeout_s
        self._connections: dict[int, http.client.HTTPConnection] = {}

    def request(self, port: int, method: str, path: str, body: bytes | None = None):
        """(status, parsed JSON body) or (None, reason) when nothing answered."""
        connection = self._connections.get(port)
        if connection is None:
            connection = http.client.HTTPConnection(
                "127.0.0.1", port, timeout=self.timeout_s
            )
            self._connections[port] = connection
        try:
            connection.request(method, path, body=body)
            response = connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            self._connections.pop(port, None)
            return None, type(error).__name__
        try:
            return response.status, json.loads(data) if data else None
        except ValueError:
            return response.status, None

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()


def node_status(the_cluster: Cluster, index: int) -> dict | None:
    client = Client()
    try:
        status, body = client.request(the_cluster.port(index), "GET", "/status")
    finally:
        client.close()
    return body if status == 200 else None


def wait_for_leader(the_cluster: Cluster, timeout_s: float = LEADER_TIMEOUT_S) -> int:
    """The index of the node that reports itself leader."""
    deadline_s = time.monotonic() + timeout_s
    while time.monotonic() < deadline_s:
        for index in the_cluster.live():
            status = node_status(the_cluster, index)
            if status and status["role"] == "leader":
                return index
        time.sleep(0.02)
    raise RuntimeError(
        f"{the_cluster.system}: no leader within {timeout_s:.0f} s\n"
        + "\n".join(s.log_tail(5) for s in the_cluster.servers)
    )


def wait_for_stable(the_cluster: Cluster, timeout_s: float = LEADER_TIMEOUT_S):
    """Until every live node names the same leader in the same term, twice
    in a row a few heartbeats apart: start-up elections are over."""
    deadline_s = time.monotonic() + timeout_s
    agreed_before = None
    while time.monotonic() < deadline_s:
        seen = {
            (s["leader_id"], s["term"])
            for i in the_cluster.live()
            if (s := node_status(the_cluster, i))
        }
        agreed = seen.pop() if len(seen) == 1 else None
        if agreed and agreed[0] and agreed == agreed_before:
            return
        agreed_before = agreed
        time.sleep(3 * ELECTION_TIMEOUT_MS / 1000 / 10)
    raise RuntimeError(f"{the_cluster.system}: no stable leader in {timeout_s:.0f} s")


def wait_for_members(the_cluster: Cluster, timeout_s: float = LEADER_TIMEOUT_S):
    """Until every gossip node sees every other one."""
    size = len(the_cluster.servers)
    deadline_s = time.monotonic() + timeout_s
    while time.monotonic() < deadline_s:
        counts = [
            (node_status(the_cluster, i) or {}).get("members", 0)
            for i in the_cluster.live()
        ]
        if all(count == size for count in counts):
            return
        time.sleep(0.05)
    raise RuntimeError(f"gossip: members did not all join within {timeout_s:.0f} s")


def terms(the_cluster: Cluster) -> dict[str, int]:
    """Each live node's Raft term."""
    found = {}
    for index in the_cluster.live():
        status = node_status(the_cluster, index)
        if status:
            found[the_cluster.ids[index]] = status["term"]
    return found


# --- verification --------------------------------------------------------------


def verify(the_cluster: Cluster) -> dict:
    """Writes, reads, refusals and bad input, before any load."""
    client = Client()
    checks = {}
    try:
        if the_cluster.system == "gossip":
            # written on one node, read on another: it must travel
            writer, reader = 0, len(the_cluster.servers) - 1
        else:
            writer = wait_for_leader(the_cluster)
            reader = writer
            follower = (writer + 1) % len(the_cluster.servers)
            status, body = client.request(
                the_cluster.port(follower), "PUT", "/kv/verify", b"no"
            )
            if status != 421 or body.get("error") != "not_leader":
                raise AssertionError(f"a follower took a write: {status} {body}")
            checks["follower_refuses"] = status
        status, body = client.request(
            the_cluster.port(writer), "PUT", "/kv/verify", b"v"
        )
        if status != 200:
            raise AssertionError(f"{the_cluster.system}: write got {status} {body}")
        deadline_s = time.monotonic() + CONVERGE_TIMEOUT_S
        while True:
            path = "/kv/verify" + (
                "" if the_cluster.system == "gossip" else "?consistent=1"
            )
            status, body = client.request(the_cluster.port(reader), "GET", path)
            if status == 200 and body["value"] == "v":
                break
            if time.monotonic() > deadline_s:
                raise AssertionError(f"{the_cluster.system}: read got {status} {body}")
            time.sleep(0.02)
        checks["read_back"] = "v"
        limit = 512 if the_cluster.system == "gossip" else 64 * 1024
        bad = [
            ("PUT", "/kv/verify", b"x" * (limit + 1), 413),
            ("GET", "/kv/absent-key", None, 404),
            ("GET", "/no-such-endpoint", None, 404),
        ]
        for method, path, body_bytes, expected in bad:
            status, body = client.request(
                the_cluster.port(writer), method, path, body_bytes
            )
            if status != expected or not isinstance(body, dict) or "error" not in body:
                raise AssertionError(
                    f"{the_cluster.system} {method} {path}: got {status} {body}, "
                    f"want {expected} with a JSON error"
                )
        checks["bad_input_refused"] = len(bad)
    finally:
        client.close()
    return checks


# --- the writer ----------------------------------------------------------------


@dataclass
class Write:
    index: int
    key: str
    scheduled_s: float  # when the open-loop schedule wanted it sent
    acked_s: float | None = None
    node: int | None = None  # which node acknowledged it
    attempts: int = 0
    refusals: int = 0  # 421, 503 or no answer


class Writer:
    """Open-loop writes at `rate_per_s`, each with its own key, until `run_s`.

    Latency is counted from the scheduled time, not the send time, so a
    stalled cluster is charged for the writes it held up (coordinated
    omission). For Raft, a 421 names the leader to try next; no answer
    moves on to the next live node. A write is retried until it is
    acknowledged or WRITE_DEADLINE_S passes.
    """

    def __init__(self, the_cluster: Cluster, rate_per_s: float, run_s: float, tag: str):
        self.cluster = the_cluster
        self.rate_per_s = rate_per_s
        self.run_s = run_s
        self.tag = tag
        self.writes: list[Write] = []
        self.on_ack = None  # called with each acknowledged Write
        self._lock = threading.Lock()  # guards _next, _target, writes
        self._next = 0
        self._target = 0
        self.started_s = 0.0
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        if self.cluster.system != "gossip":
            self._target = wait_for_leader(self.cluster)
        self.started_s = time.monotonic()
        for _ in range(WRITER_THREADS):
            thread = threading.Thread(target=self._loop, daemon=True)
            thread.start()
            self._threads.append(thread)

    def join(self) -> None:
        for thread in self._threads:
            thread.join(self.run_s + WRITE_DEADLINE_S + 10)

    def now(self) -> float:
        return time.monotonic() - self.started_s

    def _take(self) -> Write | None:
        with self._lock:
            index = self._next
            scheduled_s = index / self.rate_per_s
            if scheduled_s >= self.run_s:
                return None
            self._next += 1
            write = Write(index, f"{self.tag}-{index}", scheduled_s)
            self.writes.append(write)
            return write

    def _choose(self, write: Write) -> int | None:
        live = self.cluster.live()
        if not live:
            return None
        if self.cluster.system == "gossip":
            return live[(write.index + write.attempts) % len(live)]
        with self._lock:
            if self._target not in live:
                self._target = live[0]
            return self._target

    def _follow(self, status, body, tried: int) -> None:
        """Where the next attempt goes after a refusal: the leader a 421
        names, if it is alive; otherwise the next live node after `tried`."""
        if self.cluster.system == "gossip":
            return
        leader = body.get("leader_id") if isinstance(body, dict) else None
        with self._lock:
            if self._target != tried:
                return  # another thread has already moved on
            live = self.cluster.live()
            if status == 421 and leader in self.cluster.ids:
                named = self.cluster.ids.index(leader)
                if named in live:
                    self._target = named
                    return
            later = [i for i in live if i > tried] or live
            if later:
                self._target = later[0]

    def _loop(self) -> None:
        client = Client()
        try:
            while (write := self._take()) is not None:
                delay_s = write.scheduled_s - self.now()
                if delay_s > 0:
                    time.sleep(delay_s)
                self._send(client, write)
        finally:
            client.close()

    def _send(self, client: Client, write: Write) -> None:
        deadline_s = write.scheduled_s + WRITE_DEADLINE_S
        body = f"value-{write.index}".encode()
        while self.now() < deadline_s:
            target = self._choose(write)
            if target is None:
                return
            write.attempts += 1
            status, answer = client.request(
                self.cluster.port(target), "PUT", f"/kv/{write.key}", body
            )
            if status == 200:
                write.acked_s = self.now()
                write.node = target
                if self.on_ack:
                    self.on_ack(write)
                return
            write.refusals += 1
            self._follow(status, answer, target)
            if status != 421:
                time.sleep(0.005)  # no leader yet: do not spin


def latency_ms(write: Write) -> float | None:
    if write.acked_s is None:
        return None
    return (write.acked_s - write.scheduled_s) * 1000


def summarise_writes(writes: list[Write], run_s: float) -> dict:
    """Throughput and latency percentiles of one writer run."""
    latencies = sorted(x for w in writes if (x := latency_ms(w)) is not None)
    acked = len(latencies)
    return {
        "writes": len(writes),
        "acknowledged": acked,
        "refused": len(writes) - acked,
        "refusals": sum(w.refusals for w in writes),
        "rate_per_s": acked / run_s if run_s else 0.0,
        "latency_ms": {
            name: percentile(latencies, q)
            for name, q in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))
        },
    }


def percentile(sorted_values: list[float], q: float) -> float | None:
    """The q-th percentile by nearest rank; None for no values."""
    if not sorted_values:
        return None
    rank = max(1, round(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def timeline(writes: list[Write]) -> list[list[float | None]]:
    """[scheduled_s, latency_ms or None] per write, for the plot."""
    return [[round(w.scheduled_s, 4), latency_ms(w)] for w in writes]


def failover_s(writes: list[Write], failed_at_s: float, killed: int) -> float | None:
    """From the failure to the first write a surviving node acknowledged.

    Answers the killed node sent just before it died can still be read
    after the kill; they do not count as the cluster serving writes.
    """
    after = [
        w.acked_s
        for w in writes
        if w.acked_s and w.acked_s > failed_at_s and w.node != killed
    ]
    return min(after) - failed_at_s if after else None


def longest_gap_s(writes: list[Write]) -> float:
    """The longest time without any acknowledgement: the write outage."""
    times = sorted(w.acked_s for w in writes if w.acked_s is not None)
    return max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)


# --- Raft: throughput, failover, and heartbeats --------------------------------


THROUGHPUT_TRIES = 3  # a leader change mid-run refuses writes: try again


def throughput(the_cluster: Cluster, duration_s: float, cpus) -> dict:
    """Closed-loop PUTs on one key with oha, on the load generator's cores.

    Raft runs go to the leader. oha counts a 421 as a failure, so a run
    during which the leader changed is repeated, at most THROUGHPUT_TRIES
    times; the failures are kept in the record.
    """
    body = paths.RUN_DIR / "payloads" / "consistency-value.txt"
    body.parent.mkdir(parents=True, exist_ok=True)
    body.write_text("v" * 100)
    failures = []
    for attempt in range(THROUGHPUT_TRIES):
        index = 0 if the_cluster.system == "gossip" else wait_for_leader(the_cluster)
        try:
            result = load.run(
                f"http://127.0.0.1:{the_cluster.port(index)}/kv/oha",
                concurrency=THROUGHPUT_CONNECTIONS,
                duration_s=duration_s,
                method="PUT",
                body_path=body,
                cpus=cpus,
                label=f"consistency-{the_cluster.system}-{attempt}",
            )
        except load.LoadFailed as error:
            failures.append(str(error)[:300])
            continue
        return {**result.as_dict(), "failed_tries": failures}
    return {"rate_per_s": 0.0, "failed_tries": failures}


def collect_gaps(the_cluster: Cluster) -> list[float]:
    """Heartbeat gaps (ms) every live follower saw since the last collection."""
    gaps = []
    client = Client()
    try:
        for index in the_cluster.live():
            status, body = client.request(the_cluster.port(index), "GET", "/heartbeats")
            if status == 200:
                gaps += [gap / 1000 for gap in body["gaps_us"]]
    finally:
        client.close()
    return gaps


def heartbeat_phase(the_cluster: Cluster, duration_s: float) -> dict:
    """Heartbeat gaps and elections over `duration_s` with no client load."""
    wait_for_stable(the_cluster)
    collect_gaps(the_cluster)  # forget the start-up
    before = terms(the_cluster)
    time.sleep(duration_s)
    gaps = collect_gaps(the_cluster)
    after = terms(the_cluster)
    elections = max(after.values(), default=0) - max(before.values(), default=0)
    ordered = sorted(gaps)
    return {
        "duration_s": duration_s,
        "gaps_ms": [round(g, 3) for g in gaps],
        "beats": len(gaps),
        "p50_ms": percentile(ordered, 50),
        "p99_ms": percentile(ordered, 99),
        "max_ms": percentile(ordered, 100),
        "late_beats": sum(g > ELECTION_TIMEOUT_MS / 2 for g in gaps),
        "elections": elections,
    }


def go_gc_cycles(the_cluster: Cluster) -> dict:
    """Go's collections on every node, from GODEBUG=gctrace=1 on stderr."""
    pauses = []
    for server in the_cluster.servers:
        pauses += gclog.parse_gctrace(server.stderr_text())
    durations = sorted(p.duration_ms for p in pauses)
    return {
        "cycles": len(pauses) // 2,
        "max_pause_ms": durations[-1] if durations else None,
        "p99_pause_ms": percentile(durations, 99),
    }


def check_acknowledged(the_cluster: Cluster, writes: list[Write]) -> dict:
    """Read every acknowledged write back from the leader after the failure.

    One linearizable read first makes the leader apply everything committed;
    the rest read its state machine directly (no writes run any more).
    """
    leader = wait_for_leader(the_cluster)
    port = the_cluster.port(leader)
    client = Client(timeout_s=5.0)
    acked = [w for w in writes if w.acked_s is not None]
    lost = 0
    try:
        if acked:
            status, _ = client.request(port, "GET", f"/kv/{acked[-1].key}?consistent=1")
            if status != 200:
                lost += 1
        for write in acked:
            status, body = client.request(port, "GET", f"/kv/{write.key}")
            if status != 200 or body.get("value") != f"value-{write.index}":
                lost += 1
    finally:
        client.close()
    return {"checked": len(acked), "lost": lost, "read_from": the_cluster.ids[leader]}


def failover_run(
    the_cluster: Cluster, rate_per_s: float, schedule: Schedule, victim: str
) -> dict:
    """Write at a constant rate; kill the leader (or a follower) part-way."""
    writer = Writer(
        the_cluster, rate_per_s, schedule.run_s, f"f{random.getrandbits(24)}"
    )
    terms_before = terms(the_cluster)
    writer.start()
    time.sleep(max(0.0, schedule.fail_at_s - writer.now()))
    leader = wait_for_leader(the_cluster)
    if victim == "leader":
        target = leader
    else:
        target = (leader + 1) % len(the_cluster.servers)
    failed_at_s = writer.now()
    kill(the_cluster, target)
    writer.join()
    terms_after = terms(the_cluster)
    new_leader = wait_for_leader(the_cluster)
    return {
        "victim": victim,
        "killed": the_cluster.ids[target],
        "new_leader": the_cluster.ids[new_leader],
        "failed_at_s": failed_at_s,
        "failover_s": failover_s(writer.writes, failed_at_s, target),
        "outage_s": longest_gap_s(writer.writes),
        "terms_before": terms_before,
        "terms_after": terms_after,
        "summary": summarise_writes(writer.writes, schedule.run_s),
        "timeline": timeline(writer.writes),
        "check": check_acknowledged(the_cluster, writer.writes),
    }


def measure_raft(system: str, size, split, rate_per_s, schedule, victim, alloc):
    """One Raft engine: verify, heartbeats, throughput, failover, pressure."""
    figures = {}
    with cluster(system, size, split.server) as the_cluster:
        figures["verified"] = verify(the_cluster)
        figures["heartbeats"] = heartbeat_phase(the_cluster, schedule.heartbeat_s)
        figures["throughput"] = throughput(
            the_cluster, schedule.throughput_s, split.load
        )
        figures["failover"] = failover_run(the_cluster, rate_per_s, schedule, victim)
    with cluster(
        system, size, split.server, alloc_mb_per_s=alloc, gctrace=True
    ) as the_cluster:
        figures["heartbeats_pressure"] = heartbeat_phase(
            the_cluster, schedule.heartbeat_s
        )
        if system == "go-raft":
            figures["gc"] = go_gc_cycles(the_cluster)
    return figures


# --- gossip: convergence, and a paused node ------------------------------------

PROBE_ROUND_S = 0.01  # how often the prober looks again: its resolution


@dataclass
class Probe:
    key: str
    acked_s: float
    seen: set = field(default_factory=set)
    converged_s: float | None = None


class Prober:
    """Reads each acknowledged write from every node until all have it.

    A paused node is not asked (it could not answer); its writes converge
    only once it has been resumed and has caught up.
    """

    def __init__(self, the_cluster: Cluster, clock):
        self.cluster = the_cluster
        self.clock = clock
        self.pending: list[Probe] = []
        self.done: list[Probe] = []
        self._lock = threading.Lock()  # guards pending
        self._stop_at_s: float | None = None
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def add(self, write: Write) -> None:
        probe = Probe(write.key, write.acked_s, seen={write.node})
        with self._lock:
            self.pending.append(probe)

    def start(self) -> None:
        self._thread.start()

    def finish(self, timeout_s: float) -> None:
        self._stop_at_s = self.clock() + timeout_s
        self._thread.join(timeout_s + 5)

    def _loop(self) -> None:
        client = Client(timeout_s=0.5)
        nodes = range(len(self.cluster.servers))
        try:
            while True:
                with self._lock:
                    batch = list(self.pending)
                if self._stop_at_s is not None and (
                    not batch or self.clock() > self._stop_at_s
                ):
                    return
                for probe in batch:
                    for index in nodes:
                        if index in probe.seen or index in self.cluster.paused:
                            continue
                        status, _ = client.request(
                            self.cluster.port(index), "GET", f"/kv/{probe.key}"
                        )
                        if status == 200:
                            probe.seen.add(index)
                    if len(probe.seen) == len(self.cluster.servers):
                        probe.converged_s = self.clock()
                        with self._lock:
                            self.pending.remove(probe)
                        self.done.append(probe)
                time.sleep(PROBE_ROUND_S)
        finally:
            client.close()


class StaleReader:
    """Reads the newest acknowledged write from a random node, at a fixed rate.

    A read that does not find it is stale: what a client of an eventually
    consistent cache sees when it reads right after someone else wrote.
    """

    def __init__(self, the_cluster: Cluster, clock, rate_per_s: float, run_s: float):
        self.cluster = the_cluster
        self.clock = clock
        self.rate_per_s = rate_per_s
        self.run_s = run_s
        self.newest: Write | None = None  # set by the writer's on_ack
        self.reads: list[tuple[float, bool]] = []  # (time, stale)
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        self._thread.join(self.run_s + 10)

    def _loop(self) -> None:
        client = Client(timeout_s=0.5)
        chooser = random.Random(7)
        try:
            for index in range(int(self.rate_per_s * self.run_s)):
                delay_s = index / self.rate_per_s - self.clock()
                if delay_s > 0:
                    time.sleep(delay_s)
                newest, live = self.newest, self.cluster.live()
                if newest is None or not live:
                    continue
                port = self.cluster.port(chooser.choice(live))
                status, _ = client.request(port, "GET", f"/kv/{newest.key}")
                if status is not None:
                    self.reads.append((round(self.clock(), 4), status != 200))
        finally:
            client.close()


def gossip_run(the_cluster: Cluster, rate_per_s: float, schedule: Schedule, victim):
    """Write at a constant rate; pause one node part-way, then resume it."""
    writer = Writer(
        the_cluster, rate_per_s, schedule.run_s, f"g{random.getrandbits(24)}"
    )
    prober = Prober(the_cluster, writer.now)
    reader = StaleReader(the_cluster, writer.now, rate_per_s, schedule.run_s)

    def on_ack(write: Write) -> None:
        prober.add(write)
        reader.newest = write

    writer.on_ack = on_ack
    writer.start()
    prober.start()
    reader.start()
    target = 0 if victim == "leader" else len(the_cluster.servers) - 1
    time.sleep(max(0.0, schedule.fail_at_s - writer.now()))
    paused_at_s = writer.now()
    pause(the_cluster, target)
    time.sleep(schedule.pause_s)
    resumed_at_s = writer.now()
    resume(the_cluster, target)
    writer.join()
    reader.join()
    prober.finish(CONVERGE_TIMEOUT_S)
    probes = sorted(prober.done + prober.pending, key=lambda p: p.acked_s)
    return {
        "victim": victim,
        "paused": the_cluster.ids[target],
        "paused_at_s": paused_at_s,
        "resumed_at_s": resumed_at_s,
        "summary": summarise_writes(writer.writes, schedule.run_s),
        "timeline": timeline(writer.writes),
        "reads": reader.reads,
        "convergence": [
            [
                round(p.acked_s, 4),
                None if p.converged_s is None else (p.converged_s - p.acked_s) * 1000,
            ]
            for p in probes
        ],
        "catch_up_s": catch_up_s(probes, resumed_at_s),
    }


def catch_up_s(probes, resumed_at_s: float) -> float | None:
    """From the resume until the paused node held every write made before it."""
    before = [p for p in probes if p.acked_s <= resumed_at_s]
    if not before or any(p.converged_s is None for p in before):
        return None
    return max(0.0, max(p.converged_s for p in before) - resumed_at_s)


def stale_share(reads: list, start_s: float, end_s: float) -> tuple[int, int]:
    """(stale reads, reads) between two times."""
    window = [stale for at_s, stale in reads if start_s <= at_s < end_s]
    return sum(window), len(window)


def measure_gossip(size, split, rate_per_s, schedule, victim) -> dict:
    figures = {}
    with cluster("gossip", size, split.server) as the_cluster:
        wait_for_members(the_cluster)
        figures["verified"] = verify(the_cluster)
        figures["throughput"] = throughput(
            the_cluster, schedule.throughput_s, split.load
        )
        figures["run"] = gossip_run(the_cluster, rate_per_s, schedule, victim)
    return figures


# --- the whole measurement -----------------------------------------------------


def measure(
    nodes: int = 3,
    rate_per_s: float = 100.0,
    victim: str = "leader",
    alloc_mb_per_s: float = 128.0,
    systems=tuple(SYSTEMS),
    on_system=None,
    save_as: str | None = "sweep",
) -> dict:
    """Every system under the same writer and the same failure; save the record.

    `on_system(record_so_far, done, total)` is called after each system.
    """
    if nodes < 3:
        raise ValueError("a Raft cluster that survives a failure needs 3 nodes or more")
    if victim not in ("leader", "follower"):
        raise ValueError("victim must be 'leader' or 'follower'")
    mode = modes.current()
    schedule = Schedule.for_mode(mode)
    split = machine.core_split()
    record = {
        "started_at": results.now_iso(),
        "mode": mode.name,
        "knobs": {
            "nodes": nodes,
            "rate_per_s": rate_per_s,
            "victim": victim,
            "alloc_mb_per_s": alloc_mb_per_s,
            "alloc_live_mb": ALLOC_LIVE_MB,
            "election_timeout_ms": ELECTION_TIMEOUT_MS,
            "push_pull_ms": PUSH_PULL_MS,
            "writer_threads": WRITER_THREADS,
            **asdict(schedule),
        },
        "fingerprint": machine.fingerprint(split),
        "core_split": split.describe(),
        "systems": {},
    }
    for done, system in enumerate(systems, start=1):
        started_s = time.monotonic()
        if system == "gossip":
            figures = measure_gossip(nodes, split, rate_per_s, schedule, victim)
        else:
            figures = measure_raft(
                system, nodes, split, rate_per_s, schedule, victim, alloc_mb_per_s
            )
        figures["run_s"] = time.monotonic() - started_s
        record["systems"][system] = figures
        if on_system:
            on_system(record, done, len(systems))
    record["ended_at"] = results.now_iso()
    if save_as:
        results.save(record, CHAPTER, save_as)
    return record


# --- reading a record ----------------------------------------------------------


def _ms(value) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def table(record: dict) -> list[dict]:
    """One row per system: what the chapter prints."""
    rows = []
    for system, figures in record["systems"].items():
        run = figures["run"] if system == "gossip" else figures["failover"]
        summary = run["summary"]
        oha = figures["throughput"]
        rows.append(
            {
                "system": SYSTEMS[system],
                # 0 when every try met a leader change (kept in the record)
                "peak writes/s": round(oha["rate_per_s"]),
                "writes acked": summary["acknowledged"],
                "not acked": summary["refused"],
                "p50 ms": _ms(summary["latency_ms"]["p50"]),
                "p99 ms": _ms(summary["latency_ms"]["p99"]),
                "failover s": _ms(run.get("failover_s")) if system != "gossip" else "-",
                "lost": run["check"]["lost"] if system != "gossip" else "-",
            }
        )
    return rows


def print_table(record: dict) -> None:
    rows = table(record)
    tables.print_rows(rows)


def heartbeat_rows(record: dict) -> list[dict]:
    """Heartbeat gaps and elections per Raft engine, without and with pressure."""
    rows = []
    for system in RAFT_SYSTEMS:
        figures = record["systems"].get(system)
        if not figures:
            continue
        for phase in ("heartbeats", "heartbeats_pressure"):
            beats = figures[phase]
            rows.append(
                {
                    "system": system,
                    "pressure": phase == "heartbeats_pressure",
                    "beats": beats["beats"],
                    "p50_ms": beats["p50_ms"],
                    "p99_ms": beats["p99_ms"],
                    "max_ms": beats["max_ms"],
                    "late_beats": beats["late_beats"],
                    "elections": beats["elections"],
                }
            )
    return rows


def print_heartbeats(record: dict) -> None:
    for row in heartbeat_rows(record):
        pressure = (
            f"{record['knobs']['alloc_mb_per_s']:.0f} MiB/s allocated"
            if row["pressure"]
            else "no allocation"
        )
        print(
            f"{SYSTEMS[row['system']]:32} {pressure:22} {row['beats']:5d} beats  "
            f"p50 {_ms(row['p50_ms'])} ms  p99 {_ms(row['p99_ms'])} ms  "
            f"max {_ms(row['max_ms'])} ms  elections {row['elections']}"
        )


def safety_verdict(record: dict) -> claims.Verdict:
    """The engines' own claim: an acknowledged write survives the failover."""
    checks = {
        s: record["systems"][s]["failover"]["check"]
        for s in RAFT_SYSTEMS
        if s in record["systems"]
    }
    lost = sum(c["lost"] for c in checks.values())
    checked = sum(c["checked"] for c in checks.values())
    measured = (
        f"{checked} acknowledged writes were read back from the new leader after "
        f"the {record['knobs']['victim']} was killed; {lost} were missing."
    )
    claim = claims.Claim(
        key="raft_safety",
        chapter=CHAPTER,
        says="Raft never loses a write it has acknowledged, across a failover.",
        metric="acknowledged writes lost",
        unit="writes",
        legacy="-",
        replacement="hashicorp/raft and openraft",
        legacy_value=None,
        replacement_value=None,
        hardware="not stated",
    )
    return claims.qualitative_verdict(claim, lost == 0 and checked > 0, measured)


def gc_verdict(record: dict) -> claims.Verdict:
    """Does Go's collector, unlike Rust, disturb Raft's timing under pressure?

    It does if the Go cluster had more spurious elections under allocation
    pressure than the Rust one, or if pressure stretched Go's heartbeat tail
    (p99 gap) by HEARTBEAT_MARGIN_MS more than it stretched Rust's.
    """
    go, rust = record["systems"]["go-raft"], record["systems"]["rust-raft"]

    def stretch_ms(figures):
        return (figures["heartbeats_pressure"]["p99_ms"] or 0) - (
            figures["heartbeats"]["p99_ms"] or 0
        )

    go_elections = go["heartbeats_pressure"]["elections"]
    rust_elections = rust["heartbeats_pressure"]["elections"]
    holds = go_elections > rust_elections or (
        stretch_ms(go) > HEARTBEAT_MARGIN_MS
        and stretch_ms(go) - stretch_ms(rust) > HEARTBEAT_MARGIN_MS
    )
    gc = go.get("gc", {})
    measured = (
        f"with {record['knobs']['alloc_mb_per_s']:.0f} MiB/s allocated on every "
        f"node, Go ran {gc.get('cycles', 0)} collections; pressure moved the p99 "
        f"heartbeat gap by {stretch_ms(go):.1f} ms in Go and {stretch_ms(rust):.1f} "
        f"ms in Rust, and there were {go_elections} spurious elections in Go and "
        f"{rust_elections} in Rust. The longest gap under pressure was "
        f"{_ms(go['heartbeats_pressure']['max_ms'])} ms in Go and "
        f"{_ms(rust['heartbeats_pressure']['max_ms'])} ms in Rust, where elections "
        f"start after {ELECTION_TIMEOUT_MS} ms; Go's longest stop-the-world pause "
        f"was {_ms(gc.get('max_pause_ms'))} ms, so any gap far longer than that "
        "is the collector's marking and assists competing for the core, not a "
        "pause."
    )
    return claims.qualitative_verdict(RAFT_GC_CLAIM, holds, measured)


def gossip_verdict(record: dict) -> claims.Verdict:
    """Eventual consistency: did every write reach every node, and how fast?"""
    run = record["systems"]["gossip"]["run"]
    converged = sorted(c[1] for c in run["convergence"] if c[1] is not None)
    total = len(run["convergence"])
    steady = stale_share(run["reads"], 0.0, run["paused_at_s"])
    away = stale_share(run["reads"], run["paused_at_s"], float("inf"))
    holds = total > 0 and len(converged) == total
    measured = (
        f"{len(converged)} of {total} writes reached every node (median "
        f"{_ms(percentile(converged, 50))} ms, slowest "
        f"{_ms(percentile(converged, 100))} ms); reading the newest write from a "
        f"random node was stale {steady[0]} times in {steady[1]} before the pause "
        f"and {away[0]} in {away[1]} from the pause on; the paused node caught up "
        f"{_ms(run['catch_up_s'])} s after it was resumed."
    )
    return claims.qualitative_verdict(GOSSIP_CLAIM, holds, measured)


def closing_note(record: dict) -> str:
    """The figures the chapter ends on: failover, convergence, heartbeats."""
    parts = []
    for system in RAFT_SYSTEMS:
        figures = record["systems"].get(system)
        if figures:
            run = figures["failover"]
            parts.append(
                f"{SYSTEMS[system]}: a new leader served writes "
                f"{_ms(run['failover_s'])} s after the {run['victim']} was killed "
                f"(longest time without an acknowledgement "
                f"{_ms(run['outage_s'])} s), {run['summary']['refused']} writes "
                f"not acknowledged, {run['check']['lost']} acknowledged writes lost; "
                f"p99 heartbeat gap {_ms(figures['heartbeats']['p99_ms'])} ms idle, "
                f"{_ms(figures['heartbeats_pressure']['p99_ms'])} ms under "
                f"allocation pressure, "
                f"{figures['heartbeats_pressure']['elections']} spurious elections."
            )
    if "gossip" in record["systems"]:
        parts.append(
            "Gossip cache: "
            + gossip_verdict(record)
            .sentence.split("Measured here: ")[1]
            .split(" The claim")[0]
        )
    return "\n".join(parts)


# --- figures ------------------------------------------------------------------


def latency_figure(record: dict):
    """Write latency over time for each system, the failure marked."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for system, figures in record["systems"].items():
        run = figures["run"] if system == "gossip" else figures["failover"]
        points = [(t, lat) for t, lat in run["timeline"] if lat is not None]
        fig.add_scattergl(
            x=[p[0] for p in points],
            y=[p[1] for p in points],
            mode="markers",
            marker={"size": 4, "color": COLOURS[system]},
            name=SYSTEMS[system],
        )
    fail_at_s = record["knobs"]["fail_at_s"]
    fig.add_vline(
        x=fail_at_s,
        line_dash="dash",
        annotation_text=f"{record['knobs']['victim']} fails",
    )
    fig.add_vrect(
        x0=fail_at_s,
        x1=fail_at_s + record["knobs"]["pause_s"],
        fillcolor="#e7298a",
        opacity=0.08,
        line_width=0,
    )
    plots._layout(
        fig,
        "Write latency over time, from the scheduled send (open loop)",
        record["fingerprint"],
        xaxis_title="seconds since the writer started",
        yaxis_title="latency, ms (log)",
        yaxis_type="log",
    )
    return fig


def convergence_figure(record: dict):
    """For each gossip write, how long until every node had it."""
    import plotly.graph_objects as go

    run = record["systems"]["gossip"]["run"]
    points = [(t, ms) for t, ms in run["convergence"] if ms is not None]
    fig = go.Figure()
    fig.add_scattergl(
        x=[p[0] for p in points],
        y=[p[1] for p in points],
        mode="markers",
        marker={"size": 4, "color": COLOURS["gossip"]},
        name="time until every node has the write",
    )
    fig.add_vrect(
        x0=run["paused_at_s"],
        x1=run["resumed_at_s"],
        fillcolor="#e7298a",
        opacity=0.12,
        line_width=0,
        annotation_text=f"node {run['paused']} paused",
    )
    plots._layout(
        fig,
        "Gossip convergence: write acknowledged to visible on every node",
        record["fingerprint"],
        xaxis_title="seconds since the writer started (when the write was acked)",
        yaxis_title="convergence, ms (log)",
        yaxis_type="log",
    )
    return fig


def heartbeat_figure(record: dict):
    """Heartbeat gaps at followers as a distribution, with and without pressure."""
    series, colours, dash = {}, {}, {}
    for system in RAFT_SYSTEMS:
        figures = record["systems"].get(system)
        if not figures:
            continue
        for phase, label in (
            ("heartbeats", "no allocation"),
            ("heartbeats_pressure", "allocation pressure"),
        ):
            gaps = sorted(figures[phase]["gaps_ms"])
            if not gaps:
                continue
            step = max(1, len(gaps) // 300)  # keep the page light
            picked = gaps[::step] + [gaps[-1]]
            name = f"{SYSTEMS[system]}, {label}"
            series[name] = (
                picked,
                [100 * (i * step + 1) / len(gaps) for i in range(len(picked) - 1)]
                + [100.0],
            )
            colours[name] = COLOURS[system]
            dash[name] = "dot" if phase == "heartbeats" else "solid"
    fig = plots.curves(
        series,
        "Gaps between heartbeats at the followers (cumulative)",
        "gap between consecutive heartbeats, ms (log)",
        "share of gaps at or below, %",
        record["fingerprint"],
        log_x=True,
        colours=colours,
        dash=dash,
    )
    fig.add_vline(
        x=ELECTION_TIMEOUT_MS,
        line_dash="dash",
        annotation_text="election timeout (shortest)",
    )
    return fig


# --- the panel ------------------------------------------------------------------


def panel():
    """Knobs: nodes, write rate, which node fails, allocation pressure."""
    import ipywidgets as widgets

    from book.widgets import Panel

    knobs = {
        "nodes": widgets.Dropdown(options=[3, 5], value=3, description="nodes"),
        "rate_per_s": widgets.IntSlider(
            value=100, min=10, max=1000, step=10, description="writes/s"
        ),
        "victim": widgets.Dropdown(
            options=["leader", "follower"], value="leader", description="fails"
        ),
        "alloc_mb_per_s": widgets.IntSlider(
            value=128, min=0, max=1024, step=32, description="alloc MiB/s"
        ),
    }

    def run(values: dict, progress) -> None:
        def on_system(record, done, total):
            progress.step(done, total, f"{done} of {total} systems measured")
            progress.plot(latency_figure(record), "Write latency, filling as it runs")

        progress.step(0, 3, "building and starting the clusters ...")
        record = measure(**values, on_system=on_system, save_as="panel")
        progress.step(3, 3, gc_verdict(record).sentence)

    return Panel(
        "Raft in Go and Rust against gossip, with a node failing",
        knobs,
        run,
        "Runs the three clusters again with your settings (the Raft leader or a "
        "follower is killed, a gossip node is paused) and draws write latency "
        "as each system finishes; the record is saved as "
        "results/consistency/panel.json.",
    )
