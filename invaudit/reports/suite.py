"""The audit suites: which attacks a report runs, on how many examples, with what options.

Each attack declares its own budget per suite
(:attr:`~invaudit.attacks.declaration.Attack.suites`); a suite is every registered
attack with a budget in it, in registry order.

``quick`` is sized for an MNIST model on two CPU cores (the cost of each step is
in ``docs/reports.md``); ``full`` runs every method at the sizes a paper table
needs.  Both cover the two sides of the paper's Fig. 2: invariance (for an
invertible model metamers, interpolation, the nuisance probe, and for spheres
Example 6 and Fig. 3; for every model feature matching and Tramèr et al.'s
ε-moves) and sensitivity (foolbox ε-attacks over the dataset's ε list).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..attacks import ATTACKS, check_attack
from ..attacks.declaration import SUITE_NAMES
from ..attacks.epsilons import check_epsilons
from ..errors import ConfigError


@dataclass(frozen=True)
class Step:
    """One attack of a suite: its name, its option overrides and its example budget."""

    method: str
    options: dict[str, Any] = field(default_factory=dict)
    n: int | None = None


@dataclass(frozen=True)
class Suite:
    """A planned audit.

    Attributes:
        name: ``quick`` or ``full``.
        steps: the attacks in the order they run.
        accuracy_n: test examples behind the clean accuracy (None: the whole split).
        invertibility_n: test examples round-tripped through ``F⁻¹(F(x))``.
    """

    name: str
    steps: tuple[Step, ...]
    accuracy_n: int | None = None
    invertibility_n: int = 256

    @property
    def methods(self) -> list[str]:
        return [s.method for s in self.steps]


#: Per suite: the test examples behind the clean accuracy (None: all) and behind the
#: invertibility check.  Which attacks run, on how many examples and with which
#: options, each attack declares (:attr:`~invaudit.attacks.declaration.Attack.suites`).
_SIZES: dict[str, tuple[int | None, int]] = {"quick": (1_000, 256), "full": (None, 1_024)}


def plan_suite(
    name: str,
    dataset: str,
    *,
    invertible: bool = True,
    n: int | None = None,
    epsilons: list[float] | dict[str, list[float]] | None = None,
) -> Suite:
    """The suite ``name`` for a model trained on ``dataset``: every registered attack
    with a budget in it, in registry order, that applies to the dataset and the model.

    Args:
        invertible: False drops the methods that need F⁻¹ (a plain classifier
            still gets its ε-attacks and clean accuracy).
        n: caps every step's examples (and the clean accuracy's) at ``n``.
        epsilons: replaces the dataset's default ε list of every ε-attack; a map
            ``{"linf": [...], "l2": [...]}`` replaces it per norm (a norm it lacks
            keeps the default).
    """
    if name not in SUITE_NAMES:
        raise ConfigError(f"unknown suite {name!r}; expected one of {', '.join(SUITE_NAMES)}")
    if n is not None and n < 1:
        raise ConfigError(f"--n must be at least 1, got {n}")
    accuracy_n, invertibility_n = _SIZES[name]
    steps = []
    for method, attack in ATTACKS.items():
        budget = attack.suites.get(name)
        if budget is None:
            continue
        if attack.datasets is not None and dataset not in attack.datasets:
            continue
        if attack.needs_invertible and not invertible:
            continue
        options = dict(budget.options)
        chosen = epsilons.get(attack.norm) if isinstance(epsilons, dict) else epsilons
        if chosen is not None and attack.norm is not None:
            # Checked here, before any attack runs, not when the ε-attack starts.
            options["epsilons"] = check_epsilons(chosen)
        check_attack(method, dataset, options)
        steps.append(Step(method, options, _cap(budget.n, n)))
    return Suite(
        name=name,
        steps=tuple(steps),
        accuracy_n=_cap(accuracy_n, n),
        invertibility_n=min(invertibility_n, n) if n is not None else invertibility_n,
    )


def _cap(budget: int | None, n: int | None) -> int | None:
    if n is None:
        return budget
    return n if budget is None else min(budget, n)


#: The numeric fields of the report's other sections, which a gate check may read
#: (paths, hashes and booleans are not numbers, so no check could compare them).
MODEL_FIELDS = ("parameters", "num_classes", "clean_accuracy", "clean_accuracy_n")
INVERTIBILITY_FIELDS = (
    "n", "max_abs_error", "mean_abs_error", "tolerance", "metamer_gain", "data_gain"
)
#: The invertibility section's maps: the gain summaries (a check needs ``[KEY]``).
GAIN_MAPS = ("metamer_gain", "data_gain")
#: The numeric entries of a gain summary a check may pick, e.g. ``invertibility.metamer_gain[max]``.
GAIN_KEYS = ("n", "median", "max", "largest_layer_median_gain")


def map_keys(method: str, metric: str) -> tuple[str, str] | None:
    """What the keys of a map-valued metric are and an example key; None: not a map.

    Attacks declare theirs (:attr:`Attack.maps`); the invertibility section's
    gain summaries are maps of :data:`GAIN_KEYS`.
    """
    if method == "invertibility":
        return ("gain summary entry", "max") if metric in GAIN_MAPS else None
    attack = ATTACKS.get(method)
    return None if attack is None else attack.maps.get(metric)


def planned_metrics(suite: Suite, *, invertible: bool = True) -> dict[str, set[str]]:
    """What a gate may check on the report this suite will write (before it runs)."""
    available = {s.method: set(ATTACKS[s.method].metrics) for s in suite.steps}
    available["model"] = set(MODEL_FIELDS)
    if invertible:
        available["invertibility"] = set(INVERTIBILITY_FIELDS)
    return available
