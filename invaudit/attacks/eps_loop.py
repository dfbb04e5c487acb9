"""One loop for every foolbox ε-attack, and the two ways its verdicts become robust accuracy.

* **Fixed-ε** (:func:`run_fixed`): foolbox runs the attack once per ε and says,
  per sample, whether the clipped adversarial changes the decision.  An
  adversarial found within a smaller ε also lies within every larger one, so a
  sample counts as broken at ε when the attack succeeded at *any* ε' ≤ ε; robust
  accuracy is therefore non-increasing in ε by construction, never by luck of
  the optimiser.
* **Minimal-norm** (:func:`run_minimal`): foolbox runs unbounded
  (``epsilons=None``) and returns, per sample, the smallest adversarial it
  found.  Its norm is the sample's ``distance`` (``inf`` where the attack
  failed); a clean-correct sample is robust at ε iff its distance is > ε.

In both a sample counts as robust only if it was classified correctly to begin
with; robust accuracy at ε = 0 is the clean accuracy.  Both go through
:class:`_Run`: this shard's audited positions loaded batch by batch (nothing
holds every input), the clean decision of each batch, a progress bar, one record
per position and the examples kept for the figure.  PGD's random start is drawn
per example from the example's own generator, so nothing depends on the batch
size or the number of shards, and the metrics follow from the records alone
(:func:`summarise`): rank 0 recomputes them from every shard's records.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import foolbox as fb
import numpy as np
import pandas as pd
import torch

from .base import AttackResult, AuditContext
from .epsilons import eps_label, perturbation_norms
from .foolbox_adapter import check_bounds, gradient_ticks, per_example_starts, prepare, seeded

__all__ = ["EXAMPLES", "EpsAttack", "run_fixed", "run_minimal", "summarise"]

#: How many clean / adversarial pairs the result keeps for its figure.
EXAMPLES = 8


class _Picker:
    """Keeps the first few clean-correct samples (others only to fill up) for the figure."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.correct: list[dict[str, torch.Tensor]] = []
        self.other: list[dict[str, torch.Tensor]] = []

    def offer(self, correct: torch.Tensor, **rows: torch.Tensor) -> None:
        for i in range(len(correct)):
            pool = self.correct if bool(correct[i]) else self.other
            if len(pool) < self.limit:
                pool.append({k: v[i].detach().cpu() for k, v in rows.items()})

    def stacked(self) -> dict[str, torch.Tensor]:
        chosen = (self.correct + self.other)[: self.limit]
        chosen.sort(key=lambda r: int(r["index"]))
        if not chosen:
            return {}
        return {k: torch.stack([r[k] for r in chosen]) for k in chosen[0]}


class _StepMeter:
    """Progress in gradient steps: at most ``per_batch`` ticks per batch, and exactly
    that many once the batch is done (whatever foolbox actually ran)."""

    def __init__(self, ctx: AuditContext, per_batch: int) -> None:
        self.ctx, self.per_batch, self.done = ctx, per_batch, 0

    def tick(self) -> None:
        if self.done < self.per_batch - 1:  # the batch's last tick waits for its end
            self.done += 1
            self.ctx.progress.advance()

    def batch_end(self) -> None:
        self.ctx.progress.advance(self.per_batch - self.done)
        self.done = 0


@dataclass(frozen=True)
class EpsAttack:
    """A configured foolbox attack run as an audit method.

    Attributes:
        method: the registered name.
        norm: what ``epsilons`` measure.
        attack: the foolbox attack object, its options set.
        epsilons: the validated ε, ascending.
        options: the options it ran with, for the result's settings.
        salt: separates its random streams (``ctx.example_generators(salt, …)``, and
            ``ctx.generator(salt)`` for the global RNG) from other attacks'.
    """

    method: str
    norm: str
    attack: Any
    epsilons: list[float]
    options: dict[str, Any]
    salt: int = 0


@dataclass
class _Batch:
    """One batch: its audit positions, inputs and labels on the CPU and on the model's
    device, and (on the CPU) the clean decision and whether it is right."""

    positions: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
    xb: torch.Tensor
    yb: torch.Tensor
    pred: torch.Tensor
    correct: torch.Tensor


#: What a batch's body returns: per example, robust at each ε ([B, len(ε)]) and the
#: minimal distance found ([B]; NaN for fixed-ε attacks).
_Verdicts = tuple[torch.Tensor, torch.Tensor]


