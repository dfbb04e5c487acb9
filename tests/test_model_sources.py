"""Model sources beyond invaudit checkpoints: TorchScript, torch.export, ``py:`` factories.

Real non-invertible models: the zoo's oracle CNN traced to TorchScript, a torchvision
ResNet-18 (one input channel, no max-pooling, no weights downloaded) as TorchScript
and as a ``.pt2`` program, and the small CNN of ``tests/factories/small_cnn.py``
with a ``--weights`` state dict.  Every audit reads the embedded MNIST test set
(an empty ``--data-dir``) and runs with tiny budgets.  Refusals are one line on
stderr, exit code 2, nothing written, and a malicious pickle never runs.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import warnings
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner, Result
from torch import nn

import invaudit
from invaudit.attacks.base import AuditContext
from invaudit.attacks.setup import (
    FOREIGN_DATASETS,
    model_record,
    prepare_audit,
    read_model,
)
from invaudit.cli import main
from invaudit.cli.options import FOREIGN_DATASETS as OPTION_DATASETS
from invaudit.errors import CheckpointError, ConfigError, InputError
from invaudit.models.foreign import ForeignClassifier
from invaudit.models.sources import (
    CHECKPOINT,
    EXPORT,
    FACTORY,
    TORCHSCRIPT,
    check_pt2,
    source_kind,
    state_sha256,
)

TESTS = Path(__file__).resolve().parent
FACTORY_SRC = "py:factories.small_cnn:build"
MNIST_X = torch.rand(2, 1, 28, 28)


class Marker:
    """Unpickling this writes ``path``: the code a malicious model file would run."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.path}",))


class OpenMarker:
    """The same with ``open(path, "w").write(...)`` instead of a shell."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"open({self.path!r}, 'w').write('pwned')",))


def small_cnn(**kwargs: Any) -> nn.Module:
    from factories.small_cnn import small_cnn as build

    return build(**kwargs)


def resnet18_mnist() -> nn.Module:
    """torchvision's ResNet-18 for 1×28×28 inputs: a 1-channel stem, no max-pooling."""
    import torchvision

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = torchvision.models.resnet18(num_classes=10)
        model.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    model.maxpool = nn.Identity()
    return model.eval()


def jit_trace(model: nn.Module, x: torch.Tensor = MNIST_X) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch 2.x: torch.jit.trace is deprecated
        return torch.jit.trace(model.eval(), x)


def trace(model: nn.Module, path: Path) -> Path:
    jit_trace(model).save(str(path))
    return path


def export(model: nn.Module, path: Path, *, dynamic: bool = True) -> Path:
    shapes = ({0: torch.export.Dim("batch")},) if dynamic else None
    program = torch.export.export(model.eval(), (MNIST_X,), dynamic_shapes=shapes)
    torch.export.save(program, str(path))
    return path


