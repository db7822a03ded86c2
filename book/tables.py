"""Plain-text tables for the chapters' printed figures."""


def print_rows(rows: list[dict]) -> None:
    """Print dicts as aligned columns, headed by the first row's keys."""
    if not rows:
        print("(no rows)")
        return
    columns = list(rows[0])
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        cells = (str(row[c]).ljust(w) for c, w in zip(columns, widths, strict=True))
        print("  ".join(cells))
