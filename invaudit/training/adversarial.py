"""Adversarial training (Madry et al., ICLR 2018): train on L∞ attacks of each batch.

``invaudit train --adversarial pgd`` replaces every training batch by its PGD
attack inside the L∞ ball of radius ``--adv-epsilon`` (random start, ``--adv-steps``
signed-gradient steps, each projected back onto the ball and the data box);
``fgsm-rs`` is the one-step variant with a random start (Wong, Rice and Kolter,
ICLR 2020, "Fast is better than free"), which costs two passes per batch instead
of ``steps + 1``.  ``--adv-ramp-epochs`` grows ε linearly from 0 over the first
epochs, which keeps one-step training from collapsing early.

Only plain classifiers train this way: a fiRevNet's robustness is not what its
audits are about, and its nuisance game would need attacks of its own.  The
random starts draw from torch's global generator, which the trainer seeds per
epoch and rank, so a resumed run attacks exactly as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..errors import ConfigError

#: ``--adversarial``'s choices; ``none`` is ordinary training.
ADVERSARIAL = ("none", "fgsm-rs", "pgd")


def default_step_size(attack: str, epsilon: float, steps: int) -> float:
    """Wong et al.'s 1.25 ε for one step; Madry et al.'s 2.5 ε / steps for PGD."""
    return 1.25 * epsilon if attack == "fgsm-rs" else 2.5 * epsilon / steps


def check_adversarial(attack: str, epsilon: float, steps: int, step_size: float) -> None:
    """Refuse (:class:`ConfigError`) settings no adversarial run can have."""
    if attack not in ADVERSARIAL:
        raise ConfigError(f"unknown --adversarial {attack!r}; expected one of {ADVERSARIAL}")
    if attack == "none":
        return
    if not epsilon > 0:
        raise ConfigError(f"--adv-epsilon must be positive, got {epsilon}")
    if steps < 1:
        raise ConfigError(f"--adv-steps must be at least 1, got {steps}")
    if step_size < 0:
        raise ConfigError(f"--adv-step-size must be positive (0: the default), got {step_size}")


def linf_attack(
    logits_of: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epsilon: float,
    steps: int,
    step_size: float,
    bounds: tuple[float, float],
) -> torch.Tensor:
    """A point of ``x``'s L∞ ε-ball (and of the box ``bounds``) where the cross-entropy of
    ``logits_of`` is high: a uniform random start, then ``steps`` signed-gradient steps
    of ``step_size``, each projected back.  Returns a detached tensor."""
    low, high = bounds
    delta = torch.empty_like(x).uniform_(-epsilon, epsilon)
    delta = (x + delta).clamp(low, high) - x
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = F.cross_entropy(logits_of(x + delta), y)
        (grad,) = torch.autograd.grad(loss, delta)
        delta = (delta.detach() + step_size * grad.sign()).clamp(-epsilon, epsilon)
        delta = (x + delta).clamp(low, high) - x
    return (x + delta).detach()


def ramped_epsilon(epsilon: float, ramp_epochs: int, progress: float) -> float:
    """ε at ``progress`` epochs into the run: linear from 0 over ``ramp_epochs``, then full."""
    if ramp_epochs <= 0:
        return epsilon
    return epsilon * min(1.0, progress / ramp_epochs)
