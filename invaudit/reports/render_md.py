"""Render a ``report.json`` dict (schema 1) and comparison tables as Markdown.

The Markdown has to read well twice: as plain text in a terminal and rendered
as a GitHub Actions job summary.  Pipe tables do both, so every table goes
through :meth:`pandas.DataFrame.to_markdown`.  The verdict a reader wants
comes first: the title (with the gate's outcome when one ran), then the
verdict paragraph (:mod:`invaudit.reports.verdict`), then the headline table
(every rate with its 95 % interval and which direction is better), the detail
after it.

The helpers that decide *what* a report says (the headline rows, which each
attack declares in :attr:`~invaudit.attacks.declaration.Attack.headline`; how
metrics, settings, environment and timing flatten into rows) live here and are
shared with :mod:`invaudit.reports.render_html`, so both formats always agree;
how a value, a rate or a null is written is :mod:`invaudit.reports.formats`.  Callers
validate the dict with :func:`invaudit.reports.schema.check_report` first;
the renderers read it with ``.get`` so that optional sections (no oracle, a
model that is not invertible) simply show as ``n/a``.

An oracle rate is only evidence when the points the oracle judged are inputs.
When the report's warnings hold a flag that says they are not (metamers or
interpolations off the data box, an exploding inverse: :func:`void_reasons`),
every table that shows the rate marks it next to its value, ``87.7% ⚠ not
meaningful: why``; Markdown strikes the value through and HTML wraps it in
``<del>``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

import pandas as pd

from ..attacks import ATTACKS
from ..attacks.declaration import BITS, HIGHER, LOWER, RATE, SHARE, Headline
from .formats import NA, fmt_interval, fmt_interval_fraction, fmt_percent, fmt_seconds, fmt_value
from .intervals import attack_intervals, clean_accuracy_interval, interval_of

__all__ = [
    "HEADLINE_COLUMNS",
    "NA",
    "NOT_MEANINGFUL",
    "attack_caption",
    "compare_markdown",
    "fmt_percent",
    "fmt_value",
    "headline_frame",
    "headline_rows",
    "headline_specs",
    "mark_not_meaningful",
    "report_markdown",
    "void_reasons",
]

HEADLINE_COLUMNS = ("check", "value", "95% interval", "n", "better")

#: Sanity flags (invaudit.reports.sanity) that void the oracle rates of the attack the
#: warning names (its decoded points left the data box), with the reason shown.
OFF_DOMAIN_FLAGS: dict[str, str] = {
    "metamers_off_domain": "metamers leave the data box",
    "interpolation_off_domain": "interpolations leave the data box",
}
#: The sanity flag that voids the oracle rates of every attack that declares some: F⁻¹
#: explodes at metamer points, so whatever it decodes is amplified noise.
EXPLODING_FLAG = "inverse_exploding"
#: How a voided rate is marked in every table: ``"87.7% ⚠ not meaningful: why"``.
#: Markdown strikes the value through, HTML wraps it in ``<del>``.
NOT_MEANINGFUL = "⚠ not meaningful"


def headline_specs(method: str) -> tuple[Headline, ...]:
    """The headline rows attack ``method`` declares (none for a method this invaudit does
    not know, e.g. in an older report)."""
    attack = ATTACKS.get(method)
    return attack.headline if attack is not None else ()


def oracle_rates(method: str) -> tuple[str, ...]:
    """The oracle rates on decoded points attack ``method`` declares (see :func:`void_reasons`)."""
    attack = ATTACKS.get(method)
    return attack.oracle_rates if attack is not None else ()


def ordered_keys(mapping: Mapping[str, Any]) -> list[str]:
    """Numeric keys (epsilons) in numeric order; anything else as written."""
    keys = [str(k) for k in mapping]
    try:
        return sorted(keys, key=float)
    except ValueError:
        return keys


Row = tuple[str, str, str, str, str]  # the HEADLINE_COLUMNS as text


def _headline_cell(
    label: str,
    value: Any,
    style: str,
    n: Any,
    interval: Mapping[str, Any] | None,
    better: str = "",
) -> Row:
    if style in (RATE, SHARE):
        text = fmt_percent(value)
    elif style == BITS and value is not None:
        text = f"{fmt_value(value)} bits"
    else:
        text = fmt_value(value)
    if style == RATE and interval and interval.get("n") is not None:
        n = interval["n"]  # a train rate's count differs from the attack's n
    shown_n = "" if style == SHARE or n is None else fmt_value(n)
    shown = fmt_interval(interval) if style == RATE and value is not None else ""
    return (label, text, shown, shown_n, better)


def void_reasons(report: Mapping[str, Any]) -> dict[str, list[str]]:
    """Per attack with oracle rates (:attr:`~invaudit.attacks.declaration.Attack.oracle_rates`),
    why they are not meaningful (absent: they are).

    Read from the report's warnings, so a report shows what its checks found: the
    attack's own off-domain flag first, then an exploding inverse.  An exact oracle
    (spheres: the radius) judges any point, so nothing is voided then.
    """
    if (report.get("oracle") or {}).get("exact"):
        return {}
    gain = (report.get("invertibility") or {}).get("metamer_gain") or {}
    top = gain.get("max")
    exploding = "F⁻¹ explodes at metamers" + (
        f" (gain up to {top:.3g})" if isinstance(top, int | float) else ""
    )
    fired = [
        (w.get("name"), w.get("method"))
        for w in report.get("warnings") or []
        if isinstance(w, Mapping)
    ]
    reasons: dict[str, list[str]] = {}
    for method, attack in ATTACKS.items():
        if not attack.oracle_rates:
            continue
        why = [OFF_DOMAIN_FLAGS[n] for n, m in fired if n in OFF_DOMAIN_FLAGS and m == method]
        if any(n == EXPLODING_FLAG for n, _ in fired):
            why.append(exploding)
        if why:
            reasons[method] = list(dict.fromkeys(why))
    return reasons


def mark_not_meaningful(text: str, reasons: Iterable[str] = ()) -> str:
    """``text`` marked as a rate that is not meaningful, with the reasons if given."""
    reasons = list(reasons)
    return f"{text} {NOT_MEANINGFUL}" + (f": {'; '.join(reasons)}" if reasons else "")


def split_not_meaningful(cell: str) -> tuple[str, str] | None:
    """``(value, marker and reasons)`` of a cell :func:`mark_not_meaningful` wrote, else None."""
    value, sep, rest = cell.partition(f" {NOT_MEANINGFUL}")
    if not sep or not value:
        return None
    return value, NOT_MEANINGFUL + rest


def _gain_text(gain: Mapping[str, Any]) -> str:
    text = f"median {fmt_value(gain.get('median'))}, max {fmt_value(gain.get('max'))}"
    if gain.get("largest_stage"):
        text += f"; largest: {gain['largest_stage']}"
        if gain.get("largest_layer"):
            text += f", {gain['largest_layer']}"
    return text


def _gain_rows(report: Mapping[str, Any]) -> list[Row]:
    """The inverse's local gain at metamers and at test inputs (reports that measured it)."""
    inv = report.get("invertibility") or {}
    exploding = any(
        isinstance(w, Mapping) and w.get("name") == "inverse_exploding"
        for w in report.get("warnings") or []
    )
    rows = []
    for key, label in (("metamer_gain", "at metamers"), ("data_gain", "at test inputs")):
        if key not in inv:
            continue
        gain = inv[key]
        if not gain:
            rows.append(
                (f"inverse gain {label}", f"{NA} (one class: no metamer pairs)", "", "", "")
            )
            continue
        text = _gain_text(gain)
        if key == "metamer_gain" and exploding:
            text += " ⚠ exploding"
        n = gain.get("n")
        shown_n = "" if n is None else fmt_value(n)
        rows.append((f"inverse gain {label}", text, "", shown_n, LOWER))
    return rows


