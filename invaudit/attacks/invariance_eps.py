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
draw besides PGD's start, drawn per example from its own seeded generator), needs
no inverse, and x_ε is an input by construction.  The audited inputs stream: a batch
is loaded, searched against the training split (itself read in chunks, so memory
stays bounded whatever its size), moved, judged and attacked, and only its records
(and the first few inputs, for the figure) outlive it.  Nothing depends on the batch
or the shard, and the metrics follow from the records alone (:func:`summarise`), so
rank 0 recomputes them from every shard's records.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from ..errors import ConfigError
from .base import AttackResult, AuditContext, check_count, dataset_items
from .declaration import INVARIANCE, LOWER, Attack, Budget, Headline
from .epsilons import NORM_LABEL, default_epsilons, eps_label, epsilons_for, perturbation_norms
from .streaming import collect

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "ATTACK",
    "DEFAULT_EPSILONS",
    "move_towards",
    "nearest_other_class",
    "run",
    "summarise",
]

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


# -- PGD beside each ε, one batch at a time -----------------------------------------------------


@dataclass
class _Pgd:
    """PGD as ``pgd-linf`` / ``pgd-l2`` run it (random start, Madry et al.'s 2.5/steps of ε
    a step, the same salt), on one batch of positions at a time, each example's random
    start drawn from its own generator (so it depends on its position alone)."""

    epsilons: list[float]
    attack: Any
    fmodel: Any
    salt: int

    @classmethod
    def build(cls, ctx: AuditContext, norm: str, epsilons: list[float], steps: int) -> _Pgd:
        import foolbox as fb

        from .foolbox_adapter import prepare
        from .perturbation import _PGD_SALT

        kind = fb.attacks.LinfPGD if norm == "linf" else fb.attacks.L2PGD
        attack = kind(rel_stepsize=2.5 / steps, steps=steps, random_start=True)
        _, fmodel = prepare(ctx)
        return cls(epsilons, attack, fmodel, _PGD_SALT[norm])

    def robust(
        self, ctx: AuditContext, m: _Moves, tick: Callable[[], None]
    ) -> dict[str, torch.Tensor]:
        """Per ε label, which of the batch's inputs PGD does not break (and were right)."""
        from .foolbox_adapter import check_bounds, gradient_ticks, per_example_starts

        check_bounds(m.x, ctx.data.bounds, "invariance-eps")
        starts = per_example_starts(self.attack, ctx.example_generators(self.salt, m.positions))
        with starts, gradient_ticks(self.attack, tick):
            _, _, success = self.attack(
                self.fmodel, ctx.to_model(m.x), ctx.to_model(m.y), epsilons=self.epsilons
            )
        # Broken at ε when broken at any ε' <= ε: robust accuracy cannot rise with ε.
        broken = success.cpu().cumsum(dim=0).T > 0
        robust = (m.pred == m.y)[:, None] & ~broken
        return {eps_label(e): robust[:, k] for k, e in enumerate(self.epsilons)}


# -- the run ------------------------------------------------------------------------------------


@dataclass
class _Moves:
    """One batch of audited inputs, their neighbours, and the verdicts on each x_ε, on the CPU."""

    positions: torch.Tensor  # audit positions of x
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

    @classmethod
    def empty(cls, ctx: AuditContext, epsilons: list[float]) -> _Moves:
        """No inputs (a shard with no positions), shaped like real ones."""
        x, label = torch.empty(0, *ctx.model.input_shape), torch.empty(0, dtype=torch.long)
        per_eps = [label] * len(epsilons)
        oracle = None if ctx.oracle is None else per_eps
        robust: dict[str, torch.Tensor | None] = {eps_label(e): None for e in epsilons}
        return cls(label, x, label, label, x, label, epsilons, [x] * len(epsilons), label,
                   per_eps, oracle, robust)  # fmt: skip

    def verdicts(self, k: int) -> dict[str, torch.Tensor | None]:
        kept = self.pred_eps[k] == self.y
        if self.oracle_eps is None:
            return {"model_kept": kept, "oracle_changed": None, "invariant": None}
        changed = self.oracle_eps[k] != self.y
        return {"model_kept": kept, "oracle_changed": changed, "invariant": kept & changed}


def _move_chunk(
    ctx: AuditContext,
    positions: torch.Tensor,
    train: Dataset,
    epsilons: list[float],
    norm: str,
    train_limit: int | None,
) -> _Moves:
    """The inputs at ``positions`` loaded now, moved towards their neighbours and judged."""
    x, y = ctx.load(positions)
    near_index, _ = nearest_other_class(x, y, train, limit=train_limit, batch=ctx.batch_size)
    x_near, y_near = dataset_items(train, near_index)
    x_eps = [move_towards(x, x_near.to(x.dtype), e, norm, ctx.data.bounds) for e in epsilons]

    def decide(t: torch.Tensor) -> torch.Tensor:
        return ctx.map_batches(lambda b: ctx.model.logits(b).argmax(1), t)

    oracle = None if ctx.oracle is None else [ctx.map_batches(ctx.oracle.predict, t) for t in x_eps]
    return _Moves(
        positions, x, y, near_index, x_near, y_near.long(), epsilons, x_eps, decide(x),
        [decide(t) for t in x_eps], oracle, {eps_label(e): None for e in epsilons},
    )  # fmt: skip


