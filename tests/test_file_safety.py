"""Never lose a user's file (issue 14, items 1-4 and 9).

Nothing invaudit writes may replace a file it did not create; every output
location is checked before the first attack (exit 2, one line); exit code 1
means only "a gate check failed".  The audits run on an untrained 6-d spheres
fiRevNet with ``--n 8`` (a report takes a few seconds); the refusals must come
before any attack, which ``no_audit`` turns into a test failure otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner, Result

import invaudit.reports.runner as runner
from invaudit.cli import main
from invaudit.data import dataset_info
from invaudit.models import build
from invaudit.models.checkpoint import model_payload, save_checkpoint
from invaudit.reports.folder import replace_folder
from invaudit.reports.schema import SCHEMA, SCHEMA_VERSION, SECTIONS

N = 8
GATE_PASSES = ["--fail-if", "model.clean_accuracy < 0"]


def invoke(*args: Any) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(result: Result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def report(model: Path, out: Any, *args: Any) -> Result:
    return invoke("report", "--model", model, "--out", out, "--n", N, "--no-progress", *args)


def attack(model: Path, out: Any, *args: Any) -> Result:
    return invoke("attack", "--model", model, "--method", "metamer", "--n", N,
                  "--no-progress", "--out", out, *args)  # fmt: skip


def spheres_checkpoint(path: Path) -> Path:
    """An untrained 6-d spheres fiRevNet (audits of it take seconds)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build("firevnet-fc", dim=6, num_classes=2, blocks=1, hidden=8)
    payload = model_payload(model)
    options = {"dim": 6, "radii": [1.0, 10.0], "n_train": 200, "n_test": 100, "seed": 0}
    info = {"name": "spheres", **dataset_info("spheres", dim=6, radii=(1.0, 10.0))}
    payload.update(loss="ce", dataset={**info, "options": options})
    save_checkpoint(path, payload)
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return spheres_checkpoint(tmp_path_factory.mktemp("ckpt") / "spheres.pt")


@pytest.fixture
def no_audit(monkeypatch) -> None:
    """Any attack (or suite) that starts fails the test: refusals come before the work."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the audit started before the refusal")

    monkeypatch.setattr(runner, "run_suite", refuse)
    monkeypatch.setattr("invaudit.attacks.setup.prepare_audit", refuse)


def fake_report() -> dict[str, Any]:
    """A minimal schema-1 report.json: what invaudit's marker looks like on disk."""
    record: dict[str, Any] = {key: None for key in SECTIONS}
    record.update(schema=SCHEMA, schema_version=SCHEMA_VERSION, attacks={}, warnings=[],
                  model={"path": "m.pt", "clean_accuracy": 0.5})  # fmt: skip
    return record


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# -- 1. --junit never replaces a file invaudit did not write ------------------------------


def test_report_junit_refuses_to_replace_the_checkpoint(ckpt, tmp_path, no_audit) -> None:
    before = ckpt.read_bytes()
    out = tmp_path / "r"
    line = one_line_error(report(ckpt, out, *GATE_PASSES, "--junit", ckpt))
    assert f"--junit {ckpt}" in line and "not a JUnit file invaudit wrote" in line
    assert ckpt.read_bytes() == before
    assert not out.exists()


def test_gate_junit_replaces_only_its_own_junit(tmp_path) -> None:
    report_json = tmp_path / "report.json"
    report_json.write_text(json.dumps(fake_report()))
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    foreign_xml = tmp_path / "pytest.xml"
    foreign_xml.write_text('<?xml version="1.0"?>\n<testsuites name="pytest"><testsuite '
                           'name="pytest" tests="0"/></testsuites>\n')  # fmt: skip
    for victim in (notes, foreign_xml):
        before = victim.read_bytes()
        line = one_line_error(invoke("gate", report_json, *GATE_PASSES, "--junit", victim))
        assert "not a JUnit file invaudit wrote" in line
        assert victim.read_bytes() == before
    ours = tmp_path / "gate.xml"
    for _ in range(2):  # the second run replaces the first run's file
        result = invoke("gate", report_json, *GATE_PASSES, "--junit", ours)
        assert result.exit_code == 0, result.output
    assert b"invaudit gate" in ours.read_bytes()


