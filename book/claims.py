"""The article's figures, as data: the claims the book checks.

No chapter types one of these numbers; it looks the claim up here, so the
figure shown beside a measurement is always the one the article gave. The
article's sentences are paraphrased, not quoted.
"""

from dataclasses import dataclass

GIB = 1024**3
MIB = 1024**2


@dataclass(frozen=True)
class Claim:
    key: str
    chapter: str  # the chapter's file name, without extension
    says: str  # the article's sentence, paraphrased
    metric: str
    unit: str
    legacy: str
    replacement: str
    legacy_value: float | None  # None where the article gives no number
    replacement_value: float | None
    hardware: str  # what the article assumed
    higher_is_better: bool = True

    @property
    def claimed_ratio(self) -> float | None:
        """How many times better the replacement is, as the article implies."""
        if self.legacy_value is None or self.replacement_value is None:
            return None
        if self.higher_is_better:
            return self.replacement_value / self.legacy_value
        return self.legacy_value / self.replacement_value


CLAIMS = (
    Claim(
        key="php_throughput",
        chapter="php_fpm",
        says=(
            "Moving a PHP-FPM JSON API to Rust (Actix-web, Tokio, Serde) took it "
            "from 500 to 5,000 requests per second on a 4-core VM."
        ),
        metric="throughput",
        unit="req/s",
        legacy="PHP-FPM",
        replacement="Rust (fastjson-api)",
        legacy_value=500.0,
        replacement_value=5000.0,
        hardware="4-core VM",
    ),
    Claim(
        key="php_memory",
        chapter="php_fpm",
        says="The Rust API used one fifth of the PHP-FPM API's memory.",
        metric="memory footprint",
        unit="relative to PHP-FPM",
        legacy="PHP-FPM",
        replacement="Rust (fastjson-api)",
        legacy_value=1.0,
        replacement_value=0.2,
        hardware="4-core VM",
        higher_is_better=False,
    ),
    Claim(
        key="cache_memory",
        chapter="cache",
        says=(
            "A legacy Java caching service needed a 2 GB heap for 10,000 "
            "concurrent connections; the Go replacement on net/http uses 200 MB."
        ),
        metric="memory at 10,000 connections",
        unit="bytes",
        legacy="Java cache",
        replacement="Go (rust-cache-server)",
        legacy_value=2.0 * GIB,
        replacement_value=200.0 * MIB,
        hardware="not stated",
        higher_is_better=False,
    ),
    Claim(
        key="gc_latency",
        chapter="gc_pauses",
        says=(
            "Java monoliths suffer GC pauses that spike latency during traffic "
            "peaks; Rust has no collector and Go's pauses are far shorter."
        ),
        metric="tail latency under a traffic peak",
        unit="ms",
        legacy="Java",
        replacement="Rust and Go",
        legacy_value=None,
        replacement_value=None,
        hardware="not stated",
        higher_is_better=False,
    ),
    Claim(
        key="leak_oom",
        chapter="leak",
        says=(
            "Java monoliths leak memory through unmanaged references until the "
            "process is killed; Rust's ownership removes whole classes of "
            "memory bugs."
        ),
        metric="memory under steady load",
        unit="bytes",
        legacy="Java",
        replacement="Rust",
        legacy_value=None,
        replacement_value=None,
        hardware="not stated",
        higher_is_better=False,
    ),
    Claim(
        key="gil_parallel",
        chapter="gil",
        says=(
            "Python's GIL prevents true parallel execution of CPU-bound tasks; "
            "goroutines and Rust threads run them in parallel."
        ),
        metric="speedup over one worker",
        unit="x",
        legacy="Python threads",
        replacement="Go and Rust",
        legacy_value=None,
        replacement_value=None,
        hardware="not stated",
    ),
    Claim(
        key="compile_time",
        chapter="tradeoffs",
        says="Rust's compile times are longer than Go's.",
        metric="release build time",
        unit="s",
        legacy="Go",
        replacement="Rust",
        legacy_value=None,
        replacement_value=None,
        hardware="not stated",
        higher_is_better=False,
    ),
    Claim(
        key="deploy_seconds",
        chapter="tradeoffs",
        says=(
            "Go's fast compilation and static binaries deploy in seconds rather "
            "than minutes, and suit autoscaling pods that must start quickly."
        ),
        metric="time from process start to the first correct answer",
        unit="s",
        legacy="the JVM",
        replacement="Go",
        legacy_value=None,
        replacement_value=None,
        hardware="not stated",
        higher_is_better=False,
    ),
    Claim(
        key="rust_vertical",
        chapter="tradeoffs",
        says="Rust scales vertically, so fewer instances carry the same load.",
        metric="throughput per instance",
        unit="req/s",
        legacy="Go and the JVM",
        replacement="Rust",
        legacy_value=None,
        replacement_value=None,
        hardware="not stated",
    ),
    Claim(
        key="raft_gc",
        chapter="consistency",
        says=(
            "A Rust transactional API can use strong consistency with Raft, since "
            "Rust's control over memory keeps GC pauses out of consensus timing."
        ),
        metric="heartbeat delays and spurious elections under allocation pressure",
        unit="ms",
        legacy="Go (garbage collected)",
        replacement="Rust",
        legacy_value=None,
        replacement_value=None,
        hardware="not stated",
        higher_is_better=False,
    ),
    Claim(
        key="gossip_eventual",
        chapter="consistency",
        says=(
            "A Go distributed cache can use eventual consistency with leaderless "
            "replication, since goroutines make gossip traffic easy to handle."
        ),
        metric="time until a write is visible on every node",
        unit="ms",
        legacy="a single leader",
        replacement="Go gossip (memberlist)",
        legacy_value=None,
        replacement_value=None,
        hardware="not stated",
        higher_is_better=False,
    ),
)

