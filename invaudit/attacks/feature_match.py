"""Feature matching: an invariance attack on any differentiable classifier, no inverse needed.

For a test pair (x of class a, x' of class b ≠ a) gradient descent looks for an
input x̃ in the data box, within ε of x', whose logits (or the activations of a
named layer) are those of x:

    x̃ = argmin ‖f(x̃) − f(x)‖₂ / ‖f(x)‖₂   subject to ‖x̃ − x'‖ ≤ ε, x̃ in the box.

Where the model's decision on x̃ is a while the oracle still sees b, x̃ is an
invariance-based adversarial example (the model ignores what made x' a b).  On an
invertible classifier the metamer attack (:mod:`invaudit.attacks.metamer`) builds
such inputs exactly through F⁻¹; here they are searched for, so the attack applies to
plain CNNs and foreign models too, and its points are inputs by construction: x̃
never leaves the data box.

The search: Adam on x̃ from x', every step projected back onto the ε-ball around x'
and the box, the step size decayed to 0 on a half cosine; the best iterate (lowest
match error) is kept.  Each pair's loss is its own (the batch loss is a sum and
Adam's moments are per coordinate), and every model call holds the same number of
rows (:data:`SEARCH_ROWS`): a row's rounding follows its batch's size, not its
neighbours, so on one device neither the batch size nor the shard changes x̃.
Nothing is random beyond the pairing, which is the metamer attack's: one seed pairs
the same examples in both.

The pairs stream: a batch of positions and their partners is loaded, searched and
judged, and only its records (and the first few triples, for the figure) outlive it.
The pairing is drawn over every audited label, so a shard of positions gets the same
partners as a single process, and the metrics follow from the records alone
(:func:`summarise`): rank 0 recomputes them from every shard's records.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..errors import ConfigError
from .base import (
    AttackResult,
    AuditContext,
    check_count,
    pair_other_class,
)
from .declaration import INVARIANCE, LOWER, NUMBER, Attack, Budget, Headline
from .epsilons import NORM_LABEL, finite_number, perturbation_norms
from .streaming import collect

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["ATTACK", "DEFAULT_EPSILON", "MATCH_TOLERANCE", "default_epsilon", "run", "summarise"]

EXAMPLES = 8
#: A pair counts as matched when its relative match error is at most this.
MATCH_TOLERANCE = 0.05
#: ε as a fraction of the box width (L∞) or of the box width × √d (L2); see the docs.
DEFAULT_EPSILON = {"linf": 1.0, "l2": 0.25}
#: Adam's initial step as a fraction of the box width.
DEFAULT_STEP = 0.05
#: The metamer attack's pairing salt: one seed pairs the same examples in both attacks.
PAIR_SALT = 1
_ADAM_BETAS = (0.9, 0.999)
_ADAM_EPS = 1e-8


def default_epsilon(bounds: tuple[float, float], input_shape: tuple[int, ...], norm: str) -> float:
    """The ε a run uses when given none (:data:`DEFAULT_EPSILON` in input units)."""
    low, high = bounds
    width = high - low
    if norm == "linf":
        return DEFAULT_EPSILON["linf"] * width
    return DEFAULT_EPSILON["l2"] * width * math.sqrt(math.prod(input_shape))


@dataclass(frozen=True)
class _Search:
    """What one run optimises: the ball, the box, the budget."""

    norm: str
    epsilon: float
    steps: int
    step_size: float
    bounds: tuple[float, float]

    def project(self, x: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        """``x`` in the ε-ball around ``start`` and in the box.

        L∞: the exact projection (ball and box are both boxes).  L2: onto the ball, then
        clipped to the box; ``start`` lies in the box, so the clipping moves every
        coordinate towards it and the point stays in the ball.
        """
        delta = x - start
        if self.norm == "linf":
            delta = delta.clamp(-self.epsilon, self.epsilon)
        else:
            size = delta.flatten(1).norm(dim=1).clamp_min(1e-30)
            scale = (self.epsilon / size).clamp(max=1.0)
            delta = delta * scale.view(-1, *[1] * (x.dim() - 1))
        return (start + delta).clamp(*self.bounds)

    def step(self, k: int) -> float:
        """Adam's step size at step ``k``: a half cosine from ``step_size`` down to 0."""
        return self.step_size * 0.5 * (1 + math.cos(math.pi * k / max(self.steps, 1)))