# -- 2. a report folder or an attack's files: only invaudit's own are replaced -------------


def test_report_refuses_a_report_folder_that_holds_the_users_files(ckpt, tmp_path,
                                                                  no_audit) -> None:  # fmt: skip
    out = tmp_path / "r"
    (out / "mydata").mkdir(parents=True)
    (out / "report.json").write_text(json.dumps(fake_report()))
    (out / "NOTES.txt").write_text("my notes\n")
    (out / "mydata" / "keep.csv").write_text("a,b\n1,2\n")
    before = snapshot(out)
    line = one_line_error(report(ckpt, out))
    assert "not written by invaudit" in line
    assert "NOTES.txt" in line or "keep.csv" in line
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]  # no staging left either


def test_a_gates_junit_inside_the_report_folder_is_invaudits(tmp_path) -> None:
    from invaudit.reports.folder import foreign_files
    from invaudit.reports.gate import write_junit

    out = tmp_path / "r"
    out.mkdir()
    (out / "report.json").write_text(json.dumps(fake_report()))
    write_junit([], out / "gate.xml", suite_name="invaudit gate: m.pt")
    assert foreign_files(out) == []
    (out / "other.xml").write_text("<testsuites name='pytest'/>")
    assert foreign_files(out) == ["other.xml"]


def test_a_comparison_folder_is_invaudits_only_down_to_its_model_reports(tmp_path) -> None:
    from invaudit.reports.folder import check_out_folder, foreign_files

    out = tmp_path / "cmp"
    (out / "figures").mkdir(parents=True)
    (out / "ce").mkdir()
    compare = {"schema": "invaudit.compare", "schema_version": 1,
               "models": [{"label": "ce", "report": "ce/report.json"}], "rows": []}  # fmt: skip
    (out / "compare.json").write_text(json.dumps(compare))
    for name in ("compare.csv", "compare.md", "compare.html", "figures/compare-metamer.png"):
        (out / name).write_text("x")
    inner = fake_report()
    inner["attacks"] = {"probe": {"records": "probe.csv", "figures": ["figures/probe.png"]}}
    (out / "ce" / "report.json").write_text(json.dumps(inner))
    (out / "ce" / "probe.csv").write_text("a\n")
    (out / "ce" / "figures").mkdir()
    (out / "ce" / "figures" / "probe.png").write_bytes(b"png")
    assert foreign_files(out) == []
    check_out_folder(out)
    (out / "ce" / "figures" / "mine.png").write_bytes(b"my figure")
    (out / "figures" / "notes.png").write_bytes(b"my figure")
    assert foreign_files(out) == ["ce/figures/mine.png", "figures/notes.png"]


def test_attack_replaces_its_own_files_but_never_a_foreign_one(ckpt, tmp_path) -> None:
    out = tmp_path / "a"
    out.mkdir()
    (out / "metamer.json").write_text('{"mine": true}\n')
    line = one_line_error(attack(ckpt, out))
    assert "metamer.json" in line and "not written by invaudit" in line
    assert (out / "metamer.json").read_text() == '{"mine": true}\n'

    other = tmp_path / "b"
    other.mkdir()
    (other / "metamer_radii.png").write_bytes(b"my picture")  # the name a figure would take
    assert "metamer_radii.png" in one_line_error(attack(ckpt, other))
    assert (other / "metamer_radii.png").read_bytes() == b"my picture"

    ours = tmp_path / "c"
    for _ in range(2):  # the second run replaces what the first wrote
        result = attack(ckpt, ours)
        assert result.exit_code == 0, result.output
    assert json.loads((ours / "metamer.json").read_text())["method"] == "metamer"


# -- 3. the current folder and an empty --out ---------------------------------------------


def test_out_that_is_or_holds_the_current_folder_is_refused(ckpt, tmp_path, monkeypatch,
                                                           no_audit) -> None:  # fmt: skip
    here = tmp_path / "work" / "sub"
    here.mkdir(parents=True)
    monkeypatch.chdir(here)
    for out in (".", here, here.parent, "./"):
        line = one_line_error(report(ckpt, out))
        assert "current folder" in line, line
    assert "--out is empty" in one_line_error(report(ckpt, ""))
    assert "--out is empty" in one_line_error(attack(ckpt, ""))
    assert list(here.iterdir()) == [] and sorted(os.listdir(tmp_path)) == ["work"]
    assert os.listdir(here.parent) == ["sub"]


