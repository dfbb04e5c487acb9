"""Where each part of z_n leaves the flow: the scales of a multi-scale fiRevNet.

A ``FactorOut`` sends half its channels straight to the output and lays z out
innermost first (``[inner(kept), factored]``), so z is
``[readout part, factored out after the last-but-one stage, ..., after stage 1]``.
The logits are the readout part's first ``num_classes`` coordinates.  A probe
per part tells *where* the class sits in z_n, not only whether it is there
(issue 15): the shallow parts pass through few steps before they leave.
"""

from __future__ import annotations

import math

from .classifier import InvertibleClassifier
from .layers import FactorOut, FlowSequence, InvertibleLayer


def _outermost_factor_out(layer: InvertibleLayer) -> FactorOut | None:
    """The first ``FactorOut`` on the main path of ``layer`` (not inside another one)."""
    if isinstance(layer, FactorOut):
        return layer
    if isinstance(layer, FlowSequence):
        for child in layer.layers:
            found = _outermost_factor_out(child)
            if found is not None:
                return found
    return None


def z_parts(model: InvertibleClassifier) -> dict[str, slice]:
    """The z_n coordinates of each scale, as slices of z, deepest first.

    ``"readout"`` is what reaches the readout beside the logits; ``"stage K"``
    is what was factored out after stage K.  A flow without a factor-out has
    the one part ``"readout"``.  The slices cover ``z[num_classes:]`` exactly.
    """
    factored: list[int] = []
    layer: InvertibleLayer | None = _outermost_factor_out(model.flow)
    while layer is not None:
        factored.append(math.prod(layer.out_shape))
        layer = _outermost_factor_out(layer.inner)
    readout_end = model.dim - sum(factored)
    parts = {"readout": slice(model.num_classes, readout_end)}
    start = readout_end
    # ``factored`` is outermost (stage 1) first; z holds the innermost first.
    for stage in range(len(factored), 0, -1):
        size = factored[stage - 1]
        parts[f"stage {stage}"] = slice(start, start + size)
        start += size
    return parts
