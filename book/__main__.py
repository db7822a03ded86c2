"""`python -m book doctor | setup | measure CHAPTER | build [--quick]`."""

import argparse
import os
import shutil
import subprocess
import sys
import time

from book import machine, paths, setup_machine, toolchain


def doctor() -> int:
    """What this machine can run, and how to install what it lacks."""
    fp = machine.fingerprint(machine.core_split())
    print(f"machine: {machine.label(fp)}")
    print(f"cores: {machine.core_split().describe()}")
    missing = 0
    for name, tool in toolchain.TOOLS.items():
        found = toolchain.version(name)
        if found:
            print(f"  ok       {name:13} {found}")
        else:
            missing += 1
            print(f"  MISSING  {name:13} install: {tool.install}")
    if missing:
        print(f"{missing} tool(s) missing: `make setup` installs what it can.")
    return 0


def measure(chapter: str) -> int:
    """Measure one chapter from a shell, save its record, print its verdicts."""
    from book import chapters, results, scoreboard, toolchain

    if chapter not in chapters.MODULES:
        known = ", ".join(chapters.MODULES)
        print(f"ERROR: no chapter {chapter!r}; known: {known}")
        return 1
    module = chapters.MODULES[chapter]
    for built in [toolchain.build_oha(), *module.build_all()]:
        print(built.describe())
    record = module.measure()
    print(f"saved {results.record_path(chapter, 'sweep')} ({record['mode']} mode)")
    for row in scoreboard.rows():
        if row["chapter"] == chapter and "verdict" in row:
            print(f"- {row['verdict'].sentence}")
    return 0


def build(quick: bool) -> int:
    """Execute every chapter and write the HTML, clean, warnings as errors.

    The HTML and Sphinx's doctrees are removed first: after a failed build
    an unchanged rebuild can pass on stale state. The execution cache is
    kept, so unchanged chapters are not measured again.

    `--quick` is the test build: it renders the outputs committed with each
    chapter (a quick-mode run, which the notebook tests have just executed
    again) instead of measuring a second time, so the browser test checks
    the HTML without doubling CI's time.
    """
    out_dir = paths.ROOT / "_build" / ("quick" if quick else "book")
    html_dir = out_dir / "_build" / "html"
    for stale in (html_dir, out_dir / "_build" / ".doctrees"):
        shutil.rmtree(stale, ignore_errors=True)
    setup_machine.copy_plotly_js()
    config = paths.ROOT / "_config.yml"
    env = dict(os.environ)
    if quick:
        env["BOOK_MODE"] = "quick"
        out_dir.mkdir(parents=True, exist_ok=True)
        text = config.read_text().replace(
            "execute_notebooks: cache", 'execute_notebooks: "off"'
        )
        config = out_dir / "_config.yml"
        config.write_text(text)
    jupyter_book = os.path.join(os.path.dirname(sys.executable), "jupyter-book")
    argv = [jupyter_book, "build", str(paths.ROOT), "--path-output", str(out_dir)]
    argv += ["--config", str(config), "-W", "-n", "--keep-going"]
    started_s = time.monotonic()
    done = subprocess.run(argv, env=env, timeout=3600)
    print(f"jupyter-book build took {time.monotonic() - started_s:.0f} s")
    if done.returncode != 0:
        print("ERROR: the book did not build cleanly (see the warnings above)")
        return done.returncode
    print(f"The book is at {html_dir / 'index.html'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m book", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("doctor", help="what this machine has, and what it lacks")
    commands.add_parser("setup", help="install system packages, build everything")
    measure_cmd = commands.add_parser("measure", help="measure one chapter")
    measure_cmd.add_argument("chapter")
    build_cmd = commands.add_parser("build", help="execute chapters, write HTML")
    build_cmd.add_argument("--quick", action="store_true", help="BOOK_MODE=quick")
    args = parser.parse_args(argv)
    try:
        if args.command == "doctor":
            return doctor()
        if args.command == "setup":
            return setup_machine.setup()
        if args.command == "measure":
            return measure(args.chapter)
        return build(args.quick)
    except (toolchain.ToolMissing, toolchain.BuildFailed, ValueError) as error:
        print(f"ERROR: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
