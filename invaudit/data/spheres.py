"""Adversarial spheres (Gilmer et al., 2018, "Adversarial Spheres").

Two concentric spheres in ``dim`` dimensions: label 0 lies on the inner sphere of
radius R1, label 1 on the outer sphere of radius R2.  The task is trivially separable
by the norm, which makes it the cleanest place to see excessive invariance.

Points are generated in fixed-size chunks; chunk ``c`` is drawn from a
:class:`torch.Generator` seeded with a stable hash of ``(seed, c)``.  So

* a dataset of 500 000 points costs no memory until items are read;
* sample ``i`` depends only on ``(seed, dim, radii, i)``, never on ``n``, on the
  access order or on the process (a split of 1 000 is a prefix of a split of 10 000);
* the per-index path and the bulk path run the very same chunk function, so they
  agree bit for bit.
"""

from __future__ import annotations

import hashlib
import math
import numbers

import torch
from torch.utils.data import Dataset

from invaudit.errors import DataError

__all__ = [
    "CHUNK_SIZE",
    "HOLDOUT_SEED_OFFSET",
    "SpheresDataset",
    "sample_spheres",
    "spheres_splits",
]

#: Points per generator chunk.  Part of the data definition: changing it changes
#: every point, so treat it as a constant.
CHUNK_SIZE = 128

#: The holdout split of ``spheres_splits(seed=s)`` uses seed ``s + HOLDOUT_SEED_OFFSET``.
#: Training seeds are restricted to ``[0, HOLDOUT_SEED_OFFSET)`` there, so a training
#: stream can never coincide with any holdout stream.
HOLDOUT_SEED_OFFSET = 2**32


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise DataError(f"spheres: expected an integer {name}, got {value!r}")
    if value < minimum:
        raise DataError(f"spheres: expected {name} >= {minimum}, got {value}")
    return int(value)


def _check_radii(radii: object) -> tuple[float, float]:
    try:
        r1, r2 = (float(r) for r in radii)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise DataError(f"spheres: expected radii as a pair (R1, R2), got {radii!r}") from None
    if not (math.isfinite(r1) and math.isfinite(r2) and 0.0 < r1 < r2):
        raise DataError(f"spheres: expected finite radii with 0 < R1 < R2, got ({r1}, {r2})")
    return r1, r2


