"""The data an audit runs on: the dataset a checkpoint records, rebuilt without augmentation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch.utils.data import Dataset, TensorDataset

from ..errors import DataError
from .embedded import EMBEDDED_MNIST_SOURCE, embedded_mnist_splits
from .images import IMAGE_DATASETS, has_split_files, image_folder_dataset, load_image_dataset
from .locate import resolve_data_dir
from .spheres import spheres_splits


@dataclass
class AuditData:
    """A dataset's test split now and its training split on demand, both unaugmented.

    ``source`` says in words where the examples came from (a data dir, the spheres
    seed, the embedded MNIST set), for the audit's records.
    """

    name: str
    info: dict[str, Any]
    test: Dataset
    load_train: Callable[[], Dataset]
    source: str = ""
    _train: Dataset | None = None

    @property
    def bounds(self) -> tuple[float, float]:
        low, high = self.info["bounds"]
        return float(low), float(high)

    def train(self) -> Dataset:
        """The training split (loaded once, when first asked for)."""
        if self._train is None:
            self._train = self.load_train()
        return self._train


def audit_data(
    info: dict[str, Any] | None, *, data_dir: str | None = None, download: bool = False
) -> AuditData:
    """The splits described by a checkpoint's ``dataset`` record.

    Spheres are regenerated from the recorded dimension, radii and seed (the
    holdout stream is the training seed plus the holdout offset), so the audit
    sees exactly the points the training run was tested on.  Images are read
    from ``data_dir`` with plain ``k / 255`` pixels in both splits.

    MNIST without its test files in the data dir is audited on the embedded set
    (see :mod:`invaudit.data.embedded`) and never downloaded: an audit should
    work offline and start at once, and the embedded set is the same for everyone.
    ``imagenet`` (any ImageFolder tree) audits ``val/`` and fits on ``train/``, from
    ``data_dir`` when given, else from the folder the checkpoint trained on.
    """
    if not info or "name" not in info:
        raise DataError("the checkpoint records no dataset; cannot choose the audit data")
    name = info["name"]
    if name == "spheres":
        opts = info.get("options", {})
        seed = int(opts.get("seed", 0))
        train, test = spheres_splits(
            int(opts.get("dim", info["input_shape"][0])),
            tuple(opts.get("radii", (1.0, 10.0))),
            seed,
            int(opts.get("n_train", 500_000)),
            int(opts.get("n_test", 100_000)),
        )
        return AuditData(
            name,
            dict(info),
            TensorDataset(*test.tensors()),
            lambda: TensorDataset(*train.tensors()),
            source=f"spheres regenerated from seed {seed}",
        )
    if name in IMAGE_DATASETS:
        root = resolve_data_dir(data_dir)
        if name == "mnist" and not has_split_files(name, "test", root):
            fit, test = embedded_mnist_splits()
            source = f"{EMBEDDED_MNIST_SOURCE} (no MNIST test files in {root})"
            return AuditData(name, dict(info), test, lambda: fit, source=source)

        def split(which: str) -> Dataset:
            return load_image_dataset(name, which, root, train_transform=False, download=download)

        return AuditData(
            name, dict(info), split("test"), lambda: split("train"), source=f"data dir {root}"
        )
    if name == "imagenet":
        return _image_folder_data(info, data_dir)
    raise DataError(
        f"audits of dataset {name!r} are not supported; expected spheres, MNISTs or imagenet"
    )


def _image_folder_data(info: dict[str, Any], data_dir: str | None) -> AuditData:
    """An ImageFolder checkpoint's ``val/`` (audited) and ``train/`` (the probe's fit and the
    nearest neighbours) class folders: under ``data_dir`` when given, else where it trained,
    centre-cropped to the size it trained at."""
    opts = info.get("options", {})
    recorded = opts.get("root")
    root = resolve_data_dir(data_dir) if data_dir is not None or not recorded else recorded
    size = int(opts.get("image_size", info["input_shape"][-1]))

    def split(which: str) -> Dataset:
        return image_folder_dataset(root, which, size, train_transform=False)

    return AuditData(
        "imagenet", dict(info), split("val"), lambda: split("train"),
        source=f"image folders in {root} ({size} px centre crops)",
    )  # fmt: skip
