"""A dataset name and its options → the train and test splits a trainer needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch.utils.data import Dataset, TensorDataset

from ..errors import DataError
from . import dataset_info
from .images import IMAGE_DATASETS, image_folder_dataset, load_image_dataset
from .locate import resolve_data_dir
from .spheres import spheres_splits


@dataclass
class Splits:
    """Train and test splits and what a checkpoint records about them."""

    train: Dataset
    test: Dataset
    info: dict[str, Any] = field(default_factory=dict)


def _described(name: str, **options: Any) -> dict[str, Any]:
    """Shape, classes and bounds as :func:`dataset_info` gives them, in plain data."""
    described = dataset_info(name, **options)
    return {
        "input_shape": list(described["input_shape"]),
        "num_classes": described["num_classes"],
        "bounds": tuple(float(b) for b in described["bounds"]),
    }


def _limit(n: int, limit: int | None) -> int:
    return n if limit is None else min(n, limit)


def load_splits(
    name: str,
    *,
    data_dir: str | None = None,
    download: bool = False,
    limit: int | None = None,
    test_limit: int | None = None,
    seed: int = 0,
    dim: int = 100,
    radii: tuple[float, float] = (1.0, 10.0),
    n_train: int = 500_000,
    n_test: int = 100_000,
    image_size: int = 224,
) -> Splits:
    """The training split (augmented) and the test split (plain) of dataset ``name``.

    ``limit`` and ``test_limit`` cap the sizes (a seeded random subset for
    images, a prefix for spheres, whose points do not depend on ``n``).
    Spheres come back as in-memory tensors, so batches are slices, not
    500 000 single-item reads.
    """
    info: dict[str, Any] = {"name": name, "bounds": (0.0, 1.0)}
    if name == "spheres":
        train, test = spheres_splits(
            dim, radii, seed, _limit(n_train, limit), _limit(n_test, test_limit)
        )
        info.update(
            options={
                "dim": dim,
                "radii": list(radii),
                "n_train": train.n,
                "n_test": test.n,
                "seed": seed,
            },
            **_described("spheres", dim=dim, radii=radii),
            normalization="none: raw coordinates on spheres of radius R1 (label 0), R2 (label 1)",
        )
        return Splits(TensorDataset(*train.tensors()), TensorDataset(*test.tensors()), info)
    if name in IMAGE_DATASETS:
        train_ds = load_image_dataset(
            name, "train", data_dir, train_transform=True, download=download, limit=limit, seed=seed
        )
        test_ds = load_image_dataset(
            name,
            "test",
            data_dir,
            train_transform=False,
            download=download,
            limit=test_limit,
            seed=seed,
        )
        info.update(
            options={"n_train": len(train_ds), "n_test": len(test_ds), "seed": seed},
            **_described(name),
            normalization="pixels in [0, 1]; train: 3 px shifts + uniform dequantisation",
        )
        return Splits(train_ds, test_ds, info)
    if name == "imagenet":
        root = resolve_data_dir(data_dir)
        train_ds = image_folder_dataset(root, "train", image_size, train_transform=True)
        test_ds = image_folder_dataset(root, "val", image_size, train_transform=False)
        info.update(
            options={
                "root": str(root),
                "image_size": image_size,
                "n_train": len(train_ds),
                "n_test": len(test_ds),
            },
            input_shape=[3, image_size, image_size],
            num_classes=len(train_ds.classes),
            normalization="pixels in [0, 1] (no mean/std); train: random resized crop + flip",
        )
        return Splits(train_ds, test_ds, info)
    raise DataError(
        f"unknown dataset {name!r}; expected spheres, {', '.join(IMAGE_DATASETS)} or imagenet"
    )
