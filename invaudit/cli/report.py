"""``invaudit report``, ``compare`` and ``gate``: audit suites, report folders, CI exit codes.

Exit codes: 0 the report was written and every gate check passed; 1 a gate
check failed (the report is still written); 2 bad input, found before any
attack runs wherever it can be (among it every output location: --out and
--junit are checked before the first attack).

The suites, attacks and torch are imported inside the commands, so that
``invaudit --help`` starts in a fraction of a second.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import ConfigError
from ..progress import BarProgress
from ..reports.folder import check_out_folder
from ..reports.gate import check_junit_target
from . import options as shared
from .app import main
from .attack import parse_epsilons, setup_from_options
from .options import SUITE_NAMES, path_option, stack
from .ranks import is_helper_rank, join_ranks

if TYPE_CHECKING:
    from ..attacks.setup import AuditSetup
    from ..reports.gate import Check, CheckResult
    from ..reports.runner import SuiteRun
    from ..reports.suite import Suite
    from ..training.distributed import DistContext

#: The options every suite-running command shares (report, compare).
audit_options = stack(
    click.option(
        "--suite",
        type=click.Choice(SUITE_NAMES),
        default="quick",
        show_default=True,
        help="quick: about 2 minutes for an MNIST fiRevNet on 2 idle CPU cores, 5.5 on "
        "busy ones (docs/reports.md); "
        "full: every method at paper-table sizes.",
    ),
    click.option(
        "--n",
        "--n-examples",
        "n",
        type=int,
        default=None,
        help="Cap every step's test examples (under torchrun write --n-examples: torchrun "
        "reads --n as one of its own options).",
    ),
    shared.seed_option,
    click.option("--batch-size", type=int, default=256, show_default=True),
    shared.device_option(),
    shared.dtype_option(),
    shared.oracle_option,
    click.option(
        "--epsilons",
        default=None,
        help="Replace every ε-attack's list, comma-separated (default: per dataset).",
    ),
    click.option(
        "--linf-epsilons",
        default=None,
        help="Replace the L∞ ε-attacks' list only (fgsm, pgd-linf, deepfool-linf).",
    ),
    click.option(
        "--l2-epsilons",
        default=None,
        help="Replace the L2 ε-attacks' list only (pgd-l2, deepfool-l2, cw-l2).",
    ),
    shared.data_dir_option(),
    shared.download_option(),
    shared.progress_option,
)

#: The options of a CI gate (report, gate).
gate_options = stack(
    click.option(
        "--fail-if",
        multiple=True,
        metavar="'METHOD.METRIC OP VALUE'",
        help="Exit 1 when this holds, e.g. 'probe.nuisance_accuracy > 0.5' (repeatable).",
    ),
    path_option("--policy", "TOML file of checks (fail_if = [...] and/or [[check]] tables)."),
    path_option(
        "--junit",
        "Write one JUnit test case per check here (a new file, or one an "
        "earlier invaudit gate wrote; any other file is refused).",
    ),
)


def echo_err(line: str) -> None:
    """One line on stderr (from rank 0 only, under torchrun)."""
    if not is_helper_rank():
        click.echo(line, err=True)


def echo_headline(record: dict[str, Any]) -> None:
    """The report's headline table and its warnings, for the terminal."""
    from ..reports.render_md import headline_frame, title_text

    click.echo(title_text(record))
    click.echo(headline_frame(record).to_markdown(index=False, tablefmt="simple"))
    for warning in record["warnings"]:
        click.echo(f"warning: {warning['name']}: {warning['message']}")


def echo_verdict(record: dict[str, Any], label: str = "") -> None:
    """The report's verdict paragraph, wrapped for the terminal."""
    import textwrap

    from ..reports.verdict import verdict_text

    head = f"verdict ({label}): " if label else "verdict: "
    click.echo(textwrap.fill(head + verdict_text(record), width=100, subsequent_indent="  "))


def echo_data_source(setup: Any, label: str = "") -> None:
    """One line on stderr saying where the audited examples come from (always shown)."""
    where = f" ({label})" if label else ""
    echo_err(f"data{where}: {setup.data.name}, {setup.data.source}")


def chosen_epsilons(opts: dict[str, Any]) -> list[float] | dict[str, list[float]] | None:
    """``--epsilons`` for every norm, or ``--linf-epsilons``/``--l2-epsilons`` per norm."""
    per_norm = {
        norm: parse_epsilons(opts[f"{norm}_epsilons"], f"--{norm}-epsilons")
        for norm in ("linf", "l2")
        if opts.get(f"{norm}_epsilons") is not None
    }
    if opts["epsilons"] is not None:
        if per_norm:
            raise ConfigError("give --epsilons or --linf-epsilons/--l2-epsilons, not both")
        return parse_epsilons(opts["epsilons"])
    return per_norm or None


