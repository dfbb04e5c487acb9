"""The data an audit runs on: the dataset a checkpoint records, rebuilt without augmentation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch.utils.data import Dataset, TensorDataset

from ..errors import DataError
from .images import IMAGE_DATASETS, load_image_dataset
from .spheres import spheres_splits


@dataclass
class AuditData:
    """A dataset's test split now and its training split on demand, both unaugmented."""

    name: str
    info: dict[str, Any]
    test: Dataset
    load_train: Callable[[], Dataset]
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
    """
    if not info or "name" not in info:
        raise DataError("the checkpoint records no dataset; cannot choose the audit data")
    name = info["name"]
    if name == "spheres":
        opts = info.get("options", {})
        train, test = spheres_splits(
            int(opts.get("dim", info["input_shape"][0])),
            tuple(opts.get("radii", (1.0, 10.0))),
            int(opts.get("seed", 0)),
            int(opts.get("n_train", 500_000)),
            int(opts.get("n_test", 100_000)),
        )
        return AuditData(
            name,
            dict(info),
            TensorDataset(*test.tensors()),
            lambda: TensorDataset(*train.tensors()),
        )
    if name in IMAGE_DATASETS:

        def split(which: str) -> Dataset:
            return load_image_dataset(
                name, which, data_dir, train_transform=False, download=download
            )

        return AuditData(name, dict(info), split("test"), lambda: split("train"))
    raise DataError(f"audits of dataset {name!r} are not supported; expected spheres or MNISTs")
