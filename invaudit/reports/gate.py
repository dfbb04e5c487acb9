"""CI gate: checks that fail a build when an audit report crosses a threshold.

A *check* names a condition that FAILS the gate::

    probe.nuisance_accuracy > 0.5              fails when the probe recovers the class
    pgd-linf.robust_accuracy[0.3] < 0.8        fails when robust accuracy at eps 0.3 < 0.8
    metamer.invariance_success_rate == null    fails when the value is missing (no oracle)
    warnings.count != 0                        fails on any warning

Grammar: ``PATH OP THRESHOLD`` with whitespace free around every token.

- ``OP`` is one of ``<  <=  >  >=  ==  !=`` (``==``/``!=`` compare exactly).
- ``PATH`` is ``METHOD.METRIC`` or ``METHOD.METRIC[KEY]``:

  - ``METHOD.METRIC`` reads ``report["attacks"][METHOD]["metrics"][METRIC]``;
    method and metric names are letters, digits, ``_`` and ``-`` (``pgd-linf``).
  - The sections ``invertibility.X`` and ``model.X`` read ``report[section][X]``;
    ``warnings.count`` is ``len(report["warnings"])``.
  - ``[KEY]`` picks an entry of a map-valued metric.  A numeric key is normalised
    the way reports write epsilon keys, ``f"{eps:g}"``: ``[0.30]``, ``[3e-1]`` and
    ``[0.3]`` all read ``"0.3"``; a fraction ``[8/255]`` is divided first.  Any
    other key (letters, digits, ``_ . + -``) is used as written.

- ``THRESHOLD`` is a finite number (``1``, ``0.5``, ``-2``, ``1e-3``).  ``inf`` and
  ``nan`` are rejected: a comparison with NaN never holds and one with inf is
  either always or never true, so neither can express a useful gate.
  ``null`` (or ``none``, any case) is allowed with ``==`` and ``!=`` only.

Evaluation never passes silently: a missing (null) or NaN value fails every
numeric comparison, with a message that says the value is missing.  A path the
report does not contain at all (an attack that did not run, an epsilon that was
not attacked) is a configuration error, as is a value that is not a number.

Policy files (TOML) hold the same checks, in either or both of two forms::

    # fail the build when any of these holds
    fail_if = [
      "probe.nuisance_accuracy > 0.5",
      "pgd-linf.robust_accuracy[0.1] < 0.8",
    ]

    [[check]]
    name = "nuisance probe must not recover the class"   # optional; shown in JUnit
    path = "probe.nuisance_accuracy"
    op = ">"
    value = 0.5                                          # a number, or the string "null"

Top-level keys other than ``fail_if`` and ``check`` are errors, as are unknown
keys inside a ``[[check]]`` table, values of the wrong type and a policy that
defines no check at all.  Reading TOML needs Python >= 3.11 (``tomllib``) or the
``tomli`` package.

Typical use (the CLI's ``report --fail-if/--policy/--junit``)::

    checks = [parse_check(e) for e in fail_if] + load_policy(policy)
    validate(checks, available)          # before any attack runs: exit 2 early
    results = evaluate(checks, report)
    write_junit(results, junit_path)
    exit_code = gate_exit_code(results)  # 0 passed, 1 a check failed

Every error a user can cause raises :class:`~invaudit.errors.ConfigError` with one line.
"""

from __future__ import annotations

import difflib
import math
import numbers
import operator
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import write_atomic
from ..errors import ConfigError
from ..outputs import check_writable, require_path

__all__ = [
    "OPERATORS",
    "SECTIONS",
    "Check",
    "CheckResult",
    "available_from_report",
    "check_junit_target",
    "evaluate",
    "format_results",
    "gate_exit_code",
    "gate_record",
    "is_invaudit_junit",
    "junit_xml",
    "load_policy",
    "parse_check",
    "validate",
    "write_junit",
]

