"""The model zoo: cards, ``zoo:NAME`` selectors, the default oracle, ``invaudit zoo``,
the embedded MNIST evaluation set, and the shipped zoo's own files.

Every test but the last runs on a temporary zoo of two untrained tiny MNIST models
(``$INVAUDIT_ZOO_DIR``) and an empty data dir (``$INVAUDIT_DATA``), so the audits
here read the embedded MNIST set and never the network.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner, Result

import invaudit.data.images as images
from invaudit.attacks.setup import LoadedModel, choose_oracle
from invaudit.cli import main
from invaudit.data.audit import audit_data
from invaudit.data.embedded import EMBEDDED_MNIST_DIR
from invaudit.errors import CheckpointError, ConfigError, DataError
from invaudit.models import build
from invaudit.models.checkpoint import load_model, model_payload, read_checkpoint, save_checkpoint
from invaudit.reports.compare import labels_for
from invaudit.reports.schema import SCHEMA, SCHEMA_VERSION, SECTIONS, check_report
from invaudit.zoo import (
    ZOO_DIR,
    ZOO_ENV_VAR,
    is_zoo_selector,
    resolve_model_path,
    verify_entry,
    zoo_entries,
    zoo_oracle_for,
)

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "MNIST" / "raw"
MNIST_INFO = {"name": "mnist", "bounds": (0.0, 1.0), "input_shape": [1, 28, 28], "num_classes": 10}
CLASSIFIER, ORACLE = "mnist-tiny", "mnist-oracle-tiny"  # sorted: the oracle first
MAX_BYTES = 5 * 1024 * 1024
T10K = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def invoke(*args: Any) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(result: Result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def card_for(path: Path, **fields: Any) -> dict[str, Any]:
    card = {
        "name": path.stem,
        "summary": f"{path.stem}: an untrained tiny model for tests",
        "role": "classifier",
        "dataset": "mnist",
        "arch": "firevnet-mnist",
        "loss": "ce",
        "file": path.name,
        "sha256": sha256(path),
        "bytes": path.stat().st_size,
        "command": f"invaudit train --dataset mnist --seed 0 --out {path.name}",
        "data": "none: untrained",
        "epochs": 0,
        "wall_seconds": 0.0,
        "hardware": "none",
        "metrics": {
            "logit_test_error": 0.0072,
            "logit_train_error": 0.01,
            "probe_nuisance_test_error": 0.0115,
            "probe_nuisance_train_error": 0.002,
            "probe_command": "invaudit attack --model zoo:mnist-tiny --method probe",
        },
        "notes": "made by tests/test_zoo.py",
    }
    card.update(fields)
    return card


def add_model(folder: Path, name: str, model: torch.nn.Module, **card: Any) -> Path:
    payload = model_payload(model)
    payload.update(loss="ce", dataset=dict(MNIST_INFO))
    path = folder / f"{name}.pt"
    save_checkpoint(path, payload)
    (folder / f"{name}.json").write_text(json.dumps(card_for(path, **card)))
    return path


@pytest.fixture
def empty_data(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    monkeypatch.setenv("INVAUDIT_DATA", str(folder))
    return folder


@pytest.fixture
def zoo(tmp_path, monkeypatch, empty_data) -> Path:
    """A zoo folder holding a tiny fiRevNet classifier and a tiny oracle-cnn for MNIST."""
    folder = tmp_path / "zoo"
    folder.mkdir()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        add_model(folder, CLASSIFIER, build("firevnet-mnist", stages=2, blocks=1, hidden=8))
        oracle_metrics = {
            "logit_test_error": 0.0078,
            "logit_train_error": None,
            "probe_nuisance_test_error": None,
            "probe_nuisance_train_error": None,
            "probe_command": None,
        }
        add_model(
            folder,
            ORACLE,
            build("oracle-cnn", width=4, hidden=8),
            role="oracle",
            arch="oracle-cnn",
            metrics=oracle_metrics,
        )
    monkeypatch.setenv(ZOO_ENV_VAR, str(folder))
    return folder


# -- 1. the registry -------------------------------------------------------------------


def test_entries_are_read_sorted_and_selectors_resolve(zoo) -> None:
    entries = zoo_entries()
    assert [e.name for e in entries] == [ORACLE, CLASSIFIER]
    oracle, classifier = entries
    assert classifier.path == zoo / f"{CLASSIFIER}.pt" and classifier.role == "classifier"
    assert classifier.metrics["logit_test_error"] == 0.0072
    assert classifier.selector == "zoo:mnist-tiny"
    assert resolve_model_path(f"zoo:{CLASSIFIER}") == str(zoo / f"{CLASSIFIER}.pt")
    assert resolve_model_path("runs/mnist-ce.pt") == "runs/mnist-ce.pt"
    assert is_zoo_selector("zoo:x") and not is_zoo_selector(Path("zoo:x"))
    assert zoo_oracle_for("mnist") == str(oracle.path)
    assert zoo_oracle_for("fashion-mnist") is None and zoo_oracle_for("spheres") is None
    for entry in entries:
        verify_entry(entry)


def test_an_unknown_name_is_one_line_listing_the_zoo(zoo) -> None:
    expected = f"unknown zoo model 'mnist-xx'; the zoo has: {ORACLE}, {CLASSIFIER}"
    with pytest.raises(ConfigError) as excinfo:
        resolve_model_path("zoo:mnist-xx")
    assert str(excinfo.value) == expected
    for args in (
        ["zoo", "mnist-xx"],
        ["attack", "--model", "zoo:mnist-xx", "--method", "metamer"],
        ["report", "--model", "zoo:mnist-xx", "--out", zoo.parent / "r"],
        ["info", "zoo:mnist-xx"],
        ["check", "--model", "zoo:mnist-xx"],
        ["attack", "--model", f"zoo:{CLASSIFIER}", "--method", "probe", "--oracle", "zoo:mnist-xx"],
    ):
        assert one_line_error(invoke(*args)) == f"invaudit: error: {expected}"
    assert not (zoo.parent / "r").exists()


def damage_card(folder: Path, how: str) -> None:
    card_path, pt = folder / f"{CLASSIFIER}.json", folder / f"{CLASSIFIER}.pt"
    card = json.loads(card_path.read_text())
    if how == "malformed":
        card_path.write_text("{not json")
        return
    if how == "no checkpoint":
        pt.unlink()
        return
    if how == "no sha256":
        del card["sha256"]
    else:
        key, value = how.split("=")
        card[key] = value
    card_path.write_text(json.dumps(card))


@pytest.mark.parametrize(
    ("how", "fragment"),
    [
        ("malformed", "not valid JSON"),
        ("no checkpoint", f"its checkpoint {{zoo}}/{CLASSIFIER}.pt is missing"),
        ("no sha256", "lacks sha256"),
        ("name=other", "names the model 'other', expected 'mnist-tiny'"),
        ("file=../mnist-tiny.pt", "file '../mnist-tiny.pt' is not a file name"),
        ("role=judge", "role 'judge', expected one of classifier, oracle"),
        ("sha256=ABC", "sha256 'ABC' is not 64 lower-case hex digits"),
    ],
)
def test_a_broken_card_is_refused_naming_it(zoo, how, fragment) -> None:
    damage_card(zoo, how)
    expected = f"zoo card {zoo / (CLASSIFIER + '.json')}: {fragment.format(zoo=zoo)}"
    with pytest.raises(CheckpointError) as excinfo:
        zoo_entries()
    assert str(excinfo.value).startswith(expected)
    assert one_line_error(invoke("zoo")).startswith(f"invaudit: error: {expected}")


def test_a_missing_or_empty_zoo_lists_nothing(tmp_path, monkeypatch) -> None:
    for folder in (tmp_path / "absent", tmp_path):
        monkeypatch.setenv(ZOO_ENV_VAR, str(folder))
        assert zoo_entries() == []
        assert zoo_oracle_for("mnist") is None
        result = invoke("zoo")
        assert result.exit_code == 0 and result.stdout == f"the zoo at {folder} has no models\n"
        with pytest.raises(ConfigError, match="unknown zoo model 'x'; the zoo at .* has no models"):
            resolve_model_path("zoo:x")


# -- 2. invaudit zoo --------------------------------------------------------------------


def test_zoo_lists_shows_a_card_and_prints_a_path(zoo) -> None:
    listing = invoke("zoo")
    assert listing.exit_code == 0, listing.output
    lines = listing.stdout.splitlines()
    assert lines[0].startswith("| name") and "probe z_n test err" in lines[0]
    assert len(lines) == 4  # header, rule, two models
    assert lines[2].startswith(f"| {ORACLE} ") and "| oracle " in lines[2] and "n/a" in lines[2]
    assert lines[3].startswith(f"| {CLASSIFIER} ") and "0.72%" in lines[3] and "1.15%" in lines[3]

    card = invoke("zoo", CLASSIFIER)
    assert card.exit_code == 0, card.output
    text = card.stdout
    assert text.startswith(f"# {CLASSIFIER}\n")
    assert "```\ninvaudit train --dataset mnist --seed 0 --out mnist-tiny.pt\n```" in text
    assert "```\ninvaudit attack --model zoo:mnist-tiny --method probe\n```" in text
    assert "| logit test error " in text and "0.72%" in text and "0.20%" in text
    assert sha256(zoo / f"{CLASSIFIER}.pt") in text
    oracle_card = invoke("zoo", ORACLE).stdout
    assert "Probe command" not in oracle_card
    assert re.search(r"\| probe on z_n, test error +\| n/a ", oracle_card)

    path = invoke("zoo", CLASSIFIER, "--path")
    assert path.exit_code == 0 and path.stdout == f"{zoo / CLASSIFIER}.pt\n"
    assert "needs a model NAME" in one_line_error(invoke("zoo", "--path"))


def test_verify_passes_then_catches_a_changed_file(zoo) -> None:
    result = invoke("zoo", "--verify")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == f"verified 2 model(s) in {zoo}"
    pt = zoo / f"{CLASSIFIER}.pt"
    data = bytearray(pt.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes
    pt.write_bytes(bytes(data))
    line = one_line_error(invoke("zoo", "--verify"))
    assert f"zoo model '{CLASSIFIER}'" in line and f"has sha256 {sha256(pt)}" in line
    assert invoke("zoo").exit_code == 0  # listing does not hash
    pt.write_bytes(bytes(data) + b"\0")
    assert "bytes, its card says" in one_line_error(invoke("zoo", CLASSIFIER, "--verify"))


# -- 3. selectors and the default oracle in audits --------------------------------------


def attack_json(out: Path, *args: Any) -> dict[str, Any]:
    result = invoke("attack", "--model", f"zoo:{CLASSIFIER}", "--no-progress", "--out", out, *args)
    assert result.exit_code == 0, result.output
    return json.loads(next(out.glob("*.json")).read_text())


def test_attack_takes_a_selector_and_the_zoo_oracle_by_default(zoo, tmp_path) -> None:
    record = attack_json(tmp_path / "a", "--method", "metamer", "--n", "8")
    model = record["model"]
    assert model["path"] == str(zoo / f"{CLASSIFIER}.pt")
    assert model["sha256"] == json.loads((zoo / f"{CLASSIFIER}.json").read_text())["sha256"]
    oracle = record["settings"]["oracle"]
    assert oracle["path"] == str(zoo / f"{ORACLE}.pt")
    assert oracle["sha256"] == sha256(zoo / f"{ORACLE}.pt")
    assert oracle["origin"] == "default: the zoo oracle for mnist"
    assert record["metrics"]["invariance_success_rate"] is not None
    assert record["settings"]["data_source"].startswith(
        "embedded MNIST t10k: fit on images 0-4999, test on 5000-9999"
    )

    none = attack_json(tmp_path / "b", "--method", "metamer", "--n", "8", "--oracle", "none")
    assert none["settings"]["oracle"] is None
    assert none["metrics"]["invariance_success_rate"] is None

    by_name = ["--oracle", f"zoo:{ORACLE}"]
    chosen = attack_json(tmp_path / "c", "--method", "metamer", "--n", "8", *by_name)
    assert chosen["settings"]["oracle"]["origin"] == f"--oracle zoo:{ORACLE}"
    assert chosen["metrics"] == record["metrics"]  # the same oracle, chosen by name


def test_a_dataset_without_a_zoo_oracle_gets_none(zoo) -> None:
    model = build("firevnet-mnist", stages=2, blocks=1, hidden=8)
    fashion = LoadedModel("x.pt", model, {**MNIST_INFO, "name": "fashion-mnist"})
    assert choose_oracle(fashion, None, torch.device("cpu")) is None
    mnist = LoadedModel("x.pt", model, dict(MNIST_INFO))
    assert choose_oracle(mnist, "none", torch.device("cpu")) is None
    assert choose_oracle(mnist, None, torch.device("cpu")).path == str(zoo / f"{ORACLE}.pt")


def test_the_probe_uses_the_whole_5000_image_fitting_split(zoo, tmp_path) -> None:
    args = ["--method", "probe", "--n", "50", "--train-n", "10000", "--probe-epochs", "1",
            "--probe-hidden", "8"]  # fmt: skip
    record = attack_json(tmp_path / "p", *args)
    assert record["metrics"]["n_train"] == 5000 and record["metrics"]["n"] == 50


def test_report_on_a_zoo_model_records_oracle_and_data_source(zoo, tmp_path) -> None:
    out = tmp_path / "report"
    result = invoke("report", "--model", f"zoo:{CLASSIFIER}", "--out", out, "--n", "16",
                    "--no-progress")  # fmt: skip
    assert result.exit_code == 0, result.output
    record = check_report(json.loads((out / "report.json").read_text()))
    assert record["model"]["path"] == str(zoo / f"{CLASSIFIER}.pt")
    assert record["model"]["data_source"].startswith("embedded MNIST t10k")
    assert record["oracle"]["path"] == str(zoo / f"{ORACLE}.pt")
    assert record["oracle"]["origin"] == "default: the zoo oracle for mnist"
    assert "no_oracle" not in {w["name"] for w in record["warnings"]}
    assert record["attacks"]["probe"]["metrics"]["n_train"] == 5000  # quick asks for 10 000
    assert "embedded MNIST t10k" in (out / "report.md").read_text()


def test_info_check_and_compare_labels_take_selectors(zoo) -> None:
    info = invoke("info", f"zoo:{CLASSIFIER}")
    assert info.exit_code == 0, info.output
    assert info.stdout.startswith(f"zoo:{CLASSIFIER}: firevnet-mnist (ce) on mnist")
    check = invoke("check", "--model", f"zoo:{CLASSIFIER}", "--batch-size", "2")
    assert check.exit_code == 0, check.output
    assert labels_for(["zoo:mnist-ce", "runs/mnist-ice.pt"], []) == ["mnist-ce", "mnist-ice"]
    assert labels_for(["py:pkg.models:build_cnn", "out/cnn.pt2"], []) == ["build_cnn", "cnn"]


# -- 4. the embedded MNIST evaluation set -----------------------------------------------


def idx_tensor(path: Path, header: int) -> torch.Tensor:
    raw = gzip.decompress(path.read_bytes())
    return torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8)


def test_without_data_files_mnist_audits_split_the_embedded_t10k(empty_data, monkeypatch) -> None:
    def no_download(*args: Any) -> None:
        raise AssertionError("an audit must not download")

    monkeypatch.setattr(images, "_download", no_download)
    data = audit_data(dict(MNIST_INFO), download=True)
    assert data.source == (
        "embedded MNIST t10k: fit on images 0-4999, test on 5000-9999 "
        f"(no MNIST test files in {empty_data})"
    )
    # Reference pixels and labels straight from the gzip bytes, not through read_idx.
    folder = SHARED_MNIST if SHARED_MNIST.is_dir() else EMBEDDED_MNIST_DIR
    pixels = idx_tensor(folder / T10K[0], 16).view(10_000, 28, 28)
    labels = idx_tensor(folder / T10K[1], 8).long()
    test, fit = data.test, data.train()
    assert len(test) == 5000 and len(fit) == 5000
    assert torch.equal(test.data, pixels[5000:]) and torch.equal(test.targets, labels[5000:])
    assert torch.equal(fit.data, pixels[:5000]) and torch.equal(fit.targets, labels[:5000])
    assert torch.equal(test.indices, torch.arange(5000, 10_000))
    x, y = test[0]
    assert x.shape == (1, 28, 28) and torch.equal(x, pixels[5000].float().unsqueeze(0) / 255)
    assert int(y) == int(labels[5000])


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="../shared/data/MNIST/raw not present")
def test_the_embedded_files_are_the_published_ones() -> None:
    for name in T10K:
        assert (EMBEDDED_MNIST_DIR / name).read_bytes() == (SHARED_MNIST / name).read_bytes()


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="../shared/data/MNIST/raw not present")
def test_a_data_dir_with_the_test_files_is_read_as_before(tmp_path) -> None:
    full = audit_data(dict(MNIST_INFO), data_dir=str(SHARED_MNIST.parents[1]), download=False)
    assert len(full.test) == 10_000 and full.source == f"data dir {SHARED_MNIST.parents[1]}"
    # Only the test files: the test split is theirs, and the missing training split is
    # the same error as ever (no silent fallback to the embedded fitting half).
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in T10K:
        (raw / name).write_bytes((SHARED_MNIST / name).read_bytes())
    partial = audit_data(dict(MNIST_INFO), data_dir=str(tmp_path), download=False)
    assert len(partial.test) == 10_000
    with pytest.raises(DataError, match="mnist train split not found"):
        partial.train()


def test_other_image_datasets_do_not_fall_back(empty_data) -> None:
    with pytest.raises(DataError, match="fashion-mnist test split not found"):
        audit_data({**MNIST_INFO, "name": "fashion-mnist"}, download=False)


def test_reports_without_a_data_source_still_validate() -> None:
    report = {key: None for key in SECTIONS}
    report.update(schema=SCHEMA, schema_version=SCHEMA_VERSION, model={"path": "a.pt"},
                  attacks={}, warnings=[])  # fmt: skip
    assert check_report(report)["model"] == {"path": "a.pt"}
    report["model"] = {"path": "a.pt", "data_source": "data dir /d"}
    check_report(report)
    report["model"] = {"path": "a.pt", "data_source": 3}
    with pytest.raises(ConfigError, match="model.data_source is not text"):
        check_report(report)


# -- 5. the shipped zoo -----------------------------------------------------------------


def test_the_shipped_zoo_is_sound(monkeypatch) -> None:
    monkeypatch.delenv(ZOO_ENV_VAR, raising=False)
    entries = zoo_entries()
    if not entries:
        pytest.skip(f"no model cards in {ZOO_DIR} yet")
    oracles: dict[str, int] = {}
    for entry in entries:
        assert entry.path.parent == ZOO_DIR
        verify_entry(entry)
        assert entry.bytes <= MAX_BYTES, f"{entry.name}: {entry.bytes} bytes"
        for key, value in entry.metrics.items():
            if key.endswith("_command"):
                continue
            if key.endswith("_n"):  # a sample count (pgd_linf_n)
                assert isinstance(value, int) and value >= 1, f"{entry.name}: {key}={value}"
                continue
            # A fraction, or a map of them by ε (pgd_linf_robust_accuracy).
            shares = value.values() if isinstance(value, dict) else [value]
            for share in shares:
                assert share is None or 0.0 <= share <= 1.0, f"{entry.name}: {key}={value}"
        payload = read_checkpoint(entry.path)
        assert "train_state" not in payload, f"{entry.name} is not slim"
        model = load_model(entry.path)
        assert (entry.dataset, entry.arch, entry.loss) == (
            payload["dataset"]["name"], payload["arch"], payload.get("loss")
        )  # fmt: skip
        assert model.arch == entry.arch
        if entry.role == "oracle":
            oracles[entry.dataset] = oracles.get(entry.dataset, 0) + 1
    assert all(count == 1 for count in oracles.values()), oracles


# -- 6. zoo selectors in the library, and hashes checked on every load (issue 14, item 8) --


def test_the_library_loads_a_zoo_selector(zoo) -> None:
    import invaudit

    model = invaudit.load_model(f"zoo:{CLASSIFIER}")
    direct = load_model(zoo / f"{CLASSIFIER}.pt")
    assert model.arch == direct.arch == "firevnet-mnist" and not model.training
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(model(x), direct(x))
    with pytest.raises(ConfigError, match="unknown zoo model 'nope'"):
        invaudit.load_model("zoo:nope")


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes
    path.write_bytes(bytes(data))


def test_a_tampered_zoo_file_is_refused_when_loaded(zoo, tmp_path) -> None:
    import invaudit

    _flip_a_byte(zoo / f"{CLASSIFIER}.pt")
    with pytest.raises(CheckpointError, match=f"zoo model '{CLASSIFIER}'.*sha256"):
        invaudit.load_model(f"zoo:{CLASSIFIER}")
    for args in (
        ["info", f"zoo:{CLASSIFIER}"],
        ["attack", "--model", f"zoo:{CLASSIFIER}", "--method", "metamer", "--n", "8"],
        ["report", "--model", f"zoo:{CLASSIFIER}", "--out", tmp_path / "r", "--n", "8"],
    ):
        line = one_line_error(invoke(*args))
        assert f"zoo model '{CLASSIFIER}'" in line and "sha256" in line, line
    assert not (tmp_path / "r").exists()


def test_a_tampered_default_oracle_is_refused(zoo, tmp_path) -> None:
    classifier = tmp_path / "mine.pt"
    classifier.write_bytes((zoo / f"{CLASSIFIER}.pt").read_bytes())  # not a zoo selector
    _flip_a_byte(zoo / f"{ORACLE}.pt")
    line = one_line_error(invoke("attack", "--model", classifier, "--method", "metamer",
                                 "--n", "8", "--no-progress"))  # fmt: skip
    assert f"zoo model '{ORACLE}'" in line and "sha256" in line, line