class _Run:
    """One foolbox attack over this shard's audited positions (both families)."""

    def __init__(self, ctx: AuditContext, spec: EpsAttack) -> None:
        self.ctx, self.spec, self.attack = ctx, spec, spec.attack
        self.module, self.fmodel = prepare(ctx)
        self.n_batches = math.ceil(len(ctx.positions()) / ctx.batch_size)
        self.parts: list[pd.DataFrame] = []
        self.picker = _Picker(EXAMPLES)

    def loop(
        self, body: Callable[[_Batch], _Verdicts], label: str, per_batch: int, *, gradient: bool
    ) -> None:
        """``body`` on every batch under the seeded RNG, its verdicts kept as records; the
        bar counts ``per_batch`` units a batch (gradient steps, counted as foolbox takes
        them, when ``gradient``)."""
        ctx = self.ctx
        meter = _StepMeter(ctx, per_batch)
        ctx.progress.start(label, self.n_batches * per_batch)
        ticks = gradient_ticks(self.attack, meter.tick) if gradient else nullcontext()
        try:
            with seeded(ctx, self.spec.salt), ticks:
                for positions in ctx.chunks():
                    batch = self._batch(positions)
                    self._record(batch, *body(batch))
                    meter.batch_end()
        finally:
            ctx.progress.finish()

    def _batch(self, positions: torch.Tensor) -> _Batch:
        """The batch at ``positions``, loaded now, checked against the bounds, classified."""
        x, y = self.ctx.load(positions)
        check_bounds(x, self.ctx.data.bounds, self.spec.method)
        xb, yb = self.ctx.to_model(x), self.ctx.to_model(y)
        with torch.no_grad():
            pred = self.module(xb).argmax(dim=1).cpu()
        return _Batch(positions, x, y, xb, yb, pred, pred == y)

    def _record(self, batch: _Batch, robust: torch.Tensor, distance: torch.Tensor) -> None:
        part = pd.DataFrame(
            {
                "index": batch.positions.numpy(),
                "label": batch.y.numpy(),
                "clean_pred": batch.pred.numpy(),
                "clean_correct": batch.correct.numpy(),
                "distance": distance.double().numpy(),
            }
        )
        for k, e in enumerate(self.spec.epsilons):
            part[f"robust@{eps_label(e)}"] = robust[:, k].numpy()
        self.parts.append(part)

    def records(self) -> pd.DataFrame:
        """One row per position of this shard, in position order (empty, with its columns,
        for a shard without positions)."""
        if self.parts:
            return pd.concat(self.parts, ignore_index=True)
        none = torch.empty(0, dtype=torch.long)
        empty = _Batch(none, none, none, none, none, none, none.bool())
        self._record(empty, torch.empty(0, len(self.spec.epsilons), dtype=torch.bool), none)
        return self.parts.pop()

    def offer(self, batch: _Batch, **rows: torch.Tensor) -> None:
        """Offer the batch's samples for the figure, with ``rows`` beside the clean ones."""
        self.picker.offer(
            batch.correct,
            index=batch.positions,
            clean=batch.x,
            adversarial=rows.pop("adversarial"),
            label=batch.y,
            clean_pred=batch.pred,
            **rows,
        )

    def settings(self, minimal_norm: bool) -> dict[str, Any]:
        ctx = self.ctx
        low, high = ctx.data.bounds
        return {
            "norm": self.spec.norm,
            "epsilons": self.spec.epsilons,
            **self.spec.options,
            "foolbox_attack": type(self.attack).__name__,
            "foolbox_version": fb.__version__,
            "bounds": [low, high],
            "n": ctx.total,  # the audit's, over every shard
            "seed": ctx.seed,
            "batch_size": ctx.batch_size,
            "minimal_norm": minimal_norm,
        }

    def result(self, *, minimal_norm: bool) -> AttackResult:
        """Metrics (from the records, as rank 0 computes them for every shard), records,
        examples and settings, the same for both families."""
        settings = self.settings(minimal_norm)
        records = self.records()
        examples = self.picker.stacked()
        if examples:
            examples["adv_pred"] = self.ctx.map_batches(
                lambda t: self.module(t).argmax(dim=1), examples["adversarial"]
            )
        metrics = summarise(records, settings)
        return AttackResult(self.spec.method, metrics, records, examples, settings)


