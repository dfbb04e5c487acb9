"""The ``invaudit`` command line.

Library code never prints; this module does.  Exit codes:

- 0: done (and every gate check held);
- 1: only ever "a CI gate check failed" (``report``/``gate``; ``check``: the
  inverse is inexact);
- 2: bad input, one line on stderr: every :class:`InvauditError`, a click usage
  error, and any ``OSError`` (a file that cannot be read or written);
- 3: invaudit itself failed (a bug): the traceback, then one line;
- 130: interrupted (Ctrl-C).

``invaudit --help`` must start fast (benchmarks/cli_startup.py), so this module
and the command modules import torch, foolbox and the models only inside the
commands that use them.
"""

from __future__ import annotations

import importlib
import json
import os
import time
import traceback
from typing import Any

import click

from . import __version__
from .cli_options import SEED, download_option
from .errors import ConfigError, InvauditError
from .outputs import check_writable, require_path
from .progress import EpochProgress
from .zoo import resolve_model_path

RECONSTRUCTION_TOLERANCE = 1e-4
#: Exit code of an unexpected exception (a bug), kept apart from 1 (a failed gate).
INTERNAL_ERROR_EXIT = 3
#: Exit code after Ctrl-C (128 + SIGINT, as shells report it).
INTERRUPTED_EXIT = 130

#: ``invaudit.training.losses``' choices, copied so that --help needs no torch
#: (tests/test_cli_help.py holds the copies equal to the originals).
INDEPENDENCE = ("adversary", "hsic", "adversary+hsic", "class-means")
NUISANCE_OBJECTIVES = ("ce", "confusion", "permuted")
MLE_SCOPES = ("z_n", "z")

#: One example per command, shown at the end of its --help (a test parses each one).
EXAMPLES: dict[str, str] = {
    "archs": "invaudit archs",
    "check": "invaudit check --model zoo:mnist-ce",
    "info": "invaudit info zoo:mnist-ce",
    "train": "invaudit train --dataset mnist --loss ice --epochs 6 --out runs/mnist-ice.pt",
    "attack": "invaudit attack --model zoo:mnist-ce --method metamer --n 512 --out audit",
    "report": "invaudit report --model zoo:mnist-ce --out audit "
    "--fail-if 'probe.nuisance_accuracy > 0.5' --junit gate.xml",
    "compare": "invaudit compare zoo:mnist-ce zoo:mnist-ice --out compare-ce-ice",
    "gate": "invaudit gate audit/report.json --policy audit-policy.toml --junit gate.xml",
    "zoo": "invaudit zoo mnist-ce",
}


class _LazyModule:
    """Stands for a module that is imported on first attribute access."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)


# What ``check`` calls, imported when it runs (torch alone takes seconds to import).
torch = _LazyModule("torch")


def build(arch: str, **config: Any) -> Any:
    from .models import build as build_model

    return build_model(arch, **config)


def load_model(path: str | os.PathLike[str]) -> Any:
    from .models.checkpoint import load_model as load

    return load(path)


def resolve_device(name: str) -> Any:
    from .devices import resolve_device as resolve

    return resolve(name)


def check_invertibility(model: Any, x: Any) -> Any:
    from .models.check import check_invertibility as measure

    return measure(model, x)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def os_error_line(err: OSError) -> str:
    """An ``OSError`` as one line: the file(s) and the reason."""
    reason = err.strerror or type(err).__name__
    files = [os.fsdecode(f) for f in (err.filename, err.filename2) if f is not None]
    if not files:
        return _one_line(err) or reason
    return _one_line(f"{' -> '.join(files)}: {reason}")


class _Group(click.Group):
    """A click group that keeps exit code 1 for a failed gate.

    User errors (:class:`InvauditError`, ``OSError``) become one line and exit
    code 2; an unexpected exception prints its traceback and exits 3.  Every
    command added gets its example (:data:`EXAMPLES`) at the end of its --help.
    """

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        example = EXAMPLES.get(name or cmd.name or "")
        if example is not None and cmd.epilog is None:
            cmd.epilog = f"\b\nExample:\n  {example}"
        super().add_command(cmd, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InvauditError as err:
            click.echo(f"invaudit: error: {_one_line(err)}", err=True)
            ctx.exit(err.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort, BrokenPipeError):
            raise  # click's own handling: exit codes 0-2, and a closed pipe
        except OSError as err:
            click.echo(f"invaudit: error: {os_error_line(err)}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            click.echo("invaudit: interrupted", err=True)
            ctx.exit(INTERRUPTED_EXIT)
        except Exception as err:
            traceback.print_exc()
            click.echo(
                f"invaudit: internal error: {type(err).__name__}: {_one_line(err)} "
                "(a bug in invaudit; please report it with the traceback above)",
                err=True,
            )
            ctx.exit(INTERNAL_ERROR_EXIT)


def _parse_settings(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``("blocks=8", "coupling=affine")`` → ``{"blocks": 8, "coupling": "affine"}``."""
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {pair!r}")
        try:
            settings[key] = json.loads(raw)
        except json.JSONDecodeError:
            settings[key] = raw
    return settings


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="invaudit")
def main() -> None:
    """Audit classifiers for excessive invariance and excessive sensitivity.

    Exit codes: 0 done, 1 a gate check failed, 2 bad input (one line on
    stderr), 3 an invaudit bug.  `invaudit COMMAND --help` shows each command
    with an example.

    \b
    Example:
      invaudit report --model zoo:mnist-ce --out audit
    """


