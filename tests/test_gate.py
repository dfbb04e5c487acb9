"""The CI gate: parsing checks, policies, validation, evaluation, exit codes, JUnit."""

from __future__ import annotations

import math
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import invaudit.reports.gate as gate_module
from invaudit.errors import ConfigError
from invaudit.reports.gate import (
    Check,
    available_from_report,
    evaluate,
    format_results,
    gate_exit_code,
    junit_xml,
    load_policy,
    parse_check,
    validate,
    write_junit,
)


def sample_report() -> dict:
    return {
        "schema": "invaudit-report",
        "schema_version": 1,
        "model": {"path": "m.pt", "arch": "firevnet-mnist", "clean_test_accuracy": 0.99},
        "invertibility": {"reconstruction_max_abs": 3e-6, "reconstruction_mean_abs": 1e-7, "n": 64},
        "attacks": {
            "probe": {"metrics": {"nuisance_accuracy": 0.9912, "n": 10000}, "settings": {}},
            "pgd-linf": {
                "metrics": {
                    "clean_accuracy": 0.99,
                    "robust_accuracy": {"0.1": 0.5, "0.3": 0.0},
                    "n": 1000,
                }
            },
            "metamer": {"metrics": {"invariance_success_rate": None, "distance": float("nan")}},
        },
        "warnings": [{"name": "oracle_weak", "message": "oracle accuracy 0.7"}],
    }


def one_line_error(excinfo: pytest.ExceptionInfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and message.strip() == message and message
    return message


# --------------------------------------------------------------------- parsing


@pytest.mark.parametrize("op", ["<", "<=", ">", ">=", "==", "!="])
def test_parse_every_operator(op):
    check = parse_check(f"probe.nuisance_accuracy {op} 0.5")
    assert check == Check(
        expression=f"probe.nuisance_accuracy {op} 0.5",
        path="probe.nuisance_accuracy",
        method="probe",
        metric="nuisance_accuracy",
        key=None,
        op=op,
        threshold=0.5,
    )


@pytest.mark.parametrize(
    "expression",
    [
        "probe.nuisance_accuracy>0.5",
        "  probe.nuisance_accuracy   >   0.5  ",
        "probe . nuisance_accuracy\t>\n0.5",
        "probe.nuisance_accuracy > +0.50",
        "probe.nuisance_accuracy > 5e-1",
        "probe.nuisance_accuracy > 5E-1",
        "probe.nuisance_accuracy > .5",
        "probe.nuisance_accuracy > 0.05e1",
    ],
)
def test_parse_whitespace_and_number_forms(expression):
    check = parse_check(expression)
    assert (check.path, check.op, check.threshold) == ("probe.nuisance_accuracy", ">", 0.5)
    assert check.text == "probe.nuisance_accuracy > 0.5"


def test_parse_scientific_negative_and_integer_thresholds():
    assert parse_check("invertibility.reconstruction_max_abs > 1e-4").threshold == 1e-4
    assert parse_check("invertibility.reconstruction_max_abs > 2.5E+3").threshold == 2500.0
    assert parse_check("probe.margin < -2").threshold == -2.0
    assert parse_check("warnings.count != 0").text == "warnings.count != 0"


def test_parse_method_names_with_dashes():
    check = parse_check("cw-l2.median_distance < 0.25")
    assert (check.method, check.metric, check.key) == ("cw-l2", "median_distance", None)
    assert check.path == "cw-l2.median_distance"


@pytest.mark.parametrize(
    ("expression", "key"),
    [
        ("pgd-linf.robust_accuracy[0.3] < 0.8", "0.3"),
        ("pgd-linf.robust_accuracy[0.30] < 0.8", "0.3"),
        ("pgd-linf.robust_accuracy[ 3e-1 ] < 0.8", "0.3"),
        ("pgd-linf.robust_accuracy [.3]< 0.8", "0.3"),
        ("pgd-linf.robust_accuracy[1] < 0.8", "1"),
        ("pgd-linf.robust_accuracy[1.0] < 0.8", "1"),
        ("pgd-linf.robust_accuracy[8/255] < 0.8", f"{8 / 255:g}"),
        ("probe.per_class[cat] < 0.8", "cat"),
    ],
)
def test_parse_bracket_keys_are_normalised(expression, key):
    check = parse_check(expression)
    assert check.key == key
    assert check.path == f"{check.method}.{check.metric}[{key}]"


def test_parse_null_with_equality_only():
    assert parse_check("metamer.invariance_success_rate == null").threshold is None
    assert parse_check("metamer.invariance_success_rate != NONE").threshold is None
    assert parse_check("metamer.invariance_success_rate == null").text.endswith("== null")


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("probe.nuisance_accuracy 0.5", "no comparison operator"),
        ("probe.nuisance_accuracy >> 0.5", "unknown operator '>>'; expected one of"),
        ("probe.nuisance_accuracy = 0.5", "unknown operator '='"),
        ("probe.nuisance_accuracy => 0.5", "unknown operator '=>'"),
        ("probe.nuisance_accuracy < = 0.5", "more than one operator"),
        ("probe.nuisance_accuracy > 0.5 < 1", "more than one operator"),
        ("> 0.5", "missing metric path"),
        ("probe.nuisance_accuracy >", "missing threshold"),
        ("", "empty check"),
        ("   ", "empty check"),
        ("probe > 0.5", "bad metric path 'probe'"),
        (".nuisance_accuracy > 0.5", "bad metric path"),
        ("probe. > 0.5", "bad metric path"),
        ("probe.a.b > 0.5", "bad metric path"),
        ("pro be.x > 0.5", "bad metric path"),
        ("probe.x[] > 0.5", "bad key"),
        ("probe.x[0.1][0.2] > 0.5", "bad metric path"),
        ("probe.x[1/0] > 0.5", "bad key"),
        ("probe.nuisance_accuracy > abc", "bad threshold 'abc'"),
        ("probe.nuisance_accuracy > 0.5.1", "bad threshold"),
        ("probe.nuisance_accuracy > 1_000", "bad threshold"),
        ("probe.nuisance_accuracy > 0x10", "bad threshold"),
        ("probe.nuisance_accuracy > inf", "finite number"),
        ("probe.nuisance_accuracy > -Infinity", "finite number"),
        ("probe.nuisance_accuracy == nan", "finite number"),
        ("probe.nuisance_accuracy > 1e999", "finite number"),
        ("metamer.invariance_success_rate < null", "null can only be compared with == or !="),
        ("metamer.invariance_success_rate >= none", "null can only be compared"),
        ("warnings.total > 0", "only 'warnings.count'"),
    ],
)
def test_malformed_expressions_raise_one_line(expression, fragment):
    with pytest.raises(ConfigError) as excinfo:
        parse_check(expression)
    message = one_line_error(excinfo)
    assert message.startswith(f"--fail-if {expression!r}: ")
    assert fragment in message