def _invertibility_cell(inv: Mapping[str, Any] | None) -> Row:
    if not inv:
        return ("invertibility max error", f"{NA} (not invertible)", "", "", "")
    error, tolerance = inv.get("max_abs_error"), inv.get("tolerance")
    verdict = "pass" if inv.get("passed") else "FAIL"
    bound = "" if tolerance is None else f", tolerance {fmt_value(tolerance)}"
    text = f"{fmt_value(error)} ({verdict}{bound})"
    n = inv.get("n")
    return ("invertibility max error", text, "", "" if n is None else fmt_value(n), LOWER)


def headline_rows(report: Mapping[str, Any]) -> list[Row]:
    """The headline table as :data:`HEADLINE_COLUMNS` strings, in reading order."""
    model = report.get("model") or {}
    rows = [
        _headline_cell(
            "clean accuracy",
            model.get("clean_accuracy"),
            RATE,
            model.get("clean_accuracy_n"),
            clean_accuracy_interval(model),
            HIGHER,
        ),
        _invertibility_cell(report.get("invertibility")),
        *_gain_rows(report),
    ]
    voided = void_reasons(report)
    for method, record in (report.get("attacks") or {}).items():
        metrics = record.get("metrics") or {}
        n, intervals = record.get("n"), attack_intervals(str(method), record)
        for spec in headline_specs(str(method)):
            metric, label, style, better = spec.metric, spec.label, spec.style, spec.better
            value = metrics.get(metric)
            if isinstance(value, Mapping):
                for key in ordered_keys(value):
                    name = f"{method} {label.format(key=key)}"
                    interval = interval_of(intervals, metric, key)
                    rows.append(_headline_cell(name, value[key], style, n, interval, better))
            else:
                name = f"{method} {label.format(key='?')}"
                interval = interval_of(intervals, metric)
                row = _headline_cell(name, value, style, n, interval, better)
                why = voided.get(method) if metric in oracle_rates(str(method)) else None
                if value is not None and why:
                    row = (row[0], mark_not_meaningful(row[1], why), *row[2:])
                rows.append(row)
    rows.append(("warnings", str(len(report.get("warnings") or [])), "", "", "fewer"))
    return rows


