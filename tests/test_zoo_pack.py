"""invaudit.zoo.pack and invaudit.zoo.cards: a finished training run becomes a zoo file
and its card, byte for byte the same each time, and nothing foreign is replaced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from invaudit.atomic import file_sha256
from invaudit.errors import CheckpointError, OutputError
from invaudit.models import build
from invaudit.models.checkpoint import load_model, model_payload, read_checkpoint, save_checkpoint
from invaudit.training.trainer import Trainer, TrainSettings
from invaudit.zoo import CARD_FIELDS, ZOO_DIR, ZOO_ENV_VAR, verify_entry, zoo_entries
from invaudit.zoo.cards import data_text, make_card, write_card
from invaudit.zoo.pack import (
    check_finished,
    pack_checkpoint,
    read_training_checkpoint,
    slim_payload,
)

ZOO_TRAIN = Path(__file__).resolve().parents[1] / "runs" / "zoo-train"
PROBE = {  # the fields of a probe audit record the card reads
    "metrics": {
        "decision_test_error": 0.25,
        "decision_train_error": 0.125,
        "nuisance_error": 0.5,
        "nuisance_train_error": 0.375,
        "n_train": 600,
    }
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "tiny.pt"
    settings = TrainSettings(
        dataset="spheres", arch="firevnet-fc", arch_config={"hidden": 16}, loss="ice",
        epochs=1, dim=6, n_train=600, n_test=200, seed=3, device="cpu",
    )  # fmt: skip
    Trainer(settings, out).fit()
    return out


def test_reading_a_training_run_and_checking_it_finished(trained, tmp_path) -> None:
    payload = read_training_checkpoint(trained)
    assert payload["training"]["epochs_done"] == 1 and "train_state" in payload
    check_finished(payload, trained)
    payload["training"]["settings"]["epochs"] = 2
    with pytest.raises(CheckpointError, match="stopped after 1 of 2 epochs; resume it"):
        check_finished(payload, trained)
    bare = tmp_path / "bare.pt"
    save_checkpoint(bare, model_payload(build("firevnet-fc", dim=6, num_classes=2, hidden=8)))
    with pytest.raises(CheckpointError, match="no training record"):
        read_training_checkpoint(bare)
    (tmp_path / "junk.pt").write_text("not a checkpoint\n")
    with pytest.raises(CheckpointError):
        read_training_checkpoint(tmp_path / "junk.pt")


def test_pack_drops_the_training_state_and_keeps_the_model(trained, tmp_path) -> None:
    payload = read_training_checkpoint(trained)
    packed = pack_checkpoint(payload, tmp_path / "tiny.pt")
    assert packed == tmp_path / "tiny.pt"
    assert packed.stat().st_size < trained.stat().st_size
    slim = read_checkpoint(packed)
    assert "train_state" not in slim and list(slim) == list(slim_payload(payload))
    assert slim["training"]["history"] == payload["training"]["history"]
    x = torch.randn(5, 6)
    assert torch.equal(load_model(trained)(x), load_model(packed)(x))
    # Packing the same run again gives the same bytes, and may replace its own file.
    first = file_sha256(packed)
    pack_checkpoint(read_training_checkpoint(trained), packed)
    assert file_sha256(packed) == first


def test_pack_refuses_before_writing(trained, tmp_path) -> None:
    payload = read_training_checkpoint(trained)
    with pytest.raises(CheckpointError, match="over the limit of 1000"):
        pack_checkpoint(payload, tmp_path / "big.pt", limit_bytes=1000)
    assert not (tmp_path / "big.pt").exists()
    foreign = tmp_path / "notes.pt"
    foreign.write_text("someone else's file\n")
    with pytest.raises(OutputError, match="not an invaudit checkpoint; not replaced"):
        pack_checkpoint(payload, foreign)
    assert foreign.read_text() == "someone else's file\n"


def test_a_card_is_what_the_registry_reads(trained, tmp_path, monkeypatch) -> None:
    payload = read_training_checkpoint(trained)
    packed = pack_checkpoint(payload, tmp_path / "tiny.pt")
    card = make_card(
        name="tiny", summary="a tiny spheres model", role="classifier",
        command="invaudit train --dataset spheres --out tiny.pt", payload=payload,
        packed=packed, hardware="a test", probe=PROBE, probe_command="invaudit attack ...",
    )  # fmt: skip
    assert tuple(card) == CARD_FIELDS
    assert card["sha256"] == file_sha256(packed) and card["bytes"] == packed.stat().st_size
    assert card["metrics"]["probe_nuisance_test_error"] == 0.5
    assert card["metrics"]["probe_command"] == "invaudit attack ..."
    assert "600 training examples" in card["notes"]
    assert card["hardware"] == "cpu, 1 process(es); a test"
    assert card["data"] == data_text(payload["dataset"]) and "d=6" in card["data"]
    path = write_card(card, tmp_path)
    assert path.read_text() == json.dumps(card, indent=2) + "\n"
    monkeypatch.setenv(ZOO_ENV_VAR, str(tmp_path))
    (entry,) = zoo_entries()
    assert entry.name == "tiny" and entry.epochs == 1
    verify_entry(entry)
    write_card(card, tmp_path)  # its own card may be rewritten


def test_an_oracle_card_reports_the_trainers_test_error(trained, tmp_path) -> None:
    payload = read_training_checkpoint(trained)
    packed = pack_checkpoint(payload, tmp_path / "o.pt")
    card = make_card(
        name="o", summary="", role="oracle", command="", payload=payload, packed=packed,
        hardware="",
    )  # fmt: skip
    last = payload["training"]["history"][-1]
    assert card["metrics"]["logit_test_error"] == 1 - last["logit_test_acc"]
    assert card["metrics"]["probe_command"] is None
    assert f"({payload['arch']} has no z_n to probe)" in card["notes"]


def test_write_card_leaves_foreign_files_alone(tmp_path) -> None:
    (tmp_path / "x.json").write_text('{"name": "someone-else"}\n')
    with pytest.raises(OutputError, match="not a zoo card of 'x'"):
        write_card({"name": "x"}, tmp_path)
    assert (tmp_path / "x.json").read_text() == '{"name": "someone-else"}\n'


SHIPPED = sorted(p.stem for p in ZOO_DIR.glob("*.pt") if (ZOO_TRAIN / p.name).is_file())


@pytest.mark.skipif(not SHIPPED, reason="no training checkpoints in runs/zoo-train")
@pytest.mark.parametrize("name", SHIPPED)
def test_repacking_a_zoo_training_run_gives_the_shipped_file(name, tmp_path) -> None:
    payload = read_training_checkpoint(ZOO_TRAIN / f"{name}.pt")
    check_finished(payload, name)
    packed = pack_checkpoint(payload, tmp_path / f"{name}.pt")
    assert file_sha256(packed) == file_sha256(ZOO_DIR / f"{name}.pt")


def test_a_plain_classifiers_card_carries_its_pgd_robust_accuracy(trained, tmp_path) -> None:
    payload = read_training_checkpoint(trained)
    packed = pack_checkpoint(payload, tmp_path / "c.pt")
    attacked = {"metrics": {"robust_accuracy": {"0.3": 0.875}, "n": 1000},
                "settings": {"steps": 40}}  # fmt: skip
    card = make_card(
        name="c", summary="", role="classifier", command="", payload=payload, packed=packed,
        hardware="", robust=attacked, robust_command="invaudit attack ... --method pgd-linf",
    )  # fmt: skip
    assert card["metrics"]["pgd_linf_robust_accuracy"] == {"0.3": 0.875}
    assert card["metrics"]["pgd_linf_n"] == 1000
    assert card["metrics"]["robust_command"].endswith("pgd-linf")
    assert "pgd-linf audit (40 steps, random start) on 1,000 seeded test images" in card["notes"]
