"""The contract every audit follows: a context in, an :class:`AttackResult` out.

An attack is a function ``run(ctx, *, option=default, ...) -> AttackResult``
declared by an :class:`~invaudit.attacks.declaration.Attack` and registered under
its name in :mod:`invaudit.attacks`.  The context carries the model, the data it
was trained on, the oracle (if any) and the run's budget (``n``, seed, batch
size, device, progress); options are keyword-only and specific to the attack.
Attacks never print and never write files: the CLI and the report builder do
both from the result.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
from torch.utils.data import Dataset

from ..data.audit import AuditData
from ..errors import CheckpointError, ConfigError
from ..memory import release_freed_memory
from ..models.classifier import InvertibleClassifier
from ..training.distributed import DistContext

if TYPE_CHECKING:
    from .oracle import Oracle


@dataclass
class AttackResult:
    """What one attack measured.

    Attributes:
        method: the registered name.
        metrics: flat and JSON-able (floats, ints, None, or a map of them).
        records: one row per sample or pair, for the CSV and for re-analysis.
        examples: small tensors the figures are drawn from.
        settings: the options and budget the attack ran with.
    """

    method: str
    metrics: dict[str, Any]
    records: pd.DataFrame
    examples: dict[str, torch.Tensor] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)


class Progress:
    """How an attack reports long work; this base class shows nothing."""

    def start(self, label: str, total: int) -> None:
        pass

    def advance(self, steps: int = 1) -> None:
        pass

    def finish(self) -> None:
        pass


def audit_indices(total: int, n: int | None, seed: int) -> torch.Tensor:
    """The dataset indices of the ``n`` audited examples, in audit order (all if ``n`` is None).

    The draw depends only on ``(total, n, seed)``, so every attack of one audit, every
    batch size and every shard sees the same examples at the same positions.
    """
    if n is None or n >= total:
        return torch.arange(total)
    return torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:n]


def dataset_items(dataset: Dataset, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` of the examples at dataset indices ``index``, loaded now."""
    tensors = getattr(dataset, "tensors", None)
    if isinstance(tensors, tuple):  # TensorDataset: slice, do not loop
        return tensors[0][index], tensors[1][index]
    if len(index) == 0:
        raise ConfigError("no examples to load")
    items = [dataset[int(i)] for i in index]
    return torch.stack([x for x, _ in items]), torch.stack([torch.as_tensor(y) for _, y in items])


def dataset_labels(dataset: Dataset, index: torch.Tensor) -> torch.Tensor:
    """The labels at dataset indices ``index`` without loading the inputs where the dataset
    keeps them apart (``tensors``, ``targets``: TensorDataset, MNIST files, ImageFolder)."""
    tensors = getattr(dataset, "tensors", None)
    if isinstance(tensors, tuple):
        return tensors[1][index]
    targets = getattr(dataset, "targets", None)
    if targets is not None:
        return torch.as_tensor(targets, dtype=torch.int64)[index]
    return torch.stack([torch.as_tensor(dataset[int(i)][1]) for i in index])


