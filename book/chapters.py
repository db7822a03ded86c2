"""The book's chapters, and what each must build before it runs."""

from book import cache, consistency, gc_pauses, gil, json_api, leak, tradeoffs

# chapter file name -> its bench module, in reading order. Each module has
# CHAPTER, build_all() (the services it runs; every chapter also needs the
# load generator, which toolchain.build_and_report builds first) and
# measure() (saves a record).
MODULES = {
    module.CHAPTER: module
    for module in (json_api, gc_pauses, leak, gil, cache, tradeoffs, consistency)
}
BUILDS = {name: module.build_all for name, module in MODULES.items()}


def print_run_times() -> None:
    """One line per chapter: when its saved measurement ran, and for how long."""
    from datetime import datetime

    from book import results

    for chapter in BUILDS:
        record, source = results.load_latest_or_reference(chapter, "sweep")
        if record is None:
            print(f"{chapter:12} no measurement saved yet")
            continue
        started = datetime.fromisoformat(record["started_at"])
        ended = datetime.fromisoformat(record["ended_at"])
        print(
            f"{chapter:12} {record['started_at']}  "
            f"{(ended - started).total_seconds():5.0f} s  mode {record['mode']}  "
            f"({source})"
        )
