"""Interpolation in the logit pre-image (Fig. 6).

``x(t) = F^{-1}(merge(z_s(x), (1 - t) z_n(x) + t z_n(x')))`` keeps the logits of
``x`` fixed for every ``t`` while the nuisances walk to those of ``x'``.  The
path stays inside the pre-image of D's decision; the question is whether the
oracle's label leaves the class of ``x`` along the way (a CE model) or the
walk only changes style (what iCE is meant to achieve).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import torch

from .base import (
    BOX_TOLERANCE,
    Attack,
    AttackResult,
    AuditContext,
    box_excursion,
    check_count,
    decode,
    encode,
    oracle_labels,
    pair_other_class,
    require_invertible,
    share,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

STEPS = 9
EXAMPLES = 6


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
    pred = z_s.argmax(1)
    ts = torch.linspace(0, 1, steps, dtype=torch.float64)
    n = len(y)
    decisions = torch.empty(n, steps, dtype=torch.long)
    oracle = torch.empty(n, steps, dtype=torch.long) if ctx.oracle is not None else None
    drift = torch.zeros(n)
    excursion = torch.zeros(n)  # the largest over each path's points
    keep = min(examples, n)
    path_images = []
    ctx.progress.start("interpolate", steps)
    try:
        for k, t in enumerate(ts.tolist()):
            z_t = model.merge(z_s, (1 - t) * z_n + t * z_n[partner])
            x_t = decode(ctx, model, z_t)
            z_back = model.split(encode(ctx, model, x_t))[0]
            drift = torch.maximum(drift, (z_back - z_s).abs().amax(1))
            excursion = torch.maximum(excursion, box_excursion(x_t, ctx.data.bounds))
            decisions[:, k] = z_back.argmax(1)
            if oracle is not None:
                oracle[:, k] = oracle_labels(ctx, x_t)
            path_images.append(x_t[:keep])
            ctx.progress.advance()
    finally:
        ctx.progress.finish()

    d_kept = (decisions == pred[:, None]).all(1)
    metrics: dict[str, object] = {
        "n": n,
        "steps": steps,
        "logit_drift_max_abs": float(drift.max()),
        "decision_preserved_rate": share(d_kept),
        "oracle_flip_rate": None,
        "mean_flip_t": None,
        "endpoint_oracle_agrees_nuisance_source": None,
        "endpoint_oracle_agrees_logit_source": None,
        "bounds_excursion_mean": float(excursion.mean()),
        "near_box_share": share(excursion <= BOX_TOLERANCE),
    }
    first_flip_t = torch.full((n,), float("nan"), dtype=torch.float64)
    if oracle is not None:
        left = oracle != y[:, None]
        flipped = left.any(1)
        first = left.double().argmax(1)
        first_flip_t[flipped] = ts[first[flipped]]
        metrics["oracle_flip_rate"] = share(flipped & d_kept)
        metrics["mean_flip_t"] = float(first_flip_t[flipped].mean()) if flipped.any() else None
        metrics["endpoint_oracle_agrees_nuisance_source"] = share(oracle[:, -1] == y[partner])
        metrics["endpoint_oracle_agrees_logit_source"] = share(oracle[:, -1] == y)
    records = pd.DataFrame(
        {
            "index": range(n),
            "nuisance_source": partner.numpy(),
            "label": y.numpy(),
            "nuisance_label": y[partner].numpy(),
            "prediction": pred.numpy(),
            "decision_preserved": d_kept.numpy(),
            "logit_drift_max_abs": drift.numpy(),
            "bounds_excursion": excursion.numpy(),
            "first_oracle_flip_t": first_flip_t.numpy(),
            "oracle_path": (
                [" ".join(map(str, row.tolist())) for row in oracle]
                if oracle is not None
                else [None] * n
            ),
        }
    )
    kept = {
        "paths": torch.stack(path_images, dim=1),  # [keep, steps, *input_shape]
        "t": ts.float(),
        "nuisance_source": x[partner][:keep],
        "label": y[:keep],
        "nuisance_label": y[partner][:keep],
    }
    if oracle is not None:
        kept["oracle"] = oracle[:keep]
    settings = {"steps": steps, "examples": examples, "t": [round(t, 6) for t in ts.tolist()]}
    return AttackResult("interpolate", metrics, records, kept, settings)


def figures(result: AttackResult) -> dict[str, Figure]:
    """Fig. 6: one column per path, t down the rows, the nuisance source at the bottom."""
    ex = result.examples
    if ex["paths"].dim() != 5:  # vectors: nothing to look at
        return {}
    from ..data.classes import class_name
    from ..reports.figures import image_grid_figure

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


ATTACK = Attack(
    name="interpolate",
    kind="invariance",
    run=run,
    options={"steps": STEPS, "examples": EXAMPLES},
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
    rates={
        metric: "n"
        for metric in (
            "decision_preserved_rate",
            "oracle_flip_rate",
            "endpoint_oracle_agrees_nuisance_source",
            "endpoint_oracle_agrees_logit_source",
            "near_box_share",
        )
    },
)
