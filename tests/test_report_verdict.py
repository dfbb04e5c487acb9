"""Issue 14, items 10-15: a report whose first line is its verdict.

The verdict paragraph, exact intervals, descriptions from the settings a run used,
figure captions and class names, a weak model and a self-oracle, and progress that
moves with elapsed time and ETA.  Everything here runs without training a model;
the end-to-end checks on written reports are in tests/test_report_cli.py.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from torch.utils.data import TensorDataset

from invaudit.attacks import ATTACKS, AuditContext, SpheresOracle
from invaudit.attacks.base import Progress
from invaudit.data.audit import AuditData
from invaudit.data.classes import FASHION_MNIST_CLASSES, class_name
from invaudit.data.spheres import spheres_splits
from invaudit.models import build
from invaudit.progress import BarProgress, EpochProgress, _Bar, clock, times_text
from invaudit.reports.formats import fmt_interval
from invaudit.reports.gate import evaluate, gate_record, parse_check
from invaudit.reports.intervals import proportion_interval, rate_interval
from invaudit.reports.render_md import report_markdown
from invaudit.reports.sanity import MODEL_MIN_ACCURACY, model_warnings, report_warnings
from invaudit.reports.schema import SCHEMA, SCHEMA_VERSION, check_report
from invaudit.reports.verdict import verdict_sentences, verdict_text


def _attack(kind: str, n: int, metrics: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "summary": "", "n": n, "intervals": {}, "metrics": metrics,
            "settings": {}, "records": "x.csv", "figures": [], **extra}  # fmt: skip


def mnist_report() -> dict[str, Any]:
    """A new-style MNIST report: metamers fool the model on 87.7 %, PGD breaks 45 %."""
    report = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created": "2026-12-01T00:00:00+00:00",
        "suite": {"name": "quick", "seed": 0, "methods": ["metamer", "probe", "pgd-linf"]},
        "model": {"path": "m.pt", "sha256": "ab" * 32, "arch": "firevnet-mnist", "loss": "ce",
                  "dataset": "mnist", "num_classes": 10, "invertible": True,
                  "parameters": 10, "clean_accuracy": 0.991, "clean_accuracy_n": 1000},
        "invertibility": {"n": 256, "max_abs_error": 1e-6, "mean_abs_error": 1e-8,
                          "tolerance": 1e-4, "passed": True},
        "oracle": {"name": "cnn", "exact": False, "clean_accuracy": 0.99,
                   "clean_accuracy_n": 1000, "description": "a CNN"},
        "attacks": {
            "metamer": _attack("invariance", 1000, {
                "n": 1000, "logit_match_max_abs": 1e-5, "prediction_preserved": 1.0,
                "invariance_success_rate": 0.877, "oracle_agrees_nuisance_source": 0.6,
                "bounds_excursion_mean": 0.01, "near_box_share": 0.95,
            }),
            "probe": _attack("invariance", 2000, {
                "n": 2000, "n_train": 10000, "nuisance_accuracy": 0.95, "nuisance_error": 0.05,
                "logit_error": 0.01, "decision_test_error": 0.01,
            }),
            "pgd-linf": _attack("sensitivity", 1000, {
                "n": 1000, "clean_accuracy": 0.99,
                "robust_accuracy": {"0.1": 0.80, "0.3": 0.55, "0.2": 0.70},
            }, settings={"norm": "linf"}),
        },
        "warnings": [],
        "environment": {},
        "timing": {},
    }  # fmt: skip
    for method, record in report["attacks"].items():
        from invaudit.reports.intervals import rate_intervals

        record["intervals"] = rate_intervals(ATTACKS[method].rates, record["metrics"])
    report["warnings"] = report_warnings(report)
    return report


# -- 10. the verdict -------------------------------------------------------------------


def test_the_verdict_says_what_was_found_and_which_side_is_worse() -> None:
    report = mnist_report()
    assert check_report(report) and report["warnings"] == []
    invariance, sensitivity, worse, warnings = verdict_sentences(report)
    assert invariance.startswith("Excessive invariance: 87.7% [85.5, 89.7] of metamers are")
    assert "a fresh probe reads the class from z_n on 95.0% [94.0, 95.9] of test inputs" in (
        invariance
    )
    assert "chance 10.0%" in invariance
    # the largest ε (0.3, not the last key written) of the strongest attack per norm
    assert sensitivity == (
        "Excessive sensitivity: from 99.1% clean, robust accuracy falls to "
        "55.0% [51.9, 58.1] under pgd-linf at L∞ ε = 0.3."
    )
    assert worse.startswith("The invariance side is worse at the budgets audited (87.7% ")
    assert "45.0% of inputs are misclassified under pgd-linf at ε = 0.3" in worse
    assert warnings == "No warnings."
    report["attacks"]["pgd-linf"]["metrics"]["robust_accuracy"]["0.3"] = 0.0
    del report["attacks"]["pgd-linf"]["intervals"]
    assert "The sensitivity side is worse" in verdict_text(report)


def test_a_cnns_verdict_reads_the_invariance_attacks_that_need_no_inverse() -> None:
    from invaudit.reports.intervals import rate_intervals

    report = mnist_report()
    del report["attacks"]["metamer"], report["attacks"]["probe"], report["invertibility"]
    report["model"].update(arch="cnn", invertible=False)
    report["attacks"]["invariance-eps"] = _attack("invariance", 500, {
        "n": 500, "clean_accuracy": 0.99, "invariance_rate": {"0.1": 0.01, "0.4": 0.178},
        "oracle_changed": {"0.1": 0.02, "0.4": 0.3}, "model_kept": {"0.1": 0.98, "0.4": 0.86},
        "robust_accuracy": {"0.1": None, "0.4": None},
    }, settings={"norm": "linf"})  # fmt: skip
    report["attacks"]["feature-match"] = _attack("invariance", 100, {
        "n": 100, "invariance_success_rate": 0.09})  # fmt: skip
    for method in ("invariance-eps", "feature-match"):
        record = report["attacks"][method]
        record["intervals"] = rate_intervals(ATTACKS[method].rates, record["metrics"])
    invariance, _, worse, _ = verdict_sentences(report)
    assert invariance.startswith(
        "Excessive invariance: 17.8% [14.5, 21.4] of test inputs moved within ε = 0.4 towards "
        "another class's nearest training image change the oracle's label but not the model's"
    )
    assert "9.0% [4.2, 16.4] of feature-matched pairs are invariance-adversarial" in invariance
    assert "not invertible" not in invariance + worse
    assert worse.startswith("The sensitivity side is worse at the budgets audited (17.8% ")


def test_the_verdict_will_not_weigh_rates_that_are_not_meaningful() -> None:
    report = mnist_report()
    report["attacks"]["metamer"]["metrics"].update(bounds_excursion_mean=15.0, near_box_share=0.1)
    report["warnings"] = report_warnings(report)
    text = verdict_text(report)
    assert "the metamer invariance success rate (87.7%) is not meaningful: metamers leave" in text
    assert "Which side is worse cannot be said: the metamer oracle rates are not meaningful" in text
    assert "Warnings that matter: metamers_off_domain (metamers are not images" in text
    report = mnist_report()
    report["oracle"] = None
    report["attacks"]["metamer"]["metrics"]["invariance_success_rate"] = None
    report["warnings"] = report_warnings(report)
    text = verdict_text(report)
    assert "metamer invariance success is n/a (no oracle)" in text
    assert "cannot be said: there is no oracle" in text and "no_oracle (" in text


def test_the_verdict_states_the_gate_and_each_failed_check() -> None:
    report = mnist_report()
    checks = [parse_check(c) for c in (
        "probe.nuisance_accuracy > 0.5", "pgd-linf.robust_accuracy[0.3] < 0.9",
        "model.clean_accuracy < 0.5",
    )]  # fmt: skip
    report["gate"] = gate_record(evaluate(checks, report))
    assert check_report(report)
    gate = verdict_sentences(report)[-2]
    assert gate.startswith("Gate: FAILED, 2 of 3 checks: probe.nuisance_accuracy = 0.95, > 0.5")
    assert "pgd-linf.robust_accuracy[0.3] = 0.55, < 0.9: fails" in gate
    assert "model.clean_accuracy" not in gate  # it held
    md = report_markdown(report)
    assert md.startswith("# gate FAILED (2 of 3 checks) · invaudit report: firevnet-mnist")
    verdict = md.splitlines()[2]  # Markdown-escaped: "<" cannot open a tag on GitHub
    assert verdict == "**Verdict.** " + verdict_text(report).replace("<", "\\<")
    report["gate"] = gate_record(evaluate(checks[2:], report))
    assert "Gate: passed (1 check, none failed)." in verdict_text(report)


def test_the_warnings_that_matter_come_before_precision_ones() -> None:
    report = mnist_report()
    report["oracle"]["clean_accuracy"] = 0.9
    report["attacks"]["pgd-linf"]["n"] = report["attacks"]["pgd-linf"]["metrics"]["n"] = 60
    del report["attacks"]["pgd-linf"]["intervals"]  # recomputed from the rates and n = 60
    report["warnings"] = report_warnings(report)
    assert [w["name"] for w in report["warnings"]] == ["oracle_weak", "few_samples"]
    last = verdict_sentences(report)[-1]
    assert last.startswith("Warnings that matter: oracle_weak (the oracle is too weak")
    assert last.endswith("; precision only: few_samples (intervals wider than ±5 points).")


# -- 11. intervals ---------------------------------------------------------------------


def test_clopper_pearson_intervals_are_exact_and_narrow_at_the_edges() -> None:
    low, high = proportion_interval(998, 1000)
    assert low == pytest.approx(0.99279, abs=1e-5) and high == pytest.approx(0.99976, abs=1e-5)
    assert (high - low) * 100 < 1  # 99.8 % at n = 1000: under a point wide
    assert fmt_interval(rate_interval(0.998, 1000)) == "[99.28, 99.98]"
    # the old worst case said ±6.1 % for any rate at n = 256; 0 % is [0, 1.43]
    assert rate_interval(0.0, 256)["low"] == 0.0
    assert rate_interval(0.0, 256)["high"] == pytest.approx(0.01430, abs=1e-4)
    assert rate_interval(1.0, 10)["high"] == 1.0
    assert fmt_interval(rate_interval(0.875, 512)) == "[84.3, 90.2]"
    assert rate_interval(None, 10) is None and rate_interval(0.5, 0) is None


def test_every_declared_rate_is_a_metric_of_its_attack() -> None:
    for name, attack in ATTACKS.items():
        assert set(attack.rates) <= set(attack.metrics), name
        assert set(attack.rates.values()) <= set(attack.metrics), name
    assert ATTACKS["pgd-linf"].rates == {"clean_accuracy": "n", "robust_accuracy": "n"}
    assert ATTACKS["probe"].rates["nuisance_train_error"] == "n_train"


def test_old_reports_with_a_half_width_still_read() -> None:
    report = mnist_report()
    for record in report["attacks"].values():
        record["ci95_halfwidth"] = 0.03
        del record["intervals"]
    assert check_report(report)
    assert "87.7% [85.5, 89.7]" in verdict_text(report)  # computed from rate and n
    del report["attacks"]["metamer"]["ci95_halfwidth"]
    with pytest.raises(Exception, match="intervals or ci95_halfwidth"):
        check_report(report)


# -- 12. descriptions from the settings used; captions; class names --------------------


def test_pgd_describes_the_steps_it_ran() -> None:
    pgd = ATTACKS["pgd-linf"]
    assert "40 steps" not in pgd.summary
    assert pgd.description({"steps": 10}) == (
        "L∞ PGD (foolbox, random start, 10 steps of 0.25·ε): robust accuracy at each ε"
    )
    assert "40 steps" in pgd.description()  # the default, when nothing is set
    assert "3 steps" in ATTACKS["pgd-l2"].description({"steps": 3, "random_start": False})
    assert ATTACKS["fgsm"].description({"epsilons": [0.1]}) == ATTACKS["fgsm"].summary


def test_fashion_mnist_figures_name_their_classes() -> None:
    assert class_name("fashion-mnist", 9) == "Ankle boot" == FASHION_MNIST_CLASSES[9]
    assert class_name("fashion-mnist", torch.tensor(0)) == "T-shirt/top"
    assert class_name("mnist", 3) == "3" and class_name(None, 12) == "12"
    from invaudit.attacks.metamer import _image_figure

    ex = {
        "logit_source": torch.rand(2, 1, 8, 8), "metamer": torch.rand(2, 1, 8, 8),
        "nuisance_source": torch.rand(2, 1, 8, 8), "label": torch.tensor([0, 9]),
        "metamer_prediction": torch.tensor([0, 9]), "oracle_metamer": torch.tensor([5, 9]),
    }  # fmt: skip
    fig = _image_figure(ex, "fashion-mnist")
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["D: T-shirt/top\no: Sandal", "D: Ankle boot\no: Ankle boot"]
    texts = " ".join(t.get_text() for t in fig.texts)
    assert "D = the audited model's decision" in texts and "o = the oracle's label" in texts


# -- 13. the data source is said --------------------------------------------------------


def test_the_embedded_fallback_says_so() -> None:
    from invaudit.data.audit import audit_data
    from invaudit.data.images import has_split_files

    data = audit_data({"name": "mnist", "bounds": (0.0, 1.0)}, data_dir="/nonexistent-dir")
    assert not has_split_files("mnist", "test", "/nonexistent-dir")
    assert data.source.startswith("embedded MNIST t10k") and "/nonexistent-dir" in data.source


# -- 14. progress ------------------------------------------------------------------------


class Recorder(Progress):
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def start(self, label: str, total: int) -> None:
        self.calls.append(("start", (label, total)))

    def advance(self, steps: int = 1) -> None:
        self.calls.append(("advance", steps))

    def finish(self) -> None:
        self.calls.append(("finish", None))


@pytest.fixture(scope="module")
def spheres() -> tuple[AuditData, torch.nn.Module]:
    train, test = spheres_splits(dim=6, radii=(1.0, 10.0), seed=0, n_train=200, n_test=100)
    info = {"name": "spheres", "input_shape": [6], "num_classes": 2, "bounds": (-10.0, 10.0),
            "options": {"dim": 6, "radii": [1.0, 10.0], "seed": 0}}  # fmt: skip
    data = AuditData("spheres", info, TensorDataset(*test.tensors()),
                     lambda: TensorDataset(*train.tensors()))  # fmt: skip
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build("firevnet-fc", dim=6, hidden=16, blocks=2).double().eval()
    return data, model


def test_pgd_moves_the_bar_at_every_gradient_step_without_changing_results(spheres) -> None:
    data, model = spheres
    oracle = SpheresOracle((1.0, 10.0))
    results = {}
    for batch_size in (64, 16):
        recorder = Recorder()
        ctx = AuditContext(model, data, oracle=oracle, n=40, seed=0, batch_size=batch_size,
                           progress=recorder)  # fmt: skip
        result = ATTACKS["pgd-linf"].run(ctx, epsilons=[0.1, 0.5], steps=3)
        starts = [c for c in recorder.calls if c[0] == "start"]
        advances = [c[1] for c in recorder.calls if c[0] == "advance"]
        batches = -(-40 // batch_size)
        assert starts == [("start", (f"pgd-linf: {batches} batch(es) × 2 ε × 3 step(s)",
                                     batches * 2 * 3))]  # fmt: skip
        assert sum(advances) == batches * 2 * 3
        assert len(advances) == batches * 2 * 3  # one per gradient step, even in one batch
        assert recorder.calls[-1] == ("finish", None)
        results[batch_size] = result
    quiet = ATTACKS["pgd-linf"].run(
        AuditContext(model, data, oracle=oracle, n=40, seed=0, batch_size=64),
        epsilons=[0.1, 0.5],
        steps=3,
    )
    assert quiet.metrics == results[64].metrics  # the ticks change nothing
    import foolbox as fb

    from invaudit.attacks.foolbox_adapter import gradient_ticks

    pgd = fb.attacks.LinfPGD(steps=2)
    with gradient_ticks(pgd, lambda: None):
        assert "value_and_grad" in vars(pgd)
    assert "value_and_grad" not in vars(pgd)  # nothing is left on the attack object


def test_bars_label_elapsed_time_and_eta(capsys) -> None:
    assert clock(65) == "1:05" and clock(3725) == "1:02:05"
    assert times_text(0, 10, 3.0) == "elapsed 0:03  ETA --"
    assert times_text(2, 10, 30.0) == "elapsed 0:30  ETA 2:00"
    now = [0.0]
    bar = _Bar("pgd-linf", 4, now=lambda: now[0], tty=False)
    for _ in range(4):
        now[0] += 20.0
        bar.update()
    bar.close()
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "pgd-linf: 2/4 (50%)  elapsed 0:40  ETA 0:40",
        "pgd-linf: 4/4 (100%)  elapsed 1:20  ETA 0:00",
        "pgd-linf: done in 1:20",
    ]
    short = _Bar("metamer: encode", 3, tty=False)  # a short bar stays silent off a terminal
    short.update(3)
    short.close()
    silent = BarProgress(False)
    silent.start("x", 3)
    silent.advance()
    silent.finish()
    assert capsys.readouterr().err == ""


def test_training_says_it_evaluates_after_the_last_batch(capsys) -> None:
    progress = EpochProgress(enabled=True, test_size=10_000)
    progress.epoch_start(0, 2, 2)
    progress.batch_end({"loss": 1.0, "acc": 0.5})
    assert "evaluating" not in capsys.readouterr().err
    progress.batch_end({"loss": 0.9, "acc": 0.6})
    assert "epoch 1: evaluating on 10 000 test examples…" in capsys.readouterr().err
    progress.evaluate_start(10_000)  # the trainer's own hook, once it has one: no repeat
    assert capsys.readouterr().err == ""
    metrics = {"epoch": 1, "loss": 0.9, "logit_train_acc": 0.6, "logit_test_acc": 0.7,
               "seconds": 12.0}  # fmt: skip
    progress.epoch_end(metrics)
    assert capsys.readouterr().out.strip().endswith("(elapsed 12 s)")


# -- 15. a weak model and a self-oracle are not audited silently --------------------------


def test_a_55_percent_model_is_warned_about_first() -> None:
    assert MODEL_MIN_ACCURACY["fashion-mnist"] >= 0.9 and MODEL_MIN_ACCURACY["mnist"] >= 0.9
    model = {"dataset": "fashion-mnist", "clean_accuracy": 0.55, "clean_accuracy_n": 1000}
    (warning,) = model_warnings(model)
    assert warning["name"] == "model_inaccurate"
    assert "55.0% on 1000 test examples is below 90%" in warning["message"]
    assert model_warnings({**model, "clean_accuracy": 0.91}) == []
    report = mnist_report()
    report["model"].update(clean_accuracy=0.55)
    report["warnings"] = report_warnings(report)
    first = verdict_sentences(report)[0]
    assert first.startswith("⚠ The model is right on only 55.0% [51.9, 58.1] of 1000 test")
    assert "model_inaccurate (the model is too weak" in verdict_text(report)


def test_the_runner_warns_about_a_weak_model_before_any_attack(spheres) -> None:
    from invaudit.attacks.setup import AuditSetup
    from invaudit.reports.runner import run_suite
    from invaudit.reports.suite import plan_suite

    data, model = spheres  # untrained: about chance
    setup = AuditSetup("m.pt", copy.deepcopy(model), data, SpheresOracle((1.0, 10.0)),
                       torch.device("cpu"), "float64")  # fmt: skip
    heard: list[str] = []
    suite = plan_suite("quick", "spheres", n=20)
    suite = type(suite)(suite.name, tuple(s for s in suite.steps if s.method == "fgsm"),
                        suite.accuracy_n, suite.invertibility_n)  # fmt: skip

    def log(line: str) -> None:
        heard.append(f"log {line}")

    def warn(line: str) -> None:
        heard.append(f"warn {line}")

    with pytest.MonkeyPatch.context() as mp:
        import invaudit.reports.runner as runner

        mp.setattr(runner, "model_record", lambda path, m: {"path": path, "sha256": "0" * 64})
        run = run_suite(setup, suite, seed=0, log=log, warn=warn)
    assert run.report["model"]["clean_accuracy"] < 0.9
    assert heard[1].startswith("warn warning: model_inaccurate: clean test accuracy")
    assert next(i for i, h in enumerate(heard) if "fgsm" in h) > 1  # before the attack
    assert "model_inaccurate" in [w["name"] for w in run.report["warnings"]]
    assert "intervals" in run.report["attacks"]["fgsm"]


def test_an_exact_oracle_keeps_its_rates_meaningful_in_the_verdict() -> None:
    report = mnist_report()
    report["attacks"]["metamer"]["metrics"].update(bounds_excursion_mean=15.0, near_box_share=0.1)
    report["oracle"] = {"name": "radius", "exact": True}
    report["warnings"] = report_warnings(report)
    text = verdict_text(report)
    assert "87.7% [85.5, 89.7] of metamers are invariance-adversarial" in text
    assert "metamers_off_domain (metamers leave the data; the exact oracle still judges" in text
    assert "not meaningful" not in text
