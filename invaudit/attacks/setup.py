"""Everything an audit needs besides the attack: model on its device, data, oracle.

``invaudit attack`` and the report runner share this so a model is loaded, cast
and checked the same way whichever command audits it.  A model is an invaudit
checkpoint (a path or ``zoo:NAME``) or any source of :mod:`invaudit.models.sources`
(TorchScript, torch.export, ``py:package.module:function``), which names its
dataset with ``--dataset``; before any attack runs, the model (and a learned
oracle) must map one test input of that dataset to ``[1, num_classes]`` logits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from ..atomic import file_sha256
from ..data import dataset_info, image_folder_classes, resolve_data_dir
from ..data.audit import AuditData, audit_data
from ..devices import resolve_device
from ..errors import ConfigError, InvauditError
from ..models.checkpoint import load_model
from ..models.foreign import ForeignClassifier
from ..models.sources import (
    CHECKPOINT,
    FACTORY,
    error_line,
    load_source,
    source_kind,
    state_sha256,
)
from ..zoo import is_zoo_selector, resolve_model_path, zoo_oracle_for
from .oracle import ClassifierOracle, Oracle, default_oracle

#: ``--oracle none``: audit an image model without any oracle (the zoo's included).
NO_ORACLE = "none"
#: The datasets ``--dataset`` may name for a model that is not an invaudit checkpoint
#: (``imagenet``: any ImageFolder tree, ``val/`` audited, ``train/`` for the fits).
FOREIGN_DATASETS = ("mnist", "fashion-mnist", "imagenet")
#: ``--image-size`` when ``--dataset imagenet`` does not give one.
DEFAULT_IMAGE_SIZE = 224


@dataclass
class LoadedModel:
    """A model read from its source, before any data is touched (cheap to check).

    ``path`` is the file itself, also for a ``zoo:NAME`` selector, so hashes and
    records name what was actually read; for a ``py:`` factory it is the
    ``py:package.module:function`` string.
    """

    path: str
    model: torch.nn.Module
    dataset: dict[str, Any]

    @property
    def dataset_name(self) -> str:
        return self.dataset.get("name", "?")

    @property
    def invertible(self) -> bool:
        from ..models.classifier import InvertibleClassifier

        return isinstance(self.model, InvertibleClassifier)


@dataclass
class AuditSetup:
    """A model ready to audit: on its device and dtype, with its test data and oracle."""

    path: str
    model: torch.nn.Module
    data: AuditData
    oracle: Oracle | None
    device: torch.device
    dtype: str


def dataset_record(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    image_size: int | None = None,
) -> dict[str, Any]:
    """What ``--dataset NAME`` says about a foreign model's data, shaped like the
    ``dataset`` record of a checkpoint (name, input shape, classes, bounds).

    ``imagenet`` reads its class count from the class folders of ``data_dir``'s
    ``val/`` (and checks ``train/`` agrees); its images are centre crops of
    ``image_size`` pixels (default :data:`DEFAULT_IMAGE_SIZE`).
    """
    if name not in FOREIGN_DATASETS:
        raise ConfigError(
            f"--dataset must be {', '.join(FOREIGN_DATASETS[:-1])} or {FOREIGN_DATASETS[-1]}, "
            f"got {name!r}"
        )
    if image_size is not None and name != "imagenet":
        raise ConfigError(
            f"--image-size goes with --dataset imagenet (class-folder images); {name} images "
            "have one size"
        )
    described, options = dataset_info(name), {}
    if name == "imagenet":
        root = resolve_data_dir(data_dir).resolve()
        options = {"root": str(root), "image_size": image_size or DEFAULT_IMAGE_SIZE}
        described = dataset_info(name, image_size=options["image_size"])
        described["num_classes"] = len(image_folder_classes(root))
    return {
        "name": name,
        "bounds": tuple(float(b) for b in described["bounds"]),
        "input_shape": [int(s) for s in described["input_shape"]],
        "num_classes": int(described["num_classes"]),
        "normalization": "pixels in [0, 1] (k / 255), no mean/std: the model takes raw pixels",
        **({"options": options} if options else {}),
    }


def read_model(
    path: str | os.PathLike,
    *,
    dataset: str | dict[str, Any] | None = None,
    weights: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    image_size: int | None = None,
) -> LoadedModel:
    """Load the model ``path`` names: a checkpoint path, ``zoo:NAME``, a TorchScript or
    torch.export file, or ``py:package.module:function``.

    ``dataset`` (a name, see :data:`FOREIGN_DATASETS`, or a record) is required for
    every model but a checkpoint, whose own record it must then agree with;
    ``weights`` (a state dict file) goes with a ``py:`` factory only; ``data_dir`` and
    ``image_size`` say where ``imagenet``'s class folders are and how large its crops.
    """
    checkpoint = is_zoo_selector(path) or source_kind(path) == CHECKPOINT
    if checkpoint and image_size is not None:
        raise ConfigError(
            f"--image-size goes with a model that is not an invaudit checkpoint; {path} "
            "records the size it trained at"
        )
    record = dataset
    if isinstance(dataset, str):
        # A checkpoint's --dataset is only compared with its own record, by name.
        record = (
            {"name": dataset} if checkpoint
            else dataset_record(dataset, data_dir=data_dir, image_size=image_size)
        )  # fmt: skip
    if checkpoint:
        if weights is not None:
            raise ConfigError(
                f"--weights goes with a py:package.module:function model only; {path} is "
                "an invaudit checkpoint"
            )
        file = resolve_model_path(path)
        model = load_model(file)
        stored = (getattr(model, "checkpoint_info", None) or {}).get("dataset") or {}
        if record is not None and record.get("name") != stored.get("name"):
            raise ConfigError(
                f"{path} is an invaudit checkpoint of {stored.get('name', 'no dataset')}; "
                f"--dataset {record.get('name')} disagrees (leave --dataset out: a "
                "checkpoint names its own)"
            )
        return LoadedModel(file, model, stored)
    model = load_source(path, dataset=record, weights=weights)
    return LoadedModel(os.fspath(path), model, dict(record or {}))


def resolve_dtype(dtype: str, model: torch.nn.Module) -> str:
    """``auto``: float64 for vector models (cheap, and metamers far out keep their
    logits to 1e-10), float32 for images."""
    if dtype == "auto":
        return "float64" if len(model.input_shape) == 1 else "float32"
    if dtype not in ("float32", "float64"):
        raise ConfigError(f"dtype must be auto, float32 or float64, got {dtype!r}")
    return dtype


def choose_oracle(
    loaded: LoadedModel, oracle_path: str | os.PathLike | None, where: torch.device
) -> Oracle | None:
    """The oracle an audit of ``loaded`` uses.

    Spheres: always the exact one (any ``oracle_path`` is refused).  Images: the
    given checkpoint (a path or ``zoo:NAME``); by default the zoo's oracle for the
    dataset, if the zoo has one; none with ``"none"`` or when the zoo has none.

    An oracle with the audited checkpoint's content (same sha256) agrees with every
    decision by construction, so each oracle rate would read 0 and pass any gate:
    given as ``--oracle`` it is refused (one-line :class:`ConfigError`, before any
    work); the zoo's default oracle audited as the model itself is dropped (none).
    """
    exact = default_oracle(loaded.dataset)
    if exact is not None:
        if oracle_path is not None:
            raise ConfigError(
                f"{loaded.dataset_name} has an exact oracle; --oracle applies to images only"
            )
        return exact
    if oracle_path is not None and str(oracle_path).lower() == NO_ORACLE:
        return None
    if oracle_path is None:
        path = zoo_oracle_for(loaded.dataset_name)
        if path is None:
            return None
        origin = f"default: the zoo oracle for {loaded.dataset_name}"
    else:
        path = resolve_model_path(oracle_path)
        origin = f"--oracle {oracle_path}" if is_zoo_selector(oracle_path) else "--oracle"
    if _same_content(path, loaded.path):
        if oracle_path is None:
            return None
        raise ConfigError(
            f"--oracle {oracle_path} is the audited model itself (same sha256 as "
            f"{loaded.path}): it agrees with every decision, so every oracle rate would "
            "be 0 and pass any gate; give an independent classifier or --oracle none"
        )
    oracle = ClassifierOracle(path, where, origin=origin, dataset=loaded.dataset)
    oracle.check_compatible(loaded.model)
    return oracle


def _same_content(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two files hold the same bytes (same path, or equal size and sha256)."""
    try:
        if os.path.samefile(a, b):
            return True
        if os.path.getsize(a) != os.path.getsize(b):
            return False
    except OSError:
        return False  # a missing file is reported by whoever opens it
    return file_sha256(a) == file_sha256(b)


