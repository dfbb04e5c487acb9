"""Run a suite on one model and assemble the ``report.json`` record (schema 1).

The runner measures; it neither prints nor writes.  What it returns holds the
report dict, every :class:`AttackResult` (records and example tensors for the
CSVs and figures) and the figures themselves, so the caller decides where and
whether to write them.

Determinism: every attack starts from ``torch.manual_seed(seed)`` and draws its
examples from the seed alone, so one seed gives the same metrics on one CPU
whatever the order or subset of the suite.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from .. import __version__
from ..attacks import ATTACKS, AttackResult, AuditContext, Progress
from ..attacks.base import dataset_tensors, pair_other_class
from ..attacks.setup import AuditSetup, model_record
from ..attacks.sharded import execute
from ..models.check import RECONSTRUCTION_TOLERANCE, check_invertibility
from ..models.classifier import InvertibleClassifier
from ..models.stability import inverse_gain
from ..training.distributed import DistContext
from .attack_files import json_safe
from .intervals import rate_interval, rate_intervals
from .sanity import mode_warnings, model_warnings, report_warnings
from .schema import SCHEMA, SCHEMA_VERSION
from .suite import Step, Suite

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Audited test examples behind the inverse's local gain (``invertibility.metamer_gain``
#: and ``data_gain``): the first of the invertibility check's examples (fewer with --n).
#: The cost grows linearly with the count; 32 keep both gains near 6 % of the quick
#: suite's time (docs/reports.md) and still separate the likelihood-trained zoo model
#: (max 3.3) from the CE one (median 31, max 50) by far.
GAIN_N = 32
#: Salt of the seeded other-class pairing the gain's metamer points are built from.
GAIN_PAIRING_SALT = 7919


@dataclass
class SuiteRun:
    """A finished audit: the report record, the raw results and their figures."""

    report: dict[str, Any]
    results: dict[str, AttackResult] = field(default_factory=dict)
    figures: dict[str, dict[str, Figure]] = field(default_factory=dict)


def _accuracy(setup: AuditSetup, n: int | None, seed: int, batch_size: int) -> tuple[float, int]:
    """Clean test accuracy of the model's decision over ``n`` seeded test examples,
    read batch by batch (memory does not grow with ``n``)."""
    accuracy = _streamed_accuracy(setup, n, seed, batch_size, setup.model.logits)
    return accuracy, n_audited(setup, n)


def n_audited(setup: AuditSetup, n: int | None) -> int:
    total = len(setup.data.test)
    return total if n is None else min(n, total)


def _oracle_accuracy(setup: AuditSetup, n: int | None, seed: int, batch_size: int) -> float:
    return _streamed_accuracy(setup, n, seed, batch_size, None)


def _streamed_accuracy(
    setup: AuditSetup,
    n: int | None,
    seed: int,
    batch_size: int,
    logits: Callable[[torch.Tensor], torch.Tensor] | None,
) -> float:
    """The share of ``n`` seeded test examples the model (``logits``) or, with None, the
    oracle labels right, one batch in memory at a time."""
    ctx = AuditContext(
        setup.model, setup.data, n=n, seed=seed, batch_size=batch_size, device=setup.device
    )
    right = 0
    for chunk in ctx.chunks():
        x, y = ctx.load(chunk)
        with torch.no_grad():
            if logits is None:
                pred = setup.oracle.predict(x).cpu()
            else:
                pred = logits(ctx.to_model(x)).argmax(1).cpu()
        right += int((pred == y).sum())
    return right / ctx.total


@torch.no_grad()
def _forward_is_deterministic(setup: AuditSetup, seed: int) -> bool:
    x, _ = dataset_tensors(setup.data.test, 16, seed)
    ref = next(setup.model.parameters())
    x = x.to(device=ref.device, dtype=ref.dtype)
    return bool(torch.equal(setup.model.logits(x), setup.model.logits(x)))


def _invertibility(setup: AuditSetup, n: int, seed: int) -> dict[str, Any] | None:
    if not isinstance(setup.model, InvertibleClassifier):
        return None
    x, _ = dataset_tensors(setup.data.test, n, seed)
    ref = next(setup.model.parameters())
    check = check_invertibility(setup.model, x.to(device=ref.device, dtype=ref.dtype))
    return {
        "n": check.samples,
        "max_abs_error": check.reconstruction_max_abs,
        "mean_abs_error": check.reconstruction_mean_abs,
        "tolerance": RECONSTRUCTION_TOLERANCE,
        "passed": check.reconstruction_max_abs <= RECONSTRUCTION_TOLERANCE,
    }


def _gain_points(
    model: InvertibleClassifier, setup: AuditSetup, n: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``z = F(x)`` of ``n`` seeded test examples, and the metamers ``merge(z_s(x),
    z_n(x'))`` of x' of another class (None when the examples hold a single class)."""
    x, y = dataset_tensors(setup.data.test, n, seed)
    ref = next(model.parameters())
    with torch.no_grad():
        z = model(x.to(device=ref.device, dtype=ref.dtype))
    if len(y.unique()) < 2:
        return z, None
    pairing = torch.Generator().manual_seed(seed * 1_000_003 + GAIN_PAIRING_SALT)
    partner = pair_other_class(y, pairing).to(z.device)
    z_s, z_n = model.split(z)
    return z, model.merge(z_s, z_n[partner])


