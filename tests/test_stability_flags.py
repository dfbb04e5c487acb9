"""Issue 13: the inverse's local gain in reports, and the flags that void oracle rates.

A metamer is only evidence of excessive invariance if it is an input: the
sanity flags ``metamers_off_domain`` / ``interpolation_off_domain`` (decoded
points leave the data box) and ``inverse_exploding`` (F⁻¹'s gain at metamer
points) say when it is not, and every rendering marks the oracle rates next
to their values.  The gain itself is checked against the full autograd
Jacobian on a tiny model.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
import torch
from conftest import randomize

from invaudit.errors import ConfigError
from invaudit.models import build
from invaudit.models.stability import inverse_gain, stage_of
from invaudit.reports.compare import (
    AUDIT,
    comparison_notes,
    display_tables,
    long_table,
    voided_quantities,
)
from invaudit.reports.gate import evaluate, parse_check
from invaudit.reports.gate_plan import validate_plan
from invaudit.reports.render_html import compare_html, report_html
from invaudit.reports.render_md import (
    NOT_MEANINGFUL,
    compare_markdown,
    headline_rows,
    report_markdown,
    void_reasons,
)
from invaudit.reports.runner import GAIN_N
from invaudit.reports.sanity import (
    MAX_INVERSE_GAIN,
    MAX_MEAN_EXCURSION,
    MIN_NEAR_BOX_SHARE,
    report_warnings,
)
from invaudit.reports.schema import SCHEMA, SCHEMA_VERSION, check_report
from invaudit.reports.suite import plan_suite

FLAGS = ("metamers_off_domain", "interpolation_off_domain", "inverse_exploding")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: these batches are small, and torch.func's forward-mode
    products slowed about tenfold with two threads on cores other jobs kept busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _attack(kind: str, n: int, metrics: dict[str, Any]) -> dict[str, Any]:
    return {"kind": kind, "summary": "", "n": n, "ci95_halfwidth": 0.04, "metrics": metrics,
            "settings": {}, "records": "x.csv", "figures": []}  # fmt: skip


def tame_report() -> dict[str, Any]:
    """A report whose metamers and interpolations are images and whose inverse is tame."""
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created": "2026-11-28T00:00:00+00:00",
        "suite": {"name": "quick", "seed": 0, "methods": ["metamer", "interpolate"]},
        "model": {"path": "m.pt", "sha256": "ab" * 32, "arch": "firevnet-mnist", "loss": "ce",
                  "parameters": 10, "clean_accuracy": 0.99, "clean_accuracy_n": 1000},
        "invertibility": {
            "n": 256, "max_abs_error": 1e-6, "mean_abs_error": 1e-8, "tolerance": 1e-4,
            "passed": True,
            "metamer_gain": {"n": 64, "median": 1.3, "max": 1.8,
                             "largest_layer": "stage 2 ActNorm (layers.13.inner.layers.1)",
                             "largest_layer_median_gain": 1.1,
                             "stage_log10_gain": {"stage 1": 0.1, "stage 2": 0.2},
                             "largest_stage": "stage 2"},
            "data_gain": {"n": 64, "median": 1.2, "max": 1.5},
        },
        "oracle": {"name": "cnn", "exact": False, "clean_accuracy": 0.99,
                   "clean_accuracy_n": 1000, "description": "a CNN"},
        "attacks": {
            "metamer": _attack("invariance", 1000, {
                "n": 1000, "logit_match_max_abs": 1e-5, "prediction_preserved": 1.0,
                "invariance_success_rate": 0.877, "oracle_agrees_nuisance_source": 0.102,
                "bounds_excursion_mean": 0.01, "near_box_share": 0.95,
            }),
            "interpolate": _attack("invariance", 1000, {
                "n": 1000, "decision_preserved_rate": 1.0, "oracle_flip_rate": 0.948,
                "bounds_excursion_mean": 0.0, "near_box_share": 1.0,
            }),
        },
        "warnings": [],
        "environment": {},
        "timing": {},
    }  # fmt: skip


def flags(report: dict[str, Any]) -> list[str]:
    return [w["name"] for w in report_warnings(report) if w["name"] in FLAGS]


def metamer(report: dict[str, Any]) -> dict[str, Any]:
    return report["attacks"]["metamer"]["metrics"]


def interpolate(report: dict[str, Any]) -> dict[str, Any]:
    return report["attacks"]["interpolate"]["metrics"]


# -- 1. the flags --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda r: metamer(r).update(bounds_excursion_mean=15.0), "metamers_off_domain"),
        (lambda r: metamer(r).update(near_box_share=0.03), "metamers_off_domain"),
        (lambda r: interpolate(r).update(bounds_excursion_mean=0.26), "interpolation_off_domain"),
        (lambda r: interpolate(r).update(near_box_share=0.5), "interpolation_off_domain"),
        (lambda r: r["invertibility"]["metamer_gain"].update(max=49.0), "inverse_exploding"),
    ],
)
def test_each_flag_fires_on_its_fault_only(edit, expected) -> None:
    report = tame_report()
    assert report_warnings(report) == []
    edit(report)
    assert [w["name"] for w in report_warnings(report)] == [expected]


def test_the_thresholds_are_the_issues_bars() -> None:
    assert (MAX_MEAN_EXCURSION, MIN_NEAR_BOX_SHARE, MAX_INVERSE_GAIN) == (0.02, 0.90, 10.0)
    report = tame_report()
    metamer(report).update(bounds_excursion_mean=MAX_MEAN_EXCURSION, near_box_share=0.9)
    interpolate(report).update(bounds_excursion_mean=MAX_MEAN_EXCURSION, near_box_share=0.9)
    report["invertibility"]["metamer_gain"]["max"] = MAX_INVERSE_GAIN
    assert flags(report) == []  # at the bar is still within it
    metamer(report).update(bounds_excursion_mean=0.0201)
    interpolate(report).update(near_box_share=0.899)
    report["invertibility"]["metamer_gain"]["max"] = 10.01
    assert sorted(flags(report)) == sorted(FLAGS)


def test_the_messages_name_the_numbers_and_the_layer() -> None:
    report = tame_report()
    metamer(report).update(bounds_excursion_mean=15.2, near_box_share=0.031)
    report["invertibility"]["metamer_gain"].update(max=49.0, median=29.8)
    messages = {w["name"]: w for w in report_warnings(report)}
    off = messages["metamers_off_domain"]
    assert off["method"] == "metamer"
    assert "15.2" in off["message"] and "3.1%" in off["message"]
    assert "not meaningful" in off["message"]
    exploding = messages["inverse_exploding"]["message"]
    assert "49" in exploding and "29.8" in exploding and "stage 2" in exploding


BOX = ["metamers_off_domain", "interpolation_off_domain"]


@pytest.mark.parametrize(
    "edit, remaining",
    [
        (lambda r: [m.pop(k) for m in (metamer(r), interpolate(r))
                    for k in ("bounds_excursion_mean", "near_box_share")], ["inverse_exploding"]),
        (lambda r: [m.update(bounds_excursion_mean=None, near_box_share=None)
                    for m in (metamer(r), interpolate(r))], ["inverse_exploding"]),
        (lambda r: r["attacks"].clear(), ["inverse_exploding"]),
        (lambda r: r["invertibility"].pop("metamer_gain"), BOX),
        (lambda r: r["invertibility"].update(metamer_gain=None), BOX),
        (lambda r: r["invertibility"]["metamer_gain"].update(max=None), BOX),
        (lambda r: r.update(invertibility=None), BOX),
    ],
)  # fmt: skip
def test_missing_metrics_raise_no_flag(edit, remaining) -> None:
    """Reports written before issue 13 lack these keys: no flag for them, and no crash."""
    report = tame_report()
    metamer(report).update(bounds_excursion_mean=15.0, near_box_share=0.0)
    interpolate(report).update(bounds_excursion_mean=15.0, near_box_share=0.0)
    report["invertibility"]["metamer_gain"]["max"] = 49.0
    assert sorted(flags(report)) == sorted(FLAGS)
    edit(report)
    assert sorted(flags(report)) == sorted(remaining)
    report["warnings"] = report_warnings(report)
    report_markdown(report)  # and the report still renders


def test_an_exact_oracle_keeps_its_rates() -> None:
    report = tame_report()
    report["oracle"] = {"name": "spheres radius", "exact": True}
    metamer(report).update(bounds_excursion_mean=15.0)
    report["warnings"] = report_warnings(report)
    assert flags(report) == ["metamers_off_domain"]
    assert "exact oracle still judges" in report["warnings"][0]["message"]
    assert void_reasons(report) == {}
    assert NOT_MEANINGFUL not in report_markdown(report)


# -- 2. rendering ----------------------------------------------------------------------------


def flagged_report() -> dict[str, Any]:
    report = tame_report()
    metamer(report).update(bounds_excursion_mean=15.2, near_box_share=0.031)
    report["invertibility"]["metamer_gain"].update(
        median=29.8, max=49.0, largest_stage="stage 1",
        largest_layer="stage 1 AdditiveCoupling (layers.9)",
    )  # fmt: skip
    report["warnings"] = report_warnings(report)
    return report


def test_markdown_marks_the_oracle_rates_in_the_headline() -> None:
    report = flagged_report()
    assert check_report(report)
    rows = {row[0]: row for row in headline_rows(report)}
    success = rows["metamer invariance success"]
    assert success[1].startswith("87.7% ⚠ not meaningful: metamers leave the data box")
    assert "F⁻¹ explodes at metamers (gain up to 49)" in success[1]
    assert success[2:4] == ("[85.5, 89.7]", "1000")  # the interval and n stay
    assert NOT_MEANINGFUL in rows["metamer oracle agrees with nuisance source"][1]
    assert rows["metamer prediction preserved"][1] == "100.0%"  # not an oracle rate
    # only inverse_exploding voids interpolation here; its box check passed
    assert rows["interpolate oracle flips"][1] == (
        "94.8% ⚠ not meaningful: F⁻¹ explodes at metamers (gain up to 49)"
    )
    assert rows["interpolate decision preserved"][1] == "100.0%"
    gain = rows["inverse gain at metamers"]
    assert gain[1].startswith("median 29.8, max 49; largest: stage 1")
    assert gain[1].endswith("⚠ exploding") and gain[3] == "64"
    assert rows["inverse gain at test inputs"][1] == "median 1.2, max 1.5"

    text = report_markdown(report)
    headline = text.split("## Warnings")[0]
    assert re.search(r"\| metamer invariance success\s+\| ~~87\.7%~~ ⚠ not meaningful: "
                     r"metamers leave the data box", headline)  # fmt: skip
    assert "~~10.2%~~ ⚠ not meaningful" in headline
    assert "~~94.8%~~ ⚠ not meaningful" in headline
    assert "~~100.0%~~" not in headline
    warnings = text.split("## Warnings")[1].split("## Attack")[0]
    assert "**metamers_off_domain** (metamer)" in warnings and "**inverse_exploding**" in warnings


def test_html_strikes_the_oracle_rates_in_the_headline(tmp_path) -> None:
    text = report_html(flagged_report(), tmp_path)
    headline = text[text.index('id="headline"') : text.index('id="warnings"')]
    assert '<del>87.7%</del> <strong class="flag">⚠ not meaningful: metamers leave the data' in (
        headline
    )
    assert "<del>94.8%</del>" in headline and "<del>100.0%</del>" not in headline
    assert "median 29.8, max 49; largest: stage 1" in headline


def test_a_tame_report_renders_as_before() -> None:
    report = tame_report()
    text = report_markdown(report)
    assert NOT_MEANINGFUL not in text and "~~" not in text
    rows = {row[0]: row[1] for row in headline_rows(report)}
    assert rows["metamer invariance success"] == "87.7%"
    old = copy.deepcopy(report)
    del old["invertibility"]["metamer_gain"], old["invertibility"]["data_gain"]
    assert not any(r[0].startswith("inverse gain") for r in headline_rows(old))


def test_compare_marks_only_the_flagged_models_oracle_rates(tmp_path) -> None:
    reports = {"ce": flagged_report(), "ice": tame_report()}
    voided = voided_quantities(reports)
    assert voided == {"ce": {
        "metamer.invariance_success_rate", "metamer.oracle_agrees_nuisance_source",
        "metamer.oracle_agrees_logit_source", "metamer.oracle_names_a_source",
        "interpolate.oracle_flip_rate", "interpolate.endpoint_oracle_agrees_nuisance_source",
        "interpolate.endpoint_oracle_agrees_logit_source",
    }}  # fmt: skip
    tables = display_tables(long_table(reports), voided)
    audit = tables[AUDIT]
    success, flips = "metamer invariance success", "interpolate oracle flips"
    assert audit.loc[success, "ce"] == "87.7% [85.5, 89.7] ⚠ not meaningful"
    assert audit.loc[flips, "ce"] == "94.8% [93.2, 96.1] ⚠ not meaningful"
    assert audit.loc[success, "ice"] == "87.7% [85.5, 89.7]"
    assert audit.loc["clean accuracy", "ce"] == "99.0% [98.2, 99.5]"
    assert display_tables(long_table(reports))[AUDIT].equals(
        audit.map(lambda c: c.replace(f" {NOT_MEANINGFUL}", ""))
    )
    notes = comparison_notes(reports)
    marked = "ce: the metamer oracle rates are marked not meaningful"
    assert any(n.startswith(marked) for n in notes)
    assert not any(n.startswith("ice: the") for n in notes)
    md = compare_markdown("c", tables, notes)
    assert "~~87.7% [85.5, 89.7]~~ ⚠ not meaningful" in md
    assert "~~94.8% [93.2, 96.1]~~ ⚠ not meaningful" in md
    html = compare_html("c", tables, notes, [], tmp_path)
    assert '<del>87.7% [85.5, 89.7]</del> <strong class="flag">⚠ not meaningful</strong>' in html


# -- 3. the gain itself ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build("firevnet-mnist", image_size=8, num_classes=4, blocks=1, hidden=8)
    model = model.double()
    randomize(model, torch.rand(32, 1, 8, 8, dtype=torch.float64), scale=0.05)
    return model.eval()


def _top_singular_value(fn, z: torch.Tensor) -> float:
    jac = torch.autograd.functional.jacobian(lambda t: fn(t.unsqueeze(0)).flatten(), z)
    return float(torch.linalg.svdvals(jac.reshape(jac.shape[0], -1))[0])


def test_inverse_gain_is_the_largest_singular_value_of_the_jacobian(tiny) -> None:
    x = torch.rand(3, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        z = tiny(x)
    z_s, z_n = tiny.split(z)
    points = torch.cat([z, tiny.merge(z_s, z_n.roll(1, 0))])  # data and metamer points
    report = inverse_gain(tiny, points, per_layer=False, iterations=60)
    for k in range(len(points)):
        exact = _top_singular_value(tiny.flow.inverse, points[k])
        assert float(report.gains[k]) == pytest.approx(exact, rel=1e-3), k


def test_per_layer_gains_name_their_stage_and_bound_the_whole(tiny) -> None:
    x = torch.rand(4, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        z = tiny(x)
    report = inverse_gain(tiny, z, iterations=60)
    assert report.layer_gains and set(report.layer_gains) == set(report.layer_names)
    stages = set()
    for path, name in report.layer_names.items():
        stage = stage_of(path) + 1
        stages.add(f"stage {stage}")
        assert name.startswith(f"stage {stage} ") and name.endswith(f"({path})")
        assert (stage > 1) == (".inner." in path)
    summary = report.summary()
    assert len(stages) >= 2 and set(summary["stage_log10_gain"]) == stages
    assert summary["largest_stage"] in stages
    assert summary["largest_layer"] in report.layer_names.values()
    # The whole inverse is the composition of its layers: its gain is at most their product.
    product = torch.stack(list(report.layer_gains.values())).prod(0)
    assert (report.gains <= product * (1 + 1e-6)).all()


# -- 4. the real zoo models ----------------------------------------------------------------------


def _tiny_audit(selector: str) -> dict[str, Any]:
    """The report of a two-attack suite on 64 test images (metamer, a 3-step interpolation)."""
    from invaudit.attacks.setup import prepare_audit, read_model
    from invaudit.reports.runner import run_suite
    from invaudit.reports.suite import Step, Suite

    setup = prepare_audit(read_model(selector))
    suite = Suite(
        name="quick",
        steps=(Step("metamer", {"examples": 2}, 64), Step("interpolate", {"steps": 3}, 32)),
        accuracy_n=64,
        invertibility_n=64,
    )
    return run_suite(setup, suite, seed=0).report


STABILITY_FLAGS = {"inverse_exploding", "metamers_off_domain", "interpolation_off_domain"}


@pytest.mark.parametrize("name", ["mnist-ce-v1", "mnist-ce", "mnist-ice"])
def test_the_flags_on_the_zoo_models(name) -> None:
    """Issue 13: the flags fire on the first zoo CE model and on neither stable one."""
    report = _tiny_audit(f"zoo:{name}")
    names = {w["name"] for w in report["warnings"]}
    gain = report["invertibility"]["metamer_gain"]
    assert gain["n"] == GAIN_N == report["invertibility"]["data_gain"]["n"]
    text = report_markdown(report)
    if name == "mnist-ce-v1":  # legacy blocks: metamers are amplified noise far off the box
        assert gain["max"] > MAX_INVERSE_GAIN
        assert STABILITY_FLAGS <= names
        assert re.search(r"metamer invariance success\s*\| ~~[\d.]+%~~ ⚠ not meaningful", text)
    else:  # stable blocks + likelihood term: images inside the box, a tame inverse
        assert gain["max"] < MAX_INVERSE_GAIN
        assert not STABILITY_FLAGS & names, names
        assert "not meaningful" not in text
    assert report["timing"]["metamer_gain_seconds"] > 0


# -- 5. schema and gate ---------------------------------------------------------------------------


def test_a_gate_reads_the_gain_and_the_schema_checks_its_shape() -> None:
    suite = plan_suite("quick", "mnist")
    check = parse_check("invertibility.metamer_gain[max] > 10")
    validate_plan([check], suite, invertible=True)
    for bad, fragment in [
        ("invertibility.metamer_gain > 10", "pick an entry, e.g. invertibility.metamer_gain[max]"),
        ("invertibility.data_gain[largest_layer] > 1", "pick one of n, median, max"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(fragment)):
            validate_plan([parse_check(bad)], suite, invertible=True)
    with pytest.raises(ConfigError, match="invertibility"):
        validate_plan([check], plan_suite("quick", "mnist", invertible=False), invertible=False)
    [tame] = evaluate([check], tame_report())
    [flagged] = evaluate([check], flagged_report())
    assert (tame.failed, flagged.failed) == (False, True)

    report = tame_report()
    report["invertibility"]["metamer_gain"] = 3.0
    with pytest.raises(ConfigError, match="invertibility.metamer_gain is neither"):
        check_report(report)
    report["invertibility"] = None
    assert check_report(report)


def test_check_prints_the_gain_at_metamers_of_its_batch() -> None:
    from click.testing import CliRunner

    from invaudit.cli import main

    args = ["check", "--arch", "firevnet-mnist", "--set", "image_size=8", "--set", "blocks=1",
            "--set", "hidden=8", "--set", "num_classes=4", "--batch-size", "6"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    gain = next(line for line in result.stdout.splitlines() if "gain of F^-1 at metamers" in line)
    assert re.search(r"median [\d.e+-]+, max [\d.e+-]+\s+over 6 pairs \((ok|exploding)", gain)
    assert re.search(r"largest in stage \d; layer stage \d \w+ \(", result.stdout)