def prepare_audit(
    loaded: LoadedModel,
    *,
    device: str = "cpu",
    dtype: str = "auto",
    oracle_path: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> AuditSetup:
    """Move the model to ``device``/``dtype`` in eval mode, find the oracle and the data.

    ``oracle_path``: None for the default (see :func:`choose_oracle`), ``"none"`` for
    no oracle, else a checkpoint path or ``zoo:NAME``.
    """
    where = resolve_device(device)
    dtype = resolve_dtype(dtype, loaded.model)
    model = loaded.model.to(device=where, dtype=getattr(torch, dtype)).eval()
    oracle = choose_oracle(loaded, oracle_path, where)
    data = audit_data(loaded.dataset, data_dir=data_dir, download=download)
    check_on_example(model, data, f"--model {loaded.path}")
    if isinstance(oracle, ClassifierOracle):
        check_on_example(oracle.model, data, f"--oracle {oracle.path}")
    return AuditSetup(loaded.path, model, data, oracle, where, dtype)


def _failure_hint(err: BaseException, dtype: torch.dtype, model: torch.nn.Module) -> str:
    """What to try when a model fails on a test input (empty when nothing obvious)."""
    text = str(err)
    if "Guard failed" in text:
        return (
            "; was it exported for one batch size only? export with a dynamic batch: "
            "dynamic_shapes=({0: torch.export.Dim('batch')},)"
        )
    if dtype == torch.float64 and isinstance(model, ForeignClassifier):
        return "; a TorchScript or exported model may run in float32 only: try --dtype float32"
    return ""


@torch.no_grad()
def check_on_example(model: torch.nn.Module, data: AuditData, where: str) -> None:
    """Run ``model`` on ONE test input of ``data``: it must give ``[1, num_classes]``
    logits, else one-line :class:`ConfigError` naming the expected and actual shapes
    (before any attack runs)."""
    x = torch.as_tensor(data.test[0][0]).unsqueeze(0)
    ref = next(model.parameters(), None)
    if ref is not None:
        x = x.to(device=ref.device, dtype=ref.dtype)
    classes = int(data.info.get("num_classes", getattr(model, "num_classes", 0)))
    expected = [1, classes]
    try:
        logits = model.logits(x) if hasattr(model, "logits") else model(x)
    except InvauditError as err:
        raise ConfigError(f"{where}: {err}") from err
    except Exception as err:  # the model's own failure: wrong channels, sizes, dtype
        raise ConfigError(
            f"{where} fails on one {data.name} test input of shape {list(x.shape)} "
            f"({x.dtype}; expected output {expected}): {error_line(err)}"
            f"{_failure_hint(err, x.dtype, model)}"
        ) from err
    if not isinstance(logits, torch.Tensor) or list(logits.shape) != expected:
        got = list(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ConfigError(
            f"{where} gives {got} for one {data.name} test input of shape {list(x.shape)}; "
            f"expected {expected} ({classes} classes)"
        )


def model_record(path: str, model: torch.nn.Module) -> dict[str, Any]:
    """Which model was audited: path, content hash, architecture and loss.

    A file is named by its path and sha256; a ``py:`` factory by its
    ``py:package.module:function`` string and the sha256 of its ``--weights`` file
    (``weights``), or, without one, of its state dict (``sha256_of`` says which).
    Foreign models add ``source`` (torchscript, torch.export or py).
    """
    info = getattr(model, "checkpoint_info", None) or {}
    record = {
        "path": str(path),
        "sha256": None,
        "arch": getattr(model, "arch", type(model).__name__),
        "loss": info.get("loss"),
    }
    source = getattr(model, "source", None) if isinstance(model, ForeignClassifier) else None
    if not source:
        return {**record, "sha256": file_sha256(path)}
    record["source"] = source.get("kind")
    if source.get("kind") != FACTORY:
        return {**record, "sha256": file_sha256(path)}
    weights = source.get("weights")
    return {
        **record,
        "sha256": source["weights_sha256"] if weights else state_sha256(model.module),
        "sha256_of": "weights file" if weights else "state dict",
        "weights": weights,
    }
