"""``invaudit attack``: run one audit on one checkpoint, print it, optionally write it.

Imports of torch, foolbox and the attacks happen inside the command, so that
``invaudit --help`` starts in a fraction of a second.
"""

from __future__ import annotations

import json
import math
import time
from typing import TYPE_CHECKING, Any

import click

from .cli_options import (
    METHOD_NAMES,
    audit_download_option,
    model_option,
    oracle_option,
    seed_option,
)
from .errors import ConfigError
from .progress import BarProgress

if TYPE_CHECKING:
    from .attacks.setup import AuditSetup, LoadedModel

__all__ = ["BarProgress", "attack", "method_options", "parse_epsilons", "setup_from_options"]


def parse_epsilons(text: str, option: str = "--epsilons") -> list[float]:
    """``"0.1,0.2"`` → ``[0.1, 0.2]``: at least one finite number >= 0, checked at once
    (before any attack runs), with the same rule the ε-attacks apply."""
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(
            f"{option} expects numbers separated by commas, e.g. 0.1,0.2,0.3; got {text!r}"
        ) from None
    if not values:
        raise ConfigError(f"{option} needs at least one number, e.g. 0.1,0.2,0.3; got {text!r}")
    bad = [v for v in values if not math.isfinite(v) or v < 0]
    if bad:
        raise ConfigError(f"{option} expects finite values >= 0, got {bad[0]!r} in {text!r}")
    return values


def _parse_option(pair: str) -> tuple[str, Any]:
    key, sep, raw = pair.partition("=")
    if not sep or not key:
        raise ConfigError(f"--option expects KEY=VALUE, got {pair!r}")
    try:
        return key.replace("-", "_"), json.loads(raw)
    except json.JSONDecodeError:
        return key.replace("-", "_"), raw


def setup_from_options(loaded: LoadedModel, opts: dict[str, Any]) -> AuditSetup:
    """The audit set-up the shared options (--device, --dtype, --oracle, data) ask for."""
    from .attacks.setup import prepare_audit

    return prepare_audit(
        loaded,
        device=opts["device"],
        dtype=opts["dtype"],
        oracle_path=opts["oracle_path"],
        data_dir=opts["data_dir"],
        download=opts["download"],
    )


def method_options(opts: dict[str, Any]) -> dict[str, Any]:
    """The method options the user actually gave, under the attacks' keyword names."""
    chosen: dict[str, Any] = {}
    named = ("steps", "examples", "probe_hidden", "probe_epochs", "train_n", "grid")
    for key in named:
        if opts.get(key) is not None:
            chosen[key] = opts[key]
    if opts.get("epsilons") is not None:
        chosen["epsilons"] = parse_epsilons(opts["epsilons"])
    for pair in opts.get("option") or ():
        key, value = _parse_option(pair)
        chosen[key] = value
    return chosen