@pytest.fixture(autouse=True)
def factories_importable(monkeypatch) -> None:
    """``py:factories.small_cnn:...`` imports from tests/ (how pytest runs is no matter)."""
    monkeypatch.syspath_prepend(str(TESTS))


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Every model file the tests audit, written once."""
    import sys

    sys.path.insert(0, str(TESTS))
    try:
        folder = tmp_path_factory.mktemp("models")
        oracle = invaudit.load_model("zoo:mnist-oracle")
        resnet = resnet18_mnist()
        weights = folder / "small-weights.pt"
        torch.save(small_cnn(seed=3).state_dict(), weights)
        return {
            "oracle-ts": trace(oracle, folder / "oracle-ts.pt"),
            "resnet-ts": trace(resnet, folder / "resnet-ts.pt"),
            "resnet-pt2": export(resnet, folder / "resnet.pt2"),
            "small-pt2": export(small_cnn(), folder / "small.pt2"),
            "static-pt2": export(small_cnn(), folder / "static.pt2", dynamic=False),
            "rgb-ts": trace_rgb(folder / "rgb-ts.pt"),
            "five-ts": trace(small_cnn(num_classes=5), folder / "five-ts.pt"),
            "weights": weights,
            "bad-weights": save(small_cnn(num_classes=5).state_dict(), folder / "five.pt"),
        }
    finally:
        sys.path.remove(str(TESTS))


def trace_rgb(path: Path) -> Path:
    """A 3-channel CNN (expects RGB), traced on RGB inputs."""
    jit_trace(small_cnn(in_channels=3), torch.rand(2, 3, 28, 28)).save(str(path))
    return path


def save(obj: Any, path: Path) -> Path:
    torch.save(obj, path)
    return path


def invoke(*args: Any) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(result: Result) -> str:
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def audit_args(tmp_path: Path) -> list[str]:
    return ["--no-progress", "--data-dir", str(tmp_path / "no-data")]


# --- what a source is -----------------------------------------------------------------


def test_source_kind_by_content_not_by_name(models, tmp_path) -> None:
    renamed = shutil.copy(models["resnet-pt2"], tmp_path / "program.pt")
    scripted = shutil.copy(models["oracle-ts"], tmp_path / "script.pt2")
    assert source_kind(renamed) == EXPORT
    assert source_kind(scripted) == TORCHSCRIPT
    assert source_kind(models["weights"]) == CHECKPOINT  # torch.save zip: data.pkl
    assert source_kind(tmp_path / "missing.pt") == CHECKPOINT  # the reader says "not found"
    assert source_kind(FACTORY_SRC) == FACTORY
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("notes/readme.txt", "hello")
    with pytest.raises(CheckpointError, match="neither a TorchScript archive"):
        source_kind(tmp_path / "other.zip")
    assert FOREIGN_DATASETS == OPTION_DATASETS  # the CLI's copy, for a fast --help


def test_read_model_of_each_source(models) -> None:
    for name, arch in (("oracle-ts", TORCHSCRIPT), ("resnet-pt2", EXPORT)):
        loaded = read_model(models[name], dataset="mnist")
        assert isinstance(loaded.model, ForeignClassifier) and not loaded.invertible
        assert loaded.model.arch == arch and loaded.dataset_name == "mnist"
        assert loaded.model.input_shape == (1, 28, 28) and loaded.model.num_classes == 10
        assert loaded.model.checkpoint_info["dataset"]["bounds"] == (0.0, 1.0)
        assert loaded.model.checkpoint_info["loss"] is None and not loaded.model.training
    loaded = read_model(FACTORY_SRC, dataset="fashion-mnist", weights=models["weights"])
    assert loaded.model.arch == FACTORY_SRC and loaded.dataset_name == "fashion-mnist"
    expected = small_cnn(seed=3)(MNIST_X)
    assert torch.equal(loaded.model(MNIST_X), expected)  # the weights, not the factory's
    checkpoint = read_model("zoo:mnist-oracle", dataset="mnist")  # agrees: accepted
    assert checkpoint.model.arch == "oracle-cnn"


def test_foreign_classifier_casts_moves_and_keeps_its_mode(models) -> None:
    exported = read_model(models["small-pt2"], dataset="mnist").model
    exported.train()  # torch.export programs have no mode to switch: no error
    assert exported.training
    exported = exported.to(dtype=torch.float64).eval()
    assert not exported.training
    ctx = AuditContext(model=exported, data=None)  # type: ignore[arg-type]
    x64 = ctx.to_model(MNIST_X)
    assert x64.dtype == torch.float64 and exported(x64).dtype == torch.float64
    with pytest.raises(InputError, match="expected dtype torch.float64"):
        exported(MNIST_X)
    with pytest.raises(InputError, match=r"shape \[B, 1, 28, 28\]"):
        exported(torch.rand(2, 3, 28, 28, dtype=torch.float64))
    # A module without any parameter still answers the attacks' device/dtype question.
    bare = ForeignClassifier(
        jit_trace(nn.Sequential(nn.Flatten(), nn.Identity()), torch.rand(2, 4)),
        arch="torchscript",
        dataset={"name": "toy", "input_shape": [4], "num_classes": 4},
    )
    assert AuditContext(model=bare, data=None).to_model(torch.rand(3, 4)).dtype == torch.float32
    assert bare.predict(torch.eye(4)).tolist() == [0, 1, 2, 3]


def test_model_record_names_each_source(models) -> None:
    loaded = read_model(models["oracle-ts"], dataset="mnist")
    record = model_record(loaded.path, loaded.model)
    assert record["arch"] == "torchscript" and record["source"] == "torchscript"
    assert record["path"] == str(models["oracle-ts"]) and len(record["sha256"]) == 64
    loaded = read_model(FACTORY_SRC, dataset="mnist", weights=models["weights"])
    record = model_record(loaded.path, loaded.model)
    assert record["path"] == FACTORY_SRC and record["weights"] == str(models["weights"])
    assert record["sha256_of"] == "weights file" and record["source"] == "py"
    assert record["sha256"] == invaudit.atomic.file_sha256(models["weights"])
    bare = read_model(FACTORY_SRC, dataset="mnist")
    record = model_record(bare.path, bare.model)
    assert record["sha256_of"] == "state dict" and record["weights"] is None
    assert record["sha256"] == state_sha256(small_cnn())  # the same init, the same digest
    assert record["sha256"] != state_sha256(small_cnn(seed=3))


# --- audits run on every source ---------------------------------------------------------


@pytest.mark.parametrize("name", ["oracle-ts", "resnet-ts", "resnet-pt2", "factory"])
def test_attack_runs_on_each_source(models, name, tmp_path) -> None:
    model = ["--model", FACTORY_SRC, "--weights", models["weights"]] if name == "factory" else [
        "--model", models[name]
    ]  # fmt: skip
    out = tmp_path / "audit"
    result = invoke(
        "attack", *model, "--dataset", "mnist", "--method", "pgd-linf", "--n", 8,
        "--steps", 2, "--epsilons", "0.1", "--oracle", "none", "--out", out,
        *audit_args(tmp_path),
    )  # fmt: skip
    assert result.exit_code == 0, (result.output, result.exception)
    record = json.loads((out / "pgd-linf.json").read_text())
    metrics = record["metrics"]
    assert metrics["n"] == 8 and 0 <= metrics["robust_accuracy"]["0.1"] <= metrics["clean_accuracy"]
    assert record["settings"]["dataset"] == "mnist" and record["settings"]["dtype"] == "float32"
    assert record["model"]["source"] == ("py" if name == "factory" else record["model"]["arch"])
    if name == "oracle-ts":  # the zoo oracle itself, as TorchScript: it reads MNIST
        assert metrics["clean_accuracy"] >= 0.875


@pytest.mark.parametrize("name", ["oracle-ts", "small-pt2", "factory"])
def test_report_on_each_source(models, name, tmp_path) -> None:
    model = ["--model", FACTORY_SRC, "--weights", models["weights"]] if name == "factory" else [
        "--model", models[name]
    ]  # fmt: skip
    out = tmp_path / "report"
    result = invoke(
        "report", *model, "--dataset", "mnist", "--suite", "quick", "--n", 8,
        "--linf-epsilons", "0.1", "--l2-epsilons", "1", "--oracle", "none", "--out", out,
        *audit_args(tmp_path),
    )  # fmt: skip
    assert result.exit_code == 0, (result.output, result.exception)
    report = json.loads((out / "report.json").read_text())
    assert report["model"]["invertible"] is False and report["invertibility"] is None
    assert report["model"]["input_shape"] == [1, 28, 28] and report["model"]["num_classes"] == 10
    assert not {"metamer", "interpolate", "probe"} & set(report["attacks"])
    assert {"fgsm", "pgd-linf"} <= set(report["attacks"])
    assert (out / "report.html").is_file() and (out / "report.md").is_file()


def test_a_torchscript_oracle_judges_a_factory_model(models, tmp_path) -> None:
    out = tmp_path / "audit"
    result = invoke(
        "attack", "--model", FACTORY_SRC, "--dataset", "mnist", "--method", "fgsm",
        "--n", 8, "--epsilons", "0.1", "--oracle", models["oracle-ts"], "--out", out,
        *audit_args(tmp_path),
    )  # fmt: skip
    assert result.exit_code == 0, (result.output, result.exception)
    oracle = json.loads((out / "fgsm.json").read_text())["settings"]["oracle"]
    assert oracle["name"] == "torchscript:oracle-ts.pt" and oracle["origin"] == "--oracle"
    assert oracle["sha256"] == invaudit.atomic.file_sha256(models["oracle-ts"])


def test_float64_is_cast_or_refused_in_one_line(models, tmp_path) -> None:
    loaded = read_model(models["resnet-pt2"], dataset="mnist")
    setup = prepare_audit(loaded, dtype="float64", data_dir=str(tmp_path / "no-data"))
    assert setup.dtype == "float64" and next(setup.model.parameters()).dtype == torch.float64

    class Frozen(nn.Module):  # a weight captured as a constant: .to() cannot cast it
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.rand(10, 784)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return nn.functional.linear(x.flatten(1), self.w)

    path = tmp_path / "frozen.pt"
    jit_trace(Frozen()).save(str(path))
    with pytest.raises(ConfigError, match="float32 only: try --dtype float32") as err:
        prepare_audit(read_model(path, dataset="mnist"), dtype="float64",
                      data_dir=str(tmp_path / "no-data"))  # fmt: skip
    assert "\n" not in str(err.value)


# --- refusals ---------------------------------------------------------------------------


def _malicious(tmp_path: Path, marker: Path, kind: str) -> Path:
    path = tmp_path / f"evil-{kind}.pt"
    if kind == "torch.save":
        torch.save({"state_dict": Marker(marker)}, path)
    else:
        path.write_bytes(pickle.dumps(OpenMarker(marker)))
    return path


def test_the_malicious_pickles_would_run(tmp_path) -> None:
    """The files the refusals below are given do run code when unpickled."""
    for kind in ("torch.save", "pickle"):
        marker = tmp_path / f"ran-{kind}"
        path = _malicious(tmp_path, marker, kind)
        torch.load(path, weights_only=False) if kind == "torch.save" else pickle.loads(
            path.read_bytes()
        )  # fmt: skip
        assert marker.exists()


@pytest.mark.parametrize("kind", ["torch.save", "pickle"])
@pytest.mark.parametrize("option", ["--model", "--oracle", "--weights"])
def test_malicious_pickle_is_refused_and_never_run(models, option, kind, tmp_path) -> None:
    marker = tmp_path / "pwned"
    evil = _malicious(tmp_path, marker, kind)
    given = {
        "--model": ["--model", evil],
        "--oracle": ["--model", models["oracle-ts"], "--dataset", "mnist", "--oracle", evil],
        "--weights": ["--model", FACTORY_SRC, "--dataset", "mnist", "--weights", evil],
    }[option]
    out = tmp_path / "out"
    for command in (["attack", "--method", "fgsm", "--n", 4], ["report", "--n", 4]):
        result = invoke(*command, *given, "--out", out, *audit_args(tmp_path))
        line = one_line_error(result)
        assert str(evil) in line and ("refused" in line or "not a readable" in line), line
        assert not marker.exists() and not out.exists()


def test_wrong_input_shape_is_refused_before_any_attack(models, tmp_path) -> None:
    out = tmp_path / "out"
    result = invoke("attack", "--model", models["rgb-ts"], "--dataset", "mnist",
                    "--method", "fgsm", "--n", 4, "--oracle", "none", "--out", out,
                    *audit_args(tmp_path))  # fmt: skip
    line = one_line_error(result)
    assert "[1, 1, 28, 28]" in line and "3 channels" in line and "expected output [1, 10]" in line
    assert not out.exists()


def test_wrong_class_count_is_refused_before_any_attack(models, tmp_path) -> None:
    out = tmp_path / "out"
    result = invoke("report", "--model", models["five-ts"], "--dataset", "mnist",
                    "--n", 4, "--oracle", "none", "--out", out, *audit_args(tmp_path))  # fmt: skip
    line = one_line_error(result)
    assert "[1, 5]" in line and "expected [1, 10] (10 classes of mnist)" in line, line
    assert not out.exists()


def test_one_batch_size_export_is_refused_with_a_hint(models, tmp_path) -> None:
    result = invoke("attack", "--model", models["static-pt2"], "--dataset", "mnist",
                    "--method", "fgsm", "--n", 4, "--oracle", "none", *audit_args(tmp_path))
    assert "dynamic batch" in one_line_error(result)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model", "{oracle-ts}"], "give --dataset (mnist, fashion-mnist or imagenet)"),
        (["--model", "{resnet-pt2}"], "is a torch.export model, not an invaudit checkpoint"),
        (["--model", "{oracle-ts}", "--dataset", "cifar10"], "got 'cifar10'"),
        (["--model", "py:no_such_pkg.models:build", "--dataset", "mnist"],
         "cannot import no_such_pkg.models"),
        (["--model", "py:factories.small_cnn:missing", "--dataset", "mnist"],
         "has no function missing"),
        (["--model", "py:factories.small_cnn:not_a_model", "--dataset", "mnist"],
         "returned dict, expected a torch.nn.Module"),
        (["--model", "py:factories.small_cnn", "--dataset", "mnist"],
         "expected py:package.module:function"),
        (["--model", FACTORY_SRC, "--dataset", "mnist", "--weights", "{bad-weights}"],
         "is [5, 784] in the file, [10, 784] in the model"),
        (["--model", "{oracle-ts}", "--dataset", "mnist", "--weights", "{weights}"],
         "--weights goes with a py:package.module:function model only"),
        (["--model", FACTORY_SRC, "--dataset", "mnist", "--weights", "{oracle-ts}"],
         "is a torchscript model, not a state dict: give it as --model"),
        (["--model", "zoo:mnist-oracle", "--weights", "{weights}"],
         "--weights goes with a py:package.module:function model only"),
        (["--model", "zoo:mnist-oracle", "--dataset", "fashion-mnist"],
         "--dataset fashion-mnist disagrees"),
    ],
)
def test_bad_sources_are_one_line(models, args, expected, tmp_path) -> None:
    args = [a.format(**models) if a.startswith("{") else a for a in args]
    out = tmp_path / "out"
    for command in (["attack", "--method", "fgsm", "--n", 4], ["report", "--n", 4]):
        line = one_line_error(invoke(*command, *args, "--out", out, *audit_args(tmp_path)))
        assert expected in line, line
        assert not out.exists()


def test_compare_takes_foreign_models_and_one_factory_weights(models, tmp_path) -> None:
    out = tmp_path / "cmp"
    result = invoke("compare", FACTORY_SRC, "py:factories.small_cnn:build", "--label", "a",
                    "--label", "b", "--dataset", "mnist", "--weights", models["weights"],
                    "--out", out, *audit_args(tmp_path))  # fmt: skip
    assert "exactly one py:package.module:function model" in one_line_error(result)
    result = invoke(
        "compare", models["small-pt2"], FACTORY_SRC, "--label", "exported", "--label",
        "factory", "--dataset", "mnist", "--weights", models["weights"], "--n", 4,
        "--linf-epsilons", "0.1", "--l2-epsilons", "1", "--oracle", "none", "--out", out,
        *audit_args(tmp_path),
    )  # fmt: skip
    assert result.exit_code == 0, (result.output, result.exception)
    factory = json.loads((out / "factory" / "report.json").read_text())["model"]
    assert factory["path"] == FACTORY_SRC and factory["weights"] == str(models["weights"])
    exported = json.loads((out / "exported" / "report.json").read_text())["model"]
    assert exported["arch"] == "torch.export"


# --- a .pt2 archive that torch.export.load would run code from ----------------------------


def _rewrite(src: Path, dst: Path, change: Any) -> Path:
    """Copy the zip ``src`` to ``dst``, passing each member's bytes through ``change``."""
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w") as new:
        for info in old.infolist():
            data = change(info.filename, old.read(info.filename))
            if data is not None:
                new.writestr(info.filename, data)
        extra = change("", b"")
        if extra is not None:
            new.writestr(extra[0], extra[1])
    return dst


