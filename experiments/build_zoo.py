"""Build the model zoo (issue 7): train or check each recipe, pack, measure, write its card.

Run from the repository root:
``OMP_NUM_THREADS=1 .venv/bin/python experiments/build_zoo.py --data-dir ../shared/data [--train]``

For every recipe in ``experiments/zoo_recipes.py``:

1. ``WORK/NAME.pt`` is the full training checkpoint.  If it is missing,
   ``--train`` runs the recipe's ``invaudit train`` command (its log goes to
   ``WORK/NAME.log``); without ``--train`` the script stops.  An existing
   one is used only if its stored settings equal the recipe's and it
   finished every epoch, so a checkpoint from an earlier run of the same
   command is reused and anything else is refused.
2. ``invaudit/zoo/models/NAME.pt`` is that checkpoint without its optimiser
   and iCE game state (the model, its config, dataset record and training
   history stay), which is what keeps each file under 5 MB.
3. The packed file is measured with the toolkit's own probe audit
   (``invaudit attack --method probe``, its Table 2 defaults: 60k training
   examples, 10 epochs); the oracle's test accuracy is the trainer's last
   epoch measurement on the full test split.
4. ``invaudit/zoo/models/NAME.json`` is the card.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))

from zoo_recipes import BY_NAME, RECIPES, Recipe, recipe_mismatches  # noqa: E402

from invaudit.attacks.oracle import file_sha256 as sha256  # noqa: E402

ZOO = REPO / "invaudit" / "zoo" / "models"
#: Where the cards say training ran, unless --hardware says otherwise.
DEFAULT_HARDWARE = f"{platform.machine()} CPU machine with 2 cores, shared with other jobs"
LIMIT_BYTES = 5 * 1024 * 1024


class BuildError(Exception):
    """A recipe that cannot be built as asked; the message is one line."""


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def invaudit(*args: str, log_path: Path | None = None) -> None:
    cmd = [sys.executable, "-m", "invaudit", *args]
    log(f"$ {shlex.join(['invaudit', *args])}")
    if log_path is None:
        subprocess.run(cmd, check=True, cwd=REPO)
        return
    with open(log_path, "w") as handle:
        handle.write(f"$ {shlex.join(['invaudit', *args])}\n")
        handle.flush()
        done = subprocess.run(cmd, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT)
    if done.returncode:
        raise BuildError(f"{args[0]} failed (exit {done.returncode}); see {log_path}")


def full_checkpoint(recipe: Recipe, work: Path, data_dir: str, train: bool) -> dict[str, Any]:
    """The recipe's finished training checkpoint, trained now if asked and missing."""
    import torch

    path = work / f"{recipe.name}.pt"
    if not path.exists():
        if not train:
            raise BuildError(f"{path} missing; pass --train to run: {recipe.command(str(path))}")
        invaudit(
            "train", *recipe.train_args, "--data-dir", data_dir, "--no-download",
            "--device", "cpu", "--no-progress", "--out", str(path),
            log_path=work / f"{recipe.name}.log",
        )  # fmt: skip
    payload = torch.load(path, map_location="cpu", weights_only=True)
    training = payload["training"]
    wrong = recipe_mismatches(recipe, training["settings"])
    if wrong:
        raise BuildError(f"{path} was not trained by the recipe: {'; '.join(wrong)}")
    if training["epochs_done"] != training["settings"]["epochs"]:
        raise BuildError(
            f"{path} stopped after {training['epochs_done']} of "
            f"{training['settings']['epochs']} epochs; resume it with --resume"
        )
    return payload


def pack(payload: dict[str, Any], name: str) -> Path:
    """The model-only checkpoint in the zoo folder (atomic write)."""
    from invaudit.models.checkpoint import save_checkpoint

    slim = {k: v for k, v in payload.items() if k != "train_state"}
    out = ZOO / f"{name}.pt"
    save_checkpoint(out, slim)
    if out.stat().st_size > LIMIT_BYTES:
        raise BuildError(f"{out} is {out.stat().st_size} bytes, over the 5 MB limit")
    return out


