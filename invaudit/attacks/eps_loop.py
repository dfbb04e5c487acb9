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
:class:`_Run`: the audited examples batch by batch under a seeded global RNG,
the clean decision of each batch, a progress bar, and the examples kept for
the figure.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import foolbox as fb
import numpy as np
import pandas as pd
import torch

from .base import AttackResult, AuditContext, share
from .epsilons import eps_label, perturbation_norms
from .foolbox_adapter import gradient_ticks, prepare, seeded

__all__ = ["EXAMPLES", "EpsAttack", "run_fixed", "run_minimal"]

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
        salt: separates its random stream (``ctx.generator(salt)``) from other attacks'.
    """

    method: str
    norm: str
    attack: Any
    epsilons: list[float]
    options: dict[str, Any]
    salt: int = 0


@dataclass
class _Batch:
    """One batch: its slice, inputs and labels on the model's device, and (on the CPU)
    the clean decision and whether it is right."""

    part: slice
    xb: torch.Tensor
    yb: torch.Tensor
    pred: torch.Tensor
    correct: torch.Tensor


class _Run:
    """One foolbox attack over the audited test examples (both families)."""

    def __init__(self, ctx: AuditContext, spec: EpsAttack) -> None:
        self.ctx, self.spec, self.attack = ctx, spec, spec.attack
        self.x, self.y, self.module, self.fmodel = prepare(ctx, spec.method)
        self.n = len(self.y)
        self.batches = list(ctx.batches(self.n))
        self.clean_pred = torch.empty(self.n, dtype=torch.long)
        self.picker = _Picker(EXAMPLES)

    def loop(
        self, body: Callable[[_Batch], None], label: str, per_batch: int, *, gradient: bool
    ) -> None:
        """``body`` on every batch under the seeded RNG; the bar counts ``per_batch`` units
        a batch (gradient steps, counted as foolbox takes them, when ``gradient``)."""
        ctx = self.ctx
        meter = _StepMeter(ctx, per_batch)
        ctx.progress.start(label, len(self.batches) * per_batch)
        ticks = gradient_ticks(self.attack, meter.tick) if gradient else nullcontext()
        try:
            with seeded(ctx, self.spec.salt), ticks:
                for part in self.batches:
                    xb, yb = ctx.to_model(self.x[part]), ctx.to_model(self.y[part])
                    with torch.no_grad():
                        pred = self.module(xb).argmax(dim=1).cpu()
                    self.clean_pred[part] = pred
                    body(_Batch(part, xb, yb, pred, pred == self.y[part]))
                    meter.batch_end()
        finally:
            ctx.progress.finish()

    def offer(self, batch: _Batch, **rows: torch.Tensor) -> None:
        """Offer the batch's samples for the figure, with ``rows`` beside the clean ones."""
        part = batch.part
        self.picker.offer(
            batch.correct,
            index=torch.arange(part.start, part.stop),
            clean=self.x[part],
            adversarial=rows.pop("adversarial"),
            label=self.y[part],
            clean_pred=batch.pred,
            **rows,
        )

    def result(
        self, robust: torch.Tensor, distance: torch.Tensor, metrics: dict[str, Any]
    ) -> AttackResult:
        """Metrics, records, examples and settings, the same for both families."""
        ctx, y, epsilons = self.ctx, self.y, self.spec.epsilons
        low, high = ctx.data.bounds
        settings = {
            "norm": self.spec.norm,
            "epsilons": epsilons,
            **self.spec.options,
            "foolbox_attack": type(self.attack).__name__,
            "foolbox_version": fb.__version__,
            "bounds": [low, high],
            "n": self.n,
            "seed": ctx.seed,
            "batch_size": ctx.batch_size,
        }
        correct = self.clean_pred == y
        metrics = {
            "clean_accuracy": share(correct),
            "robust_accuracy": {eps_label(e): share(robust[:, k]) for k, e in enumerate(epsilons)},
            "n": len(y),
            **metrics,
        }
        records = pd.DataFrame(
            {
                "index": np.arange(len(y)),
                "label": y.numpy(),
                "clean_pred": self.clean_pred.numpy(),
                "clean_correct": correct.numpy(),
                "distance": distance.numpy(),
            }
        )
        for k, e in enumerate(epsilons):
            records[f"robust@{eps_label(e)}"] = robust[:, k].numpy()
        examples = self.picker.stacked()
        if examples:
            examples["adv_pred"] = ctx.map_batches(
                lambda t: self.module(t).argmax(dim=1), examples["adversarial"]
            )
        return AttackResult(self.spec.method, metrics, records, examples, settings)