def test_unknown_operator_message_matches_spec():
    with pytest.raises(ConfigError) as excinfo:
        parse_check("probe.nuisance_accuracy >> 0.5")
    assert str(excinfo.value) == (
        "--fail-if 'probe.nuisance_accuracy >> 0.5': unknown operator '>>'; "
        "expected one of < <= > >= == !="
    )


def test_error_for_multiline_expression_stays_one_line():
    with pytest.raises(ConfigError) as excinfo:
        parse_check("probe.x\n>\n\nfoo")
    one_line_error(excinfo)


# ------------------------------------------------------------------ validation

AVAILABLE = {
    "probe": {"nuisance_accuracy", "n"},
    "pgd-linf": {"clean_accuracy", "robust_accuracy", "n"},
    "metamer": {"invariance_success_rate"},
    "invertibility": {"reconstruction_max_abs", "reconstruction_mean_abs", "n"},
    "model": {"clean_test_accuracy"},
}


def test_validate_accepts_known_paths():
    checks = [
        parse_check("probe.nuisance_accuracy > 0.5"),
        parse_check("pgd-linf.robust_accuracy[0.7] < 0.8"),  # keys are not checked here
        parse_check("invertibility.reconstruction_max_abs > 1e-4"),
        parse_check("model.clean_test_accuracy < 0.9"),
        parse_check("warnings.count != 0"),  # always available
    ]
    validate(checks, AVAILABLE)


