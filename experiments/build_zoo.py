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
   history stay), which is what keeps each file under 5 MB
   (:mod:`invaudit.zoo.pack`).
3. The packed file is measured with the toolkit's own probe audit
   (``invaudit attack --method probe``, its Table 2 defaults: 60k training
   examples, 10 epochs); the oracle's test accuracy is the trainer's last
   epoch measurement on the full test split.
4. ``invaudit/zoo/models/NAME.json`` is the card (:mod:`invaudit.zoo.cards`).

Reading, checking and packing checkpoints and writing cards are library code;
this script keeps the choices: which recipes, train or reuse, the probe runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))

from zoo_recipes import BY_NAME, RECIPES, Recipe, recipe_mismatches  # noqa: E402

from invaudit.atomic import file_sha256 as sha256  # noqa: E402
from invaudit.errors import InvauditError  # noqa: E402
from invaudit.models.registry import PLAIN_ARCHS  # noqa: E402
from invaudit.zoo.cards import make_card, write_card  # noqa: E402
from invaudit.zoo.pack import check_finished, pack_checkpoint, read_training_checkpoint  # noqa: E402

ZOO = REPO / "invaudit" / "zoo" / "models"
#: Where the cards say training ran, unless --hardware says otherwise.
DEFAULT_HARDWARE = f"{platform.machine()} CPU machine with 2 cores, shared with other jobs"


class BuildError(Exception):
    """A recipe that cannot be built as asked; the message is one line."""


@contextlib.contextmanager
def as_build_error() -> Iterator[None]:
    """The library's one-line errors, raised again as :class:`BuildError`."""
    try:
        yield
    except InvauditError as err:
        raise BuildError(str(err)) from None


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
    path = work / f"{recipe.name}.pt"
    if not path.exists():
        if not train:
            raise BuildError(f"{path} missing; pass --train to run: {recipe.command(str(path))}")
        invaudit(
            "train", *recipe.train_args, "--data-dir", data_dir, "--no-download",
            "--device", "cpu", "--no-progress", "--out", str(path),
            log_path=work / f"{recipe.name}.log",
        )  # fmt: skip
    with as_build_error():
        payload = read_training_checkpoint(path)
    wrong = recipe_mismatches(recipe, payload["training"]["settings"])
    if wrong:
        raise BuildError(f"{path} was not trained by the recipe: {'; '.join(wrong)}")
    with as_build_error():
        check_finished(payload, path)
    return payload


def pack(payload: dict[str, Any], name: str) -> Path:
    """The model-only checkpoint in the zoo folder (atomic write)."""
    with as_build_error():
        return pack_checkpoint(payload, ZOO / f"{name}.pt")


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


#: The robustness check of a plain classifier's card: PGD-40 at L-inf 0.3 (Madry et al.'s
#: MNIST threat model) on this many seeded test images.
ROBUST_N, ROBUST_EPSILON = 1000, "0.3"


def robust(packed: Path, name: str, work: Path, data_dir: str) -> dict[str, Any]:
    """The pgd-linf audit's record for a plain classifier ``packed`` (rerun only when the
    file changed), with ``command`` added."""
    out = work / f"{name}-pgd"
    result = out / "pgd-linf.json"
    args = ("attack", "--model", shown(packed), "--method", "pgd-linf", "--n", str(ROBUST_N),
            "--epsilons", ROBUST_EPSILON, "--data-dir", data_dir, "--no-download",
            "--no-progress", "--out", shown(out))  # fmt: skip
    record = json.loads(result.read_text()) if result.exists() else {}
    if record.get("model", {}).get("sha256") != sha256(packed):
        invaudit(*args, log_path=work / f"{name}-pgd.log")
        record = json.loads(result.read_text())
    return {**record, "command": shlex.join(["invaudit", *args])}


def shown(path: Path) -> str:
    """``path`` relative to the repository when inside it, for commands in the cards."""
    return os.path.relpath(path, REPO) if path.resolve().is_relative_to(REPO) else str(path)


def card(
    recipe: Recipe,
    payload: dict[str, Any],
    packed: Path,
    probed: dict[str, Any] | None,
    hardware: str,
    attacked: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The recipe's card for ``packed`` (``probed``: :func:`probe`'s record, or None;
    ``attacked``: :func:`robust`'s, or None)."""
    return make_card(
        name=recipe.name, summary=recipe.summary, role=recipe.role, command=recipe.command(),
        payload=payload, packed=packed, hardware=hardware, probe=probed,
        probe_command=None if probed is None else probed["command"],
        robust=attacked, robust_command=None if attacked is None else attacked["command"],
    )  # fmt: skip


def build(recipe: Recipe, args: argparse.Namespace) -> dict[str, Any]:
    payload = full_checkpoint(recipe, args.work, args.data_dir, args.train)
    packed = pack(payload, recipe.name)
    log(f"[{recipe.name}] packed {packed.stat().st_size / 1e6:.2f} MB")
    probed = attacked = None
    if recipe.role == "classifier" and payload["arch"] in PLAIN_ARCHS:  # no z_n to probe
        attacked = robust(packed, recipe.name, args.work, args.data_dir)
    elif recipe.role == "classifier":
        probed = probe(packed, recipe.name, args.work, args.data_dir)
    entry = card(recipe, payload, packed, probed, args.hardware, attacked)
    with as_build_error():
        write_card(entry, ZOO)
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