# -- 4. unwritable destinations: exit 2 before any work; OSError is never exit 1 ------------


def test_unwritable_outputs_are_refused_before_any_work(ckpt, tmp_path, no_audit) -> None:
    blocker = tmp_path / "a-file.txt"
    blocker.write_text("not a folder\n")
    cases = [
        report(ckpt, blocker / "r"),
        report(ckpt, tmp_path / "r", *GATE_PASSES, "--junit", blocker / "gate.xml"),
        attack(ckpt, blocker / "a"),
        invoke("compare", ckpt, ckpt, "--label", "a", "--label", "b", "--out", blocker / "c",
               "--n", N, "--no-progress"),
    ]
    for result in cases:
        line = one_line_error(result)
        assert "cannot write" in line and str(blocker) in line, line
    assert not (tmp_path / "r").exists()


def test_train_checks_its_out_before_training(tmp_path, monkeypatch) -> None:
    import invaudit.training.trainer as trainer

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("training started before the refusal")

    monkeypatch.setattr(trainer, "Trainer", refuse)
    blocker = tmp_path / "a-file.txt"
    blocker.write_text("not a folder\n")
    result = invoke("train", "--dataset", "spheres", "--dim", "6", "--n-train", "64",
                    "--n-test", "16", "--epochs", "1", "--device", "cpu", "--no-progress",
                    "--out", blocker / "m.pt")  # fmt: skip
    line = one_line_error(result)
    assert "cannot write" in line and str(blocker) in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_refused(ckpt, tmp_path, no_audit) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert "cannot write" in one_line_error(report(ckpt, locked / "r"))
        assert "cannot write" in one_line_error(attack(ckpt, locked))
    finally:
        locked.chmod(0o755)


def test_an_oserror_while_writing_is_exit_2_not_the_gates_1(ckpt, tmp_path,
                                                          monkeypatch) -> None:  # fmt: skip
    import invaudit.reports.attack_files as attack_files

    def disk_full(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device", str(tmp_path / "a" / "metamer.csv"))

    monkeypatch.setattr(attack_files, "write_attack_files", disk_full)
    line = one_line_error(attack(ckpt, tmp_path / "a"))
    assert "No space left on device" in line and "metamer.csv" in line


# -- 9. staging folders of killed runs are cleaned ----------------------------------------


def test_a_report_run_removes_the_staging_folders_of_dead_runs(tmp_path) -> None:
    dead = dead_pid()
    stale = tmp_path / f".r.partial-{dead}-x1y2z3w4"
    (stale / "figures").mkdir(parents=True)
    (stale / "metamer.csv").write_text("half a report\n")
    stale_old = tmp_path / f".r.old-{dead}-q1w2e3r4"
    (stale_old / "previous").mkdir(parents=True)
    legacy = tmp_path / ".r.partial-a1b2c3d4"  # named by invaudit before pids were recorded
    legacy.mkdir()
    long_ago = time.time() - 2 * 24 * 3600  # far older than any run's fill phase
    os.utime(legacy, (long_ago, long_ago))
    recent_legacy = tmp_path / ".r.partial-e5f6g7h8"
    recent_legacy.mkdir()
    live = tmp_path / f".r.partial-{os.getpid()}-l1v2e3x4"  # a run still going
    live.mkdir()
    other_target = tmp_path / f".other.partial-{dead}-o1t2h3r4"
    other_target.mkdir()
    users = tmp_path / ".r.partial-notes"  # not a name invaudit makes
    users.mkdir()

    def fill(folder: Path) -> None:
        (folder / "report.json").write_text(json.dumps(fake_report()))

    replace_folder(tmp_path / "r", fill)
    assert (tmp_path / "r" / "report.json").is_file()
    assert not stale.exists() and not stale_old.exists() and not legacy.exists()
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["r", recent_legacy.name, live.name, other_target.name, users.name])
