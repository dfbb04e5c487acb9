"""Invariance inside the ε-ball (Tramèr et al., ICML 2020): the other side of robustness.

For a test input x of class a, take its nearest training input x_near of another
class (L2 in input space) and move x towards it as far as the ε-ball allows:

* L∞: ``x_ε = clip(x + clip(x_near − x, −ε, ε), box)``;
* L2: ``x_ε = x + min(1, ε / ‖x_near − x‖₂) (x_near − x)``.

Where the oracle's label on x_ε is no longer a while the model still says a, the
model is invariant to a change that changed the class: an invariance-based
adversarial example inside the very ball an ε-robust model is asked to be constant
on.  Beside each ε's invariance rate the run measures the same model's ε-robust
accuracy with PGD (the ``pgd-linf`` / ``pgd-l2`` attack, same steps and seed), so
both sides of the trade-off sit in one table: a model cannot be right on both once
ε is large enough for x_ε to change class.

The construction is model-agnostic and deterministic (no optimisation, no random
draw besides PGD's seeded start), needs no inverse, and x_ε is an input by
construction.  The nearest-neighbour search streams the training split in chunks,
so memory stays bounded whatever its size.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
from torch.utils.data import Dataset

from ..errors import ConfigError
from .base import AttackResult, AuditContext, check_count, optional_share, share
from .declaration import INVARIANCE, LOWER, Attack, Budget, Headline
from .epsilons import NORM_LABEL, default_epsilons, eps_label, epsilons_for, perturbation_norms

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["ATTACK", "DEFAULT_EPSILONS", "move_towards", "nearest_other_class", "run"]

EXAMPLES = 6
#: Training examples per chunk of the nearest-neighbour search.
CHUNK = 4_096
#: The default ε for MNIST-like data: Tramèr et al.'s L∞ 0.3 and 0.4 and two below; other
#: datasets take the ε-attacks' default list (:mod:`invaudit.attacks.epsilons`).
DEFAULT_EPSILONS = {"linf": (0.1, 0.2, 0.3, 0.4), "l2": (1.0, 2.0, 3.0, 4.0)}
_MNIST_LIKE = ("mnist", "fashion-mnist")


def _epsilons(value: Any, ctx: AuditContext, norm: str) -> list[float]:
    if value is None and ctx.data.name in _MNIST_LIKE:
        return list(DEFAULT_EPSILONS[norm])
    if value is None:
        return default_epsilons(ctx.data, norm)
    return epsilons_for(value, ctx.data, norm)


# -- the nearest training input of another class ------------------------------------------------


def _chunks(
    dataset: Dataset, stop: int, size: int
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """``(start, x, y)`` for consecutive chunks of the first ``stop`` examples."""
    tensors = getattr(dataset, "tensors", None)
    for start in range(0, stop, size):
        end = min(start + size, stop)
        if isinstance(tensors, tuple):  # TensorDataset: slice, do not loop
            yield start, tensors[0][start:end], tensors[1][start:end]
        else:
            items = [dataset[i] for i in range(start, end)]
            xs = torch.stack([item[0] for item in items])
            yield start, xs, torch.stack([torch.as_tensor(item[1]) for item in items])


def nearest_other_class(
    x: torch.Tensor,
    y: torch.Tensor,
    train: Dataset,
    *,
    limit: int | None = None,
    chunk: int = CHUNK,
    batch: int = 256,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row of ``x``: the index of its nearest example of another class among the first
    ``limit`` of ``train`` (all if None) and the L2 distance to it (float64; ties: the
    lower index).  Distances are computed in float64, ``batch × chunk`` at a time.

    Raises :class:`ConfigError` when no example of another class exists.
    """
    stop = len(train) if limit is None else min(limit, len(train))
    flat = x.flatten(1).double()
    best = torch.full((len(x),), float("inf"), dtype=torch.float64)
    index = torch.full((len(x),), -1, dtype=torch.long)
    for start, xs, ys in _chunks(train, stop, chunk):
        t = xs.flatten(1).double()
        t_sq = (t * t).sum(1)
        for b in range(0, len(x), batch):
            q = flat[b : b + batch]
            d2 = (q * q).sum(1, keepdim=True) - 2 * q @ t.T + t_sq
            d2 = d2.masked_fill(ys.view(1, -1) == y[b : b + batch].view(-1, 1), float("inf"))
            low, arg = d2.min(dim=1)
            better = low < best[b : b + batch]
            best[b : b + batch] = torch.where(better, low, best[b : b + batch])
            index[b : b + batch] = torch.where(better, arg + start, index[b : b + batch])
    if bool((index < 0).any()):
        raise ConfigError(
            "invariance-eps: the training split holds no example of another class for "
            f"class {int(y[index < 0][0])} (raise train_limit)"
        )
    return index, best.clamp_min(0).sqrt()