def _tampered(models: dict[str, Path], tmp_path: Path, how: str, marker: Path) -> Path:
    shell = f"__import__('os').system('touch {marker}')"

    def change(name: str, data: bytes) -> Any:
        if name == "":  # a member to add
            aoti = (f"{prefix}/data/aotinductor/model/model.so", b"\x7fELF")
            return aoti if how == "aoti" else None
        if how == "pickle" and name.endswith("model_weights_config.json"):
            config = json.loads(data)
            first = next(iter(config["config"].values()))
            first["use_pickle"] = True
            return json.dumps(config).encode()
        if how == "pickle" and name.endswith("data/weights/weight_0"):
            buffer = io.BytesIO()
            torch.save(Marker(marker), buffer)
            return buffer.getvalue()
        if name.endswith("models/model.json"):
            program = json.loads(data)
            if how == "guards":
                program["guards_code"] = [shell]
            text = json.dumps(program)
            if how == "expression":
                text = text.replace("Symbol('s", f"{shell} + Symbol('s", 1)
            if how == "target":
                text = text.replace('"torch.ops.aten.relu.default"', '"torch.os.system"', 1)
            return text.encode()
        return data

    prefix = zipfile.ZipFile(models["small-pt2"]).namelist()[0].split("/")[0]
    return _rewrite(models["small-pt2"], tmp_path / f"{how}.pt2", change)


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("pickle", "is stored as a pickle"),
        ("expression", "a shape expression is not arithmetic"),
        ("guards", "a guard is not a comparison of input sizes"),
        ("target", "its graph calls 'torch.os.system'"),
        ("aoti", "which torch.export.save does not write"),
    ],
)
def test_tampered_pt2_is_refused_and_never_run(models, how, expected, tmp_path) -> None:
    marker = tmp_path / "pwned"
    path = _tampered(models, tmp_path, how, marker)
    with pytest.raises(CheckpointError, match=expected):
        check_pt2(path)
    line = one_line_error(invoke("attack", "--model", path, "--dataset", "mnist", "--method",
                                 "fgsm", "--n", 4, *audit_args(tmp_path)))  # fmt: skip
    assert expected in line and "nothing in it was executed" in line
    assert not marker.exists()