def _chunk_seed(seed: int, chunk: int) -> int:
    """A stable 63-bit generator seed for one chunk.

    blake2b rather than ``hash()`` so the value is the same in every process and on
    every platform; distinct ``(seed, chunk)`` pairs give unrelated streams.
    """
    digest = hashlib.blake2b(f"invaudit-spheres:{seed}:{chunk}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def _labels(start: int, stop: int) -> torch.Tensor:
    """Alternating labels 0, 1, 0, 1, ...: exactly balanced for every even prefix."""
    return torch.arange(start, stop, dtype=torch.int64) % 2


def _chunk(seed: int, chunk: int, dim: int, radii: tuple[float, float]) -> torch.Tensor:
    """All ``CHUNK_SIZE`` points of one chunk as float32 ``[CHUNK_SIZE, dim]``.

    A normalised Gaussian is uniform on the sphere.  The Gaussian is drawn in float32
    (six times faster than float64 on CPU), the scaling runs in float64 and is rounded
    once at the end, so the float32 result does not hinge on reduction order.
    """
    gen = torch.Generator().manual_seed(_chunk_seed(seed, chunk))
    g = torch.randn(CHUNK_SIZE, dim, generator=gen, dtype=torch.float32).double()
    start = chunk * CHUNK_SIZE
    radius = torch.tensor(radii, dtype=torch.float64)[_labels(start, start + CHUNK_SIZE)]
    x = g * (radius / torch.linalg.vector_norm(g, dim=1)).unsqueeze(1)
    return x.to(torch.float32)


def sample_spheres(
    n: int, dim: int = 100, radii: tuple[float, float] = (1.0, 10.0), seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A whole split in one go: ``x`` float32 ``[n, dim]``, ``y`` int64 ``[n]``.

    Identical, bit for bit, to reading ``SpheresDataset(n, dim, radii, seed)`` item by
    item; this is the fast path for training.
    """
    n = _check_int("n", n, 1)
    dim = _check_int("dim", dim, 2)
    radii = _check_radii(radii)
    seed = _check_int("seed", seed, 0)
    x = torch.empty(n, dim, dtype=torch.float32)
    for chunk, start in enumerate(range(0, n, CHUNK_SIZE)):
        stop = min(start + CHUNK_SIZE, n)
        x[start:stop] = _chunk(seed, chunk, dim, radii)[: stop - start]
    return x, _labels(0, n)


class SpheresDataset(Dataset):
    """``n`` points on two concentric spheres, generated lazily per index.

    Items are ``(x, y)``: ``x`` float32 ``[dim]`` with ``||x|| = R1`` if ``y == 0`` and
    ``R2`` if ``y == 1``; ``y`` an int64 scalar tensor.  Labels alternate with the index
    (even index: inner sphere), so the classes are exactly balanced for even ``n`` and
    class 0 has one extra point for odd ``n``; shuffle with the DataLoader.

    The last chunk read is cached, so sequential reading costs one generator call per
    ``CHUNK_SIZE`` items; random access costs one chunk (about 0.2 ms) per item.
    """

    def __init__(
        self,
        n: int,
        dim: int = 100,
        radii: tuple[float, float] = (1.0, 10.0),
        seed: int = 0,
    ) -> None:
        self.n = _check_int("n", n, 1)
        self.dim = _check_int("dim", dim, 2)
        self.radii = _check_radii(radii)
        self.seed = _check_int("seed", seed, 0)
        self._cached: tuple[int, torch.Tensor] | None = None

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = self._normalise_index(index)
        chunk, offset = divmod(i, CHUNK_SIZE)
        if self._cached is None or self._cached[0] != chunk:
            self._cached = (chunk, _chunk(self.seed, chunk, self.dim, self.radii))
        x = self._cached[1][offset].clone()
        return x, torch.tensor(i % 2, dtype=torch.int64)

    def _normalise_index(self, index: int) -> int:
        # IndexError, not DataError: the Dataset/sequence protocol relies on it.
        if isinstance(index, bool) or not isinstance(index, numbers.Integral):
            raise TypeError(f"spheres index must be an integer, got {type(index).__name__}")
        i = int(index) + (self.n if index < 0 else 0)
        if not 0 <= i < self.n:
            raise IndexError(f"spheres index {index} out of range for {self.n} points")
        return i

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole dataset as ``(x [n, dim], y [n])``; see :func:`sample_spheres`."""
        return sample_spheres(self.n, self.dim, self.radii, self.seed)

    def __repr__(self) -> str:
        return f"SpheresDataset(n={self.n}, dim={self.dim}, radii={self.radii}, seed={self.seed})"


def spheres_splits(
    dim: int = 100,
    radii: tuple[float, float] = (1.0, 10.0),
    seed: int = 0,
    n_train: int = 500_000,
    n_test: int = 100_000,
) -> tuple[SpheresDataset, SpheresDataset]:
    """Train and holdout datasets that never share a generator stream.

    The holdout uses seed ``seed + HOLDOUT_SEED_OFFSET``; ``seed`` must lie in
    ``[0, HOLDOUT_SEED_OFFSET)`` so no training seed equals any holdout seed.
    """
    seed = _check_int("seed", seed, 0)
    if seed >= HOLDOUT_SEED_OFFSET:
        raise DataError(
            f"spheres: expected a split seed below {HOLDOUT_SEED_OFFSET} "
            f"(higher seeds belong to holdout streams), got {seed}"
        )
    train = SpheresDataset(n_train, dim, radii, seed)
    holdout = SpheresDataset(n_test, dim, radii, seed + HOLDOUT_SEED_OFFSET)
    return train, holdout
