"""Model sources: turning a ``--model`` string into a model, without unpickling code.

A source is one of:

- an **invaudit checkpoint** (``.pt``): read with ``torch.load(weights_only=True)``
  by :func:`invaudit.models.checkpoint.load_model` (``zoo:NAME`` selectors are
  resolved to such a file one layer up, by :mod:`invaudit.zoo`);
- a **TorchScript archive** (``torch.jit.save``): ``torch.jit.load``.  Its code is
  TorchScript, run by TorchScript's interpreter, which calls torch operators only;
  its pickles are read by TorchScript's own unpickler, which builds tensors and the
  archive's TorchScript classes, never a Python global;
- a **torch.export program** (``torch.export.save``, ``.pt2``): ``torch.export.load``
  then ``.module()``.  torch's loader is not safe on its own (it unpickles weights
  marked ``use_pickle``, falls back to full unpickling for sample inputs, hands
  expression strings to ``sympy.sympify`` (an ``eval``), ``exec``\\ s guard code and
  loads AOTInductor shared libraries), so :func:`check_pt2` vets the archive first:
  only the members ``torch.export.save`` writes, tensors stored raw, sample inputs
  readable with ``weights_only=True``, expressions and guards in a small arithmetic
  grammar, and only ``aten``/``prims`` operators in the graph;
- ``py:package.module:function``: an explicit opt-in Python factory (imported and
  called with no arguments; the user vouches for the code), with ``--weights FILE``
  (a state dict) read with ``torch.load(weights_only=True)``.

Which one a file is, is decided by its content, never by its extension: a zip with
``*/archive_format`` and ``*/models/`` is a torch.export program, one with
``*/constants.pkl`` or ``*/code/`` a TorchScript archive, one with ``*/data.pkl``
a torch checkpoint; anything else (a plain pickle included) goes to the checkpoint
reader, which refuses what is not tensors and plain data.  Every problem is one
line: :class:`~invaudit.errors.CheckpointError` for a file, ``ConfigError`` for a
``py:`` string.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import json
import logging
import math
import operator
import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..atomic import file_sha256
from ..errors import CheckpointError, ConfigError
from .checkpoint import load_model
from .foreign import ForeignClassifier

#: The kinds of source, as :func:`source_kind` names them (and ``arch`` records them).
CHECKPOINT = "invaudit-checkpoint"
TORCHSCRIPT = "torchscript"
EXPORT = "torch.export"
FACTORY = "py"
FACTORY_PREFIX = "py:"

_FACTORY_SPEC = re.compile(
    r"py:(?P<module>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):(?P<function>[A-Za-z_]\w*)"
)


def error_line(err: BaseException, limit: int = 200) -> str:
    """An exception as one line: TorchScript's traceback reduced to its last line."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    text = lines[-1] if "TorchScript" in lines[0] and len(lines) > 1 else lines[0]
    return " ".join(text.split())[:limit]


def is_factory(source: object) -> bool:
    """Whether ``source`` is a ``py:package.module:function`` string."""
    return isinstance(source, str) and source.startswith(FACTORY_PREFIX)


def _zip_members(path: str | os.PathLike) -> list[str] | None:
    """The member names of a zip file (None: not a readable zip, or no such file)."""
    try:
        if not Path(path).is_file() or not zipfile.is_zipfile(path):
            return None
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (OSError, zipfile.BadZipFile, ValueError):
        return None


def source_kind(source: str | os.PathLike) -> str:
    """:data:`FACTORY`, :data:`EXPORT`, :data:`TORCHSCRIPT` or :data:`CHECKPOINT`, by content.

    A file that is no zip (a plain pickle, a missing file) counts as a checkpoint, so
    the checkpoint reader says what is wrong with it; a zip of none of the three kinds
    is refused here.
    """
    if is_factory(source):
        return FACTORY
    names = _zip_members(source)
    if names is None:
        return CHECKPOINT
    inner = {name.partition("/")[2] for name in names}
    if "archive_format" in inner or any(name.startswith("models/") for name in inner):
        return EXPORT
    if any(name.endswith("serialized_exported_program.json") for name in names):
        raise CheckpointError(
            f"{source}: a torch.export program in the format of torch < 2.7, which loads "
            "by unpickling; re-save it with torch.export.save of torch >= 2.7"
        )
    if "constants.pkl" in inner or any(name.startswith("code/") for name in inner):
        return TORCHSCRIPT
    if "data.pkl" in inner:
        return CHECKPOINT
    raise CheckpointError(
        f"{source}: a zip archive that is neither a TorchScript archive, a torch.export "
        "program nor a torch checkpoint; nothing in it was loaded"
    )