def run_fixed(ctx: AuditContext, spec: EpsAttack) -> AttackResult:
    """A fixed-ε foolbox attack over the audited test examples, every ε per batch.

    The progress bar counts gradient steps (``steps`` per ε per batch), so a single
    batch of PGD moves the bar ``len(epsilons) × steps`` times.
    """
    run, epsilons = _Run(ctx, spec), spec.epsilons

    def body(b: _Batch) -> _Verdicts:
        starts = per_example_starts(spec.attack, ctx.example_generators(spec.salt, b.positions))
        with starts:
            _, clipped, success = spec.attack(run.fmodel, b.xb, b.yb, epsilons=epsilons)
        # success: [len(epsilons), B]; broken at ε if broken at any ε' <= ε.
        broken = success.cpu().cumsum(dim=0).T > 0
        run.offer(b, adversarial=clipped[-1], success=success[-1])
        return b.correct[:, None] & ~broken, torch.full((len(b.y),), math.nan)

    steps = int(getattr(spec.attack, "steps", 1))
    label = f"{spec.method}: {run.n_batches} batch(es) × {len(epsilons)} ε × {steps} step(s)"
    run.loop(body, label, len(epsilons) * steps, gradient=True)
    result = run.result(minimal_norm=False)
    if result.examples:
        result.examples["epsilon"] = torch.tensor(epsilons[-1])
    return result


def run_minimal(ctx: AuditContext, spec: EpsAttack) -> AttackResult:
    """A minimal-norm foolbox attack, unbounded; robust accuracy at ε read off distances."""
    run = _Run(ctx, spec)
    eps = torch.tensor(spec.epsilons, dtype=torch.double)

    def body(b: _Batch) -> _Verdicts:
        raw, _, success = spec.attack(run.fmodel, b.xb, b.yb, epsilons=None)
        success = success.cpu()
        found = perturbation_norms(raw - b.xb, spec.norm).cpu().double()
        # Failures need more than any ε: inf.  A misclassified sample needs no
        # perturbation at all: 0 (foolbox may report a rounding-sized one).
        found = torch.where(success, found, torch.full_like(found, math.inf))
        found = torch.where(b.correct, found, torch.zeros_like(found))
        # Where the attack failed show the clean input, not foolbox's placeholder.
        shape = (-1, *[1] * (b.xb.dim() - 1))
        adversarial = torch.where(success.to(b.xb.device).view(shape), raw, b.xb)
        run.offer(b, adversarial=adversarial, success=success & b.correct, distance=found)
        return b.correct[:, None] & (found[:, None] > eps), found

    run.loop(body, spec.method, 1, gradient=False)
    return run.result(minimal_norm=True)


# -- the metrics, from the records alone --------------------------------------------------------


def _column_share(records: pd.DataFrame, column: str) -> float:
    """The fraction of True in a boolean column (NaN when there are no records)."""
    values = records[column].to_numpy(dtype=bool)
    return float(values.mean(dtype=np.float64)) if len(values) else math.nan


def _distance_metrics(records: pd.DataFrame) -> dict[str, Any]:
    """Median / mean of the minimal distances over the clean-correct samples.

    Failed samples enter the median as ``inf`` (they need at least that much),
    so the median is honest; when more than half failed it is ``inf``, which
    JSON cannot hold: it is reported as None and ``median_distance_failures``
    says how many failed.  The mean is over the successes only (None if none).
    """
    correct = records["clean_correct"].to_numpy(dtype=bool)
    d = records["distance"].to_numpy(dtype=np.float64)[correct]
    finite = d[np.isfinite(d)]
    median = float(np.median(d)) if len(d) else math.inf
    return {
        "median_distance": median if math.isfinite(median) else None,
        "median_distance_failures": int(len(d) - len(finite)),
        "mean_distance": float(finite.mean()) if len(finite) else None,
    }


def summarise(records: pd.DataFrame, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Every metric of an ε-attack from its records alone: one shard's, or every shard's
    gathered in position order.

    ``settings["epsilons"]`` names the ``robust@ε`` columns; ``settings["minimal_norm"]``
    says whether the attack is minimal-norm and so reports its distances too (settings
    written before it existed: distances were recorded, fixed-ε attacks record NaN).
    """
    metrics = {
        "clean_accuracy": _column_share(records, "clean_correct"),
        "robust_accuracy": {
            eps_label(e): _column_share(records, f"robust@{eps_label(e)}")
            for e in settings["epsilons"]
        },
        "n": len(records),
    }
    minimal = settings.get("minimal_norm")
    if minimal is None:
        minimal = bool(records["distance"].notna().any())
    if minimal:
        metrics.update(_distance_metrics(records))
    return metrics
