"""Trainer(snapshot_dir=...): every finished epoch's checkpoint kept as epoch-N.pt."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from invaudit.data.splits import Splits
from invaudit.errors import OutputError
from invaudit.models.checkpoint import read_checkpoint
from invaudit.training.losses import ICEConfig
from invaudit.training.trainer import Trainer, TrainSettings, check_snapshot_dir, snapshot_path


def tiny_splits() -> Splits:
    """Spheres-shaped: two classes of 6-d points, a few hundred of each split."""

    def sample(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(seed)
        y = torch.arange(n) % 2
        return torch.randn(n, 6, generator=gen) + (2 * y[:, None] - 1), y

    info = {"name": "gaussians", "input_shape": [6], "num_classes": 2, "bounds": (-9.0, 9.0)}
    return Splits(TensorDataset(*sample(256, 0)), TensorDataset(*sample(128, 1)), info)


def settings(epochs: int = 2, loss: str = "ice") -> TrainSettings:
    return TrainSettings(
        dataset="spheres",
        arch="firevnet-fc",
        arch_config={"hidden": 16, "blocks": 2},
        loss=loss,
        epochs=epochs,
        lr=1e-3,
        batch_size=64,
        device="cpu",
        seed=5,
        ice=ICEConfig(nuisance_hidden=16),
    )


def train(out, snapshots, **kwargs) -> Trainer:
    trainer = Trainer(settings(**kwargs), out, splits=tiny_splits(), snapshot_dir=snapshots)
    trainer.fit()
    return trainer


def test_every_epoch_is_kept_and_the_last_equals_the_final_checkpoint(tmp_path) -> None:
    snapshots = tmp_path / "snaps"  # made by the trainer
    train(tmp_path / "m.pt", snapshots)
    assert sorted(p.name for p in snapshots.iterdir()) == ["epoch-1.pt", "epoch-2.pt"]
    assert snapshot_path(snapshots, 2) == snapshots / "epoch-2.pt"
    first, second = (read_checkpoint(snapshots / f"epoch-{n}.pt") for n in (1, 2))
    assert first["training"]["epochs_done"] == 1 and second["training"]["epochs_done"] == 2
    final = read_checkpoint(tmp_path / "m.pt")
    assert second["training"] == final["training"]
    for key, value in final["state_dict"].items():
        assert torch.equal(second["state_dict"][key], value), key
    assert "train_state" in first  # a snapshot is the whole epoch checkpoint
    assert any(not torch.equal(first["state_dict"][k], v) for k, v in final["state_dict"].items())


def test_snapshots_change_nothing_in_the_run(tmp_path) -> None:
    train(tmp_path / "with.pt", tmp_path / "snaps")
    Trainer(settings(), tmp_path / "without.pt", splits=tiny_splits()).fit()
    a, b = read_checkpoint(tmp_path / "with.pt"), read_checkpoint(tmp_path / "without.pt")
    for key, value in a["state_dict"].items():
        assert torch.equal(b["state_dict"][key], value), key
    assert [h["loss"] for h in a["training"]["history"]] == [
        h["loss"] for h in b["training"]["history"]
    ]


def test_a_resumed_run_keeps_its_earlier_snapshots_and_adds_the_rest(tmp_path) -> None:
    snapshots = tmp_path / "snaps"
    train(tmp_path / "m.pt", snapshots, epochs=1)
    before = (snapshots / "epoch-1.pt").read_bytes()
    resumed = Trainer(
        settings(epochs=2), tmp_path / "m.pt", resume=True, splits=tiny_splits(),
        snapshot_dir=snapshots,
    )  # fmt: skip
    assert resumed.start_epoch == 1
    resumed.fit()
    assert (snapshots / "epoch-1.pt").read_bytes() == before
    assert read_checkpoint(snapshots / "epoch-2.pt")["training"]["epochs_done"] == 2


def test_an_earlier_run_of_the_same_settings_may_be_replaced(tmp_path) -> None:
    snapshots = tmp_path / "snaps"
    train(tmp_path / "a.pt", snapshots, epochs=1)
    train(tmp_path / "b.pt", snapshots, epochs=1)  # same settings: its own snapshot again
    assert read_checkpoint(snapshots / "epoch-1.pt")["training"]["epochs_done"] == 1


@pytest.mark.parametrize("kind", ["foreign", "other-run", "other-epoch", "folder-is-a-file"])
def test_files_that_are_not_this_runs_snapshots_are_refused_before_any_work(tmp_path, kind) -> None:
    snapshots = tmp_path / "snaps"
    if kind == "folder-is-a-file":
        snapshots.write_text("not a folder\n")
    else:
        snapshots.mkdir()
    if kind == "foreign":
        (snapshots / "epoch-2.pt").write_text("someone's notes\n")
    elif kind == "other-run":
        train(tmp_path / "ce.pt", snapshots, epochs=1, loss="ce")
    elif kind == "other-epoch":
        train(tmp_path / "one.pt", tmp_path / "one", epochs=1)
        (snapshots / "epoch-2.pt").write_bytes((tmp_path / "one" / "epoch-1.pt").read_bytes())
    before = {p.name: p.read_bytes() for p in snapshots.iterdir()} if snapshots.is_dir() else {}
    with pytest.raises(OutputError, match="snapshot folder") as err:
        Trainer(settings(), tmp_path / "m.pt", splits=tiny_splits(), snapshot_dir=snapshots)
    assert len(str(err.value).splitlines()) == 1
    if kind == "other-run":
        assert "loss was 'ce'" in str(err.value)
    assert not (tmp_path / "m.pt").exists()
    after = {p.name: p.read_bytes() for p in snapshots.iterdir()} if snapshots.is_dir() else {}
    assert after == before


def test_later_epochs_than_the_run_has_are_left_alone(tmp_path) -> None:
    snapshots = tmp_path / "snaps"
    snapshots.mkdir()
    (snapshots / "epoch-3.pt").write_text("beyond this run\n")
    (snapshots / "notes.txt").write_text("not a snapshot name\n")
    check_snapshot_dir(snapshots, settings(epochs=2))  # no error
