"""Nuisance probes (§3, Table 2): what a fresh classifier reads from z_n of a frozen model.

The adversary of iCE training can be fooled without the information leaving
z_n; only a classifier trained *after* F is frozen tells.  A 3-layer ReLU MLP
is fitted on z_n of the training split and measured on the test split; one on
z_s is fitted beside it for reference.  Held-out cross-entropy gives the
variational bound I(y; z) >= H(y) - CE (Lemma 9/10), in bits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
import torch

from ..errors import ConfigError
from ..models.scales import z_parts
from .base import (
    AttackResult,
    AuditContext,
    check_count,
    dataset_tensors,
    encode,
    require_invertible,
)
from .declaration import BITS, HIGHER, LOWER, Attack, Budget, Headline, Readout
from .probe_fit import ProbeResult, fit_probe

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..models.classifier import InvertibleClassifier

HIDDEN = 512
EPOCHS = 10
TRAIN_N = 60_000


def run(
    ctx: AuditContext,
    *,
    probe_hidden: int = HIDDEN,
    probe_epochs: int = EPOCHS,
    train_n: int | None = TRAIN_N,
    probe_batch_size: int = 128,
    probe_lr: float = 1e-3,
    by_scale: bool = False,
) -> AttackResult:
    """Fit fresh probes on z_n and z_s of the training split; measure them on the test split.

    Args:
        probe_hidden: width of the probe's two hidden layers (the paper's D_nc: 512
            for images, 1000 for spheres).
        probe_epochs: probe training epochs (Adam, ``probe_lr``).
        train_n: training examples the probes see (a seeded subset; None: all).
            The default covers all 60k MNIST images and keeps a spheres audit short.
        probe_batch_size: the probes' minibatch size.
        probe_lr: the probes' Adam learning rate.
        by_scale: also fit one probe on each scale of z_n (the readout's part and
            each factored-out part, ``invaudit.models.scales``), so the report
            shows where the class sits, not only whether.
    """
    _check_options(probe_hidden, probe_epochs, probe_batch_size, train_n, probe_lr, by_scale)
    model = require_invertible(ctx.model, "model", "probe")
    x_test, y_test = ctx.test_examples()
    x_train, y_train = dataset_tensors(ctx.data.train(), train_n, ctx.seed)
    # The probes train in float32 whatever precision the audit runs F in.
    z_train = encode(ctx, model, x_train, label="probe: encode train").float()
    z_test = encode(ctx, model, x_test, label="probe: encode test").float()
    options = {
        "hidden": probe_hidden,
        "epochs": probe_epochs,
        "batch_size": probe_batch_size,
        "lr": probe_lr,
    }
    parts = z_parts(model) if by_scale else {}
    nuisance, logit, by_part = _fit(
        ctx, model, (z_train, y_train), (z_test, y_test), parts, options
    )
    metrics = _metrics(model, (z_train, y_train), (z_test, y_test), nuisance, logit)
    # Probe test error per scale of z_n (null unless ``by_scale``).
    metrics["nuisance_error_by_scale"] = by_part if by_scale else None
    zs_test, zn_test = model.split(z_test)
    with torch.no_grad():
        nuisance_pred = nuisance.predictor(zn_test).argmax(1)
        logit_pred = logit.predictor(zs_test).argmax(1)
    records = pd.DataFrame(
        {
            "index": range(len(y_test)),
            "label": y_test.numpy(),
            "decision": zs_test.argmax(1).numpy(),
            "nuisance_probe": nuisance_pred.numpy(),
            "logit_probe": logit_pred.numpy(),
        }
    )
    classes = model.num_classes
    confusion = torch.zeros(classes, classes, dtype=torch.long)
    confusion.index_put_((y_test, nuisance_pred), torch.ones_like(y_test), accumulate=True)
    settings = {**options, "train_n": train_n, "features": "standardised on the training split"}
    if by_scale:
        settings["scale_dims"] = {name: part.stop - part.start for name, part in parts.items()}
    return AttackResult("probe", metrics, records, {"nuisance_confusion": confusion}, settings)


def _check_options(
    probe_hidden: Any,
    probe_epochs: Any,
    probe_batch_size: Any,
    train_n: Any,
    probe_lr: Any,
    by_scale: Any,
) -> None:
    check_count("probe", "probe_hidden", probe_hidden, minimum=1)
    check_count("probe", "probe_epochs", probe_epochs, minimum=1)
    check_count("probe", "probe_batch_size", probe_batch_size, minimum=1)
    if train_n is not None:
        check_count("probe", "train_n", train_n, minimum=1)
    if isinstance(probe_lr, bool) or not isinstance(probe_lr, int | float) or not probe_lr > 0:
        raise ConfigError(f"probe: probe_lr must be positive, got {probe_lr!r}")
    if not isinstance(by_scale, bool):
        raise ConfigError(f"probe: by_scale must be true or false, got {by_scale!r}")


Split = tuple[torch.Tensor, torch.Tensor]  # (z, y) of one split


def _fit(
    ctx: AuditContext,
    model: InvertibleClassifier,
    train: Split,
    test: Split,
    parts: dict[str, slice],
    options: dict[str, Any],
) -> tuple[ProbeResult, ProbeResult, dict[str, float]]:
    """The probes on z_n and on z_s, and the test error of one per part of z_n."""
    (z_train, y_train), (z_test, y_test) = train, test
    zs_train, zn_train = model.split(z_train)
    zs_test, zn_test = model.split(z_test)
    classes = model.num_classes
    by_part: dict[str, float] = {}
    ctx.progress.start("probe: fit", 2 + (len(parts) if len(parts) > 1 else 0))
    try:
        nuisance = fit_probe(zn_train, y_train, zn_test, y_test, classes, seed=ctx.seed, **options)
        ctx.progress.advance()
        logit = fit_probe(zs_train, y_train, zs_test, y_test, classes, seed=ctx.seed, **options)
        ctx.progress.advance()
        for name, part in parts.items():
            if len(parts) == 1:  # the one part is all of z_n: the probe above
                by_part[name] = 1 - nuisance.test_accuracy
                continue
            fitted = fit_probe(
                z_train[:, part], y_train, z_test[:, part], y_test, classes, seed=ctx.seed,
                **options,
            )  # fmt: skip
            by_part[name] = 1 - fitted.test_accuracy
            ctx.progress.advance()
    finally:
        ctx.progress.finish()
    return nuisance, logit, by_part


def _metrics(
    model: InvertibleClassifier,
    train: Split,
    test: Split,
    nuisance: ProbeResult,
    logit: ProbeResult,
) -> dict[str, Any]:
    (z_train, y_train), (z_test, y_test) = train, test
    decision_test = (model.split(z_test)[0].argmax(1) == y_test).double().mean().item()
    decision_train = (model.split(z_train)[0].argmax(1) == y_train).double().mean().item()
    return {
        "n": len(y_test),
        "n_train": len(y_train),
        "nuisance_accuracy": nuisance.test_accuracy,
        "nuisance_error": 1 - nuisance.test_accuracy,
        "nuisance_train_error": 1 - nuisance.train_accuracy,
        "logit_accuracy": logit.test_accuracy,
        "logit_error": 1 - logit.test_accuracy,
        "logit_train_error": 1 - logit.train_accuracy,
        "decision_test_error": 1 - decision_test,
        "decision_train_error": 1 - decision_train,
        "mi_lower_bound_bits_nuisance": nuisance.mi_lower_bound_bits,
        "mi_lower_bound_bits_logit": logit.mi_lower_bound_bits,
        "label_entropy_bits": nuisance.label_entropy_bits,
    }


def figures(result: AttackResult) -> dict[str, Figure]:
    """The nuisance probe's confusion matrix on the test split."""
    from matplotlib.figure import Figure

    confusion = result.examples["nuisance_confusion"].double()
    rates = confusion / confusion.sum(1, keepdim=True).clamp_min(1)
    fig = Figure(figsize=(3.6, 3.2), dpi=150)
    ax = fig.subplots()
    image = ax.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xlabel("nuisance probe's class")
    ax.set_ylabel("true class")
    err = 100 * result.metrics["nuisance_error"]
    ax.set_title(f"Fresh probe on z_n: test error {err:.2f}%")
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true class")
    fig.tight_layout()
    return {"probe_confusion": fig}


