"""A finished audit as files: CSVs, PNGs, ``report.md``, ``report.html``, ``report.json``.

``report.json`` is written last, so a folder that has it is complete; the
whole folder is swapped in at once by :func:`~invaudit.reports.folder.replace_folder`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ..atomic import write_atomic
from ..figures import save_png
from .folder import replace_folder
from .render_html import compare_html, report_html
from .render_md import compare_markdown, report_markdown
from .runner import SuiteRun


def write_text(path: Path, text: str) -> None:
    data = text.encode()
    write_atomic(path, lambda f: f.write(data))


def write_json(path: Path, record: Any) -> None:
    write_text(path, json.dumps(record, indent=2, allow_nan=False) + "\n")


def fill_report(run: SuiteRun, folder: Path) -> None:
    """Write every file of ``run`` into ``folder`` (which exists)."""
    for method, result in run.results.items():
        write_text(folder / f"{method}.csv", result.records.to_csv(index=False))
        for stem, fig in run.figures[method].items():
            save_png(fig, folder / "figures" / f"{stem}.png")
    write_text(folder / "report.md", report_markdown(run.report))
    write_text(folder / "report.html", report_html(run.report, folder))
    write_json(folder / "report.json", run.report)


def fill_comparison(runs: Mapping[str, SuiteRun], folder: Path) -> dict[str, pd.DataFrame]:
    """Each model's report in ``folder/LABEL``, then the comparison files; the tables."""
    from .compare import (
        comparison_figures,
        comparison_notes,
        comparison_record,
        comparison_verdicts,
        comparison_warnings,
        display_tables,
        long_table,
        voided_quantities,
    )
    from .story import comparison_story

    for label, run in runs.items():
        (folder / label).mkdir()
        fill_report(run, folder / label)
    reports = {label: run.report for label, run in runs.items()}
    long = long_table(reports)
    tables = display_tables(long, voided_quantities(reports))
    notes = comparison_notes(reports)
    verdicts, warnings = comparison_verdicts(reports), comparison_warnings(reports)
    story = comparison_story(reports)
    figures = []
    for stem, fig in comparison_figures(runs).items():
        save_png(fig, folder / "figures" / f"{stem}.png")
        figures.append(f"figures/{stem}.png")
    title = "invaudit compare: " + " vs ".join(runs)
    write_text(folder / "compare.csv", long.to_csv(index=False))
    write_text(
        folder / "compare.md",
        compare_markdown(title, tables, notes, verdicts=verdicts, warnings=warnings, story=story),
    )
    write_text(
        folder / "compare.html",
        compare_html(
            title, tables, notes, figures, folder, verdicts=verdicts, warnings=warnings,
            story=story,
        ),
    )
    write_json(folder / "compare.json", comparison_record(runs, long))
    return tables


def write_comparison(
    runs: Mapping[str, SuiteRun], out: str | os.PathLike
) -> dict[str, pd.DataFrame]:
    """Write the comparison folder at ``out`` (replacing an earlier one); the tables."""
    tables: dict[str, pd.DataFrame] = {}
    replace_folder(out, lambda folder: tables.update(fill_comparison(runs, folder)))
    return tables


def write_report(run: SuiteRun, out: str | os.PathLike) -> Path:
    """Write ``run`` as a report folder at ``out``, replacing an earlier report there."""
    return replace_folder(out, lambda folder: fill_report(run, folder))
