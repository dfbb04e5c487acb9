"""How exact is a model's inverse, measured on a batch."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .classifier import InvertibleClassifier

#: |F⁻¹(F(x)) − x| above this fails the invertibility check (float32 images): past it,
#: a metamer's logits and its sources' are no longer those of exact inverses.
RECONSTRUCTION_TOLERANCE = 1e-4


@dataclass(frozen=True)
class InvertibilityCheck:
    """Reconstruction errors ``|F^-1(F(x)) - x|`` and ``|F(F^-1(z)) - z|`` on one batch."""

    reconstruction_max_abs: float
    reconstruction_mean_abs: float
    latent_max_abs: float
    logdet_mean: float
    samples: int


@torch.no_grad()
def check_invertibility(model: InvertibleClassifier, x: torch.Tensor) -> InvertibilityCheck:
    """Round-trip ``x`` through the model (in whatever mode it is in) and measure the error."""
    z, logdet = model.forward_logdet(x)
    error = (model.inverse(z) - x).abs()
    latent_error = (model(model.inverse(z)) - z).abs()
    return InvertibilityCheck(
        reconstruction_max_abs=error.max().item(),
        reconstruction_mean_abs=error.mean().item(),
        latent_max_abs=latent_error.max().item(),
        logdet_mean=logdet.mean().item(),
        samples=x.shape[0],
    )
