"""The two audits that only make sense on the adversarial spheres, where the oracle is exact.

``misaligned`` (Example 6 of the paper) needs no model at all: the hand-made
classifier D(x) = [‖x_{1..d-1}‖ > (R1+R2)/2] is perfect on the data yet blind
to the last coordinate, so moving every inner point onto the outer sphere
along that coordinate drops it to chance.  It shows that a perfect test score
says nothing about excessive invariance.

``boundary`` (Figure 3) draws the audited fiRevNet's decision regions in two
planes through the origin: one spanned by two holdout points, one spanned by
a holdout point x and its logit metamer x_met = F⁻¹(z_s(x), z_n(x')).  Next to
the logit classifier D = argmax z_s it draws a fresh nuisance probe fitted on
z_n of the frozen model: where D keeps "inner" far out on the outer sphere but
the probe does not, the model discarded information the task needed.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch

from ..errors import ConfigError
from ..training.probe import fit_probe
from .base import (
    Attack,
    AttackResult,
    AuditContext,
    dataset_tensors,
    require_invertible,
    share,
)
from .oracle import Oracle, SpheresOracle

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..models.classifier import InvertibleClassifier

__all__ = [
    "ATTACKS",
    "BOUNDARY_DEFAULTS",
    "misaligned_decision",
    "orthonormal_basis",
    "run_boundary",
    "run_misaligned",
    "shift_last_coordinate",
]

#: Salt of ``ctx.generator`` for the boundary's anchor points (any fixed number).
_ANCHOR_SALT = 3
#: Grid coordinates run over [-EXTENT·R2, EXTENT·R2] in both directions (as in Fig. 3).
_EXTENT = 1.3
#: The annulus the ``*_annulus`` accuracies are restricted to, in units of R1 and R2.
_ANNULUS = (0.5, 1.5)
_CLASSIFIERS = ("logit", "nuisance", "oracle")
_PLANES = ("random", "metamer")
_COLOURS = ("#9ecae1", "#fdae6b")  # decision 0 (inner), decision 1 (outer)


# -- shared helpers -------------------------------------------------------------------------------
def _require_spheres(ctx: AuditContext, method: str) -> None:
    if ctx.data.name != "spheres":
        raise ConfigError(
            f"{method} applies to the adversarial spheres only; "
            f"this model was trained on {ctx.data.name}"
        )


def _radii(ctx: AuditContext) -> tuple[float, float]:
    """(R1, R2) as the checkpoint's dataset record states them."""
    r1, r2 = ctx.data.info.get("options", {}).get("radii", (1.0, 10.0))
    return float(r1), float(r2)


def _oracle(ctx: AuditContext, radii: tuple[float, float]) -> Oracle:
    return ctx.oracle if ctx.oracle is not None else SpheresOracle(radii)