# -- what is matched: the logits, or a named layer's activations ------------------------------


def _first_tensor(output: Any) -> torch.Tensor:
    """A layer's output as one tensor (flows return ``(y, logdet)``: the first part)."""
    while isinstance(output, (tuple, list)) and output:
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise ConfigError(f"feature-match: the layer returns {type(output).__name__}, not a tensor")
    return output


def _submodule(model: nn.Module, layer: str) -> nn.Module:
    """``model``'s submodule named ``layer``, or one line listing some that exist."""
    names = [name for name, _ in model.named_modules() if name]
    if layer not in names:
        shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
        raise ConfigError(
            f"feature-match: the model has no layer {layer!r}; its layers include: "
            f"{shown or 'none'}"
        )
    return model.get_submodule(layer)


@contextmanager
def _features(
    model: nn.Module, layer: str | None
) -> Iterator[Callable[[torch.Tensor], torch.Tensor]]:
    """``features(x) -> [B, k]``: the logits, or ``layer``'s activations via a forward hook."""
    if layer is None:
        yield lambda x: model.logits(x).flatten(1)
        return
    module = _submodule(model, layer)
    captured: list[torch.Tensor] = []

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
        captured.append(_first_tensor(output))

    try:
        handle = module.register_forward_hook(hook)
    except RuntimeError as err:  # e.g. a TorchScript submodule
        raise ConfigError(f"feature-match: cannot hook layer {layer!r}: {err}") from None

    def features(x: torch.Tensor) -> torch.Tensor:
        captured.clear()
        model.logits(x)
        if not captured:
            raise ConfigError(f"feature-match: layer {layer!r} is not used by the model's logits")
        return captured[-1].flatten(1)

    try:
        yield features
    finally:
        handle.remove()


