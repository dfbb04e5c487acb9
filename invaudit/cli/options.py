"""What more than one command takes, declared once: options and the ``KEY=VALUE`` parser.

``invaudit --help`` imports this module, so it imports neither torch nor the
attacks: the names the options offer are copies, which tests/test_cli_help.py
holds equal to the registries they come from.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import click

from ..errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])

#: ``invaudit.reports.suite.SUITE_NAMES``.
SUITE_NAMES = ("quick", "full")

#: Every ``--seed``: the range numpy's and torch's generators both take (seeds are
#: also combined with salts, e.g. ``seed * 1_000_003 + salt``, within torch's 64 bits).
SEED = click.IntRange(0, 2**32 - 1)

#: What an audit's --data-dir and --download say (training's differ: no embedded set).
AUDIT_DATA_HELP = (
    "Folder with MNIST/raw or FashionMNIST/raw. Default: $INVAUDIT_DATA, "
    "else ~/.cache/invaudit/data. MNIST without its test files there is audited on "
    "the embedded test set (fit on images 0-4999, test on 5000-9999)."
)
AUDIT_DOWNLOAD_HELP = (
    "Download missing Fashion-MNIST files through torchvision. An MNIST audit "
    "never downloads: without MNIST's test files in the data dir it uses the embedded "
    "test set (see docs/zoo.md)."
)


def stack(*options: Callable[[F], F]) -> Callable[[F], F]:
    """One decorator for several options, in the order they are listed (and shown)."""

    def decorate(command: F) -> F:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def parse_pairs(pairs: Iterable[str], option: str) -> dict[str, Any]:
    """``("blocks=8", "coupling=affine")`` → ``{"blocks": 8, "coupling": "affine"}``.

    Each VALUE is read as JSON where it parses (numbers, true/false, lists),
    else kept as the string; ``option`` names the option in the error.
    """
    parsed: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{option} expects KEY=VALUE, got {pair!r}")
        try:
            parsed[key] = json.loads(raw)
        except json.JSONDecodeError:
            parsed[key] = raw
    return parsed


#: What a path option may name: a file, a folder, or either.
PATH_KINDS = {
    "file": click.Path(dir_okay=False),
    "folder": click.Path(file_okay=False),
    "either": click.Path(),
}


def path_option(
    flag: str, help: str, *, kind: str = "file", required: bool = False, metavar: str | None = None
) -> Callable[[F], F]:
    """An option naming a path (``kind``: file, folder or either) that is not read yet."""
    return click.option(
        flag, required=required, default=None, type=PATH_KINDS[kind], metavar=metavar, help=help
    )


seed_option = click.option(
    "--seed",
    type=SEED,
    default=0,
    show_default=True,
    help="Seed of every random choice (0 to 4294967295); the same seed gives the same "
    "results on the same CPU with the same number of threads.",
)

progress_option = click.option("--progress/--no-progress", default=True, show_default=True)


def device_option(default: str = "cpu") -> Callable[[F], F]:
    return click.option(
        "--device", default=default, show_default=True, help="cpu, cuda, cuda:N or auto."
    )


def dtype_option(*, auto: bool = True) -> Callable[[F], F]:
    """``--dtype``; with ``auto`` (the audits' default) it is picked per kind of model."""
    choices = ["auto", "float32", "float64"] if auto else ["float32", "float64"]
    return click.option(
        "--dtype",
        type=click.Choice(choices),
        default=choices[0],
        show_default=True,
        help="auto: float64 for vector models (cheap, and metamers far outside the data "
        "keep their logits to 1e-10), float32 for images."
        if auto
        else None,
    )


def data_dir_option(help: str = AUDIT_DATA_HELP) -> Callable[[F], F]:
    return click.option("--data-dir", default=None, help=help)


def download_option(help: str = AUDIT_DOWNLOAD_HELP) -> Callable[[F], F]:
    return click.option("--download/--no-download", default=True, show_default=True, help=help)


def model_option(
    *,
    required: bool = True,
    help: str = "Checkpoint file, or zoo:NAME for a model of the zoo (see `invaudit zoo`).",
    metavar: str = "CKPT|zoo:NAME",
) -> Callable[[F], F]:
    """The model a command reads (a checkpoint path or zoo:NAME; the audits: any source)."""
    return click.option(
        "--model",
        "model_path",
        required=required,
        default=None,
        type=click.Path(dir_okay=False),
        metavar=metavar,
        help=help,
    )


#: ``--model`` of the audits, which take any model source (invaudit.models.sources).
AUDIT_MODEL_HELP = (
    "The model: an invaudit checkpoint or zoo:NAME; a TorchScript archive "
    "(torch.jit.save) or a torch.export program (torch.export.save, .pt2), told apart "
    "by content; or py:package.module:function, a factory called with no arguments "
    "(with --weights). All but a checkpoint need --dataset (docs/model-sources.md)."
)
AUDIT_MODEL_METAVAR = "CKPT|zoo:NAME|FILE|py:MOD:FN"

#: The foreign datasets ``--dataset`` takes (``invaudit.attacks.setup.FOREIGN_DATASETS``).
FOREIGN_DATASETS = ("mnist", "fashion-mnist", "imagenet")

_dataset_flag = click.option(
    "--dataset",
    "dataset",
    default=None,
    metavar="NAME",
    help="What a model that is not an invaudit checkpoint classifies: "
    f"{', '.join(FOREIGN_DATASETS)} (it sets the input shape, the classes and the test "
    "data; imagenet: any tree of class folders, --data-dir holding val/ to audit and "
    "train/ for the probe and neighbours). A checkpoint names its own; given for one, "
    "it must agree.",
)


def image_size_option(help: str, default: int | None = None) -> Callable[[F], F]:
    """``--image-size``: the square crop of class-folder images (imagenet)."""
    return click.option(
        "--image-size",
        type=click.IntRange(min=8),
        default=default,
        show_default=default is not None,
        help=help,
    )


#: --dataset with the crop size a foreign imagenet model takes.
dataset_option = stack(
    _dataset_flag,
    image_size_option(
        "With --dataset imagenet: the side of the centre crop the model takes "
        "(default 224)."
    ),
)

weights_option = path_option(
    "--weights",
    "State dict for a py:package.module:function model (a dict of tensors, or one "
    "under 'state_dict'), read with torch.load(weights_only=True): never unpickled code.",
    metavar="FILE",
)

#: The model an audit reads (attack, report): any source, its dataset and its weights.
audit_model_options = stack(
    model_option(help=AUDIT_MODEL_HELP, metavar=AUDIT_MODEL_METAVAR),
    dataset_option,
    weights_option,
)

oracle_option = click.option(
    "--oracle",
    "oracle_path",
    default=None,
    metavar="CKPT|zoo:NAME|FILE|py:MOD:FN|none",
    help="Reference classifier standing in for human judgement (images): a checkpoint "
    "or zoo:NAME, or a TorchScript / torch.export file or py: factory of the audited "
    "model's dataset. Default for images: the zoo oracle for the dataset "
    "(zoo:mnist-oracle for MNIST), else none; 'none' audits without one. Spheres "
    "always use the exact oracle (the radius).",
)

set_option = click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override one arch config key (repeatable), e.g. --set blocks=8.",
)
