"""`invaudit report`, `compare` and `gate` end to end on small spheres checkpoints.

Every audit here is the real quick suite, capped at ``--n`` examples, on a
checkpoint trained for one epoch on 2000 points; the reports the tests read
are written once per module (``reports`` and ``comparison``).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner, Result

import invaudit.reports.report_files as report_files
import invaudit.reports.runner as runner
from invaudit.attacks import ATTACKS
from invaudit.cli import main
from invaudit.reports.schema import check_report
from invaudit.reports.suite import INVERTIBILITY_FIELDS, MODEL_FIELDS

N = 40
PNG = b"\x89PNG\r\n\x1a\n"
SPHERES = [
    "train", "--dataset", "spheres", "--dim", "6", "--n-train", "2000", "--n-test", "400",
    "--device", "cpu", "--set", "hidden=32", "--batch-size", "32", "--lr", "3e-3",
    "--epochs", "1", "--no-progress",
]  # fmt: skip
# Checks with a known outcome whatever the model: two hold (fail), two do not.
FAILING = ["model.clean_accuracy <= 1", "invertibility.max_abs_error >= 0"]
PASSING = ["model.clean_accuracy < 0", "pgd-linf.robust_accuracy[0.1] > 1"]
POLICY = """\
fail_if = ["probe.nuisance_accuracy > 1.5"]

[[check]]
name = "model has parameters"
path = "model.parameters"
op = "<"
value = 1