def headline_frame(report: Mapping[str, Any]) -> pd.DataFrame:
    """:func:`headline_rows` as a DataFrame with :data:`HEADLINE_COLUMNS`."""
    return pd.DataFrame(headline_rows(report), columns=list(HEADLINE_COLUMNS))


def _flatten(prefix: str, value: Any) -> Iterable[tuple[str, Any]]:
    """Map-valued entries as one row per key, named the way gate paths read them."""
    if isinstance(value, Mapping):
        for key in ordered_keys(value):
            yield from _flatten(f"{prefix}[{key}]", value[key])
    else:
        yield prefix, value


def metrics_frame(
    metrics: Mapping[str, Any], intervals: Mapping[str, Any] | None = None
) -> pd.DataFrame:
    """Every metric as measured, map-valued ones as ``name[key]`` rows; with ``intervals``
    (:func:`~invaudit.reports.intervals.attack_intervals`) a column of the rates' 95 %
    intervals, as fractions like the values (the units a gate check uses)."""
    rows = []
    for metric, raw in metrics.items():
        for name, value in _flatten(str(metric), raw):
            key = name[len(str(metric)) + 1 : -1] if isinstance(raw, Mapping) else None
            interval = interval_of(intervals or {}, str(metric), key)
            rows.append((name, fmt_value(value), fmt_interval_fraction(interval)))
    frame = pd.DataFrame(rows, columns=["metric", "value", "95% interval"])
    return frame if intervals is not None else frame.drop(columns="95% interval")


def settings_text(settings: Mapping[str, Any]) -> str:
    """Settings on one line, ``key=value`` separated by ``; ``."""
    if not settings:
        return "none"
    return "; ".join(f"{key}={fmt_value(value)}" for key, value in settings.items())


def model_frame(report: Mapping[str, Any]) -> pd.DataFrame:
    """What was audited and how: model, suite and oracle as ``item | value`` rows."""
    model, suite = report.get("model") or {}, report.get("suite") or {}
    oracle = report.get("oracle")
    rows = [
        (f"model {key}", fmt_interval(value) if key.endswith("_interval") else fmt_value(value))
        for key, value in model.items()
    ]
    rows += [(f"suite {key}", fmt_value(value)) for key, value in suite.items()]
    if oracle:
        rows += [(f"oracle {key}", fmt_value(value)) for key, value in oracle.items()]
    else:
        rows.append(("oracle", "none"))
    rows.append(("created", fmt_value(report.get("created"))))
    return pd.DataFrame(rows, columns=["item", "value"])


