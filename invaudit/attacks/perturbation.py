"""ε-perturbation baselines through foolbox 3: the "excessive sensitivity" side of an audit.

Every method here is foolbox's own attack class run on the audited model's
logits; nothing is re-implemented.  Two families:

* **Fixed-ε** (``fgsm``, ``pgd-linf``, ``pgd-l2``): foolbox runs the attack once
  per ε and says, per sample, whether the clipped adversarial changes the
  decision.  An adversarial found within a smaller ε also lies within every
  larger one, so a sample counts as broken at ε when the attack succeeded at
  *any* ε' ≤ ε; robust accuracy is therefore non-increasing in ε by
  construction, never by luck of the optimiser.
* **Minimal-norm** (``deepfool-l2``, ``deepfool-linf``, ``cw-l2``): foolbox runs
  unbounded (``epsilons=None``) and returns, per sample, the smallest
  adversarial it found.  Its norm is the sample's ``distance`` (``inf`` where
  the attack failed); robust accuracy at ε is then read off the distances:
  a clean-correct sample is robust at ε iff its distance is > ε.

In both families a sample counts as robust only if it was classified
correctly to begin with; robust accuracy at ε = 0 is the clean accuracy.

Records hold one row per audited sample: ``index`` (position among the
audited examples), ``label``, ``clean_pred``, ``clean_correct``, ``distance``
(minimal-norm attacks: the found perturbation's norm, ``inf`` where the attack
failed, 0 for a sample misclassified to begin with; fixed-ε attacks: NaN) and
one boolean ``robust@{ε:g}`` column per ε.  Minimal-norm metrics add
``median_distance`` (over the clean-correct samples, failures counted as
``inf``; None when that median is ``inf``), ``median_distance_failures`` and
``mean_distance`` (over the successes).

Default ε (``epsilons=None``), per dataset and norm:

==================  ======================  ===========================
dataset             L∞                      L2
==================  ======================  ===========================
mnist, fashion-     0.1, 0.2, 0.3           1.0, 2.0
mnist
spheres (R2 = 10)   0.01, 0.05, 0.1         0.1, 0.5, 1.0, 2.0
imagenet            1/255, 2/255, 4/255     0.25, 0.5, 1.0
anything else       MNIST's × bound width   MNIST's × bound width
==================  ======================  ===========================

Spheres values scale with the outer radius (the bounds are ±R2), so a run
with another R2 keeps the same relative sizes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import foolbox as fb
import numpy as np
import pandas as pd
import torch
from torch import nn

from ..data.audit import AuditData
from ..errors import ConfigError, DataError
from ..models.classifier import InvertibleClassifier
from .base import Attack, AttackResult, AuditContext, share

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "ATTACKS",
    "check_epsilons",
    "default_epsilons",
    "eps_label",
    "figures",
    "logit_module",
    "run_cw_l2",
    "run_deepfool_l2",
    "run_deepfool_linf",
    "run_fgsm",
    "run_pgd_l2",
    "run_pgd_linf",
]

#: How many clean / adversarial pairs the result keeps for its figure.
EXAMPLES = 8

_MNIST_EPSILONS = {"linf": (0.1, 0.2, 0.3), "l2": (1.0, 2.0)}
_DEFAULT_EPSILONS: dict[str, dict[str, tuple[float, ...]]] = {
    "mnist": _MNIST_EPSILONS,
    "fashion-mnist": _MNIST_EPSILONS,
    "imagenet": {"linf": (1 / 255, 2 / 255, 4 / 255), "l2": (0.25, 0.5, 1.0)},
}
# At the default outer radius R2 = 10; scaled by R2 / 10 for other radii.
_SPHERES_EPSILONS = {"linf": (0.01, 0.05, 0.1), "l2": (0.1, 0.5, 1.0, 2.0)}
_NORM_LABEL = {"linf": "L∞", "l2": "L2"}
# Separates the random streams of the attack families (see _seeded).
_SALT = {"pgd-linf": 11, "pgd-l2": 12}


# -- options -------------------------------------------------------------------


def default_epsilons(data: AuditData, norm: str) -> list[float]:
    """The ε a run uses when given none: see the table in the module docstring."""
    if norm not in _NORM_LABEL:
        raise ConfigError(f"unknown norm {norm!r}; expected linf or l2")
    low, high = data.bounds
    if data.name == "spheres":
        scale = max(abs(low), abs(high)) / 10.0
        return [e * scale for e in _SPHERES_EPSILONS[norm]]
    if data.name in _DEFAULT_EPSILONS:
        return list(_DEFAULT_EPSILONS[data.name][norm])
    return [e * (high - low) for e in _MNIST_EPSILONS[norm]]


def eps_label(eps: float) -> str:
    """How an ε names a metric key and a record column (``0.1``, ``2``, ``0.00392157``)."""
    return f"{eps:g}"


def _epsilons(value: Any, data: AuditData, norm: str) -> list[float]:
    """The validated ε list, ascending and without repeats."""
    if value is None:
        return default_epsilons(data, norm)
    return check_epsilons(value)


def check_epsilons(value: Any) -> list[float]:
    """``value`` (one ε or a list) as the ascending ε list without repeats; a one-line
    :class:`ConfigError` unless it holds at least one finite number >= 0."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigError(f"epsilons: expected a list of numbers, got {value!r}")
    if not value:
        raise ConfigError("epsilons: expected at least one value, got an empty list")
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value):
        raise ConfigError(f"epsilons: expected numbers, got {list(value)!r}")
    bad = [v for v in value if not math.isfinite(v) or v < 0]
    if bad:
        raise ConfigError(f"epsilons: expected finite values >= 0, got {bad[0]!r}")
    values = sorted({float(v) for v in value})
    labels = [eps_label(v) for v in values]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"epsilons: values too close to tell apart in reports: {values}")
    return values