[[check]]
name = "reconstruction within 1e-3"
path = "invertibility.max_abs_error"
op = ">"
value = 1e-3
"""


def invoke(*args: Any) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def report(model: Path, out: Path, *args: Any) -> Result:
    return invoke("report", "--model", model, "--out", out, "--n", N, "--no-progress", *args)


def train(out: Path, *extra: str) -> Path:
    result = invoke(*SPHERES, *extra, "--out", out)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return train(tmp_path_factory.mktemp("ckpt") / "ce.pt")


@dataclass
class Reports:
    """The module's report runs: the folders, what each command returned, and r1's run."""

    root: Path
    first: Result  # r1: seed 0, two failing and two passing checks, --junit
    other: Result  # r3: seed 1, a --policy whose checks all pass
    run: runner.SuiteRun  # the SuiteRun behind ``first``, to rewrite cheaply

    def json(self, name: str) -> dict[str, Any]:
        return json.loads((self.root / name / "report.json").read_text())


@pytest.fixture(scope="module")
def reports(ckpt, tmp_path_factory) -> Reports:
    root = tmp_path_factory.mktemp("reports")
    captured: list[runner.SuiteRun] = []
    real_run_suite = runner.run_suite

    def capture(*args: Any, **kwargs: Any) -> runner.SuiteRun:
        captured.append(real_run_suite(*args, **kwargs))
        return captured[-1]

    checks = [a for c in [*PASSING, *FAILING] for a in ("--fail-if", c)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner, "run_suite", capture)
        first = report(ckpt, root / "r1", "--seed", "0", *checks, "--junit", root / "r1.xml")
    assert len(captured) == 1
    (root / "policy.toml").write_text(POLICY)
    other = report(ckpt, root / "r3", "--seed", "1", "--policy", root / "policy.toml")
    return Reports(root, first, other, captured[0])


# -- 1. the files of one report --------------------------------------------------------


def test_report_json_is_complete_and_names_files_that_exist(reports, ckpt) -> None:
    assert reports.first.exit_code == 1, reports.first.output  # the gate failed, not the run
    folder = reports.root / "r1"
    record = check_report(reports.json("r1"))
    assert record["schema_version"] == 1
    model = record["model"]
    assert len(model["sha256"]) == 64 and int(model["sha256"], 16) >= 0
    assert model["path"] == str(ckpt) and model["arch"] == "firevnet-fc"
    assert isinstance(model["parameters"], int) and model["parameters"] > 0
    assert 0.0 <= model["clean_accuracy"] <= 1.0 and model["clean_accuracy_n"] == N
    interval = model["clean_accuracy_interval"]
    assert interval["low"] <= model["clean_accuracy"] <= interval["high"] and interval["n"] == N
    # What the gate accepts before the run is exactly the numeric fields written.
    numeric = {
        k for k, v in model.items() if isinstance(v, int | float) and not isinstance(v, bool)
    }
    assert numeric == set(MODEL_FIELDS)
    inv = record["invertibility"]
    assert set(INVERTIBILITY_FIELDS) == {k for k, v in inv.items() if not isinstance(v, bool)}
    assert inv["passed"] is True and 0 <= inv["max_abs_error"] < 1e-8  # float64 spheres
    assert inv["n"] == N

    attacks = record["attacks"]
    assert list(attacks) == record["suite"]["methods"]
    assert {"metamer", "probe", "boundary", "fgsm", "pgd-linf", "pgd-l2"} <= set(attacks)
    listed = 0
    for method, rec in attacks.items():
        assert rec["n"] == N == rec["metrics"]["n"], method
        assert set(rec["metrics"]) == set(ATTACKS[method].metrics), method
        assert "ci95_halfwidth" not in rec, method  # replaced by exact intervals
        # every declared rate that was measured has its interval, around the rate
        for metric, count in ATTACKS[method].rates.items():
            value, intervals = rec["metrics"][metric], rec["intervals"].get(metric)
            if value is None:
                assert intervals is None, (method, metric)
                continue
            pairs = value.items() if isinstance(value, dict) else [(None, value)]
            for key, rate in pairs:
                if rate is None:  # a map entry not measured (invariance-eps without PGD)
                    assert not intervals or intervals.get(key) is None, (method, metric, key)
                    continue
                entry = intervals[key] if key is not None else intervals
                assert entry["low"] <= rate <= entry["high"], (method, metric, key)
                assert entry["n"] == rec["metrics"][count], (method, metric)
        rows = pd.read_csv(folder / rec["records"])
        assert len(rows) >= 1, method
        for figure in rec["figures"]:
            assert (folder / figure).read_bytes()[:8] == PNG, figure
            listed += 1
    assert listed >= 6
    assert sorted(p.name for p in (folder / "figures").iterdir()) == sorted(
        Path(f).name for rec in attacks.values() for f in rec["figures"]
    )
    assert set(attacks["pgd-linf"]["metrics"]["robust_accuracy"]) == {"0.01", "0.05", "0.1"}

    env = record["environment"]
    assert env["torch"] and env["foolbox"] and env["seed"] == 0
    timing = record["timing"]
    assert set(timing["attacks"]) == set(attacks)
    assert all(isinstance(t, float) and t >= 0 for t in timing["attacks"].values())
    assert timing["total_seconds"] >= sum(timing["attacks"].values())


def test_report_md_puts_the_headline_first_and_html_stands_alone(reports) -> None:
    folder = reports.root / "r1"
    md = (folder / "report.md").read_text()
    headline, first_attack = md.index("## Headline"), md.index("## Attack")
    assert headline < md.index("clean accuracy") < first_attack
    assert headline < md.index("pgd-linf robust accuracy @ ε=0.1") < first_attack
    for method in reports.json("r1")["attacks"]:
        assert f"## Attack: {method}" in md
    html = (folder / "report.html").read_text()
    assert html.lstrip().lower().startswith("<!doctype html")
    figures = sum(len(a["figures"]) for a in reports.json("r1")["attacks"].values())
    assert html.count("data:image/png;base64,") == figures
    assert "invaudit report" in reports.first.stdout  # the headline went to the terminal
    assert "pgd-linf robust accuracy @ ε=0.1" in reports.first.stdout


# -- 2. gate exit codes ----------------------------------------------------------------


def test_a_failed_check_exits_1_lists_it_and_still_writes_the_report(reports) -> None:
    result = reports.first
    assert result.exit_code == 1
    value = reports.json("r1")["model"]["clean_accuracy"]
    assert f"FAIL model.clean_accuracy <= 1  (value {value:.6g})" in result.stdout
    assert "FAIL invertibility.max_abs_error >= 0" in result.stdout
    assert "ok   model.clean_accuracy < 0" in result.stdout
    assert "gate: 2 passed, 2 failed" in result.stderr
    assert (reports.root / "r1" / "report.json").is_file()


def test_policy_checks_that_hold_exit_0_and_show_their_names(reports) -> None:
    result = reports.other
    assert result.exit_code == 0, result.output
    params = reports.json("r3")["model"]["parameters"]
    assert f"ok   model has parameters: model.parameters < 1  (value {params})" in result.stdout
    assert "ok   reconstruction within 1e-3: invertibility.max_abs_error > 0.001" in result.stdout
    assert "ok   probe.nuisance_accuracy > 1.5" in result.stdout
    assert "gate: 3 passed, 0 failed" in result.stdout
    assert "FAIL" not in result.output


@pytest.fixture
def no_attack(monkeypatch) -> None:
    """Any run_suite call fails the test: bad input must stop the command before it."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("an attack ran despite bad input")

    monkeypatch.setattr(runner, "run_suite", refuse)


