"""Suite planning, sanity warnings and the report folder swap, without running attacks."""

from __future__ import annotations

import copy
import json

import pytest

from invaudit.attacks import ATTACKS
from invaudit.errors import ConfigError
from invaudit.reports.folder import check_out_folder, replace_folder
from invaudit.reports.gate import parse_check
from invaudit.reports.gate_plan import validate_plan
from invaudit.reports.intervals import rate_interval
from invaudit.reports.sanity import PRECISION, mode_warnings, report_warnings
from invaudit.reports.schema import SCHEMA, SCHEMA_VERSION, check_report
from invaudit.reports.suite import plan_suite, planned_metrics


def test_image_suites_drop_the_spheres_methods_and_plain_models_the_invariance_ones() -> None:
    spheres = plan_suite("quick", "spheres").methods
    mnist = plan_suite("quick", "mnist").methods
    assert {"misaligned", "boundary"} <= set(spheres)
    assert not {"misaligned", "boundary"} & set(mnist)
    assert {"metamer", "interpolate", "probe", "fgsm", "pgd-linf", "pgd-l2"} <= set(mnist)
    plain = plan_suite("quick", "mnist", invertible=False).methods
    assert all(not ATTACKS[m].needs_invertible for m in plain) and "pgd-linf" in plain


def test_n_caps_every_step_and_epsilons_replace_every_list() -> None:
    suite = plan_suite("full", "mnist", n=50, epsilons=[0.05])
    assert all(step.n == 50 for step in suite.steps)
    assert suite.accuracy_n == 50 and suite.invertibility_n == 50
    for step in suite.steps:
        if "epsilons" in ATTACKS[step.method].options:
            assert step.options["epsilons"] == [0.05]
    full = plan_suite("full", "mnist")
    assert {"deepfool-l2", "cw-l2"} <= set(full.methods)
    by_norm = plan_suite("full", "mnist", epsilons={"linf": [0.1, 0.3], "l2": [2.0]})
    chosen = {s.method: s.options.get("epsilons") for s in by_norm.steps}
    assert chosen["fgsm"] == chosen["pgd-linf"] == [0.1, 0.3]
    assert chosen["pgd-l2"] == chosen["cw-l2"] == chosen["deepfool-l2"] == [2.0]
    only_l2 = plan_suite("quick", "mnist", epsilons={"l2": [2.0]})
    assert "epsilons" not in {s.method: s.options for s in only_l2.steps}["pgd-linf"]
    assert len(full.steps) > len(plan_suite("quick", "mnist").steps)


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda: plan_suite("medium", "mnist"), "unknown suite"),
        (lambda: plan_suite("quick", "mnist", n=0), "at least 1"),
    ],
)
def test_bad_plans_raise_one_line(call, fragment) -> None:
    with pytest.raises(ConfigError, match=fragment):
        call()


def test_gate_checks_are_validated_against_the_declared_metrics() -> None:
    suite = plan_suite("quick", "mnist")
    available = planned_metrics(suite)
    assert "nuisance_accuracy" in available["probe"]
    assert "clean_accuracy" in available["model"] and "max_abs_error" in available["invertibility"]
    assert "sha256" not in available["model"]  # not a number: no check could compare it
    validate_plan([parse_check("probe.nuisance_accuracy > 0.5")], suite, invertible=True)
    with pytest.raises(ConfigError, match="nuisance_accuracy"):
        validate_plan([parse_check("probe.nuisance_acuracy > 0.5")], suite, invertible=True)
    with pytest.raises(ConfigError, match="boundary"):
        validate_plan([parse_check("boundary.grid > 1")], suite, invertible=True)
    plain = plan_suite("quick", "mnist", invertible=False)
    with pytest.raises(ConfigError, match="invertibility"):
        validate_plan([parse_check("invertibility.n < 1")], plain, invertible=False)
    with pytest.raises(ConfigError, match="pick an entry"):
        validate_plan([parse_check("pgd-linf.robust_accuracy < 0.5")], suite, invertible=True)
    with pytest.raises(ConfigError, match="not a map"):
        validate_plan([parse_check("probe.nuisance_error[0.1] < 0.5")], suite, invertible=True)


def clean_report() -> dict:
    """A report every sanity check passes."""
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created": "2026-11-28T00:00:00+00:00",
        "suite": {"name": "quick", "seed": 0, "methods": []},
        "model": {"clean_accuracy": 0.99, "clean_accuracy_n": 1000},
        "invertibility": {"n": 256, "max_abs_error": 1e-6, "mean_abs_error": 1e-8,
                          "tolerance": 1e-4, "passed": True},
        "oracle": {"exact": False, "clean_accuracy": 0.99, "clean_accuracy_n": 1000},
        "attacks": {
            "metamer": {"n": 1000, "metrics": {"logit_match_max_abs": 1e-5}},
            "probe": {"n": 1000, "metrics": {"logit_error": 0.01, "decision_test_error": 0.01}},
            "fgsm": {"n": 1000, "metrics": {"robust_accuracy": {"0.1": 0.5, "0.2": 0.2}}},
            "pgd-linf": {"n": 1000, "metrics": {"robust_accuracy": {"0.1": 0.3, "0.2": 0.05}}},
        },
        "warnings": [],
        "environment": {},
        "timing": {},
    }