def _inverse_gains(
    model: InvertibleClassifier, setup: AuditSetup, n: int, seed: int
) -> tuple[dict[str, Any], dict[str, float]]:
    """The inverse's local gain at metamer points (per layer) and at the data points.

    Returns the ``invertibility`` entries and the seconds each took; the seconds
    go to ``timing``, not ``invertibility``, which a rerun must reproduce exactly.
    """
    z, z_metamer = _gain_points(model, setup, n, seed)
    record: dict[str, Any] = {"metamer_gain": None}
    seconds: dict[str, float] = {}
    if z_metamer is not None:
        tick = time.perf_counter()
        record["metamer_gain"] = inverse_gain(model, z_metamer, seed=seed).summary()
        seconds["metamer_gain_seconds"] = time.perf_counter() - tick
    tick = time.perf_counter()
    record["data_gain"] = inverse_gain(model, z, per_layer=False, seed=seed).summary()
    seconds["data_gain_seconds"] = time.perf_counter() - tick
    return record, seconds


def environment(setup: AuditSetup, seed: int) -> dict[str, Any]:
    """Versions and machine facts that explain differences between two reports."""
    import foolbox
    import numpy
    import torchvision

    device = setup.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    return {
        "invaudit": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "foolbox": foolbox.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "device": str(device),
        "device_name": name or None,
        "dtype": setup.dtype,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "seed": seed,
    }


def _silent(line: str) -> None:
    """A ``log`` / ``warn`` callback that drops the line."""


@dataclass
class _SuiteRunner:
    """One suite run in progress: what every step shares, and the ``timing`` it fills."""

    setup: AuditSetup
    seed: int
    batch_size: int
    progress: Progress
    say: Callable[[str], None]
    tell: Callable[[str], None]
    dist: DistContext | None = None
    timing: dict[str, Any] = field(default_factory=lambda: {"attacks": {}})

    def _timed(self, key: str, measure: Callable[[], Any]) -> Any:
        """``measure()``, its seconds stored as ``timing[key]``."""
        tick = time.perf_counter()
        result = measure()
        self.timing[key] = time.perf_counter() - tick
        return result

    def model_section(self, suite: Suite) -> dict[str, Any]:
        """The ``model`` record with its clean accuracy; early warnings go to ``tell``."""
        setup, model = self.setup, self.setup.model
        accuracy, accuracy_n = self._timed(
            "clean_accuracy_seconds",
            lambda: _accuracy(setup, suite.accuracy_n, self.seed, self.batch_size),
        )
        record = {
            **model_record(setup.path, model),
            "dataset": setup.data.name,
            "data_source": setup.data.source,
            "input_shape": list(model.input_shape),
            "num_classes": model.num_classes,
            "parameters": sum(p.numel() for p in model.parameters()),
            "invertible": isinstance(model, InvertibleClassifier),
            "clean_accuracy": accuracy,
            "clean_accuracy_n": accuracy_n,
            "clean_accuracy_interval": rate_interval(accuracy, accuracy_n),
        }
        for early in model_warnings(record):
            self.tell(f"warning: {early['name']}: {early['message']}")
        return record

    def invertibility_section(self, suite: Suite) -> dict[str, Any] | None:
        """The reconstruction check and, for an invertible model, the inverse's gains."""
        record = self._timed(
            "invertibility_seconds",
            lambda: _invertibility(self.setup, suite.invertibility_n, self.seed),
        )
        model = self.setup.model
        if isinstance(model, InvertibleClassifier):
            self.say("inverse gain at metamer and data points")
            gain_n = min(GAIN_N, suite.invertibility_n)
            gains, seconds = _inverse_gains(model, self.setup, gain_n, self.seed)
            record.update(gains)
            self.timing.update(seconds)
        return record

    def oracle_section(self, suite: Suite, accuracy_n: int) -> dict[str, Any] | None:
        """The oracle's description and, for a learned one, its clean accuracy."""
        oracle = self.setup.oracle
        if oracle is None:
            return None
        record = dict(oracle.info())
        if not oracle.exact:
            record["clean_accuracy"] = _oracle_accuracy(
                self.setup, suite.accuracy_n, self.seed, self.batch_size
            )
            record["clean_accuracy_n"] = accuracy_n
        return record

    def attack(self, step: Step, label: str, run: SuiteRun) -> dict[str, Any]:
        """Run one step; its result and figures go to ``run``, its report record is returned."""
        setup, seed = self.setup, self.seed
        attack = ATTACKS[step.method]
        self.say(f"{label} {step.method}: {attack.description(step.options)}")
        ctx = self._context(step)
        tick = time.perf_counter()
        torch.manual_seed(seed)
        result = execute(attack, ctx, dict(step.options))
        self.timing["attacks"][step.method] = time.perf_counter() - tick
        result.settings.update(
            seed=seed, batch_size=self.batch_size, dataset=setup.data.name, n_requested=step.n
        )
        # Several ε-attacks name a figure alike ("robust_accuracy"): prefix the method.
        figures = {
            name if name.startswith(step.method) else f"{step.method}-{name}": fig
            for name, fig in attack.figures(result).items()
        }
        run.results[step.method] = result
        run.figures[step.method] = figures
        return {
            "kind": attack.kind,
            "summary": attack.description(result.settings),
            "n": result.metrics.get("n"),
            "intervals": rate_intervals(attack.rates, result.metrics),
            "metrics": result.metrics,
            "settings": result.settings,
            "records": f"{step.method}.csv",
            "figures": [f"figures/{name}.png" for name in figures],
        }

    def _context(self, step: Step) -> AuditContext:
        setup = self.setup
        return AuditContext(
            setup.model,
            setup.data,
            oracle=setup.oracle,
            n=step.n,
            seed=self.seed,
            batch_size=self.batch_size,
            device=setup.device,
            progress=self.progress,
            dist=self.dist,
        )

    def helper_run(self, suite: Suite) -> SuiteRun:
        """What a rank other than 0 does: its blocks of the attacks, nothing else."""
        for step in suite.steps:
            torch.manual_seed(self.seed)
            execute(ATTACKS[step.method], self._context(step), dict(step.options))
        return SuiteRun({})


