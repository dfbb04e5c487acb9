"""Render a ``report.json`` dict (schema 1) and comparison tables as one HTML file.

The file is meant to be mailed, attached to a CI run or opened years later
from an archive, so it must stand alone and open offline: the CSS is inline,
every figure is embedded as a base64 ``data:`` URI, and there are no scripts
and no links to anything, not even to the files beside it.  A figure the
report lists but the folder lacks is an error rather than a broken image.

Everything that comes from the report (paths, summaries, warning messages,
settings) is user data and is escaped.  What the page says, and in which
order, comes from :mod:`invaudit.reports.render_md`, so both formats agree.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import ConfigError
from .intervals import attack_intervals
from .render_md import (
    attack_caption,
    environment_frame,
    headline_frame,
    metrics_frame,
    model_frame,
    report_title,
    settings_text,
    split_not_meaningful,
    text_frame,
    timing_frame,
    verdict_paragraph,
    warning_items,
)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 70em;
       padding: 0 1em; color: #1a1a1a; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left;
         font-variant-numeric: tabular-nums; }
thead th { background: #f0f0f0; }
section { border-top: 1px solid #ddd; }
.warnings.present { background: #fff4d6; border: 1px solid #e0b040; padding: 0 1em; }
.caption { font-style: italic; }
.verdict { background: #eef4ff; border: 1px solid #9ab; padding: 0 1em; }
.verdict.failed { background: #ffe9e6; border-color: #c55; }
.gate .fail { color: #a00; font-weight: 600; }
del { color: #777; } .flag { color: #9a3b00; font-weight: 600; }
.settings, .records { font-family: ui-monospace, monospace; font-size: 0.9em;
                      overflow-wrap: anywhere; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; }
figcaption { font-size: 0.85em; color: #555; }
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _cell(text: str) -> str:
    """One escaped cell; a value :func:`mark_not_meaningful` marked is struck through."""
    parts = split_not_meaningful(text)
    if parts is None:
        return html.escape(text, quote=False)
    value, note = (html.escape(p, quote=False) for p in parts)
    return f'<del>{value}</del> <strong class="flag">{note}</strong>'


def _table(frame: pd.DataFrame, *, index: bool = False) -> str:
    # Cells are escaped here (as pandas' escape=True would) so a marked one can carry markup.
    cells = text_frame(frame)
    escaped = pd.DataFrame(
        [[_cell(v) for v in row] for row in cells.itertuples(index=False)],
        columns=[html.escape(c, quote=False) for c in cells.columns],
        index=pd.Index(
            [html.escape(i, quote=False) for i in cells.index],
            name=None if cells.index.name is None else html.escape(cells.index.name, quote=False),
        ),
    )
    return escaped.to_html(escape=False, index=index, border=0, na_rep="n/a")


def _figure_uri(folder: str | os.PathLike, relative: str, owner: str) -> str:
    """The PNG at ``folder/relative`` as a data URI; a one-line ConfigError if it is not there."""
    path = Path(folder) / relative
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"figure {str(relative)!r} listed by {owner} not found in {str(folder)!r}"
        ) from exc
    if not data.startswith(_PNG_SIGNATURE):
        # The page declares image/png; anything else would show as a broken image.
        raise ConfigError(f"figure {str(relative)!r} listed by {owner} is not a PNG file")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _figures(folder: str | os.PathLike, paths: Iterable[str], owner: str) -> list[str]:
    return [
        f'<figure><img src="{_figure_uri(folder, p, owner)}" alt="{_e(p)}">'
        f"<figcaption>{_e(p)}</figcaption></figure>"
        for p in paths
    ]


def _document(title: str, body: list[str]) -> str:
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_e(title)}</title>",
            f"<style>{_CSS}</style>",
            "</head>",
            "<body>",
            f"<h1>{_e(title)}</h1>",
            *body,
            "</body>",
            "</html>",
            "",
        ]
    )


def _section(ident: str, heading: str, content: list[str], css: str = "") -> str:
    attrs = f' id="{_e(ident)}"' + (f' class="{css}"' if css else "")
    return "\n".join([f"<section{attrs}>", f"<h2>{_e(heading)}</h2>", *content, "</section>"])


def _warnings_section(report: Mapping[str, Any]) -> str:
    items = warning_items(report)
    if not items:
        return _section("warnings", "Warnings", ["<p>none</p>"], "warnings")
    rows = [
        f"<li><strong>{_e(name)}</strong>"
        + (f" ({_e(method)})" if method else "")
        + f": {_e(message)}</li>"
        for name, method, message in items
    ]
    return _section(
        "warnings", f"Warnings ({len(items)})", ["<ul>", *rows, "</ul>"], "warnings present"
    )


def _verdict_section(paragraphs: Mapping[str, str], failed: bool = False) -> str:
    """The verdict, one paragraph per entry (a label in bold when there are several)."""
    body = [
        f"<p><strong>{_e(label)}.</strong> {_e(text)}</p>" if label else f"<p>{_e(text)}</p>"
        for label, text in paragraphs.items()
    ]
    return _section("verdict", "Verdict", body, "verdict failed" if failed else "verdict")


def _story_section(story: str) -> str:
    """The comparison's story, boxed like a verdict (its Markdown lead becomes the heading)."""
    from .story import story_body

    return _section("story", "Story", [f"<p>{_e(story_body(story))}</p>"], "verdict")


