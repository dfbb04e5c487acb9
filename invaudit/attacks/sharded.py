"""An attack run over the shards of an audit: each process audits its block of
positions, rank 0 gathers the per-example records and computes the metrics.

Outside ``torchrun`` this is just ``attack.run``.  Under it, an attack that declares
``summarise`` (it streams, and its metrics follow from its records alone) runs on
every rank over that rank's block (:attr:`AuditContext.shard`); rank 0 concatenates
the records in position order and summarises them, so the metrics are those of
one process over every position.  An attack without ``summarise`` (the probe's fit
needs all its examples at once) runs whole on rank 0 while the others go on.

Only rank 0's result is complete; the other ranks get their own block's result,
which nobody writes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd

from ..errors import PeerLost
from .base import AttackResult, AuditContext
from .declaration import Attack

__all__ = ["execute"]


def execute(attack: Attack, ctx: AuditContext, options: dict[str, Any]) -> AttackResult:
    """``attack.run(ctx, **options)`` over every shard of ``ctx``; the whole result on rank 0."""
    dist = ctx.dist
    if dist is None or not dist.distributed:
        return attack.run(ctx, **options)
    if attack.summarise is None:
        if dist.is_main:
            return attack.run(dataclasses.replace(ctx, dist=None), **options)
        return AttackResult(attack.name, {}, pd.DataFrame(), settings=dict(options))
    result = attack.run(ctx, **options)
    try:
        parts = dist.gather(result.records)
    except RuntimeError as err:  # gloo/nccl: a peer's socket closed, a timeout
        raise PeerLost(
            f"{attack.name}: another process of this torchrun audit stopped before sending its "
            f"records ({' '.join(str(err).split())[:160]}); nothing was written"
        ) from None
    if parts is None:
        return result
    records = pd.concat(parts, ignore_index=True).sort_values("index", kind="stable")
    result.records = records.reset_index(drop=True)
    result.metrics = attack.summarise(result.records, result.settings)
    return result
