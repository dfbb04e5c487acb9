"""ImageFolder audits end to end (issue 18, item 3): a class-folder tree the test writes,
a tiny firevnet-imagenet trained on it by ``invaudit train``, and the quick report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from invaudit.cli import main

CLASSES = ("red", "green", "blue")
SIZE = 16


def write_tree(root: Path, per_class: dict[str, int]) -> None:
    """``root/SPLIT/CLASS/k.png``: 20x20 noisy images whose dominant channel is the class."""
    gen = torch.Generator().manual_seed(0)
    for split, count in per_class.items():
        for c, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for k in range(count):
                pixels = 0.3 * torch.rand(20, 20, 3, generator=gen)
                pixels[..., c] += 0.6
                array = (pixels.clamp(0, 1) * 255).to(torch.uint8).numpy()
                Image.fromarray(array).save(folder / f"{k}.png")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("imagefolder")
    tree = tmp / "tree"
    write_tree(tree, {"train": 16, "val": 6})
    ckpt = tmp / "folder.pt"
    result = CliRunner().invoke(main, [
        "train", "--dataset", "imagenet", "--image-size", str(SIZE), "--set", "stages=2",
        "--set", "blocks=1", "--set", "hidden=16", "--epochs", "1", "--batch-size", "16",
        "--lr", "0.01", "--device", "cpu", "--data-dir", str(tree), "--no-progress",
        "--out", str(ckpt),
    ])  # fmt: skip
    assert result.exit_code == 0, (result.output, result.exception)
    return tree, ckpt


def test_the_quick_report_audits_the_val_folders(trained, tmp_path) -> None:
    tree, ckpt = trained
    out = tmp_path / "report"
    result = CliRunner().invoke(main, [
        "report", "--model", str(ckpt), "--suite", "quick", "--n", "6", "--oracle", "none",
        "--no-progress", "--out", str(out),
    ])  # fmt: skip
    assert result.exit_code == 0, (result.output, result.exception)
    report = json.loads((out / "report.json").read_text())
    # No --data-dir: the folders the checkpoint trained on, val/ audited.
    assert str(tree) in report["model"]["data_source"] and "16 px" in report["model"]["data_source"]
    assert report["invertibility"]["passed"] is True
    attacks = report["attacks"]
    assert {"metamer", "interpolate", "probe", "invariance-eps", "pgd-linf"} <= set(attacks)
    assert attacks["metamer"]["n"] == 6
    # The nearest training image of another class comes from train/: 3 x 16 images.
    assert attacks["invariance-eps"]["metrics"]["neighbour_l2_mean"] > 0


def test_a_missing_val_folder_is_one_line_before_any_attack(trained, tmp_path) -> None:
    _, ckpt = trained
    empty = tmp_path / "empty"
    (empty / "train").mkdir(parents=True)
    result = CliRunner().invoke(main, [
        "attack", "--model", str(ckpt), "--method", "metamer", "--data-dir", str(empty),
        "--no-progress", "--out", str(tmp_path / "out"),
    ])  # fmt: skip
    assert result.exit_code == 2
    assert "val" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
