"""Example 6 of the paper: a perfect classifier that is blind to the last coordinate.

The hand-made classifier D(x) = [‖x_{1..d-1}‖ > (R1+R2)/2] needs no model at all.
It is perfect on the spheres yet blind to x_d, so moving every inner point onto
the outer sphere along that coordinate drops it to chance: a perfect test score
says nothing about excessive invariance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import torch

from .base import AttackResult, AuditContext, share
from .declaration import LOWER, Attack, Budget, Headline
from .spheres import COLOURS, require_spheres, sphere_radii, spheres_oracle

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["ATTACK", "misaligned_decision", "run_misaligned", "shift_last_coordinate"]


def _partial_norm(x: torch.Tensor) -> torch.Tensor:
    """‖x_{1..d-1}‖ in float64: the only thing the misaligned classifier looks at."""
    return x.flatten(1)[:, :-1].double().norm(dim=1)


def misaligned_decision(x: torch.Tensor, radii: tuple[float, float]) -> torch.Tensor:
    """Eq. (5): 1 (outer) where ‖x_{1..d-1}‖ exceeds (R1+R2)/2, else 0."""
    return (_partial_norm(x) > sum(radii) / 2).long()


def shift_last_coordinate(
    x: torch.Tensor, moved: torch.Tensor, outer_radius: float
) -> torch.Tensor:
    """``x`` with the rows in ``moved`` put on the sphere of ``outer_radius`` via x_d only.

    x_d* = sign(x_d)·sqrt(R2² − ‖x_{1..d-1}‖²), with sign 0 taken as +, so the
    first d-1 coordinates (all the misaligned classifier sees) stay bit-identical.
    The root is taken in float64 and rounded once.
    """
    flat = x.flatten(1)
    rest = _partial_norm(flat)
    sign = torch.where(flat[:, -1] < 0, -1.0, 1.0).double()
    last = sign * (outer_radius**2 - rest**2).clamp_min(0).sqrt()
    out = flat.clone()
    out[moved, -1] = last[moved].to(out.dtype)
    return out.reshape(x.shape)


def run_misaligned(ctx: AuditContext) -> AttackResult:
    """Example 6: a perfect classifier blind to x_d, before and after moving inner points out.

    The audited model is not used.  Every holdout point of the inner sphere
    (label 0) has its last coordinate replaced so that it lands on the outer
    sphere; outer points stay.  Labels after the shift come from the oracle
    (all points now lie on R2, so all are class 1) while the classifier's
    decisions cannot change: accuracy falls to the share of outer points.
    Records have one row per audited point; ``index`` is its position among
    ``ctx.test_examples()``.
    """
    require_spheres(ctx, "misaligned")
    radii = sphere_radii(ctx)
    oracle = spheres_oracle(ctx, radii)
    x, y = ctx.test_examples()
    moved = y == 0
    shifted = shift_last_coordinate(x, moved, radii[1])

    d_clean = misaligned_decision(x, radii)
    d_shifted = misaligned_decision(shifted, radii)
    oracle_before = oracle.predict(x).cpu()
    oracle_after = oracle.predict(shifted).cpu()
    # An invariance-based adversarial example: the oracle's label moved, D's did not.
    fooled = (oracle_after != oracle_before) & (d_shifted == d_clean)

    metrics = {
        "n": len(y),
        "clean_accuracy": share(d_clean == y),
        "shifted_accuracy": share(d_shifted == oracle_after),
        "moved_share": share(moved),
        "decision_unchanged_share": share(d_shifted == d_clean),
        "invariance_adversarial_share": share(fooled),
    }
    records = pd.DataFrame(
        {
            "index": torch.arange(len(y)).numpy(),
            "label": y.numpy(),
            "moved": moved.numpy(),
            "partial_norm": _partial_norm(x).numpy(),
            "radius_before": x.flatten(1).double().norm(dim=1).numpy(),
            "radius_after": shifted.flatten(1).double().norm(dim=1).numpy(),
            "d_clean": d_clean.numpy(),
            "d_shifted": d_shifted.numpy(),
            "oracle_after": oracle_after.numpy(),
        }
    )
    examples = {
        "clean": x[:8].clone(),
        "shifted": shifted[:8].clone(),
        "radii": torch.tensor(radii, dtype=torch.float64),
    }
    settings = {"n": len(y), "seed": ctx.seed, "radii": list(radii), "oracle": oracle.name}
    return AttackResult("misaligned", metrics, records, examples, settings)


def misaligned_figures(result: AttackResult) -> dict[str, Figure]:
    """Histograms of ‖x_{1..d-1}‖ per oracle class, before and after the shift."""
    from matplotlib.figure import Figure

    rec = result.records
    r1, r2 = (float(r) for r in result.examples["radii"])
    threshold = (r1 + r2) / 2
    bins = torch.linspace(0, 1.1 * r2, 67).numpy()
    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    panels = (
        ("clean holdout", rec["label"], result.metrics["clean_accuracy"]),
        ("inner points moved along $x_d$ onto $R_2$", rec["oracle_after"],
         result.metrics["shifted_accuracy"]),
    )
    for ax, (title, labels, accuracy) in zip(axes, panels, strict=True):
        for cls, name in ((0, f"inner ($R_1$={r1:g})"), (1, f"outer ($R_2$={r2:g})")):
            values = rec["partial_norm"][labels == cls]
            ax.hist(values, bins=bins, color=COLOURS[cls], edgecolor="black",
                    linewidth=0.3, label=f"oracle: {name}, n={len(values)}")
        ax.axvline(threshold, color="black", linestyle="--",
                   label=f"D's threshold {threshold:g}")
        ax.set_title(f"{title}\naccuracy of D: {accuracy:.1%}")
        ax.set_xlabel(r"$\|x_{1..d-1}\|$ (all D looks at)")
        ax.legend(fontsize="small", loc="upper center")
    axes[0].set_ylabel("points")
    fig.suptitle("Example 6: a perfect classifier that ignores $x_d$")
    return {"misaligned": fig}


_RATES = (
    "clean_accuracy",
    "shifted_accuracy",
    "moved_share",
    "decision_unchanged_share",
    "invariance_adversarial_share",
)

ATTACK = Attack(
    name="misaligned",
    kind="invariance",
    run=run_misaligned,
    figures=misaligned_figures,
    summary="Example 6: a perfect norm classifier blind to x_d falls to chance "
    "when inner points move out along x_d",
    datasets=("spheres",),
    needs_invertible=False,
    metrics=("n", *_RATES),
    rates={metric: "n" for metric in _RATES},
    headline=(
        Headline("invariance_adversarial_share", "invariance-adversarial share", better=LOWER),
    ),
    suites={"quick": Budget(2_000), "full": Budget(None)},
)
