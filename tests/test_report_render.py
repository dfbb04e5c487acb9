"""Markdown and HTML renderers of report.json and of comparison tables."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure

from invaudit.errors import ConfigError
from invaudit.figures import save_png
from invaudit.reports.render_html import compare_html, report_html
from invaudit.reports.render_md import (
    HEADLINE_COLUMNS,
    compare_markdown,
    headline_frame,
    headline_rows,
    report_markdown,
)
from invaudit.reports.schema import check_report, ci95_halfwidth

EPSILONS = ("0.1", "0.2", "0.3")


def _png(path: Path) -> bytes:
    fig = Figure(figsize=(1, 1), dpi=20)
    fig.add_subplot().plot([0, 1], [1, 0])
    save_png(fig, path)
    return path.read_bytes()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "figures").mkdir()
    _png(tmp_path / "figures" / "metamer.png")
    _png(tmp_path / "figures" / "pgd curve.png")
    return tmp_path


@pytest.fixture
def report() -> dict:
    return {
        "schema": "invaudit.report",
        "schema_version": 1,
        "created": "2026-11-28T19:40:00+00:00",
        "suite": {"name": "quick", "seed": 0, "n": 512, "methods": ["metamer", "probe"]},
        "model": {
            "path": "runs/<b>mnist-ce.pt",
            "sha256": "ab" * 32,
            "arch": "firevnet-mnist",
            "loss": "ce",
            "dataset": "mnist",
            "input_shape": [1, 28, 28],
            "num_classes": 10,
            "parameters": 123456,
            "invertible": True,
            "clean_accuracy": 0.9928,
            "clean_accuracy_n": 10000,
        },
        "invertibility": {
            "n": 512,
            "max_abs_error": 1e-6,
            "mean_abs_error": 1e-8,
            "tolerance": 1e-4,
            "passed": True,
        },
        "oracle": None,
        "attacks": {
            "metamer": {
                "kind": "invariance",
                "summary": "metamers keep the logits <b>exactly</b>",
                "n": 512,
                "ci95_halfwidth": ci95_halfwidth(512),
                "metrics": {
                    "n": 512,
                    "logit_match_max_abs": 3.2e-6,
                    "prediction_preserved": 1.0,
                    "reconstruction_max_abs": 2e-6,
                    "oracle_agrees_logit_source": None,
                    "oracle_agrees_nuisance_source": None,
                    "invariance_success_rate": None,
                    "in_bounds_share": 0.25,
                    "bounds_excursion_mean": 0.031,
                },
                "settings": {"n": 512, "seed": 0, "oracle": None},
                "records": "metamer.csv",
                "figures": ["figures/metamer.png"],
            },
            "probe": {
                "kind": "invariance",
                "summary": "a probe on z_n recovers the class",
                "n": 2000,
                "ci95_halfwidth": ci95_halfwidth(2000),
                "metrics": {
                    "n": 2000,
                    "n_train": 8000,
                    "nuisance_accuracy": 0.9712,
                    "nuisance_error": 0.0288,
                    "nuisance_train_error": 0.01,
                    "logit_accuracy": 0.99,
                    "logit_error": 0.01,
                    "logit_train_error": 0.002,
                    "decision_test_error": 0.0072,
                    "decision_train_error": 0.0,
                    "mi_lower_bound_bits_nuisance": 3.1,
                    "mi_lower_bound_bits_logit": 3.2,
                    "label_entropy_bits": 3.32,
                },
                "settings": {"epochs": 3},
                "records": "probe.csv",
                "figures": [],
            },
            "pgd-linf": {
                "kind": "sensitivity",
                "summary": "PGD under an L-inf budget",
                "n": 512,
                "ci95_halfwidth": ci95_halfwidth(512),
                "metrics": {
                    "n": 512,
                    "clean_accuracy": 0.99,
                    # not in numeric order on purpose: rows must still come 0.1, 0.2, 0.3
                    "robust_accuracy": {"0.3": 0.0, "0.1": 0.93, "0.2": None},
                },
                "settings": {"epsilons": [0.1, 0.2, 0.3], "steps": 40},
                "records": "pgd-linf.csv",
                "figures": ["figures/pgd curve.png"],
            },
        },
        "warnings": [
            {"name": "oracle_missing", "method": "metamer", "message": "no oracle: <b>n/a</b>"}
        ],
        "environment": {"invaudit": "0.1.0", "python": "3.12", "device": "cpu", "threads": 2},
        "timing": {
            "total_seconds": 93.1,
            "invertibility_seconds": 0.4,
            "clean_accuracy_seconds": 7.2,
            "attacks": {"metamer": 3.1, "probe": 60.0, "pgd-linf": 20.2},
        },
    }


def test_fixture_is_a_valid_report(report: dict) -> None:
    check_report(report)


def test_headline_rows(report: dict) -> None:
    # The fixture is a report written before intervals were stored (ci95_halfwidth):
    # its exact intervals are computed from each rate and its count.
    rows = {check: rest for check, *rest in headline_rows(report)}
    assert rows["clean accuracy"] == ["99.3%", "[99.09, 99.44]", "10000", "higher"]
    assert rows["invertibility max error"][0].startswith("1e-06 (pass")
    assert rows["metamer invariance success"] == ["n/a", "", "512", "lower"]
    assert rows["metamer prediction preserved"] == ["100.0%", "[99.28, 100.00]", "512", "100 %"]
    assert rows["probe nuisance error"] == ["2.9%", "[2.2, 3.7]", "2000", "higher"]
    assert rows["probe I(z_n; y) lower bound"] == ["3.1 bits", "", "2000", "lower"]
    assert rows["pgd-linf robust accuracy @ ε=0.1"][:2] == ["93.0%", "[90.4, 95.0]"]
    assert rows["pgd-linf robust accuracy @ ε=0.2"][:2] == ["n/a", ""]
    assert rows["pgd-linf robust accuracy @ ε=0.3"][:2] == ["0.0%", "[0.00, 0.72]"]
    assert rows["warnings"][0] == "1"
    assert list(headline_frame(report).columns) == list(HEADLINE_COLUMNS)


def test_stored_intervals_win_over_computed_ones(report: dict) -> None:
    record = report["attacks"]["pgd-linf"]
    del record["ci95_halfwidth"]
    record["intervals"] = {"robust_accuracy": {"0.1": {"low": 0.5, "high": 0.75, "n": 512}}}
    check_report(report)
    rows = {check: rest for check, *rest in headline_rows(report)}
    assert rows["pgd-linf robust accuracy @ ε=0.1"][1] == "[50.0, 75.0]"


def test_headline_handles_a_model_that_is_not_invertible(report: dict) -> None:
    report["invertibility"] = None
    rows = dict((r[0], r[1]) for r in headline_rows(report))
    assert rows["invertibility max error"].startswith("n/a")


def test_markdown_order_and_content(report: dict) -> None:
    text = report_markdown(report)
    lines = text.splitlines()
    assert lines[0].startswith("# ") and "firevnet-mnist" in lines[0]
    assert "mnist-ce" in lines[0] and "loss ce" in lines[0] and "mnist" in lines[0]
    # user text cannot open an HTML tag in a GitHub job summary
    assert "\\<b>mnist-ce.pt" in lines[0] and "\\<b>exactly\\</b>" in text
    assert lines[2].startswith("**Verdict.** ")  # the verdict comes before any table
    headline = text.index("| check")
    first_attack = text.index("## Attack:")
    assert headline < text.index("## Warnings") < first_attack
    assert first_attack < text.index("## Environment") < text.index("## Timing")
    positions = [text.index(f"pgd-linf robust accuracy @ ε={eps} ") for eps in EPSILONS]
    assert positions == sorted(positions) and max(positions) < first_attack
    # full metrics table: one row per epsilon, nulls as n/a
    for eps in EPSILONS:
        assert f"robust_accuracy[{eps}]" in text
    assert re.search(r"\| robust_accuracy\[0\.2\]\s*\| n/a", text)
    assert re.search(r"\| invariance_success_rate\s*\| n/a", text)
    assert "oracle_missing" in text and "no oracle" in text
    # relative links that work beside report.json; the space is percent-encoded
    assert "(metamer.csv)" in text and "(figures/metamer.png)" in text
    assert "(figures/pgd%20curve.png)" in text
    assert "epsilons=[0.1, 0.2, 0.3]; steps=40" in text


def test_markdown_tables_are_well_formed(report: dict) -> None:
    report["warnings"][0]["message"] = "a | b\nc"
    text = report_markdown(report)
    for line in text.splitlines():
        if line.startswith("|"):
            unescaped = re.sub(r"\\\|", "", line)
            assert unescaped.count("|") in (3, 4, 6), line  # 2, 3 or 5 columns
    assert "a \\| b c" in text


def test_markdown_without_warnings_says_none(report: dict) -> None:
    report["warnings"] = []
    text = report_markdown(report)
    section = text.split("## Warnings", 1)[1].split("##", 1)[0]
    assert section.strip() == "none"


class _TagCounter(HTMLParser):
    TRACKED = ("html", "body", "section", "table", "thead", "tbody", "tr", "td", "th", "ul", "li")

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.srcs: list[str] = []
        self.hrefs: list[str] = []
        self.imgs: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if "src" in attributes:
            self.srcs.append(attributes["src"] or "")
        if "href" in attributes:
            self.hrefs.append(attributes["href"] or "")
        if tag == "img":
            self.imgs.append(attributes)
        if tag in self.TRACKED:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.TRACKED:
            if not self.stack or self.stack[-1] != tag:
                self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            else:
                self.stack.pop()


def _parse(text: str) -> _TagCounter:
    parser = _TagCounter()
    parser.feed(text)
    parser.close()
    assert parser.errors == [] and parser.stack == []
    return parser


def test_html_is_self_contained(report: dict, folder: Path) -> None:
    text = report_html(report, folder)
    assert text.startswith("<!DOCTYPE html>")
    lowered = text.lower()
    for forbidden in ("http://", "https://", "<script", "<link", "@import", "url("):
        assert forbidden not in lowered, forbidden
    parsed = _parse(text)
    assert parsed.hrefs == []
    assert len(parsed.srcs) == 2
    assert all(s.startswith("data:image/png;base64,") for s in parsed.srcs)
    assert all(img.get("alt") for img in parsed.imgs)
    # every src= in the raw text is a data URI (nothing hides from the parser)
    assert all(v.startswith("data:image/png;base64,") for v in re.findall(r'src="([^"]*)"', text))
    payloads = [base64.b64decode(s.split(",", 1)[1], validate=True) for s in parsed.srcs]
    assert payloads[0] == (folder / "figures" / "metamer.png").read_bytes()
    assert payloads[1] == (folder / "figures" / "pgd curve.png").read_bytes()


def test_html_order_escaping_and_nulls(report: dict, folder: Path) -> None:
    text = report_html(report, folder)
    headline = text.index('id="headline"')
    warnings = text.index('id="warnings"')
    attack = text.index('class="attack"')
    assert text.index("<body>") < text.index('id="verdict"') < headline
    assert headline < warnings < attack < text.index('id="environment"') < text.index('id="timing"')
    for eps in EPSILONS:
        assert headline < text.index(f"pgd-linf robust accuracy @ ε={eps}<") < warnings
    assert "warnings present" in text
    assert "<b>" not in text
    assert "&lt;b&gt;exactly&lt;/b&gt;" in text
    assert "no oracle: &lt;b&gt;n/a&lt;/b&gt;" in text
    assert "runs/&lt;b&gt;mnist-ce.pt" in text
    assert "<td>invariance_success_rate</td>\n      <td>n/a</td>" in text


def test_html_missing_figure_is_a_config_error(report: dict, folder: Path) -> None:
    (folder / "figures" / "metamer.png").unlink()
    with pytest.raises(ConfigError, match="figures/metamer.png") as info:
        report_html(report, folder)
    assert "\n" not in str(info.value)


def test_html_rejects_a_figure_that_is_not_png(report: dict, folder: Path) -> None:
    (folder / "figures" / "metamer.png").write_text("not an image")
    with pytest.raises(ConfigError, match="not a PNG"):
        report_html(report, folder)


@pytest.fixture
def tables() -> dict[str, pd.DataFrame]:
    first = pd.DataFrame(
        {"mnist-ce": ["99.3%", "4.1%"], "mnist-<b>ib</b>": ["98.9%", None]},
        index=pd.Index(["clean accuracy", "nuisance error"], name="quantity"),
    )
    second = pd.DataFrame({"Δ": ["+0.0042", "-12.5%"]}, index=["pgd-linf @ 0.1", "cw-l2 median"])
    return {"Headline metrics": first, "Robustness | deltas": second}


def test_compare_markdown(tables: dict[str, pd.DataFrame]) -> None:
    notes = ["models differ in loss", "n/a: attack not run"]
    text = compare_markdown("Compare two models", tables, notes)
    assert text.startswith("# Compare two models")
    assert "## Headline metrics" in text and "## Robustness \\| deltas" in text
    for frame in tables.values():
        for label in frame.index:
            assert label in text
    for cell in ("99.3%", "4.1%", "98.9%", "+0.0042", "-12.5%"):
        assert cell in text  # values kept as given, not re-parsed as numbers
    assert re.search(r"\| nuisance error\s*\| 4\.1%\s*\| n/a", text)
    assert "- models differ in loss" in text and "- n/a: attack not run" in text


def test_compare_html(tables: dict[str, pd.DataFrame], folder: Path) -> None:
    text = compare_html("Compare <two>", tables, ["a note"], ["figures/metamer.png"], folder)
    parsed = _parse(text)
    assert "Headline metrics" in text and "Robustness | deltas" in text
    for cell in ("99.3%", "4.1%", "98.9%", "+0.0042", "-12.5%", "clean accuracy", "Δ"):
        assert f">{cell}<" in text
    assert "mnist-&lt;b&gt;ib&lt;/b&gt;" in text and "Compare &lt;two&gt;" in text
    assert "<li>a note</li>" in text
    assert len(parsed.srcs) == 1 and parsed.srcs[0].startswith("data:image/png;base64,")
    with pytest.raises(ConfigError, match="gone.png"):
        compare_html("x", tables, [], ["gone.png"], folder)


def test_headline_minimal_norm_and_boundary_rows(report: dict) -> None:
    base = {"kind": "sensitivity", "summary": "", "n": 100, "ci95_halfwidth": 0.098}
    report["attacks"]["cw-l2"] = {
        **base,
        "metrics": {"n": 100, "robust_accuracy": {"0.5": 0.4}, "median_distance": 1.234},
        "settings": {},
        "records": "cw-l2.csv",
        "figures": [],
    }
    report["attacks"]["boundary"] = {
        **base,
        "kind": "invariance",
        "metrics": {"n": 100, "metamer_plane_logit_accuracy_balanced": 0.61},
        "settings": {},
        "records": "boundary.csv",
        "figures": [],
    }
    rows = {check: tuple(rest[:3]) for check, *rest in headline_rows(report)}
    assert rows["cw-l2 robust accuracy @ ε=0.5"] == ("40.0%", "[30.3, 50.3]", "100")
    assert rows["cw-l2 median distance"] == ("1.234", "", "100")
    # grid agreement is not a share of the n test samples: no n, no interval
    assert rows["boundary D agrees with oracle, metamer plane"] == ("61.0%", "", "")