def _relative_error(found: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (found - target).norm(dim=1) / target.norm(dim=1).clamp_min(1e-12)


# -- the search ---------------------------------------------------------------------------------


@dataclass
class _Found:
    """Per pair: the best x̃, its match error, and the error at the start (x' itself)."""

    x: torch.Tensor
    error: torch.Tensor
    start_error: torch.Tensor


def _adam_search(
    features: Callable[[torch.Tensor], torch.Tensor],
    target: torch.Tensor,
    start: torch.Tensor,
    search: _Search,
    tick: Callable[[], None],
) -> _Found:
    """Projected Adam from ``start`` towards ``target`` features; the best iterate per row."""
    x = start.clone()
    m, v = torch.zeros_like(x), torch.zeros_like(x)
    best_x, best = start.clone(), torch.full((len(x),), math.inf, dtype=torch.float64)
    start_error = best.clone()
    beta1, beta2 = _ADAM_BETAS
    for k in range(search.steps + 1):
        x.requires_grad_(True)
        with torch.enable_grad():
            error = _relative_error(features(x), target)
            (grad,) = torch.autograd.grad(error.sum(), x)
        x, error = x.detach(), error.detach().double().cpu()
        if k == 0:
            start_error = error.clone()
        improved = error < best
        best = torch.where(improved, error, best)
        best_x[improved.to(x.device)] = x[improved.to(x.device)]
        if k == search.steps:
            break
        m.mul_(beta1).add_(grad, alpha=1 - beta1)
        v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        m_hat, v_hat = m / (1 - beta1 ** (k + 1)), v / (1 - beta2 ** (k + 1))
        x = search.project(x - search.step(k) * m_hat / (v_hat.sqrt() + _ADAM_EPS), start)
        tick()
    return _Found(best_x, best, start_error)


#: Pairs searched together, whatever the batch size.  A model's float rounding on a row
#: depends on how many rows its batch holds, and the search amplifies it (Adam's first step
#: is a gradient's sign; a ReLU near 0 flips), so x̃ would depend on the batch and the shard.
#: Every model call on a pair holds exactly this many rows (a short group is padded with
#: copies of its first row), which makes a pair's results its own.
SEARCH_ROWS = 16


def _padded(t: torch.Tensor) -> torch.Tensor:
    """``t`` with copies of its first row appended up to :data:`SEARCH_ROWS` rows."""
    return torch.cat([t, t[:1].expand(SEARCH_ROWS - len(t), *t.shape[1:])])


def _search_group(
    ctx: AuditContext,
    features: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    x_partner: torch.Tensor,
    search: _Search,
) -> tuple[_Found, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Up to :data:`SEARCH_ROWS` pairs: x̃, the logits at x and x̃ and the oracle's label for
    x̃, every model call padded to the same rows; on the CPU."""
    k = len(x)
    xs = _padded(ctx.to_model(x))
    with torch.no_grad():
        target = features(xs)
    found = _adam_search(
        features, target, _padded(ctx.to_model(x_partner)), search, ctx.progress.advance
    )
    with torch.no_grad():
        source_logits = ctx.model.logits(xs)[:k].cpu()
        match_logits = ctx.model.logits(found.x)[:k].cpu()
        oracle = None if ctx.oracle is None else ctx.oracle.predict(found.x)[:k].cpu()
    kept = _Found(found.x[:k].cpu(), found.error[:k], found.start_error[:k])
    return kept, source_logits, match_logits, oracle


def _match_chunk(
    ctx: AuditContext,
    features: Callable[[torch.Tensor], torch.Tensor],
    positions: torch.Tensor,
    partner: torch.Tensor,
    search: _Search,
) -> _Matches:
    """The pairs at ``positions``: x and its partner x' loaded now, searched on the model's
    device :data:`SEARCH_ROWS` at a time, judged, and brought back to the CPU."""
    x, y = ctx.load(positions)
    x_partner, y_partner = ctx.load(partner[positions])
    groups = [
        _search_group(ctx, features, x[i : i + SEARCH_ROWS], x_partner[i : i + SEARCH_ROWS], search)
        for i in range(0, len(x), SEARCH_ROWS)
    ]
    found = _Found(
        *(torch.cat([getattr(g[0], f) for g in groups]) for f in ("x", "error", "start_error"))
    )
    source_logits, match_logits = (torch.cat([g[k] for g in groups]) for k in (1, 2))
    oracle = None if ctx.oracle is None else torch.cat([g[3] for g in groups])
    return _Matches(
        positions=positions,
        x=x,
        y=y,
        partner=partner[positions],
        x_partner=x_partner,
        y_partner=y_partner,
        x_match=found.x,
        error=found.error,
        start_error=found.start_error,
        pred_source=source_logits.argmax(1),
        pred=match_logits.argmax(1),
        logit_error=_relative_error(match_logits, source_logits).double(),
        oracle=oracle,
    )


def _stream(
    ctx: AuditContext, search: _Search, layer: str | None, examples: int
) -> tuple[pd.DataFrame, dict[str, torch.Tensor]]:
    """Every pair of this shard, one batch at a time: the records of all, the first
    ``examples`` kept whole for the figure."""
    # Pairs come from every audited label, so a position has one partner whatever the shard.
    partner = pair_other_class(ctx.labels(), ctx.generator(salt=PAIR_SALT))
    chunks = ctx.chunks()
    # Each batch: its groups' Adam steps, then one tick for judging x̃ (steps=0 still moves).
    groups = sum(math.ceil(len(c) / SEARCH_ROWS) for c in chunks)
    with _features(ctx.model, layer) as features:
        return collect(
            ctx,
            label=f"feature-match: {len(chunks)} batch(es) × {search.steps} step(s)",
            units=groups * search.steps + len(chunks),
            step=lambda positions, _: _match_chunk(ctx, features, positions, partner, search),
            records=_records,
            kept=_kept,
            empty=lambda: _Matches.empty(ctx),
            examples=examples,
        )


# -- options ------------------------------------------------------------------------------------


def _search_for(
    ctx: AuditContext, norm: str, epsilon: float | None, steps: int, step_size: float | None
) -> _Search:
    """The validated options as a :class:`_Search` (one-line errors)."""
    if norm not in NORM_LABEL:
        raise ConfigError(f"feature-match: unknown norm {norm!r}; expected linf or l2")
    low, high = ctx.data.bounds
    if epsilon is None:
        epsilon = default_epsilon((low, high), tuple(ctx.model.input_shape), norm)
    epsilon = finite_number("feature-match: epsilon", epsilon, positive=True)
    steps = check_count("feature-match", "steps", steps)
    if step_size is None:
        step_size = DEFAULT_STEP * (high - low)
    step_size = finite_number("feature-match: step_size", step_size, positive=True)
    return _Search(norm, epsilon, steps, step_size, (low, high))


def run(
    ctx: AuditContext,
    *,
    epsilon: float | None = None,
    norm: str = "linf",
    steps: int = 100,
    step_size: float | None = None,
    layer: str | None = None,
    examples: int = EXAMPLES,
) -> AttackResult:
    """Match the logits (or ``layer``'s activations) of x from x' of another class, within ε.

    Args:
        epsilon: how far x̃ may move from x' in ``norm`` (None: the whole box for L∞;
            0.25 × box width × √d for L2, 7 on MNIST).
        norm: ``linf`` or ``l2``, what ``epsilon`` measures.
        steps: projected Adam steps per pair (0: x̃ = x').
        step_size: Adam's initial step in input units, decayed to 0 on a half cosine
            (None: 0.05 × the box width).
        layer: match the activations of this named submodule (``model.named_modules()``,
            e.g. ``features.7``) instead of the logits.
        examples: how many (x, x̃, x') triples to keep for the figure.
    """
    search = _search_for(ctx, norm, epsilon, steps, step_size)
    if layer is not None and not isinstance(layer, str):
        raise ConfigError(f"feature-match: layer must be a module name, got {layer!r}")
    check_count("feature-match", "examples", examples)
    records, kept = _stream(ctx, search, layer, examples)
    settings = {
        "norm": norm,
        "epsilon": search.epsilon,
        "steps": search.steps,
        "step_size": search.step_size,
        "layer": layer,
        "target": "logits" if layer is None else f"activations of {layer}",
        "optimizer": "Adam, half-cosine step decay, projected every step, best iterate kept",
        "match_tolerance": MATCH_TOLERANCE,
        "examples": examples,
        "pairing": "uniform among examples of another class (the metamer attack's pairs)",
        "bounds": list(ctx.data.bounds),
    }
    return AttackResult("feature-match", summarise(records, settings), records, kept, settings)


# -- what a run reports -------------------------------------------------------------------------


@dataclass
class _Matches:
    """One batch of pairs: x, x', x̃ and the verdicts on x̃, on the CPU."""

    positions: torch.Tensor  # audit positions of x
    x: torch.Tensor
    y: torch.Tensor
    partner: torch.Tensor  # audit positions of x'
    x_partner: torch.Tensor
    y_partner: torch.Tensor
    x_match: torch.Tensor
    error: torch.Tensor  # relative match error of the matched features
    start_error: torch.Tensor  # the same at x' (before any step)
    pred_source: torch.Tensor  # the model's decision on x
    pred: torch.Tensor  # the model's decision on x̃
    logit_error: torch.Tensor  # relative logit error (= error when matching logits)
    oracle: torch.Tensor | None  # the oracle's label for x̃

    @classmethod
    def empty(cls, ctx: AuditContext) -> _Matches:
        """No pairs (a shard with no positions), shaped like real ones."""
        x = torch.empty(0, *ctx.model.input_shape)
        label, error = torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.float64)
        oracle = None if ctx.oracle is None else label
        return cls(label, x, label, label, x, label, x, error, error, label, label, error, oracle)

    def distances(self) -> dict[str, torch.Tensor]:
        to_partner = self.x_match - self.x_partner
        to_source = self.x_match - self.x
        return {
            "l2_to_partner": perturbation_norms(to_partner, "l2"),
            "linf_to_partner": perturbation_norms(to_partner, "linf"),
            "l2_to_source": perturbation_norms(to_source, "l2"),
            "linf_to_source": perturbation_norms(to_source, "linf"),
        }


def _verdicts(m: _Matches) -> dict[str, torch.Tensor | None]:
    says_a = m.pred == m.y
    oracle_b = None if m.oracle is None else m.oracle == m.y_partner
    return {
        "matched": m.error <= MATCH_TOLERANCE,
        "model_says_a": says_a,
        "prediction_preserved": m.pred == m.pred_source,
        "oracle_says_b": oracle_b,
        "oracle_says_a": None if m.oracle is None else m.oracle == m.y,
        "success": None if oracle_b is None else says_a & oracle_b,
    }


def _records(m: _Matches) -> pd.DataFrame:
    n = len(m.y)
    verdicts = {
        name: (None if value is None else value.numpy()) for name, value in _verdicts(m).items()
    }
    return pd.DataFrame(
        {
            "index": m.positions.numpy(),
            "partner": m.partner.numpy(),
            "label": m.y.numpy(),
            "partner_label": m.y_partner.numpy(),
            "source_prediction": m.pred_source.numpy(),
            "prediction": m.pred.numpy(),
            "oracle": m.oracle.numpy() if m.oracle is not None else [None] * n,
            "match_error": m.error.numpy(),
            "start_match_error": m.start_error.numpy(),
            "logit_error": m.logit_error.numpy(),
            **{name: d.numpy() for name, d in m.distances().items()},
            **{
                name: value if value is not None else [None] * n for name, value in verdicts.items()
            },
        }
    )


def _kept(m: _Matches, limit: int) -> dict[str, torch.Tensor]:
    """The first ``limit`` pairs of the batch, whole, for the figure."""
    keep = slice(0, max(limit, 0))
    kept = {
        "source": m.x[keep],
        "match": m.x_match[keep],
        "partner": m.x_partner[keep],
        "label": m.y[keep],
        "partner_label": m.y_partner[keep],
        "prediction": m.pred[keep],
        "match_error": m.error[keep],
    }
    if m.oracle is not None:
        kept["oracle"] = m.oracle[keep]
    return kept


def _column_share(records: pd.DataFrame, column: str) -> float | None:
    """The share of True in a verdict column; None where it holds no verdicts (no oracle)."""
    values = records[column]
    if len(values) and bool(values.isna().all()):
        return None
    mask = values.to_numpy(dtype=bool)
    return float(mask.mean()) if len(mask) else math.nan


def _column_stat(records: pd.DataFrame, column: str, stat: Callable[..., Any]) -> float:
    """``stat`` (``np.mean``, ``np.median``) of a float column in float64; NaN when empty."""
    values = records[column].to_numpy(dtype=np.float64)
    return float(stat(values)) if len(values) else math.nan


def summarise(records: pd.DataFrame, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Every metric from the records alone: one shard's, or all shards' gathered in order."""
    rates = {
        "match_within_5pct": "matched",
        "model_says_a": "model_says_a",
        "prediction_preserved": "prediction_preserved",
        "oracle_says_b": "oracle_says_b",
        "oracle_says_a": "oracle_says_a",
        "invariance_success_rate": "success",
    }
    return {
        "n": len(records),
        "match_error_mean": _column_stat(records, "match_error", np.mean),
        "match_error_median": _column_stat(records, "match_error", np.median),
        "start_match_error_median": _column_stat(records, "start_match_error", np.median),
        **{metric: _column_share(records, column) for metric, column in rates.items()},
        **{name: _column_stat(records, name, np.mean) for name in _DISTANCES},
    }


#: The distance columns, each averaged into the metric of the same name.
_DISTANCES = ("l2_to_partner", "linf_to_partner", "l2_to_source", "linf_to_source")

# -- figures ------------------------------------------------------------------------------------


def figures(result: AttackResult) -> dict[str, Figure]:
    """The match-error histogram (start and end); for images the (x, x̃, x') triples."""
    out: dict[str, Figure] = {}
    source = result.examples.get("source")
    if source is not None and source.dim() == 4 and len(source):
        out["feature-match"] = _image_figure(result)
    out["feature-match-errors"] = _error_figure(result)
    return out


def _image_figure(result: AttackResult) -> Figure:
    from ..data.classes import class_name
    from ..figures import image_grid_figure

    ex, dataset = result.examples, result.settings.get("dataset")
    titles = []
    for i in range(len(ex["label"])):
        title = (
            f"{class_name(dataset, ex['label'][i])}←{class_name(dataset, ex['partner_label'][i])}"
        )
        title += f"\nD: {class_name(dataset, ex['prediction'][i])}"
        if "oracle" in ex:
            title += f" o: {class_name(dataset, ex['oracle'][i])}"
        titles.append(title + f"\nerr {100 * float(ex['match_error'][i]):.1f}%")
    what = result.settings.get("target", "logits")
    norm = NORM_LABEL.get(result.settings.get("norm", "linf"), "")
    caption = (
        "columns: a←b (classes of x and x'); D = the audited model's decision on x̃"
        + ("; o = the oracle's label for x̃ (D = a, o = b: invariance-adversarial)" if "oracle" in ex
           else "")
        + f"; err = relative {what} match error."
    )  # fmt: skip
    return image_grid_figure(
        [ex["source"], ex["match"], ex["partner"]],
        ["x (target)", "x̃ (found)", "x' (start)"],
        column_titles=titles,
        title=f"Feature matching: the {what} of x from x' within {norm} "
        f"ε={result.settings.get('epsilon', 0):.3g}",
        caption=caption,
    )


def _error_figure(result: AttackResult) -> Figure:
    from matplotlib.figure import Figure

    # Every pair's errors, not only the kept ones: the records hold them all.
    records = result.records
    end = records["match_error"].to_numpy(dtype=np.float64)
    start = records["start_match_error"].to_numpy(dtype=np.float64)
    fig = Figure(figsize=(4.5, 3.0), layout="constrained")
    ax = fig.subplots()
    values = [v for v in (*end, *start) if v > 0 and math.isfinite(v)]
    low = min(values + [MATCH_TOLERANCE]) / 1.5
    high = max(values + [1.0]) * 1.5
    bins = [low * (high / low) ** (i / 40) for i in range(41)]
    ax.hist(start.clip(low, high), bins=bins, alpha=0.5, label="at x' (start)")
    ax.hist(end.clip(low, high), bins=bins, alpha=0.6, label="at x̃ (found)")
    ax.axvline(MATCH_TOLERANCE, color="grey", ls="--", lw=1, label="5 %")
    ax.set_xscale("log")
    ax.set_xlabel(f"relative {result.settings.get('target', 'logits')} match error")
    ax.set_ylabel("pairs")
    ax.set_title(
        f"feature-match: {100 * result.metrics['match_within_5pct']:.0f}% of "
        f"{result.metrics['n']} pairs within 5 %"
    )
    ax.legend(frameon=False, fontsize="small")
    return fig


def _describe(settings: Mapping[str, Any]) -> str:
    norm = NORM_LABEL.get(settings.get("norm") or "linf", "L∞")
    eps = settings.get("epsilon")
    default = "ε = the box's width" if norm == "L∞" else "ε = ¼ · box width · √d"
    radius = default if eps is None else f"ε={eps:.3g}"
    target = "logits" if settings.get("layer") is None else f"activations of {settings['layer']}"
    return (
        f"x̃ near x' (another class) with the {target} of x: {settings.get('steps')} projected "
        f"Adam steps within {norm} {radius} of x', in the box"
    )


_RATES = (
    "match_within_5pct",
    "model_says_a",
    "prediction_preserved",
    "oracle_says_b",
    "oracle_says_a",
    "invariance_success_rate",
)

ATTACK = Attack(
    name="feature-match",
    kind=INVARIANCE,
    run=run,
    figures=figures,
    summary="x̃ within ε of x' (another class) optimised to the logits of x: any model",
    needs_invertible=False,
    metrics=(
        "n",
        "match_error_mean",
        "match_error_median",
        "start_match_error_median",
        *_RATES,
        "l2_to_partner",
        "linf_to_partner",
        "l2_to_source",
        "linf_to_source",
    ),
    rates={metric: "n" for metric in _RATES},
    headline=(
        Headline("invariance_success_rate", "invariance success", better=LOWER, compare=True),
        Headline("model_says_a", "model says x's class", better=LOWER),
        Headline("match_within_5pct", "match within 5 %", better=LOWER),
        Headline("match_error_median", "median match error", NUMBER, better=LOWER),
    ),
    # x̃ never leaves the box and never goes through F⁻¹: the oracle always judges inputs,
    # so no report voids these rates (the metamer's are voided when F⁻¹ explodes).
    oracle_rates=(),
    suites={"quick": Budget(100), "full": Budget(1_000)},
    smoke={"steps": 3, "examples": 2},
    describe=_describe,
    summarise=summarise,
)