_BY_KEY = {claim.key: claim for claim in CLAIMS}


def claim(key: str) -> Claim:
    """The claim with this key; a KeyError names the known keys."""
    try:
        return _BY_KEY[key]
    except KeyError:
        raise KeyError(f"no claim {key!r}; known: {', '.join(_BY_KEY)}") from None


@dataclass(frozen=True)
class Verdict:
    word: str  # "holds", "holds in part", "does not hold"
    claimed_ratio: float | None  # None for a claim the article gives no figure for
    measured_ratio: float | None
    sentence: str


def ratio_verdict(the_claim: Claim, measured_ratio: float) -> Verdict:
    """Compare the ratio measured here with the ratio the article implies.

    The claim holds when the replacement is at least as many times better as
    the article says; in part when it is better, but by less; otherwise not.
    """
    claimed = the_claim.claimed_ratio
    if claimed is None:
        raise ValueError(f"claim {the_claim.key!r} gives no figures to compare")
    if measured_ratio >= claimed:
        word = "holds"
    elif measured_ratio > 1.0:
        word = "holds in part"
    else:
        word = "does not hold"
    sentence = (
        f"The article implies {the_claim.replacement} is {claimed:.1f}x better "
        f"than {the_claim.legacy} ({the_claim.metric}); measured here: "
        f"{measured_ratio:.1f}x. The claim {word} on this machine."
    )
    return Verdict(word, claimed, measured_ratio, sentence)


def qualitative_verdict(the_claim: Claim, holds: bool, measured: str) -> Verdict:
    """A verdict on a claim the article makes without figures.

    `measured` says, in a sentence, what this machine measured; `holds` is
    computed by the caller from those figures, never typed.
    """
    word = "holds" if holds else "does not hold"
    sentence = (
        f"The article: {the_claim.says} Measured here: {measured} "
        f"The claim {word} on this machine."
    )
    return Verdict(word, None, None, sentence)