def load_source(
    source: str | os.PathLike,
    *,
    dataset: dict[str, Any] | None = None,
    weights: str | os.PathLike | None = None,
) -> nn.Module:
    """The eval-mode model ``source`` names (a file path or ``py:module:function``).

    ``dataset`` (a record like a checkpoint's ``dataset`` section) is required for
    every source but an invaudit checkpoint, which records its own (and ignores this
    one); ``weights`` only goes with a ``py:`` factory.
    """
    kind = source_kind(source)
    if weights is not None and kind != FACTORY:
        raise ConfigError(
            f"--weights goes with a py:package.module:function model only; {source} is "
            f"{'an invaudit checkpoint' if kind == CHECKPOINT else 'a ' + kind + ' model'}"
        )
    if kind == CHECKPOINT:
        return load_model(source)
    if dataset is None:
        what = "a py: factory" if kind == FACTORY else f"a {kind} model"
        raise ConfigError(
            f"{source} is {what}, not an invaudit checkpoint: give --dataset (mnist, "
            "fashion-mnist or imagenet) to say what it classifies"
        )
    if kind == FACTORY:
        return load_factory(str(source), dataset, weights)
    if kind == TORCHSCRIPT:
        return load_torchscript(source, dataset)
    return load_exported(source, dataset)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence torch's warnings and its export loggers while a foreign model loads."""
    loggers = [logging.getLogger(name) for name in ("torch.export", "torch._export")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def load_torchscript(path: str | os.PathLike, dataset: dict[str, Any]) -> ForeignClassifier:
    """A TorchScript archive (``torch.jit.save``), wrapped; on the CPU, in eval mode."""
    try:
        with _quiet():
            module = torch.jit.load(os.fspath(path), map_location="cpu")
    except Exception as err:  # torch raises RuntimeError and more for a damaged archive
        raise CheckpointError(
            f"{path}: not a loadable TorchScript archive: {error_line(err)}"
        ) from err
    source = {"kind": TORCHSCRIPT}
    return ForeignClassifier(module, arch=TORCHSCRIPT, dataset=dataset, source=source).eval()


def load_exported(path: str | os.PathLike, dataset: dict[str, Any]) -> ForeignClassifier:
    """A torch.export program (``torch.export.save``), vetted by :func:`check_pt2` first."""
    check_pt2(path)
    try:
        with _quiet(), open(path, "rb") as f:  # a file object: no warning about the suffix
            program = torch.export.load(f)
    except Exception as err:  # a damaged archive, or one of another torch version
        raise CheckpointError(
            f"{path}: not a loadable torch.export program: {error_line(err)}"
        ) from err
    _check_graph_targets(program, path)
    try:
        with _quiet():
            module = program.module()
    except Exception as err:
        raise CheckpointError(
            f"{path}: torch.export could not build a module from this program: "
            f"{error_line(err)}"
        ) from err
    source = {"kind": EXPORT}
    return ForeignClassifier(module, arch=EXPORT, dataset=dataset, source=source).eval()


# --- vetting a .pt2 archive before torch.export.load sees it -------------------------

#: Every member ``torch.export.save`` writes for one program named "model" (below the
#: archive's top folder); anything else (AOTInductor libraries, pickled legacy weights)
#: is refused.
_PT2_MEMBER = re.compile(
    r"archive_format|archive_version|byteorder|\.data/serialization_id|\.data/version"
    r"|models/model\.json|data/sample_inputs/model\.pt"
    r"|data/weights/model_weights_config\.json|data/weights/weight_\d+"
    r"|data/constants/model_constants_config\.json|data/constants/tensor_\d+"
    r"|extra/[\w.-]+"
)

#: Names an expression of the program's symbolic shapes may use (sympy and torch's
#: sympy functions); any other name than a shape symbol (``s0``, ``u3``) is refused.
_EXPR_NAMES = frozenset(
    "Symbol Integer Float Rational True False oo zoo nan and or not "
    "positive integer real nonnegative negative finite infinite nonzero zero "
    "Eq Ne Lt Le Gt Ge And Or Not Abs Max Min Mod Pow Mul Add sqrt floor ceiling "
    "FloorDiv ModularIndexing Where PythonMod CleanDiv CeilToInt FloorToInt CeilDiv "
    "LShift RShift PowByNatural FloatPow FloatTrueDiv IntTrueDiv "
    "IsNonOverlappingAndDenseIndicator TruncToFloat TruncToInt RoundToInt RoundDecimal "
    "ToFloat Identity".split()
)
_EXPR_TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)|'(?P<quoted>\w+)'"
    r"|(?P<name>[A-Za-z_]\w*)|(?P<op>\*\*|//|==|!=|<=|>=|[-+*/%(),<>=&|~]))"
)
_SHAPE_SYMBOL = re.compile(r"[a-z]+\d+")
#: A guard's reference to an input's size or stride, e.g. ``L['x'].size()[0]``.
_GUARD_ACCESS = re.compile(r"L\['\w+'\](?:\.(?:size|stride)\(\)\[\d+\])?")
#: The higher-order operators a program may call (control flow over its own graphs).
_HIGHER_ORDER = frozenset(
    {"cond", "while_loop", "map_impl", "scan", "wrap_with_set_grad_enabled", "wrap_with_autocast"}
)
_OPERATOR_TARGETS = (
    "getitem add sub mul floordiv truediv mod neg pow eq ne lt le gt ge and_ or_ not_".split()
)
_MATH_TARGETS = ("ceil", "floor", "sqrt", "trunc")
_SYM_TARGETS = (
    "sym_int sym_float sym_max sym_min sym_not sym_ite sym_sum sym_sqrt _sym_sqrt".split()
)
#: Python callables a graph node may name, as serialised and as loaded.
_PY_TARGET_NAMES = frozenset(
    [f"_operator.{n}" for n in _OPERATOR_TARGETS]
    + [f"math.{n}" for n in _MATH_TARGETS]
    + [f"torch.{n}" for n in _SYM_TARGETS]
)
_OP_TARGET = re.compile(r"torch\.ops\.(?:aten|prims)\.\w+(?:\.\w+)?")


