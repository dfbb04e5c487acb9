"""The oracle o of Definition 2: the label a careful observer would give an input.

An invariance-based adversarial example is an input whose *oracle* label
changed while the model's decision did not, so every invariance metric needs
one.  For the adversarial spheres it is exact (which sphere a point is
nearest to).  For images no exact oracle exists: a reference classifier
trained the ordinary way stands in for human judgement, and every report
says so in words.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..atomic import file_sha256
from ..errors import ConfigError
from ..models.sources import is_factory, load_source


class Oracle:
    """Labels inputs; ``exact`` says whether it is ground truth or a proxy."""

    name: str = "oracle"
    exact: bool = False
    description: str = ""

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def info(self) -> dict[str, object]:
        return {"name": self.name, "exact": self.exact, "description": self.description}


class SpheresOracle(Oracle):
    """Label 1 when a point is nearer the outer sphere (radius R2) than the inner (R1)."""

    exact = True

    def __init__(self, radii: tuple[float, float]) -> None:
        self.radii = (float(radii[0]), float(radii[1]))
        self.threshold = sum(self.radii) / 2
        self.name = "spheres-radius"
        self.description = (
            f"exact: the nearer sphere by radius (R1={self.radii[0]:g} is class 0, "
            f"R2={self.radii[1]:g} class 1; threshold {self.threshold:g})"
        )

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1).norm(dim=1) > self.threshold).long()




class ClassifierOracle(Oracle):
    """A reference classifier (e.g. the ``oracle-cnn`` checkpoint): a proxy for human judgement.

    Any model source serves (:mod:`invaudit.models.sources`): an invaudit checkpoint,
    a TorchScript or torch.export file, or ``py:package.module:function`` (without
    weights: the factory loads its own); all but a checkpoint take ``dataset``, the
    audited model's dataset record.
    """

    exact = False

    def __init__(
        self,
        path: str | os.PathLike,
        device: torch.device | str = "cpu",
        *,
        origin: str | None = None,
        dataset: dict[str, Any] | None = None,
    ) -> None:
        """``origin`` says who chose this oracle (``--oracle``, the zoo default), for records."""
        self.path = str(path)
        self.origin = origin
        self.model = load_source(path, dataset=dataset).to(device).eval()
        self.sha256 = None if is_factory(path) else file_sha256(path)
        arch = getattr(self.model, "arch", type(self.model).__name__)
        accuracy = (self.model.checkpoint_info or {}).get("metrics") or {}
        self.test_accuracy = accuracy.get("logit_test_acc")
        label = self.path if is_factory(path) else Path(path).name
        self.name = label if is_factory(path) else f"{arch}:{label}"
        acc = f", test accuracy {100 * self.test_accuracy:.2f}%" if self.test_accuracy else ""
        self.description = (
            f"proxy for human judgement: reference classifier {label} ({arch}{acc}); "
            "its labels stand in for what a person would say the image shows"
        )

    def check_compatible(self, model: torch.nn.Module) -> None:
        """One line when the oracle cannot judge the audited model's inputs."""
        mine = (tuple(self.model.input_shape), self.model.num_classes)
        theirs = (tuple(model.input_shape), model.num_classes)
        if mine != theirs:
            raise ConfigError(
                f"oracle {self.path} takes inputs {list(mine[0])} with {mine[1]} classes; "
                f"the audited model takes {list(theirs[0])} with {theirs[1]} classes"
            )

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        ref = next(self.model.parameters())
        logits = self.model(x.to(device=ref.device, dtype=ref.dtype))
        if logits.shape[1] != self.model.num_classes:  # an invertible oracle: read z_s
            logits = logits[:, : self.model.num_classes]
        return logits.argmax(1).to(x.device)

    def info(self) -> dict[str, object]:
        return {
            **super().info(),
            "path": self.path,
            "sha256": self.sha256,
            "test_accuracy": self.test_accuracy,
            "origin": self.origin,
        }


def default_oracle(dataset_info: dict) -> Oracle | None:
    """The exact oracle where one exists (spheres), else None."""
    if dataset_info.get("name") == "spheres":
        radii = dataset_info.get("options", {}).get("radii", (1.0, 10.0))
        return SpheresOracle(tuple(radii))
    return None