def _positive_int(name: str, value: Any, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}: expected an integer >= 1, got {value!r}")
    return value


def _number(name: str, value: Any, *, positive: bool) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ConfigError(f"{name}: expected a finite number {bound}, got {value!r}")
    return float(value)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name}: expected true or false, got {value!r}")
    return value


# -- the model as foolbox sees it ---------------------------------------------


class _Logits(nn.Module):
    """An invertible classifier's z_s as a module: foolbox only wraps ``nn.Module``."""

    def __init__(self, model: InvertibleClassifier) -> None:
        super().__init__()
        self.model = model
        # Mirror the model's mode (eval) without touching it: a fresh module starts
        # in training mode, which foolbox would warn about.
        self.training = model.training

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.logits(x)


def logit_module(model: nn.Module) -> nn.Module:
    """The module whose output is the logits: ``model.logits`` for an invertible classifier,
    the module itself for any other classifier (e.g. a plain CNN)."""
    return _Logits(model) if isinstance(model, InvertibleClassifier) else model


def _device(ctx: AuditContext) -> torch.device:
    try:
        return next(ctx.model.parameters()).device
    except StopIteration:
        return ctx.device


@contextmanager
def _seeded(ctx: AuditContext, method: str) -> Iterator[None]:
    """Seed the global RNG foolbox draws random starts from, and restore it afterwards.

    foolbox takes no generator, so the global one is the only handle; forking it
    keeps the caller's random stream untouched.
    """
    device = _device(ctx)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(ctx.generator(_SALT.get(method, 0)).initial_seed())
        yield


def _check_bounds(x: torch.Tensor, bounds: tuple[float, float], method: str) -> None:
    # foolbox asserts this deep inside with a bare AssertionError; say it in one line first.
    low, high = bounds
    lo, hi = float(x.min()), float(x.max())
    if lo < low or hi > high:
        raise DataError(
            f"{method}: test inputs range over [{lo:g}, {hi:g}], outside the dataset bounds "
            f"[{low:g}, {high:g}] the attack must stay in"
        )