def _gate_section(report: Mapping[str, Any]) -> list[str]:
    gate = report.get("gate")
    if not isinstance(gate, Mapping):
        return []
    rows = [
        (
            '<li><span class="fail">FAIL</span> ' if r.get("failed") else "<li>ok "
        )
        + f"<code>{_e(r.get('check'))}</code>: {_e(r.get('message'))}</li>"
        for r in gate.get("results") or []
    ]
    return [_section("gate", "Gate", ["<ul>", *rows, "</ul>"], "gate")]


def _attack_section(method: str, record: Mapping[str, Any], folder: str | os.PathLike) -> str:
    content = [
        f'<p class="caption">{_e(attack_caption(record))}</p>',
        _table(metrics_frame(record.get("metrics") or {}, attack_intervals(method, record))),
        f'<p class="settings">settings: {_e(settings_text(record.get("settings") or {}))}</p>',
    ]
    if record.get("records"):
        content.append(
            f'<p class="records">per-sample records: {_e(record["records"])} '
            "(beside report.json)</p>"
        )
    content += _figures(folder, record.get("figures") or [], f"attack {method!r}")
    return _section(f"attack-{method}", f"Attack: {method}", content, "attack")


def report_html(report: dict, folder: str | os.PathLike) -> str:
    """The report as one self-contained HTML5 page; figures are read from ``folder``.

    Raises:
        ConfigError: a figure the report lists is missing from ``folder`` or is not a PNG.
    """
    failed = (report.get("gate") or {}).get("passed") is False
    body = [
        _verdict_section({"": verdict_paragraph(report)}, failed),
        _section("headline", "Headline", [_table(headline_frame(report))]),
        *_gate_section(report),
        _warnings_section(report),
    ]
    body += [
        _attack_section(str(method), record, folder)
        for method, record in (report.get("attacks") or {}).items()
    ]
    body += [
        _section("model", "Model", [_table(model_frame(report))]),
        _section(
            "environment", "Environment", [_table(environment_frame(report.get("environment")))]
        ),
        _section("timing", "Timing", [_table(timing_frame(report.get("timing")))]),
    ]
    return _document(report_title(report), body)


def compare_html(
    title: str,
    tables: dict[str, pd.DataFrame],
    notes: list[str],
    figures: list[str],
    folder: str | os.PathLike,
    *,
    verdicts: Mapping[str, str] | None = None,
    warnings: Mapping[str, list[tuple[str, str, str]]] | None = None,
    story: str | None = None,
) -> str:
    """The story (:mod:`invaudit.reports.story`), the verdict per model, comparison tables
    (index shown, values as given), every model's warnings, notes and figures as one HTML
    page.

    Raises:
        ConfigError: a figure is missing from ``folder`` or is not a PNG.
    """
    body = [_story_section(story)] if story else []
    body += [_verdict_section(verdicts)] if verdicts else []
    body += [
        _section(f"table-{k}", name, [_table(frame, index=True)], "table")
        for k, (name, frame) in enumerate(tables.items())
    ]
    if warnings is not None:
        items = [
            f"<li><strong>{_e(label)}</strong>: "
            + (
                "; ".join(
                    f"<strong>{_e(name)}</strong>" + (f" ({_e(method)})" if method else "")
                    + f": {_e(message)}"
                    for name, method, message in entries
                )
                or "none"
            )
            + "</li>"
            for label, entries in warnings.items()
        ]
        present = any(warnings.values())
        body.append(
            _section(
                "warnings", "Warnings", ["<ul>", *items, "</ul>"],
                "warnings present" if present else "warnings",
            )
        )
    if notes:
        items = [f"<li>{_e(note)}</li>" for note in notes]
        body.append(_section("notes", "Notes", ["<ul>", *items, "</ul>"]))
    if figures:
        body.append(_section("figures", "Figures", _figures(folder, figures, "the comparison")))
    return _document(title, body)
