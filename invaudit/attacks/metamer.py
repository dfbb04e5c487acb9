"""Metameric sampling (§2.2, Fig. 4): the logits of one input, the nuisances of another.

``x_met = F^{-1}(merge(z_s(x), z_n(x')))`` with ``x'`` from another class.  F is
a bijection, so ``x_met`` has exactly the logits of ``x`` — its decision cannot
change — while the oracle sees whatever the nuisances carry.  When z_n holds
the class (a CE model), the metamer looks like ``x'``: an invariance-based
adversarial example found without any optimisation.

The pairs stream: a batch of positions and their partners is loaded, encoded and
swapped, and only its records (and the first few triples, for the figure) outlive
it.  The pairing is drawn over every audited label, so a shard gets the partners a
single process would, and every metric follows from the records (:func:`summarise`),
which is how rank 0 recomputes them from all shards.
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
    decode,
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

__all__ = ["ATTACK", "run", "summarise"]

EXAMPLES = 8
#: Salt of the pairing's generator: feature-match uses the same one, so both judge the same pairs.
PAIR_SALT = 1


@dataclass
class _Metamers:
    """One batch of audited examples, their other-class partners and their metamers, on
    the CPU."""

    positions: torch.Tensor  # audit positions of the logit sources
    x: torch.Tensor
    y: torch.Tensor
    partner: torch.Tensor  # audit positions of the nuisance sources
    x_partner: torch.Tensor
    y_partner: torch.Tensor
    pred: torch.Tensor  # D on the logit source
    reconstruction: torch.Tensor  # per example max |F^{-1}(F(x)) - x|
    x_met: torch.Tensor
    pred_met: torch.Tensor  # D on the metamer
    logit_match: torch.Tensor
    oracle_met: torch.Tensor | None
    excursion: torch.Tensor  # how far each metamer strays outside the data box (0 inside)

    @classmethod
    def empty(cls, ctx: AuditContext, model: InvertibleClassifier) -> _Metamers:
        """No pairs (a shard without positions), shaped like real ones so its records and
        examples still have every column."""
        ref = next(model.parameters())
        x = torch.empty(0, *model.input_shape, dtype=ref.dtype)
        label, value = torch.empty(0, dtype=torch.long), torch.empty(0, dtype=ref.dtype)
        oracle = None if ctx.oracle is None else label
        return cls(label, x, label, label, x, label, label, value, x, label, value, oracle, value)

    @property
    def l2_logit(self) -> torch.Tensor:
        return (self.x_met - self.x).flatten(1).norm(dim=1)

    @property
    def l2_nuisance(self) -> torch.Tensor:
        return (self.x_met - self.x_partner).flatten(1).norm(dim=1)


def run(ctx: AuditContext, *, examples: int = EXAMPLES) -> AttackResult:
    """Pair every audited example with one of another class and swap in its nuisances.

    Args:
        examples: how many (logit source, metamer, nuisance source) triples to keep
            for the figure.
    """
    check_count("metamer", "examples", examples)
    model = require_invertible(ctx.model, "model", "metamer")
    records, kept = _stream(ctx, model, examples)
    settings = {"examples": examples, "pairing": "uniform among examples of another class"}
    return AttackResult("metamer", summarise(records, settings), records, kept, settings)


def _stream(
    ctx: AuditContext, model: InvertibleClassifier, examples: int
) -> tuple[pd.DataFrame, dict[str, torch.Tensor]]:
    """Every pair of this shard, one batch at a time: the records of all, the first
    ``examples`` triples whole for the figure."""
    # Drawn over every audited label, so a position has one partner whatever its shard.
    partner = pair_other_class(ctx.labels(), ctx.generator(salt=PAIR_SALT))
    batches = len(ctx.chunks())
    records, examples_kept = collect(
        ctx,
        label=f"metamer: {batches} batch(es)",
        units=batches,
        step=lambda positions, _: _metamers(ctx, model, positions, partner[positions]),
        records=_records,
        kept=_kept,
        empty=lambda: _Metamers.empty(ctx, model),
        examples=examples,
    )
    # Whole-shard norms for the radius histogram, from the records: no input is held.
    for name in ("metamer_norm", "source_norm"):
        examples_kept[name] = torch.tensor(records[name].to_numpy())
    return records, examples_kept


def _metamers(
    ctx: AuditContext, model: InvertibleClassifier, positions: torch.Tensor, partner: torch.Tensor
) -> _Metamers:
    """The metamers of the examples at ``positions`` with the nuisances of ``partner``."""
    x, y = ctx.load(positions)
    x_partner, y_partner = ctx.load(partner)
    z = encode(ctx, model, x)
    z_s, _ = model.split(z)
    met = decode_pairs(ctx, model, z_s, model.split(encode(ctx, model, x_partner))[1])
    assert met.logits is not None and met.logit_match is not None
    return _Metamers(
        positions=positions,
        x=x,
        y=y,
        partner=partner,
        x_partner=x_partner,
        y_partner=y_partner,
        pred=z_s.argmax(1),
        reconstruction=(decode(ctx, model, z) - x).abs().flatten(1).amax(1),
        x_met=met.x,
        pred_met=met.logits.argmax(1),
        logit_match=met.logit_match,
        oracle_met=oracle_labels(ctx, met.x),
        # F^{-1} is exact everywhere, but nothing forces it to land in the input domain.
        excursion=box_excursion(met.x, ctx.data.bounds),
    )


def _records(m: _Metamers) -> pd.DataFrame:
    n = len(m.y)
    return pd.DataFrame(
        {
            "index": m.positions.numpy(),
            "nuisance_source": m.partner.numpy(),
            "label": m.y.numpy(),
            "nuisance_label": m.y_partner.numpy(),
            "prediction": m.pred.numpy(),
            "metamer_prediction": m.pred_met.numpy(),
            "oracle_metamer": m.oracle_met.numpy() if m.oracle_met is not None else [None] * n,
            "logit_match_abs": m.logit_match.numpy(),
            "reconstruction_abs": m.reconstruction.numpy(),
            "l2_to_logit_source": m.l2_logit.numpy(),
            "l2_to_nuisance_source": m.l2_nuisance.numpy(),
            "metamer_norm": m.x_met.flatten(1).norm(dim=1).numpy(),
            "source_norm": m.x.flatten(1).norm(dim=1).numpy(),
            "bounds_excursion": m.excursion.numpy(),
        }
    )


def _kept(m: _Metamers, limit: int) -> dict[str, torch.Tensor]:
    """The first ``limit`` triples of the batch, whole, for the figure."""
    keep = slice(0, max(limit, 0))
    kept = {
        "logit_source": m.x[keep],
        "metamer": m.x_met[keep],
        "nuisance_source": m.x_partner[keep],
        "label": m.y[keep],
        "nuisance_label": m.y_partner[keep],
        "metamer_prediction": m.pred_met[keep],
    }
    if m.oracle_met is not None:
        kept["oracle_metamer"] = m.oracle_met[keep]
    return kept


def _values(records: pd.DataFrame, column: str) -> torch.Tensor:
    """A numeric column in float64 (NaN where empty): the records may come from a CSV."""
    return torch.tensor(records[column].to_numpy(dtype=np.float64, na_value=np.nan))


def _largest(values: torch.Tensor) -> float:
    return float(values.max()) if values.numel() else math.nan


def summarise(records: pd.DataFrame, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Every metric from the records alone: one shard's, or all shards' gathered in order."""
    label = _values(records, "label")
    nuisance_label = _values(records, "nuisance_label")
    decision = _values(records, "metamer_prediction")
    excursion = _values(records, "bounds_excursion")
    return {
        "n": len(records),
        "logit_match_max_abs": _largest(_values(records, "logit_match_abs")),
        "prediction_preserved": share(decision == _values(records, "prediction")),
        "reconstruction_max_abs": _largest(_values(records, "reconstruction_abs")),
        **_oracle_metrics(_values(records, "oracle_metamer"), label, nuisance_label, decision),
        "l2_to_logit_source": float(_values(records, "l2_to_logit_source").mean()),
        "l2_to_nuisance_source": float(_values(records, "l2_to_nuisance_source").mean()),
        "in_bounds_share": share(excursion == 0),
        "bounds_excursion_mean": float(excursion.mean()),
        "near_box_share": share(excursion <= BOX_TOLERANCE),
    }