def _prepare(
    ctx: AuditContext, method: str
) -> tuple[torch.Tensor, torch.Tensor, nn.Module, fb.PyTorchModel]:
    """The audited examples (checked against the bounds), the logit module and its foolbox
    wrapper on the model's device."""
    x, y = ctx.test_examples()
    _check_bounds(x, ctx.data.bounds, method)
    module = logit_module(ctx.model)
    fmodel = fb.PyTorchModel(module, bounds=ctx.data.bounds, device=_device(ctx))
    return x, y, module, fmodel


def _norms(delta: torch.Tensor, norm: str) -> torch.Tensor:
    flat = delta.flatten(1).double()
    return flat.abs().amax(dim=1) if norm == "linf" else flat.norm(dim=1)


# -- running -------------------------------------------------------------------


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


def _settings(
    ctx: AuditContext, norm: str, attack: Any, epsilons: list[float], n: int, **options: Any
) -> dict[str, Any]:
    low, high = ctx.data.bounds
    return {
        "norm": norm,
        "epsilons": epsilons,
        **options,
        "foolbox_attack": type(attack).__name__,
        "foolbox_version": fb.__version__,
        "bounds": [low, high],
        "n": n,
        "seed": ctx.seed,
        "batch_size": ctx.batch_size,
    }


def _finish(
    ctx: AuditContext,
    method: str,
    module: nn.Module,
    y: torch.Tensor,
    clean_pred: torch.Tensor,
    robust: torch.Tensor,
    distance: torch.Tensor,
    epsilons: list[float],
    picker: _Picker,
    metrics: dict[str, Any],
    settings: dict[str, Any],
) -> AttackResult:
    """Assemble metrics, records and examples shared by both families."""
    correct = clean_pred == y
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
            "clean_pred": clean_pred.numpy(),
            "clean_correct": correct.numpy(),
            "distance": distance.numpy(),
        }
    )
    for k, e in enumerate(epsilons):
        records[f"robust@{eps_label(e)}"] = robust[:, k].numpy()
    examples = picker.stacked()
    if examples:
        examples["adv_pred"] = ctx.map_batches(
            lambda t: module(t).argmax(dim=1), examples["adversarial"]
        )
    return AttackResult(method, metrics, records, examples, settings)


@contextmanager
def _gradient_ticks(attack: Any, tick: Callable[[], None]) -> Iterator[None]:
    """Call ``tick`` after every gradient step of a foolbox gradient-descent attack.

    foolbox takes no callback, but its ``BaseGradientDescent.run`` takes each step's
    gradient through ``self.value_and_grad`` ("can be overridden by users"); an
    instance attribute shadows it for this run only, so nothing else changes: the
    same steps, the same random draws, the same result.
    """
    inner = attack.value_and_grad

    def value_and_grad(loss_fn: Any, x: Any) -> Any:
        out = inner(loss_fn, x)
        tick()
        return out

    attack.value_and_grad = value_and_grad
    try:
        yield
    finally:
        del attack.value_and_grad


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


def _run_fixed(
    ctx: AuditContext,
    method: str,
    norm: str,
    attack: Any,
    epsilons: list[float],
    options: dict[str, Any],
) -> AttackResult:
    """A fixed-ε foolbox attack over the audited test examples, every ε per batch.

    The progress bar counts gradient steps (``steps`` per ε per batch), so a single
    batch of PGD moves the bar ``len(epsilons) × steps`` times.
    """
    x, y, module, fmodel = _prepare(ctx, method)
    n = len(y)
    clean_pred = torch.empty(n, dtype=torch.long)
    robust = torch.empty(n, len(epsilons), dtype=torch.bool)
    picker = _Picker(EXAMPLES)
    batches = list(ctx.batches(n))
    steps = int(getattr(attack, "steps", 1))
    meter = _StepMeter(ctx, len(epsilons) * steps)
    label = f"{method}: {len(batches)} batch(es) × {len(epsilons)} ε × {steps} step(s)"
    ctx.progress.start(label, len(batches) * meter.per_batch)
    try:
        with _seeded(ctx, method), _gradient_ticks(attack, meter.tick):
            for part in batches:
                xb, yb = ctx.to_model(x[part]), ctx.to_model(y[part])
                with torch.no_grad():
                    pred = module(xb).argmax(dim=1).cpu()
                _, clipped, success = attack(fmodel, xb, yb, epsilons=epsilons)
                # success: [len(epsilons), B]; broken at ε if broken at any ε' <= ε.
                broken = success.cpu().cumsum(dim=0).T > 0
                correct = pred == y[part]
                clean_pred[part] = pred
                robust[part] = correct[:, None] & ~broken
                picker.offer(
                    correct,
                    index=torch.arange(part.start, part.stop),
                    clean=x[part],
                    adversarial=clipped[-1],
                    label=y[part],
                    clean_pred=pred,
                    success=success[-1],
                )
                meter.batch_end()
    finally:
        ctx.progress.finish()
    settings = _settings(ctx, norm, attack, epsilons, n, **options)
    result = _finish(
        ctx,
        method,
        module,
        y,
        clean_pred,
        robust,
        torch.full((n,), math.nan, dtype=torch.double),
        epsilons,
        picker,
        {},
        settings,
    )
    if result.examples:
        result.examples["epsilon"] = torch.tensor(epsilons[-1])
    return result


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


