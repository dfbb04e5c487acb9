"""The seeded ``invaudit train`` command behind every zoo model (issue 7).

``build_zoo.py`` trains (or checks) and packs these; ``reproduce.py`` reruns
them.  A checkpoint counts as trained by a recipe only if the settings it
stored equal the settings the recipe's command line parses to, field by
field, except where the run happened (device, data folder, download, data
loader workers): :func:`recipe_mismatches` says which fields differ.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Recipe:
    name: str
    summary: str
    role: str  # "classifier" or "oracle"
    train_args: tuple[str, ...]

    def command(self, out: str = "") -> str:
        """The command line as a user types it (``--out`` last)."""
        args = ["invaudit", "train", *self.train_args, "--out", out or f"{self.name}.pt"]
        return shlex.join(args)


#: firevnet-mnist's stability keys as issue 13's study chose them (today's defaults).
STABLE_MNIST = (
    "--set", "input_layer=logit", "--set", "conv1x1=orthogonal", "--set", "actnorm_bound=2",
)  # fmt: skip

#: Issue 15's readout: every logit owns a channel (16 channels reach the last
#: stage at 7x7; the logits are channels 0-9 at the centre).  At 8 epochs it
#: lowered the logit error of both losses by 1.3-1.4 points against the DCT
#: readout with factor-out, with the same fresh-probe error (docs/ice-findings.md).
POSITION_READOUT = ("--set", "factor_out=false", "--set", "readout=position")

RECIPES: tuple[Recipe, ...] = (
    # 3 epochs, not 2: after 2 the iCE model still misclassified 2 of the 100k
    # holdout points (issue 7 asks for none); after 3, none.  CE gets the same
    # budget so that the two compare like for like.
    Recipe(
        "spheres-ce",
        "fiRevNet-FC on adversarial spheres (d=100, R1=1, R2=10), cross-entropy",
        "classifier",
        ("--dataset", "spheres", "--loss", "ce", "--epochs", "3", "--seed", "0"),
    ),
    Recipe(
        "spheres-ice",
        "fiRevNet-FC on adversarial spheres (d=100, R1=1, R2=10), iCE (Definition 7)",
        "classifier",
        ("--dataset", "spheres", "--loss", "ice", "--epochs", "3", "--seed", "0"),
    ),
    # Issue 13: the stable blocks (docs/stability.md), spelled out so that a later
    # change of the arch defaults cannot silently change what the recipe means, and
    # the likelihood term on both: CE + MLE_n and iCE (whose MLE_n weight is 1 too)
    # differ only by the nuisance term.  8 epochs: the likelihood term slows the
    # logits (docs/stability.md).
    Recipe(
        "mnist-ce",
        "fiRevNet (CPU default blocks, stable, position readout) on MNIST, cross-entropy + MLE_n",
        "classifier",
        ("--dataset", "mnist", "--loss", "ce", "--nll-weight", "1", *STABLE_MNIST,
         *POSITION_READOUT, "--epochs", "8", "--lr", "0.003", "--seed", "0"),
    ),
    Recipe(
        "mnist-ice",
        "fiRevNet (CPU default blocks, stable, position readout) on MNIST, iCE (Definition 7)",
        "classifier",
        ("--dataset", "mnist", "--loss", "ice", *STABLE_MNIST, *POSITION_READOUT,
         "--epochs", "8", "--lr", "0.003", "--seed", "0"),
    ),
    # Issue 17: an ordinary CNN to audit, and the same CNN trained adversarially.
    Recipe(
        "mnist-cnn",
        "plain CNN (cnn arch) on MNIST, cross-entropy: a model to audit, not an oracle",
        "classifier",
        ("--dataset", "mnist", "--arch", "cnn", "--loss", "ce", "--epochs", "4",
         "--lr", "0.003", "--seed", "0"),
    ),
    # PGD-5 from a random start at L-inf 0.3 (Madry et al.), ε ramped over 2 epochs:
    # one-step FGSM with a random start collapsed at 20k images (PGD-10 accuracy
    # 1-4 %), PGD-5 reached 56 % there (docs/invariance-attacks.md).
    Recipe(
        "mnist-cnn-robust",
        "the mnist-cnn arch adversarially trained (PGD-5, L-inf 0.3): robust, to audit",
        "classifier",
        ("--dataset", "mnist", "--arch", "cnn", "--loss", "ce", "--adversarial", "pgd",
         "--adv-epsilon", "0.3", "--adv-steps", "5", "--adv-ramp-epochs", "2",
         "--epochs", "8", "--lr", "0.003", "--seed", "0"),
    ),
    Recipe(
        "mnist-oracle",
        "plain CNN oracle for MNIST audits (stands in for human judgement)",
        "oracle",
        ("--dataset", "mnist", "--arch", "oracle-cnn", "--loss", "ce", "--epochs", "3",
         "--seed", "0"),
    ),
)  # fmt: skip

BY_NAME = {r.name: r for r in RECIPES}


def recipe_settings(recipe: Recipe) -> dict[str, Any]:
    """The TrainSettings (as a dict) that ``invaudit train`` builds from the recipe."""
    from invaudit.cli import settings_from_train_args

    return settings_from_train_args(recipe.train_args).as_dict()


def recipe_mismatches(recipe: Recipe, stored: dict[str, Any]) -> list[str]:
    """``field: stored != recipe`` for every recipe field a checkpoint's settings differ in,
    except where the run happened (``invaudit.training.settings.PLACE_FIELDS``).

    Settings saved before an option existed lack its key; they are read with
    that option's default, which is what the run used.
    """
    from invaudit.cli import settings_from_train_args
    from invaudit.training.settings import settings_mismatches

    return settings_mismatches(stored, settings_from_train_args(recipe.train_args))