def format_value(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def summary_lines(method: str, metrics: dict[str, Any]) -> list[str]:
    rows: list[tuple[str, str]] = []
    for key, value in metrics.items():
        if isinstance(value, dict):
            rows += [(f"{key}[{k}]", format_value(v)) for k, v in value.items()]
        else:
            rows.append((key, format_value(value)))
    width = max(len(k) for k, _ in rows)
    return [method] + [f"  {k:<{width}}  {v}" for k, v in rows]


@click.command()
@model_option
@click.option("--method", required=True, metavar="NAME", help=f"One of: {', '.join(METHOD_NAMES)}.")
@click.option("--n", type=int, default=None, help="Test examples to audit (default: all).")
@seed_option
@click.option("--batch-size", type=int, default=256, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option(
    "--dtype",
    type=click.Choice(["auto", "float32", "float64"]),
    default="auto",
    show_default=True,
    help="auto: float64 for vector models (cheap, and metamers far outside the data "
    "keep their logits to 1e-10), float32 for images.",
)
@click.option(
    "--data-dir",
    default=None,
    help="Folder with MNIST/raw or FashionMNIST/raw. Default: $INVAUDIT_DATA, "
    "else ~/.cache/invaudit/data. MNIST without its test files there is audited on "
    "the embedded test set (fit on images 0-4999, test on 5000-9999).",
)
@audit_download_option
@oracle_option
@click.option(
    "--out",
    default=None,
    type=click.Path(file_okay=False),
    help="Write METHOD.json, METHOD.csv and METHOD*.png here (default: print only). "
    "Files of an earlier invaudit run of the method are replaced, anyone else's never.",
)
@click.option("--steps", type=int, default=None, help="interpolate: path points; PGD/C&W: steps.")
@click.option("--epsilons", default=None, help="ε-attacks: comma-separated, e.g. 0.1,0.2,0.3.")
@click.option("--examples", type=int, default=None, help="Examples kept for the figure.")
@click.option("--probe-hidden", type=int, default=None, help="probe/boundary: probe width.")
@click.option("--probe-epochs", type=int, default=None, help="probe/boundary: probe epochs.")
@click.option("--train-n", type=int, default=None, help="probe/boundary: training examples.")
@click.option("--grid", type=int, default=None, help="boundary: grid points per axis.")
@click.option(
    "--option", multiple=True, metavar="KEY=VALUE", help="Any other method option (repeatable)."
)
@click.option("--progress/--no-progress", default=True, show_default=True)
def attack(**opts: Any) -> None:
    """Run one audit (--method) on a checkpoint and print its metrics.

    Invariance: metamer, interpolate, probe, and for spheres misaligned and
    boundary.  Sensitivity: the foolbox ε-attacks.  Everything is checked
    before any work starts; with --out the files are written only at the end.
    """
    import torch

    from .attacks import AuditContext, check_attack, require_invertible
    from .attacks.setup import model_record, read_model
    from .reports.attack_files import check_attack_out

    name = opts["method"]
    if opts["out"] is not None:
        check_attack_out(opts["out"], name)
    options = method_options(opts)
    loaded = read_model(opts["model_path"])
    chosen = check_attack(name, loaded.dataset_name, options)
    if chosen.needs_invertible:
        require_invertible(loaded.model, opts["model_path"], name)
    setup = setup_from_options(loaded, opts)
    model, data, oracle, device, dtype = (
        setup.model, setup.data, setup.oracle, setup.device, setup.dtype
    )
    ctx = AuditContext(
        model=model,
        data=data,
        oracle=oracle,
        n=opts["n"],
        seed=opts["seed"],
        batch_size=opts["batch_size"],
        device=device,
        progress=BarProgress(opts["progress"]),
    )
    torch.manual_seed(opts["seed"])
    started = time.perf_counter()
    result = chosen.run(ctx, **options)
    seconds = time.perf_counter() - started
    result.settings.update(
        seed=opts["seed"],
        batch_size=opts["batch_size"],
        device=str(device),
        dtype=dtype,
        dataset=data.name,
        data_source=data.source,
        oracle=oracle.info() if oracle is not None else None,
    )
    for line in summary_lines(name, result.metrics):
        click.echo(line)
    if oracle is not None and not oracle.exact:
        click.echo(f"  oracle: {oracle.description}")
    click.echo(f"  data: {data.source}")
    from .reports.sanity import model_warnings

    accuracy = {"clean_accuracy": result.metrics.get("clean_accuracy"), "dataset": data.name,
                "clean_accuracy_n": result.metrics.get("n")}  # the ε-attacks measure it
    for warning in model_warnings(accuracy):
        click.echo(f"warning: {warning['name']}: {warning['message']}", err=True)
    if opts["out"] is not None:
        from .reports.attack_files import write_attack_files

        written = write_attack_files(
            result, chosen.figures(result), model_record(setup.path, model), opts["out"], seconds
        )
        click.echo("wrote " + ", ".join(str(p) for p in written))