def _safe_expression(text: object) -> bool:
    """Whether ``text`` is arithmetic over shape symbols and allowed names only."""
    if not isinstance(text, str):
        return False
    pos = 0
    while pos < len(text):
        match = _EXPR_TOKEN.match(text, pos)
        if match is None:
            return not text[pos:].strip()
        name, quoted = match.group("name"), match.group("quoted")
        if name is not None and not (_SHAPE_SYMBOL.fullmatch(name) or name in _EXPR_NAMES):
            return False
        if quoted is not None and not _SHAPE_SYMBOL.fullmatch(quoted):
            return False
        pos = match.end()
    return True


def _safe_guard(text: object) -> bool:
    """Whether a guard is a comparison of input sizes in the expression grammar."""
    return isinstance(text, str) and _safe_expression(_GUARD_ACCESS.sub("s0", text))


def _safe_target_name(target: object) -> bool:
    if not isinstance(target, str) or "__" in target:
        return False
    if target.startswith("torch.ops.higher_order."):
        return target.removeprefix("torch.ops.higher_order.") in _HIGHER_ORDER
    return bool(_OP_TARGET.fullmatch(target)) or target in _PY_TARGET_NAMES


def _json_objects(value: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object inside ``value``, depth first."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _program_problem(program: Any) -> str | None:
    """What in a serialised program would run code while loading or calling it."""
    if not isinstance(program, dict):
        return "models/model.json is not a program"
    for obj in _json_objects(program):
        if {"target", "inputs", "outputs"} <= obj.keys() and not _safe_target_name(
            obj["target"]
        ):
            return f"its graph calls {str(obj['target'])[:80]!r}, not a torch operator"
        if "expr_str" in obj and not _safe_expression(obj["expr_str"]):
            return f"a shape expression is not arithmetic: {str(obj['expr_str'])[:80]!r}"
    guards = program.get("guards_code") or []
    if not isinstance(guards, list):
        return "its guards are not a list"
    bad = next((g for g in guards if not _safe_guard(g)), None)
    if bad is not None:
        return f"a guard is not a comparison of input sizes: {str(bad)[:80]!r}"
    return None


def _payload_problem(config: Any, where: str, *, constants: bool) -> str | None:
    """Why a weights or constants config would make torch unpickle (None: it would not)."""
    entries = config.get("config") if isinstance(config, dict) else None
    if not isinstance(entries, dict):
        return f"{where} is not a payload config"
    for name, entry in entries.items():
        if not isinstance(entry, dict) or entry.get("use_pickle") is not False:
            return f"{where}: {str(name)[:60]!r} is stored as a pickle"
        path_name = str(entry.get("path_name", ""))
        if constants and not re.fullmatch(r"tensor_\d+", path_name):
            what = f"a Python object ({path_name[:40]})"
            return f"{where}: {str(name)[:60]!r} is {what}, not a tensor"
    return None


def _pt2_problem(archive: zipfile.ZipFile) -> str | None:
    """Why ``archive`` is not a plain torch.export program (None: it is one)."""
    names = archive.namelist()
    top = {name.partition("/")[0] for name in names}
    if len(top) != 1 or any("/" not in name for name in names):
        return "its members are not under one folder, as torch.export.save writes them"
    prefix = f"{top.pop()}/"
    odd = next((n for n in names if not _PT2_MEMBER.fullmatch(n[len(prefix) :])), None)
    if odd is not None:
        return f"it holds {odd[len(prefix):][:80]!r}, which torch.export.save does not write"
    try:
        for member, constants in (
            ("data/weights/model_weights_config.json", False),
            ("data/constants/model_constants_config.json", True),
        ):
            config = json.loads(archive.read(prefix + member))
            problem = _payload_problem(config, member, constants=constants)
            if problem is not None:
                return problem
        program = json.loads(archive.read(prefix + "models/model.json"))
    except KeyError as err:
        return f"it lacks {error_line(err)}"
    except (ValueError, UnicodeDecodeError) as err:
        return f"a config is not JSON: {error_line(err)}"
    if prefix + "data/sample_inputs/model.pt" in names:
        try:
            raw = archive.read(prefix + "data/sample_inputs/model.pt")
            torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - any failure means torch would fully unpickle it
            return "its sample inputs hold more than tensors (torch would unpickle them)"
    return _program_problem(program)


def check_pt2(path: str | os.PathLike) -> None:
    """Refuse a .pt2 archive that ``torch.export.load`` would run code from.

    One line (:class:`CheckpointError`) naming the first problem; nothing in the file
    is unpickled, evaluated or executed here.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            problem = _pt2_problem(archive)
    except (OSError, zipfile.BadZipFile) as err:
        raise CheckpointError(f"{path}: not a readable .pt2 archive: {error_line(err)}") from err
    if problem is not None:
        raise CheckpointError(
            f"{path}: refused to load this torch.export program: {problem}; "
            "nothing in it was executed"
        )


#: The Python callables of :data:`_PY_TARGET_NAMES`, as a loaded graph holds them.
_PY_TARGETS = (
    [getattr(operator, n) for n in _OPERATOR_TARGETS]
    + [getattr(math, n) for n in _MATH_TARGETS]
    + [getattr(torch, n) for n in _SYM_TARGETS if hasattr(torch, n)]
)


def _safe_target(target: Any) -> bool:
    """Whether a loaded graph node calls a torch operator or a plain arithmetic function."""
    if isinstance(target, torch._ops.OpOverload):
        return target.namespace in ("aten", "prims")
    if isinstance(target, torch._ops.OpOverloadPacket):
        return str(target._qualified_op_name).partition("::")[0] in ("aten", "prims")
    if isinstance(target, torch._ops.HigherOrderOperator):
        return target.name() in _HIGHER_ORDER
    return target in _PY_TARGETS


def _check_graph_targets(program: Any, path: str | os.PathLike) -> None:
    """Refuse a loaded program whose graphs call anything but torch operators."""
    for module in program.graph_module.modules():
        graph = getattr(module, "graph", None)
        for node in getattr(graph, "nodes", ()):
            if node.op in ("call_method", "call_module") or (
                node.op == "call_function" and not _safe_target(node.target)
            ):
                raise CheckpointError(
                    f"{path}: refused to run this torch.export program: its graph calls "
                    f"{str(node.target)[:80]!r}, not a torch operator"
                )


# --- py:package.module:function ------------------------------------------------------


def _factory(spec: str) -> Any:
    """The function ``spec`` names, imported (one-line ConfigError when it cannot be)."""
    match = _FACTORY_SPEC.fullmatch(spec)
    if match is None:
        raise ConfigError(
            f"{spec!r}: expected py:package.module:function, e.g. py:mypkg.models:build"
        )
    module_name, function = match.group("module"), match.group("function")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise ConfigError(
            f"{spec}: cannot import {module_name} ({error_line(err)}); is it on PYTHONPATH?"
        ) from err
    except Exception as err:  # the module's own code failed
        raise ConfigError(
            f"{spec}: importing {module_name} raised {type(err).__name__}: {error_line(err)}"
        ) from err
    factory = getattr(module, function, None)
    if not callable(factory):
        raise ConfigError(f"{spec}: {module_name} has no function {function}")
    return factory


def load_factory(
    spec: str, dataset: dict[str, Any], weights: str | os.PathLike | None = None
) -> ForeignClassifier:
    """The module ``py:package.module:function`` builds (called with no arguments),
    with ``weights`` (a state dict file) loaded into it; wrapped, in eval mode."""
    factory = _factory(spec)
    try:
        module = factory()
    except Exception as err:
        raise ConfigError(
            f"{spec}: the factory raised {type(err).__name__}: {error_line(err)}"
        ) from err
    if not isinstance(module, nn.Module):
        raise ConfigError(
            f"{spec}: the factory returned {type(module).__name__}, expected a torch.nn.Module"
        )
    source: dict[str, Any] = {"kind": FACTORY, "factory": spec, "weights": None}
    if weights is not None:
        fit_weights(module, read_weights(weights), f"--weights {weights} does not fit {spec}")
        source.update(weights=os.fspath(weights), weights_sha256=file_sha256(weights))
    return ForeignClassifier(module, arch=spec, dataset=dataset, source=source).eval()


def read_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from ``path`` (or the one a dict holds under ``"state_dict"``),
    read with ``torch.load(weights_only=True)``: a pickle of code is refused, unrun."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"--weights {p}: not found")
    kind = source_kind(p)
    if kind != CHECKPOINT:
        raise CheckpointError(
            f"--weights {p} is a {kind} model, not a state dict: give it as --model"
        )
    try:
        with _quiet():
            payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a foreign or damaged file
        if isinstance(err, pickle.UnpicklingError) and "global" in str(err).lower():
            raise CheckpointError(
                f"--weights {p}: refused to load: it holds objects beyond tensors and plain "
                "data (a pickle that could run code); nothing in it was executed"
            ) from err
        raise CheckpointError(
            f"--weights {p}: not a readable torch file: {error_line(err)}"
        ) from err
    if isinstance(payload, dict) and isinstance(payload.get("state_dict"), dict):
        payload = payload["state_dict"]
    if not isinstance(payload, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in payload.items()
    ):
        raise CheckpointError(
            f"--weights {p}: expected a state dict (names to tensors) or a dict holding one "
            f"under 'state_dict', got {type(payload).__name__}"
        )
    return payload


def _some(names: list[str], limit: int = 3) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def fit_weights(module: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """Load ``state`` into ``module`` exactly (every key, every shape), or say in one
    line (prefixed by ``where``) which keys are missing, unexpected or of another shape."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} is {list(state[k].shape)} in the file, {list(own[k].shape)} in the model"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    problems = [f"missing {_some(missing)}"] if missing else []
    problems += [f"unexpected {_some(unexpected)}"] if unexpected else []
    problems += [_some(shapes, 2)] if shapes else []
    if problems:
        raise CheckpointError(f"{where}: {'; '.join(problems)}")
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{where}: {error_line(err)}") from err


def state_sha256(module: nn.Module) -> str:
    """A sha256 of ``module``'s state dict (names, dtypes, shapes and values), for a
    model whose weights come from no file."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{t.dtype}:{list(tensor.shape)};".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
