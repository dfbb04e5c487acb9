"""Options more than one command takes are declared once, in invaudit/cli/options.py (issue 16)."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

import invaudit.cli
from invaudit.cli import main
from invaudit.cli.options import parse_pairs
from invaudit.errors import ConfigError

CLI_DIR = Path(invaudit.cli.__file__).parent
#: Options that several commands take; each must have exactly one click.option(...).
SHARED = ("--device", "--dtype", "--data-dir", "--download", "--seed", "--model", "--oracle",
          "--progress", "--set")  # fmt: skip


def _declared_flags() -> Counter[str]:
    """How often each long flag is the first argument of a ``click.option(...)`` call."""
    counts: Counter[str] = Counter()
    for path in sorted(CLI_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if not (node.func.attr == "option" and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "click"):  # fmt: skip
                continue
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                counts[first.value.split("/")[0]] += 1
    return counts


@pytest.mark.parametrize("flag", SHARED)
def test_every_shared_option_is_declared_once(flag: str) -> None:
    counts = _declared_flags()
    assert counts[flag] == 1, f"{flag} is declared {counts[flag]} times in {CLI_DIR}"


def test_the_shared_options_are_used_by_several_commands() -> None:
    for flag in ("--device", "--dtype", "--data-dir", "--seed"):
        users = [name for name, command in main.commands.items()
                 if any(flag in p.opts for p in command.params)]  # fmt: skip
        assert len(users) >= 2, (flag, users)


def test_the_one_key_value_parser() -> None:
    assert parse_pairs(["blocks=8", "coupling=affine", "x=[1, 2]", "e=a=b"], "--set") == {
        "blocks": 8, "coupling": "affine", "x": [1, 2], "e": "a=b",
    }  # fmt: skip
    for bad in ("blocks", "=8"):
        with pytest.raises(ConfigError, match=r"^--option expects KEY=VALUE"):
            parse_pairs([bad], "--option")


def test_a_bad_attack_option_is_one_line_exit_2() -> None:
    result = CliRunner().invoke(
        main, ["attack", "--model", "zoo:mnist-ce", "--method", "probe", "--option", "steps"]
    )
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == "invaudit: error: --option expects KEY=VALUE, got 'steps'"
