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
from ..attacks.base import dataset_tensors
from ..attacks.setup import AuditSetup, model_record
from ..models.check import check_invertibility
from ..models.classifier import InvertibleClassifier
from .attack_files import json_safe
from .sanity import mode_warnings, report_warnings
from .schema import SCHEMA, SCHEMA_VERSION, ci95_halfwidth
from .suite import Suite

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: |F⁻¹(F(x)) − x| above this fails the invertibility check (float32 images).
RECONSTRUCTION_TOLERANCE = 1e-4


@dataclass
class SuiteRun:
    """A finished audit: the report record, the raw results and their figures."""

    report: dict[str, Any]
    results: dict[str, AttackResult] = field(default_factory=dict)
    figures: dict[str, dict[str, Figure]] = field(default_factory=dict)


def _accuracy(setup: AuditSetup, n: int | None, seed: int, batch_size: int) -> tuple[float, int]:
    """Clean test accuracy of the model's decision over ``n`` seeded test examples."""
    ctx = AuditContext(
        setup.model, setup.data, n=n, seed=seed, batch_size=batch_size, device=setup.device
    )
    x, y = ctx.test_examples()
    pred = ctx.map_batches(lambda b: setup.model.logits(b).argmax(1), x)
    return float((pred == y).double().mean()), len(y)


def _oracle_accuracy(setup: AuditSetup, n: int | None, seed: int, batch_size: int) -> float:
    x, y = dataset_tensors(setup.data.test, n, seed)
    pred = torch.cat(
        [setup.oracle.predict(x[i : i + batch_size]).cpu() for i in range(0, len(x), batch_size)]
    )
    return float((pred == y).double().mean())


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


def run_suite(
    setup: AuditSetup,
    suite: Suite,
    *,
    seed: int = 0,
    batch_size: int = 256,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
) -> SuiteRun:
    """Run every step of ``suite`` on ``setup`` and assemble the report.

    Args:
        progress: bars for long loops inside the attacks.
        log: called with one line as each step starts (the CLI prints it).
    """
    progress = progress or Progress()
    say = log or (lambda line: None)
    started = time.perf_counter()
    timing: dict[str, Any] = {"attacks": {}}
    model = setup.model
    report: dict[str, Any] = {
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

    say("clean accuracy and invertibility")
    tick = time.perf_counter()
    accuracy, accuracy_n = _accuracy(setup, suite.accuracy_n, seed, batch_size)
    timing["clean_accuracy_seconds"] = time.perf_counter() - tick
    report["model"] = {
        **model_record(setup.path, model),
        "dataset": setup.data.name,
        "data_source": setup.data.source,
        "input_shape": list(model.input_shape),
        "num_classes": model.num_classes,
        "parameters": sum(p.numel() for p in model.parameters()),
        "invertible": isinstance(model, InvertibleClassifier),
        "clean_accuracy": accuracy,
        "clean_accuracy_n": accuracy_n,
    }
    tick = time.perf_counter()
    report["invertibility"] = _invertibility(setup, suite.invertibility_n, seed)
    timing["invertibility_seconds"] = time.perf_counter() - tick
    warnings = mode_warnings(model.training, _forward_is_deterministic(setup, seed))

    oracle = None
    if setup.oracle is not None:
        oracle = dict(setup.oracle.info())
        if not setup.oracle.exact:
            oracle["clean_accuracy"] = _oracle_accuracy(setup, suite.accuracy_n, seed, batch_size)
            oracle["clean_accuracy_n"] = accuracy_n
    report["oracle"] = oracle

    run = SuiteRun(report)
    attacks: dict[str, Any] = {}
    for k, step in enumerate(suite.steps, 1):
        attack = ATTACKS[step.method]
        say(f"[{k}/{len(suite.steps)}] {step.method}: {attack.summary}")
        ctx = AuditContext(
            model,
            setup.data,
            oracle=setup.oracle,
            n=step.n,
            seed=seed,
            batch_size=batch_size,
            device=setup.device,
            progress=progress,
        )
        tick = time.perf_counter()
        torch.manual_seed(seed)
        result = attack.run(ctx, **step.options)
        timing["attacks"][step.method] = time.perf_counter() - tick
        result.settings.update(
            seed=seed, batch_size=batch_size, dataset=setup.data.name, n_requested=step.n
        )
        # Several ε-attacks name a figure alike ("robust_accuracy"): prefix the method.
        figures = {
            name if name.startswith(step.method) else f"{step.method}-{name}": fig
            for name, fig in attack.figures(result).items()
        }
        run.results[step.method] = result
        run.figures[step.method] = figures
        n = result.metrics.get("n")
        attacks[step.method] = {
            "kind": attack.kind,
            "summary": attack.summary,
            "n": n,
            "ci95_halfwidth": ci95_halfwidth(n),
            "metrics": result.metrics,
            "settings": result.settings,
            "records": f"{step.method}.csv",
            "figures": [f"figures/{name}.png" for name in figures],
        }
    report["attacks"] = attacks
    report["warnings"] = []
    report["environment"] = environment(setup, seed)
    timing["total_seconds"] = time.perf_counter() - started
    report["timing"] = timing
    report = json_safe(report)
    report["warnings"] = json_safe(warnings + report_warnings(report))
    run.report = report
    return run
