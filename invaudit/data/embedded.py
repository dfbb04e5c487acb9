"""The MNIST evaluation set shipped inside the package, for audits without a data dir.

The package carries MNIST's standard test files (``t10k-*-idx?-ubyte.gz``, 10 000
images, about 1.6 MB), byte for byte as published, so an MNIST checkpoint can be
audited offline with no download.  The probe audit needs a split to fit on, and
the training files (60 000 images, 10 MB) are not shipped, so the test file is cut
in two at a fixed place: images 0-4999 stand in for the training split and
5000-9999 are the test split every attack measures on.  The cut is by position,
not random: the two halves never share an image and every install cuts alike.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import DataError
from .images import IMAGE_DATASETS, IdxImageDataset, read_idx_pair

__all__ = ["EMBEDDED_MNIST_DIR", "EMBEDDED_MNIST_SOURCE", "FIT_SIZE", "embedded_mnist_splits"]

EMBEDDED_MNIST_DIR = Path(__file__).resolve().parent / "embedded" / "mnist"
#: Images 0..FIT_SIZE-1 of t10k fit the probes; the rest are the test split.
FIT_SIZE = 5_000
_TOTAL = 10_000
EMBEDDED_MNIST_SOURCE = (
    f"embedded MNIST t10k: fit on images 0-{FIT_SIZE - 1}, test on {FIT_SIZE}-{_TOTAL - 1}"
)


def _part(images: torch.Tensor, labels: torch.Tensor, start: int, stop: int) -> IdxImageDataset:
    return IdxImageDataset(
        images[start:stop].contiguous(),
        labels[start:stop].long(),
        name="mnist",
        split="test",  # both halves come from the test file; ``indices`` say where
        classes=IMAGE_DATASETS["mnist"].classes,
        train_transform=False,
        indices=torch.arange(start, stop),
    )


def embedded_mnist_splits() -> tuple[IdxImageDataset, IdxImageDataset]:
    """``(fit, test)``: t10k images 0-4999 and 5000-9999, plain ``k / 255`` pixels."""
    images, labels = read_idx_pair(
        EMBEDDED_MNIST_DIR / "t10k-images-idx3-ubyte.gz",
        EMBEDDED_MNIST_DIR / "t10k-labels-idx1-ubyte.gz",
    )
    if len(labels) != _TOTAL:
        raise DataError(
            f"expected {_TOTAL} images in the embedded MNIST set at {EMBEDDED_MNIST_DIR}, "
            f"got {len(labels)} (a damaged install)"
        )
    return _part(images, labels, 0, FIT_SIZE), _part(images, labels, FIT_SIZE, _TOTAL)
