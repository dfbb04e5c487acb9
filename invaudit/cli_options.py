"""Click options that more than one command takes, defined once.

This module is imported by ``invaudit --help``, so it imports neither torch nor
the attacks: the names the options offer are copies, which
tests/test_cli_help.py holds equal to the registries they come from.
"""

from __future__ import annotations

import click

#: ``invaudit.attacks.ATTACKS``, in its order.
METHOD_NAMES = (
    "metamer", "interpolate", "probe", "misaligned", "boundary", "fgsm", "pgd-linf",
    "pgd-l2", "deepfool-l2", "deepfool-linf", "cw-l2",
)  # fmt: skip
#: ``invaudit.reports.suite.SUITE_NAMES``.
SUITE_NAMES = ("quick", "full")

#: Every ``--seed``: the range numpy's and torch's generators both take (seeds are
#: also combined with salts, e.g. ``seed * 1_000_003 + salt``, within torch's 64 bits).
SEED = click.IntRange(0, 2**32 - 1)

seed_option = click.option(
    "--seed",
    type=SEED,
    default=0,
    show_default=True,
    help="Seed of every random choice (0 to 4294967295); the same seed gives the same "
    "results on the same CPU.",
)

download_option = click.option(
    "--download/--no-download",
    default=True,
    show_default=True,
    help="Download missing MNIST files through torchvision.",
)

#: Audits differ from training here: MNIST falls back to the embedded test set.
audit_download_option = click.option(
    "--download/--no-download",
    default=True,
    show_default=True,
    help="Download missing Fashion-MNIST files through torchvision. An MNIST audit "
    "never downloads: without MNIST's test files in the data dir it uses the embedded "
    "test set (see docs/zoo.md).",
)

oracle_option = click.option(
    "--oracle",
    "oracle_path",
    default=None,
    metavar="CKPT|zoo:NAME|none",
    help="Reference classifier standing in for human judgement (images): a checkpoint "
    "or zoo:NAME. Default for images: the zoo oracle for the dataset (zoo:mnist-oracle "
    "for MNIST), else none; 'none' audits without one. Spheres always use the exact "
    "oracle (the radius).",
)

#: The checkpoint an audit command reads (a path, or zoo:NAME).
model_option = click.option(
    "--model",
    "model_path",
    required=True,
    type=click.Path(dir_okay=False),
    metavar="CKPT|zoo:NAME",
    help="Checkpoint file, or zoo:NAME for a model of the zoo (see `invaudit zoo`).",
)
