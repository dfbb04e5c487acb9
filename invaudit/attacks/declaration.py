"""What an attack declares, once, beside its ``run``: everything else reads this.

An attack module ends with one :class:`Attack`; ``invaudit.attacks`` registers it
with one line.  From the declaration

* the registry checks a run's dataset, options and model (``check_attack``);
* the suites take its budget (:attr:`Attack.suites`, ``invaudit.reports.suite``);
* the report's headline shows its :attr:`Attack.headline` rows, with the 95 %
  intervals of its :attr:`Attack.rates`, and marks its :attr:`Attack.oracle_rates`
  when the points they judge are not inputs;
* ``compare`` puts its ``compare=True`` headline rows and its Table 2
  :attr:`Attack.readouts` side by side;
* the CI gate validates ``--fail-if`` against its :attr:`Attack.metrics` and, for an
  ε-attack, the ε keys of its :attr:`Attack.norm` before any attack runs.

Its options are not declared apart: they are ``run``'s keyword-only parameters with
their defaults (:func:`run_options`), so a signature and its option list cannot drift.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from .base import AttackResult

#: What an attack looks for.
INVARIANCE, SENSITIVITY = "invariance", "sensitivity"
KINDS = (INVARIANCE, SENSITIVITY)
#: The threat models of ε-attacks: what their ``epsilons`` measure.
NORMS = ("linf", "l2")
#: The suites an attack may budget itself into, in the order ``--suite`` lists them.
SUITE_NAMES = ("quick", "full")

#: How a headline quantity is written.  RATE: a share of the attack's samples, so a
#: percentage with its n and exact 95 % interval.  SHARE: a percentage over something
#: other than those samples (the boundary grid), so neither n nor an interval applies.
#: NUMBER and BITS: not shares at all.
RATE, SHARE, NUMBER, BITS = "rate", "share", "number", "bits"
STYLES = (RATE, SHARE, NUMBER, BITS)
#: Which way is good for the audited model (the headline's ``better`` column); FULL:
#: anything below 100 % is a fault, not a finding.
HIGHER, LOWER, FULL = "higher", "lower", "100 %"
DIRECTIONS = (HIGHER, LOWER, FULL)


@dataclass(frozen=True)
class Headline:
    """One row an attack puts in the report's headline table.

    Attributes:
        metric: the metric shown; a map-valued one (``robust_accuracy``) gives a row per key.
        label: the row's name after the method's; ``{key}`` stands for a map's key.
        style: one of :data:`STYLES`.
        better: one of :data:`DIRECTIONS`.
        compare: also a row of ``compare``'s side-by-side table.
    """

    metric: str
    label: str
    style: str = RATE
    better: str = HIGHER
    compare: bool = False

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"headline {self.metric}: style {self.style!r} not in {STYLES}")
        if self.better not in DIRECTIONS:
            raise ValueError(f"headline {self.metric}: better {self.better!r} not in {DIRECTIONS}")


@dataclass(frozen=True)
class Readout:
    """One cell of ``compare``'s Table 2 layout (the paper's Table 2): ``quantity`` (a row)
    as read by ``readout`` (a column per model), taken from ``metric``."""

    quantity: str
    readout: str
    metric: str
    label: str


@dataclass(frozen=True)
class Budget:
    """What one suite spends on an attack: test examples (None: the whole split) and
    option overrides."""

    n: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


def run_options(run: Callable[..., Any]) -> dict[str, Any]:
    """``run``'s options: its keyword-only parameters with their defaults, in order.

    Raises:
        TypeError: ``run`` takes anything but the context positionally, or an option
            without a default (a suite could not leave it out).
    """
    options = {}
    params = list(inspect.signature(run).parameters.values())
    for k, p in enumerate(params):
        if k == 0 and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            continue  # the AuditContext
        if p.kind is not p.KEYWORD_ONLY or p.default is p.empty:
            raise TypeError(
                f"{getattr(run, '__name__', run)}: parameter {p.name!r} must be keyword-only "
                "with a default: run(ctx, *, option=default, ...)"
            )
        options[p.name] = p.default
    return options


def no_figures(result: AttackResult) -> dict[str, Figure]:
    return {}


@dataclass(frozen=True)
class Attack:
    """A registry entry: everything about an attack that is not its code.

    Attributes:
        name: what ``--method`` takes and what reports key it by.
        kind: ``"invariance"`` or ``"sensitivity"``.
        run: ``run(ctx, *, option=default, ...) -> AttackResult``; its keyword-only
            parameters are the options (:attr:`options`).
        summary: one line for ``--help`` and reports.
        figures: ``figures(result) -> {name: matplotlib Figure}`` (may be empty).
        datasets: the dataset names it applies to (None: all).
        needs_invertible: whether it needs F⁻¹ and the z_s / z_n split.
        metrics: the names of the metrics ``run`` returns, declared so a CI gate
            can reject a check on a metric that will never exist before any
            attack runs (a test holds every entry to its actual output).
        rates: the metrics that are shares of a sample count, each mapped to the
            metric holding that count (``{"invariance_success_rate": "n"}``); reports
            state a Clopper–Pearson interval for each (:mod:`invaudit.reports.intervals`).
            A map-valued rate (``robust_accuracy``) has one per key.
        norm: ``"linf"`` or ``"l2"`` for an ε-attack (what its ``epsilons`` option
            measures, which ``--linf-epsilons`` / ``--l2-epsilons`` replace), None for
            the others.
        headline: its rows of the report's headline table, in order.
        readouts: its cells of ``compare``'s Table 2 layout (the probe's).
        maps: the metrics that are maps, each with what its keys are and an example
            key (``{"robust_accuracy": ("ε", "0.1")}``): a gate check on one must pick
            an entry, ``robust_accuracy[0.1]``.
        oracle_rates: the rates that are the oracle's verdicts on points decoded
            through F⁻¹; reports mark them not meaningful when those points are not
            inputs (they left the data box, or F⁻¹ explodes).
        suites: its budget per suite name (:data:`SUITE_NAMES`); a suite it has no
            entry for does not run it.
        smoke: option overrides that make a run on a toy model take about a second
            (the tests run every entry with them; empty: the defaults are cheap).
        describe: ``describe(settings) -> str``, the summary of one run from the
            options or settings it used (PGD's steps); None: :attr:`summary`.
        summarise: ``summarise(records, settings) -> metrics``, the metrics computed from
            the per-example records alone (``run`` computes its own metrics with it).
            An attack that has one streams its examples and can be sharded: each
            process audits a block of positions, rank 0 gathers the records and
            summarises them (:mod:`invaudit.attacks.sharded`).  None: the attack needs
            all its examples in one process (a probe's fit) and runs whole on rank 0.
    """

    name: str
    kind: str
    run: Callable[..., AttackResult]
    summary: str
    figures: Callable[[AttackResult], dict[str, Figure]] = no_figures
    datasets: tuple[str, ...] | None = None
    needs_invertible: bool = True
    metrics: tuple[str, ...] = ()
    rates: Mapping[str, str] = field(default_factory=dict)
    norm: str | None = None
    headline: tuple[Headline, ...] = ()
    readouts: tuple[Readout, ...] = ()
    maps: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    oracle_rates: tuple[str, ...] = ()
    suites: Mapping[str, Budget] = field(default_factory=dict)
    smoke: Mapping[str, Any] = field(default_factory=dict)
    describe: Callable[[Mapping[str, Any]], str] | None = None
    summarise: Callable[[pd.DataFrame, Mapping[str, Any]], dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        problems = self._problems(run_options(self.run))
        if problems:
            raise ValueError(f"attack {self.name}: " + "; ".join(problems))

    def _problems(self, options: Mapping[str, Any]) -> list[str]:
        """What makes this declaration inconsistent (empty: nothing)."""
        metrics = set(self.metrics)
        problems = [] if self.kind in KINDS else [f"kind {self.kind!r} not in {KINDS}"]
        if self.norm is not None and (self.norm not in NORMS or "epsilons" not in options):
            problems.append(f"norm {self.norm!r}: needs one of {NORMS} and an epsilons option")
        named = {
            "rates": set(self.rates) | set(self.rates.values()),
            "headline": {h.metric for h in self.headline},
            "readouts": {r.metric for r in self.readouts},
            "maps": set(self.maps),
        }
        problems += [
            f"{what} name undeclared metrics {sorted(names - metrics)}"
            for what, names in named.items()
            if names - metrics
        ]
        if set(self.oracle_rates) - set(self.rates):
            problems.append(f"oracle_rates {sorted(set(self.oracle_rates) - set(self.rates))} "
                            "are not rates")  # fmt: skip
        if set(self.suites) - set(SUITE_NAMES):
            problems.append(f"unknown suites {sorted(set(self.suites) - set(SUITE_NAMES))}")
        chosen = [self.smoke, *(b.options for b in self.suites.values())]
        unknown = sorted({k for c in chosen for k in c} - set(options))
        if unknown:
            problems.append(f"suites or smoke set options run does not take: {unknown}")
        return problems

    @property
    def options(self) -> dict[str, Any]:
        """The keyword options ``run`` accepts, with their defaults (from its signature)."""
        return run_options(self.run)

    def description(self, settings: Mapping[str, Any] | None = None) -> str:
        """What this attack did in a run with ``settings`` (its options merged with the
        defaults); the static :attr:`summary` when it has no :attr:`describe`."""
        if self.describe is None:
            return self.summary
        return self.describe({**self.options, **(settings or {})})
