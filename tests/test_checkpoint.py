"""Checkpoints load with weights_only; every bad file is one CheckpointError line, exit 2."""

from __future__ import annotations

import pathlib

import pytest
import torch
from click.testing import CliRunner

from invaudit import load_model
from invaudit.cli import main
from invaudit.errors import CheckpointError
from invaudit.models import build
from invaudit.models.checkpoint import model_payload, save_checkpoint
from invaudit.zoo import resolve_model_path


def tiny_model():
    model = build("firevnet-fc", dim=6, num_classes=2, blocks=1, hidden=8)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


@pytest.fixture
def good(tmp_path) -> pathlib.Path:
    path = tmp_path / "good.pt"
    save_checkpoint(path, model_payload(tiny_model()))
    return path


def test_round_trip_gives_the_same_function(good) -> None:
    payload = torch.load(good, weights_only=True)
    model = load_model(good)
    original = build("firevnet-fc", **payload["config"])
    original.load_state_dict(payload["state_dict"])
    x = torch.randn(5, 6)
    assert not model.training
    assert torch.equal(model(x), original.eval()(x))


class _Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def bad_files(tmp_path, good) -> dict[str, tuple[pathlib.Path, str]]:
    data = good.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.pt").write_text("not a checkpoint at all\n")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    payload = torch.load(good, weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, tmp_path / "future.pt")
    payload = torch.load(good, weights_only=True)
    payload["config"] = {**payload["config"], "hidden": 16}
    torch.save(payload, tmp_path / "mismatch.pt")
    torch.save(
        {"format": "invaudit-checkpoint", "evil": _Payload(tmp_path / "pwned")},
        tmp_path / "evil.pt",
    )
    return {
        "missing": (tmp_path / "nope.pt", "not found"),
        "truncated": (tmp_path / "truncated.pt", "not a readable torch checkpoint"),
        "text": (tmp_path / "text.pt", "not a readable torch checkpoint"),
        "foreign": (tmp_path / "foreign.pt", "not an invaudit checkpoint"),
        "future": (tmp_path / "future.pt", "format version 99"),
        "mismatch": (tmp_path / "mismatch.pt", "weights do not fit firevnet-fc"),
        "evil": (tmp_path / "evil.pt", "refused to load"),
    }


@pytest.mark.parametrize(
    "case", ["missing", "truncated", "text", "foreign", "future", "mismatch", "evil"]
)
def test_bad_checkpoints_raise_one_line(tmp_path, good, case: str) -> None:
    path, fragment = bad_files(tmp_path, good)[case]
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    assert fragment in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "pwned").exists()  # the malicious pickle never ran


@pytest.mark.parametrize("case", ["truncated", "evil", "future"])
def test_cli_refuses_bad_checkpoints_with_exit_2(tmp_path, good, case: str) -> None:
    path, fragment = bad_files(tmp_path, good)[case]
    result = CliRunner().invoke(main, ["info", str(path)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0]
    assert not (tmp_path / "pwned").exists()


def test_cli_info_and_check_on_a_good_checkpoint(good) -> None:
    result = CliRunner().invoke(main, ["info", str(good)])
    assert result.exit_code == 0 and "firevnet-fc" in result.stdout
    result = CliRunner().invoke(main, ["check", "--model", str(good)])
    assert result.exit_code == 0 and "ok" in result.stdout


def test_configs_stored_before_the_stability_keys_load_as_they_were(tmp_path) -> None:
    """An old firevnet-mnist checkpoint (no stability keys) rebuilds the legacy blocks."""
    from invaudit.models.firevnet import MNIST_LEGACY
    from invaudit.models.layers import InvertibleConv1x1, LogitTransform

    legacy = build("firevnet-mnist", image_size=8, blocks=1, hidden=8, num_classes=4,
                   batchnorm=True, **MNIST_LEGACY)  # fmt: skip
    x = torch.rand(4, 1, 8, 8)
    legacy.train()
    legacy(x)
    payload = model_payload(legacy.eval())
    for key in MNIST_LEGACY:
        del payload["config"][key]  # as written before the keys existed
    save_checkpoint(tmp_path / "old.pt", payload)
    loaded = load_model(tmp_path / "old.pt")
    assert not any(isinstance(m, LogitTransform) for m in loaded.modules())
    assert any(isinstance(m, InvertibleConv1x1) for m in loaded.modules())
    assert torch.equal(loaded(x), legacy(x))


def test_zoo_models_made_before_the_stability_keys_still_load() -> None:
    for name in ("mnist-ce", "mnist-ice"):
        model = load_model(resolve_model_path(f"zoo:{name}"))
        x = torch.rand(2, 1, 28, 28)
        with torch.no_grad():
            assert (model.inverse(model(x)) - x).abs().max() < 1e-4