#: Comparison operators, in the order error messages list them.
OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
#: Top-level report sections a path may name instead of an attack.
SECTIONS = ("invertibility", "model", "warnings")

_OPS_TEXT = " ".join(OPERATORS)
_NAME = r"[A-Za-z0-9_][A-Za-z0-9_\-]*"
_PATH_RE = re.compile(
    rf"(?P<method>{_NAME})\s*\.\s*(?P<metric>{_NAME})\s*(?:\[(?P<key>[^\[\]]*)\])?"
)
_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_FRACTION_RE = re.compile(rf"(?P<num>{_NUMBER_RE.pattern})\s*/\s*(?P<den>{_NUMBER_RE.pattern})")
_KEY_RE = re.compile(r"[A-Za-z0-9_.+\-]+")
_NULLS = ("null", "none")
_NON_FINITE = ("inf", "+inf", "-inf", "infinity", "+infinity", "-infinity", "nan", "+nan", "-nan")
_POLICY_KEYS = ("fail_if", "check")
_CHECK_KEYS = ("name", "path", "op", "value")
# Characters XML 1.0 cannot hold even escaped: C0 controls other than tab/LF/CR.
_XML_BAD = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True)
class Check:
    """One parsed gate check: fail when ``value(path) OP threshold`` holds.

    Attributes:
        expression: the text as the user gave it (synthesised for ``[[check]]`` tables).
        path: the canonical path, e.g. ``pgd-linf.robust_accuracy[0.3]``.
        method: the attack name, or one of :data:`SECTIONS`.
        metric: the metric name inside the method (or section).
        key: the normalised map key inside a map-valued metric, or None.
        op: one of :data:`OPERATORS`.
        threshold: a finite number, or None for ``== null`` / ``!= null``.
        name: a human name (policy ``[[check]]`` tables), or None.
        source: where the check came from, e.g. ``policy gate.toml: fail_if[1]``;
            None for a ``--fail-if`` option.
    """

    expression: str
    path: str
    method: str
    metric: str
    key: str | None
    op: str
    threshold: float | None
    name: str | None = None
    source: str | None = None

    @property
    def text(self) -> str:
        """The canonical expression, e.g. ``probe.nuisance_accuracy > 0.5``."""
        return f"{self.path} {self.op} {_fmt_threshold(self.threshold)}"

    @property
    def label(self) -> str:
        """What reports show: the policy's name, else the expression as written."""
        return self.name if self.name else " ".join(self.expression.split())


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check on one report.

    Attributes:
        check: the check evaluated.
        value: the value read from the report (None where the report holds null).
        failed: True when the failing condition held, or the value was missing or NaN.
        message: one line saying what was compared and why it failed or passed.
    """

    check: Check
    value: float | None
    failed: bool
    message: str


# --------------------------------------------------------------------- parsing


def _where(expression: str, source: str | None) -> str:
    """The prefix of an error about ``expression``: ``--fail-if '...'`` or its policy entry."""
    return f"{source} {expression!r}" if source else f"--fail-if {expression!r}"


def _fmt_threshold(threshold: float | None) -> str:
    if threshold is None:
        return "null"
    if float(threshold).is_integer() and abs(threshold) < 1e15:
        return str(int(threshold))
    return repr(float(threshold))


def _fmt_value(value: float | None) -> str:
    if value is None:
        return "missing"
    if isinstance(value, int):
        return str(value)
    return f"{value:.6g}"


def _normalise_key(text: str) -> str | None:
    """The report key ``[text]`` names, or None when ``text`` is not a valid key."""
    text = text.strip()
    if _NUMBER_RE.fullmatch(text):
        return f"{float(text):g}"
    fraction = _FRACTION_RE.fullmatch(text)
    if fraction:
        den = float(fraction["den"])
        return f"{float(fraction['num']) / den:g}" if den else None
    return text if _KEY_RE.fullmatch(text) else None


def _parse_threshold(text: str, op: str, where: str) -> float | None:
    lowered = text.lower()
    if lowered in _NULLS:
        if op not in ("==", "!="):
            raise ConfigError(
                f"{where}: null can only be compared with == or != "
                f"(a missing value already fails {op})"
            )
        return None
    if lowered in _NON_FINITE:
        raise ConfigError(f"{where}: threshold must be a finite number, got {text!r}")
    if not _NUMBER_RE.fullmatch(text):
        raise ConfigError(
            f"{where}: bad threshold {text!r}; expected a number like 0.5 or 1e-3, or null"
        )
    value = float(text)
    if not math.isfinite(value):
        raise ConfigError(f"{where}: threshold {text!r} is too large to be a finite number")
    return value


def parse_check(expression: str, *, name: str | None = None, source: str | None = None) -> Check:
    """Parse ``PATH OP THRESHOLD`` (see the module docstring) into a :class:`Check`.

    Args:
        expression: e.g. ``"pgd-linf.robust_accuracy[0.3] < 0.8"``.
        name: a human name for reports (policy ``[[check]]`` tables).
        source: where the expression came from, used in error messages;
            None means a ``--fail-if`` option.

    Raises:
        ConfigError: the expression is malformed; the one-line message names it
            and what is wrong.
    """
    if not isinstance(expression, str):
        raise ConfigError(f"{source or '--fail-if'}: a check must be a string, got {expression!r}")
    where = _where(expression, source)
    if not expression.strip():
        raise ConfigError(f"{where}: empty check; expected e.g. 'probe.nuisance_accuracy > 0.5'")
    lhs, op, rhs = _split_comparison(expression, where)
    method, metric, key = _parse_path(lhs, where)
    threshold = _parse_threshold(rhs, op, where)
    path = f"{method}.{metric}" + (f"[{key}]" if key is not None else "")
    return Check(expression, path, method, metric, key, op, threshold, name=name, source=source)


def _split_comparison(expression: str, where: str) -> tuple[str, str, str]:
    """``(PATH, OP, THRESHOLD)``: the text on either side of the one comparison operator."""
    runs = list(re.finditer(r"[<>=!]+", expression))
    if not runs:
        raise ConfigError(f"{where}: no comparison operator; expected one of {_OPS_TEXT}")
    if len(runs) > 1:
        found = ", ".join(repr(m.group()) for m in runs)
        raise ConfigError(f"{where}: more than one operator ({found}); expected PATH OP NUMBER")
    match = runs[0]
    op = match.group()
    if op not in OPERATORS:
        raise ConfigError(f"{where}: unknown operator {op!r}; expected one of {_OPS_TEXT}")
    lhs = expression[: match.start()].strip()
    rhs = expression[match.end() :].strip()
    if not lhs:
        raise ConfigError(f"{where}: missing metric path before {op!r}")
    if not rhs:
        raise ConfigError(f"{where}: missing threshold after {op!r}")
    return lhs, op, rhs


def _parse_path(text: str, where: str) -> tuple[str, str, str | None]:
    """``(METHOD, METRIC, KEY)`` of a metric path; KEY normalised, or None without ``[KEY]``."""
    path_match = _PATH_RE.fullmatch(text)
    if not path_match:
        raise ConfigError(
            f"{where}: bad metric path {text!r}; expected METHOD.METRIC or METHOD.METRIC[KEY], "
            "e.g. pgd-linf.robust_accuracy[0.3]"
        )
    method, metric, raw_key = path_match["method"], path_match["metric"], path_match["key"]
    key = None
    if raw_key is not None:
        key = _normalise_key(raw_key)
        if key is None:
            raise ConfigError(
                f"{where}: bad key [{raw_key}]; expected a number like [0.3] or a plain name"
            )
    if method == "warnings" and (metric != "count" or key is not None):
        raise ConfigError(f"{where}: the warnings section has only 'warnings.count'")
    return method, metric, key


# ---------------------------------------------------------------------- policy


def _toml_loads() -> Callable[[str], dict[str, Any]] | None:
    """``tomllib.loads`` (Python >= 3.11), else ``tomli.loads``, else None."""
    try:
        import tomllib
    except ImportError:
        try:
            import tomli as tomllib
        except ImportError:
            return None
    return tomllib.loads


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _check_table_keys(table: Any, entry: str) -> None:
    """ConfigError where a ``[[check]]`` table lacks a key, has an unknown one or a bad type."""
    if not isinstance(table, dict):
        raise ConfigError(f"{entry} must be a table with path, op and value")
    unknown = sorted(set(table) - set(_CHECK_KEYS))
    if unknown:
        raise ConfigError(f"{entry}: unknown key {unknown[0]!r}; allowed: {', '.join(_CHECK_KEYS)}")
    for required in ("path", "op", "value"):
        if required not in table:
            raise ConfigError(f"{entry}: missing {required!r}")
    for text_key in ("path", "op", "name"):
        if text_key in table and not isinstance(table[text_key], str):
            raise ConfigError(f"{entry}: {text_key!r} must be a string")
    name = table.get("name")
    if name is not None and not name.strip():
        raise ConfigError(f"{entry}: 'name' must not be empty")


def _table_threshold(value: Any, entry: str) -> str:
    """The threshold text of a ``[[check]]`` table's ``value``: a finite number or ``null``."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"{entry}: 'value' must be a number or \"null\", got {value!r}")
    if isinstance(value, str):
        if value.strip().lower() not in _NULLS:
            raise ConfigError(
                f"{entry}: 'value' must be a number or \"null\"; write numbers unquoted"
            )
        return "null"
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{entry}: 'value' must be a finite number, got {value!r}")
    return _fmt_threshold(value)


