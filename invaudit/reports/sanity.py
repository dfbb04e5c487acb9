"""Named sanity flags a report raises as warnings, in the spirit of AutoAttack's checks.

An audit can be wrong without failing: an inverse that drifts makes metamers
meaningless, a weak oracle makes every oracle rate a statement about the
oracle, a probe that cannot even read z_s says nothing by failing to read z_n,
and a PGD weaker than FGSM points at masked gradients.  Each check reads the
finished report (and, for the model's mode, a flag the runner measured) and
returns warnings ``{"name", "method", "message"}``; none of them changes a
metric.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..attacks import ATTACKS
from ..attacks.base import BOX_TOLERANCE
from .intervals import attack_intervals, fmt_interval, width

#: A rate whose 95 % interval is wider than twice this (± this around the rate) is
#: "too imprecise to state".  The width is the rate's own Clopper–Pearson interval,
#: so 0 % or 100 % at n = 256 (about 1.4 points wide) passes and 50 % needs n >= 385.
PRECISION = 0.05
#: Below this clean accuracy an image oracle is too weak to stand in for humans.
ORACLE_MIN_ACCURACY = 0.97
#: Below this clean accuracy (per dataset) the attacks on the model say little:
#: robust accuracy is bounded by a clean accuracy that is already poor, and metamers
#: of a model that has not learnt the classes test nothing.  Any working MNIST
#: classifier exceeds 97 %, a working Fashion-MNIST one 85 %, a spheres one 99 %; a
#: Fashion-MNIST fiRevNet after one CPU epoch (55 %) must not be audited without a word.
MODEL_MIN_ACCURACY: dict[str, float] = {"mnist": 0.9, "fashion-mnist": 0.9, "spheres": 0.9}
#: ... and for any other dataset (ImageNet's 1000 classes: top-1 well below 90 % is normal).
MODEL_MIN_ACCURACY_OTHER = 0.5
#: The largest metamer logit mismatch still called "the logits are kept".
METAMER_LOGIT_TOLERANCE = 1e-3
#: A logit probe this much worse than the model's own decision is undertrained.
PROBE_SLACK = 0.05
#: PGD may trail FGSM by this much (random start, finite n) before it is suspicious.
ATTACK_SLACK = 0.02
#: Issue 13's bars for decoded points being inputs at all.  A metamer is ``F⁻¹`` of a
#: point F never saw; nothing keeps it in the data box (pixels in [0, 1]).  When the
#: mean over metamers (or interpolation paths) of their largest excursion outside the
#: box exceeds this, they are not images and the oracle's verdicts on them are not
#: human judgement (the old zoo CE model: ~15, iCE: ~0.26).
MAX_MEAN_EXCURSION = 0.02
#: ... or when fewer than this share of them stay within ``BOX_TOLERANCE`` (a tenth of
#: the pixel range, ``invaudit.attacks.base``) of the box.
MIN_NEAR_BOX_SHARE = 0.90
#: The largest local gain of F⁻¹ at metamer points (``invertibility.metamer_gain.max``)
#: above which the inverse "explodes".  At gain 10 a step of 0.01 in z, the size of the
#: float noise and of a small change of z_n, can move the image by 0.1, a tenth of the
#: pixel range; metamers then show amplified noise rather than a mix of their sources.
#: Measured at the report's metamer points (32 test pairs): CE-trained ``mnist-ce`` max
#: 50 (median 31), likelihood-trained ``mnist-ice`` max 3.3 (median 2.6), so 10 sits a
#: factor of 3 or more from either.
MAX_INVERSE_GAIN = 10.0

Warning_ = dict[str, Any]


def _warning(name: str, message: str, method: str | None = None) -> Warning_:
    return {"name": name, "method": method, "message": message}


def _metrics(report: Mapping[str, Any], method: str) -> Mapping[str, Any] | None:
    record = report.get("attacks", {}).get(method)
    return record.get("metrics") if record else None


def _inverse(report: Mapping[str, Any]) -> list[Warning_]:
    inv = report.get("invertibility")
    if not inv or inv.get("passed", True):
        return []
    return [
        _warning(
            "inverse_unstable",
            f"max |F⁻¹(F(x)) − x| = {inv['max_abs_error']:.3g} over {inv['n']} test inputs "
            f"exceeds {inv['tolerance']:g}: metamers and interpolations are not exact",
        )
    ]


def _metamer_logits(report: Mapping[str, Any]) -> list[Warning_]:
    m = _metrics(report, "metamer")
    drift = m.get("logit_match_max_abs") if m else None
    if drift is None or drift <= METAMER_LOGIT_TOLERANCE:
        return []
    # In float32 a pixel decoded deep into the logit input layer's saturation rounds,
    # and F cannot read its logits back; float64 tells that from a broken inverse.
    hint = (
        "; rerun with --dtype float64 to tell float32 rounding from a broken inverse"
        if (report.get("environment") or {}).get("dtype") == "float32"
        else ""
    )
    return [
        _warning(
            "metamer_logits_moved",
            f"metamer logits differ from their source by up to {drift:.3g} "
            f"(> {METAMER_LOGIT_TOLERANCE:g}): F is not numerically invertible on metamers"
            + hint,
            "metamer",
        )
    ]


def _exact_oracle(report: Mapping[str, Any]) -> bool:
    return bool((report.get("oracle") or {}).get("exact"))


def _off_domain(report: Mapping[str, Any], method: str, name: str, what: str) -> list[Warning_]:
    """Decoded points outside the data box (either bar; a metric a report lacks is skipped)."""
    m = _metrics(report, method) or {}
    excursion, near = m.get("bounds_excursion_mean"), m.get("near_box_share")
    reasons = []
    if isinstance(excursion, int | float) and excursion > MAX_MEAN_EXCURSION:
        reasons.append(
            f"their largest excursion outside the data box is {excursion:.3g} on average "
            f"(> {MAX_MEAN_EXCURSION:g})"
        )
    if isinstance(near, int | float) and near < MIN_NEAR_BOX_SHARE:
        reasons.append(
            f"{near:.1%} stay within {BOX_TOLERANCE:g} of it (< {MIN_NEAR_BOX_SHARE:.0%})"
        )
    if not reasons:
        return []
    verdict = (
        "the exact oracle still judges them, but they are not samples of the data"
        if _exact_oracle(report)
        else "they are not images, so the oracle rates on them are not meaningful"
    )
    message = f"{what} leave the data box: {'; '.join(reasons)}; {verdict}"
    return [_warning(name, message, method)]


def _metamers_off_domain(report: Mapping[str, Any]) -> list[Warning_]:
    return _off_domain(report, "metamer", "metamers_off_domain", "metamers")


def _interpolation_off_domain(report: Mapping[str, Any]) -> list[Warning_]:
    return _off_domain(report, "interpolate", "interpolation_off_domain", "interpolation paths")


def _inverse_exploding(report: Mapping[str, Any]) -> list[Warning_]:
    gain = (report.get("invertibility") or {}).get("metamer_gain") or {}
    top = gain.get("max")
    if not isinstance(top, int | float) or top <= MAX_INVERSE_GAIN:
        return []
    where = ""
    if gain.get("largest_stage"):
        where = f"; the largest stage is {gain['largest_stage']}"
        if gain.get("largest_layer"):
            where += f", the largest layer {gain['largest_layer']}"
    median = gain.get("median")
    spread = f", median {median:.3g}" if isinstance(median, int | float) else ""
    verdict = (
        "the exact oracle still judges them"
        if _exact_oracle(report)
        else "the oracle rates on them are not meaningful"
    )
    return [
        _warning(
            "inverse_exploding",
            f"F⁻¹ amplifies by up to {top:.3g} (> {MAX_INVERSE_GAIN:g}) at {gain.get('n')} "
            f"metamer points{spread}{where}: metamers and interpolations show amplified "
            f"noise, and {verdict}",
        )
    ]


def model_min_accuracy(dataset: str | None) -> float:
    """The clean accuracy below which ``model_inaccurate`` fires for ``dataset``."""
    return MODEL_MIN_ACCURACY.get(str(dataset), MODEL_MIN_ACCURACY_OTHER)


def model_warnings(model: Mapping[str, Any]) -> list[Warning_]:
    """``model_inaccurate`` from a report's ``model`` section alone (the runner raises it
    as soon as the clean accuracy is measured, before any attack)."""
    acc = model.get("clean_accuracy")
    bar = model_min_accuracy(model.get("dataset"))
    if not isinstance(acc, int | float) or acc >= bar:
        return []
    n = model.get("clean_accuracy_n")
    return [
        _warning(
            "model_inaccurate",
            f"clean test accuracy {acc:.1%}" + (f" on {n} test examples" if n else "")
            + f" is below {bar:.0%}: the model has not learnt its task, so its robustness "
            "and invariance rates say little (train longer, or audit another checkpoint)",
        )
    ]


def _model_accuracy(report: Mapping[str, Any]) -> list[Warning_]:
    return model_warnings(report.get("model") or {})


def _oracle(report: Mapping[str, Any]) -> list[Warning_]:
    oracle = report.get("oracle")
    judged = [m for m in report.get("attacks", {}) if m in ATTACKS and ATTACKS[m].oracle_rates]
    if oracle is None:
        if not judged:
            return []
        return [
            _warning(
                "no_oracle",
                "no oracle (none in the zoo for this dataset, or --oracle none): the oracle "
                f"rates of {' and '.join(judged)} are n/a",
            )
        ]
    acc = oracle.get("clean_accuracy")
    if oracle.get("exact") or acc is None or acc >= ORACLE_MIN_ACCURACY:
        return []
    return [
        _warning(
            "oracle_weak",
            f"the oracle is right on {acc:.1%} of {oracle.get('clean_accuracy_n')} test "
            f"images (< {ORACLE_MIN_ACCURACY:.0%}): its verdicts are not human judgement",
        )
    ]


def _widest_rate(intervals: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
    """``(name, interval)`` of the widest interval (``name[key]`` for a map entry)."""
    entries: list[tuple[str, Mapping[str, Any]]] = []
    for metric, entry in intervals.items():
        if isinstance(entry, Mapping) and "low" in entry:
            entries.append((metric, entry))
        elif isinstance(entry, Mapping):
            entries += [(f"{metric}[{k}]", v) for k, v in entry.items() if isinstance(v, Mapping)]
    return max(entries, key=lambda e: width(e[1])) if entries else None


def _few_samples(report: Mapping[str, Any]) -> list[Warning_]:
    out = []
    for method, record in report.get("attacks", {}).items():
        if not isinstance(record, Mapping):
            continue
        widest = _widest_rate(attack_intervals(method, record))
        if widest is None or width(widest[1]) <= 2 * PRECISION:
            continue
        name, interval = widest
        value = record.get("metrics", {}).get(name.split("[")[0])
        if isinstance(value, Mapping):
            value = value.get(name.split("[", 1)[1].rstrip("]"))
        shown = f"{value:.1%}, " if isinstance(value, int | float) else ""
        out.append(
            _warning(
                "few_samples",
                f"{method}.{name} = {shown}95 % interval {fmt_interval(interval)} "
                f"(n = {interval.get('n')}): {100 * width(interval):.1f} points wide, more "
                f"than ±{100 * PRECISION:.0f} (raise --n or use --suite full)",
                method,
            )
        )
    return out


def _probe(report: Mapping[str, Any]) -> list[Warning_]:
    m = _metrics(report, "probe")
    if not m or m.get("logit_error") is None or m.get("decision_test_error") is None:
        return []
    gap = m["logit_error"] - m["decision_test_error"]
    if gap <= PROBE_SLACK:
        return []
    return [
        _warning(
            "probe_undertrained",
            f"the fresh probe on z_s errs {m['logit_error']:.1%} where the model's own "
            f"decision errs {m['decision_test_error']:.1%}: the nuisance probe's accuracy "
            "is a loose lower bound (raise probe_epochs or train_n)",
            "probe",
        )
    ]


def _robust_curve(report: Mapping[str, Any]) -> list[Warning_]:
    out = []
    fgsm = (_metrics(report, "fgsm") or {}).get("robust_accuracy") or {}
    pgd = (_metrics(report, "pgd-linf") or {}).get("robust_accuracy") or {}
    for eps, value in pgd.items():
        if value is not None and fgsm.get(eps) is not None and value > fgsm[eps] + ATTACK_SLACK:
            out.append(
                _warning(
                    "pgd_weaker_than_fgsm",
                    f"robust accuracy at ε={eps} is {value:.1%} under PGD but {fgsm[eps]:.1%} "
                    "under FGSM: gradients may be masked",
                    "pgd-linf",
                )
            )
    for method, record in report.get("attacks", {}).items():
        curve = record.get("metrics", {}).get("robust_accuracy")
        if not isinstance(curve, Mapping):
            continue
        points = sorted((float(k), v) for k, v in curve.items() if v is not None)
        if any(b[1] > a[1] + ATTACK_SLACK for a, b in zip(points, points[1:], strict=False)):
            out.append(
                _warning(
                    "robust_accuracy_not_monotone",
                    f"{method}: robust accuracy rises with ε ({curve}): the attack is unreliable",
                    method,
                )
            )
    return out


CHECKS: tuple[Callable[[Mapping[str, Any]], list[Warning_]], ...] = (
    _inverse,
    _inverse_exploding,
    _metamer_logits,
    _metamers_off_domain,
    _interpolation_off_domain,
    _model_accuracy,
    _oracle,
    _few_samples,
    _probe,
    _robust_curve,
)


def mode_warnings(training: bool, deterministic: bool) -> list[Warning_]:
    """Flags about the model object itself, measured by the runner before any attack."""
    out = []
    if training:
        out.append(
            _warning(
                "model_in_train_mode",
                "the model was in train mode: dropout or batch statistics change its outputs",
            )
        )
    if not deterministic:
        out.append(
            _warning(
                "forward_not_deterministic",
                "two forward passes of one batch differ: every rate carries extra noise",
            )
        )
    return out


def report_warnings(report: Mapping[str, Any]) -> list[Warning_]:
    """Every flag the finished ``report`` raises, in a fixed order."""
    return [w for check in CHECKS for w in check(report)]
