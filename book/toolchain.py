"""Finds the tools, reports their versions, builds targets once.

A build is reused until its sources change: each target keeps a stamp (a
hash of its sources) beside its product, so a rebuild with nothing changed
costs a few file reads, not a compiler start.
"""

import concurrent.futures
import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from book import paths

# The load generator, pinned so that every machine measures with the same one.
OHA_VERSION = "1.16.0"
OHA_BIN = paths.TOOLS_DIR / "bin" / "oha"


@dataclass(frozen=True)
class Tool:
    name: str
    candidates: tuple[str, ...]  # executable names or absolute paths, in order
    version_args: tuple[str, ...]
    install: str  # the command that installs it on Debian or Ubuntu


TOOLS = {
    tool.name: tool
    for tool in (
        Tool("cargo", ("cargo",), ("--version",), "curl https://sh.rustup.rs | sh"),
        Tool("go", ("go",), ("version",), "apt-get install -y golang-go"),
        Tool("java", ("java",), ("-version",), "apt-get install -y openjdk-17-jdk"),
        Tool("javac", ("javac",), ("-version",), "apt-get install -y openjdk-17-jdk"),
        Tool(
            "php-fpm",
            ("php-fpm", "php-fpm8.4", "php-fpm8.3", "php-fpm8.2", "php-fpm8.1"),
            ("-v",),
            "apt-get install -y php-fpm php-cli",
        ),
        Tool("nginx", ("nginx",), ("-v",), "apt-get install -y nginx-light"),
        Tool(
            "redis-server",
            ("redis-server",),
            ("--version",),
            "apt-get install -y redis-server",
        ),
        Tool(
            "oha",
            (str(OHA_BIN), "oha"),
            ("--version",),
            f"make setup (it runs: cargo install oha --version {OHA_VERSION} "
            "--locked --root .tools)",
        ),
        Tool("chromium", ("chromium",), ("--version",), "apt-get install -y chromium"),
        Tool("node", ("node",), ("--version",), "apt-get install -y nodejs npm"),
    )
}

# Debian's sbin folders are not on every user's PATH, and php-fpm lives there.
_EXTRA_PATH = ("/usr/sbin", "/sbin", "/usr/local/sbin")


class ToolMissing(RuntimeError):
    """A tool a measurement needs is not installed; says how to install it."""

    def __init__(self, name: str):
        self.tool = name
        hint = TOOLS[name].install
        super().__init__(f"{name} is not installed: install it with `{hint}`")


def find(name: str) -> str | None:
    """The path of a tool, or None."""
    search_path = os.pathsep.join([os.environ.get("PATH", ""), *_EXTRA_PATH])
    for candidate in TOOLS[name].candidates:
        if os.path.isabs(candidate):
            if os.access(candidate, os.X_OK):
                return candidate
            continue
        found = shutil.which(candidate, path=search_path)
        if found:
            return found
    return None


def require(name: str) -> str:
    """The path of a tool; ToolMissing (with the install command) if absent."""
    path = find(name)
    if path is None:
        raise ToolMissing(name)
    return path


