"""The verdict a report opens with (issue 14, item 10): a few sentences, not a table.

From a finished ``report.json`` dict it says, in this order:

1. (only when it fired) that the model is too weak for the audit to mean much;
2. the excessive-invariance findings: the metamer invariance success rate (or
   why it is not meaningful), Example 6's invariance-adversarial share for
   spheres, and how well a fresh probe reads the class from z_n;
3. the excessive-sensitivity findings: robust accuracy at the largest ε of the
   strongest ε-attack per norm;
4. which side is worse, comparing the share of metamers that are
   invariance-adversarial with the share of inputs the ε-attack makes wrong
   (at the largest ε audited, so "worse" is relative to the chosen budgets);
5. the gate's verdict with every failed check, when the report ran one;
6. the warnings that matter, by name with a short gloss.

Every rate carries its 95 % interval (:mod:`invaudit.reports.intervals`).  The
text is plain (no Markdown); the renderers escape and place it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from ..attacks.epsilons import NORM_LABEL
from .formats import fmt_percent, fmt_rate
from .intervals import attack_intervals, clean_accuracy_interval, interval_of
from .render_md import void_reasons
from .sanity import PRECISION

#: Two shares closer than this are "about equally bad".
TIE = 0.05
#: What each warning means for the verdict, in a few words (others: the name alone).
WARNING_GLOSS: dict[str, str] = {
    "model_inaccurate": "the model is too weak for its rates to mean much",
    "inverse_unstable": "F⁻¹(F(x)) misses x, so metamers are not exact",
    "inverse_exploding": "F⁻¹ explodes at metamers, so their oracle rates are not meaningful",
    "metamer_logits_moved": "metamers do not keep their logits",
    "metamers_off_domain": "metamers are not images, so their oracle rates are not meaningful",
    "interpolation_off_domain": "interpolation paths leave the data box",
    "oracle_weak": "the oracle is too weak to stand in for human judgement",
    "no_oracle": "no oracle, so invariance success is not measured",
    "probe_undertrained": "the probe is undertrained, so z_n may hold more than it reads",
    "pgd_weaker_than_fgsm": "gradients may be masked, so robust accuracy is overstated",
    "robust_accuracy_not_monotone": "an ε-attack is unreliable",
    "model_in_train_mode": "the model ran in train mode",
    "forward_not_deterministic": "the forward pass is not deterministic",
}
#: The same under an exact oracle (spheres: the radius), which judges any point.
EXACT_ORACLE_GLOSS: dict[str, str] = {
    "inverse_exploding": "F⁻¹ explodes at metamers; the exact oracle still judges them",
    "metamers_off_domain": "metamers leave the data; the exact oracle still judges them",
    "interpolation_off_domain": "interpolation paths leave the data",
}
#: Warnings about precision only: counted, not glossed one by one.
MINOR = ("few_samples",)


def attack_record(report: Mapping[str, Any], method: str) -> Mapping[str, Any] | None:
    """``report["attacks"][method]``, or None when that method did not run (a suite without
    it, a dataset it does not apply to): readers of a report must not assume a method."""
    record = (report.get("attacks") or {}).get(method)
    return record if isinstance(record, Mapping) else None


def _attack(report: Mapping[str, Any], method: str) -> tuple[Mapping[str, Any], dict[str, Any]]:
    record = attack_record(report, method)
    if record is None:
        return {}, {}
    return record.get("metrics") or {}, attack_intervals(method, record)


def _weak_model(report: Mapping[str, Any]) -> str | None:
    fired = [w for w in report.get("warnings") or [] if w.get("name") == "model_inaccurate"]
    if not fired:
        return None
    model = report.get("model") or {}
    accuracy = fmt_rate(model.get("clean_accuracy"), clean_accuracy_interval(model))
    return (
        f"⚠ The model is right on only {accuracy} of {model.get('clean_accuracy_n')} test "
        "examples: it has not learnt its task, so every rate below says little about it "
        "(model_inaccurate)."
    )


def _metamer_part(
    report: Mapping[str, Any], voided: Mapping[str, Any]
) -> tuple[str, tuple[float, str] | None, str]:
    """The metamers' clause, their invariance-adversarial share if meaningful, and why not."""
    metrics, intervals = _attack(report, "metamer")
    if not metrics:
        return "", None, ""
    value = metrics.get("invariance_success_rate")
    if value is None:
        why_not = "there is no oracle to judge the metamers"
        return "metamer invariance success is n/a (no oracle)", None, why_not
    if "metamer" in voided:
        return (
            f"the metamer invariance success rate ({fmt_percent(value)}) is not "
            f"meaningful: {'; '.join(voided['metamer'])}",
            None,
            "the metamer oracle rates are not meaningful",
        )
    shown = fmt_rate(value, interval_of(intervals, "invariance_success_rate"))
    return (
        f"{shown} of metamers are invariance-adversarial (the oracle's label differs "
        "from the model's unchanged decision)",
        (float(value), "of metamers are invariance-adversarial"),
        "",
    )


