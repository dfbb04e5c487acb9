"""ImageFolder audits end to end (issue 18, item 3): a class-folder tree the test writes,
a tiny firevnet-imagenet trained on it by ``invaudit train``, and the quick report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner, Result
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


# --- a model that is not an invaudit checkpoint, on class folders (issue 17, item 1) ------


def colour_classifier(classes: int = len(CLASSES)) -> torch.nn.Module:
    """Logits from the mean of each channel: ImageFolder sorts the folders (blue, green,
    red), so label k is the channel 2 - k; a real classifier for this tree."""
    linear = torch.nn.Linear(3, classes)
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.zero_()
        for k in range(min(classes, 3)):
            linear.weight[k, 2 - k] = 20.0
    return torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), linear).eval()


def scripted(model: torch.nn.Module, path: Path) -> Path:
    torch.jit.save(torch.jit.trace(model, torch.rand(2, 3, SIZE, SIZE)), str(path))
    return path


@pytest.fixture(scope="module")
def foreign(trained, tmp_path_factory) -> tuple[Path, Path]:
    tree, _ = trained
    return tree, scripted(colour_classifier(), tmp_path_factory.mktemp("ts") / "colour.pt")


def audit(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def test_a_torchscript_model_is_audited_on_the_val_folders(foreign, tmp_path) -> None:
    tree, model = foreign
    out = tmp_path / "pgd"
    result = audit(
        "attack", "--model", model, "--dataset", "imagenet", "--data-dir", tree,
        "--image-size", SIZE, "--method", "pgd-linf", "--epsilons", "0.01,0.5",
        "--n", 12, "--no-progress", "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, (result.output, result.exception)
    metrics = json.loads((out / "pgd-linf.json").read_text())["metrics"]
    # 12 of the 18 val images, read as [3, 16, 16] crops; the colour rule gets them all.
    assert metrics["n"] == 12 and metrics["clean_accuracy"] == 1.0
    assert metrics["robust_accuracy"]["0.01"] == 1.0  # the colour margin is ~0.3
    assert metrics["robust_accuracy"]["0.5"] == 0.0  # half the range repaints an image


def test_its_report_runs_the_invariance_attacks_that_need_no_inverse(foreign, tmp_path) -> None:
    tree, model = foreign
    out = tmp_path / "report"
    result = audit(
        "report", "--model", model, "--dataset", "imagenet", "--data-dir", tree,
        "--image-size", SIZE, "--suite", "quick", "--n", 6, "--no-progress", "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, (result.output, result.exception)
    report = json.loads((out / "report.json").read_text())
    assert report["model"]["dataset"] == "imagenet"
    attacks = report["attacks"]
    assert {"feature-match", "invariance-eps", "pgd-linf"} <= set(attacks)
    assert not {"metamer", "interpolate", "probe"} & set(attacks)
    assert attacks["invariance-eps"]["metrics"]["neighbour_l2_mean"] > 0  # from train/


def one_line(result: Result) -> str:
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_class_count_the_folders_do_not_have_stops_before_any_attack(
    foreign, tmp_path
) -> None:
    tree, _ = foreign
    five = scripted(colour_classifier(classes=5), tmp_path / "five.pt")
    out = tmp_path / "out"
    line = one_line(audit(
        "attack", "--model", five, "--dataset", "imagenet", "--data-dir", tree,
        "--image-size", SIZE, "--method", "pgd-linf", "--no-progress", "--out", out,
    ))  # fmt: skip
    assert "expected [1, 3]" in line and "[1, 5]" in line
    assert not out.exists()


def test_a_wrong_crop_size_stops_before_any_attack(foreign, tmp_path) -> None:
    tree, _ = foreign
    flat = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * SIZE * SIZE, 3)).eval()
    model = scripted(flat, tmp_path / "flat.pt")
    line = one_line(audit(
        "attack", "--model", model, "--dataset", "imagenet", "--data-dir", tree,
        "--image-size", 2 * SIZE, "--method", "pgd-linf", "--no-progress",
    ))  # fmt: skip
    assert f"[1, 3, {2 * SIZE}, {2 * SIZE}]" in line


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("no val", "val"),
        ("other train classes", "hold different class folders"),
        ("image size for mnist", "--image-size goes with --dataset imagenet"),
        ("image size for a checkpoint", "records the size it trained at"),
    ],
)
def test_bad_folder_audits_are_one_line(foreign, trained, case, expected, tmp_path) -> None:
    tree, model = foreign
    args: list[object] = ["--dataset", "imagenet", "--data-dir", tree]
    if case == "no val":
        (tmp_path / "tree" / "train" / "a").mkdir(parents=True)
        args = ["--dataset", "imagenet", "--data-dir", tmp_path / "tree"]
    elif case == "other train classes":
        for split, names in (("val", ("a", "b")), ("train", ("a", "c"))):
            for name in names:
                (tmp_path / "tree" / split / name).mkdir(parents=True)
        args = ["--dataset", "imagenet", "--data-dir", tmp_path / "tree"]
    elif case == "image size for mnist":
        args = ["--dataset", "mnist", "--image-size", SIZE]
    else:
        model, args = trained[1], ["--image-size", SIZE]
    line = one_line(audit(
        "attack", "--model", model, *args, "--method", "pgd-linf", "--no-progress",
        "--out", tmp_path / "out",
    ))  # fmt: skip
    assert expected in line
    assert not (tmp_path / "out").exists()