def _run_minimal(
    ctx: AuditContext,
    method: str,
    norm: str,
    attack: Any,
    epsilons: list[float],
    options: dict[str, Any],
) -> AttackResult:
    """A minimal-norm foolbox attack, unbounded; robust accuracy at ε read off distances."""
    x, y, module, fmodel = _prepare(ctx, method)
    n = len(y)
    clean_pred = torch.empty(n, dtype=torch.long)
    distance = torch.empty(n, dtype=torch.double)
    picker = _Picker(EXAMPLES)
    batches = list(ctx.batches(n))
    ctx.progress.start(method, len(batches))
    try:
        with _seeded(ctx, method):
            for part in batches:
                xb, yb = ctx.to_model(x[part]), ctx.to_model(y[part])
                with torch.no_grad():
                    pred = module(xb).argmax(dim=1).cpu()
                raw, _, success = attack(fmodel, xb, yb, epsilons=None)
                success = success.cpu()
                correct = pred == y[part]
                found = _norms(raw - xb, norm).cpu()
                # Failures need more than any ε: inf.  A misclassified sample needs no
                # perturbation at all: 0 (foolbox may report a rounding-sized one).
                found = torch.where(success, found, torch.full_like(found, math.inf))
                found = torch.where(correct, found, torch.zeros_like(found))
                clean_pred[part] = pred
                distance[part] = found
                # Where the attack failed show the clean input, not foolbox's placeholder.
                adversarial = torch.where(
                    success.to(xb.device).view(-1, *[1] * (xb.dim() - 1)), raw, xb
                )
                picker.offer(
                    correct,
                    index=torch.arange(part.start, part.stop),
                    clean=x[part],
                    adversarial=adversarial,
                    label=y[part],
                    clean_pred=pred,
                    success=success & correct,
                    distance=found,
                )
                ctx.progress.advance()
    finally:
        ctx.progress.finish()
    correct = clean_pred == y
    robust = correct[:, None] & (distance[:, None] > torch.tensor(epsilons, dtype=torch.double))
    settings = _settings(ctx, norm, attack, epsilons, n, **options)
    return _finish(
        ctx,
        method,
        module,
        y,
        clean_pred,
        robust,
        distance,
        epsilons,
        picker,
        _distance_metrics(distance, correct),
        settings,
    )


# -- the methods ---------------------------------------------------------------


def run_fgsm(ctx: AuditContext, *, epsilons: Sequence[float] | None = None) -> AttackResult:
    """FGSM (one signed-gradient step of size ε, no random start) at each ε.

    Args:
        epsilons: L∞ radii (None: the dataset's default, see the module docstring).
    """
    eps = _epsilons(epsilons, ctx.data, "linf")
    attack = fb.attacks.FGSM()
    return _run_fixed(ctx, "fgsm", "linf", attack, eps, {"random_start": False})