@main.command()
def archs() -> None:
    """List the architectures and the config keys each accepts (with defaults)."""
    from .models import ARCHS, default_config

    for name in ARCHS:
        keys = ", ".join(f"{k}={v}" for k, v in default_config(name).items())
        click.echo(f"{name}: {keys}")


@main.command()
@click.option("--arch", default=None, help="Architecture name (see `invaudit archs`).")
@click.option(
    "--model",
    "model_path",
    default=None,
    type=click.Path(dir_okay=False),
    metavar="CKPT|zoo:NAME",
    help="A checkpoint (or zoo:NAME) to check instead of a freshly built --arch.",
)
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override one config key (repeatable), e.g. --set blocks=8.",
)
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=SEED)
@click.option(
    "--dtype", type=click.Choice(["float32", "float64"]), default="float32", show_default=True
)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
def check(
    arch: str | None,
    model_path: str | None,
    settings: tuple[str, ...],
    batch_size: int,
    seed: int,
    dtype: str,
    device: str,
) -> None:
    """Measure how exact a model's inverse is on random inputs in [0, 1].

    Give --arch to build an untrained model (its ActNorm layers initialised on
    the batch) or --model for a trained checkpoint.  Also prints the local gain
    of F^-1 (largest singular value of its Jacobian) at metamers of the batch,
    z_s of one input with z_n of another, and the stage and layer it comes
    from.  Exits 1 when the reconstruction error exceeds 1e-4.
    """
    from .models import InvertibleClassifier
    from .models.stability import inverse_gain
    from .reports.sanity import MAX_INVERSE_GAIN

    if (arch is None) == (model_path is None):
        raise ConfigError("check: give exactly one of --arch NAME or --model CKPT")
    torch.manual_seed(seed)
    target = resolve_device(device)
    if model_path is not None:
        model = load_model(resolve_model_path(model_path))
        arch = model.arch
    else:
        model = build(arch, **_parse_settings(settings))
    if not isinstance(model, InvertibleClassifier):  # e.g. oracle-cnn: nothing to invert
        raise ConfigError(f"check: {arch} is not invertible; there is no inverse to measure")
    model = model.to(device=target, dtype=getattr(torch, dtype))
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(batch_size, *model.input_shape, generator=gen, dtype=model_dtype(model))
    x = x.to(target)
    if model_path is None:
        model.train()
        with torch.no_grad():
            model(x)  # data-dependent initialisation (ActNorm), as a first training batch would
    model.eval()
    result = check_invertibility(model, x)
    params = sum(p.numel() for p in model.parameters())
    click.echo(
        f"{arch}: input {list(model.input_shape)}, d={model.dim}, "
        f"classes={model.num_classes}, parameters={params:,}, {dtype} on {target}"
    )
    ok = result.reconstruction_max_abs <= RECONSTRUCTION_TOLERANCE
    click.echo(
        f"  max |F^-1(F(x)) - x|   {result.reconstruction_max_abs:.2e}  "
        f"(tolerance {RECONSTRUCTION_TOLERANCE:.0e}: {'ok' if ok else 'FAILED'})"
    )
    click.echo(f"  mean |F^-1(F(x)) - x|  {result.reconstruction_mean_abs:.2e}")
    click.echo(f"  max |F(F^-1(z)) - z|   {result.latent_max_abs:.2e}")
    click.echo(f"  mean log|det dF/dx|    {result.logdet_mean:.3f}  over {result.samples} inputs")
    # Metamers of the batch: every input's z_s with the z_n of another (random) input.
    n = x.shape[0]
    partner = (torch.arange(n) + torch.randint(1, max(n, 2), (n,), generator=gen)) % n
    with torch.no_grad():
        z_s, z_n = model.split(model(x))
    metamers = model.merge(z_s, z_n[partner.to(z_n.device)])
    gain = inverse_gain(model, metamers, seed=seed).summary()
    verdict = f"exploding: > {MAX_INVERSE_GAIN:g}" if gain["max"] > MAX_INVERSE_GAIN else "ok"
    click.echo(
        f"  gain of F^-1 at metamers  median {gain['median']:.3g}, max {gain['max']:.3g}  "
        f"over {gain['n']} pairs ({verdict})"
    )
    if "largest_stage" in gain:
        click.echo(
            f"    largest in {gain['largest_stage']}; layer {gain['largest_layer']}, "
            f"median gain {gain['largest_layer_median_gain']:.3g}"
        )
    if not ok:
        raise SystemExit(1)


