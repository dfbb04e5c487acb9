"""Interpolation in the logit pre-image (Fig. 6).

``x(t) = F^{-1}(merge(z_s(x), (1 - t) z_n(x) + t z_n(x')))`` keeps the logits of
``x`` fixed for every ``t`` while the nuisances walk to those of ``x'``.  The
path stays inside the pre-image of D's decision; the question is whether the
oracle's label leaves the class of ``x`` along the way (a CE model) or the
walk only changes style (what iCE is meant to achieve).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..models.classifier import InvertibleClassifier

STEPS = 9
EXAMPLES = 6


@dataclass
class _Paths:
    """Every audited example's walk, on the CPU: the decision and the oracle's label at
    each point (``[n, steps]``), and per path the largest logit drift and box excursion."""

    ts: torch.Tensor
    decisions: torch.Tensor
    oracle: torch.Tensor | None
    drift: torch.Tensor
    excursion: torch.Tensor
    images: torch.Tensor  # [keep, steps, *input_shape]: the first paths, for the figure


def run(ctx: AuditContext, *, steps: int = STEPS, examples: int = EXAMPLES) -> AttackResult:
    """Walk each audited example's nuisances to those of an example of another class.

    Args:
        steps: number of points on the path, ``t = 0, 1/(steps-1), ..., 1`` (at least 2).
        examples: how many paths to keep for the figure.
    """
    check_count("interpolate", "steps", steps, minimum=2)
    check_count("interpolate", "examples", examples)
    model = require_invertible(ctx.model, "model", "interpolate")
    x, y = ctx.test_examples()
    partner = pair_other_class(y, ctx.generator(salt=2))
    z_s, z_n = model.split(encode(ctx, model, x, label="interpolate: encode"))
    paths = _walk(ctx, model, z_s, z_n, partner, steps, min(examples, len(y)))
    pred = z_s.argmax(1)
    d_kept = (paths.decisions == pred[:, None]).all(1)
    metrics, first_flip_t = _metrics(paths, y, partner, d_kept)
    records = pd.DataFrame(
        {
            "index": range(len(y)),
            "nuisance_source": partner.numpy(),
            "label": y.numpy(),
            "nuisance_label": y[partner].numpy(),
            "prediction": pred.numpy(),
            "decision_preserved": d_kept.numpy(),
            "logit_drift_max_abs": paths.drift.numpy(),
            "bounds_excursion": paths.excursion.numpy(),
            "first_oracle_flip_t": first_flip_t.numpy(),
            "oracle_path": (
                [" ".join(map(str, row.tolist())) for row in paths.oracle]
                if paths.oracle is not None
                else [None] * len(y)
            ),
        }
    )
    keep = len(paths.images)
    kept = {
        "paths": paths.images,
        "t": paths.ts.float(),
        "nuisance_source": x[partner][:keep],
        "label": y[:keep],
        "nuisance_label": y[partner][:keep],
    }
    if paths.oracle is not None:
        kept["oracle"] = paths.oracle[:keep]
    settings = {"steps": steps, "examples": examples, "t": [round(t, 6) for t in paths.ts.tolist()]}
    return AttackResult("interpolate", metrics, records, kept, settings)


def _walk(
    ctx: AuditContext,
    model: InvertibleClassifier,
    z_s: torch.Tensor,
    z_n: torch.Tensor,
    partner: torch.Tensor,
    steps: int,
    keep: int,
) -> _Paths:
    """Decode ``merge(z_s, (1 - t) z_n + t z_n[partner])`` at every t, checking each point."""
    ts = torch.linspace(0, 1, steps, dtype=torch.float64)
    n = len(z_s)
    decisions = torch.empty(n, steps, dtype=torch.long)
    oracle = torch.empty(n, steps, dtype=torch.long) if ctx.oracle is not None else None
    drift = torch.zeros(n)
    excursion = torch.zeros(n)  # the largest over each path's points
    images = []
    ctx.progress.start("interpolate", steps)
    try:
        for k, t in enumerate(ts.tolist()):
            point = decode_pairs(ctx, model, z_s, (1 - t) * z_n + t * z_n[partner])
            assert point.logits is not None and point.logit_match is not None
            drift = torch.maximum(drift, point.logit_match)
            excursion = torch.maximum(excursion, box_excursion(point.x, ctx.data.bounds))
            decisions[:, k] = point.logits.argmax(1)
            if oracle is not None:
                oracle[:, k] = oracle_labels(ctx, point.x)
            images.append(point.x[:keep])
            ctx.progress.advance()
    finally:
        ctx.progress.finish()
    return _Paths(ts, decisions, oracle, drift, excursion, torch.stack(images, dim=1))


def _metrics(
    paths: _Paths, y: torch.Tensor, partner: torch.Tensor, d_kept: torch.Tensor
) -> tuple[dict[str, Any], torch.Tensor]:
    """The metrics, and per path the first t where the oracle leaves y (NaN: never)."""
    metrics: dict[str, Any] = {
        "n": len(y),
        "steps": len(paths.ts),
        "logit_drift_max_abs": float(paths.drift.max()),
        "decision_preserved_rate": share(d_kept),
        "oracle_flip_rate": None,
        "mean_flip_t": None,
        "endpoint_oracle_agrees_nuisance_source": None,
        "endpoint_oracle_agrees_logit_source": None,
        "bounds_excursion_mean": float(paths.excursion.mean()),
        "near_box_share": share(paths.excursion <= BOX_TOLERANCE),
    }
    first_flip_t = torch.full((len(y),), float("nan"), dtype=torch.float64)
    oracle = paths.oracle
    if oracle is not None:
        left = oracle != y[:, None]
        flipped = left.any(1)
        first = left.double().argmax(1)
        first_flip_t[flipped] = paths.ts[first[flipped]]
        metrics["oracle_flip_rate"] = share(flipped & d_kept)
        metrics["mean_flip_t"] = float(first_flip_t[flipped].mean()) if flipped.any() else None
        metrics["endpoint_oracle_agrees_nuisance_source"] = share(oracle[:, -1] == y[partner])
        metrics["endpoint_oracle_agrees_logit_source"] = share(oracle[:, -1] == y)
    return metrics, first_flip_t


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
)