def _report_head(suite: Suite, seed: int) -> dict[str, Any]:
    """The report's first keys: what it is, when it was made, and the suite it ran."""
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "suite": {
            "name": suite.name,
            "seed": seed,
            "methods": suite.methods,
            "n": {s.method: s.n for s in suite.steps},
        },
    }


def run_suite(
    setup: AuditSetup,
    suite: Suite,
    *,
    seed: int = 0,
    batch_size: int = 256,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
    warn: Callable[[str], None] | None = None,
    dist: DistContext | None = None,
) -> SuiteRun:
    """Run every step of ``suite`` on ``setup`` and assemble the report.

    Args:
        progress: bars for long loops inside the attacks.
        log: called with one line as each step starts (the CLI prints it).
        warn: called with one line per warning that is known before the attacks run
            (a model too weak to audit), so the user hears it at once; the report's
            ``warnings`` hold it too.
        dist: the processes of a ``torchrun`` audit (None: this one alone).  Every rank
            audits its block of each sharded attack; rank 0 alone measures the rest
            and returns the report, the others return an empty one.
    """
    runner = _SuiteRunner(
        setup, seed, batch_size, progress or Progress(), log or _silent, warn or _silent, dist
    )
    if dist is not None and not dist.is_main:
        return runner.helper_run(suite)
    started = time.perf_counter()
    report = _report_head(suite, seed)
    runner.say("clean accuracy and invertibility")
    report["model"] = runner.model_section(suite)
    report["invertibility"] = runner.invertibility_section(suite)
    warnings = mode_warnings(setup.model.training, _forward_is_deterministic(setup, seed))
    report["oracle"] = runner.oracle_section(suite, report["model"]["clean_accuracy_n"])
    run = SuiteRun(report)
    total = len(suite.steps)
    report["attacks"] = {
        step.method: runner.attack(step, f"[{k}/{total}]", run)
        for k, step in enumerate(suite.steps, 1)
    }
    report["warnings"] = []
    report["environment"] = environment(setup, seed)
    report["environment"]["processes"] = dist.world_size if dist is not None else 1
    runner.timing["total_seconds"] = time.perf_counter() - started
    report["timing"] = runner.timing
    report = json_safe(report)
    report["warnings"] = json_safe(warnings + report_warnings(report))
    run.report = report
    return run
