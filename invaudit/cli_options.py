"""Click options that more than one command takes, defined once."""

from __future__ import annotations

import click

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