def test_untampered_pt2_passes_the_vetting(models) -> None:
    check_pt2(models["small-pt2"])
    check_pt2(models["resnet-pt2"])


def test_compare_sets_a_firevnet_beside_a_foreign_cnn(models, tmp_path) -> None:
    """Across kinds: each model gets the suite it can run, the comparison keeps both."""
    out = tmp_path / "kinds"
    result = invoke(
        "compare", "zoo:mnist-ce", models["small-pt2"], "--dataset", "mnist", "--n", 8,
        "--suite", "quick", "--linf-epsilons", "0.1", "--l2-epsilons", "1", "--out", out,
        *audit_args(tmp_path),
    )  # fmt: skip
    assert result.exit_code == 0, (result.output, result.exception)
    label = Path(models["small-pt2"]).stem
    ran = {name: set(json.loads((out / name / "report.json").read_text())["attacks"])
           for name in ("mnist-ce", label)}  # fmt: skip
    assert {"metamer", "interpolate", "probe"} <= ran["mnist-ce"]
    assert not {"metamer", "interpolate", "probe"} & ran[label]
    assert {"feature-match", "invariance-eps", "pgd-linf"} <= ran[label] & ran["mnist-ce"]
    compared = json.loads((out / "compare.json").read_text())
    assert compared["story"] is not None and "z_n" not in compared["story"]