def one_line_error(result: Result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("invaudit: error: "), result.stderr
    return lines[0]


def test_per_norm_epsilons_replace_one_norm_and_exclude_epsilons(ckpt, tmp_path, no_attack):
    out = tmp_path / "out"
    both = report(ckpt, out, "--epsilons", "0.1", "--l2-epsilons", "1")
    assert "not both" in one_line_error(both)
    # --linf-epsilons leaves the L2 list at its default, so a check on an L2 ε it
    # replaced nowhere is refused before anything runs.
    check = "pgd-l2.robust_accuracy[0.77] < 0.5"
    line = one_line_error(report(ckpt, out, "--linf-epsilons", "0.77", "--fail-if", check))
    assert "not 0.77" in line
    assert not out.exists()


@pytest.mark.parametrize(
    "expression, fragments",
    [
        ("probe.nuisance_accuracy >> 0.5", ["unknown operator '>>'"]),
        ("probe.nuisance_accuracy > high", ["bad threshold 'high'"]),
        ("probe.nuisance_accuracy", ["no comparison operator"]),
        ("probe.nuisance_acuracy > 0.5", ["has no metric 'nuisance_acuracy'",
                                          "did you mean 'nuisance_accuracy'?"]),
        ("pgd-lin.robust_accuracy[0.1] < 0.5", ["unknown method 'pgd-lin'",
                                                "did you mean 'pgd-linf'?"]),
        ("deepfool-l2.median_distance < 0.5", ["unknown method 'deepfool-l2'"]),
        ("pgd-linf.robust_accuracy[0.77] < 0.5", ["will attack at ε 0.01, 0.05, 0.1, not 0.77"]),
    ],
)  # fmt: skip
def test_bad_checks_exit_2_before_anything_runs(ckpt, tmp_path, no_attack, expression, fragments):
    out = tmp_path / "out"
    result = report(ckpt, out, "--fail-if", expression, "--junit", tmp_path / "g.xml")
    line = one_line_error(result)
    for fragment in fragments:
        assert fragment in line
    assert not out.exists() and not (tmp_path / "g.xml").exists()
    assert [p.name for p in tmp_path.iterdir()] == []


@pytest.mark.parametrize(
    "policy, fragment",
    [
        ('fail_if = ["probe.nuisance_accuracy > 0.5"]\nthreshold = 1\n', "unknown key 'threshold'"),
        ('fail_if = "probe.nuisance_accuracy > 0.5"\n', "'fail_if' must be an array"),
        ("[[check]]\npath = 'probe.nuisance_accuracy'\nop = '>'\n", "missing 'value'"),
        ("fail_if = [\n", "invalid TOML"),
        ("", "defines no checks"),
        ('fail_if = ["probe.nuisance_acuracy > 0.5"]\n', "did you mean 'nuisance_accuracy'?"),
    ],
)
def test_bad_policy_exits_2_before_anything_runs(ckpt, tmp_path, no_attack, policy, fragment):
    path = tmp_path / "policy.toml"
    path.write_text(policy)
    out = tmp_path / "out"
    line = one_line_error(report(ckpt, out, "--policy", path))
    assert fragment in line and "policy.toml" in line
    assert not out.exists()


def test_missing_policy_file_exits_2(ckpt, tmp_path, no_attack) -> None:
    line = one_line_error(report(ckpt, tmp_path / "out", "--policy", tmp_path / "nope.toml"))
    assert "file not found" in line
    assert not (tmp_path / "out").exists()


# -- 3. JUnit --------------------------------------------------------------------------


def test_junit_has_one_case_per_check_and_failures_match(reports) -> None:
    root = ET.parse(reports.root / "r1.xml").getroot()
    suites = root.findall("testsuite")
    assert root.tag == "testsuites" and len(suites) == 1
    cases = suites[0].findall("testcase")
    assert [c.get("name") for c in cases] == [*PASSING, *FAILING]
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert failed == FAILING
    for node in (root, suites[0]):
        assert node.get("tests") == str(len(cases)) == "4"
        assert node.get("failures") == str(len(failed)) == "2"
        assert node.get("errors") == "0"
    failure = cases[2].find("failure")
    value = reports.json("r1")["model"]["clean_accuracy"]
    assert failure.get("message") == f"value {value:.6g}, fails when <= 1"


# -- 4. determinism --------------------------------------------------------------------


def reproducible(record: dict[str, Any]) -> dict[str, str]:
    return {
        "metrics": json.dumps(
            {m: a["metrics"] for m, a in record["attacks"].items()}, sort_keys=True
        ),
        "model": json.dumps(record["model"], sort_keys=True),
        "invertibility": json.dumps(record["invertibility"], sort_keys=True),
    }


def test_same_seed_same_numbers_other_seed_other_numbers(reports, comparison) -> None:
    """r1 and compare's ``ce`` report audit one checkpoint with seed 0 and the same --n."""
    first, other = reports.json("r1"), reports.json("r3")
    again = json.loads((comparison[0] / "ce" / "report.json").read_text())
    assert again["suite"] == first["suite"]
    assert reproducible(first) == reproducible(again)
    assert reproducible(first)["model"] == reproducible(other)["model"]
    changed = [
        method
        for method in first["attacks"]
        if first["attacks"][method]["metrics"] != other["attacks"][method]["metrics"]
    ]
    assert len(changed) >= 2, changed
    assert other["suite"]["seed"] == 1 and other["environment"]["seed"] == 1


# -- 5. atomic replacement -------------------------------------------------------------


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_failed_write_leaves_the_earlier_report_untouched(reports, ckpt, tmp_path, monkeypatch):
    out = tmp_path / "out"
    shutil.copytree(reports.root / "r3", out)  # the earlier report: seed 1
    before = snapshot(out)
    assert "report.json" in before and len(before) > 10
    new_csv = (reports.root / "r1" / "metamer.csv").read_bytes()
    assert new_csv != before["metamer.csv"]  # so a write in place would show
    # The audit is the fixture's seed-0 run; only the writing is exercised here.
    monkeypatch.setattr(runner, "run_suite", lambda *a, **k: reports.run)
    staged: list[list[str]] = []

    def broken_html(record: dict[str, Any], folder: Path) -> str:
        staged.append([folder.name, *sorted(p.name for p in folder.iterdir())])
        raise RuntimeError("boom while rendering")

    monkeypatch.setattr(report_files, "report_html", broken_html)
    result = report(ckpt, out)
    assert result.exit_code == 3, result.output  # a crash is never the gate's exit 1
    assert "RuntimeError: boom while rendering" in result.stderr
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no .out.partial-* left
    # It failed half way: the staging folder already held CSVs, figures and report.md.
    assert staged and staged[0][0].startswith(".out.partial-")
    assert {"metamer.csv", "figures", "report.md"} <= set(staged[0][1:])

    # Without the fault the same command replaces the whole folder (here with a report
    # that lists no figures, which is quick to write), leaving nothing beside it.
    monkeypatch.undo()
    record = copy.deepcopy(reports.run.report)
    record["created"] = "2000-01-01T00:00:00+00:00"
    for rec in record["attacks"].values():
        rec["figures"] = []
    fresh = runner.SuiteRun(record, reports.run.results, {m: {} for m in reports.run.figures})
    monkeypatch.setattr(runner, "run_suite", lambda *a, **k: fresh)
    result = report(ckpt, out)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "report.json").read_text())["created"].startswith("2000-01-01")
    assert not (out / "figures").exists()  # replaced, not merged into the old folder
    assert (out / "metamer.csv").read_bytes() == new_csv
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_out_folder_with_foreign_files_is_refused(ckpt, tmp_path, no_attack) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    line = one_line_error(report(ckpt, out))
    assert "not an invaudit report" in line
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert (out / "notes.txt").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_out_that_is_a_file_is_refused(ckpt, tmp_path, no_attack) -> None:
    out = tmp_path / "file"
    out.write_text("x")
    assert "is not a folder" in one_line_error(report(ckpt, out))
    assert out.read_text() == "x"


