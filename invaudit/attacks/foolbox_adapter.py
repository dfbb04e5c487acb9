"""The audited model as foolbox 3 sees it: its logits as a module, bounds, device, seed.

foolbox wraps an ``nn.Module`` whose output is the logits, asserts (without a
message) that inputs lie in the bounds, draws random starts from the global
torch RNG and takes no progress callback; each has its answer here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import foolbox as fb
import torch
from torch import nn

from ..errors import DataError
from ..models.classifier import InvertibleClassifier
from .base import AuditContext

__all__ = ["gradient_ticks", "logit_module", "model_device", "prepare", "seeded"]


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
    """Seed the global RNG foolbox draws random starts from, and restore it afterwards.

    foolbox takes no generator, so the global one is the only handle; forking it
    keeps the caller's random stream untouched.  ``salt`` separates the streams of
    attacks that draw (``ctx.generator(salt)``).
    """
    device = model_device(ctx)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(ctx.generator(salt).initial_seed())
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


def prepare(
    ctx: AuditContext, method: str
) -> tuple[torch.Tensor, torch.Tensor, nn.Module, fb.PyTorchModel]:
    """The audited examples (checked against the bounds), the logit module and its foolbox
    wrapper on the model's device."""
    x, y = ctx.test_examples()
    _check_bounds(x, ctx.data.bounds, method)
    module = logit_module(ctx.model)
    fmodel = fb.PyTorchModel(module, bounds=ctx.data.bounds, device=model_device(ctx))
    return x, y, module, fmodel


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