def probe(packed: Path, name: str, work: Path, data_dir: str) -> dict[str, Any]:
    """The probe audit's record for ``packed`` (rerun only when the file changed), with
    ``command`` added: the command line that made it."""
    out = work / f"{name}-probe"
    result = out / "probe.json"
    sha = sha256(packed)
    args = ("attack", "--model", shown(packed), "--method", "probe",
            "--data-dir", data_dir, "--no-download", "--no-progress",
            "--out", shown(out))  # fmt: skip
    record = json.loads(result.read_text()) if result.exists() else {}
    if record.get("model", {}).get("sha256") != sha or record.get("seconds") is None:
        invaudit(*args, log_path=work / f"{name}-probe.log")
        record = json.loads(result.read_text())
    return {**record, "command": shlex.join(["invaudit", *args])}


def shown(path: Path) -> str:
    """``path`` relative to the repository when inside it, for commands in the cards."""
    return os.path.relpath(path, REPO) if path.resolve().is_relative_to(REPO) else str(path)


def data_text(dataset: dict[str, Any]) -> str:
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


def card(
    recipe: Recipe,
    payload: dict[str, Any],
    packed: Path,
    probed: dict[str, Any] | None,
    hardware: str,
) -> dict[str, Any]:
    training = payload["training"]
    last = training["history"][-1]
    if probed is not None:
        measured = probed["metrics"]
        metrics = {
            "logit_test_error": measured["decision_test_error"],
            "logit_train_error": measured["decision_train_error"],
            "probe_nuisance_test_error": measured["nuisance_error"],
            "probe_nuisance_train_error": measured["nuisance_train_error"],
            "probe_command": probed["command"],
        }
    else:  # the oracle: the trainer's own test measurement after the last epoch
        metrics = {
            "logit_test_error": 1 - last["logit_test_acc"],
            "logit_train_error": None,
            "probe_nuisance_test_error": None,
            "probe_nuisance_train_error": None,
            "probe_command": None,
        }
    notes = (
        "Logit errors are argmax z_s of this file on the whole test split and on the "
        f"{measured['n_train']:,} training examples the probe fitted on (a seeded subset where "
        "the training split is larger); probe errors come from a fresh MLP fitted on the "
        "frozen z_n of those examples (the probe audit)."
        if probed is not None
        else "Test error measured by the trainer on the full test split after the last "
        "epoch (oracle-cnn has no z_n to probe)."
    )
    return {
        "name": recipe.name,
        "summary": recipe.summary,
        "role": recipe.role,
        "dataset": payload["dataset"]["name"],
        "arch": payload["arch"],
        "loss": payload.get("loss"),
        "file": packed.name,
        "sha256": sha256(packed),
        "bytes": packed.stat().st_size,
        "command": recipe.command(),
        "data": data_text(payload["dataset"]),
        "epochs": training["epochs_done"],
        "wall_seconds": round(float(training["wall_seconds"]), 1),
        "hardware": f"{training['settings']['device']}, {training['world_size']} process(es); "
        f"{hardware}",
        "metrics": metrics,
        "notes": notes,
    }


def build(recipe: Recipe, args: argparse.Namespace) -> dict[str, Any]:
    payload = full_checkpoint(recipe, args.work, args.data_dir, args.train)
    packed = pack(payload, recipe.name)
    log(f"[{recipe.name}] packed {packed.stat().st_size / 1e6:.2f} MB")
    probed = None
    if recipe.role == "classifier":
        probed = probe(packed, recipe.name, args.work, args.data_dir)
    entry = card(recipe, payload, packed, probed, args.hardware)
    (ZOO / f"{recipe.name}.json").write_text(json.dumps(entry, indent=2) + "\n")
    log(f"[{recipe.name}] card: {json.dumps(entry['metrics'])}")
    return {"card": entry, "probe": probed, "payload_training": payload["training"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="build_zoo", description=__doc__.splitlines()[0])
    parser.add_argument("--names", default=",".join(BY_NAME), help="comma-separated recipes")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "zoo-train")
    parser.add_argument("--train", action="store_true", help="train missing checkpoints")
    parser.add_argument("--hardware", default=DEFAULT_HARDWARE, help="for the cards")
    args = parser.parse_args(argv)
    names = [n for n in args.names.split(",") if n]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        parser.error(f"unknown recipe(s) {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    args.work.mkdir(parents=True, exist_ok=True)
    ZOO.mkdir(parents=True, exist_ok=True)
    try:
        for recipe in (r for r in RECIPES if r.name in names):
            build(recipe, args)
    except BuildError as err:
        print(f"build_zoo: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
