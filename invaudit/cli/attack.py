"""``invaudit attack``: run one audit on one checkpoint, print it, optionally write it.

Imports of torch, foolbox and the attacks happen inside the command, so that
``invaudit --help`` starts in a fraction of a second.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import click

from ..errors import ConfigError
from ..progress import BarProgress
from .app import main
from .options import (
    audit_model_options,
    data_dir_option,
    device_option,
    download_option,
    dtype_option,
    oracle_option,
    parse_pairs,
    path_option,
    progress_option,
    seed_option,
    stack,
)
from .ranks import join_ranks, rank_zero_first

if TYPE_CHECKING:
    from ..attacks.setup import AuditSetup, LoadedModel
    from ..training.distributed import DistContext


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


def setup_from_options(
    loaded: LoadedModel, opts: dict[str, Any], dist: DistContext | None = None
) -> AuditSetup:
    """The audit set-up the shared options (--device, --dtype, --oracle, data) ask for;
    under torchrun rank 0 prepares first (it alone may download)."""
    from ..attacks.setup import prepare_audit

    return rank_zero_first(
        dist,
        lambda: prepare_audit(
            loaded,
            device=opts["device"],
            dtype=opts["dtype"],
            oracle_path=opts["oracle_path"],
            data_dir=opts["data_dir"],
            download=opts["download"],
        ),
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
    for key, value in parse_pairs(opts.get("option") or (), "--option").items():
        chosen[key.replace("-", "_")] = value
    return chosen


def summary_lines(method: str, metrics: dict[str, Any]) -> list[str]:
    from ..reports.formats import fmt_value

    rows: list[tuple[str, str]] = []
    for key, value in metrics.items():
        if isinstance(value, dict):
            rows += [(f"{key}[{k}]", fmt_value(v)) for k, v in value.items()]
        else:
            rows.append((key, fmt_value(value)))
    width = max(len(k) for k, _ in rows)
    return [method] + [f"  {k:<{width}}  {v}" for k, v in rows]


#: The options that tune a method (given only where the user sets them).
method_option_flags = stack(
    click.option("--steps", type=int, help="interpolate: path points; PGD/C&W: steps."),
    click.option("--epsilons", help="ε-attacks: comma-separated, e.g. 0.1,0.2,0.3."),
    click.option("--examples", type=int, help="Examples kept for the figure."),
    click.option("--probe-hidden", type=int, help="probe/boundary: probe width."),
    click.option("--probe-epochs", type=int, help="probe/boundary: probe epochs."),
    click.option("--train-n", type=int, help="probe/boundary: training examples."),
    click.option("--grid", type=int, help="boundary: grid points per axis."),
    click.option(
        "--option", multiple=True, metavar="KEY=VALUE", help="Any other method option (repeatable)."
    ),
)


@main.command()
def methods() -> None:
    """List the audit methods: kind, norm, what they need, summary and options."""
    from ..attacks import ATTACKS

    for attack in ATTACKS.values():
        needs = "needs F^-1" if attack.needs_invertible else "any model"
        where = ", ".join(attack.datasets) if attack.datasets else "every dataset"
        norm = f", {attack.norm}" if attack.norm else ""
        click.echo(f"{attack.name} ({attack.kind}{norm}; {needs}; {where}): {attack.summary}")
        options = ", ".join(f"{k}={v}" for k, v in attack.options.items())
        click.echo(f"  options: {options or 'none'}")


@main.command()
@audit_model_options
@click.option(
    "--method",
    required=True,
    metavar="NAME",
    help="The audit to run (`invaudit methods` lists them).",
)
@click.option(
    "--n",
    "--n-examples",
    "n",
    type=int,
    default=None,
    help="Test examples to audit (default: all; under torchrun write --n-examples: torchrun "
    "reads --n as one of its own options).",
)
@seed_option
@click.option("--batch-size", type=int, default=256, show_default=True)
@device_option()
@dtype_option()
@data_dir_option()
@download_option()
@oracle_option
@path_option(
    "--out",
    "Write METHOD.json, METHOD.csv and METHOD*.png here (default: print only). "
    "Files of an earlier invaudit run of the method are replaced, anyone else's never.",
    kind="folder",
)
@method_option_flags
@progress_option
def attack(**opts: Any) -> None:
    """Run one audit (--method) on a model and print its metrics.

    Invariance: metamer, interpolate, probe, and for spheres misaligned and
    boundary (invertible models); feature-match and invariance-eps (any model).
    Sensitivity: the foolbox ε-attacks.  Everything is checked
    before any work starts; with --out the files are written only at the end.
    """
    import torch

    from ..attacks import AuditContext, check_attack, execute, require_invertible
    from ..attacks.setup import read_model
    from ..reports.attack_files import check_attack_out

    name = opts["method"]
    if opts["out"] is not None:
        check_attack_out(opts["out"], name)
    options = method_options(opts)
    loaded = read_model(
        opts["model_path"],
        dataset=opts["dataset"],
        weights=opts["weights"],
        data_dir=opts["data_dir"],
        image_size=opts["image_size"],
    )
    chosen = check_attack(name, loaded.dataset_name, options)
    if chosen.needs_invertible:
        require_invertible(loaded.model, opts["model_path"], name)
    dist = join_ranks(opts)
    setup = setup_from_options(loaded, opts, dist)
    ctx = AuditContext(
        model=setup.model,
        data=setup.data,
        oracle=setup.oracle,
        n=opts["n"],
        seed=opts["seed"],
        batch_size=opts["batch_size"],
        device=setup.device,
        progress=BarProgress(opts["progress"]),
        dist=dist,
    )
    torch.manual_seed(opts["seed"])
    started = time.perf_counter()
    result = execute(chosen, ctx, options)
    seconds = time.perf_counter() - started
    if dist is not None and not dist.is_main:
        return  # rank 0 prints and writes
    result.settings.update(
        seed=opts["seed"],
        batch_size=opts["batch_size"],
        device=str(setup.device),
        dtype=setup.dtype,
        dataset=setup.data.name,
        data_source=setup.data.source,
        oracle=setup.oracle.info() if setup.oracle is not None else None,
    )
    _echo_result(name, result, setup)
    if opts["out"] is not None:
        from ..attacks.setup import model_record
        from ..reports.attack_files import write_attack_files

        written = write_attack_files(
            result, chosen.figures(result), model_record(setup.path, setup.model), opts["out"],
            seconds,
        )  # fmt: skip
        click.echo("wrote " + ", ".join(str(p) for p in written))


def _echo_result(name: str, result: Any, setup: AuditSetup) -> None:
    """The metrics, the oracle and the data on stdout; the model's warnings on stderr."""
    from ..reports.sanity import model_warnings

    for line in summary_lines(name, result.metrics):
        click.echo(line)
    if setup.oracle is not None and not setup.oracle.exact:
        click.echo(f"  oracle: {setup.oracle.description}")
    click.echo(f"  data: {setup.data.source}")
    accuracy = {
        "clean_accuracy": result.metrics.get("clean_accuracy"),  # the ε-attacks measure it
        "dataset": setup.data.name,
        "clean_accuracy_n": result.metrics.get("n"),
    }
    for warning in model_warnings(accuracy):
        click.echo(f"warning: {warning['name']}: {warning['message']}", err=True)
