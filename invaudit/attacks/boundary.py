"""Figure 3 of the paper: decision regions of a fiRevNet in two planes through the origin.

One plane is spanned by two holdout points, one by a holdout point x and its
logit metamer x_met = F⁻¹(z_s(x), z_n(x')).  Next to the logit classifier
D = argmax z_s it draws a fresh nuisance probe fitted on z_n of the frozen
model: where D keeps "inner" far out on the outer sphere but the probe does
not, the model discarded information the task needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch

from ..errors import ConfigError
from .base import AttackResult, AuditContext, dataset_tensors, require_invertible, share
from .declaration import SHARE, Attack, Budget, Headline
from .oracle import Oracle
from .preimage import make_metamers
from .probe_fit import fit_probe
from .spheres import COLOURS, check_positive, require_spheres, sphere_radii, spheres_oracle

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..models.classifier import InvertibleClassifier

__all__ = ["ATTACK", "BOUNDARY_DEFAULTS", "orthonormal_basis", "run_boundary"]

#: Salt of ``ctx.generator`` for the boundary's anchor points (any fixed number).
_ANCHOR_SALT = 3
#: Grid coordinates run over [-EXTENT·R2, EXTENT·R2] in both directions (as in Fig. 3).
_EXTENT = 1.3
#: The annulus the ``*_annulus`` accuracies are restricted to, in units of R1 and R2.
_ANNULUS = (0.5, 1.5)
_CLASSIFIERS = ("logit", "nuisance", "oracle")
_PLANES = ("random", "metamer")


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
    check_positive("grid", options["grid"], 2)
    check_positive("probe_epochs", options["probe_epochs"])
    check_positive("probe_hidden", options["probe_hidden"])
    check_positive("probe_batch_size", options["probe_batch_size"])
    # Two points at least: the probe standardises features by their training std.
    check_positive("train_n", options["train_n"], 2)
    lr = options["probe_lr"]
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < math.inf:
        raise ConfigError(f"probe_lr must be a positive number, got {lr!r}")
    require_spheres(ctx, "boundary")


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

    Returns the probe (standardisation included) on the model's device, and its train
    and test accuracy.
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
    predictor = probe.predictor.to(next(model.parameters()).device)
    return predictor, probe.train_accuracy, probe.test_accuracy


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


@dataclass
class _Grid:
    """The in-plane square every plane is classified on."""

    size: int  # points per side
    u: torch.Tensor  # [size]: the coordinates along each axis
    coords: torch.Tensor  # [size², 2]
    radius: torch.Tensor  # [size²]: distance of each point from the origin
    annulus: torch.Tensor  # [size²]: inside the annulus the *_annulus accuracies use

    def examples(
        self, radii: tuple[float, float], metamer_inputs: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The figure's first examples: the axis, its extent, the radii, (x, x', x_met)."""
        return {
            "grid_axis": self.u,
            "extent": torch.tensor([self.u[0], self.u[-1]], dtype=torch.float64),
            "radii": torch.tensor(radii, dtype=torch.float64),
            "metamer_inputs": metamer_inputs,
        }

    def settings(self, radii: tuple[float, float]) -> dict[str, list[float]]:
        return {
            "extent": [float(self.u[0]), float(self.u[-1])],
            "annulus": [_ANNULUS[0] * radii[0], _ANNULUS[1] * radii[1]],
        }