def move_towards(
    x: torch.Tensor, target: torch.Tensor, eps: float, norm: str, bounds: tuple[float, float]
) -> torch.Tensor:
    """``x`` moved towards ``target`` as far as the ``norm`` ε-ball allows, in the box."""
    delta = target - x
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        size = delta.flatten(1).norm(dim=1).clamp_min(1e-30)
        delta = delta * (eps / size).clamp(max=1.0).view(-1, *[1] * (x.dim() - 1))
    return (x + delta).clamp(*bounds)


def _items(dataset: Dataset, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    tensors = getattr(dataset, "tensors", None)
    if isinstance(tensors, tuple):
        return tensors[0][index], tensors[1][index]
    items = [dataset[int(i)] for i in index]
    return torch.stack([x for x, _ in items]), torch.stack([torch.as_tensor(t) for _, t in items])


# -- the run ------------------------------------------------------------------------------------


@dataclass
class _Moves:
    """Every audited input, its neighbour, and the verdicts on each x_ε, on the CPU."""

    x: torch.Tensor
    y: torch.Tensor
    near_index: torch.Tensor
    x_near: torch.Tensor
    y_near: torch.Tensor
    epsilons: list[float]
    x_eps: list[torch.Tensor]  # per ε
    pred: torch.Tensor  # the model's decision on x
    pred_eps: list[torch.Tensor]  # per ε
    oracle_eps: list[torch.Tensor] | None  # per ε
    robust: dict[str, torch.Tensor | None]  # per ε label: robust under PGD at ε

    def verdicts(self, k: int) -> dict[str, torch.Tensor | None]:
        kept = self.pred_eps[k] == self.y
        if self.oracle_eps is None:
            return {"model_kept": kept, "oracle_changed": None, "invariant": None}
        changed = self.oracle_eps[k] != self.y
        return {"model_kept": kept, "oracle_changed": changed, "invariant": kept & changed}


def _robust(
    ctx: AuditContext, epsilons: list[float], norm: str, steps: int
) -> tuple[dict[str, torch.Tensor | None], dict[str, Any]]:
    """Per ε, which inputs survive ``steps`` of PGD (the registered ``pgd-*`` attack itself)."""
    if steps == 0:
        return {eps_label(e): None for e in epsilons}, {}
    from .perturbation import run_pgd_l2, run_pgd_linf

    pgd = run_pgd_linf if norm == "linf" else run_pgd_l2
    result = pgd(ctx, epsilons=epsilons, steps=steps)
    robust = {
        eps_label(e): torch.tensor(result.records[f"robust@{eps_label(e)}"].to_numpy(bool))
        for e in epsilons
    }
    return robust, {"pgd": {k: result.settings[k] for k in ("steps", "rel_stepsize")}}


def run(
    ctx: AuditContext,
    *,
    epsilons: Sequence[float] | None = None,
    norm: str = "linf",
    pgd_steps: int = 40,
    train_limit: int | None = None,
    examples: int = EXAMPLES,
) -> AttackResult:
    """Move every audited input towards its nearest other-class training input, at each ε.

    Args:
        epsilons: radii in ``norm`` (None: 0.1, 0.2, 0.3, 0.4 L∞ or 1, 2, 3, 4 L2 on
            MNIST-like data, else the ε-attacks' default list).
        norm: ``linf`` or ``l2``.
        pgd_steps: PGD steps behind the robust accuracy at each ε (0: not measured).
        train_limit: search the first this many training inputs only (None: all).
        examples: how many inputs to keep for the figure.
    """
    if norm not in NORM_LABEL:
        raise ConfigError(f"invariance-eps: unknown norm {norm!r}; expected linf or l2")
    eps = _epsilons(epsilons, ctx, norm)
    pgd_steps = check_count("invariance-eps", "pgd_steps", pgd_steps)
    if train_limit is not None:
        train_limit = check_count("invariance-eps", "train_limit", train_limit, minimum=1)
    check_count("invariance-eps", "examples", examples)
    x, y = ctx.test_examples()
    train = ctx.data.train()
    near_index, _ = nearest_other_class(x, y, train, limit=train_limit, batch=ctx.batch_size)
    x_near, y_near = _items(train, near_index)
    x_eps = [move_towards(x, x_near.to(x.dtype), e, norm, ctx.data.bounds) for e in eps]

    def decide(t: torch.Tensor) -> torch.Tensor:
        return ctx.map_batches(lambda b: ctx.model.logits(b).argmax(1), t)

    oracle = None if ctx.oracle is None else [ctx.map_batches(ctx.oracle.predict, t) for t in x_eps]
    robust, pgd = _robust(ctx, eps, norm, pgd_steps)
    m = _Moves(
        x, y, near_index, x_near, y_near.long(), eps, x_eps, decide(x), [decide(t) for t in x_eps],
        oracle, robust,
    )  # fmt: skip
    settings = {
        "norm": norm,
        "epsilons": eps,
        "pgd_steps": pgd_steps,
        **pgd,
        "train_limit": train_limit,
        "train_searched": len(train) if train_limit is None else min(train_limit, len(train)),
        "neighbour": "nearest training input of another class, L2 in input space",
        "examples": examples,
        "bounds": list(ctx.data.bounds),
    }
    return AttackResult("invariance-eps", _metrics(m), _records(m), _kept(m, examples), settings)


# -- what a run reports -------------------------------------------------------------------------


def _per_eps(m: _Moves, what: str) -> dict[str, float | None]:
    return {eps_label(e): optional_share(m.verdicts(k)[what]) for k, e in enumerate(m.epsilons)}


def _metrics(m: _Moves) -> dict[str, Any]:
    offset = m.x_near.to(m.x.dtype) - m.x
    return {
        "n": len(m.y),
        "clean_accuracy": share(m.pred == m.y),
        "invariance_rate": _per_eps(m, "invariant"),
        "oracle_changed": _per_eps(m, "oracle_changed"),
        "model_kept": _per_eps(m, "model_kept"),
        "robust_accuracy": {key: optional_share(value) for key, value in m.robust.items()},
        "neighbour_l2_mean": float(perturbation_norms(offset, "l2").mean()),
        "neighbour_linf_mean": float(perturbation_norms(offset, "linf").mean()),
    }


def _records(m: _Moves) -> pd.DataFrame:
    n = len(m.y)
    offset = m.x_near.to(m.x.dtype) - m.x
    records = pd.DataFrame(
        {
            "index": range(n),
            "label": m.y.numpy(),
            "prediction": m.pred.numpy(),
            "neighbour_index": m.near_index.numpy(),
            "neighbour_label": m.y_near.numpy(),
            "neighbour_l2": perturbation_norms(offset, "l2").numpy(),
            "neighbour_linf": perturbation_norms(offset, "linf").numpy(),
        }
    )
    for k, e in enumerate(m.epsilons):
        key, v = eps_label(e), m.verdicts(k)
        records[f"prediction@{key}"] = m.pred_eps[k].numpy()
        records[f"oracle@{key}"] = m.oracle_eps[k].numpy() if m.oracle_eps else [None] * n
        records[f"invariant@{key}"] = v["invariant"].numpy() if v["invariant"] is not None else None
        robust = m.robust[key]
        records[f"robust@{key}"] = robust.numpy() if robust is not None else None
    return records


def _kept(m: _Moves, examples: int) -> dict[str, torch.Tensor]:
    keep = slice(0, min(examples, len(m.y)))
    kept = {
        "clean": m.x[keep],
        "neighbour": m.x_near[keep].to(m.x.dtype),
        "moved": torch.stack([t[keep] for t in m.x_eps]),  # [len(ε), k, ...]
        "label": m.y[keep],
        "neighbour_label": m.y_near[keep],
        "prediction": torch.stack([p[keep] for p in m.pred_eps]),
    }
    if m.oracle_eps is not None:
        kept["oracle"] = torch.stack([o[keep] for o in m.oracle_eps])
    return kept


# -- figures ------------------------------------------------------------------------------------


def figures(result: AttackResult) -> dict[str, Figure]:
    """Invariance rate and robust accuracy against ε; for images x, each x_ε and x_near."""
    out = {"invariance-eps": _curve_figure(result)}
    clean = result.examples["clean"]
    if clean.dim() == 4 and clean.shape[1] in (1, 3) and len(clean):
        out["invariance-eps-examples"] = _image_figure(result)
    return out


def _curve_figure(result: AttackResult) -> Figure:
    from matplotlib.figure import Figure

    norm = NORM_LABEL[result.settings["norm"]]
    keys = [eps_label(e) for e in result.settings["epsilons"]]
    fig = Figure(figsize=(4.8, 3.2), layout="constrained")
    ax = fig.subplots()
    curves = (
        ("invariance_rate", "invariance rate (oracle changed, model kept)", "C3", "o-"),
        ("oracle_changed", "oracle changed", "C3", ":"),
        ("model_kept", "model kept its decision", "C0", ":"),
        ("robust_accuracy", "robust accuracy (PGD)", "C0", "s-"),
    )
    for metric, label, color, style in curves:
        values = [result.metrics[metric].get(k) for k in keys]
        if all(v is not None for v in values):
            ax.plot(result.settings["epsilons"], values, style, color=color, label=label)
    ax.set_xlabel(f"ε ({norm} radius, input units)")
    ax.set_ylabel("share of inputs")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(left=0)
    ax.set_title(f"invariance-eps: both sides of the ε-ball (n={result.metrics['n']})")
    ax.legend(fontsize="small", frameon=False, loc="best")
    ax.grid(alpha=0.3)
    return fig


def _image_figure(result: AttackResult) -> Figure:
    from ..data.classes import class_name
    from ..figures import image_grid_figure

    ex, dataset = result.examples, result.settings.get("dataset")
    norm = NORM_LABEL[result.settings["norm"]]
    rows, labels = [ex["clean"]], ["x"]
    for k, e in enumerate(result.settings["epsilons"]):
        rows.append(ex["moved"][k])
        kept = int((ex["prediction"][k] == ex["label"]).sum())
        line = f"{norm} ε={eps_label(e)}\nD kept {kept}/{len(ex['label'])}"
        if "oracle" in ex:
            line += f"\no changed {int((ex['oracle'][k] != ex['label']).sum())}"
        labels.append(line)
    rows.append(ex["neighbour"])
    labels.append("x_near")
    titles = [
        f"{class_name(dataset, ex['label'][i])}→{class_name(dataset, ex['neighbour_label'][i])}"
        for i in range(len(ex["label"]))
    ]
    return image_grid_figure(
        rows,
        labels,
        column_titles=titles,
        title="x moved towards its nearest training input of another class (x_near)",
        caption="columns: a→b (class of x, class of x_near); D = the audited model, "
        "o = the oracle; kept: D still says a, changed: o no longer says a.",
    )


def _describe(settings: Mapping[str, Any]) -> str:
    norm = NORM_LABEL.get(settings.get("norm") or "linf", "L∞")
    steps = settings.get("pgd_steps")
    pgd = f" and PGD-{steps} robust accuracy" if steps else " (robust accuracy: not run here)"
    return (
        f"x moved within {norm} ε towards its nearest other-class training input "
        f"(Tramèr et al. 2020): invariance rate{pgd} at each ε"
    )


_MAPS = ("invariance_rate", "oracle_changed", "model_kept", "robust_accuracy")

ATTACK = Attack(
    name="invariance-eps",
    kind=INVARIANCE,
    run=run,
    figures=figures,
    summary="x moved within ε towards its nearest other-class training input; "
    "invariance rate beside robust accuracy at each ε",
    needs_invertible=False,
    metrics=("n", "clean_accuracy", *_MAPS, "neighbour_l2_mean", "neighbour_linf_mean"),
    rates={"clean_accuracy": "n", **{metric: "n" for metric in _MAPS}},
    maps={metric: ("ε", "0.3") for metric in _MAPS},
    norm="linf",
    headline=(
        Headline("invariance_rate", "invariance rate @ ε={key}", better=LOWER, compare=True),
        Headline("robust_accuracy", "robust accuracy @ ε={key}"),
    ),
    # x_ε is an input by construction (in the box, no F⁻¹): nothing to void.
    oracle_rates=(),
    # quick: 500 inputs, so a trade-off of ten points between two models is significant,
    # and no PGD of its own (the suite's pgd-linf measures robust accuracy); full: PGD-40
    # beside each ε, the trade-off in one table.
    suites={"quick": Budget(500, {"pgd_steps": 0}), "full": Budget(1_000)},
    smoke={"pgd_steps": 2, "examples": 2},
    describe=_describe,
)