def _invariance(report: Mapping[str, Any]) -> tuple[str, tuple[float, str] | None, str]:
    """The sentence, the share that is invariance-adversarial (with what it counts) if one
    is meaningful, and why not otherwise."""
    voided = void_reasons(report)
    parts: list[str] = []
    part, rate, why_not = _metamer_part(report, voided)
    if part:
        parts.append(part)
    metrics, intervals = _attack(report, "misaligned")
    value = metrics.get("invariance_adversarial_share") if metrics else None
    if isinstance(value, int | float):
        shown = fmt_rate(value, interval_of(intervals, "invariance_adversarial_share"))
        parts.append(f"{shown} of Example 6's shifted points are invariance-adversarial")
        if rate is None:
            rate = (float(value), "of Example 6's shifted points are invariance-adversarial")
    metrics, intervals = _attack(report, "probe")
    value = metrics.get("nuisance_accuracy") if metrics else None
    if isinstance(value, int | float):
        classes = (report.get("model") or {}).get("num_classes")
        chance = f", chance {fmt_percent(1 / classes)}" if isinstance(classes, int) else ""
        shown = fmt_rate(value, interval_of(intervals, "nuisance_accuracy"))
        parts.append(f"a fresh probe reads the class from z_n on {shown} of test inputs{chance}")
    for part, measured in _no_inverse_parts(report):
        parts.append(part)
        if rate is None and measured is not None and not why_not:
            rate = measured
    if not parts:
        invertible = (report.get("model") or {}).get("invertible")
        reason = (
            "the model is not invertible" if invertible is False else "no invariance attack ran"
        )
        return f"Excessive invariance: not audited ({reason}).", None, reason
    if rate is None and not why_not:
        why_not = "no attack measured an invariance success rate"
    return "Excessive invariance: " + "; ".join(parts) + ".", rate, why_not


def _no_inverse_parts(
    report: Mapping[str, Any],
) -> list[tuple[str, tuple[float, str] | None]]:
    """The invariance audits any model gets, as ``(clause, invariance-adversarial share)``:
    Tramèr et al.'s ε-moves at the largest ε, and feature matching (None without oracle)."""
    parts: list[tuple[str, tuple[float, str] | None]] = []
    metrics, intervals = _attack(report, "invariance-eps")
    curve = metrics.get("invariance_rate") if metrics else None
    point = largest_epsilon(curve) if isinstance(curve, Mapping) else None
    if point is not None:
        key, value = point
        what = (f"of test inputs moved within ε = {key} towards another class's nearest "
                "training image change the oracle's label but not the model's")  # fmt: skip
        if isinstance(value, int | float):
            shown = fmt_rate(value, interval_of(intervals, "invariance_rate", key))
            parts.append((f"{shown} {what}", (float(value), what)))
        else:
            parts.append((f"invariance-eps is n/a at ε = {key} (no oracle)", None))
    metrics, intervals = _attack(report, "feature-match")
    value = metrics.get("invariance_success_rate") if metrics else None
    if isinstance(value, int | float):
        what = ("of feature-matched pairs are invariance-adversarial (the model takes the "
                "target's class, the oracle keeps the start's)")  # fmt: skip
        shown = fmt_rate(value, interval_of(intervals, "invariance_success_rate"))
        parts.append((f"{shown} {what}", (float(value), what)))
    return parts


def largest_epsilon(curve: Mapping[str, Any]) -> tuple[str, Any] | None:
    """The ``(key, value)`` of a robust-accuracy curve at its largest ε (keys are ε labels;
    a key that is not a number is ignored), or None for an empty curve."""
    keys = []
    for key, value in curve.items():
        try:
            keys.append((float(key), str(key), value))
        except ValueError:
            continue
    if not keys:
        return None
    _, key, value = max(keys)
    return key, value


class StrongestAttack(NamedTuple):
    """An ε-attack's robust accuracy at its largest ε, with what a reader needs to cite it."""

    robust_accuracy: float
    method: str
    epsilon: str
    n: Any
    interval: Mapping[str, Any] | None


def strongest_attacks(report: Mapping[str, Any]) -> dict[str, StrongestAttack]:
    """Per norm, the ε-attack with the lowest robust accuracy at its own largest ε: the
    strongest attack is the one that says most about the model's sensitivity."""
    worst: dict[str, StrongestAttack] = {}
    for method, record in (report.get("attacks") or {}).items():
        if not isinstance(record, Mapping) or record.get("kind") != "sensitivity":
            continue
        curve = (record.get("metrics") or {}).get("robust_accuracy")
        point = largest_epsilon(curve) if isinstance(curve, Mapping) else None
        if point is None or not isinstance(point[1], int | float):
            continue
        key, value = point
        norm = str((record.get("settings") or {}).get("norm") or method)
        interval = interval_of(attack_intervals(method, record), "robust_accuracy", key)
        if norm not in worst or value < worst[norm].robust_accuracy:
            worst[norm] = StrongestAttack(float(value), str(method), key, record.get("n"), interval)
    return worst


