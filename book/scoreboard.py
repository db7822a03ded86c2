"""The scoreboard: every claim of the article, its verdict here, its chapter.

Generated from the saved results only: nothing is measured on this page. A
claim whose chapter has not run on this machine shows the committed
reference measurement, labelled so, or says it has not been measured.
"""

import html
import importlib
from dataclasses import dataclass

from book import claims, machine, results


@dataclass(frozen=True)
class Entry:
    claim_key: str
    module: str  # the chapter's bench module in book/
    record: str  # the saved record's name
    verdict: str  # the function of `module` computing the verdict from it
    args: tuple = ()


VERDICT_WORDS = ("holds", "holds in part", "does not hold", "not measured")

ENTRIES = (
    Entry("gc_latency", "gc_pauses", "sweep", "verdict"),
    Entry("leak_oom", "leak", "sweep", "verdict"),
    Entry("php_throughput", "json_api", "sweep", "throughput_verdict"),
    Entry("php_memory", "json_api", "sweep", "memory_verdict"),
    Entry("gil_parallel", "gil", "sweep", "verdict"),
    Entry("cache_memory", "cache", "sweep", "memory_verdict"),
    Entry("compile_time", "tradeoffs", "sweep", "compile_verdict"),
    Entry("deploy_seconds", "tradeoffs", "sweep", "deploy_verdict"),
    Entry("rust_vertical", "tradeoffs", "sweep", "vertical_verdict"),
    Entry("raft_gc", "consistency", "sweep", "gc_verdict"),
    Entry("gossip_eventual", "consistency", "sweep", "gossip_verdict"),
)


def rows() -> list[dict]:
    table = []
    for entry in ENTRIES:
        the_claim = claims.claim(entry.claim_key)
        module = importlib.import_module(f"book.{entry.module}")
        record, source = results.load_latest_or_reference(module.CHAPTER, entry.record)
        row = {"claim": the_claim, "chapter": module.CHAPTER, "source": source}
        if record is not None:
            verdict = getattr(module, entry.verdict)(record, *entry.args)
            row.update(
                verdict=verdict,
                measured_at=record["ended_at"],
                machine=machine.label(record["fingerprint"]),
            )
        table.append(row)
    return table


def to_html(table: list[dict]) -> str:
    """The scoreboard as an HTML table, linking each claim to its chapter."""
    lines = [
        '<table class="rewrite-lab-scoreboard"><thead><tr>'
        "<th>the article says</th><th>verdict here</th><th>what was measured</th>"
        "<th>measured</th></tr></thead><tbody>"
    ]
    for row in table:
        link = f'<a href="chapters/{row["chapter"]}.html">{row["chapter"]}</a>'
        claim_cell = f"{html.escape(row['claim'].says)}<br><small>{link}</small>"
        if "verdict" not in row:
            lines.append(
                f"<tr><td>{claim_cell}</td><td>not measured</td>"
                "<td>its chapter has not run on this machine</td><td></td></tr>"
            )
            continue
        origin = "" if row["source"] == "this machine" else " (reference set)"
        lines.append(
            f"<tr><td>{claim_cell}</td><td><b>{row['verdict'].word}</b></td>"
            f"<td>{html.escape(row['verdict'].sentence)}</td>"
            f"<td>{html.escape(row['measured_at'])}{origin}<br>"
            f"<small>{html.escape(row['machine'])}</small></td></tr>"
        )
    lines.append("</tbody></table>")
    return "\n".join(lines)


def show() -> None:
    from IPython.display import HTML, display

    table = rows()
    display(HTML(to_html(table)))
    words = [
        row["verdict"].word if "verdict" in row else "not measured" for row in table
    ]
    tally = ", ".join(f"{words.count(w)} {w}" for w in VERDICT_WORDS)
    print(f"{len(table)} claims: {tally}")
