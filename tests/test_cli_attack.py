"""`invaudit attack` end to end on a small spheres checkpoint: files, records, refusals."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from invaudit.attacks.oracle import ClassifierOracle
from invaudit.cli import main
from invaudit.errors import ConfigError
from invaudit.models import build
from invaudit.models.checkpoint import model_payload, save_checkpoint


@pytest.fixture(scope="module")
def spheres_ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt") / "spheres.pt"
    args = [
        "train", "--dataset", "spheres", "--dim", "6", "--n-train", "4000", "--n-test", "600",
        "--device", "cpu", "--set", "hidden=64", "--lr", "3e-3", "--epochs", "1",
        "--no-progress", "--out", str(out),
    ]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return out


def attack(*args: str):
    return CliRunner().invoke(main, ["attack", "--no-progress", *args])


def test_metamer_writes_json_csv_and_figure(spheres_ckpt, tmp_path) -> None:
    out = tmp_path / "audit"
    result = attack("--model", str(spheres_ckpt), "--method", "metamer", "--n", "200",
                    "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "logit_match_max_abs" in result.stdout
    record = json.loads((out / "metamer.json").read_text())
    assert set(record) == {"method", "n", "metrics", "settings", "model", "seconds"}
    assert record["seconds"] > 0  # the attack's own wall time
    assert record["method"] == "metamer" and record["n"] == 200
    assert set(record["model"]) == {"path", "sha256", "arch", "loss"}
    assert record["model"]["arch"] == "firevnet-fc" and record["model"]["loss"] == "ce"
    assert len(record["model"]["sha256"]) == 64
    metrics = record["metrics"]
    assert metrics["logit_match_max_abs"] <= 1e-4 and metrics["prediction_preserved"] == 1.0
    assert record["settings"]["oracle"]["exact"] is True  # spheres: the radius oracle
    rows = pd.read_csv(out / "metamer.csv")
    assert len(rows) == 200 and (rows["label"] != rows["nuisance_label"]).all()
    assert (out / "metamer_radii.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_same_seed_same_metrics(spheres_ckpt, tmp_path) -> None:
    records = []
    for run in ("a", "b"):
        result = attack("--model", str(spheres_ckpt), "--method", "interpolate", "--n", "50",
                        "--steps", "4", "--seed", "3", "--out", str(tmp_path / run))  # fmt: skip
        assert result.exit_code == 0, result.output
        records.append(json.loads((tmp_path / run / "interpolate.json").read_text()))
    assert records[0]["metrics"] == records[1]["metrics"]


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--method", "nosuch"], "unknown method 'nosuch'"),
        (["--method", "metamer", "--n", "0"], "n must be at least 1"),
        (["--method", "metamer", "--batch-size", "0"], "batch size must be at least 1"),
        (["--method", "metamer", "--probe-epochs", "3"], "metamer takes no option probe_epochs"),
        (["--method", "interpolate", "--steps", "1"], "steps must be an integer >= 2"),
        (["--method", "metamer", "--examples", "-1"], "examples must be an integer >= 0"),
        (["--method", "metamer", "--oracle", "x.pt"], "exact oracle"),
        (["--method", "probe", "--option", "probe_lr=-1"], "probe_lr must be positive"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(spheres_ckpt, tmp_path, args, fragment):
    out = tmp_path / "audit"
    result = attack("--model", str(spheres_ckpt), *args, "--out", str(out))
    assert result.exit_code == 2, result.output
    assert fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_a_non_invertible_checkpoint_is_refused_by_name(tmp_path) -> None:
    ckpt = tmp_path / "cnn.pt"
    payload = model_payload(build("oracle-cnn"))
    payload["dataset"] = {"name": "mnist", "bounds": (0.0, 1.0)}
    save_checkpoint(ckpt, payload)
    result = attack("--model", str(ckpt), "--method", "metamer", "--out", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert "arch oracle-cnn is not invertible" in result.stderr
    assert not (tmp_path / "o").exists()


def test_an_oracle_of_another_shape_is_refused(tmp_path) -> None:
    ckpt = tmp_path / "oracle.pt"
    save_checkpoint(ckpt, model_payload(build("firevnet-fc", dim=6, num_classes=2)))
    oracle = ClassifierOracle(ckpt)
    with pytest.raises(ConfigError, match=r"takes inputs \[6\] with 2 classes"):
        oracle.check_compatible(build("firevnet-fc", dim=8, num_classes=2))
    oracle.check_compatible(build("firevnet-fc", dim=6, num_classes=2))