def _policy_check_table(table: Any, index: int, where: str) -> Check:
    """The :class:`Check` of one ``[[check]]`` table."""
    entry = f"{where}: check[{index}]"
    _check_table_keys(table, entry)
    name = table.get("name")
    value_text = _table_threshold(table["value"], entry)
    expression = f"{table['path'].strip()} {table['op'].strip()} {value_text}"
    return parse_check(expression, name=name.strip() if name else None, source=entry)


def _read_policy(path: str | os.PathLike, where: str) -> dict[str, Any]:
    """The parsed TOML document of a policy file; ConfigError where it cannot be read."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{where}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not UTF-8 text") from None
    loads = _toml_loads()
    if loads is None:
        raise ConfigError(
            f"{where}: policy files need Python >= 3.11 (tomllib) or the tomli package"
        )
    try:
        return loads(text)
    except ValueError as exc:  # tomllib.TOMLDecodeError subclasses ValueError
        raise ConfigError(f"{where}: invalid TOML: {_one_line(exc)}") from None


def _fail_if_checks(fail_if: Any, where: str) -> list[Check]:
    """The checks of a policy's ``fail_if`` array of expressions."""
    if not isinstance(fail_if, list):
        raise ConfigError(f"{where}: 'fail_if' must be an array of strings")
    checks = []
    for i, expression in enumerate(fail_if):
        if not isinstance(expression, str):
            raise ConfigError(f"{where}: fail_if[{i}] must be a string, got {expression!r}")
        checks.append(parse_check(expression, source=f"{where}: fail_if[{i}]"))
    return checks


