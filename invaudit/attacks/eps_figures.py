"""The figures of an ε-attack: robust accuracy against ε, minimal distances, examples."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from .base import AttackResult
from .epsilons import NORM_LABEL, eps_label, perturbation_norms

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["figures"]


def _curve_figure(result: AttackResult) -> Figure:
    from matplotlib.figure import Figure

    norm = NORM_LABEL[result.settings["norm"]]
    epsilons = result.settings["epsilons"]
    robust = [result.metrics["robust_accuracy"][eps_label(e)] for e in epsilons]
    clean = result.metrics["clean_accuracy"]
    fig = Figure(figsize=(4.5, 3.2), layout="constrained")
    ax = fig.subplots()
    distance = result.records["distance"].to_numpy(dtype=float)
    minimal = not np.isnan(distance).all()
    if minimal:
        # A minimal-norm attack gives the whole curve: accuracy at every radius t.
        correct = result.records["clean_correct"].to_numpy(dtype=bool)
        finite = distance[np.isfinite(distance)]
        top = max(max(epsilons), float(finite.max()) if len(finite) else 0.0) * 1.05 or 1.0
        t = np.linspace(0.0, top, 400)
        curve = [(correct & (distance > ti)).mean() for ti in t]
        ax.plot(t, curve, color="C0", lw=1.2, label="from minimal distances")
    ax.plot(
        epsilons,
        robust,
        "o" if minimal or len(epsilons) == 1 else "o-",  # the blue curve joins them
        color="C1",
        label="robust accuracy at ε",
    )
    ax.axhline(clean, color="grey", ls="--", lw=1, label=f"clean accuracy {100 * clean:.1f}%")
    ax.set_xlabel(f"ε ({norm} radius, input units)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(left=0)
    ax.set_title(f"{result.method}: robust accuracy vs ε (n={result.metrics['n']})")
    ax.legend(fontsize="small", loc="upper right")
    ax.grid(alpha=0.3)
    return fig


def _image(t: torch.Tensor, low: float, high: float) -> np.ndarray:
    img = ((t.double() - low) / (high - low)).clamp(0, 1)
    return img[0].numpy() if img.shape[0] == 1 else img.permute(1, 2, 0).numpy()


def _pairs_figure(result: AttackResult) -> Figure:
    from matplotlib.figure import Figure

    from ..data.classes import class_name

    ex = result.examples
    dataset = result.settings.get("dataset")
    low, high = result.settings["bounds"]
    norm = NORM_LABEL[result.settings["norm"]]
    k = len(ex["clean"])
    fig = Figure(figsize=(1.4 * k + 0.6, 4.4), layout="constrained")
    axes = np.asarray(fig.subplots(3, k, squeeze=False))
    gray = ex["clean"].shape[1] == 1
    for j in range(k):
        clean, adv = ex["clean"][j], ex["adversarial"][j]
        delta = (adv - clean).double()
        scale = float(delta.abs().max()) or 1.0
        axes[0, j].imshow(_image(clean, low, high), cmap="gray" if gray else None, vmin=0, vmax=1)
        axes[0, j].set_title(f"label {class_name(dataset, ex['label'][j])}", fontsize=8)
        axes[1, j].imshow(_image(adv, low, high), cmap="gray" if gray else None, vmin=0, vmax=1)
        size = float(perturbation_norms(delta[None], result.settings["norm"])[0])
        pred = class_name(dataset, ex["adv_pred"][j])
        axes[1, j].set_title(f"pred {pred}\n{norm} {size:.3g}", fontsize=8)
        axes[2, j].imshow(delta.mean(0).numpy(), cmap="seismic", vmin=-scale, vmax=scale)
        for i in range(3):
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
    for i, name in enumerate(("clean", "adversarial", "perturbation")):
        axes[i, 0].set_ylabel(name, fontsize=9)
    which = (
        f"adversarials at ε = {eps_label(float(ex['epsilon']))}"
        if "epsilon" in ex
        else ("minimal adversarials")
    )
    fig.suptitle(f"{result.method}: {which} (perturbation rescaled per column)", fontsize=10)
    return fig


def _distance_figure(result: AttackResult) -> Figure:
    from matplotlib.figure import Figure

    norm = NORM_LABEL[result.settings["norm"]]
    records = result.records[result.records["clean_correct"]]
    distance = records["distance"].to_numpy(dtype=float)
    finite = distance[np.isfinite(distance)]
    fig = Figure(figsize=(4.5, 3.2), layout="constrained")
    ax = fig.subplots()
    if len(finite):
        ax.hist(finite, bins=min(30, max(5, len(finite) // 5)), color="C0", alpha=0.8)
    for e in result.settings["epsilons"]:
        ax.axvline(e, color="C1", ls=":", lw=1)
    failed = len(distance) - len(finite)
    ax.set_xlabel(f"minimal {norm} distance found (ε marked dotted)")
    ax.set_ylabel("clean-correct samples")
    ax.set_title(f"{result.method}: {len(finite)} found, {failed} failed", fontsize=10)
    return fig


def figures(result: AttackResult) -> dict[str, Figure]:
    """Robust accuracy vs ε; for minimal-norm attacks the distance histogram; for images
    the clean / adversarial / perturbation columns."""
    out = {"robust_accuracy": _curve_figure(result)}
    if not result.records["distance"].isna().all():
        out["distances"] = _distance_figure(result)
    clean = result.examples.get("clean")
    if clean is not None and clean.dim() == 4 and clean.shape[1] in (1, 3):
        out["examples"] = _pairs_figure(result)
    return out