def _oracle_metrics(
    oracle: torch.Tensor, label: torch.Tensor, nuisance_label: torch.Tensor, decision: torch.Tensor
) -> dict[str, float | None]:
    """The oracle's verdicts on the metamers; None without an oracle (no verdict recorded)."""
    names = ("oracle_agrees_logit_source", "oracle_agrees_nuisance_source",
             "invariance_success_rate", "oracle_names_a_source")  # fmt: skip
    if oracle.numel() and bool(oracle.isnan().all()):
        return dict.fromkeys(names, None)
    agrees_logit, agrees_nuisance = oracle == label, oracle == nuisance_label
    masks = (agrees_logit, agrees_nuisance, oracle != decision,
             # An image made of the two sources should look like one of them; noise does not.
             agrees_logit | agrees_nuisance)  # fmt: skip
    return {name: share(mask) for name, mask in zip(names, masks, strict=True)}


def figures(result: AttackResult) -> dict[str, Figure]:
    """Fig. 4 for images; a radius histogram for vectors (the spheres)."""
    ex = result.examples
    if ex["metamer"].dim() == 4:
        return {"metamer": _image_figure(ex, result.settings.get("dataset"))}
    return {"metamer_radii": _radius_figure(*radii(result))}


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


def radii(result: AttackResult) -> tuple[np.ndarray, np.ndarray]:
    """Every audited input's and metamer's radius ‖x‖."""
    records = result.records
    # After a sharded run only the gathered records cover every shard (the examples hold
    # rank 0's block); results saved before the records had source_norm use the examples.
    if {"source_norm", "metamer_norm"} <= set(records.columns):
        source, metamer = records["source_norm"], records["metamer_norm"]
        return source.to_numpy(dtype=np.float64), metamer.to_numpy(dtype=np.float64)
    return result.examples["source_norm"].numpy(), result.examples["metamer_norm"].numpy()


def _radius_figure(src: np.ndarray, met: np.ndarray) -> Figure:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5, 2.8), dpi=150)
    ax = fig.subplots()
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
    summarise=summarise,
)
