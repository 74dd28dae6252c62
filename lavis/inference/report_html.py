"""The error browser's HTML: one static page, inline CSS and a few lines of JS to sort the table.

Rows arrive worst first (lowest top-1 IoU); clicking a column header sorts by it (numbers by
the cell's ``data-v``), clicking again reverses.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

from lavis.tasks.metric_names import INVALID_RATE, SUMMARY_METRICS

SUMMARY_KEYS = (*SUMMARY_METRICS, INVALID_RATE)

STYLE = """
body { font-family: system-ui, sans-serif; margin: 16px; color: #222; }
table { border-collapse: collapse; margin-bottom: 18px; }
td, th { border: 1px solid #ddd; padding: 4px 6px; vertical-align: top; font-size: 13px; }
th { background: #f2f2f2; text-align: left; }
#rows th { cursor: pointer; user-select: none; }
#rows th:after { content: " \\2195"; color: #999; }
tr.bad td.iou { background: #fbd5d0; } tr.mid td.iou { background: #fff0c2; } tr.good td.iou { background: #d9f0d5; }
code { font-size: 12px; white-space: pre-wrap; }
img.timeline { width: 560px; display: block; }
.muted { color: #888; }
"""

SCRIPT = """
document.querySelectorAll('#rows th').forEach((th, col) => th.addEventListener('click', () => {
  const body = document.querySelector('#rows tbody');
  const numeric = th.dataset.type === 'num';
  const dir = th.dataset.dir = th.dataset.dir === 'asc' ? 'desc' : 'asc';
  const key = row => { const c = row.cells[col]; const v = c.dataset.v ?? c.textContent;
                       return numeric ? parseFloat(v) : v.toLowerCase(); };
  const rows = [...body.rows].sort((a, b) => (key(a) > key(b)) - (key(a) < key(b)));
  (dir === 'asc' ? rows : rows.reverse()).forEach(r => body.appendChild(r));
}));
"""


@dataclass
class Row:
    """One query of the error browser's table: its ground truth, what the model wrote and found, and its timeline."""

    qid: str
    query: str
    vid: str
    duration: float
    kind: Optional[str]
    gt: list[list[float]]
    windows: list[list[float]]  # [start, end, score], best first
    iou: float  # top-1 IoU, the evaluator's convention
    text: str  # what the model wrote
    invalid: Optional[bool]
    image: Optional[str] = None  # timeline PNG, relative to the page


def _windows_text(windows: Sequence[Sequence[float]], limit: int = 3) -> str:
    shown = "<br>".join(
        f"[{w[0]:.1f}, {w[1]:.1f}]" + (f" <span class=muted>{w[2]:.2f}</span>" if len(w) > 2 else "")
        for w in windows[:limit]
    )
    more = f"<br><span class=muted>+{len(windows) - limit} more</span>" if len(windows) > limit else ""
    return shown + more if windows else "<span class=muted>none</span>"


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else html.escape(str(value))


def summary_table(groups: Sequence[tuple[str, int, dict]]) -> str:
    """``(label, number of queries, brief metrics)`` rows -> an HTML table."""
    head = "".join(f"<th>{k}</th>" for k in ("group", "queries", *SUMMARY_KEYS))
    body = "".join(
        f"<tr><td>{html.escape(label)}</td><td>{count}</td>"
        + "".join(f"<td>{_fmt(brief.get(k))}</td>" for k in SUMMARY_KEYS)
        + "</tr>"
        for label, count, brief in groups
    )
    return f"<table class=summary><tr>{head}</tr>{body}</table>"


def _row(rank: int, row: Row, with_kind: bool) -> str:
    band = "bad" if row.iou < 0.3 else "mid" if row.iou < 0.7 else "good"
    image = (
        f'<a href="{html.escape(row.image)}"><img class=timeline loading=lazy src="{html.escape(row.image)}"></a>'
        if row.image
        else "<span class=muted>no image</span>"
    )
    kind = f"<td>{html.escape(row.kind or '')}</td>" if with_kind else ""
    flag = " <span class=muted>(repaired)</span>" if row.invalid else ""
    return (
        f'<tr class={band}><td data-v="{rank}">{rank}</td><td class=iou data-v="{row.iou:.6f}">{row.iou:.3f}</td>'
        f"<td>{html.escape(str(row.qid))}</td><td>{html.escape(row.query)}</td>{kind}"
        f'<td data-v="{row.duration}">{row.duration:.1f}</td><td>{_windows_text(row.gt)}</td>'
        f"<td>{_windows_text(row.windows)}</td><td><code>{html.escape(row.text)}</code>{flag}</td><td>{image}</td></tr>"
    )


def render_page(title: str, subtitle: str, summaries: Sequence[tuple[str, str]], rows: Sequence[Row]) -> str:
    """The whole page; ``summaries`` are (heading, table HTML); ``rows`` in display order."""
    with_kind = any(r.kind for r in rows)
    columns = [("#", "num"), ("IoU", "num"), ("qid", "text"), ("query", "text")]
    columns += [("kind", "text")] if with_kind else []
    columns += [("duration (s)", "num"), ("GT", "text"), ("prediction", "text"), ("model text", "text")]
    columns += [("timeline", "text")]
    head = "".join(f'<th data-type="{t}">{name}</th>' for name, t in columns)
    sections = "".join(f"<h3>{html.escape(h)}</h3>{table}" for h, table in summaries)
    body = "\n".join(_row(k + 1, row, with_kind) for k, row in enumerate(rows))
    return (
        f"<!doctype html>\n<html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>\n<h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p>\n"
        f"<h2>Summary</h2>{sections}\n<h2>Queries, worst first (click a column to sort)</h2>\n"
        f"<table id=rows><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>\n"
        f"<script>{SCRIPT}</script></body></html>\n"
    )