@cache
def version(name: str) -> str | None:
    """The first line a tool prints about its version, or None if absent."""
    path = find(name)
    if path is None:
        return None
    try:
        done = subprocess.run(
            [path, *TOOLS[name].version_args],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unknown ({error})"
    # java and nginx print their version on stderr.
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def versions() -> dict[str, str | None]:
    # the browser and node only test the HTML; they measure nothing
    return {n: version(n) for n in TOOLS if n not in ("chromium", "node")}


# --- building -------------------------------------------------------------


class BuildFailed(RuntimeError):
    """A compiler failed; the message names the command and the log."""


class _LiveTail:
    """A file-like sink that shows the last lines of a build as it runs.

    In a notebook the lines replace each other in one display, so a long
    cargo build does not flood the page; the whole log is kept on disk.
    """

    def __init__(self, log_file, display_handle=None, lines_shown: int = 12, echo=True):
        self._log = log_file
        self._echo = echo
        self._handle = display_handle
        self._lines: list[str] = []
        self._lines_shown = lines_shown
        self._last_update_s = 0.0

    def write(self, text: str) -> None:
        self._log.write(text)
        if not self._echo:
            return
        if self._handle is None:
            sys.stdout.write(text)
            return
        self._lines.extend(line for line in text.splitlines() if line.strip())
        self._lines = self._lines[-self._lines_shown :]
        now_s = time.monotonic()
        if now_s - self._last_update_s > 0.5:  # 2 updates a second is plenty
            self._last_update_s = now_s
            self._handle.update(_Text("\n".join(self._lines)))

    def flush(self) -> None:
        self._log.flush()


class _Text:
    """Plain text for a display handle (IPython shows str with quotes)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and shell.__class__.__name__ == "ZMQInteractiveShell"


def run_streamed(
    argv: list[str],
    name: str,
    cwd: Path,
    env: dict | None = None,
    echo: bool = True,
):
    """Run a build command, streaming its output while capturing it.

    The whole output goes to .run/build-logs/<name>.log; with `echo` it is
    also shown (a live tail in a notebook, the terminal otherwise).

    subprocess-tee drives the child with asyncio.run, which refuses to start
    inside the event loop a Jupyter kernel is already running, so the call
    happens on a worker thread that has no loop of its own.
    """
    import subprocess_tee

    log_dir = paths.RUN_DIR / "build-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    handle = None
    if echo and _in_notebook():
        from IPython.display import display

        handle = display(_Text(f"{name}: building ..."), display_id=True)
    with open(log_path, "w", encoding="utf-8") as log_file:
        sink = _LiveTail(log_file, handle, echo=echo)
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            future = pool.submit(
                subprocess_tee.run,
                argv,
                cwd=str(cwd),
                env={**os.environ, **(env or {})},
                stdout=sink,
                stderr=sink,
            )
            done = future.result()
    if done.returncode != 0:
        if handle is not None:
            handle.update(_Text(f"{name}: build failed, see {log_path}"))
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
        raise BuildFailed(
            f"`{' '.join(argv)}` failed with exit code {done.returncode}; "
            f"full log: {log_path}\n{tail}"
        )
    return handle


def sources_hash(roots: list[Path], skip_dirs: tuple[str, ...] = ()) -> str:
    """A hash of every file under the roots, names and contents."""
    digest = hashlib.sha256()
    for root in roots:
        files = [root] if root.is_file() else sorted(root.rglob("*"))
        for path in files:
            if not path.is_file() or any(part in skip_dirs for part in path.parts):
                continue
            digest.update(str(path.relative_to(paths.ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Built:
    name: str
    path: Path  # the binary, or the class folder for Java
    built_s: float | None  # None when a previous build was reused

    def describe(self) -> str:
        if self.built_s is None:
            how = "reused the previous build: sources unchanged"
        else:
            how = f"built in {self.built_s:.1f} s"
        return f"{self.name}: ready ({how})"

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(self.describe())


def build_once(name, product: Path, sources: list[Path], skip, build) -> Built:
    """Run `build` unless `product` exists and was built from these sources.

    `build` may return a display handle, which is told the result.
    """
    stamp = product.parent / f".{product.name}.stamp"
    digest = sources_hash(sources, skip)
    if product.exists() and stamp.exists() and stamp.read_text() == digest:
        return Built(name, product, None)
    started_s = time.monotonic()
    handle = build()
    stamp.write_text(digest)
    built = Built(name, product, time.monotonic() - started_s)
    if handle is not None:
        handle.update(_Text(built.describe()))
    return built


def build_cargo(package: str, example: str | None = None) -> Built:
    """A release binary from the Cargo workspace (fat LTO, one codegen unit):
    the package's own, or an example of it, compiled exactly like it (the
    workspace's examples are in-process benchmarks, hence the name)."""
    cargo = require("cargo")
    argv = [cargo, "build", "--release", "--locked", "-p", package]
    product = paths.RUST_DIR / "target" / "release" / package
    name = package
    if example is not None:
        argv += ["--example", example]
        product = product.parent / "examples" / example
        name = f"{package} bench"
    return build_once(
        name,
        product,
        [paths.RUST_DIR],
        ("target",),
        lambda: run_streamed(argv, name.replace(" ", "-"), paths.RUST_DIR),
    )


def build_go(package_dir: str) -> Built:
    """A Go binary from the module in go/, into go/bin."""
    go = require("go")
    name = Path(package_dir).name
    product = paths.GO_DIR / "bin" / name
    product.parent.mkdir(exist_ok=True)
    return build_once(
        name,
        product,
        [paths.GO_DIR],
        ("bin",),
        lambda: run_streamed(
            [go, "build", "-o", str(product), f"./{package_dir}"], name, paths.GO_DIR
        ),
    )


def build_java(snippet_dir: str) -> Built:
    """Compile a Java snippet with plain javac, as the legacy code was built."""
    javac = require("javac")
    source_dir = paths.SNIPPETS_DIR / "java" / snippet_dir
    out_dir = paths.TOOLS_DIR / "classes" / snippet_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = sorted(str(p) for p in source_dir.rglob("*.java"))
    return build_once(
        f"java/{snippet_dir}",
        out_dir,
        [source_dir],
        (),
        lambda: run_streamed(
            [javac, "--release", "17", "-d", str(out_dir), *sources],
            f"java-{snippet_dir}",
            source_dir,
        ),
    )


_OHA_LOCK = threading.Lock()  # two cargo installs into .tools would collide


def build_oha(echo: bool = True) -> Built:
    """The load generator, built from crates.io into .tools once.

    Reused while the installed binary reports the pinned version. With
    `echo` off the compiler's output goes to the log only (set-up builds
    oha on a second thread, beside the services); a second caller waits
    for the first build and then reuses it.
    """
    with _OHA_LOCK:
        if OHA_BIN.exists() and OHA_VERSION in (_version_of(OHA_BIN) or ""):
            return Built("oha", OHA_BIN, None)
        cargo = require("cargo")
        started_s = time.monotonic()
        argv = [cargo, "install", "oha", "--version", OHA_VERSION, "--locked"]
        argv += ["--root", str(paths.TOOLS_DIR)]
        handle = run_streamed(argv, "oha", paths.ROOT, echo=echo)
        built = Built("oha", OHA_BIN, time.monotonic() - started_s)
    if handle is not None:
        handle.update(_Text(built.describe()))
    return built


def _version_of(binary: Path) -> str | None:
    try:
        done = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip()


def build_and_report(build_all) -> None:
    """Build the load generator and a chapter's services, printing each; a
    missing tool is reported with its install command instead of failing the
    chapter (which then shows its last saved measurement)."""
    try:
        builds = [build_oha(), *build_all()]
    except (ToolMissing, BuildFailed) as error:
        print(f"NOT BUILT: {error}")
        return
    if _in_notebook():
        # The compilers' live tails have done their job; one line per target
        # stays, the same whether a target was built now or reused.
        from IPython.display import clear_output

        clear_output()
    for built in builds:
        print(built.describe())