def _pgd(
    ctx: AuditContext,
    method: str,
    norm: str,
    epsilons: Any,
    steps: Any,
    rel_stepsize: Any,
    random_start: Any,
) -> AttackResult:
    eps = _epsilons(epsilons, ctx.data, norm)
    steps = _positive_int("steps", steps, 40)
    # Madry et al.'s rule: the steps together can cross the ball 2.5 times.
    rel = (
        2.5 / steps
        if rel_stepsize is None
        else _number("rel_stepsize", rel_stepsize, positive=True)
    )
    random_start = _flag("random_start", random_start)
    cls = fb.attacks.LinfPGD if norm == "linf" else fb.attacks.L2PGD
    attack = cls(rel_stepsize=rel, steps=steps, random_start=random_start)
    options = {"steps": steps, "rel_stepsize": rel, "random_start": random_start}
    return _run_fixed(ctx, method, norm, attack, eps, options)


def run_pgd_linf(
    ctx: AuditContext,
    *,
    epsilons: Sequence[float] | None = None,
    steps: int | None = 40,
    rel_stepsize: float | None = None,
    random_start: bool = True,
) -> AttackResult:
    """L∞ PGD (Madry et al.) at each ε.

    Args:
        epsilons: L∞ radii (None: the dataset's default, see the module docstring).
        steps: gradient steps per ε (None: 40).
        rel_stepsize: step size as a fraction of ε (None: 2.5 / steps).
        random_start: start uniformly in the ε-ball.  foolbox draws the start from
            the global torch RNG, which is seeded from the audit's seed (so one seed
            gives one result on the CPU); the draw is per batch, so results with a
            random start also depend on the batch size.
    """
    return _pgd(ctx, "pgd-linf", "linf", epsilons, steps, rel_stepsize, random_start)


def run_pgd_l2(
    ctx: AuditContext,
    *,
    epsilons: Sequence[float] | None = None,
    steps: int | None = 40,
    rel_stepsize: float | None = None,
    random_start: bool = True,
) -> AttackResult:
    """L2 PGD at each ε.

    Args:
        epsilons: L2 radii (None: the dataset's default, see the module docstring).
        steps: gradient steps per ε (None: 40).
        rel_stepsize: step size as a fraction of ε (None: 2.5 / steps).
        random_start: start uniformly in the ε-ball (seeded as for ``pgd-linf``).
    """
    return _pgd(ctx, "pgd-l2", "l2", epsilons, steps, rel_stepsize, random_start)


def _deepfool(
    ctx: AuditContext,
    method: str,
    norm: str,
    epsilons: Any,
    steps: Any,
    overshoot: Any,
    candidates: Any,
) -> AttackResult:
    eps = _epsilons(epsilons, ctx.data, norm)
    steps = _positive_int("steps", steps, 50)
    overshoot = _number("overshoot", overshoot, positive=False)
    candidates = _positive_int("candidates", candidates, 10)
    if candidates < 2:
        raise ConfigError(f"candidates: expected at least 2 classes, got {candidates}")
    cls = fb.attacks.LinfDeepFoolAttack if norm == "linf" else fb.attacks.L2DeepFoolAttack
    attack = cls(steps=steps, overshoot=overshoot, candidates=candidates)
    options = {"steps": steps, "overshoot": overshoot, "candidates": candidates}
    return _run_minimal(ctx, method, norm, attack, eps, options)


def run_deepfool_l2(
    ctx: AuditContext,
    *,
    epsilons: Sequence[float] | None = None,
    steps: int | None = 50,
    overshoot: float = 0.02,
    candidates: int = 10,
) -> AttackResult:
    """L2 DeepFool: the nearest decision boundary under a local linear model, unbounded.

    Args:
        epsilons: L2 radii robust accuracy is read at (None: the dataset's default).
        steps: linearisation steps at most (None: 50, foolbox's default).
        overshoot: relative step past the boundary (foolbox's 0.02): found distances
            are about that much above the true ones.
        candidates: the most likely classes considered as targets.
    """
    return _deepfool(ctx, "deepfool-l2", "l2", epsilons, steps, overshoot, candidates)