def test_validate_unknown_method_lists_available():
    with pytest.raises(ConfigError) as excinfo:
        validate([parse_check("prob.nuisance_accuracy > 0.5")], AVAILABLE)
    message = one_line_error(excinfo)
    assert "unknown method 'prob'" in message and "did you mean 'probe'" in message
    assert "available: invertibility, metamer, model, pgd-linf, probe, warnings" in message


def test_validate_unknown_metric_lists_metrics():
    with pytest.raises(ConfigError) as excinfo:
        validate([parse_check("pgd-linf.robust_acc[0.1] < 0.5")], AVAILABLE)
    message = one_line_error(excinfo)
    assert "'pgd-linf' has no metric 'robust_acc'" in message
    assert "available: clean_accuracy, n, robust_accuracy" in message


def test_validate_section_missing_from_available():
    with pytest.raises(ConfigError, match="unknown method 'model'"):
        validate([parse_check("model.clean_test_accuracy < 0.9")], {"probe": {"n"}})


def test_available_from_report_validates_its_own_paths():
    available = available_from_report(sample_report())
    assert available["pgd-linf"] == {"clean_accuracy", "robust_accuracy", "n"}
    assert available["warnings"] == {"count"}
    validate([parse_check("model.clean_test_accuracy < 0.9")], available)


# ------------------------------------------------------------------ evaluation


@pytest.mark.parametrize(
    ("expression", "failed"),
    [
        ("probe.nuisance_accuracy > 0.5", True),
        ("probe.nuisance_accuracy > 0.9912", False),  # boundary: equal is not greater
        ("probe.nuisance_accuracy >= 0.9912", True),
        ("probe.nuisance_accuracy >= 0.9913", False),
        ("probe.nuisance_accuracy < 0.9912", False),
        ("probe.nuisance_accuracy <= 0.9912", True),
        ("probe.nuisance_accuracy <= 0.9911", False),
        ("probe.nuisance_accuracy < 1", True),
        ("probe.nuisance_accuracy == 0.9912", True),
        ("probe.nuisance_accuracy == 0.99", False),
        ("probe.nuisance_accuracy != 0.9912", False),
        ("probe.nuisance_accuracy != 0.99", True),
        ("probe.n == 10000", True),
        ("probe.n < 1e4", False),
        ("pgd-linf.robust_accuracy[0.1] < 0.8", True),
        ("pgd-linf.robust_accuracy[0.10] < 0.5", False),
        ("pgd-linf.robust_accuracy[0.3] <= 0", True),
        ("invertibility.reconstruction_max_abs > 1e-4", False),
        ("invertibility.reconstruction_max_abs > 1e-6", True),
        ("model.clean_test_accuracy < 0.98", False),
        ("warnings.count != 0", True),
        ("warnings.count > 1", False),
        ("metamer.invariance_success_rate == null", True),
        ("metamer.invariance_success_rate != null", False),
        ("probe.nuisance_accuracy == null", False),
        ("probe.nuisance_accuracy != null", True),
    ],
)
def test_evaluate_pass_fail(expression, failed):
    (result,) = evaluate([parse_check(expression)], sample_report())
    assert result.failed is failed, result.message
    assert "\n" not in result.message


@pytest.mark.parametrize("op", ["<", "<=", ">", ">=", "==", "!="])
@pytest.mark.parametrize("metric", ["invariance_success_rate", "distance"])
def test_null_and_nan_values_fail_every_numeric_comparison(op, metric):
    (result,) = evaluate([parse_check(f"metamer.{metric} {op} 0.5")], sample_report())
    assert result.failed
    assert ("missing" if metric == "invariance_success_rate" else "NaN") in result.message
    if metric == "distance":
        assert math.isnan(result.value)
    else:
        assert result.value is None


