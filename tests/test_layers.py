"""Layers import one way: no module of ``invaudit`` imports a layer above its own.

=====  ==========  ==============================================================
rank   layer       modules (``invaudit.`` + name; a package counts with all below)
=====  ==========  ==============================================================
0      base        ``_version``, ``errors``, ``atomic`` (atomic writes, file
                   sha256), ``outputs``, ``devices``, ``memory``, ``progress``,
                   ``figures``
                   (figure helpers attacks and reports share)
1      data        ``data``
1      models      ``models``
2      zoo         ``zoo`` (resolves packed model files)
3      api         ``invaudit`` itself (``__init__``: ``load_model``, ``build``)
4      training    ``training``
5      attacks     ``attacks`` (the probe's fitting included: ``probe_fit``)
6      reports     ``reports``
7      cli         ``cli``, ``__main__`` (may import anything)
=====  ==========  ==============================================================

A module may import its own layer and any layer of a lower rank; layers of the
same rank (``data``, ``models``) stay independent of each other.  Every import
counts: module level, inside functions, under ``TYPE_CHECKING``, relative or
absolute.  docs/architecture.md holds the same table (a test below keeps the
two equal), and a module that is in no row fails until someone places it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "invaudit"
DOC = ROOT / "docs" / "architecture.md"

#: (rank, layer, top-level names under ``invaudit``); ``""`` is the package itself.
LAYERS: list[tuple[int, str, tuple[str, ...]]] = [
    (0, "base", ("_version", "errors", "atomic", "outputs", "devices", "memory", "progress",
                 "figures")),
    (1, "data", ("data",)),
    (1, "models", ("models",)),
    (2, "zoo", ("zoo",)),
    (3, "api", ("",)),
    (4, "training", ("training",)),
    (5, "attacks", ("attacks",)),
    (6, "reports", ("reports",)),
    (7, "cli", ("cli", "__main__")),
]

_LAYER_OF = {name: (rank, layer) for rank, layer, names in LAYERS for name in names}


@dataclass(frozen=True)
class Violation:
    module: str
    line: int
    target: str
    source_layer: str
    target_layer: str

    def __str__(self) -> str:
        return (
            f"{self.module}:{self.line} imports {self.target} "
            f"({self.source_layer} may not import {self.target_layer})"
        )


def layer_of(module: str) -> tuple[int, str] | None:
    """``(rank, layer)`` of a dotted ``invaudit`` module name; None when it is in no row."""
    parts = module.split(".")
    assert parts[0] == "invaudit", module
    return _LAYER_OF.get(parts[1] if len(parts) > 1 else "")


def module_name(path: Path, package: Path = PACKAGE) -> str:
    """The dotted name of ``path`` (a ``.py`` file under ``package``)."""
    rel = path.relative_to(package.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """``(line, dotted name)`` of every ``invaudit`` module that ``source`` imports.

    ``from X import name`` yields ``X.name`` when ``X`` is the package itself
    (``from .. import zoo`` imports the zoo; ``from .. import __version__`` the
    package), else ``X``: below the top level, the layer is the same either way.
    """
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "invaudit":
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target.split(".")[0] != "invaudit":
                continue
            if target == "invaudit":
                for alias in node.names:
                    name = alias.name
                    yield node.lineno, f"invaudit.{name}" if name in _LAYER_OF else target
            else:
                yield node.lineno, target


def check_source(source: str, module: str, is_package: bool = False) -> list[Violation]:
    """The imports in ``source`` (the text of ``module``) that reach a higher layer."""
    own = layer_of(module)
    assert own is not None, f"{module} is in no layer"
    found = []
    for line, target in imported_modules(source, module, is_package):
        theirs = layer_of(target)
        if theirs is None:
            continue  # an unplaced target is reported as an unplaced module of its own
        if theirs[1] != own[1] and theirs[0] >= own[0]:
            found.append(Violation(module, line, target, own[1], theirs[1]))
    return found


def package_modules() -> list[tuple[str, Path]]:
    return sorted((module_name(path), path) for path in PACKAGE.rglob("*.py"))


def test_every_module_is_in_a_layer() -> None:
    unplaced = sorted({m for m, _ in package_modules() if layer_of(m) is None})
    assert not unplaced, (
        "modules in no layer; add them to LAYERS in tests/test_layers.py and to the "
        f"table in docs/architecture.md: {unplaced}"
    )


def test_every_layer_names_modules_that_exist() -> None:
    tops = {m.split(".")[1] if "." in m else "" for m, _ in package_modules()}
    stale = sorted(name or "invaudit" for name in _LAYER_OF if name not in tops)
    assert not stale, f"LAYERS names modules that are gone: {stale}"


def test_no_module_imports_a_higher_layer() -> None:
    violations = []
    for module, path in package_modules():
        if layer_of(module) is None:
            continue  # test_every_module_is_in_a_layer reports it
        violations += check_source(path.read_text(), module, path.name == "__init__.py")
    assert not violations, "imports against the layer order (see docs/architecture.md):\n" + (
        "\n".join(f"  {v}" for v in violations)
    )


# -- the checker itself can fail ---------------------------------------------------------


def test_checker_reports_a_lower_layer_importing_a_higher_one() -> None:
    source = (
        "import torch\n"
        "from ..errors import ConfigError\n"
        "from invaudit.reports.render_md import fmt_percent\n"
        "def f():\n"
        "    from ..attacks import probe_fit\n"
        "    import invaudit.cli.app\n"
        "    from .. import zoo\n"
        "    from .. import __version__\n"
        "    from ..data import audit\n"
    )
    found = check_source(source, "invaudit.models.fake")
    assert [(v.line, v.target, v.target_layer) for v in found] == [
        (3, "invaudit.reports.render_md", "reports"),
        (5, "invaudit.attacks", "attacks"),
        (6, "invaudit.cli.app", "cli"),
        (7, "invaudit.zoo", "zoo"),
        (8, "invaudit", "api"),
        (9, "invaudit.data", "data"),  # a peer of the same rank
    ]
    assert "invaudit.models.fake:3 imports invaudit.reports.render_md" in str(found[0])


def test_checker_allows_own_and_lower_layers() -> None:
    source = (
        "from . import base\n"
        "from .probe_fit import fit_probe\n"
        "from ..figures import image_grid_figure\n"
        "from ..zoo import resolve_model_path\n"
        "from .. import __version__\n"
        "import invaudit.models.checkpoint\n"
    )
    assert check_source(source, "invaudit.attacks.fake") == []
    # In a package's __init__, "." is the package itself.
    assert check_source("from .layers import Squeeze\n", "invaudit.models", True) == []
    assert check_source("from .cli import main\n", "invaudit.__main__") == []


def test_an_unplaced_module_is_reported() -> None:
    assert layer_of("invaudit.newthing") is None
    assert layer_of("invaudit.newpkg.part") is None


# -- the doc's table is this table -----------------------------------------------------


def test_docs_table_matches() -> None:
    text = DOC.read_text()
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].isdigit():
            names = tuple(
                "" if name == "invaudit" else name.removeprefix("invaudit.")
                for name in re.findall(r"`([\w.]+)`", cells[2])
            )
            rows.append((int(cells[0]), cells[1], names))
    assert rows == LAYERS