# -- 6. compare ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def comparison(ckpt, tmp_path_factory) -> tuple[Path, Result]:
    ice = train(tmp_path_factory.mktemp("ice") / "ice.pt", "--loss", "ice")
    out = tmp_path_factory.mktemp("compare") / "cmp"
    result = invoke("compare", ckpt, ice, "--label", "ce", "--label", "ice", "--n", N,
                    "--no-progress", "--out", out)  # fmt: skip
    return out, result


def test_compare_writes_one_report_per_label_and_the_tables(comparison) -> None:
    out, result = comparison
    assert result.exit_code == 0, result.output
    assert "% test error" in result.stdout
    assert "ce logit" in result.stdout and "ice nuisance" in result.stdout
    # The console ends with the story compare.md opens with (ice against ce).
    assert "story: Each model is set against the first, ce" in result.stdout
    for name in ("compare.csv", "compare.md", "compare.html", "compare.json"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["ce", "figures", "ice"]
    losses = {}
    for label in ("ce", "ice"):
        record = check_report(json.loads((out / label / "report.json").read_text()))
        losses[label] = record["model"]["loss"]
        assert (out / label / "report.html").is_file() and (out / label / "report.md").is_file()
    assert losses == {"ce": "ce", "ice": "ice"}
    record = json.loads((out / "compare.json").read_text())
    assert record["schema"] == "invaudit.compare"
    assert [m["label"] for m in record["models"]] == ["ce", "ice"]
    assert [m["report"] for m in record["models"]] == ["ce/report.json", "ice/report.json"]
    long = pd.read_csv(out / "compare.csv")
    assert list(long.columns) == ["model", "quantity", "readout", "value", "n", "low", "high"]
    rates = long.dropna(subset=["low"])
    assert len(rates) > 0 and ((rates.low <= rates.value) & (rates.value <= rates.high)).all()
    assert set(long["model"]) == {"ce", "ice"}
    assert (long.groupby("model").size() == len(long) // 2).all()
    for label in ("ce", "ice"):
        clean = long[(long.model == label) & (long.quantity == "clean_accuracy")]
        report_json = json.loads((out / label / "report.json").read_text())
        assert clean["value"].iloc[0] == pytest.approx(report_json["model"]["clean_accuracy"])
    md = (out / "compare.md").read_text()
    assert "% test error" in md and "ce" in md and "ice" in md
    html = (out / "compare.html").read_text()
    assert "http://" not in html and "https://" not in html and "<script" not in html.lower()
    for figure in (out / "figures").iterdir():
        assert figure.name.startswith("compare-") and figure.read_bytes()[:8] == PNG


def test_compare_refuses_a_wrong_label_count_and_a_single_model(ckpt, tmp_path, no_attack):
    out = tmp_path / "cmp"
    line = one_line_error(
        invoke("compare", ckpt, ckpt, "--label", "a", "--n", N, "--no-progress", "--out", out)
    )
    assert "--label given 1 times for 2 models" in line
    line = one_line_error(invoke("compare", ckpt, "--n", N, "--no-progress", "--out", out))
    assert "at least two checkpoints, got 1" in line
    line = one_line_error(invoke("compare", ckpt, ckpt, "--n", N, "--no-progress", "--out", out))
    assert "labels must differ" in line
    assert not out.exists()


# -- 7. gate on a written report -------------------------------------------------------


def gate(*args: Any) -> Result:
    return invoke("gate", *args)


def test_gate_rereads_a_report(reports, tmp_path) -> None:
    path = reports.root / "r1" / "report.json"
    ok = gate(path, "--fail-if", PASSING[0], "--fail-if", PASSING[1])
    assert ok.exit_code == 0, ok.output
    assert "gate: 2 passed, 0 failed" in ok.stdout
    junit = tmp_path / "gate.xml"
    failed = gate(path, "--fail-if", FAILING[0], "--fail-if", PASSING[0], "--junit", junit)
    assert failed.exit_code == 1, failed.output
    value = reports.json("r1")["model"]["clean_accuracy"]
    assert f"FAIL model.clean_accuracy <= 1  (value {value:.6g})" in failed.stdout
    cases = ET.parse(junit).getroot().findall("testsuite/testcase")
    assert [c.find("failure") is not None for c in cases] == [True, False]
    (tmp_path / "policy.toml").write_text(POLICY)
    policy = gate(path, "--policy", tmp_path / "policy.toml")
    assert policy.exit_code == 0 and "ok   model has parameters" in policy.stdout
    (tmp_path / "failing.toml").write_text(POLICY.replace('op = "<"', 'op = ">"'))
    policy = gate(path, "--policy", tmp_path / "failing.toml")
    assert policy.exit_code == 1, policy.output
    assert "FAIL model has parameters: model.parameters > 1" in policy.stdout
    assert "gate: 2 passed, 1 failed" in policy.stderr


@pytest.mark.parametrize(
    "content, args, fragment",
    [
        (None, ["--fail-if", "model.clean_accuracy < 0"], "cannot read"),
        ('{"schema": "other"}', ["--fail-if", "model.clean_accuracy < 0"],
         "not an invaudit report"),
        ("[1, 2]", ["--fail-if", "model.clean_accuracy < 0"], "not a JSON object"),
        ("{not json", ["--fail-if", "model.clean_accuracy < 0"], "is not JSON"),
        ("REPORT", [], "needs at least one --fail-if or a --policy"),
        ("REPORT", ["--fail-if", "model.clean_accuracy < < 0"], "more than one operator"),
        ("REPORT", ["--fail-if", "deepfool-l2.median_distance > 1"],
         "the report has no attack 'deepfool-l2'"),
        ("REPORT", ["--fail-if", "pgd-linf.robust_accuracy[0.77] < 0.5"], "has no key [0.77]"),
        ("REPORT", ["--fail-if", "pgd-linf.robust_accuracy < 0.5"], "is a map; pick an entry"),
    ],
)  # fmt: skip
def test_gate_bad_input_exits_2(reports, tmp_path, content, args, fragment) -> None:
    path = tmp_path / "report.json"
    if content == "REPORT":
        shutil.copy(reports.root / "r1" / "report.json", path)
    elif content is not None:
        path.write_text(content)
    line = one_line_error(gate(path, *args))
    assert fragment in line


# -- 8. the verdict first (issue 14) ---------------------------------------------------


def test_report_md_html_and_console_open_with_the_verdict_and_the_gate(reports) -> None:
    folder = reports.root / "r1"
    record = reports.json("r1")
    assert record["gate"]["passed"] is False
    assert (record["gate"]["checks"], record["gate"]["failed"]) == (4, 2)
    md = (folder / "report.md").read_text()
    lines = md.splitlines()
    assert lines[0].startswith("# gate FAILED (2 of 4 checks) · invaudit report: firevnet-fc")
    assert lines[2].startswith("**Verdict.** Excessive invariance: ")
    verdict = lines[2]
    assert "Excessive sensitivity: from " in verdict
    assert "Gate: FAILED, 2 of 4 checks: model.clean_accuracy = " in verdict
    assert "invertibility.max_abs_error = " in verdict
    # ... and every check with its outcome in its own section, failed ones marked
    gate = md.split("## Gate", 1)[1].split("\n## ", 1)[0]
    assert "- **FAIL** `model.clean_accuracy <= 1`" in gate
    assert "- **FAIL** `invertibility.max_abs_error >= 0`" in gate
    assert "- ok `model.clean_accuracy < 0`" in gate
    assert md.index("**Verdict.**") < md.index("## Headline") < md.index("## Gate")
    assert "| check" in md and "95% interval" in md and "better" in md

    html = (folder / "report.html").read_text()
    assert html.index("<body>") < html.index('id="verdict"') < html.index('id="headline"')
    assert 'class="verdict failed"' in html and "Gate: FAILED, 2 of 4 checks" in html
    assert '<span class="fail">FAIL</span> <code>model.clean_accuracy &lt;= 1</code>' in html

    out = reports.first.stdout
    assert "verdict: Excessive invariance" in out
    assert out.rstrip().splitlines()[-1].startswith("  ")  # the wrapped verdict ends it
    assert "FAILED" in out.split("verdict: ", 1)[1]
    passed = (reports.root / "r3" / "report.md").read_text()
    assert passed.startswith("# gate passed (3 checks) · ")
    assert "Gate: passed (3 checks, none failed)." in passed


def test_report_says_where_the_data_came_from(reports) -> None:
    assert "data: spheres, spheres regenerated from seed" in reports.first.stderr


def test_a_report_without_a_gate_keeps_no_stale_verdict(reports, ckpt, tmp_path, monkeypatch):
    # r1's SuiteRun carries the gate it was written with; a rerun without checks drops it.
    record = copy.deepcopy(reports.run.report)
    for rec in record["attacks"].values():
        rec["figures"] = []
    run = runner.SuiteRun(record, reports.run.results, {m: {} for m in reports.run.figures})
    monkeypatch.setattr(runner, "run_suite", lambda *a, **k: run)
    result = report(ckpt, tmp_path / "out")
    assert result.exit_code == 0, result.output
    md = (tmp_path / "out" / "report.md").read_text()
    assert md.startswith("# invaudit report: ") and "Gate:" not in md
    assert "gate" not in json.loads((tmp_path / "out" / "report.json").read_text())


def test_compare_md_and_html_open_with_each_models_verdict(comparison) -> None:
    out, result = comparison
    md = (out / "compare.md").read_text()
    lines = md.splitlines()
    assert lines[0].startswith("# invaudit compare: ce vs ice")
    assert lines[2].startswith("**Story.** Each model is set against the first, ce,")
    assert lines[4].startswith("**Verdict, ce.** Excessive invariance: ")
    assert lines[6].startswith("**Verdict, ice.** Excessive invariance: ")
    assert md.index("**Verdict, ice.**") < md.index("\n## ")
    # readable names and intervals, not raw metric keys
    audit = md.split("## Invariance and sensitivity, side by side", 1)[1].split("\n## ", 1)[0]
    assert "metamer invariance success" in audit and "clean accuracy" in audit
    assert "pgd-linf robust accuracy @ ε=0.1" in audit
    assert "metamer.invariance_success_rate" not in audit and "robust_accuracy[" not in audit
    assert re.search(r"\d%\s\[\d+\.\d+, \d+\.\d+\]", audit)
    # the warnings behind the counts, with their texts
    warnings = md.split("## Warnings", 1)[1].split("\n## ", 1)[0]
    for label in ("ce", "ice"):
        record = json.loads((out / label / "report.json").read_text())
        for w in record["warnings"]:
            assert f"- **{label}**: {w['name']}" in warnings
    html = (out / "compare.html").read_text()
    assert html.index("<body>") < html.index('id="story"') < html.index('id="verdict"')
    assert html.index('id="verdict"') < html.index('id="table-0"')
    assert "verdict (ce): " in result.stdout and "verdict (ice): " in result.stdout


def test_an_oracle_that_is_the_audited_model_is_refused_before_any_work(tmp_path, no_attack):
    """Item 15: the same checkpoint (here a byte-identical copy) as its own oracle agrees
    with every decision, so every oracle rate would be 0 and pass any gate."""
    from invaudit.zoo import ZOO_DIR

    model = tmp_path / "model.pt"  # any image checkpoint: the bundled iCE model's bytes
    shutil.copy(ZOO_DIR / "mnist-ice.pt", model)
    twin = tmp_path / "same-bytes.pt"
    shutil.copy(model, twin)
    out = tmp_path / "out"
    for oracle in (model, twin):
        line = one_line_error(
            invoke("report", "--model", model, "--oracle", oracle, "--out", out, "--no-progress")
        )
        assert "is the audited model itself" in line and "--oracle none" in line
        line = one_line_error(
            invoke("attack", "--model", model, "--method", "metamer", "--oracle", oracle)
        )
        assert "is the audited model itself" in line
    assert not out.exists()
