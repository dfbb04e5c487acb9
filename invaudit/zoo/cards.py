"""Model cards: the JSON record beside each zoo file (``NAME.json`` next to ``NAME.pt``).

:func:`make_card` builds it from the training checkpoint, the packed file and
(for a classifier) the probe audit's record; :func:`write_card` writes it.
The keys are :data:`invaudit.zoo.CARD_FIELDS`, in that order, which is what the
registry reads back (docs/zoo.md lists what each one means).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..atomic import file_sha256, write_atomic
from ..errors import OutputError

__all__ = ["data_text", "make_card", "write_card"]

_PROBE_NOTE = (
    "Logit errors are argmax z_s of this file on the whole test split and on the "
    "{n_train:,} training examples the probe fitted on (a seeded subset where "
    "the training split is larger); probe errors come from a fresh MLP fitted on the "
    "frozen z_n of those examples (the probe audit)."
)
_TRAINER_NOTE = (
    "Test error measured by the trainer on the full test split after the last "
    "epoch ({arch} has no z_n to probe)."
)
_ROBUST_NOTE = (
    " Robust accuracy: the pgd-linf audit ({steps} steps, random start) on {n:,} "
    "seeded test images."
)


def data_text(dataset: dict[str, Any]) -> str:
    """One line on the data a checkpoint's dataset record describes."""
    opts = dataset.get("options", {})
    if dataset["name"] == "spheres":
        return (
            f"adversarial spheres, d={opts['dim']}, R1={opts['radii'][0]:g}, "
            f"R2={opts['radii'][1]:g}: {opts['n_train']:,} training points sampled with seed "
            f"{opts['seed']}, holdout {opts['n_test']:,} points from the holdout stream"
        )
    return (
        f"{dataset['name']} training split ({opts['n_train']:,} images), test split "
        f"({opts['n_test']:,} images), pixels k/255"
    )


def _metrics(
    training: dict[str, Any], probe: dict[str, Any] | None, probe_command: str | None
) -> dict[str, Any]:
    if probe is None:  # the trainer's own test measurement after the last epoch
        return {
            "logit_test_error": 1 - training["history"][-1]["logit_test_acc"],
            "logit_train_error": None,
            "probe_nuisance_test_error": None,
            "probe_nuisance_train_error": None,
            "probe_command": None,
        }
    measured = probe["metrics"]
    return {
        "logit_test_error": measured["decision_test_error"],
        "logit_train_error": measured["decision_train_error"],
        "probe_nuisance_test_error": measured["nuisance_error"],
        "probe_nuisance_train_error": measured["nuisance_train_error"],
        "probe_command": probe_command,
    }


def _robust_metrics(robust: dict[str, Any], command: str | None) -> dict[str, Any]:
    """The pgd-linf audit's robust accuracy per ε, its sample count and command."""
    return {
        "pgd_linf_robust_accuracy": dict(robust["metrics"]["robust_accuracy"]),
        "pgd_linf_n": robust["metrics"]["n"],
        "robust_command": command,
    }


def make_card(
    *,
    name: str,
    summary: str,
    role: str,
    command: str,
    payload: dict[str, Any],
    packed: str | os.PathLike[str],
    hardware: str,
    probe: dict[str, Any] | None = None,
    probe_command: str | None = None,
    robust: dict[str, Any] | None = None,
    robust_command: str | None = None,
) -> dict[str, Any]:
    """The card of the zoo file ``packed``, made from the training checkpoint ``payload``.

    Args:
        name, summary, role: what the zoo calls the model, one line on it, and
            ``classifier`` or ``oracle``.
        command: the ``invaudit train`` command line that trained it.
        hardware: where it trained, after the device and process count.
        probe: the probe audit's record (``probe.json``) of ``packed``; its logit
            and probe errors become the metrics.  None: the trainer's last test
            measurement (an oracle, which has no z_n to probe).
        probe_command: the command line that made ``probe``.
        robust: the pgd-linf audit's record (``pgd-linf.json``) of ``packed``, for a
            plain classifier; its robust accuracy per ε joins the metrics.
        robust_command: the command line that made ``robust``.
    """
    packed = Path(packed)
    training = payload["training"]
    if probe is None:
        notes = _TRAINER_NOTE.format(arch=payload["arch"])
    else:
        notes = _PROBE_NOTE.format(n_train=probe["metrics"]["n_train"])
    metrics = _metrics(training, probe, probe_command)
    if robust is not None:
        metrics.update(_robust_metrics(robust, robust_command))
        steps = robust.get("settings", {}).get("steps", "?")
        notes += _ROBUST_NOTE.format(steps=steps, n=robust["metrics"]["n"])
    return {
        "name": name,
        "summary": summary,
        "role": role,
        "dataset": payload["dataset"]["name"],
        "arch": payload["arch"],
        "loss": payload.get("loss"),
        "file": packed.name,
        "sha256": file_sha256(packed),
        "bytes": packed.stat().st_size,
        "command": command,
        "data": data_text(payload["dataset"]),
        "epochs": training["epochs_done"],
        "wall_seconds": round(float(training["wall_seconds"]), 1),
        # The device it ran on; checkpoints before that was recorded hold only the setting.
        "hardware": f"{training.get('device') or training['settings']['device']}, "
        f"{training['world_size']} process(es); "
        f"{hardware}",
        "metrics": metrics,
        "notes": notes,
    }


def _is_card_of(path: Path, name: str) -> bool:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(record, dict) and record.get("name") == name


def write_card(card: dict[str, Any], folder: str | os.PathLike[str]) -> Path:
    """Write ``card`` to ``folder/NAME.json`` (atomically); returns that path.

    An existing file there is replaced only if it is a card of the same name
    (:class:`OutputError` otherwise, before anything is written).
    """
    path = Path(folder) / f"{card['name']}.json"
    if (path.exists() or path.is_symlink()) and (
        path.is_symlink() or not _is_card_of(path, card["name"])
    ):
        raise OutputError(f"{path} is not a zoo card of {card['name']!r}; not replaced")
    text = json.dumps(card, indent=2) + "\n"
    write_atomic(path, lambda f: f.write(text.encode("utf-8")))
    return path
