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


# -- issue 14: bad values are refused before any work (items 5-7) ------------------------


def _cli(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def _one_line(result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def spheres_ckpt(tmp_path_factory):
    from invaudit.data import dataset_info
    from invaudit.models.checkpoint import model_payload, save_checkpoint

    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = build("firevnet-fc", dim=6, num_classes=2, blocks=1, hidden=8)
    payload = model_payload(net)
    options = {"dim": 6, "radii": [1.0, 10.0], "n_train": 200, "n_test": 100, "seed": 0}
    info = {"name": "spheres", **dataset_info("spheres", dim=6, radii=(1.0, 10.0))}
    payload.update(loss="ce", dataset={**info, "options": options})
    path = tmp_path_factory.mktemp("ckpt") / "spheres.pt"
    save_checkpoint(path, payload)
    return path


@pytest.fixture
def no_audit(monkeypatch) -> None:
    """A suite or attack that starts fails the test: the refusal must come first."""
    import invaudit.reports.runner as runner

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the audit started before the refusal")

    monkeypatch.setattr(runner, "run_suite", refuse)
    monkeypatch.setattr("invaudit.attacks.setup.prepare_audit", refuse)


@pytest.mark.parametrize(
    "option, value, fragment",
    [
        ("--epsilons", "nan", "finite"),
        ("--epsilons", "inf", "finite"),
        ("--epsilons", "-0.1", ">= 0"),
        ("--epsilons", ",", "at least one"),
        ("--epsilons", "0.1,,nan", "finite"),
        ("--linf-epsilons", "nan", "finite"),
        ("--l2-epsilons", "-1", ">= 0"),
    ],
)
def test_report_refuses_bad_epsilons_before_any_attack(
    spheres_ckpt, tmp_path, no_audit, option, value, fragment
) -> None:
    out = tmp_path / "r"
    result = _cli("report", "--model", spheres_ckpt, "--out", out, "--n", 8, "--no-progress",
                  f"{option}={value}")  # fmt: skip
    line = _one_line(result)
    assert option in line and fragment in line, line
    assert not out.exists()


def test_bad_epsilons_fail_the_suite_plan_too() -> None:
    from invaudit.reports.suite import plan_suite

    for bad in ([float("nan")], [-0.1], [], {"l2": [float("inf")]}):
        with pytest.raises(ConfigError, match="epsilons"):
            plan_suite("quick", "spheres", epsilons=bad)


@pytest.mark.parametrize("seed", ["99999999999999999999999", "-1", str(2**32)])
@pytest.mark.parametrize("command", ["attack", "report", "compare"])
def test_a_seed_out_of_range_is_a_usage_error(spheres_ckpt, tmp_path, no_audit, command,
                                             seed) -> None:  # fmt: skip
    out = tmp_path / "o"
    args = {
        "attack": ["attack", "--model", spheres_ckpt, "--method", "metamer"],
        "report": ["report", "--model", spheres_ckpt],
        "compare": ["compare", spheres_ckpt, spheres_ckpt, "--label", "a", "--label", "b"],
    }[command]
    result = _cli(*args, "--out", out, "--n", 8, "--no-progress", "--seed", seed)
    assert result.exit_code == 2, (result.output, result.exception)
    assert "--seed" in result.stderr and "0<=x<=4294967295" in result.stderr
    assert not out.exists()


def _tamper(good, tmp_path, name: str, **changes: object):
    from invaudit.models.checkpoint import save_checkpoint

    payload = torch.load(good, weights_only=True)
    for key, value in changes.items():
        if value is _DROP:
            del payload[key]
        else:
            payload[key] = value
    path = tmp_path / f"{name}.pt"
    save_checkpoint(path, payload)
    return path


_DROP = object()
_WRONG_FIELDS = {
    "config-a-string": {"config": "blocks=1"},
    "config-a-list": {"config": [1, 2]},
    "config-key-not-text": {"config": {1: 2}},
    "state_dict-a-string": {"state_dict": "weights"},
    "state_dict-holds-text": {"state_dict": {"layers.0.weight": "x"}},
    "arch-a-number": {"arch": 3},
    "arch-a-list": {"arch": ["firevnet-fc"]},
    "dataset-a-string": {"dataset": "spheres"},
    "dataset-name-a-number": {"dataset": {"name": 3}},
    "training-a-string": {"training": "3 epochs"},
    "metrics-a-list": {"metrics": [0.1]},
    "loss-a-number": {"loss": 1},
}


@pytest.mark.parametrize("case", list(_WRONG_FIELDS))
def test_a_checkpoint_with_fields_of_the_wrong_type_is_one_line(spheres_ckpt, tmp_path,
                                                               case) -> None:  # fmt: skip
    from invaudit.errors import CheckpointError
    from invaudit.models.checkpoint import load_model

    path = _tamper(spheres_ckpt, tmp_path, case, **_WRONG_FIELDS[case])
    with pytest.raises(CheckpointError) as excinfo:
        load_model(path)
    assert str(path) in str(excinfo.value) and "\n" not in str(excinfo.value)
    for args in (["info", path], ["attack", "--model", path, "--method", "metamer", "--n", 8,
                                  "--no-progress"]):  # fmt: skip
        line = _one_line(_cli(*args))
        assert line.startswith(f"invaudit: error: {path}"), line
