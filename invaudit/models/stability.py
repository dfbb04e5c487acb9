"""How much F⁻¹ amplifies off the data: its local gain, and the layers it comes from.

Round-trip error on test inputs says the inverse is exact *on the data*.  A
metamer ``F⁻¹(z_s(x), z_n(x'))`` is a point F never saw, and there an
invertible network can be exact and still explode (Behrmann et al.,
"Understanding and Mitigating Exploding Inverses in Invertible Neural
Networks", AISTATS 2021).  The local gain at ``z`` is the largest singular
value of the Jacobian of F⁻¹ there: how far the decoded image moves per unit
step in z.  It is estimated per point by power iteration on ``JᵀJ`` with
``torch.func`` (a forward-mode product and a reverse-mode one per step),
never forming the d×d Jacobian.  Every point's Jacobian is its own because
F⁻¹ acts on each sample separately (eval mode), so one batched call serves all.

The same is done for each elementary layer's inverse at the point it
receives during the decode, so a report can name where the gain comes from.
The product of the layers' gains bounds the whole; their logarithms say
which stage dominates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from .classifier import InvertibleClassifier
from .layers import DCTReadout, FactorOut, FlowSequence, InvertibleLayer, Permutation, Squeeze

#: Power-iteration steps: the estimate is a lower bound that converges fast for
#: the well-separated top singular values seen here (measured in docs/stability.md).
ITERATIONS = 6
# Layers that only rearrange or rotate variables: their inverse gain is exactly 1.
_ISOMETRIES = (Squeeze, Permutation, DCTReadout)
_CONTAINERS = (FlowSequence, FactorOut)


def power_gain(
    fn: Callable[[torch.Tensor], torch.Tensor],
    z: torch.Tensor,
    *,
    iterations: int = ITERATIONS,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Per-sample largest singular value of ``d fn(z)_b / d z_b``, ``[B]``.

    ``fn`` must act on each sample independently (no batch statistics).
    """
    z = z.detach()
    v = torch.randn(z.shape, generator=generator, dtype=z.dtype).to(z.device)
    _, vjp_fn = torch.func.vjp(fn, z)
    gain = z.new_zeros(z.shape[0])
    for _ in range(iterations):
        v = v / v.flatten(1).norm(dim=1).clamp_min(1e-30).view(-1, *[1] * (z.dim() - 1))
        _, u = torch.func.jvp(fn, (z,), (v,))
        gain = u.flatten(1).norm(dim=1)
        (v,) = vjp_fn(u)
    return gain.detach()


def elementary_layers(flow: nn.Module, prefix: str = "") -> list[tuple[str, InvertibleLayer]]:
    """The flow's leaf layers (not containers, not isometries), with their module paths."""
    out = []
    for name, module in flow.named_modules(prefix=prefix):
        if not isinstance(module, InvertibleLayer) or isinstance(module, _CONTAINERS):
            continue
        if isinstance(module, _ISOMETRIES):
            continue
        # Skip layers nested inside another leaf (none today; cheap to be safe).
        if any(name.startswith(other + ".") for other, _ in out):
            continue
        out.append((name, module))
    return out


def stage_of(path: str) -> int:
    """The multi-scale stage a layer sits in: how many factor-outs it is nested in."""
    return path.split(".").count("inner")


def describe_layer(path: str, layer: nn.Module) -> str:
    return f"stage {stage_of(path) + 1} {type(layer).__name__} ({path})"


@dataclass
class GainReport:
    """Local gains of F⁻¹ at some points, and where along the decode they arise."""

    gains: torch.Tensor  # [B] whole-inverse gain per point
    layer_gains: dict[str, torch.Tensor] = field(default_factory=dict)  # path -> [B]
    layer_names: dict[str, str] = field(default_factory=dict)  # path -> readable name

    def summary(self) -> dict[str, object]:
        """JSON-ready: median/max of the gain, per-stage log-gain shares, the top layer."""
        out: dict[str, object] = {
            "n": int(self.gains.numel()),
            "median": float(self.gains.median()),
            "max": float(self.gains.max()),
        }
        if not self.layer_gains:
            return out
        medians = {p: float(g.median()) for p, g in self.layer_gains.items()}
        top = max(medians, key=medians.get)
        stages: dict[str, float] = {}
        for path, value in medians.items():
            key = f"stage {stage_of(path) + 1}"
            stages[key] = stages.get(key, 0.0) + float(torch.log10(torch.tensor(max(value, 1e-30))))
        out["largest_layer"] = self.layer_names[top]
        out["largest_layer_median_gain"] = medians[top]
        # Sum of log10 of the layers' median gains per stage: the stage whose layers
        # amplify most (a bound on, not a split of, the whole gain).
        out["stage_log10_gain"] = {k: round(v, 4) for k, v in sorted(stages.items())}
        out["largest_stage"] = max(stages, key=stages.get)
        return out


def _record_layer_inputs(
    model: InvertibleClassifier, z: torch.Tensor, layers: list[tuple[str, InvertibleLayer]]
) -> dict[str, torch.Tensor]:
    """Decode ``z`` once, keeping what each listed layer's inverse receives."""
    seen: dict[str, torch.Tensor] = {}
    for path, layer in layers:

        def recording(y: torch.Tensor, _path: str = path, _inv=layer.inverse) -> torch.Tensor:
            seen[_path] = y.detach()
            return _inv(y)

        layer.inverse = recording  # type: ignore[method-assign]
    try:
        with torch.no_grad():
            model.flow.inverse(z)
    finally:
        for _, layer in layers:
            del layer.inverse  # back to the class's method
    return seen


def inverse_gain(
    model: InvertibleClassifier,
    z: torch.Tensor,
    *,
    per_layer: bool = True,
    iterations: int = ITERATIONS,
    seed: int = 0,
) -> GainReport:
    """Local gain of ``model``'s inverse at each row of ``z`` ``[B, d]`` (eval mode)."""
    gen = torch.Generator().manual_seed(seed)

    def decode(t: torch.Tensor) -> torch.Tensor:
        return model.flow.inverse(t)

    report = GainReport(power_gain(decode, z, iterations=iterations, generator=gen))
    if not per_layer:
        return report
    layers = elementary_layers(model.flow, prefix="flow")
    # named_modules with prefix "flow" gives "flow.layers.3..."; paths below drop it.
    layers = [(p.removeprefix("flow."), m) for p, m in layers]
    inputs = _record_layer_inputs(model, z, layers)
    for path, layer in layers:
        if path not in inputs:
            continue
        report.layer_gains[path] = power_gain(
            layer.inverse, inputs[path], iterations=iterations, generator=gen
        )
        report.layer_names[path] = describe_layer(path, layer)
    return report