ATTACK = Attack(
    name="probe",
    kind="invariance",
    run=run,
    figures=figures,
    summary="fresh MLP on frozen z_n (and z_s): accuracy and MI lower bounds (Table 2)",
    metrics=(
        "n",
        "n_train",
        "nuisance_accuracy",
        "nuisance_error",
        "nuisance_train_error",
        "logit_accuracy",
        "logit_error",
        "logit_train_error",
        "decision_test_error",
        "decision_train_error",
        "mi_lower_bound_bits_nuisance",
        "mi_lower_bound_bits_logit",
        "label_entropy_bits",
        "nuisance_error_by_scale",
    ),
    rates={
        "nuisance_accuracy": "n",
        "nuisance_error": "n",
        "logit_accuracy": "n",
        "logit_error": "n",
        "decision_test_error": "n",
        "nuisance_train_error": "n_train",
        "logit_train_error": "n_train",
        "decision_train_error": "n_train",
    },
    maps={"nuisance_error_by_scale": ("scale of z_n", "readout")},
    headline=(
        Headline("nuisance_error", "nuisance error", better=HIGHER),
        Headline("logit_error", "logit error", better=LOWER),
        Headline("mi_lower_bound_bits_nuisance", "I(z_n; y) lower bound", BITS, LOWER),
    ),
    # The paper's Table 2: the model's own decision ("logit") and a fresh probe on z_n.
    readouts=(
        Readout("test_error", "logit", "decision_test_error", "% test error"),
        Readout("train_error", "logit", "decision_train_error", "% train error"),
        Readout("test_error", "nuisance", "nuisance_error", "% test error"),
        Readout("train_error", "nuisance", "nuisance_train_error", "% train error"),
        Readout("mi_lower_bound_bits", "logit", "mi_lower_bound_bits_logit",
                "I(y; ·) lower bound, bits"),
        Readout("mi_lower_bound_bits", "nuisance", "mi_lower_bound_bits_nuisance",
                "I(y; ·) lower bound, bits"),
    ),  # fmt: skip
    suites={
        "quick": Budget(2_000, {"train_n": 10_000, "probe_epochs": 3}),
        "full": Budget(None),
    },
    smoke={"probe_hidden": 16, "probe_epochs": 1, "train_n": 200, "probe_batch_size": 64},
)
