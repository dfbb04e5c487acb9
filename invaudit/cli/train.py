"""``invaudit train``, and the settings an ``invaudit train`` command line asks for.

The settings themselves are built in :mod:`invaudit.training.settings`; this
module only turns the command's options into plain values.  torch is imported
inside the command, so that ``invaudit --help`` starts in a fraction of a second.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..errors import ConfigError
from ..outputs import check_writable, require_path
from ..progress import EpochProgress
from .app import main
from .options import (
    data_dir_option,
    device_option,
    download_option,
    image_size_option,
    parse_pairs,
    path_option,
    progress_option,
    seed_option,
    set_option,
    stack,
)

if TYPE_CHECKING:
    from ..training.settings import TrainSettings

F = TypeVar("F", bound=Callable[..., Any])

#: Copies that --help shows without importing torch (tests/test_cli_help.py holds
#: them equal to ``invaudit.training.settings.DEFAULT_ARCH`` and ``training.losses``).
DATASETS = ("spheres", "mnist", "fashion-mnist", "imagenet")
INDEPENDENCE = ("adversary", "hsic", "adversary+hsic", "class-means")
NUISANCE_OBJECTIVES = ("ce", "confusion", "permuted")
MLE_SCOPES = ("z_n", "z")
ADVERSARIAL = ("none", "fgsm-rs", "pgd")

#: train's options that say what to write and show, not what to train.
RUN_OPTIONS = ("out", "resume", "snapshots", "progress")


def shown(flag: str, kind: Any, default: Any, help: str) -> Callable[[F], F]:
    """An option whose default --help shows."""
    return click.option(flag, type=kind, default=default, show_default=True, help=help)


def optional(flag: str, kind: Any, help: str) -> Callable[[F], F]:
    """An option without a default (None: decided later, e.g. by the dataset's preset)."""
    return click.option(flag, type=kind, default=None, help=help)


COUNT = click.IntRange(min=1)
POSITIVE = click.FloatRange(min=0, min_open=True)
NON_NEGATIVE = click.FloatRange(min=0)
EPOCHS = click.IntRange(min=0)

run_options = stack(
    click.option(
        "--dataset", type=click.Choice(list(DATASETS)), default="mnist", show_default=True
    ),
    click.option(
        "--arch",
        default=None,
        help="Default: firevnet-fc for spheres, "
        "firevnet-mnist for (Fashion-)MNIST, firevnet-imagenet for imagenet. "
        "oracle-cnn: an ordinary CNN to serve as an attack's --oracle; cnn: a smaller "
        "one to audit (both CE only).",
    ),
    click.option(
        "--loss",
        type=click.Choice(["ce", "ice"]),
        default="ce",
        show_default=True,
        help="Cross-entropy, or independence cross-entropy (Definition 7).",
    ),
    click.option("--epochs", type=COUNT, default=10, show_default=True),
    path_option("--out", "Checkpoint path, rewritten after every epoch.", required=True),
    click.option(
        "--resume",
        is_flag=True,
        help="Continue the run saved in --out from its last finished epoch (starts fresh "
        "if --out does not exist yet).",
    ),
    path_option(
        "--snapshots",
        "After every finished epoch also keep a copy of the checkpoint as DIR/epoch-N.pt "
        "(for per-epoch curves).",
        kind="folder",
        metavar="DIR",
    ),
    optional("--limit", COUNT, "Train on this many examples (seeded subset)."),
    optional("--test-limit", COUNT, "Evaluate on this many test examples."),
    optional("--batch-size", COUNT, "Per process. Default: the dataset's preset (spheres "
             "128, MNIST 64)."),  # fmt: skip
    optional("--lr", POSITIVE, "Default: the preset's (Appendix B)."),
    seed_option,
    device_option("auto"),
    data_dir_option(
        "Folder with MNIST/raw, FashionMNIST/raw or train/ and val/ class folders. "
        "Default: $INVAUDIT_DATA, else ~/.cache/invaudit/data."
    ),
    download_option("Download missing MNIST files through torchvision."),
)

data_options = stack(
    shown("--dim", click.IntRange(min=2), 100, "Spheres: dimension."),
    shown("--radii", (float, float), (1.0, 10.0), "Spheres: R1 R2."),
    shown("--n-train", click.IntRange(min=2), 500_000, "Spheres: training points."),
    shown("--n-test", click.IntRange(min=2), 100_000, "Spheres: holdout points."),
    image_size_option("imagenet: crop size.", 224),
    set_option,
)

loss_options = stack(
    shown("--nuisance-weight", float, 1.0, "iCE: weight of the nuisance term."),
    shown("--mle-weight", float, 1.0, "iCE: weight of MLE_n (bits/dim)."),
    shown("--nll-weight", NON_NEGATIVE, 0.0, "CE: add this weight times the flow's negative "
          "log-likelihood of z_n (MLE_n, bits/dim), the likelihood regulariser that keeps "
          "the inverse tame (iCE has it as --mle-weight)."),  # fmt: skip
    shown("--normalize-nuisance/--no-normalize-nuisance", None, True,
          "iCE: divide the nuisance term by dim(z_n) (Appendix B.2)."),  # fmt: skip
    shown("--adversary-steps", COUNT, 1, "Nuisance-classifier steps per batch."),
    click.option(
        "--nuisance-hidden",
        type=click.IntRange(min=0),
        default=0,
        help="Nuisance-classifier width. Default: 1000 for spheres, 512 for images.",
    ),
    shown("--adversary-lr", POSITIVE, 1e-3, "Nuisance classifier's Adam learning rate."),
    shown("--independence", click.Choice(list(INDEPENDENCE)), "adversary",
          "iCE: how z_n is made independent of y: Definition 7's adversarial nuisance "
          "classifier, a normalised-HSIC penalty (no adversary), both, or the share of "
          "z_n's variance explained by the class means (no adversary)."),  # fmt: skip
    shown("--nuisance-objective", click.Choice(list(NUISANCE_OBJECTIVES)), "ce",
          "iCE: what the model does against the nuisance classifier: ascend its "
          "cross-entropy (Definition 7), push its prediction to uniform (confusion), or "
          "make it predict the batch's labels randomly permuted (permuted, the authors' "
          "code)."),  # fmt: skip
    shown("--mle-scope", click.Choice(list(MLE_SCOPES)), "z_n",
          "Likelihood term (iCE's MLE_n, CE's --nll-weight) on z_n, or on all of z "
          "(the authors' code)."),  # fmt: skip
    shown("--hsic-weight", NON_NEGATIVE, 1.0, "iCE: weight of the HSIC or class-means "
          "penalty."),  # fmt: skip
    shown("--warmup-epochs", EPOCHS, 0, "iCE: epochs of plain CE before the other terms "
          "start."),  # fmt: skip
    shown("--ramp-epochs", EPOCHS, 0, "iCE: epochs over which the other terms ramp "
          "linearly to full weight."),  # fmt: skip
    shown("--workers", click.IntRange(min=0), 0, "DataLoader worker processes."),
    progress_option,
)

adversarial_options = stack(
    shown("--adversarial", click.Choice(list(ADVERSARIAL)), "none",
          "Plain archs (cnn, oracle-cnn): train on L-inf attacks of each batch instead of "
          "the batch: PGD from a random start (Madry et al.), or one FGSM step from a "
          "random start (fgsm-rs, Wong et al.; two passes per batch)."),  # fmt: skip
    shown("--adv-epsilon", POSITIVE, 0.3, "Adversarial training: the L-inf radius."),
    shown("--adv-steps", COUNT, 7, "--adversarial pgd: steps per batch."),
    shown("--adv-step-size", NON_NEGATIVE, 0.0, "Adversarial training: step size; 0 means "
          "1.25 x epsilon for fgsm-rs, 2.5 x epsilon / steps for pgd."),  # fmt: skip
    shown("--adv-ramp-epochs", EPOCHS, 0, "Adversarial training: epochs over which epsilon "
          "grows linearly from 0."),  # fmt: skip
)


@main.command()
@run_options
@data_options
@loss_options
@adversarial_options
def train(**opts: Any) -> None:
    """Train a fiRevNet with CE or iCE, or a plain CNN (cnn, oracle-cnn) with CE, also
    adversarially; runs as is under torchrun --nproc_per_node N."""
    from ..training.trainer import Trainer

    out = opts["out"]
    if os.path.exists(out) and not opts["resume"]:
        raise ConfigError(f"{out} exists; pass --resume to continue it or choose another --out")
    check_writable(require_path(out, "--out"), "--out")  # before any epoch, not after
    settings = settings_from_options(opts)
    progress = EpochProgress(enabled=opts["progress"])
    trainer = Trainer(  # refuses a --snapshots folder it must not write, before any data
        settings,
        out,
        resume=opts["resume"],
        callbacks=progress,
        snapshot_dir=opts["snapshots"],
    )
    progress.test_size = len(trainer.splits.test)  # for "evaluating on N test examples…"
    if trainer.ctx.is_main:
        click.echo(
            f"{settings.loss} training of {trainer.model.arch} on {settings.dataset}: "
            f"{len(trainer.splits.train)} train / {len(trainer.splits.test)} test examples, "
            f"epochs {trainer.start_epoch + 1}-{settings.epochs}, batch {trainer.batch_size} "
            f"x {trainer.ctx.world_size} process(es), lr {trainer.lr:g}, "
            f"device {trainer.ctx.device}"
        )
    started = time.perf_counter()
    trainer.fit()
    if trainer.ctx.is_main:
        click.echo(f"wrote {out} ({time.perf_counter() - started:.0f} s)")


def settings_from_options(opts: Mapping[str, Any]) -> TrainSettings:
    """The settings ``invaudit train`` builds from its parsed options."""
    from ..training.settings import train_settings

    values = {k: v for k, v in opts.items() if k not in RUN_OPTIONS and k != "settings"}
    values["arch_config"] = parse_pairs(opts["settings"], "--set")
    return train_settings(values)


def settings_from_train_args(args: Sequence[str]) -> TrainSettings:
    """The settings that ``invaudit train ARGS`` trains with, without training.

    ``args`` is the argument list after ``train``; ``--out`` may be left out.
    Public so that a script can tell whether a checkpoint was trained by a given
    command line (compare with :func:`invaudit.training.settings.settings_mismatches`).
    """
    try:
        # A placeholder --out first: a given --out comes later and replaces it.
        ctx = train.make_context("train", ["--out", "unused.pt", *args])
    except click.ClickException as err:
        raise ConfigError(f"invaudit train: {err.format_message()}") from None
    return settings_from_options(ctx.params)