def dataset_tensors(
    dataset: Dataset, n: int | None, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` of ``n`` examples drawn without replacement by ``seed`` (all if ``n`` is None),
    all in memory: for what must see every example at once (a probe's fit)."""
    return dataset_items(dataset, audit_indices(len(dataset), n, seed))


@dataclass(frozen=True)
class Batches:
    """A shard's positions in batches: iterate for each batch's positions, ``len`` for
    how many batches (a progress bar's total)."""

    positions: torch.Tensor
    size: int

    def __len__(self) -> int:
        return math.ceil(len(self.positions) / self.size)

    def __iter__(self) -> Iterator[torch.Tensor]:
        for start in range(0, len(self.positions), self.size):
            yield self.positions[start : start + self.size]
            # The previous batch's tensors are freed by now: hand their pages back, or
            # the heap's holes make the resident size grow with --n (invaudit.memory).
            release_freed_memory()


@dataclass(frozen=True)
class Shard:
    """Which part of the audited examples this process audits: ``rank`` of ``world``.

    Shards are contiguous blocks of audit positions, so rank 0 holds the first
    examples (those figures draw) and the gathered records come back in order.
    """

    rank: int = 0
    world: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world:
            raise ConfigError(f"shard rank {self.rank} outside a world of {self.world}")

    def block(self, n: int) -> range:
        """The positions ``0 … n-1`` this shard audits."""
        return range(self.rank * n // self.world, (self.rank + 1) * n // self.world)


#: Multiplier that spreads per-example seeds apart from per-attack ones.
_EXAMPLE_STRIDE = 1_000_003


@dataclass
class AuditContext:
    """One audit's model, data, oracle and budget.

    ``n`` caps the number of test examples (None: the whole test split);
    ``batch_size`` bounds memory and never changes results; ``shard`` says which
    contiguous block of the audited positions this process audits (all of them
    unless the audit runs under ``torchrun``).

    Streaming: an attack asks for the audit's labels (:meth:`labels`, cheap: no
    inputs are read where the dataset keeps them apart), walks its shard in batches
    (:meth:`chunks`) and loads the inputs of a batch, or of a partner's position,
    when it needs them (:meth:`load`).  Nothing holds every audited input at once
    except :meth:`test_examples`, kept for attacks that need them all (a probe).
    Random choices per example come from :meth:`example_generators`, so they do not
    depend on the batch size or the number of shards.
    """

    model: InvertibleClassifier
    data: AuditData
    oracle: Oracle | None = None
    n: int | None = None
    seed: int = 0
    batch_size: int = 256
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    progress: Progress = field(default_factory=Progress)
    dist: DistContext | None = None
    _index: torch.Tensor | None = field(default=None, init=False, repr=False)
    _labels: torch.Tensor | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.n is not None and self.n < 1:
            raise ConfigError(f"n must be at least 1, got {self.n}")
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {self.batch_size}")

    def test_examples(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every audited test example (on the CPU), the same for every attack of one seed.

        All in memory: streaming attacks use :meth:`labels`, :meth:`chunks` and :meth:`load`.
        """
        return dataset_items(self.data.test, self.indices())

    @property
    def shard(self) -> Shard:
        """This process's block of the audited positions (all of them outside torchrun)."""
        if self.dist is None or not self.dist.distributed:
            return Shard()
        return Shard(self.dist.rank, self.dist.world_size)

    def indices(self) -> torch.Tensor:
        """The dataset index of every audited position ``0 … n-1`` (all shards)."""
        if self._index is None:
            self._index = audit_indices(len(self.data.test), self.n, self.seed)
        return self._index

    @property
    def total(self) -> int:
        """How many examples the audit covers, over all shards."""
        return len(self.indices())

    def labels(self) -> torch.Tensor:
        """The label of every audited position (all shards: pairings need them all)."""
        if self._labels is None:
            self._labels = dataset_labels(self.data.test, self.indices())
        return self._labels

    def positions(self) -> torch.Tensor:
        """The audited positions of this shard, ascending."""
        block = self.shard.block(self.total)
        return torch.arange(block.start, block.stop)

    def chunks(self) -> Batches:
        """This shard's positions, ``batch_size`` at a time (sized: ``len`` is the count)."""
        return Batches(self.positions(), self.batch_size)

    def load(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` of the audited examples at ``positions``, read from the dataset now."""
        return dataset_items(self.data.test, self.indices()[positions])

    def example_generators(self, salt: int, positions: torch.Tensor) -> list[torch.Generator]:
        """One CPU generator per audited position: an example's random draws depend on its
        position, the seed and ``salt`` only (not on its batch or shard)."""
        base = self.seed * _EXAMPLE_STRIDE + salt
        return [
            torch.Generator().manual_seed(base * _EXAMPLE_STRIDE + int(p) + 1) for p in positions
        ]

    def generator(self, salt: int = 0) -> torch.Generator:
        """A CPU generator for an attack's own random choices (pairings, probes)."""
        return torch.Generator().manual_seed(self.seed * 1_000_003 + salt)

    def batches(self, total: int) -> Iterator[slice]:
        for start in range(0, total, self.batch_size):
            yield slice(start, min(start + self.batch_size, total))

    def to_model(self, t: torch.Tensor) -> torch.Tensor:
        ref = next(self.model.parameters())
        return t.to(device=ref.device, dtype=ref.dtype if t.is_floating_point() else t.dtype)

    @torch.no_grad()
    def map_batches(
        self, fn: Callable[..., torch.Tensor], *tensors: torch.Tensor, label: str = ""
    ) -> torch.Tensor:
        """``fn`` applied batch by batch on the model's device; results back on the CPU."""
        total = len(tensors[0])
        if label:
            self.progress.start(label, math.ceil(total / self.batch_size))
        out = []
        try:
            for part in self.batches(total):
                out.append(fn(*(self.to_model(t[part]) for t in tensors)).cpu())
                if label:
                    self.progress.advance()
        finally:
            if label:
                self.progress.finish()
        return torch.cat(out)


def require_invertible(model: torch.nn.Module, where: str, method: str) -> InvertibleClassifier:
    """``model`` as an invertible classifier, or one line naming what it is instead."""
    if not isinstance(model, InvertibleClassifier):
        arch = getattr(model, "arch", type(model).__name__)
        raise CheckpointError(
            f"{where}: arch {arch} is not invertible; {method} needs a fiRevNet checkpoint "
            "(firevnet-fc, firevnet-mnist or firevnet-imagenet)"
        )
    return model


def share(mask: torch.Tensor) -> float:
    """The fraction of True in a boolean tensor (NaN for an empty one)."""
    return float(mask.double().mean()) if mask.numel() else float("nan")


def pair_other_class(y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """For every example, the index of a random example of another class.

    Raises :class:`ConfigError` when the examples hold a single class (no pair exists).
    """
    classes = y.unique()
    if len(classes) < 2:
        raise ConfigError(
            f"pairing needs examples of at least two classes; all {len(y)} have class "
            f"{int(classes[0])} (raise --n)"
        )
    partner = torch.empty_like(y)
    for c in classes:
        mine = (y == c).nonzero().flatten()
        others = (y != c).nonzero().flatten()
        pick = torch.randint(len(others), (len(mine),), generator=generator)
        partner[mine] = others[pick]
    return partner


def encode(
    ctx: AuditContext, model: InvertibleClassifier, x: torch.Tensor, label: str = ""
) -> torch.Tensor:
    """``z = F(x)`` for every row of ``x``, batched, on the CPU."""
    return ctx.map_batches(model, x, label=label)


def decode(
    ctx: AuditContext, model: InvertibleClassifier, z: torch.Tensor, label: str = ""
) -> torch.Tensor:
    """``x = F^{-1}(z)`` for every row of ``z``, batched, on the CPU."""
    return ctx.map_batches(model.inverse, z, label=label)


def oracle_labels(ctx: AuditContext, x: torch.Tensor) -> torch.Tensor | None:
    """The oracle's labels for ``x`` (None without an oracle)."""
    if ctx.oracle is None:
        return None
    return ctx.map_batches(ctx.oracle.predict, x)


def optional_share(mask: torch.Tensor | None) -> float | None:
    """:func:`share`, or None when the quantity needs an oracle that is absent."""
    return None if mask is None else share(mask)


def check_count(method: str, name: str, value: object, minimum: int = 0) -> int:
    """``value`` as an int >= ``minimum``, or a one-line :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{method}: {name} must be an integer >= {minimum}, got {value!r}")
    return value


#: How far outside the data box a decoded value may stray and still count as
#: "in the box" for ``near_box_share`` (pixels in [0, 1]: a tenth of the range).
BOX_TOLERANCE = 0.1


def box_excursion(x: torch.Tensor, bounds: tuple[float, float]) -> torch.Tensor:
    """Per example, the largest distance of any value of ``x`` outside ``bounds`` (0 inside)."""
    low, high = bounds
    return torch.maximum(low - x, x - high).clamp_min(0).flatten(1).amax(1)
