"""``invaudit --help`` starts fast and every command shows an example (issue 14, item 16).

The CLI modules import no torch at import time; the names they offer without
it are copies, held here to the registries they come from.
"""

from __future__ import annotations

import inspect
import shlex
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from invaudit.cli import main
from invaudit.cli.app import EXAMPLES
from invaudit.cli.options import SUITE_NAMES
from invaudit.cli.train import (
    ADVERSARIAL,
    DATASETS,
    INDEPENDENCE,
    MLE_SCOPES,
    NUISANCE_OBJECTIVES,
)
from invaudit.progress import BarProgress, EpochProgress

HEAVY = ("torch", "torchvision", "foolbox", "pandas", "matplotlib", "numpy")


def test_the_cli_imports_no_heavy_module() -> None:
    code = "import sys, invaudit, invaudit.cli\n" + (
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()  # fmt: skip
    assert loaded == "", f"imported at start-up: {loaded}"


@pytest.mark.parametrize("name", sorted(main.commands))
def test_every_command_shows_an_example_that_parses(name: str) -> None:
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0, result.output
    example = EXAMPLES[name]
    assert f"Example:\n    {example}" in result.output  # click's \b keeps the line whole
    args = shlex.split(example)
    assert args[:2] == ["invaudit", name]
    command = main.commands[name]
    command.make_context(name, args[2:])  # parses options and types; runs nothing
    main_help = CliRunner().invoke(main, ["--help"]).output
    assert "Example:\n    invaudit report" in main_help


def test_the_copied_names_match_their_registries() -> None:
    from invaudit.reports.suite import SUITE_NAMES as suites
    from invaudit.training import adversarial, losses
    from invaudit.training.settings import DEFAULT_ARCH

    assert DATASETS == tuple(DEFAULT_ARCH)
    assert SUITE_NAMES == tuple(suites)
    assert INDEPENDENCE == tuple(losses.INDEPENDENCE)
    assert NUISANCE_OBJECTIVES == tuple(losses.NUISANCE_OBJECTIVES)
    assert MLE_SCOPES == tuple(losses.MLE_SCOPES)
    assert ADVERSARIAL == tuple(adversarial.ADVERSARIAL)


def test_methods_lists_every_registered_attack() -> None:
    """`invaudit methods` reads the registry, so a new attack needs no CLI edit."""
    from invaudit.attacks import ATTACKS

    result = CliRunner().invoke(main, ["methods"])
    assert result.exit_code == 0, result.output
    listed = [
        line.split(" ", 1)[0] for line in result.output.splitlines() if not line.startswith(" ")
    ]
    assert listed == list(ATTACKS)
    assert "pgd-linf (sensitivity, linf; any model" in result.output
    assert "metamer (invariance; needs F^-1" in result.output


def _public_methods(cls: type) -> set[str]:
    return {n for n, v in vars(cls).items() if inspect.isfunction(v) and not n.startswith("_")}


def test_the_progress_bars_answer_every_callback() -> None:
    from invaudit.attacks.base import Progress
    from invaudit.training.trainer import Callbacks

    assert _public_methods(Callbacks) <= _public_methods(EpochProgress)
    assert _public_methods(Progress) <= _public_methods(BarProgress)
    for cls, base in ((EpochProgress, Callbacks), (BarProgress, Progress)):
        for method in _public_methods(base):
            assert inspect.signature(getattr(cls, method)).parameters.keys() == (
                inspect.signature(getattr(base, method)).parameters.keys()
            ), (cls.__name__, method)


@pytest.mark.parametrize("name", sorted(main.commands))
def test_every_seed_option_takes_the_generators_range_only(name: str) -> None:
    seeds = [p for p in main.commands[name].params if p.name == "seed"]
    for param in seeds:
        assert isinstance(param.type, click.IntRange), name
        assert (param.type.min, param.type.max) == (0, 2**32 - 1), name