def planned_audit(
    path: str, opts: dict[str, Any], weights: str | None = None
) -> tuple[Any, Suite]:
    """The model (with --dataset, and ``weights`` for a py: factory) and the suite it
    gets, checked without touching data."""
    from ..attacks.setup import read_model
    from ..reports.suite import plan_suite

    loaded = read_model(
        path,
        dataset=opts.get("dataset"),
        weights=weights,
        data_dir=opts.get("data_dir"),
        image_size=opts.get("image_size"),
    )
    epsilons = chosen_epsilons(opts)
    suite = plan_suite(
        opts["suite"],
        loaded.dataset_name,
        invertible=loaded.invertible,
        n=opts["n"],
        epsilons=epsilons,
    )
    return loaded, suite


def run_audit(
    setup: AuditSetup,
    suite: Suite,
    opts: dict[str, Any],
    warn: Callable[[str], None],
    dist: DistContext | None = None,
) -> SuiteRun:
    """Run ``suite`` as the shared options ask: seed, batch size, progress on stderr;
    sharded over ``dist``'s processes under torchrun."""
    from ..reports.runner import run_suite

    return run_suite(
        setup,
        suite,
        seed=opts["seed"],
        batch_size=opts["batch_size"],
        progress=BarProgress(opts["progress"]),
        log=echo_err if opts["progress"] else None,
        warn=warn,
        dist=dist,
    )


def check_junit_path(junit: str | None) -> None:
    """Refuse a --junit that is a folder, unwritable, or a file invaudit did not write."""
    if junit is not None:
        check_junit_target(junit)


def apply_gate(
    checks: Sequence[Check],
    report: dict[str, Any],
    junit: str | None,
    where: str,
    results: Sequence[CheckResult] | None = None,
) -> int:
    """Evaluate ``checks`` on ``report`` (unless ``results`` holds their evaluation),
    print them, write JUnit; the exit code."""
    from ..reports.gate import evaluate, format_results, gate_exit_code, write_junit

    if not checks:
        return 0
    if results is None:
        results = evaluate(checks, report)
    for line in format_results(results):
        click.echo(line)
    if junit is not None:
        write_junit(results, junit, suite_name=f"invaudit gate: {where}")
    code = gate_exit_code(results)
    failed = sum(r.failed for r in results)
    click.echo(f"gate: {len(results) - failed} passed, {failed} failed", err=code != 0)
    return code


@main.command()
@shared.audit_model_options
@path_option(
    "--out",
    "Report folder: new, empty, or an earlier invaudit report holding nothing else "
    "(then replaced as a whole).",
    kind="either",
    required=True,
)
@audit_options
@gate_options
@click.pass_context
def report(ctx: click.Context, **opts: Any) -> None:
    """Audit one model with a suite and write report.json, .md, .html, CSVs and figures.

    Invariance: metamers, interpolation, the nuisance probe (and Example 6 and
    Fig. 3 for spheres) for invertible models; feature matching and Tramèr et
    al.'s ε-moves for every model.  Sensitivity: foolbox FGSM and PGD (L∞, L2) over the
    dataset's ε list.  With --fail-if / --policy the command is a CI gate:
    exit 1 when a check fails, 2 for bad input (before any attack runs).
    """
    from ..reports.attack_files import json_safe
    from ..reports.gate import evaluate, gate_record
    from ..reports.gate_plan import read_checks, validate_plan
    from ..reports.report_files import write_report

    check_out_folder(opts["out"])
    check_junit_path(opts["junit"])
    checks = read_checks(opts["fail_if"], opts["policy"])
    loaded, suite = planned_audit(opts["model_path"], opts, opts["weights"])
    validate_plan(checks, suite, invertible=loaded.invertible)
    dist = join_ranks(opts)
    setup = setup_from_options(loaded, opts, dist)
    validate_plan(checks, suite, invertible=loaded.invertible, data=setup.data)
    echo_data_source(setup)
    run = run_audit(setup, suite, opts, warn=echo_err, dist=dist)
    if is_helper_rank():
        return  # rank 0 judges, writes and prints
    # The gate is judged before the files are written, so report.md and report.html
    # state its verdict and every failed check (the CI job summary shows report.md).
    results = evaluate(checks, run.report) if checks else None
    if results is not None:
        run.report["gate"] = json_safe(gate_record(results))
    else:
        run.report.pop("gate", None)
    folder = write_report(run, opts["out"])
    echo_headline(run.report)
    click.echo(f"wrote {folder / 'report.html'} (and report.json, report.md, CSVs, figures)")
    code = apply_gate(checks, run.report, opts["junit"], opts["model_path"], results)
    click.echo("")
    echo_verdict(run.report)
    ctx.exit(code)