@main.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False), metavar="CKPT|zoo:NAME")
def info(checkpoint: str) -> None:
    """Describe a checkpoint: arch, dataset, loss, training and final metrics."""
    from .models.checkpoint import read_checkpoint

    path = resolve_model_path(checkpoint)
    payload = read_checkpoint(path)
    load_model(path)  # the weights must fit the arch (a one-line CheckpointError if not)
    training = payload.get("training") or {}
    seconds = training.get("wall_seconds")
    seconds = f"{seconds:.0f}" if isinstance(seconds, int | float) else "?"
    click.echo(
        f"{checkpoint}: {payload['arch']} ({payload.get('loss') or '?'}) on "
        f"{(payload.get('dataset') or {}).get('name', '?')}, "
        f"{training.get('epochs_done', '?')} epoch(s), "
        f"{seconds} s, world size "
        f"{training.get('world_size', '?')}"
    )
    click.echo("config: " + json.dumps(payload["config"]))
    for key, value in (payload.get("metrics") or {}).items():
        click.echo(
            f"  {key:<20} {value:.6g}" if isinstance(value, float) else f"  {key:<20} {value}"
        )


def model_dtype(model: Any) -> Any:
    """The dtype of ``model``'s parameters."""
    return next(model.parameters()).dtype


DEFAULT_ARCH = {
    "spheres": "firevnet-fc",
    "mnist": "firevnet-mnist",
    "fashion-mnist": "firevnet-mnist",
    "imagenet": "firevnet-imagenet",
}


@main.command()
@click.option(
    "--dataset", type=click.Choice(list(DEFAULT_ARCH)), default="mnist", show_default=True
)
@click.option(
    "--arch",
    default=None,
    help="Default: firevnet-fc for spheres, "
    "firevnet-mnist for (Fashion-)MNIST, firevnet-imagenet for imagenet. "
    "oracle-cnn: an ordinary CNN to serve as an attack's --oracle (CE only).",
)
@click.option(
    "--loss",
    type=click.Choice(["ce", "ice"]),
    default="ce",
    show_default=True,
    help="Cross-entropy, or independence cross-entropy (Definition 7).",
)
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False),
    help="Checkpoint path, rewritten after every epoch.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the run saved in --out from its last finished epoch (starts fresh "
    "if --out does not exist yet).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Train on this many examples (seeded subset).",
)
@click.option(
    "--test-limit",
    type=click.IntRange(min=1),
    default=None,
    help="Evaluate on this many test examples.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Per process. Default: the dataset's preset (spheres 128, MNIST 64).",
)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Default: the preset's (Appendix B).",
)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option(
    "--data-dir",
    default=None,
    help="Folder with MNIST/raw, FashionMNIST/raw or "
    "train/ and val/ class folders. Default: $INVAUDIT_DATA, else ~/.cache/invaudit/data.",
)
@download_option
@click.option(
    "--dim", type=click.IntRange(min=2), default=100, show_default=True, help="Spheres: dimension."
)
@click.option(
    "--radii", type=(float, float), default=(1.0, 10.0), show_default=True, help="Spheres: R1 R2."
)
@click.option(
    "--n-train",
    type=click.IntRange(min=2),
    default=500_000,
    show_default=True,
    help="Spheres: training points.",
)
@click.option(
    "--n-test",
    type=click.IntRange(min=2),
    default=100_000,
    show_default=True,
    help="Spheres: holdout points.",
)
@click.option(
    "--image-size",
    type=click.IntRange(min=8),
    default=224,
    show_default=True,
    help="imagenet: crop size.",
)
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override one arch config key (repeatable), e.g. --set blocks=8.",
)
@click.option(
    "--nuisance-weight",
    type=float,
    default=1.0,
    show_default=True,
    help="iCE: weight of the nuisance term.",
)
@click.option(
    "--mle-weight",
    type=float,
    default=1.0,
    show_default=True,
    help="iCE: weight of MLE_n (bits/dim).",
)
@click.option(
    "--nll-weight",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="CE: add this weight times the flow's negative log-likelihood of z_n (MLE_n, "
    "bits/dim), the likelihood regulariser that keeps the inverse tame (iCE has it "
    "as --mle-weight).",
)
@click.option(
    "--normalize-nuisance/--no-normalize-nuisance",
    default=True,
    show_default=True,
    help="iCE: divide the nuisance term by dim(z_n) (Appendix B.2).",
)
@click.option(
    "--adversary-steps",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Nuisance-classifier steps per batch.",
)
@click.option(
    "--nuisance-hidden",
    type=click.IntRange(min=0),
    default=0,
    help="Nuisance-classifier width. Default: 1000 for spheres, 512 for images.",
)
@click.option(
    "--adversary-lr",
    type=click.FloatRange(min=0, min_open=True),
    default=1e-3,
    show_default=True,
    help="Nuisance classifier's Adam learning rate.",
)
@click.option(
    "--independence",
    type=click.Choice(list(INDEPENDENCE)),
    default="adversary",
    show_default=True,
    help="iCE: how z_n is made independent of y: Definition 7's adversarial nuisance "
    "classifier, a normalised-HSIC penalty (no adversary), both, or the share of z_n's "
    "variance explained by the class means (no adversary).",
)
@click.option(
    "--nuisance-objective",
    type=click.Choice(list(NUISANCE_OBJECTIVES)),
    default="ce",
    show_default=True,
    help="iCE: what the model does against the nuisance classifier: ascend its "
    "cross-entropy (Definition 7), push its prediction to uniform (confusion), or make it "
    "predict the batch's labels randomly permuted (permuted, the authors' code).",
)
@click.option(
    "--mle-scope",
    type=click.Choice(list(MLE_SCOPES)),
    default="z_n",
    show_default=True,
    help="Likelihood term (iCE's MLE_n, CE's --nll-weight) on z_n, or on all of z "
    "(the authors' code).",
)
@click.option(
    "--hsic-weight",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="iCE: weight of the HSIC or class-means penalty.",
)
@click.option(
    "--warmup-epochs",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="iCE: epochs of plain CE before the other terms start.",
)
@click.option(
    "--ramp-epochs",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="iCE: epochs over which the other terms ramp linearly to full weight.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="DataLoader worker processes.",
)
@click.option("--progress/--no-progress", default=True, show_default=True)
def train(**opts: Any) -> None:
    """Train a fiRevNet with CE or iCE, or an oracle-cnn with CE; runs as is under
    torchrun --nproc_per_node N."""
    from .training.trainer import Trainer

    out = opts["out"]
    if os.path.exists(out) and not opts["resume"]:
        raise ConfigError(f"{out} exists; pass --resume to continue it or choose another --out")
    check_writable(require_path(out, "--out"), "--out")  # before any epoch, not after
    settings = settings_from_options(opts)
    progress = EpochProgress(enabled=opts["progress"])
    trainer = Trainer(settings, out, resume=opts["resume"], callbacks=progress)
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