def _stream(
    ctx: AuditContext,
    epsilons: list[float],
    norm: str,
    pgd_steps: int,
    train_limit: int | None,
    examples: int,
) -> tuple[pd.DataFrame, dict[str, torch.Tensor]]:
    """Every input of this shard, one batch at a time: the records of all, the first
    ``examples`` kept whole for the figure."""
    train = ctx.data.train()
    pgd = _Pgd.build(ctx, norm, epsilons, pgd_steps) if pgd_steps else None
    batches = len(ctx.chunks())
    # A batch: its PGD gradient steps (every ε), then one tick for the moves themselves.
    per_batch = 1 + (len(epsilons) * pgd_steps if pgd else 0)

    def step(positions: torch.Tensor, _: int) -> _Moves:
        m = _move_chunk(ctx, positions, train, epsilons, norm, train_limit)
        if pgd is not None:
            m.robust = dict(pgd.robust(ctx, m, ctx.progress.advance))
        return m

    return collect(
        ctx,
        label=f"invariance-eps: {batches} batch(es)",
        units=batches * per_batch,
        step=step,
        records=_records,
        kept=_kept,
        empty=lambda: _Moves.empty(ctx, epsilons),
        examples=examples,
        cat_dims=_CAT_DIM,
    )


#: The kept tensors stacked per ε ([len(ε), k, ...]) grow along their second dimension.
_CAT_DIM = {"moved": 1, "prediction": 1, "oracle": 1}


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
    records, kept = _stream(ctx, eps, norm, pgd_steps, train_limit, examples)
    train = ctx.data.train()
    pgd = {"pgd": {"steps": pgd_steps, "rel_stepsize": 2.5 / pgd_steps}} if pgd_steps else {}
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
    return AttackResult("invariance-eps", summarise(records, settings), records, kept, settings)


# -- what a run reports -------------------------------------------------------------------------


def _column_share(records: pd.DataFrame, column: str) -> float | None:
    """The share of True in a verdict column; None where it holds no verdicts (no oracle,
    no PGD)."""
    values = records[column]
    if len(values) and bool(values.isna().all()):
        return None
    mask = values.to_numpy(dtype=bool)
    return float(mask.mean()) if len(mask) else math.nan


def _column_mean(records: pd.DataFrame, column: str) -> float:
    values = records[column].to_numpy(dtype=np.float64)
    return float(values.mean()) if len(values) else math.nan


def summarise(records: pd.DataFrame, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Every metric from the records alone (and the ε list of ``settings``): one shard's,
    or all shards' gathered in order."""
    keys = [eps_label(e) for e in settings["epsilons"]]

    def per_eps(column: str) -> dict[str, float | None]:
        return {key: _column_share(records, f"{column}@{key}") for key in keys}

    correct = records["prediction"].to_numpy() == records["label"].to_numpy()
    return {
        "n": len(records),
        "clean_accuracy": float(correct.mean()) if len(correct) else math.nan,
        "invariance_rate": per_eps("invariant"),
        "oracle_changed": per_eps("oracle_changed"),
        "model_kept": per_eps("model_kept"),
        "robust_accuracy": per_eps("robust"),
        "neighbour_l2_mean": _column_mean(records, "neighbour_l2"),
        "neighbour_linf_mean": _column_mean(records, "neighbour_linf"),
    }


def _records(m: _Moves) -> pd.DataFrame:
    n = len(m.y)
    offset = m.x_near.to(m.x.dtype) - m.x
    records = pd.DataFrame(
        {
            "index": m.positions.numpy(),
            "label": m.y.numpy(),
            "prediction": m.pred.numpy(),
            "neighbour_index": m.near_index.numpy(),
            "neighbour_label": m.y_near.numpy(),
            "neighbour_l2": perturbation_norms(offset, "l2").numpy(),
            "neighbour_linf": perturbation_norms(offset, "linf").numpy(),
        }
    )

    def column(value: torch.Tensor | None) -> Any:
        return [None] * n if value is None else value.numpy()

    for k, e in enumerate(m.epsilons):
        key, v = eps_label(e), m.verdicts(k)
        records[f"prediction@{key}"] = m.pred_eps[k].numpy()
        records[f"oracle@{key}"] = column(None if m.oracle_eps is None else m.oracle_eps[k])
        records[f"model_kept@{key}"] = column(v["model_kept"])
        records[f"oracle_changed@{key}"] = column(v["oracle_changed"])
        records[f"invariant@{key}"] = column(v["invariant"])
        records[f"robust@{key}"] = column(m.robust[key])
    return records


def _kept(m: _Moves, limit: int) -> dict[str, torch.Tensor]:
    """The first ``limit`` inputs of the batch, whole, for the figure."""
    keep = slice(0, max(limit, 0))
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
    summarise=summarise,
)
