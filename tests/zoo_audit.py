"""What the tests of the invariance attacks for any model share: the embedded MNIST
record and a zoo model as oracle (their fixtures ``data``, ``cnn`` and ``firevnet``
are in ``conftest.py``)."""

from __future__ import annotations

import torch

from invaudit.attacks import Oracle

INFO = {"name": "mnist", "bounds": (0.0, 1.0), "input_shape": [1, 28, 28], "num_classes": 10}


class ModelOracle(Oracle):
    """A zoo classifier as the oracle (the decisions of an independent model)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.name = getattr(model, "arch", "model")

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.logits(x).argmax(1)