def _positive(name: str, value: int, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer of at least {minimum}, got {value!r}")


# -- misaligned (Example 6) -----------------------------------------------------------------------
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
    _require_spheres(ctx, "misaligned")
    radii = _radii(ctx)
    oracle = _oracle(ctx, radii)
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
            ax.hist(values, bins=bins, color=_COLOURS[cls], edgecolor="black",
                    linewidth=0.3, label=f"oracle: {name}, n={len(values)}")
        ax.axvline(threshold, color="black", linestyle="--",
                   label=f"D's threshold {threshold:g}")
        ax.set_title(f"{title}\naccuracy of D: {accuracy:.1%}")
        ax.set_xlabel(r"$\|x_{1..d-1}\|$ (all D looks at)")
        ax.legend(fontsize="small", loc="upper center")
    axes[0].set_ylabel("points")
    fig.suptitle("Example 6: a perfect classifier that ignores $x_d$")
    return {"misaligned": fig}


# -- boundary (Figure 3) --------------------------------------------------------------------------
BOUNDARY_DEFAULTS: dict[str, Any] = {
    "grid": 101,
    "probe_hidden": 1000,
    "probe_epochs": 5,
    "probe_batch_size": 128,
    "probe_lr": 1e-3,
    "train_n": 50_000,
}


def orthonormal_basis(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Gram-Schmidt on (a, b) in float64: ``[2, d]`` rows e1 ∥ a, e2 ⊥ e1 in span(a, b).

    Should b be (numerically) parallel to a, e2 is built from the coordinate
    axis least aligned with a instead, so the plane is still defined.
    """
    a, b = a.flatten().double(), b.flatten().double()
    e1 = a / a.norm()
    rest = b - (b @ e1) * e1
    if rest.norm() <= 1e-9 * max(float(b.norm()), 1.0):
        rest = torch.zeros_like(a)
        rest[int(e1.abs().argmin())] = 1.0
        rest = rest - (rest @ e1) * e1
    return torch.stack([e1, rest / rest.norm()])


def _validate_boundary(ctx: AuditContext, options: dict[str, Any]) -> None:
    _positive("grid", options["grid"], 2)
    _positive("probe_epochs", options["probe_epochs"])
    _positive("probe_hidden", options["probe_hidden"])
    _positive("probe_batch_size", options["probe_batch_size"])
    # Two points at least: the probe standardises features by their training std.
    _positive("train_n", options["train_n"], 2)
    lr = options["probe_lr"]
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < math.inf:
        raise ConfigError(f"probe_lr must be a positive number, got {lr!r}")
    _require_spheres(ctx, "boundary")


def _anchor_indices(ctx: AuditContext, y: torch.Tensor) -> tuple[int, int]:
    """One random holdout point of each class: (inner, outer).

    Any plane through the origin cuts both spheres in circles, so the choice
    does not change what the plane shows of the spheres; taking one point of
    each class puts a data point of either class on the picture, and the same
    two points give the metamer (x's logits, x''s nuisance).
    """
    gen = ctx.generator(_ANCHOR_SALT)
    picks = []
    for cls in (0, 1):
        members = (y == cls).nonzero().flatten()
        if len(members) == 0:
            raise ConfigError(
                f"boundary needs holdout points of both classes; the {len(y)} audited "
                f"example(s) have none of class {cls} (raise n)"
            )
        picks.append(int(members[torch.randint(len(members), (1,), generator=gen)]))
    return picks[0], picks[1]


def _fit_nuisance_probe(
    ctx: AuditContext,
    model: InvertibleClassifier,
    test_zn: torch.Tensor,
    test_y: torch.Tensor,
    options: dict[str, Any],
) -> tuple[torch.nn.Module, float, float]:
    """A fresh 3-layer MLP on z_n of the frozen model's training points.

    Returns the probe (standardisation included) and its train and test accuracy.
    """
    train_x, train_y = dataset_tensors(ctx.data.train(), options["train_n"], ctx.seed)
    train_zn = ctx.map_batches(
        lambda x: model.split(model(x))[1], train_x, label="boundary: z_n of training points"
    )
    ctx.progress.start("boundary: fitting the nuisance probe", 1)
    try:
        probe = fit_probe(
            train_zn.float(),
            train_y,
            test_zn.float(),
            test_y,
            model.num_classes,
            hidden=options["probe_hidden"],
            epochs=options["probe_epochs"],
            batch_size=options["probe_batch_size"],
            lr=float(options["probe_lr"]),
            seed=ctx.seed,
        )
        ctx.progress.advance()
    finally:
        ctx.progress.finish()
    return probe.predictor, probe.train_accuracy, probe.test_accuracy


@torch.no_grad()
def _metamer(
    ctx: AuditContext, model: InvertibleClassifier, x: torch.Tensor, x_nuisance: torch.Tensor
) -> tuple[torch.Tensor, float]:
    """x_met = F⁻¹(merge(z_s(x), z_n(x'))) on the CPU, and max |z_s(x_met) − z_s(x)|."""
    z_s, _ = model.split(model(ctx.to_model(x[None])))
    _, z_n = model.split(model(ctx.to_model(x_nuisance[None])))
    x_met = model.inverse(model.merge(z_s, z_n))
    mismatch = (model.split(model(x_met))[0] - z_s).abs().max()
    return x_met[0].cpu(), float(mismatch)


def _grid_coords(grid: int, outer_radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(u [grid], coords [grid², 2]); row i, column j of a grid is (a=u[j], b=u[i])."""
    u = torch.linspace(-_EXTENT * outer_radius, _EXTENT * outer_radius, grid, dtype=torch.float64)
    b, a = torch.meshgrid(u, u, indexing="ij")
    return u, torch.stack([a.flatten(), b.flatten()], dim=1)


def _classify_plane(
    ctx: AuditContext,
    model: InvertibleClassifier,
    probe: torch.nn.Module,
    oracle: Oracle,
    basis: torch.Tensor,
    coords: torch.Tensor,
    label: str,
) -> torch.Tensor:
    """``[len(coords), 3]`` decisions (logit, nuisance, oracle) at the points coords @ basis."""
    plane = ctx.to_model(basis)

    def decide(c: torch.Tensor) -> torch.Tensor:
        x = c @ plane
        z_s, z_n = model.split(model(x))
        nuisance = probe(z_n.float()).argmax(1)
        return torch.stack([z_s.argmax(1), nuisance, oracle.predict(x).to(x.device)], dim=1)

    return ctx.map_batches(decide, coords, label=label)


def _accuracies(
    decisions: torch.Tensor, truth: torch.Tensor, annulus: torch.Tensor
) -> dict[str, float]:
    """Plain, annulus-restricted and class-balanced agreement with the oracle."""
    right = decisions == truth
    per_class = [share(right[truth == c]) for c in truth.unique()]
    return {
        "": share(right),
        "_annulus": share(right[annulus]),
        "_balanced": sum(per_class) / len(per_class),
    }


def run_boundary(
    ctx: AuditContext,
    *,
    grid: int = BOUNDARY_DEFAULTS["grid"],
    probe_hidden: int = BOUNDARY_DEFAULTS["probe_hidden"],
    probe_epochs: int = BOUNDARY_DEFAULTS["probe_epochs"],
    probe_batch_size: int = BOUNDARY_DEFAULTS["probe_batch_size"],
    probe_lr: float = BOUNDARY_DEFAULTS["probe_lr"],
    train_n: int = BOUNDARY_DEFAULTS["train_n"],
) -> AttackResult:
    """Figure 3: decision regions of D and of a nuisance probe in two planes through 0.

    The random plane is spanned by a random inner and a random outer holdout
    point (x, x'); the metamer plane by x and x_met = F⁻¹(z_s(x), z_n(x')).
    Each plane gets a ``grid`` × ``grid`` square over [−1.3·R2, 1.3·R2]² of
    in-plane coordinates; every grid point is labelled by D = argmax z_s, by the
    probe on z_n and by the exact oracle.  Accuracy is agreement with the oracle
    over the whole square, over the annulus R1/2 ≤ ‖p‖ ≤ 1.5·R2 (the square's
    area is ~86 % outer class, so the corners say little), and balanced over
    the oracle's two classes (chance is 0.5 whatever the areas).

    Args:
        grid: grid points per side (at least 2).
        probe_hidden: hidden units per layer of the 3-layer ReLU probe (paper: 1000).
        probe_epochs: epochs of probe training.
        probe_batch_size: the probe's minibatch size.
        probe_lr: the probe's Adam learning rate.
        train_n: training points the probe is fitted on (drawn by the audit seed).
    """
    options = {
        "grid": grid,
        "probe_hidden": probe_hidden,
        "probe_epochs": probe_epochs,
        "probe_batch_size": probe_batch_size,
        "probe_lr": probe_lr,
        "train_n": train_n,
    }
    _validate_boundary(ctx, options)
    model = require_invertible(ctx.model, "the audited model", "boundary")
    radii = _radii(ctx)
    oracle = _oracle(ctx, radii)
    x_test, y_test = ctx.test_examples()
    inner, outer = _anchor_indices(ctx, y_test)

    test_z = ctx.map_batches(model, x_test, label="boundary: z of holdout points")
    test_zs, test_zn = model.split(test_z)
    probe, probe_train_acc, probe_test_acc = _fit_nuisance_probe(
        ctx, model, test_zn, y_test, options
    )
    probe = probe.to(next(model.parameters()).device)

    x, x_other = x_test[inner].flatten(), x_test[outer].flatten()
    x_met, mismatch = _metamer(ctx, model, x_test[inner], x_test[outer])
    x_met = x_met.flatten()
    anchors = {"random": (x, x_other), "metamer": (x, x_met)}

    u, coords = _grid_coords(grid, radii[1])
    radius = coords.norm(dim=1)
    annulus = (radius >= _ANNULUS[0] * radii[0]) & (radius <= _ANNULUS[1] * radii[1])
    metrics: dict[str, Any] = {
        "n": len(y_test),
        "train_n": min(train_n, len(ctx.data.train())),
        "grid": grid,
        "logit_test_accuracy": share(test_zs.argmax(1) == y_test),
        "probe_train_accuracy": probe_train_acc,
        "probe_test_accuracy": probe_test_acc,
        "metamer_radius": float(x_met.double().norm()),
        "metamer_logit_match_max_abs": mismatch,
    }
    examples: dict[str, torch.Tensor] = {
        "grid_axis": u,
        "extent": torch.tensor([u[0], u[-1]], dtype=torch.float64),
        "radii": torch.tensor(radii, dtype=torch.float64),
        "metamer_inputs": torch.stack([x, x_other, x_met]),
    }
    records = []
    for plane in _PLANES:
        basis = orthonormal_basis(*anchors[plane])
        decisions = _classify_plane(
            ctx, model, probe, oracle, basis, coords, f"boundary: {plane} plane"
        )
        examples[f"basis_{plane}"] = basis
        examples[f"anchors_{plane}"] = torch.stack([basis @ a.double() for a in anchors[plane]])
        for k, name in enumerate(_CLASSIFIERS):
            examples[f"grid_{plane}_{name}"] = decisions[:, k].reshape(grid, grid).long()
        for k, name in enumerate(_CLASSIFIERS[:2]):
            for suffix, value in _accuracies(decisions[:, k], decisions[:, 2], annulus).items():
                metrics[f"{plane}_plane_{name}_accuracy{suffix}"] = value
        records.append(_plane_records(plane, grid, coords, radius, annulus, decisions))

    # What each classifier makes of the metamer itself: D keeps x's decision by
    # construction; the question is whether the probe (and the oracle) move.
    with torch.no_grad():
        met_zs, met_zn = model.split(model(ctx.to_model(x_met[None])))
        metrics["metamer_logit_decision"] = int(met_zs.argmax(1)[0])
        metrics["metamer_nuisance_decision"] = int(probe(met_zn.float()).argmax(1)[0])
    metrics["metamer_oracle_label"] = int(oracle.predict(x_met[None]).cpu()[0])
    settings = {
        **options,
        "n": len(y_test),
        "seed": ctx.seed,
        "radii": list(radii),
        "oracle": oracle.name,
        "anchor_indices": [inner, outer],
        "extent": [float(u[0]), float(u[-1])],
        "annulus": [_ANNULUS[0] * radii[0], _ANNULUS[1] * radii[1]],
    }
    return AttackResult("boundary", metrics, pd.concat(records, ignore_index=True), examples,
                        settings)


def _plane_records(
    plane: str,
    grid: int,
    coords: torch.Tensor,
    radius: torch.Tensor,
    annulus: torch.Tensor,
    decisions: torch.Tensor,
) -> pd.DataFrame:
    """One row per grid point of one plane."""
    index = torch.arange(grid * grid)
    return pd.DataFrame(
        {
            "plane": plane,
            "row": (index // grid).numpy(),
            "col": (index % grid).numpy(),
            "a": coords[:, 0].numpy(),
            "b": coords[:, 1].numpy(),
            "radius": radius.numpy(),
            "in_annulus": annulus.numpy(),
            "logit": decisions[:, 0].numpy(),
            "nuisance": decisions[:, 1].numpy(),
            "oracle": decisions[:, 2].numpy(),
        }
    )


def _draw_plane(ax: Axes, result: AttackResult, plane: str, name: str) -> None:
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Circle

    ex, metrics = result.examples, result.metrics
    lo, hi = (float(v) for v in ex["extent"])
    ax.imshow(
        ex[f"grid_{plane}_{name}"].numpy(),
        origin="lower",
        extent=(lo, hi, lo, hi),
        cmap=ListedColormap(_COLOURS),
        vmin=0,
        vmax=1,
        interpolation="nearest",
    )
    r1, r2 = (float(r) for r in ex["radii"])
    for r, style in ((r1, "-"), (r2, "-"), ((r1 + r2) / 2, ":")):
        ax.add_patch(Circle((0, 0), r, fill=False, linestyle=style, linewidth=1.2, color="black"))
    names = ("$x_1$", "$x_2$") if plane == "random" else ("$x$", "$x_{met}$")
    markers = ("o", "*") if plane == "metamer" else ("o", "s")
    for (a, b), label, marker in zip(ex[f"anchors_{plane}"].tolist(), names, markers, strict=True):
        ax.plot(a, b, marker=marker, markersize=10, color="crimson", markeredgecolor="black")
        ax.annotate(label, (a, b), textcoords="offset points", xytext=(6, 6), fontsize=11)
    key = f"{plane}_plane_{name}_accuracy"
    who = "logit classifier $D$" if name == "logit" else "nuisance classifier on $z_n$"
    ax.set_title(
        f"{plane} plane, {who}\nagreement with oracle {metrics[key]:.1%} "
        f"(annulus {metrics[key + '_annulus']:.1%}, balanced {metrics[key + '_balanced']:.1%})",
        fontsize=9,
    )
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    ax.set_xlabel("coordinate along $e_1$")
    ax.set_ylabel("coordinate along $e_2$")


def boundary_figures(result: AttackResult) -> dict[str, Figure]:
    """Figure 3 as a 2×2 panel: rows random / metamer plane, columns D / nuisance probe."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    fig = Figure(figsize=(10, 10.8), layout="constrained")
    axes = fig.subplots(2, 2)
    for row, plane in enumerate(_PLANES):
        for col, name in enumerate(_CLASSIFIERS[:2]):
            _draw_plane(axes[row, col], result, plane, name)
    r1, r2 = (float(r) for r in result.examples["radii"])
    handles = [
        Patch(color=_COLOURS[0], label="decision: inner (class 0)"),
        Patch(color=_COLOURS[1], label="decision: outer (class 1)"),
        Line2D([], [], color="black", label=f"spheres $R_1$={r1:g}, $R_2$={r2:g}"),
        Line2D([], [], color="black", linestyle=":", label=f"oracle threshold {(r1 + r2) / 2:g}"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize="small")
    fig.suptitle("Decision regions in planes through the origin (cf. Figure 3)")
    return {"boundary": fig}


_BOUNDARY_METRICS = (
    "n",
    "train_n",
    "grid",
    "logit_test_accuracy",
    "probe_train_accuracy",
    "probe_test_accuracy",
    "metamer_radius",
    "metamer_logit_match_max_abs",
    *(
        f"{plane}_plane_{name}_accuracy{suffix}"
        for plane in _PLANES
        for name in _CLASSIFIERS[:2]
        for suffix in ("", "_annulus", "_balanced")
    ),
    "metamer_logit_decision",
    "metamer_nuisance_decision",
    "metamer_oracle_label",
)

ATTACKS: tuple[Attack, ...] = (
    Attack(
        name="misaligned",
        kind="invariance",
        run=run_misaligned,
        options={},
        figures=misaligned_figures,
        summary="Example 6: a perfect norm classifier blind to x_d falls to chance "
        "when inner points move out along x_d",
        datasets=("spheres",),
        needs_invertible=False,
        metrics=(
            "n",
            "clean_accuracy",
            "shifted_accuracy",
            "moved_share",
            "decision_unchanged_share",
            "invariance_adversarial_share",
        ),
        rates={
            metric: "n"
            for metric in (
                "clean_accuracy",
                "shifted_accuracy",
                "moved_share",
                "decision_unchanged_share",
                "invariance_adversarial_share",
            )
        },
    ),
    Attack(
        name="boundary",
        kind="invariance",
        run=run_boundary,
        options=dict(BOUNDARY_DEFAULTS),
        figures=boundary_figures,
        summary="Figure 3: decision regions of D and a fresh nuisance probe in a random "
        "plane and a metamer plane",
        datasets=("spheres",),
        needs_invertible=True,
        metrics=_BOUNDARY_METRICS,
        # The plane accuracies are shares of grid points, not of sampled examples.
        rates={
            "logit_test_accuracy": "n",
            "probe_test_accuracy": "n",
            "probe_train_accuracy": "train_n",
        },
    ),
)
