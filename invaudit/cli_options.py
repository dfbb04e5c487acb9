"""Click options that more than one command takes, defined once."""

from __future__ import annotations

import click

download_option = click.option(
    "--download/--no-download",
    default=True,
    show_default=True,
    help="Download missing MNIST files through torchvision.",
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