@main.command()
@click.argument(
    "models", nargs=-1, required=True, type=click.Path(dir_okay=False), metavar="MODEL..."
)
@path_option(
    "--out",
    "Comparison folder: new, empty, or an earlier invaudit comparison holding "
    "nothing else (then replaced as a whole).",
    kind="either",
    required=True,
)
@click.option(
    "--label",
    "labels",
    multiple=True,
    help="A name per model, in order (default: file stems; NAME for zoo:NAME).",
)
@shared.dataset_option
@shared.weights_option
@audit_options
def compare(models: tuple[str, ...], labels: tuple[str, ...], **opts: Any) -> None:
    """Audit each model with the same suite and seed; tables and figures side by side.

    A MODEL is what `invaudit report --model` takes: a checkpoint, zoo:NAME, a
    TorchScript or torch.export file, or py:package.module:function; --dataset
    applies to every model that is not a checkpoint, --weights to the one py: model
    (given with exactly one).

    Writes LABEL/report.* for every model, then compare.csv (every number with
    its sample count), compare.md, compare.html and figures/compare-*.png
    (Fig. 4 and Fig. 6 with the models next to each other).
    """
    from ..reports.compare import labels_for
    from ..reports.report_files import write_comparison

    if len(models) < 2:
        raise ConfigError(f"compare needs at least two checkpoints, got {len(models)}")
    check_out_folder(opts["out"])
    names = labels_for(models, labels)
    weights = weights_by_model(models, opts["weights"])
    planned = [planned_audit(path, opts, weights.get(path)) for path in models]
    datasets = {loaded.dataset_name for loaded, _ in planned}
    if len(datasets) > 1:
        raise ConfigError(
            f"compare needs models of one dataset, got {', '.join(sorted(datasets))}"
        )
    dist = join_ranks(opts)
    setups = [setup_from_options(loaded, opts, dist) for loaded, _ in planned]
    for name, setup in zip(names, setups, strict=True):
        echo_data_source(setup, name)
    runs = {}
    for name, setup, (_, suite) in zip(names, setups, planned, strict=True):
        if opts["progress"]:
            echo_err(f"== {name} ({setup.path})")
        runs[name] = run_audit(
            setup, suite, opts, lambda line, _name=name: echo_err(f"{line} ({_name})"), dist
        )
    if is_helper_rank():
        return  # rank 0 writes and prints
    tables = write_comparison(runs, opts["out"])
    for title, frame in tables.items():
        click.echo(title)
        click.echo(frame.to_markdown(tablefmt="simple"))
        click.echo("")
    click.echo(f"wrote {Path(opts['out']) / 'compare.html'} (and compare.csv, compare.md, "
               "figures, one report folder per model)")
    for name, run in runs.items():
        click.echo("")
        echo_verdict(run.report, name)
    echo_story({name: run.report for name, run in runs.items()})


def weights_by_model(models: Sequence[str], weights: str | None) -> dict[str, str]:
    """``{model: weights}`` for compare: --weights goes with exactly one py: model."""
    if weights is None:
        return {}
    factories = [m for m in models if m.startswith("py:")]
    if len(factories) != 1:
        raise ConfigError(
            f"--weights needs exactly one py:package.module:function model among those "
            f"compared, got {len(factories)}"
        )
    return {factories[0]: weights}


def echo_story(reports: dict[str, Any]) -> None:
    """The comparison's story paragraph (compare.md opens with it), wrapped for the terminal."""
    import textwrap

    from ..reports.story import STORY_LEAD, comparison_story

    story = comparison_story(reports)
    if story:
        text = "story: " + story.removeprefix(STORY_LEAD).strip()
        click.echo("")
        click.echo(textwrap.fill(text, width=100, subsequent_indent="  "))


@main.command()
@click.argument("report_path", metavar="REPORT.json", type=click.Path(dir_okay=False))
@gate_options
@click.pass_context
def gate(ctx: click.Context, report_path: str, **opts: Any) -> None:
    """Check an existing report.json against --fail-if / --policy (exit 0, 1 or 2)."""
    from ..reports.gate_plan import read_checks
    from ..reports.schema import check_report

    checks = read_checks(opts["fail_if"], opts["policy"])
    if not checks:
        raise ConfigError("gate needs at least one --fail-if or a --policy")
    check_junit_path(opts["junit"])
    try:
        text = Path(report_path).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read {report_path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{report_path} is not UTF-8 text, so not a report.json") from None
    try:
        record = check_report(json.loads(text), report_path)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{report_path} is not JSON: {err.msg} (line {err.lineno})") from None
    ctx.exit(apply_gate(checks, record, opts["junit"], report_path))
