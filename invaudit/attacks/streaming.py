"""One walk over a shard for the pairing and moving attacks: records of every example,
the first few examples whole for the figure, one batch in memory at a time.

An attack supplies what differs: how one batch is computed (``step``), its rows
(``records``), the examples its figure draws (``kept``) and a batch without examples
(``empty``: a shard may hold none, and still returns every column).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

import pandas as pd
import torch

from .base import AuditContext

Batch = TypeVar("Batch")


def collect(
    ctx: AuditContext,
    *,
    label: str,
    units: int,
    step: Callable[[torch.Tensor, int], Batch],
    records: Callable[[Batch], pd.DataFrame],
    kept: Callable[[Batch, int], dict[str, torch.Tensor]],
    empty: Callable[[], Batch],
    examples: int,
    cat_dims: Mapping[str, int] | None = None,
) -> tuple[pd.DataFrame, dict[str, torch.Tensor]]:
    """Every batch of this shard through ``step(positions, wanted)``, where ``wanted`` is
    how many examples the figure still needs; one progress unit per batch on top of
    what ``step`` advances (``units`` is the bar's total).

    Returns the records of all batches and the kept examples, concatenated along
    dimension 0 (or ``cat_dims[name]``).  Kept tensors are copies, so a kept slice does
    not hold its whole batch alive.
    """
    parts: list[pd.DataFrame] = []
    figure: list[dict[str, torch.Tensor]] = []
    taken = 0
    ctx.progress.start(label, units)
    try:
        for positions in ctx.chunks():
            wanted = max(examples - taken, 0)
            batch = step(positions, wanted)
            parts.append(records(batch))
            if not figure or wanted:
                figure.append({k: v.clone() for k, v in kept(batch, wanted).items()})
                taken += len(figure[-1]["label"])
            ctx.progress.advance()
    finally:
        ctx.progress.finish()
    if not parts:
        none = empty()
        parts, figure = [records(none)], [kept(none, 0)]
    dims = cat_dims or {}
    return pd.concat(parts, ignore_index=True), {
        name: torch.cat([k[name] for k in figure], dim=dims.get(name, 0)) for name in figure[0]
    }
