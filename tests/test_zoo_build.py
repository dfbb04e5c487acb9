"""experiments/build_zoo.py and zoo_recipes.py: a checkpoint counts as a recipe's only if it is."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from invaudit.cli import main
from invaudit.models.checkpoint import load_model, read_checkpoint

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
sys.path.insert(0, str(EXPERIMENTS))

import build_zoo  # noqa: E402
from zoo_recipes import RECIPES, Recipe, recipe_mismatches  # noqa: E402

TINY = ("--dataset", "spheres", "--dim", "6", "--n-train", "600", "--n-test", "200",
        "--set", "hidden=16", "--epochs", "1", "--seed", "3")  # fmt: skip


@pytest.fixture(scope="module")
def tiny_ice(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("zoo") / "tiny.pt"
    args = ["train", *TINY, "--loss", "ice", "--device", "cpu", "--no-progress", "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return out


def test_a_checkpoint_matches_its_own_command_and_no_other(tiny_ice) -> None:
    stored = read_checkpoint(tiny_ice)["training"]["settings"]
    assert recipe_mismatches(Recipe("t", "", "classifier", (*TINY, "--loss", "ice")), stored) == []
    # Where the run happened does not matter; what it computed does.
    elsewhere = (*TINY, "--loss", "ice", "--device", "cpu", "--data-dir", "/nowhere")
    assert recipe_mismatches(Recipe("t", "", "classifier", elsewhere), stored) == []
    wrong = recipe_mismatches(Recipe("t", "", "classifier", (*TINY, "--loss", "ce")), stored)
    assert wrong == ["loss: 'ice' != 'ce'"]
    other_seed = [a if a != "3" else "4" for a in TINY]
    assert any(
        m.startswith("seed")
        for m in recipe_mismatches(Recipe("t", "", "classifier", (*other_seed, "--loss", "ice")),
                                   stored)  # fmt: skip
    )


def test_every_recipe_parses_and_names_a_seed() -> None:
    for recipe in RECIPES:
        assert "--seed" in recipe.train_args
        assert recipe.command().startswith("invaudit train ")
        assert recipe_mismatches(recipe, {}) != []  # an empty record matches nothing


def test_pack_drops_the_training_state_and_keeps_the_model(tiny_ice, tmp_path, monkeypatch):
    monkeypatch.setattr(build_zoo, "ZOO", tmp_path)
    payload = torch.load(tiny_ice, map_location="cpu", weights_only=True)
    assert "train_state" in payload
    packed = build_zoo.pack(payload, "tiny")
    assert packed.stat().st_size < tiny_ice.stat().st_size
    slim = read_checkpoint(packed)
    assert "train_state" not in slim and slim["training"]["history"]
    original, small = load_model(tiny_ice), load_model(packed)
    x = torch.randn(5, 6)
    assert torch.equal(original(x), small(x))


def test_full_checkpoint_refuses_a_foreign_or_unfinished_run(tiny_ice, tmp_path) -> None:
    (tmp_path / "x.pt").write_bytes(tiny_ice.read_bytes())
    recipe = Recipe("x", "", "classifier", (*TINY, "--loss", "ice"))
    assert build_zoo.full_checkpoint(recipe, tmp_path, "unused", train=False)["training"]
    foreign = Recipe("x", "", "classifier", (*TINY, "--loss", "ce"))
    with pytest.raises(build_zoo.BuildError, match="not trained by the recipe"):
        build_zoo.full_checkpoint(foreign, tmp_path, "unused", train=False)
    longer = Recipe("x", "", "classifier", (*TINY[:-4], "--epochs", "2", "--seed", "3",
                                            "--loss", "ice"))  # fmt: skip
    with pytest.raises(build_zoo.BuildError, match="epochs"):
        build_zoo.full_checkpoint(longer, tmp_path, "unused", train=False)
    with pytest.raises(build_zoo.BuildError, match="pass --train"):
        build_zoo.full_checkpoint(Recipe("y", "", "classifier", TINY), tmp_path, "", False)