def run_deepfool_linf(
    ctx: AuditContext,
    *,
    epsilons: Sequence[float] | None = None,
    steps: int | None = 50,
    overshoot: float = 0.02,
    candidates: int = 10,
) -> AttackResult:
    """L∞ DeepFool, unbounded; options as for ``deepfool-l2`` with L∞ radii.

    Args:
        epsilons: L∞ radii robust accuracy is read at (None: the dataset's default).
        steps: linearisation steps at most (None: 50).
        overshoot: relative step past the boundary (0.02).
        candidates: the most likely classes considered as targets.
    """
    return _deepfool(ctx, "deepfool-linf", "linf", epsilons, steps, overshoot, candidates)


def run_cw_l2(
    ctx: AuditContext,
    *,
    epsilons: Sequence[float] | None = None,
    steps: int | None = 100,
    binary_search_steps: int = 9,
    stepsize: float | None = None,
) -> AttackResult:
    """Carlini & Wagner L2, unbounded: the smallest adversarial its search finds.

    Args:
        epsilons: L2 radii robust accuracy is read at (None: the dataset's default).
        steps: Adam steps per binary-search step (None: 100; foolbox's 10000 is far
            beyond a CPU audit, and early abort stops most searches sooner anyway).
        binary_search_steps: searches over the loss constant (foolbox's 9).
        stepsize: Adam's learning rate in tanh space (None: 0.01 / (high - low), which
            is foolbox's 0.01 on [0, 1] images; foolbox's fixed 0.01 moves a ±10 spheres
            input ~0.1 per step and overestimates small distances by up to ~80 %).
        Where C&W finds nothing, foolbox returns the all-zero input; if that input is
        misclassified it is a genuine (far) adversarial and counts as found.
    """
    eps = _epsilons(epsilons, ctx.data, "l2")
    steps = _positive_int("steps", steps, 100)
    binary = _positive_int("binary_search_steps", binary_search_steps, 9)
    low, high = ctx.data.bounds
    if stepsize is None:
        stepsize = 0.01 / (high - low)
    stepsize = _number("stepsize", stepsize, positive=True)
    attack = fb.attacks.L2CarliniWagnerAttack(
        binary_search_steps=binary, steps=steps, stepsize=stepsize
    )
    options = {"steps": steps, "binary_search_steps": binary, "stepsize": stepsize}
    return _run_minimal(ctx, "cw-l2", "l2", attack, eps, options)


# -- figures -------------------------------------------------------------------


