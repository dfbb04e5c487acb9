"""``invaudit attack``: run one audit on one checkpoint, print it, optionally write it."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click
import torch

from .attacks import ATTACKS, AuditContext, Progress, check_attack, require_invertible
from .attacks.setup import AuditSetup, LoadedModel, model_record, prepare_audit, read_model
from .cli_options import audit_download_option, model_option, oracle_option
from .errors import ConfigError


class BarProgress(Progress):
    """An attack's progress as ``click.progressbar`` on stderr."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = None

    def start(self, label: str, total: int) -> None:
        if self.enabled:
            self.bar = click.progressbar(length=total, label=label, file=sys.stderr, width=24)
            self.bar.__enter__()

    def advance(self, steps: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(steps)

    def finish(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def parse_epsilons(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(
            f"--epsilons expects numbers separated by commas, e.g. 0.1,0.2,0.3; got {text!r}"
        ) from None


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
@click.option("--method", required=True, metavar="NAME", help=f"One of: {', '.join(ATTACKS)}.")
@click.option("--n", type=int, default=None, help="Test examples to audit (default: all).")
@click.option("--seed", type=int, default=0, show_default=True)
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
    help="Write NAME.json, NAME.csv and the figures here (default: print only).",
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
    options = method_options(opts)
    loaded = read_model(opts["model_path"])
    name = opts["method"]
    chosen = check_attack(name, loaded.dataset_name, options)
    if chosen.needs_invertible:
        require_invertible(loaded.model, opts["model_path"], name)
    if opts["out"] is not None and Path(opts["out"]).exists() and not Path(opts["out"]).is_dir():
        raise ConfigError(f"--out {opts['out']} exists and is not a folder")
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
    if opts["out"] is not None:
        from .reports.attack_files import write_attack_files

        written = write_attack_files(
            result, chosen.figures(result), model_record(setup.path, model), opts["out"], seconds
        )
        click.echo("wrote " + ", ".join(str(p) for p in written))
