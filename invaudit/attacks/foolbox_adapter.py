"""The audited model as foolbox 3 sees it: its logits as a module, bounds, device, seed.

foolbox wraps an ``nn.Module`` whose output is the logits, asserts (without a
message) that inputs lie in the bounds, draws random starts for a whole batch
from the global torch RNG and takes no progress callback; each has its answer
here (:func:`per_example_starts` draws each example's start from its own generator).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import eagerpy as ep
import foolbox as fb
import torch
from foolbox.attacks.gradient_descent_base import L2BaseGradientDescent, LinfBaseGradientDescent
from torch import nn

from ..errors import DataError
from ..models.classifier import InvertibleClassifier
from .base import AuditContext

__all__ = [
    "check_bounds",
    "gradient_ticks",
    "logit_module",
    "model_device",
    "per_example_starts",
    "prepare",
    "seeded",
]


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


def model_device(ctx: AuditContext) -> torch.device:
    try:
        return next(ctx.model.parameters()).device
    except StopIteration:
        return ctx.device


@contextmanager
def seeded(ctx: AuditContext, salt: int) -> Iterator[None]:
    """Seed the global RNG, and restore it afterwards, for whatever foolbox still draws there.

    PGD's random start no longer comes from it (:func:`per_example_starts`), but
    foolbox takes no generator, so should an attack draw elsewhere the global one
    is the only handle; forking it keeps the caller's random stream untouched.
    ``salt`` separates the streams of attacks that draw (``ctx.generator(salt)``).
    """
    device = model_device(ctx)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(ctx.generator(salt).initial_seed())
        yield


def check_bounds(x: torch.Tensor, bounds: tuple[float, float], method: str) -> None:
    """A one-line :class:`DataError` when ``x`` (one batch) leaves the dataset bounds."""
    # foolbox asserts this deep inside with a bare AssertionError; say it in one line first.
    low, high = bounds
    lo, hi = float(x.min()), float(x.max())
    if lo < low or hi > high:
        raise DataError(
            f"{method}: test inputs range over [{lo:g}, {hi:g}], outside the dataset bounds "
            f"[{low:g}, {high:g}] the attack must stay in"
        )


def prepare(ctx: AuditContext) -> tuple[nn.Module, fb.PyTorchModel]:
    """The logit module and its foolbox wrapper on the model's device.

    No inputs: the attack loads them a batch at a time and checks each batch's
    bounds (:func:`check_bounds`) before the model sees it.
    """
    module = logit_module(ctx.model)
    fmodel = fb.PyTorchModel(module, bounds=ctx.data.bounds, device=model_device(ctx))
    return module, fmodel


@contextmanager
def gradient_ticks(attack: Any, tick: Callable[[], None]) -> Iterator[None]:
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


#: Which ball a gradient-descent attack starts in, by the random start its class uses.
#: Keyed by foolbox's own method so that a subclass drawing its start some other way
#: is refused rather than silently given ours.
_START_BALLS = {
    LinfBaseGradientDescent.get_random_start: "linf",
    L2BaseGradientDescent.get_random_start: "l2",
}


def _start_ball(attack: Any) -> str:
    ball = _START_BALLS.get(getattr(type(attack), "get_random_start", None))
    if ball is None:
        raise TypeError(
            f"{type(attack).__name__}: per-example random starts are drawn in the L∞ or L2 "
            "ball of foolbox's LinfBaseGradientDescent / L2BaseGradientDescent only; this "
            "attack's random start is neither"
        )
    return ball


def start_offset(
    ball: str, shape: torch.Size, epsilon: float, generator: torch.Generator
) -> torch.Tensor:
    """One example's random start offset, uniform in the ``ball`` ε-ball, in float64.

    Drawn in float64 on the CPU whatever the model's dtype and device, so the draw
    (and what is left of the generator for the next ε) is the same everywhere.
    """
    if ball == "linf":
        return epsilon * (2 * torch.rand(shape, generator=generator, dtype=torch.float64) - 1)
    direction = torch.randn(shape.numel(), generator=generator, dtype=torch.float64)
    direction = direction / direction.norm().clamp_min(1e-300)
    # ε·u^(1/d) makes the radius uniform in volume: inside the ball, not bunched at its centre.
    u = float(torch.rand((), generator=generator, dtype=torch.float64))
    return (epsilon * u ** (1 / direction.numel()) * direction).reshape(shape)


@contextmanager
def per_example_starts(attack: Any, generators: list[torch.Generator]) -> Iterator[None]:
    """Draw a foolbox gradient-descent attack's random start row by row, row i from
    ``generators[i]``, for the calls made inside.

    foolbox draws the start of a whole batch at once from the global RNG, so an
    example's start would depend on its batch and shard.  ``BaseGradientDescent.run``
    asks ``self.get_random_start(x0, epsilon)`` for it (once per ε, in ε order); an
    instance attribute shadows that for this block only, as :func:`gradient_ticks`
    does for the steps.  With one generator per audited position
    (``ctx.example_generators``) an example's starts depend on its position alone.
    An attack without a random start is left untouched.
    """
    if not getattr(attack, "random_start", False):
        yield
        return
    ball = _start_ball(attack)

    def get_random_start(x0: Any, epsilon: float) -> Any:
        raw = x0.raw
        if len(generators) != raw.shape[0]:
            raise ValueError(
                f"per_example_starts: {len(generators)} generator(s) for a batch of "
                f"{raw.shape[0]} example(s)"
            )
        offsets = [start_offset(ball, raw.shape[1:], epsilon, g) for g in generators]
        noise = torch.stack(offsets).to(device=raw.device, dtype=raw.dtype)
        return x0 + ep.astensor(noise)

    attack.get_random_start = get_random_start
    try:
        yield
    finally:
        del attack.get_random_start
