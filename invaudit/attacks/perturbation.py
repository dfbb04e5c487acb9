"""ε-perturbation baselines through foolbox 3: the "excessive sensitivity" side of an audit.

Every method here is foolbox's own attack class run on the audited model's
logits; nothing is re-implemented.  Two families (:mod:`invaudit.attacks.eps_loop`):
fixed-ε (``fgsm``, ``pgd-linf``, ``pgd-l2``), run once per ε, and minimal-norm
(``deepfool-l2``, ``deepfool-linf``, ``cw-l2``), run unbounded with robust accuracy
read off the distances found.  The ε each uses by default are in
:mod:`invaudit.attacks.epsilons`; the model as foolbox sees it is
:mod:`invaudit.attacks.foolbox_adapter`; the figures :mod:`invaudit.attacks.eps_figures`.

Records hold one row per audited sample: ``index`` (position among the
audited examples), ``label``, ``clean_pred``, ``clean_correct``, ``distance``
(minimal-norm attacks: the found perturbation's norm, ``inf`` where the attack
failed, 0 for a sample misclassified to begin with; fixed-ε attacks: NaN) and
one boolean ``robust@{ε:g}`` column per ε.  Minimal-norm metrics add
``median_distance`` (over the clean-correct samples, failures counted as
``inf``; None when that median is ``inf``), ``median_distance_failures`` and
``mean_distance`` (over the successes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import foolbox as fb

from ..errors import ConfigError
from .base import AttackResult, AuditContext
from .declaration import NUMBER, SENSITIVITY, Attack, Budget, Headline
from .eps_figures import figures
from .eps_loop import EpsAttack, run_fixed, run_minimal, summarise
from .epsilons import NORM_LABEL, epsilons_for, finite_number, flag, positive_int

__all__ = [
    "ATTACKS",
    "run_cw_l2",
    "run_deepfool_l2",
    "run_deepfool_linf",
    "run_fgsm",
    "run_pgd_l2",
    "run_pgd_linf",
]

#: Separates PGD's random streams per norm (``ctx.generator(salt)``); the others draw none.
_PGD_SALT = {"linf": 11, "l2": 12}


def run_fgsm(ctx: AuditContext, *, epsilons: Sequence[float] | None = None) -> AttackResult:
    """FGSM (one signed-gradient step of size ε, no random start) at each ε.

    Args:
        epsilons: L∞ radii (None: the dataset's default, see :mod:`invaudit.attacks.epsilons`).
    """
    eps = epsilons_for(epsilons, ctx.data, "linf")
    attack = fb.attacks.FGSM()
    return run_fixed(ctx, EpsAttack("fgsm", "linf", attack, eps, {"random_start": False}))


def _named(run: Callable[..., AttackResult], method: str, doc: str) -> Callable[..., AttackResult]:
    """``run`` under the name ``run_METHOD`` with ``doc``: one body serves both norms."""
    run.__name__ = run.__qualname__ = "run_" + method.replace("-", "_")
    run.__doc__ = doc
    return run


def _pgd_method(method: str, norm: str) -> Callable[..., AttackResult]:
    """PGD under ``norm``, registered as ``method``."""

    def run(
        ctx: AuditContext,
        *,
        epsilons: Sequence[float] | None = None,
        steps: int | None = 40,
        rel_stepsize: float | None = None,
        random_start: bool = True,
    ) -> AttackResult:
        eps = epsilons_for(epsilons, ctx.data, norm)
        checked = positive_int("steps", steps, 40)
        # Madry et al.'s rule: the steps together can cross the ball 2.5 times.
        rel = (
            2.5 / checked
            if rel_stepsize is None
            else finite_number("rel_stepsize", rel_stepsize, positive=True)
        )
        start = flag("random_start", random_start)
        cls = fb.attacks.LinfPGD if norm == "linf" else fb.attacks.L2PGD
        attack = cls(rel_stepsize=rel, steps=checked, random_start=start)
        options = {"steps": checked, "rel_stepsize": rel, "random_start": start}
        return run_fixed(ctx, EpsAttack(method, norm, attack, eps, options, _PGD_SALT[norm]))

    return _named(run, method, f"""{NORM_LABEL[norm]} PGD (Madry et al.) at each ε.

    Args:
        epsilons: {NORM_LABEL[norm]} radii (None: the dataset's default, see
            :mod:`invaudit.attacks.epsilons`).
        steps: gradient steps per ε (None: 40).
        rel_stepsize: step size as a fraction of ε (None: 2.5 / steps).
        random_start: start uniformly in the ε-ball.  The start is drawn per
            example from a generator seeded by the audit's seed, the attack and the
            example's position, so results depend on neither the batch size nor the
            number of processes.
    """)


def _deepfool_method(method: str, norm: str) -> Callable[..., AttackResult]:
    """DeepFool under ``norm``, registered as ``method``."""

    def run(
        ctx: AuditContext,
        *,
        epsilons: Sequence[float] | None = None,
        steps: int | None = 50,
        overshoot: float = 0.02,
        candidates: int = 10,
    ) -> AttackResult:
        eps = epsilons_for(epsilons, ctx.data, norm)
        checked = positive_int("steps", steps, 50)
        over = finite_number("overshoot", overshoot, positive=False)
        classes = positive_int("candidates", candidates, 10)
        if classes < 2:
            raise ConfigError(f"candidates: expected at least 2 classes, got {classes}")
        cls = fb.attacks.LinfDeepFoolAttack if norm == "linf" else fb.attacks.L2DeepFoolAttack
        attack = cls(steps=checked, overshoot=over, candidates=classes)
        options = {"steps": checked, "overshoot": over, "candidates": classes}
        return run_minimal(ctx, EpsAttack(method, norm, attack, eps, options))

    return _named(run, method, f"""{NORM_LABEL[norm]} DeepFool: the nearest decision boundary
    under a local linear model, unbounded.

    Args:
        epsilons: {NORM_LABEL[norm]} radii robust accuracy is read at (None: the
            dataset's default).
        steps: linearisation steps at most (None: 50, foolbox's default).
        overshoot: relative step past the boundary (foolbox's 0.02): found distances
            are about that much above the true ones.
        candidates: the most likely classes considered as targets.
    """)


run_pgd_linf = _pgd_method("pgd-linf", "linf")
run_pgd_l2 = _pgd_method("pgd-l2", "l2")
run_deepfool_l2 = _deepfool_method("deepfool-l2", "l2")
run_deepfool_linf = _deepfool_method("deepfool-linf", "linf")


def run_cw_l2(
    ctx: AuditContext,
    *,
    epsilons: Sequence[float] | None = None,
    steps: int | None = 100,
    binary_search_steps: int = 9,
    stepsize: float | None = None,
) -> AttackResult:
    """Carlini & Wagner L2, unbounded: the smallest adversarial its search finds.

    Args:
        epsilons: L2 radii robust accuracy is read at (None: the dataset's default).
        steps: Adam steps per binary-search step (None: 100; foolbox's 10000 is far
            beyond a CPU audit, and early abort stops most searches sooner anyway).
        binary_search_steps: searches over the loss constant (foolbox's 9).
        stepsize: Adam's learning rate in tanh space (None: 0.01 / (high - low), which
            is foolbox's 0.01 on [0, 1] images; foolbox's fixed 0.01 moves a ±10 spheres
            input ~0.1 per step and overestimates small distances by up to ~80 %).
        Where C&W finds nothing, foolbox returns the all-zero input; if that input is
        misclassified it is a genuine (far) adversarial and counts as found.
    """
    eps = epsilons_for(epsilons, ctx.data, "l2")
    steps = positive_int("steps", steps, 100)
    binary = positive_int("binary_search_steps", binary_search_steps, 9)
    low, high = ctx.data.bounds
    if stepsize is None:
        stepsize = 0.01 / (high - low)
    stepsize = finite_number("stepsize", stepsize, positive=True)
    attack = fb.attacks.L2CarliniWagnerAttack(
        binary_search_steps=binary, steps=steps, stepsize=stepsize
    )
    options = {"steps": steps, "binary_search_steps": binary, "stepsize": stepsize}
    return run_minimal(ctx, EpsAttack("cw-l2", "l2", attack, eps, options))


def _describe_pgd(norm: str) -> Callable[[Mapping[str, Any]], str]:
    def describe(settings: Mapping[str, Any]) -> str:
        steps = settings.get("steps") or 40
        rel = settings.get("rel_stepsize") or 2.5 / steps
        start = "random start, " if settings.get("random_start", True) else ""
        return (
            f"{NORM_LABEL[norm]} PGD (foolbox, {start}{steps} steps of {rel:.3g}·ε): "
            "robust accuracy at each ε"
        )

    return describe


def _describe_deepfool(norm: str) -> Callable[[Mapping[str, Any]], str]:
    def describe(settings: Mapping[str, Any]) -> str:
        return (
            f"{NORM_LABEL[norm]} DeepFool (foolbox, up to {settings.get('steps') or 50} "
            f"steps): minimal {NORM_LABEL[norm]} distance to the boundary, robust accuracy at ε"
        )

    return describe


def _describe_cw(settings: Mapping[str, Any]) -> str:
    return (
        f"Carlini-Wagner L2 (foolbox, {settings.get('binary_search_steps')} binary-search "
        f"steps × up to {settings.get('steps') or 100} Adam steps): minimal L2 adversarial "
        "distance, robust accuracy at ε"
    )


#: Every ε-attack reports these; the minimal-norm ones add :data:`_DISTANCE_METRICS`.
_FIXED_METRICS = ("clean_accuracy", "robust_accuracy", "n")
_DISTANCE_METRICS = ("median_distance", "median_distance_failures", "mean_distance")
#: Robust accuracy at each ε: a headline row per ε, and compared side by side.
_ROBUST = (Headline("robust_accuracy", "robust accuracy @ ε={key}", compare=True),)
_MINIMAL_NORM = (*_ROBUST, Headline("median_distance", "median distance", NUMBER))
#: Cheap enough for a test on a toy model.
_SMOKE_STEPS = {"steps": 3}


def _entry(
    name: str,
    run: Callable[..., AttackResult],
    norm: str,
    summary: str,
    *,
    minimal_norm: bool = False,
    describe: Callable[[Mapping[str, Any]], str] | None = None,
    suites: Mapping[str, Budget],
    smoke: Mapping[str, Any] | None = None,
) -> Attack:
    return Attack(
        name=name,
        kind=SENSITIVITY,
        run=run,
        figures=figures,
        summary=summary,
        datasets=None,
        needs_invertible=False,
        metrics=_FIXED_METRICS + (_DISTANCE_METRICS if minimal_norm else ()),
        # Both are shares of the audited samples (robust accuracy: one per ε).
        rates={"clean_accuracy": "n", "robust_accuracy": "n"},
        maps={"robust_accuracy": ("ε", "0.1")},
        norm=norm,
        headline=_MINIMAL_NORM if minimal_norm else _ROBUST,
        suites=suites,
        smoke=smoke or {},
        describe=describe,
        # Streams its examples and summarises its records: shardable.
        summarise=summarise,
    )


_PGD_SUITES = {"quick": Budget(256, {"steps": 10}), "full": Budget(1_000)}

ATTACKS: tuple[Attack, ...] = (
    _entry(
        "fgsm",
        run_fgsm,
        "linf",
        "FGSM (foolbox): one L∞ gradient-sign step; robust accuracy at each ε",
        suites={"quick": Budget(512), "full": Budget(1_000)},
    ),
    _entry(
        "pgd-linf",
        run_pgd_linf,
        "linf",
        "L∞ PGD (foolbox, random start; steps: option steps): robust accuracy at each ε",
        describe=_describe_pgd("linf"),
        suites=_PGD_SUITES,
        smoke=_SMOKE_STEPS,
    ),
    _entry(
        "pgd-l2",
        run_pgd_l2,
        "l2",
        "L2 PGD (foolbox, random start; steps: option steps): robust accuracy at each ε",
        describe=_describe_pgd("l2"),
        suites=_PGD_SUITES,
        smoke=_SMOKE_STEPS,
    ),
    _entry(
        "deepfool-l2",
        run_deepfool_l2,
        "l2",
        "L2 DeepFool (foolbox): minimal L2 distance to the boundary, robust accuracy at ε",
        minimal_norm=True,
        describe=_describe_deepfool("l2"),
        suites={"full": Budget(1_000)},
        smoke={"steps": 5},
    ),
    _entry(
        "deepfool-linf",
        run_deepfool_linf,
        "linf",
        "L∞ DeepFool (foolbox): minimal L∞ distance to the boundary, robust accuracy at ε",
        minimal_norm=True,
        describe=_describe_deepfool("linf"),
        suites={},
        smoke={"steps": 5},
    ),
    _entry(
        "cw-l2",
        run_cw_l2,
        "l2",
        "Carlini-Wagner L2 (foolbox): minimal L2 adversarial distance, robust accuracy at ε",
        minimal_norm=True,
        describe=_describe_cw,
        suites={"full": Budget(200, {"steps": 50})},
        smoke={"steps": 5, "binary_search_steps": 2},
    ),
)
