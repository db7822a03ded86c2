"""The book's chapters, and what each must build before it runs."""

from book import cache, consistency, gc_pauses, gil, json_api, leak

# chapter file name -> a function building everything it runs
BUILDS = {
    json_api.CHAPTER: json_api.build_all,
    gc_pauses.CHAPTER: gc_pauses.build_all,
    cache.CHAPTER: cache.build_all,
    gil.CHAPTER: gil.build_all,
    leak.CHAPTER: leak.build_all,
    consistency.CHAPTER: consistency.build_all,
}


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
