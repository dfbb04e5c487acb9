"""The story a comparison opens with: one paragraph its numbers tell.

``compare`` puts the models side by side, but a table of twenty rates with
overlapping intervals does not say whether the comparison answers the paper's
question (Jacobsen et al., ICLR 2019): does the independence cross-entropy
(iCE) move the class out of z_n, so that metamers keep the logit source's
class ("only the style changes"), while ε-robustness is unaffected?  This
module says it, model by model against the first (the baseline):

- the fresh probe's accuracy on z_n (lower: the class left z_n);
- how often the oracle names the nuisance and the logit source's class on
  metamers, and the logit source's at the end of an interpolation of z_n;
- clean accuracy, and robust accuracy under the baseline's strongest ε-attack
  at its largest ε (:func:`invaudit.reports.verdict.strongest_attack`);
- for any model, invertible or not, the invariance attacks that need no inverse
  (``invariance-eps`` at the largest ε both ran, ``feature-match``): with robust
  accuracy they tell whether a more ε-robust model paid for it with excessive
  invariance (Jacobsen et al., 2019; Tramèr et al., ICML 2020).

Each pair of rates is compared with a two-sided Fisher exact test on the 2×2
counts (``round(rate × n)`` of ``n``, the counts behind the reports'
intervals) at α = :data:`ALPHA`; the closing sentence is derived only from
those outcomes, so it cannot claim more than the tests show.  A quantity a
report lacks (no oracle, no probe in the suite, an ε-attack the other did not
run) or whose oracle rates are voided (:func:`~invaudit.reports.render_md.void_reasons`)
is left out rather than guessed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from ..attacks.epsilons import NORM_LABEL
from .formats import fmt_percent
from .intervals import rate_interval
from .render_md import void_reasons
from .verdict import attack_record, strongest_attack

#: The significance level of every test in the story.
ALPHA = 0.05
#: How the story starts (Markdown bold); renderers that are not Markdown strip it.
STORY_LEAD = "**Story.**"
HIGHER, LOWER, SAME = "higher", "lower", "no measurable difference"

#: (key, method, metric, clause): the rates the story compares, in reading order.  The
#: clause's fields: {m} and {b} the model's and the baseline's rate, {model} and {base}
#: their labels.
RATES: tuple[tuple[str, str, str, str], ...] = (
    ("probe", "probe", "nuisance_accuracy",
     "the fresh probe reads the class from z_n on {m} of {model}'s test inputs against "
     "{b} of {base}'s"),
    ("metamer_nuisance", "metamer", "oracle_agrees_nuisance_source",
     "the oracle names the nuisance source's class on {m} of {model}'s metamers against "
     "{b} of {base}'s"),
    ("metamer_logit", "metamer", "oracle_agrees_logit_source",
     "the oracle names the logit source's class on {m} of {model}'s metamers against "
     "{b} of {base}'s"),
    ("interpolate_logit", "interpolate", "endpoint_oracle_agrees_logit_source",
     "at the end of an interpolation of z_n the oracle still names the logit source's class "
     "on {m} of {model}'s paths against {b} of {base}'s"),
)  # fmt: skip
#: The invariance attacks any model gets: (key, method, metric, clause); a map-valued
#: metric is read at the largest ε both reports hold ({key} in the clause).
TRADEOFF_RATES: tuple[tuple[str, str, str, str], ...] = (
    ("invariance_eps", "invariance-eps", "invariance_rate",
     "moved within {norm} ε = {key} towards the nearest training image of another class, "
     "{m} of {model}'s test inputs change the oracle's label but not the model's, against "
     "{b} of {base}'s"),
    ("feature_match", "feature-match", "invariance_success_rate",
     "matching another image's logits makes the model change its decision while the oracle "
     "keeps its label on {m} of {model}'s pairs against {b} of {base}'s"),
)  # fmt: skip
#: The findings that say whether metamers keep the logit source's class ("only the style
#: changes"), those that say whether ε-robustness moved, and the iCE question's own.
STYLE_KEYS = ("metamer_logit", "interpolate_logit")
ROBUST_KEYS = ("clean", "robust")
ICE_KEYS = ("probe", "metamer_nuisance", *STYLE_KEYS)
INVARIANCE_KEYS = tuple(key for key, *_ in TRADEOFF_RATES)


class Rate(NamedTuple):
    """A share of ``n`` samples, as a report states it."""

    value: float
    n: int

    @property
    def count(self) -> int:
        return round(self.value * self.n)


class Finding(NamedTuple):
    """One compared quantity: which, how the model stands against the baseline, the clause."""

    key: str
    outcome: str
    text: str


def as_rate(value: Any, n: Any) -> Rate | None:
    """``value`` of ``n`` as a :class:`Rate`, or None when either is missing or not a rate
    (the same validation as the reports' intervals, so the story tests what they show)."""
    interval = rate_interval(value, n)
    return None if interval is None else Rate(float(value), int(interval["n"]))


def _method_rate(report: Mapping[str, Any], method: str, metric: str) -> Rate | None:
    """A method's rate over its sample count; None if it did not run, the rate is null (no
    oracle) or the report's sanity flags void that method's oracle rates."""
    record = attack_record(report, method)
    if record is None or method in void_reasons(report):
        return None
    return as_rate((record.get("metrics") or {}).get(metric), record.get("n"))


def _robust_pair(
    base: Mapping[str, Any], model: Mapping[str, Any]
) -> tuple[Rate, Rate, str] | None:
    """Robust accuracy under the baseline's strongest ε-attack at its largest ε, for both
    models (the same attack and ε, so the counts are comparable), and the clause."""
    strongest = strongest_attack(base)
    record = attack_record(model, strongest.method) if strongest else None
    if strongest is None or record is None:
        return None
    curve = (record.get("metrics") or {}).get("robust_accuracy")
    value = curve.get(strongest.epsilon) if isinstance(curve, Mapping) else None
    pair = as_rate(strongest.robust_accuracy, strongest.n), as_rate(value, record.get("n"))
    if pair[0] is None or pair[1] is None:
        return None
    where = f"under {strongest.method} at ε = {strongest.epsilon}"
    return pair[0], pair[1], f"robust accuracy {where} is {{m}} against {{b}}"


def _map_pair(
    base: Mapping[str, Any], model: Mapping[str, Any], method: str, metric: str
) -> tuple[Rate, Rate, dict[str, str]] | None:
    """A rate both reports state, read at the largest key of its map both hold (a plain
    rate as it is), with that key and the attack's norm for the clause."""
    base_record, record = attack_record(base, method), attack_record(model, method)
    if base_record is None or record is None:
        return None
    if method in void_reasons(base) or method in void_reasons(model):
        return None
    b, m = ((r.get("metrics") or {}).get(metric) for r in (base_record, record))
    key = ""
    if isinstance(b, Mapping) and isinstance(m, Mapping):
        shared = [k for k in b if k in m]
        if not shared:
            return None
        key = max(shared, key=float)
        b, m = b[key], m[key]
    pair = as_rate(b, base_record.get("n")), as_rate(m, record.get("n"))
    if pair[0] is None or pair[1] is None:
        return None
    norm = str((base_record.get("settings") or {}).get("norm") or "linf")
    return pair[0], pair[1], {"key": key, "norm": NORM_LABEL.get(norm, norm)}


def _pairs(base: Mapping[str, Any], model: Mapping[str, Any]) -> list[tuple[str, Rate, Rate, str]]:
    """Every quantity both reports state: ``(key, baseline rate, model rate, clause)``."""
    pairs = []
    for key, method, metric, clause in RATES:
        b, m = _method_rate(base, method, metric), _method_rate(model, method, metric)
        if b is not None and m is not None:
            pairs.append((key, b, m, clause))
    for key, method, metric, clause in TRADEOFF_RATES:
        found = _map_pair(base, model, method, metric)
        if found is not None:
            b, m, where = found
            pairs.append((key, b, m, clause.replace("{key}", where["key"]).replace(
                "{norm}", where["norm"])))
    clean = [
        as_rate(r.get("clean_accuracy"), r.get("clean_accuracy_n"))
        for r in ((base.get("model") or {}), (model.get("model") or {}))
    ]
    if clean[0] is not None and clean[1] is not None:
        pairs.append(("clean", clean[0], clean[1], "clean accuracy is {m} against {b}"))
    robust = _robust_pair(base, model)
    if robust is not None:
        pairs.append(("robust", *robust))
    return pairs


def fisher_p(base: Rate, model: Rate) -> float:
    """The two-sided Fisher exact p-value of the 2×2 table of the two rates' counts."""
    from scipy.stats import fisher_exact

    table = [[model.count, model.n - model.count], [base.count, base.n - base.count]]
    return float(fisher_exact(table, alternative="two-sided").pvalue)


def fmt_p(p: float) -> str:
    """``p = 0.71`` / ``p < 0.001``, with as many digits as keep the rounded value on the
    same side of :data:`ALPHA` as the exact one (so "lower, p = 0.05" cannot happen)."""
    if p < 0.001:
        return "p < 0.001"
    digits = 2
    while (float(f"{p:.{digits}g}") < ALPHA) != (p < ALPHA):
        digits += 1
    return f"p = {p:.{digits}g}"


def _finding(key: str, base: Rate, model: Rate, clause: str, labels: Mapping[str, str]) -> Finding:
    """The test's outcome for one quantity, and the clause that states it."""
    p = fisher_p(base, model)
    outcome = SAME if p >= ALPHA else HIGHER if model.value > base.value else LOWER
    shown = clause.format(m=fmt_percent(model.value), b=fmt_percent(base.value), **labels)
    return Finding(key, outcome, f"{shown} ({outcome}, {fmt_p(p)})")


def _style(outcomes: Mapping[str, str]) -> str | None:
    """Whether the model's metamers keep the logit source's class more often (HIGHER), less
    (LOWER), alike (SAME) or both ways ("mixed"); None when no oracle judged them."""
    seen = {outcomes[k] for k in STYLE_KEYS if k in outcomes}
    if not seen:
        return None
    if {HIGHER, LOWER} <= seen:
        return "mixed"
    return HIGHER if HIGHER in seen else LOWER if LOWER in seen else SAME


def _meaning(outcomes: Mapping[str, str], model: str, base: str) -> str:
    """The closing sentence: what the test outcomes, and only they, say about the paper's
    effect (the class leaves z_n *and* metamers keep the logit source's class)."""
    zn, style = outcomes.get("probe"), _style(outcomes)
    zn_text = {
        LOWER: f"{model} moved the class out of z_n",
        SAME: f"{model} did not move the class out of z_n",
        HIGHER: f"{model} left more of the class in z_n than {base}",
        None: f"whether {model} moved the class out of z_n was not measured (no probe)",
    }[zn]
    style_text = {
        HIGHER: "its metamers keep the logit source's class more often",
        SAME: f"its metamers are judged like {base}'s",
        LOWER: "its metamers keep the logit source's class less often",
        "mixed": "its metamers and interpolations disagree on keeping the logit source's class",
        None: "its metamers were not judged (no oracle)",
    }[style]
    halves = (zn == LOWER) + (style == HIGHER)
    if halves == 2:
        effect = "the paper's effect"
    elif halves == 1:
        missing = " (the other half was not measured)" if None in (zn, style) else ""
        effect = f"only half of the paper's iCE effect{missing}"
    else:
        effect = "the comparison does not show the paper's iCE effect"
    return f"At these budgets {zn_text}, and {style_text}: {effect}."


def _tradeoff(outcomes: Mapping[str, str], model: str, base: str) -> str:
    """Whether a model more (or less) robust to ε-perturbations than the baseline is also
    more (or less) excessively invariant: the trade-off, from the test outcomes alone."""
    seen = {outcomes[k] for k in INVARIANCE_KEYS if k in outcomes}
    if not seen:
        return ""
    invariance = "mixed" if {HIGHER, LOWER} <= seen else (
        HIGHER if HIGHER in seen else LOWER if LOWER in seen else SAME)  # fmt: skip
    inv_text = {
        HIGHER: "more excessively invariant",
        LOWER: "less excessively invariant",
        SAME: "not measurably more or less excessively invariant",
        "mixed": "more excessively invariant by one invariance attack and less by the other",
    }[invariance]
    robust = outcomes.get("robust")
    if robust is None:
        return f"At these budgets {model} is {inv_text} than {base} (ε-robustness not compared)."
    rob_text = {HIGHER: "more robust to ε-perturbations", LOWER: "less robust to "
                "ε-perturbations", SAME: "no more robust to ε-perturbations"}[robust]  # fmt: skip
    sentence = f"At these budgets {model} is {rob_text} than {base} and {inv_text}"
    if robust == HIGHER and invariance == HIGHER:
        return sentence + (": the invariance–sensitivity trade-off (Jacobsen et al., 2019; "
                           "Tramèr et al., 2020).")  # fmt: skip
    if robust == HIGHER and invariance in (SAME, LOWER):
        return sentence + ": its robustness did not cost measurable excessive invariance."
    return sentence + "."


def _robustness(outcomes: Mapping[str, str]) -> str:
    """Whether the ε-robustness half of the paper's claim held (empty when not measured)."""
    seen = [outcomes[k] for k in ROBUST_KEYS if k in outcomes]
    if not seen:
        return ""
    if all(o == SAME for o in seen):
        return "Clean and ε-robust accuracy do not differ measurably, as the paper expects."
    return "Clean or ε-robust accuracy differs measurably, which the paper does not expect."


def _model_story(
    base_label: str, base: Mapping[str, Any], label: str, model: Mapping[str, Any]
) -> str:
    """The sentences for one model against the baseline; empty when nothing is comparable."""
    labels = {"model": label, "base": base_label}
    findings = [_finding(key, b, m, clause, labels) for key, b, m, clause in _pairs(base, model)]
    if not findings:
        return ""
    outcomes = {f.key: f.outcome for f in findings}
    ice = bool(outcomes.keys() & set(ICE_KEYS))  # the paper's iCE question applies
    sentences = [
        f"{label} against {base_label}: " + "; ".join(f.text for f in findings) + ".",
        _meaning(outcomes, label, base_label) if ice else "",
        _robustness(outcomes) if ice else "",
        _tradeoff(outcomes, label, base_label),
    ]
    return " ".join(s for s in sentences if s)


def comparison_story(reports: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The paragraph ``compare.md`` / ``compare.html`` open with (see the module docstring),
    or None with fewer than two models or nothing the models share to compare."""
    if len(reports) < 2:
        return None
    (base_label, base), *rest = reports.items()
    parts = [_model_story(base_label, base, label, report) for label, report in rest]
    parts = [p for p in parts if p]
    if not parts:
        return None
    method = (
        f"Each model is set against the first, {base_label}, with a two-sided Fisher exact "
        f"test on the counts behind each pair of rates (α = {ALPHA:g})."
    )
    return " ".join([STORY_LEAD, method, *parts])


def story_body(story: str) -> str:
    """The story without its Markdown lead, for renderers that state it their own way."""
    return story.removeprefix(STORY_LEAD).strip()