def settings_from_options(opts: dict[str, Any]) -> Any:
    """The :class:`TrainSettings` that ``invaudit train`` builds from its parsed options.

    Public so that a script can tell whether a checkpoint was trained by a given
    command line (the zoo builder compares the two) without training anything.
    """
    from .training.losses import ICEConfig
    from .training.trainer import TrainSettings

    return TrainSettings(
        dataset=opts["dataset"],
        arch=opts["arch"] or DEFAULT_ARCH[opts["dataset"]],
        arch_config=_parse_settings(opts["settings"]),
        loss=opts["loss"],
        epochs=opts["epochs"],
        batch_size=opts["batch_size"] or 0,
        lr=opts["lr"] or 0.0,
        seed=opts["seed"],
        device=opts["device"],
        data_dir=opts["data_dir"],
        download=opts["download"],
        limit=opts["limit"],
        test_limit=opts["test_limit"],
        dim=opts["dim"],
        radii=tuple(opts["radii"]),
        n_train=opts["n_train"],
        n_test=opts["n_test"],
        image_size=opts["image_size"],
        nll_weight=opts["nll_weight"],
        ice=ICEConfig(
            nuisance_weight=opts["nuisance_weight"],
            mle_weight=opts["mle_weight"],
            normalize_nuisance=opts["normalize_nuisance"],
            nuisance_hidden=opts["nuisance_hidden"],
            adversary_steps=opts["adversary_steps"],
            independence=opts["independence"],
            hsic_weight=opts["hsic_weight"],
            warmup_epochs=opts["warmup_epochs"],
            ramp_epochs=opts["ramp_epochs"],
            nuisance_objective=opts["nuisance_objective"],
            mle_scope=opts["mle_scope"],
        ),
        adversary_lr=opts["adversary_lr"],
        workers=opts["workers"],
    )


from .cli_attack import attack  # noqa: E402  (a command of its own module, registered here)

main.add_command(attack)

from .cli_report import compare, gate, report  # noqa: E402

main.add_command(report)
main.add_command(compare)
main.add_command(gate)

from .cli_zoo import zoo  # noqa: E402

main.add_command(zoo)
