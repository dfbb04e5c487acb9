"""Points in a logit pre-image: ``F⁻¹(merge(z_s, z_n))``, and the check that they keep z_s.

F is a bijection, so any logits z_s can be paired with any nuisances z_n and mapped
back to an input that has exactly those logits, up to float error.  The check
measures that error: the decoded point is encoded again and its logits compared
with the ones asked for.  Metamers (the nuisances of another input), interpolation
paths (nuisances walked towards another input's) and the boundary's metamer plane
are all built here, and so is the benchmark's metamer generation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models.check import RECONSTRUCTION_TOLERANCE
from ..models.classifier import InvertibleClassifier
from .base import AuditContext, decode, encode

__all__ = ["RECONSTRUCTION_TOLERANCE", "Decoded", "decode_pairs", "make_metamers"]


@dataclass
class Decoded:
    """Points decoded from chosen logits and nuisances, on the CPU, one row per pair.

    Attributes:
        x: ``F⁻¹(merge(z_s, z_n))``.
        logits: z_s of ``x`` encoded again (None when not checked).
        logit_match: per row ``max |logits − z_s|`` (None when not checked); 0 up to
            float error for an exact inverse.
    """

    x: torch.Tensor
    logits: torch.Tensor | None = None
    logit_match: torch.Tensor | None = None


def decode_pairs(
    ctx: AuditContext,
    model: InvertibleClassifier,
    z_s: torch.Tensor,
    z_n: torch.Tensor,
    *,
    check: bool = True,
    label: str = "",
) -> Decoded:
    """``F⁻¹(merge(z_s, z_n))`` batched; with ``check``, encoded again to measure how well
    each point keeps the ``z_s`` it was made with (``label``: the decode's progress bar)."""
    x = decode(ctx, model, model.merge(z_s, z_n), label=label)
    if not check:
        return Decoded(x)
    logits = model.split(encode(ctx, model, x))[0]
    return Decoded(x, logits, (logits - z_s).abs().amax(1))


def make_metamers(
    ctx: AuditContext,
    model: InvertibleClassifier,
    x_logit_source: torch.Tensor,
    x_nuisance_source: torch.Tensor,
    *,
    check: bool = True,
) -> Decoded:
    """Metamers: the logits of each row of ``x_logit_source`` with the nuisances of the
    same row of ``x_nuisance_source`` (see :func:`decode_pairs`)."""
    z_s = model.split(encode(ctx, model, x_logit_source))[0]
    z_n = model.split(encode(ctx, model, x_nuisance_source))[1]
    return decode_pairs(ctx, model, z_s, z_n, check=check)
