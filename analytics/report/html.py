"""The report's HTML: one self-contained page (inline CSS, inline SVG), tables and number formats.

Everything is escaped here (the charts are escaped by :mod:`analytics.report.figure`); a section
is a string of HTML built from these helpers. The page names no other host: no script, font,
stylesheet or image URL. Long tables scroll inside their box, with their header kept in view, and
details fold away under ``<details>``: plain HTML and CSS, no script.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Sequence
from html import escape
from typing import Any

Format = Callable[[Any], str]

#: Rows past which a ``scroll`` table scrolls in its box (the box shows about this many).
SCROLL_ROWS = 15

CSS = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
  color: #1d1d1f; background: #ffffff; font-size: 14px; line-height: 1.4; }
header { background: #12355b; color: #ffffff; padding: 18px 28px; }
header h1 { margin: 0 0 4px 0; font-size: 22px; }
header p { margin: 0; opacity: 0.85; }
main { padding: 8px 28px 40px 28px; max-width: 1240px; }
.wide { overflow-x: auto; }
.wide.scroll { max-height: 26em; overflow-y: auto; border-bottom: 1px solid #d9dee5; }
.wide.scroll table { margin: 0; }
.wide.scroll th { position: sticky; top: 0; z-index: 1; }
section { margin-top: 26px; }
h2 { font-size: 18px; border-bottom: 2px solid #12355b; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 6px 0; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 10px 0; }
.card { border: 1px solid #d9dee5; border-radius: 6px; padding: 8px 12px; min-width: 130px; }
.card .label { font-size: 11px; color: #5b6573; text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 18px; font-weight: 600; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 8px 0; }
figcaption { font-size: 12px; color: #5b6573; }
table { border-collapse: collapse; margin: 6px 0 12px 0; font-size: 12px; }
th, td { padding: 3px 6px; border-bottom: 1px solid #e6e9ee; text-align: left;
  white-space: nowrap; }
.kv td { white-space: normal; max-width: 520px; overflow-wrap: anywhere; }
th { background: #f3f5f8; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.gap td { text-align: center; color: #5b6573; font-style: italic; }
.note { color: #5b6573; font-size: 12.5px; }
.kv td:first-child { color: #5b6573; }
details summary { cursor: pointer; color: #5b6573; margin: 6px 0; }
details.more { margin: 0 0 10px 0; }
p.dates { font-size: 12.5px; font-variant-numeric: tabular-nums; max-width: 1000px; }
pre { background: #f6f8fa; padding: 10px; font-size: 12px; overflow-x: auto; }
"""


def fmt_pct(value: Any) -> str:
    return _finite(value, lambda v: f"{v * 100:.2f}%")


def fmt_ratio(value: Any) -> str:
    return _finite(value, lambda v: f"{v:.2f}")


def fmt_money(value: Any) -> str:
    return _finite(value, lambda v: f"{v:,.0f}")


def fmt_float(value: Any) -> str:
    return _finite(value, lambda v: f"{v:.4g}")


def fmt_int(value: Any) -> str:
    return _finite(value, lambda v: f"{int(v):,}")


def fmt_bytes(value: Any) -> str:
    size = float(value or 0)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover - the loop always returns


def fmt_any(value: Any) -> str:
    """A parameter or summary value as text: lists joined, None as a dash."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return fmt_float(value)
    if isinstance(value, (list, tuple)):
        shown = ", ".join(fmt_any(v) for v in value[:12])
        return shown + (f", … ({len(value)} in all)" if len(value) > 12 else "")
    if isinstance(value, dict):
        return ", ".join(f"{k}: {fmt_any(v)}" for k, v in value.items())
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)


def _finite(value: Any, fmt: Callable[[float], str]) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "—" if value is None else str(value)
    if math.isnan(number):
        return "—"
    if math.isinf(number):
        return "∞" if number > 0 else "-∞"
    return fmt(number)


def cards(items: Iterable[tuple[str, str]]) -> str:
    """Headline numbers as a row of small cards."""
    body = "".join(
        f'<div class="card"><div class="label">{escape(label)}</div>'
        f'<div class="value">{escape(value)}</div></div>'
        for label, value in items
    )
    return f'<div class="cards">{body}</div>'


def table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any] | None],
    formats: Sequence[Format | None] | None = None,
    *,
    css_class: str = "",
    scroll: bool = False,
) -> str:
    """A table; a ``None`` row is a gap (``…``); a column with a format is right-aligned.
    ``scroll``: past :data:`SCROLL_ROWS` rows the table scrolls inside a box of about that
    height, its header row staying in view."""
    fmts = list(formats or [None] * len(columns))
    head = "".join(
        f'<th class="num">{escape(c)}</th>' if f else f"<th>{escape(c)}</th>"
        for c, f in zip(columns, fmts, strict=True)
    )
    body = []
    for row in rows:
        if row is None:
            body.append(f'<tr class="gap"><td colspan="{len(columns)}">…</td></tr>')
            continue
        cells = "".join(
            f'<td class="num">{escape(f(v))}</td>' if f else f"<td>{escape(fmt_any(v))}</td>"
            for v, f in zip(row, fmts, strict=True)
        )
        body.append(f"<tr>{cells}</tr>")
    klass = f' class="{css_class}"' if css_class else ""
    box = "wide scroll" if scroll and len(body) > SCROLL_ROWS else "wide"
    return (
        f'<div class="{box}"><table{klass}><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def key_values(items: Iterable[tuple[str, Any]]) -> str:
    return table(["name", "value"], ([k, v] for k, v in items), css_class="kv")


def figure(svg: str, caption: str = "") -> str:
    cap = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return f"<figure>{svg}{cap}</figure>"


def fold(summary: str, *blocks: str, css_class: str = "more") -> str:
    """``blocks`` folded away under a ``summary`` line a click opens (no script)."""
    return (
        f'<details class="{escape(css_class)}"><summary>{escape(summary)}</summary>'
        f"{''.join(blocks)}</details>"
    )


def escape_text(text: str) -> str:
    return escape(text)


def note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def section(title: str, *blocks: str, anchor: str = "") -> str:
    ident = f' id="{escape(anchor)}"' if anchor else ""
    return f"<section{ident}><h2>{escape(title)}</h2>{''.join(blocks)}</section>"


def page(title: str, subtitle: str, sections: Sequence[str]) -> str:
    """The whole document. Deterministic: regenerating a run's report gives the same bytes."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # No request leaves the page, not even for a favicon.
        '<link rel="icon" href="data:,">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{escape(title)}</h1><p>{escape(subtitle)}</p></header>"
        f"<main>{''.join(sections)}</main></body></html>\n"
    )