def test_evaluate_reads_other_report_key_spellings():
    report = sample_report()
    report["attacks"]["pgd-linf"]["metrics"]["robust_accuracy"] = {"0.30": 0.25}
    (result,) = evaluate([parse_check("pgd-linf.robust_accuracy[0.3] < 0.2")], report)
    assert result.value == 0.25 and not result.failed


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("pgd-linf.robust_accuracy[0.2] < 0.8", "has no key [0.2]; keys: 0.1, 0.3"),
        ("pgd-linf.robust_accuracy < 0.8", "is a map; pick an entry"),
        ("probe.nuisance_accuracy[0.1] > 0.5", "is not a map"),
        ("cw-l2.median_distance < 0.1", "no attack 'cw-l2'; present: metamer, pgd-linf, probe"),
        ("probe.missing > 0.5", "attack 'probe' has no metric 'missing'"),
        ("model.arch > 1", "'firevnet-mnist', not a number"),
        ("model.unknown > 1", "section 'model' has no metric 'unknown'"),
    ],
)
def test_evaluate_missing_or_bad_path_raises(expression, fragment):
    with pytest.raises(ConfigError) as excinfo:
        evaluate([parse_check(expression)], sample_report())
    message = one_line_error(excinfo)
    assert fragment in message


def test_evaluate_rejects_booleans_and_missing_sections():
    report = sample_report()
    report["attacks"]["probe"]["metrics"]["nuisance_accuracy"] = True
    with pytest.raises(ConfigError, match="not a number"):
        evaluate([parse_check("probe.nuisance_accuracy > 0.5")], report)
    del report["warnings"]
    with pytest.raises(ConfigError, match="no 'warnings' list"):
        evaluate([parse_check("warnings.count > 0")], report)
    del report["invertibility"]
    with pytest.raises(ConfigError, match="no 'invertibility' section"):
        evaluate([parse_check("invertibility.n < 1")], report)


def test_evaluate_accepts_numpy_scalars():
    np = pytest.importorskip("numpy")
    report = sample_report()
    report["attacks"]["probe"]["metrics"]["nuisance_accuracy"] = np.float32(0.75)
    report["attacks"]["probe"]["metrics"]["n"] = np.int64(3)
    results = evaluate(
        [parse_check("probe.nuisance_accuracy > 0.5"), parse_check("probe.n > 5")], report
    )
    assert [r.failed for r in results] == [True, False]


def test_exit_codes():
    report = sample_report()
    passing = evaluate([parse_check("probe.nuisance_accuracy > 0.999")], report)
    failing = evaluate(
        [parse_check("probe.nuisance_accuracy > 0.999"), parse_check("warnings.count > 0")],
        report,
    )
    assert gate_exit_code(passing) == 0
    assert gate_exit_code(failing) == 1
    assert gate_exit_code([]) == 0


def test_format_results_lines():
    results = evaluate(
        [
            parse_check("probe.nuisance_accuracy > 0.5"),
            parse_check("probe.nuisance_accuracy   <0.5"),
            parse_check("metamer.invariance_success_rate >= 0.9"),
        ],
        sample_report(),
    )
    lines = format_results(results)
    assert lines == [
        "FAIL probe.nuisance_accuracy > 0.5  (value 0.9912)",
        "ok   probe.nuisance_accuracy <0.5  (value 0.9912)",
        "FAIL metamer.invariance_success_rate >= 0.9  (value missing)",
    ]


# ----------------------------------------------------------------------- JUnit


def gate_results():
    checks = [
        parse_check("probe.nuisance_accuracy > 0.5"),
        parse_check("pgd-linf.robust_accuracy[0.1] < 0.8"),
        parse_check("invertibility.reconstruction_max_abs > 1e-4"),
        Check(**{**parse_check("model.clean_test_accuracy < 0.9").__dict__, "name": 'a <"&> b'}),
    ]
    return evaluate(checks, sample_report())


def test_junit_xml_counts_and_testcases():
    results = gate_results()
    root = ET.fromstring(junit_xml(results))
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "invaudit gate"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "2", "0")
    cases = suite.findall("testcase")
    assert len(cases) == 4
    assert [c.get("name") for c in cases] == [
        "probe.nuisance_accuracy > 0.5",
        "pgd-linf.robust_accuracy[0.1] < 0.8",
        "invertibility.reconstruction_max_abs > 1e-4",
        'a <"&> b',  # escaping is handled by ElementTree
    ]
    assert [c.get("classname") for c in cases] == [
        "invaudit.gate.probe",
        "invaudit.gate.pgd-linf",
        "invaudit.gate.invertibility",
        "invaudit.gate.model",
    ]
    failures = [c.find("failure") for c in cases]
    assert [f is not None for f in failures] == [True, True, False, False]
    assert "0.9912" in failures[0].get("message") and "0.5" in failures[0].get("message")
    assert "value 0.5" in failures[1].get("message") and "0.8" in failures[1].get("message")


