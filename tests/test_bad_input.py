"""Bad input fails with one clear InvauditError line, and exit code 2 on the CLI."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from invaudit import InvauditError, build
from invaudit.cli import main
from invaudit.errors import ConfigError, InputError


@pytest.fixture(scope="module")
def model():
    return build("firevnet-mnist", image_size=8, blocks=1, hidden=8, num_classes=4).eval()


@pytest.mark.parametrize(
    "x, fragment",
    [
        (torch.rand(2, 1, 28, 28), "shape [B, 1, 8, 8]"),
        (torch.rand(1, 8, 8), "shape [B, 1, 8, 8]"),
        (torch.rand(0, 1, 8, 8), "shape [B, 1, 8, 8]"),
        (torch.rand(2, 1, 8, 8, dtype=torch.float64), "expected dtype torch.float32"),
        (torch.randint(0, 255, (2, 1, 8, 8), dtype=torch.uint8), "expected dtype torch.float32"),
        (torch.full((2, 1, 8, 8), float("nan")), "NaN or inf"),
        (torch.tensor([[[[float("inf")] * 8] * 8]] * 2), "NaN or inf"),
        ([[0.0]], "got list"),
    ],
)
def test_bad_tensors_name_what_was_expected(model, x, fragment: str) -> None:
    with pytest.raises(InputError) as info:
        model(x)
    message = str(info.value)
    assert fragment in message and "\n" not in message


def test_bad_latent_and_merge(model) -> None:
    with pytest.raises(InputError, match=r"latent z: expected .*shape \[B, 64\]"):
        model.inverse(torch.randn(2, 63))
    with pytest.raises(InputError, match="merge"):
        model.merge(torch.randn(2, 3), torch.randn(2, 60))


@pytest.mark.parametrize(
    "arch, config, fragment",
    [
        ("resnet", {}, "unknown arch 'resnet'"),
        ("firevnet-fc", {"depth": 3}, "unknown config key(s) depth"),
        ("firevnet-fc", {"dim": "100"}, "dim must be int"),
        ("firevnet-fc", {"num_classes": 200}, "num_classes must be between 2 and 100"),
        ("firevnet-mnist", {"image_size": 27}, "divisible by 2"),
        ("firevnet-mnist", {"coupling": "spline"}, "coupling must be one of"),
        ("firevnet-mnist", {"batchnorm": 1}, "batchnorm must be true or false"),
        ("firevnet-imagenet", {"image_size": 48}, "divisible by 32"),
        ("firevnet-imagenet", {"image_size": 32, "num_classes": 5000}, "final channels"),
    ],
)
def test_bad_configs(arch: str, config: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        build(arch, **config)
    assert fragment in str(info.value)
    assert isinstance(info.value, InvauditError)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["check", "--arch", "nope"], "unknown arch 'nope'"),
        (["check", "--arch", "firevnet-fc", "--set", "hidden"], "--set expects KEY=VALUE"),
        (["check", "--arch", "firevnet-fc", "--set", "blocks=-1"], "blocks must be a positive"),
    ],
)
def test_cli_errors_are_one_line_and_exit_2(args: list[str], fragment: str) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.stderr
    assert result.stdout == ""


def test_cli_check_reports_an_exact_inverse() -> None:
    result = CliRunner().invoke(main, ["check", "--arch", "firevnet-fc", "--set", "dim=20"])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.stdout.splitlines() if "max |F^-1(F(x)) - x|" in x)
    assert float(line.split()[4]) <= 1e-4 and "ok" in line
