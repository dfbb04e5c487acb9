"""Adding an attack takes one module and one registry line (issue 16, item 2).

The attack below is declared here, in the test, exactly as a module under
``invaudit/attacks/`` declares its own, and registered with the one call a new
module's line in ``invaudit/attacks/__init__.py`` makes.  Then the library makes
a suite, two reports, a comparison and a gate plan, and the attack shows up in
each: in the suite's steps, with its metrics and intervals in ``report.json``,
its headline row in ``report.md`` and ``report.html`` (marked when its oracle rate
is voided), its row in ``compare.csv`` and ``compare.md``, and among the metrics a
gate may check.  Nothing else in invaudit names it: the test is the proof.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from torch.utils.data import TensorDataset

import invaudit
from invaudit.attacks import (
    ATTACKS,
    Attack,
    AttackResult,
    AuditContext,
    Budget,
    Headline,
    SpheresOracle,
    check_attack,
    register,
)
from invaudit.attacks.base import encode, optional_share, oracle_labels, require_invertible, share
from invaudit.attacks.declaration import FULL, LOWER
from invaudit.attacks.preimage import decode_pairs
from invaudit.attacks.setup import AuditSetup
from invaudit.data.audit import AuditData
from invaudit.data.spheres import spheres_splits
from invaudit.errors import ConfigError
from invaudit.models import build
from invaudit.reports.gate import parse_check
from invaudit.reports.gate_plan import validate_plan
from invaudit.reports.render_md import NOT_MEANINGFUL, headline_rows
from invaudit.reports.report_files import write_comparison, write_report
from invaudit.reports.runner import SuiteRun, run_suite
from invaudit.reports.suite import plan_suite, planned_metrics

NAME = "zn-shrink"
RADII = (1.0, 10.0)
DIM = 6


# -- the new attack: what its module under invaudit/attacks/ would hold -----------------


def run_zn_shrink(ctx: AuditContext, *, scale: float = 0.5) -> AttackResult:
    """Shrink every audited example's nuisances by ``scale``, its logits fixed.

    Args:
        scale: the factor on z_n (0: the centre of the logit pre-image).
    """
    model = require_invertible(ctx.model, "model", NAME)
    x, y = ctx.test_examples()
    z_s, z_n = model.split(encode(ctx, model, x))
    shrunk = decode_pairs(ctx, model, z_s, scale * z_n)
    assert shrunk.logits is not None and shrunk.logit_match is not None
    kept = shrunk.logits.argmax(1) == z_s.argmax(1)
    oracle = oracle_labels(ctx, shrunk.x)
    metrics = {
        "n": len(y),
        "decision_kept": share(kept),
        "oracle_changed": optional_share(None if oracle is None else oracle != y),
        "logit_match_max_abs": float(shrunk.logit_match.max()),
    }
    records = pd.DataFrame({"index": range(len(y)), "decision_kept": kept.numpy()})
    return AttackResult(NAME, metrics, records, {}, {"scale": scale})


ZN_SHRINK = Attack(
    name=NAME,
    kind="invariance",
    run=run_zn_shrink,
    summary="z_n shrunk towards 0 with z_s fixed: does the oracle's label move?",
    metrics=("n", "decision_kept", "oracle_changed", "logit_match_max_abs"),
    rates={"decision_kept": "n", "oracle_changed": "n"},
    headline=(
        Headline("oracle_changed", "oracle label changed", better=LOWER, compare=True),
        Headline("decision_kept", "decision kept", better=FULL),
    ),
    oracle_rates=("oracle_changed",),
    suites={"quick": Budget(30), "full": Budget(None)},
    smoke={"scale": 0.9},
)


# -- the one registry line, undone after the module ----------------------------------


@pytest.fixture(scope="module", autouse=True)
def registered() -> Iterator[None]:
    register(ZN_SHRINK)  # what `register(zn_shrink.ATTACK)` in invaudit/attacks does
    try:
        yield
    finally:
        del ATTACKS[NAME]


# -- a small spheres model, audited with a suite that includes it -----------------------


def spheres_setup(folder: Path) -> AuditSetup:
    train, test = spheres_splits(dim=DIM, radii=RADII, seed=0, n_train=400, n_test=60)
    info = {
        "name": "spheres",
        "bounds": (-10.0, 10.0),
        "input_shape": [DIM],
        "num_classes": 2,
        "options": {"dim": DIM, "radii": list(RADII), "seed": 0},
    }
    data = AuditData(
        "spheres", info, TensorDataset(*test.tensors()), lambda: TensorDataset(*train.tensors())
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build("firevnet-fc", dim=DIM, hidden=16, blocks=2).double().eval()
    path = folder / "toy.pt"  # the report records the model file's sha256
    torch.save(model.state_dict(), path)
    return AuditSetup(str(path), model, data, SpheresOracle(RADII), torch.device("cpu"), "float64")


@pytest.fixture(scope="module")
def audited(tmp_path_factory) -> tuple[dict[str, SuiteRun], Path]:
    root = tmp_path_factory.mktemp("toy")
    setup = spheres_setup(root)
    planned = plan_suite("quick", "spheres", n=30)
    assert NAME in planned.methods  # the suite reads the declared budget
    # Keep the run short: the new attack beside one invariance and one ε-attack.
    steps = tuple(s for s in planned.steps if s.method in (NAME, "metamer", "fgsm"))
    suite = type(planned)(planned.name, steps, planned.accuracy_n, planned.invertibility_n)
    runs = {f"seed{seed}": run_suite(setup, suite, seed=seed) for seed in (0, 1)}
    write_report(runs["seed0"], root / "report")
    write_comparison(runs, root / "compare")
    return runs, root


def test_the_registry_takes_options_from_the_signature() -> None:
    assert ATTACKS[NAME] is ZN_SHRINK and ZN_SHRINK.options == {"scale": 0.5}
    assert check_attack(NAME, "spheres", {"scale": 0.2}) is ZN_SHRINK
    with pytest.raises(ConfigError, match=r"zn-shrink takes no option steps \(it takes: scale\)"):
        check_attack(NAME, "spheres", {"steps": 3})
    with pytest.raises(ValueError, match="registered already"):
        register(ZN_SHRINK)


def test_a_declaration_that_contradicts_itself_is_refused() -> None:
    def positional(ctx: AuditContext, scale: float = 0.5) -> AttackResult:
        raise AssertionError("never run")

    with pytest.raises(TypeError, match="keyword-only"):
        Attack(name="bad", kind="invariance", run=positional, summary="")
    with pytest.raises(ValueError, match="undeclared metrics"):
        Attack(name="bad", kind="invariance", run=run_zn_shrink, summary="", metrics=("n",),
               headline=(Headline("oracle_changed", "x"),))  # fmt: skip
    with pytest.raises(ValueError, match="options run does not take"):
        Attack(name="bad", kind="invariance", run=run_zn_shrink, summary="",
               suites={"quick": Budget(10, {"steps": 2})})  # fmt: skip


def test_report_json_holds_its_metrics_and_intervals(audited) -> None:
    _, root = audited
    report = json.loads((root / "report" / "report.json").read_text())
    assert NAME in report["suite"]["methods"] and report["suite"]["n"][NAME] == 30
    record = report["attacks"][NAME]
    assert list(record["metrics"]) == list(ZN_SHRINK.metrics)
    assert set(record["intervals"]) == {"decision_kept", "oracle_changed"}
    assert record["kind"] == "invariance" and record["summary"] == ZN_SHRINK.summary
    assert record["n"] == 30 and record["records"] == f"{NAME}.csv"
    assert (root / "report" / f"{NAME}.csv").is_file()


def test_its_headline_rows_are_in_report_md_and_html(audited) -> None:
    runs, root = audited
    value = runs["seed0"].report["attacks"][NAME]["metrics"]["oracle_changed"]
    rows = {row[0]: row for row in headline_rows(runs["seed0"].report)}
    row = rows[f"{NAME} oracle label changed"]
    assert row[1] == f"{100 * value:.1f}%" and row[2].startswith("[") and row[3:] == ("30", LOWER)
    assert rows[f"{NAME} decision kept"][4] == FULL
    markdown = (root / "report" / "report.md").read_text()
    assert f"| {NAME} oracle label changed " in markdown and f"## Attack: {NAME}" in markdown
    assert f"{NAME} oracle label changed" in (root / "report" / "report.html").read_text()


def test_its_oracle_rate_is_voided_like_the_metamers(audited) -> None:
    runs, _ = audited
    report: dict[str, Any] = json.loads(json.dumps(runs["seed0"].report))
    report["oracle"] = {"name": "cnn", "exact": False}  # a learned oracle judges inputs only
    report["warnings"] = [{"name": "inverse_exploding", "method": None, "message": "boom"}]
    rows = {row[0]: row for row in headline_rows(report)}
    assert NOT_MEANINGFUL in rows[f"{NAME} oracle label changed"][1]
    assert NOT_MEANINGFUL not in rows[f"{NAME} decision kept"][1]  # not an oracle rate


def test_compare_puts_it_side_by_side(audited) -> None:
    runs, root = audited
    long = pd.read_csv(root / "compare" / "compare.csv")
    mine = long[long["quantity"] == f"{NAME}.oracle_changed"]
    assert list(mine["model"]) == ["seed0", "seed1"]
    assert (mine["n"] == 30).all() and mine["low"].notna().all()
    assert f"{NAME} oracle label changed" in (root / "compare" / "compare.md").read_text()


def test_a_gate_may_check_its_metrics_before_it_runs(audited) -> None:
    suite = plan_suite("quick", "spheres", n=30)
    assert planned_metrics(suite)[NAME] == set(ZN_SHRINK.metrics)
    validate_plan([parse_check(f"{NAME}.oracle_changed > 0.5")], suite, invertible=True)
    with pytest.raises(ConfigError, match="oracle_change"):
        validate_plan([parse_check(f"{NAME}.oracle_change > 0.5")], suite, invertible=True)


def test_nothing_in_invaudit_names_it() -> None:
    package = Path(invaudit.__file__).parent
    assert not [p for p in package.rglob("*.py") if NAME in p.read_text(encoding="utf-8")]
