"""Interpolation in the logit pre-image (Fig. 6).

``x(t) = F^{-1}(merge(z_s(x), (1 - t) z_n(x) + t z_n(x')))`` keeps the logits of
``x`` fixed for every ``t`` while the nuisances walk to those of ``x'``.  The
path stays inside the pre-image of D's decision; the question is whether the
oracle's label leaves the class of ``x`` along the way (a CE model) or the
walk only changes style (what iCE is meant to achieve).

The paths stream: a batch of positions and their partners is loaded and walked,
and only its records (the oracle's label at every t among them) and the first few
paths, for the figure, outlive it.  The pairing is drawn over every audited label,
so a shard gets the partners a single process would, and every metric follows from
the records (:func:`summarise`), which is how rank 0 recomputes them from all shards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from .base import (
    BOX_TOLERANCE,
    AttackResult,
    AuditContext,
    box_excursion,
    check_count,
    encode,
    oracle_labels,
    pair_other_class,
    require_invertible,
    share,
)
from .declaration import FULL, LOWER, Attack, Budget, Headline
from .preimage import decode_pairs
from .streaming import collect

if TYPE_CHECKING:
    from collections.abc import Mapping

    from matplotlib.figure import Figure

    from ..models.classifier import InvertibleClassifier

__all__ = ["ATTACK", "oracle_column", "run", "summarise"]

STEPS = 9
EXAMPLES = 6
#: Salt of the pairing's generator (the metamer attack's is 1: other pairs).
PAIR_SALT = 2


@dataclass
class _Paths:
    """One batch of walks, on the CPU: the decision and the oracle's label at each point
    (``[batch, steps]``), and per path the largest logit drift and box excursion."""

    positions: torch.Tensor  # audit positions of x
    y: torch.Tensor
    partner: torch.Tensor  # audit positions of x'
    x_partner: torch.Tensor
    y_partner: torch.Tensor
    pred: torch.Tensor  # D on x
    decisions: torch.Tensor
    oracle: torch.Tensor | None
    drift: torch.Tensor
    excursion: torch.Tensor
    images: torch.Tensor  # [keep, steps, *input_shape]: the batch's first paths, for the figure

    @classmethod
    def empty(cls, ctx: AuditContext, model: InvertibleClassifier, steps: int) -> _Paths:
        """No paths (a shard without positions), shaped like real ones so its records and
        examples still have every column."""
        ref = next(model.parameters())
        x = torch.empty(0, *model.input_shape, dtype=ref.dtype)
        images = torch.empty(0, steps, *model.input_shape, dtype=ref.dtype)
        label, value = torch.empty(0, dtype=torch.long), torch.empty(0, dtype=ref.dtype)
        per_step = torch.empty(0, steps, dtype=torch.long)
        oracle = None if ctx.oracle is None else per_step
        return cls(label, label, label, x, label, label, per_step, oracle, value, value, images)

    @property
    def decision_preserved(self) -> torch.Tensor:
        return (self.decisions == self.pred[:, None]).all(1)


def oracle_column(t: float) -> str:
    """The records' column of the oracle's label at ``t`` (as ``settings["t"]`` rounds it)."""
    return f"oracle@t={t:g}"


def run(ctx: AuditContext, *, steps: int = STEPS, examples: int = EXAMPLES) -> AttackResult:
    """Walk each audited example's nuisances to those of an example of another class.

    Args:
        steps: number of points on the path, ``t = 0, 1/(steps-1), ..., 1`` (at least 2).
        examples: how many paths to keep for the figure.
    """
    check_count("interpolate", "steps", steps, minimum=2)
    check_count("interpolate", "examples", examples)
    model = require_invertible(ctx.model, "model", "interpolate")
    ts = torch.linspace(0, 1, steps, dtype=torch.float64)
    t_named = [round(t, 6) for t in ts.tolist()]
    settings = {"steps": steps, "examples": examples, "t": t_named}
    records, kept = _stream(ctx, model, ts, t_named, examples)
    return AttackResult("interpolate", summarise(records, settings), records, kept, settings)


def _stream(
    ctx: AuditContext,
    model: InvertibleClassifier,
    ts: torch.Tensor,
    t_named: list[float],
    examples: int,
) -> tuple[pd.DataFrame, dict[str, torch.Tensor]]:
    """Every path of this shard, one batch at a time: the records of all, the first
    ``examples`` paths whole for the figure."""
    # Drawn over every audited label, so a position has one partner whatever its shard.
    partner = pair_other_class(ctx.labels(), ctx.generator(salt=PAIR_SALT))
    batches, steps = len(ctx.chunks()), len(ts)
    records, examples_kept = collect(
        ctx,
        # A batch: one unit per t, then one for its records.
        label=f"interpolate: {batches} batch(es) × {steps} steps",
        units=batches * (steps + 1),
        step=lambda positions, wanted: _walk(
            ctx, model, positions, partner[positions], ts, min(wanted, len(positions))
        ),
        records=lambda paths: _records(paths, ts, t_named),
        kept=lambda paths, _: _kept(paths),
        empty=lambda: _Paths.empty(ctx, model, steps),
        examples=examples,
    )
    examples_kept["t"] = ts.float()
    return records, examples_kept


def _walk(
    ctx: AuditContext,
    model: InvertibleClassifier,
    positions: torch.Tensor,
    partner: torch.Tensor,
    ts: torch.Tensor,
    keep: int,
) -> _Paths:
    """Decode ``merge(z_s, (1 - t) z_n + t z_n')`` at every t for the examples at
    ``positions`` (z_n' their partners'), checking each point; one progress step per t."""
    x, y = ctx.load(positions)
    x_partner, y_partner = ctx.load(partner)
    z_s, z_n = model.split(encode(ctx, model, x))
    z_n_partner = model.split(encode(ctx, model, x_partner))[1]
    n, steps = len(positions), len(ts)
    decisions = torch.empty(n, steps, dtype=torch.long)
    oracle = torch.empty(n, steps, dtype=torch.long) if ctx.oracle is not None else None
    drift = torch.zeros(n)
    excursion = torch.zeros(n)  # the largest over each path's points
    images = []
    for k, t in enumerate(ts.tolist()):
        point = decode_pairs(ctx, model, z_s, (1 - t) * z_n + t * z_n_partner)
        assert point.logits is not None and point.logit_match is not None
        drift = torch.maximum(drift, point.logit_match)
        excursion = torch.maximum(excursion, box_excursion(point.x, ctx.data.bounds))
        decisions[:, k] = point.logits.argmax(1)
        if oracle is not None:
            oracle[:, k] = oracle_labels(ctx, point.x)
        images.append(point.x[:keep])
        ctx.progress.advance()
    return _Paths(
        positions, y, partner, x_partner, y_partner, z_s.argmax(1), decisions, oracle, drift,
        excursion, torch.stack(images, dim=1),
    )  # fmt: skip


def _records(paths: _Paths, ts: torch.Tensor, t_named: list[float]) -> pd.DataFrame:
    """One row per path; with an oracle, its label at every t (a column per t)."""
    n, oracle = len(paths.y), paths.oracle
    records = {
        "index": paths.positions.numpy(),
        "nuisance_source": paths.partner.numpy(),
        "label": paths.y.numpy(),
        "nuisance_label": paths.y_partner.numpy(),
        "prediction": paths.pred.numpy(),
        "decision_preserved": paths.decision_preserved.numpy(),
        "logit_drift_max_abs": paths.drift.numpy(),
        "bounds_excursion": paths.excursion.numpy(),
        "first_oracle_flip_t": _first_flip_t(paths, ts).numpy(),
        "oracle_path": (
            [" ".join(map(str, row.tolist())) for row in oracle] if oracle is not None
            else [None] * n
        ),
    }  # fmt: skip
    if oracle is not None:
        records |= {oracle_column(t): oracle[:, k].numpy() for k, t in enumerate(t_named)}
    return pd.DataFrame(records)


def _first_flip_t(paths: _Paths, ts: torch.Tensor) -> torch.Tensor:
    """Per path the first t where the oracle leaves y (NaN: never, or no oracle)."""
    first_flip_t = torch.full((len(paths.y),), math.nan, dtype=torch.float64)
    if paths.oracle is not None:
        left = paths.oracle != paths.y[:, None]
        flipped = left.any(1)
        first_flip_t[flipped] = ts[left.double().argmax(1)[flipped]]
    return first_flip_t


def _kept(paths: _Paths) -> dict[str, torch.Tensor]:
    """The batch's kept paths (those :func:`_walk` held images of), for the figure."""
    keep = len(paths.images)
    kept = {
        "paths": paths.images,
        "nuisance_source": paths.x_partner[:keep],
        "label": paths.y[:keep],
        "nuisance_label": paths.y_partner[:keep],
    }
    if paths.oracle is not None:
        kept["oracle"] = paths.oracle[:keep]
    return kept


def _values(records: pd.DataFrame, column: str) -> torch.Tensor:
    """A numeric or boolean column in float64 (NaN where empty): records may come from a CSV."""
    return torch.tensor(records[column].to_numpy(dtype=np.float64, na_value=np.nan))


def summarise(records: pd.DataFrame, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Every metric from the records alone: one shard's, or all shards' gathered in order."""
    drift = _values(records, "logit_drift_max_abs")
    excursion = _values(records, "bounds_excursion")
    return {
        "n": len(records),
        "steps": settings["steps"],
        "logit_drift_max_abs": float(drift.max()) if drift.numel() else math.nan,
        "decision_preserved_rate": share(_values(records, "decision_preserved") == 1),
        **_oracle_metrics(records, settings),
        "bounds_excursion_mean": float(excursion.mean()),
        "near_box_share": share(excursion <= BOX_TOLERANCE),
    }


def _oracle_metrics(records: pd.DataFrame, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The oracle's verdicts along the paths; None without an oracle (no label column)."""
    endpoint = oracle_column(settings["t"][-1])
    if endpoint not in records:
        return dict.fromkeys(
            ("oracle_flip_rate", "mean_flip_t", "endpoint_oracle_agrees_nuisance_source",
             "endpoint_oracle_agrees_logit_source"),
            None,
        )  # fmt: skip
    first_flip_t = _values(records, "first_oracle_flip_t")
    flipped = ~first_flip_t.isnan()
    last = _values(records, endpoint)
    return {
        "oracle_flip_rate": share(flipped & (_values(records, "decision_preserved") == 1)),
        "mean_flip_t": float(first_flip_t[flipped].mean()) if flipped.any() else None,
        "endpoint_oracle_agrees_nuisance_source": share(last == _values(records, "nuisance_label")),
        "endpoint_oracle_agrees_logit_source": share(last == _values(records, "label")),
    }


def figures(result: AttackResult) -> dict[str, Figure]:
    """Fig. 6: one column per path, t down the rows, the nuisance source at the bottom."""
    ex = result.examples
    if ex["paths"].dim() != 5:  # vectors: nothing to look at
        return {}
    from ..data.classes import class_name
    from ..figures import image_grid_figure

    dataset = result.settings.get("dataset")
    paths, ts = ex["paths"], ex["t"].tolist()
    rows = [paths[:, k] for k in range(paths.shape[1])] + [ex["nuisance_source"]]
    labels = [f"t={t:.2f}" for t in ts] + ["target x'"]
    titles = [
        f"{class_name(dataset, a)}\n→ {class_name(dataset, b)}"
        for a, b in zip(ex["label"], ex["nuisance_label"], strict=True)
    ]
    return {
        "interpolate": image_grid_figure(
            rows,
            labels,
            column_titles=titles,
            title="z_s fixed, z_n interpolated towards the bottom row",
            caption="Column titles: the class of x (whose z_s every row keeps) → the class "
            "of the target x' (whose z_n the path walks to).",
        )
    }


#: The oracle's verdicts on points of the path: void when those points are not inputs.
_ORACLE_RATES = (
    "oracle_flip_rate",
    "endpoint_oracle_agrees_nuisance_source",
    "endpoint_oracle_agrees_logit_source",
)

ATTACK = Attack(
    name="interpolate",
    kind="invariance",
    run=run,
    figures=figures,
    summary="walk z_n towards another class's with z_s fixed (Fig. 6)",
    metrics=(
        "n",
        "steps",
        "logit_drift_max_abs",
        "decision_preserved_rate",
        "oracle_flip_rate",
        "mean_flip_t",
        "endpoint_oracle_agrees_nuisance_source",
        "endpoint_oracle_agrees_logit_source",
        "bounds_excursion_mean",
        "near_box_share",
    ),
    rates={metric: "n" for metric in ("decision_preserved_rate", *_ORACLE_RATES, "near_box_share")},
    headline=(
        Headline("decision_preserved_rate", "decision preserved", better=FULL),
        Headline("oracle_flip_rate", "oracle flips", better=LOWER, compare=True),
    ),
    oracle_rates=_ORACLE_RATES,
    suites={"quick": Budget(400), "full": Budget(1_000)},
    smoke={"steps": 3, "examples": 2},
    summarise=summarise,
)