def test_junit_xml_empty_and_custom_suite_name():
    root = ET.fromstring(junit_xml([], suite_name="nightly"))
    suite = root.find("testsuite")
    assert suite.get("name") == "nightly" and suite.get("tests") == "0"
    assert suite.findall("testcase") == []


def test_junit_xml_survives_control_characters_in_names():
    (result,) = evaluate([parse_check("probe.nuisance_accuracy > 0.5")], sample_report())
    named = Check(**{**result.check.__dict__, "name": "bad\x00name\x1b"})
    results = [type(result)(named, result.value, result.failed, result.message)]
    root = ET.fromstring(junit_xml(results))
    assert root.find("testsuite/testcase").get("name").startswith("bad")


def test_write_junit_is_atomic(tmp_path, monkeypatch):
    calls = []
    real = gate_module.write_atomic

    def spy(path, write):
        calls.append(Path(path))
        real(path, write)

    monkeypatch.setattr(gate_module, "write_atomic", spy)
    target = tmp_path / "out" / "gate.xml"
    write_junit(gate_results(), target)
    assert calls == [target]
    root = ET.parse(target).getroot()
    assert root.find("testsuite").get("failures") == "2"
    assert [p.name for p in target.parent.iterdir()] == ["gate.xml"]  # no temp file left


def test_write_junit_keeps_old_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "gate.xml"
    target.write_bytes(b"old")

    def broken(results, suite_name="invaudit gate"):
        raise RuntimeError("boom")

    monkeypatch.setattr(gate_module, "junit_xml", broken)
    with pytest.raises(RuntimeError):
        write_junit(gate_results(), target)
    assert target.read_bytes() == b"old"


# ---------------------------------------------------------------------- policy


def write_policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gate.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_policy_fail_if_list(tmp_path):
    path = write_policy(
        tmp_path,
        """
# fail the build when any of these holds
fail_if = [
  "probe.nuisance_accuracy > 0.5",
  "pgd-linf.robust_accuracy[0.10] < 0.8",
]
""",
    )
    checks = load_policy(path)
    assert [c.path for c in checks] == ["probe.nuisance_accuracy", "pgd-linf.robust_accuracy[0.1]"]
    assert checks[0].source == f"policy {path}: fail_if[0]"
    assert [c.label for c in checks] == [
        "probe.nuisance_accuracy > 0.5",
        "pgd-linf.robust_accuracy[0.10] < 0.8",
    ]