def _curve_figure(result: AttackResult) -> Figure:
    from matplotlib.figure import Figure

    norm = _NORM_LABEL[result.settings["norm"]]
    epsilons = result.settings["epsilons"]
    robust = [result.metrics["robust_accuracy"][eps_label(e)] for e in epsilons]
    clean = result.metrics["clean_accuracy"]
    fig = Figure(figsize=(4.5, 3.2), layout="constrained")
    ax = fig.subplots()
    distance = result.records["distance"].to_numpy(dtype=float)
    minimal = not np.isnan(distance).all()
    if minimal:
        # A minimal-norm attack gives the whole curve: accuracy at every radius t.
        correct = result.records["clean_correct"].to_numpy(dtype=bool)
        finite = distance[np.isfinite(distance)]
        top = max(max(epsilons), float(finite.max()) if len(finite) else 0.0) * 1.05 or 1.0
        t = np.linspace(0.0, top, 400)
        curve = [(correct & (distance > ti)).mean() for ti in t]
        ax.plot(t, curve, color="C0", lw=1.2, label="from minimal distances")
    ax.plot(
        epsilons,
        robust,
        "o" if minimal or len(epsilons) == 1 else "o-",  # the blue curve joins them
        color="C1",
        label="robust accuracy at ε",
    )
    ax.axhline(clean, color="grey", ls="--", lw=1, label=f"clean accuracy {100 * clean:.1f}%")
    ax.set_xlabel(f"ε ({norm} radius, input units)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(left=0)
    ax.set_title(f"{result.method}: robust accuracy vs ε (n={result.metrics['n']})")
    ax.legend(fontsize="small", loc="upper right")
    ax.grid(alpha=0.3)
    return fig


def _image(t: torch.Tensor, low: float, high: float) -> np.ndarray:
    img = ((t.double() - low) / (high - low)).clamp(0, 1)
    return img[0].numpy() if img.shape[0] == 1 else img.permute(1, 2, 0).numpy()


def _pairs_figure(result: AttackResult) -> Figure:
    from matplotlib.figure import Figure

    from ..data.classes import class_name

    ex = result.examples
    dataset = result.settings.get("dataset")
    low, high = result.settings["bounds"]
    norm = _NORM_LABEL[result.settings["norm"]]
    k = len(ex["clean"])
    fig = Figure(figsize=(1.4 * k + 0.6, 4.4), layout="constrained")
    axes = np.asarray(fig.subplots(3, k, squeeze=False))
    gray = ex["clean"].shape[1] == 1
    for j in range(k):
        clean, adv = ex["clean"][j], ex["adversarial"][j]
        delta = (adv - clean).double()
        scale = float(delta.abs().max()) or 1.0
        axes[0, j].imshow(_image(clean, low, high), cmap="gray" if gray else None, vmin=0, vmax=1)
        axes[0, j].set_title(f"label {class_name(dataset, ex['label'][j])}", fontsize=8)
        axes[1, j].imshow(_image(adv, low, high), cmap="gray" if gray else None, vmin=0, vmax=1)
        size = float(_norms(delta[None], result.settings["norm"])[0])
        pred = class_name(dataset, ex["adv_pred"][j])
        axes[1, j].set_title(f"pred {pred}\n{norm} {size:.3g}", fontsize=8)
        axes[2, j].imshow(delta.mean(0).numpy(), cmap="seismic", vmin=-scale, vmax=scale)
        for i in range(3):
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
    for i, name in enumerate(("clean", "adversarial", "perturbation")):
        axes[i, 0].set_ylabel(name, fontsize=9)
    which = (
        f"adversarials at ε = {eps_label(float(ex['epsilon']))}"
        if "epsilon" in ex
        else ("minimal adversarials")
    )
    fig.suptitle(f"{result.method}: {which} (perturbation rescaled per column)", fontsize=10)
    return fig


def _distance_figure(result: AttackResult) -> Figure:
    from matplotlib.figure import Figure

    norm = _NORM_LABEL[result.settings["norm"]]
    records = result.records[result.records["clean_correct"]]
    distance = records["distance"].to_numpy(dtype=float)
    finite = distance[np.isfinite(distance)]
    fig = Figure(figsize=(4.5, 3.2), layout="constrained")
    ax = fig.subplots()
    if len(finite):
        ax.hist(finite, bins=min(30, max(5, len(finite) // 5)), color="C0", alpha=0.8)
    for e in result.settings["epsilons"]:
        ax.axvline(e, color="C1", ls=":", lw=1)
    failed = len(distance) - len(finite)
    ax.set_xlabel(f"minimal {norm} distance found (ε marked dotted)")
    ax.set_ylabel("clean-correct samples")
    ax.set_title(f"{result.method}: {len(finite)} found, {failed} failed", fontsize=10)
    return fig


def figures(result: AttackResult) -> dict[str, Figure]:
    """Robust accuracy vs ε; for minimal-norm attacks the distance histogram; for images
    the clean / adversarial / perturbation columns."""
    out = {"robust_accuracy": _curve_figure(result)}
    if not result.records["distance"].isna().all():
        out["distances"] = _distance_figure(result)
    clean = result.examples.get("clean")
    if clean is not None and clean.dim() == 4 and clean.shape[1] in (1, 3):
        out["examples"] = _pairs_figure(result)
    return out


#: Every ε-attack reports these; the minimal-norm ones add :data:`_DISTANCE_METRICS`.
_FIXED_METRICS = ("clean_accuracy", "robust_accuracy", "n")
_DISTANCE_METRICS = ("median_distance", "median_distance_failures", "mean_distance")


#: Both are shares of the audited samples (robust accuracy: one per ε).
_RATES = {"clean_accuracy": "n", "robust_accuracy": "n"}


def _describe_pgd(norm: str) -> Callable[[Mapping[str, Any]], str]:
    def describe(settings: Mapping[str, Any]) -> str:
        steps = settings.get("steps") or 40
        rel = settings.get("rel_stepsize") or 2.5 / steps
        start = "random start, " if settings.get("random_start", True) else ""
        return (
            f"{_NORM_LABEL[norm]} PGD (foolbox, {start}{steps} steps of {rel:.3g}·ε): "
            "robust accuracy at each ε"
        )

    return describe


def _describe_deepfool(norm: str) -> Callable[[Mapping[str, Any]], str]:
    def describe(settings: Mapping[str, Any]) -> str:
        return (
            f"{_NORM_LABEL[norm]} DeepFool (foolbox, up to {settings.get('steps') or 50} "
            f"steps): minimal {_NORM_LABEL[norm]} distance to the boundary, robust accuracy at ε"
        )

    return describe


def _describe_cw(settings: Mapping[str, Any]) -> str:
    return (
        f"Carlini-Wagner L2 (foolbox, {settings.get('binary_search_steps')} binary-search "
        f"steps × up to {settings.get('steps') or 100} Adam steps): minimal L2 adversarial "
        "distance, robust accuracy at ε"
    )


def _entry(
    name: str,
    run: Callable[..., AttackResult],
    options: dict[str, Any],
    summary: str,
    minimal_norm: bool = False,
    describe: Callable[[Mapping[str, Any]], str] | None = None,
) -> Attack:
    norm = "l2" if name.endswith("-l2") else "linf"  # fgsm and the -linf methods
    return Attack(
        name=name,
        kind="sensitivity",
        run=run,
        options=options,
        figures=figures,
        summary=summary,
        datasets=None,
        needs_invertible=False,
        metrics=_FIXED_METRICS + (_DISTANCE_METRICS if minimal_norm else ()),
        norm=norm,
        rates=dict(_RATES),
        describe=describe,
    )


_PGD_OPTIONS = {"epsilons": None, "steps": 40, "rel_stepsize": None, "random_start": True}
_DEEPFOOL_OPTIONS = {"epsilons": None, "steps": 50, "overshoot": 0.02, "candidates": 10}

ATTACKS: tuple[Attack, ...] = (
    _entry(
        "fgsm",
        run_fgsm,
        {"epsilons": None},
        "FGSM (foolbox): one L∞ gradient-sign step; robust accuracy at each ε",
    ),
    _entry(
        "pgd-linf",
        run_pgd_linf,
        dict(_PGD_OPTIONS),
        "L∞ PGD (foolbox, random start; steps: option steps): robust accuracy at each ε",
        describe=_describe_pgd("linf"),
    ),
    _entry(
        "pgd-l2",
        run_pgd_l2,
        dict(_PGD_OPTIONS),
        "L2 PGD (foolbox, random start; steps: option steps): robust accuracy at each ε",
        describe=_describe_pgd("l2"),
    ),
    _entry(
        "deepfool-l2",
        run_deepfool_l2,
        dict(_DEEPFOOL_OPTIONS),
        "L2 DeepFool (foolbox): minimal L2 distance to the boundary, robust accuracy at ε",
        minimal_norm=True,
        describe=_describe_deepfool("l2"),
    ),
    _entry(
        "deepfool-linf",
        run_deepfool_linf,
        dict(_DEEPFOOL_OPTIONS),
        "L∞ DeepFool (foolbox): minimal L∞ distance to the boundary, robust accuracy at ε",
        minimal_norm=True,
        describe=_describe_deepfool("linf"),
    ),
    _entry(
        "cw-l2",
        run_cw_l2,
        {"epsilons": None, "steps": 100, "binary_search_steps": 9, "stepsize": None},
        "Carlini-Wagner L2 (foolbox): minimal L2 adversarial distance, robust accuracy at ε",
        minimal_norm=True,
        describe=_describe_cw,
    ),
)