def names(report: dict) -> list[str]:
    return [w["name"] for w in report_warnings(report)]


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda r: r["invertibility"].update(passed=False, max_abs_error=0.1), "inverse_unstable"),
        (lambda r: r["attacks"]["metamer"]["metrics"].update(logit_match_max_abs=0.5),
         "metamer_logits_moved"),
        (lambda r: r["model"].update(clean_accuracy=0.3), "model_inaccurate"),
        (lambda r: r["oracle"].update(clean_accuracy=0.9), "oracle_weak"),
        (lambda r: r.update(oracle=None), "no_oracle"),
        (lambda r: r["attacks"]["fgsm"].update(n=100), "few_samples"),
        (lambda r: r["attacks"]["probe"]["metrics"].update(logit_error=0.2), "probe_undertrained"),
        (lambda r: r["attacks"]["pgd-linf"]["metrics"]["robust_accuracy"].update({"0.1": 0.7}),
         "pgd_weaker_than_fgsm"),
        (lambda r: r["attacks"]["fgsm"]["metrics"]["robust_accuracy"].update({"0.2": 0.9}),
         "robust_accuracy_not_monotone"),
    ],
)
def test_each_sanity_flag_fires_on_its_fault_only(edit, expected) -> None:
    assert names(clean_report()) == []
    report = copy.deepcopy(clean_report())
    edit(report)
    assert names(report) == [expected]


def test_metamer_logits_moved_points_a_float32_audit_to_float64() -> None:
    report = copy.deepcopy(clean_report())
    report["attacks"]["metamer"]["metrics"].update(logit_match_max_abs=2.78)
    (only,) = report_warnings(report)
    assert "--dtype float64" not in only["message"]  # the dtype is not known
    report["environment"]["dtype"] = "float32"
    (only,) = report_warnings(report)
    assert only["message"].endswith(
        "rerun with --dtype float64 to tell float32 rounding from a broken inverse"
    )
    report["environment"]["dtype"] = "float64"
    (only,) = report_warnings(report)
    assert "--dtype float64" not in only["message"]


def test_few_samples_threshold_is_the_stated_precision() -> None:
    """few_samples reads each rate's own exact interval: a rate of 1/2 needs the n where
    its Clopper-Pearson interval narrows to ±PRECISION; a rate of 0 is precise far sooner."""
    def wide(n: int, p: float = 0.5) -> bool:
        interval = rate_interval(p, n)
        return interval["high"] - interval["low"] > 2 * PRECISION

    boundary = next(n for n in range(2, 5000, 2) if not wide(n))
    assert wide(boundary - 2) and 385 <= boundary <= 420  # CP: a little above the normal 385
    report = clean_report()
    report["attacks"]["fgsm"]["metrics"]["robust_accuracy"] = {"0.1": 0.5, "0.2": 0.5}
    report["attacks"]["fgsm"]["n"] = boundary
    assert names(report) == []
    report["attacks"]["fgsm"]["n"] = boundary - 2
    assert names(report) == ["few_samples"]
    message = report_warnings(report)[0]["message"]
    assert message.startswith("fgsm.robust_accuracy[0.1] = 50.0%, 95 % interval [")
    assert f"(n = {boundary - 2})" in message
    # 0 % at n = 256 is [0, 1.4]: precise, so no warning (the old worst case said ±6.1 %)
    for method in ("fgsm", "pgd-linf"):
        report["attacks"][method]["metrics"]["robust_accuracy"] = {"0.1": 0.0, "0.2": 0.0}
    report["attacks"]["fgsm"]["n"] = 256
    assert names(report) == []


def test_mode_flags() -> None:
    assert mode_warnings(False, True) == []
    flagged = [w["name"] for w in mode_warnings(True, False)]
    assert flagged == ["model_in_train_mode", "forward_not_deterministic"]


def test_check_report_names_what_is_wrong() -> None:
    assert check_report(clean_report_with_attack_keys())["schema_version"] == 1
    with pytest.raises(ConfigError, match="not an invaudit report"):
        check_report({"schema": "other"})
    bad = clean_report_with_attack_keys()
    bad["schema_version"] = 99
    with pytest.raises(ConfigError, match="version 99"):
        check_report(bad)
    bad = clean_report_with_attack_keys()
    del bad["timing"]
    with pytest.raises(ConfigError, match="timing"):
        check_report(bad)


def clean_report_with_attack_keys() -> dict:
    report = clean_report()
    for record in report["attacks"].values():
        record.update(kind="x", summary="x", ci95_halfwidth=0.03, settings={}, records="x.csv",
                      figures=[])
    return report


def test_folder_swap_replaces_an_earlier_report_and_refuses_other_folders(tmp_path) -> None:
    out = tmp_path / "audit"

    def fill(text):
        def write(folder):
            (folder / "report.json").write_text(json.dumps({"schema": SCHEMA, "v": text}))
        return write

    replace_folder(out, fill("one"))
    replace_folder(out, fill("two"))
    assert json.loads((out / "report.json").read_text())["v"] == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit"]  # no staging left over

    def broken(folder):
        (folder / "half.csv").write_text("a,b\n")
        raise RuntimeError("killed half-way")

    with pytest.raises(RuntimeError):
        replace_folder(out, broken)
    assert json.loads((out / "report.json").read_text())["v"] == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit"]

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not an invaudit report"):
        check_out_folder(mine)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a folder"):
        check_out_folder(tmp_path / "file")
    assert (mine / "notes.txt").read_text() == "keep me"
