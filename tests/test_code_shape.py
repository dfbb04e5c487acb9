"""Functions stay small enough to read (issue 16): none in ``invaudit/`` is over 80 lines.

Complexity is ruff's C901 (pyproject.toml); this holds the length, which ruff does not.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "invaudit"
MAX_LINES = 80


def function_lengths(source: str) -> list[tuple[str, int, int]]:
    """``(name, first line, length)`` of every function and method, decorators excluded."""
    return [
        (node.name, node.lineno, node.end_lineno - node.lineno + 1)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno
    ]


def test_the_measure_counts_a_long_function() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    (name, _, length), = function_lengths(f"def long():\n{body}\n")
    assert (name, length) == ("long", MAX_LINES + 1)


def test_no_function_in_the_package_is_over_80_lines() -> None:
    long = [
        f"{path.relative_to(PACKAGE.parent)}:{line} {name} ({length} lines)"
        for path in sorted(PACKAGE.rglob("*.py"))
        for name, line, length in function_lengths(path.read_text(encoding="utf-8"))
        if length > MAX_LINES
    ]
    assert not long, "split these along their seams:\n" + "\n".join(long)
