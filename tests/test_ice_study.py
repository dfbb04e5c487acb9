"""experiments/ice_study.py on a tiny spheres configuration: results, doc, figures, resuming."""

from __future__ import annotations

import importlib.util
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "ice_study.py"
EPOCHS = 2
RUN = ["ce", "ice-def7"]
MISSING = "fake-missing-flag"


def _load():
    spec = importlib.util.spec_from_file_location("ice_study", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


study = _load()


def _tiny(work: Path, doc: Path, *extra: str) -> list[str]:
    return [
        "--in-process",
        "--dataset",
        "spheres",
        "--extra-train-args",
        "--dim 6 --n-train 2000 --n-test 400 --set hidden=32",
        "--lr",
        "3e-3",
        "--epochs",
        str(EPOCHS),
        "--variants",
        ",".join([*RUN, MISSING]),
        "--curve-probe-train-n",
        "500",
        "--curve-probe-epochs",
        "1",
        "--final-probe-train-n",
        "1000",
        "--final-probe-epochs",
        "1",
        "--probe-hidden",
        "32",
        "--work",
        str(work),
        "--doc",
        str(doc),
        *extra,
    ]


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    """One tiny study: two real variants and one whose flag `invaudit train` lacks
    (it fails, so the study exits 1 after running the others)."""
    root = tmp_path_factory.mktemp("ice-study")
    work, doc = root / "work", root / "docs" / "ice-study.md"
    fake = study.Variant(MISSING, "needs a flag nobody has", ["--loss", "ice", "--no-such-flag"])
    study.VARIANTS.append(fake)
    try:
        rc = study.main(_tiny(work, doc))
        yield work, doc, rc
    finally:
        study.VARIANTS.remove(fake)


def _table_names(doc: Path) -> list[str]:
    return re.findall(r"^\| `([^`]+)` \|", doc.read_text(), flags=re.MULTILINE)


def _checkpoint_mtimes(work: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in sorted(work.rglob("*.pt"))}


def _error(value) -> bool:
    return isinstance(value, float) and 0.0 <= value <= 1.0


def test_every_variant_has_a_complete_result(tiny_study) -> None:
    work, _, rc = tiny_study
    assert rc == 1  # the variant with a flag nobody has failed; the others ran
    for name in RUN:
        r = json.loads((work / name / "result.json").read_text())
        assert r["name"] == name and r["epochs"] == EPOCHS
        assert r["train_examples"] == 2000 and r["test_examples"] == 400
        for key in (
            "logit_test_error",
            "logit_train_error",
            "nuisance_test_error",
            "nuisance_train_error",
            "probe_logit_test_error",
            "probe_logit_train_error",
            "adversary_final_test_acc",
            "adversary_final_train_acc",
        ):
            assert _error(r[key]), (name, key, r[key])
        for key in ("mi_bits_nuisance", "mi_bits_logit", "bits_per_dim", "label_entropy_bits"):
            assert isinstance(r[key], float) and math.isfinite(r[key]), (name, key, r[key])
        assert r["mi_bits_nuisance"] <= r["label_entropy_bits"] + 1e-9
        for key in ("train_wall_seconds", "probe_wall_seconds", "wall_seconds"):
            assert math.isfinite(r[key]) and r[key] > 0
        known = {v.name: v for v in study.VARIANTS}
        assert r["train_args"] == r["config"]["train_args"] == known[name].train_args
        assert len(r["curve"]) == EPOCHS
        assert [p["epoch"] for p in r["curve"]] == list(range(1, EPOCHS + 1))
        for point in r["curve"]:
            assert _error(point["log_logit_test_error"])
            assert set(point["probe"]) == set(study.CURVE_KEYS)
            for key in ("nuisance_error", "nuisance_train_error", "decision_test_error"):
                assert _error(point["probe"][key]), (name, point)
        # the last curve point is the final checkpoint, read by the same readout
        assert r["curve"][-1]["probe"]["decision_test_error"] == pytest.approx(
            r["logit_test_error"]
        )
        snapshots = work / name / "snapshots"
        assert sorted(p.name for p in snapshots.iterdir()) == [
            f"epoch-{n}.pt" for n in range(1, EPOCHS + 1)
        ]
        assert r["commands"]["train"][-2:] == ["--snapshots", str(snapshots)]
    failed = json.loads((work / MISSING / "failed.json").read_text())
    assert "exited 2" in failed["reason"] and "--no-such-flag" in failed["reason"]
    assert not (work / MISSING / "result.json").exists()


def test_doc_has_one_row_per_variant_and_its_figures(tiny_study) -> None:
    _, doc, _ = tiny_study
    text = doc.read_text()
    names = _table_names(doc)
    assert names[0] == "ce" and sorted(names) == sorted(RUN)
    assert "| *paper* |" in text and "27.70" in text
    assert "Not met at the issue's scale" in text  # spheres is never the scale
    assert re.search(rf"`{MISSING}`: failed: .*--no-such-flag", text)
    assert "torch " in text and "cores" in text and "--variants" in text
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(figures) >= 2
    for rel in figures:
        png = doc.parent / rel
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png


def test_doc_only_and_rerun_train_nothing(tiny_study) -> None:
    work, doc, _ = tiny_study
    before = _checkpoint_mtimes(work)
    assert len(before) == len(RUN) * (EPOCHS + 1)
    rows = _table_names(doc)
    doc.unlink()
    assert study.main(_tiny(work, doc, "--doc-only")) == 0
    assert _table_names(doc) == rows
    assert study.main(_tiny(work, doc)) == 1  # finished variants are skipped, MISSING fails
    assert _table_names(doc) == rows
    assert _checkpoint_mtimes(work) == before


def test_unknown_variant_is_one_line_and_nonzero(tmp_path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--variants",
            "ce,no-such-variant",
            "--work",
            str(tmp_path / "w"),
            "--doc",
            str(tmp_path / "d.md"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no-such-variant" in lines[0] and "error" in lines[0]
    assert not (tmp_path / "w").exists() and not (tmp_path / "d.md").exists()


def test_a_checkpoint_placed_by_hand_counts_only_if_its_command_matches(tiny_study) -> None:
    work, _, _ = tiny_study
    opts = study.build_parser().parse_args(_tiny(work, work / "unused.md"))
    known = {v.name: v for v in study.VARIANTS}
    trained = work / "ice-def7" / "model.pt"
    stored = json.loads(json.dumps(_settings(trained)))
    same = study.train_argv(known["ice-def7"], opts, trained)
    assert study.settings_mismatches(same, stored) == []
    wrong = study.settings_mismatches(study.train_argv(known["ce"], opts, trained), stored)
    assert wrong == ["loss: 'ice' != 'ce'"]
    # and the runner refuses to reuse it under the other variant's name
    (work / "ce-copy").mkdir()
    (work / "ce-copy" / "model.pt").write_bytes(trained.read_bytes())
    copy = study.Variant("ce-copy", "CE over an iCE file", ["--loss", "ce"])
    with pytest.raises(study.StudyError, match="trained otherwise"):
        study.run_variant(copy, opts, study.CLI(True), "test")


def _settings(path: Path) -> dict:
    from invaudit.models.checkpoint import read_checkpoint

    return read_checkpoint(path)["training"]["settings"]


def test_a_killed_variant_resumes_and_keeps_its_earlier_snapshots(tiny_study, tmp_path) -> None:
    """Killed after epoch 1: the rerun continues with --resume and adds epoch 2's snapshot."""
    work, _, _ = tiny_study
    again = tmp_path / "work"
    shutil.copytree(work / "ce", again / "ce")
    snapshots = again / "ce" / "snapshots"
    shutil.copyfile(snapshots / "epoch-1.pt", again / "ce" / "model.pt")
    (snapshots / "epoch-2.pt").unlink()
    (again / "ce" / "result.json").unlink()
    first = (snapshots / "epoch-1.pt").read_bytes()
    args = _tiny(again, tmp_path / "doc.md")
    args[args.index("--variants") + 1] = "ce"
    assert study.main(args) == 0
    assert "--resume" in (again / "ce" / "log.txt").read_text()
    assert (snapshots / "epoch-1.pt").read_bytes() == first
    assert _settings_epochs(snapshots / "epoch-2.pt") == 2
    assert json.loads((again / "ce" / "result.json").read_text())["epochs"] == EPOCHS


def test_snapshots_of_older_runners_are_read(tmp_path) -> None:
    (tmp_path / "model.epoch1.pt").write_bytes(b"")
    (tmp_path / "snapshots").mkdir()
    (tmp_path / "snapshots" / "epoch-2.pt").write_bytes(b"")
    assert study.snapshot_of(tmp_path, 1) == tmp_path / "model.epoch1.pt"
    assert study.snapshot_of(tmp_path, 2) == tmp_path / "snapshots" / "epoch-2.pt"
    assert study.snapshot_of(tmp_path, 3) is None


def _settings_epochs(path: Path) -> int:
    from invaudit.models.checkpoint import read_checkpoint

    return read_checkpoint(path)["training"]["epochs_done"]