def run_fixed(ctx: AuditContext, spec: EpsAttack) -> AttackResult:
    """A fixed-ε foolbox attack over the audited test examples, every ε per batch.

    The progress bar counts gradient steps (``steps`` per ε per batch), so a single
    batch of PGD moves the bar ``len(epsilons) × steps`` times.
    """
    run, epsilons = _Run(ctx, spec), spec.epsilons
    robust = torch.empty(run.n, len(epsilons), dtype=torch.bool)

    def body(b: _Batch) -> None:
        _, clipped, success = spec.attack(run.fmodel, b.xb, b.yb, epsilons=epsilons)
        # success: [len(epsilons), B]; broken at ε if broken at any ε' <= ε.
        broken = success.cpu().cumsum(dim=0).T > 0
        robust[b.part] = b.correct[:, None] & ~broken
        run.offer(b, adversarial=clipped[-1], success=success[-1])

    steps = int(getattr(spec.attack, "steps", 1))
    label = f"{spec.method}: {len(run.batches)} batch(es) × {len(epsilons)} ε × {steps} step(s)"
    run.loop(body, label, len(epsilons) * steps, gradient=True)
    result = run.result(robust, torch.full((run.n,), math.nan, dtype=torch.double), {})
    if result.examples:
        result.examples["epsilon"] = torch.tensor(epsilons[-1])
    return result


def run_minimal(ctx: AuditContext, spec: EpsAttack) -> AttackResult:
    """A minimal-norm foolbox attack, unbounded; robust accuracy at ε read off distances."""
    run = _Run(ctx, spec)
    distance = torch.empty(run.n, dtype=torch.double)

    def body(b: _Batch) -> None:
        raw, _, success = spec.attack(run.fmodel, b.xb, b.yb, epsilons=None)
        success = success.cpu()
        found = perturbation_norms(raw - b.xb, spec.norm).cpu()
        # Failures need more than any ε: inf.  A misclassified sample needs no
        # perturbation at all: 0 (foolbox may report a rounding-sized one).
        found = torch.where(success, found, torch.full_like(found, math.inf))
        found = torch.where(b.correct, found, torch.zeros_like(found))
        distance[b.part] = found
        # Where the attack failed show the clean input, not foolbox's placeholder.
        shape = (-1, *[1] * (b.xb.dim() - 1))
        adversarial = torch.where(success.to(b.xb.device).view(shape), raw, b.xb)
        run.offer(b, adversarial=adversarial, success=success & b.correct, distance=found)

    run.loop(body, spec.method, 1, gradient=False)
    correct = run.clean_pred == run.y
    eps = torch.tensor(spec.epsilons, dtype=torch.double)
    robust = correct[:, None] & (distance[:, None] > eps)
    return run.result(robust, distance, _distance_metrics(distance, correct))


def _distance_metrics(distance: torch.Tensor, correct: torch.Tensor) -> dict[str, Any]:
    """Median / mean of the minimal distances over the clean-correct samples.

    Failed samples enter the median as ``inf`` (they need at least that much),
    so the median is honest; when more than half failed it is ``inf``, which
    JSON cannot hold: it is reported as None and ``median_distance_failures``
    says how many failed.  The mean is over the successes only (None if none).
    """
    d = distance[correct]
    finite = d[torch.isfinite(d)]
    median = float(np.median(d.numpy())) if len(d) else math.inf
    return {
        "median_distance": median if math.isfinite(median) else None,
        "median_distance_failures": int(len(d) - len(finite)),
        "mean_distance": float(finite.mean()) if len(finite) else None,
    }
