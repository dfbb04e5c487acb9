"""The ``invaudit`` command line.

Library code never prints; this module does.  Every :class:`InvauditError`
becomes one line on stderr and exit code 2 (exit code 1 is kept for a failed
CI gate).
"""

from __future__ import annotations

import json
from typing import Any

import click
import torch

from . import __version__
from .devices import resolve_device
from .errors import ConfigError, InvauditError
from .models import ARCHS, build, default_config
from .models.check import check_invertibility

RECONSTRUCTION_TOLERANCE = 1e-4


class _Group(click.Group):
    """A click group that turns user errors into one line and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InvauditError as err:
            message = " ".join(str(err).split())
            click.echo(f"invaudit: error: {message}", err=True)
            ctx.exit(err.exit_code)


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
    """Audit classifiers for excessive invariance and excessive sensitivity."""


@main.command()
def archs() -> None:
    """List the architectures and the config keys each accepts (with defaults)."""
    for name in ARCHS:
        keys = ", ".join(f"{k}={v}" for k, v in default_config(name).items())
        click.echo(f"{name}: {keys}")


@main.command()
@click.option("--arch", required=True, help="Architecture name (see `invaudit archs`).")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Override one config key (repeatable), e.g. --set blocks=8.")
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32",
              show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
def check(arch: str, settings: tuple[str, ...], batch_size: int, seed: int, dtype: str,
          device: str) -> None:
    """Build a model and measure how exact its inverse is on random inputs in [0, 1].

    Exits 1 when the reconstruction error exceeds 1e-4.
    """
    torch.manual_seed(seed)
    target = resolve_device(device)
    model = build(arch, **_parse_settings(settings)).to(device=target, dtype=getattr(torch, dtype))
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(batch_size, *model.input_shape, generator=gen, dtype=model_dtype(model))
    x = x.to(target)
    model.train()
    with torch.no_grad():
        model(x)  # data-dependent initialisation (ActNorm), as a first training batch would
    model.eval()
    result = check_invertibility(model, x)
    params = sum(p.numel() for p in model.parameters())
    click.echo(f"{arch}: input {list(model.input_shape)}, d={model.dim}, "
               f"classes={model.num_classes}, parameters={params:,}, {dtype} on {target}")
    ok = result.reconstruction_max_abs <= RECONSTRUCTION_TOLERANCE
    click.echo(f"  max |F^-1(F(x)) - x|   {result.reconstruction_max_abs:.2e}  "
               f"(tolerance {RECONSTRUCTION_TOLERANCE:.0e}: {'ok' if ok else 'FAILED'})")
    click.echo(f"  mean |F^-1(F(x)) - x|  {result.reconstruction_mean_abs:.2e}")
    click.echo(f"  max |F(F^-1(z)) - z|   {result.latent_max_abs:.2e}")
    click.echo(f"  mean log|det dF/dx|    {result.logdet_mean:.3f}  over {result.samples} inputs")
    if not ok:
        raise SystemExit(1)


def model_dtype(model: torch.nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype
