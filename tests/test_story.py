"""The story ``compare`` opens with: Fisher exact tests of each model against the first.

The reports here are small synthetic ``report.json`` dicts with the structure of a
real quick-suite MNIST report (probe, metamer, interpolate, one ε-attack), so every
rate and count is chosen by the test.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from scipy.stats import fisher_exact

from invaudit.reports.report_files import write_comparison
from invaudit.reports.runner import SuiteRun
from invaudit.reports.schema import SCHEMA, SCHEMA_VERSION
from invaudit.reports.story import ALPHA, STORY_LEAD, comparison_story, fmt_p

NO_DIFFERENCE = "no measurable difference"
NO_EFFECT = "the comparison does not show the paper's iCE effect"
EFFECT = ": the paper's effect."


def _attack(kind: str, n: int, metrics: dict[str, Any], **settings: Any) -> dict[str, Any]:
    return {"kind": kind, "summary": "", "n": n, "metrics": {"n": n, **metrics},
            "settings": settings, "records": f"{kind}.csv", "figures": []}  # fmt: skip


def report(
    loss: str = "ce",
    *,
    probe: float | None = 0.969,
    nuisance: float | None = 0.857,
    logit: float | None = 0.021,
    endpoint: float | None = 0.032,
    clean: float = 0.958,
    robust: float = 0.0,
) -> dict[str, Any]:
    """A quick-suite report with the rates the story reads set by the caller."""
    attacks = {
        "metamer": _attack("invariance", 512, {
            "oracle_agrees_nuisance_source": nuisance, "oracle_agrees_logit_source": logit,
            "invariance_success_rate": None if logit is None else 1 - logit,
            "bounds_excursion_mean": 0.008, "near_box_share": 1.0,
        }),
        "interpolate": _attack("invariance", 400, {
            "oracle_flip_rate": None if endpoint is None else 1 - endpoint,
            "endpoint_oracle_agrees_logit_source": endpoint,
            "bounds_excursion_mean": 0.008, "near_box_share": 1.0,
        }),
        "probe": _attack("invariance", 2000, {"n_train": 10000, "nuisance_accuracy": probe}),
        "fgsm": _attack("sensitivity", 512, {
            "clean_accuracy": clean, "robust_accuracy": {"0.1": 0.5, "0.3": robust},
        }, norm="linf"),
    }  # fmt: skip
    if probe is None:
        del attacks["probe"]
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created": "2026-11-28T00:00:00+00:00",
        "suite": {"name": "quick", "seed": 0, "methods": list(attacks)},
        "model": {
            "path": f"{loss}.pt",
            "sha256": "ab" * 32,
            "arch": "firevnet-mnist",
            "loss": loss,
            "parameters": 10,
            "num_classes": 10,
            "invertible": True,
            "clean_accuracy": clean,
            "clean_accuracy_n": 1000,
        },
        "oracle": None if logit is None else {"name": "cnn", "exact": False, "description": "x"},
        "attacks": attacks,
        "warnings": [],
        "environment": {},
        "timing": {},
    }


def clause(story: str, start: str) -> str:
    """The clause of ``story`` that begins with ``start``, up to its closing parenthesis."""
    match = re.search(re.escape(start) + r"[^;]*?\)", story)
    assert match, f"{start!r} not in {story!r}"
    return match.group(0)


def test_identical_models_show_no_difference_and_no_effect() -> None:
    story = comparison_story({"ce": report(), "ice": report("ice")})
    assert story is not None and story.startswith(f"{STORY_LEAD} ")
    assert f"α = {ALPHA:g}" in story and story.count("Fisher") == 1
    for start in (
        "the fresh probe reads the class from z_n on 96.9% of ice's test inputs against 96.9% "
        "of ce's",
        "the oracle names the nuisance source's class",
        "the oracle names the logit source's class",
        "at the end of an interpolation of z_n",
        "clean accuracy is 95.8% against 95.8%",
        "robust accuracy under fgsm at ε = 0.3 is 0.0% against 0.0%",
    ):
        assert clause(story, start).endswith(f"({NO_DIFFERENCE}, p = 1)")
    assert "ice did not move the class out of z_n, and its metamers are judged like ce's" in story
    assert NO_EFFECT in story and EFFECT not in story
    assert "do not differ measurably, as the paper expects" in story


def test_a_model_that_moves_the_class_out_of_z_n_shows_the_papers_effect() -> None:
    ice = report("ice", probe=0.30, logit=0.60, endpoint=0.55)
    story = comparison_story({"ce": report(), "ice": ice})
    assert story is not None
    assert clause(story, "the fresh probe").endswith("(lower, p < 0.001)")
    assert clause(story, "the oracle names the logit").endswith("(higher, p < 0.001)")
    assert clause(story, "at the end of an interpolation").endswith("(higher, p < 0.001)")
    assert "ice moved the class out of z_n, and its metamers keep the logit source's class " \
        "more often: the paper's effect." in story  # fmt: skip
    assert NO_EFFECT not in story


def test_mixed_outcomes_say_half_the_effect_and_a_robustness_change() -> None:
    ice = report("ice", probe=0.30, robust=0.40)
    story = comparison_story({"ce": report(), "ice": ice})
    assert story is not None
    assert "its metamers are judged like ce's: only half of the paper's iCE effect." in story
    assert clause(story, "robust accuracy under fgsm").endswith("(higher, p < 0.001)")
    assert "differs measurably, which the paper does not expect" in story


def cnn_report(*, robust: float, invariance: float, feature: float) -> dict[str, Any]:
    """A plain CNN's report: no probe, metamer or interpolation; the invariance attacks
    that need no inverse, and PGD."""
    plain = report(probe=None)
    for method in ("metamer", "interpolate"):
        del plain["attacks"][method]
    plain["model"].update(arch="cnn", invertible=False)
    plain["attacks"]["fgsm"]["metrics"]["robust_accuracy"]["0.3"] = robust
    plain["attacks"]["invariance-eps"] = _attack("invariance", 400, {
        "invariance_rate": {"0.1": 0.0, "0.4": invariance}, "clean_accuracy": 0.99,
    }, norm="linf")  # fmt: skip
    plain["attacks"]["feature-match"] = _attack("invariance", 400, {
        "invariance_success_rate": feature})  # fmt: skip
    return plain


def test_a_more_robust_and_more_invariant_cnn_is_the_trade_off() -> None:
    story = comparison_story({
        "cnn": cnn_report(robust=0.0, invariance=0.10, feature=0.50),
        "robust": cnn_report(robust=0.85, invariance=0.45, feature=0.80),
    })  # fmt: skip
    assert story is not None
    assert clause(story, "robust accuracy under fgsm at ε = 0.3 is 85.0% against 0.0%").endswith(
        "(higher, p < 0.001)"
    )
    assert clause(story, "moved within L∞ ε = 0.4 towards the nearest training image").endswith(
        "(higher, p < 0.001)"
    )
    assert "on 80.0% of robust's pairs against 50.0% of cnn's (higher" in story
    assert "robust is more robust to ε-perturbations than cnn and more excessively invariant: " \
        "the invariance–sensitivity trade-off" in story  # fmt: skip
    # Neither model is invertible: the iCE question is not asked of them.
    assert "z_n" not in story and "paper expects" not in story


def test_robustness_without_more_invariance_is_said_to_be_free() -> None:
    story = comparison_story({
        "cnn": cnn_report(robust=0.0, invariance=0.10, feature=0.50),
        "robust": cnn_report(robust=0.85, invariance=0.10, feature=0.50),
    })  # fmt: skip
    assert story is not None
    assert "not measurably more or less excessively invariant: its robustness did not cost" in story


def test_a_firevnet_against_a_cnn_compares_only_what_both_ran() -> None:
    firevnet = report()
    firevnet["attacks"]["invariance-eps"] = cnn_report(
        robust=0.0, invariance=0.10, feature=0.5)["attacks"]["invariance-eps"]  # fmt: skip
    story = comparison_story({"firevnet": firevnet, "cnn": cnn_report(
        robust=0.0, invariance=0.10, feature=0.5)})  # fmt: skip
    assert story is not None
    assert "z_n" not in story and "feature-match" not in story and "matching another" not in story
    assert "moved within L∞ ε = 0.4" in story


def test_the_printed_p_value_is_scipys_fisher_exact() -> None:
    base, ice = report(probe=0.9), report("ice", probe=0.88)
    story = comparison_story({"ce": base, "ice": ice})
    assert story is not None
    printed = re.search(r"p = ([0-9.]+)\)", clause(story, "the fresh probe")).group(1)
    n = 2000
    k_ice, k_ce = round(0.88 * n), round(0.9 * n)
    p = fisher_exact([[k_ice, n - k_ice], [k_ce, n - k_ce]]).pvalue
    assert 0.001 < p < 1  # a p-value printed as a number, not a bound
    decimals = len(printed.partition(".")[2])
    assert float(printed) == pytest.approx(p, abs=0.5 * 10**-decimals + 1e-12)
    outcome = NO_DIFFERENCE if p >= ALPHA else "lower"
    assert clause(story, "the fresh probe").endswith(f"({outcome}, p = {printed})")


def test_the_p_value_is_never_rounded_across_alpha() -> None:
    assert fmt_p(0.7123) == "p = 0.71"
    assert fmt_p(0.04996) == "p = 0.04996"  # "0.05" would contradict "lower"
    assert fmt_p(0.0004) == "p < 0.001"


def test_missing_probe_and_null_oracle_rates_skip_their_clauses() -> None:
    no_probe = comparison_story({"ce": report(), "ice": report("ice", probe=None)})
    assert no_probe is not None and "fresh probe" not in no_probe
    assert "whether ice moved the class out of z_n was not measured (no probe)" in no_probe
    no_oracle = report("ice", nuisance=None, logit=None, endpoint=None)
    story = comparison_story({"ce": report(), "ice": no_oracle})
    assert story is not None and "oracle names" not in story and "interpolation" not in story
    assert clause(story, "the fresh probe").endswith(f"({NO_DIFFERENCE}, p = 1)")
    assert "its metamers were not judged (no oracle)" in story
    bare = {k: v for k, v in report().items() if k != "attacks"} | {"attacks": {}}
    bare_story = comparison_story({"ce": bare, "ice": bare})
    assert bare_story is not None and "clean accuracy" in bare_story
    assert "robust accuracy under" not in bare_story and "paper's" not in bare_story.split(").")[-1]


def test_voided_oracle_rates_are_left_out() -> None:
    flagged = report("ice", logit=0.6)
    flagged["warnings"] = [{"name": "metamers_off_domain", "method": "metamer", "message": "x"}]
    story = comparison_story({"ce": report(), "ice": flagged})
    assert story is not None and "metamers against" not in story
    assert "at the end of an interpolation" in story


def test_no_story_for_one_model_or_nothing_comparable() -> None:
    assert comparison_story({"ce": report()}) is None
    empty = {"model": {}, "attacks": {}}
    assert comparison_story({"a": empty, "b": copy.deepcopy(empty)}) is None


def test_compare_md_html_and_json_open_with_the_story(tmp_path: Path) -> None:
    runs = {"ce": SuiteRun(report()), "ice": SuiteRun(report("ice", probe=0.3, logit=0.6))}
    out = tmp_path / "cmp"
    write_comparison(runs, out)
    lines = (out / "compare.md").read_text().splitlines()
    assert lines[0] == "# invaudit compare: ce vs ice"
    assert lines[2].startswith(f"{STORY_LEAD} Each model is set against the first, ce,")
    assert lines[4].startswith("**Verdict, ce.**")
    story = comparison_story({label: run.report for label, run in runs.items()})
    assert lines[2] == story.replace("<", "\\<")  # Markdown escapes '<' (p < 0.001)
    record = json.loads((out / "compare.json").read_text())
    assert record["story"] == story
    html = (out / "compare.html").read_text()
    assert html.index('id="story"') < html.index('id="verdict"') < html.index('id="table-0"')
    assert "<h2>Story</h2>" in html and "**" not in html


def test_cnns_get_no_empty_table_2_but_their_invariance_rows() -> None:
    from invaudit.reports.compare import AUDIT, TABLE2, display_tables, long_table

    reports = {"cnn": cnn_report(robust=0.0, invariance=0.1, feature=0.5),
               "robust": cnn_report(robust=0.85, invariance=0.45, feature=0.8)}  # fmt: skip
    tables = display_tables(long_table(reports))
    assert TABLE2 not in tables
    rows = list(tables[AUDIT].index)
    assert "invariance-eps invariance rate @ ε=0.4" in rows
    assert "feature-match invariance success" in rows
    assert TABLE2 in display_tables(long_table({"ce": report(), "ice": report("ice")}))
