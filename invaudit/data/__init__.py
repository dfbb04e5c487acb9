"""Datasets: adversarial spheres, MNIST / Fashion-MNIST, ImageFolder (ImageNet).

Every dataset yields ``(x, y)`` with ``x`` a float32 tensor and ``y`` an int64 scalar
tensor.  :func:`dataset_info` describes each dataset by name, so models, attacks and
reports agree on shapes, class counts and input bounds without loading any data.
"""

from __future__ import annotations

from typing import Any

from invaudit.data.images import (
    IMAGE_DATASETS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    IdxImageDataset,
    image_folder_classes,
    image_folder_dataset,
    image_folder_transform,
    load_image_dataset,
    read_idx,
)
from invaudit.data.locate import DATA_ENV_VAR, resolve_data_dir
from invaudit.data.spheres import (
    HOLDOUT_SEED_OFFSET,
    SpheresDataset,
    sample_spheres,
    spheres_splits,
)
from invaudit.errors import DataError

__all__ = [
    "DATASETS",
    "DATA_ENV_VAR",
    "HOLDOUT_SEED_OFFSET",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_DATASETS",
    "IdxImageDataset",
    "SpheresDataset",
    "dataset_info",
    "image_folder_classes",
    "image_folder_dataset",
    "image_folder_transform",
    "load_image_dataset",
    "read_idx",
    "resolve_data_dir",
    "sample_spheres",
    "spheres_splits",
]


def _spheres_info(dim: int = 100, radii: tuple[float, float] = (1.0, 10.0)) -> dict[str, Any]:
    # The dataset validates dim and radii; building one is free (points are lazy).
    ds = SpheresDataset(1, dim, radii)
    r2 = ds.radii[1]
    return {"input_shape": (ds.dim,), "num_classes": 2, "bounds": (-r2, r2)}


def _mnist_info() -> dict[str, Any]:
    return {"input_shape": (1, 28, 28), "num_classes": 10, "bounds": (0.0, 1.0)}


def _imagenet_info(image_size: int = 224) -> dict[str, Any]:
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise DataError(f"expected image_size as an integer >= 1, got {image_size!r}")
    return {"input_shape": (3, image_size, image_size), "num_classes": 1000, "bounds": (0.0, 1.0)}


_INFO = {
    "spheres": _spheres_info,
    "mnist": _mnist_info,
    "fashion-mnist": _mnist_info,
    "imagenet": _imagenet_info,
}


def dataset_info(name: str, **options: Any) -> dict[str, Any]:
    """``{"input_shape", "num_classes", "bounds"}`` for a dataset name.

    Options: ``spheres`` takes ``dim`` and ``radii`` (its bounds are ``(-R2, R2)``, the
    box holding both spheres); ``imagenet`` takes ``image_size``; the MNISTs take none.
    """
    if name not in _INFO:
        raise DataError(f"expected a dataset name in {{{', '.join(_INFO)}}}, got {name!r}")
    try:
        return _INFO[name](**options)
    except TypeError:
        raise DataError(f"unknown option for dataset {name!r}: got {sorted(options)}") from None


#: The default description of every dataset (spheres at dim=100, ImageNet at 224 px).
DATASETS: dict[str, dict[str, Any]] = {name: dataset_info(name) for name in _INFO}