def test_policy_check_tables_and_both_forms(tmp_path):
    path = write_policy(
        tmp_path,
        """
fail_if = ["warnings.count != 0"]

[[check]]
name = "nuisance probe must not recover the class"
path = "probe.nuisance_accuracy"
op = ">"
value = 0.5

[[check]]
path = "invertibility.reconstruction_max_abs"
op = ">="
value = 1e-4

[[check]]
name = "metamers need an oracle"
path = "metamer.invariance_success_rate"
op = "=="
value = "null"

[[check]]
path = "probe.n"
op = "<"
value = 1000
""",
    )
    checks = load_policy(path)
    assert [c.text for c in checks] == [
        "warnings.count != 0",
        "probe.nuisance_accuracy > 0.5",
        "invertibility.reconstruction_max_abs >= 0.0001",
        "metamer.invariance_success_rate == null",
        "probe.n < 1000",
    ]
    assert checks[1].name == "nuisance probe must not recover the class"
    assert checks[2].name is None and checks[2].threshold == 1e-4
    results = evaluate(checks, sample_report())
    assert [r.failed for r in results] == [True, True, False, True, False]
    root = ET.fromstring(junit_xml(results))
    names = [c.get("name") for c in root.iter("testcase")]
    assert names[1] == "nuisance probe must not recover the class"
    assert names[3] == "metamers need an oracle"
    assert format_results(results)[1] == (
        "FAIL nuisance probe must not recover the class: probe.nuisance_accuracy > 0.5"
        "  (value 0.9912)"
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("fail_if = [", "invalid TOML"),
        ("fail_if = ['a.b > 1'\nfoo", "invalid TOML"),
        ("fail-if = ['probe.n > 1']", "unknown key 'fail-if'; allowed: fail_if, check"),
        ("fail_if = 'probe.n > 1'", "'fail_if' must be an array of strings"),
        ("fail_if = [1, 2]", "fail_if[0] must be a string"),
        ("fail_if = ['probe.n >> 1']", "fail_if[0] 'probe.n >> 1': unknown operator '>>'"),
        ("fail_if = []", "defines no checks"),
        ("", "defines no checks"),
        ("check = 3", "'check' must be an array of tables"),
        (
            "[[check]]\npath = 'probe.n'\nop = '>'\nvalue = 1\nthreshold = 2",
            "check[0]: unknown key 'threshold'; allowed: name, path, op, value",
        ),
        ("[[check]]\npath = 'probe.n'\nop = '>'", "check[0]: missing 'value'"),
        ("[[check]]\nop = '>'\nvalue = 1", "check[0]: missing 'path'"),
        ("[[check]]\npath = 'probe.n'\nop = 1\nvalue = 1", "check[0]: 'op' must be a string"),
        ("[[check]]\npath = ['probe.n']\nop = '<'\nvalue = 1", "'path' must be a string"),
        ("[[check]]\npath='probe.n'\nop='<'\nvalue=1\nname=3", "'name' must be a string"),
        ("[[check]]\npath='probe.n'\nop='<'\nvalue=1\nname=' '", "'name' must not be empty"),
        ("[[check]]\npath = 'probe.n'\nop = '<'\nvalue = true", "'value' must be a number"),
        ("[[check]]\npath = 'probe.n'\nop = '<'\nvalue = [1]", "'value' must be a number"),
        ("[[check]]\npath = 'probe.n'\nop = '<'\nvalue = '0.5'", "write numbers unquoted"),
        ("[[check]]\npath = 'probe.n'\nop = '<'\nvalue = inf", "finite number"),
        ("[[check]]\npath = 'probe.n'\nop = '<'\nvalue = nan", "finite number"),
        ("[[check]]\npath = 'probe.n'\nop = '<'\nvalue = 'null'", "null can only be compared"),
        ("[[check]]\npath = 'probe'\nop = '<'\nvalue = 1", "check[0] 'probe < 1': bad metric"),
        ("[[check]]\npath = 'probe.n'\nop = '=<'\nvalue = 1", "unknown operator '=<'"),
    ],
)
def test_policy_errors_are_one_line_and_name_the_file(tmp_path, text, fragment):
    path = write_policy(tmp_path, text)
    with pytest.raises(ConfigError) as excinfo:
        load_policy(path)
    message = one_line_error(excinfo)
    assert message.startswith(f"policy {path}")
    assert fragment in message


def test_policy_missing_file_directory_and_bad_encoding(tmp_path):
    with pytest.raises(ConfigError) as excinfo:
        load_policy(tmp_path / "nope.toml")
    assert one_line_error(excinfo) == f"policy {tmp_path / 'nope.toml'}: file not found"
    with pytest.raises(ConfigError, match="cannot read"):
        load_policy(tmp_path)
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b"fail_if = ['probe.n > 1'] # \xff\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_policy(bad)


def test_policy_without_toml_reader(tmp_path, monkeypatch):
    path = write_policy(tmp_path, "fail_if = ['probe.n > 1']")
    monkeypatch.setitem(sys.modules, "tomllib", None)
    monkeypatch.setitem(sys.modules, "tomli", None)
    with pytest.raises(ConfigError) as excinfo:
        load_policy(path)
    assert "need Python >= 3.11 (tomllib) or the tomli package" in one_line_error(excinfo)


def test_policy_errors_propagate_source_into_validate_and_evaluate(tmp_path):
    path = write_policy(tmp_path, "fail_if = ['probe.n > 1', 'pgd-linf.robust_accuracy[0.2] < 1']")
    checks = load_policy(path)
    with pytest.raises(ConfigError, match=r"fail_if\[0\] 'probe.n > 1': 'probe' has no metric"):
        validate(checks, {"probe": {"nuisance_accuracy"}})
    with pytest.raises(ConfigError, match=r"fail_if\[1\] .*has no key \[0.2\]"):
        evaluate(checks, sample_report())