def environment_frame(environment: Mapping[str, Any] | None) -> pd.DataFrame:
    rows = [(str(key), fmt_value(value)) for key, value in (environment or {}).items()]
    return pd.DataFrame(rows, columns=["item", "value"])


def timing_frame(timing: Mapping[str, Any] | None) -> pd.DataFrame:
    """Seconds per step; the per-attack map becomes one ``attack NAME`` row each."""
    rows: list[tuple[str, str]] = []
    for key, value in (timing or {}).items():
        if isinstance(value, Mapping):
            rows += [(f"attack {name}", fmt_seconds(v)) for name, v in value.items()]
        else:
            rows.append((str(key).removesuffix("_seconds").replace("_", " "), fmt_seconds(value)))
    return pd.DataFrame(rows, columns=["step", "seconds"])


def title_text(report: Mapping[str, Any]) -> str:
    """``invaudit report: ARCH, loss LOSS, DATASET (FILE)``."""
    model = report.get("model") or {}
    path = model.get("path")
    file_name = os.path.basename(str(path)) if path else NA
    return (
        f"invaudit report: {fmt_value(model.get('arch'))}, loss {fmt_value(model.get('loss'))}, "
        f"{fmt_value(model.get('dataset'))} ({file_name})"
    )


def warning_items(report: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """``(name, method or "", message)`` per warning."""
    return [
        (fmt_value(w.get("name")), w.get("method") or "", fmt_value(w.get("message")))
        for w in report.get("warnings") or []
    ]


def attack_caption(record: Mapping[str, Any]) -> str:
    """``KIND: summary`` for the line under an attack's heading."""
    return f"{fmt_value(record.get('kind'))}: {fmt_value(record.get('summary'))}"


def _label(value: Any) -> str:
    # A MultiIndex gives tuples; "a / b" reads better than "('a', 'b')".
    return " / ".join(map(str, value)) if isinstance(value, tuple) else str(value)


def text_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every value, label and index entry as text, missing ones as ``n/a``.

    Values are otherwise kept as given: comparison tables arrive formatted by
    their caller, and numbers are not rounded again here.
    """
    return pd.DataFrame(
        [[NA if _missing(v) else str(v) for v in row] for row in frame.itertuples(index=False)],
        columns=[_label(c) for c in frame.columns],
        index=pd.Index([_label(i) for i in frame.index], name=_index_name(frame.index)),
    )


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _index_name(index: pd.Index) -> str | None:
    names = [n for n in index.names if n is not None]
    return " / ".join(map(str, names)) if names else None


# --- Markdown proper -------------------------------------------------------------------


def _md_text(text: str) -> str:
    """One line of user text that cannot break a pipe table or open an HTML tag on GitHub."""
    return " ".join(str(text).split()).replace("|", "\\|").replace("<", "\\<")


def _md_code(text: str) -> str:
    # Backslash escapes are literal inside a code span, so only keep it one span.
    return "`" + " ".join(str(text).split()).replace("`", "'") + "`"


def _md_table(frame: pd.DataFrame, *, index: bool = False) -> str:
    """A pipe table; values are written as given (no number parsing by tabulate)."""
    if len(frame.columns) == 0:
        return "_(empty table)_"
    cells = text_frame(frame)
    clean = pd.DataFrame(
        [[_md_cell(v) for v in row] for row in cells.itertuples(index=False)],
        columns=[_md_text(c) for c in cells.columns],
        index=pd.Index(
            [_md_text(i) for i in cells.index],
            name=None if cells.index.name is None else _md_text(cells.index.name),
        ),
    )
    return clean.to_markdown(index=index, disable_numparse=True)


def _md_cell(text: str) -> str:
    """:func:`_md_text`, with a value :func:`mark_not_meaningful` marked struck through."""
    parts = split_not_meaningful(str(text))
    if parts is None:
        return _md_text(text)
    return f"~~{_md_text(parts[0])}~~ {_md_text(parts[1])}"


def _md_link(path: str) -> str:
    # Percent-encoding keeps a path with spaces or brackets a valid relative link.
    return f"[{_md_text(path)}]({quote(str(path))})"


def _md_attack(method: str, record: Mapping[str, Any]) -> list[str]:
    intervals = attack_intervals(method, record)
    lines = [
        f"## Attack: {_md_text(method)}",
        "",
        f"_{_md_text(attack_caption(record))}_",
        "",
        _md_table(metrics_frame(record.get("metrics") or {}, intervals)),
        "",
        f"Settings: {_md_code(settings_text(record.get('settings') or {}))}",
        "",
    ]
    files = ([record["records"]] if record.get("records") else []) + list(
        record.get("figures") or []
    )
    if files:
        lines += ["Files: " + " · ".join(_md_link(f) for f in files), ""]
    return lines


def report_title(report: Mapping[str, Any]) -> str:
    """:func:`title_text`, with the gate's outcome in front when the report ran one."""
    from .verdict import gate_headline

    gate = gate_headline(report)
    return f"{gate} · {title_text(report)}" if gate else title_text(report)


def verdict_paragraph(report: Mapping[str, Any]) -> str:
    from .verdict import verdict_text

    return verdict_text(report)


def _md_gate(report: Mapping[str, Any]) -> list[str]:
    gate = report.get("gate")
    if not isinstance(gate, Mapping):
        return []
    lines = ["## Gate", ""]
    for result in gate.get("results") or []:
        status = "**FAIL**" if result.get("failed") else "ok"
        lines.append(
            f"- {status} {_md_code(str(result.get('check')))}: {_md_text(result.get('message'))}"
        )
    return lines + [""]


def report_markdown(report: dict) -> str:
    """The report as Markdown: title, verdict, headline table, gate, warnings, attacks,
    model, environment, timing.  File links are relative, so the text works saved beside
    ``report.json``."""
    lines = [f"# {_md_text(report_title(report))}", ""]
    lines += [f"**Verdict.** {_md_text(verdict_paragraph(report))}", "", "## Headline", ""]
    lines += [_md_table(headline_frame(report)), ""]
    lines += _md_gate(report)
    lines += ["## Warnings", ""]
    warnings = warning_items(report)
    if not warnings:
        lines.append("none")
    for name, method, message in warnings:
        where = f" ({_md_text(method)})" if method else ""
        lines.append(f"- **{_md_text(name)}**{where}: {_md_text(message)}")
    lines.append("")
    for method, record in (report.get("attacks") or {}).items():
        lines += _md_attack(str(method), record)
    lines += ["## Model", "", _md_table(model_frame(report)), ""]
    lines += ["## Environment", "", _md_table(environment_frame(report.get("environment"))), ""]
    lines += ["## Timing", "", _md_table(timing_frame(report.get("timing"))), ""]
    return "\n".join(lines)


def compare_markdown(
    title: str,
    tables: dict[str, pd.DataFrame],
    notes: list[str],
    *,
    verdicts: Mapping[str, str] | None = None,
    warnings: Mapping[str, list[tuple[str, str, str]]] | None = None,
    story: str | None = None,
) -> str:
    """The story (:mod:`invaudit.reports.story`) and the verdict per model first, then the
    comparison tables (each under its own heading with its index shown), every model's
    warnings with their texts, then the notes."""
    lines = [f"# {_md_text(title)}", ""]
    if story:
        lines += [_md_text(story), ""]
    for label, text in (verdicts or {}).items():
        lines += [f"**Verdict, {_md_text(label)}.** {_md_text(text)}", ""]
    for name, frame in tables.items():
        lines += [f"## {_md_text(name)}", "", _md_table(frame, index=True), ""]
    if warnings is not None:
        lines += ["## Warnings", ""]
        for label, items in warnings.items():
            if not items:
                lines.append(f"- **{_md_text(label)}**: none")
            for name, method, message in items:
                where = f" ({_md_text(method)})" if method else ""
                lines.append(
                    f"- **{_md_text(label)}**: {_md_text(name)}{where}: {_md_text(message)}"
                )
        lines.append("")
    if notes:
        lines += ["## Notes", ""] + [f"- {_md_text(note)}" for note in notes] + [""]
    return "\n".join(lines)
