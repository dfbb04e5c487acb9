"""Click options that more than one command takes, defined once."""

from __future__ import annotations

import click

download_option = click.option(
    "--download/--no-download",
    default=True,
    show_default=True,
    help="Download missing MNIST files through torchvision.",
)
