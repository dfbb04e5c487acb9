"""``invaudit zoo``: list the bundled models, show one card, print a path, verify hashes."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import click

from ..errors import ConfigError
from ..zoo import ZooEntry, verify_entry, zoo_dir, zoo_entries, zoo_entry
from .app import main

if TYPE_CHECKING:
    import pandas as pd

#: How the card's metric keys read in a table; others are shown under their own key.
METRIC_LABELS = {
    "logit_test_error": "logit test error",
    "logit_train_error": "logit train error",
    "probe_nuisance_test_error": "probe on z_n, test error",
    "probe_nuisance_train_error": "probe on z_n, train error",
}


def percent(value: Any) -> str:
    """A fraction as a percentage with two decimals (errors under 1 % are common here)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "n/a"
    if 0 < abs(value) < 5e-5:  # a few errors in 100k must not read as 0.00%
        return f"{100 * value:.1g}%"
    return f"{100 * value:.2f}%"


def _cell(text: Any) -> str:
    # One line that cannot break a pipe table.
    return " ".join(str(text).split()).replace("|", "\\|")


def zoo_table(entries: list[ZooEntry]) -> pd.DataFrame:
    """One row per model: what it is, its two headline errors, its size."""
    import pandas as pd

    rows = [
        {
            "name": e.name,
            "role": e.role,
            "dataset": e.dataset,
            "loss": e.loss,
            "logit test err": percent(e.metrics.get("logit_test_error")),
            "probe z_n test err": percent(e.metrics.get("probe_nuisance_test_error")),
            "size (KB)": f"{e.bytes / 1024:.0f}",
            "summary": _cell(e.summary),
        }
        for e in entries
    ]
    return pd.DataFrame(rows)


def _code_block(text: str) -> list[str]:
    return ["```", str(text).strip(), "```"]


def card_markdown(entry: ZooEntry) -> str:
    """The card as Markdown: facts, metrics in %, the commands as code blocks, notes."""
    facts = [
        ("selector", f"`{entry.selector}`"),
        ("role", entry.role),
        ("dataset", entry.dataset),
        ("arch", entry.arch),
        ("loss", entry.loss),
        ("file", f"{entry.path} ({entry.bytes / 1024:.0f} KB)"),
        ("sha256", f"`{entry.sha256}`"),
        ("epochs", entry.epochs),
        ("training time", f"{entry.wall_seconds:.0f} s ({entry.wall_seconds / 3600:.1f} h)"),
        ("hardware", entry.hardware),
        ("data", entry.data),
    ]
    lines = [f"# {entry.name}", "", _cell(entry.summary), ""]
    lines += [_table(facts, ("field", "value")), "", "## Metrics", ""]
    commands: list[tuple[str, str]] = []
    metrics = []
    for key, value in entry.metrics.items():
        if key.endswith("_command"):  # e.g. probe_command: a code block below, if any
            if value:
                commands.append((key, str(value)))
        else:
            metrics.append((METRIC_LABELS.get(key, key), percent(value)))
    lines += [_table(metrics, ("metric", "value")) if metrics else "none recorded", ""]
    lines += ["## Training command", "", *_code_block(entry.command), ""]
    for key, value in commands:
        lines += [f"## {key.replace('_', ' ').capitalize()}", "", *_code_block(value), ""]
    if str(entry.notes).strip():
        lines += ["## Notes", "", str(entry.notes).strip(), ""]
    return "\n".join(lines).rstrip() + "\n"


def _table(rows: list[tuple[str, Any]], columns: tuple[str, str]) -> str:
    import pandas as pd

    frame = pd.DataFrame([(_cell(k), _cell(v)) for k, v in rows], columns=list(columns))
    return frame.to_markdown(index=False, disable_numparse=True)


@main.command()
@click.argument("name", required=False)
@click.option("--path", "path_only", is_flag=True, help="Print only the checkpoint's path.")
@click.option(
    "--verify", is_flag=True, help="Check each checkpoint's size and sha256 against its card."
)
def zoo(name: str | None, path_only: bool, verify: bool) -> None:
    """List the bundled models, or show the card of NAME.

    Any command taking a checkpoint takes zoo:NAME too, e.g.
    `invaudit attack --model zoo:mnist-ce --method probe`.  $INVAUDIT_ZOO_DIR
    replaces the bundled zoo folder.
    """
    if path_only and name is None:
        raise ConfigError("zoo --path needs a model NAME, e.g. invaudit zoo mnist-ce --path")
    entries = [zoo_entry(name)] if name is not None else zoo_entries()
    if verify:
        for entry in entries:
            verify_entry(entry)
            if not path_only:
                click.echo(f"ok  {entry.name}  sha256 {entry.sha256[:16]}…  {entry.bytes} bytes")
    if path_only:
        click.echo(str(entries[0].path))
        return
    if not entries:
        click.echo(f"the zoo at {zoo_dir()} has no models")
        return
    if verify:
        click.echo(f"verified {len(entries)} model(s) in {zoo_dir()}")
    elif name is not None:
        click.echo(card_markdown(entries[0]), nl=False)
    else:
        click.echo(zoo_table(entries).to_markdown(index=False, disable_numparse=True))