def strongest_attack(report: Mapping[str, Any]) -> StrongestAttack | None:
    """The strongest ε-attack over all norms (:func:`strongest_attacks`), None if none ran."""
    worst = strongest_attacks(report).values()
    return min(worst, key=lambda a: (a.robust_accuracy, a.method)) if worst else None


def _sensitivity(report: Mapping[str, Any]) -> tuple[str, tuple[float, str] | None]:
    """The sentence and the largest share of inputs an ε-attack makes wrong."""
    worst = strongest_attacks(report)
    low = strongest_attack(report)
    if low is None:
        return "Excessive sensitivity: not audited (no ε-attack ran).", None
    falls = [
        f"{fmt_rate(a.robust_accuracy, a.interval)} under {a.method} at "
        f"{NORM_LABEL.get(norm, norm)} ε = {a.epsilon}"
        for norm, a in worst.items()
    ]
    clean = (report.get("model") or {}).get("clean_accuracy")
    start = f"from {fmt_percent(clean)} clean, " if isinstance(clean, int | float) else ""
    sentence = f"Excessive sensitivity: {start}robust accuracy falls to " + " and ".join(falls)
    share = (
        1 - low.robust_accuracy,
        f"of inputs are misclassified under {low.method} at ε = {low.epsilon}",
    )
    return sentence + ".", share


def _worse(
    invariance: tuple[float, str] | None, sensitivity: tuple[float, str] | None, why_not: str
) -> str:
    if sensitivity is None:
        return ""
    if invariance is None:
        return f"Which side is worse cannot be said: {why_not or 'invariance was not measured'}."
    (a, what_a), (b, what_b) = invariance, sensitivity
    both = f"{fmt_percent(a)} {what_a}, {fmt_percent(b)} {what_b}"
    if abs(a - b) < TIE:
        return f"Both sides are about equally bad at the budgets audited ({both})."
    side = "invariance" if a > b else "sensitivity"
    return f"The {side} side is worse at the budgets audited ({both})."


def _gate(report: Mapping[str, Any]) -> str:
    gate = report.get("gate")
    if not isinstance(gate, Mapping):
        return ""
    total = gate.get("checks")
    if gate.get("passed"):
        return f"Gate: passed ({total} check{'s' if total != 1 else ''}, none failed)."
    failed = [r for r in gate.get("results") or [] if r.get("failed")]
    listed = "; ".join(str(r.get("message") or r.get("check")) for r in failed)
    return f"Gate: FAILED, {len(failed)} of {total} checks: {listed}."


def _warnings(report: Mapping[str, Any]) -> str:
    warnings = [w for w in report.get("warnings") or [] if isinstance(w, Mapping)]
    if not warnings:
        return "No warnings."
    counts: dict[str, int] = {}
    for w in warnings:
        counts[str(w.get("name"))] = counts.get(str(w.get("name")), 0) + 1
    glosses = dict(WARNING_GLOSS)
    if (report.get("oracle") or {}).get("exact"):
        glosses.update(EXACT_ORACLE_GLOSS)

    def named(name: str) -> str:
        times = f" ×{counts[name]}" if counts[name] > 1 else ""
        gloss = glosses.get(name)
        return f"{name}{times}" + (f" ({gloss})" if gloss else "")

    major = [named(n) for n in counts if n not in MINOR]
    minor = [f"{n} ×{counts[n]}" if counts[n] > 1 else n for n in counts if n in MINOR]
    tail = ""
    if minor:
        bound = f"±{100 * PRECISION:.0f} points"
        tail = f"; precision only: {', '.join(minor)} (intervals wider than {bound})"
    if major:
        return "Warnings that matter: " + "; ".join(major) + tail + "."
    return "No warning voids a result" + tail + "."


def verdict_sentences(report: Mapping[str, Any]) -> list[str]:
    """The verdict as sentences, in reading order (see the module docstring)."""
    invariance, inv_rate, why_not = _invariance(report)
    sensitivity, sens_rate = _sensitivity(report)
    sentences = [
        _weak_model(report),
        invariance,
        sensitivity,
        _worse(inv_rate, sens_rate, why_not),
        _gate(report),
        _warnings(report),
    ]
    return [s for s in sentences if s]


def verdict_text(report: Mapping[str, Any]) -> str:
    """The verdict as one paragraph of plain text."""
    return " ".join(verdict_sentences(report))


def gate_headline(report: Mapping[str, Any]) -> str:
    """``gate FAILED (2 of 4 checks)`` / ``gate passed (3 checks)``; empty without a gate."""
    gate = report.get("gate")
    if not isinstance(gate, Mapping):
        return ""
    if gate.get("passed"):
        return f"gate passed ({gate.get('checks')} checks)"
    return f"gate FAILED ({gate.get('failed')} of {gate.get('checks')} checks)"
