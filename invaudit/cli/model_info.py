"""``invaudit archs``, ``check`` and ``info``: what a model is, and how exact its inverse is.

torch and the models are imported inside the commands, so that ``invaudit
--help`` starts in a fraction of a second.
"""

from __future__ import annotations

import json
from typing import Any

import click

from ..errors import ConfigError
from ..zoo import resolve_model_path
from .app import main
from .options import (
    device_option,
    dtype_option,
    model_option,
    parse_pairs,
    seed_option,
    set_option,
)


@main.command()
def archs() -> None:
    """List the architectures and the config keys each accepts (with defaults)."""
    from ..models import ARCHS, default_config

    for name in ARCHS:
        keys = ", ".join(f"{k}={v}" for k, v in default_config(name).items())
        click.echo(f"{name}: {keys}")


@main.command()
@click.option("--arch", default=None, help="Architecture name (see `invaudit archs`).")
@model_option(
    required=False,
    help="A checkpoint (or zoo:NAME) to check instead of a freshly built --arch.",
)
@set_option
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(min=1))
@seed_option
@dtype_option(auto=False)
@device_option()
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
    import torch

    from ..models.check import check_invertibility

    if (arch is None) == (model_path is None):
        raise ConfigError("check: give exactly one of --arch NAME or --model CKPT")
    torch.manual_seed(seed)
    model, target = _model_to_check(arch, model_path, settings, device, dtype)
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(batch_size, *model.input_shape, generator=gen, dtype=_dtype_of(model))
    x = x.to(target)
    if model_path is None:
        model.train()
        with torch.no_grad():
            model(x)  # data-dependent initialisation (ActNorm), as a first training batch would
    model.eval()
    ok = _echo_inverse(model, check_invertibility(model, x), f"{dtype} on {target}")
    _echo_metamer_gain(model, x, gen, seed)
    if not ok:
        raise SystemExit(1)


def _model_to_check(
    arch: str | None, model_path: str | None, settings: tuple[str, ...], device: str, dtype: str
) -> tuple[Any, Any]:
    """The model ``check`` measures (built from --arch or read from --model), and its device."""
    import torch

    from ..devices import resolve_device
    from ..models import InvertibleClassifier, build
    from ..models.checkpoint import load_model

    target = resolve_device(device)
    if model_path is not None:
        model = load_model(resolve_model_path(model_path))
    else:
        model = build(arch, **parse_pairs(settings, "--set"))
    if not isinstance(model, InvertibleClassifier):  # e.g. oracle-cnn: nothing to invert
        raise ConfigError(f"check: {model.arch} is not invertible; there is no inverse to measure")
    return model.to(device=target, dtype=getattr(torch, dtype)), target


def _echo_inverse(model: Any, result: Any, where: str) -> bool:
    """Print the model and how exact its inverse is; whether it is within tolerance."""
    from ..models.check import RECONSTRUCTION_TOLERANCE

    params = sum(p.numel() for p in model.parameters())
    click.echo(
        f"{model.arch}: input {list(model.input_shape)}, d={model.dim}, "
        f"classes={model.num_classes}, parameters={params:,}, {where}"
    )
    ok = result.reconstruction_max_abs <= RECONSTRUCTION_TOLERANCE
    click.echo(
        f"  max |F^-1(F(x)) - x|   {result.reconstruction_max_abs:.2e}  "
        f"(tolerance {RECONSTRUCTION_TOLERANCE:.0e}: {'ok' if ok else 'FAILED'})"
    )
    click.echo(f"  mean |F^-1(F(x)) - x|  {result.reconstruction_mean_abs:.2e}")
    click.echo(f"  max |F(F^-1(z)) - z|   {result.latent_max_abs:.2e}")
    click.echo(f"  mean log|det dF/dx|    {result.logdet_mean:.3f}  over {result.samples} inputs")
    return ok


def _echo_metamer_gain(model: Any, x: Any, gen: Any, seed: int) -> None:
    """Print the gain of F^-1 at metamers of the batch: every input's z_s with the z_n
    of another (random) input."""
    import torch

    from ..models.stability import inverse_gain
    from ..reports.sanity import MAX_INVERSE_GAIN

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


def _dtype_of(model: Any) -> Any:
    """The dtype of ``model``'s parameters."""
    return next(model.parameters()).dtype


@main.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False), metavar="CKPT|zoo:NAME")
def info(checkpoint: str) -> None:
    """Describe a checkpoint: arch, dataset, loss, training and final metrics."""
    from ..models.checkpoint import load_model, read_checkpoint

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
