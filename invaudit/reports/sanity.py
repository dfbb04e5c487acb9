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

from .schema import ci95_halfwidth

#: A rate whose 95 % half-width is wider than this is "too imprecise to state".
PRECISION = 0.05
#: Below this clean accuracy an image oracle is too weak to stand in for humans.
ORACLE_MIN_ACCURACY = 0.97
#: Below this clean accuracy the attacks on the model say little.
MODEL_MIN_ACCURACY = 0.5
#: The largest metamer logit mismatch still called "the logits are kept".
METAMER_LOGIT_TOLERANCE = 1e-3
#: A logit probe this much worse than the model's own decision is undertrained.
PROBE_SLACK = 0.05
#: PGD may trail FGSM by this much (random start, finite n) before it is suspicious.
ATTACK_SLACK = 0.02

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
    return [
        _warning(
            "metamer_logits_moved",
            f"metamer logits differ from their source by up to {drift:.3g} "
            f"(> {METAMER_LOGIT_TOLERANCE:g}): F is not numerically invertible on metamers",
            "metamer",
        )
    ]


def _model_accuracy(report: Mapping[str, Any]) -> list[Warning_]:
    acc = report.get("model", {}).get("clean_accuracy")
    if acc is None or acc >= MODEL_MIN_ACCURACY:
        return []
    return [
        _warning(
            "model_inaccurate",
            f"clean test accuracy {acc:.1%} < {MODEL_MIN_ACCURACY:.0%}: "
            "robustness rates of a model this weak say little",
        )
    ]


def _oracle(report: Mapping[str, Any]) -> list[Warning_]:
    oracle = report.get("oracle")
    needs_oracle = any(m in report.get("attacks", {}) for m in ("metamer", "interpolate"))
    if oracle is None:
        if not needs_oracle:
            return []
        return [
            _warning(
                "no_oracle",
                "no oracle (none in the zoo for this dataset, or --oracle none): the metamer "
                "and interpolation oracle rates are n/a",
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


def _few_samples(report: Mapping[str, Any]) -> list[Warning_]:
    out = []
    for method, record in report.get("attacks", {}).items():
        half = ci95_halfwidth(record.get("n"))
        if half is not None and half > PRECISION:
            out.append(
                _warning(
                    "few_samples",
                    f"{method} rates rest on n = {record['n']}: up to ±{half:.1%} at 95 %, "
                    f"wider than ±{PRECISION:.0%} (raise --n or use --suite full)",
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
    _metamer_logits,
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