def _table_checks(tables: Any, where: str) -> list[Check]:
    """The checks of a policy's ``[[check]]`` tables."""
    if not isinstance(tables, list):
        raise ConfigError(f"{where}: 'check' must be an array of tables ([[check]])")
    return [_policy_check_table(table, i, where) for i, table in enumerate(tables)]


def load_policy(path: str | os.PathLike) -> list[Check]:
    """Read the checks of a TOML policy file (format in the module docstring).

    Raises:
        ConfigError: the file is missing, unreadable, invalid TOML, has unknown
            keys or values of the wrong type, defines no check, or holds a
            malformed check; the one-line message names the file.
    """
    where = f"policy {os.fspath(path)}"
    doc = _read_policy(path, where)
    unknown = sorted(set(doc) - set(_POLICY_KEYS))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(_POLICY_KEYS)}"
        )
    checks = _fail_if_checks(doc.get("fail_if", []), where)
    checks += _table_checks(doc.get("check", []), where)
    if not checks:
        raise ConfigError(f"{where}: defines no checks; add fail_if = [...] or [[check]] tables")
    return checks


# ------------------------------------------------------------------ validation


def _listing(names: Iterable[str]) -> str:
    names = sorted(names)
    return ", ".join(names) if names else "(none)"


def _suggest(name: str, names: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(names), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def available_from_report(report: Mapping[str, Any]) -> dict[str, set[str]]:
    """What :func:`validate` accepts for an existing report: methods, sections, metrics."""
    available: dict[str, set[str]] = {"warnings": {"count"}}
    for section in ("invertibility", "model"):
        if isinstance(report.get(section), Mapping):
            available[section] = set(report[section])
    attacks = report.get("attacks")
    if isinstance(attacks, Mapping):
        for method, record in attacks.items():
            metrics = record.get("metrics") if isinstance(record, Mapping) else None
            available[method] = set(metrics) if isinstance(metrics, Mapping) else set()
    return available


def validate(checks: Sequence[Check], available: Mapping[str, Iterable[str]]) -> None:
    """Raise ConfigError for a check naming a method or metric the suite will not produce.

    Runs before any attack so the CLI can exit 2 at once.  ``available`` maps each
    planned method and the sections ``invertibility`` and ``model`` to their metric
    names; ``warnings`` (metric ``count``) is always available.  Bracket keys are
    not checked here (the epsilons are only known from the results), only that
    the metric they index exists.
    """
    known: dict[str, set[str]] = {m: set(metrics) for m, metrics in available.items()}
    known.setdefault("warnings", set()).add("count")
    for check in checks:
        where = _where(check.expression, check.source)
        if check.method not in known:
            raise ConfigError(
                f"{where}: unknown method {check.method!r}{_suggest(check.method, known)}; "
                f"available: {_listing(known)}"
            )
        metrics = known[check.method]
        if check.metric not in metrics:
            raise ConfigError(
                f"{where}: {check.method!r} has no metric {check.metric!r}"
                f"{_suggest(check.metric, metrics)}; available: {_listing(metrics)}"
            )


# ------------------------------------------------------------------ evaluation


def _section_metrics(check: Check, report: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    """The metrics of the report section ``check.method`` names (``invertibility``, ``model``)."""
    metrics = report.get(check.method)
    if not isinstance(metrics, Mapping):
        raise ConfigError(f"{where}: the report has no {check.method!r} section")
    return metrics


def _attack_metrics(check: Check, report: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    """The ``metrics`` of the attack ``check.method`` names."""
    attacks = report.get("attacks")
    if not isinstance(attacks, Mapping):
        raise ConfigError(f"{where}: the report has no 'attacks' section")
    if check.method not in attacks:
        raise ConfigError(
            f"{where}: the report has no attack {check.method!r}; present: {_listing(attacks)}"
        )
    record = attacks[check.method]
    metrics = record.get("metrics") if isinstance(record, Mapping) else None
    if not isinstance(metrics, Mapping):
        raise ConfigError(f"{where}: attack {check.method!r} has no metrics in the report")
    return metrics


def _map_entry(check: Check, value: Any, where: str) -> Any:
    """``value`` itself without ``[KEY]``, else its entry ``check.key`` (matched as normalised)."""
    base = f"{check.method}.{check.metric}"
    if check.key is None:
        if isinstance(value, Mapping):
            raise ConfigError(
                f"{where}: {base} is a map; pick an entry, e.g. {base}[KEY] "
                f"(keys: {_listing(map(str, value))})"
            )
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: {base} is not a map, so it has no key [{check.key}]")
    if check.key in value:
        return value[check.key]
    for k, v in value.items():  # keys the report wrote another way, e.g. "0.30"
        if _normalise_key(str(k)) == check.key:
            return v
    raise ConfigError(
        f"{where}: {base} has no key [{check.key}]; keys: {_listing(map(str, value))}"
    )


def _lookup(check: Check, report: Mapping[str, Any]) -> Any:
    """The raw value ``check.path`` names in ``report``; ConfigError where it is absent."""
    where = _where(check.expression, check.source)
    if not isinstance(report, Mapping):
        raise ConfigError(f"{where}: the report is not a mapping")
    if check.method == "warnings":
        warnings = report.get("warnings")
        if not isinstance(warnings, list):
            raise ConfigError(f"{where}: the report has no 'warnings' list")
        return len(warnings)
    if check.method in SECTIONS:
        metrics, container = _section_metrics(check, report, where), f"section {check.method!r}"
    else:
        metrics, container = _attack_metrics(check, report, where), f"attack {check.method!r}"
    if check.metric not in metrics:
        raise ConfigError(
            f"{where}: {container} has no metric {check.metric!r}; present: {_listing(metrics)}"
        )
    return _map_entry(check, metrics[check.metric], where)


def _evaluate_one(check: Check, report: Mapping[str, Any]) -> CheckResult:
    raw = _lookup(check, report)
    where = _where(check.expression, check.source)
    if raw is not None and (isinstance(raw, bool) or not isinstance(raw, numbers.Real)):
        raise ConfigError(f"{where}: {check.path} is {raw!r}, not a number")
    value = raw if raw is None or isinstance(raw, int | float) else float(raw)
    threshold = _fmt_threshold(check.threshold)

    if check.threshold is None:  # "== null" / "!= null"
        is_null = value is None
        failed = is_null if check.op == "==" else not is_null
        state = "missing (null)" if is_null else f"present ({_fmt_value(value)})"
        verdict = "fails" if failed else "passes"
        return CheckResult(check, value, failed, f"{check.path} is {state}: {verdict}")

    if value is None:
        message = f"{check.path} is missing (null); cannot check {check.op} {threshold}: fails"
        return CheckResult(check, None, True, message)
    if math.isnan(value):
        message = f"{check.path} is NaN; cannot check {check.op} {threshold}: fails"
        return CheckResult(check, value, True, message)
    failed = bool(OPERATORS[check.op](value, check.threshold))
    relation = check.op if failed else f"not {check.op}"
    message = f"{check.path} = {_fmt_value(value)}, {relation} {threshold}"
    return CheckResult(check, value, failed, message + (": fails" if failed else ": passes"))


def evaluate(checks: Sequence[Check], report: Mapping[str, Any]) -> list[CheckResult]:
    """Evaluate every check on ``report`` (the ``report.json`` dict), in order.

    A null or NaN value fails every numeric comparison.  ``== null`` fails when
    the value is null, ``!= null`` when it is not.

    Raises:
        ConfigError: a path the report does not contain (an attack that did not
            run, a key that was not attacked), a map without ``[KEY]``, or a value
            that is not a number.
    """
    return [_evaluate_one(check, report) for check in checks]


def gate_exit_code(results: Iterable[CheckResult]) -> int:
    """0 when no check failed, 1 when any did (2 is for errors raised before)."""
    return 1 if any(r.failed for r in results) else 0


# --------------------------------------------------------------------- output


def gate_record(results: Sequence[CheckResult]) -> dict[str, Any]:
    """The gate's verdict as the report's ``gate`` section: counts and one entry per check.

    ``check`` is what the terminal shows (a policy's name, then the expression);
    ``message`` says what was compared and why it failed or passed.
    """
    entries = []
    for r in results:
        label = f"{r.check.label}: {r.check.text}" if r.check.name else r.check.label
        entries.append(
            {"check": label, "failed": r.failed, "value": r.value, "message": r.message}
        )
    failed = sum(1 for r in results if r.failed)
    return {"passed": failed == 0, "checks": len(results), "failed": failed, "results": entries}


def format_results(results: Sequence[CheckResult]) -> list[str]:
    """Terminal lines, one per check: ``FAIL probe.nuisance_accuracy > 0.5  (value 0.9912)``."""
    lines = []
    for r in results:
        status = "FAIL" if r.failed else "ok  "
        label = r.check.label
        if r.check.name:
            label = f"{label}: {r.check.text}"
        lines.append(f"{status} {label}  (value {_fmt_value(r.value)})")
    return lines


def _xml_text(text: str) -> str:
    return _XML_BAD.sub("\ufffd", text)


def junit_xml(results: Sequence[CheckResult], suite_name: str = "invaudit gate") -> bytes:
    """A JUnit XML document: one ``<testcase>`` per check, failures carry value and threshold."""
    failures = sum(1 for r in results if r.failed)
    counts = {"tests": str(len(results)), "failures": str(failures), "errors": "0"}
    root = ET.Element("testsuites", {"name": _xml_text(suite_name), **counts})
    suite = ET.SubElement(
        root,
        "testsuite",
        {"name": _xml_text(suite_name), **counts, "skipped": "0", "time": "0"},
    )
    for r in results:
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "name": _xml_text(r.check.label),
                "classname": _xml_text(f"invaudit.gate.{r.check.method}"),
                "time": "0",
            },
        )
        if r.failed:
            summary = (
                f"value {_fmt_value(r.value)}, fails when {r.check.op} "
                f"{_fmt_threshold(r.check.threshold)}"
            )
            failure = ET.SubElement(
                case, "failure", {"message": _xml_text(summary), "type": "GateFailure"}
            )
            failure.text = _xml_text(f"{r.check.text}\n{r.message}")
        else:
            ET.SubElement(case, "system-out").text = _xml_text(r.message)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


#: Every JUnit file invaudit writes names its suites with this (how a rerun knows its own).
JUNIT_SUITE_PREFIX = "invaudit gate"
#: A JUnit file larger than this is not one a gate wrote (one short case per check).
JUNIT_MAX_BYTES = 10 * 1024 * 1024


def is_invaudit_junit(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a JUnit XML file :func:`write_junit` wrote (so may be replaced)."""
    p = Path(path)
    try:
        if not p.is_file() or p.stat().st_size > JUNIT_MAX_BYTES:
            return False
        root = ET.parse(p).getroot()
    except (OSError, ET.ParseError, ValueError):
        return False
    return root.tag == "testsuites" and str(root.get("name", "")).startswith(JUNIT_SUITE_PREFIX)


def check_junit_target(path: str | os.PathLike, option: str = "--junit") -> Path:
    """``path`` if a JUnit file may be written there; a one-line error if not (before work).

    A new file, or an earlier JUnit file of invaudit's, may be (re)written; any
    other existing file is refused, and so is an unwritable place.
    """
    p = require_path(path, option)
    if p.is_dir():
        raise ConfigError(f"{option} {p} is a folder; give a file name such as gate.xml")
    if (p.exists() or p.is_symlink()) and not is_invaudit_junit(p):
        raise ConfigError(
            f"{option} {p} exists and is not a JUnit file invaudit wrote; choose another "
            "name (nothing was overwritten)"
        )
    check_writable(p, option)
    return p


def write_junit(
    results: Sequence[CheckResult], path: str | os.PathLike, suite_name: str = JUNIT_SUITE_PREFIX
) -> None:
    """Write :func:`junit_xml` to ``path`` atomically."""
    data = junit_xml(results, suite_name)
    write_atomic(path, lambda f: f.write(data))
