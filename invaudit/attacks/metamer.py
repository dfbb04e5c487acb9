"""Metameric sampling (§2.2, Fig. 4): the logits of one input, the nuisances of another.

``x_met = F^{-1}(merge(z_s(x), z_n(x')))`` with ``x'`` from another class.  F is
a bijection, so ``x_met`` has exactly the logits of ``x`` — its decision cannot
change — while the oracle sees whatever the nuisances carry.  When z_n holds
the class (a CE model), the metamer looks like ``x'``: an invariance-based
adversarial example found without any optimisation.
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
    decode,
    encode,
    optional_share,
    oracle_labels,
    pair_other_class,
    require_invertible,
    share,
)
from .declaration import FULL, LOWER, Attack, Budget, Headline
from .preimage import decode_pairs

if TYPE_CHECKING:
    from matplotlib.figure import Figure

EXAMPLES = 8


@dataclass
class _Metamers:
    """Every audited example, its other-class partner and their metamer, on the CPU."""

    x: torch.Tensor
    y: torch.Tensor
    partner: torch.Tensor
    pred: torch.Tensor  # D on the logit source
    x_met: torch.Tensor
    pred_met: torch.Tensor  # D on the metamer
    logit_match: torch.Tensor
    oracle_met: torch.Tensor | None
    excursion: torch.Tensor  # how far each metamer strays outside the data box (0 inside)

    @property
    def l2_logit(self) -> torch.Tensor:
        return (self.x_met - self.x).flatten(1).norm(dim=1)

    @property
    def l2_nuisance(self) -> torch.Tensor:
        return (self.x_met - self.x[self.partner]).flatten(1).norm(dim=1)


def run(ctx: AuditContext, *, examples: int = EXAMPLES) -> AttackResult:
    """Pair every audited example with one of another class and swap in its nuisances.

    Args:
        examples: how many (logit source, metamer, nuisance source) triples to keep
            for the figure.
    """
    check_count("metamer", "examples", examples)
    model = require_invertible(ctx.model, "model", "metamer")
    x, y = ctx.test_examples()
    partner = pair_other_class(y, ctx.generator(salt=1))
    z = encode(ctx, model, x, label="metamer: encode")
    reconstruction = (decode(ctx, model, z) - x).abs().flatten(1).amax(1)
    z_s, z_n = model.split(z)
    met = decode_pairs(ctx, model, z_s, z_n[partner], label="metamer: decode")
    assert met.logits is not None and met.logit_match is not None
    m = _Metamers(
        x=x,
        y=y,
        partner=partner,
        pred=z_s.argmax(1),
        x_met=met.x,
        pred_met=met.logits.argmax(1),
        logit_match=met.logit_match,
        oracle_met=oracle_labels(ctx, met.x),
        # F^{-1} is exact everywhere, but nothing forces it to land in the input domain.
        excursion=box_excursion(met.x, ctx.data.bounds),
    )
    settings = {"examples": examples, "pairing": "uniform among examples of another class"}
    return AttackResult(
        "metamer", _metrics(m, reconstruction), _records(m), _kept(m, examples), settings
    )


def _metrics(m: _Metamers, reconstruction: torch.Tensor) -> dict[str, Any]:
    y, partner, oracle_met = m.y, m.partner, m.oracle_met
    return {
        "n": len(y),
        "logit_match_max_abs": float(m.logit_match.max()),
        "prediction_preserved": share(m.pred_met == m.pred),
        "reconstruction_max_abs": float(reconstruction.max()),
        "oracle_agrees_logit_source": optional_share(
            None if oracle_met is None else oracle_met == y
        ),
        "oracle_agrees_nuisance_source": optional_share(
            None if oracle_met is None else oracle_met == y[partner]
        ),
        "invariance_success_rate": optional_share(
            None if oracle_met is None else oracle_met != m.pred_met
        ),
        # An image made of the two sources should look like one of them; noise does not.
        "oracle_names_a_source": optional_share(
            None if oracle_met is None else (oracle_met == y) | (oracle_met == y[partner])
        ),
        "l2_to_logit_source": float(m.l2_logit.mean()),
        "l2_to_nuisance_source": float(m.l2_nuisance.mean()),
        "in_bounds_share": share(m.excursion == 0),
        "bounds_excursion_mean": float(m.excursion.mean()),
        "near_box_share": share(m.excursion <= BOX_TOLERANCE),
    }


def _records(m: _Metamers) -> pd.DataFrame:
    y, partner = m.y, m.partner
    return pd.DataFrame(
        {
            "index": range(len(y)),
            "nuisance_source": partner.numpy(),
            "label": y.numpy(),
            "nuisance_label": y[partner].numpy(),
            "prediction": m.pred.numpy(),
            "metamer_prediction": m.pred_met.numpy(),
            "oracle_metamer": (
                m.oracle_met.numpy() if m.oracle_met is not None else [None] * len(y)
            ),
            "logit_match_abs": m.logit_match.numpy(),
            "l2_to_logit_source": m.l2_logit.numpy(),
            "l2_to_nuisance_source": m.l2_nuisance.numpy(),
            "metamer_norm": m.x_met.flatten(1).norm(dim=1).numpy(),
            "bounds_excursion": m.excursion.numpy(),
        }
    )


def _kept(m: _Metamers, examples: int) -> dict[str, torch.Tensor]:
    keep = slice(0, min(examples, len(m.y)))
    kept = {
        "logit_source": m.x[keep],
        "metamer": m.x_met[keep],
        "nuisance_source": m.x[m.partner][keep],
        "label": m.y[keep],
        "nuisance_label": m.y[m.partner][keep],
        "metamer_prediction": m.pred_met[keep],
        # Whole-sample norms: the spheres figure is a radius histogram of every metamer.
        "metamer_norm": m.x_met.flatten(1).norm(dim=1),
        "source_norm": m.x.flatten(1).norm(dim=1),
    }
    if m.oracle_met is not None:
        kept["oracle_metamer"] = m.oracle_met[keep]
    return kept


def figures(result: AttackResult) -> dict[str, Figure]:
    """Fig. 4 for images; a radius histogram for vectors (the spheres)."""
    ex = result.examples
    if ex["metamer"].dim() == 4:
        return {"metamer": _image_figure(ex, result.settings.get("dataset"))}
    return {"metamer_radii": _radius_figure(ex)}


def _image_figure(ex: dict[str, torch.Tensor], dataset: str | None = None) -> Figure:
    from ..data.classes import class_name
    from ..figures import image_grid_figure

    titles = []
    for i in range(len(ex["label"])):
        title = f"D: {class_name(dataset, ex['metamer_prediction'][i])}"
        if "oracle_metamer" in ex:
            title += f"\no: {class_name(dataset, ex['oracle_metamer'][i])}"
        titles.append(title)
    caption = "D = the audited model's decision on the metamer (that of the logit source)"
    if "oracle_metamer" in ex:
        caption += "; o = the oracle's label for the metamer (D ≠ o: invariance-adversarial)"
    return image_grid_figure(
        [ex["logit_source"], ex["metamer"], ex["nuisance_source"]],
        ["logit source", "metamer", "nuisance source"],
        column_titles=titles,
        title="Logit metamers: z_s from the top row, z_n from the bottom row",
        caption=caption + ".",
    )


def _radius_figure(ex: dict[str, torch.Tensor]) -> Figure:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5, 2.8), dpi=150)
    ax = fig.subplots()
    src, met = ex["source_norm"].numpy(), ex["metamer_norm"].numpy()
    high = float(max(src.max(), met.max())) * 1.05
    bins = [high * i / 60 for i in range(61)]
    ax.hist(src, bins=bins, alpha=0.5, label="clean inputs")
    ax.hist(met, bins=bins, alpha=0.5, label="metamers")
    ax.set_xlabel("radius ‖x‖")
    ax.set_ylabel("count")
    ax.set_title("Radii of inputs and their logit metamers")
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig


#: The oracle's verdicts on metamers: void when metamers are not inputs.
_ORACLE_RATES = (
    "invariance_success_rate",
    "oracle_agrees_nuisance_source",
    "oracle_agrees_logit_source",
    "oracle_names_a_source",
)

ATTACK = Attack(
    name="metamer",
    kind="invariance",
    run=run,
    figures=figures,
    summary="logits of x with the nuisances of another class's x' (Fig. 4)",
    metrics=(
        "n",
        "logit_match_max_abs",
        "prediction_preserved",
        "reconstruction_max_abs",
        "oracle_agrees_logit_source",
        "oracle_agrees_nuisance_source",
        "invariance_success_rate",
        "oracle_names_a_source",
        "l2_to_logit_source",
        "l2_to_nuisance_source",
        "in_bounds_share",
        "bounds_excursion_mean",
        "near_box_share",
    ),
    rates={
        metric: "n"
        for metric in (
            "prediction_preserved",
            "oracle_agrees_logit_source",
            "oracle_agrees_nuisance_source",
            "invariance_success_rate",
            "oracle_names_a_source",
            "in_bounds_share",
            "near_box_share",
        )
    },
    headline=(
        Headline("invariance_success_rate", "invariance success", better=LOWER, compare=True),
        Headline(
            "oracle_agrees_nuisance_source",
            "oracle agrees with nuisance source",
            better=LOWER,
            compare=True,
        ),
        # F is a bijection: anything below 100 % is a numerical fault, not a finding.
        Headline("prediction_preserved", "prediction preserved", better=FULL),
    ),
    oracle_rates=_ORACLE_RATES,
    suites={"quick": Budget(512), "full": Budget(None)},
    smoke={"examples": 2},
)