def _grid(size: int, radii: tuple[float, float]) -> _Grid:
    u, coords = _grid_coords(size, radii[1])
    radius = coords.norm(dim=1)
    annulus = (radius >= _ANNULUS[0] * radii[0]) & (radius <= _ANNULUS[1] * radii[1])
    return _Grid(size, u, coords, radius, annulus)


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
        "grid": grid, "probe_hidden": probe_hidden, "probe_epochs": probe_epochs,
        "probe_batch_size": probe_batch_size, "probe_lr": probe_lr, "train_n": train_n,
    }  # fmt: skip
    _validate_boundary(ctx, options)
    model = require_invertible(ctx.model, "the audited model", "boundary")
    radii = sphere_radii(ctx)
    oracle = spheres_oracle(ctx, radii)
    x_test, y_test = ctx.test_examples()
    inner, outer = _anchor_indices(ctx, y_test)

    test_zs, test_zn = model.split(
        ctx.map_batches(model, x_test, label="boundary: z of holdout points")
    )
    probe, probe_train_acc, probe_test_acc = _fit_nuisance_probe(
        ctx, model, test_zn, y_test, options
    )

    x, x_other = x_test[inner].flatten(), x_test[outer].flatten()
    metamer = make_metamers(ctx, model, x_test[inner][None], x_test[outer][None])
    assert metamer.logit_match is not None
    x_met = metamer.x[0].flatten()
    square = _grid(grid, radii)
    metrics: dict[str, Any] = {
        "n": len(y_test),
        "train_n": min(train_n, len(ctx.data.train())),
        "grid": grid,
        "logit_test_accuracy": share(test_zs.argmax(1) == y_test),
        "probe_train_accuracy": probe_train_acc,
        "probe_test_accuracy": probe_test_acc,
        "metamer_radius": float(x_met.double().norm()),
        "metamer_logit_match_max_abs": float(metamer.logit_match.max()),
    }
    examples = square.examples(radii, torch.stack([x, x_other, x_met]))
    anchors = {"random": (x, x_other), "metamer": (x, x_met)}
    records = [
        _plane(ctx, model, probe, oracle, plane, anchors[plane], square, metrics, examples)
        for plane in _PLANES
    ]
    metrics.update(_metamer_decisions(ctx, model, probe, oracle, x_met))
    settings = {
        **options,
        "n": len(y_test),
        "seed": ctx.seed,
        "radii": list(radii),
        "oracle": oracle.name,
        "anchor_indices": [inner, outer],
        **square.settings(radii),
    }
    return AttackResult("boundary", metrics, pd.concat(records, ignore_index=True), examples,
                        settings)


def _plane(
    ctx: AuditContext,
    model: InvertibleClassifier,
    probe: torch.nn.Module,
    oracle: Oracle,
    plane: str,
    anchors: tuple[torch.Tensor, torch.Tensor],
    square: _Grid,
    metrics: dict[str, Any],
    examples: dict[str, torch.Tensor],
) -> pd.DataFrame:
    """Classify one plane's grid: its accuracies go to ``metrics``, its grids and basis to
    ``examples``; returns its records."""
    basis = orthonormal_basis(*anchors)
    decisions = _classify_plane(
        ctx, model, probe, oracle, basis, square.coords, f"boundary: {plane} plane"
    )
    examples[f"basis_{plane}"] = basis
    examples[f"anchors_{plane}"] = torch.stack([basis @ a.double() for a in anchors])
    for k, name in enumerate(_CLASSIFIERS):
        examples[f"grid_{plane}_{name}"] = decisions[:, k].reshape(square.size, square.size).long()
    for k, name in enumerate(_CLASSIFIERS[:2]):
        for suffix, value in _accuracies(decisions[:, k], decisions[:, 2], square.annulus).items():
            metrics[f"{plane}_plane_{name}_accuracy{suffix}"] = value
    return _plane_records(
        plane, square.size, square.coords, square.radius, square.annulus, decisions
    )


def _metamer_decisions(
    ctx: AuditContext,
    model: InvertibleClassifier,
    probe: torch.nn.Module,
    oracle: Oracle,
    x_met: torch.Tensor,
) -> dict[str, int]:
    """What each classifier makes of the metamer itself: D keeps x's decision by
    construction; the question is whether the probe (and the oracle) move."""
    with torch.no_grad():
        met_zs, met_zn = model.split(model(ctx.to_model(x_met[None])))
        decisions = {
            "metamer_logit_decision": int(met_zs.argmax(1)[0]),
            "metamer_nuisance_decision": int(probe(met_zn.float()).argmax(1)[0]),
        }
    decisions["metamer_oracle_label"] = int(oracle.predict(x_met[None]).cpu()[0])
    return decisions


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
        cmap=ListedColormap(COLOURS),
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
        Patch(color=COLOURS[0], label="decision: inner (class 0)"),
        Patch(color=COLOURS[1], label="decision: outer (class 1)"),
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

ATTACK = Attack(
    name="boundary",
    kind="invariance",
    run=run_boundary,
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
    # D's agreement with the exact oracle in the plane through x and its metamer,
    # balanced over the two classes (chance 50 %): low means D is invariant along a
    # direction that changes the true class.
    headline=(
        Headline(
            "metamer_plane_logit_accuracy_balanced", "D agrees with oracle, metamer plane", SHARE
        ),
    ),
    suites={
        "quick": Budget(1_000, {"grid": 41, "train_n": 10_000, "probe_epochs": 3}),
        "full": Budget(2_000),
    },
    smoke={
        "grid": 9,
        "probe_hidden": 16,
        "probe_epochs": 1,
        "probe_batch_size": 64,
        "train_n": 200,
    },
)
